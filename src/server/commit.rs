//! Group commit: many connections' journal records share one batch, one write and one
//! `fdatasync`; the replies that waited for those records go out right after it.
//!
//! ```text
//! connection thread                             the writer of the batch
//!   lock ledger; decide; apply;                   (one at a time: State::committing)
//!   append(event) → lsn ── pending ──▶            take the whole pending batch
//!   unlock ledger                                 frame it (header, checksum, padding)
//!   seal reply; send_when_durable(lsn, reply):    pwrite at the next sector; fdatasync
//!     somebody writing? queue the reply ──▶       durable = batch end; send the queued
//!     back to reading the socket ◀── the reply ──   replies it covers (never blocking: see
//!     nobody writing? become the writer:            [`super::reply`]); unpark the waiters
//!       write + sync this batch, send the           it covers; more work waiting? the
//!       others' replies, hand any further           commit thread goes on with it
//!       work to the commit thread, send own reply
//!   (logins, operator, checkpoints: wait_durable(lsn), the same rule, parking if queued)
//! ```
//!
//! **Who writes.** Appending wakes nobody (unless the batch is full). The thread that next
//! waits for its record ([`Journal::send_when_durable`], [`Journal::wait_durable`]) writes
//! the batch itself if nobody is writing: a lone client costs no wake-up of another thread,
//! only the sync (BENCHMARKS.md, issue 14). If somebody is writing, it queues its reply (or
//! parks) and that writer's batch, or the next one, covers it. A connection thread writes
//! at most until its own record is durable: if more work waits then, it hands the right to
//! write to the commit thread and goes back to its connection; the commit thread writes
//! batches while work waits (under load somebody is nearly always writing, so it writes
//! most batches). The commit thread also takes up work nobody claimed: a full batch, a
//! segment switch, a record whose connection failed before it could wait
//! ([`Journal::commit_unclaimed`]), and what is left at shutdown. A writer that panics
//! poisons the journal, like a failed sync, so nobody waits for it forever.
//!
//! A checkpoint *rotates* the journal (under the ledger lock, so at an exact position): the
//! records pending at that moment are written as the last batch of the current segment,
//! that segment is trimmed to its data, and the next batch goes to a new segment file the
//! checkpointer created and preallocated beforehand; its header is written and synced first.
//!
//! Invariants: records reach the disk in the order they were appended (the order the ledger
//! applied them); one thread at a time holds the right to write, and it releases it only
//! when no work waits or by handing it to the commit thread, so a record that is appended
//! is always either written by the holder or claimed by its waiter; one batch is one write
//! and one sync, and the next write starts only after that sync returned, so only the last
//! batch can ever be torn (see [`super::journal`]); a batch never exceeds [`MAX_BATCH_BYTES`] (appenders wait for room); a waiter returns, and
//! a queued reply is sent, only after a sync that *started after* its record was written
//! (the batch that sync wrote holds the record); a failed write or sync is never retried —
//! the journal is poisoned, queued replies are dropped unsent, and (in the server) the
//! process exits, so the next start recovers from what is really on disk (PostgreSQL's
//! "fsyncgate" lesson).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, Thread};

use super::events::Event;
use super::journal::{self, BATCH_HEADER_BYTES, Position};
use super::reply::{Handed, QueuedReply};
use super::storage::StorageFile;
use crate::error::JournalError;
use crate::limits::MAX_BATCH_BYTES;

/// Counters the benchmark and the operator read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Records written to the file since start.
    pub records_written: u64,
    /// `fdatasync` calls since start.
    pub syncs: u64,
}

/// Where the journal writes and how it behaves; [`Journal::start`] and [`Journal::manual`]
/// take it.
pub struct WriterSetup {
    /// The open newest segment.
    pub file: Box<dyn StorageFile>,
    /// Its number.
    pub segment: u64,
    /// Where its next batch goes.
    pub offset: u64,
    /// The position after its last record.
    pub end: Position,
    /// Records in this segment so far (counts toward the next checkpoint).
    pub records_in_segment: u64,
    /// Zeros to extend a segment by ahead of the data.
    pub preallocate_bytes: u64,
    /// Records per segment after which a checkpoint is asked for.
    pub checkpoint_every_records: u64,
    /// Exit the process on a failed write or sync (the server); tests on a simulated disk
    /// only poison the journal.
    pub exit_on_failure: bool,
    /// File that receives the counters about once a second (the benchmark reads it).
    pub stats_path: Option<PathBuf>,
}

/// A segment switch asked for by a checkpoint, waiting for the batch's writer.
struct Rotation {
    /// Records appended before the switch and not yet taken by the writer.
    before: Vec<u8>,
    before_records: u32,
    file: Box<dyn StorageFile>,
    segment: u64,
    base: Position,
}

struct State {
    pending: Vec<u8>,
    pending_records: u32,
    appended: Position,
    taken_lsn: u64,
    durable_lsn: u64,
    waiters: Vec<(u64, Thread)>,
    /// Sealed replies to send once their record is durable ([`Journal::send_when_durable`]).
    replies: Vec<QueuedReply>,
    /// The most recent durable batch: (its last lsn, its records), for `--trace`.
    last_batch: (u64, u32),
    rotation: Option<Rotation>,
    records_in_segment: u64,
    checkpoint_asked: bool,
    /// Segment switches asked for by [`Journal::rotate`], and finished by the writer.
    switches_requested: u64,
    switches_done: u64,
    /// Whether some thread holds the right to write the next batch: the commit thread, or
    /// a thread that found nobody writing and commits its own record (see
    /// [`Journal::commit_as_holder`]). One holder at a time.
    committing: bool,
    /// The holder was a waiting thread that got its own record durable while more work
    /// waited: it passed the right to the commit thread, which has yet to take it up.
    handed_to_thread: bool,
    /// The commit thread is waiting for work (tests wait for this before they append).
    thread_asleep: bool,
    poisoned: bool,
    stopping: bool,
}

impl State {
    /// Whether a batch or a segment switch waits to be written.
    fn has_work(&self) -> bool {
        !self.pending.is_empty() || self.rotation.is_some()
    }
}

/// The journal while the server runs: an appender shared by all connections, and the
/// writers that make appends durable: one at a time, the commit thread or a thread waiting
/// for its own record (in simulation tests, the caller).
pub struct Journal {
    state: Mutex<State>,
    work_ready: Condvar,
    room_ready: Condvar,
    switched: Condvar,
    records_written: AtomicU64,
    syncs: AtomicU64,
    /// `State::durable_lsn`, readable without the lock (stored after the sync that made it
    /// true, so a reader that sees a value may rely on it).
    durable_lsn: AtomicU64,
    writer: Mutex<Option<Writer>>,
    committer: Mutex<Option<thread::JoinHandle<()>>>,
    checkpoint_every_records: u64,
    checkpoint_wanted: Mutex<Option<Box<dyn Fn() + Send>>>,
    exit_on_failure: bool,
    /// Whether a commit thread writes the batches (else the caller does: manual mode).
    threaded: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// A journal whose batches are written only when the caller calls
    /// [`Journal::commit_once`] (or waits for a record): deterministic, for simulation tests.
    pub fn manual(setup: WriterSetup) -> Arc<Self> {
        let end = setup.end;
        let every = setup.checkpoint_every_records;
        let records_in_segment = setup.records_in_segment;
        let exit_on_failure = setup.exit_on_failure;
        let allocated_end = setup.file.size().unwrap_or(0);
        let writer = Writer {
            file: setup.file,
            segment: setup.segment,
            offset: setup.offset,
            allocated_end,
            preallocate_bytes: setup.preallocate_bytes,
            stats_path: setup.stats_path,
            last_stats: None,
            batch: Vec::with_capacity(64 * 1024),
            waiting: Vec::new(),
            to_wake: Vec::new(),
            replies: Vec::new(),
            to_send: Vec::new(),
        };
        Arc::new(Self {
            state: Mutex::new(State {
                pending: Vec::with_capacity(64 * 1024),
                pending_records: 0,
                appended: end,
                taken_lsn: end.lsn,
                durable_lsn: end.lsn,
                waiters: Vec::new(),
                replies: Vec::new(),
                last_batch: (end.lsn, 0),
                rotation: None,
                records_in_segment,
                checkpoint_asked: false,
                switches_requested: 0,
                switches_done: 0,
                committing: false,
                handed_to_thread: false,
                thread_asleep: false,
                poisoned: false,
                stopping: false,
            }),
            work_ready: Condvar::new(),
            room_ready: Condvar::new(),
            switched: Condvar::new(),
            records_written: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            durable_lsn: AtomicU64::new(end.lsn),
            writer: Mutex::new(Some(writer)),
            committer: Mutex::new(None),
            checkpoint_every_records: every,
            checkpoint_wanted: Mutex::new(None),
            exit_on_failure,
            threaded: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Starts the commit thread on the newest segment.
    pub fn start(setup: WriterSetup) -> Arc<Self> {
        let journal = Self::manual(setup);
        journal.threaded.store(true, Ordering::Relaxed);
        let committer = Arc::clone(&journal);
        let handle = thread::Builder::new()
            .name("journal-commit".into())
            .spawn(move || committer.run())
            .expect("spawning the commit thread at start-up");
        *journal
            .committer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(handle);
        journal
    }

    /// Calls `wanted` (once per segment) when the segment holds enough records for a
    /// checkpoint. It runs on whichever thread wrote the batch (the commit thread or a connection
    /// thread), so it must not block or take the ledger lock.
    pub fn on_checkpoint_wanted(&self, wanted: Box<dyn Fn() + Send>) {
        *self
            .checkpoint_wanted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(wanted);
    }

    /// Makes everything appended so far durable, stops the commit thread and closes the
    /// file. Appending afterwards is a programmer error.
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
        } else if self.is_manual() {
            while self.commit_once().unwrap_or(false) {}
        }
        self.writer_lock().take();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn writer_lock(&self) -> MutexGuard<'_, Option<Writer>> {
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends an event to the pending batch and returns its position (log sequence number).
    /// Call this while holding the ledger lock under which the event was applied, so file
    /// order equals apply order. It does no I/O; it waits only if the pending batch is full.
    ///
    /// It wakes nobody (unless the batch is full): the caller next waits for the record ([`Self::wait_durable`],
    /// [`Self::send_when_durable`]), and that call writes it itself if nobody is writing
    /// (the caller that cannot wait any more says so: [`Self::commit_unclaimed`]).
    pub fn append(&self, event: &Event) -> u64 {
        let payload = event.encode();
        let record_bytes = payload.len() + journal::RECORD_OVERHEAD_BYTES;
        let mut state = self.lock();
        assert!(!state.stopping, "no appends after shutdown");
        while BATCH_HEADER_BYTES + state.pending.len() + record_bytes > MAX_BATCH_BYTES && !state.poisoned {
            assert!(!self.is_manual(), "in manual mode, commit before a batch fills up");
            // A full batch is written by the commit thread if nobody is writing already.
            self.work_ready.notify_one();
            state = self
                .room_ready
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let previous = state.appended.chain;
        let chain = journal::encode_record(&previous, &payload, &mut state.pending);
        state.pending_records += 1;
        state.appended = Position {
            lsn: state.appended.lsn + 1,
            chain,
        };
        state.appended.lsn
    }

    /// The position after the last appended record (what the ledger currently shows).
    pub fn appended(&self) -> Position {
        self.lock().appended
    }

    /// Records appended to the newest segment so far.
    pub fn records_in_segment(&self) -> u64 {
        let state = self.lock();
        state.records_in_segment + (state.appended.lsn - state.durable_lsn)
    }

    /// The position of the last appended record.
    pub fn appended_lsn(&self) -> u64 {
        self.lock().appended.lsn
    }

    /// Switches to `file`, a new, preallocated and durable segment numbered `segment`, right
    /// after the last appended record; returns that position. Call it under the ledger lock.
    pub fn rotate(&self, file: Box<dyn StorageFile>, segment: u64) -> Position {
        let mut state = self.lock();
        assert!(state.rotation.is_none(), "one rotation at a time");
        let base = state.appended;
        let before = std::mem::take(&mut state.pending);
        let before_records = std::mem::take(&mut state.pending_records);
        state.taken_lsn = base.lsn;
        state.records_in_segment = 0;
        state.checkpoint_asked = false;
        state.switches_requested += 1;
        state.rotation = Some(Rotation {
            before,
            before_records,
            file,
            segment,
            base,
        });
        drop(state);
        self.room_ready.notify_all();
        self.work_ready.notify_one();
        base
    }

    /// Blocks until every segment switch asked for so far has been made (the new segment's
    /// header is durable and records go there), so the next [`Journal::rotate`] may follow.
    pub fn wait_switched(&self) -> Result<(), JournalError> {
        if self.is_manual() {
            loop {
                let behind = {
                    let state = self.lock();
                    state.switches_done < state.switches_requested
                };
                if !behind {
                    return Ok(());
                }
                if !self.commit_once()? {
                    return Err(JournalError::Poisoned);
                }
            }
        }
        let mut state = self.lock();
        while state.switches_done < state.switches_requested {
            if state.poisoned {
                return Err(JournalError::Poisoned);
            }
            state = self
                .switched
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        Ok(())
    }

    /// Blocks until every record up to `lsn` is durable.
    pub fn wait_durable(&self, lsn: u64) -> Result<(), JournalError> {
        let mut state = self.lock();
        if state.durable_lsn >= lsn {
            return Ok(());
        }
        if state.poisoned {
            return Err(JournalError::Poisoned);
        }
        if self.is_manual() {
            drop(state);
            while self.lock().durable_lsn < lsn {
                if !self.commit_once()? {
                    return Err(JournalError::Poisoned);
                }
            }
            return Ok(());
        }
        if !state.committing {
            // Nobody is writing: this thread writes the batch (with its record) itself.
            state.committing = true;
            drop(state);
            return self.commit_as_holder(Some(lsn));
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

    /// Whether every record up to `lsn` is durable.
    pub fn is_durable(&self, lsn: u64) -> bool {
        self.durable_lsn.load(Ordering::Acquire) >= lsn
    }

    /// Hands a sealed reply to whoever writes the batch with its record, to be sent right
    /// after the sync that makes it durable (see [`super::reply`]). If nobody is writing,
    /// the calling thread writes and syncs that batch itself, then gets the reply back
    /// (`synced_here`), as it does if the record was durable already: the caller sends it.
    /// If the journal has failed, the reply is dropped unsent (its connection learns of it)
    /// and never given back.
    pub fn send_when_durable(&self, reply: QueuedReply) -> Handed {
        if self.is_manual() {
            // No commit thread: make it durable here, then let the caller send it.
            let lsn = reply.lsn();
            return given_back_unless_failed(reply, self.wait_durable(lsn));
        }
        let mut state = self.lock();
        if state.durable_lsn >= reply.lsn() {
            return Handed::Durable {
                reply,
                synced_here: false,
            };
        }
        if state.poisoned {
            drop(state);
            reply.abandon();
            return Handed::Queued;
        }
        if state.committing {
            reply.trace_queued();
            state.replies.push(reply);
            return Handed::Queued;
        }
        // Nobody is writing (one client, or a lull): writing the batch here saves waking the
        // commit thread, and the reply is sent by this thread without a hand-over.
        state.committing = true;
        drop(state);
        let lsn = reply.lsn();
        given_back_unless_failed(reply, self.commit_as_holder(Some(lsn)))
    }

    /// Makes sure records appended but claimed by nobody get written: a caller that appended
    /// and then cannot wait for its record (its connection failed) calls this, and the
    /// commit thread writes them if nobody else is writing.
    pub fn commit_unclaimed(&self) {
        let state = self.lock();
        if !state.committing && state.has_work() {
            self.work_ready.notify_one();
        }
    }

    /// How many records the batch that made `lsn` durable held, if that batch is still the
    /// most recent one (for `--trace`; a busy server may have synced another since).
    pub fn batch_records_covering(&self, lsn: u64) -> Option<u32> {
        let (last, records) = self.lock().last_batch;
        (last >= lsn && last - u64::from(records) < lsn).then_some(records)
    }

    fn is_manual(&self) -> bool {
        !self.threaded.load(Ordering::Relaxed)
    }

    /// Records written and syncs done so far.
    pub fn stats(&self) -> CommitStats {
        CommitStats {
            records_written: self.records_written.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
        }
    }

    /// Manual mode: writes and syncs the pending rotation or batch, if any. Returns whether
    /// there was one; an error poisons the journal.
    pub fn commit_once(&self) -> Result<bool, JournalError> {
        assert!(
            self.is_manual(),
            "with a commit thread, batches are written by the right to write"
        );
        let mut writer = self.writer_lock();
        let Some(writer) = writer.as_mut() else {
            return Ok(false);
        };
        let state = self.lock();
        if state.poisoned {
            return Err(JournalError::Poisoned);
        }
        match self.take_work(state) {
            Err(_idle) => Ok(false),
            Ok(work) => self.perform(writer, work).map(|()| true).map_err(|err| {
                self.poison(&err);
                JournalError::Poisoned
            }),
        }
    }

    /// Writes batches as the holder of the right to write (`State::committing`, set by the
    /// caller): until record `until_lsn` is durable (a thread waiting for its own record),
    /// or while work waits (the commit thread, `None`). Then gives the right up: to the
    /// commit thread if work still waits and the holder was a waiting thread, which must
    /// get back to its own connection; to nobody otherwise. A failure poisons the journal.
    fn commit_as_holder(&self, until_lsn: Option<u64>) -> Result<(), JournalError> {
        let _poison_on_panic = PoisonOnPanic(self);
        let mut writer = self.writer_lock();
        loop {
            let mut state = self.lock();
            let done = until_lsn.is_some_and(|lsn| state.durable_lsn >= lsn);
            if state.poisoned {
                return Err(JournalError::Poisoned);
            }
            if done || !state.has_work() || writer.is_none() {
                if until_lsn.is_some() && state.has_work() {
                    state.handed_to_thread = true;
                    self.work_ready.notify_one();
                } else {
                    state.committing = false;
                    if state.stopping {
                        self.work_ready.notify_one();
                    }
                }
                return match (done || until_lsn.is_none(), writer.is_some()) {
                    (true, _) => Ok(()),
                    // Shut down with the record still pending (appended after the last batch).
                    (false, false) => Err(JournalError::Poisoned),
                    (false, true) => unreachable!("a holder waiting for its record has work until it is durable"),
                };
            }
            let Ok(work) = self.take_work(state) else {
                unreachable!("checked: work waits")
            };
            let writer = writer.as_mut().expect("checked: the writer is open");
            if let Err(err) = self.perform(writer, work) {
                self.poison(&err);
                return Err(JournalError::Poisoned);
            }
        }
    }

    fn take_work<'a>(&self, mut state: MutexGuard<'a, State>) -> Result<Work, MutexGuard<'a, State>> {
        if let Some(rotation) = state.rotation.take() {
            return Ok(Work::Rotate(rotation));
        }
        if state.pending.is_empty() {
            return Err(state);
        }
        let first_lsn = state.taken_lsn + 1;
        let records = std::mem::take(&mut state.pending_records);
        state.taken_lsn = state.appended.lsn;
        let body = std::mem::replace(&mut state.pending, Vec::with_capacity(64 * 1024));
        drop(state);
        self.room_ready.notify_all();
        Ok(Work::Batch {
            first_lsn,
            records,
            body,
        })
    }

    fn perform(&self, writer: &mut Writer, work: Work) -> std::io::Result<()> {
        match work {
            Work::Batch {
                first_lsn,
                records,
                body,
            } => {
                writer.write_batch(first_lsn, records, &body)?;
                self.made_durable(writer, first_lsn + u64::from(records) - 1, records, true);
            }
            Work::Rotate(rotation) => {
                if rotation.before_records > 0 {
                    let first_lsn = rotation.base.lsn + 1 - u64::from(rotation.before_records);
                    writer.write_batch(first_lsn, rotation.before_records, &rotation.before)?;
                    self.made_durable(writer, rotation.base.lsn, rotation.before_records, false);
                }
                writer.switch_to(rotation.file, rotation.segment, &rotation.base)?;
                self.lock().switches_done += 1;
                self.switched.notify_all();
            }
        }
        Ok(())
    }

    /// Marks records up to `lsn` durable, sends the replies that waited for exactly those
    /// records (in journal order) and wakes exactly the waiters that covers;
    /// `in_current_segment` is false for the last batch of a segment being rotated away.
    fn made_durable(&self, writer: &mut Writer, lsn: u64, records: u32, in_current_segment: bool) {
        self.records_written.fetch_add(u64::from(records), Ordering::Relaxed);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        state.durable_lsn = lsn;
        self.durable_lsn.store(lsn, Ordering::Release);
        state.last_batch = (lsn, records);
        if in_current_segment {
            state.records_in_segment += u64::from(records);
        }
        let ask =
            in_current_segment && state.records_in_segment >= self.checkpoint_every_records && !state.checkpoint_asked;
        state.checkpoint_asked |= ask;
        // Take the covered replies and waiters out under the lock, but send and wake after
        // releasing it: each is a system call, and appenders must not queue behind them.
        std::mem::swap(&mut writer.replies, &mut state.replies);
        for reply in writer.replies.drain(..) {
            if reply.lsn() <= lsn {
                writer.to_send.push(reply);
            } else {
                state.replies.push(reply);
            }
        }
        std::mem::swap(&mut writer.waiting, &mut state.waiters);
        for (waiting_for, thread) in writer.waiting.drain(..) {
            if waiting_for <= lsn {
                writer.to_wake.push(thread);
            } else {
                state.waiters.push((waiting_for, thread));
            }
        }
        drop(state);
        writer.to_send.sort_by_key(QueuedReply::lsn);
        writer.to_send.drain(..).for_each(|reply| reply.send_durable(records));
        writer.to_wake.drain(..).for_each(|thread| thread.unpark());
        if ask && let Some(wanted) = self.checkpoint_wanted.lock().ok().as_deref().and_then(Option::as_ref) {
            wanted();
        }
        writer.maybe_write_stats(self.stats());
    }

    /// The commit thread: takes up the right to write whenever work waits and nobody
    /// writes (a full batch, a segment switch, a record whose connection could not wait, or
    /// more work than the thread that wrote the last batch stayed for), and writes batches
    /// until none waits. Returns at shutdown, once everything appended is written.
    fn run(&self) {
        loop {
            let mut state = self.lock();
            loop {
                if state.poisoned {
                    return;
                }
                if std::mem::take(&mut state.handed_to_thread) {
                    break;
                }
                if !state.committing && state.has_work() {
                    state.committing = true;
                    break;
                }
                if state.stopping && !state.committing {
                    return;
                }
                state.thread_asleep = true;
                state = self
                    .work_ready
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state.thread_asleep = false;
            }
            drop(state);
            if self.commit_as_holder(None).is_err() {
                return;
            }
        }
    }

    fn poison(&self, err: &std::io::Error) {
        let mut state = self.lock();
        state.poisoned = true;
        for (_, thread) in state.waiters.drain(..) {
            thread.unpark();
        }
        let replies = std::mem::take(&mut state.replies);
        drop(state);
        // Their records may not be durable: never sent.
        replies.into_iter().for_each(QueuedReply::abandon);
        self.room_ready.notify_all();
        self.switched.notify_all();
        if self.exit_on_failure {
            eprintln!(
                "FATAL: journal write or sync failed ({err}). The server stops without retrying; \
                 restart it to recover from what is on disk."
            );
            std::process::exit(70);
        }
    }
}

/// Poisons the journal if the thread holding the right to write panics, so that nobody
/// waits for a writer that is gone (the server then exits, as after a failed sync).
struct PoisonOnPanic<'a>(&'a Journal);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0
                .poison(&std::io::Error::other("the thread writing the journal panicked"));
        }
    }
}

/// A reply whose record this thread just waited for or synced: given back to be sent, or,
/// if the journal failed, dropped unsent.
fn given_back_unless_failed(reply: QueuedReply, made_durable: Result<(), JournalError>) -> Handed {
    match made_durable {
        Ok(()) => Handed::Durable {
            reply,
            synced_here: true,
        },
        Err(_) => {
            reply.abandon();
            Handed::Queued
        }
    }
}

enum Work {
    Batch {
        first_lsn: u64,
        records: u32,
        body: Vec<u8>,
    },
    Rotate(Rotation),
}

struct Writer {
    file: Box<dyn StorageFile>,
    segment: u64,
    offset: u64,
    allocated_end: u64,
    preallocate_bytes: u64,
    stats_path: Option<PathBuf>,
    last_stats: Option<std::time::Instant>,
    batch: Vec<u8>,
    /// Reused buffers of [`Journal::made_durable`], so a batch allocates nothing.
    waiting: Vec<(u64, Thread)>,
    to_wake: Vec<Thread>,
    replies: Vec<QueuedReply>,
    to_send: Vec<QueuedReply>,
}

impl Writer {
    fn write_batch(&mut self, first_lsn: u64, records: u32, body: &[u8]) -> std::io::Result<()> {
        self.batch.clear();
        journal::encode_batch(first_lsn, records, body, &mut self.batch);
        let end = self.offset + self.batch.len() as u64;
        if end > self.allocated_end {
            self.preallocate(end)?;
        }
        self.file.write_all_at(&self.batch, self.offset)?;
        self.file.sync_data()?;
        self.offset = end;
        Ok(())
    }

    /// Trims the finished segment to its data and continues in `file` after its header.
    fn switch_to(&mut self, file: Box<dyn StorageFile>, segment: u64, base: &Position) -> std::io::Result<()> {
        assert_eq!(segment, self.segment + 1, "segments are numbered in order");
        self.file.set_len(self.offset)?;
        self.file.sync_all()?;
        file.write_all_at(&journal::encode_segment_header(segment, base), 0)?;
        file.sync_data()?;
        self.allocated_end = file.size()?;
        self.file = file;
        self.segment = segment;
        self.offset = journal::SECTOR_BYTES;
        Ok(())
    }

    /// Extends the file with zeros to well past `needed_end`, then syncs size and data.
    fn preallocate(&mut self, needed_end: u64) -> std::io::Result<()> {
        let current_len = self.file.size()?;
        let target = needed_end.max(current_len) + self.preallocate_bytes;
        preallocate(self.file.as_ref(), current_len.max(self.offset), target)?;
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
        let _ = write_stats_file(path, &text);
    }
}

/// Replaces `path` with `text`: written to a new file (mode 0600, never through a link
/// planted under the temporary name: `create_new` refuses any existing name) and renamed
/// over `path` (which replaces a link there, never follows it).
fn write_stats_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    match std::fs::remove_file(&temporary) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    drop(file);
    std::fs::rename(&temporary, path)
}

/// Writes zeros into `file` from `from` to `to` and syncs it, so later data syncs need not
/// commit a size change.
pub fn preallocate(file: &dyn StorageFile, from: u64, to: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let chunk = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..chunk], at)?;
        at += chunk as u64;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests;
