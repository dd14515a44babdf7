//! The journal on disk: numbered segment files of sync batches of hash-chained records, and
//! the rule that tells a torn last batch from damage.
//!
//! ```text
//! segment  = header sector | batch* | zeros (preallocated space)
//! header   = "SBSEG002" | number u64 | base_lsn u64 | base_chain[32] | SHA-256(the 56 bytes before)[32]
//!            | zeros to 512 bytes
//! batch    = "SBB2" | records u32 | body_len u32 | first_lsn u64
//!            | body_sum = SHA-256("SBB2" | records | body_len | first_lsn | body)[32]
//!            | SHA-256(the 52 header bytes before)[32] | body
//!            | 0xA5 padding to a multiple of 512 bytes
//! body     = record*        record = length u32 (1..=MAX_JOURNAL_RECORD_BYTES) | payload | chain[32]
//! chain    = SHA-256(previous chain | length | payload); before the first record of the bank it
//!            is SHA-256("securebank journal v1"), and it runs on across every segment
//! ```
//! `base_lsn` is the number of records before the segment and `base_chain` the chain value
//! there; record positions (LSNs) count from 1. One batch is one write and one `fdatasync`;
//! the next batch is written only after that sync returned, and every batch starts on a
//! 512-byte sector boundary, so a crash can tear only the last batch and no sector holds
//! parts of two batches.
//!
//! **The torn-batch rule.** A crash during a batch's write may persist any subset of its
//! sectors, in any order; such a batch was never acknowledged. Scanning a segment, the
//! first batch at offset X that is not valid (magic, lengths, position, checksum, chain) is
//! the *torn last batch* — cut, none of it applied — exactly when all of these hold:
//! - it is in the newest segment;
//! - everything after its extent is zero (its extent is its stated length if its header is
//!   intact — its own checksum matches —, else [`MAX_BATCH_BYTES`]);
//! - either its header is intact and some sector inside its extent is all zero or beyond
//!   the end of the file, or its header sector is all zero (or cut by the end of the file)
//!   and no later sector boundary within its reach starts an intact batch header (which
//!   would be a batch written after it, so it was acknowledged). A
//!   real batch has no zero sector: every 512 bytes of it hold a magic, a chain value or
//!   non-zero padding, because a record with its chain value is at most 436 bytes. So a
//!   batch that is complete but wrong (a flipped bit, a changed length) is damage.
//!
//! Anything else is damage inside acknowledged data: recovery refuses to start and names
//! the file and byte offset.

use crate::channel::keys::sha256;
use crate::error::JournalError;
use crate::limits::{MAX_BATCH_BYTES, MAX_JOURNAL_RECORD_BYTES};

use super::storage::StorageFile;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SBSEG002";

/// First bytes of every batch.
pub const BATCH_MAGIC: [u8; 4] = *b"SBB2";

/// The unit in which a disk may tear a write; batches start on these boundaries.
pub const SECTOR_BYTES: u64 = 512;

/// Bytes of a batch header: fields, body checksum, header checksum.
pub const BATCH_HEADER_BYTES: usize = 4 + 4 + 4 + 8 + 32 + 32;

/// Bytes of the header that its own checksum covers.
const BATCH_HEADER_SUMMED_BYTES: usize = BATCH_HEADER_BYTES - 32;

/// Bytes of a segment header before its zero padding.
const SEGMENT_HEADER_USED_BYTES: usize = 8 + 8 + 8 + 32 + 32;

/// The padding byte after a batch: not zero, so no sector of a written batch is all zero.
pub const PAD_BYTE: u8 = 0xA5;

/// Bytes of a record around its payload: length prefix and chain value.
pub const RECORD_OVERHEAD_BYTES: usize = 4 + 32;

const _: () = assert!(MAX_JOURNAL_RECORD_BYTES + RECORD_OVERHEAD_BYTES + 32 < SECTOR_BYTES as usize);
const _: () = assert!(MAX_BATCH_BYTES.is_multiple_of(SECTOR_BYTES as usize));

/// The chain value before the first record of the bank.
pub fn genesis_chain() -> [u8; 32] {
    sha256(&[b"securebank journal v1"])
}

/// The chain value of a record with `payload` that follows `previous`.
pub fn next_chain(previous: &[u8; 32], payload: &[u8]) -> [u8; 32] {
    let length = u32::try_from(payload.len())
        .expect("payload under its limit")
        .to_be_bytes();
    sha256(&[previous, &length, payload])
}

/// Appends one encoded record to `out` and returns its chain value.
pub fn encode_record(previous: &[u8; 32], payload: &[u8], out: &mut Vec<u8>) -> [u8; 32] {
    assert!(
        !payload.is_empty() && payload.len() <= MAX_JOURNAL_RECORD_BYTES,
        "event encodes within limits"
    );
    let chain = next_chain(previous, payload);
    out.extend_from_slice(&u32::try_from(payload.len()).expect("bounded").to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&chain);
    chain
}

/// A position in the journal: how many records precede it and the chain value there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Records before this position (the LSN of the last record, 0 at the start).
    pub lsn: u64,
    /// Chain value of the last record (the genesis value at the start).
    pub chain: [u8; 32],
}

impl Position {
    /// The start of the bank: no records.
    pub fn genesis() -> Self {
        Self {
            lsn: 0,
            chain: genesis_chain(),
        }
    }
}

/// The file name of segment `number`.
pub fn segment_name(number: u64) -> String {
    format!("journal-{number:010}.seg")
}

/// The segment number in a file name, if it names a segment.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    parse_numbered_name(name, "journal-", ".seg")
}

/// The number in `PREFIX` + ten digits + `SUFFIX` (how segments and checkpoints are named).
pub fn parse_numbered_name(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The header sector of segment `number`, which starts at `base`.
pub fn encode_segment_header(number: u64, base: &Position) -> Vec<u8> {
    let mut header = Vec::with_capacity(SECTOR_BYTES as usize);
    header.extend_from_slice(&SEGMENT_MAGIC);
    header.extend_from_slice(&number.to_be_bytes());
    header.extend_from_slice(&base.lsn.to_be_bytes());
    header.extend_from_slice(&base.chain);
    let checksum = sha256(&[&header]);
    header.extend_from_slice(&checksum);
    header.resize(SECTOR_BYTES as usize, 0);
    header
}

/// Parses a segment's header sector: `Ok(None)` if it is all zero (never written).
pub fn decode_segment_header(sector: &[u8]) -> Result<Option<(u64, Position)>, String> {
    if sector.len() < SECTOR_BYTES as usize {
        return Err("segment header cut short".into());
    }
    if sector.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let used = &sector[..SEGMENT_HEADER_USED_BYTES];
    if used[..8] != SEGMENT_MAGIC {
        return Err("not a securebank journal segment (bad magic)".into());
    }
    if sha256(&[&used[..56]])[..] != used[56..88] || sector[88..].iter().any(|&b| b != 0) {
        return Err("segment header checksum does not match".into());
    }
    let number = u64::from_be_bytes(used[8..16].try_into().expect("8 bytes"));
    let lsn = u64::from_be_bytes(used[16..24].try_into().expect("8 bytes"));
    let chain = used[24..56].try_into().expect("32 bytes");
    Ok(Some((number, Position { lsn, chain })))
}

fn batch_checksum(header_fields: &[u8], body: &[u8]) -> [u8; 32] {
    sha256(&[header_fields, body])
}

/// Frames `body` (encoded records `first_lsn ..= first_lsn + records - 1`) as one batch and
/// appends it to `out`, padded to a whole number of sectors.
pub fn encode_batch(first_lsn: u64, records: u32, body: &[u8], out: &mut Vec<u8>) {
    assert!(records > 0 && !body.is_empty(), "a batch holds records");
    assert!(
        BATCH_HEADER_BYTES + body.len() <= MAX_BATCH_BYTES,
        "batch within its limit"
    );
    let start = out.len();
    out.extend_from_slice(&BATCH_MAGIC);
    out.extend_from_slice(&records.to_be_bytes());
    out.extend_from_slice(&u32::try_from(body.len()).expect("bounded").to_be_bytes());
    out.extend_from_slice(&first_lsn.to_be_bytes());
    let body_sum = batch_checksum(&out[start..], body);
    out.extend_from_slice(&body_sum);
    let header_sum = sha256(&[&out[start..]]);
    out.extend_from_slice(&header_sum);
    out.extend_from_slice(body);
    let padded = (out.len() - start).next_multiple_of(SECTOR_BYTES as usize);
    out.resize(start + padded, PAD_BYTE);
}

/// What a scan of one segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// The position after the last valid record.
    pub end: Position,
    /// Byte offset where the next batch goes.
    pub end_offset: u64,
    /// Valid batches read.
    pub batches: u64,
    /// The offset of a torn last batch, if one was found (it is not part of the log).
    pub torn_at: Option<u64>,
    /// Offset and length of the last valid batch, if any: the only one that may still be
    /// unsynced (in the page cache only) when a process died mid-sync.
    pub last_batch: Option<(u64, u64)>,
}

enum BatchRead {
    /// A valid batch: its records' payloads and its length on disk.
    Valid(Vec<Vec<u8>>, u64),
    /// Zeros where a batch header would be.
    Zero,
    /// Not a valid batch; `extent` is how far it may reach.
    Invalid {
        reason: String,
        extent: u64,
        header_intact: bool,
    },
}

fn read_batch(file: &dyn StorageFile, offset: u64, start: &Position) -> Result<BatchRead, JournalError> {
    let mut header = [0u8; BATCH_HEADER_BYTES];
    let got = file.read_full_at(&mut header, offset)?;
    if header[..got].iter().all(|&b| b == 0) {
        return Ok(BatchRead::Zero);
    }
    let invalid = |reason: &str, extent: u64, header_intact: bool| {
        Ok(BatchRead::Invalid {
            reason: reason.into(),
            extent,
            header_intact,
        })
    };
    let max_extent = MAX_BATCH_BYTES as u64;
    if got < BATCH_HEADER_BYTES || !header_is_intact(&header) {
        return invalid("bad batch header", max_extent, false);
    }
    let records = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
    let body_len = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
    let first_lsn = u64::from_be_bytes(header[12..20].try_into().expect("8 bytes"));
    if records == 0 || body_len == 0 || BATCH_HEADER_BYTES + body_len > MAX_BATCH_BYTES {
        return invalid("batch length out of range", max_extent, false);
    }
    let extent = (BATCH_HEADER_BYTES + body_len).next_multiple_of(SECTOR_BYTES as usize) as u64;
    let mut rest = vec![0u8; extent as usize - BATCH_HEADER_BYTES];
    let read = file.read_full_at(&mut rest, offset + BATCH_HEADER_BYTES as u64)?;
    if read < rest.len() {
        return invalid("batch cut short", extent, true);
    }
    let (body, padding) = rest.split_at(body_len);
    if batch_checksum(&header[..20], body)[..] != header[20..52] {
        return invalid("batch checksum does not match", extent, true);
    }
    if padding.iter().any(|&b| b != PAD_BYTE) {
        return invalid("batch padding changed", extent, true);
    }
    if first_lsn != start.lsn + 1 {
        return invalid("batch is out of sequence", extent, true);
    }
    match split_records(body, records, &start.chain) {
        Ok(payloads) => Ok(BatchRead::Valid(payloads, extent)),
        Err(reason) => invalid(&reason, extent, true),
    }
}

/// Splits a batch body into its records, checking each length and chain value.
fn split_records(body: &[u8], records: u32, start_chain: &[u8; 32]) -> Result<Vec<Vec<u8>>, String> {
    // `records` comes from the file: bound the allocation by what the body can hold.
    let mut payloads = Vec::with_capacity((records as usize).min(body.len() / (RECORD_OVERHEAD_BYTES + 1)));
    let mut chain = *start_chain;
    let mut at = 0;
    for _ in 0..records {
        let length = body
            .get(at..at + 4)
            .ok_or("record length cut short")?
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| "record length cut short")? as usize;
        if length == 0 || length > MAX_JOURNAL_RECORD_BYTES {
            return Err("record length out of range".into());
        }
        let payload = body.get(at + 4..at + 4 + length).ok_or("record cut short")?;
        let stored = body
            .get(at + 4 + length..at + 4 + length + 32)
            .ok_or("record cut short")?;
        chain = next_chain(&chain, payload);
        if chain[..] != *stored {
            return Err("chain value does not match (record changed, removed or reordered)".into());
        }
        payloads.push(payload.to_vec());
        at += length + RECORD_OVERHEAD_BYTES;
    }
    if at != body.len() {
        return Err("bytes after the last record of a batch".into());
    }
    Ok(payloads)
}

fn is_zero_from(file: &dyn StorageFile, offset: u64) -> Result<bool, JournalError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = offset;
    loop {
        let got = file.read_at(&mut buf, at)?;
        if got == 0 {
            return Ok(true);
        }
        if buf[..got].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += got as u64;
    }
}

/// Whether some sector of `extent` bytes from `offset` is all zero, or missing because the
/// file ends before it (an extending write whose later sectors never reached the disk).
fn has_zero_or_missing_sector(file: &dyn StorageFile, offset: u64, extent: u64) -> Result<bool, JournalError> {
    let mut sector = vec![0u8; SECTOR_BYTES as usize];
    for at in (offset..offset + extent).step_by(SECTOR_BYTES as usize) {
        let got = file.read_full_at(&mut sector, at)?;
        if got < sector.len() || sector.iter().all(|&b| b == 0) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the invalid batch at `offset` is the torn last batch (see the module doc).
fn is_torn_last_batch(
    file: &dyn StorageFile,
    offset: u64,
    extent: u64,
    header_intact: bool,
) -> Result<bool, JournalError> {
    if !is_zero_from(file, offset + extent)? {
        return Ok(false);
    }
    if header_intact {
        return has_zero_or_missing_sector(file, offset, extent);
    }
    let mut header_sector = vec![0u8; SECTOR_BYTES as usize];
    let got = file.read_full_at(&mut header_sector, offset)?;
    let header_lost = got < header_sector.len() || header_sector.iter().all(|&b| b == 0);
    Ok(header_lost && !intact_batch_header_after(file, offset, extent)?)
}

/// Whether a sector boundary after `offset`, within `extent`, starts an intact batch header:
/// a batch written after the one at `offset`, so that one was acknowledged, not torn.
fn intact_batch_header_after(file: &dyn StorageFile, offset: u64, extent: u64) -> Result<bool, JournalError> {
    let mut header = [0u8; BATCH_HEADER_BYTES];
    for at in (offset + SECTOR_BYTES..offset + extent).step_by(SECTOR_BYTES as usize) {
        let got = file.read_full_at(&mut header, at)?;
        if got == BATCH_HEADER_BYTES && header_is_intact(&header) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a batch header has the magic and its own checksum matches.
fn header_is_intact(header: &[u8; BATCH_HEADER_BYTES]) -> bool {
    header[..4] == BATCH_MAGIC
        && sha256(&[&header[..BATCH_HEADER_SUMMED_BYTES]])[..] == header[BATCH_HEADER_SUMMED_BYTES..]
}

/// Reads every valid batch of one segment after its header, starting at `start`, handing
/// each record's payload to `visit` with its LSN. `newest` says whether a torn last batch is
/// acceptable here. Damage, or a payload `visit` refuses, is [`JournalError::Corrupt`].
pub fn scan_segment(
    file: &dyn StorageFile,
    name: &str,
    start: Position,
    newest: bool,
    mut visit: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<SegmentScan, JournalError> {
    let corrupt = |offset: u64, reason: String| JournalError::Corrupt {
        file: name.to_string(),
        offset,
        reason,
    };
    let mut scan = SegmentScan {
        end: start,
        end_offset: SECTOR_BYTES,
        batches: 0,
        torn_at: None,
        last_batch: None,
    };
    loop {
        let offset = scan.end_offset;
        match read_batch(file, offset, &scan.end)? {
            BatchRead::Valid(payloads, extent) => {
                for payload in &payloads {
                    let lsn = scan.end.lsn + 1;
                    visit(lsn, payload).map_err(|reason| corrupt(offset, reason))?;
                    scan.end = Position {
                        lsn,
                        chain: next_chain(&scan.end.chain, payload),
                    };
                }
                scan.batches += 1;
                scan.last_batch = Some((offset, extent));
                scan.end_offset += extent;
            }
            BatchRead::Zero => {
                if is_zero_from(file, offset)? {
                    return Ok(scan);
                }
                if newest && is_torn_last_batch(file, offset, MAX_BATCH_BYTES as u64, false)? {
                    scan.torn_at = Some(offset);
                    return Ok(scan);
                }
                return Err(corrupt(offset, "zero batch header with data after it".into()));
            }
            BatchRead::Invalid {
                reason,
                extent,
                header_intact,
            } => {
                if newest && is_torn_last_batch(file, offset, extent, header_intact)? {
                    scan.torn_at = Some(offset);
                    return Ok(scan);
                }
                return Err(corrupt(offset, reason));
            }
        }
    }
}

#[cfg(test)]
mod tests;
