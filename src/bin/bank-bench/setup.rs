//! The server under test: prepared accounts, the real `bank-server` process (or an external
//! one), and logging clients in by reading codes from the outbox as a phone would.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use securebank::args::Args;
use securebank::channel::transport::CLIENT_HANDSHAKE_TIMEOUT_SECS;
use securebank::client::{self, Client};
use securebank::error::ClientError;
use securebank::limits::DEFAULT_PBKDF2_ITERATIONS;
use securebank::server::admin;
use securebank::server::bank::Bank;
use securebank::source_address::connect_from;
use securebank::trace::Tracer;

use crate::Options;

/// Most concurrent benchmark clients (one prepared account each).
pub const MAX_BENCH_CLIENTS: usize = 256;

/// Accounts used by the login phase; created with the real PBKDF2 cost.
pub const LOGIN_ACCOUNTS: usize = 4;

/// PBKDF2 iterations of the transaction accounts: their logins are not what is measured.
pub const CHEAP_ITERATIONS: u32 = 1_000;

/// Opening balance of every benchmark account, in cents (so withdrawals rarely fail).
pub const OPENING_CENTS: u64 = 100_000_000_000;

/// The per-source abuse limits (issue 11) opened wide for the measured phases: all their
/// clients come from 127.0.0.1, and up to 64 of them connect, handshake and log in at once
/// (the defaults would answer `unavailable` after the first few). These phases measure
/// throughput, not the defences.
pub const OPEN_SOURCE_LIMITS: [&str; 8] = securebank::server::admission::UNLIMITED_SOURCE_FLAGS;

/// Name of the transaction account of client `index`.
pub fn tx_account(index: usize) -> String {
    format!("bench-{index:03}")
}

/// Name of login account `index`.
pub fn login_account(index: usize) -> String {
    format!("login-{index}")
}

/// A server started elsewhere (`--connect`).
#[derive(Debug, Clone)]
pub struct External {
    addr: SocketAddr,
    pin: String,
    outbox: PathBuf,
    password: String,
    data_dir: Option<PathBuf>,
}

impl External {
    /// Reads `--connect ADDR --pin FP --outbox DIR --password PW [--data DIR]`, if given.
    pub fn from_args(args: &mut Args) -> Result<Option<Self>, String> {
        let Some(connect) = args.value("connect")? else {
            return Ok(None);
        };
        let addr = connect
            .parse()
            .map_err(|_| format!("--connect: bad address {connect:?}"))?;
        let pin = args.value("pin")?.ok_or("--connect needs --pin SHA256:...")?;
        let outbox = args
            .value("outbox")?
            .ok_or("--connect needs --outbox DIR (the server's --otp-outbox)")?;
        let password = args
            .value("password")?
            .ok_or("--connect needs --password (of the prepared accounts)")?;
        let data_dir = args.value("data")?.map(PathBuf::from);
        Ok(Some(Self {
            addr,
            pin,
            outbox: outbox.into(),
            password,
            data_dir,
        }))
    }
}

/// Creates the benchmark accounts in `data_dir` (the server must not be running on it).
pub fn prepare(data_dir: &Path, accounts: usize, password: &str) -> Result<(), String> {
    let (bank, _) = Bank::open(data_dir).map_err(|err| err.to_string())?;
    for index in 0..accounts {
        admin::add_account(&bank, &tx_account(index), password, OPENING_CENTS, CHEAP_ITERATIONS)?;
    }
    std::thread::scope(|scope| {
        let bank = &bank;
        let handles: Vec<_> = (0..LOGIN_ACCOUNTS)
            .map(|index| {
                scope.spawn(move || {
                    admin::add_account(
                        bank,
                        &login_account(index),
                        password,
                        OPENING_CENTS,
                        DEFAULT_PBKDF2_ITERATIONS,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|handle| handle.join().map_err(|_| "account thread panicked".to_string())?)
    })?;
    bank.close().map_err(|err| err.to_string())?;
    Ok(())
}

/// Creates `accounts` (name, PBKDF2 iterations) with `password` in a new bank at
/// `data_dir` (the server must not be running on it), hashing on every core at once.
pub fn create_accounts(data_dir: &Path, accounts: &[(String, u32)], password: &str) -> Result<(), String> {
    let (bank, _) = Bank::open(data_dir).map_err(|err| err.to_string())?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = accounts.len().div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        let bank = &bank;
        let handles: Vec<_> = accounts
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk.iter().try_for_each(|(name, iterations)| {
                        admin::add_account(bank, name, password, OPENING_CENTS, *iterations)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|handle| handle.join().map_err(|_| "account thread panicked".to_string())?)
    })?;
    bank.close().map_err(|err| err.to_string())
}

/// A pinned, handshaken client whose connection comes from `source` (e.g. `127.0.0.2`).
pub fn connect_pinned_from(
    source: IpAddr,
    addr: SocketAddr,
    fingerprint: &str,
) -> Result<(Client, TcpStream), ClientError> {
    let timeout = Duration::from_secs(CLIENT_HANDSHAKE_TIMEOUT_SECS);
    let stream = connect_from(source, addr, timeout).map_err(|err| ClientError::Channel(err.into()))?;
    handshake_pinned(stream, fingerprint)
}

/// Runs the client handshake on a connected `stream`, accepting only the key with
/// `fingerprint`; returns the client and a second handle on its socket (to reset or shut
/// it down from outside).
pub fn handshake_pinned(stream: TcpStream, fingerprint: &str) -> Result<(Client, TcpStream), ClientError> {
    let socket = stream.try_clone().map_err(|err| ClientError::Channel(err.into()))?;
    Ok((client::connect_pinned_over(stream, fingerprint, Tracer::off())?, socket))
}

/// `bank-bench prepare --data DIR --accounts N --password PW`.
pub fn prepare_command(mut args: Args) -> Result<(), String> {
    let data_dir = PathBuf::from(args.value("data")?.ok_or("prepare needs --data DIR")?);
    let accounts = args.number::<usize>("accounts")?.unwrap_or(64).min(MAX_BENCH_CLIENTS);
    let password = args.value("password")?.ok_or("prepare needs --password PW")?;
    args.finish()?;
    prepare(&data_dir, accounts, &password)?;
    println!("created {accounts} transaction accounts (bench-000..) and {LOGIN_ACCOUNTS} login accounts (login-0..)");
    Ok(())
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    /// A new, empty directory under the system temp dir.
    pub fn new(label: &str) -> Result<Self, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("securebank-bench-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|err| format!("cannot create {}: {err}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `bank-server` child process.
#[derive(Debug)]
pub struct ServerChild {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its key fingerprint.
    pub fingerprint: String,
    /// How long from spawn until it printed "listening on".
    pub start_time: Duration,
}

impl ServerChild {
    /// Starts `bank-server` (next to this executable) on `data_dir`, with room for the
    /// benchmark's many connections (a cap of 2,000, idle limits of an hour) and per-address
    /// budgets lifted: every client of these phases comes from 127.0.0.1, 64 at once (the
    /// budgets are measured by `--flood`, on a server with its defaults).
    pub fn spawn(data_dir: &Path, outbox: &Path, extra: &[&str]) -> Result<Self, String> {
        let mut args = vec![
            "--max-connections",
            "2000",
            "--idle-timeout-secs",
            "3600",
            "--anonymous-idle-timeout-secs",
            "3600",
        ];
        args.extend_from_slice(&OPEN_SOURCE_LIMITS);
        args.extend_from_slice(extra);
        Self::spawn_with_default_limits(data_dir, outbox, &args)
    }

    /// Starts `bank-server` on `data_dir` with its default limits (connection cap, idle
    /// limit, and whatever else it defends itself with), plus `extra` flags: the flood and
    /// the login-timing probes measure the server as it ships.
    pub fn spawn_with_default_limits(data_dir: &Path, outbox: &Path, extra: &[&str]) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|err| err.to_string())?;
        let server = exe.with_file_name("bank-server");
        let started = Instant::now();
        let mut child = Command::new(&server)
            .arg("--data")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--otp-outbox"])
            .arg(outbox)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|err| {
                format!(
                    "cannot start {}: {err} (run `cargo build --release` first)",
                    server.display()
                )
            })?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut fingerprint = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(fp) = line.trim().strip_prefix("server key:") {
                    fingerprint = fp.trim().to_string();
                }
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send((addr.to_string(), fingerprint.clone()));
                }
            }
        });
        let (addr, fingerprint) = rx
            .recv_timeout(Duration::from_secs(600))
            .map_err(|_| "bank-server did not start")?;
        let start_time = started.elapsed();
        let addr = addr.parse().map_err(|_| format!("bad address {addr}"))?;
        Ok(Self {
            child,
            addr,
            fingerprint,
            start_time,
        })
    }

    /// CPU time (user + system) the server process has used, in seconds. Linux reports it
    /// in clock ticks of 1/100 s (USER_HZ is 100 on every Linux ABI).
    pub fn cpu_secs(&self) -> Option<f64> {
        cpu_secs_of(&self.child.id().to_string())
    }

    /// Resident memory and thread count of the server process.
    pub fn rss_and_threads(&self) -> Option<(u64, u64)> {
        rss_and_threads_of(self.child.id())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// CPU time (user + system) process `pid` (a number, or `self`) has used, in seconds, from
/// `/proc/PID/stat`. Linux reports it in clock ticks of 1/100 s (USER_HZ is 100 on every
/// Linux ABI).
pub fn cpu_secs_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Resident memory (KiB) and thread count of process `pid`, from `/proc/PID/status`.
pub fn rss_and_threads_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    Some((field("VmRSS:")?, field("Threads:")?))
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server the benchmark talks to.
#[derive(Debug)]
pub struct Target {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its pinned key.
    pub fingerprint: String,
    /// Where codes arrive.
    pub outbox: PathBuf,
    /// Password of every prepared account.
    pub password: String,
    data_dir: Option<PathBuf>,
    server: Option<ServerChild>,
    _scratch: Option<ScratchDir>,
}

impl Target {
    /// Prepares and starts a server, or uses the external one.
    pub fn start(options: &Options) -> Result<Self, String> {
        if let Some(external) = &options.external {
            return Ok(Self {
                addr: external.addr,
                fingerprint: external.pin.clone(),
                outbox: external.outbox.clone(),
                password: external.password.clone(),
                data_dir: external.data_dir.clone(),
                server: None,
                _scratch: None,
            });
        }
        let scratch = ScratchDir::new("run")?;
        let data_dir = scratch.0.join("data");
        let outbox = scratch.0.join("outbox");
        let password = admin::generate_password();
        let accounts = options.clients.iter().copied().max().unwrap_or(1).max(8);
        crate::report::progress(format_args!("preparing {accounts} accounts and a fresh server key"));
        prepare(&data_dir, accounts, &password)?;
        let server = ServerChild::spawn(&data_dir, &outbox, &[])?;
        Ok(Self {
            addr: server.addr,
            fingerprint: server.fingerprint.clone(),
            outbox,
            password,
            data_dir: Some(data_dir),
            server: Some(server),
            _scratch: Some(scratch),
        })
    }

    /// A pinned, handshaken client.
    pub fn connect(&self) -> Result<Client, String> {
        client::connect_pinned(self.addr, &self.fingerprint, Tracer::off()).map_err(|err| err.to_string())
    }

    /// A client logged in as `user` (password, then the code from the outbox).
    pub fn login(&self, user: &str) -> Result<Client, String> {
        let mut client = self.connect()?;
        client
            .login(user, &self.password)
            .map_err(|err| format!("login {user}: {err}"))?;
        let code = std::fs::read_to_string(self.outbox.join(format!("{user}.otp"))).map_err(|err| err.to_string())?;
        client
            .submit_otp(code.trim())
            .map_err(|err| format!("code for {user}: {err}"))?;
        Ok(client)
    }

    /// The server's group-commit counters (records written, syncs), if its data dir is known.
    pub fn commit_stats(&self) -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(self.data_dir.as_ref()?.join("commit_stats")).ok()?;
        let mut values = text
            .lines()
            .filter_map(|line| line.split_whitespace().nth(1)?.parse().ok());
        Some((values.next()?, values.next()?))
    }

    /// A directory on the file system of the server's data (the system temp dir for an
    /// external server), for the `fdatasync` probe.
    pub fn scratch_dir(&self) -> PathBuf {
        self._scratch
            .as_ref()
            .map_or_else(std::env::temp_dir, |scratch| scratch.0.clone())
    }

    /// Resident memory of the server, KiB (only for a server this run started).
    pub fn rss_kib(&self) -> Option<u64> {
        self.server.as_ref()?.rss_and_threads().map(|(rss, _)| rss)
    }

    /// CPU seconds the server process has used (only for a server this run started).
    pub fn server_cpu_secs(&self) -> Option<f64> {
        self.server.as_ref()?.cpu_secs()
    }

    /// Resident memory and threads of the server.
    pub fn rss_and_threads(&self) -> Option<(u64, u64)> {
        self.server.as_ref()?.rss_and_threads()
    }
}
