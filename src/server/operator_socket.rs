//! The admin socket: `DIR/admin.sock`, a Unix domain socket on which a running server
//! takes the operator's commands ([`super::operator`]).
//!
//! Blocking, one thread per admin connection, like the bank's TCP port; each request is one
//! `OperatorRequest` frame ([`crate::frame`]) answered by one `OperatorReply` frame.
//!
//! Invariants:
//! - only the holder of the data directory's lock (`bank.lock`, held by the server's
//!   [`Bank`]) creates, replaces or removes the socket file: [`OperatorSocket::bind`] takes
//!   the `Bank` and refuses one without the lock. A second server never gets that far (it
//!   cannot take the lock), so it can never steal or remove a live server's socket; a socket
//!   file found at start belongs to a server that died without removing it, and is replaced;
//! - the socket is bound under a staging name, made mode 0600 and then renamed over
//!   `admin.sock` in one step, so the name never points at a socket with looser permissions
//!   (the 0700 data directory already keeps other users out) nor is missing for a moment;
//! - the file is removed on a clean stop (`bank-server stop`), and only if it is still the
//!   one this server bound;
//! - bad input ends that admin connection only: a frame that is too large, of another kind
//!   or that does not parse gets a `Malformed` reply (when the socket still takes it) and the
//!   connection is closed; at most [`MAX_OPERATOR_CONNECTIONS`] are served at once, each
//!   request frame must arrive within [`OPERATOR_IO_TIMEOUT_SECS`].
//!
//! No encryption: the socket is reachable only by the data directory's owner (and root),
//! who can already read and write every file of the bank (SECURITY.md 3.13).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;
use super::bank::Bank;
use super::operator::{self, Command, Context, Reply};
use crate::error::ChannelError;
use crate::frame::{self, FrameKind};
use crate::limits::{MAX_OPERATOR_CONNECTIONS, OPERATOR_IO_TIMEOUT_SECS};

/// The admin socket's file name inside the data directory.
pub const SOCKET_FILE_NAME: &str = "admin.sock";

/// The name the socket is bound under before it is renamed to [`SOCKET_FILE_NAME`].
const STAGING_FILE_NAME: &str = "admin.sock.new";

/// Stack size of an admin connection thread: a command needs little (PBKDF2 and the
/// verify replay run on the heap).
const OPERATOR_STACK_BYTES: usize = 256 * 1024;

/// The path of the admin socket of the bank in `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE_NAME)
}

/// The admin socket file this server bound: its path and its identity on disk.
#[derive(Debug)]
pub struct OperatorSocket {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl OperatorSocket {
    /// Binds `admin.sock` in the directory whose lock `bank` holds, replacing a stale one
    /// (see the module invariants). Returns the listener to serve.
    pub fn bind(bank: &Bank) -> io::Result<(Self, UnixListener)> {
        let Some(dir) = bank.locked_dir() else {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "only the holder of the data directory's lock may bind its admin socket",
            ));
        };
        let path = socket_path(dir);
        let staging = dir.join(STAGING_FILE_NAME);
        match fs::remove_file(&staging) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let listener = UnixListener::bind(&staging)?;
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o600))?;
        fs::rename(&staging, &path)?;
        let metadata = fs::symlink_metadata(&path)?;
        let socket = Self {
            path,
            device: metadata.dev(),
            inode: metadata.ino(),
        };
        Ok((socket, listener))
    }

    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket file if it is still the one this server bound; returns whether it
    /// removed it.
    pub fn remove(&self) -> io::Result<bool> {
        match fs::symlink_metadata(&self.path) {
            Ok(metadata) if metadata.dev() == self.device && metadata.ino() == self.inode => {
                fs::remove_file(&self.path)?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err),
        }
    }
}

impl Drop for OperatorSocket {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Accepts admin connections on their own thread, one thread per connection, for as long
/// as the server runs.
pub fn spawn_listener(listener: UnixListener, shared: &Arc<Shared>) -> io::Result<()> {
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name("admin-accept".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => admit(&shared, stream),
                    Err(err) => {
                        eprintln!("[admin] accept failed: {err}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })
        .map(|_| ())
}

/// Frees an admin connection slot when its thread ends, however it ends.
struct OperatorSlot(Arc<Shared>);

impl Drop for OperatorSlot {
    fn drop(&mut self) {
        self.0.operator_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn admit(shared: &Arc<Shared>, stream: UnixStream) {
    let active = shared.operator_connections.fetch_add(1, Ordering::SeqCst);
    let slot = OperatorSlot(Arc::clone(shared));
    let timeout = Some(Duration::from_secs(OPERATOR_IO_TIMEOUT_SECS));
    if stream.set_write_timeout(timeout).is_err() {
        return;
    }
    if active >= MAX_OPERATOR_CONNECTIONS {
        let busy = Reply::refused(format!(
            "busy: {MAX_OPERATOR_CONNECTIONS} operator commands are running; try again"
        ));
        let _ = send(&stream, &busy);
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("admin".into())
        .stack_size(OPERATOR_STACK_BYTES)
        .spawn(move || serve(&slot.0, &stream));
    if let Err(err) = spawned {
        eprintln!("[admin] cannot start a connection thread: {err}");
    }
}

/// A read from the socket that fails once `deadline` has passed.
struct DeadlineReader<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(remaining))?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

fn send(mut stream: &UnixStream, reply: &Reply) -> io::Result<()> {
    stream.write_all(&frame::encode(FrameKind::OperatorReply, &reply.encode()))
}

/// Serves one admin connection until the peer closes it, misbehaves or times out.
fn serve(shared: &Arc<Shared>, stream: &UnixStream) {
    loop {
        let mut reader = DeadlineReader {
            stream,
            deadline: Instant::now() + Duration::from_secs(OPERATOR_IO_TIMEOUT_SECS),
        };
        let command = match frame::read_frame(&mut reader) {
            Ok(frame) if frame.kind == FrameKind::OperatorRequest as u8 => {
                let payload = zeroize::Zeroizing::new(frame.payload);
                Command::decode(&payload).map_err(|err| format!("malformed admin request: {err}"))
            }
            Ok(frame) => Err(format!(
                "malformed admin request: frame type 0x{:02x}, expected 0x{:02x} (OperatorRequest)",
                frame.kind,
                FrameKind::OperatorRequest as u8
            )),
            Err(ChannelError::Io(err)) if err.kind() == io::ErrorKind::UnexpectedEof => return,
            Err(err @ (ChannelError::FrameTooLarge(_) | ChannelError::EmptyFrame)) => {
                Err(format!("malformed admin request: {err}"))
            }
            Err(_) => return,
        };
        let command = match command {
            Ok(command) => command,
            Err(reason) => {
                eprintln!("[admin] {reason}; closing that admin connection");
                let _ = send(stream, &Reply::malformed(reason));
                return;
            }
        };
        if command == Command::Stop {
            stop(shared, stream);
            return;
        }
        let context = Context {
            bank: &shared.bank,
            config: &shared.config,
            live: Some(shared.live()),
            hash_queue: Some(&shared.login_queue),
        };
        let reply = operator::execute(&command, &context);
        eprintln!("[admin] {command:?}: {:?}", reply.status);
        if send(stream, &reply).is_err() {
            return;
        }
    }
}

/// A clean stop: freezes the bank once everything appended is durable, removes the socket,
/// answers, and lets the server's main thread return.
fn stop(shared: &Shared, stream: &UnixStream) {
    let reply = prepare_stop(shared);
    eprintln!("[admin] Stop: {}", reply.text);
    let _ = send(stream, &reply);
    shared.request_stop();
}

/// The first half of a clean stop (`bank-server stop`, or Ctrl-C on the server's console):
/// freezes the bank once everything appended is durable and removes the admin socket. The
/// caller then reports the reply and calls [`Shared::request_stop`].
pub fn prepare_stop(shared: &Shared) -> Reply {
    match shared.bank.freeze() {
        Ok(lsn) => {
            let removed = shared.operator_socket.as_ref().map(OperatorSocket::remove);
            let socket = match removed {
                Some(Ok(true)) => "admin socket removed",
                Some(Ok(false)) | None => "admin socket already gone",
                Some(Err(_)) => "admin socket could NOT be removed (the next start replaces it)",
            };
            Reply::done(format!(
                "stopped at record {lsn}: everything acknowledged is durable; {socket}"
            ))
        }
        Err(err) => Reply::failed(format!("stop failed: {err}")),
    }
}
