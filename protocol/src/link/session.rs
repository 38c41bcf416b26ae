//! The link's Noise state (`snow`), and each side's steps through it: the
//! old device's [`LinkResponder`] and the new device's [`LinkInitiator`].

use std::fmt;

use super::{
    LinkCode, LinkError, LinkOffer, LinkReply, LinkRequest, LinkStep, MAX_LINK_FRAME, NOISE_PARAMS,
    PROLOGUE, PSK_CONTEXT, TAG_LEN,
};
use crate::codec::Wire;
use crate::ids::{AccountId, DeviceId};
use crate::keys::DeviceList;

/// One side of the link's Noise handshake, then its transport.
pub struct LinkNoise {
    state: NoiseState,
}

enum NoiseState {
    Handshake(Box<snow::HandshakeState>),
    Transport(Box<snow::TransportState>),
    Failed,
}

impl fmt::Debug for LinkNoise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            NoiseState::Handshake(_) => "handshake",
            NoiseState::Transport(_) => "transport",
            NoiseState::Failed => "failed",
        };
        f.debug_struct("LinkNoise").field("state", &state).finish()
    }
}

impl LinkNoise {
    /// The new device's side, from the code it was given.
    pub fn initiator(code: &LinkCode) -> Result<Self, LinkError> {
        Self::build(&code.secret, &code.device, true)
    }

    /// The old device's side, for the code it printed (`device`: its own id).
    pub fn responder(secret: &[u8; 32], device: &DeviceId) -> Result<Self, LinkError> {
        Self::build(secret, device, false)
    }

    fn build(secret: &[u8; 32], device: &DeviceId, initiator: bool) -> Result<Self, LinkError> {
        let params = NOISE_PARAMS
            .parse()
            .map_err(|_| LinkError::Protocol("the Noise parameters are not supported"))?;
        let psk = blake3::derive_key(PSK_CONTEXT, secret);
        let mut prologue = PROLOGUE.to_vec();
        prologue.extend_from_slice(&device.0);
        let builder = snow::Builder::new(params);
        let noise = |_| LinkError::Protocol("the Noise handshake could not be set up");
        // A static key of the link alone: the devices' own keys are proven
        // inside (the device list's proofs), not by Noise.
        let keypair = builder.generate_keypair().map_err(noise)?;
        let builder = builder
            .local_private_key(&keypair.private)
            .map_err(noise)?
            .psk(3, &psk)
            .map_err(noise)?
            .prologue(&prologue)
            .map_err(noise)?;
        let state = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(noise)?;
        Ok(Self {
            state: NoiseState::Handshake(Box::new(state)),
        })
    }

    /// Whether the handshake is over (messages are transport messages).
    pub fn is_transport(&self) -> bool {
        matches!(self.state, NoiseState::Transport(_))
    }

    /// Seals `payload` into the next message (handshake or transport).
    pub fn write(&mut self, payload: &[u8]) -> Result<Vec<u8>, LinkError> {
        if payload.len() + TAG_LEN > MAX_LINK_FRAME {
            return Err(LinkError::Protocol("a link message is too long"));
        }
        let mut out = vec![0; MAX_LINK_FRAME];
        let written = match &mut self.state {
            NoiseState::Handshake(h) => h.write_message(payload, &mut out),
            NoiseState::Transport(t) => t.write_message(payload, &mut out),
            NoiseState::Failed => return Err(LinkError::Protocol("the link already failed")),
        };
        let Ok(len) = written else {
            self.state = NoiseState::Failed;
            return Err(LinkError::Protocol("a link message could not be sealed"));
        };
        out.truncate(len);
        self.advance()?;
        Ok(out)
    }

    /// Opens the next message. A handshake message that does not open
    /// means the other side holds another code: [`LinkError::WrongCode`].
    pub fn read(&mut self, message: &[u8]) -> Result<Vec<u8>, LinkError> {
        if message.len() > MAX_LINK_FRAME {
            return Err(LinkError::Protocol("a link message is too long"));
        }
        let mut out = vec![0; MAX_LINK_FRAME];
        let read = match &mut self.state {
            NoiseState::Handshake(h) => h.read_message(message, &mut out),
            NoiseState::Transport(t) => t.read_message(message, &mut out),
            NoiseState::Failed => return Err(LinkError::Protocol("the link already failed")),
        };
        let Ok(len) = read else {
            self.state = NoiseState::Failed;
            return Err(LinkError::WrongCode);
        };
        out.truncate(len);
        self.advance()?;
        Ok(out)
    }

    fn advance(&mut self) -> Result<(), LinkError> {
        let finished = matches!(&self.state, NoiseState::Handshake(h) if h.is_handshake_finished());
        if !finished {
            return Ok(());
        }
        let NoiseState::Handshake(h) = std::mem::replace(&mut self.state, NoiseState::Failed)
        else {
            return Ok(());
        };
        let transport = h
            .into_transport_mode()
            .map_err(|_| LinkError::Protocol("the Noise handshake did not finish"))?;
        self.state = NoiseState::Transport(Box::new(transport));
        Ok(())
    }
}

/// The old device's side of one link code: accepts one new device.
#[derive(Debug)]
pub struct LinkResponder {
    secret: [u8; 32],
    device: DeviceId,
    expires_at_ms: u64,
    offer: LinkOffer,
    noise: LinkNoise,
    /// The peer whose handshake runs; frames from others are refused.
    peer: Option<DeviceId>,
    stage: Stage,
    failures: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Hello,
    Request,
    Granted,
    Finished,
}

/// Handshakes with a wrong code a link code survives; then it is spent.
pub const MAX_LINK_FAILURES: u8 = 3;

/// What a frame from the new device was.
#[derive(Debug)]
pub enum LinkReceived {
    /// A handshake message: send this back.
    Answer(Vec<u8>),
    /// The new device's request, handshake done: check it, then answer
    /// with [`LinkReply::Grant`] through [`LinkResponder::reply`].
    Request(LinkRequest),
    /// The next step: answer it through [`LinkResponder::reply`].
    Step(LinkStep),
}

impl LinkResponder {
    pub fn new(code: &LinkCode, offer: LinkOffer) -> Result<Self, LinkError> {
        Ok(Self {
            secret: code.secret,
            device: code.device,
            expires_at_ms: code.expires_at_ms,
            offer,
            noise: LinkNoise::responder(&code.secret, &code.device)?,
            peer: None,
            stage: Stage::Hello,
            failures: 0,
        })
    }

    /// Whether the code can no longer be used (expired, spent, or too many
    /// wrong tries).
    pub fn is_spent(&self, now_ms: u64) -> bool {
        self.failures >= MAX_LINK_FAILURES
            || (self.stage == Stage::Hello && now_ms >= self.expires_at_ms)
    }

    /// The device being linked, once its request was read.
    pub fn peer(&self) -> Option<DeviceId> {
        self.peer
    }

    /// Whether the new device confirmed it stored everything.
    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    /// One frame from `peer`.
    pub fn receive(
        &mut self,
        now_ms: u64,
        peer: DeviceId,
        frame: &[u8],
    ) -> Result<LinkReceived, LinkError> {
        if self.is_spent(now_ms) {
            return Err(if self.failures >= MAX_LINK_FAILURES {
                LinkError::Protocol("this link code was tried too often with a wrong secret")
            } else {
                LinkError::Expired
            });
        }
        match self.peer {
            Some(p) if p != peer => {
                return Err(LinkError::Protocol(
                    "another device is linking with this code",
                ));
            }
            _ => {}
        }
        match self.stage {
            Stage::Hello => {
                let out = self
                    .noise
                    .read(frame)
                    .and_then(|_| self.noise.write(&self.offer.to_bytes()));
                match out {
                    Ok(answer) => {
                        self.peer = Some(peer);
                        self.stage = Stage::Request;
                        Ok(LinkReceived::Answer(answer))
                    }
                    Err(e) => self.fail(e),
                }
            }
            Stage::Request => {
                let request = self
                    .noise
                    .read(frame)
                    .and_then(|p| Ok(LinkRequest::from_bytes(&p)?));
                match request {
                    Ok(request) => {
                        if request.device.device_id != peer {
                            return self.fail(LinkError::Protocol(
                                "the device asking is not the device on the request",
                            ));
                        }
                        if let Err(e) = request.check(&self.offer.account) {
                            return self.fail(e);
                        }
                        self.stage = Stage::Granted;
                        Ok(LinkReceived::Request(request))
                    }
                    Err(e) => self.fail(e),
                }
            }
            Stage::Granted => {
                let step = LinkStep::from_bytes(&self.noise.read(frame)?)?;
                Ok(LinkReceived::Step(step))
            }
            Stage::Finished => Err(LinkError::Protocol("this link is already finished")),
        }
    }

    /// Seals the answer to a request or step.
    pub fn reply(&mut self, reply: &LinkReply) -> Result<Vec<u8>, LinkError> {
        if self.stage != Stage::Granted {
            return Err(LinkError::Protocol("nothing to answer"));
        }
        if *reply == LinkReply::Finished {
            self.stage = Stage::Finished;
        }
        self.noise.write(&reply.to_bytes())
    }

    /// A handshake that failed: the code stays for another try (a stranger
    /// dialling cannot spend it), up to [`MAX_LINK_FAILURES`].
    fn fail<T>(&mut self, e: LinkError) -> Result<T, LinkError> {
        self.failures = self.failures.saturating_add(1);
        self.peer = None;
        self.stage = Stage::Hello;
        self.noise = LinkNoise::responder(&self.secret, &self.device)?;
        Err(e)
    }
}

impl LinkRequest {
    /// The entry's proof must be the device's own, for `account`.
    pub fn check(&self, account: &AccountId) -> Result<(), LinkError> {
        if self.name.trim().is_empty() || self.name.chars().any(crate::text::is_unsafe_in_name) {
            return Err(LinkError::Protocol("the device name is empty or unsafe"));
        }
        let list = DeviceList {
            account: *account,
            issued_at_ms: 0,
            devices: vec![self.device],
            proofs: vec![self.proof],
            signature: [0; 64],
        };
        match list.proof(&self.device) {
            crate::Proof::Proven => Ok(()),
            _ => Err(LinkError::Protocol(
                "the new device's proof does not verify for this account",
            )),
        }
    }
}

/// The new device's side.
#[derive(Debug)]
pub struct LinkInitiator {
    noise: LinkNoise,
}

impl LinkInitiator {
    /// Starts the handshake: the first frame to send.
    pub fn start(code: &LinkCode) -> Result<(Self, Vec<u8>), LinkError> {
        let mut noise = LinkNoise::initiator(code)?;
        let hello = noise.write(&[])?;
        Ok((Self { noise }, hello))
    }

    /// The old device's answer to the hello: whose account it is.
    pub fn offer(&mut self, frame: &[u8]) -> Result<LinkOffer, LinkError> {
        Ok(LinkOffer::from_bytes(&self.noise.read(frame)?)?)
    }

    /// The request (the last handshake message).
    pub fn request(&mut self, request: &LinkRequest) -> Result<Vec<u8>, LinkError> {
        self.noise.write(&request.to_bytes())
    }

    /// The next step.
    pub fn step(&mut self, step: &LinkStep) -> Result<Vec<u8>, LinkError> {
        self.noise.write(&step.to_bytes())
    }

    /// An answer from the old device.
    pub fn open(&mut self, frame: &[u8]) -> Result<LinkReply, LinkError> {
        Ok(LinkReply::from_bytes(&self.noise.read(frame)?)?)
    }
}
