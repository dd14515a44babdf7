//! The real `bank-client` driven through a pseudo-terminal against the real `bank-server`:
//! first contact, login with a password typed on the terminal and a code, a deposit from the
//! menu, and a second run that trusts the pinned key without asking. Then safe retry: the
//! server is SIGKILLed while a money request is in flight (a proxy in between loses either
//! the request or the answer) and restarted on the same address; the client logs in again,
//! resends the same transaction id, says whether it had already been applied, and the money
//! moves exactly once.
mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rexpect::process::WaitStatus;
use rexpect::session::{PtySession, spawn_command};

/// Longest wait for any one piece of output (a bound, not an expectation of speed).
const EXPECT_TIMEOUT_MS: u64 = 20_000;

const PASSWORD: &str = "Terminal-Pa55phrase";

/// A `bank-client` on a pseudo-terminal, with everything it printed so far.
struct Terminal {
    session: PtySession,
    transcript: String,
}

impl Terminal {
    /// Starts the client on a terminal that echoes typed input, as a person's terminal does
    /// (rexpect turns echo off; `stty echo` turns it back on before the client starts), so
    /// that the absence of the password in the output shows it was read without echo.
    fn start(addr: SocketAddr, known_servers: &Path) -> Self {
        Self::start_with(addr, known_servers, &[])
    }

    /// [`Terminal::start`] with `extra` arguments for the client.
    fn start_with(addr: SocketAddr, known_servers: &Path, extra: &[&str]) -> Self {
        let mut command = Command::new("sh");
        command
            .args(["-c", "stty echo && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_bank-client"))
            .arg("--connect")
            .arg(addr.to_string())
            .arg("--known-servers")
            .arg(known_servers)
            .args(extra);
        let session = spawn_command(command, Some(EXPECT_TIMEOUT_MS)).unwrap();
        Self {
            session,
            transcript: String::new(),
        }
    }

    /// Waits for `needle`; returns what was printed before it.
    fn expect(&mut self, needle: &str) -> String {
        match self.session.exp_string(needle) {
            Ok(before) => {
                self.transcript.push_str(&before);
                self.transcript.push_str(needle);
                before
            }
            Err(err) => panic!(
                "waiting for {needle:?}: {err}\n--- transcript so far ---\n{}",
                self.transcript
            ),
        }
    }

    fn type_line(&mut self, line: &str) {
        self.session.send_line(line).unwrap();
    }

    /// Whether the terminal currently echoes input, read from the pty's settings with `stty`
    /// (on the master side, which reports the terminal's settings).
    fn echo_is_on(&self) -> bool {
        let master: File = self.session.process().get_file_handle().unwrap();
        let output = Command::new("stty")
            .arg("-a")
            .stdin(Stdio::from(master))
            .output()
            .unwrap();
        assert!(output.status.success(), "stty -a failed");
        let settings = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut flags = settings.split(|c: char| c.is_whitespace() || c == ';');
        flags.any(|flag| flag == "echo")
    }

    /// Waits (bounded) until the program has turned echo off to read a password: typing
    /// before that would let the terminal itself echo what was typed.
    fn wait_until_echo_is_off(&self) {
        let deadline = Instant::now() + Duration::from_millis(EXPECT_TIMEOUT_MS);
        while self.echo_is_on() {
            assert!(
                Instant::now() < deadline,
                "the terminal still echoes at the password prompt\n{}",
                self.transcript
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// [`Terminal::finish`], then whether the terminal echoes (its settings outlive the client).
    fn finish_reading_echo(self) -> (String, WaitStatus, bool) {
        let master: File = self.session.process().get_file_handle().unwrap();
        let (transcript, status) = self.finish();
        let output = Command::new("stty")
            .arg("-a")
            .stdin(Stdio::from(master))
            .output()
            .unwrap();
        let settings = String::from_utf8_lossy(&output.stdout).into_owned();
        let echo = settings
            .split(|c: char| c.is_whitespace() || c == ';')
            .any(|flag| flag == "echo");
        (transcript, status, echo)
    }

    /// Reads to the end of the output and returns the whole transcript and the exit status.
    fn finish(mut self) -> (String, WaitStatus) {
        match self.session.exp_eof() {
            Ok(rest) => self.transcript.push_str(&rest),
            Err(err) => panic!("waiting for the client to exit: {err}\n{}", self.transcript),
        }
        let deadline = Instant::now() + Duration::from_millis(EXPECT_TIMEOUT_MS);
        loop {
            match self.session.process().status() {
                Some(WaitStatus::StillAlive) | None => {
                    assert!(Instant::now() < deadline, "the client did not exit");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Some(status) => return (self.transcript, status),
            }
        }
    }
}

/// Waits (bounded) until the outbox holds a code for `user`, then returns it and removes it,
/// so that the next login waits for its own code.
fn wait_for_code(outbox: &Path, user: &str) -> String {
    let path = outbox.join(format!("{user}.otp"));
    let deadline = Instant::now() + Duration::from_millis(EXPECT_TIMEOUT_MS);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path)
            && text.trim().len() == 6
        {
            std::fs::remove_file(&path).unwrap();
            return text.trim().to_string();
        }
        assert!(Instant::now() < deadline, "no code in {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh temporary directory with a data directory in which alice has 100.00, and the
/// path the server's outbox will use: (the directory, data, outbox).
fn fresh_bank_with_alice() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    common::add_account_with_binary(&data, "alice", PASSWORD, "100.00");
    (dir, data, outbox)
}

#[test]
fn the_real_client_logs_in_deposits_and_exits_on_a_terminal_then_trusts_the_pinned_key() {
    let (dir, data, outbox) = fresh_bank_with_alice();
    let known_servers = dir.path().join("known_servers");
    let server = common::spawn_server_process(&data, &outbox, &[]);

    // First run: first contact, login, a deposit, exit.
    let mut terminal = Terminal::start(server.addr, &known_servers);
    let first_contact = terminal.expect("Are you sure you want to trust this server (yes/no)? ");
    assert!(
        first_contact.contains(&server.fingerprint),
        "the fingerprint is shown: {first_contact}"
    );
    terminal.type_line("yes");
    terminal.expect(&format!(
        "Secure channel established with server key {}",
        server.fingerprint
    ));
    terminal.expect("Enter Username: ");
    terminal.type_line("alice");
    let before_password = terminal.expect("Enter Password: ");
    assert!(
        before_password.contains("alice"),
        "the terminal echoes ordinary input: {before_password:?}"
    );
    terminal.wait_until_echo_is_off();
    terminal.type_line(PASSWORD);
    terminal.expect("A one-time code was sent to your registered device");
    terminal.expect("Enter OTP: ");
    let code = wait_for_code(&outbox, "alice");
    terminal.type_line(&code);
    terminal.expect("OTP verified! Access granted.");
    terminal.expect("Welcome, alice. Your balance is 100.00.");
    terminal.expect("Choose an option: ");
    terminal.type_line("1");
    terminal.expect("Amount (e.g. 12.34; empty line: back to the menu): ");
    terminal.type_line("12.34");
    terminal.expect("Deposit done. New balance: 112.34.");
    terminal.expect("Choose an option: ");
    terminal.type_line("6");
    terminal.expect("Goodbye.");
    let (transcript, status) = terminal.finish();
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "exit status {status:?}");
    assert!(!transcript.contains(PASSWORD), "the password was echoed:\n{transcript}");
    let pins = std::fs::read_to_string(&known_servers).unwrap();
    assert!(
        pins.contains(&format!("{} {}", server.addr, server.fingerprint)),
        "{pins}"
    );

    // Second run with the same known_servers file: no question, straight to the login.
    let mut terminal = Terminal::start(server.addr, &known_servers);
    let before_login = terminal.expect("Enter Username: ");
    assert!(
        before_login.contains(&format!(
            "Secure channel established with server key {}",
            server.fingerprint
        )),
        "{before_login}"
    );
    assert!(!before_login.contains("yes/no"), "asked again:\n{before_login}");
    assert!(
        !before_login.contains("can't be established"),
        "asked again:\n{before_login}"
    );
    // End of input at the username prompt closes the client cleanly.
    terminal.session.send_control('d').unwrap();
    let (transcript, status) = terminal.finish();
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "exit status {status:?}\n{transcript}"
    );
}

/// What the proxy does with the bytes of each direction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// Forward everything.
    None,
    /// Discard what the client sends: the request never reaches the server.
    Requests,
    /// Discard what the server sends: the request is applied, the answer never arrives.
    Answers,
}

/// A TCP proxy between the client and the server that can lose one direction, and closes
/// the client's side when the server's side closes (so a killed server looks killed).
struct Proxy {
    addr: SocketAddr,
    loss: Arc<Mutex<Loss>>,
    lost_bytes: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let loss = Arc::new(Mutex::new(Loss::None));
        let lost_bytes = Arc::new(AtomicUsize::new(0));
        let (shared_loss, shared_lost) = (Arc::clone(&loss), Arc::clone(&lost_bytes));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    drop(client); // the server is down: the client sees the connection close
                    continue;
                };
                for (from, to, dropped_when) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap(), Loss::Requests),
                    (server, client, Loss::Answers),
                ] {
                    let (loss, lost) = (Arc::clone(&shared_loss), Arc::clone(&shared_lost));
                    std::thread::spawn(move || pump(from, to, dropped_when, &loss, &lost));
                }
            }
        });
        Self { addr, loss, lost_bytes }
    }

    fn lose(&self, loss: Loss) {
        *self.loss.lock().unwrap() = loss;
    }

    /// Waits (bounded) until the proxy has discarded some bytes.
    fn wait_until_something_was_lost(&self) {
        let deadline = Instant::now() + Duration::from_millis(EXPECT_TIMEOUT_MS);
        while self.lost_bytes.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "nothing reached the proxy");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Copies `from` to `to` until either side closes, discarding while `loss` is `dropped_when`;
/// then shuts both sockets down.
fn pump(mut from: TcpStream, mut to: TcpStream, dropped_when: Loss, loss: &Mutex<Loss>, lost: &AtomicUsize) {
    let mut buffer = [0u8; 4096];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if *loss.lock().unwrap() == dropped_when {
            lost.fetch_add(n, Ordering::SeqCst);
            continue;
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

const BOB_PASSWORD: &str = "Bob-Terminal-Pa55";

/// Logs in on `terminal` as alice with the code from `outbox`, up to the menu.
fn log_in_as_alice(terminal: &mut Terminal, outbox: &Path) {
    terminal.expect("Enter Username: ");
    terminal.type_line("alice");
    terminal.expect("Enter Password: ");
    terminal.wait_until_echo_is_off();
    terminal.type_line(PASSWORD);
    terminal.expect("Enter OTP: ");
    terminal.type_line(&wait_for_code(outbox, "alice"));
    terminal.expect("Choose an option: ");
}

/// Alice (100.00) transfers 30.00 to bob (50.00) while the proxy loses `loss`; the server is
/// SIGKILLed with the request in flight and restarted on the same address; the person says
/// yes to the retry and logs in again. Returns the transcript from the retry on, and the
/// restarted server.
fn transfer_through_a_crash(loss: Loss) -> (String, common::ServerProcess, tempfile::TempDir) {
    let (dir, data, outbox) = fresh_bank_with_alice();
    common::add_account_with_binary(&data, "bob", BOB_PASSWORD, "50.00");
    let mut server = common::spawn_server_process(&data, &outbox, &[]);
    let proxy = Proxy::start(server.addr);
    let known_servers = dir.path().join("known_servers");
    let mut terminal = Terminal::start_with(proxy.addr, &known_servers, &["--pin", &server.fingerprint]);
    log_in_as_alice(&mut terminal, &outbox);
    terminal.type_line("4");
    terminal.expect("Transfer to (account name; empty line: back to the menu): ");
    terminal.type_line("bob");
    terminal.expect("Amount (e.g. 12.34; empty line: back to the menu): ");
    proxy.lose(loss);
    terminal.type_line("30.00");
    proxy.wait_until_something_was_lost();
    server.kill(); // SIGKILL with the request in flight
    terminal
        .expect("The connection broke before the bank answered: the server closed the connection (did it restart?).");
    let announced = terminal.expect("Reconnect, log in again and retry it (yes/no)? ");
    assert!(
        announced.contains("Your transfer of 30.00 to bob (transaction id "),
        "the pending request is named:\n{announced}"
    );
    let restarted = common::spawn_server_process_listening(&data, &outbox, &server.addr.to_string(), &[]);
    proxy.lose(Loss::None);
    terminal.type_line("yes");
    terminal.expect("log in again as alice.");
    terminal.expect("Enter Password: ");
    terminal.wait_until_echo_is_off();
    terminal.type_line(PASSWORD);
    terminal.expect("Enter OTP: ");
    terminal.type_line(&wait_for_code(&outbox, "alice"));
    terminal.expect("Resending the transfer of 30.00 to bob with the same transaction id");
    let outcome = terminal.expect("Choose an option: ");
    terminal.type_line("3");
    terminal.expect("Balance of alice: 70.00.");
    terminal.type_line("6");
    terminal.expect("Goodbye.");
    let (_, status) = terminal.finish();
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "exit status {status:?}");
    (outcome, restarted, dir)
}

#[test]
fn a_transfer_applied_before_the_server_was_killed_is_retried_and_reported_as_already_applied_moving_money_once() {
    let (outcome, server, dir) = transfer_through_a_crash(Loss::Answers);
    assert!(
        outcome.contains("This transfer of 30.00 to bob was already applied before the connection broke"),
        "{outcome}"
    );
    assert!(outcome.contains("Balance: 70.00."), "{outcome}");
    let outbox = dir.path().join("outbox");
    assert_eq!(server.login(&outbox, "bob", BOB_PASSWORD).balance().unwrap(), 8_000);
}

#[test]
fn a_transfer_lost_before_the_server_was_killed_is_retried_and_reported_as_applied_now_moving_money_once() {
    let (outcome, server, dir) = transfer_through_a_crash(Loss::Requests);
    assert!(
        outcome.contains("The transfer of 30.00 to bob had not been applied; it was applied now, once."),
        "{outcome}"
    );
    assert!(outcome.contains("New balance: 70.00."), "{outcome}");
    let outbox = dir.path().join("outbox");
    assert_eq!(server.login(&outbox, "bob", BOB_PASSWORD).balance().unwrap(), 8_000);
}

#[test]
fn giving_up_the_retry_prints_the_pending_transaction_id_and_request_and_exits_non_zero() {
    let (dir, data, outbox) = fresh_bank_with_alice();
    let mut server = common::spawn_server_process(&data, &outbox, &[]);
    let proxy = Proxy::start(server.addr);
    let known_servers = dir.path().join("known_servers");
    let mut terminal = Terminal::start_with(proxy.addr, &known_servers, &["--pin", &server.fingerprint]);
    log_in_as_alice(&mut terminal, &outbox);
    terminal.type_line("1");
    terminal.expect("Amount (e.g. 12.34; empty line: back to the menu): ");
    proxy.lose(Loss::Requests);
    terminal.type_line("5.00");
    proxy.wait_until_something_was_lost();
    server.kill();
    terminal.expect("Reconnect, log in again and retry it (yes/no)? ");
    terminal.type_line("no");
    let (transcript, status) = terminal.finish();
    assert!(
        matches!(status, WaitStatus::Exited(_, 1)),
        "exit status {status:?}\n{transcript}"
    );
    assert!(
        transcript.contains("Pending request: deposit of 5.00, transaction id "),
        "{transcript}"
    );
    assert!(transcript.contains("may or may not have been applied"), "{transcript}");
    assert!(!transcript.contains("os error"), "{transcript}");
    assert!(!transcript.contains("fill whole buffer"), "{transcript}");
}

/// A server with alice (100.00) and a client on a terminal at the code prompt.
fn at_the_code_prompt() -> (Terminal, common::ServerProcess, tempfile::TempDir) {
    let (mut terminal, server, dir) = at_the_password_prompt();
    terminal.type_line(PASSWORD);
    terminal.expect("Enter OTP: ");
    (terminal, server, dir)
}

#[test]
fn a_code_that_is_not_six_digits_is_refused_before_sending_and_wrong_codes_say_how_many_tries_are_left() {
    let (mut terminal, _server, dir) = at_the_code_prompt();
    let code = wait_for_code(&dir.path().join("outbox"), "alice");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    terminal.type_line("abc");
    terminal.expect("The code is 6 digits, as shown on the server console. Nothing was sent; type it again.");
    terminal.expect("Enter OTP: ");
    terminal.type_line("12345");
    terminal.expect("Nothing was sent");
    terminal.expect("Enter OTP: ");
    terminal.type_line(wrong);
    terminal.expect("Wrong code: 2 tries left. Wrong codes count toward the account's lockout");
    terminal.expect("Enter OTP: ");
    terminal.type_line(wrong);
    terminal.expect("Wrong code: 1 try left.");
    terminal.expect("Enter OTP: ");
    // Had "abc" or "12345" been sent, the server would have ended the attempt by now.
    terminal.type_line(&code);
    terminal.expect("OTP verified! Access granted.");
    terminal.expect("Choose an option: ");
    terminal.type_line("6");
    let (_, status) = terminal.finish();
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "exit status {status:?}");
}

#[test]
fn an_empty_amount_returns_to_the_menu_a_leading_point_amount_is_accepted_and_insufficient_funds_shows_the_balance() {
    let (mut terminal, _server, dir) = at_the_code_prompt();
    terminal.type_line(&wait_for_code(&dir.path().join("outbox"), "alice"));
    terminal.expect("Choose an option: ");
    terminal.type_line("1");
    terminal.expect("Amount (e.g. 12.34; empty line: back to the menu): ");
    terminal.type_line("");
    terminal.expect("Choose an option: ");
    terminal.type_line("4");
    terminal.expect("Transfer to (account name; empty line: back to the menu): ");
    terminal.type_line("");
    terminal.expect("Choose an option: ");
    terminal.type_line("1");
    terminal.expect("Amount (e.g. 12.34; empty line: back to the menu): ");
    terminal.type_line(".5");
    terminal.expect("Deposit done. New balance: 100.50.");
    terminal.expect("Choose an option: ");
    terminal.type_line("2");
    terminal.expect("Amount (e.g. 12.34; empty line: back to the menu): ");
    terminal.type_line("500");
    terminal.expect("Refused (insufficient_funds): not enough money in the account: your balance is 100.50.");
    terminal.expect("Choose an option: ");
    terminal.type_line("6");
    let (_, status) = terminal.finish();
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "exit status {status:?}");
}

#[test]
fn a_logged_in_client_whose_server_died_says_the_server_closed_the_connection_in_plain_words() {
    let (mut terminal, mut server, dir) = at_the_code_prompt();
    terminal.type_line(&wait_for_code(&dir.path().join("outbox"), "alice"));
    terminal.expect("Choose an option: ");
    server.kill();
    terminal.type_line("3");
    let (transcript, status) = terminal.finish();
    assert!(
        matches!(status, WaitStatus::Exited(_, 1)),
        "exit status {status:?}\n{transcript}"
    );
    assert!(
        transcript.contains("the server closed the connection (did it restart?)"),
        "{transcript}"
    );
    assert!(!transcript.contains("os error"), "{transcript}");
    assert!(!transcript.contains("fill whole buffer"), "{transcript}");
}

/// A server with alice (100.00) and a client on a terminal at the password prompt, echo off.
fn at_the_password_prompt() -> (Terminal, common::ServerProcess, tempfile::TempDir) {
    at_the_password_prompt_of(&[])
}

/// [`at_the_password_prompt`] with extra server flags.
fn at_the_password_prompt_of(server_flags: &[&str]) -> (Terminal, common::ServerProcess, tempfile::TempDir) {
    let (dir, data, outbox) = fresh_bank_with_alice();
    let (terminal, server) = alice_at_the_password_prompt(&dir, &data, &outbox, server_flags);
    (terminal, server, dir)
}

/// Starts a server on `data` and the client on a terminal, types alice's name and waits for
/// the password prompt, with echo off.
fn alice_at_the_password_prompt(
    dir: &tempfile::TempDir,
    data: &std::path::Path,
    outbox: &std::path::Path,
    server_flags: &[&str],
) -> (Terminal, common::ServerProcess) {
    let server = common::spawn_server_process(data, outbox, server_flags);
    let known_servers = dir.path().join("known_servers");
    let mut terminal = Terminal::start_with(server.addr, &known_servers, &["--pin", &server.fingerprint]);
    terminal.expect("Enter Username: ");
    terminal.type_line("alice");
    terminal.expect("Enter Password: ");
    terminal.wait_until_echo_is_off();
    (terminal, server)
}

#[test]
fn a_person_slower_than_the_servers_login_limit_is_reconnected_and_logged_in_without_noticing_more() {
    let (mut terminal, _server, dir) = at_the_password_prompt_of(&["--anonymous-idle-timeout-secs", "1"]);
    // The server closes the connection that has not logged in after 1 s.
    std::thread::sleep(Duration::from_millis(2_500));
    terminal.type_line(PASSWORD);
    terminal.expect("reconnected to the same server key");
    terminal.expect("Enter OTP: ");
    terminal.type_line(&wait_for_code(&dir.path().join("outbox"), "alice"));
    terminal.expect("Welcome, alice. Your balance is 100.00.");
    terminal.expect("Choose an option: ");
}

#[test]
fn ctrl_c_at_the_password_prompt_turns_echo_back_on_and_exits_zero() {
    let (mut terminal, _server, _dir) = at_the_password_prompt();
    terminal.session.send_control('c').unwrap();
    terminal.expect("Interrupted (Ctrl-C). Goodbye.");
    let (transcript, status, echo) = terminal.finish_reading_echo();
    assert!(echo, "echo is off after Ctrl-C\n{transcript}");
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "exit status {status:?}\n{transcript}"
    );
}

#[test]
fn ctrl_d_at_the_password_prompt_turns_echo_back_on_and_exits_zero() {
    let (mut terminal, _server, _dir) = at_the_password_prompt();
    terminal.session.send_control('d').unwrap();
    let (transcript, status, echo) = terminal.finish_reading_echo();
    assert!(echo, "echo is off after Ctrl-D\n{transcript}");
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "exit status {status:?}\n{transcript}"
    );
}

#[test]
fn ctrl_c_while_a_money_request_waits_names_the_pending_request_and_exits_non_zero() {
    let (dir, data, outbox) = fresh_bank_with_alice();
    let server = common::spawn_server_process(&data, &outbox, &[]);
    let proxy = Proxy::start(server.addr);
    let known_servers = dir.path().join("known_servers");
    let mut terminal = Terminal::start_with(proxy.addr, &known_servers, &["--pin", &server.fingerprint]);
    log_in_as_alice(&mut terminal, &outbox);
    terminal.type_line("1");
    terminal.expect("Amount (e.g. 12.34; empty line: back to the menu): ");
    proxy.lose(Loss::Requests);
    terminal.type_line("5.00");
    proxy.wait_until_something_was_lost();
    terminal.session.send_control('c').unwrap();
    let (transcript, status) = terminal.finish();
    assert!(
        matches!(status, WaitStatus::Exited(_, 1)),
        "exit status {status:?}\n{transcript}"
    );
    assert!(
        transcript.contains("interrupted (Ctrl-C); not retried. Pending request: deposit of 5.00, transaction id "),
        "{transcript}"
    );
}

/// The prompt for each kind of code: an account with an authenticator app is asked for the
/// app's code and not pointed at the server console (the console kind's prompt is checked by
/// `the_real_client_logs_in_deposits_and_exits_on_a_terminal_then_trusts_the_pinned_key`).
#[test]
fn an_account_with_an_authenticator_app_is_asked_for_the_apps_code_not_the_console_one() {
    let (dir, data, outbox) = fresh_bank_with_alice();
    let (enrolled, secret) = common::enrol_totp_with_binary(&data, "alice", &[Some(0)]);
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );
    let (mut terminal, _server) = alice_at_the_password_prompt(&dir, &data, &outbox, &[]);
    terminal.type_line(PASSWORD);
    let before_prompt = terminal.expect("Enter the code from your authenticator app: ");
    assert!(before_prompt.contains("Open your authenticator app"), "{before_prompt}");
    assert!(!before_prompt.contains("server console"), "{before_prompt}");
    terminal.type_line("12345");
    terminal.expect("The code is 6 digits, as shown by your authenticator app. Nothing was sent");
    terminal.expect("Enter the code from your authenticator app: ");
    // The enrolment used the current step; the next step's code is inside the ±1 window.
    terminal.type_line(&common::independent_totp(&secret, common::current_totp_step() + 1));
    terminal.expect("Welcome, alice. Your balance is 100.00.");
    terminal.expect("Choose an option: ");
    terminal.type_line("6");
    let (_, status) = terminal.finish();
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "exit status {status:?}");
    assert!(!outbox.join("alice.otp").exists(), "no console code was issued");
}
