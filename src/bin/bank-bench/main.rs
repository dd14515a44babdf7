//! `bank-bench`: measures securebank against the plain socket it runs on.
//!
//! By default it prepares a fresh data directory, starts the real `bank-server` binary on
//! loopback and reports, for 1, 8 and 64 clients: a plain length-prefixed echo over
//! `std::net` (the baseline), durable transactions per second and their latency, the
//! group-commit factor (records per sync), handshakes per second and logins per second
//! (real PBKDF2 cost); and the latency of one `fdatasync` on the same disk ([`disk`]), the
//! other part of a durable transaction's latency. `--scale` adds 1,000 idle connections, 100,000 accounts and the
//! recovery time of a 1,000,000-record journal. `--soak N` adds N durable transactions at 64
//! clients with checkpoints on, then a timed restart (see [`soak`]). `--flood` adds the abuse
//! phase of issue 11: 1,000 attacker connections from `127.0.0.2`–`127.0.0.9` while a
//! customer logs in again and again and 8 logged-in customers transact (see [`flood`] and
//! [`attackers`]), followed by `login_timing`, the answer time of a Login for an unknown
//! name against a wrong password, at the default and the minimum PBKDF2 cost (see
//! [`timing`]); `--login-timing` runs only the latter. `--skip-standard` leaves out the
//! echo, transaction, handshake and login phases (for a quick `--flood` run). `--json`
//! prints one machine-readable line.
//!
//! `--soak`, `--flood` and `--login-timing` always start their own servers (the flood and
//! the timing with the server's default limits), even with `--connect`.
//!
//! ```text
//! bank-bench [--clients 1,8,64] [--seconds 3] [--mix deposit=40,withdraw=20,transfer=20,balance=20]
//!            [--scale] [--soak N] [--json] [--connect ADDR --pin SHA256:.. --outbox DIR --password PW]
//!            [--flood [--flood-attackers 1000] [--flood-seconds 60]] [--login-timing]
//!            [--timing-samples 100] [--skip-standard]
//! bank-bench prepare --data DIR --accounts N --password PW
//! ```
#![forbid(unsafe_code)]

mod attackers;
mod customers;
mod disk;
mod echo;
mod flood;
mod report;
mod scale;
mod setup;
mod soak;
mod timing;
mod workload;

use std::process::ExitCode;
use std::time::Duration;

use securebank::args::Args;

/// Everything the command line chose.
#[derive(Debug, Clone)]
pub struct Options {
    /// Client counts to measure.
    pub clients: Vec<usize>,
    /// Length of each measured phase.
    pub phase: Duration,
    /// Operation mix, in percent: deposit, withdraw, transfer, balance.
    pub mix: workload::Mix,
    /// Also run the scale scenarios.
    pub scale: bool,
    /// Also run a soak of this many transactions.
    pub soak: Option<u64>,
    /// Print one JSON line at the end.
    pub json: bool,
    /// Use a server that is already running instead of starting one.
    pub external: Option<setup::External>,
    /// Also run the flood phase.
    pub flood: Option<flood::FloodOptions>,
    /// Also measure login timing, with this many samples of each kind at the default cost.
    pub login_timing: Option<usize>,
    /// Leave out the standard phases (echo, transactions, handshakes, logins).
    pub skip_standard: bool,
}

fn parse_options(mut args: Args) -> Result<Options, String> {
    let clients = match args.value("clients")? {
        None => vec![1, 8, 64],
        Some(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("--clients: bad number {n:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if clients.iter().any(|&n| n == 0 || n > setup::MAX_BENCH_CLIENTS) {
        return Err(format!("--clients must be 1..={}", setup::MAX_BENCH_CLIENTS));
    }
    let phase = Duration::from_secs_f64(args.number::<f64>("seconds")?.unwrap_or(3.0).clamp(0.5, 600.0));
    let mix = match args.value("mix")? {
        None => workload::Mix::default(),
        Some(text) => workload::Mix::parse(&text)?,
    };
    let scale = args.take("scale").is_some();
    let soak = args.number::<u64>("soak")?;
    if soak == Some(0) {
        return Err("--soak needs a number of transactions, at least 1".into());
    }
    let json = args.take("json").is_some();
    let external = setup::External::from_args(&mut args)?;
    let flood = parse_flood(&mut args, mix)?;
    let timing_wanted = args.take("login-timing").is_some() || flood.is_some();
    let login_timing = match args.number::<usize>("timing-samples")? {
        Some(_) if !timing_wanted => return Err("--timing-samples needs --flood or --login-timing".into()),
        Some(samples) if !(1..=timing::MAX_TIMING_SAMPLES).contains(&samples) => {
            return Err(format!("--timing-samples must be 1..={}", timing::MAX_TIMING_SAMPLES));
        }
        samples => timing_wanted.then(|| samples.unwrap_or(timing::DEFAULT_TIMING_SAMPLES)),
    };
    let skip_standard = args.take("skip-standard").is_some();
    args.finish()?;
    Ok(Options {
        clients,
        phase,
        mix,
        scale,
        soak,
        json,
        external,
        flood,
        login_timing,
        skip_standard,
    })
}

/// `--flood [--flood-attackers N] [--flood-seconds S]`.
fn parse_flood(args: &mut Args, mix: workload::Mix) -> Result<Option<flood::FloodOptions>, String> {
    let wanted = args.take("flood").is_some();
    let attackers = args.number::<usize>("flood-attackers")?;
    let seconds = args.number::<f64>("flood-seconds")?;
    if !wanted {
        if attackers.is_some() || seconds.is_some() {
            return Err("--flood-attackers and --flood-seconds need --flood".into());
        }
        return Ok(None);
    }
    let attackers = attackers.unwrap_or(flood::DEFAULT_ATTACKERS);
    if !(1..=flood::MAX_ATTACKERS).contains(&attackers) {
        return Err(format!("--flood-attackers must be 1..={}", flood::MAX_ATTACKERS));
    }
    let seconds = seconds.unwrap_or(flood::DEFAULT_FLOOD_SECS);
    if !(0.5..=600.0).contains(&seconds) {
        return Err("--flood-seconds must be 0.5..=600".into());
    }
    Ok(Some(flood::FloodOptions {
        attackers,
        phase: Duration::from_secs_f64(seconds),
        mix,
    }))
}

fn main() -> ExitCode {
    let result = Args::parse(
        std::env::args().skip(1),
        &["scale", "json", "flood", "login-timing", "skip-standard"],
        &[
            "clients",
            "seconds",
            "mix",
            "soak",
            "connect",
            "pin",
            "outbox",
            "password",
            "data",
            "accounts",
            "flood-attackers",
            "flood-seconds",
            "timing-samples",
        ],
    )
    .and_then(|mut args| {
        if args.next_positional().as_deref() == Some("prepare") {
            return setup::prepare_command(args);
        }
        let options = parse_options(args)?;
        run(&options)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bank-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a phase and charges the server's CPU time during it to each completed operation.
/// (The transaction phase's logins and counter probes are included; they are few.)
fn with_server_cpu(
    target: &setup::Target,
    phase: impl FnOnce() -> Result<report::PhaseResult, String>,
) -> Result<report::PhaseResult, String> {
    let before = target.server_cpu_secs();
    let mut result = phase()?;
    if let (Some(before), Some(after)) = (before, target.server_cpu_secs()) {
        let ops = result.latencies.count().max(1) as f64;
        result.server_cpu_us_per_op = Some((after - before) * 1e6 / ops);
    }
    Ok(result)
}

fn run(options: &Options) -> Result<(), String> {
    let mut results = report::Results::new(report::Machine::detect(), options);
    if !options.skip_standard || options.scale {
        let target = setup::Target::start(options)?;
        if !options.skip_standard {
            standard_phases(&target, options, &mut results)?;
        }
        if options.scale {
            results.scale = Some(scale::run(&target, options)?);
        }
    }
    if let Some(transactions) = options.soak {
        results.soak = Some(soak::run(transactions)?);
    }
    if let Some(flood) = &options.flood {
        results.flood = Some(Box::new(flood::run(flood)?));
    }
    if let Some(samples) = options.login_timing {
        results.login_timing = Some(Box::new(timing::run(samples)?));
    }
    if options.json {
        println!("{}", results.to_json());
    } else {
        print!("{results}");
    }
    Ok(())
}

/// Echo baselines, durable transactions, handshakes, one PBKDF2 check and logins.
fn standard_phases(target: &setup::Target, options: &Options, results: &mut report::Results) -> Result<(), String> {
    report::progress(format_args!("fdatasync latency next to the server's data"));
    results.fdatasync = Some(disk::fdatasync_latencies(&target.scratch_dir())?);
    for &clients in &options.clients {
        report::progress(format_args!("echo baseline, {clients} client(s)"));
        results.echo.push(echo::run(clients, options.phase));
        report::progress(format_args!("durable transactions, {clients} client(s)"));
        let phase = with_server_cpu(target, || {
            workload::transactions(target, clients, options.phase, options.mix)
        })?;
        results.transactions.push(phase);
    }
    report::progress(format_args!("handshakes"));
    results.handshakes = Some(with_server_cpu(target, || {
        workload::handshakes(target, 4, options.phase)
    })?);
    report::progress(format_args!("one PBKDF2 check (600,000 iterations)"));
    results.pbkdf2 = Some(workload::pbkdf2_check(5));
    report::progress(format_args!("logins (real PBKDF2 cost)"));
    results.logins = Some(with_server_cpu(target, || workload::logins(target, options.phase))?);
    results.server_rss_kib = target.rss_kib();
    Ok(())
}
