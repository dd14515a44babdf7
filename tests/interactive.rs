//! The real `bank-client` driven through a pseudo-terminal against the real `bank-server`:
//! first contact, login with a password typed on the terminal and a code, a deposit from the
//! menu, and a second run that trusts the pinned key without asking.
mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
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
        let mut command = Command::new("sh");
        command
            .args(["-c", "stty echo && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_bank-client"))
            .arg("--connect")
            .arg(addr.to_string())
            .arg("--known-servers")
            .arg(known_servers);
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

/// Waits (bounded) until the outbox holds a code for `user`, then returns it.
fn wait_for_code(outbox: &Path, user: &str) -> String {
    let path = outbox.join(format!("{user}.otp"));
    let deadline = Instant::now() + Duration::from_millis(EXPECT_TIMEOUT_MS);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no code in {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    common::read_otp_from(outbox, user)
}

#[test]
fn the_real_client_logs_in_deposits_and_exits_on_a_terminal_then_trusts_the_pinned_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    let known_servers = dir.path().join("known_servers");
    common::add_account_with_binary(&data, "alice", PASSWORD, "100.00");
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
    terminal.expect("Amount (e.g. 12.34): ");
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
