//! Receipts (delivered, read): one codec for 1:1 payloads and group
//! control alike.

use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::MessageId;

/// Most message ids one receipt names.
pub const MAX_RECEIPT_IDS: usize = 1024;

/// Which receipt a [`Body::Receipt`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptKind {
    /// A device decrypted and stored the messages (used where no direct ack
    /// reaches the sender, e.g. mail fetched from a relay).
    Delivered = 0,
    /// The user has seen the messages.
    Read = 1,
}

/// `u8` kind ‖ `u16` count ‖ ids: a receipt, 1:1 or in a group.
pub(crate) fn encode_receipt(w: &mut Writer, kind: ReceiptKind, ids: &[MessageId]) {
    w.u8(kind as u8);
    w.list(ids, |w, id| w.u128(id.0));
}

pub(crate) fn decode_receipt(
    r: &mut Reader<'_>,
) -> Result<(ReceiptKind, Vec<MessageId>), DecodeError> {
    let kind = match r.u8()? {
        0 => ReceiptKind::Delivered,
        1 => ReceiptKind::Read,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "receipt kind",
                tag,
            });
        }
    };
    let ids = r.list("receipt ids", MAX_RECEIPT_IDS, |r| Ok(MessageId(r.u128()?)))?;
    Ok((kind, ids))
}
