//! The command line's side of the operator commands: each runs through the admin socket of
//! the running server when one runs, and offline on the data directory when none does.
//!
//! Which way is decided by the data directory's lock (`bank.lock`), the one proof that a
//! server runs: [`choose`] tries to take it. If it can, no server runs, and this process
//! keeps the lock (so none can start) and opens the [`Bank`] itself; if the lock is held, a
//! server runs and must answer on `DIR/admin.sock`. Either way the same
//! [`operator::execute`] does the work, so both ways give the same answer.
//!
//! Invariants: a password travels only inside an `OperatorRequest` frame on the local
//! socket (never in argv), in buffers wiped after use; every wait on the socket is bounded
//! ([`OPERATOR_IO_TIMEOUT_SECS`] to send, [`OPERATOR_REPLY_TIMEOUT_SECS`] for the reply).

use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{ChannelError, JournalError, OperatorError};
use crate::frame::{self, FrameKind};
use crate::limits::{OPERATOR_IO_TIMEOUT_SECS, OPERATOR_REPLY_TIMEOUT_SECS};
use crate::server::ServerConfig;
use crate::server::bank::{self, Bank};
use crate::server::operator::{self, Command, Context, Reply};
use crate::server::operator_socket::socket_path;

/// Where an operator command runs.
#[derive(Debug)]
pub enum Target {
    /// A running server answers on this admin socket.
    Server {
        /// The socket's path.
        socket: PathBuf,
    },
    /// No server runs: this process holds the data directory's lock and its bank.
    Offline {
        /// The bank, opened (and recovered) by this process.
        bank: Box<Bank>,
    },
    /// No server runs: this process holds the lock (if it could take it) and only reads the
    /// files (`verify`).
    OfflineReadOnly {
        /// The lock, held until the command ends; `None` if the directory is read-only.
        lock: Option<File>,
    },
}

/// Decides where a command on `config.data_dir` runs. `open_bank` opens the bank offline;
/// without it (for `verify`) the lock is only held.
pub fn choose(config: &ServerConfig, open_bank: bool) -> Result<Target, OperatorError> {
    let dir = &config.data_dir;
    let held = if open_bank {
        match Bank::open_with(dir, config.bank) {
            Ok((bank, _)) => return Ok(Target::Offline { bank: Box::new(bank) }),
            Err(err) => err,
        }
    } else {
        match bank::lock_data_dir(dir) {
            Ok(lock) => return Ok(Target::OfflineReadOnly { lock: Some(lock) }),
            // A directory this process cannot write (a backup on read-only media): verify
            // only reads, so it runs without the lock.
            Err(JournalError::Io(_)) if dir.is_dir() => return Ok(Target::OfflineReadOnly { lock: None }),
            Err(err) => err,
        }
    };
    match held {
        JournalError::Locked(_) => Ok(Target::Server {
            socket: socket_path(dir),
        }),
        other => Err(OperatorError::Journal(other)),
    }
}

impl Target {
    /// The line that tells the operator which way the command ran.
    pub fn describe(&self, data_dir: &Path) -> String {
        match self {
            Self::Server { socket } => format!("via the running server ({})", socket.display()),
            Self::Offline { .. } | Self::OfflineReadOnly { lock: Some(_) } => format!(
                "offline: no server is running on {} (this command holds its lock)",
                data_dir.display()
            ),
            Self::OfflineReadOnly { lock: None } => format!(
                "offline: read-only on {} (its lock could not be taken)",
                data_dir.display()
            ),
        }
    }

    /// Whether an account called `name` exists, when that can be known before the command
    /// runs (offline); `None` through a server.
    pub fn account_exists(&self, name: &str) -> Option<bool> {
        match self {
            Self::Offline { bank } => Some(bank.account_exists(name)),
            _ => None,
        }
    }

    /// Runs `command`: sends it to the server, or executes it here with `config`.
    pub fn run(&self, command: &Command, config: &ServerConfig) -> Result<Reply, OperatorError> {
        match self {
            Self::Server { socket } => call(socket, command),
            Self::Offline { bank } => Ok(operator::execute(
                command,
                &Context {
                    bank,
                    config,
                    live: None,
                    hash_queue: None,
                },
            )),
            Self::OfflineReadOnly { .. } if *command == Command::Verify => Ok(operator::verify_reply(config)),
            Self::OfflineReadOnly { .. } => Ok(Reply::refused(format!("{command:?} needs the bank opened"))),
        }
    }
}

/// Sends one command to the admin socket at `socket` and reads the reply.
pub fn call(socket: &Path, command: &Command) -> Result<Reply, OperatorError> {
    let mut stream = UnixStream::connect(socket).map_err(|error| OperatorError::NoAnswer {
        socket: socket.display().to_string(),
        error,
    })?;
    stream
        .set_write_timeout(Some(Duration::from_secs(OPERATOR_IO_TIMEOUT_SECS)))
        .map_err(OperatorError::Io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(OPERATOR_REPLY_TIMEOUT_SECS)))
        .map_err(OperatorError::Io)?;
    let request = Zeroizing::new(frame::encode(FrameKind::OperatorRequest, &command.encode()));
    // A busy server answers and closes at once, so our write can fail (broken pipe) while
    // its answer already waits in the socket: read it before reporting the write error.
    let written = stream.write_all(&request);
    let reply = frame::read_frame(&mut stream).map_err(|err| match err {
        ChannelError::Io(_) if written.is_err() => OperatorError::Io(written.expect_err("checked")),
        ChannelError::Io(err) => OperatorError::Io(err),
        ChannelError::Timeout => OperatorError::Io(std::io::ErrorKind::TimedOut.into()),
        other => OperatorError::BadReply(other.to_string()),
    })?;
    if reply.kind != FrameKind::OperatorReply as u8 {
        return Err(OperatorError::BadReply(format!("frame type 0x{:02x}", reply.kind)));
    }
    Reply::decode(&reply.payload).map_err(|err| OperatorError::BadReply(err.to_string()))
}
