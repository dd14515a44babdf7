//! Latency collection, the result table for people and the one-line JSON for machines.

use std::fmt::{self, Display, Write as _};
use std::time::Duration;

use crate::Options;

/// Prints a progress line on standard error.
pub fn progress(what: fmt::Arguments<'_>) {
    eprintln!("[bench] {what} ...");
}

/// A phase's results that another module measures (the flood, the login timing): shown to
/// people through `Display`, and written into the JSON line as one `"key":{...}` member.
/// A trait, so that this module does not depend on the modules that measure.
pub trait Section: Display + fmt::Debug {
    /// The JSON member, `"key":{...}`.
    fn json(&self) -> String;
}

/// Round-trip times in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u32>,
}

impl Latencies {
    /// Records one round trip.
    pub fn record(&mut self, elapsed: Duration) {
        self.micros.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }

    /// Adds another thread's samples.
    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    /// Number of samples.
    pub fn count(&self) -> usize {
        self.micros.len()
    }

    /// Sorted percentiles p50, p99, p99.9 and the maximum, in microseconds.
    pub fn summary(&self) -> [u32; 4] {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let at = |q: f64| {
            if sorted.is_empty() {
                0
            } else {
                sorted[((sorted.len() - 1) as f64 * q).round() as usize]
            }
        };
        [at(0.50), at(0.99), at(0.999), sorted.last().copied().unwrap_or(0)]
    }
}

/// One measured phase.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// Concurrent clients.
    pub clients: usize,
    /// Completed round trips per second.
    pub per_sec: f64,
    /// All samples.
    pub latencies: Latencies,
    /// Per-operation breakdown (transactions only).
    pub per_op: Vec<(String, Latencies)>,
    /// Records per sync during the phase (transactions only).
    pub records_per_sync: Option<f64>,
    /// Server CPU time per operation, microseconds (user + system, 10 ms resolution).
    pub server_cpu_us_per_op: Option<f64>,
}

impl PhaseResult {
    /// A result from samples gathered over `elapsed`.
    pub fn new(clients: usize, latencies: Latencies, elapsed: Duration) -> Self {
        let per_sec = latencies.count() as f64 / elapsed.as_secs_f64();
        Self {
            clients,
            per_sec,
            latencies,
            per_op: Vec::new(),
            records_per_sync: None,
            server_cpu_us_per_op: None,
        }
    }
}

/// The machine the run happened on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical cores.
    pub cores: usize,
}

impl Machine {
    /// Reads /proc/cpuinfo.
    pub fn detect() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// What the soak measured (`--soak N`, see `crate::soak`).
#[derive(Debug, Clone, Default)]
pub struct SoakResults {
    /// Durable transactions completed.
    pub transactions: u64,
    /// Accounts they moved money between.
    pub accounts: usize,
    /// Server RSS samples: (transactions done, KiB).
    pub rss_kib: Vec<(u64, u64)>,
    /// Seconds from spawning the server on the soaked data until it listened.
    pub restart_secs: f64,
    /// Checkpoint files written.
    pub checkpoints: usize,
    /// p99 of the requests that overlapped a checkpoint, microseconds.
    pub checkpoint_p99_us: u32,
    /// p99 of all the other requests, microseconds.
    pub p99_us: u32,
    /// Requests that overlapped a checkpoint.
    pub during_checkpoint_requests: usize,
    /// Journal bytes on disk per transaction (segments, without preallocated space).
    pub journal_bytes_per_tx: f64,
    /// Durable transactions per second over the run.
    pub tx_per_sec: f64,
    /// Records replayed by the restart (after the newest checkpoint).
    pub restart_replayed: String,
    /// Longest time a checkpoint held the ledger lock (its consistent copy), microseconds.
    pub checkpoint_lock_max_us: u64,
    /// How long the server remembered transaction ids during the soak, seconds.
    pub txid_retention_secs: u64,
}

/// Results of the scale scenarios.
#[derive(Debug, Clone, Default)]
pub struct ScaleResults {
    /// Idle connections held open during the transaction phase.
    pub idle_connections: usize,
    /// Transactions per second while they were held.
    pub tx_per_sec_with_idle: f64,
    /// Server RSS with the idle connections open, KiB.
    pub rss_with_idle_kib: u64,
    /// Server threads with the idle connections open.
    pub threads_with_idle: u64,
    /// Accounts in the large-bank start.
    pub accounts: usize,
    /// Server start time with that many accounts, seconds.
    pub accounts_start_secs: f64,
    /// Server RSS with that many accounts, KiB.
    pub accounts_rss_kib: u64,
    /// Journal records in the recovery test.
    pub journal_records: u64,
    /// Server start (replay) time for that journal, seconds.
    pub recovery_secs: f64,
    /// Server RSS after that replay, KiB.
    pub recovery_rss_kib: u64,
}

/// Everything one run measured.
#[derive(Debug)]
pub struct Results {
    machine: Machine,
    phase_secs: f64,
    /// Echo baselines, one per client count.
    pub echo: Vec<PhaseResult>,
    /// Durable transactions, one per client count.
    pub transactions: Vec<PhaseResult>,
    /// Handshakes.
    pub handshakes: Option<PhaseResult>,
    /// Logins.
    pub logins: Option<PhaseResult>,
    /// One PBKDF2 check at the default cost, in this process.
    pub pbkdf2: Option<PhaseResult>,
    /// Server RSS at the end of the standard phases, KiB.
    pub server_rss_kib: Option<u64>,
    /// One `fdatasync` after a small write, next to the server's data (see `crate::disk`).
    pub fdatasync: Option<Latencies>,
    /// Scale scenarios.
    pub scale: Option<ScaleResults>,
    /// The soak.
    pub soak: Option<SoakResults>,
    /// The flood (`--flood`).
    pub flood: Option<Box<dyn Section>>,
    /// Login answer times (`--flood` or `--login-timing`).
    pub login_timing: Option<Box<dyn Section>>,
}

impl Results {
    /// Empty results for this machine and these options.
    pub fn new(machine: Machine, options: &Options) -> Self {
        Self {
            machine,
            phase_secs: options.phase.as_secs_f64(),
            echo: Vec::new(),
            transactions: Vec::new(),
            handshakes: None,
            logins: None,
            pbkdf2: None,
            server_rss_kib: None,
            fdatasync: None,
            scale: None,
            soak: None,
            flood: None,
            login_timing: None,
        }
    }

    fn echo_for(&self, clients: usize) -> Option<&PhaseResult> {
        self.echo.iter().find(|echo| echo.clients == clients)
    }

    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"cpu\":{:?},\"cores\":{},\"phase_secs\":{}",
            self.machine.cpu, self.machine.cores, self.phase_secs
        );
        if let Some(syncs) = &self.fdatasync {
            let [p50, p99, ..] = syncs.summary();
            let _ = write!(out, ",\"fdatasync_p50_us\":{p50},\"fdatasync_p99_us\":{p99}");
        }
        let phase_json = |phase: &PhaseResult, ratio: Option<f64>| {
            let [p50, p99, p999, max] = phase.latencies.summary();
            let mut text = format!(
                "{{\"clients\":{},\"per_sec\":{:.0},\"p50_us\":{p50},\"p99_us\":{p99},\"p999_us\":{p999},\"max_us\":{max}",
                phase.clients, phase.per_sec
            );
            if let Some(ratio) = ratio {
                let _ = write!(text, ",\"ratio_to_echo\":{ratio:.3}");
            }
            if let Some(rps) = phase.records_per_sync {
                let _ = write!(text, ",\"records_per_sync\":{rps:.1}");
            }
            if let Some(cpu) = phase.server_cpu_us_per_op {
                let _ = write!(text, ",\"server_cpu_us_per_op\":{cpu:.1}");
            }
            for (op, latencies) in &phase.per_op {
                let [p50, p99, p999, max] = latencies.summary();
                let _ = write!(
                    text,
                    ",\"{op}\":{{\"count\":{},\"p50_us\":{p50},\"p99_us\":{p99},\"p999_us\":{p999},\"max_us\":{max}}}",
                    latencies.count()
                );
            }
            text.push('}');
            text
        };
        let list = |phases: &[PhaseResult], with_ratio: bool| {
            phases
                .iter()
                .map(|p| {
                    phase_json(
                        p,
                        if with_ratio {
                            self.echo_for(p.clients).map(|e| p.per_sec / e.per_sec)
                        } else {
                            None
                        },
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let _ = write!(
            out,
            ",\"echo\":[{}],\"transactions\":[{}]",
            list(&self.echo, false),
            list(&self.transactions, true)
        );
        if let Some(h) = &self.handshakes {
            let _ = write!(out, ",\"handshakes\":{}", phase_json(h, None));
        }
        if let Some(l) = &self.logins {
            let _ = write!(out, ",\"logins\":{}", phase_json(l, None));
        }
        if let Some(p) = &self.pbkdf2 {
            let _ = write!(out, ",\"pbkdf2_check\":{}", phase_json(p, None));
        }
        if let Some(rss) = self.server_rss_kib {
            let _ = write!(out, ",\"server_rss_kib\":{rss}");
        }
        if let Some(s) = &self.scale {
            let _ = write!(
                out,
                ",\"scale\":{{\"idle_connections\":{},\"tx_per_sec_with_idle\":{:.0},\"rss_with_idle_kib\":{},\"threads_with_idle\":{},\"accounts\":{},\"accounts_start_secs\":{:.2},\"accounts_rss_kib\":{},\"journal_records\":{},\"recovery_secs\":{:.2},\"recovery_rss_kib\":{}}}",
                s.idle_connections,
                s.tx_per_sec_with_idle,
                s.rss_with_idle_kib,
                s.threads_with_idle,
                s.accounts,
                s.accounts_start_secs,
                s.accounts_rss_kib,
                s.journal_records,
                s.recovery_secs,
                s.recovery_rss_kib
            );
        }
        if let Some(s) = &self.soak {
            let rss = s
                .rss_kib
                .iter()
                .map(|(done, kib)| format!("[{done},{kib}]"))
                .collect::<Vec<_>>()
                .join(",");
            let _ = write!(
                out,
                ",\"soak\":{{\"transactions\":{},\"accounts\":{},\"rss_kib\":[{rss}],\"restart_secs\":{:.3},\"checkpoints\":{},\"checkpoint_p99_us\":{},\"journal_bytes_per_tx\":{:.1},\"p99_us\":{},\"during_checkpoint_requests\":{},\"tx_per_sec\":{:.0},\"txid_retention_secs\":{},\"checkpoint_lock_max_us\":{}}}",
                s.transactions,
                s.accounts,
                s.restart_secs,
                s.checkpoints,
                s.checkpoint_p99_us,
                s.journal_bytes_per_tx,
                s.p99_us,
                s.during_checkpoint_requests,
                s.tx_per_sec,
                s.txid_retention_secs,
                s.checkpoint_lock_max_us
            );
        }
        if let Some(flood) = &self.flood {
            let _ = write!(out, ",{}", flood.json());
        }
        if let Some(timing) = &self.login_timing {
            let _ = write!(out, ",{}", timing.json());
        }
        out.push('}');
        out
    }
}

fn row(f: &mut fmt::Formatter<'_>, label: &str, phase: &PhaseResult, ratio: Option<f64>) -> fmt::Result {
    let [p50, p99, p999, max] = phase.latencies.summary();
    let ratio = ratio.map_or_else(|| "".to_string(), |r| format!("{r:.2}x"));
    let cpu = phase
        .server_cpu_us_per_op
        .map_or_else(|| "".to_string(), |us| format!("{us:.0}"));
    writeln!(
        f,
        "{label:<26} {:>7} {:>10.0} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}",
        phase.clients, phase.per_sec, p50, p99, p999, max, ratio, cpu
    )
}

impl Display for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "securebank benchmark: {} ({} cores), loopback, release build, {:.1} s per phase",
            self.machine.cpu, self.machine.cores, self.phase_secs
        )?;
        if !self.echo.is_empty() {
            writeln!(
                f,
                "latencies in microseconds; 'vs echo' = securebank rate / plain echo rate at the same client count;\n\
                 'server CPU' = server process CPU time (user + system) per operation, microseconds"
            )?;
            writeln!(f)?;
            writeln!(
                f,
                "{:<26} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}",
                "phase", "clients", "per sec", "p50", "p99", "p99.9", "max", "vs echo", "server CPU"
            )?;
        }
        for echo in &self.echo {
            row(f, "echo baseline (46 B)", echo, None)?;
        }
        for tx in &self.transactions {
            row(
                f,
                "durable transactions",
                tx,
                self.echo_for(tx.clients).map(|e| tx.per_sec / e.per_sec),
            )?;
            for (op, latencies) in &tx.per_op {
                let per_sec = latencies.count() as f64 / self.phase_secs;
                let phase = PhaseResult {
                    clients: tx.clients,
                    per_sec,
                    latencies: latencies.clone(),
                    per_op: Vec::new(),
                    records_per_sync: None,
                    server_cpu_us_per_op: None,
                };
                row(f, &format!("  {op}"), &phase, None)?;
            }
            if let Some(rps) = tx.records_per_sync {
                writeln!(f, "  records per sync (group commit): {rps:.1}")?;
            }
        }
        if let Some(h) = &self.handshakes {
            row(f, "handshakes (RSA-PSS sign)", h, None)?;
        }
        if let Some(l) = &self.logins {
            row(f, "logins (PBKDF2 600k + OTP)", l, None)?;
        }
        if let Some(p) = &self.pbkdf2 {
            row(f, "one PBKDF2 check (600k)", p, None)?;
        }
        if let Some(syncs) = &self.fdatasync {
            let [p50, p99, ..] = syncs.summary();
            writeln!(
                f,
                "\none fdatasync after a 512-byte write to a preallocated file (same disk): p50 {p50} us, p99 {p99} us"
            )?;
        }
        if let Some(rss) = self.server_rss_kib {
            writeln!(f, "\nserver RSS after these phases: {:.1} MiB", rss as f64 / 1024.0)?;
        }
        if let Some(s) = &self.scale {
            writeln!(f, "\nscale:")?;
            writeln!(
                f,
                "  {} idle connections held open: {:.0} transactions/s from 8 other clients; server RSS {:.1} MiB, {} threads",
                s.idle_connections,
                s.tx_per_sec_with_idle,
                s.rss_with_idle_kib as f64 / 1024.0,
                s.threads_with_idle
            )?;
            writeln!(
                f,
                "  {} accounts: server start {:.2} s, RSS {:.1} MiB",
                s.accounts,
                s.accounts_start_secs,
                s.accounts_rss_kib as f64 / 1024.0
            )?;
            writeln!(
                f,
                "  journal of {} records: recovery (start until listening) {:.2} s, RSS {:.1} MiB",
                s.journal_records,
                s.recovery_secs,
                s.recovery_rss_kib as f64 / 1024.0
            )?;
        }
        if let Some(s) = &self.soak {
            writeln!(
                f,
                "\nsoak: {} durable transactions from 64 clients, {:.0}/s, ids remembered {} s",
                s.transactions, s.tx_per_sec, s.txid_retention_secs
            )?;
            let rss: Vec<String> = s
                .rss_kib
                .iter()
                .map(|(done, kib)| format!("{done}: {:.1} MiB", *kib as f64 / 1024.0))
                .collect();
            writeln!(f, "  server RSS: {}", rss.join(", "))?;
            writeln!(
                f,
                "  {} checkpoints (ledger locked at most {} us each); p99 {} us for the {} requests \
                 that overlapped one, {} us for the rest",
                s.checkpoints, s.checkpoint_lock_max_us, s.checkpoint_p99_us, s.during_checkpoint_requests, s.p99_us
            )?;
            writeln!(f, "  journal: {:.1} bytes per transaction", s.journal_bytes_per_tx)?;
            writeln!(
                f,
                "  restart after SIGKILL: {:.3} s ({})",
                s.restart_secs, s.restart_replayed
            )?;
        }
        if let Some(flood) = &self.flood {
            write!(f, "{flood}")?;
        }
        if let Some(timing) = &self.login_timing {
            write!(f, "{timing}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_gives_percentiles_and_maximum() {
        let mut latencies = Latencies::default();
        for micros in 1..=1000u64 {
            latencies.record(Duration::from_micros(micros));
        }
        assert_eq!(latencies.summary(), [501, 990, 999, 1000]);
        assert_eq!(Latencies::default().summary(), [0, 0, 0, 0]);
    }
}
