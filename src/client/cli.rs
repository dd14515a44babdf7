//! The interactive terminal client behind `bank-client`: pin the server, log in with a
//! password and a one-time code, then the menu.
//!
//! Invariants: amounts are checked locally (and again by the server) and re-asked with an
//! explanation; the password is read without echo on a terminal and wiped after use; each
//! money action gets a fresh transaction id, kept until its outcome is known: after a broken
//! connection the same id is resent (see [`super::retry`]), never a new one.

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::pinning::{self, PinDecision};
use super::plain;
use super::retry::{self, MoneyAction, Pending, RetryOutcome};
use super::terminal;
use super::{Client, connect_pinned, new_txid, probe_fingerprint};
use crate::error::{ClientError, ErrorCode};
use crate::known_servers::KnownServers;
use crate::limits::{LOCKOUT_THRESHOLD, OTP_DIGITS, OTP_MAX_TRIES, TOTP_STEP_SECS};
use crate::message::CodeKind;
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
        match rpassword::prompt_password(prompt) {
            Ok(password) => Some(Zeroizing::new(password)),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => terminal::interrupted(),
            Err(_) => None,
        }
    } else {
        read_line(prompt).map(Zeroizing::new)
    }
}

/// The live connection and what is needed to make it again after it breaks.
struct Link {
    client: Client,
    addr: SocketAddr,
    fingerprint: String,
    tracer: Tracer,
    known: KnownServers,
}

impl Link {
    /// Connects to the pinned key; a refusal becomes the person-facing message.
    fn connect(addr: SocketAddr, fingerprint: &str, tracer: Tracer, known: &KnownServers) -> Result<Client, String> {
        connect_pinned(addr, fingerprint, tracer).map_err(|err| match err {
            ClientError::Channel(crate::error::ChannelError::PinMismatch { .. }) => pinning::explain(err, &addr, known),
            other => plain::describe(&other, &addr),
        })
    }
}

/// Runs the client until the person exits. Returns a message for a fatal error.
pub fn run(options: &Options) -> Result<(), String> {
    terminal::install()?;
    let tracer = Tracer::new(options.trace, "client", 1);
    let addr = options.connect;
    let mut known = KnownServers::load(&options.known_servers).map_err(|err| err.to_string())?;
    println!("securebank client: connecting to {addr}");
    let fingerprint = match pinning::decide(options.pin.as_deref(), &known, &addr.to_string()) {
        PinDecision::Expect(fingerprint) => fingerprint,
        PinDecision::FirstContact => first_contact(addr, &mut known, tracer)?,
    };
    let client = Link::connect(addr, &fingerprint, tracer, &known)?;
    println!("Secure channel established with server key {fingerprint}.");
    println!("(X25519 key exchange, RSA-PSS-SHA256 server signature, ChaCha20-Poly1305 records)");
    let mut link = Link {
        client,
        addr,
        fingerprint,
        tracer,
        known,
    };
    let Some((username, _)) = log_in(&mut link, None).map_err(|err| plain::describe(&err, &addr))? else {
        return Ok(());
    };
    menu(&mut link, &username)
}

fn first_contact(addr: SocketAddr, known: &mut KnownServers, tracer: Tracer) -> Result<String, String> {
    let fingerprint = probe_fingerprint(addr, tracer).map_err(|err| plain::describe(&err, &addr))?;
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

/// Whether `code` has the shape of a one-time code (exactly [`OTP_DIGITS`] ASCII digits).
pub fn is_code_shaped(code: &str) -> bool {
    code.len() == OTP_DIGITS && code.bytes().all(|byte| byte.is_ascii_digit())
}

/// The two-step login, as `username` if given (a login again after a broken connection),
/// else asking for the name. Returns the account name and balance; `Ok(None)` when the
/// person closes the input; `Err` when the connection fails.
fn log_in(link: &mut Link, username: Option<&str>) -> Result<Option<(String, u64)>, ClientError> {
    loop {
        let username = match username {
            Some(name) => name.to_string(),
            None => {
                let Some(name) = read_line("Enter Username: ") else {
                    return Ok(None);
                };
                name
            }
        };
        let Some(password) = read_password("Enter Password: ") else {
            return Ok(None);
        };
        let (prompt, shape_hint) = match send_password(link, &username, &password) {
            Ok((CodeKind::Device, ttl_secs)) => {
                println!(
                    "A one-time code was sent to your registered device (see the server console). It is valid for {ttl_secs} s."
                );
                ("Enter OTP: ", "as shown on the server console")
            }
            Ok((CodeKind::Authenticator, ttl_secs)) => {
                println!(
                    "Open your authenticator app: the code for {username} ({}) changes every {TOTP_STEP_SECS} s. \
                     Type it within {ttl_secs} s.",
                    crate::totp::ISSUER
                );
                (
                    "Enter the code from your authenticator app: ",
                    "as shown by your authenticator app",
                )
            }
            Err(ClientError::Refused(code)) => {
                println!("Login failed: {}.", code.explain());
                if code == ErrorCode::AccountLocked {
                    println!("Wait, or ask the bank's operator to unlock the account.");
                }
                continue;
            }
            Err(err) => return Err(err),
        };
        let mut tries_left = OTP_MAX_TRIES;
        loop {
            let Some(code) = read_line(prompt).map(Zeroizing::new) else {
                return Ok(None);
            };
            if !is_code_shaped(&code) {
                println!("The code is {OTP_DIGITS} digits, {shape_hint}. Nothing was sent; type it again.");
                continue;
            }
            match link.client.submit_otp(&code) {
                Ok((name, balance)) => {
                    println!("OTP verified! Access granted.");
                    println!("Welcome, {name}. Your balance is {}.", format_cents(balance));
                    return Ok(Some((name, balance)));
                }
                Err(ClientError::Refused(ErrorCode::OtpInvalid)) => {
                    tries_left = tries_left.saturating_sub(1);
                    let tries = if tries_left == 1 { "try" } else { "tries" };
                    println!(
                        "Wrong code: {tries_left} {tries} left. Wrong codes count toward the account's lockout \
                         ({LOCKOUT_THRESHOLD} failed logins lock it for 15 minutes)."
                    );
                }
                Err(ClientError::Refused(code)) => {
                    println!("Login failed: {}.", code.explain());
                    break;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// Sends the password. A server closes a connection that has not logged in within its
/// limit (30 s by default), which a person reading the prompt can pass: then this
/// reconnects once, to the same pinned key, and sends the password again (a connection
/// closed while idle never delivered the first one, so nothing was counted for it).
fn send_password(link: &mut Link, username: &str, password: &str) -> Result<(CodeKind, u32), ClientError> {
    match link.client.login_with_code_kind(username, password) {
        Err(err) if plain::connection_lost(&err) => {
            link.client = connect_pinned(link.addr, &link.fingerprint, link.tracer)?;
            println!("(The server had closed the idle connection; reconnected to the same server key.)");
            link.client.login_with_code_kind(username, password)
        }
        other => other,
    }
}

/// What the person typed at the amount prompt.
enum AmountInput {
    Cents(u64),
    /// An empty line: back to the menu.
    Back,
    /// End of input.
    Closed,
}

fn read_amount() -> AmountInput {
    loop {
        let Some(text) = read_line("Amount (e.g. 12.34; empty line: back to the menu): ") else {
            return AmountInput::Closed;
        };
        if text.is_empty() {
            return AmountInput::Back;
        }
        match parse_amount(&text) {
            Ok(cents) => return AmountInput::Cents(cents),
            Err(err) => println!("{err}"),
        }
    }
}

/// Prints a refusal; with "insufficient funds" also the balance.
fn refused(client: &mut Client, code: ErrorCode) {
    if code == ErrorCode::InsufficientFunds
        && let Ok(balance) = client.balance()
    {
        println!(
            "Refused ({}): {}: your balance is {}.",
            code.as_str(),
            code.explain(),
            format_cents(balance)
        );
        return;
    }
    println!("Refused ({}): {}.", code.as_str(), code.explain());
}

/// Sends one money action under a fresh id; after a broken connection, offers to retry it
/// with the same id. `Err` when the person gave up: the message names the pending request.
fn money(link: &mut Link, username: &str, action: MoneyAction) -> Result<(), String> {
    let pending = Pending {
        txid: new_txid(),
        action,
    };
    terminal::set_pending(Some(gave_up(&pending)));
    let outcome = money_outcome(link, username, &pending);
    terminal::set_pending(None);
    outcome
}

fn money_outcome(link: &mut Link, username: &str, pending: &Pending) -> Result<(), String> {
    let done = done_message(&pending.action);
    match link.client.send_money(pending) {
        Ok(balance) => println!("{done} New balance: {}.", format_cents(balance)),
        Err(ClientError::Refused(code)) => refused(&mut link.client, code),
        Err(err) if plain::connection_lost(&err) => recover(link, username, pending, &err)?,
        Err(err) => return Err(format!("{}\n{}", plain::describe(&err, &link.addr), gave_up(pending))),
    }
    Ok(())
}

fn done_message(action: &MoneyAction) -> String {
    match action {
        MoneyAction::Deposit(_) => "Deposit done.".into(),
        MoneyAction::Withdraw(_) => "Withdrawal done.".into(),
        MoneyAction::Transfer { to, .. } => format!("Transferred to {to}."),
    }
}

/// The message left when the person stops retrying: the id and the request, so nothing is
/// left unknown.
fn gave_up(pending: &Pending) -> String {
    format!(
        "not retried. Pending request: {}, transaction id {}.\n\
         It may or may not have been applied. Log in and check your balance and history \
         before doing it again.",
        pending.action.describe(),
        pending.txid_hex()
    )
}

/// After a money request got no answer: reconnect to the same pinned key, log in again and
/// resend it with the same transaction id, then say whether it had already been applied.
fn recover(link: &mut Link, username: &str, pending: &Pending, err: &ClientError) -> Result<(), String> {
    println!();
    println!(
        "The connection broke before the bank answered: {}.",
        plain::describe(err, &link.addr)
    );
    println!(
        "Your {} (transaction id {}) may or may not have been applied.",
        pending.action.describe(),
        pending.txid_hex()
    );
    println!("Retrying is safe: it is sent again with the same id, and the bank applies an id at most once.");
    loop {
        match read_line("Reconnect, log in again and retry it (yes/no)? ").as_deref() {
            Some("yes") => {}
            Some("no") | None => return Err(gave_up(pending)),
            Some(_) => {
                println!("Please type 'yes' or 'no'.");
                continue;
            }
        }
        let client = match connect_pinned(link.addr, &link.fingerprint, link.tracer) {
            Ok(client) => client,
            Err(err @ ClientError::Channel(crate::error::ChannelError::PinMismatch { .. })) => {
                return Err(format!(
                    "{}\n{}",
                    pinning::explain(err, &link.addr, &link.known),
                    gave_up(pending)
                ));
            }
            Err(err) => {
                println!("Could not reconnect: {}.", plain::describe(&err, &link.addr));
                continue;
            }
        };
        link.client = client;
        println!(
            "Reconnected to the same server key {}. The old session is gone: log in again as {username}.",
            link.fingerprint
        );
        let balance_at_login = match log_in(link, Some(username)) {
            Ok(Some((_, balance))) => balance,
            Ok(None) => return Err(gave_up(pending)),
            Err(err) => {
                println!("The connection broke again: {}.", plain::describe(&err, &link.addr));
                continue;
            }
        };
        println!(
            "Resending the {} with the same transaction id {}.",
            pending.action.describe(),
            pending.txid_hex()
        );
        match link.client.send_money(pending) {
            Ok(balance) => {
                announce(
                    pending,
                    retry::classify(&pending.action, balance_at_login, balance),
                    balance,
                );
                return Ok(());
            }
            Err(ClientError::Refused(code)) => {
                println!(
                    "The {} was not applied, now or before: {}.",
                    pending.action.describe(),
                    code.explain()
                );
                return Ok(());
            }
            Err(err) if plain::connection_lost(&err) => {
                println!("The connection broke again: {}.", plain::describe(&err, &link.addr));
            }
            Err(err) => return Err(format!("{}\n{}", plain::describe(&err, &link.addr), gave_up(pending))),
        }
    }
}

fn announce(pending: &Pending, outcome: RetryOutcome, balance: u64) {
    let what = pending.action.describe();
    let balance = format_cents(balance);
    match outcome {
        RetryOutcome::AppliedBefore => println!(
            "This {what} was already applied before the connection broke; the bank answered the retry \
             with that first outcome and moved nothing again. Balance: {balance}."
        ),
        RetryOutcome::AppliedNow => {
            println!("The {what} had not been applied; it was applied now, once. New balance: {balance}.")
        }
        RetryOutcome::AppliedOnce => println!(
            "The {what} is applied, exactly once (the same id cannot apply twice). Other activity on \
             the account in between means the balance cannot show whether that was before or after \
             the break. Balance: {balance}."
        ),
    }
}

fn menu(link: &mut Link, username: &str) -> Result<(), String> {
    loop {
        println!();
        let Some(choice) = read_line(&format!("{MENU}\nChoose an option: ")) else {
            return Ok(());
        };
        let addr = link.addr;
        match choice.as_str() {
            "1" | "2" => {
                let amount = match read_amount() {
                    AmountInput::Cents(cents) => cents,
                    AmountInput::Back => continue,
                    AmountInput::Closed => return Ok(()),
                };
                let action = if choice == "1" {
                    MoneyAction::Deposit(amount)
                } else {
                    MoneyAction::Withdraw(amount)
                };
                money(link, username, action)?;
            }
            "3" => match link.client.balance() {
                Ok(balance) => println!("Balance of {username}: {}.", format_cents(balance)),
                Err(err) => return Err(plain::describe(&err, &addr)),
            },
            "4" => {
                let Some(to) = read_line("Transfer to (account name; empty line: back to the menu): ") else {
                    return Ok(());
                };
                if to.is_empty() {
                    continue;
                }
                let amount = match read_amount() {
                    AmountInput::Cents(cents) => cents,
                    AmountInput::Back => continue,
                    AmountInput::Closed => return Ok(()),
                };
                let action = MoneyAction::Transfer {
                    amount_cents: amount,
                    to,
                };
                money(link, username, action)?;
            }
            "5" => print_history(&mut link.client).map_err(|err| plain::describe(&err, &addr))?,
            "6" => {
                let _ = link.client.logout();
                println!("Goodbye.");
                return Ok(());
            }
            _ => println!("Please choose 1 to 6."),
        }
    }
}

fn print_history(client: &mut Client) -> Result<(), ClientError> {
    let entries = client.history_with_notices()?;
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
