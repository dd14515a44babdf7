//! `bank-client`: the interactive terminal client.
//!
//! ```text
//! bank-client [--connect ADDR] [--known-servers PATH] [--pin SHA256:...] [--trace[=bytes]]
//! bank-client forget ADDR [--known-servers PATH]
//! ```
#![forbid(unsafe_code)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use securebank::args::Args;
use securebank::client::cli::{self, Options};
use securebank::known_servers::{self, KnownServers, is_fingerprint};
use securebank::trace::TraceLevel;

/// `--help`: every command and every flag, on standard output.
const HELP: &str = "bank-client: the securebank terminal client.

usage:
  bank-client [--connect ADDR] [--known-servers PATH] [--pin SHA256:...] [--trace[=bytes]]
  bank-client forget ADDR [--known-servers PATH]

  The first connection to a server shows its key fingerprint and asks you to confirm it;
  the key is then pinned for that address. `make run-client` runs the client from this
  directory.

commands:
  (none)                   connect, log in, and use the menu
  forget ADDR              remove the key pinned for ADDR, after checking on the server
                           console that its key really changed

options:
  --connect ADDR           the server (default 127.0.0.1:7878)
  --known-servers PATH     the pin file, like SSH's known_hosts
                           (default ~/.securebank/known_servers)
  --pin SHA256:...         accept only this server key; nothing is asked or stored
  --trace[=bytes]          show each protocol step on stderr (=bytes: with hex dumps)
  -h, --help               this help";

/// What the command line asks for.
enum Action {
    Run(Options),
    Help,
    Forget { addr: String, known_servers: PathBuf },
}

fn resolve(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|_| format!("cannot resolve the address {text:?}: give it as HOST:PORT, e.g. 127.0.0.1:7878"))?
        .next()
        .ok_or_else(|| format!("no address for {text}"))
}

fn action() -> Result<Action, String> {
    let mut args = Args::parse(
        std::env::args().skip(1),
        &["trace", "help"],
        &["connect", "known-servers", "pin"],
    )?;
    if args.take("help").is_some() {
        return Ok(Action::Help);
    }
    let known_servers = args
        .value("known-servers")?
        .map_or_else(known_servers::default_path, PathBuf::from);
    match args.next_positional().as_deref() {
        None => {}
        Some("forget") => {
            let addr = args
                .next_positional()
                .ok_or("forget needs an ADDR, e.g. 127.0.0.1:7878")?;
            args.finish()?;
            return Ok(Action::Forget { addr, known_servers });
        }
        Some(other) => return Err(format!("unknown command {other:?}")),
    }
    let connect = resolve(&args.value("connect")?.unwrap_or_else(|| "127.0.0.1:7878".into()))?;
    let pin = args.value("pin")?;
    if let Some(pin) = &pin
        && !is_fingerprint(pin)
    {
        return Err(format!(
            "--pin must look like SHA256:<43 base64 characters>, got {pin:?}"
        ));
    }
    let trace = match args.take("trace") {
        None => TraceLevel::Off,
        Some(level) => TraceLevel::parse(level.as_deref()).ok_or("--trace takes no value or =bytes")?,
    };
    args.finish()?;
    Ok(Action::Run(Options {
        connect,
        known_servers,
        pin,
        trace,
    }))
}

/// `forget ADDR`: removes the pin for ADDR as typed and as resolved (the client pins the
/// resolved form, e.g. `127.0.0.1:7878` for `localhost:7878`).
fn forget(addr: &str, path: &Path) -> Result<(), String> {
    let mut known = KnownServers::load(path).map_err(|err| err.to_string())?;
    let mut names = vec![addr.to_string()];
    if let Ok(resolved) = resolve(addr) {
        names.push(resolved.to_string());
    }
    let mut forgotten = Vec::new();
    for name in &names {
        if let Some(fingerprint) = known.remove(name).map_err(|err| err.to_string())? {
            forgotten.push((name.clone(), fingerprint));
        }
    }
    if forgotten.is_empty() {
        println!("No key is pinned for {addr} in {}; nothing to forget.", path.display());
    }
    for (name, fingerprint) in forgotten {
        println!("Forgot the key {fingerprint} pinned for {name} in {}.", path.display());
        println!("The next connection to {name} shows the server's key for you to confirm.");
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = match action() {
        Ok(Action::Help) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Action::Forget { addr, known_servers }) => forget(&addr, &known_servers),
        Ok(Action::Run(options)) => cli::run(&options),
        Err(message) => {
            eprintln!("bank-client: {message}\nTry `bank-client --help` for the options.");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bank-client: {message}");
            ExitCode::FAILURE
        }
    }
}
