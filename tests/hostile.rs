//! Hostile load over real sockets on 127.0.0.1: a connection flood beyond the cap, slow
//! clients, a client that never reads its replies, a thousand clients that leave
//! mid-handshake, and a storm of failed logins. Each test checks that the server keeps
//! serving well-behaved clients and that its threads and memory stay bounded.
//!
//! Threads and memory are read from `/proc/<pid>/status` (`Threads:`, `VmRSS:`), and the
//! server's connection threads are counted by name (`conn-N`) in `/proc/<pid>/task`. Where
//! the test needs limits the binary only takes in whole seconds, the server runs in this
//! process (`/proc/self`); otherwise it is the real `bank-server` binary, whose numbers are
//! its own. The tests in this file run one at a time (see [`serial`]) so that the
//! in-process numbers belong to one test's server.
//!
//! No speed assertions: every wait is bounded, and a bound is a failure, never a measure.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{RawSession, ServerProcess};
use securebank::channel::handshake::ClientHandshake;
use securebank::client::{self, Client, new_txid};
use securebank::error::ErrorCode;
use securebank::frame::{self, FrameKind};
use securebank::limits::MAX_ECHO_BYTES;
use securebank::message::Request;
use securebank::server::BUSY_REASON;
use securebank::trace::Tracer;

const PASSWORD: &str = "correct horse battery";

/// Opening balance of the test account, in cents (1000.00).
const OPENING_CENTS: u64 = 100_000;

/// Threads a server may run at a peak beyond its idle threads and its connection threads
/// (a sampler thread in this process, a connection thread that is just ending, …).
const SMALL_CONSTANT: usize = 4;

/// Under churn, live connection threads beyond the cap. The cap counts slots, and a slot is
/// given back when `serve` returns, just *before* its thread exits; with every core busy
/// (each admitted ClientHello costs an RSA signature) exiting threads wait for a core while
/// new connections take their slots. Up to 15 over a cap of 64 were seen here, so the bound
/// is the cap plus this allowance, not the cap (FUZZING.md, "Hardening findings").
const CHURN_TEARDOWN_ALLOWANCE: usize = 32;

/// Resident memory a server may gain under a hostile load (it should need far less).
const MEMORY_GROWTH_LIMIT_KIB: u64 = 64 * 1024;

/// Bound on "the server gets back to its idle state".
const SETTLE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: the in-process servers share this process's thread count.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What `/proc/<pid>` says about a process.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    /// `Threads:` of `/proc/<pid>/status`.
    threads: usize,
    /// `VmRSS:` of `/proc/<pid>/status`, in KiB.
    rss_kib: u64,
    /// Threads named `conn-N`: the server's connection threads.
    connection_threads: usize,
}

/// Reads the usage of `pid` (a number, or `self`).
fn usage(pid: &str) -> Usage {
    try_usage(pid).unwrap_or_else(|| panic!("process {pid} is gone"))
}

/// The usage of `pid`, or `None` once the process has exited.
fn try_usage(pid: &str) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    // A thread may end between listing and reading its name: it is simply not counted.
    let connection_threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|task| {
                    std::fs::read_to_string(task.path().join("comm")).is_ok_and(|name| name.starts_with("conn-"))
                })
                .count()
        })
        .unwrap_or(0);
    Some(Usage {
        threads: usize::try_from(field("Threads:")).unwrap(),
        rss_kib: field("VmRSS:"),
        connection_threads,
    })
}

/// Polls `done` every 20 ms until it holds; panics naming `what` after `within`.
fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The usage of `pid` once it has no connection thread and its thread count is steady.
fn idle_usage(pid: &str) -> Usage {
    let mut previous = usage(pid);
    wait_until(SETTLE, "server settles with no connection thread", || {
        std::thread::sleep(Duration::from_millis(50));
        let now = usage(pid);
        let steady = now.connection_threads == 0 && now.threads == previous.threads;
        previous = now;
        steady
    });
    previous
}

/// The highest usage seen while a hostile load runs: a thread reads `/proc/<pid>` every
/// few milliseconds until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Usage>,
}

impl Sampler {
    fn start(pid: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let pid = pid.to_string();
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut peak = Usage::default();
            // Stops by itself if the process exits (a failing test kills its server).
            while let Some(now) = try_usage(&pid) {
                peak.threads = peak.threads.max(now.threads);
                peak.rss_kib = peak.rss_kib.max(now.rss_kib);
                peak.connection_threads = peak.connection_threads.max(now.connection_threads);
                if flag.load(Ordering::SeqCst) {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        Self { stop, handle }
    }

    fn stop(self) -> Usage {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("sampler")
    }
}

/// Checks the peak against the idle usage: threads at most idle + `connections` + a small
/// constant, resident memory grown by at most [`MEMORY_GROWTH_LIMIT_KIB`].
fn assert_bounded(peak: Usage, idle: Usage, connections: usize, what: &str) {
    eprintln!("{what}: idle {idle:?}, peak {peak:?}");
    assert!(
        peak.threads <= idle.threads + connections + SMALL_CONSTANT,
        "{what}: {} threads at the peak, idle {} + {connections} connections + {SMALL_CONSTANT}",
        peak.threads,
        idle.threads
    );
    assert!(
        peak.rss_kib <= idle.rss_kib + MEMORY_GROWTH_LIMIT_KIB,
        "{what}: resident memory grew from {} KiB to {} KiB",
        idle.rss_kib,
        peak.rss_kib
    );
}

/// Waits until `pid` is back to `connections` connection threads and at most
/// `idle.threads + connections` threads.
fn assert_returns_to(pid: &str, idle: Usage, connections: usize, what: &str) {
    let mut last = usage(pid);
    let deadline = Instant::now() + SETTLE;
    while last.connection_threads != connections || last.threads > idle.threads + connections {
        assert!(
            Instant::now() < deadline,
            "{what}: still {last:?} after {SETTLE:?} (idle {idle:?}, {connections} connections expected)"
        );
        std::thread::sleep(Duration::from_millis(20));
        last = usage(pid);
    }
}

/// The real `bank-server` with one account, `alice`, holding 1000.00.
struct BinaryServer {
    process: ServerProcess,
    outbox: PathBuf,
    _dir: tempfile::TempDir,
}

impl BinaryServer {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let outbox = dir.path().join("outbox");
        common::add_account_with_binary(&data, "alice", PASSWORD, "1000.00");
        let process = common::spawn_server_process(&data, &outbox, extra);
        Self {
            process,
            outbox,
            _dir: dir,
        }
    }

    fn pid(&self) -> String {
        self.process.child.id().to_string()
    }

    fn addr(&self) -> SocketAddr {
        self.process.addr
    }

    fn login(&self) -> Client {
        self.process.login(&self.outbox, "alice", PASSWORD)
    }

    fn assert_serves_fresh_client(&self) {
        assert_serves_fresh_client(self.addr(), &self.process.fingerprint);
    }
}

fn assert_serves_fresh_client(addr: SocketAddr, fingerprint: &str) {
    let mut client = client::connect_pinned(addr, fingerprint, Tracer::off())
        .expect("a fresh client completes the handshake after the hostile load");
    assert_eq!(client.echo(b"still serving").unwrap(), b"still serving");
}

/// A logged-in client depositing 0.01 in a loop on its own thread until stopped; every
/// deposit must succeed.
struct Depositor {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    handle: JoinHandle<(Client, u64)>,
}

impl Depositor {
    fn start(mut client: Client) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let (flag, counter) = (Arc::clone(&stop), Arc::clone(&done));
        let handle = std::thread::spawn(move || {
            let mut balance = 0;
            while !flag.load(Ordering::SeqCst) {
                balance = client
                    .deposit(new_txid(), 1)
                    .expect("a logged-in client's deposit succeeds during the hostile load");
                counter.fetch_add(1, Ordering::SeqCst);
            }
            (client, balance)
        });
        Self { stop, done, handle }
    }

    fn deposits(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until at least `count` deposits are done.
    fn wait_for(&self, count: u64, what: &str) {
        wait_until(SETTLE, what, || self.deposits() >= count || self.handle.is_finished());
        assert!(!self.handle.is_finished(), "{what}: the depositor stopped");
    }

    /// Stops; returns the client, the number of deposits and the last balance.
    fn stop(self) -> (Client, u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let (client, balance) = self.handle.join().expect("depositor");
        (client, self.done.load(Ordering::SeqCst), balance)
    }
}

/// Whether the server has closed `stream` (non-blocking check); panics if it sent data.
fn closed_by_server(stream: &mut TcpStream, what: &str) -> bool {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("{what}: the server sent {n} bytes to an unfinished message"),
        Err(err) if err.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

// ---------------------------------------------------------------------------------------
// 1. A flood of connections beyond the cap
// ---------------------------------------------------------------------------------------

#[test]
fn a_flood_beyond_the_connection_cap_is_told_busy_while_a_logged_in_client_keeps_depositing() {
    let _serial = serial();
    const CAP: usize = 16;
    const FLOOD: usize = 200;
    const HANDSHAKE_LIMIT: Duration = Duration::from_secs(2);
    let server = BinaryServer::start(&["--max-connections", "16", "--handshake-timeout-secs", "2"]);
    let pid = server.pid();
    let idle = idle_usage(&pid);

    let depositor = Depositor::start(server.login());
    depositor.wait_for(1, "first deposit");
    let sampler = Sampler::start(&pid);

    let started = Instant::now();
    let deposits_before = depositor.deposits();
    let mut flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect_timeout(&server.addr(), Duration::from_secs(10)).expect("connect"))
        .collect();
    let opened_in = started.elapsed();

    // Each flood connection either gets a busy notice and is closed, or holds a slot silently
    // until the handshake limit closes it. Read them all until every one is closed.
    let mut received: Vec<Vec<u8>> = vec![Vec::new(); FLOOD];
    let mut open: Vec<usize> = (0..FLOOD).collect();
    for stream in &flood {
        stream.set_nonblocking(true).unwrap();
    }
    let deadline = Instant::now() + SETTLE;
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} flood connections still open after {SETTLE:?}",
            open.len()
        );
        open.retain(|&index| {
            let mut buf = [0u8; 256];
            match flood[index].read(&mut buf) {
                Ok(0) => false,
                Ok(n) => {
                    received[index].extend_from_slice(&buf[..n]);
                    true
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => true,
                Err(_) => false,
            }
        });
        std::thread::sleep(Duration::from_millis(10));
    }
    let deposits_during = depositor.deposits() - deposits_before;
    let peak = sampler.stop();
    flood.clear();

    let mut busy = 0;
    let mut held = 0;
    for bytes in &received {
        if bytes.is_empty() {
            held += 1;
            continue;
        }
        let notice = frame::read_frame(&mut &bytes[..]).expect("a whole busy frame");
        assert_eq!(notice.kind, FrameKind::ServerBusy as u8);
        assert!(String::from_utf8_lossy(&notice.payload).contains(BUSY_REASON));
        busy += 1;
    }
    assert_eq!(busy + held, FLOOD);
    assert!(busy >= 1, "no busy notice");
    if opened_in < HANDSHAKE_LIMIT {
        // No held slot was freed while the flood was opening: at most the free slots held.
        assert!(held < CAP, "{held} flood connections held a slot (cap {CAP}, one used)");
        assert!(busy > FLOOD - CAP, "only {busy} busy notices");
    }
    assert!(deposits_during >= 1, "no deposit completed during the flood");
    assert!(
        peak.connection_threads <= CAP + SMALL_CONSTANT,
        "{} connection threads (cap {CAP})",
        peak.connection_threads
    );
    assert_bounded(peak, idle, CAP, "flood");

    let (mut depositor, deposits, balance) = depositor.stop();
    assert_eq!(balance, OPENING_CENTS + deposits, "every deposit counted once");
    assert_eq!(depositor.balance().unwrap(), balance);
    assert_returns_to(&pid, idle, 1, "after the flood, only the depositor's connection");
    server.assert_serves_fresh_client();
    drop(depositor);
    assert_returns_to(&pid, idle, 0, "after the depositor leaves");
}

// ---------------------------------------------------------------------------------------
// 2. Slow clients: one byte at a time
// ---------------------------------------------------------------------------------------

/// A client sending `message` one byte per round.
struct Trickle {
    stream: TcpStream,
    message: Vec<u8>,
    sent: usize,
    closed: bool,
}

#[test]
fn fifty_slow_clients_sending_one_byte_at_a_time_are_all_closed_by_the_time_limits() {
    let _serial = serial();
    const SLOW: usize = 50;
    let server = common::start_server_with(|config| {
        config.handshake_timeout = Duration::from_millis(500);
        config.anonymous_idle_timeout = Duration::from_millis(500);
    });
    let idle = idle_usage("self");
    let sampler = Sampler::start("self");

    // Half finish the handshake, then trickle a request (the request's time limit runs from
    // the end of the handshake); half trickle their ClientHello.
    let mut slow: Vec<Trickle> = Vec::new();
    for _ in 0..SLOW / 2 {
        let mut session = common::raw_handshake(server.addr);
        session.stream.set_nodelay(true).unwrap();
        let message = session.seal(&Request::Echo(vec![b'x'; 100]).encode());
        session.stream.write_all(&message[..1]).unwrap();
        slow.push(Trickle {
            stream: session.stream,
            message,
            sent: 1,
            closed: false,
        });
    }
    for _ in 0..SLOW / 2 {
        let stream = TcpStream::connect(server.addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let message = ClientHandshake::start().client_hello_frame().to_vec();
        slow.push(Trickle {
            stream,
            message,
            sent: 0,
            closed: false,
        });
    }
    for trickle in &slow {
        trickle.stream.set_nonblocking(true).unwrap();
    }

    let deadline = Instant::now() + SETTLE;
    while slow.iter().any(|trickle| !trickle.closed) {
        assert!(
            Instant::now() < deadline,
            "{} slow clients still open after {SETTLE:?}",
            slow.iter().filter(|trickle| !trickle.closed).count()
        );
        for trickle in slow.iter_mut().filter(|trickle| !trickle.closed) {
            if closed_by_server(&mut trickle.stream, "slow client") {
                trickle.closed = true;
                continue;
            }
            if trickle.sent < trickle.message.len() {
                match trickle.stream.write(&trickle.message[trickle.sent..=trickle.sent]) {
                    Ok(n) => trickle.sent += n,
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => trickle.closed = true,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (index, trickle) in slow.iter().enumerate() {
        assert!(
            trickle.sent < trickle.message.len(),
            "slow client {index} sent its whole message ({} bytes) before being closed",
            trickle.message.len()
        );
    }
    let peak = sampler.stop();
    assert!(
        peak.connection_threads <= SLOW,
        "{} connection threads",
        peak.connection_threads
    );
    assert_bounded(peak, idle, SLOW, "slow clients");
    drop(slow);
    assert_returns_to("self", idle, 0, "after the slow clients");
    assert_serves_fresh_client(server.addr, &server.fingerprint);
    assert_returns_to("self", idle, 0, "after the fresh client");
}

// ---------------------------------------------------------------------------------------
// 3. A client that never reads its replies
// ---------------------------------------------------------------------------------------

/// Sends max-size Echo requests on `session` without ever reading, until the socket
/// accepts nothing more for a second (both directions' buffers are full: the server's
/// worker is blocked writing a reply). Returns how many requests were sent, whole or not.
fn send_echoes_until_stuck(session: &mut RawSession) -> usize {
    const LIMIT_BYTES: usize = 128 * 1024 * 1024;
    let request = Request::Echo(vec![0xEE; MAX_ECHO_BYTES]).encode();
    session.stream.set_nonblocking(true).unwrap();
    let mut pending: Vec<u8> = Vec::new();
    let mut offset = 0;
    let mut requests = 0;
    let mut total = 0;
    let mut last_progress = Instant::now();
    loop {
        if offset == pending.len() {
            pending.clear();
            offset = 0;
            for _ in 0..64 {
                pending.extend_from_slice(&session.seal(&request));
                requests += 1;
            }
        }
        match session.stream.write(&pending[offset..]) {
            Ok(n) => {
                offset += n;
                total += n;
                last_progress = Instant::now();
                assert!(
                    total < LIMIT_BYTES,
                    "the server kept reading {total} bytes of unread replies"
                );
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                if last_progress.elapsed() > Duration::from_secs(1) {
                    return requests;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(err) => panic!("the server closed the non-reading client while it was sending: {err}"),
        }
    }
}

/// Connects a hog that fills both directions' socket buffers with Echo requests it never
/// reads the replies to; returns it with the server's worker blocked writing a reply.
fn start_hog(server: &BinaryServer, pid: &str) -> RawSession {
    let mut hog = common::raw_handshake(server.addr());
    let sent = send_echoes_until_stuck(&mut hog);
    assert!(sent > 1, "the socket filled at once");
    assert_eq!(
        usage(pid).connection_threads,
        1,
        "the hog's worker is alive, blocked writing"
    );
    hog
}

#[test]
fn a_client_that_never_reads_its_replies_blocks_only_its_own_worker() {
    let _serial = serial();
    let server = BinaryServer::start(&[]);
    let pid = server.pid();
    let idle = idle_usage(&pid);
    let sampler = Sampler::start(&pid);
    let hog = start_hog(&server, &pid);

    // Meanwhile: a logged-in client's transactions and fresh clients are served.
    let mut customer = server.login();
    let mut balance = OPENING_CENTS;
    for round in 0..5 {
        balance = customer
            .deposit(new_txid(), 100)
            .expect("deposit while a worker is blocked");
        server.assert_serves_fresh_client();
        let text = format!("round {round}");
        assert_eq!(customer.echo(text.as_bytes()).unwrap(), text.as_bytes());
    }
    assert_eq!(balance, OPENING_CENTS + 500);
    assert_eq!(customer.balance().unwrap(), balance);
    // The hog's worker was blocked all along (its own thread and the customer's).
    assert_returns_to(&pid, idle, 2, "the hog's worker still blocked, the customer's alive");

    // A hog that leaves (unread replies and all) frees its worker at once: the blocked write
    // fails on the reset.
    drop(hog);
    assert_returns_to(&pid, idle, 1, "after the hog leaves");
    let peak = sampler.stop();
    assert_bounded(peak, idle, 3, "a client that never reads");
    drop(customer);
    assert_returns_to(&pid, idle, 0, "after the customer leaves");
    server.assert_serves_fresh_client();
}

/// The write time limit alone (the hog stays connected, never reading) frees the worker:
/// one deadline per reply (`--write-timeout-secs 3` here), however the kernel splits it.
/// 3 s leaves room for `start_hog` to see the worker blocked first (it waits 1 s for the
/// socket to stall).
#[test]
fn a_client_that_never_reads_its_replies_is_dropped_by_the_write_time_limit() {
    let _serial = serial();
    let server = BinaryServer::start(&["--write-timeout-secs", "3"]);
    let pid = server.pid();
    let idle = idle_usage(&pid);
    let hog = start_hog(&server, &pid);
    let stuck_at = Instant::now();
    let bound = Duration::from_secs(15);
    wait_until(bound, "the write time limit frees the hog's worker", || {
        usage(&pid).connection_threads == 0
    });
    eprintln!(
        "worker freed {:?} after the hog's own writes stalled (write limit 3 s)",
        stuck_at.elapsed()
    );
    assert_returns_to(&pid, idle, 0, "after the write time limit");
    server.assert_serves_fresh_client();
    drop(hog);
}

// ---------------------------------------------------------------------------------------
// 4. A thousand clients leaving mid-handshake
// ---------------------------------------------------------------------------------------

#[test]
fn a_thousand_clients_leaving_mid_handshake_leave_no_worker_behind() {
    let _serial = serial();
    const CLIENTS: usize = 1000;
    const THREADS: usize = 4;
    const CAP: usize = 64;
    let server = BinaryServer::start(&["--max-connections", "64"]);
    let pid = server.pid();
    let idle = idle_usage(&pid);
    let sampler = Sampler::start(&pid);
    let addr = server.addr();

    let server_hellos = Arc::new(AtomicU64::new(0));
    let workers: Vec<JoinHandle<()>> = (0..THREADS)
        .map(|thread| {
            let server_hellos = Arc::clone(&server_hellos);
            std::thread::spawn(move || {
                for index in (thread..CLIENTS).step_by(THREADS) {
                    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                        .expect("connect mid-handshake client");
                    let hello = ClientHandshake::start().client_hello_frame().to_vec();
                    if index % 2 == 0 {
                        // A partial ClientHello (1 to len-1 bytes), then gone.
                        let cut = 1 + index / 2 % (hello.len() - 1);
                        let _ = stream.write_all(&hello[..cut]);
                    } else {
                        // A whole ClientHello, then gone before Finished: half at once, half
                        // after reading the ServerHello.
                        let _ = stream.write_all(&hello);
                        if index % 4 == 1 {
                            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                            // Over the cap the answer is a busy notice instead.
                            let answer = frame::read_frame(&mut stream).expect("ServerHello or busy");
                            if answer.kind == FrameKind::ServerHello as u8 {
                                server_hellos.fetch_add(1, Ordering::SeqCst);
                            } else {
                                assert_eq!(answer.kind, FrameKind::ServerBusy as u8);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("mid-handshake clients");
    }
    assert!(
        server_hellos.load(Ordering::SeqCst) >= 1,
        "no handshake got as far as the ServerHello"
    );
    assert_returns_to(&pid, idle, 0, "after 1,000 mid-handshake departures");
    let peak = sampler.stop();
    assert!(
        peak.connection_threads <= CAP + CHURN_TEARDOWN_ALLOWANCE,
        "{} connection threads (cap {CAP})",
        peak.connection_threads
    );
    assert_bounded(peak, idle, CAP + CHURN_TEARDOWN_ALLOWANCE, "mid-handshake departures");
    server.assert_serves_fresh_client();
    assert_returns_to(&pid, idle, 0, "after the fresh client");
}

// ---------------------------------------------------------------------------------------
// 5. Failed logins in parallel
// ---------------------------------------------------------------------------------------

#[test]
fn parallel_failed_logins_do_not_stop_a_logged_in_users_transactions() {
    let _serial = serial();
    const ATTACKERS: usize = 16;
    const TRIES: usize = 5;
    let server = common::start_server_with(|config| {
        config.pbkdf2_iterations = 100_000;
        // This test is about the ledger staying free, not the queue's deadline (tests/abuse.rs):
        // in a debug build 16 parallel checks at this cost can wait longer than 3 s.
        config.login_queue_deadline = Duration::from_secs(60);
    });
    server.add_account("alice", PASSWORD, OPENING_CENTS);
    let idle = idle_usage("self");
    let depositor = Depositor::start(server.login("alice", PASSWORD));
    depositor.wait_for(1, "first deposit");
    let sampler = Sampler::start("self");

    let deposits_before = depositor.deposits();
    let attackers: Vec<JoinHandle<()>> = (0..ATTACKERS)
        .map(|attacker| {
            let (addr, fingerprint) = (server.addr, server.fingerprint.clone());
            std::thread::spawn(move || {
                let mut client = client::connect_pinned(addr, &fingerprint, Tracer::off()).expect("attacker connects");
                for attempt in 0..TRIES {
                    let name = format!("ghost-{attacker}-{attempt}");
                    let outcome = client.login(&name, "not the password");
                    assert!(
                        client::is_refused(&outcome, ErrorCode::InvalidCredentials),
                        "login of unknown {name}: {outcome:?}"
                    );
                }
            })
        })
        .collect();
    for attacker in attackers {
        attacker.join().expect("attacker");
    }
    let deposits_during = depositor.deposits() - deposits_before;
    let peak = sampler.stop();
    let (mut alice, deposits, balance) = depositor.stop();
    assert!(deposits_during >= 1, "no deposit completed during the login storm");
    assert_eq!(balance, OPENING_CENTS + deposits);
    assert_eq!(alice.balance().unwrap(), balance);
    assert_eq!(server.bank_balance("alice"), balance);
    assert!(peak.connection_threads <= ATTACKERS + 1);
    // In this process: the attackers' own threads count too.
    assert_bounded(peak, idle, 2 * ATTACKERS + 2, "login storm");
    drop(alice);
    assert_returns_to("self", idle, 0, "after the login storm");
    assert_serves_fresh_client(server.addr, &server.fingerprint);
}
