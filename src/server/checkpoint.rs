//! Checkpoints: the whole ledger as of one journal position, so recovery replays only the
//! segments after it.
//!
//! ```text
//! checkpoint-NNNNNNNNNN.ckp =
//!     "SBCKPT01" | next_segment u64 | lsn u64 | chain[32] | written_at u64
//!     | snapshot_len u64 | snapshot (see super::snapshot) | SHA-256(every byte before)[32]
//! ```
//! `next_segment` is the first segment to replay after loading it: that segment starts at
//! exactly `lsn` and `chain`. Invariants: a checkpoint is written to a temporary name,
//! synced, renamed and the directory synced, so a checkpoint file either exists whole or not
//! at all; it names a position that was durable in the journal before it was written; a
//! checkpoint whose checksum, header or snapshot does not check out is never used (recovery
//! falls back to an older one, loudly — see [`super::recovery`]).

use crate::channel::keys::sha256;
use crate::limits::MAX_CHECKPOINT_BYTES;

use super::journal::Position;
use super::storage::Storage;

/// First bytes of a checkpoint file.
pub const MAGIC: [u8; 8] = *b"SBCKPT01";

/// Bytes before the snapshot.
const HEADER_BYTES: usize = 8 + 8 + 8 + 32 + 8 + 8;

/// The file name of the checkpoint after which segment `next_segment` is replayed.
pub fn file_name(next_segment: u64) -> String {
    format!("checkpoint-{next_segment:010}.ckp")
}

/// The segment number in a checkpoint's file name.
pub fn parse_file_name(name: &str) -> Option<u64> {
    super::journal::parse_numbered_name(name, "checkpoint-", ".ckp")
}

/// A checkpoint as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The first segment to replay after it.
    pub next_segment: u64,
    /// The journal position it holds the state of.
    pub position: Position,
    /// Unix seconds when it was written.
    pub written_at: u64,
    /// The encoded ledger ([`super::snapshot`]).
    pub snapshot: Vec<u8>,
}

impl Checkpoint {
    /// The bytes before the snapshot.
    fn header(&self) -> Vec<u8> {
        let mut header = Vec::with_capacity(HEADER_BYTES);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&self.next_segment.to_be_bytes());
        header.extend_from_slice(&self.position.lsn.to_be_bytes());
        header.extend_from_slice(&self.position.chain);
        header.extend_from_slice(&self.written_at.to_be_bytes());
        header.extend_from_slice(&(self.snapshot.len() as u64).to_be_bytes());
        header
    }

    /// The file bytes (in one buffer: for tests; [`write`] writes the parts without a copy).
    pub fn encode(&self) -> Vec<u8> {
        let header = self.header();
        let checksum = sha256(&[&header, &self.snapshot]);
        [&header[..], &self.snapshot, &checksum].concat()
    }

    /// Parses and checks file bytes; the error says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        Self::decode_owned(bytes.to_vec())
    }

    /// Like [`Checkpoint::decode`], reusing `bytes` for the snapshot instead of copying it.
    fn decode_owned(mut bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < HEADER_BYTES + 32 {
            return Err("checkpoint cut short".into());
        }
        let (content, checksum) = bytes.split_at(bytes.len() - 32);
        if sha256(&[content])[..] != *checksum {
            return Err("checkpoint checksum does not match".into());
        }
        if content[..8] != MAGIC {
            return Err("not a securebank checkpoint (bad magic)".into());
        }
        let u64_at = |at: usize| u64::from_be_bytes(content[at..at + 8].try_into().expect("8 bytes"));
        let snapshot_len = u64_at(64);
        if snapshot_len != (content.len() - HEADER_BYTES) as u64 {
            return Err("checkpoint length does not match its contents".into());
        }
        let next_segment = u64_at(8);
        let position = Position {
            lsn: u64_at(16),
            chain: content[24..56].try_into().expect("32 bytes"),
        };
        let written_at = u64_at(56);
        let content_len = content.len();
        bytes.truncate(content_len);
        bytes.drain(..HEADER_BYTES);
        Ok(Self {
            next_segment,
            position,
            written_at,
            snapshot: bytes,
        })
    }
}

/// Writes `checkpoint` durably: temporary file, sync, rename, directory sync.
pub fn write(storage: &dyn Storage, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let name = file_name(checkpoint.next_segment);
    let temporary = format!("{name}.tmp");
    match storage.remove(&temporary) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let file = storage.create(&temporary)?;
    let header = checkpoint.header();
    let checksum = sha256(&[&header, &checkpoint.snapshot]);
    let snapshot_end = (header.len() + checkpoint.snapshot.len()) as u64;
    file.write_all_at(&header, 0)?;
    file.write_all_at(&checkpoint.snapshot, header.len() as u64)?;
    file.write_all_at(&checksum, snapshot_end)?;
    file.sync_all()?;
    drop(file);
    storage.rename(&temporary, &name)?;
    storage.sync_dir()
}

/// Reads and checks the checkpoint named `name`. The outer error is the disk failing to
/// read it (nothing is known about the file); the inner one says what is wrong with bytes
/// that were read (the file is damaged).
pub fn read(storage: &dyn Storage, name: &str) -> std::io::Result<Result<Checkpoint, String>> {
    let file = storage.open(name)?;
    let len = file.size()?;
    if len > MAX_CHECKPOINT_BYTES {
        return Ok(Err("checkpoint larger than the limit".into()));
    }
    let Ok(len) = usize::try_from(len) else {
        return Ok(Err("checkpoint larger than this machine can hold".into()));
    };
    let mut bytes = vec![0u8; len];
    let got = file.read_full_at(&mut bytes, 0)?;
    bytes.truncate(got);
    Ok(Checkpoint::decode_owned(bytes).and_then(|checkpoint| {
        if Some(checkpoint.next_segment) == parse_file_name(name) {
            Ok(checkpoint)
        } else {
            Err("checkpoint names another segment than its file name".into())
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::storage::sim::{SimDisk, SimStorage};

    fn sample() -> Checkpoint {
        Checkpoint {
            next_segment: 3,
            position: Position {
                lsn: 41,
                chain: [7; 32],
            },
            written_at: 1_700_000_000,
            snapshot: b"state".to_vec(),
        }
    }

    #[test]
    fn a_written_checkpoint_reads_back_equal() {
        let storage = SimStorage(SimDisk::new());
        write(&storage, &sample()).unwrap();
        assert_eq!(read(&storage, &file_name(3)).unwrap(), Ok(sample()));
    }

    #[test]
    fn encode_and_decode_round_trip_also_with_an_empty_snapshot() {
        assert_eq!(Checkpoint::decode(&sample().encode()), Ok(sample()));
        let empty = Checkpoint {
            snapshot: Vec::new(),
            ..sample()
        };
        assert_eq!(Checkpoint::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn a_checksummed_file_shorter_than_a_header_is_refused_without_panicking() {
        for len in 0..HEADER_BYTES {
            let mut content = MAGIC.to_vec();
            content.resize(len, 0x42);
            let mut bytes = content.clone();
            bytes.extend_from_slice(&sha256(&[&content]));
            assert!(Checkpoint::decode(&bytes).is_err(), "{len} bytes");
        }
    }

    #[test]
    fn every_flipped_bit_or_cut_is_refused() {
        let bytes = sample().encode();
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(Checkpoint::decode(&damaged).is_err(), "flip at {at}");
            assert!(Checkpoint::decode(&bytes[..at]).is_err(), "cut at {at}");
        }
    }

    #[test]
    fn a_checkpoint_under_another_segments_name_is_refused() {
        let storage = SimStorage(SimDisk::new());
        write(&storage, &sample()).unwrap();
        storage.rename(&file_name(3), &file_name(4)).unwrap();
        assert!(read(&storage, &file_name(4)).unwrap().is_err());
    }

    #[test]
    fn a_crash_before_the_directory_sync_leaves_no_checkpoint_or_the_whole_one() {
        let disk = SimDisk::new();
        let storage = SimStorage(std::sync::Arc::clone(&disk));
        let start = disk.operations();
        write(&storage, &sample()).unwrap();
        let steps = disk.operations() - start;
        for crash in 1..=steps {
            let disk = SimDisk::new();
            let storage = SimStorage(std::sync::Arc::clone(&disk));
            disk.crash_at(disk.operations() + crash);
            assert!(write(&storage, &sample()).is_err(), "crash at step {crash}");
            disk.restart(|_, _| true);
            match read(&storage, &file_name(3)) {
                Ok(checkpoint) => assert_eq!(checkpoint, Ok(sample())),
                Err(_) => assert!(disk.read(&file_name(3)).is_none(), "crash at step {crash}"),
            }
        }
    }

    #[test]
    fn names_round_trip_and_others_are_not_checkpoints() {
        assert_eq!(parse_file_name(&file_name(12)), Some(12));
        assert_eq!(parse_file_name("checkpoint-12.ckp"), None);
        assert_eq!(parse_file_name("checkpoint-0000000012.ckp.tmp"), None);
    }
}
