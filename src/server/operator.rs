//! The operator's commands: their messages on the admin socket, and what they do.
//!
//! `bank-server add-account`, `unlock`, `close-account`, `stats`, `checkpoint` and `verify`
//! run here whichever way they reach the bank: from the admin socket of a running server
//! ([`super::operator_socket`]) or offline, from the command line with the data directory's
//! lock taken ([`crate::operator_client`]). Both call [`execute`] with the same [`Command`],
//! so both give the same answer; only a running server adds its live numbers to `stats`.
//!
//! Wire format, inside the frames of [`crate::frame`] (integers big-endian, strings `u16`
//! length + UTF-8):
//!
//! ```text
//! OperatorRequest frame (0x0a): command u8, then
//!   0x01 AddAccount    name str (≤ 32) | password str (≤ 128) | opening_cents u64
//!   0x02 Unlock        name str (≤ 32)
//!   0x03 CloseAccount  name str (≤ 32)
//!   0x04 Stats    0x05 Checkpoint    0x06 Verify    0x07 Stop      (no fields)
//!   0x08 EnrolTotp     name str (≤ 32) | secret[20] | code str (≤ 16)
//!   0x09 RemoveTotp    name str (≤ 32)
//!   0x0a TotpStatus    name str (≤ 32)
//! OperatorReply frame (0x0b): status u8 | text str (≤ 8 KiB)
//!   status 0 done, 1 refused (nothing changed), 2 failed, 3 malformed request
//! ```
//!
//! Invariants: every change goes through a [`Bank`] method — the ledger lock, the journal
//! and group commit, like a customer's transaction — so it is an audited event, and the
//! reply is sent only once it is durable; a decoder never panics and refuses unknown
//! commands, over-long fields and trailing bytes; the password is wiped once used, and
//! `Debug` never shows it.
//!
//! Enrolling an authenticator app is one request: the command line makes the secret, shows
//! it to the customer (URI, text, QR code), reads one code from the app, and sends the
//! secret with that code. The bank journals the secret only if the code matches it at the
//! bank's clock, so nothing is pending on the server, and a misread secret is never
//! enrolled. The secret crosses only the local admin socket, whose users can read the
//! journal that stores it anyway (SECURITY.md 3.13).

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

use super::ServerConfig;
use super::admin;
use super::bank::{self, Bank, BankStats};
use super::login_queue::LoginQueue;
use super::storage::DirStorage;
use super::verify;
use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::limits::{
    LOCKOUT_THRESHOLD, MAX_OPERATOR_TEXT_BYTES, MAX_PASSWORD_BYTES, MAX_TRANSACTION_CENTS, MAX_USERNAME_BYTES,
};
use crate::message::{CodeKind, MAX_OTP_FIELD_BYTES};
use crate::money::format_cents;
use crate::totp::TotpSecret;

/// An operator's command.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    /// Open an account.
    AddAccount {
        /// The account name.
        name: String,
        /// The new password (wiped when dropped).
        password: Zeroizing<String>,
        /// Opening balance in cents.
        opening_cents: u64,
    },
    /// Lift a lock and clear the failed logins.
    Unlock {
        /// The account name.
        name: String,
    },
    /// Close an empty account.
    CloseAccount {
        /// The account name.
        name: String,
    },
    /// Report how the bank is doing.
    Stats,
    /// Write a checkpoint now.
    Checkpoint,
    /// Check the whole journal and every checkpoint.
    Verify,
    /// Stop the running server cleanly (admin socket only).
    Stop,
    /// Enrol an authenticator app, if `code` is its current code for `secret`.
    EnrolTotp {
        /// The account name.
        name: String,
        /// The new secret, already shown to the customer.
        secret: TotpSecret,
        /// A code the app shows for it now.
        code: Zeroizing<String>,
    },
    /// Remove the authenticator app: back to console codes.
    RemoveTotp {
        /// The account name.
        name: String,
    },
    /// Say which kind of code the account's logins take (changes nothing).
    TotpStatus {
        /// The account name.
        name: String,
    },
}

mod tag {
    pub const ADD_ACCOUNT: u8 = 0x01;
    pub const UNLOCK: u8 = 0x02;
    pub const CLOSE_ACCOUNT: u8 = 0x03;
    pub const STATS: u8 = 0x04;
    pub const CHECKPOINT: u8 = 0x05;
    pub const VERIFY: u8 = 0x06;
    pub const STOP: u8 = 0x07;
    pub const ENROL_TOTP: u8 = 0x08;
    pub const REMOVE_TOTP: u8 = 0x09;
    pub const TOTP_STATUS: u8 = 0x0a;
}

impl Command {
    /// The message bytes (wiped when dropped: they may hold a password).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(2 * (MAX_USERNAME_BYTES + MAX_PASSWORD_BYTES));
        match self {
            Self::AddAccount {
                name,
                password,
                opening_cents,
            } => w.u8(tag::ADD_ACCOUNT).str16(name).str16(password).u64(*opening_cents),
            Self::Unlock { name } => w.u8(tag::UNLOCK).str16(name),
            Self::CloseAccount { name } => w.u8(tag::CLOSE_ACCOUNT).str16(name),
            Self::Stats => w.u8(tag::STATS),
            Self::Checkpoint => w.u8(tag::CHECKPOINT),
            Self::Verify => w.u8(tag::VERIFY),
            Self::Stop => w.u8(tag::STOP),
            Self::EnrolTotp { name, secret, code } => {
                w.u8(tag::ENROL_TOTP).str16(name).raw(secret.as_bytes()).str16(code)
            }
            Self::RemoveTotp { name } => w.u8(tag::REMOVE_TOTP).str16(name),
            Self::TotpStatus { name } => w.u8(tag::TOTP_STATUS).str16(name),
        };
        Zeroizing::new(w.into_bytes())
    }

    /// Parses message bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let name = |r: &mut Reader<'_>| r.str16(MAX_USERNAME_BYTES, "name").map(str::to_string);
        let command = match r.u8("command")? {
            tag::ADD_ACCOUNT => Self::AddAccount {
                name: name(&mut r)?,
                password: Zeroizing::new(r.str16(MAX_PASSWORD_BYTES, "password")?.to_string()),
                opening_cents: r.u64("opening")?,
            },
            tag::UNLOCK => Self::Unlock { name: name(&mut r)? },
            tag::CLOSE_ACCOUNT => Self::CloseAccount { name: name(&mut r)? },
            tag::STATS => Self::Stats,
            tag::CHECKPOINT => Self::Checkpoint,
            tag::VERIFY => Self::Verify,
            tag::STOP => Self::Stop,
            tag::ENROL_TOTP => Self::EnrolTotp {
                name: name(&mut r)?,
                secret: TotpSecret::from_bytes(r.array("secret")?),
                code: Zeroizing::new(r.str16(MAX_OTP_FIELD_BYTES, "code")?.to_string()),
            },
            tag::REMOVE_TOTP => Self::RemoveTotp { name: name(&mut r)? },
            tag::TOTP_STATUS => Self::TotpStatus { name: name(&mut r)? },
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(command)
    }
}

/// Shows a command with the password masked.
impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AddAccount {
                name, opening_cents, ..
            } => write!(
                f,
                "AddAccount(name {name:?}, password ********, opening {})",
                format_cents(*opening_cents)
            ),
            Self::Unlock { name } => write!(f, "Unlock(name {name:?})"),
            Self::CloseAccount { name } => write!(f, "CloseAccount(name {name:?})"),
            Self::Stats => write!(f, "Stats"),
            Self::Checkpoint => write!(f, "Checkpoint"),
            Self::Verify => write!(f, "Verify"),
            Self::Stop => write!(f, "Stop"),
            Self::EnrolTotp { name, .. } => write!(f, "EnrolTotp(name {name:?}, secret hidden, code ******)"),
            Self::RemoveTotp { name } => write!(f, "RemoveTotp(name {name:?})"),
            Self::TotpStatus { name } => write!(f, "TotpStatus(name {name:?})"),
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// It was done (a change is durable).
    Done = 0,
    /// A rule refused it; nothing changed.
    Refused = 1,
    /// It could not be done (a journal or disk error, or `verify` found damage).
    Failed = 2,
    /// The request did not parse; the server closes the admin connection after this reply.
    Malformed = 3,
}

/// The answer to one command: a status and a text for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// How it ended.
    pub status: Status,
    /// What to show, one or more lines, at most [`MAX_OPERATOR_TEXT_BYTES`].
    pub text: String,
}

impl Reply {
    fn new(status: Status, text: impl Into<String>) -> Self {
        let mut text = text.into();
        if text.len() > MAX_OPERATOR_TEXT_BYTES {
            let mut end = MAX_OPERATOR_TEXT_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        Self { status, text }
    }

    /// A command that was done.
    pub fn done(text: impl Into<String>) -> Self {
        Self::new(Status::Done, text)
    }

    /// A command a rule refused.
    pub fn refused(text: impl Into<String>) -> Self {
        Self::new(Status::Refused, text)
    }

    /// A command that failed.
    pub fn failed(text: impl Into<String>) -> Self {
        Self::new(Status::Failed, text)
    }

    /// The answer to a request that did not parse.
    pub fn malformed(text: impl Into<String>) -> Self {
        Self::new(Status::Malformed, text)
    }

    /// The message bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(3 + self.text.len());
        w.u8(self.status as u8).str16(&self.text);
        w.into_bytes()
    }

    /// Parses message bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let status = match r.u8("status")? {
            0 => Status::Done,
            1 => Status::Refused,
            2 => Status::Failed,
            3 => Status::Malformed,
            _ => return Err(DecodeError::BadValue("status")),
        };
        let text = r.str16(MAX_OPERATOR_TEXT_BYTES, "text")?.to_string();
        r.finish()?;
        Ok(Self { status, text })
    }
}

/// What only a running server knows, for `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    /// Time since the server started.
    pub uptime: Duration,
    /// Customer connections open now (handshake, anonymous or logged in).
    pub connections: usize,
    /// Of those, the ones logged in to an account.
    pub logged_in: usize,
}

/// Where a command runs: the bank, the settings in force, and what a running server adds.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The bank.
    pub bank: &'a Bank,
    /// The settings: the server's own, or those of the offline command line.
    pub config: &'a ServerConfig,
    /// Live numbers of a running server; `None` offline.
    pub live: Option<Live>,
    /// The server's bound on concurrent PBKDF2 work (an `add-account` hashes a password);
    /// `None` offline.
    pub hash_queue: Option<&'a LoginQueue>,
}

/// Runs `command` and says how it went. `Stop` is refused here: only the admin socket,
/// which owns the server's lifetime, can stop a server.
pub fn execute(command: &Command, context: &Context<'_>) -> Reply {
    let bank = context.bank;
    let now = bank::now_unix_secs();
    match command {
        Command::AddAccount {
            name,
            password,
            opening_cents,
        } => {
            let _permit = context.hash_queue.map(|queue| queue.acquire(None));
            match admin::add_account(bank, name, password, *opening_cents, context.config.pbkdf2_iterations) {
                Ok(()) => Reply::done(format!(
                    "created account {name} with opening balance {}",
                    format_cents(*opening_cents)
                )),
                Err(reason) => Reply::refused(reason),
            }
        }
        Command::Unlock { name } => match bank.unlock(name, now) {
            Ok(Ok(())) => Reply::done(format!(
                "unlocked {name}: logins are allowed again (its history shows \"unlocked by the bank\")"
            )),
            Ok(Err(refusal)) => Reply::refused(refusal.to_string()),
            Err(err) => Reply::failed(err.to_string()),
        },
        Command::CloseAccount { name } => match bank.close_account(name, now) {
            Ok(Ok(())) => Reply::done(format!(
                "closed account {name}: it can no longer log in or receive money, and its name is never reused"
            )),
            Ok(Err(refusal)) => Reply::refused(refusal.to_string()),
            Err(err) => Reply::failed(err.to_string()),
        },
        Command::Stats => Reply::done(stats_text(&bank.stats(), context.config, context.live)),
        Command::Checkpoint => match bank.checkpoint() {
            Ok(info) => Reply::done(format!(
                "checkpoint written at record {} ({} bytes, ledger locked {} us, took {} us); \
                 the journal continues in segment {}",
                info.lsn, info.bytes, info.lock_held_us, info.total_us, info.next_segment
            )),
            Err(err) => Reply::failed(format!("checkpoint failed: {err}")),
        },
        Command::Verify => verify_reply(context.config),
        Command::Stop => Reply::refused("no server is running: there is nothing to stop"),
        Command::EnrolTotp { name, secret, code } => {
            let totp_now = context.config.totp_clock.now_unix_secs();
            match bank.enrol_totp(name, secret, code, totp_now, now) {
                Ok(Ok(())) => Reply::done(format!(
                    "enrolled an authenticator app for {name}: its logins now take the app's codes \
                     instead of console codes"
                )),
                Ok(Err(refusal)) => Reply::refused(refusal.to_string()),
                Err(err) => Reply::failed(err.to_string()),
            }
        }
        Command::RemoveTotp { name } => match bank.remove_totp(name, now) {
            Ok(Ok(())) => Reply::done(format!(
                "removed the authenticator app of {name}: its logins take console codes again"
            )),
            Ok(Err(refusal)) => Reply::refused(refusal.to_string()),
            Err(err) => Reply::failed(err.to_string()),
        },
        Command::TotpStatus { name } => match bank.login_code_kind(name) {
            Some(CodeKind::Authenticator) => Reply::done(format!("{name} logs in with an authenticator app")),
            Some(CodeKind::Device) => Reply::done(format!("{name} logs in with console codes")),
            None => Reply::refused(format!("no open account is named {name}")),
        },
    }
}

/// `verify` on the configured data directory with the configured retention: read-only.
pub fn verify_reply(config: &ServerConfig) -> Reply {
    let storage = DirStorage::new(&config.data_dir);
    match verify::verify_storage(&storage, config.bank.retention) {
        Ok(report) if report.balanced() => Reply::done(report.to_string()),
        Ok(report) => Reply::failed(format!(
            "{report}\nverify FAILED: the sum of balances is not deposits - withdrawals"
        )),
        Err(err) => Reply::failed(format!("verify FAILED: {err}")),
    }
}

/// The `stats` report: one `label: value` line per field, labels padded to 14 columns.
pub fn stats_text(stats: &BankStats, config: &ServerConfig, live: Option<Live>) -> String {
    let mut lines = Vec::new();
    let mut line = |label: &str, value: String| lines.push(format!("{:<14}{value}", format!("{label}:")));
    match live {
        Some(live) => {
            line("uptime", format!("{} s", live.uptime.as_secs()));
            line(
                "connections",
                format!(
                    "{} open: {} anonymous, {} logged in (cap {})",
                    live.connections,
                    live.connections.saturating_sub(live.logged_in),
                    live.logged_in,
                    config.max_connections
                ),
            );
        }
        None => {
            line("uptime", "no server is running".into());
            line("connections", "none: no server is running".into());
        }
    }
    line(
        "accounts",
        format!(
            "{} ({} open, {} closed)",
            stats.accounts,
            stats.accounts - stats.closed_accounts,
            stats.closed_accounts
        ),
    );
    line(
        "journal",
        format!("record {}, segment {}", stats.journal_lsn, stats.segment),
    );
    let per_sync = if stats.commit.syncs == 0 {
        "no sync yet".to_string()
    } else {
        format!(
            "{:.2} records per sync",
            stats.commit.records_written as f64 / stats.commit.syncs as f64
        )
    };
    line(
        "syncs",
        format!(
            "{} since start, {} records written, {per_sync}",
            stats.commit.syncs, stats.commit.records_written
        ),
    );
    let checkpoint = match (stats.last_checkpoint, stats.loaded_checkpoint) {
        (Some(info), _) => format!(
            "written at record {} (unix time {}, {} bytes), before segment {}",
            info.lsn, info.written_at, info.bytes, info.next_segment
        ),
        (None, Some((segment, lsn))) => format!("loaded at start: record {lsn}, before segment {segment}"),
        (None, None) => "none yet".into(),
    };
    line("checkpoint", checkpoint);
    line(
        "operator",
        format!(
            "{} events: {} accounts opened, {} unlocked, {} closed",
            stats.accounts as u64 + stats.unlocks + stats.closed_accounts as u64,
            stats.accounts,
            stats.unlocks,
            stats.closed_accounts
        ),
    );
    line(
        "limits",
        format!(
            "connections {}; handshake {} s; idle {} s ({} s before login); write {} s; one-time code {} s; \
             lockout after {LOCKOUT_THRESHOLD} failures for {} s; \
             per address: {} connections before login, {} handshakes/s, {} logins/min; \
             pbkdf2 {} iterations; checkpoint every {} records; transaction ids kept {} s; \
             largest transaction {}",
            config.max_connections,
            config.handshake_timeout.as_secs(),
            config.idle_timeout.as_secs(),
            config.anonymous_idle_timeout.as_secs(),
            config.write_timeout.as_secs(),
            config.otp_ttl.as_secs(),
            config.bank.lockout_secs,
            config.sources.anonymous_per_source,
            config.sources.handshakes_per_sec,
            config.sources.logins_per_min,
            config.pbkdf2_iterations,
            config.bank.checkpoint_every_records,
            config.bank.retention.window_ms / 1_000,
            format_cents(MAX_TRANSACTION_CENTS)
        ),
    );
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_command() -> Vec<Command> {
        vec![
            Command::AddAccount {
                name: "zed".into(),
                password: Zeroizing::new("correct horse".into()),
                opening_cents: 1_234,
            },
            Command::Unlock { name: "alice".into() },
            Command::CloseAccount { name: "bob".into() },
            Command::Stats,
            Command::Checkpoint,
            Command::Verify,
            Command::Stop,
            Command::EnrolTotp {
                name: "alice".into(),
                secret: TotpSecret::from_bytes([3; 20]),
                code: Zeroizing::new("123456".into()),
            },
            Command::RemoveTotp { name: "alice".into() },
            Command::TotpStatus { name: "alice".into() },
        ]
    }

    #[test]
    fn every_command_and_reply_round_trips() {
        for command in every_command() {
            assert_eq!(Command::decode(&command.encode()).unwrap(), command);
        }
        for status in [Status::Done, Status::Refused, Status::Failed, Status::Malformed] {
            let reply = Reply::new(status, "line one\nline two");
            assert_eq!(Reply::decode(&reply.encode()).unwrap(), reply);
        }
    }

    #[test]
    fn every_truncation_unknown_command_and_trailing_byte_is_refused() {
        for command in every_command() {
            let bytes = command.encode();
            for len in 0..bytes.len() {
                assert!(Command::decode(&bytes[..len]).is_err(), "{command:?} cut at {len}");
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert_eq!(Command::decode(&longer), Err(DecodeError::TrailingBytes));
        }
        assert_eq!(Command::decode(&[0x7f]), Err(DecodeError::UnknownType(0x7f)));
        let mut long_name = vec![tag::UNLOCK];
        long_name.extend_from_slice(&33u16.to_be_bytes());
        long_name.extend_from_slice(&[b'a'; 33]);
        assert_eq!(Command::decode(&long_name), Err(DecodeError::TooLong("name")));
        assert_eq!(Reply::decode(&[9, 0, 0]), Err(DecodeError::BadValue("status")));
    }

    #[test]
    fn debug_masks_the_password_and_a_long_reply_is_cut_at_the_limit() {
        let command = &every_command()[0];
        assert!(!format!("{command:?}").contains("horse"));
        let enrol = format!("{:?}", every_command()[7]);
        assert!(!enrol.contains("123456") && !enrol.contains("3, 3"), "{enrol}");
        let reply = Reply::done("é".repeat(MAX_OPERATOR_TEXT_BYTES));
        assert!(reply.text.len() <= MAX_OPERATOR_TEXT_BYTES);
        assert!(Reply::decode(&reply.encode()).is_ok());
    }
}
