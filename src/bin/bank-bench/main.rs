//! `bank-bench`: measures securebank against the plain socket it runs on.
//!
//! By default it prepares a fresh data directory, starts the real `bank-server` binary on
//! loopback and reports, for 1, 8 and 64 clients: a plain length-prefixed echo over
//! `std::net` (the baseline), durable transactions per second and their latency, the
//! group-commit factor (records per sync), handshakes per second and logins per second
//! (real PBKDF2 cost); and the latency of one `fdatasync` on the same disk ([`disk`]), the
//! other part of a durable transaction's latency. `--scale` adds 1,000 idle connections,
//! 100,000 accounts and the recovery time of a 1,000,000-record journal. `--soak N` adds N
//! durable transactions at 64 clients with checkpoints on, then a timed restart (see
//! [`soak`]). `--json` prints one machine-readable line.
//!
//! ```text
//! bank-bench [--clients 1,8,64] [--seconds 3] [--mix deposit=40,withdraw=20,transfer=20,balance=20]
//!            [--scale] [--soak N] [--json] [--connect ADDR --pin SHA256:.. --outbox DIR --password PW]
//! bank-bench prepare --data DIR --accounts N --password PW
//! ```
#![forbid(unsafe_code)]

mod disk;
mod echo;
mod report;
mod scale;
mod setup;
mod soak;
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
    args.finish()?;
    Ok(Options {
        clients,
        phase,
        mix,
        scale,
        soak,
        json,
        external,
    })
}

fn main() -> ExitCode {
    let result = Args::parse(
        std::env::args().skip(1),
        &["scale", "json"],
        &[
            "clients", "seconds", "mix", "soak", "connect", "pin", "outbox", "password", "data", "accounts",
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
    let target = setup::Target::start(options)?;
    let mut results = report::Results::new(report::Machine::detect(), options);
    report::progress(format_args!("fdatasync latency next to the server's data"));
    results.fdatasync = Some(disk::fdatasync_latencies(&target.scratch_dir())?);
    for &clients in &options.clients {
        report::progress(format_args!("echo baseline, {clients} client(s)"));
        results.echo.push(echo::run(clients, options.phase));
        report::progress(format_args!("durable transactions, {clients} client(s)"));
        let phase = with_server_cpu(&target, || {
            workload::transactions(&target, clients, options.phase, options.mix)
        })?;
        results.transactions.push(phase);
    }
    report::progress(format_args!("handshakes"));
    results.handshakes = Some(with_server_cpu(&target, || {
        workload::handshakes(&target, 4, options.phase)
    })?);
    report::progress(format_args!("one PBKDF2 check (600,000 iterations)"));
    results.pbkdf2 = Some(workload::pbkdf2_check(5));
    report::progress(format_args!("logins (real PBKDF2 cost)"));
    results.logins = Some(with_server_cpu(&target, || workload::logins(&target, options.phase))?);
    results.server_rss_kib = target.rss_kib();
    if options.scale {
        results.scale = Some(scale::run(&target, options)?);
    }
    if let Some(transactions) = options.soak {
        results.soak = Some(soak::run(transactions)?);
    }
    if options.json {
        println!("{}", results.to_json());
    } else {
        print!("{results}");
    }
    Ok(())
}
