//! The error enums, one per boundary, readable in one place.
//!
//! - [`DecodeError`]: bytes from a peer or the disk that do not parse. Never a panic.
//! - [`ChannelError`]: the secure channel failed; the connection is closed, nothing else.
//! - [`ErrorCode`]: a rule of the bank said no; sent to the client as a stable name.
//! - [`JournalError`]: the disk said no, or the journal is damaged.
//! - [`ClientError`]: what the client library reports to its caller.
//!
//! Handled errors are values of these types; programmer errors are `assert!`s elsewhere.

use std::fmt;
use std::io;

/// Bytes that do not parse as the message or record they claim to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before the field named here.
    Truncated(&'static str),
    /// A length-prefixed field named here is longer than its limit.
    TooLong(&'static str),
    /// A string field named here is not valid UTF-8.
    BadUtf8(&'static str),
    /// Bytes were left over after the last field.
    TrailingBytes,
    /// The type byte is not one this decoder knows.
    UnknownType(u8),
    /// A field named here holds a value outside its allowed set.
    BadValue(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(field) => write!(f, "input ends inside field `{field}`"),
            Self::TooLong(field) => write!(f, "field `{field}` is longer than its limit"),
            Self::BadUtf8(field) => write!(f, "field `{field}` is not UTF-8"),
            Self::TrailingBytes => write!(f, "unexpected bytes after the last field"),
            Self::UnknownType(kind) => write!(f, "unknown message type 0x{kind:02x}"),
            Self::BadValue(field) => write!(f, "field `{field}` has a value outside its range"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a secure channel ended. Each of these closes the connection; none is sent to the
/// peer (a network attacker learns nothing from which check failed).
#[derive(Debug)]
pub enum ChannelError {
    /// The socket failed or was closed by the peer.
    Io(io::Error),
    /// The peer did not send a complete frame in time.
    Timeout,
    /// The peer announced a frame body larger than [`crate::limits::MAX_FRAME_BODY_BYTES`].
    FrameTooLarge(u32),
    /// The peer announced an empty frame body (every frame has at least a type byte).
    EmptyFrame,
    /// A frame or message did not parse.
    Decode(DecodeError),
    /// A frame arrived that the current handshake state does not accept.
    UnexpectedFrame {
        /// What the state machine was waiting for.
        expected: &'static str,
        /// The frame type byte that arrived.
        got: u8,
    },
    /// The ClientHello named a protocol magic or version this server does not speak.
    UnsupportedVersion,
    /// The server's public key is not an acceptable RSA key (wrong size or not RSA).
    BadServerKey,
    /// The server's handshake signature did not verify.
    BadSignature,
    /// The server's key is not the one pinned for this address.
    PinMismatch {
        /// The fingerprint the client expected.
        expected: String,
        /// The fingerprint the server presented.
        presented: String,
    },
    /// The X25519 shared secret was all zeros (a low-order public key).
    NonContributoryKeyExchange,
    /// The client's Finished MAC did not verify.
    BadFinished,
    /// A record failed authentication: forged, flipped, replayed, reordered or truncated.
    RecordRejected,
    /// The 64-bit record sequence number would wrap (never reached in practice).
    SequenceExhausted,
    /// The server refused the connection because it is at its connection cap.
    ServerBusy,
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(err) => write!(f, "connection failed: {err}"),
            Self::Timeout => write!(f, "peer too slow: time limit reached"),
            Self::FrameTooLarge(len) => write!(f, "peer announced a {len}-byte frame, over the limit"),
            Self::EmptyFrame => write!(f, "peer sent an empty frame"),
            Self::Decode(err) => write!(f, "malformed message: {err}"),
            Self::UnexpectedFrame { expected, got } => {
                write!(f, "expected {expected}, got frame type 0x{got:02x}")
            }
            Self::UnsupportedVersion => write!(f, "unsupported protocol magic or version"),
            Self::BadServerKey => write!(f, "server key is not an RSA-3072 (or larger) key"),
            Self::BadSignature => write!(f, "server handshake signature does not verify"),
            Self::PinMismatch { expected, presented } => write!(
                f,
                "server key does not match the pin: expected {expected}, server presented {presented}"
            ),
            Self::NonContributoryKeyExchange => write!(f, "X25519 shared secret is all zeros"),
            Self::BadFinished => write!(f, "client Finished MAC does not verify"),
            Self::RecordRejected => write!(f, "record failed authentication"),
            Self::SequenceExhausted => write!(f, "record sequence number exhausted"),
            Self::ServerBusy => write!(f, "server busy: too many connections, try again later"),
        }
    }
}

impl std::error::Error for ChannelError {}

impl From<io::Error> for ChannelError {
    fn from(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Io(err),
        }
    }
}

impl From<DecodeError> for ChannelError {
    fn from(err: DecodeError) -> Self {
        Self::Decode(err)
    }
}

/// A rule of the bank that refused a request. Sent to the client as its stable name
/// ([`ErrorCode::as_str`]); the client never sees internals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request needs a logged-in session.
    NotAuthenticated,
    /// The request is not allowed in the session's current state (e.g. a code before a password).
    UnexpectedRequest,
    /// Wrong username or password (the two are indistinguishable on purpose).
    InvalidCredentials,
    /// The account is locked after too many failed logins.
    AccountLocked,
    /// The one-time code is wrong; tries remain.
    OtpInvalid,
    /// The one-time code is wrong and no tries remain: log in again.
    OtpTriesExhausted,
    /// The one-time code is older than its lifetime: log in again.
    OtpExpired,
    /// The amount is zero.
    AmountMustBePositive,
    /// The amount is over [`crate::limits::MAX_TRANSACTION_CENTS`].
    AmountExceedsLimit,
    /// The account does not hold enough money.
    InsufficientFunds,
    /// The credit would take a balance over [`crate::limits::MAX_BALANCE_CENTS`].
    BalanceWouldOverflow,
    /// The transfer names an account that does not exist.
    UnknownRecipient,
    /// The transfer names the sender's own account.
    CannotTransferToSelf,
    /// The transaction id was already used for a different request.
    TransactionIdReused,
    /// The creation time in the transaction id is older than the retention window: the id
    /// may have been used and forgotten, so it is never applied.
    TransactionIdExpired,
    /// The creation time in the transaction id is further ahead of the server's clock than
    /// the allowed skew.
    TransactionIdInFuture,
    /// A field is outside its allowed shape (e.g. a malformed recipient name).
    InvalidField,
    /// The server cannot serve this request now (e.g. the one-time code could not be delivered).
    Unavailable,
}

impl ErrorCode {
    /// Every code, for decoding and for documentation tests.
    pub const ALL: [ErrorCode; 18] = [
        Self::NotAuthenticated,
        Self::UnexpectedRequest,
        Self::InvalidCredentials,
        Self::AccountLocked,
        Self::OtpInvalid,
        Self::OtpTriesExhausted,
        Self::OtpExpired,
        Self::AmountMustBePositive,
        Self::AmountExceedsLimit,
        Self::InsufficientFunds,
        Self::BalanceWouldOverflow,
        Self::UnknownRecipient,
        Self::CannotTransferToSelf,
        Self::TransactionIdReused,
        Self::TransactionIdExpired,
        Self::TransactionIdInFuture,
        Self::InvalidField,
        Self::Unavailable,
    ];

    /// The stable wire name of this code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAuthenticated => "not_authenticated",
            Self::UnexpectedRequest => "unexpected_request",
            Self::InvalidCredentials => "invalid_credentials",
            Self::AccountLocked => "account_locked",
            Self::OtpInvalid => "otp_invalid",
            Self::OtpTriesExhausted => "otp_tries_exhausted",
            Self::OtpExpired => "otp_expired",
            Self::AmountMustBePositive => "amount_must_be_positive",
            Self::AmountExceedsLimit => "amount_exceeds_limit",
            Self::InsufficientFunds => "insufficient_funds",
            Self::BalanceWouldOverflow => "balance_would_overflow",
            Self::UnknownRecipient => "unknown_recipient",
            Self::CannotTransferToSelf => "cannot_transfer_to_self",
            Self::TransactionIdReused => "transaction_id_reused",
            Self::TransactionIdExpired => "transaction_id_expired",
            Self::TransactionIdInFuture => "transaction_id_in_future",
            Self::InvalidField => "invalid_field",
            Self::Unavailable => "unavailable",
        }
    }

    /// The code with this wire name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == name)
    }

    /// A sentence for a person, shown by the client next to the code.
    pub fn explain(self) -> &'static str {
        match self {
            Self::NotAuthenticated => "log in first",
            Self::UnexpectedRequest => "that request is not allowed at this step",
            Self::InvalidCredentials => "wrong username or password",
            Self::AccountLocked => "too many failed logins: the account is locked for 15 minutes",
            Self::OtpInvalid => "wrong one-time code, try again",
            Self::OtpTriesExhausted => "wrong one-time code too many times: log in again",
            Self::OtpExpired => "the one-time code expired: log in again",
            Self::AmountMustBePositive => "the amount must be more than zero",
            Self::AmountExceedsLimit => "the amount is over the per-transaction limit of 1000000.00",
            Self::InsufficientFunds => "not enough money in the account",
            Self::BalanceWouldOverflow => "the resulting balance would exceed the maximum balance",
            Self::UnknownRecipient => "no account has that name",
            Self::CannotTransferToSelf => "you cannot transfer to your own account",
            Self::TransactionIdReused => "this transaction id was already used for another request",
            Self::TransactionIdExpired => {
                "this transaction id is older than the 24 hours ids are remembered: nothing was done, start again"
            }
            Self::TransactionIdInFuture => {
                "this transaction id is dated in the future: check this computer's clock; nothing was done"
            }
            Self::InvalidField => "a field is malformed",
            Self::Unavailable => "the server cannot serve this now, try again later",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The journal could not be written, or what is on disk is damaged.
#[derive(Debug)]
pub enum JournalError {
    /// The operating system refused a read, write, sync or lock.
    Io(io::Error),
    /// Another server process holds the data directory's lock.
    Locked(String),
    /// Acknowledged data does not match its checksum or chain value, or does not parse.
    Corrupt {
        /// The damaged file, as a path.
        file: String,
        /// Byte offset of the first damaged record or batch in that file.
        offset: u64,
        /// What was wrong with it.
        reason: String,
    },
    /// The files of the data directory do not fit together (a segment or checkpoint is
    /// missing, or a segment does not start where the one before it ended).
    Inconsistent(String),
    /// A sync failed earlier; the journal refuses all further work (never retried).
    Poisoned,
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(err) => write!(f, "journal I/O failed: {err}"),
            Self::Locked(path) => write!(
                f,
                "another bank-server is already using {path} (its lock is held); stop it first"
            ),
            Self::Corrupt { file, offset, reason } => write!(
                f,
                "journal damaged in {file} at byte offset {offset}: {reason}; refusing to start \
                 (restore the data directory from a backup; `bank-server verify` shows the details)"
            ),
            Self::Inconsistent(reason) => write!(
                f,
                "the data directory is inconsistent: {reason}; refusing to start \
                 (restore it from a backup; `bank-server verify` shows the details)"
            ),
            Self::Poisoned => write!(f, "an earlier journal sync failed; the server must restart"),
        }
    }
}

impl std::error::Error for JournalError {}

impl From<io::Error> for JournalError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

/// What the client library reports to its caller.
#[derive(Debug)]
pub enum ClientError {
    /// The secure channel failed (includes pin mismatch and bad signature).
    Channel(ChannelError),
    /// The server refused the request with this code.
    Refused(ErrorCode),
    /// The server answered with a message that does not fit the request.
    UnexpectedResponse(&'static str),
    /// The known-servers file could not be read or written.
    KnownServers(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Channel(err) => write!(f, "{err}"),
            Self::Refused(code) => write!(f, "{}: {}", code.as_str(), code.explain()),
            Self::UnexpectedResponse(what) => write!(f, "unexpected response from server: {what}"),
            Self::KnownServers(msg) => write!(f, "known servers file: {msg}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<ChannelError> for ClientError {
    fn from(err: ChannelError) -> Self {
        Self::Channel(err)
    }
}

impl From<io::Error> for ClientError {
    fn from(err: io::Error) -> Self {
        Self::Channel(ChannelError::from(err))
    }
}

/// Why an operator command (`bank-server unlock`, `stats`, …) could not be carried out: the
/// boundary between the command line and the bank, offline or through the admin socket.
#[derive(Debug)]
pub enum OperatorError {
    /// No server runs, and the data directory could not be opened (damaged, or I/O).
    Journal(JournalError),
    /// A server holds the data directory's lock, but its admin socket does not answer.
    NoAnswer {
        /// The socket's path.
        socket: String,
        /// What connecting to it gave.
        error: io::Error,
    },
    /// The admin socket failed, or timed out, in the middle of a command.
    Io(io::Error),
    /// The server's answer is not a valid operator reply.
    BadReply(String),
}

impl fmt::Display for OperatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Journal(err) => write!(f, "{err}"),
            Self::NoAnswer { socket, error } => write!(
                f,
                "a bank-server holds the data directory's lock, but its admin socket {socket} does not \
                 answer ({error}); if it is starting, try again in a moment"
            ),
            Self::Io(err) => write!(f, "the admin socket failed: {err}"),
            Self::BadReply(what) => write!(f, "the server's answer is not a valid operator reply: {what}"),
        }
    }
}

impl std::error::Error for OperatorError {}

impl From<JournalError> for OperatorError {
    fn from(err: JournalError) -> Self {
        Self::Journal(err)
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// The RSA key file could not be read, parsed, generated or written.
    Identity(io::Error),
    /// The journal could not be opened, is locked by another server, or is damaged.
    Journal(JournalError),
    /// The listen address could not be bound.
    Bind(io::Error),
    /// The admin socket (this path) could not be created.
    Operator(String, io::Error),
    /// The file limit leaves no room for a single connection.
    FileLimit(crate::server::fd_limit::FdLimitTooLow),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Identity(err) => write!(f, "server key: {err}"),
            Self::Journal(err) => write!(f, "{err}"),
            Self::Bind(err) => write!(f, "cannot listen: {err}"),
            Self::Operator(path, err) => write!(
                f,
                "cannot create the admin socket {path}: {err} (a Unix socket path must be under 108 bytes)"
            ),
            Self::FileLimit(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Why a one-time code could not be delivered (the outbox file or the `--otp-command`
/// program). The login is answered `unavailable` and no failure is counted: the customer
/// did nothing wrong.
#[derive(Debug)]
pub enum DeliveryError {
    /// The outbox file could not be written.
    Outbox(io::Error),
    /// The program could not be started (missing, not executable, …).
    CommandStart(io::Error),
    /// The program ended unsuccessfully: its exit status or signal.
    CommandFailed(String),
    /// The program was still running at its deadline (seconds) and was killed.
    CommandTimedOut(u64),
    /// Waiting for the program failed.
    CommandIo(io::Error),
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Outbox(err) => write!(f, "could not write it to the outbox: {err}"),
            Self::CommandStart(err) => write!(f, "could not start the --otp-command program: {err}"),
            Self::CommandFailed(status) => write!(f, "the --otp-command program failed ({status})"),
            Self::CommandTimedOut(secs) => {
                write!(
                    f,
                    "the --otp-command program did not finish within {secs} s and was killed"
                )
            }
            Self::CommandIo(err) => write!(f, "could not wait for the --otp-command program: {err}"),
        }
    }
}

impl std::error::Error for DeliveryError {}
