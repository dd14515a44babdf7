//! Journal events: every state change of the bank, as the bytes stored on disk.
//!
//! The ledger changes *only* by applying these events (see [`super::ledger::Ledger::apply`]),
//! live and on replay alike, so a restart rebuilds exactly the state clients were told about.
//! Layouts (integers big-endian, strings `u16` length + UTF-8):
//!
//! ```text
//! 0x01 AccountOpened  at u64 | name str | salt[16] | iterations u32 | hash[32] | opening_cents u64
//! 0x02 LoginFailed    at u64 | name str
//! 0x03 AccountLocked  at u64 | name str | until u64
//! 0x04 LoginSucceeded at u64 | name str
//! 0x05 Transaction    at u64 | user str | txid[16] | kind u8 | amount u64 | counterparty str | outcome str
//! 0x06 AccountUnlocked at u64 | name str
//! 0x07 AccountClosed  at u64 | name str
//! 0x08 TotpEnrolled   at u64 | name str | secret[20] | step u64
//! 0x09 TotpRemoved    at u64 | name str
//! 0x0a TotpLoginSucceeded at u64 | name str | step u64
//! 0x0b UnknownNameLoginFailed at u64
//! ```
//! `kind` is 1 deposit, 2 withdrawal, 3 transfer; `outcome` is `ok` or an error code name.
//!
//! `AccountOpened`, `AccountUnlocked` and `AccountClosed` are the operator's actions
//! (`bank-server add-account`, `unlock`, `close-account`): journaled like every other
//! change, they are the audit trail of what the bank's staff did, to which account, when.
//! So are `TotpEnrolled` and `TotpRemoved` (`bank-server enrol-totp`, `remove-totp`):
//! enrolment is recorded only after a code from the app was checked against the secret, and
//! `step` is that code's time step, already used. `TotpLoginSucceeded` is a complete login
//! with an authenticator code of time step `step`, which can never be used again.
//!
//! `UnknownNameLoginFailed` changes nothing: it is written so that a failed login for a
//! name no account has takes the same path, and the same wait for a sync, as a wrong
//! password for a real account (the answer time must not tell which names exist). It holds
//! no name: what strangers type, often a password in the wrong field, is not kept.

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, ErrorCode};
use crate::limits::{MAX_ERROR_CODE_BYTES, MAX_USERNAME_BYTES, PASSWORD_SALT_BYTES};
use crate::message::TxId;
use crate::totp::TotpSecret;

/// A stored password: PBKDF2-HMAC-SHA256 output with its salt and iteration count.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordRecord {
    /// Random per-account salt.
    pub salt: [u8; PASSWORD_SALT_BYTES],
    /// PBKDF2 iteration count used for this record.
    pub iterations: u32,
    /// The derived 32-byte hash.
    pub hash: [u8; 32],
}

impl std::fmt::Debug for PasswordRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PasswordRecord(PBKDF2-HMAC-SHA256, {} iterations, hash hidden)",
            self.iterations
        )
    }
}

/// The three kinds of money movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TxKind {
    /// Money in.
    Deposit = 1,
    /// Money out.
    Withdrawal = 2,
    /// Money to another account.
    Transfer = 3,
}

impl TxKind {
    /// The kind stored as `byte`, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        [Self::Deposit, Self::Withdrawal, Self::Transfer]
            .into_iter()
            .find(|kind| *kind as u8 == byte)
    }
}

/// One state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new account with its password record and opening balance.
    AccountOpened {
        /// Unix seconds.
        at: u64,
        /// Account name.
        name: String,
        /// Password record.
        password: PasswordRecord,
        /// Opening balance in cents (counts as a deposit for the invariants).
        opening_cents: u64,
    },
    /// A wrong password or code for an existing account.
    LoginFailed {
        /// Unix seconds.
        at: u64,
        /// Account name.
        name: String,
    },
    /// The account is locked until `until` (after too many failures).
    AccountLocked {
        /// Unix seconds.
        at: u64,
        /// Account name.
        name: String,
        /// Unix seconds when the lock ends.
        until: u64,
    },
    /// A complete two-step login.
    LoginSucceeded {
        /// Unix seconds.
        at: u64,
        /// Account name.
        name: String,
    },
    /// A deposit, withdrawal or transfer and its outcome (applied or refused by a rule that
    /// depends on the ledger's state).
    Transaction {
        /// Unix seconds.
        at: u64,
        /// The account that asked.
        user: String,
        /// Client-chosen id.
        txid: TxId,
        /// What was asked.
        kind: TxKind,
        /// Amount in cents.
        amount_cents: u64,
        /// Recipient of a transfer; empty otherwise.
        counterparty: String,
        /// `None` if applied, else the rule that refused it.
        refused: Option<ErrorCode>,
    },
    /// The operator lifted a lock (and cleared the failure count) before it expired.
    AccountUnlocked {
        /// Unix seconds.
        at: u64,
        /// Account name.
        name: String,
    },
    /// The operator closed an empty account: it can no longer log in or receive money, and
    /// its name is never given to another account.
    AccountClosed {
        /// Unix seconds.
        at: u64,
        /// Account name.
        name: String,
    },
    /// The operator enrolled an authenticator app, after a code from it checked out.
    TotpEnrolled {
        /// Unix seconds.
        at: u64,
        /// Account name.
        name: String,
        /// The secret shared with the app (it replaces any earlier one).
        secret: TotpSecret,
        /// Time step of the confirmation code: it and earlier steps are used up.
        step: u64,
    },
    /// The operator removed the authenticator app: the account is back to console codes.
    TotpRemoved {
        /// Unix seconds.
        at: u64,
        /// Account name.
        name: String,
    },
    /// A complete two-step login with an authenticator code of time step `step`.
    TotpLoginSucceeded {
        /// Unix seconds.
        at: u64,
        /// Account name.
        name: String,
        /// The code's time step: it and earlier steps are used up.
        step: u64,
    },
    /// A failed login for a name no open account has (no state change; see the module doc).
    UnknownNameLoginFailed {
        /// Unix seconds.
        at: u64,
    },
}

const OUTCOME_OK: &str = "ok";

impl Event {
    /// When the event happened, in Unix seconds.
    pub fn at(&self) -> u64 {
        match self {
            Self::AccountOpened { at, .. }
            | Self::LoginFailed { at, .. }
            | Self::AccountLocked { at, .. }
            | Self::LoginSucceeded { at, .. }
            | Self::Transaction { at, .. }
            | Self::AccountUnlocked { at, .. }
            | Self::AccountClosed { at, .. }
            | Self::TotpEnrolled { at, .. }
            | Self::TotpRemoved { at, .. }
            | Self::TotpLoginSucceeded { at, .. }
            | Self::UnknownNameLoginFailed { at } => *at,
        }
    }

    /// The record payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(96);
        match self {
            Self::AccountOpened {
                at,
                name,
                password,
                opening_cents,
            } => w
                .u8(0x01)
                .u64(*at)
                .str16(name)
                .raw(&password.salt)
                .u32(password.iterations)
                .raw(&password.hash)
                .u64(*opening_cents),
            Self::LoginFailed { at, name } => w.u8(0x02).u64(*at).str16(name),
            Self::AccountLocked { at, name, until } => w.u8(0x03).u64(*at).str16(name).u64(*until),
            Self::LoginSucceeded { at, name } => w.u8(0x04).u64(*at).str16(name),
            Self::Transaction {
                at,
                user,
                txid,
                kind,
                amount_cents,
                counterparty,
                refused,
            } => w
                .u8(0x05)
                .u64(*at)
                .str16(user)
                .raw(txid)
                .u8(*kind as u8)
                .u64(*amount_cents)
                .str16(counterparty)
                .str16(refused.map_or(OUTCOME_OK, ErrorCode::as_str)),
            Self::AccountUnlocked { at, name } => w.u8(0x06).u64(*at).str16(name),
            Self::AccountClosed { at, name } => w.u8(0x07).u64(*at).str16(name),
            Self::TotpEnrolled { at, name, secret, step } => {
                w.u8(0x08).u64(*at).str16(name).raw(secret.as_bytes()).u64(*step)
            }
            Self::TotpRemoved { at, name } => w.u8(0x09).u64(*at).str16(name),
            Self::TotpLoginSucceeded { at, name, step } => w.u8(0x0a).u64(*at).str16(name).u64(*step),
            Self::UnknownNameLoginFailed { at } => w.u8(0x0b).u64(*at),
        };
        w.into_bytes()
    }

    /// Parses record payload bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let name = |r: &mut Reader<'_>| r.str16(MAX_USERNAME_BYTES, "name").map(str::to_string);
        let event = match r.u8("type")? {
            0x01 => Self::AccountOpened {
                at: r.u64("at")?,
                name: name(&mut r)?,
                password: PasswordRecord {
                    salt: r.array("salt")?,
                    iterations: r.u32("iterations")?,
                    hash: r.array("hash")?,
                },
                opening_cents: r.u64("opening")?,
            },
            0x02 => Self::LoginFailed {
                at: r.u64("at")?,
                name: name(&mut r)?,
            },
            0x03 => Self::AccountLocked {
                at: r.u64("at")?,
                name: name(&mut r)?,
                until: r.u64("until")?,
            },
            0x04 => Self::LoginSucceeded {
                at: r.u64("at")?,
                name: name(&mut r)?,
            },
            0x05 => Self::Transaction {
                at: r.u64("at")?,
                user: name(&mut r)?,
                txid: r.array("txid")?,
                kind: TxKind::from_byte(r.u8("kind")?).ok_or(DecodeError::BadValue("kind"))?,
                amount_cents: r.u64("amount")?,
                counterparty: r.str16(MAX_USERNAME_BYTES, "counterparty")?.to_string(),
                refused: match r.str16(MAX_ERROR_CODE_BYTES, "outcome")? {
                    OUTCOME_OK => None,
                    code => Some(ErrorCode::from_name(code).ok_or(DecodeError::BadValue("outcome"))?),
                },
            },
            0x06 => Self::AccountUnlocked {
                at: r.u64("at")?,
                name: name(&mut r)?,
            },
            0x07 => Self::AccountClosed {
                at: r.u64("at")?,
                name: name(&mut r)?,
            },
            0x08 => Self::TotpEnrolled {
                at: r.u64("at")?,
                name: name(&mut r)?,
                secret: TotpSecret::from_bytes(r.array("secret")?),
                step: r.u64("step")?,
            },
            0x09 => Self::TotpRemoved {
                at: r.u64("at")?,
                name: name(&mut r)?,
            },
            0x0a => Self::TotpLoginSucceeded {
                at: r.u64("at")?,
                name: name(&mut r)?,
                step: r.u64("step")?,
            },
            0x0b => Self::UnknownNameLoginFailed { at: r.u64("at")? },
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips() {
        let password = PasswordRecord {
            salt: [1; 16],
            iterations: 600_000,
            hash: [2; 32],
        };
        let events = [
            Event::AccountOpened {
                at: 1,
                name: "alice".into(),
                password,
                opening_cents: 500,
            },
            Event::LoginFailed {
                at: 2,
                name: "alice".into(),
            },
            Event::AccountLocked {
                at: 3,
                name: "alice".into(),
                until: 903,
            },
            Event::LoginSucceeded {
                at: 4,
                name: "alice".into(),
            },
            Event::Transaction {
                at: 5,
                user: "alice".into(),
                txid: [3; 16],
                kind: TxKind::Transfer,
                amount_cents: 100,
                counterparty: "bob".into(),
                refused: Some(ErrorCode::InsufficientFunds),
            },
            Event::Transaction {
                at: 6,
                user: "alice".into(),
                txid: [4; 16],
                kind: TxKind::Deposit,
                amount_cents: 100,
                counterparty: String::new(),
                refused: None,
            },
            Event::AccountUnlocked {
                at: 7,
                name: "alice".into(),
            },
            Event::AccountClosed {
                at: 8,
                name: "alice".into(),
            },
            Event::TotpEnrolled {
                at: 9,
                name: "alice".into(),
                secret: TotpSecret::from_bytes([5; 20]),
                step: 56_666_667,
            },
            Event::TotpRemoved {
                at: 10,
                name: "alice".into(),
            },
            Event::TotpLoginSucceeded {
                at: 11,
                name: "alice".into(),
                step: 56_666_668,
            },
            Event::UnknownNameLoginFailed { at: 12 },
        ];
        for event in events {
            assert_eq!(Event::decode(&event.encode()).unwrap(), event);
        }
    }
}
