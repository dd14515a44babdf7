//! `--soak N`: N durable transactions from 64 clients against the real server with its
//! default checkpoint interval, then a SIGKILL and a timed restart on the same data.
//!
//! It shows what issue "runs for a year" asks: memory that stays flat (server RSS sampled
//! every N/10 transactions), a restart time that does not grow with the journal, what a
//! checkpoint costs the requests that overlap it (p99 of those against p99 of the rest,
//! from the checkpoint lines the server prints with their duration), and journal bytes per
//! transaction. Transaction ids are remembered for [`SOAK_TXID_RETENTION_SECS`]: memory
//! for ids is rate × window, and at this benchmark's rate the default day would hold every
//! id of the run, which measures the window, not the design.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use securebank::client::{Client, connect_pinned, new_txid};
use securebank::server::admin;
use securebank::server::journal;
use securebank::trace::Tracer;

use crate::report::{Latencies, SoakResults};
use crate::setup::{self, ScratchDir};

/// Concurrent clients of the soak.
pub const SOAK_CLIENTS: usize = 64;

/// Retention of transaction ids during the soak, in seconds (see the module doc).
pub const SOAK_TXID_RETENTION_SECS: u64 = 10;

/// A server process whose checkpoint lines are recorded with the time they appeared.
struct SoakServer {
    child: Child,
    addr: std::net::SocketAddr,
    fingerprint: String,
    start_time: Duration,
    /// (when the line appeared, how long the checkpoint took, how long it held the lock).
    checkpoints: Arc<Mutex<Vec<(Instant, Duration, Duration)>>>,
    recovery_line: Arc<Mutex<String>>,
}

impl SoakServer {
    fn spawn(data_dir: &Path, outbox: &Path) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|err| err.to_string())?;
        let started = Instant::now();
        let retention = SOAK_TXID_RETENTION_SECS.to_string();
        let mut child = Command::new(exe.with_file_name("bank-server"))
            .arg("--data")
            .arg(data_dir)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--idle-timeout-secs",
                "3600",
                "--txid-retention-secs",
            ])
            .arg(&retention)
            .args(crate::setup::OPEN_SOURCE_LIMITS)
            .arg("--otp-outbox")
            .arg(outbox)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot start bank-server: {err} (run `cargo build --release` first)"))?;
        let checkpoints = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&checkpoints);
        let stderr = child.stderr.take().ok_or("no stderr")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let micros_after = |label: &str| {
                    let value = line.split(label).nth(1)?.split(' ').next()?.parse().ok()?;
                    Some(Duration::from_micros(value))
                };
                if let (Some(took), Some(locked)) = (micros_after("took "), micros_after("ledger locked ")) {
                    recorded
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((Instant::now(), took, locked));
                } else {
                    eprintln!("{line}");
                }
            }
        });
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let recovery_line = Arc::new(Mutex::new(String::new()));
        let recovery = Arc::clone(&recovery_line);
        std::thread::spawn(move || {
            let mut fingerprint = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(fp) = line.trim().strip_prefix("server key:") {
                    fingerprint = fp.trim().to_string();
                }
                if line.contains("replayed") {
                    *recovery.lock().unwrap_or_else(|p| p.into_inner()) = line.trim().to_string();
                }
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send((addr.to_string(), fingerprint.clone()));
                }
            }
        });
        let (addr, fingerprint) = rx
            .recv_timeout(Duration::from_secs(600))
            .map_err(|_| "bank-server did not start")?;
        Ok(Self {
            start_time: started.elapsed(),
            addr: addr.parse().map_err(|_| format!("bad address {addr}"))?,
            fingerprint,
            child,
            checkpoints,
            recovery_line,
        })
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    fn login(&self, user: &str, password: &str, outbox: &Path) -> Result<Client, String> {
        let mut client = connect_pinned(self.addr, &self.fingerprint, Tracer::off()).map_err(|err| err.to_string())?;
        client
            .login(user, password)
            .map_err(|err| format!("login {user}: {err}"))?;
        let code = std::fs::read_to_string(outbox.join(format!("{user}.otp"))).map_err(|err| err.to_string())?;
        client.submit_otp(code.trim()).map_err(|err| format!("code: {err}"))?;
        Ok(client)
    }
}

impl Drop for SoakServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request: when it started (since the run began) and how long it took.
#[derive(Clone, Copy)]
struct Sample {
    started: Duration,
    took: Duration,
}

/// Runs `transactions` durable transactions and the restart.
pub fn run(transactions: u64) -> Result<SoakResults, String> {
    let scratch = ScratchDir::new("soak")?;
    let data_dir = scratch.0.join("data");
    let outbox = scratch.0.join("outbox");
    let password = admin::generate_password();
    crate::report::progress(format_args!("soak: preparing {SOAK_CLIENTS} accounts"));
    setup::prepare(&data_dir, SOAK_CLIENTS, &password)?;
    let server = SoakServer::spawn(&data_dir, &outbox)?;
    let clients = (0..SOAK_CLIENTS)
        .map(|index| server.login(&setup::tx_account(index), &password, &outbox))
        .collect::<Result<Vec<_>, _>>()?;
    crate::report::progress(format_args!(
        "soak: {transactions} durable transactions from {SOAK_CLIENTS} clients"
    ));
    let done = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(SOAK_CLIENTS + 1));
    let epoch = Instant::now();
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(index, client)| {
            let (done, barrier) = (Arc::clone(&done), Arc::clone(&barrier));
            std::thread::spawn(move || client_loop(client, index, transactions, &done, &barrier, epoch))
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut results = SoakResults {
        accounts: SOAK_CLIENTS,
        txid_retention_secs: SOAK_TXID_RETENTION_SECS,
        ..SoakResults::default()
    };
    let step = (transactions / 10).max(1);
    let mut next_sample = step;
    while done.load(Ordering::Relaxed) < transactions && threads.iter().any(|t| !t.is_finished()) {
        let now_done = done.load(Ordering::Relaxed);
        if now_done >= next_sample {
            results.rss_kib.push((now_done, server.rss_kib()));
            next_sample += step;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut samples = Vec::new();
    for thread in threads {
        samples.extend(thread.join().map_err(|_| "client thread panicked")??);
    }
    let elapsed = started.elapsed();
    results.rss_kib.push((transactions, server.rss_kib()));
    results.transactions = samples.len() as u64;
    results.tx_per_sec = samples.len() as f64 / elapsed.as_secs_f64();
    let checkpoint_lines = server.checkpoints.lock().unwrap_or_else(|p| p.into_inner()).clone();
    results.checkpoint_lock_max_us = checkpoint_lines
        .iter()
        .map(|&(_, _, locked)| u64::try_from(locked.as_micros()).unwrap_or(u64::MAX))
        .max()
        .unwrap_or(0);
    let windows: Vec<(Duration, Duration)> = checkpoint_lines
        .iter()
        .map(|&(at, took, _)| {
            let end = at.saturating_duration_since(epoch);
            (end.saturating_sub(took), end)
        })
        .collect();
    split_latencies(&samples, &windows, &mut results);
    drop(server);
    results.checkpoints = count_files(&data_dir, |name| {
        name.starts_with("checkpoint-") && name.ends_with(".ckp")
    });
    results.journal_bytes_per_tx = journal_bytes(&data_dir)? as f64 / results.transactions.max(1) as f64;
    crate::report::progress(format_args!(
        "soak: SIGKILLed the server; restarting it on the same data"
    ));
    let restarted = SoakServer::spawn(&data_dir, &outbox)?;
    results.restart_secs = restarted.start_time.as_secs_f64();
    results.restart_replayed = restarted
        .recovery_line
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(results)
}

fn client_loop(
    mut client: Client,
    index: usize,
    transactions: u64,
    done: &AtomicU64,
    barrier: &Barrier,
    epoch: Instant,
) -> Result<Vec<Sample>, String> {
    let recipient = setup::tx_account((index + 1) % SOAK_CLIENTS);
    let mut samples = Vec::with_capacity((transactions as usize / SOAK_CLIENTS) + 1);
    barrier.wait();
    let mut turn = index;
    while done.fetch_add(1, Ordering::Relaxed) < transactions {
        let started = Instant::now();
        let outcome = match turn % 5 {
            0 | 1 => client.deposit(new_txid(), 100),
            2 => client.withdraw(new_txid(), 50),
            _ => client.transfer(new_txid(), 10, &recipient),
        };
        outcome.map_err(|err| format!("soak transaction failed: {err}"))?;
        samples.push(Sample {
            started: started.saturating_duration_since(epoch),
            took: started.elapsed(),
        });
        turn += 1;
    }
    Ok(samples)
}

/// p99 of the requests that overlapped a checkpoint window, and of the rest.
fn split_latencies(samples: &[Sample], windows: &[(Duration, Duration)], results: &mut SoakResults) {
    let (mut during, mut outside) = (Latencies::default(), Latencies::default());
    for sample in samples {
        let end = sample.started + sample.took;
        let overlaps = windows.iter().any(|&(from, to)| sample.started <= to && end >= from);
        if overlaps {
            during.record(sample.took);
        } else {
            outside.record(sample.took);
        }
    }
    results.during_checkpoint_requests = during.count();
    results.checkpoint_p99_us = during.summary()[1];
    results.p99_us = outside.summary()[1];
}

fn count_files(dir: &Path, wanted: impl Fn(&str) -> bool) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_name().to_str().is_some_and(&wanted))
                .count()
        })
        .unwrap_or(0)
}

/// Bytes of journal data: every segment up to its last non-zero sector (the newest one
/// still has preallocated zeros after its data).
fn journal_bytes(dir: &Path) -> Result<u64, String> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|err| err.to_string())? {
        let entry = entry.map_err(|err| err.to_string())?;
        let name = entry.file_name();
        if name.to_str().and_then(journal::parse_segment_name).is_none() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(|err| err.to_string())?;
        let data_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
        total += data_end.next_multiple_of(journal::SECTOR_BYTES as usize) as u64;
    }
    Ok(total)
}
