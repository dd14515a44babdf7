//! The segment scan (`journal::scan_segment`) on a segment of arbitrary bytes after a valid
//! header: never panics, never reports an I/O error for a readable file, and what it
//! reports is consistent with the file: records handed over in order with consecutive
//! positions, whole batches only, a torn batch only where the accepted batches end.
//! Seeds (fuzz/seeds/journal_scan) are valid segments, so mutations explore torn batches
//! and damage after valid ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securebank::error::JournalError;
use securebank::server::journal::{self, Position, SECTOR_BYTES};
use securebank::server::storage::Storage;
use securebank::server::storage::sim::{SimDisk, SimStorage};

fuzz_target!(|data: &[u8]| {
    let mut bytes = journal::encode_segment_header(1, &Position::genesis());
    bytes.extend_from_slice(data);
    let storage = SimStorage(SimDisk::new());
    let file = storage.create("segment").expect("create");
    file.write_all_at(&bytes, 0).expect("write");

    let mut next_lsn = 1;
    let scanned = journal::scan_segment(file.as_ref(), "segment", Position::genesis(), true, |lsn, payload| {
        assert_eq!(lsn, next_lsn, "records come in order");
        assert!(!payload.is_empty());
        next_lsn += 1;
        Ok(())
    });
    match scanned {
        Ok(scan) => {
            assert_eq!(scan.end.lsn, next_lsn - 1);
            assert_eq!(scan.end_offset % SECTOR_BYTES, 0, "batches end on sector boundaries");
            assert!(scan.end_offset <= (bytes.len() as u64).next_multiple_of(SECTOR_BYTES));
            if let Some(at) = scan.torn_at {
                assert_eq!(at, scan.end_offset, "the torn batch starts where the valid ones end");
            }
        }
        Err(JournalError::Corrupt { offset, .. }) => {
            assert!(offset >= SECTOR_BYTES && offset % SECTOR_BYTES == 0);
            assert!(offset <= bytes.len() as u64);
        }
        Err(other) => panic!("scan of a readable file failed with {other:?}"),
    }
});
