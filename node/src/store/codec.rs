//! How the store writes its records: postcard, into a buffer of the
//! size measured first.

use serde::{Deserialize, Serialize};

use super::StoreError;

pub(super) fn decode<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Corrupt { what, source })
}

pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain records cannot fail: postcard only errors on
    // unsized sequences and custom serializer errors, which they do not have.
    sized_postcard(value).unwrap_or_default()
}

/// Postcard into a buffer of the exact size, measured first: cheaper
/// than growing one (and copying it) as it fills.
pub(super) fn sized_postcard<T: Serialize + ?Sized>(value: &T) -> postcard::Result<Vec<u8>> {
    let len = postcard::experimental::serialized_size(value)?;
    postcard::to_extend(value, Vec::with_capacity(len))
}
