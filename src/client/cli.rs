//! The interactive terminal client behind `bank-client`: pin the server, log in with a
//! password and a one-time code, then the menu.
//!
//! Invariants: amounts are checked locally (and again by the server) and re-asked with an
//! explanation; the password is read without echo on a terminal and wiped after use; each
//! money action gets a fresh transaction id.

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::pinning::{self, PinDecision};
use super::{Client, connect_pinned, new_txid, probe_fingerprint};
use crate::error::{ClientError, ErrorCode};
use crate::known_servers::KnownServers;
use crate::money::{format_cents, parse_amount};
use crate::trace::{TraceLevel, Tracer};

/// What the command line said.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server address.
    pub connect: SocketAddr,
    /// The known_servers file.
    pub known_servers: PathBuf,
    /// `--pin`: accept only this fingerprint.
    pub pin: Option<String>,
    /// `--trace` level.
    pub trace: TraceLevel,
}

/// The menu, as the design asks for it.
pub const MENU: &str = "1) Deposit 2) Withdraw 3) Balance 4) Transfer 5) History 6) Exit";

fn read_line(prompt: &str) -> Option<String> {
    print!("{prompt}");
    let _ = io::stdout().flush();
    let mut line = String::new();
    match io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_string()),
    }
}

fn read_password(prompt: &str) -> Option<Zeroizing<String>> {
    if io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).ok().map(Zeroizing::new)
    } else {
        read_line(prompt).map(Zeroizing::new)
    }
}

/// Runs the client until the person exits. Returns a message for a fatal error.
pub fn run(options: &Options) -> Result<(), String> {
    let tracer = Tracer::new(options.trace, "client", 1);
    let addr = options.connect.to_string();
    let mut known = KnownServers::load(&options.known_servers).map_err(|err| err.to_string())?;
    println!("securebank client: connecting to {addr}");
    let fingerprint = match pinning::decide(options.pin.as_deref(), &known, &addr) {
        PinDecision::Expect(fingerprint) => fingerprint,
        PinDecision::FirstContact => first_contact(options.connect, &mut known, tracer)?,
    };
    let mut client = connect_pinned(options.connect, &fingerprint, tracer)
        .map_err(|err| pinning::explain(err, &options.connect, &known))?;
    println!("Secure channel established with server key {fingerprint}.");
    println!("(X25519 key exchange, RSA-PSS-SHA256 server signature, ChaCha20-Poly1305 records)");
    let Some(username) = log_in(&mut client)? else {
        return Ok(());
    };
    menu(&mut client, &username)
}

fn first_contact(addr: SocketAddr, known: &mut KnownServers, tracer: Tracer) -> Result<String, String> {
    let fingerprint = probe_fingerprint(addr, tracer).map_err(|err| err.to_string())?;
    println!("The authenticity of server '{addr}' can't be established.");
    println!("Its RSA key fingerprint is {fingerprint}.");
    println!("Compare it with the fingerprint printed on the server console.");
    loop {
        match read_line("Are you sure you want to trust this server (yes/no)? ").as_deref() {
            Some("yes") => break,
            Some("no") | None => return Err("Server not trusted; not connecting.".into()),
            Some(_) => println!("Please type 'yes' or 'no'."),
        }
    }
    known
        .add(&addr.to_string(), &fingerprint)
        .map_err(|err| err.to_string())?;
    println!("Pinned {fingerprint} for {addr} in {}.", known.path().display());
    Ok(fingerprint)
}

/// The two-step login; `Ok(None)` when the person closes the input.
fn log_in(client: &mut Client) -> Result<Option<String>, String> {
    loop {
        let Some(username) = read_line("Enter Username: ") else {
            return Ok(None);
        };
        let Some(password) = read_password("Enter Password: ") else {
            return Ok(None);
        };
        match client.login(&username, &password) {
            Ok(ttl_secs) => println!(
                "A one-time code was sent to your registered device (see the server console). It is valid for {ttl_secs} s."
            ),
            Err(ClientError::Refused(code)) => {
                println!("Login failed: {}.", code.explain());
                continue;
            }
            Err(err) => return Err(err.to_string()),
        }
        loop {
            let Some(code) = read_line("Enter OTP: ").map(Zeroizing::new) else {
                return Ok(None);
            };
            match client.submit_otp(&code) {
                Ok((name, balance)) => {
                    println!("OTP verified! Access granted.");
                    println!("Welcome, {name}. Your balance is {}.", format_cents(balance));
                    return Ok(Some(name));
                }
                Err(ClientError::Refused(ErrorCode::OtpInvalid)) => println!("Wrong code, try again."),
                Err(ClientError::Refused(code)) => {
                    println!("Login failed: {}.", code.explain());
                    break;
                }
                Err(err) => return Err(err.to_string()),
            }
        }
    }
}

fn read_amount() -> Option<u64> {
    loop {
        let text = read_line("Amount (e.g. 12.34): ")?;
        match parse_amount(&text) {
            Ok(cents) => return Some(cents),
            Err(err) => println!("{err}"),
        }
    }
}

fn report(result: Result<u64, ClientError>, done: &str) -> Result<(), String> {
    match result {
        Ok(balance) => println!("{done} New balance: {}.", format_cents(balance)),
        Err(ClientError::Refused(code)) => println!("Refused ({}): {}.", code.as_str(), code.explain()),
        Err(err) => return Err(err.to_string()),
    }
    Ok(())
}

fn menu(client: &mut Client, username: &str) -> Result<(), String> {
    loop {
        println!();
        let Some(choice) = read_line(&format!("{MENU}\nChoose an option: ")) else {
            return Ok(());
        };
        match choice.as_str() {
            "1" => {
                let Some(amount) = read_amount() else { return Ok(()) };
                report(client.deposit(new_txid(), amount), "Deposit done.")?;
            }
            "2" => {
                let Some(amount) = read_amount() else { return Ok(()) };
                report(client.withdraw(new_txid(), amount), "Withdrawal done.")?;
            }
            "3" => match client.balance() {
                Ok(balance) => println!("Balance of {username}: {}.", format_cents(balance)),
                Err(err) => return Err(err.to_string()),
            },
            "4" => {
                let Some(to) = read_line("Transfer to (account name): ") else {
                    return Ok(());
                };
                let Some(amount) = read_amount() else { return Ok(()) };
                report(
                    client.transfer(new_txid(), amount, &to),
                    &format!("Transferred to {to}."),
                )?;
            }
            "5" => print_history(client)?,
            "6" => {
                let _ = client.logout();
                println!("Goodbye.");
                return Ok(());
            }
            _ => println!("Please choose 1 to 6."),
        }
    }
}

fn print_history(client: &mut Client) -> Result<(), String> {
    let entries = client.history_with_notices().map_err(|err| err.to_string())?;
    if entries.is_empty() {
        println!("No transactions yet.");
    }
    println!(
        "{:<20} {:<13} {:>14} {:<12} {:>14}",
        "time (UTC)", "kind", "amount", "counterparty", "balance after"
    );
    for entry in entries {
        if entry.kind.is_notice() {
            println!("{:<20} {}", format_utc(entry.at_unix_secs), entry.kind.name());
            continue;
        }
        println!(
            "{:<20} {:<13} {:>14} {:<12} {:>14}",
            format_utc(entry.at_unix_secs),
            entry.kind.name(),
            format_cents(entry.amount_cents),
            entry.counterparty,
            format_cents(entry.balance_after_cents)
        );
    }
    Ok(())
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC), by the civil-from-days algorithm.
pub fn format_utc(unix_secs: u64) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(0);
    let secs = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
    }
}
