//! Group history at relays: the request and its answer.

use super::MAX_GROUP_MESSAGE_LEN;
use crate::codec::{DecodeError, Reader, Wire, Writer};

/// Longest topic name a relay request carries.
pub const MAX_TOPIC_LEN: usize = 96;
/// Most items one history page carries.
pub const MAX_HISTORY_ITEMS: usize = 256;
/// Largest encoded history request or response.
pub const MAX_HISTORY_FRAME: usize = 2 * 1024 * 1024;
const HISTORY_VERSION: u8 = 1;

/// What a member asks a relay on `/hush/group/1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryRequest {
    /// Subscribe to the topic and keep what is published on it.
    Keep { topic: String },
    /// Messages kept on the topic after sequence number `after`, oldest first.
    Fetch {
        topic: String,
        after: u64,
        limit: u16,
    },
}

/// A relay's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryResponse {
    Keeping,
    /// `(sequence number, group message bytes)`; `more` if the page was cut.
    Page {
        items: Vec<(u64, Vec<u8>)>,
        more: bool,
    },
    Refused {
        reason: String,
    },
}

impl Wire for HistoryRequest {
    const NAME: &'static str = "history request";

    fn encode(&self, w: &mut Writer) {
        w.u8(HISTORY_VERSION);
        match self {
            Self::Keep { topic } => {
                w.u8(0);
                w.str(topic);
            }
            Self::Fetch {
                topic,
                after,
                limit,
            } => {
                w.u8(1);
                w.str(topic);
                w.u64(*after);
                w.u16(*limit);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, HISTORY_VERSION)?;
        match r.u8()? {
            0 => Ok(Self::Keep {
                topic: r.str("topic", MAX_TOPIC_LEN)?.to_owned(),
            }),
            1 => Ok(Self::Fetch {
                topic: r.str("topic", MAX_TOPIC_LEN)?.to_owned(),
                after: r.u64()?,
                limit: r.u16()?,
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "history request",
                tag,
            }),
        }
    }
}

impl Wire for HistoryResponse {
    const NAME: &'static str = "history response";

    fn encode(&self, w: &mut Writer) {
        w.u8(HISTORY_VERSION);
        match self {
            Self::Keeping => w.u8(0),
            Self::Page { items, more } => {
                w.u8(1);
                w.list(items, |w, (seq, bytes)| {
                    w.u64(*seq);
                    w.bytes(bytes);
                });
                w.u8(u8::from(*more));
            }
            Self::Refused { reason } => {
                w.u8(2);
                w.str(reason);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, HISTORY_VERSION)?;
        match r.u8()? {
            0 => Ok(Self::Keeping),
            1 => {
                let items = r.list("history items", MAX_HISTORY_ITEMS, |r| {
                    Ok((
                        r.u64()?,
                        r.bytes("history item", MAX_GROUP_MESSAGE_LEN)?.to_vec(),
                    ))
                })?;
                let more = r.u8()? != 0;
                Ok(Self::Page { items, more })
            }
            2 => Ok(Self::Refused {
                reason: r.str("refusal", 256)?.to_owned(),
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "history response",
                tag,
            }),
        }
    }
}
