//! `--trace`: watch the protocol work. Every frame sent and received becomes one or two lines
//! on standard error, and so does every local step of the handshake (signature, pin check,
//! key derivation); `--trace=bytes` adds a hex dump of each frame exactly as sent, with the
//! fields of each handshake frame named. The server also shows each password check's
//! PBKDF2 work and each money request's journal append ([`crate::server::session`]), and
//! then who sends the reply and when: the commit thread, right after the `fdatasync` that
//! covers the record, or the connection thread when it was durable already
//! ([`crate::server::reply`]). Each line is printed by the thread that does the step.
//!
//! ```text
//! [trace client#1] --> ClientHello frame, 75 bytes: …          a frame this side sent
//! [trace client#1] <-- ServerHello frame, 881 bytes: …         a frame this side received
//! [trace client#1]     RSA-PSS-SHA256 signature …: verified    a local step
//! [trace client#1] -->   request Deposit(…)                    the message inside a record
//! ```
//!
//! Invariant: nothing secret is ever printed. Key bytes are never passed here (only labels);
//! passwords and one-time codes are masked by [`crate::message`]'s `Debug` of a request
//! before they arrive; responses carry no secret and are shown by [`response`]; randoms and
//! public keys are abbreviated. Records are dumped only as ciphertext. With tracing off
//! nothing at all is printed.

use std::fmt::{self, Display};
use std::io::Write;

use crate::error::ChannelError;
use crate::message::{self, EntryKind, HistoryEntry, Response};
use crate::money::format_cents;

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceLevel {
    /// Print nothing (the default).
    #[default]
    Off,
    /// One or two lines per frame.
    Frames,
    /// Lines per frame plus a hex dump of the frame's bytes.
    Bytes,
}

impl TraceLevel {
    /// Parses the value of `--trace` / `--trace=bytes`.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("frames") | Some("1") => Some(Self::Frames),
            Some("bytes") => Some(Self::Bytes),
            Some("off") | Some("0") => Some(Self::Off),
            Some(_) => None,
        }
    }
}

/// Which way a frame went.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// Sent by this side.
    Sent,
    /// Received by this side.
    Received,
    /// A local step (key derivation, verification result).
    Local,
}

/// The side name of the short first-contact connection that only learns the server's key.
pub const PROBE_SIDE: &str = "client-probe";

/// A tracer for one side of one connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tracer {
    level: TraceLevel,
    side: &'static str,
    connection: u64,
}

impl Tracer {
    /// A tracer that prints nothing.
    pub fn off() -> Self {
        Self::default()
    }

    /// A tracer for `side` ("client" or "server") of connection number `connection`.
    pub fn new(level: TraceLevel, side: &'static str, connection: u64) -> Self {
        Self {
            level,
            side,
            connection,
        }
    }

    /// The same tracer, labelled as the first-contact probe connection ([`PROBE_SIDE`]), so
    /// its lines are not mistaken for the session that follows.
    pub fn probe(self) -> Self {
        Self {
            side: PROBE_SIDE,
            ..self
        }
    }

    /// Whether anything will be printed.
    pub fn enabled(&self) -> bool {
        self.level != TraceLevel::Off
    }

    /// Which direction key protects a record going `direction` from this side: the client
    /// sends with the client-to-server key, the server with the server-to-client key.
    pub fn record_key(&self, direction: Direction) -> &'static str {
        let is_server = self.side == "server";
        match (direction, is_server) {
            (Direction::Sent, false) | (Direction::Received, true) => "c2s",
            _ => "s2c",
        }
    }

    /// Prints one line about a frame or step.
    pub fn line(&self, direction: Direction, text: impl Display) {
        if !self.enabled() {
            return;
        }
        let arrow = match direction {
            Direction::Sent => "-->",
            Direction::Received => "<--",
            Direction::Local => "   ",
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "[trace {}#{}] {arrow} {text}",
            self.side,
            self.connection
        );
    }

    /// With `--trace=bytes`, prints a hex dump of a frame as it crossed the wire.
    pub fn dump(&self, frame_bytes: &[u8]) {
        if self.level != TraceLevel::Bytes {
            return;
        }
        let mut out = std::io::stderr().lock();
        for (row, chunk) in frame_bytes.chunks(16).enumerate() {
            let hex: Vec<String> = chunk.iter().map(|byte| format!("{byte:02x}")).collect();
            let _ = writeln!(
                out,
                "[trace {}#{}]       {:04x}  {}",
                self.side,
                self.connection,
                row * 16,
                hex.join(" ")
            );
        }
    }
}

/// One field of a frame for [`Tracer::fields`]: where it starts, how long it is, what it is.
pub type FrameField = (usize, usize, String);

impl Tracer {
    /// With `--trace=bytes`, names the fields of a handshake frame after its hex dump, one
    /// line each: `offset+length  meaning` (offsets as in the dump, in hex).
    pub fn fields(&self, fields: &[FrameField]) {
        if self.level != TraceLevel::Bytes {
            return;
        }
        let mut out = std::io::stderr().lock();
        for (offset, length, meaning) in fields {
            let _ = writeln!(
                out,
                "[trace {}#{}]         {offset:04x}+{length:<4} {meaning}",
                self.side, self.connection
            );
        }
    }
}

/// The fields every frame starts with: the 4-byte length and the 1-byte type.
pub fn header_fields(frame_bytes: &[u8], kind: &str) -> Vec<FrameField> {
    let length = frame_bytes
        .get(..4)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map_or(0, u32::from_be_bytes);
    let type_byte = frame_bytes.get(4).copied().unwrap_or(0);
    vec![
        (
            0,
            4,
            format!("frame length, u32 big-endian = {length} (the bytes after these 4)"),
        ),
        (4, 1, format!("frame type 0x{type_byte:02x} = {kind}")),
    ]
}

/// The first 4 bytes of a value in hex followed by "…", for randoms and public keys.
pub fn abbreviate(bytes: &[u8]) -> String {
    let head: String = bytes.iter().take(4).map(|byte| format!("{byte:02x}")).collect();
    format!("{head}… ({} bytes)", bytes.len())
}

/// Why a connection ended, in words for the trace: a peer hanging up between frames is the
/// normal end of a session, not a failure.
pub fn closing_reason(err: &ChannelError) -> String {
    match err {
        ChannelError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the peer closed the connection".into()
        }
        other => other.to_string(),
    }
}

/// History entries shown in full in a trace line; longer histories show the most recent.
const TRACED_HISTORY_ENTRIES: usize = 3;

/// A response for a trace line: amounts as money, ids as hex, histories shortened.
pub fn response(response: &Response) -> impl Display + '_ {
    ResponseTrace(response)
}

struct ResponseTrace<'a>(&'a Response);

impl Display for ResponseTrace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Response::Error(code) => write!(f, "Error({code})"),
            Response::Echo(data) => write!(f, "Echo({} bytes)", data.len()),
            Response::OtpSent { ttl_secs } => {
                write!(f, "OtpSent(code sent to the registered device, valid {ttl_secs} s)")
            }
            Response::CodeRequested {
                kind: crate::message::CodeKind::Device,
                ttl_secs,
            } => write!(
                f,
                "CodeRequested(code sent to the registered device, valid {ttl_secs} s)"
            ),
            Response::CodeRequested {
                kind: crate::message::CodeKind::Authenticator,
                ttl_secs,
            } => write!(
                f,
                "CodeRequested(the code of the account's authenticator app, within {ttl_secs} s)"
            ),
            Response::LoggedIn {
                username,
                balance_cents,
            } => write!(
                f,
                "LoggedIn(username {username:?}, balance {})",
                format_cents(*balance_cents)
            ),
            Response::Balance(cents) => write!(f, "Balance({})", format_cents(*cents)),
            Response::TxApplied { txid, balance_cents } => write!(
                f,
                "TxApplied(txid {}, balance {})",
                message::hex(txid),
                format_cents(*balance_cents)
            ),
            Response::History(entries) => write_history(f, entries),
            Response::LoggedOut => write!(f, "LoggedOut"),
        }
    }
}

fn write_history(f: &mut fmt::Formatter<'_>, entries: &[HistoryEntry]) -> fmt::Result {
    write!(f, "History({} entries", entries.len())?;
    let shown = entries.len().min(TRACED_HISTORY_ENTRIES);
    if shown < entries.len() {
        write!(f, ", last {shown}")?;
    }
    let mut separator = ": ";
    for entry in &entries[entries.len() - shown..] {
        write!(
            f,
            "{separator}{} {}",
            entry.kind.name(),
            format_cents(entry.amount_cents)
        )?;
        match entry.kind {
            EntryKind::TransferOut => write!(f, " to {}", entry.counterparty)?,
            EntryKind::TransferIn => write!(f, " from {}", entry.counterparty)?,
            _ => {}
        }
        write!(f, " -> {}", format_cents(entry.balance_after_cents))?;
        separator = "; ";
    }
    write!(f, ")")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn responses_show_money_and_hex() {
        let applied = Response::TxApplied {
            txid: [0xab; 16],
            balance_cents: 102_550,
        };
        assert_eq!(
            response(&applied).to_string(),
            format!("TxApplied(txid {}, balance 1025.50)", "ab".repeat(16))
        );
        assert_eq!(
            response(&Response::Error(ErrorCode::InsufficientFunds)).to_string(),
            "Error(insufficient_funds)"
        );
    }

    #[test]
    fn long_histories_are_shortened() {
        let entry = |amount| HistoryEntry {
            at_unix_secs: 0,
            kind: EntryKind::TransferOut,
            amount_cents: amount,
            counterparty: "alice".into(),
            balance_after_cents: 1,
        };
        let history = Response::History((1..=5).map(entry).collect());
        assert_eq!(
            response(&history).to_string(),
            "History(5 entries, last 3: transfer out 0.03 to alice -> 0.01; \
             transfer out 0.04 to alice -> 0.01; transfer out 0.05 to alice -> 0.01)"
        );
    }

    #[test]
    fn a_clean_hang_up_is_not_reported_as_a_failure() {
        let eof = ChannelError::Io(std::io::ErrorKind::UnexpectedEof.into());
        assert_eq!(closing_reason(&eof), "the peer closed the connection");
        assert_eq!(
            closing_reason(&ChannelError::RecordRejected),
            "record failed authentication"
        );
    }
}
