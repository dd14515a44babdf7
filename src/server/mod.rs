//! The server: a blocking listener, one thread per connection, a cap on connections.
//!
//! | file | concern |
//! |---|---|
//! | [`session`] | one connection's login state machine and request dispatch |
//! | [`admission`] | per-address budgets: connections before login, handshakes, password checks |
//! | [`fd_limit`] | the connection cap fitted to the file limit |
//! | [`auth`] | password validation, PBKDF2 |
//! | [`login_queue`] | the PBKDF2 line: a slot per core, first come first served, bounded, with a deadline |
//! | [`unknown_names`] | failed logins of names that have no account, locked like accounts |
//! | [`otp`] | one-time codes: generation, tags, delivery |
//! | [`otp_command`] | `--otp-command`: a program that delivers each code (an SMS gateway) |
//! | [`bank`] | the ledger behind its mutex plus the journal: every operation |
//! | [`ledger`] | in-memory accounts and the rules of money |
//! | [`retention`] | transaction ids: the time check, the ledger clock, forgetting old ids |
//! | [`snapshot`] | the whole ledger as canonical bytes, for checkpoints |
//! | [`events`] | journal events (the only way the ledger changes) |
//! | [`journal`] | journal segments: sync batches of hash-chained records; the torn-batch rule |
//! | [`commit`] | group commit: one batch, one write, one `fdatasync` for many records |
//! | [`reply`] | replies that wait for the disk: sent by the batch's writer right after their sync, or by their own thread when it wrote the batch |
//! | [`checkpoint`] | the checkpoint file: the whole ledger as of one journal position |
//! | [`recovery`] | start-up: newest good checkpoint plus the segments after it |
//! | [`storage`] | the storage seam: the real directory, or a simulated disk for crash tests |
//! | [`journal_v1`] | reader of the first release's single-file journal (migrated once) |
//! | [`verify`] | `bank-server verify`: every record, every checkpoint against the replay |
//! | [`admin`] | add-account, demo accounts, `prune` |
//! | [`operator`] | the operator's commands: admin messages and what each does |
//! | [`operator_socket`] | the admin socket `DIR/admin.sock`: bind, replace, serve, stop |
//!
//! Invariants: a connection thread never takes the server down — every failure of a peer
//! (bad frame, bad record, timeout) ends that connection only; the number of admitted
//! connections never exceeds `max_connections` (one over the cap is told "busy" and
//! closed), connections that have not logged in never exceed the cap less the part kept for
//! logged-in sessions, and the cap fits under the file limit ([`fd_limit`]). A slot is freed when its connection ends, a moment before its thread exits, so
//! under heavy churn the thread count can briefly exceed the cap by a few. The counts of
//! open and logged-in connections that `stats` shows are kept by guards that decrement
//! however a connection ends.

pub mod admin;
pub mod admission;
pub mod auth;
pub mod bank;
pub mod checkpoint;
pub mod commit;
pub mod events;
pub mod fd_limit;
pub mod journal;
pub mod journal_v1;
pub mod ledger;
pub mod login_queue;
pub mod operator;
pub mod operator_socket;
pub mod otp;
pub mod otp_command;
pub mod recovery;
pub mod reply;
pub mod retention;
pub mod session;
pub mod snapshot;
pub mod storage;
pub mod unknown_names;
pub mod verify;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use self::admission::{Admission, AnonymousTicket, SourceLimits};
use self::bank::{Bank, BankOptions};
use self::events::PasswordRecord;
use self::login_queue::LoginQueue;
use self::operator::Live;
use self::operator_socket::OperatorSocket;
use self::otp::OtpKey;
use self::recovery::RecoveryReport;
use self::reply::Outbox;
use self::session::Session;
use crate::channel::SecureChannel;
use crate::error::StartError;
use crate::frame::{self, FrameKind};
use crate::identity::{KeyOrigin, ServerIdentity};
use crate::limits::{self, DEFAULT_WRITE_TIMEOUT_SECS};
use crate::message::Request;
use crate::trace::{Direction, TraceLevel, Tracer};

/// Stack size of a connection thread. The deepest path (RSA signing, PBKDF2) needs far less;
/// a small stack keeps 1,000 connections cheap.
const CONNECTION_STACK_BYTES: usize = 256 * 1024;

/// Reason text in a ServerBusy frame.
pub const BUSY_REASON: &str = "server busy: too many connections, try again later";

/// Everything that can be configured; tests shrink the time limits and the PBKDF2 cost.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory: key, journal, stats.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: String,
    /// Cap on concurrently open connections.
    pub max_connections: usize,
    /// Time a client has to complete the handshake.
    pub handshake_timeout: Duration,
    /// Time a connection may stay silent between requests (and a request may take to arrive).
    pub idle_timeout: Duration,
    /// Time a reply may take to be accepted by the peer's socket (a client that never reads
    /// its replies is dropped after this).
    pub write_timeout: Duration,
    /// Time a connection that has not logged in may stay silent (shorter than
    /// `idle_timeout`: a stranger's idle connection holds a thread for nothing).
    pub anonymous_idle_timeout: Duration,
    /// Longest wait for a PBKDF2 slot; past it Login is answered `unavailable`.
    pub login_queue_deadline: Duration,
    /// PBKDF2 checks run at once (one per core by default).
    pub login_slots: usize,
    /// Per-source budgets: connections before login, handshakes, password checks.
    pub sources: SourceLimits,
    /// Refused transactions a session may make per minute after its burst of
    /// [`limits::REFUSED_TX_BURST_PER_SESSION`]; past it, money requests get `unavailable`.
    pub refused_tx_per_min: u32,
    /// Lifetime of a one-time code.
    pub otp_ttl: Duration,
    /// PBKDF2 iterations for new accounts and for the dummy record of unknown users.
    pub pbkdf2_iterations: u32,
    /// Directory where codes are also written as `<user>.otp`.
    pub otp_outbox: Option<PathBuf>,
    /// Program run with each code (`--otp-command`, see [`otp_command`]).
    pub otp_command: Option<PathBuf>,
    /// Time that program has before it is killed and the login answered `unavailable`.
    pub otp_command_timeout: Duration,
    /// The clock authenticator codes are checked at (the system clock; tests fix it).
    pub totp_clock: crate::totp::TotpClock,
    /// `--trace` level.
    pub trace: TraceLevel,
    /// Checkpoint interval, transaction-id retention and preallocation.
    pub bank: BankOptions,
}

impl ServerConfig {
    /// The defaults, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: "127.0.0.1:7878".into(),
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: Duration::from_secs(limits::DEFAULT_HANDSHAKE_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(limits::DEFAULT_IDLE_TIMEOUT_SECS),
            write_timeout: Duration::from_secs(DEFAULT_WRITE_TIMEOUT_SECS),
            anonymous_idle_timeout: Duration::from_secs(limits::DEFAULT_ANONYMOUS_IDLE_TIMEOUT_SECS),
            login_queue_deadline: Duration::from_millis(limits::DEFAULT_LOGIN_QUEUE_DEADLINE_MS),
            login_slots: std::thread::available_parallelism().map_or(1, usize::from),
            sources: SourceLimits::default(),
            refused_tx_per_min: limits::REFUSED_TX_PER_SESSION_PER_MIN,
            otp_ttl: Duration::from_secs(limits::DEFAULT_OTP_TTL_SECS),
            pbkdf2_iterations: limits::DEFAULT_PBKDF2_ITERATIONS,
            otp_outbox: None,
            otp_command: None,
            otp_command_timeout: Duration::from_secs(limits::DEFAULT_OTP_COMMAND_TIMEOUT_SECS),
            totp_clock: crate::totp::TotpClock::system(),
            trace: TraceLevel::Off,
            bank: BankOptions::default(),
        }
    }
}

/// State shared by every connection thread.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub config: ServerConfig,
    /// The signing identity.
    pub identity: ServerIdentity,
    /// Ledger and journal.
    pub bank: Bank,
    /// Key of one-time-code tags.
    pub otp_key: OtpKey,
    /// The line for PBKDF2 slots: bounded, first come first served, with a deadline.
    pub login_queue: LoginQueue,
    /// Per-source budgets.
    pub admission: Arc<Admission>,
    /// Checked for unknown users so they cost the same as real ones.
    pub dummy_password: PasswordRecord,
    /// The admin socket this server bound.
    pub operator_socket: Option<OperatorSocket>,
    active_connections: AtomicUsize,
    logged_in_connections: AtomicUsize,
    operator_connections: AtomicUsize,
    next_connection_id: AtomicU64,
    started: Instant,
    stop: StopSignal,
}

impl Shared {
    /// Lets [`Server::run`] return: the second half of a clean stop, after
    /// [`operator_socket::prepare_stop`].
    pub fn request_stop(&self) {
        self.stop.signal();
    }

    /// Uptime and connection counts, for `stats`.
    pub fn live(&self) -> Live {
        Live {
            uptime: self.started.elapsed(),
            connections: self.active_connections.load(Ordering::SeqCst),
            logged_in: self.logged_in_connections.load(Ordering::SeqCst),
        }
    }
}

/// Set once by `bank-server stop`; [`Server::run`] returns when it is.
#[derive(Debug, Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    changed: Condvar,
}

impl StopSignal {
    fn signal(&self) {
        *self.stopped.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.changed.notify_all();
    }

    fn wait(&self) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while !*stopped {
            stopped = self
                .changed
                .wait(stopped)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    recovery: RecoveryReport,
}

impl Server {
    /// Loads (or creates) the key, opens the journal and binds the listen address.
    pub fn open(config: ServerConfig) -> Result<(Self, KeyOrigin), StartError> {
        let (identity, origin) = ServerIdentity::load_or_create(&config.data_dir).map_err(StartError::Identity)?;
        Ok((Self::with_identity(config, identity)?, origin))
    }

    /// Like [`Server::open`] with a given identity (tests reuse one key to save time).
    /// Binds the admin socket `DIR/admin.sock` too (see [`operator_socket`]).
    /// Raises the file limit as far as the connection cap needs, or lowers the cap to fit
    /// (saying so on the console), see [`fd_limit`].
    pub fn with_identity(mut config: ServerConfig, identity: ServerIdentity) -> Result<Self, StartError> {
        let budget = fd_limit::fit_connection_cap(config.max_connections).map_err(StartError::FileLimit)?;
        if let Some(asked) = budget.lowered_from {
            eprintln!(
                "[server] the file limit (ulimit -n) is {}: the connection cap is lowered from {asked} to {} \
                 (one descriptor per connection, {} kept for the server's own files); raise the limit to serve more",
                budget.soft_limit,
                budget.max_connections,
                limits::RESERVED_FILE_DESCRIPTORS
            );
            config.max_connections = budget.max_connections;
        }
        let (bank, recovery) = Bank::open_with(&config.data_dir, config.bank).map_err(StartError::Journal)?;
        let listener = TcpListener::bind(&config.listen).map_err(StartError::Bind)?;
        let (operator_socket, operator_listener) = OperatorSocket::bind(&bank).map_err(|err| {
            StartError::Operator(
                operator_socket::socket_path(&config.data_dir).display().to_string(),
                err,
            )
        })?;
        let login_queue = LoginQueue::new(config.login_slots, limits::MAX_WAITING_LOGINS);
        let admission = Arc::new(Admission::new(config.sources));
        let shared = Shared {
            dummy_password: auth::dummy_record(config.pbkdf2_iterations),
            config,
            identity,
            bank,
            otp_key: OtpKey::random(),
            login_queue,
            admission,
            operator_socket: Some(operator_socket),
            active_connections: AtomicUsize::new(0),
            logged_in_connections: AtomicUsize::new(0),
            operator_connections: AtomicUsize::new(0),
            next_connection_id: AtomicU64::new(1),
            started: Instant::now(),
            stop: StopSignal::default(),
        };
        let shared = Arc::new(shared);
        operator_socket::spawn_listener(operator_listener, &shared).map_err(|err| {
            StartError::Operator(
                operator_socket::socket_path(&shared.config.data_dir)
                    .display()
                    .to_string(),
                err,
            )
        })?;
        spawn_checkpointer(&shared);
        Ok(Self {
            listener,
            shared,
            recovery,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// What start-up found (checkpoint loaded, records replayed, a torn batch cut off).
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The shared state (accounts can be created through `shared().bank`).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Accepts connections, one thread each, until `bank-server stop` stops the server
    /// cleanly (see [`operator_socket`]); then returns, and the caller exits the process.
    pub fn run(self) {
        let shared = Arc::clone(&self.shared);
        self.spawn();
        shared.stop.wait();
    }

    fn accept_forever(self) {
        let mut spare = SpareDescriptor::open();
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => admit(&self.shared, stream, peer),
                Err(err) if SpareDescriptor::is_exhaustion(&err) => {
                    // Out of descriptors despite the cap (fd_limit): free the spare one to
                    // accept the waiting client and tell it "busy", rather than leave it
                    // hanging in the backlog.
                    spare.refuse_one(&self.listener);
                }
                Err(err) => {
                    eprintln!("[server] accept failed: {err}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Runs the accept loop on a background thread; returns the bound address.
    pub fn spawn(self) -> SocketAddr {
        let addr = self.local_addr();
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || self.accept_forever())
            .expect("spawn accept thread");
        addr
    }
}

/// A descriptor held in reserve (an open `/dev/null`), so that when the process runs out
/// of descriptors a waiting client can still be accepted and told "busy".
struct SpareDescriptor(Option<std::fs::File>);

impl SpareDescriptor {
    fn open() -> Self {
        Self(std::fs::File::open("/dev/null").ok())
    }

    /// Whether `err` says the process or the system has no descriptor left.
    fn is_exhaustion(err: &std::io::Error) -> bool {
        use nix::errno::Errno;
        matches!(err.raw_os_error(), Some(code) if code == Errno::EMFILE as i32 || code == Errno::ENFILE as i32)
    }

    fn refuse_one(&mut self, listener: &TcpListener) {
        eprintln!("[server] out of file descriptors: answering a new connection busy");
        self.0 = None;
        if let Ok((stream, _)) = listener.accept() {
            refuse_busy(stream, BUSY_REASON);
        } else {
            // Nothing could be accepted even so: do not spin.
            std::thread::sleep(Duration::from_millis(50));
        }
        *self = Self::open();
    }
}

/// Runs the checkpoints the journal asks for, on their own thread, so no connection waits
/// for one. A failed checkpoint is reported and costs only a longer replay at the next start.
fn spawn_checkpointer(shared: &Arc<Shared>) {
    let Some(requests) = shared.bank.take_checkpoint_requests() else {
        return;
    };
    let shared = Arc::downgrade(shared);
    let spawned = std::thread::Builder::new().name("checkpointer".into()).spawn(move || {
        for () in requests {
            let Some(shared) = shared.upgrade() else { return };
            match shared.bank.checkpoint() {
                Ok(info) => eprintln!(
                    "[server] checkpoint at record {} ({} bytes, ledger locked {} us, took {} us); \
                     journal continues in segment {}",
                    info.lsn, info.bytes, info.lock_held_us, info.total_us, info.next_segment
                ),
                Err(err) => eprintln!("[server] checkpoint failed: {err}"),
            }
        }
    });
    if let Err(err) = spawned {
        eprintln!("[server] cannot start the checkpoint thread: {err}");
    }
}

/// Decrements the connection count when a connection thread ends, however it ends.
struct ConnectionSlot(Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Connections that only logged-in sessions may use: strangers may fill the rest of the cap.
fn reserved_for_logged_in(max_connections: usize) -> usize {
    max_connections * limits::LOGGED_IN_RESERVED_PERCENT / 100
}

/// Gives `stream` a thread, or tells it "busy": over the cap; over the part of the cap
/// strangers may use (the rest is kept for logged-in sessions); or over its source's budget
/// of anonymous connections or handshakes ([`admission`]).
fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let active = shared.active_connections.fetch_add(1, Ordering::SeqCst);
    let slot = ConnectionSlot(Arc::clone(shared));
    let max = shared.config.max_connections;
    let logged_in = shared.logged_in_connections.load(Ordering::SeqCst);
    if active >= max || active.saturating_sub(logged_in) >= max - reserved_for_logged_in(max) {
        refuse_busy(stream, BUSY_REASON);
        return;
    }
    let ticket = match shared.admission.admit(peer.ip(), Instant::now()) {
        Ok(ticket) => ticket,
        Err(refusal) => {
            refuse_busy(stream, &format!("server busy: {refusal}, try again later"));
            return;
        }
    };
    let id = shared.next_connection_id.fetch_add(1, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name(format!("conn-{id}"))
        .stack_size(CONNECTION_STACK_BYTES)
        .spawn(move || serve(&slot.0, stream, id, ticket));
    if let Err(err) = spawned {
        eprintln!("[server] cannot start a connection thread: {err}");
    }
}

/// Counts a connection as logged in while it is, and stops counting it however it ends.
struct LoggedInSlot<'a> {
    shared: &'a Shared,
    counted: bool,
}

impl LoggedInSlot<'_> {
    fn set(&mut self, logged_in: bool) {
        if logged_in != self.counted {
            let counter = &self.shared.logged_in_connections;
            if logged_in {
                counter.fetch_add(1, Ordering::SeqCst);
            } else {
                counter.fetch_sub(1, Ordering::SeqCst);
            }
            self.counted = logged_in;
        }
    }
}

impl Drop for LoggedInSlot<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}

fn refuse_busy(mut stream: TcpStream, reason: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&u16::try_from(reason.len()).expect("short").to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    let _ = stream.write_all(&frame::encode(FrameKind::ServerBusy, &payload));
}

/// Serves one connection until the peer leaves, misbehaves or times out.
fn serve(shared: &Shared, stream: TcpStream, id: u64, mut ticket: AnonymousTicket) {
    let tracer = Tracer::new(shared.config.trace, "server", id);
    if tracer.enabled() {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "an unknown address".into(), |addr| addr.to_string());
        tracer.line(Direction::Local, format_args!("TCP connection accepted from {peer}"));
    }
    if stream.set_nodelay(true).is_err() || stream.set_write_timeout(Some(shared.config.write_timeout)).is_err() {
        return;
    }
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let mut channel = match SecureChannel::accept(stream, &shared.identity, deadline, tracer) {
        Ok(channel) => channel,
        Err(err) => {
            tracer.line(
                Direction::Local,
                format_args!("handshake failed, closing: {}", crate::trace::closing_reason(&err)),
            );
            return;
        }
    };
    channel.set_write_limit(shared.config.write_timeout);
    let mut outbox = Outbox::new(&channel, shared.config.write_timeout);
    let anonymous_until = Instant::now() + shared.config.anonymous_idle_timeout;
    let mut session = Session::new(channel.session_id(), ticket.source(), anonymous_until).traced(tracer);
    let mut logged_in = LoggedInSlot { shared, counted: false };
    loop {
        let deadline = session.read_deadline(shared, Instant::now());
        let outcome = outbox
            .await_request(&mut channel, deadline)
            .and_then(|()| channel.recv(Some(deadline)))
            .and_then(|plaintext| {
                // The plaintext may hold a password or a code: wipe it once decoded.
                let plaintext = zeroize::Zeroizing::new(plaintext);
                Request::decode(&plaintext).map_err(crate::error::ChannelError::from)
            });
        let request = match outcome {
            Ok(request) => request,
            Err(err) => {
                tracer.line(
                    Direction::Local,
                    format_args!("closing: {}", crate::trace::closing_reason(&err)),
                );
                session.disconnected(&disconnect_reason(&err, shared.config.idle_timeout));
                break;
            }
        };
        tracer.line(Direction::Received, format_args!("  request {request:?}"));
        let reply = match session.handle(request, shared) {
            Ok(reply) => reply,
            Err(err) => {
                eprintln!("[server] {err}");
                session.disconnected("the journal failed, closed without answering");
                return;
            }
        };
        logged_in.set(session.is_logged_in());
        ticket.set_anonymous(!session.is_logged_in());
        // A reply that shows a journal record goes out only once that record is durable:
        // from the batch's writer right after its sync, while this thread reads on (or from
        // this thread, after it wrote and synced the batch itself because nobody else was).
        if outbox
            .send(&mut channel, &shared.bank, &reply.response, reply.durable_at)
            .is_err()
        {
            session.disconnected("the reply could not be sent");
            return;
        }
    }
    // The client may have closed its side right after its last request: its reply, if
    // still with the batch's writer, goes out before the socket closes.
    outbox.finish(&mut channel);
}

/// Why a logged-in connection ended, for the console.
fn disconnect_reason(err: &crate::error::ChannelError, idle_timeout: Duration) -> String {
    use crate::error::ChannelError;
    use std::io::ErrorKind;
    match err {
        ChannelError::Io(io) if io.kind() == ErrorKind::UnexpectedEof => "the client closed the connection".into(),
        ChannelError::Io(io) if matches!(io.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
            "the connection was reset".into()
        }
        ChannelError::Timeout => format!("idle for {} s", idle_timeout.as_secs()),
        ChannelError::RecordRejected => "a record failed authentication".into(),
        other => other.to_string(),
    }
}
