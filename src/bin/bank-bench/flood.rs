//! `--flood`: does the server stay fair to its customers while strangers flood it?
//! (issue 11, "What it must show").
//!
//! The phase starts its own server on a fresh data directory, with the server's **default**
//! limits and PBKDF2 cost (not the generous cap and idle limit of the other phases: the
//! defences are what is measured). It prepares 8 transaction accounts, one customer
//! account at the default PBKDF2 cost, and [`VICTIM_ACCOUNTS`] real accounts for the
//! attackers to guess at. Then, in order:
//!
//! 1. 8 customers log in from `127.0.0.1` and transact (the `--mix`) for the phase length:
//!    `tx_per_sec_without_flood`.
//! 2. The attackers start from `127.0.0.2`–`127.0.0.9` (see [`crate::attackers`]), and the
//!    server's thread count and RSS are sampled every [`SAMPLE_INTERVAL`] from
//!    `/proc/PID/status` until the end (`server_threads_max`, `server_rss_kib_max`).
//! 3. After [`WARMUP`] (the attackers' connections ramp up), for the phase length: the same
//!    8 sessions keep transacting (`tx_per_sec`), and one more customer logs in from
//!    `127.0.0.1` again and again — handshake, password at the default PBKDF2 cost, the
//!    one-time code read from the outbox as a phone would, logout, a pause of
//!    [`customers::CUSTOMER_LOGIN_PAUSE`] (see [`crate::customers`]).
//! 4. The server is killed (which ends every wait at once) and the attackers stop.
//!
//! A customer treats a refusal as a person would: it tries again after
//! [`customers::CUSTOMER_RETRY_PAUSE`]. So `login_p50_ms` and `login_p99_ms` are the time **until the
//! customer was in, retries included**, from its first connect to the answer to its code;
//! a login still not done when the phase ended counts with the time it had waited (a lower
//! bound). `logins_ok` counts the logins that got in during the phase, and
//! `logins_unavailable` the `unavailable` answers met on the way; the human-readable report
//! also gives the other failures (ServerBusy, closed connections, timeouts). A transacting
//! customer whose session breaks logs in again the same way, and its lost time counts
//! against `tx_per_sec`.

use std::fmt::{self, Display};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use securebank::client::Client;
use securebank::limits::DEFAULT_PBKDF2_ITERATIONS;
use securebank::server::admin;

use crate::attackers::{self, ATTACKER_ADDRESSES, Attack, VICTIM_ACCOUNTS, victim_account};
use crate::customers::{self, Bank, CUSTOMER, Refusals, TX_CUSTOMERS};
use crate::report::{Latencies, progress};
use crate::setup::{self, CHEAP_ITERATIONS, ScratchDir, ServerChild};
use crate::workload::Mix;

/// Attacker connections by default (the number issue 11 asks for).
pub const DEFAULT_ATTACKERS: usize = 1000;

/// Most attackers `--flood-attackers` accepts: each is a benchmark thread and a socket.
pub const MAX_ATTACKERS: usize = 4000;

/// Default length of each measured window (without and with the flood), in seconds: long
/// enough for about two dozen customer logins under attack at the customer's pace
/// (`customers::CUSTOMER_LOGIN_PAUSE`), so their p99 means something.
pub const DEFAULT_FLOOD_SECS: f64 = 60.0;

/// Time between starting the attackers and starting to measure: 1,000 connections need a
/// few seconds to open (each handshake costs the server an RSA signature).
pub const WARMUP: Duration = Duration::from_secs(5);

/// How often the server's threads and RSS are read.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// What `--flood` was asked to do.
#[derive(Debug, Clone, Copy)]
pub struct FloodOptions {
    /// Attacker connections.
    pub attackers: usize,
    /// Length of each measured window.
    pub phase: Duration,
    /// The transacting customers' operation mix.
    pub mix: Mix,
}

/// What the flood measured.
#[derive(Debug, Default)]
pub struct FloodResults {
    /// Attacker connections.
    pub attackers: usize,
    /// Length of each measured window, seconds.
    pub phase_secs: f64,
    /// Time until the customer was in, retries included, one sample per login.
    pub logins: Latencies,
    /// Customer logins completed during the flood.
    pub logins_ok: u64,
    /// `unavailable` answers the customer met (each followed by a retry).
    pub logins_unavailable: u64,
    /// Other failed customer attempts: ServerBusy, closed connection, timeout.
    pub login_other_failures: u64,
    /// Customer logins still not done when the phase ended.
    pub logins_unfinished: u64,
    /// Durable transactions per second of the 8 customers during the flood.
    pub tx_per_sec: f64,
    /// The same before the flood.
    pub tx_per_sec_without_flood: f64,
    /// Transacting sessions that broke during the flood (each logged in again).
    pub tx_sessions_broken: u64,
    /// Most server threads seen.
    pub server_threads_max: u64,
    /// Largest server RSS seen, KiB.
    pub server_rss_kib_max: u64,
    /// What the attackers got, warm-up included.
    pub attack: Vec<(&'static str, u64)>,
    /// CPU seconds the server used during the measured window.
    pub server_cpu_secs: f64,
    /// CPU seconds the benchmark itself (attackers and customers) used during the window:
    /// it shares the cores with the server, so this says how much the load generator took.
    pub bench_cpu_secs: f64,
}

/// Runs the phase.
pub fn run(options: &FloodOptions) -> Result<FloodResults, String> {
    let scratch = ScratchDir::new("flood")?;
    let (server, bank) = start_server(&scratch)?;
    let mut results = FloodResults {
        attackers: options.attackers,
        phase_secs: options.phase.as_secs_f64(),
        ..FloodResults::default()
    };
    let mut sessions = Vec::with_capacity(TX_CUSTOMERS);
    for index in 0..TX_CUSTOMERS {
        let give_up_at = Instant::now() + Duration::from_secs(60);
        let session = customers::get_in(&bank, &setup::tx_account(index), give_up_at, &mut Refusals::default())?;
        sessions.push(Some(
            session.ok_or("flood: a customer could not log in on a quiet server")?,
        ));
    }
    progress(format_args!(
        "flood: {TX_CUSTOMERS} customers transact without the flood for {:.1} s",
        options.phase.as_secs_f64()
    ));
    let (sessions, done, _) = customers::transact(&bank, sessions, Instant::now() + options.phase, options.mix)?;
    results.tx_per_sec_without_flood = done as f64 / options.phase.as_secs_f64();
    progress(format_args!(
        "flood: {} attackers from 127.0.0.2-127.0.0.{}, {} s warm-up, then {:.1} s measured",
        options.attackers,
        1 + ATTACKER_ADDRESSES,
        WARMUP.as_secs(),
        options.phase.as_secs_f64()
    ));
    under_flood(server, &bank, sessions, options, &mut results)?;
    Ok(results)
}

/// Prepares the accounts in `scratch` and starts a server with default limits on them.
fn start_server(scratch: &ScratchDir) -> Result<(ServerChild, Bank), String> {
    let data_dir = scratch.0.join("data");
    let password = admin::generate_password();
    let mut accounts: Vec<(String, u32)> = (0..TX_CUSTOMERS)
        .map(|index| (setup::tx_account(index), CHEAP_ITERATIONS))
        .collect();
    accounts.push((CUSTOMER.to_string(), DEFAULT_PBKDF2_ITERATIONS));
    accounts.extend((0..VICTIM_ACCOUNTS).map(|index| (victim_account(index), DEFAULT_PBKDF2_ITERATIONS)));
    progress(format_args!("flood: preparing {} accounts", accounts.len()));
    setup::create_accounts(&data_dir, &accounts, &password)?;
    let outbox = scratch.0.join("outbox");
    let server = ServerChild::spawn_with_default_limits(&data_dir, &outbox, &[])?;
    let bank = Bank {
        addr: server.addr,
        fingerprint: server.fingerprint.clone(),
        outbox,
        password,
    };
    Ok((server, bank))
}

/// What was read at the end of the window, before the server was killed.
struct WindowEnd {
    /// (largest RSS in KiB, most threads) since the attackers started.
    peaks: (u64, u64),
    attack: Vec<(&'static str, u64)>,
    server_cpu_secs: Option<f64>,
    bench_cpu_secs: Option<f64>,
}

/// Steps 2 to 4 of the module doc: attackers, warm-up, the measured window, the kill.
fn under_flood(
    server: ServerChild,
    bank: &Bank,
    sessions: Vec<Option<Client>>,
    options: &FloodOptions,
    results: &mut FloodResults,
) -> Result<(), String> {
    let server_pid = server.pid().to_string();
    let sampler = Sampler::start(server.pid());
    let attack = Attack::new(bank.addr, &bank.fingerprint);
    let attacker_threads = match attackers::start(&attack, options.attackers) {
        Ok(threads) => threads,
        Err(err) => {
            attack.stop.store(true, Ordering::Relaxed);
            return Err(err);
        }
    };
    std::thread::sleep(WARMUP);
    let window_end = Instant::now() + options.phase;
    let server_cpu_before = setup::cpu_secs_of(&server_pid);
    let bench_cpu_before = setup::cpu_secs_of("self");
    let (tx, customer, end) = std::thread::scope(|scope| {
        let tx = scope.spawn(|| customers::transact(bank, sessions, window_end, options.mix));
        let customer = scope.spawn(|| customers::customer_logins(bank, window_end));
        std::thread::sleep(window_end.saturating_duration_since(Instant::now()));
        attack.stop.store(true, Ordering::Relaxed);
        // Read before the kill, which every waiting attacker would count as a closed connection.
        let end = WindowEnd {
            peaks: sampler.stop(),
            attack: attack.counts.snapshot(),
            server_cpu_secs: setup::cpu_secs_of(&server_pid),
            bench_cpu_secs: setup::cpu_secs_of("self"),
        };
        // SIGKILL: every wait of a customer or an attacker on this server ends now.
        drop(server);
        (tx.join(), customer.join(), end)
    });
    for thread in attacker_threads {
        thread.join().map_err(|_| "an attacker thread panicked")?;
    }
    let (_, done, broken) = tx.map_err(|_| "a customer thread panicked")??;
    results.tx_per_sec = done as f64 / options.phase.as_secs_f64();
    results.tx_sessions_broken = broken;
    let (logins, refusals, unfinished) = customer.map_err(|_| "the customer thread panicked")??;
    results.logins_ok = logins.count() as u64 - unfinished;
    results.logins = logins;
    results.logins_unfinished = unfinished;
    results.logins_unavailable = refusals.unavailable;
    results.login_other_failures = refusals.other;
    (results.server_rss_kib_max, results.server_threads_max) = end.peaks;
    results.attack = end.attack;
    let used = |before: Option<f64>, after: Option<f64>| after.zip(before).map_or(0.0, |(a, b)| a - b);
    results.server_cpu_secs = used(server_cpu_before, end.server_cpu_secs);
    results.bench_cpu_secs = used(bench_cpu_before, end.bench_cpu_secs);
    Ok(())
}

/// Reads the server's RSS and thread count from `/proc` until stopped; keeps the largest.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, u64)>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut rss_max, mut threads_max) = (0, 0);
            while !stopped.load(Ordering::Relaxed) {
                if let Some((rss, threads)) = setup::rss_and_threads_of(pid) {
                    rss_max = rss_max.max(rss);
                    threads_max = threads_max.max(threads);
                }
                std::thread::sleep(SAMPLE_INTERVAL);
            }
            (rss_max, threads_max)
        });
        Self { stop, thread }
    }

    /// Stops sampling: (largest RSS in KiB, most threads).
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((0, 0))
    }
}

impl FloodResults {
    /// Login time p50 and p99, in milliseconds.
    fn login_ms(&self) -> (f64, f64) {
        let [p50, p99, _, _] = self.logins.summary();
        (f64::from(p50) / 1000.0, f64::from(p99) / 1000.0)
    }

    /// The `"flood": {...}` member of the JSON line (these names are read by other tools).
    pub fn json(&self) -> String {
        let (p50, p99) = self.login_ms();
        format!(
            "\"flood\":{{\"attackers\":{},\"login_p50_ms\":{p50:.1},\"login_p99_ms\":{p99:.1},\"logins_ok\":{},\
             \"logins_unavailable\":{},\"tx_per_sec\":{:.0},\"tx_per_sec_without_flood\":{:.0},\
             \"server_threads_max\":{},\"server_rss_kib_max\":{}}}",
            self.attackers,
            self.logins_ok,
            self.logins_unavailable,
            self.tx_per_sec,
            self.tx_per_sec_without_flood,
            self.server_threads_max,
            self.server_rss_kib_max
        )
    }
}

impl crate::report::Section for FloodResults {
    fn json(&self) -> String {
        FloodResults::json(self)
    }
}

impl Display for FloodResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p50, p99) = self.login_ms();
        writeln!(
            f,
            "\nflood: {} attackers from 127.0.0.2-127.0.0.{} against a server with default limits, \
             {:.1} s measured after {} s of warm-up",
            self.attackers,
            1 + ATTACKER_ADDRESSES,
            self.phase_secs,
            WARMUP.as_secs()
        )?;
        writeln!(
            f,
            "  customer logins from 127.0.0.1 (handshake + PBKDF2 600k + code, retries included): {} in, \
             p50 {p50:.0} ms, p99 {p99:.0} ms; {} unfinished at the end; met {} unavailable, {} other failures",
            self.logins_ok, self.logins_unfinished, self.logins_unavailable, self.login_other_failures
        )?;
        let kept = if self.tx_per_sec_without_flood > 0.0 {
            100.0 * self.tx_per_sec / self.tx_per_sec_without_flood
        } else {
            0.0
        };
        writeln!(
            f,
            "  {TX_CUSTOMERS} logged-in customers: {:.0} tx/s without the flood, {:.0} tx/s with it ({kept:.0} %); \
             {} sessions broke",
            self.tx_per_sec_without_flood, self.tx_per_sec, self.tx_sessions_broken
        )?;
        writeln!(
            f,
            "  server: at most {} threads, {:.1} MiB RSS; CPU during the window: server {:.1} s, \
             benchmark (attackers and customers) {:.1} s",
            self.server_threads_max,
            self.server_rss_kib_max as f64 / 1024.0,
            self.server_cpu_secs,
            self.bench_cpu_secs
        )?;
        let attack: Vec<String> = self
            .attack
            .iter()
            .map(|(label, count)| format!("{label} {count}"))
            .collect();
        writeln!(f, "  attackers got: {}", attack.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_exactly_the_names_other_tools_read() {
        let mut results = FloodResults {
            attackers: 1000,
            ..FloodResults::default()
        };
        results.logins.record(Duration::from_millis(1500));
        let json = results.json();
        let names: Vec<&str> = json.split('"').skip(1).step_by(2).collect();
        assert_eq!(
            names,
            [
                "flood",
                "attackers",
                "login_p50_ms",
                "login_p99_ms",
                "logins_ok",
                "logins_unavailable",
                "tx_per_sec",
                "tx_per_sec_without_flood",
                "server_threads_max",
                "server_rss_kib_max"
            ]
        );
        assert!(json.contains("\"login_p99_ms\":1500.0"), "{json}");
    }

    #[test]
    fn customers_and_attackers_never_share_an_address() {
        for index in 0..DEFAULT_ATTACKERS {
            assert_ne!(attackers::source_of(index), customers::CUSTOMER_ADDRESS);
        }
    }
}
