//! The index's stored encodings: postings blocks (`search_postings`) and
//! recent segments (`search_segments`), see `docs/search.md`.
//!
//! Everything read here comes from the disk and is checked as it is
//! decoded: a value that does not decode is `IndexDamaged`, never a panic.

use std::collections::BTreeMap;
use std::ops::Range;

use super::StoreError;

/// Postings per block: small enough that appending rewrites little, large
/// enough that a common word is a few hundred sequential reads.
pub(super) const BLOCK_POSTINGS: usize = 128;
/// Most postings one term may have in one segment (one batch's documents).
const MAX_SEGMENT_POSTINGS: u64 = 1 << 20;
/// The bytes of a document's place: conversation (32), message id (16).
pub(super) const PLACE_LEN: usize = 48;

/// One document's entry in a term's postings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Posting {
    pub doc: u64,
    /// How often the term occurs (at most 255).
    pub tf: u8,
    pub norm: u8,
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn take_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A block: its postings' count, then per posting the gap from the one
/// before (the first from `first`), tf and norm.
fn put_postings(out: &mut Vec<u8>, first: u64, postings: &[Posting]) {
    put_varint(out, postings.len() as u64);
    let mut prev = first;
    for p in postings {
        put_varint(out, p.doc - prev);
        out.push(p.tf);
        out.push(p.norm);
        prev = p.doc;
    }
}

pub(super) fn encode_block(first: u64, postings: &[Posting]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + postings.len() * 3);
    put_postings(&mut out, first, postings);
    out
}

pub(super) fn decode_block(
    first: u64,
    bytes: &[u8],
    out: &mut Vec<Posting>,
) -> Result<(), StoreError> {
    decode_postings(first, bytes, BLOCK_POSTINGS as u64, out)
}

fn decode_postings(
    first: u64,
    bytes: &[u8],
    most: u64,
    out: &mut Vec<Posting>,
) -> Result<(), StoreError> {
    let damaged = || StoreError::IndexDamaged("a postings block does not decode");
    let mut at = 0;
    let count = take_varint(bytes, &mut at).ok_or_else(damaged)?;
    if count > most {
        return Err(damaged());
    }
    let mut doc = first;
    for _ in 0..count {
        doc = doc
            .checked_add(take_varint(bytes, &mut at).ok_or_else(damaged)?)
            .ok_or_else(damaged)?;
        let tf = *bytes.get(at).ok_or_else(damaged)?;
        let norm = *bytes.get(at + 1).ok_or_else(damaged)?;
        at += 2;
        out.push(Posting { doc, tf, norm });
    }
    Ok(())
}

/// One write batch's part of the index, as one value: the first document
/// number, the number of documents and their places (48 bytes each, in
/// document order), then each term in strictly increasing byte order as
/// (length, UTF-8 bytes, length of its postings, its postings as a block
/// whose gaps start at the first document).
pub(super) fn encode_segment(
    first: u64,
    places: &[u8],
    terms: &BTreeMap<String, Vec<Posting>>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + places.len() + terms.len() * 16);
    put_varint(&mut out, first);
    put_varint(&mut out, (places.len() / PLACE_LEN) as u64);
    out.extend_from_slice(places);
    let mut block = Vec::new();
    for (term, postings) in terms {
        put_varint(&mut out, term.len() as u64);
        out.extend_from_slice(term.as_bytes());
        block.clear();
        put_postings(&mut block, first, postings);
        put_varint(&mut out, block.len() as u64);
        out.extend_from_slice(&block);
    }
    out
}

/// Where a segment's parts are in its bytes, checked once so that lookups
/// are binary searches.
#[derive(Debug)]
pub(super) struct Segment {
    pub first: u64,
    places: Range<usize>,
    /// Per term, in order: its bytes and its postings' bytes.
    terms: Vec<(Range<usize>, Range<usize>)>,
}

impl Segment {
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, StoreError> {
        let damaged = || StoreError::IndexDamaged("a recent segment does not decode");
        let mut at = 0;
        let len = |at: &mut usize| -> Result<usize, StoreError> {
            let n = take_varint(bytes, at).ok_or_else(damaged)?;
            let n = usize::try_from(n).map_err(|_| damaged())?;
            match at.checked_add(n) {
                Some(end) if end <= bytes.len() => Ok(n),
                _ => Err(damaged()),
            }
        };
        let first = take_varint(bytes, &mut at).ok_or_else(damaged)?;
        let docs = take_varint(bytes, &mut at).ok_or_else(damaged)?;
        first.checked_add(docs).ok_or_else(damaged)?;
        let places_len = usize::try_from(docs)
            .ok()
            .and_then(|d| d.checked_mul(PLACE_LEN))
            .filter(|n| at.checked_add(*n).is_some_and(|end| end <= bytes.len()))
            .ok_or_else(damaged)?;
        let places = at..at + places_len;
        at = places.end;
        let mut terms: Vec<(Range<usize>, Range<usize>)> = Vec::new();
        while at < bytes.len() {
            let n = len(&mut at)?;
            let term = at..at + n;
            at = term.end;
            std::str::from_utf8(&bytes[term.clone()]).map_err(|_| damaged())?;
            if let Some((before, _)) = terms.last()
                && bytes[before.clone()] >= bytes[term.clone()]
            {
                return Err(damaged());
            }
            let n = len(&mut at)?;
            let postings = at..at + n;
            at = postings.end;
            terms.push((term, postings));
        }
        Ok(Self {
            first,
            places,
            terms,
        })
    }

    /// The (document, place) pairs, in document order.
    pub(super) fn places<'a>(&self, bytes: &'a [u8]) -> impl Iterator<Item = (u64, &'a [u8])> {
        bytes[self.places.clone()]
            .chunks_exact(PLACE_LEN)
            .zip(self.first..)
            .map(|(p, d)| (d, p))
    }

    /// Document `doc`'s place, if this segment holds it.
    pub(super) fn place<'a>(&self, bytes: &'a [u8], doc: u64) -> Option<&'a [u8]> {
        let i = usize::try_from(doc.checked_sub(self.first)?).ok()?;
        let start = self.places.start.checked_add(i.checked_mul(PLACE_LEN)?)?;
        let end = start.checked_add(PLACE_LEN)?;
        (end <= self.places.end).then(|| &bytes[start..end])
    }

    /// The documents this segment holds.
    pub(super) fn docs(&self) -> Range<u64> {
        self.first..self.first + (self.places.len() / PLACE_LEN) as u64
    }

    /// Adds `term`'s postings in this segment to `out`.
    pub(super) fn postings(
        &self,
        bytes: &[u8],
        term: &str,
        out: &mut Vec<Posting>,
    ) -> Result<(), StoreError> {
        let found = self
            .terms
            .binary_search_by(|(t, _)| bytes[t.clone()].cmp(term.as_bytes()));
        if let Ok(i) = found {
            let postings = &bytes[self.terms[i].1.clone()];
            decode_postings(self.first, postings, MAX_SEGMENT_POSTINGS, out)?;
        }
        Ok(())
    }

    /// Its terms from `from` on, in order (checked UTF-8 when parsed).
    pub(super) fn terms_from<'a>(
        &'a self,
        bytes: &'a [u8],
        from: &str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let start = self
            .terms
            .partition_point(|(t, _)| &bytes[t.clone()] < from.as_bytes());
        self.terms[start..]
            .iter()
            .map(move |(t, _)| std::str::from_utf8(&bytes[t.clone()]).unwrap_or_default())
    }

    /// Every term with its postings, in term order.
    pub(super) fn each_term(
        &self,
        bytes: &[u8],
        mut f: impl FnMut(&str, &mut Vec<Posting>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut list = Vec::new();
        for (t, p) in &self.terms {
            list.clear();
            decode_postings(
                self.first,
                &bytes[p.clone()],
                MAX_SEGMENT_POSTINGS,
                &mut list,
            )?;
            f(
                std::str::from_utf8(&bytes[t.clone()]).unwrap_or_default(),
                &mut list,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip() {
        let postings: Vec<Posting> = (0..BLOCK_POSTINGS as u64)
            .map(|i| Posting {
                doc: 1_000 + i * i,
                tf: (i % 7) as u8,
                norm: (i % 200) as u8,
            })
            .collect();
        let bytes = encode_block(1_000, &postings);
        let mut back = Vec::new();
        decode_block(1_000, &bytes, &mut back).unwrap();
        assert_eq!(back, postings);
        assert!(decode_block(1_000, &bytes[..bytes.len() - 1], &mut Vec::new()).is_err());
        assert!(decode_block(0, &[0xff; 12], &mut Vec::new()).is_err());
    }

    #[test]
    fn segments_round_trip_and_find_terms() {
        let p = |doc, tf| Posting { doc, tf, norm: 9 };
        let mut terms = BTreeMap::new();
        terms.insert("apple".to_owned(), vec![p(40, 1), p(42, 2)]);
        terms.insert("apricot".to_owned(), vec![p(41, 1)]);
        terms.insert("zebra".to_owned(), vec![p(42, 3)]);
        let places: Vec<u8> = (0..3 * PLACE_LEN).map(|i| i as u8).collect();
        let bytes = encode_segment(40, &places, &terms);
        let segment = Segment::parse(&bytes).unwrap();
        assert_eq!(segment.docs(), 40..43);
        assert_eq!(segment.place(&bytes, 41), Some(&places[48..96]));
        assert_eq!(segment.place(&bytes, 43), None);
        assert_eq!(segment.place(&bytes, 39), None);
        assert_eq!(segment.places(&bytes).count(), 3);
        let mut found = Vec::new();
        segment.postings(&bytes, "apple", &mut found).unwrap();
        assert_eq!(found, vec![p(40, 1), p(42, 2)]);
        segment.postings(&bytes, "banana", &mut found).unwrap();
        assert_eq!(found.len(), 2);
        let from: Vec<&str> = segment.terms_from(&bytes, "apr").collect();
        assert_eq!(from, ["apricot", "zebra"]);
    }

    #[test]
    fn damaged_segments_are_refused() {
        let mut terms = BTreeMap::new();
        let p = Posting {
            doc: 7,
            tf: 1,
            norm: 1,
        };
        terms.insert("b".to_owned(), vec![p]);
        terms.insert("c".to_owned(), vec![p]);
        let bytes = encode_segment(7, &[0; PLACE_LEN], &terms);
        for cut in 0..bytes.len() {
            // Cut anywhere, it either fails or stops at a term boundary;
            // it never panics.
            let _ = Segment::parse(&bytes[..cut]);
        }
        // Terms out of order.
        let mut swapped = bytes.clone();
        let b = swapped.iter().position(|&x| x == b'b').unwrap();
        swapped[b] = b'd';
        assert!(Segment::parse(&swapped).is_err());
        // More documents than bytes, or than memory could hold.
        let mut many = bytes;
        many[1] = 0x7f;
        assert!(Segment::parse(&many).is_err());
        let mut huge = vec![7];
        put_varint(&mut huge, u64::MAX / 48);
        assert!(Segment::parse(&huge).is_err());
    }
}
