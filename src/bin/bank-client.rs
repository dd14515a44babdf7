//! `bank-client`: the interactive terminal client.
//!
//! ```text
//! bank-client [--connect ADDR] [--known-servers PATH] [--pin SHA256:...] [--trace[=bytes]]
//! ```
#![forbid(unsafe_code)]

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;

use securebank::args::Args;
use securebank::client::cli::{self, Options};
use securebank::known_servers::{self, is_fingerprint};
use securebank::trace::TraceLevel;

const USAGE: &str = "usage: bank-client [--connect ADDR] [--known-servers PATH] [--pin SHA256:...] [--trace[=bytes]]";

fn options() -> Result<Options, String> {
    let mut args = Args::parse(std::env::args().skip(1), &["trace", "help"])?;
    if args.take("help").is_some() {
        return Err(USAGE.into());
    }
    let connect_text = args.value("connect")?.unwrap_or_else(|| "127.0.0.1:7878".into());
    let connect = connect_text
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve {connect_text}: {err}"))?
        .next()
        .ok_or_else(|| format!("no address for {connect_text}"))?;
    let known_servers = args
        .value("known-servers")?
        .map_or_else(known_servers::default_path, PathBuf::from);
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
    Ok(Options {
        connect,
        known_servers,
        pin,
        trace,
    })
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("bank-client: {message}");
            return ExitCode::from(2);
        }
    };
    match cli::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bank-client: {message}");
            ExitCode::FAILURE
        }
    }
}
