//! `bank-server`: run the bank, or manage its data directory.
//!
//! ```text
//! bank-server [--data DIR] [--listen ADDR] [--demo-accounts] [--otp-outbox DIR] [--trace[=bytes]]
//!             [--max-connections N] [--handshake-timeout-secs N] [--idle-timeout-secs N] [--write-timeout-secs N]
//!             [--otp-ttl-secs N] [--pbkdf2-iterations N]
//! bank-server fingerprint [--data DIR]
//! bank-server add-account NAME [--deposit AMOUNT] [--data DIR] [--pbkdf2-iterations N]
//! bank-server verify [--data DIR]
//! ```
#![forbid(unsafe_code)]

use std::io::{self, BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use securebank::args::Args;
use securebank::identity::{KeyOrigin, ServerIdentity};
use securebank::limits::{MAX_BALANCE_CENTS, MAX_PBKDF2_ITERATIONS, MIN_PBKDF2_ITERATIONS};
use securebank::money::{format_cents, parse_amount_up_to};
use securebank::server::bank::Bank;
use securebank::server::{Server, ServerConfig, admin};
use securebank::trace::TraceLevel;

const USAGE: &str = "usage:
  bank-server [--data DIR] [--listen ADDR] [--demo-accounts] [--otp-outbox DIR] [--trace[=bytes]]
              [--max-connections N] [--handshake-timeout-secs N] [--idle-timeout-secs N] [--write-timeout-secs N]
              [--otp-ttl-secs N] [--pbkdf2-iterations N]
  bank-server fingerprint [--data DIR]
  bank-server add-account NAME [--deposit AMOUNT] [--data DIR] [--pbkdf2-iterations N]
  bank-server verify [--data DIR]";

fn main() -> ExitCode {
    let result = Args::parse(std::env::args().skip(1), &["demo-accounts", "trace", "help"]).and_then(dispatch);
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("bank-server: {message}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(mut args: Args) -> Result<ExitCode, String> {
    if args.take("help").is_some() {
        println!("{USAGE}");
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
        Some("verify") => {
            args.finish()?;
            verify(&data_dir)
        }
        Some(other) => Err(format!("unknown command {other:?}\n{USAGE}")),
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

fn serve(mut args: Args, mut config: ServerConfig) -> Result<ExitCode, String> {
    if let Some(listen) = args.value("listen")? {
        config.listen = listen;
    }
    if let Some(n) = args.number("max-connections")? {
        config.max_connections = n;
    }
    let secs = |args: &mut Args, name: &str| args.number::<u64>(name).map(|n| n.map(Duration::from_secs));
    if let Some(limit) = secs(&mut args, "handshake-timeout-secs")? {
        config.handshake_timeout = limit;
    }
    if let Some(limit) = secs(&mut args, "idle-timeout-secs")? {
        config.idle_timeout = limit;
    }
    if let Some(limit) = secs(&mut args, "write-timeout-secs")? {
        config.write_timeout = limit;
    }
    if let Some(ttl) = secs(&mut args, "otp-ttl-secs")? {
        config.otp_ttl = ttl;
    }
    config.otp_outbox = args.value("otp-outbox")?.map(PathBuf::from);
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
    println!("  journal:        {} records replayed", server.recovery().records);
    if let Some(offset) = server.recovery().torn_tail_at {
        println!(
            "  journal:        cut an incomplete last record at byte offset {offset} \
             (a write interrupted by a crash; it was never acknowledged)"
        );
    }
    println!("listening on {addr}");
    println!("Clients are shown the key fingerprint above on first contact: it must match.");
    server.run();
    Ok(ExitCode::FAILURE)
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
    let (bank, _) = Bank::open(&config.data_dir).map_err(|err| err.to_string())?;
    if bank.password_record(name).is_some() {
        return Err(format!("an account named {name} already exists"));
    }
    let password = read_new_password()?;
    admin::add_account(&bank, name, &password, opening_cents, config.pbkdf2_iterations)?;
    println!(
        "created account {name} with opening balance {}",
        format_cents(opening_cents)
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(data_dir: &Path) -> Result<ExitCode, String> {
    match admin::verify(data_dir) {
        Ok(report) => {
            println!("journal {}", securebank::server::journal::path_in(data_dir).display());
            println!("{report}");
            Ok(if report.balanced() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(err) => {
            eprintln!("verify FAILED: {err}");
            Ok(ExitCode::FAILURE)
        }
    }
}
