//! The ledger: accounts, balances, history, login counters and seen transaction ids, in
//! memory.
//!
//! Invariants: the ledger changes only through [`Ledger::apply`] of a journal [`Event`], so
//! live operation and replay agree; every decision (`decide_*`) reads the state and returns
//! the event to record, and the caller applies and journals it under the *same* lock
//! acquisition, so check and change are atomic; no balance ever goes below zero or above
//! [`MAX_BALANCE_CENTS`]; the sum of balances equals deposits − withdrawals (checked by
//! `bank-server verify`).
//!
//! Operator actions are events too ([`Ledger::decide_unlock`], [`Ledger::decide_close`]):
//! a closed account stays in the ledger (its name is never reused, its history is kept) but
//! is inert — its balance is zero and stays zero, it cannot log in, send or receive money,
//! and replay refuses any event that would change it.
//!
//! Transaction ids are remembered per account with their outcome, but only for a retention
//! window: [`super::retention`] holds the clock, the time check made before an id is looked
//! up, and the index that forgets old ids. Its invariant is the one idempotency rests on: an
//! id is forgotten only once it is below `forgotten_before_ms`, and every id below that is
//! refused, so no id is ever applied twice.

use std::collections::{HashMap, VecDeque};

use super::events::{Event, PasswordRecord, TxKind};
use super::retention::TxidMemory;
pub use super::retention::TxidRetention;
use crate::error::ErrorCode;
use crate::limits::{LOCKOUT_THRESHOLD, MAX_BALANCE_CENTS, MAX_HISTORY_ENTRIES, MAX_TRANSACTION_CENTS};
use crate::message::{EntryKind, HistoryEntry, TxId};
use crate::totp::{self, Enrolment, TotpSecret};

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The stored password.
    pub password: PasswordRecord,
    /// Balance in cents.
    pub balance_cents: u64,
    /// Failed logins since the last success or lock.
    pub consecutive_failures: u32,
    /// Unix seconds until which the account is locked (0 or past: not locked).
    pub locked_until: u64,
    /// The most recent entries, oldest first, at most [`MAX_HISTORY_ENTRIES`].
    pub history: VecDeque<HistoryEntry>,
    /// Journal position of the last event that changed this account: a read of the account
    /// is durable once the journal is durable up to here.
    pub last_lsn: u64,
    /// Transaction ids this account has used within the retention window, with what came
    /// of them.
    pub(super) seen: HashMap<TxId, SeenTransaction>,
    /// Closed by the operator: no login, no money in or out, ever again.
    pub closed: bool,
    /// The authenticator app enrolled by the operator, if any: then the second login step
    /// takes its codes instead of console codes.
    pub totp: Option<Enrolment>,
}

/// Whether one more failed login, after `consecutive_failures`, locks the account. The
/// lock then clears the count (see [`Ledger::apply`]); names that no account has are
/// counted by the same rule ([`super::unknown_names`]).
pub fn failure_locks(consecutive_failures: u32) -> bool {
    consecutive_failures.saturating_add(1) >= LOCKOUT_THRESHOLD
}

impl Account {
    /// Whether logins are refused at `now` (Unix seconds).
    pub fn is_locked(&self, now: u64) -> bool {
        now < self.locked_until
    }
}

/// Why the ledger refused an operator's action; nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorRefusal {
    /// No account has this name.
    NoSuchAccount(String),
    /// The account was closed earlier.
    Closed(String),
    /// `unlock` of an account that is neither locked nor has failed logins counted.
    NotLocked(String),
    /// `close-account` of an account that still holds money (cents).
    NotEmpty(String, u64),
    /// `remove-totp` of an account that uses console codes.
    NoAuthenticator(String),
    /// `enrol-totp` with a code that does not match the new secret now.
    WrongTotpCode(String),
}

impl std::fmt::Display for OperatorRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSuchAccount(name) => write!(f, "no account is named {name}"),
            Self::Closed(name) => write!(f, "the account {name} is closed"),
            Self::NotLocked(name) => write!(f, "{name} is not locked and has no failed logins; nothing to do"),
            Self::NotEmpty(name, cents) => write!(
                f,
                "{name} still holds {}: only an empty account can be closed (the customer withdraws \
                 or transfers the money first)",
                crate::money::format_cents(*cents)
            ),
            Self::NoAuthenticator(name) => write!(f, "{name} has no authenticator app: it uses console codes"),
            Self::WrongTotpCode(name) => write!(
                f,
                "that code does not match the new secret for {name} now; nothing was enrolled (check \
                 that the app's clock is right, or type the next code it shows)"
            ),
        }
    }
}

/// What a transaction id was first used for, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeenTransaction {
    /// What was asked.
    pub(super) kind: TxKind,
    /// Amount in cents.
    pub(super) amount_cents: u64,
    /// Recipient of a transfer; empty otherwise.
    pub(super) counterparty: String,
    /// The sender's balance after, or the refusal.
    pub(super) outcome: Result<u64, ErrorCode>,
    /// Journal position of the record.
    pub(super) lsn: u64,
}

/// A transaction request, as checked by the ledger.
#[derive(Debug, Clone, Copy)]
pub struct TxRequest<'a> {
    /// The logged-in account that asks.
    pub user: &'a str,
    /// Client-chosen id.
    pub txid: TxId,
    /// What is asked.
    pub kind: TxKind,
    /// Amount in cents.
    pub amount_cents: u64,
    /// Recipient of a transfer; empty otherwise.
    pub counterparty: &'a str,
}

/// What the ledger decided about a transaction request.
#[derive(Debug)]
pub enum TxDecision {
    /// Refused before the id is looked up (by the request's shape, or because the id's time
    /// is outside the retention window); nothing is recorded and the id is not consumed.
    Invalid(ErrorCode),
    /// The id was seen before with the same contents: this is the original outcome, recorded
    /// at journal position `lsn` (the reply must wait until that is durable).
    Repeat {
        /// The original outcome: the balance after, or the refusal.
        outcome: Result<u64, ErrorCode>,
        /// Journal position of the original record.
        lsn: u64,
    },
    /// A new transaction: record this event (it may record a refusal).
    Record(Event),
}

/// Totals for the invariant check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// All money that came in (opening balances and deposits), in cents.
    pub deposited_cents: u128,
    /// All money that went out (withdrawals), in cents.
    pub withdrawn_cents: u128,
}

/// The whole in-memory state. `Ledger::default()` remembers ids for the default
/// [`TxidRetention`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    accounts: HashMap<String, Account>,
    totals: Totals,
    txids: TxidMemory,
    unlocks: u64,
}

fn push_history(account: &mut Account, entry: HistoryEntry) {
    if account.history.len() == MAX_HISTORY_ENTRIES {
        account.history.pop_front();
    }
    account.history.push_back(entry);
}

impl Ledger {
    /// An empty ledger that remembers transaction ids for `retention`.
    pub fn with_retention(retention: TxidRetention) -> Self {
        Self {
            txids: TxidMemory::new(retention),
            ..Self::default()
        }
    }

    /// A ledger rebuilt from its parts (a snapshot, whose decoder checks each field's
    /// range). Refuses, naming the field, parts that break an invariant between fields: a
    /// sum of balances other than deposits − withdrawals, an id recorded after its
    /// account's last change, or the id memory's own rules ([`TxidMemory::restore`]). Then
    /// forgets what `retention` does not keep at the restored clock.
    pub(super) fn from_parts(
        accounts: HashMap<String, Account>,
        totals: Totals,
        unlocks: u64,
        clock_ms: u64,
        forgotten_before_ms: u64,
        retention: TxidRetention,
    ) -> Result<Self, &'static str> {
        let mut ids = Vec::new();
        for (name, account) in &accounts {
            if account.closed && account.balance_cents != 0 {
                return Err("closed");
            }
            for (txid, seen) in &account.seen {
                if seen.lsn > account.last_lsn {
                    return Err("lsn");
                }
                ids.push((name.clone(), *txid));
            }
        }
        let mut ledger = Self {
            accounts,
            totals,
            txids: TxidMemory::restore(retention, clock_ms, forgotten_before_ms, ids)?,
            unlocks,
        };
        let net = totals.deposited_cents.checked_sub(totals.withdrawn_cents);
        if net != Some(ledger.sum_of_balances()) {
            return Err("totals");
        }
        ledger.forget_expired();
        Ok(ledger)
    }

    /// Every account with its name, in no particular order.
    pub(super) fn accounts(&self) -> impl Iterator<Item = (&String, &Account)> {
        self.accounts.iter()
    }

    /// How long transaction ids are remembered.
    pub fn retention(&self) -> TxidRetention {
        self.txids.retention()
    }

    /// Number of transaction ids remembered, over all accounts (bounded by the rate of
    /// transactions times the retention window).
    pub fn remembered_txids(&self) -> usize {
        self.txids.len()
    }

    /// The ledger's clock: the latest event time applied, in Unix milliseconds.
    pub fn clock_ms(&self) -> u64 {
        self.txids.clock_ms()
    }

    /// Ids created before this time (Unix milliseconds) are refused as expired: they may
    /// have been used and forgotten.
    pub fn forgotten_before_ms(&self) -> u64 {
        self.txids.forgotten_before_ms()
    }

    /// The account called `name`.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// Number of accounts, closed ones included.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Number of closed accounts.
    pub fn closed_count(&self) -> usize {
        self.accounts.values().filter(|account| account.closed).count()
    }

    /// Number of unlocks by the operator since the first record.
    pub fn unlocks(&self) -> u64 {
        self.unlocks
    }

    /// Money in and out since the beginning.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Sum of all balances, in cents.
    pub fn sum_of_balances(&self) -> u128 {
        self.accounts
            .values()
            .map(|account| u128::from(account.balance_cents))
            .sum()
    }

    /// Checks a transaction request against the rules and the state at `now` (Unix seconds,
    /// the wall clock). The caller must apply and journal a `Record` event before releasing
    /// the lock it read this under.
    pub fn decide_transaction(&self, request: TxRequest<'_>, now: u64) -> TxDecision {
        if self.accounts.get(request.user).is_none_or(|account| account.closed) {
            // A session of an account closed since it logged in: not recorded.
            return TxDecision::Invalid(ErrorCode::NotAuthenticated);
        }
        if let Some(code) = stateless_check(&request) {
            return TxDecision::Invalid(code);
        }
        if let Some(code) = self.txids.check(&request.txid, now) {
            return TxDecision::Invalid(code);
        }
        let seen = self
            .accounts
            .get(request.user)
            .and_then(|account| account.seen.get(&request.txid));
        if let Some(seen) = seen {
            let same = seen.kind == request.kind
                && seen.amount_cents == request.amount_cents
                && seen.counterparty == request.counterparty;
            return if same {
                TxDecision::Repeat {
                    outcome: seen.outcome,
                    lsn: seen.lsn,
                }
            } else {
                TxDecision::Invalid(ErrorCode::TransactionIdReused)
            };
        }
        let refused = self.stateful_check(&request).err();
        TxDecision::Record(Event::Transaction {
            at: now,
            user: request.user.to_string(),
            txid: request.txid,
            kind: request.kind,
            amount_cents: request.amount_cents,
            counterparty: request.counterparty.to_string(),
            refused,
        })
    }

    fn stateful_check(&self, request: &TxRequest<'_>) -> Result<(), ErrorCode> {
        let sender = self.accounts.get(request.user).ok_or(ErrorCode::NotAuthenticated)?;
        let amount = request.amount_cents;
        match request.kind {
            TxKind::Deposit => credit_check(sender.balance_cents, amount),
            TxKind::Withdrawal => debit_check(sender.balance_cents, amount),
            TxKind::Transfer => {
                // A closed account is refused exactly like a name that was never opened.
                let recipient = self
                    .accounts
                    .get(request.counterparty)
                    .filter(|recipient| !recipient.closed)
                    .ok_or(ErrorCode::UnknownRecipient)?;
                debit_check(sender.balance_cents, amount)?;
                credit_check(recipient.balance_cents, amount)
            }
        }
    }

    /// Applies one event. Returns an error (a description) if the event cannot follow the
    /// current state: live, that is a programmer error; on replay, a damaged journal.
    pub fn apply(&mut self, event: &Event, lsn: u64) -> Result<(), &'static str> {
        match event {
            Event::AccountOpened {
                at,
                name,
                password,
                opening_cents,
            } => {
                if self.accounts.contains_key(name) {
                    return Err("account opened twice");
                }
                if *opening_cents > MAX_BALANCE_CENTS {
                    return Err("opening balance over the maximum");
                }
                let mut account = Account {
                    password: password.clone(),
                    balance_cents: *opening_cents,
                    consecutive_failures: 0,
                    locked_until: 0,
                    history: VecDeque::new(),
                    last_lsn: lsn,
                    seen: HashMap::new(),
                    closed: false,
                    totp: None,
                };
                if *opening_cents > 0 {
                    push_history(
                        &mut account,
                        entry(*at, EntryKind::Opening, *opening_cents, "", *opening_cents),
                    );
                }
                self.totals.deposited_cents += u128::from(*opening_cents);
                self.accounts.insert(name.clone(), account);
            }
            Event::LoginFailed { name, .. } => {
                let account = self.open_account_mut(name).ok_or("login failure for unknown account")?;
                account.consecutive_failures = account.consecutive_failures.saturating_add(1);
                account.last_lsn = lsn;
            }
            Event::AccountLocked { name, until, .. } => {
                let account = self.open_account_mut(name).ok_or("lock of unknown account")?;
                account.locked_until = *until;
                account.consecutive_failures = 0;
                account.last_lsn = lsn;
            }
            Event::LoginSucceeded { name, .. } => {
                let account = self.open_account_mut(name).ok_or("login of unknown account")?;
                account.consecutive_failures = 0;
                account.last_lsn = lsn;
            }
            Event::Transaction { .. } => self.apply_transaction(event, lsn)?,
            Event::AccountUnlocked { at, name } => {
                let account = self.open_account_mut(name).ok_or("unlock of unknown account")?;
                account.locked_until = 0;
                account.consecutive_failures = 0;
                account.last_lsn = lsn;
                let balance = account.balance_cents;
                push_history(account, entry(*at, EntryKind::Unlocked, 0, "", balance));
                self.unlocks += 1;
            }
            Event::AccountClosed { name, .. } => {
                let account = self.open_account_mut(name).ok_or("close of unknown account")?;
                if account.balance_cents != 0 {
                    return Err("close of an account that holds money");
                }
                account.closed = true;
                account.last_lsn = lsn;
            }
            // Written only so the answer takes as long as a real failure (events.rs).
            Event::UnknownNameLoginFailed { .. } => {}
            Event::TotpEnrolled { .. } | Event::TotpRemoved { .. } | Event::TotpLoginSucceeded { .. } => {
                self.apply_totp(event, lsn)?;
            }
        }
        self.advance_clock(event.at());
        Ok(())
    }

    /// The account called `name` unless it is closed (closed accounts take no events).
    fn open_account_mut(&mut self, name: &str) -> Option<&mut Account> {
        self.accounts.get_mut(name).filter(|account| !account.closed)
    }

    /// Moves the clock to `at` (Unix seconds, never backwards) and forgets the ids that
    /// fall out of the retention window.
    fn advance_clock(&mut self, at: u64) {
        self.txids.advance(at);
        self.forget_expired();
    }

    /// Forgets the ids older than the window at the current clock, from the index and from
    /// their accounts.
    fn forget_expired(&mut self) {
        let accounts = &mut self.accounts;
        self.txids.forget_expired(|user, txid| {
            if let Some(account) = accounts.get_mut(user) {
                account.seen.remove(txid);
            }
        });
    }

    fn apply_transaction(&mut self, event: &Event, lsn: u64) -> Result<(), &'static str> {
        let Event::Transaction {
            at,
            user,
            txid,
            kind,
            amount_cents,
            counterparty,
            refused,
        } = event
        else {
            unreachable!("called with a transaction event");
        };
        let sender = self
            .accounts
            .get(user)
            .filter(|sender| !sender.closed)
            .ok_or("transaction of unknown account")?;
        if sender.seen.contains_key(txid) {
            return Err("transaction id recorded twice");
        }
        let request = TxRequest {
            user,
            txid: *txid,
            kind: *kind,
            amount_cents: *amount_cents,
            counterparty,
        };
        let outcome = match refused {
            Some(code) => Err(*code),
            None => {
                if stateless_check(&request).is_some() || self.stateful_check(&request).is_err() {
                    return Err("applied transaction breaks a ledger rule");
                }
                Ok(self.move_money(&request, *at))
            }
        };
        let seen = SeenTransaction {
            kind: *kind,
            amount_cents: *amount_cents,
            counterparty: counterparty.clone(),
            outcome,
            lsn,
        };
        let sender = self.accounts.get_mut(user).expect("checked above");
        sender.seen.insert(*txid, seen);
        sender.last_lsn = lsn;
        self.txids.remember(user, txid);
        if outcome.is_ok() && *kind == TxKind::Transfer {
            self.accounts
                .get_mut(counterparty)
                .expect("checked by the rules")
                .last_lsn = lsn;
        }
        Ok(())
    }

    /// Moves money for a checked request; returns the sender's balance after.
    fn move_money(&mut self, request: &TxRequest<'_>, at: u64) -> u64 {
        let amount = request.amount_cents;
        let sender = self.accounts.get_mut(request.user).expect("checked");
        let (new_balance, kind) = match request.kind {
            TxKind::Deposit => (sender.balance_cents + amount, EntryKind::Deposit),
            TxKind::Withdrawal => (sender.balance_cents - amount, EntryKind::Withdrawal),
            TxKind::Transfer => (sender.balance_cents - amount, EntryKind::TransferOut),
        };
        sender.balance_cents = new_balance;
        push_history(sender, entry(at, kind, amount, request.counterparty, new_balance));
        match request.kind {
            TxKind::Deposit => self.totals.deposited_cents += u128::from(amount),
            TxKind::Withdrawal => self.totals.withdrawn_cents += u128::from(amount),
            TxKind::Transfer => {
                let recipient = self.accounts.get_mut(request.counterparty).expect("checked");
                recipient.balance_cents += amount;
                let recipient_balance = recipient.balance_cents;
                push_history(
                    recipient,
                    entry(at, EntryKind::TransferIn, amount, request.user, recipient_balance),
                );
            }
        }
        new_balance
    }

    /// The events a failed login of `name` at `now` must record: a failure, and a lock of
    /// `lockout_secs` if it reaches the threshold. Returns whether the account is now locked.
    pub fn decide_login_failure(&self, name: &str, now: u64, lockout_secs: u64) -> (Vec<Event>, bool) {
        let Some(account) = self.accounts.get(name).filter(|account| !account.closed) else {
            return (Vec::new(), false);
        };
        let mut events = vec![Event::LoginFailed {
            at: now,
            name: name.to_string(),
        }];
        let locks = failure_locks(account.consecutive_failures);
        if locks {
            events.push(Event::AccountLocked {
                at: now,
                name: name.to_string(),
                until: now.saturating_add(lockout_secs),
            });
        }
        (events, locks)
    }

    /// The event that unlocks `name` at `now`: lifts a lock and clears the count of failed
    /// logins. Refused for an unknown or closed account, and for one with nothing to clear.
    pub fn decide_unlock(&self, name: &str, now: u64) -> Result<Event, OperatorRefusal> {
        let account = self.operable(name)?;
        if !account.is_locked(now) && account.consecutive_failures == 0 {
            return Err(OperatorRefusal::NotLocked(name.to_string()));
        }
        Ok(Event::AccountUnlocked {
            at: now,
            name: name.to_string(),
        })
    }

    /// The event that closes `name` at `now`. Refused for an unknown or closed account, and
    /// while the balance is not zero (closing never destroys money).
    pub fn decide_close(&self, name: &str, now: u64) -> Result<Event, OperatorRefusal> {
        let account = self.operable(name)?;
        if account.balance_cents != 0 {
            return Err(OperatorRefusal::NotEmpty(name.to_string(), account.balance_cents));
        }
        Ok(Event::AccountClosed {
            at: now,
            name: name.to_string(),
        })
    }

    /// The event that enrols an authenticator app with `secret` for `name`, if `code` is
    /// the app's code at `totp_now` (so a mistyped or misread secret is never enrolled).
    /// Replaces an earlier app. Refused for an unknown or closed account and a wrong code.
    pub fn decide_totp_enrolment(
        &self,
        name: &str,
        secret: &TotpSecret,
        code: &str,
        totp_now: u64,
        now: u64,
    ) -> Result<Event, OperatorRefusal> {
        self.operable(name)?;
        let step =
            totp::verify(secret, code, totp_now, 0).ok_or_else(|| OperatorRefusal::WrongTotpCode(name.into()))?;
        Ok(Event::TotpEnrolled {
            at: now,
            name: name.to_string(),
            secret: secret.clone(),
            step,
        })
    }

    /// The event that removes the authenticator app of `name` (back to console codes).
    pub fn decide_totp_removal(&self, name: &str, now: u64) -> Result<Event, OperatorRefusal> {
        if self.operable(name)?.totp.is_none() {
            return Err(OperatorRefusal::NoAuthenticator(name.to_string()));
        }
        Ok(Event::TotpRemoved {
            at: now,
            name: name.to_string(),
        })
    }

    /// The event of a login of `name` completed with the authenticator `code` at
    /// `totp_now` (the current step ±1, after the last step used), or why not: `otp_invalid`
    /// for a wrong or used code (a failure to count), `otp_expired` if the app was removed
    /// meanwhile, `account_locked`, or `invalid_credentials` for a closed account.
    pub fn decide_totp_login(&self, name: &str, code: &str, totp_now: u64, now: u64) -> Result<Event, ErrorCode> {
        let account = self
            .accounts
            .get(name)
            .filter(|account| !account.closed)
            .ok_or(ErrorCode::InvalidCredentials)?;
        if account.is_locked(now) {
            return Err(ErrorCode::AccountLocked);
        }
        let enrolment = account.totp.as_ref().ok_or(ErrorCode::OtpExpired)?;
        let step = totp::verify(&enrolment.secret, code, totp_now, enrolment.last_step).ok_or(ErrorCode::OtpInvalid)?;
        Ok(Event::TotpLoginSucceeded {
            at: now,
            name: name.to_string(),
            step,
        })
    }

    fn apply_totp(&mut self, event: &Event, lsn: u64) -> Result<(), &'static str> {
        let (Event::TotpEnrolled { name, .. }
        | Event::TotpRemoved { name, .. }
        | Event::TotpLoginSucceeded { name, .. }) = event
        else {
            unreachable!("called with an authenticator event");
        };
        let account = self
            .open_account_mut(name)
            .ok_or("authenticator event of unknown account")?;
        match event {
            Event::TotpEnrolled { secret, step, .. } => {
                account.totp = Some(Enrolment {
                    secret: secret.clone(),
                    last_step: *step,
                });
            }
            Event::TotpRemoved { .. } => {
                account
                    .totp
                    .take()
                    .ok_or("authenticator removed from an account without one")?;
            }
            Event::TotpLoginSucceeded { step, .. } => {
                let enrolment = account
                    .totp
                    .as_mut()
                    .ok_or("authenticator login without an authenticator")?;
                if *step <= enrolment.last_step {
                    return Err("authenticator code of a time step already used");
                }
                enrolment.last_step = *step;
                account.consecutive_failures = 0;
            }
            _ => unreachable!("matched above"),
        }
        account.last_lsn = lsn;
        Ok(())
    }

    fn operable(&self, name: &str) -> Result<&Account, OperatorRefusal> {
        match self.accounts.get(name) {
            None => Err(OperatorRefusal::NoSuchAccount(name.to_string())),
            Some(account) if account.closed => Err(OperatorRefusal::Closed(name.to_string())),
            Some(account) => Ok(account),
        }
    }
}

fn entry(at: u64, kind: EntryKind, amount_cents: u64, counterparty: &str, balance_after_cents: u64) -> HistoryEntry {
    HistoryEntry {
        at_unix_secs: at,
        kind,
        amount_cents,
        counterparty: counterparty.to_string(),
        balance_after_cents,
    }
}

/// Rules that depend only on the request, checked before anything else.
fn stateless_check(request: &TxRequest<'_>) -> Option<ErrorCode> {
    if request.amount_cents == 0 {
        return Some(ErrorCode::AmountMustBePositive);
    }
    if request.amount_cents > MAX_TRANSACTION_CENTS {
        return Some(ErrorCode::AmountExceedsLimit);
    }
    if request.kind == TxKind::Transfer {
        if request.counterparty == request.user {
            return Some(ErrorCode::CannotTransferToSelf);
        }
        if super::auth::validate_username(request.counterparty).is_err() {
            return Some(ErrorCode::UnknownRecipient);
        }
    } else if !request.counterparty.is_empty() {
        return Some(ErrorCode::InvalidField);
    }
    None
}

fn debit_check(balance: u64, amount: u64) -> Result<(), ErrorCode> {
    if balance < amount {
        Err(ErrorCode::InsufficientFunds)
    } else {
        Ok(())
    }
}

fn credit_check(balance: u64, amount: u64) -> Result<(), ErrorCode> {
    match balance.checked_add(amount) {
        Some(total) if total <= MAX_BALANCE_CENTS => Ok(()),
        _ => Err(ErrorCode::BalanceWouldOverflow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::txid_at;
    use crate::server::auth;

    fn open(ledger: &mut Ledger, name: &str, cents: u64, lsn: u64) {
        let password = auth::dummy_record(1_000);
        let event = Event::AccountOpened {
            at: 0,
            name: name.into(),
            password,
            opening_cents: cents,
        };
        ledger.apply(&event, lsn).unwrap();
    }

    fn decide_and_apply(ledger: &mut Ledger, request: TxRequest<'_>, lsn: u64) {
        let TxDecision::Record(event) = ledger.decide_transaction(request, 0) else {
            panic!("expected a record")
        };
        ledger.apply(&event, lsn).unwrap();
    }

    #[test]
    fn a_transfer_marks_both_accounts_changed_at_its_journal_position() {
        let mut ledger = Ledger::default();
        open(&mut ledger, "alice", 500, 1);
        open(&mut ledger, "bob", 0, 2);
        open(&mut ledger, "carol", 0, 3);
        let request = TxRequest {
            user: "alice",
            txid: txid_at(1),
            kind: TxKind::Transfer,
            amount_cents: 200,
            counterparty: "bob",
        };
        decide_and_apply(&mut ledger, request, 4);
        assert_eq!(ledger.account("alice").unwrap().last_lsn, 4);
        assert_eq!(ledger.account("bob").unwrap().last_lsn, 4);
        assert_eq!(
            ledger.account("carol").unwrap().last_lsn,
            3,
            "an untouched account keeps its position"
        );
        assert_eq!(ledger.sum_of_balances(), 500);
    }

    #[test]
    fn a_refused_transfer_does_not_mark_the_recipient() {
        let mut ledger = Ledger::default();
        open(&mut ledger, "alice", 100, 1);
        open(&mut ledger, "bob", 0, 2);
        let request = TxRequest {
            user: "alice",
            txid: txid_at(2),
            kind: TxKind::Transfer,
            amount_cents: 200,
            counterparty: "bob",
        };
        decide_and_apply(&mut ledger, request, 3);
        assert_eq!(ledger.account("alice").unwrap().last_lsn, 3);
        assert_eq!(ledger.account("bob").unwrap().last_lsn, 2);
        let repeat = ledger.decide_transaction(request, 0);
        assert!(matches!(
            repeat,
            TxDecision::Repeat {
                outcome: Err(ErrorCode::InsufficientFunds),
                lsn: 3
            }
        ));
    }

    #[test]
    fn close_is_refused_while_money_is_left_and_replay_refuses_a_forged_close() {
        let mut ledger = Ledger::default();
        open(&mut ledger, "alice", 100, 1);
        assert_eq!(
            ledger.decide_close("alice", 5),
            Err(OperatorRefusal::NotEmpty("alice".into(), 100))
        );
        let forged = Event::AccountClosed {
            at: 5,
            name: "alice".into(),
        };
        assert!(ledger.apply(&forged, 2).is_err());
        assert!(!ledger.account("alice").unwrap().closed);
        assert_eq!(
            ledger.decide_close("nobody", 5),
            Err(OperatorRefusal::NoSuchAccount("nobody".into()))
        );
    }

    #[test]
    fn a_closed_account_takes_no_money_no_login_events_and_keeps_its_name() {
        let mut ledger = Ledger::default();
        open(&mut ledger, "alice", 100, 1);
        open(&mut ledger, "bob", 0, 2);
        let close = ledger.decide_close("bob", 5).unwrap();
        ledger.apply(&close, 3).unwrap();
        assert_eq!(ledger.closed_count(), 1);
        let transfer = TxRequest {
            user: "alice",
            txid: txid_at(10_000),
            kind: TxKind::Transfer,
            amount_cents: 10,
            counterparty: "bob",
        };
        let TxDecision::Record(refused) = ledger.decide_transaction(transfer, 10) else {
            panic!("a transfer to a closed account is recorded as refused")
        };
        assert!(matches!(
            refused,
            Event::Transaction {
                refused: Some(ErrorCode::UnknownRecipient),
                ..
            }
        ));
        let from_bob = TxRequest {
            user: "bob",
            counterparty: "",
            kind: TxKind::Deposit,
            ..transfer
        };
        assert!(matches!(
            ledger.decide_transaction(from_bob, 10),
            TxDecision::Invalid(ErrorCode::NotAuthenticated)
        ));
        assert_eq!(ledger.decide_login_failure("bob", 10, 900), (Vec::new(), false));
        assert_eq!(
            ledger.decide_unlock("bob", 10),
            Err(OperatorRefusal::Closed("bob".into()))
        );
        let forged_payment = Event::Transaction {
            at: 10,
            user: "alice".into(),
            txid: txid_at(10_000),
            kind: TxKind::Transfer,
            amount_cents: 10,
            counterparty: "bob".into(),
            refused: None,
        };
        assert!(ledger.apply(&forged_payment, 4).is_err());
        let forged_login = Event::LoginSucceeded {
            at: 10,
            name: "bob".into(),
        };
        assert!(ledger.apply(&forged_login, 4).is_err());
        let reopened = Event::AccountOpened {
            at: 10,
            name: "bob".into(),
            password: auth::dummy_record(1_000),
            opening_cents: 0,
        };
        assert!(ledger.apply(&reopened, 4).is_err(), "a name is never given twice");
    }

    #[test]
    fn a_lock_ends_exactly_its_duration_after_the_failure_that_started_it_and_not_a_second_early() {
        let mut ledger = Ledger::default();
        open(&mut ledger, "alice", 100, 1);
        let mut lsn = 1;
        let mut locked_by = None;
        for failure in 1..=LOCKOUT_THRESHOLD {
            let (events, locks) = ledger.decide_login_failure("alice", 1_000, 60);
            assert_eq!(locks, failure == LOCKOUT_THRESHOLD, "failure {failure}");
            for event in events {
                lsn += 1;
                if let Event::AccountLocked { until, .. } = &event {
                    locked_by = Some(*until);
                }
                ledger.apply(&event, lsn).unwrap();
            }
        }
        assert_eq!(locked_by, Some(1_060));
        let alice = ledger.account("alice").unwrap();
        assert_eq!(alice.consecutive_failures, 0, "the lock clears the count");
        assert!(alice.is_locked(1_000));
        assert!(alice.is_locked(1_059), "a second early");
        assert!(!alice.is_locked(1_060), "at the end");
        assert!(!alice.is_locked(1_061));
        let (_, locks) = ledger.decide_login_failure("alice", 1_060, 60);
        assert!(!locks, "after the lock, the count starts again from zero");
    }

    #[test]
    fn unlock_clears_the_lock_and_the_failures_and_leaves_a_notice_in_the_history() {
        let mut ledger = Ledger::default();
        open(&mut ledger, "alice", 100, 1);
        assert_eq!(
            ledger.decide_unlock("alice", 10),
            Err(OperatorRefusal::NotLocked("alice".into()))
        );
        let mut lsn = 1;
        for _ in 0..LOCKOUT_THRESHOLD {
            for event in ledger.decide_login_failure("alice", 10, 900).0 {
                lsn += 1;
                ledger.apply(&event, lsn).unwrap();
            }
        }
        assert!(ledger.account("alice").unwrap().is_locked(11));
        let unlock = ledger.decide_unlock("alice", 12).unwrap();
        ledger.apply(&unlock, lsn + 1).unwrap();
        let alice = ledger.account("alice").unwrap();
        assert!(!alice.is_locked(13));
        assert_eq!(alice.consecutive_failures, 0);
        assert_eq!(alice.last_lsn, lsn + 1);
        let notice = alice.history.back().unwrap();
        assert_eq!(
            (notice.kind, notice.amount_cents, notice.balance_after_cents),
            (EntryKind::Unlocked, 0, 100)
        );
        assert_eq!(ledger.unlocks(), 1);
    }

    #[test]
    fn replay_refuses_an_applied_transaction_that_breaks_a_rule() {
        let mut ledger = Ledger::default();
        open(&mut ledger, "alice", 100, 1);
        let overdraft = Event::Transaction {
            at: 0,
            user: "alice".into(),
            txid: txid_at(3),
            kind: TxKind::Withdrawal,
            amount_cents: 101,
            counterparty: String::new(),
            refused: None,
        };
        assert!(ledger.apply(&overdraft, 2).is_err());
        assert_eq!(ledger.account("alice").unwrap().balance_cents, 100);
    }
}
