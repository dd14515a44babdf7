//! `bank-server`: run the bank, or manage its data directory.
//!
//! ```text
//! bank-server [--data DIR] [--listen ADDR] [--demo-accounts] [--otp-outbox DIR] [--trace[=bytes]]
//!             [--otp-command PROGRAM] [--otp-command-timeout-secs N]
//!             [--max-connections N] [--handshake-timeout-secs N] [--idle-timeout-secs N] [--write-timeout-secs N]
//!             [--otp-ttl-secs N] [--pbkdf2-iterations N] [--lockout-secs N]
//!             [--anonymous-idle-timeout-secs N] [--login-queue-deadline-ms N] [--anonymous-per-source N]
//!             [--handshakes-per-source-per-sec N] [--logins-per-source-per-min N]
//!             [--refused-tx-per-session-per-min N]
//!             [--checkpoint-every N] [--txid-retention-secs N] [--journal-preallocate-kib N]
//! bank-server fingerprint [--data DIR]
//! bank-server add-account NAME [--deposit AMOUNT] [--data DIR] [--pbkdf2-iterations N]
//! bank-server unlock NAME [--data DIR]
//! bank-server close-account NAME [--data DIR]
//! bank-server enrol-totp NAME [--data DIR]
//! bank-server remove-totp NAME [--data DIR]
//! bank-server stats [--data DIR]
//! bank-server checkpoint [--data DIR]
//! bank-server verify [--data DIR] [--txid-retention-secs N]
//! bank-server stop [--data DIR]
//! bank-server prune --keep-checkpoints K [--data DIR]
//! ```
//!
//! The operator commands (add-account to stop) go through the running server's admin socket
//! `DIR/admin.sock` when a server runs, and work offline on DIR when none does
//! ([`securebank::operator_client`]); their first line says which.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use securebank::args::Args;
use securebank::identity::{KeyOrigin, ServerIdentity};
use securebank::limits::{
    MAX_BALANCE_CENTS, MAX_CONNECTIONS_LIMIT, MAX_JOURNAL_PREALLOCATE_KIB, MAX_LOGIN_QUEUE_DEADLINE_MS,
    MAX_PBKDF2_ITERATIONS, MAX_SOURCE_RATE, MAX_TIME_LIMIT_SECS, MAX_TXID_RETENTION_SECS, MIN_LOCKOUT_SECS,
    MIN_PBKDF2_ITERATIONS, TOTP_ENROL_TRIES,
};
use securebank::money::{format_cents, parse_amount_up_to};
use securebank::operator_client::{self, Target};
use securebank::server::bank::Bank;
use securebank::server::operator::{Command, Reply, Status};
use securebank::server::operator_socket;
use securebank::server::recovery::RecoveryReport;
use securebank::server::{Server, ServerConfig, admin};
use securebank::totp::{self, TotpSecret};
use securebank::trace::TraceLevel;

/// `--help`: every command and every flag, on standard output.
const HELP: &str = "bank-server: run the securebank server, or manage its data directory.

usage:
  bank-server [OPTIONS]                    run the bank
  bank-server fingerprint [--data DIR]     print the server key's fingerprint
  bank-server add-account NAME [--deposit AMOUNT] [--data DIR] [--pbkdf2-iterations N]
                                           open an account (password read from the terminal or stdin)
  bank-server unlock NAME [--data DIR]     lift a login lockout
  bank-server close-account NAME [--data DIR]
  bank-server enrol-totp NAME [--data DIR] give NAME an authenticator app (shows a QR code,
                                           then asks for one code from the app)
  bank-server remove-totp NAME [--data DIR] back to console codes for NAME
  bank-server stats [--data DIR]           accounts, money, journal and limits
  bank-server checkpoint [--data DIR]      write a checkpoint now
  bank-server verify [--data DIR] [--txid-retention-secs N]
                                           replay and check everything, read-only
  bank-server stop [--data DIR]            stop the running server cleanly
  bank-server prune --keep-checkpoints K [--data DIR]
                                           delete older checkpoints and journal (server stopped)

  add-account to verify talk to the running server through DIR/admin.sock, or work offline
  when no server runs. From this directory, `make run-server` runs the bank, and
  `make verify`, `make add-account NAME=...`, `make unlock NAME=...` the commands.

options:
  --data DIR                   the data directory (default ./bank-data)
  --listen ADDR                address to listen on (default 127.0.0.1:7878)
  --demo-accounts              on a new data directory, open two demo accounts and print
                               their passwords once
  --otp-outbox DIR             also write each one-time code to DIR/NAME.otp (for tests)
  --otp-command PROGRAM        also run PROGRAM NAME with each code on its stdin (an SMS or
                               e-mail gateway); no shell; a failure answers `unavailable`
  --otp-command-timeout-secs N PROGRAM is killed after N s (default 10)
  --trace[=bytes]              show each protocol step on stderr (=bytes: with hex dumps)
  --max-connections N          connections served at once (default 1024, lowered to fit the
                               file limit); one more gets ServerBusy; a quarter is kept for
                               logged-in sessions
  --handshake-timeout-secs N   time allowed for the handshake (default 10)
  --idle-timeout-secs N        an idle logged-in connection is closed after N s (default 300)
  --anonymous-idle-timeout-secs N
                               a connection must log in within N s of its handshake or
                               of its last Login (default 30)
  --write-timeout-secs N       a peer that does not read for N s is dropped (default 10)
  --otp-ttl-secs N             lifetime of a one-time code (default 120)
  --lockout-secs N             how long 5 failed logins lock an account (default 900)
  --login-queue-deadline-ms N  longest wait for a password-check slot; then `unavailable`
                               (default 3000)
  --anonymous-per-source N     connections one address may hold before logging in (default 32)
  --handshakes-per-source-per-sec N
                               new connections per address and second (default 10, burst 20)
  --logins-per-source-per-min N
                               password checks per address and minute (default 30, burst 10)
  --refused-tx-per-session-per-min N
                               refused transactions a session may make per minute (default 6,
                               burst 10); past it money requests are answered `unavailable`
  (every time limit is 1..=86400 s)
  --pbkdf2-iterations N        PBKDF2 cost for new passwords (default 600000, 1000..=10000000)
  --checkpoint-every N         records between checkpoints (default 300000): bounds restart time
  --txid-retention-secs N      how long transaction ids are remembered (default 86400); an
                               older id is refused with transaction_id_expired
  --journal-preallocate-kib N  zeros written ahead of the journal (default 65536), so a sync
                               need not also commit a size change
  --deposit AMOUNT             add-account: the opening balance, e.g. 25.00
  --keep-checkpoints K         prune: how many checkpoints to keep
  -h, --help                   this help";

/// Flags that take no value.
const SWITCHES: &[&str] = &["demo-accounts", "trace", "help"];

/// Flags that take a value.
const VALUED: &[&str] = &[
    "data",
    "listen",
    "otp-outbox",
    "otp-command",
    "otp-command-timeout-secs",
    "max-connections",
    "handshake-timeout-secs",
    "idle-timeout-secs",
    "write-timeout-secs",
    "otp-ttl-secs",
    "lockout-secs",
    "anonymous-idle-timeout-secs",
    "login-queue-deadline-ms",
    "anonymous-per-source",
    "handshakes-per-source-per-sec",
    "logins-per-source-per-min",
    "refused-tx-per-session-per-min",
    "pbkdf2-iterations",
    "checkpoint-every",
    "txid-retention-secs",
    "journal-preallocate-kib",
    "deposit",
    "keep-checkpoints",
];

fn main() -> ExitCode {
    let result = Args::parse(std::env::args().skip(1), SWITCHES, VALUED).and_then(dispatch);
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("bank-server: {message}");
            if is_usage_error(&message) {
                eprintln!("Try `bank-server --help` for the commands and options.");
            }
            ExitCode::from(2)
        }
    }
}

/// Whether `message` is about the command line itself (then `--help` is the next step),
/// not about what the command found.
fn is_usage_error(message: &str) -> bool {
    message.starts_with("--")
        || [
            "unknown option",
            "unknown command",
            "unexpected argument",
            "option --",
            "needs a",
            "must be",
        ]
        .iter()
        .any(|marker| message.contains(marker))
}

fn dispatch(mut args: Args) -> Result<ExitCode, String> {
    if args.take("help").is_some() {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let data_dir = PathBuf::from(args.value("data")?.unwrap_or_else(|| "./bank-data".into()));
    let iterations = args.number::<u32>("pbkdf2-iterations")?;
    if let Some(n) = iterations
        && !(MIN_PBKDF2_ITERATIONS..=MAX_PBKDF2_ITERATIONS).contains(&n)
    {
        return Err(format!(
            "--pbkdf2-iterations must be {MIN_PBKDF2_ITERATIONS}..={MAX_PBKDF2_ITERATIONS}"
        ));
    }
    let mut config = ServerConfig::new(&data_dir);
    if let Some(n) = iterations {
        config.pbkdf2_iterations = n;
    }
    if let Some(secs) = args.number::<u64>("txid-retention-secs")? {
        if !(1..=MAX_TXID_RETENTION_SECS).contains(&secs) {
            return Err(format!("--txid-retention-secs must be 1..={MAX_TXID_RETENTION_SECS}"));
        }
        config.bank.retention.window_ms = secs * 1_000;
    }
    match args.next_positional().as_deref() {
        None => serve(args, config),
        Some("fingerprint") => {
            args.finish()?;
            fingerprint(&data_dir)
        }
        Some("add-account") => {
            let name = args.next_positional().ok_or("add-account needs a NAME")?;
            let deposit = args.value("deposit")?;
            args.finish()?;
            add_account(&config, &name, deposit.as_deref())
        }
        Some(command @ ("unlock" | "close-account")) => {
            let name = args
                .next_positional()
                .ok_or_else(|| format!("{command} needs a NAME"))?;
            args.finish()?;
            let command = if command == "unlock" {
                Command::Unlock { name }
            } else {
                Command::CloseAccount { name }
            };
            operate(&config, &command)
        }
        Some("enrol-totp") => {
            let name = args.next_positional().ok_or("enrol-totp needs a NAME")?;
            args.finish()?;
            enrol_totp(&config, &name)
        }
        Some("remove-totp") => {
            let name = args.next_positional().ok_or("remove-totp needs a NAME")?;
            args.finish()?;
            operate(&config, &Command::RemoveTotp { name })
        }
        Some("stats") => {
            args.finish()?;
            operate(&config, &Command::Stats)
        }
        Some("checkpoint") => {
            args.finish()?;
            operate(&config, &Command::Checkpoint)
        }
        Some("verify") => {
            args.finish()?;
            verify(&config)
        }
        Some("stop") => {
            args.finish()?;
            stop(&config)
        }
        Some("prune") => {
            let keep = args
                .number::<usize>("keep-checkpoints")?
                .ok_or("prune needs --keep-checkpoints K")?;
            args.finish()?;
            prune(&data_dir, keep)
        }
        Some(other) => Err(format!("unknown command {other:?}")),
    }
}

fn fingerprint(data_dir: &Path) -> Result<ExitCode, String> {
    let (identity, origin) = ServerIdentity::load_or_create(data_dir).map_err(|err| err.to_string())?;
    warn_key_origin(data_dir, origin);
    println!("{}", identity.fingerprint());
    Ok(ExitCode::SUCCESS)
}

fn warn_key_origin(data_dir: &Path, origin: KeyOrigin) {
    let path = ServerIdentity::key_path(data_dir);
    match origin {
        KeyOrigin::Generated => eprintln!("generated a new RSA-3072 server key in {} (mode 0600)", path.display()),
        KeyOrigin::LoadedWithLoosePermissions => eprintln!(
            "WARNING: the server key {} is readable by other users; run: chmod 600 {}",
            path.display(),
            path.display()
        ),
        KeyOrigin::Loaded => {}
    }
}

/// The time-limit flags, each bounded (a value near `u64::MAX` would overflow the clock
/// arithmetic of every connection).
fn time_limits(args: &mut Args, config: &mut ServerConfig) -> Result<(), String> {
    let mut secs = |name: &str| {
        args.number_in::<u64>(name, 1..=MAX_TIME_LIMIT_SECS)
            .map(|n| n.map(Duration::from_secs))
    };
    if let Some(limit) = secs("handshake-timeout-secs")? {
        config.handshake_timeout = limit;
    }
    if let Some(limit) = secs("idle-timeout-secs")? {
        config.idle_timeout = limit;
    }
    if let Some(limit) = secs("anonymous-idle-timeout-secs")? {
        config.anonymous_idle_timeout = limit;
    }
    if let Some(limit) = secs("write-timeout-secs")? {
        config.write_timeout = limit;
    }
    if let Some(ttl) = secs("otp-ttl-secs")? {
        config.otp_ttl = ttl;
    }
    if let Some(limit) = secs("otp-command-timeout-secs")? {
        config.otp_command_timeout = limit;
    }
    if let Some(lockout) = args.number_in::<u64>("lockout-secs", MIN_LOCKOUT_SECS..=MAX_TIME_LIMIT_SECS)? {
        config.bank.lockout_secs = lockout;
    }
    if let Some(ms) = args.number_in::<u64>("login-queue-deadline-ms", 1..=MAX_LOGIN_QUEUE_DEADLINE_MS)? {
        config.login_queue_deadline = Duration::from_millis(ms);
    }
    Ok(())
}

/// The per-source budget flags (see `securebank::server::admission`).
fn source_limits(args: &mut Args, config: &mut ServerConfig) -> Result<(), String> {
    if let Some(n) = args.number_in("anonymous-per-source", 1..=MAX_CONNECTIONS_LIMIT)? {
        config.sources.anonymous_per_source = n;
    }
    if let Some(n) = args.number_in::<u32>("handshakes-per-source-per-sec", 1..=MAX_SOURCE_RATE)? {
        config.sources.handshakes_per_sec = f64::from(n);
    }
    if let Some(n) = args.number_in::<u32>("logins-per-source-per-min", 1..=MAX_SOURCE_RATE)? {
        config.sources.logins_per_min = f64::from(n);
    }
    if let Some(n) = args.number_in::<u32>("refused-tx-per-session-per-min", 1..=MAX_SOURCE_RATE)? {
        config.refused_tx_per_min = n;
    }
    Ok(())
}

fn serve(mut args: Args, mut config: ServerConfig) -> Result<ExitCode, String> {
    if let Some(listen) = args.value("listen")? {
        config.listen = listen;
    }
    if let Some(n) = args.number_in("max-connections", 1..=MAX_CONNECTIONS_LIMIT)? {
        config.max_connections = n;
    }
    if let Some(n) = args.number::<u64>("checkpoint-every")? {
        if n == 0 {
            return Err("--checkpoint-every must be at least 1".into());
        }
        config.bank.checkpoint_every_records = n;
    }
    if let Some(kib) = args.number::<u64>("journal-preallocate-kib")? {
        if !(1..=MAX_JOURNAL_PREALLOCATE_KIB).contains(&kib) {
            return Err(format!(
                "--journal-preallocate-kib must be 1..={MAX_JOURNAL_PREALLOCATE_KIB}"
            ));
        }
        config.bank.preallocate_bytes = kib * 1024;
    }
    time_limits(&mut args, &mut config)?;
    source_limits(&mut args, &mut config)?;
    config.otp_outbox = args.value("otp-outbox")?.map(PathBuf::from);
    config.otp_command = args.value("otp-command")?.map(PathBuf::from);
    if let Some(level) = args.take("trace") {
        config.trace = TraceLevel::parse(level.as_deref()).ok_or("--trace takes no value or =bytes")?;
    }
    let demo = args.take("demo-accounts").is_some();
    args.finish()?;
    let iterations = config.pbkdf2_iterations;
    let data_dir = config.data_dir.clone();
    let (server, origin) = Server::open(config).map_err(|err| err.to_string())?;
    warn_key_origin(&data_dir, origin);
    if demo {
        print_demo_credentials(&server.shared().bank, iterations)?;
    }
    let addr = server.local_addr();
    println!("securebank server");
    println!("  data directory: {}", data_dir.display());
    println!("  server key:     {}", server.shared().identity.fingerprint());
    println!("  accounts:       {}", server.shared().bank.account_count());
    print_recovery(server.recovery());
    println!(
        "  admin socket:   {} (bank-server stats, unlock, stop, ... --data {})",
        operator_socket::socket_path(&data_dir).display(),
        data_dir.display()
    );
    println!("listening on {addr}");
    println!("Clients are shown the key fingerprint above on first contact: it must match.");
    println!("Press Ctrl-C to stop the server cleanly.");
    let shared = std::sync::Arc::clone(server.shared());
    ctrlc::set_handler(move || {
        let reply = operator_socket::prepare_stop(&shared);
        eprintln!("[server] Ctrl-C: {}", reply.text);
        shared.request_stop();
    })
    .map_err(|err| format!("cannot catch Ctrl-C: {err}"))?;
    server.run();
    println!("bank-server stopped");
    Ok(ExitCode::SUCCESS)
}

fn print_recovery(recovery: &RecoveryReport) {
    if let Some(records) = recovery.migrated_v1_records {
        println!(
            "  journal:        migrated {records} records of a first-release journal.log \
             (kept as journal-v1.log; segments continue its chain)"
        );
    }
    for (name, reason) in &recovery.damaged_checkpoints {
        eprintln!(
            "WARNING: checkpoint {name} is damaged ({reason}); it was renamed {name}.damaged and \
             recovery fell back to an older checkpoint and a longer replay"
        );
    }
    match recovery.checkpoint {
        Some((segment, lsn)) => println!(
            "  journal:        checkpoint at record {lsn} loaded, {} records replayed from segment {segment} on",
            recovery.records_replayed
        ),
        None => println!("  journal:        {} records replayed", recovery.records_replayed),
    }
    if let Some((file, offset)) = &recovery.torn_batch {
        println!(
            "  journal:        cut a torn last batch in {file} at byte offset {offset} \
             (a write interrupted by a crash; it was never acknowledged)"
        );
    }
}

fn print_demo_credentials(bank: &Bank, iterations: u32) -> Result<(), String> {
    let created = admin::create_demo_accounts(bank, iterations)?;
    if created.is_empty() {
        return Ok(());
    }
    println!("==================== DEMO CREDENTIALS (shown once) ====================");
    println!("This data directory is new, so two demo accounts were created:");
    for ((name, password), (_, opening)) in created.iter().zip(admin::DEMO_ACCOUNTS) {
        println!(
            "  username: {name:<8}  password: {password}  opening balance: {}",
            format_cents(opening)
        );
    }
    println!("Log in with `make run-client`; the one-time code will appear here as [device] OTP.");
    println!("=======================================================================");
    Ok(())
}

fn read_new_password() -> Result<zeroize::Zeroizing<String>, String> {
    if io::stdin().is_terminal() {
        let first =
            zeroize::Zeroizing::new(rpassword::prompt_password("New password: ").map_err(|err| err.to_string())?);
        let second =
            zeroize::Zeroizing::new(rpassword::prompt_password("Repeat password: ").map_err(|err| err.to_string())?);
        if first != second {
            return Err("the two passwords differ".into());
        }
        Ok(first)
    } else {
        let mut line = zeroize::Zeroizing::new(String::new());
        io::stdin().lock().read_line(&mut line).map_err(|err| err.to_string())?;
        Ok(zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string()))
    }
}

fn add_account(config: &ServerConfig, name: &str, deposit: Option<&str>) -> Result<ExitCode, String> {
    securebank::server::auth::validate_username(name).map_err(|err| err.to_string())?;
    let opening_cents = match deposit {
        None => 0,
        Some(text) => parse_amount_up_to(text, MAX_BALANCE_CENTS).map_err(|err| format!("--deposit: {err}"))?,
    };
    let target = operator_client::choose(config, true).map_err(|err| err.to_string())?;
    println!("{}", target.describe(&config.data_dir));
    if target.account_exists(name) == Some(true) {
        return Ok(print_reply(&Reply::refused(format!(
            "an account named {name} already exists"
        ))));
    }
    // Read only now, so a refusal above costs no typing; sent only over the local socket.
    let password = read_new_password()?;
    let command = Command::AddAccount {
        name: name.to_string(),
        password,
        opening_cents,
    };
    let reply = target.run(&command, config).map_err(|err| err.to_string())?;
    Ok(print_reply(&reply))
}

/// Fails unless `data_dir` exists: commands other than `add-account` never create a bank.
fn require_bank(data_dir: &Path) -> Result<(), String> {
    if data_dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "no bank in {}: the directory does not exist",
            data_dir.display()
        ))
    }
}

/// Runs an operator command that needs the bank: through the running server, or offline.
fn operate(config: &ServerConfig, command: &Command) -> Result<ExitCode, String> {
    require_bank(&config.data_dir)?;
    let target = operator_client::choose(config, true).map_err(|err| err.to_string())?;
    run_on(&target, config, command)
}

/// Says which way the command runs, runs it, and prints the reply: a success on standard
/// output (exit 0), a refusal or failure on standard error (exit 1).
fn run_on(target: &Target, config: &ServerConfig, command: &Command) -> Result<ExitCode, String> {
    println!("{}", target.describe(&config.data_dir));
    let reply = target.run(command, config).map_err(|err| err.to_string())?;
    Ok(print_reply(&reply))
}

fn print_reply(reply: &Reply) -> ExitCode {
    match reply.status {
        Status::Done => {
            println!("{}", reply.text);
            ExitCode::SUCCESS
        }
        Status::Refused => {
            eprintln!("bank-server: {}", reply.text);
            ExitCode::FAILURE
        }
        Status::Failed | Status::Malformed => {
            eprintln!("{}", reply.text);
            ExitCode::FAILURE
        }
    }
}

/// `enrol-totp NAME`: makes a secret, shows it (QR code, text, URI), and reads codes from
/// the app until one matches it here (at most [`TOTP_ENROL_TRIES`]); then sends the secret
/// with that code, and the bank enrols it only if the code matches at the bank's clock too.
fn enrol_totp(config: &ServerConfig, name: &str) -> Result<ExitCode, String> {
    securebank::server::auth::validate_username(name).map_err(|err| err.to_string())?;
    require_bank(&config.data_dir)?;
    let target = operator_client::choose(config, true).map_err(|err| err.to_string())?;
    println!("{}", target.describe(&config.data_dir));
    let status = target
        .run(&Command::TotpStatus { name: name.to_string() }, config)
        .map_err(|err| err.to_string())?;
    if status.status != Status::Done {
        return Ok(print_reply(&status));
    }
    println!("{} now", status.text);
    let secret = TotpSecret::generate();
    println!("{}", totp::enrolment_sheet(name, &secret).as_str());
    for try_number in 1..=TOTP_ENROL_TRIES {
        print!("Code the app shows now: ");
        io::stdout().flush().map_err(|err| err.to_string())?;
        let mut line = zeroize::Zeroizing::new(String::new());
        if io::stdin().lock().read_line(&mut line).map_err(|err| err.to_string())? == 0 {
            return Err("no code was typed: nothing was enrolled".into());
        }
        let code = zeroize::Zeroizing::new(line.trim().to_string());
        if totp::verify(&secret, &code, securebank::server::bank::now_unix_secs(), 0).is_none() {
            let left = TOTP_ENROL_TRIES - try_number;
            println!(
                "That is not the app's current code for this secret ({left} {} left). Check that the \
                 app shows {name} ({}) and that the phone's clock is right.",
                if left == 1 { "try" } else { "tries" },
                totp::ISSUER
            );
            continue;
        }
        let command = Command::EnrolTotp {
            name: name.to_string(),
            secret,
            code,
        };
        let reply = target.run(&command, config).map_err(|err| err.to_string())?;
        return Ok(print_reply(&reply));
    }
    Err("no code matched the secret: nothing was enrolled (run enrol-totp again for a new secret)".into())
}

fn verify(config: &ServerConfig) -> Result<ExitCode, String> {
    require_bank(&config.data_dir)?;
    let target = operator_client::choose(config, false).map_err(|err| err.to_string())?;
    println!("{}", target.describe(&config.data_dir));
    println!("journal in {}", config.data_dir.display());
    let reply = target.run(&Command::Verify, config).map_err(|err| err.to_string())?;
    Ok(print_reply(&reply))
}

fn stop(config: &ServerConfig) -> Result<ExitCode, String> {
    require_bank(&config.data_dir)?;
    match operator_client::choose(config, false).map_err(|err| err.to_string())? {
        target @ Target::Server { .. } => run_on(&target, config, &Command::Stop),
        _ => Err(format!(
            "no server is running on {}: nothing to stop",
            config.data_dir.display()
        )),
    }
}

fn prune(data_dir: &Path, keep: usize) -> Result<ExitCode, String> {
    let report = admin::prune(data_dir, keep)?;
    println!(
        "kept {} checkpoint(s), the oldest before segment {}",
        report.kept_checkpoints.len(),
        report.kept_checkpoints[0]
    );
    if report.archived.is_empty() {
        println!("nothing older to prune");
    }
    for name in &report.archived {
        println!(
            "archived {name} -> {}/{}/{name}",
            data_dir.display(),
            admin::ARCHIVE_DIR
        );
    }
    println!("verify now starts from the oldest kept checkpoint; delete the archive folder to free its space");
    Ok(ExitCode::SUCCESS)
}
