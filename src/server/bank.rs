//! The bank: the ledger behind one mutex, made durable by the journal.
//!
//! Every operation follows one pattern: lock the ledger, decide, apply the event and append
//! it to the journal (memory only), unlock, then wait until the journal has synced that
//! record, and only then answer. Reads wait until what they show is durable. So the ledger
//! lock is never held across a disk sync or socket I/O, and nothing acknowledged can be lost.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::commit::{CommitStats, Journal};
use super::events::{Event, PasswordRecord};
use super::journal::{self, ScanReport};
use super::ledger::{Ledger, Totals, TxDecision, TxRequest};
use crate::error::{ErrorCode, JournalError};
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

/// The ledger and its journal.
pub struct Bank {
    ledger: Mutex<Ledger>,
    journal: Arc<Journal>,
}

impl std::fmt::Debug for Bank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bank")
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

/// Replays a journal file into a fresh ledger (used by start-up and by `verify`).
pub fn replay(file: &File) -> Result<(Ledger, ScanReport), JournalError> {
    let mut ledger = Ledger::default();
    let mut lsn = 0;
    let report = journal::scan(file, |_, payload| {
        let event = Event::decode(payload).map_err(|err| format!("record does not parse: {err}"))?;
        lsn += 1;
        ledger
            .apply(&event, lsn)
            .map_err(|reason| format!("record breaks a ledger rule: {reason}"))
    })?;
    Ok((ledger, report))
}

impl Bank {
    /// Opens the data directory: locks and replays the journal, cuts a torn tail, and
    /// starts the commit thread.
    pub fn open(data_dir: &Path) -> Result<(Self, ScanReport), JournalError> {
        let file = journal::open_locked(data_dir)?;
        let (ledger, report) = replay(&file)?;
        if let Some(offset) = report.torn_tail_at {
            journal::truncate_at(&file, offset)?;
        }
        let journal = Journal::start(file, &report, Some(data_dir.join("commit_stats")));
        Ok((
            Self {
                ledger: Mutex::new(ledger),
                journal,
            },
            report,
        ))
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

    /// The stored password of `name`, if the account exists.
    pub fn password_record(&self, name: &str) -> Option<PasswordRecord> {
        self.lock().account(name).map(|account| account.password.clone())
    }

    /// Whether `name` exists and is locked at `now`.
    pub fn is_locked(&self, name: &str, now: u64) -> bool {
        self.lock().account(name).is_some_and(|account| account.is_locked(now))
    }

    /// Records a failed login (and a lock when it reaches the threshold). Returns whether
    /// the account is locked afterwards.
    pub fn login_failed(&self, name: &str, now: u64) -> Result<bool, JournalError> {
        let mut ledger = self.lock();
        let (events, locked) = ledger.decide_login_failure(name, now);
        let mut last = None;
        for event in &events {
            last = Some(self.record(&mut ledger, event));
        }
        drop(ledger);
        if let Some(lsn) = last {
            self.journal.wait_durable(lsn)?;
        }
        Ok(locked)
    }

    /// Records a completed login unless the account is locked; returns the balance.
    pub fn login_succeeded(&self, name: &str, now: u64) -> Result<Ruled<u64>, JournalError> {
        let mut ledger = self.lock();
        let Some(account) = ledger.account(name) else {
            return Ok(Err(ErrorCode::InvalidCredentials));
        };
        if account.is_locked(now) {
            return Ok(Err(ErrorCode::AccountLocked));
        }
        let balance = account.balance_cents;
        let lsn = self.record(
            &mut ledger,
            &Event::LoginSucceeded {
                at: now,
                name: name.to_string(),
            },
        );
        drop(ledger);
        self.journal.wait_durable(lsn)?;
        Ok(Ok(balance))
    }

    /// Runs a deposit, withdrawal or transfer; returns the sender's balance afterwards.
    pub fn transact(&self, request: TxRequest<'_>, now: u64) -> Result<Ruled<u64>, JournalError> {
        let mut ledger = self.lock();
        let (outcome, lsn) = match ledger.decide_transaction(request, now) {
            TxDecision::Invalid(code) => return Ok(Err(code)),
            TxDecision::Repeat { outcome, lsn } => (outcome, lsn),
            TxDecision::Record(event) => {
                let lsn = self.record(&mut ledger, &event);
                let Event::Transaction { refused, .. } = &event else {
                    unreachable!("a transaction event")
                };
                let balance = ledger.account(request.user).map_or(0, |account| account.balance_cents);
                (refused.map_or(Ok(balance), Err), lsn)
            }
        };
        drop(ledger);
        self.journal.wait_durable(lsn)?;
        Ok(outcome)
    }

    /// Reads from an account under the lock, then waits until what was read is durable: up
    /// to the last event that changed this account (all earlier events are durable first).
    fn durable_read<T>(
        &self,
        name: &str,
        read: impl FnOnce(&super::ledger::Account) -> T,
    ) -> Result<Ruled<T>, JournalError> {
        let ledger = self.lock();
        let Some(account) = ledger.account(name) else {
            return Ok(Err(ErrorCode::NotAuthenticated));
        };
        let value = read(account);
        let visible = account.last_lsn;
        drop(ledger);
        self.journal.wait_durable(visible)?;
        Ok(Ok(value))
    }

    /// The balance of `name`, once durable.
    pub fn balance(&self, name: &str) -> Result<Ruled<u64>, JournalError> {
        self.durable_read(name, |account| account.balance_cents)
    }

    /// The recent history of `name`, once durable.
    pub fn history(&self, name: &str) -> Result<Ruled<Vec<HistoryEntry>>, JournalError> {
        self.durable_read(name, |account| account.history.iter().cloned().collect())
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
        if ledger.account(name).is_some() {
            return Ok(Err("an account with that name already exists"));
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

    /// Syncs what is pending, stops the commit thread and releases the journal's lock, so
    /// another `Bank` (or a server process) can open the same directory.
    pub fn close(self) {
        self.journal.shutdown();
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
        bank.close();
        let (reopened, report) = Bank::open(dir.path()).unwrap();
        assert_eq!(report.records, 1);
        assert_eq!(reopened.balance("alice").unwrap(), Ok(700));
    }
}
