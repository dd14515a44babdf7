//! `--trace`: watch the protocol work. Every frame sent and received becomes one or two lines
//! on standard error; `--trace=bytes` adds a hex dump of each frame exactly as sent.
//!
//! Invariant: nothing secret is ever printed. Key bytes are never passed here (only labels);
//! passwords and one-time codes are masked by [`crate::message`]'s trace formatting before
//! they arrive; randoms and public keys are abbreviated.

use std::fmt::Display;
use std::io::Write;

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

    /// Whether anything will be printed.
    pub fn enabled(&self) -> bool {
        self.level != TraceLevel::Off
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

/// The first 4 bytes of a value in hex followed by "…", for randoms and public keys.
pub fn abbreviate(bytes: &[u8]) -> String {
    let head: String = bytes.iter().take(4).map(|byte| format!("{byte:02x}")).collect();
    format!("{head}… ({} bytes)", bytes.len())
}
