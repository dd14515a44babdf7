//! The version-1 journal (`journal.log`, one file of hash-chained records) of the first
//! release, kept so that a data directory written by that release still opens: on its first
//! start this release reads it with [`scan`], cuts a torn tail, and continues the same chain
//! in segment files (see [`super::recovery`]); the file itself is kept, read-only, as the
//! start of the audit trail (`journal-v1.log`).
//!
//! ```text
//! file   = magic "SBJRNL01" | record* | zero bytes (preallocated space)
//! record = length u32 (payload bytes, 1..=4096) | payload | chain[32]
//! chain  = SHA-256(previous chain | length | payload); the first record's previous chain
//!          is SHA-256("securebank journal v1")
//! ```
//! Invariants: a record is valid only if its chain value matches, so a changed, removed or
//! reordered record breaks every chain value after it. The first invalid record is either
//! the *torn tail* — unfinished (the file ends inside it, or it is zero from a sector
//! boundary to its end, as the preallocated space was) with nothing but zeros after it, and
//! no other length would make it valid — which is cut off; or it is damage, and the scan
//! fails naming the byte offset. A zero length marks the end of the data.

use std::io::{self, BufReader, Read};

use super::journal::{genesis_chain, next_chain};
use crate::error::JournalError;

/// Largest record payload the first release wrote, in bytes.
pub const MAX_JOURNAL_RECORD_BYTES: usize = 4096;

/// The first bytes of every journal file.
pub const MAGIC: [u8; 8] = *b"SBJRNL01";

/// The version-1 journal's file name, as the first release wrote it.
pub const FILE_NAME: &str = "journal.log";

/// The name it is kept under once its records continue in segment files.
pub const KEPT_NAME: &str = "journal-v1.log";

/// Bytes of a record around its payload: length prefix and chain value.
pub const RECORD_OVERHEAD_BYTES: usize = 4 + 32;

/// What a scan of the journal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Valid records.
    pub records: u64,
    /// Byte offset just after the last valid record (where the next record goes).
    pub end_offset: u64,
    /// Chain value of the last valid record (the genesis value if none).
    pub head: [u8; 32],
    /// If the file held an incomplete last record: its offset (it is not part of the log).
    pub torn_tail_at: Option<u64>,
}

enum Step {
    Record(Vec<u8>),
    End,
    /// An invalid record; `maybe_torn` if it looks unfinished (cut short, or its chain
    /// value still zero) rather than complete but wrong.
    Invalid {
        at: u64,
        reason: String,
        maybe_torn: bool,
    },
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Sector size at which a device may tear a write: the bytes before a 512-byte boundary can
/// reach the disk while the bytes after it do not.
const TEAR_ALIGNMENT_BYTES: u64 = 512;

/// Whether another payload length would make these bytes a valid record. Then the length
/// prefix itself was damaged: that is corruption, never a torn write.
fn valid_with_other_length(previous: &[u8; 32], body: &[u8], claimed_len: usize) -> bool {
    let longest = MAX_JOURNAL_RECORD_BYTES.min(body.len().saturating_sub(32));
    (1..=longest)
        .filter(|&len| len != claimed_len)
        .any(|len| next_chain(previous, &body[..len])[..] == body[len..len + 32])
}

/// Whether the record's bytes are zero from a sector boundary inside it to its end: the
/// shape a crash leaves when only the first sectors of a write reached the disk.
fn zero_from_a_sector_boundary(offset: u64, body: &[u8]) -> bool {
    let body_end = offset + 4 + body.len() as u64;
    let trailing_zeros = body.iter().rev().take_while(|&&byte| byte == 0).count() as u64;
    let zeros_start = body_end - trailing_zeros;
    trailing_zeros > 0 && zeros_start.div_ceil(TEAR_ALIGNMENT_BYTES) * TEAR_ALIGNMENT_BYTES < body_end
}

fn next_step(reader: &mut impl Read, offset: u64, previous: &[u8; 32]) -> io::Result<Step> {
    let mut length = [0u8; 4];
    let got = read_up_to(reader, &mut length)?;
    if got == 0 || (got == 4 && length == [0; 4]) {
        return Ok(Step::End);
    }
    let invalid = |reason: &str, maybe_torn: bool| Step::Invalid {
        at: offset,
        reason: reason.into(),
        maybe_torn,
    };
    if got < 4 {
        return Ok(invalid("record length cut short", true));
    }
    let payload_len = u32::from_be_bytes(length) as usize;
    if payload_len > MAX_JOURNAL_RECORD_BYTES {
        return Ok(invalid("record length over the limit", false));
    }
    let mut body = vec![0u8; payload_len + 32];
    let read = read_up_to(reader, &mut body)?;
    if read < body.len() {
        body.truncate(read);
        let maybe_torn = !valid_with_other_length(previous, &body, payload_len);
        return Ok(invalid("record cut short", maybe_torn));
    }
    let (payload, chain) = body.split_at(payload_len);
    let chain: [u8; 32] = chain.try_into().expect("32 bytes");
    if next_chain(previous, payload) != chain {
        let unfinished = (chain == [0u8; 32] || zero_from_a_sector_boundary(offset, &body))
            && !valid_with_other_length(previous, &body, payload_len);
        return Ok(invalid(
            "chain value does not match (record changed, removed or reordered)",
            unfinished,
        ));
    }
    body.truncate(payload_len);
    Ok(Step::Record(body))
}

fn rest_is_zero(reader: &mut impl Read) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let got = reader.read(&mut buf)?;
        if got == 0 {
            return Ok(true);
        }
        if buf[..got].iter().any(|&byte| byte != 0) {
            return Ok(false);
        }
    }
}

/// Reads every valid record in order, handing each payload and its offset to `visit`.
/// Damage before the tail, or a payload `visit` refuses, is [`JournalError::Corrupt`].
pub fn scan(
    file: impl Read,
    name: &str,
    mut visit: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<ScanReport, JournalError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    if read_up_to(&mut reader, &mut magic)? != 8 || magic != MAGIC {
        return Err(JournalError::Corrupt {
            file: name.to_string(),
            offset: 0,
            reason: "not a securebank journal (bad magic)".into(),
        });
    }
    let mut report = ScanReport {
        records: 0,
        end_offset: 8,
        head: genesis_chain(),
        torn_tail_at: None,
    };
    loop {
        match next_step(&mut reader, report.end_offset, &report.head)? {
            Step::End => {
                // A zero length ends the log only if nothing follows it: a length zeroed in
                // the middle would otherwise hide every later record.
                return if rest_is_zero(&mut reader)? {
                    Ok(report)
                } else {
                    Err(JournalError::Corrupt {
                        file: name.to_string(),
                        offset: report.end_offset,
                        reason: "zero record length with data after it".into(),
                    })
                };
            }
            Step::Record(payload) => {
                let offset = report.end_offset;
                visit(offset, &payload).map_err(|reason| JournalError::Corrupt {
                    file: name.to_string(),
                    offset,
                    reason,
                })?;
                report.head = next_chain(&report.head, &payload);
                report.records += 1;
                report.end_offset = offset + (payload.len() + RECORD_OVERHEAD_BYTES) as u64;
            }
            Step::Invalid { at, reason, maybe_torn } => {
                return if maybe_torn && rest_is_zero(&mut reader)? {
                    report.torn_tail_at = Some(at);
                    Ok(report)
                } else {
                    Err(JournalError::Corrupt {
                        file: name.to_string(),
                        offset: at,
                        reason,
                    })
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::journal::encode_record;
    use std::fs::{self, File, OpenOptions};
    use std::io::Write;
    use std::path::{Path, PathBuf};

    fn journal_with(payloads: &[&[u8]]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut bytes = MAGIC.to_vec();
        let mut chain = genesis_chain();
        for payload in payloads {
            chain = encode_record(&chain, payload, &mut bytes);
        }
        fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn scan_path(path: &Path) -> Result<(ScanReport, Vec<Vec<u8>>), JournalError> {
        let file = File::open(path).unwrap();
        let mut seen = Vec::new();
        let report = scan(file, FILE_NAME, |_, payload| {
            seen.push(payload.to_vec());
            Ok(())
        })?;
        Ok((report, seen))
    }

    #[test]
    fn reads_back_every_record_and_ignores_preallocated_zeros() {
        let (_dir, path) = journal_with(&[b"one", b"two"]);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0u8; 4096]).unwrap();
        let (report, seen) = scan_path(&path).unwrap();
        assert_eq!(seen, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(report.records, 2);
        assert_eq!(report.torn_tail_at, None);
        assert_eq!(report.end_offset, 8 + 2 * (3 + 36));
    }

    #[test]
    fn a_cut_at_every_offset_inside_the_last_record_recovers_to_the_previous_record() {
        let (_dir, path) = journal_with(&[b"first", b"second-record"]);
        let full = fs::read(&path).unwrap();
        let last_start = 8 + 5 + 36;
        for cut in last_start + 1..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let (report, seen) = scan_path(&path).unwrap();
            assert_eq!(seen, vec![b"first".to_vec()], "cut at {cut}");
            assert_eq!(report.torn_tail_at, Some(last_start as u64), "cut at {cut}");
            assert_eq!(report.end_offset, last_start as u64);
        }
    }

    #[test]
    fn a_flipped_byte_in_an_earlier_record_is_corruption_naming_its_offset() {
        let (_dir, path) = journal_with(&[b"first", b"second", b"third"]);
        let mut bytes = fs::read(&path).unwrap();
        bytes[8 + 4 + 41 + 2] ^= 0x40; // inside "second"
        fs::write(&path, &bytes).unwrap();
        match scan_path(&path) {
            Err(JournalError::Corrupt { offset, .. }) => assert_eq!(offset, 8 + 41),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn a_removed_middle_record_breaks_the_chain() {
        let (_dir, path) = journal_with(&[b"first", b"second", b"third"]);
        let bytes = fs::read(&path).unwrap();
        let mut without_second = bytes[..8 + 41].to_vec();
        without_second.extend_from_slice(&bytes[8 + 41 + 42..]);
        fs::write(&path, &without_second).unwrap();
        assert!(matches!(
            scan_path(&path),
            Err(JournalError::Corrupt { offset: 49, .. })
        ));
    }

    #[test]
    fn a_flipped_byte_in_the_last_complete_record_is_corruption_not_a_torn_tail() {
        let (_dir, path) = journal_with(&[b"first", b"second"]);
        let mut bytes = fs::read(&path).unwrap();
        bytes[8 + 41 + 5] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            scan_path(&path),
            Err(JournalError::Corrupt { offset: 49, .. })
        ));
    }

    #[test]
    fn a_last_record_whose_chain_value_is_still_zero_is_a_torn_tail() {
        let (_dir, path) = journal_with(&[b"first", b"second"]);
        let mut bytes = fs::read(&path).unwrap();
        let len = bytes.len();
        bytes[len - 32..].fill(0);
        bytes.extend_from_slice(&[0u8; 100]);
        fs::write(&path, &bytes).unwrap();
        let (report, seen) = scan_path(&path).unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(report.torn_tail_at, Some(49));
    }

    #[test]
    fn a_zeroed_length_in_the_middle_is_corruption_not_the_end_of_the_log() {
        let (_dir, path) = journal_with(&[b"first", b"second", b"third"]);
        let mut bytes = fs::read(&path).unwrap();
        bytes[8 + 41..8 + 41 + 4].fill(0);
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            scan_path(&path),
            Err(JournalError::Corrupt { offset: 49, .. })
        ));
    }

    #[test]
    fn refuses_a_file_that_is_not_a_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        fs::write(&path, b"hello world").unwrap();
        assert!(matches!(scan_path(&path), Err(JournalError::Corrupt { offset: 0, .. })));
    }

    #[test]
    fn a_known_journal_gives_a_known_head_so_the_format_cannot_change_unnoticed() {
        let (_dir, path) = journal_with(&[b"first", b"second"]);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(
            crate::message::hex(&crate::channel::keys::sha256(&[&bytes])),
            "ec074d9e6d2f9d4446653447477978a84428ddd120cd64d9c0210eab9bfcc48f",
            "the bytes of a two-record journal"
        );
        let (report, _) = scan_path(&path).unwrap();
        assert_eq!(
            crate::message::hex(&report.head),
            "261317e4e4171241a7fbf724b1279eaae861e3d843ed95acba2a35414ddff5ae",
            "the head of a two-record journal"
        );
    }

    /// One record of `payload_len` bytes at offset 8, with its bytes from `zero_from` on
    /// zeroed (as a torn write would leave them, or as damage would).
    fn one_record_zeroed_from(payload_len: usize, zero_from: usize) -> (tempfile::TempDir, PathBuf) {
        let payload = vec![0x5au8; payload_len];
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::try_from(payload_len).unwrap().to_be_bytes());
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&next_chain(&genesis_chain(), &payload));
        bytes[zero_from..].fill(0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        fs::write(&path, &bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn zeros_at_the_end_of_a_record_that_do_not_start_at_a_sector_boundary_are_damage() {
        // The record spans 8..644; its last 10 bytes (inside the chain value) are zero.
        let (_dir, path) = one_record_zeroed_from(600, 634);
        assert!(matches!(scan_path(&path), Err(JournalError::Corrupt { offset: 8, .. })));
    }

    #[test]
    fn zeros_that_round_up_to_the_end_of_a_record_ending_on_a_sector_boundary_are_damage() {
        // The record spans 8..1024 and ends on a boundary; its last 10 bytes are zero, but
        // they do not start at a boundary: no write can have been torn that way.
        let (_dir, path) = one_record_zeroed_from(980, 1014);
        assert!(matches!(scan_path(&path), Err(JournalError::Corrupt { offset: 8, .. })));
    }

    #[test]
    fn a_changed_length_followed_by_zeros_is_damage_not_a_torn_tail() {
        let (_dir, path) = journal_with(&[b"first", b"second-record"]);
        let mut bytes = fs::read(&path).unwrap();
        // "second-record" is 13 bytes; claim 14, so the record reads one byte short.
        let length_at = 8 + 5 + RECORD_OVERHEAD_BYTES;
        bytes[length_at + 3] = 14;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            scan_path(&path),
            Err(JournalError::Corrupt { offset, .. }) if offset == length_at as u64
        ));
    }

    #[test]
    fn zeros_from_a_sector_boundary_inside_the_chain_value_are_a_torn_tail() {
        // The record spans 8..520; the sector boundary at 512 falls inside its chain value.
        let (_dir, path) = one_record_zeroed_from(476, 512);
        let (report, seen) = scan_path(&path).unwrap();
        assert!(seen.is_empty());
        assert_eq!(report.torn_tail_at, Some(8));
    }

    #[test]
    fn a_record_of_exactly_the_largest_length_is_read_and_one_more_is_refused() {
        let largest = vec![1u8; MAX_JOURNAL_RECORD_BYTES];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::try_from(largest.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(&largest);
        bytes.extend_from_slice(&next_chain(&genesis_chain(), &largest));
        fs::write(&path, &bytes).unwrap();
        let (report, _) = scan_path(&path).unwrap();
        assert_eq!(report.records, 1);
        let mut over = MAGIC.to_vec();
        over.extend_from_slice(&u32::try_from(MAX_JOURNAL_RECORD_BYTES + 1).unwrap().to_be_bytes());
        over.extend_from_slice(&[1u8; 64]);
        fs::write(&path, &over).unwrap();
        assert!(matches!(scan_path(&path), Err(JournalError::Corrupt { offset: 8, .. })));
    }
}
