//! Shared helpers for the integration tests: a real server on 127.0.0.1:0 (in-process or as
//! the real binary), clients, accounts, and raw sockets for hostile tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use securebank::channel::handshake::{ClientHandshake, Established};
use securebank::client::{self, Client};
use securebank::frame;
use securebank::identity::ServerIdentity;
use securebank::server::admission::SourceLimits;
use securebank::server::{Server, ServerConfig, Shared, admin};
use securebank::trace::Tracer;

/// PBKDF2 iterations for test accounts: the minimum, since these tests do not measure the hash.
pub const TEST_ITERATIONS: u32 = 1_000;

/// The fixed RSA-3072 key the test servers use (generating one per test would be slow).
pub const TEST_KEY_PEM: &str = include_str!("../fixtures/test_server_key.pem");

/// A second key: the "man in the middle".
pub const OTHER_KEY_PEM: &str = include_str!("../fixtures/other_server_key.pem");

pub fn test_identity() -> ServerIdentity {
    ServerIdentity::from_pkcs8_pem(TEST_KEY_PEM).unwrap()
}

pub fn other_identity() -> ServerIdentity {
    ServerIdentity::from_pkcs8_pem(OTHER_KEY_PEM).unwrap()
}

/// An in-process server on 127.0.0.1:0 with its own temporary data directory.
pub struct TestServer {
    pub addr: SocketAddr,
    pub fingerprint: String,
    pub shared: Arc<Shared>,
    pub dir: tempfile::TempDir,
}

/// A test configuration: port 0, the fixed key, cheap PBKDF2, an outbox for codes, and no
/// per-source or refused-transaction budgets (every test connects from 127.0.0.1; tests/abuse.rs tests the budgets).
pub fn test_config(dir: &Path) -> ServerConfig {
    let mut config = ServerConfig::new(dir.join("data"));
    config.listen = "127.0.0.1:0".into();
    config.pbkdf2_iterations = TEST_ITERATIONS;
    config.otp_outbox = Some(dir.join("outbox"));
    config.sources = SourceLimits::unlimited();
    config.refused_tx_per_min = 1_000_000;
    config
}

/// `bank-server` flags that lift the per-source and refusal budgets, as [`test_config`] does.
pub const UNLIMITED_SOURCE_FLAGS: [&str; 8] = securebank::server::admission::UNLIMITED_SOURCE_FLAGS;

pub fn start_server() -> TestServer {
    start_server_with(|_| {})
}

pub fn start_server_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
    start_server_with_identity(test_identity(), adjust)
}

pub fn start_server_with_identity(identity: ServerIdentity, adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    adjust(&mut config);
    let fingerprint = identity.fingerprint().to_string();
    let server = Server::with_identity(config, identity).unwrap();
    let shared = Arc::clone(server.shared());
    let addr = server.spawn();
    TestServer {
        addr,
        fingerprint,
        shared,
        dir,
    }
}

impl TestServer {
    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Creates an account (cheap PBKDF2).
    pub fn add_account(&self, name: &str, password: &str, opening_cents: u64) {
        admin::add_account(&self.shared.bank, name, password, opening_cents, TEST_ITERATIONS).unwrap();
    }

    /// A client pinned to this server's key, handshake done.
    pub fn connect(&self) -> Client {
        client::connect_pinned(self.addr, &self.fingerprint, Tracer::off()).unwrap()
    }

    /// The code most recently delivered for `user`.
    pub fn read_otp(&self, user: &str) -> String {
        read_otp_from(&self.outbox(), user)
    }

    /// A client logged in as `user` (password, then the code from the outbox).
    pub fn login(&self, user: &str, password: &str) -> Client {
        let mut client = self.connect();
        client.login(user, password).unwrap();
        let code = self.read_otp(user);
        client.submit_otp(&code).unwrap();
        client
    }
}

pub fn read_otp_from(outbox: &Path, user: &str) -> String {
    std::fs::read_to_string(outbox.join(format!("{user}.otp")))
        .unwrap()
        .trim()
        .to_string()
}

/// A raw client that has completed the handshake by hand: the test holds the socket and
/// both record ciphers, so it can send crafted, replayed or reordered records.
pub struct RawSession {
    pub stream: TcpStream,
    pub established: Established,
}

/// Connects and performs the handshake by hand (including sending Finished).
pub fn raw_handshake(addr: SocketAddr) -> RawSession {
    use std::io::Write;
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let handshake = ClientHandshake::start();
    stream.write_all(handshake.client_hello_frame()).unwrap();
    let server_hello = frame::read_frame(&mut stream).unwrap();
    let (established, finished) = handshake.receive_server_hello(&server_hello, |_| Ok(())).unwrap();
    stream.write_all(&finished).unwrap();
    RawSession { stream, established }
}

impl RawSession {
    /// Seals a request (next sequence number) without sending it.
    pub fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.established.send.seal(plaintext).unwrap()
    }

    /// Reads and opens one response record.
    pub fn read_response(&mut self) -> Result<Vec<u8>, securebank::error::ChannelError> {
        let mut frame = frame::read_frame(&mut self.stream)?;
        self.established.recv.open(&frame.header(), &mut frame.payload)?;
        Ok(frame.payload)
    }
}

/// Asserts the server closes `stream` (EOF or reset) within `within`, sending nothing more.
pub fn assert_closed_within(stream: &mut TcpStream, within: Duration) {
    stream.set_read_timeout(Some(within)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock || err.kind() == std::io::ErrorKind::TimedOut => {
                panic!("connection still open after {:?}", started.elapsed())
            }
            Err(_) => return,
        }
    }
}

pub fn assert_closed(stream: &mut TcpStream) {
    assert_closed_within(stream, Duration::from_secs(5));
}

/// The real `bank-server` binary, started on 127.0.0.1:0.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub fingerprint: String,
    pub stdout_lines: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Puts the fixed test key into `data_dir` (mode 0600) so the binary does not generate one.
pub fn install_test_key(data_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(data_dir).unwrap();
    let path = data_dir.join("server_key.pem");
    if !path.exists() {
        std::fs::write(&path, TEST_KEY_PEM).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// The real `bank-server` binary set up like the in-process test servers: the fixed test
/// key (installed into `data_dir` if none is there), port 0, cheap PBKDF2, codes written to
/// `outbox`, standard input closed. The caller chooses what to do with the output streams.
pub fn server_command(data_dir: &Path, outbox: &Path, extra: &[&str]) -> Command {
    server_command_listening(data_dir, outbox, "127.0.0.1:0", extra)
}

/// [`server_command`] listening on `listen` (e.g. the address of a server that was killed,
/// to restart it where its clients will reconnect).
pub fn server_command_listening(data_dir: &Path, outbox: &Path, listen: &str, extra: &[&str]) -> Command {
    install_test_key(data_dir);
    let mut command = Command::new(env!("CARGO_BIN_EXE_bank-server"));
    command
        .arg("--data")
        .arg(data_dir)
        .args(["--listen", listen, "--pbkdf2-iterations", "1000", "--otp-outbox"])
        .arg(outbox)
        .args(UNLIMITED_SOURCE_FLAGS)
        .args(extra)
        .stdin(Stdio::null());
    command
}

/// Waits for `child` (spawned with piped stdout and stderr) to exit and returns its output;
/// kills it and fails the test if it runs past `within`.
pub fn output_within(mut child: Child, within: Duration) -> std::process::Output {
    let drain = |mut source: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = source.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child process still running after {within:?} (waiting on a prompt?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Starts `bank-server` on `data_dir` with `extra` arguments and waits for "listening on".
pub fn spawn_server_process(data_dir: &Path, outbox: &Path, extra: &[&str]) -> ServerProcess {
    spawn_server_process_listening(data_dir, outbox, "127.0.0.1:0", extra)
}

/// [`spawn_server_process`] on a chosen address.
pub fn spawn_server_process_listening(data_dir: &Path, outbox: &Path, listen: &str, extra: &[&str]) -> ServerProcess {
    spawn_command(server_command_listening(data_dir, outbox, listen, extra))
}

/// Starts a server `command` (made by [`server_command`], perhaps wrapped, e.g. in a shell
/// that sets a limit first) and waits for "listening on".
pub fn spawn_command(mut command: Command) -> ServerProcess {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.to_string());
            }
            sink.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server printed its address")
        .parse()
        .unwrap();
    let fingerprint = test_identity().fingerprint().to_string();
    ServerProcess {
        child,
        addr,
        fingerprint,
        stdout_lines: lines,
    }
}

impl ServerProcess {
    pub fn connect(&self) -> Client {
        client::connect_pinned(self.addr, &self.fingerprint, Tracer::off()).unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn output(&self) -> Vec<String> {
        self.stdout_lines.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `bank-server ARGS… --data DIR` with its standard input, output and error piped.
fn spawn_piped_bank_server(args: &[&str], data_dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_bank-server"))
        .args(args)
        .arg("--data")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Creates an account through the binary (`add-account`, password on stdin).
pub fn add_account_with_binary(data_dir: &Path, name: &str, password: &str, deposit: &str) {
    let output = run_add_account(data_dir, &[name, "--deposit", deposit], &format!("{password}\n"));
    assert!(
        output.status.success(),
        "add-account failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl RawSession {
    /// Sends one request and returns the decrypted response bytes exactly as the server sent
    /// them (the plaintext of one record), undecoded.
    pub fn request_raw(&mut self, request: &securebank::message::Request) -> Vec<u8> {
        use std::io::Write;
        let record = self.seal(&request.encode());
        self.stream.write_all(&record).unwrap();
        self.read_response().unwrap()
    }
}

/// Runs `bank-server add-account` with `args` (name, `--deposit`, …) on `data_dir`, feeding
/// `stdin_text` as the password line; returns the finished process's output, whatever it is.
pub fn run_add_account(data_dir: &Path, args: &[&str], stdin_text: &str) -> std::process::Output {
    use std::io::Write;
    install_test_key(data_dir);
    let args = [&["add-account"], args, &["--pbkdf2-iterations", "1000"]].concat();
    let mut child = spawn_piped_bank_server(&args, data_dir);
    // The program may refuse before reading its input: a broken pipe here is expected.
    let _ = child.stdin.take().unwrap().write_all(stdin_text.as_bytes());
    child.wait_with_output().unwrap()
}

impl ServerProcess {
    /// Waits (at most `within`) until a stdout line satisfies `found`; returns whether one did.
    pub fn wait_for_line(&self, within: Duration, found: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.output().iter().any(|line| found(line)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---- Added for tests/ledger.rs and tests/durability.rs ----

impl RawSession {
    /// Seals `plaintext` as the next record and sends it.
    pub fn send_plaintext(&mut self, plaintext: &[u8]) {
        use std::io::Write;
        let sealed = self.seal(plaintext);
        self.stream.write_all(&sealed).unwrap();
    }

    /// Sends hand-built request bytes and decodes the one response.
    pub fn request_bytes(&mut self, plaintext: &[u8]) -> securebank::message::Response {
        self.send_plaintext(plaintext);
        let bytes = self.read_response().unwrap();
        securebank::message::Response::decode(&bytes).unwrap()
    }

    /// Sends a request (encoded by the library) and decodes the one response.
    pub fn request(&mut self, request: &securebank::message::Request) -> securebank::message::Response {
        self.request_bytes(&request.encode())
    }
}

/// A raw session logged in as `user`: Login and SubmitOtp sent as hand-sealed records, the
/// code read from `outbox`.
pub fn raw_login(addr: SocketAddr, outbox: &Path, user: &str, password: &str) -> RawSession {
    use securebank::message::{Request, Response};
    let mut raw = raw_handshake(addr);
    let sent = raw.request(&Request::Login {
        username: user.to_string(),
        password: password.to_string(),
    });
    assert!(matches!(sent, Response::OtpSent { .. }), "login of {user}: {sent:?}");
    let logged_in = raw.request(&Request::SubmitOtp(read_otp_from(outbox, user)));
    assert!(
        matches!(logged_in, Response::LoggedIn { .. }),
        "code of {user}: {logged_in:?}"
    );
    raw
}

impl TestServer {
    /// A raw session logged in as `user`.
    pub fn raw_login(&self, user: &str, password: &str) -> RawSession {
        raw_login(self.addr, &self.outbox(), user, password)
    }

    /// The balance of `user`, read from the bank directly (not over the wire).
    pub fn bank_balance(&self, user: &str) -> u64 {
        self.shared.bank.balance(user).unwrap().unwrap()
    }
}

impl ServerProcess {
    /// A client logged in as `user` (password, then the code from `outbox`).
    pub fn login(&self, outbox: &Path, user: &str, password: &str) -> Client {
        let mut client = self.connect();
        client.login(user, password).unwrap();
        client.submit_otp(&read_otp_from(outbox, user)).unwrap();
        client
    }
}

/// Runs `bank-server` with `args` to completion and returns its output; panics (after
/// killing it) if it is still running after `within`.
pub fn run_bank_server(args: &[&std::ffi::OsStr], within: Duration) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_bank-server"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    output_within(child, within)
}

/// Starts the server binary on `data_dir` (as [`spawn_server_process`] would) when it is
/// expected to refuse to start; returns its output once it exits (bounded wait).
pub fn run_server_expecting_exit(data_dir: &Path, outbox: &Path) -> std::process::Output {
    install_test_key(data_dir);
    let args: Vec<&std::ffi::OsStr> = vec![
        "--data".as_ref(),
        data_dir.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--pbkdf2-iterations".as_ref(),
        "1000".as_ref(),
        "--otp-outbox".as_ref(),
        outbox.as_os_str(),
    ];
    run_bank_server(&args, Duration::from_secs(30))
}

/// Runs `bank-server verify --data DIR` (bounded wait).
pub fn run_verify(data_dir: &Path) -> std::process::Output {
    run_bank_server(
        &["verify".as_ref(), "--data".as_ref(), data_dir.as_os_str()],
        Duration::from_secs(30),
    )
}

// ---- Added for tests/secrets.rs: the real binaries with every byte they print captured ----

/// Collects everything `source` produces into `sink`, line by line as raw bytes (nothing is
/// lost to UTF-8 decoding); sends the address of a `listening on ADDR` line to `listening`.
fn capture_bytes(
    source: impl Read + Send + 'static,
    sink: Arc<std::sync::Mutex<Vec<u8>>>,
    listening: Option<std::sync::mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(source);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let (Some(tx), Some(rest)) = (&listening, line.strip_prefix(b"listening on ")) {
                let _ = tx.send(String::from_utf8_lossy(rest).trim().to_string());
            }
            sink.lock().unwrap().extend_from_slice(&line);
        }
    })
}

/// The real `bank-server` binary with standard output *and* standard error captured as raw
/// bytes, for tests that search everything it printed (e.g. with `--trace=bytes`).
pub struct CapturedServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub fingerprint: String,
    pub stdout: Arc<std::sync::Mutex<Vec<u8>>>,
    pub stderr: Arc<std::sync::Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// Like [`spawn_server_process`] (same arguments, the fixed test key installed if none is
/// there), but both output streams are captured; `extra` may hold e.g. `--trace=bytes`.
pub fn spawn_server_process_captured(data_dir: &Path, outbox: &Path, extra: &[&str]) -> CapturedServerProcess {
    let mut child = server_command(data_dir, outbox, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stderr = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let readers = vec![
        capture_bytes(child.stdout.take().unwrap(), Arc::clone(&stdout), Some(tx)),
        capture_bytes(child.stderr.take().unwrap(), Arc::clone(&stderr), None),
    ];
    let mut process = CapturedServerProcess {
        child,
        addr: "127.0.0.1:0".parse().unwrap(),
        fingerprint: test_identity().fingerprint().to_string(),
        stdout,
        stderr,
        readers,
    };
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => process.addr = addr.parse().unwrap(),
        Err(_) => {
            let (out, err) = process.stop();
            panic!(
                "bank-server did not print its address\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
    }
    process
}

impl CapturedServerProcess {
    /// What the server wrote to standard error so far, as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits (at most `within`) until the standard error so far satisfies `found`.
    pub fn wait_for_stderr(&self, within: Duration, found: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if found(&self.stderr_text()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server, waits for it, reads both streams to their end and returns
    /// (stdout, stderr): everything it ever printed.
    pub fn stop(&mut self) -> (Vec<u8>, Vec<u8>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (self.stdout.lock().unwrap().clone(), self.stderr.lock().unwrap().clone())
    }
}

impl Drop for CapturedServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- Added for tests/trace.rs ----

/// Lines a child process printed on one pipe, collected by a background thread.
pub type SharedLines = Arc<std::sync::Mutex<Vec<String>>>;

/// Collects the lines of `source` (a child's stdout or stderr) into a shared list on a
/// background thread, so the pipe never fills up and the test can look at any time.
pub fn collect_lines(source: impl Read + Send + 'static) -> SharedLines {
    let lines: SharedLines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// Waits (at most `within`) until one of `lines` satisfies `found`; returns whether one did.
pub fn wait_for_shared_line(lines: &SharedLines, within: Duration, found: impl Fn(&str) -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if lines.lock().unwrap().iter().any(|line| found(line)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Like [`spawn_server_process`], but standard error is captured too (that is where
/// `--trace` writes); returns the server and its stderr lines.
pub fn spawn_server_process_capturing_stderr(
    data_dir: &Path,
    outbox: &Path,
    extra: &[&str],
) -> (ServerProcess, SharedLines) {
    let mut child = server_command(data_dir, outbox, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout_lines = collect_lines(child.stdout.take().unwrap());
    let stderr_lines = collect_lines(child.stderr.take().unwrap());
    let listening = |line: &str| line.starts_with("listening on ");
    if !wait_for_shared_line(&stdout_lines, Duration::from_secs(60), listening) {
        let _ = child.kill();
        panic!("server did not start; stderr: {:?}", stderr_lines.lock().unwrap());
    }
    let addr = stdout_lines
        .lock()
        .unwrap()
        .iter()
        .find_map(|line| line.strip_prefix("listening on "))
        .unwrap()
        .parse()
        .unwrap();
    let server = ServerProcess {
        child,
        addr,
        fingerprint: test_identity().fingerprint().to_string(),
        stdout_lines,
    };
    (server, stderr_lines)
}

/// SplitMix64: a tiny seeded generator, the same on every machine, so a failing randomized
/// test can be repeated with its seed.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// True one time in `one_in`.
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// Opens the bank in `data`, waiting up to 5 s while its lock is held. A test that closes a
/// bank and reopens it can find the lock still taken for a moment: a process that another
/// test thread is starting at that instant holds a copy of every open descriptor, the lock
/// file's included, from its fork until its exec closes them (they are close-on-exec). Only
/// tests reopen in the same process, so only they need this.
pub fn open_bank_when_free(
    data: &Path,
    options: securebank::server::bank::BankOptions,
) -> (
    securebank::server::bank::Bank,
    securebank::server::recovery::RecoveryReport,
) {
    try_open_bank_when_free(data, options).unwrap()
}

/// Like [`open_bank_when_free`], for tests that expect the open to fail.
pub fn try_open_bank_when_free(
    data: &Path,
    options: securebank::server::bank::BankOptions,
) -> Result<
    (
        securebank::server::bank::Bank,
        securebank::server::recovery::RecoveryReport,
    ),
    securebank::error::JournalError,
> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match securebank::server::bank::Bank::open_with(data, options) {
            Err(securebank::error::JournalError::Locked(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

// ---- Added for tests/totp.rs and the authenticator prompt in tests/interactive.rs ----

/// The 6-digit TOTP code of `secret` for time step `step`, computed here from RFC 4226 and
/// RFC 6238 with the `hmac` and `sha1` crates directly (not with `securebank::totp`), so a
/// test checks the server against an independent computation.
pub fn independent_totp(secret: &[u8], step: u64) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let value = u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", value % 1_000_000)
}

/// The secret (raw bytes) written on a `secret:` line of `enrol-totp`'s output: Base32 in
/// groups of four, decoded here by hand from RFC 4648's alphabet.
pub fn secret_from_enrolment_output(output: &str) -> Vec<u8> {
    let line = output
        .lines()
        .find_map(|line| line.strip_prefix("secret:"))
        .expect("a secret: line");
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut bytes = Vec::new();
    for c in line.chars().filter(|c| !c.is_whitespace()) {
        let value = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".find(c).expect("Base32") as u64;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
    }
    bytes
}

/// The current TOTP step of the system clock.
pub fn current_totp_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// Runs `bank-server enrol-totp NAME --data DIR`, answering its code prompt with a code it
/// computes from the secret the command printed (`step_offset` steps from now; 0 is the
/// app's current code). Returns the output and the secret.
pub fn enrol_totp_with_binary(data_dir: &Path, name: &str, codes: &[Option<i64>]) -> (std::process::Output, Vec<u8>) {
    use std::io::Write;
    let mut child = spawn_piped_bank_server(&["enrol-totp", name], data_dir);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !printed.contains("\nuri:") {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            // Refused before the secret (unknown account, …): return what it said.
            let _ = child.kill();
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest);
            printed.push_str(&rest);
            let output = child.wait_with_output().unwrap();
            return (
                std::process::Output {
                    stdout: printed.into_bytes(),
                    ..output
                },
                Vec::new(),
            );
        }
        printed.push_str(&line);
    }
    let secret = secret_from_enrolment_output(&printed);
    let mut stdin = child.stdin.take().unwrap();
    for code in codes {
        let line = match code {
            Some(offset) => independent_totp(&secret, current_totp_step().saturating_add_signed(*offset)),
            None => "000000x".to_string(),
        };
        // The command may have stopped reading (enrolled, or out of tries): ignore a broken pipe.
        let _ = writeln!(stdin, "{line}");
    }
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    printed.push_str(&rest);
    let output = output_within_after_stdout(child);
    (
        std::process::Output {
            stdout: printed.into_bytes(),
            ..output
        },
        secret,
    )
}

/// Waits (bounded) for a child whose standard output was already read to its end.
fn output_within_after_stdout(mut child: Child) -> std::process::Output {
    let mut stderr = Vec::new();
    child.stderr.take().unwrap().read_to_end(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr,
    }
}
