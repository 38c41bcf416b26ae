//! The one binary codec every hush wire type uses.
//!
//! Integers are big-endian. Variable-length fields carry a `u32` length prefix
//! and each has a named upper bound; decoding rejects unknown versions,
//! over-long fields and trailing bytes with a typed [`DecodeError`].

use thiserror::Error;

/// Why bytes could not be decoded into a wire type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("input ended early: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("{what} is {len} bytes, over the limit of {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: u8 },
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes { what: &'static str, count: usize },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("invalid {what}: {reason}")]
    Invalid {
        what: &'static str,
        reason: &'static str,
    },
}

/// A wire type: encodes to and decodes from the hush binary codec.
pub trait Wire: Sized {
    /// Name used in error messages.
    const NAME: &'static str;
    fn encode(&self, w: &mut Writer);
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Bytes to reserve before encoding, so the buffer is not grown and
    /// copied as it fills (a guess is fine; 0 lets it grow).
    fn encoded_len_hint(&self) -> usize {
        0
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len_hint());
        self.encode(&mut w);
        w.into_bytes()
    }

    /// Decodes exactly one value: trailing bytes are an error.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let value = Self::decode(&mut r)?;
        r.finish(Self::NAME)?;
        Ok(value)
    }
}

#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
        }
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// A `u32` length prefix, then the bytes. Callers keep `bytes` within the
    /// bound the matching `Reader::bytes` call enforces.
    pub fn bytes(&mut self, bytes: &[u8]) {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.buf.extend_from_slice(bytes);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// A `u16` count, then each item.
    pub fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        let count = u16::try_from(items.len()).unwrap_or(u16::MAX);
        self.u16(count);
        for item in items.iter().take(usize::from(count)) {
            each(self, item);
        }
    }
}

#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                what,
                count: self.buf.len(),
            })
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                needed: n - self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    /// The next byte, left unread.
    pub fn peek_u8(&self) -> Result<u8, DecodeError> {
        self.buf
            .first()
            .copied()
            .ok_or(DecodeError::Truncated { needed: 1 })
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_be_bytes(self.array()?))
    }
    /// A version byte that must equal `expected`.
    pub fn version(&mut self, what: &'static str, expected: u8) -> Result<(), DecodeError> {
        let version = self.u8()?;
        if version == expected {
            Ok(())
        } else {
            Err(DecodeError::UnknownVersion { what, version })
        }
    }
    pub fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLong { what, len, max });
        }
        self.take(len)
    }
    pub fn str(&mut self, what: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(what, max)?).map_err(|_| DecodeError::InvalidUtf8 { what })
    }
    pub fn list<T>(
        &mut self,
        what: &'static str,
        max: usize,
        mut each: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = usize::from(self.u16()?);
        if count > max {
            return Err(DecodeError::TooLong {
                what,
                len: count,
                max,
            });
        }
        (0..count).map(|_| each(self)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_truncated_and_oversized() {
        let mut w = Writer::default();
        w.bytes(b"hello");
        let bytes = w.into_bytes();
        assert_eq!(
            Reader::new(&bytes[..6]).bytes("x", 10),
            Err(DecodeError::Truncated { needed: 3 })
        );
        assert!(matches!(
            Reader::new(&bytes).bytes("x", 4),
            Err(DecodeError::TooLong { len: 5, max: 4, .. })
        ));
    }
}
