//! A write-ahead log for a redb store's hot path.
//!
//! A durable redb commit copies every page on the path of each table it
//! touches, plus the table tree and the free-page list, and `fsync`s those
//! scattered pages: about a millisecond on the project's machine, four or
//! five times a bare `fdatasync`. The log turns that into one sequential
//! write and one `fdatasync` into a file whose blocks already exist (it is
//! written full of zeros when made and never grows), so the sync flushes
//! data and nothing of the file system's own.
//!
//! The store commits each batch to redb without durability, appends the
//! same batch here (and syncs when the batch must be durable), and now and
//! then makes redb durable (a *checkpoint*), after which the log starts
//! over. On open, the store replays the records the log holds beyond the
//! position redb's durable state says it has applied.
//!
//! ```text
//! offset 0                                                     capacity
//! | record | record | record | … | stale bytes of earlier generations |
//!
//! record = len: u32 LE | generation: u64 LE | seq: u64 LE | payload (len bytes)
//!        | check: first 16 bytes of BLAKE3(len | generation | seq | payload)
//! ```
//!
//! Records of one generation are written back to back from offset 0 with
//! `seq` counting from 0; a restart begins a higher generation at offset
//! 0. Reading stops at the first record that is torn (bad check), of
//! another generation, or out of sequence, so stale bytes past the end of
//! the current generation never count. A record is acknowledged only after
//! an `fdatasync` that covers it and everything written before it, so every
//! acknowledged record is readable after a crash.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

const HEADER: usize = 4 + 8 + 8;
const CHECK: usize = 16;
const CHECK_CONTEXT: &str = "hush 2026-12 write-ahead log record";

/// Where a record stands in the log's history: records order by
/// generation, then by `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub generation: u64,
    pub seq: u64,
}

impl Position {
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.generation.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// `None` unless `bytes` is 16 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let generation = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let seq = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
        (bytes.len() == 16).then_some(Self { generation, seq })
    }
}

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub position: Position,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
pub struct Wal {
    file: File,
    capacity: u64,
    /// Where the next record goes.
    offset: u64,
    next: Position,
    /// Appends wait for the first [`Wal::restart`]: continuing a generation
    /// found on open could line a new record up with stale ones of the same
    /// generation after it.
    started: bool,
}

impl Wal {
    /// Opens the log at `path`, making it (mode 0600, `capacity` bytes of
    /// zeros, synced) if it is missing or shorter, and returns it with the
    /// records of the generation it holds, oldest first. The caller makes
    /// those durable elsewhere and calls [`Wal::restart`] before appending.
    pub fn open(path: &Path, capacity: u64) -> io::Result<(Self, Vec<Record>)> {
        Self::open_after(path, capacity, None)
    }

    /// [`Wal::open`], returning only the records after `after` (those the
    /// caller has not made durable elsewhere); the others are still read
    /// and checked, to find where the log ends, but not kept in memory.
    pub fn open_after(
        path: &Path,
        capacity: u64,
        after: Option<Position>,
    ) -> io::Result<(Self, Vec<Record>)> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let len = file.metadata()?.len();
        if len < capacity {
            fill_with_zeros(&file, len, capacity)?;
            file.sync_all()?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
        }
        // Read through once, in pieces: this also brings the pages into
        // the cache, so later partial-page writes need not read them first.
        let scanned = scan(
            io::BufReader::with_capacity(64 * 1024, (&file).take(capacity)),
            capacity,
            after,
        )?;
        let (offset, next) = (scanned.end, scanned.next);
        let records = scanned.kept;
        Ok((
            Self {
                file,
                capacity,
                offset,
                next,
                started: false,
            },
            records,
        ))
    }

    /// The position the next appended record will have.
    pub fn next_position(&self) -> Position {
        self.next
    }

    /// Whether a record of `len` payload bytes fits before the end.
    pub fn fits(&self, len: usize) -> bool {
        self.offset + (HEADER + len + CHECK) as u64 <= self.capacity
    }

    /// Whether a record of `len` payload bytes could ever fit, even in an
    /// empty log.
    pub fn could_fit(&self, len: usize) -> bool {
        (HEADER + len + CHECK) as u64 <= self.capacity
    }

    /// Bytes used by the current generation.
    pub fn used(&self) -> u64 {
        self.offset
    }

    /// Appends a record (which must [fit](Wal::fits)) and, if `sync`,
    /// waits until it and everything before it is on the disk. An unsynced
    /// record is made durable by the next synced one.
    pub fn append(&mut self, payload: &[u8], sync: bool) -> io::Result<Position> {
        if !self.started {
            return Err(io::Error::other(
                "the write-ahead log was appended to before its first restart",
            ));
        }
        if !self.fits(payload.len()) {
            return Err(io::Error::other(
                "a write-ahead log record does not fit (checkpoint first)",
            ));
        }
        let position = self.next;
        let record = encode(position, payload);
        self.file.write_all_at(&record, self.offset)?;
        if sync {
            self.file.sync_data()?;
        }
        self.offset += record.len() as u64;
        self.next.seq += 1;
        Ok(position)
    }

    /// Takes back the record appended last, at `position` (whose batch the
    /// caller could not apply elsewhere): its header is zeroed and synced,
    /// so it is never read back, and the next record takes its place.
    /// Records appended before it stay.
    pub fn retract(&mut self, position: Position, len: usize) -> io::Result<()> {
        let record_len = (HEADER + len + CHECK) as u64;
        let last = Position {
            generation: self.next.generation,
            seq: self.next.seq.wrapping_sub(1),
        };
        if position != last || self.next.seq == 0 || record_len > self.offset {
            return Err(io::Error::other(
                "only the last record of the write-ahead log can be taken back",
            ));
        }
        let at = self.offset - record_len;
        self.file.write_all_at(&[0u8; HEADER], at)?;
        self.file.sync_data()?;
        self.offset = at;
        self.next = position;
        Ok(())
    }

    /// Starts a new generation at offset 0, numbered above the current one
    /// and at least `at_least`. Call it only once everything in the log is
    /// durable elsewhere (after a checkpoint). Nothing is written: records
    /// of the old generation left in place are never read as current.
    pub fn restart(&mut self, at_least: u64) {
        self.next = Position {
            generation: (self.next.generation + 1).max(at_least),
            seq: 0,
        };
        self.offset = 0;
        self.started = true;
    }
}

fn fill_with_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let zeros = vec![0u8; CHUNK];
    let mut at = from;
    while at < to {
        let n = CHUNK.min((to - at) as usize);
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn check(head: &[u8], payload: &[u8]) -> [u8; CHECK] {
    let mut hasher = blake3::Hasher::new_derive_key(CHECK_CONTEXT);
    hasher.update(head);
    hasher.update(payload);
    let mut out = [0; CHECK];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECK]);
    out
}

fn encode(position: Position, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len() + CHECK);
    // `fits` bounds payloads by the capacity, far below 4 GiB.
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&position.generation.to_le_bytes());
    out.extend_from_slice(&position.seq.to_le_bytes());
    let check = check(&out, payload);
    out.extend_from_slice(payload);
    out.extend_from_slice(&check);
    out
}

/// What a scan found: the records kept, where the current generation
/// ends, and the position after its last record.
struct Scanned {
    kept: Vec<Record>,
    end: u64,
    next: Position,
}

/// The current generation: from offset 0 while each record is whole, of
/// the first record's generation, and next in sequence. Records at or
/// before `after` are checked but not kept.
fn scan(mut bytes: impl Read, capacity: u64, after: Option<Position>) -> io::Result<Scanned> {
    let mut found = Scanned {
        kept: Vec::new(),
        end: 0,
        next: Position::default(),
    };
    let mut last: Option<Position> = None;
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; HEADER];
        if !read_whole(&mut bytes, &mut head)? {
            break;
        }
        let field = |range: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b[..range.len()].copy_from_slice(&head[range]);
            u64::from_le_bytes(b)
        };
        let len = field(0..4) as usize;
        let position = Position {
            generation: field(4..12),
            seq: field(12..20),
        };
        let follows =
            last.is_none_or(|l| position.generation == l.generation && position.seq == l.seq + 1);
        // A record running past the end is torn or stale: do not even
        // allocate for it.
        let record_len = (HEADER + len + CHECK) as u64;
        if !follows || found.end + record_len > capacity {
            break;
        }
        payload.resize(len, 0);
        let mut stored = [0u8; CHECK];
        if !read_whole(&mut bytes, &mut payload)? || !read_whole(&mut bytes, &mut stored)? {
            break;
        }
        if check(&head, &payload) != stored {
            break;
        }
        if after.is_none_or(|a| position > a) {
            found.kept.push(Record {
                position,
                payload: payload.clone(),
            });
        }
        last = Some(position);
        found.end += record_len;
        found.next = Position {
            generation: position.generation,
            seq: position.seq + 1,
        };
    }
    Ok(found)
}

/// Fills `buf` from `from`; false if the input ended first.
fn read_whole(from: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match from.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u64 = 4096;

    fn payloads(records: &[Record]) -> Vec<Vec<u8>> {
        records.iter().map(|r| r.payload.clone()).collect()
    }

    #[test]
    fn records_come_back_in_order_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, found) = Wal::open(&path, CAP).unwrap();
        assert!(found.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), CAP);
        assert!(wal.append(b"too early", true).is_err());
        wal.restart(0);
        wal.append(b"one", true).unwrap();
        wal.append(b"two", false).unwrap();
        let p = wal.append(b"three", true).unwrap();
        assert_eq!(
            p,
            Position {
                generation: 1,
                seq: 2
            }
        );
        drop(wal);
        let (wal, found) = Wal::open(&path, CAP).unwrap();
        assert_eq!(
            payloads(&found),
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert_eq!(wal.next_position().seq, 3);
    }

    #[test]
    fn a_restart_hides_the_old_generation_even_where_it_was_longer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::open(&path, CAP).unwrap();
        wal.restart(0);
        for i in 0..10u8 {
            wal.append(&[i; 100], true).unwrap();
        }
        wal.restart(0);
        wal.append(b"new", true).unwrap();
        drop(wal);
        let (wal, found) = Wal::open(&path, CAP).unwrap();
        assert_eq!(payloads(&found), vec![b"new".to_vec()]);
        assert_eq!(found[0].position.generation, 2);
        assert_eq!(
            wal.next_position(),
            Position {
                generation: 2,
                seq: 1
            }
        );
    }

    #[test]
    fn a_torn_record_ends_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::open(&path, CAP).unwrap();
        wal.restart(0);
        wal.append(&[1; 50], true).unwrap();
        wal.append(&[2; 50], true).unwrap();
        wal.append(&[3; 50], true).unwrap();
        drop(wal);
        // Flip one byte in the second record's payload.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[9], (HEADER + 50 + CHECK + HEADER + 10) as u64)
            .unwrap();
        let (mut wal, found) = Wal::open(&path, CAP).unwrap();
        assert_eq!(payloads(&found), vec![vec![1; 50]]);
        // A new generation of the same length cannot pick up the stale
        // third record of the old one.
        wal.restart(0);
        wal.append(&[4; 50], true).unwrap();
        wal.append(&[5; 50], true).unwrap();
        drop(wal);
        let (_, found) = Wal::open(&path, CAP).unwrap();
        assert_eq!(payloads(&found), vec![vec![4; 50], vec![5; 50]]);
    }

    #[test]
    fn a_retracted_record_is_not_read_back_and_the_next_takes_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::open(&path, CAP).unwrap();
        wal.restart(0);
        let one = wal.append(b"one", true).unwrap();
        let two = wal.append(b"two, never applied", true).unwrap();
        assert!(wal.retract(one, 3).is_err(), "only the last record");
        wal.retract(two, b"two, never applied".len()).unwrap();
        drop(wal);
        let (mut wal, found) = Wal::open(&path, CAP).unwrap();
        assert_eq!(payloads(&found), vec![b"one".to_vec()]);
        assert_eq!(wal.next_position(), two);
        // Continuing the same generation: the next record is `two` again.
        wal.started = true;
        assert_eq!(wal.append(b"two", true).unwrap(), two);
        drop(wal);
        let (_, found) = Wal::open(&path, CAP).unwrap();
        assert_eq!(payloads(&found), vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn a_full_log_refuses_instead_of_overwriting_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(&dir.path().join("log"), CAP).unwrap();
        wal.restart(0);
        let big = vec![7; 1000];
        let mut n = 0;
        while wal.fits(big.len()) {
            wal.append(&big, false).unwrap();
            n += 1;
        }
        assert_eq!(n, 3);
        assert!(wal.append(&big, true).is_err());
        assert!(!wal.could_fit(CAP as usize));
    }

    #[test]
    fn positions_order_by_generation_then_seq_and_round_trip() {
        let a = Position {
            generation: 1,
            seq: 900,
        };
        let b = Position {
            generation: 2,
            seq: 0,
        };
        assert!(a < b);
        assert_eq!(Position::from_bytes(&b.to_bytes()), Some(b));
        assert_eq!(Position::from_bytes(&[0; 15]), None);
    }

    #[test]
    fn records_already_durable_elsewhere_are_checked_but_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::open(&path, CAP).unwrap();
        wal.restart(3);
        wal.append(b"one", true).unwrap();
        let durable = wal.append(b"two", true).unwrap();
        wal.append(b"three", true).unwrap();
        drop(wal);
        let (wal, found) = Wal::open_after(&path, CAP, Some(durable)).unwrap();
        assert_eq!(payloads(&found), [b"three".to_vec()]);
        // The end is where it was: the next record follows the third.
        assert_eq!(
            wal.next_position(),
            Position {
                generation: 3,
                seq: 3
            }
        );
    }
}
