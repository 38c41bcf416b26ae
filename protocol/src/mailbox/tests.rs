//! Round trips, bounds and seals of the mailbox wire types.

use super::*;
use crate::ids::AccountId;
use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;

#[test]
fn sealed_envelopes_open_only_for_their_mailbox() {
    let secret = MailboxSecret::derive(&[7; 32]);
    let mailbox = MailboxId::of(&DeviceId([1; 32]));
    let sealed = SealedEnvelope::seal(&secret.public_key(), &mailbox, b"envelope").unwrap();
    assert_eq!(sealed.len(), SealedEnvelope::sealed_len(8));
    assert_eq!(secret.open(&mailbox, &sealed).unwrap(), b"envelope");
    // Another mailbox id (the associated data) or another key: no.
    let other = MailboxId::of(&DeviceId([2; 32]));
    assert_eq!(secret.open(&other, &sealed), Err(SealError::Open));
    let stranger = MailboxSecret::derive(&[8; 32]);
    assert_eq!(stranger.open(&mailbox, &sealed), Err(SealError::Open));
    // Sealing twice gives different bytes (fresh ephemeral key).
    let again = SealedEnvelope::seal(&secret.public_key(), &mailbox, b"envelope").unwrap();
    assert_ne!(again, sealed);
    // The derivation is stable.
    assert_eq!(
        MailboxSecret::derive(&[7; 32]).public_key(),
        secret.public_key()
    );
}

#[test]
fn deposit_key_seals_open_only_for_their_mailbox_and_look_like_hpke_seals() {
    let alice = AccountId([1; 32]);
    let pairwise = PairwiseKey::derive(&[7; 32], &alice, 5);
    let grant = pairwise.grant([3; 16]);
    let key = grant
        .deposit_key
        .expect("a new grant carries a deposit key");
    let sealed = grant.seal(b"envelope").unwrap();
    // What the relay stores: the same length as an HPKE seal, and a head
    // that could be an X25519 key's encoding (top bit clear).
    assert_eq!(sealed.len(), SealedEnvelope::sealed_len(8));
    assert_eq!(sealed[32] & 0x80, 0);
    assert_eq!(pairwise.open(&sealed).unwrap(), b"envelope");
    assert_eq!(key.open(&grant.mailbox(), &sealed).unwrap(), b"envelope");
    // Another mailbox id, another contact's key or a later generation's: no.
    let other = MailboxId::of(&DeviceId([2; 32]));
    assert_eq!(key.open(&other, &sealed), Err(SealError::Open));
    let bob = PairwiseKey::derive(&[7; 32], &AccountId([2; 32]), 5);
    assert_eq!(bob.open(&sealed), Err(SealError::Open));
    let later = PairwiseKey::derive(&[7; 32], &alice, 6);
    assert_eq!(later.open(&sealed), Err(SealError::Open));
    // A sender holding a grant without a deposit key seals to the HPKE
    // key, and the owner still opens that.
    let older = MailboxGrant {
        deposit_key: None,
        ..grant
    };
    let hpke = older.seal(b"envelope").unwrap();
    assert_eq!(pairwise.open(&hpke).unwrap(), b"envelope");
    assert_ne!(key.open(&grant.mailbox(), &hpke), Ok(b"envelope".to_vec()));
}

#[test]
fn a_relay_rewriting_a_deposit_key_seals_head_is_caught() {
    let pairwise = PairwiseKey::derive(&[7; 32], &AccountId([1; 32]), 5);
    let sealed = pairwise.grant([3; 16]).seal(b"envelope").unwrap();
    // Byte 1 is the head's first (the nonce); byte 32 its last, outside
    // the nonce but bound in as associated data.
    for at in [1, 24, 25, 32, 40] {
        let mut forged = sealed.clone();
        forged[at] ^= 1;
        assert_eq!(pairwise.open(&forged), Err(SealError::Open), "byte {at}");
    }
}

#[test]
fn grants_round_trip_with_and_without_a_deposit_key_and_the_first_format_is_read() {
    let grant = PairwiseKey::derive(&[7; 32], &AccountId([1; 32]), 5).grant([3; 16]);
    assert_eq!(grant.to_bytes().len(), 1 + 148 + 32);
    assert_eq!(MailboxGrant::from_bytes(&grant.to_bytes()), Ok(grant));
    let older = MailboxGrant {
        deposit_key: None,
        ..grant
    };
    assert_eq!(MailboxGrant::from_bytes(&older.to_bytes()), Ok(older));
    // The first format (no version byte, 148 bytes) as `Body` tag 10 still
    // carries it; as a stored value it no longer decodes (the contact
    // sends its grant again).
    let first = older.to_bytes()[1..].to_vec();
    let mut r = Reader::new(&first);
    assert_eq!(MailboxGrant::decode_unversioned(&mut r), Ok(older));
    assert!(r.finish("grant").is_ok());
    assert!(MailboxGrant::from_bytes(&first).is_err());
    // The key never reaches a log.
    assert!(!format!("{grant:?}").contains(&format!("{:?}", grant.deposit_key.unwrap().0)));
}

#[test]
fn auth_verifies_only_the_signed_request() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let device = DeviceId(key.verifying_key().to_bytes());
    let request = OwnerRequest::Ack { seqs: vec![1, 2] };
    let body = request.body_bytes();
    let challenge = [9; 32];
    let auth = Auth {
        device,
        challenge,
        signature: key.sign(&Auth::signed_bytes(&challenge, &body)).to_bytes(),
    };
    assert!(auth.verify(&body));
    assert!(!auth.verify(&OwnerRequest::Ack { seqs: vec![1, 3] }.body_bytes()));
    let forged = Auth {
        device: DeviceId(SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes()),
        ..auth
    };
    assert!(!forged.verify(&body));
    let stale = Auth {
        challenge: [8; 32],
        ..auth
    };
    assert!(!stale.verify(&body));
}

fn bundle(n: u8) -> KeyBundle {
    KeyBundle {
        device_id: DeviceId([n; 32]),
        identity_key: [n; 32],
        one_time_key: [n; 32],
        signature: [n; 64],
    }
}

fn requests() -> Vec<MailboxRequest> {
    let auth = Box::new(Auth {
        device: DeviceId([1; 32]),
        challenge: [2; 32],
        signature: [3; 64],
    });
    vec![
        MailboxRequest::Info,
        MailboxRequest::Deposit {
            right: None,
            items: vec![DepositItem::new(MailboxId([4; 32]), vec![5; 40])],
        },
        MailboxRequest::Deposit {
            right: None,
            items: vec![
                DepositItem::new(MailboxId([4; 32]), vec![5; 40]),
                DepositItem {
                    expires_at_ms: Some(1_800_000_000_000),
                    ..DepositItem::new(MailboxId([5; 32]), vec![6; 40])
                },
            ],
        },
        MailboxRequest::Deposit {
            right: Some(DepositRight::grant(
                &ed25519_dalek::SigningKey::from_bytes(&[8; 32]),
                [9; 16],
            )),
            items: vec![DepositItem {
                expires_at_ms: Some(1),
                ..DepositItem::new(MailboxId([4; 32]), vec![5; 40])
            }],
        },
        MailboxRequest::ClaimKey {
            device: DeviceId([6; 32]),
        },
        MailboxRequest::Owner {
            auth: auth.clone(),
            request: OwnerRequest::Fetch {
                after: 7,
                limit: 8,
                wait_ms: 9,
            },
        },
        MailboxRequest::Owner {
            auth: auth.clone(),
            request: OwnerRequest::Ack {
                seqs: vec![1, 2, 3],
            },
        },
        MailboxRequest::Owner {
            auth: auth.clone(),
            request: OwnerRequest::PutKeys {
                one_time: vec![bundle(1), bundle(2)],
                fallback: bundle(3),
            },
        },
        MailboxRequest::Owner {
            auth: auth.clone(),
            request: OwnerRequest::Revoke {
                holders: vec![[4; 16], [5; 16]],
            },
        },
        MailboxRequest::Owner {
            auth: auth.clone(),
            request: OwnerRequest::SetPush {
                target: Some(crate::PushTarget {
                    endpoint: "https://push.example.org/up?x=1".into(),
                    token: [6; 16],
                }),
            },
        },
        MailboxRequest::Owner {
            auth,
            request: OwnerRequest::SetPush { target: None },
        },
    ]
}

fn responses() -> Vec<MailboxResponse> {
    vec![
        MailboxResponse::Info {
            challenge: [1; 32],
            retention_secs: 2,
            max_item_len: 3,
        },
        MailboxResponse::Deposited {
            results: vec![
                DepositResult::Stored,
                DepositResult::Duplicate,
                DepositResult::Refused(Refusal::MailboxFull),
            ],
        },
        MailboxResponse::Key(bundle(4)),
        MailboxResponse::Items {
            items: vec![(1, vec![1, 2]), (5, vec![])],
            more: true,
            keys_left: 3,
        },
        MailboxResponse::Acked { removed: 4 },
        MailboxResponse::KeysStored { one_time: 20 },
        MailboxResponse::Revoked { holders: 2 },
        MailboxResponse::refused(Refusal::SenderQuota),
        MailboxResponse::refused(Refusal::PushRefused),
        MailboxResponse::PushSet { active: true },
    ]
}

#[test]
fn every_request_and_response_round_trips() {
    for request in requests() {
        assert_eq!(
            MailboxRequest::from_bytes(&request.to_bytes()).unwrap(),
            request
        );
    }
    for response in responses() {
        assert_eq!(
            MailboxResponse::from_bytes(&response.to_bytes()).unwrap(),
            response
        );
    }
}

#[test]
fn empty_deposits_and_long_messages_are_handled() {
    let empty = MailboxRequest::Deposit {
        right: None,
        items: vec![],
    };
    assert!(MailboxRequest::from_bytes(&empty.to_bytes()).is_err());
    let long = MailboxResponse::Refused {
        reason: Refusal::Malformed,
        message: "é".repeat(MAX_ERROR_MESSAGE_LEN),
    };
    let MailboxResponse::Refused { message, .. } =
        MailboxResponse::from_bytes(&long.to_bytes()).unwrap()
    else {
        panic!("not a refusal");
    };
    assert!(message.len() <= MAX_ERROR_MESSAGE_LEN);
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = MailboxRequest::from_bytes(&bytes);
        let _ = MailboxResponse::from_bytes(&bytes);
        let _ = SealedEnvelope::from_bytes(&bytes);
    }

    #[test]
    fn truncations_never_panic(cut in 0usize..200, which in 0usize..13) {
        let all: Vec<Vec<u8>> = requests().iter().map(Wire::to_bytes)
            .chain(responses().iter().map(Wire::to_bytes)).collect();
        let bytes = &all[which % all.len()];
        let cut = cut.min(bytes.len());
        let _ = MailboxRequest::from_bytes(&bytes[..cut]);
        let _ = MailboxResponse::from_bytes(&bytes[..cut]);
    }
}
