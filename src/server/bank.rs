//! The bank: the ledger behind one mutex, made durable by the journal.
//!
//! Every operation follows one pattern: lock the ledger, decide, apply the event and append
//! it to the journal (memory only), unlock, then wait until the journal has synced that
//! record, and only then answer. Reads wait until what they show is durable. So the ledger
//! lock is never held across a disk sync or socket I/O, and nothing acknowledged can be lost.
//! A connection's money requests and reads use the `*_deferred` forms, which return the
//! journal position to wait for instead of waiting: the connection hands its sealed reply
//! to the batch's writer ([`Bank::send_when_durable`]), which sends it after that sync
//! (or writes and syncs the batch itself if nobody is writing, then sends it).
//!
//! `Bank` is also the seam where a bank that outgrows one machine would plug in another
//! backend (a replicated ledger such as a TigerBeetle cluster, or PostgreSQL with
//! serializable transactions): sessions use only its methods, never the ledger or journal.
//!
//! A checkpoint ([`Bank::checkpoint`]) creates and preallocates the next segment outside
//! every lock, then, under the ledger lock, rotates the journal and encodes the ledger —
//! the one consistent copy — and after that lock is released waits until the position is
//! durable and writes the checkpoint file. Transactions stall only for the encoding.
//!
//! The operator's actions ([`Bank::open_account`], [`Bank::unlock`], [`Bank::close_account`])
//! follow the same pattern as a customer's transaction, under the same lock and the same
//! group commit, so they are acknowledged only once durable, and an account opened while
//! customers transact is either there for a transfer or not, never half there.

mod login;

pub use login::Judgement;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::checkpoint::{self, Checkpoint};
use super::commit::{self, CommitStats, Journal, WriterSetup};
use super::events::{Event, PasswordRecord};
use super::journal::{self, Position};
use super::ledger::{Ledger, OperatorRefusal, Totals, TxDecision, TxRequest};
use super::recovery::{self, RecoveryReport};
use super::reply::{Durability, Handed, QueuedReply};
use super::retention::TxidRetention;
use super::snapshot;
use super::storage::{DirStorage, SharedStorage};
use super::unknown_names::UnknownNames;
use crate::error::{ErrorCode, JournalError};
use crate::limits::{DEFAULT_CHECKPOINT_EVERY_RECORDS, JOURNAL_PREALLOCATE_BYTES, LOCKOUT_DURATION_SECS};
use crate::message::HistoryEntry;

/// Seconds since the Unix epoch (lockouts and history use wall-clock time because they must
/// survive a restart).
pub fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The outcome of a rule check that may refuse: `Ok(value)` or the refusing code.
pub type Ruled<T> = Result<T, ErrorCode>;

/// The name of the lock file that keeps a second server off a data directory.
pub const LOCK_FILE_NAME: &str = "bank.lock";

/// How the bank keeps its state; the server's flags set these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankOptions {
    /// How long transaction ids are remembered.
    pub retention: TxidRetention,
    /// Records per segment after which a checkpoint is written.
    pub checkpoint_every_records: u64,
    /// Zeros a segment is extended by ahead of its data.
    pub preallocate_bytes: u64,
    /// How long an account stays locked after too many failed logins, in seconds.
    pub lockout_secs: u64,
}

impl Default for BankOptions {
    fn default() -> Self {
        Self {
            retention: TxidRetention::default(),
            checkpoint_every_records: DEFAULT_CHECKPOINT_EVERY_RECORDS,
            preallocate_bytes: JOURNAL_PREALLOCATE_BYTES,
            lockout_secs: LOCKOUT_DURATION_SECS,
        }
    }
}

/// Who writes the journal's batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitMode {
    /// A commit thread, as the server runs; a failed sync ends the process.
    Thread {
        /// File that receives the group-commit counters about once a second.
        stats_path: Option<std::path::PathBuf>,
    },
    /// The caller, one batch per wait or per [`Bank::commit_once`]; a failed sync poisons
    /// the journal. Deterministic: for simulated-disk tests.
    Manual,
}

/// What one checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The segment that starts at the checkpoint.
    pub next_segment: u64,
    /// The journal position it holds.
    pub lsn: u64,
    /// Bytes of the checkpoint file.
    pub bytes: u64,
    /// Unix seconds when it was written.
    pub written_at: u64,
    /// Microseconds the ledger lock was held for the copy.
    pub lock_held_us: u64,
    /// Microseconds the whole checkpoint took.
    pub total_us: u64,
}

#[derive(Debug)]
struct CheckpointState {
    newest_segment: u64,
    last: Option<CheckpointInfo>,
}

/// What the bank holds and how its journal runs, for `bank-server stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankStats {
    /// Accounts, closed ones included.
    pub accounts: usize,
    /// Accounts closed by the operator.
    pub closed_accounts: usize,
    /// Unlocks by the operator since the first record.
    pub unlocks: u64,
    /// The position after the last record appended.
    pub journal_lsn: u64,
    /// The segment records are appended to.
    pub segment: u64,
    /// Group-commit counters since this process started.
    pub commit: CommitStats,
    /// The last checkpoint this process wrote.
    pub last_checkpoint: Option<CheckpointInfo>,
    /// The checkpoint loaded at start, by the segment after it and its position.
    pub loaded_checkpoint: Option<(u64, u64)>,
}

/// The ledger and its journal.
pub struct Bank {
    ledger: Mutex<Ledger>,
    journal: Arc<Journal>,
    storage: SharedStorage,
    options: BankOptions,
    checkpoints: Mutex<CheckpointState>,
    checkpoint_requests: Mutex<Option<Receiver<()>>>,
    loaded_checkpoint: Option<(u64, u64)>,
    dir_lock: Option<(File, PathBuf)>,
    unknown_names: Mutex<UnknownNames>,
}

impl std::fmt::Debug for Bank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bank")
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

/// Takes the data directory's lock (creating the directory, mode 0700, if needed), so a
/// second server on the same directory is refused. Held until the file is dropped.
pub fn lock_data_dir(data_dir: &Path) -> Result<File, JournalError> {
    crate::identity::create_private_dir(data_dir)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(data_dir.join(LOCK_FILE_NAME))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Locked(data_dir.display().to_string())),
        Err(std::fs::TryLockError::Error(err)) => Err(err.into()),
    }
}

/// What a money request did in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStep {
    /// Refused by a rule that records nothing (the id stays free).
    Refused,
    /// A repeated id with the same contents: nothing new; the first outcome is at `lsn`.
    Repeat {
        /// Where the first outcome was recorded.
        lsn: u64,
    },
    /// A new record was appended (an applied transaction or a recorded refusal).
    Appended {
        /// Its position.
        lsn: u64,
        /// Its size in the journal, framing included (0 unless measured).
        record_bytes: usize,
    },
}

impl Bank {
    /// Opens the data directory with the default options and a commit thread.
    pub fn open(data_dir: &Path) -> Result<(Self, RecoveryReport), JournalError> {
        Self::open_with(data_dir, BankOptions::default())
    }

    /// Opens the data directory: takes its lock, recovers (see [`recovery`]) and starts the
    /// commit thread.
    pub fn open_with(data_dir: &Path, options: BankOptions) -> Result<(Self, RecoveryReport), JournalError> {
        let lock = lock_data_dir(data_dir)?;
        let storage: SharedStorage = Arc::new(DirStorage::new(data_dir));
        let mode = CommitMode::Thread {
            stats_path: Some(data_dir.join("commit_stats")),
        };
        let (mut bank, report) = Self::open_storage(storage, options, mode)?;
        bank.dir_lock = Some((lock, data_dir.to_path_buf()));
        Ok((bank, report))
    }

    /// Opens a bank on any storage (the simulated disk in tests). The caller keeps other
    /// processes away from it.
    pub fn open_storage(
        storage: SharedStorage,
        options: BankOptions,
        mode: CommitMode,
    ) -> Result<(Self, RecoveryReport), JournalError> {
        let recovered = recovery::recover(storage.as_ref(), options.retention, now_unix_secs())?;
        let (stats_path, threaded) = match mode {
            CommitMode::Thread { stats_path } => (stats_path, true),
            CommitMode::Manual => (None, false),
        };
        let setup = WriterSetup {
            file: recovered.file,
            segment: recovered.segment,
            offset: recovered.end_offset,
            end: recovered.end,
            records_in_segment: recovered.records_in_segment,
            preallocate_bytes: options.preallocate_bytes,
            checkpoint_every_records: options.checkpoint_every_records,
            exit_on_failure: threaded,
            stats_path,
        };
        let journal = if threaded {
            Journal::start(setup)
        } else {
            Journal::manual(setup)
        };
        let (sender, receiver) = mpsc::sync_channel(1);
        journal.on_checkpoint_wanted(Box::new(move || {
            let _ = sender.try_send(());
        }));
        let bank = Self {
            ledger: Mutex::new(recovered.ledger),
            journal,
            storage,
            options,
            checkpoints: Mutex::new(CheckpointState {
                newest_segment: recovered.segment,
                last: None,
            }),
            checkpoint_requests: Mutex::new(Some(receiver)),
            loaded_checkpoint: recovered.report.checkpoint,
            dir_lock: None,
            unknown_names: Mutex::new(UnknownNames::default()),
        };
        Ok((bank, recovered.report))
    }

    /// The data directory whose lock this bank holds (`None` on other storage). Only its
    /// holder may create or replace files a live server owns there, such as the admin socket.
    pub fn locked_dir(&self) -> Option<&Path> {
        self.dir_lock.as_ref().map(|(_, dir)| dir.as_path())
    }

    /// The channel on which the journal asks for a checkpoint (every
    /// `checkpoint_every_records` records); the server's checkpoint thread takes it once.
    pub fn take_checkpoint_requests(&self) -> Option<Receiver<()>> {
        self.checkpoint_requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// Writes a checkpoint now and starts a new segment after it (see the module doc).
    pub fn checkpoint(&self) -> Result<CheckpointInfo, JournalError> {
        let started = Instant::now();
        let mut state = self.checkpoints.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let number = state.newest_segment + 1;
        let name = journal::segment_name(number);
        match self.storage.remove(&name) {
            // A file left by a checkpoint that failed before it rotated: never part of the log.
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err.into()),
        }
        let file = self.storage.create(&name)?;
        commit::preallocate(
            file.as_ref(),
            0,
            self.options.preallocate_bytes.max(journal::SECTOR_BYTES),
        )?;
        self.storage.sync_dir()?;
        let locked = Instant::now();
        let (position, snapshot): (Position, Vec<u8>) = {
            let ledger = self.lock();
            (self.journal.rotate(file, number), snapshot::encode_unordered(&ledger))
        };
        let lock_held_us = micros(locked.elapsed());
        state.newest_segment = number;
        self.journal.wait_durable(position.lsn)?;
        // The switch itself must be done before another checkpoint may rotate again.
        self.journal.wait_switched()?;
        let written_at = now_unix_secs();
        let checkpoint = Checkpoint {
            next_segment: number,
            position,
            written_at,
            snapshot,
        };
        checkpoint::write(self.storage.as_ref(), &checkpoint)?;
        let info = CheckpointInfo {
            next_segment: number,
            lsn: position.lsn,
            bytes: checkpoint.snapshot.len() as u64,
            written_at,
            lock_held_us,
            total_us: micros(started.elapsed()),
        };
        state.last = Some(info);
        Ok(info)
    }

    /// The last checkpoint this process wrote.
    pub fn last_checkpoint(&self) -> Option<CheckpointInfo> {
        self.checkpoints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .last
    }

    /// Manual commit mode: writes the pending batch (or rotation), if any.
    pub fn commit_once(&self) -> Result<bool, JournalError> {
        self.journal.commit_once()
    }

    /// The position after the last record (what the ledger shows).
    pub fn position(&self) -> Position {
        self.journal.appended()
    }

    /// The retention of transaction ids in force.
    pub fn options(&self) -> BankOptions {
        self.options
    }

    /// Transaction ids remembered now.
    pub fn remembered_txids(&self) -> usize {
        self.lock().remembered_txids()
    }

    /// The ledger encoded as a checkpoint holds it (tests compare states with it).
    pub fn snapshot(&self) -> Vec<u8> {
        snapshot::encode(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies and appends `event` under the held ledger lock; returns its journal position.
    fn record(&self, ledger: &mut Ledger, event: &Event) -> u64 {
        let lsn = self.journal.appended_lsn() + 1;
        ledger.apply(event, lsn).expect("decided events always apply");
        let appended = self.journal.append(event);
        assert_eq!(appended, lsn, "appends happen only under the ledger lock");
        lsn
    }

    /// Group-commit counters.
    pub fn commit_stats(&self) -> CommitStats {
        self.journal.stats()
    }

    /// Whether an account called `name` was ever opened (closed ones included: a name is
    /// never given twice).
    pub fn account_exists(&self, name: &str) -> bool {
        self.lock().account(name).is_some()
    }

    /// Runs a deposit, withdrawal or transfer; returns the sender's balance afterwards.
    pub fn transact(&self, request: TxRequest<'_>, now: u64) -> Result<Ruled<u64>, JournalError> {
        let (outcome, lsn) = self.transact_deferred(request, now);
        self.journal.wait_durable(lsn)?;
        Ok(outcome)
    }

    /// Decides, applies and appends a transaction without waiting for the disk: returns the
    /// outcome and the journal position that must be durable ([`Bank::wait_durable`])
    /// before anyone is told it. The simulated-disk tests use it to put several
    /// transactions in one batch.
    pub fn transact_deferred(&self, request: TxRequest<'_>, now: u64) -> (Ruled<u64>, u64) {
        let (outcome, step) = self.transact_step(request, now, false);
        let lsn = match step {
            TxStep::Refused => 0,
            TxStep::Repeat { lsn } | TxStep::Appended { lsn, .. } => lsn,
        };
        (outcome, lsn)
    }

    /// [`Bank::transact_deferred`], saying what happened in the journal (for `--trace`);
    /// `measure` also works out the record's size (an extra encoding, so only when traced).
    pub fn transact_step(&self, request: TxRequest<'_>, now: u64, measure: bool) -> (Ruled<u64>, TxStep) {
        let mut ledger = self.lock();
        match ledger.decide_transaction(request, now) {
            TxDecision::Invalid(code) => (Err(code), TxStep::Refused),
            TxDecision::Repeat { outcome, lsn } => (outcome, TxStep::Repeat { lsn }),
            TxDecision::Record(event) => {
                let lsn = self.record(&mut ledger, &event);
                let record_bytes = if measure {
                    event.encode().len() + super::journal::RECORD_OVERHEAD_BYTES
                } else {
                    0
                };
                let Event::Transaction { refused, .. } = &event else {
                    unreachable!("a transaction event")
                };
                let balance = ledger.account(request.user).map_or(0, |account| account.balance_cents);
                (refused.map_or(Ok(balance), Err), TxStep::Appended { lsn, record_bytes })
            }
        }
    }

    /// How many records the batch that made `lsn` durable held, if known (for `--trace`).
    pub fn batch_records_covering(&self, lsn: u64) -> Option<u32> {
        self.journal.batch_records_covering(lsn)
    }

    /// Blocks until every record up to `lsn` is durable.
    pub fn wait_durable(&self, lsn: u64) -> Result<(), JournalError> {
        self.journal.wait_durable(lsn)
    }

    /// Whether every record up to `lsn` is durable.
    pub fn is_durable(&self, lsn: u64) -> bool {
        self.journal.is_durable(lsn)
    }

    /// Reads from an account under the lock, then waits until what was read is durable: up
    /// to the last event that changed this account (all earlier events are durable first).
    fn durable_read<T>(
        &self,
        name: &str,
        read: impl FnOnce(&super::ledger::Account) -> T,
    ) -> Result<Ruled<T>, JournalError> {
        let (value, visible) = self.read_deferred(name, read);
        self.journal.wait_durable(visible)?;
        Ok(value)
    }

    /// Reads from an account under the lock without waiting: returns the value and the
    /// journal position that must be durable before anyone is told it (0 for a refusal).
    fn read_deferred<T>(&self, name: &str, read: impl FnOnce(&super::ledger::Account) -> T) -> (Ruled<T>, u64) {
        let ledger = self.lock();
        match ledger.account(name).filter(|account| !account.closed) {
            Some(account) => (Ok(read(account)), account.last_lsn),
            None => (Err(ErrorCode::NotAuthenticated), 0),
        }
    }

    /// The balance of `name`, once durable.
    pub fn balance(&self, name: &str) -> Result<Ruled<u64>, JournalError> {
        self.durable_read(name, |account| account.balance_cents)
    }

    /// The balance of `name` and the journal position that must be durable before it is
    /// shown (as [`Bank::transact_deferred`]).
    pub fn balance_deferred(&self, name: &str) -> (Ruled<u64>, u64) {
        self.read_deferred(name, |account| account.balance_cents)
    }

    /// The recent history of `name`, once durable.
    pub fn history(&self, name: &str) -> Result<Ruled<Vec<HistoryEntry>>, JournalError> {
        self.durable_read(name, |account| account.history.iter().cloned().collect())
    }

    /// The recent history of `name` and the journal position that must be durable before it
    /// is shown.
    pub fn history_deferred(&self, name: &str) -> (Ruled<Vec<HistoryEntry>>, u64) {
        self.read_deferred(name, |account| account.history.iter().cloned().collect())
    }

    /// Opens an account. Refuses an existing name.
    pub fn open_account(
        &self,
        name: &str,
        password: PasswordRecord,
        opening_cents: u64,
        now: u64,
    ) -> Result<Result<(), &'static str>, JournalError> {
        let mut ledger = self.lock();
        match ledger.account(name) {
            Some(account) if account.closed => {
                return Ok(Err("an account with that name was closed; a name is never given twice"));
            }
            Some(_) => return Ok(Err("an account with that name already exists")),
            None => {}
        }
        if opening_cents > crate::limits::MAX_BALANCE_CENTS {
            return Ok(Err("the opening balance is over the maximum balance"));
        }
        let event = Event::AccountOpened {
            at: now,
            name: name.to_string(),
            password,
            opening_cents,
        };
        let lsn = self.record(&mut ledger, &event);
        drop(ledger);
        self.journal.wait_durable(lsn)?;
        Ok(Ok(()))
    }

    /// Unlocks `name` (the operator's `unlock`): lifts its lock and clears its failed logins,
    /// once durable.
    pub fn unlock(&self, name: &str, now: u64) -> Result<Result<(), OperatorRefusal>, JournalError> {
        self.operator_action(|ledger| ledger.decide_unlock(name, now))
    }

    /// Closes `name` (the operator's `close-account`), once durable. Refused while the
    /// balance is not zero: the check and the close happen under one lock acquisition, so no
    /// deposit or transfer can slip in between.
    pub fn close_account(&self, name: &str, now: u64) -> Result<Result<(), OperatorRefusal>, JournalError> {
        self.operator_action(|ledger| ledger.decide_close(name, now))
    }

    fn operator_action(
        &self,
        decide: impl FnOnce(&Ledger) -> Result<Event, OperatorRefusal>,
    ) -> Result<Result<(), OperatorRefusal>, JournalError> {
        let mut ledger = self.lock();
        let event = match decide(&ledger) {
            Ok(event) => event,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let lsn = self.record(&mut ledger, &event);
        drop(ledger);
        self.journal.wait_durable(lsn)?;
        Ok(Ok(()))
    }

    /// Counts for `bank-server stats`.
    pub fn stats(&self) -> BankStats {
        let (accounts, closed_accounts, unlocks) = {
            let ledger = self.lock();
            (ledger.account_count(), ledger.closed_count(), ledger.unlocks())
        };
        let checkpoints = self.checkpoints.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        BankStats {
            accounts,
            closed_accounts,
            unlocks,
            journal_lsn: self.journal.appended_lsn(),
            segment: checkpoints.newest_segment,
            commit: self.journal.stats(),
            last_checkpoint: checkpoints.last,
            loaded_checkpoint: self.loaded_checkpoint,
        }
    }

    /// Stops every change for the rest of this process, for a clean stop: writes a
    /// checkpoint (so the next start replays next to nothing), then takes the ledger lock and
    /// never gives it back (every later operation waits forever), and returns once everything
    /// appended is durable. The caller exits the process next; nothing is left half written.
    pub fn freeze(&self) -> Result<u64, JournalError> {
        if self.journal.records_in_segment() > 0 {
            // A failed checkpoint costs only a longer replay at the next start: stop anyway.
            let _ = self.checkpoint();
        }
        let checkpoints = self.checkpoints.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let ledger = self.lock();
        let lsn = self.journal.appended_lsn();
        std::mem::forget(ledger);
        std::mem::forget(checkpoints);
        self.journal.wait_durable(lsn)?;
        Ok(lsn)
    }

    /// Writes a checkpoint if the newest segment holds records (so the next start replays
    /// nothing), syncs what is pending, stops the commit thread and releases the data
    /// directory's lock, so another `Bank` (or a server process) can open it.
    pub fn close(self) -> Result<(), JournalError> {
        let result = if self.journal.records_in_segment() > 0 {
            self.checkpoint().map(|_| ())
        } else {
            Ok(())
        };
        self.journal.shutdown();
        result
    }

    /// Number of accounts.
    pub fn account_count(&self) -> usize {
        self.lock().account_count()
    }

    /// Money in and out, and the sum of balances.
    pub fn totals(&self) -> (Totals, u128) {
        let ledger = self.lock();
        (ledger.totals(), ledger.sum_of_balances())
    }
}

/// Authenticator apps (TOTP): enrolment and removal by the operator, and the second login
/// step of an enrolled account. Each decision is made and journaled under one acquisition
/// of the ledger lock, so two logins racing with the same code cannot both use its step.
impl Bank {
    /// Enrols `secret` for `name` (the operator's `enrol-totp`) if `code` is the app's code
    /// at `totp_now`; durable before it returns. A wrong code changes nothing.
    pub fn enrol_totp(
        &self,
        name: &str,
        secret: &crate::totp::TotpSecret,
        code: &str,
        totp_now: u64,
        now: u64,
    ) -> Result<Result<(), OperatorRefusal>, JournalError> {
        self.operator_action(|ledger| ledger.decide_totp_enrolment(name, secret, code, totp_now, now))
    }

    /// Removes the authenticator app of `name` (the operator's `remove-totp`): it is back to
    /// console codes, once durable.
    pub fn remove_totp(&self, name: &str, now: u64) -> Result<Result<(), OperatorRefusal>, JournalError> {
        self.operator_action(|ledger| ledger.decide_totp_removal(name, now))
    }

    /// Whether `name` is an open account with an authenticator app.
    pub fn uses_totp(&self, name: &str) -> bool {
        self.lock()
            .account(name)
            .is_some_and(|account| !account.closed && account.totp.is_some())
    }

    /// Which code the logins of `name` take; `None` for an unknown or closed account.
    pub fn login_code_kind(&self, name: &str) -> Option<crate::message::CodeKind> {
        use crate::message::CodeKind;
        let ledger = self.lock();
        let account = ledger.account(name).filter(|account| !account.closed)?;
        Some(if account.totp.is_some() {
            CodeKind::Authenticator
        } else {
            CodeKind::Device
        })
    }

    /// Completes the login of `name` with an authenticator `code` at `totp_now`: records the
    /// code's step as used and returns the balance, once durable. A refusal records nothing
    /// (the caller counts an `otp_invalid` as a failed login).
    pub fn totp_login(&self, name: &str, code: &str, totp_now: u64, now: u64) -> Result<Ruled<u64>, JournalError> {
        let mut ledger = self.lock();
        let event = match ledger.decide_totp_login(name, code, totp_now, now) {
            Ok(event) => event,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let lsn = self.record(&mut ledger, &event);
        let balance = ledger.account(name).map_or(0, |account| account.balance_cents);
        drop(ledger);
        self.journal.wait_durable(lsn)?;
        Ok(Ok(balance))
    }
}

fn micros(elapsed: std::time::Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// The reply path's view of the bank ([`super::reply`]).
impl Durability for Bank {
    fn is_durable(&self, lsn: u64) -> bool {
        self.journal.is_durable(lsn)
    }

    fn send_when_durable(&self, reply: QueuedReply) -> Handed {
        self.journal.send_when_durable(reply)
    }

    fn commit_unclaimed(&self) {
        self.journal.commit_unclaimed();
    }

    fn batch_records_covering(&self, lsn: u64) -> Option<u32> {
        self.journal.batch_records_covering(lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::auth;

    #[test]
    fn close_makes_appends_durable_and_releases_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (bank, _) = Bank::open(dir.path()).unwrap();
        assert!(matches!(Bank::open(dir.path()), Err(JournalError::Locked(_))));
        let record = auth::hash_password("password1", 1_000);
        bank.open_account("alice", record, 700, now_unix_secs())
            .unwrap()
            .unwrap();
        bank.close().unwrap();
        let (reopened, report) = Bank::open(dir.path()).unwrap();
        assert_eq!(report.end_lsn, 1);
        assert_eq!(report.records_replayed, 0, "close wrote a checkpoint");
        assert_eq!(reopened.balance("alice").unwrap(), Ok(700));
    }
}
