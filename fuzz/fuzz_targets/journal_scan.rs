//! The journal scan on a file of arbitrary bytes after the magic, then the whole replay
//! (scan, event decoding, ledger rules) on the same file: never panics, never reports an
//! I/O error for a readable file, and what it reports is consistent with the file.
//! Seeds (fuzz/seeds/journal_scan) are valid journals, so mutations explore torn tails and
//! damage after valid records.
#![no_main]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use securebank::error::JournalError;
use securebank::server::bank;
use securebank::server::journal::{self, MAGIC, RECORD_OVERHEAD_BYTES};

static FILE: OnceLock<File> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let file = FILE.get_or_init(|| tempfile::tempfile().expect("a temporary file"));
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(data);
    file.set_len(0).expect("truncate");
    file.write_all_at(&bytes, 0).expect("write");

    let mut next_offset = MAGIC.len() as u64;
    let mut visited = 0u64;
    let scanned = journal::scan(file, |offset, payload| {
        assert_eq!(offset, next_offset, "records are contiguous");
        assert!(!payload.is_empty());
        next_offset += (payload.len() + RECORD_OVERHEAD_BYTES) as u64;
        visited += 1;
        Ok(())
    });
    match scanned {
        Ok(report) => {
            assert_eq!(report.records, visited);
            assert_eq!(report.end_offset, next_offset);
            assert!(report.end_offset <= bytes.len() as u64);
            if let Some(at) = report.torn_tail_at {
                assert_eq!(
                    at, report.end_offset,
                    "the torn tail starts where the valid records end"
                );
            }
        }
        Err(JournalError::Corrupt { offset, .. }) => {
            assert!(offset == 0 || offset >= MAGIC.len() as u64);
            assert!(offset <= bytes.len() as u64);
        }
        Err(other) => panic!("scan of a readable file failed with {other:?}"),
    }
    match bank::replay(file) {
        Ok((ledger, _)) => {
            let totals = ledger.totals();
            assert_eq!(
                ledger.sum_of_balances(),
                totals.deposited_cents - totals.withdrawn_cents,
                "a replayed journal breaks the money invariant"
            );
        }
        Err(JournalError::Corrupt { .. }) => {}
        Err(other) => panic!("replay of a readable file failed with {other:?}"),
    }
});
