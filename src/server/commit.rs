//! Group commit: many connections' journal records share one `fdatasync`.
//!
//! ```text
//! connection threads                         commit thread
//!   lock ledger; decide; apply;                loop:
//!   append(event) → lsn   ── pending ──▶          take the whole pending batch
//!   unlock ledger                                 pwrite batch; fdatasync
//!   wait_durable(lsn)  ◀── unpark ──────         durable = batch end; unpark only the
//!   reply                                         waiters whose lsn the sync covered
//! ```
//! Invariants: records reach the file in the order they were appended (the order the
//! ledger applied them); a waiter returns only after a sync that *started after* its record
//! was written; a failed sync is never retried — the journal is poisoned and the process
//! exits, so the next start recovers from what is really on disk (PostgreSQL's
//! "fsyncgate" lesson). The file is extended with zeros ahead of the data
//! ([`JOURNAL_PREALLOCATE_BYTES`]) so a data sync need not also commit a size change.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, Thread};

use super::events::Event;
use super::journal::{self, ScanReport};
use crate::error::JournalError;
use crate::limits::JOURNAL_PREALLOCATE_BYTES;

/// Counters the benchmark reads to report the group-commit factor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Records written to the file since start.
    pub records_written: u64,
    /// `fdatasync` calls since start.
    pub syncs: u64,
}

struct State {
    pending: Vec<u8>,
    appended_lsn: u64,
    durable_lsn: u64,
    chain: [u8; 32],
    waiters: Vec<(u64, Thread)>,
    poisoned: bool,
    stopping: bool,
}

/// The journal while the server runs: an appender shared by all connections and the
/// commit thread that makes appends durable.
pub struct Journal {
    state: Mutex<State>,
    work_ready: Condvar,
    records_written: AtomicU64,
    syncs: AtomicU64,
    committer: Mutex<Option<thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Starts the commit thread on `file`, which `report` scanned; records go after
    /// `report.end_offset`. `stats_path` receives the counters about once a second.
    pub fn start(file: File, report: &ScanReport, stats_path: Option<PathBuf>) -> Arc<Self> {
        let journal = Arc::new(Self {
            state: Mutex::new(State {
                pending: Vec::with_capacity(64 * 1024),
                appended_lsn: report.records,
                durable_lsn: report.records,
                chain: report.head,
                waiters: Vec::new(),
                poisoned: false,
                stopping: false,
            }),
            work_ready: Condvar::new(),
            records_written: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            committer: Mutex::new(None),
        });
        let committer = Arc::clone(&journal);
        let allocated_end = file.metadata().map_or(0, |metadata| metadata.len());
        let mut writer = Writer {
            file,
            offset: report.end_offset,
            allocated_end,
            stats_path,
            last_stats: None,
        };
        let handle = thread::Builder::new()
            .name("journal-commit".into())
            .spawn(move || committer.run(&mut writer))
            .expect("spawning the commit thread at start-up");
        *journal
            .committer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(handle);
        journal
    }

    /// Makes everything appended so far durable, stops the commit thread and closes the
    /// file (releasing its lock). Appending afterwards is a programmer error.
    pub fn shutdown(&self) {
        self.lock().stopping = true;
        self.work_ready.notify_one();
        let handle = self
            .committer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends an event to the pending batch and returns its position (log sequence number).
    /// Call this while holding the ledger lock under which the event was applied, so file
    /// order equals apply order. It does no I/O.
    pub fn append(&self, event: &Event) -> u64 {
        let payload = event.encode();
        let mut state = self.lock();
        assert!(!state.stopping, "no appends after shutdown");
        let was_idle = state.pending.is_empty();
        let previous = state.chain;
        state.chain = journal::encode_record(&previous, &payload, &mut state.pending);
        state.appended_lsn += 1;
        let lsn = state.appended_lsn;
        drop(state);
        if was_idle {
            self.work_ready.notify_one();
        }
        lsn
    }

    /// The position of the last appended record (what the ledger currently shows).
    pub fn appended_lsn(&self) -> u64 {
        self.lock().appended_lsn
    }

    /// Blocks until every record up to `lsn` is durable.
    pub fn wait_durable(&self, lsn: u64) -> Result<(), JournalError> {
        let mut state = self.lock();
        if state.durable_lsn >= lsn {
            return Ok(());
        }
        state.waiters.push((lsn, thread::current()));
        drop(state);
        loop {
            thread::park();
            let state = self.lock();
            if state.durable_lsn >= lsn {
                return Ok(());
            }
            if state.poisoned {
                return Err(JournalError::Poisoned);
            }
        }
    }

    /// Records written and syncs done so far.
    pub fn stats(&self) -> CommitStats {
        CommitStats {
            records_written: self.records_written.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
        }
    }

    fn run(&self, writer: &mut Writer) {
        let mut batch = Vec::with_capacity(64 * 1024);
        let mut waiting = Vec::new();
        let mut to_wake = Vec::new();
        loop {
            let mut state = self.lock();
            while state.pending.is_empty() {
                if state.stopping {
                    return;
                }
                state = self
                    .work_ready
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            std::mem::swap(&mut batch, &mut state.pending);
            let batch_end_lsn = state.appended_lsn;
            let batch_records = batch_end_lsn - state.durable_lsn;
            drop(state);
            if let Err(err) = writer.write_and_sync(&batch) {
                self.poison_and_exit(&err);
            }
            batch.clear();
            self.records_written.fetch_add(batch_records, Ordering::Relaxed);
            self.syncs.fetch_add(1, Ordering::Relaxed);
            let mut state = self.lock();
            state.durable_lsn = batch_end_lsn;
            // Take the covered waiters out under the lock, but wake them after releasing it:
            // an unpark is a system call, and appenders must not queue behind them.
            std::mem::swap(&mut waiting, &mut state.waiters);
            for (lsn, thread) in waiting.drain(..) {
                if lsn <= batch_end_lsn {
                    to_wake.push(thread);
                } else {
                    state.waiters.push((lsn, thread));
                }
            }
            drop(state);
            to_wake.drain(..).for_each(|thread| thread.unpark());
            writer.maybe_write_stats(self.stats());
        }
    }

    fn poison_and_exit(&self, err: &std::io::Error) -> ! {
        let mut state = self.lock();
        state.poisoned = true;
        for (_, thread) in state.waiters.drain(..) {
            thread.unpark();
        }
        drop(state);
        eprintln!(
            "FATAL: journal write or sync failed ({err}). The server stops without retrying; \
             restart it to recover from what is on disk."
        );
        std::process::exit(70);
    }
}

struct Writer {
    file: File,
    offset: u64,
    allocated_end: u64,
    stats_path: Option<PathBuf>,
    last_stats: Option<std::time::Instant>,
}

impl Writer {
    fn write_and_sync(&mut self, batch: &[u8]) -> std::io::Result<()> {
        let end = self.offset + batch.len() as u64;
        if end > self.allocated_end {
            self.preallocate(end)?;
        }
        self.file.write_all_at(batch, self.offset)?;
        self.file.sync_data()?;
        self.offset = end;
        Ok(())
    }

    /// Extends the file with zeros to well past `needed_end`, then syncs size and data.
    fn preallocate(&mut self, needed_end: u64) -> std::io::Result<()> {
        let current_len = self.file.metadata()?.len();
        let target = needed_end.max(current_len) + JOURNAL_PREALLOCATE_BYTES;
        let zeros = vec![0u8; 1 << 20];
        let mut at = current_len.max(self.offset);
        while at < target {
            let chunk = (target - at).min(zeros.len() as u64) as usize;
            self.file.write_all_at(&zeros[..chunk], at)?;
            at += chunk as u64;
        }
        self.file.sync_all()?;
        self.allocated_end = target;
        Ok(())
    }

    fn maybe_write_stats(&mut self, stats: CommitStats) {
        let Some(path) = &self.stats_path else { return };
        let now = std::time::Instant::now();
        if self
            .last_stats
            .is_some_and(|last| now.duration_since(last).as_millis() < 500)
        {
            return;
        }
        self.last_stats = Some(now);
        let text = format!("records_written {}\nsyncs {}\n", stats.records_written, stats.syncs);
        let temporary = path.with_extension("tmp");
        if std::fs::write(&temporary, text).is_ok() {
            let _ = std::fs::rename(&temporary, path);
        }
    }
}
