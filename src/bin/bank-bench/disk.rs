//! The disk's share of a durable transaction: the latency of one `fdatasync` after a small
//! write, measured the way the journal's commit thread does it, on the same file system as
//! the server's data and in the same run, so a transaction's latency can be read as "echo
//! round trip + one sync + the server's own work".

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use crate::report::Latencies;

/// Syncs measured: enough for a steady median, short (~0.1-0.3 s on this machine's disk).
const SYNC_SAMPLES: usize = 1_000;

/// Bytes written before each sync: one sector, the smallest journal batch.
const BATCH_BYTES: usize = 512;

/// Zeros written and synced ahead of the data, as the journal preallocates its segments, so
/// a data sync never has to commit a new file size too.
const PREALLOCATED_BYTES: usize = SYNC_SAMPLES * BATCH_BYTES;

/// Times [`SYNC_SAMPLES`] `fdatasync` calls, each after a [`BATCH_BYTES`] write at the next
/// offset of a preallocated file in `dir` (removed afterwards). Only the sync is timed.
pub fn fdatasync_latencies(dir: &Path) -> Result<Latencies, String> {
    let path = dir.join("bench-fdatasync.tmp");
    let fail = |what: &str, err: std::io::Error| format!("fdatasync probe in {}: {what}: {err}", dir.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|err| fail("create", err))?;
    let result = (|| {
        file.write_all_at(&vec![0u8; PREALLOCATED_BYTES], 0)
            .map_err(|err| fail("preallocate", err))?;
        file.sync_all().map_err(|err| fail("sync", err))?;
        let batch = [0xA5u8; BATCH_BYTES];
        let mut latencies = Latencies::default();
        for index in 0..SYNC_SAMPLES {
            file.write_all_at(&batch, (index * BATCH_BYTES) as u64)
                .map_err(|err| fail("write", err))?;
            let started = Instant::now();
            file.sync_data().map_err(|err| fail("fdatasync", err))?;
            latencies.record(started.elapsed());
        }
        Ok(latencies)
    })();
    let _ = std::fs::remove_file(&path);
    result
}
