//! Application messages: what travels inside records once the channel is established.
//!
//! Each message is a type byte followed by its fields (integers big-endian, strings as `u16`
//! length + UTF-8, each with a maximum). Requests use types `0x20..=0x2a`, responses
//! `0x80..=0x88`; `0x10` is the handshake's Finished. Decoders refuse unknown types,
//! over-long fields and trailing bytes. PROTOCOL.md documents every layout.
//!
//! Compatibility: History (`0x27`) answers only the entry kinds 1–5 that every version-1
//! client decodes; bank notices such as "unlocked by the bank" (kind 6) are sent only in
//! answer to HistoryWithNotices (`0x29`), which only a client that knows them sends.
//! Likewise the kind of code a login needs (the server console's, or an authenticator
//! app's) is named, in CodeRequested (`0x88`), only in answer to LoginWithCodeKind (`0x2a`);
//! Login still gets OtpSent, whatever the kind.

use std::fmt;

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, ErrorCode};
use crate::limits::{
    MAX_ECHO_BYTES, MAX_ERROR_CODE_BYTES, MAX_HISTORY_ENTRIES, MAX_PASSWORD_BYTES, MAX_USERNAME_BYTES,
};
use crate::money;

/// A client-chosen transaction id, unique per user action: the first 6 bytes are its
/// creation time in Unix milliseconds, big-endian (48 bits, as in UUIDv7), the other 10
/// bytes are random (80 bits). The server refuses an id whose time is outside its retention
/// window, which is what lets it forget old ids (see `server::retention`).
pub type TxId = [u8; 16];

/// Bytes at the start of a [`TxId`] that hold its creation time: 48 bits of milliseconds
/// last until the year 10889.
pub const TXID_TIME_BYTES: usize = 6;

/// The creation time written in `txid`, in Unix milliseconds.
pub fn txid_created_ms(txid: &TxId) -> u64 {
    let mut be = [0u8; 8];
    be[8 - TXID_TIME_BYTES..].copy_from_slice(&txid[..TXID_TIME_BYTES]);
    u64::from_be_bytes(be)
}

/// A new id created at `created_ms` (Unix milliseconds) with 80 fresh random bits. Only the
/// low 48 bits of `created_ms` fit (any time before the year 10889).
pub fn txid_at(created_ms: u64) -> TxId {
    let mut txid: TxId = crate::rng::bytes();
    txid[..TXID_TIME_BYTES].copy_from_slice(&created_ms.to_be_bytes()[8 - TXID_TIME_BYTES..]);
    txid
}

/// Longest one-time-code field accepted on the wire (a code is 6 digits; a little slack lets
/// the server answer `otp_invalid` instead of closing on a mistyped code).
pub const MAX_OTP_FIELD_BYTES: usize = 16;

/// A request from the client.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    /// Echo the bytes back (a connectivity check, allowed in any state).
    Echo(Vec<u8>),
    /// First login step: username and password.
    Login {
        /// The account name.
        username: String,
        /// The password, in clear inside the encrypted record.
        password: String,
    },
    /// Second login step: the one-time code.
    SubmitOtp(String),
    /// Read the balance.
    Balance,
    /// Add money.
    Deposit {
        /// Transaction id.
        txid: TxId,
        /// Amount in cents.
        amount_cents: u64,
    },
    /// Take money out.
    Withdraw {
        /// Transaction id.
        txid: TxId,
        /// Amount in cents.
        amount_cents: u64,
    },
    /// Move money to another account.
    Transfer {
        /// Transaction id.
        txid: TxId,
        /// Amount in cents.
        amount_cents: u64,
        /// The receiving account's name.
        to: String,
    },
    /// Read the most recent history entries (money movements only, kinds 1–5).
    History,
    /// End the session.
    Logout,
    /// Read the most recent history entries, bank notices (kind 6 and later) included.
    HistoryWithNotices,
    /// First login step, from a client that can ask for either kind of code: the same
    /// fields as [`Request::Login`], answered with [`Response::CodeRequested`].
    LoginWithCodeKind {
        /// The account name.
        username: String,
        /// The password, in clear inside the encrypted record.
        password: String,
    },
}

/// Which code the second login step takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CodeKind {
    /// A one-time code the server sent to the registered device (the console stands in).
    Device = 1,
    /// The current code of the authenticator app enrolled for the account (TOTP).
    Authenticator = 2,
}

impl CodeKind {
    /// The kind for a wire byte.
    pub fn from_byte(byte: u8) -> Option<Self> {
        [Self::Device, Self::Authenticator]
            .into_iter()
            .find(|kind| *kind as u8 == byte)
    }
}

/// What a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// The opening balance when the account was created.
    Opening = 1,
    /// A deposit.
    Deposit = 2,
    /// A withdrawal.
    Withdrawal = 3,
    /// Money sent to the counterparty.
    TransferOut = 4,
    /// Money received from the counterparty.
    TransferIn = 5,
    /// A notice: the bank lifted a lock on the account (amount 0). Sent only in answer to
    /// [`Request::HistoryWithNotices`].
    Unlocked = 6,
}

impl EntryKind {
    /// The kind for a wire byte.
    pub fn from_byte(byte: u8) -> Option<Self> {
        [
            Self::Opening,
            Self::Deposit,
            Self::Withdrawal,
            Self::TransferOut,
            Self::TransferIn,
            Self::Unlocked,
        ]
        .into_iter()
        .find(|kind| *kind as u8 == byte)
    }

    /// A word for people.
    pub fn name(self) -> &'static str {
        match self {
            Self::Opening => "opening",
            Self::Deposit => "deposit",
            Self::Withdrawal => "withdrawal",
            Self::TransferOut => "transfer out",
            Self::TransferIn => "transfer in",
            Self::Unlocked => "unlocked by the bank",
        }
    }

    /// Whether this is a bank notice rather than a movement of money: notices are left out
    /// of the answer to [`Request::History`], whose version-1 clients do not know them.
    pub fn is_notice(self) -> bool {
        self == Self::Unlocked
    }
}

/// One line of an account's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When it happened, in seconds since the Unix epoch.
    pub at_unix_secs: u64,
    /// What happened.
    pub kind: EntryKind,
    /// Amount moved, in cents.
    pub amount_cents: u64,
    /// The other account of a transfer; empty otherwise.
    pub counterparty: String,
    /// The balance right after, in cents.
    pub balance_after_cents: u64,
}

/// A response from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// A rule refused the request.
    Error(ErrorCode),
    /// The echoed bytes.
    Echo(Vec<u8>),
    /// The password was right; a one-time code was sent to the registered device.
    OtpSent {
        /// How long the code is valid, in seconds.
        ttl_secs: u32,
    },
    /// The code was right: the session is logged in.
    LoggedIn {
        /// The account name.
        username: String,
        /// Its balance, in cents.
        balance_cents: u64,
    },
    /// The balance, in cents.
    Balance(u64),
    /// A deposit, withdrawal or transfer was applied (now or by an earlier request with the
    /// same id).
    TxApplied {
        /// The transaction id.
        txid: TxId,
        /// The sender's balance right after the transaction, in cents.
        balance_cents: u64,
    },
    /// The most recent history entries, oldest first.
    History(Vec<HistoryEntry>),
    /// The session ended.
    LoggedOut,
    /// The password was right (answer to [`Request::LoginWithCodeKind`]): send the code of
    /// this kind.
    CodeRequested {
        /// The kind of code to ask the person for.
        kind: CodeKind,
        /// How long the login waits for it, in seconds.
        ttl_secs: u32,
    },
}

mod tag {
    pub const ECHO: u8 = 0x20;
    pub const LOGIN: u8 = 0x21;
    pub const SUBMIT_OTP: u8 = 0x22;
    pub const BALANCE: u8 = 0x23;
    pub const DEPOSIT: u8 = 0x24;
    pub const WITHDRAW: u8 = 0x25;
    pub const TRANSFER: u8 = 0x26;
    pub const HISTORY: u8 = 0x27;
    pub const LOGOUT: u8 = 0x28;
    pub const HISTORY_WITH_NOTICES: u8 = 0x29;
    pub const LOGIN_WITH_CODE_KIND: u8 = 0x2a;
    pub const R_ERROR: u8 = 0x80;
    pub const R_ECHO: u8 = 0x81;
    pub const R_OTP_SENT: u8 = 0x82;
    pub const R_LOGGED_IN: u8 = 0x83;
    pub const R_BALANCE: u8 = 0x84;
    pub const R_TX_APPLIED: u8 = 0x85;
    pub const R_HISTORY: u8 = 0x86;
    pub const R_LOGGED_OUT: u8 = 0x87;
    pub const R_CODE_REQUESTED: u8 = 0x88;
}

impl Request {
    /// The message bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        match self {
            Self::Echo(data) => w.u8(tag::ECHO).bytes16(data),
            Self::Login { username, password } => w.u8(tag::LOGIN).str16(username).str16(password),
            Self::SubmitOtp(code) => w.u8(tag::SUBMIT_OTP).str16(code),
            Self::Balance => w.u8(tag::BALANCE),
            Self::Deposit { txid, amount_cents } => w.u8(tag::DEPOSIT).raw(txid).u64(*amount_cents),
            Self::Withdraw { txid, amount_cents } => w.u8(tag::WITHDRAW).raw(txid).u64(*amount_cents),
            Self::Transfer { txid, amount_cents, to } => w.u8(tag::TRANSFER).raw(txid).u64(*amount_cents).str16(to),
            Self::History => w.u8(tag::HISTORY),
            Self::Logout => w.u8(tag::LOGOUT),
            Self::HistoryWithNotices => w.u8(tag::HISTORY_WITH_NOTICES),
            Self::LoginWithCodeKind { username, password } => {
                w.u8(tag::LOGIN_WITH_CODE_KIND).str16(username).str16(password)
            }
        };
        w.into_bytes()
    }

    /// Parses message bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let request = match r.u8("type")? {
            tag::ECHO => Self::Echo(r.bytes16(MAX_ECHO_BYTES, "data")?.to_vec()),
            tag::LOGIN => Self::Login {
                username: r.str16(MAX_USERNAME_BYTES, "username")?.to_string(),
                password: r.str16(MAX_PASSWORD_BYTES, "password")?.to_string(),
            },
            tag::SUBMIT_OTP => Self::SubmitOtp(r.str16(MAX_OTP_FIELD_BYTES, "code")?.to_string()),
            tag::BALANCE => Self::Balance,
            tag::DEPOSIT => Self::Deposit {
                txid: r.array("txid")?,
                amount_cents: r.u64("amount")?,
            },
            tag::WITHDRAW => Self::Withdraw {
                txid: r.array("txid")?,
                amount_cents: r.u64("amount")?,
            },
            tag::TRANSFER => Self::Transfer {
                txid: r.array("txid")?,
                amount_cents: r.u64("amount")?,
                to: r.str16(MAX_USERNAME_BYTES, "to")?.to_string(),
            },
            tag::HISTORY => Self::History,
            tag::LOGOUT => Self::Logout,
            tag::HISTORY_WITH_NOTICES => Self::HistoryWithNotices,
            tag::LOGIN_WITH_CODE_KIND => Self::LoginWithCodeKind {
                username: r.str16(MAX_USERNAME_BYTES, "username")?.to_string(),
                password: r.str16(MAX_PASSWORD_BYTES, "password")?.to_string(),
            },
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(request)
    }
}

/// Shows a request for traces and logs with the password and the code masked.
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Echo(data) => write!(f, "Echo({} bytes)", data.len()),
            Self::Login { username, .. } => write!(f, "Login(username {username:?}, password ********)"),
            Self::SubmitOtp(_) => write!(f, "SubmitOtp(code ******)"),
            Self::Balance => write!(f, "Balance"),
            Self::Deposit { txid, amount_cents } => {
                write!(
                    f,
                    "Deposit(txid {}, amount {})",
                    hex(txid),
                    money::format_cents(*amount_cents)
                )
            }
            Self::Withdraw { txid, amount_cents } => {
                write!(
                    f,
                    "Withdraw(txid {}, amount {})",
                    hex(txid),
                    money::format_cents(*amount_cents)
                )
            }
            Self::Transfer { txid, amount_cents, to } => write!(
                f,
                "Transfer(txid {}, amount {}, to {to:?})",
                hex(txid),
                money::format_cents(*amount_cents)
            ),
            Self::History => write!(f, "History"),
            Self::Logout => write!(f, "Logout"),
            Self::HistoryWithNotices => write!(f, "HistoryWithNotices"),
            Self::LoginWithCodeKind { username, .. } => {
                write!(f, "LoginWithCodeKind(username {username:?}, password ********)")
            }
        }
    }
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Response {
    /// The message bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        match self {
            Self::Error(code) => w.u8(tag::R_ERROR).str16(code.as_str()),
            Self::Echo(data) => w.u8(tag::R_ECHO).bytes16(data),
            Self::OtpSent { ttl_secs } => w.u8(tag::R_OTP_SENT).u32(*ttl_secs),
            Self::LoggedIn {
                username,
                balance_cents,
            } => w.u8(tag::R_LOGGED_IN).str16(username).u64(*balance_cents),
            Self::Balance(cents) => w.u8(tag::R_BALANCE).u64(*cents),
            Self::TxApplied { txid, balance_cents } => w.u8(tag::R_TX_APPLIED).raw(txid).u64(*balance_cents),
            Self::History(entries) => {
                assert!(entries.len() <= MAX_HISTORY_ENTRIES, "history is bounded by the ledger");
                w.u8(tag::R_HISTORY).u16(u16::try_from(entries.len()).expect("bounded"));
                for entry in entries {
                    w.u64(entry.at_unix_secs)
                        .u8(entry.kind as u8)
                        .u64(entry.amount_cents)
                        .str16(&entry.counterparty)
                        .u64(entry.balance_after_cents);
                }
                &mut w
            }
            Self::LoggedOut => w.u8(tag::R_LOGGED_OUT),
            Self::CodeRequested { kind, ttl_secs } => w.u8(tag::R_CODE_REQUESTED).u8(*kind as u8).u32(*ttl_secs),
        };
        w.into_bytes()
    }

    /// Parses message bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let response = match r.u8("type")? {
            tag::R_ERROR => {
                let name = r.str16(MAX_ERROR_CODE_BYTES, "code")?;
                Self::Error(ErrorCode::from_name(name).ok_or(DecodeError::BadValue("code"))?)
            }
            tag::R_ECHO => Self::Echo(r.bytes16(MAX_ECHO_BYTES, "data")?.to_vec()),
            tag::R_OTP_SENT => Self::OtpSent {
                ttl_secs: r.u32("ttl_secs")?,
            },
            tag::R_LOGGED_IN => Self::LoggedIn {
                username: r.str16(MAX_USERNAME_BYTES, "username")?.to_string(),
                balance_cents: r.u64("balance")?,
            },
            tag::R_BALANCE => Self::Balance(r.u64("balance")?),
            tag::R_TX_APPLIED => Self::TxApplied {
                txid: r.array("txid")?,
                balance_cents: r.u64("balance")?,
            },
            tag::R_HISTORY => Self::History(decode_history(&mut r)?),
            tag::R_LOGGED_OUT => Self::LoggedOut,
            tag::R_CODE_REQUESTED => Self::CodeRequested {
                kind: CodeKind::from_byte(r.u8("kind")?).ok_or(DecodeError::BadValue("kind"))?,
                ttl_secs: r.u32("ttl_secs")?,
            },
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(response)
    }
}

fn decode_history(r: &mut Reader<'_>) -> Result<Vec<HistoryEntry>, DecodeError> {
    let count = usize::from(r.u16("count")?);
    if count > MAX_HISTORY_ENTRIES {
        return Err(DecodeError::TooLong("entries"));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        entries.push(HistoryEntry {
            at_unix_secs: r.u64("time")?,
            kind: EntryKind::from_byte(r.u8("kind")?).ok_or(DecodeError::BadValue("kind"))?,
            amount_cents: r.u64("amount")?,
            counterparty: r.str16(MAX_USERNAME_BYTES, "counterparty")?.to_string(),
            balance_after_cents: r.u64("balance_after")?,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_request() -> Vec<Request> {
        vec![
            Request::Echo(b"ping".to_vec()),
            Request::Login {
                username: "alice".into(),
                password: "correct horse".into(),
            },
            Request::SubmitOtp("123456".into()),
            Request::Balance,
            Request::Deposit {
                txid: [1; 16],
                amount_cents: 1234,
            },
            Request::Withdraw {
                txid: [2; 16],
                amount_cents: 5,
            },
            Request::Transfer {
                txid: [3; 16],
                amount_cents: 99,
                to: "bob".into(),
            },
            Request::History,
            Request::Logout,
            Request::HistoryWithNotices,
            Request::LoginWithCodeKind {
                username: "alice".into(),
                password: "correct horse".into(),
            },
        ]
    }

    #[test]
    fn every_request_round_trips() {
        for request in every_request() {
            assert_eq!(Request::decode(&request.encode()).unwrap(), request);
        }
    }

    #[test]
    fn every_response_round_trips() {
        let responses = vec![
            Response::Error(ErrorCode::InsufficientFunds),
            Response::Echo(vec![1, 2, 3]),
            Response::OtpSent { ttl_secs: 120 },
            Response::CodeRequested {
                kind: CodeKind::Authenticator,
                ttl_secs: 120,
            },
            Response::CodeRequested {
                kind: CodeKind::Device,
                ttl_secs: 120,
            },
            Response::LoggedIn {
                username: "alice".into(),
                balance_cents: 10_000,
            },
            Response::Balance(42),
            Response::TxApplied {
                txid: [9; 16],
                balance_cents: 7,
            },
            Response::History(vec![HistoryEntry {
                at_unix_secs: 1_700_000_000,
                kind: EntryKind::TransferOut,
                amount_cents: 500,
                counterparty: "bob".into(),
                balance_after_cents: 9_500,
            }]),
            Response::History(vec![HistoryEntry {
                at_unix_secs: 1_700_000_100,
                kind: EntryKind::Unlocked,
                amount_cents: 0,
                counterparty: String::new(),
                balance_after_cents: 9_500,
            }]),
            Response::LoggedOut,
        ];
        for response in responses {
            assert_eq!(Response::decode(&response.encode()).unwrap(), response);
        }
    }

    #[test]
    fn refuses_unknown_type_and_trailing_bytes() {
        assert_eq!(Request::decode(&[0x7f]), Err(DecodeError::UnknownType(0x7f)));
        assert_eq!(Request::decode(&[tag::BALANCE, 0]), Err(DecodeError::TrailingBytes));
        assert_eq!(Request::decode(&[]), Err(DecodeError::Truncated("type")));
    }

    #[test]
    fn refuses_history_count_over_the_limit() {
        let bytes = [tag::R_HISTORY, 0xff, 0xff];
        assert_eq!(Response::decode(&bytes), Err(DecodeError::TooLong("entries")));
    }

    #[test]
    fn a_txid_carries_its_creation_time_in_its_first_48_bits() {
        let created_ms = 1_700_000_000_123;
        let txid = txid_at(created_ms);
        assert_eq!(txid_created_ms(&txid), created_ms);
        assert_eq!(&txid[..TXID_TIME_BYTES], &[0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b]);
        assert_ne!(
            txid_at(created_ms)[TXID_TIME_BYTES..],
            txid[TXID_TIME_BYTES..],
            "random tail"
        );
        let mut largest = [0xff; 16];
        assert_eq!(txid_created_ms(&largest), (1 << 48) - 1);
        largest[0] = 0;
        assert_eq!(txid_created_ms(&largest), (1 << 40) - 1);
        assert_eq!(txid_created_ms(&txid_at(1 << 48)), 0, "only 48 bits are kept");
    }

    #[test]
    fn debug_output_masks_password_and_code() {
        let login = Request::Login {
            username: "alice".into(),
            password: "hunter2hunter2".into(),
        };
        assert!(!format!("{login:?}").contains("hunter2"));
        assert!(!format!("{:?}", Request::SubmitOtp("482931".into())).contains("482931"));
    }
}
