//! Secrets hygiene, checked on the real binaries.
//!
//! | test | what it proves |
//! |---|---|
//! | `traced_server_session_prints_no_password_session_key_or_private_key_bytes` | a whole session against `bank-server --trace=bytes` (wrong password, password, code, deposit, transfer) prints neither password, nor any session key, IV, Finished key, shared secret or PRK, nor any private component of the server's RSA key, raw or in hex, decimal or base64; the code appears only in the `[device] OTP for` line and masked in the trace |
//! | `server_warns_when_its_key_file_is_readable_by_other_users` | the server (and `fingerprint`) print the WARNING for a key file with group/other bits, and not for mode 0600 |
//! | `a_generated_key_is_mode_0600_in_a_new_0700_directory_and_the_journal_is_0600` | `bank-server fingerprint` on a new directory creates it 0700 and the key 0600, prints only the fingerprint, reuses the key afterwards; the journal is created 0600 |
//! | `bank_client_creates_known_servers_with_mode_0600_on_first_contact` | the real client's first contact writes the pin to a new known_servers file with mode 0600 |
//! | `traced_bank_client_session_prints_neither_password_nor_code` | the real client with `--trace=bytes` through login, code and a deposit prints neither the password nor the code |
//!
//! To know the session keys, the first test runs the client side of the handshake with an
//! X25519 key it chose, derives the keys itself with `keys::derive`, and proves they are the
//! session's: the server accepts the Finished record sealed with them, and every response
//! opens with them. Each search has positive controls (values that *are* printed, such as
//! the client's random in the hex dump or the RSA modulus in the ServerHello dump), so a
//! broken search cannot pass silently.
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64ct::{Base64, Base64Unpadded, Encoding};
use common::{CapturedServerProcess, RawSession, install_test_key, read_otp_from, spawn_server_process_captured};
use securebank::channel::handshake::{self, ClientHandshake, Established};
use securebank::channel::hello::ServerHello;
use securebank::channel::keys;
use securebank::channel::record::RecordCipher;
use securebank::error::{ChannelError, ErrorCode};
use securebank::frame;
use securebank::identity::ServerIdentity;
use securebank::message::{Request, Response};

const ALICE_PASSWORD: &str = "Hygiene-Check-Passphrase-41";
const WRONG_PASSWORD: &str = "Hygiene-Wrong-Passphrase-97";
const BOB_PASSWORD: &str = "bob-hygiene-password";

/// Bound on any wait for a process or a file (never a speed assertion).
const WITHIN: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Searching everything a process printed
// ---------------------------------------------------------------------------------------

/// Everything a process printed, in the forms a secret could hide in.
struct Printed {
    /// Standard output and standard error, raw.
    bytes: Vec<u8>,
    /// The same as text (lossy), for line-based checks.
    text: String,
    /// The text lowercased with all whitespace removed: hex printed in one piece, even with
    /// spaces between bytes, is a substring of this.
    compact: String,
    /// The bytes of every `--trace=bytes` hex-dump row, concatenated in order: a value that
    /// crossed the wire (or was dumped) appears here even if it spans rows.
    dumped: Vec<u8>,
}

impl Printed {
    fn new(stdout: &[u8], stderr: &[u8]) -> Self {
        let bytes = [stdout, stderr].concat();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let compact = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect();
        let dumped = text.lines().filter_map(dump_row).flatten().collect();
        Self {
            bytes,
            text,
            compact,
            dumped,
        }
    }

    /// The forms in which `secret` appears; empty if it appears in none.
    fn leaks(&self, secret: &[u8]) -> Vec<&'static str> {
        assert!(secret.len() >= 6, "too short to search for without false alarms");
        let mut found = Vec::new();
        if contains(&self.bytes, secret) {
            found.push("raw bytes");
        }
        if contains(&self.dumped, secret) {
            found.push("inside a hex dump");
        }
        if self.compact.contains(&hex(secret)) {
            found.push("hex");
        }
        if self.text.contains(&format!("{secret:?}")) {
            found.push("decimal (Debug)");
        }
        if self.text.contains(&Base64Unpadded::encode_string(secret))
            || self.text.contains(&Base64::encode_string(secret))
        {
            found.push("base64");
        }
        found
    }

    fn assert_absent(&self, what: &str, secret: &[u8]) {
        let leaks = self.leaks(secret);
        assert!(leaks.is_empty(), "{what} was printed ({leaks:?})");
    }
}

/// The bytes of one hex-dump row `[trace side#n]       0010  0a 1b …`, or `None`.
fn dump_row(line: &str) -> Option<Vec<u8>> {
    let rest = line.strip_prefix("[trace ")?.split_once(']')?.1;
    let mut fields = rest.split_whitespace();
    let offset = fields.next()?;
    if offset.len() != 4 || !offset.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let row: Option<Vec<u8>> = fields
        .map(|field| {
            if field.len() == 2 {
                u8::from_str_radix(field, 16).ok()
            } else {
                None
            }
        })
        .collect();
    row.filter(|row| !row.is_empty() && row.len() <= 16)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).unwrap();
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The private components of the server's RSA key in `pem` (PKCS#8): d, p, q, d mod (p−1),
/// d mod (q−1), q⁻¹ mod p, as DER integers; and the modulus n (public).
fn rsa_components(pem: &str) -> (Vec<(&'static str, Vec<u8>)>, Vec<u8>) {
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    let der = Base64::decode_vec(&body).unwrap();
    let info = rsa::pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
    let key = rsa::pkcs1::RsaPrivateKeyRef::try_from(info.private_key.as_bytes()).unwrap();
    let private = vec![
        ("private exponent d", key.private_exponent.as_bytes().to_vec()),
        ("prime p", key.prime1.as_bytes().to_vec()),
        ("prime q", key.prime2.as_bytes().to_vec()),
        ("CRT exponent dp", key.exponent1.as_bytes().to_vec()),
        ("CRT exponent dq", key.exponent2.as_bytes().to_vec()),
        ("CRT coefficient qinv", key.coefficient.as_bytes().to_vec()),
    ];
    (private, key.modulus.as_bytes().to_vec())
}

// ---------------------------------------------------------------------------------------
// A handshake whose keys the test knows
// ---------------------------------------------------------------------------------------

/// A raw session whose secrets the test derived itself, and what the client sent in clear.
struct KnownSession {
    raw: RawSession,
    secrets: Vec<(&'static str, Vec<u8>)>,
    client_random: [u8; 32],
    finished_record: Vec<u8>,
}

/// Runs the client side of the handshake with a known X25519 key, derives every secret of
/// the session from it, and proves the derivation by completing the session with it.
fn handshake_with_known_keys(server: &CapturedServerProcess) -> KnownSession {
    let client_random = random::<32>();
    let client_private = random::<32>();
    let client = ClientHandshake::with_secrets(client_random, client_private);
    let client_hello_frame = client.client_hello_frame().to_vec();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(WITHIN)).unwrap();
    stream.write_all(&client_hello_frame).unwrap();
    let server_hello = frame::read_frame(&mut stream).unwrap();

    let hello = ServerHello::decode(&server_hello.payload).unwrap();
    let shared = x25519_dalek::x25519(client_private, hello.server_public);
    let transcript_hash = keys::sha256(&[&client_hello_frame, &frame::encode_raw(&server_hello)]);
    let derived = keys::derive(&shared, transcript_hash);
    let (prk, _) = hkdf::Hkdf::<sha2::Sha256>::extract(Some(&transcript_hash), &shared);

    // The library's client must agree byte for byte with our derivation.
    let expected = server.fingerprint.clone();
    let (_, library_finished) = client
        .receive_server_hello(&server_hello, |presented| {
            if presented == expected {
                Ok(())
            } else {
                Err(ChannelError::BadServerKey)
            }
        })
        .unwrap();
    let mut send = RecordCipher::new(&derived.client_to_server);
    let finished_record = send.seal(&handshake::finished_plaintext(&derived)).unwrap();
    assert_eq!(finished_record, library_finished, "derived keys are not the session's");
    stream.write_all(&finished_record).unwrap();

    let secrets = vec![
        ("c2s key", derived.client_to_server.key.to_vec()),
        ("c2s iv", derived.client_to_server.iv.to_vec()),
        ("s2c key", derived.server_to_client.key.to_vec()),
        ("s2c iv", derived.server_to_client.iv.to_vec()),
        ("finished key", derived.finished_key.to_vec()),
        ("X25519 shared secret", shared.to_vec()),
        ("HKDF PRK", prk.to_vec()),
    ];
    let established = Established {
        send,
        recv: RecordCipher::new(&derived.server_to_client),
        session_id: transcript_hash,
        server_fingerprint: server.fingerprint.clone(),
    };
    KnownSession {
        raw: RawSession { stream, established },
        secrets,
        client_random,
        finished_record,
    }
}

// ---------------------------------------------------------------------------------------
// (a) A traced session on the real server binary
// ---------------------------------------------------------------------------------------

#[test]
fn traced_server_session_prints_no_password_session_key_or_private_key_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    common::add_account_with_binary(&data, "alice", ALICE_PASSWORD, "100.00");
    common::add_account_with_binary(&data, "bob", BOB_PASSWORD, "1.00");
    let mut server = spawn_server_process_captured(&data, &outbox, &["--trace=bytes"]);

    let mut session = handshake_with_known_keys(&server);
    let raw = &mut session.raw;
    let wrong = Request::Login {
        username: "alice".into(),
        password: WRONG_PASSWORD.into(),
    };
    assert_eq!(raw.request(&wrong), Response::Error(ErrorCode::InvalidCredentials));
    let login = Request::Login {
        username: "alice".into(),
        password: ALICE_PASSWORD.into(),
    };
    let login_record = raw.seal(&login.encode());
    raw.stream.write_all(&login_record).unwrap();
    let sent = Response::decode(&raw.read_response().unwrap()).unwrap();
    assert!(matches!(sent, Response::OtpSent { .. }), "{sent:?}");
    let code = read_otp_from(&outbox, "alice");
    let logged_in = raw.request(&Request::SubmitOtp(code.clone()));
    assert!(matches!(logged_in, Response::LoggedIn { .. }), "{logged_in:?}");
    let deposit = Request::Deposit {
        txid: securebank::client::new_txid(),
        amount_cents: 12_345,
    };
    assert!(matches!(
        raw.request(&deposit),
        Response::TxApplied {
            balance_cents: 22_345,
            ..
        }
    ));
    let transfer = Request::Transfer {
        txid: securebank::client::new_txid(),
        amount_cents: 2_000,
        to: "bob".into(),
    };
    assert!(matches!(
        raw.request(&transfer),
        Response::TxApplied {
            balance_cents: 20_345,
            ..
        }
    ));
    assert_eq!(raw.request(&Request::Logout), Response::LoggedOut);

    let (stdout, stderr) = server.stop();
    let printed = Printed::new(&stdout, &stderr);
    let stderr_text = String::from_utf8_lossy(&stderr);

    // Positive controls: the trace is on, dumps every frame, and the search finds what is there.
    assert!(
        stderr_text.contains(r#"request Login(username "alice", password ********)"#),
        "no masked Login line in the trace:\n{stderr_text}"
    );
    assert!(
        stderr_text.contains("request SubmitOtp(code ******)"),
        "no masked code line"
    );
    assert!(stderr_text.contains("request Transfer(txid "), "no Transfer line");
    assert!(
        !printed.leaks(&session.client_random).is_empty(),
        "ClientHello not dumped"
    );
    assert!(
        contains(&printed.dumped, &session.finished_record),
        "Finished not dumped"
    );
    assert!(contains(&printed.dumped, &login_record), "Login record not dumped");
    let (private_parts, modulus) = rsa_components(common::TEST_KEY_PEM);
    assert!(
        contains(&printed.dumped, &modulus),
        "the ServerHello's RSA modulus not found"
    );

    // Passwords: in no form, anywhere (the Login record above went out only as ciphertext).
    printed.assert_absent("alice's password", ALICE_PASSWORD.as_bytes());
    printed.assert_absent("the wrong password", WRONG_PASSWORD.as_bytes());
    // Every secret of the session.
    for (name, secret) in &session.secrets {
        printed.assert_absent(name, secret);
    }
    // The server's private key: its private numbers, its PEM text.
    for (name, secret) in &private_parts {
        printed.assert_absent(name, secret);
    }
    assert!(!printed.text.contains("PRIVATE KEY"), "a PEM header was printed");
    for line in common::TEST_KEY_PEM.lines().filter(|line| !line.starts_with("-----")) {
        assert!(
            !printed.text.contains(line),
            "a line of the key's PEM was printed: {line}"
        );
    }
    // The code: only on the "device" line (its job), nowhere else, in no other form.
    let device_line = format!("[device] OTP for alice: {code} ");
    let lines_with_code: Vec<&str> = printed.text.lines().filter(|line| line.contains(&code)).collect();
    assert!(
        !lines_with_code.is_empty() && lines_with_code.iter().all(|line| line.starts_with(&device_line)),
        "the code {code} appears outside its [device] line: {lines_with_code:#?}"
    );
    assert!(!stderr_text.contains(&code), "the code on standard error");
    assert!(
        !contains(&printed.dumped, code.as_bytes()),
        "the code inside a hex dump"
    );
    assert!(!printed.compact.contains(&hex(code.as_bytes())), "the code in hex");

    // Nothing to warn about with a 0600 key; the journal holds password hashes: 0600.
    assert!(!stderr_text.contains("WARNING"), "unexpected warning:\n{stderr_text}");
    assert_eq!(mode(&data.join("journal-0000000001.seg")), 0o600);
}

// ---------------------------------------------------------------------------------------
// (b) Files on the server: key and journal modes
// ---------------------------------------------------------------------------------------

fn run_fingerprint(data: &Path) -> std::process::Output {
    common::run_bank_server(
        &["fingerprint".as_ref(), "--data".as_ref(), data.as_os_str()],
        WITHIN * 3,
    )
}

#[test]
fn server_warns_when_its_key_file_is_readable_by_other_users() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    install_test_key(&data);
    let key = ServerIdentity::key_path(&data);
    let warning = format!(
        "WARNING: the server key {} is readable by other users; run: chmod 600",
        key.display()
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = spawn_server_process_captured(&data, &outbox, &[]);
    assert!(
        server.wait_for_stderr(WITHIN, |text| text.contains(&warning)),
        "no warning for a 0644 key; stderr:\n{}",
        server.stderr_text()
    );
    drop(server);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let output = run_fingerprint(&data);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&warning),
        "no warning for a 0640 key; stderr:\n{stderr}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = run_fingerprint(&data);
    assert!(output.status.success());
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_generated_key_is_mode_0600_in_a_new_0700_directory_and_the_journal_is_0600() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new").join("data");
    let output = run_fingerprint(&data);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("generated a new RSA-3072 server key"), "{stderr}");

    let key_path = ServerIdentity::key_path(&data);
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&key_path), 0o600, "key file");
    let pem = std::fs::read_to_string(&key_path).unwrap();
    let identity = ServerIdentity::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(stdout.trim(), identity.fingerprint(), "prints exactly the fingerprint");
    let printed = Printed::new(&output.stdout, &output.stderr);
    for (name, secret) in rsa_components(&pem).0 {
        printed.assert_absent(name, &secret);
    }

    // The key is reused, never replaced, and no longer announced as generated.
    let again = run_fingerprint(&data);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);
    assert!(again.stderr.is_empty(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), pem);

    // The journal (password hashes, balances) is created 0600 in the 0700 directory.
    let added = common::run_add_account(&data, &["alice"], "alice-password\n");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert_eq!(mode(&data.join("journal-0000000001.seg")), 0o600, "journal");
    assert_eq!(mode(&data), 0o700, "data directory after add-account");
}

// ---------------------------------------------------------------------------------------
// (c) and the client: known_servers mode, and a traced client session
// ---------------------------------------------------------------------------------------

/// Waits for `child` to exit (bounded); returns (status, stdout, stderr).
fn finish(child: std::process::Child) -> (std::process::ExitStatus, Vec<u8>, Vec<u8>) {
    let output = common::output_within(child, WITHIN);
    (output.status, output.stdout, output.stderr)
}

fn bank_client(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_bank-client"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn bank_client_creates_known_servers_with_mode_0600_on_first_contact() {
    let server = common::start_server();
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("client").join("known_servers");
    let addr = server.addr.to_string();
    let mut child = bank_client(&["--connect", &addr, "--known-servers", known.to_str().unwrap()]);
    // "yes" to the first-contact question, then end of input at the username prompt.
    child.stdin.take().unwrap().write_all(b"yes\n").unwrap();
    let (status, stdout, stderr) = finish(child);
    assert!(status.success(), "{}", String::from_utf8_lossy(&stderr));
    assert!(String::from_utf8_lossy(&stdout).contains(&server.fingerprint));

    assert_eq!(mode(&known), 0o600, "known_servers");
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        format!("{addr} {}\n", server.fingerprint)
    );
}

#[test]
fn traced_bank_client_session_prints_neither_password_nor_code() {
    let server = common::start_server();
    server.add_account("alice", ALICE_PASSWORD, 10_000);
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    let addr = server.addr.to_string();
    let mut child = bank_client(&[
        "--connect",
        &addr,
        "--known-servers",
        known.to_str().unwrap(),
        "--pin",
        &server.fingerprint,
        "--trace=bytes",
    ]);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "alice\n{ALICE_PASSWORD}").unwrap();
    let otp_file = server.outbox().join("alice.otp");
    let deadline = Instant::now() + WITHIN;
    while !otp_file.exists() {
        assert!(Instant::now() < deadline, "no code was issued");
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = server.read_otp("alice");
    // The code, a deposit of 12.34, then exit.
    writeln!(stdin, "{code}\n1\n12.34\n6").unwrap();
    drop(stdin);
    let (status, stdout, stderr) = finish(child);
    let printed = Printed::new(&stdout, &stderr);
    assert!(status.success(), "{}", printed.text);

    // Positive controls: the session happened and was traced, masked.
    assert!(printed.text.contains("New balance: 112.34."), "{}", printed.text);
    assert!(
        printed
            .text
            .contains(r#"request LoginWithCodeKind(username "alice", password ********)"#),
        "{}",
        printed.text
    );
    assert!(
        printed.text.contains("request SubmitOtp(code ******)"),
        "{}",
        printed.text
    );
    assert!(!printed.dumped.is_empty(), "no hex dump in the client's trace");

    printed.assert_absent("the password", ALICE_PASSWORD.as_bytes());
    printed.assert_absent("the code", code.as_bytes());
    assert!(!printed.text.contains(&code), "the code was printed by the client");
}
