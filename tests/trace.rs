//! `--trace` on the real binaries: a whole session (handshake, two-step login, deposit,
//! transfer, history, logout) driven through `bank-client` with piped input against
//! `bank-server`, reading what both print on standard error.
//!
//! Three sessions are run once each and shared by the tests: traced (`--trace`), traced with
//! hex dumps (`--trace=bytes`), and untraced.
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use securebank::message::hex;

const USER: &str = "user123";
const PASSWORD: &str = "Trace-Secret-Pa55word";
const RECIPIENT: &str = "alice";
const RECIPIENT_PASSWORD: &str = "alice-Pa55word";

/// Longest wait for any one step (a bound, not an expectation of speed).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything both programs printed during one session.
struct Session {
    client_stdout: Vec<String>,
    client_stderr: Vec<String>,
    server_stdout: Vec<String>,
    server_stderr: Vec<String>,
    /// The one-time code of the login, as delivered to the outbox.
    code: String,
}

fn wait_for_code(path: &Path) -> String {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.trim().to_string();
        }
        assert!(Instant::now() < deadline, "no one-time code in {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn snapshot(lines: &common::SharedLines) -> Vec<String> {
    lines.lock().unwrap().clone()
}

/// Runs one whole session with `trace_flag` (e.g. `--trace`) given to both programs.
fn run_session(trace_flag: Option<&str>) -> Session {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    common::add_account_with_binary(&data, USER, PASSWORD, "1000.00");
    common::add_account_with_binary(&data, RECIPIENT, RECIPIENT_PASSWORD, "500.00");
    let flags: Vec<&str> = trace_flag.into_iter().collect();
    let (mut server, server_stderr) = common::spawn_server_process_capturing_stderr(&data, &outbox, &flags);

    let mut client = Command::new(env!("CARGO_BIN_EXE_bank-client"))
        .arg("--connect")
        .arg(server.addr.to_string())
        .arg("--known-servers")
        .arg(dir.path().join("known_servers"))
        .arg("--pin")
        .arg(&server.fingerprint)
        .args(&flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client_stdout = common::collect_lines(client.stdout.take().unwrap());
    let client_stderr = common::collect_lines(client.stderr.take().unwrap());
    let mut stdin = client.stdin.take().unwrap();
    writeln!(stdin, "{USER}\n{PASSWORD}").unwrap();
    let code = wait_for_code(&outbox.join(format!("{USER}.otp")));
    // Menu: deposit 25.50, transfer 10.00 to alice, history, exit.
    write!(stdin, "{code}\n1\n25.50\n4\n{RECIPIENT}\n10.00\n5\n6\n").unwrap();
    drop(stdin);

    let deadline = Instant::now() + STEP_TIMEOUT;
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = client.kill();
            let _ = client.wait();
            panic!(
                "bank-client still running; stdout: {:#?}\nstderr: {:#?}",
                snapshot(&client_stdout),
                snapshot(&client_stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "bank-client failed: {:#?}", snapshot(&client_stderr));
    if trace_flag.is_some() {
        // The server traces the end of the connection after the client has gone.
        common::wait_for_shared_line(&server_stderr, STEP_TIMEOUT, |line| line.contains("closing:"));
    } else {
        std::thread::sleep(Duration::from_millis(200));
    }
    server.kill();
    // Give the reader threads a moment to drain what the pipes still hold.
    std::thread::sleep(Duration::from_millis(50));
    Session {
        client_stdout: snapshot(&client_stdout),
        client_stderr: snapshot(&client_stderr),
        server_stdout: server.output(),
        server_stderr: snapshot(&server_stderr),
        code,
    }
}

fn traced() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| run_session(Some("--trace")))
}

fn traced_with_bytes() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| run_session(Some("--trace=bytes")))
}

fn untraced() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| run_session(None))
}

/// Asserts that each step (all of its fragments in one line) appears, in this order.
fn assert_in_order(lines: &[String], steps: &[&[&str]]) {
    let mut from = 0;
    for step in steps {
        let found = lines[from..]
            .iter()
            .position(|line| step.iter().all(|fragment| line.contains(fragment)));
        match found {
            Some(offset) => from += offset + 1,
            None => panic!(
                "step {step:?} missing after line {from}; the trace was:\n{}",
                lines.join("\n")
            ),
        }
    }
}

/// The bytes of a `--trace=bytes` hex-dump row (`[trace x#n]       0010  00 01 …`) as one
/// hex string, or `None` for any other line.
fn dump_row_hex(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("]       ")?;
    let (offset, bytes) = rest.split_once("  ")?;
    let is_hex = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_hexdigit());
    (offset.len() == 4 && is_hex(offset) && bytes.split(' ').all(|byte| byte.len() == 2 && is_hex(byte)))
        .then(|| bytes.replace(' ', ""))
}

fn is_dump_row(line: &str) -> bool {
    dump_row_hex(line).is_some()
}

/// Record sequence numbers on the lines of `direction` (`-->` or `<--`) with `key`.
fn sequence_numbers(lines: &[String], direction: &str, key: &str) -> Vec<u64> {
    let marker = format!(", {key} key");
    lines
        .iter()
        .filter(|line| line.contains(&format!("{direction} Record frame")) && line.contains(&marker))
        .map(|line| {
            let after = line.split_once(": seq ").expect("a record line names its sequence").1;
            after.split(',').next().unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn traced_client_shows_handshake_pin_keys_and_each_record_in_order() {
    let session = traced();
    assert_in_order(
        &session.client_stderr,
        &[
            &["TCP connected to 127.0.0.1:"],
            &["--> ClientHello frame, 75 bytes", "client_random", "client_x25519"],
            &[
                "<-- ServerHello frame",
                "server_x25519",
                "RSA public key SHA256:",
                "RSA-PSS signature 384 bytes",
            ],
            &["RSA-PSS-SHA256 signature over the transcript", "verified"],
            &["pin check: server key SHA256:", "is the pinned key: accepted"],
            &["X25519 shared secret", "HKDF-SHA256"],
            &[
                "\"securebank v1 c2s key\"",
                "\"securebank v1 s2c iv\"",
                "\"securebank v1 finished\"",
            ],
            &["--> Record frame, 54 bytes: seq 0, c2s key", "Finished"],
            &["-->   request LoginWithCodeKind(username \"user123\", password ********)"],
            &["--> Record frame", "seq 1, c2s key"],
            &["<-- Record frame", "seq 0, s2c key"],
            &[
                "<--   response CodeRequested(code sent to the registered device",
                "valid 120 s",
            ],
            &["-->   request SubmitOtp(code ******)"],
            &["<--   response LoggedIn(username \"user123\", balance 1000.00)"],
            &["-->   request Deposit(txid ", "amount 25.50)"],
            &["<--   response TxApplied(txid ", "balance 1025.50)"],
            &["-->   request Transfer(txid ", "amount 10.00, to \"alice\")"],
            &["<--   response TxApplied(txid ", "balance 1015.50)"],
            &["-->   request History"],
            &[
                "<--   response History(3 entries",
                "transfer out 10.00 to alice -> 1015.50",
            ],
            &["-->   request Logout"],
            &["<--   response LoggedOut"],
        ],
    );
    // Every record carries the next sequence number, per direction, from 0.
    assert_eq!(
        sequence_numbers(&session.client_stderr, "-->", "c2s"),
        (0..=6).collect::<Vec<_>>()
    );
    assert_eq!(
        sequence_numbers(&session.client_stderr, "<--", "s2c"),
        (0..=5).collect::<Vec<_>>()
    );
    // Trace lines go to standard error only, all of them marked; the menu is unchanged.
    assert!(
        session
            .client_stderr
            .iter()
            .all(|line| line.starts_with("[trace client#1] "))
    );
    assert!(!session.client_stdout.iter().any(|line| line.contains("[trace")));
    assert!(
        session
            .client_stdout
            .iter()
            .any(|line| line.contains("Deposit done. New balance: 1025.50."))
    );
    assert!(
        session
            .client_stdout
            .iter()
            .any(|line| line.contains("Transferred to alice. New balance: 1015.50."))
    );
}

#[test]
fn traced_server_shows_signing_keys_and_each_request_in_order() {
    let session = traced();
    assert_in_order(
        &session.server_stderr,
        &[
            &["TCP connection accepted from 127.0.0.1:"],
            &["<-- ClientHello frame, 75 bytes"],
            &["signed with RSA-PSS-SHA256 by server key SHA256:"],
            &["X25519 shared secret", "HKDF-SHA256"],
            &["\"securebank v1 c2s key\""],
            &["--> ServerHello frame"],
            &["<-- Record frame, 54 bytes: seq 0, c2s key", "Finished: MAC verified"],
            &["<-- Record frame", "seq 1, c2s key"],
            &["<--   request LoginWithCodeKind(username \"user123\", password ********)"],
            &["-->   response CodeRequested("],
            &["--> Record frame", "seq 0, s2c key"],
            &["<--   request SubmitOtp(code ******)"],
            &["-->   response LoggedIn(username \"user123\", balance 1000.00)"],
            &["<--   request Deposit(txid ", "amount 25.50)"],
            &["-->   response TxApplied(txid ", "balance 1025.50)"],
            &["<--   request Transfer(txid ", "to \"alice\")"],
            &["-->   response TxApplied(txid ", "balance 1015.50)"],
            &["<--   request History"],
            &["-->   response History(3 entries"],
            &["<--   request Logout"],
            &["-->   response LoggedOut"],
            &["closing: the peer closed the connection"],
        ],
    );
    assert_eq!(
        sequence_numbers(&session.server_stderr, "<--", "c2s"),
        (0..=6).collect::<Vec<_>>()
    );
    assert_eq!(
        sequence_numbers(&session.server_stderr, "-->", "s2c"),
        (0..=5).collect::<Vec<_>>()
    );
    assert!(
        session
            .server_stderr
            .iter()
            .all(|line| line.starts_with("[trace server#1] "))
    );
    assert!(!session.server_stdout.iter().any(|line| line.contains("[trace")));
}

/// Fails if a trace line could hold key material: a run of more than 32 base64/hex
/// characters (a 32-byte key is 64 hex or 43 base64 characters; a transaction id is 32 hex;
/// fingerprints are public and removed first), or a raw byte array `[1, 2, 3, …]`.
fn assert_no_key_like_bytes(line: &str) {
    let mut text = line.to_string();
    while let Some(start) = text.find("SHA256:") {
        let end = (start + "SHA256:".len() + 43).min(text.len());
        text.replace_range(start..end, "<fingerprint>");
    }
    let longest_run = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(longest_run <= 32, "a long opaque value in a trace line: {line}");
    for segment in text.split('[').skip(1) {
        let inside = segment.split(']').next().unwrap_or("");
        let numbers = inside.split(", ").filter(|item| item.parse::<u8>().is_ok()).count();
        assert!(numbers < 8, "a raw byte array in a trace line: {line}");
    }
}

fn assert_no_secrets(session: &Session) {
    let trace_lines = session.client_stderr.iter().chain(&session.server_stderr);
    let mut count = 0;
    for line in trace_lines {
        count += 1;
        assert!(!line.contains(PASSWORD), "password in a trace line: {line}");
        assert!(!line.contains(&session.code), "one-time code in a trace line: {line}");
        if !is_dump_row(line) {
            assert_no_key_like_bytes(line);
        }
    }
    assert!(count > 40, "expected a full trace, got {count} lines");
    // The code appears exactly once: on the server console line that stands in for an SMS.
    let with_code: Vec<&String> = session
        .server_stdout
        .iter()
        .chain(&session.client_stdout)
        .filter(|line| line.contains(&session.code))
        .collect();
    assert_eq!(with_code.len(), 1, "{with_code:?}");
    assert!(with_code[0].starts_with(&format!("[device] OTP for {USER}: ")));
}

#[test]
fn trace_never_shows_a_password_a_code_or_key_bytes() {
    assert_no_secrets(traced());
}

/// The private key's DER bytes that are not also in the public key (the private exponent,
/// the primes, the CRT values), as 16-byte windows.
fn private_key_windows() -> Vec<Vec<u8>> {
    use base64ct::{Base64, Encoding};
    let body: String = common::TEST_KEY_PEM
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let private_der = Base64::decode_vec(&body).unwrap();
    let public_hex = hex(common::test_identity().spki_der());
    private_der
        .windows(16)
        .filter(|window| !public_hex.contains(&hex(window)))
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn trace_bytes_dumps_each_frame_as_sent_without_plaintext_or_private_key() {
    let session = traced_with_bytes();
    assert_no_secrets(session);
    for lines in [&session.client_stderr, &session.server_stderr] {
        // The first dump row of the ClientHello is its exact wire bytes: length 71, type 0x01,
        // magic "SBNK", version 1.
        let hello = lines
            .iter()
            .position(|line| line.contains("ClientHello frame"))
            .unwrap();
        assert!(
            lines[hello + 1].contains("]       0000  00 00 00 47 01 53 42 4e 4b 00 01 "),
            "{}",
            lines[hello + 1]
        );
        let dumped: String = lines.iter().filter_map(|line| dump_row_hex(line)).collect();
        assert!(dumped.len() > 2 * 1200, "expected dumps of every frame");
        assert!(!dumped.contains(&hex(PASSWORD.as_bytes())), "password bytes in a dump");
        assert!(!dumped.contains(&hex(session.code.as_bytes())), "code bytes in a dump");
        for window in private_key_windows() {
            assert!(!dumped.contains(&hex(&window)), "private key bytes in a dump");
        }
    }
}

#[test]
fn tracing_off_prints_nothing_extra() {
    let session = untraced();
    assert!(
        session.client_stderr.is_empty(),
        "client stderr: {:#?}",
        session.client_stderr
    );
    assert!(
        session.server_stderr.is_empty(),
        "server stderr: {:#?}",
        session.server_stderr
    );
    let any_trace = |lines: &[String]| lines.iter().any(|line| line.contains("[trace"));
    assert!(!any_trace(&session.client_stdout) && !any_trace(&session.server_stdout));
    // The session itself worked, and printed what a traced one prints on standard output.
    assert!(
        session
            .client_stdout
            .iter()
            .any(|line| line.contains("Transferred to alice."))
    );
    assert_eq!(session.client_stdout.len(), traced().client_stdout.len());
}

#[test]
fn traced_server_shows_each_money_request_reach_the_journal_and_its_fdatasync_before_the_reply() {
    let session = traced();
    for request in ["request Deposit(", "request Transfer("] {
        assert_in_order(
            &session.server_stderr,
            &[
                &["<--", request],
                &[
                    "ledger: applied under the ledger lock",
                    "journal: record ",
                    "bytes) to the group commit's pending batch",
                ],
                // A lone client: nobody else is writing, so its own connection thread
                // writes and syncs the batch (no commit thread to wake).
                &[
                    "journal: record ",
                    "is durable: written in a batch of ",
                    "µs for its fdatasync, which this connection's thread did itself",
                ],
                &["-->   response TxApplied("],
                &["--> Record frame", "s2c key"],
            ],
        );
    }
}

#[test]
fn traced_server_shows_the_pbkdf2_work_that_makes_login_pause() {
    assert_in_order(
        &traced().server_stderr,
        &[
            &["request Login"],
            &["password check: PBKDF2-HMAC-SHA256, 1000 iterations, took ", "ms"],
            &["response CodeRequested"],
        ],
    );
}

#[test]
fn each_side_explains_the_record_header_and_nonce_once_per_direction() {
    let session = traced();
    for lines in [&session.client_stderr, &session.server_stderr] {
        for key in ["c2s", "s2c"] {
            let explained = lines
                .iter()
                .filter(|line| line.contains(&format!("(first {key} record, explained once")))
                .collect::<Vec<_>>();
            assert_eq!(explained.len(), 1, "{key}: {explained:#?}");
            assert!(
                explained[0].contains("4-byte length + a 1-byte type"),
                "{}",
                explained[0]
            );
            assert!(
                explained[0].contains(&format!("nonce = {key} IV XOR")),
                "{}",
                explained[0]
            );
        }
    }
}

#[test]
fn trace_bytes_names_each_field_of_the_handshake_frames_next_to_their_hex() {
    let session = traced_with_bytes();
    for lines in [&session.client_stderr, &session.server_stderr] {
        assert_in_order(
            lines,
            &[
                &["ClientHello frame"],
                &["0000+4", "frame length, u32 big-endian = 71"],
                &["0004+1", "frame type 0x01 = ClientHello"],
                &["0005+4", "magic \"SBNK\""],
                &["000b+32", "client_random"],
                &["002b+32", "client_x25519"],
                &["ServerHello frame"],
                &["0005+2", "protocol version"],
                &["0047+2", "spki_len, u16 = "],
                &["sig_len, u16 = 384"],
                &["+384", "RSA-PSS-SHA256 signature"],
            ],
        );
    }
    // Without =bytes the field lines are not printed.
    assert!(!traced().client_stderr.iter().any(|line| line.contains("0000+4")));
}
