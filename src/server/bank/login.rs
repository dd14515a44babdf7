//! The bank's side of a login: the stored password, and the judgement of a checked
//! password under one lock acquisition.
//!
//! Invariants:
//! - *Exact lockout.* [`Bank::judge_password`] checks the lock and records the outcome in one
//!   critical section (the ledger's for accounts, the unknown names' table's for the
//!   rest), so at most [`crate::limits::LOCKOUT_THRESHOLD`] passwords are judged per lock
//!   window however many checks ran in parallel, and a code is issued only if the account was
//!   unlocked at that moment.
//! - *No account oracle.* A name that no open account has takes the same steps as a wrong
//!   password for a real one: a PBKDF2 check (against a dummy record, by the caller), a
//!   failure counted by the same rule ([`super::super::unknown_names`]), one journal record
//!   appended and a wait for its sync, and the same answers, locked included.
//! - Closed accounts are treated like names that were never opened.

use super::Bank;
use crate::error::{ErrorCode, JournalError};
use crate::server::events::{Event, PasswordRecord};

/// What came of a checked password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// The name was locked when judged: nothing was checked against it, nothing counted.
    Locked,
    /// The password was wrong (or the name unknown); the failure is durable. `locked`: this
    /// failure started a lock.
    Failed {
        /// Whether this failure locked the name.
        locked: bool,
    },
    /// The password was right and the account unlocked at that moment: issue a code.
    Accepted,
}

impl Bank {
    /// The stored password of `name`, if an open account has that name.
    pub fn password_record(&self, name: &str) -> Option<PasswordRecord> {
        self.lock()
            .account(name)
            .filter(|account| !account.closed)
            .map(|account| account.password.clone())
    }

    /// Whether `name` exists and is locked at `now`.
    pub fn is_locked(&self, name: &str, now: u64) -> bool {
        self.lock().account(name).is_some_and(|account| account.is_locked(now))
    }

    /// Judges a password already checked by the caller: `checked_real` says whether it was
    /// checked against `name`'s stored record (else against the dummy record, the name
    /// having no open account), `password_ok` whether it matched. Checks the lock and
    /// records the outcome under one lock acquisition (the ledger's for an account, the
    /// unknown names' table's otherwise, so a full table's clean-up never holds up
    /// transactions); waits until a failure is durable before answering, for known and
    /// unknown names alike.
    pub fn judge_password(
        &self,
        name: &str,
        checked_real: bool,
        password_ok: bool,
        now: u64,
    ) -> Result<Judgement, JournalError> {
        let lockout_secs = self.options.lockout_secs;
        let mut ledger = self.lock();
        let account = ledger.account(name).filter(|account| checked_real && !account.closed);
        let (lsn, locked) = match account {
            Some(account) if account.is_locked(now) => return Ok(Judgement::Locked),
            Some(_) if password_ok => return Ok(Judgement::Accepted),
            Some(_) => {
                let (events, locked) = ledger.decide_login_failure(name, now, lockout_secs);
                let mut last = 0;
                for event in &events {
                    last = self.record(&mut ledger, event);
                }
                (last, locked)
            }
            None => {
                // The unknown names' table has its own lock, so its judgement is exact
                // without the ledger's; the ledger lock is taken again only to append.
                drop(ledger);
                let locked = {
                    let mut unknown = self
                        .unknown_names
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if unknown.is_locked(name, now) {
                        return Ok(Judgement::Locked);
                    }
                    unknown.record_failure(name, now, lockout_secs)
                };
                ledger = self.lock();
                let lsn = self.record(&mut ledger, &Event::UnknownNameLoginFailed { at: now });
                (lsn, locked)
            }
        };
        drop(ledger);
        self.journal.wait_durable(lsn)?;
        Ok(Judgement::Failed { locked })
    }

    /// Records a wrong one-time code for `name` (and a lock when it reaches the threshold).
    /// Returns whether the account is locked afterwards.
    pub fn login_failed(&self, name: &str, now: u64) -> Result<bool, JournalError> {
        let mut ledger = self.lock();
        let (events, locked) = ledger.decide_login_failure(name, now, self.options.lockout_secs);
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
    pub fn login_succeeded(&self, name: &str, now: u64) -> Result<super::Ruled<u64>, JournalError> {
        let mut ledger = self.lock();
        let Some(account) = ledger.account(name).filter(|account| !account.closed) else {
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
}
