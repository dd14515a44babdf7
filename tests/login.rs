//! The two-step login over real sockets: passwords, one-time codes, lockout, session
//! boundaries, the code outbox, the server console and `add-account`.
mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use securebank::client::{self, Client, new_txid};
use securebank::error::{ClientError, ErrorCode};
use securebank::limits::{DEFAULT_OTP_TTL_SECS, LOCKOUT_THRESHOLD, OTP_MAX_TRIES};
use securebank::message::{EntryKind, Request, Response};
use securebank::trace::Tracer;

const ALICE_PASSWORD: &str = "alice-password";
const BOB_PASSWORD: &str = "bob-password";

/// The code the server refused `result` with; panics on anything else.
fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Refused(code)) => code,
        other => panic!("expected the server to refuse, got {other:?}"),
    }
}

/// A well-formed code that is not `code`.
fn other_code(code: &str) -> String {
    let value: u32 = code.parse().expect("a code is digits");
    format!("{:06}", (value + 1) % 1_000_000)
}

/// What identifies one delivery of a code: the file's contents and its inode (each delivery
/// writes a new file and renames it into place).
fn outbox_snapshot(path: &Path) -> (String, u64) {
    (fs::read_to_string(path).unwrap(), fs::metadata(path).unwrap().ino())
}

fn server_with_alice() -> common::TestServer {
    let server = common::start_server();
    server.add_account("alice", ALICE_PASSWORD, 10_000);
    server
}

#[test]
fn correct_password_and_correct_code_log_in_with_the_account_balance() {
    let server = common::start_server();
    server.add_account("alice", ALICE_PASSWORD, 12_345);
    let mut client = server.connect();
    let ttl = client.login("alice", ALICE_PASSWORD).unwrap();
    assert_eq!(u64::from(ttl), DEFAULT_OTP_TTL_SECS);
    let code = server.read_otp("alice");
    let response = client.request(&Request::SubmitOtp(code)).unwrap();
    assert_eq!(
        response,
        Response::LoggedIn {
            username: "alice".into(),
            balance_cents: 12_345
        }
    );
    assert_eq!(client.balance().unwrap(), 12_345);
}

#[test]
fn wrong_password_unknown_user_and_malformed_name_get_the_identical_answer() {
    let server = server_with_alice();
    let mut client = server.connect();
    assert_eq!(
        refused(client.login("alice", "wrong-password")),
        ErrorCode::InvalidCredentials
    );
    assert_eq!(
        refused(client.login("mallory", ALICE_PASSWORD)),
        ErrorCode::InvalidCredentials
    );
    assert_eq!(
        refused(client.login("NOT VALID", ALICE_PASSWORD)),
        ErrorCode::InvalidCredentials
    );

    // The decrypted bytes on the wire are the same, byte for byte.
    let mut raw = common::raw_handshake(server.addr);
    let mut answer = |username: &str, password: &str| {
        raw.request_raw(&Request::Login {
            username: username.into(),
            password: password.into(),
        })
    };
    let wrong_password = answer("alice", "wrong-password");
    let unknown_user = answer("mallory", ALICE_PASSWORD);
    let malformed_name = answer("NOT VALID", ALICE_PASSWORD);
    assert_eq!(wrong_password, Response::Error(ErrorCode::InvalidCredentials).encode());
    assert_eq!(unknown_user, wrong_password);
    assert_eq!(malformed_name, wrong_password);
    assert!(
        !server.outbox().join("alice.otp").exists(),
        "no code may be issued for a wrong password"
    );
}

#[test]
fn three_wrong_codes_end_the_attempt_and_a_fresh_login_works() {
    let server = server_with_alice();
    let mut client = server.connect();
    client.login("alice", ALICE_PASSWORD).unwrap();
    let code = server.read_otp("alice");
    let wrong = other_code(&code);
    assert_eq!(OTP_MAX_TRIES, 3);
    assert_eq!(refused(client.submit_otp(&wrong)), ErrorCode::OtpInvalid);
    assert_eq!(refused(client.submit_otp(&wrong)), ErrorCode::OtpInvalid);
    assert_eq!(refused(client.submit_otp(&wrong)), ErrorCode::OtpTriesExhausted);
    // The attempt is over: even the right code is not expected any more.
    assert_eq!(refused(client.submit_otp(&code)), ErrorCode::UnexpectedRequest);
    assert_eq!(refused(client.balance()), ErrorCode::NotAuthenticated);

    client.login("alice", ALICE_PASSWORD).unwrap();
    let fresh = server.read_otp("alice");
    assert_eq!(client.submit_otp(&fresh).unwrap(), ("alice".to_string(), 10_000));
}

#[test]
fn an_expired_code_is_refused_and_not_accepted_afterwards() {
    let server = common::start_server_with(|config| config.otp_ttl = Duration::from_millis(200));
    server.add_account("alice", ALICE_PASSWORD, 10_000);
    let mut client = server.connect();
    client.login("alice", ALICE_PASSWORD).unwrap();
    let code = server.read_otp("alice");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(refused(client.submit_otp(&code)), ErrorCode::OtpExpired);
    assert_eq!(refused(client.submit_otp(&code)), ErrorCode::UnexpectedRequest);
    assert_eq!(refused(client.balance()), ErrorCode::NotAuthenticated);
}

#[test]
fn a_code_cannot_be_used_twice_on_the_same_connection() {
    let server = server_with_alice();
    let mut client = server.connect();
    client.login("alice", ALICE_PASSWORD).unwrap();
    let code = server.read_otp("alice");
    client.submit_otp(&code).unwrap();
    client.logout().unwrap();
    assert_eq!(refused(client.submit_otp(&code)), ErrorCode::UnexpectedRequest);
    assert_eq!(refused(client.balance()), ErrorCode::NotAuthenticated);
}

#[test]
fn a_code_is_bound_to_the_connection_that_asked_for_it() {
    let server = server_with_alice();
    let mut a = server.connect();
    a.login("alice", ALICE_PASSWORD).unwrap();
    // Read A's code before B logs in: B's own code replaces it in the outbox.
    let a_code = server.read_otp("alice");

    let mut b = server.connect();
    assert_eq!(refused(b.submit_otp(&a_code)), ErrorCode::UnexpectedRequest);

    b.login("alice", ALICE_PASSWORD).unwrap();
    let mut b_code = server.read_otp("alice");
    // Two independent codes coincide once in a million: then ask B for another one.
    for _ in 0..3 {
        if b_code != a_code {
            break;
        }
        b.logout().unwrap();
        b.login("alice", ALICE_PASSWORD).unwrap();
        b_code = server.read_otp("alice");
    }
    assert_ne!(b_code, a_code);
    assert_eq!(refused(b.submit_otp(&a_code)), ErrorCode::OtpInvalid);

    // Each code still works on the connection it was issued to.
    assert_eq!(a.submit_otp(&a_code).unwrap(), ("alice".to_string(), 10_000));
    assert_eq!(b.submit_otp(&b_code).unwrap(), ("alice".to_string(), 10_000));
}

#[test]
fn the_fifth_consecutive_failure_locks_the_account_and_no_code_is_issued_while_locked() {
    let server = server_with_alice();
    // A first login leaves a delivered code in the outbox to compare with later.
    server.login("alice", ALICE_PASSWORD).logout().unwrap();
    let outbox_file = server.outbox().join("alice.otp");
    let before = outbox_snapshot(&outbox_file);

    let mut client = server.connect();
    assert_eq!(LOCKOUT_THRESHOLD, 5);
    for attempt in 1..LOCKOUT_THRESHOLD {
        assert_eq!(
            refused(client.login("alice", "wrong-password")),
            ErrorCode::InvalidCredentials,
            "attempt {attempt}"
        );
    }
    assert_eq!(
        refused(client.login("alice", "wrong-password")),
        ErrorCode::AccountLocked
    );
    assert_eq!(refused(client.login("alice", ALICE_PASSWORD)), ErrorCode::AccountLocked);
    let mut other = server.connect();
    assert_eq!(refused(other.login("alice", ALICE_PASSWORD)), ErrorCode::AccountLocked);
    assert_eq!(outbox_snapshot(&outbox_file), before, "a code was issued while locked");
}

#[test]
fn wrong_codes_count_towards_the_lock() {
    let server = server_with_alice();
    let mut client = server.connect();
    // Failures 1–3: one attempt's three wrong codes.
    client.login("alice", ALICE_PASSWORD).unwrap();
    let wrong = other_code(&server.read_otp("alice"));
    assert_eq!(refused(client.submit_otp(&wrong)), ErrorCode::OtpInvalid);
    assert_eq!(refused(client.submit_otp(&wrong)), ErrorCode::OtpInvalid);
    assert_eq!(refused(client.submit_otp(&wrong)), ErrorCode::OtpTriesExhausted);
    // Failure 4: a wrong password.
    assert_eq!(
        refused(client.login("alice", "wrong-password")),
        ErrorCode::InvalidCredentials
    );
    // Failure 5: a wrong code again locks.
    client.login("alice", ALICE_PASSWORD).unwrap();
    let code = server.read_otp("alice");
    assert_eq!(refused(client.submit_otp(&other_code(&code))), ErrorCode::AccountLocked);
    assert_eq!(refused(client.submit_otp(&code)), ErrorCode::UnexpectedRequest);
    assert_eq!(refused(client.login("alice", ALICE_PASSWORD)), ErrorCode::AccountLocked);
}

#[test]
fn a_successful_login_resets_the_failure_counter() {
    let server = server_with_alice();
    let mut client = server.connect();
    for _ in 1..LOCKOUT_THRESHOLD {
        assert_eq!(
            refused(client.login("alice", "wrong-password")),
            ErrorCode::InvalidCredentials
        );
    }
    client.login("alice", ALICE_PASSWORD).unwrap();
    client.submit_otp(&server.read_otp("alice")).unwrap();
    client.logout().unwrap();
    for _ in 1..LOCKOUT_THRESHOLD {
        assert_eq!(
            refused(client.login("alice", "wrong-password")),
            ErrorCode::InvalidCredentials
        );
    }
    client.login("alice", ALICE_PASSWORD).unwrap();
    assert_eq!(
        client.submit_otp(&server.read_otp("alice")).unwrap(),
        ("alice".to_string(), 10_000)
    );
}

#[test]
fn the_lock_survives_a_restart_of_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    common::add_account_with_binary(&data, "alice", ALICE_PASSWORD, "100.00");

    let mut first = common::spawn_server_process(&data, &outbox, &[]);
    let mut client = first.connect();
    for _ in 1..LOCKOUT_THRESHOLD {
        assert_eq!(
            refused(client.login("alice", "wrong-password")),
            ErrorCode::InvalidCredentials
        );
    }
    assert_eq!(
        refused(client.login("alice", "wrong-password")),
        ErrorCode::AccountLocked
    );
    drop(client);
    first.kill();

    let second = common::spawn_server_process(&data, &outbox, &[]);
    let mut client = second.connect();
    assert_eq!(refused(client.login("alice", ALICE_PASSWORD)), ErrorCode::AccountLocked);
    assert!(!outbox.join("alice.otp").exists(), "no code may be issued while locked");
}

/// Every account operation, each refused with `not_authenticated`.
fn assert_account_operations_refused(client: &mut Client, state: &str) {
    let results = [
        ("balance", refused(client.balance())),
        ("deposit", refused(client.deposit(new_txid(), 100))),
        ("withdraw", refused(client.withdraw(new_txid(), 100))),
        ("transfer", refused(client.transfer(new_txid(), 100, "bob"))),
        ("history", refused(client.history())),
        ("history with notices", refused(client.history_with_notices())),
    ];
    for (operation, code) in results {
        assert_eq!(code, ErrorCode::NotAuthenticated, "{operation} while {state}");
    }
}

#[test]
fn requests_before_login_and_while_awaiting_the_code_are_refused() {
    let server = server_with_alice();
    server.add_account("bob", BOB_PASSWORD, 5_000);
    let mut client = server.connect();
    assert_account_operations_refused(&mut client, "anonymous");

    client.login("alice", ALICE_PASSWORD).unwrap();
    assert_account_operations_refused(&mut client, "awaiting the code");

    // The refused requests neither ended the attempt nor moved any money.
    assert_eq!(
        client.submit_otp(&server.read_otp("alice")).unwrap(),
        ("alice".to_string(), 10_000)
    );
    let history = client.history().unwrap();
    assert!(
        history.iter().all(|entry| entry.kind == EntryKind::Opening),
        "{history:?}"
    );
    assert_eq!(server.login("bob", BOB_PASSWORD).balance().unwrap(), 5_000);
}

/// The accounts a request names. Every field is spelled out (no `..`), so a request that
/// gained a field naming a source account would stop this from compiling.
fn accounts_named_by(request: &Request) -> Vec<&str> {
    match request {
        Request::Login { username, password: _ } | Request::LoginWithCodeKind { username, password: _ } => {
            vec![username.as_str()]
        }
        Request::Transfer {
            txid: _,
            amount_cents: _,
            to,
        } => vec![to.as_str()],
        Request::Deposit {
            txid: _,
            amount_cents: _,
        }
        | Request::Withdraw {
            txid: _,
            amount_cents: _,
        }
        | Request::Echo(_)
        | Request::SubmitOtp(_)
        | Request::Balance
        | Request::History
        | Request::HistoryWithNotices
        | Request::Logout => Vec::new(),
    }
}

#[test]
fn an_authenticated_user_cannot_touch_another_account() {
    let server = server_with_alice();
    server.add_account("bob", BOB_PASSWORD, 5_000);

    // No account operation names a source account; a transfer names only its recipient.
    let transfer = Request::Transfer {
        txid: new_txid(),
        amount_cents: 1,
        to: "bob".into(),
    };
    assert_eq!(accounts_named_by(&transfer), ["bob"]);
    assert!(
        accounts_named_by(&Request::Withdraw {
            txid: new_txid(),
            amount_cents: 1
        })
        .is_empty()
    );

    let mut alice = server.login("alice", ALICE_PASSWORD);
    let mut bob = server.login("bob", BOB_PASSWORD);
    let bob_code = server.outbox().join("bob.otp");
    let bob_code_before = outbox_snapshot(&bob_code);

    assert_eq!(alice.withdraw(new_txid(), 1_000).unwrap(), 9_000);
    assert_eq!(bob.balance().unwrap(), 5_000);
    assert_eq!(alice.deposit(new_txid(), 500).unwrap(), 9_500);
    assert_eq!(bob.balance().unwrap(), 5_000);
    assert_eq!(alice.transfer(new_txid(), 2_500, "bob").unwrap(), 7_000);
    assert_eq!(bob.balance().unwrap(), 7_500);
    assert_eq!(alice.balance().unwrap(), 7_000);
    assert_eq!(
        refused(alice.transfer(new_txid(), 1, "alice")),
        ErrorCode::CannotTransferToSelf
    );

    let bob_history = bob.history().unwrap();
    let kinds: Vec<EntryKind> = bob_history.iter().map(|entry| entry.kind).collect();
    assert_eq!(kinds, [EntryKind::Opening, EntryKind::TransferIn], "{bob_history:?}");
    let received = bob_history.last().unwrap();
    assert_eq!(received.amount_cents, 2_500);
    assert_eq!(received.counterparty, "alice");
    assert_eq!(received.balance_after_cents, 7_500);

    // An authenticated session cannot switch accounts by logging in again.
    assert_eq!(refused(alice.login("bob", BOB_PASSWORD)), ErrorCode::UnexpectedRequest);
    assert_eq!(outbox_snapshot(&bob_code), bob_code_before, "a code was issued for bob");
    assert_eq!(alice.withdraw(new_txid(), 100).unwrap(), 6_900);
    assert_eq!(bob.balance().unwrap(), 7_500);
}

#[test]
fn a_code_submitted_while_authenticated_is_refused_and_the_session_continues() {
    let server = server_with_alice();
    let mut alice = server.login("alice", ALICE_PASSWORD);
    assert_eq!(refused(alice.submit_otp("000000")), ErrorCode::UnexpectedRequest);
    // Like a Login while authenticated, a refused request must not change the session.
    assert_eq!(alice.balance().unwrap(), 10_000);
}

#[test]
fn logout_and_a_closed_connection_end_the_session() {
    let server = server_with_alice();
    let mut client = server.login("alice", ALICE_PASSWORD);
    client.logout().unwrap();
    assert_eq!(refused(client.balance()), ErrorCode::NotAuthenticated);

    // Logging out while a code is pending discards that code.
    client.login("alice", ALICE_PASSWORD).unwrap();
    let code = server.read_otp("alice");
    client.logout().unwrap();
    assert_eq!(refused(client.submit_otp(&code)), ErrorCode::UnexpectedRequest);

    // A closed connection takes its session with it: the next connection is anonymous.
    let mut closed = server.connect();
    closed.login("alice", ALICE_PASSWORD).unwrap();
    let code = server.read_otp("alice");
    closed.submit_otp(&code).unwrap();
    assert_eq!(closed.balance().unwrap(), 10_000);
    drop(closed);
    let mut fresh = server.connect();
    assert_eq!(refused(fresh.balance()), ErrorCode::NotAuthenticated);
    assert_eq!(refused(fresh.submit_otp(&code)), ErrorCode::UnexpectedRequest);
}

#[test]
fn the_outbox_file_holds_exactly_the_code_with_mode_0600() {
    let server = server_with_alice();
    let mut client = server.connect();
    client.login("alice", ALICE_PASSWORD).unwrap();
    let path = server.outbox().join("alice.otp");
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.len(), 7, "{text:?}");
    assert!(text[..6].bytes().all(|byte| byte.is_ascii_digit()), "{text:?}");
    assert!(text.ends_with('\n'), "{text:?}");
    let names: Vec<_> = fs::read_dir(server.outbox())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["alice.otp"], "nothing else is left in the outbox");
    client.submit_otp(&text[..6]).unwrap();
}

#[test]
fn the_server_console_never_shows_the_password() {
    const PASSWORD: &str = "Unm1stakable-Passphrase";
    const WRONG: &str = "Als0-Unmistakable-Wrong";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    common::add_account_with_binary(&data, "alice", PASSWORD, "1.00");
    let server = common::spawn_server_process(&data, &outbox, &[]);

    let mut client = server.connect();
    assert_eq!(refused(client.login("alice", WRONG)), ErrorCode::InvalidCredentials);
    client.login("alice", PASSWORD).unwrap();
    let code = common::read_otp_from(&outbox, "alice");
    assert_eq!(client.submit_otp(&code).unwrap(), ("alice".to_string(), 100));
    assert!(
        server.wait_for_line(Duration::from_secs(10), |line| line.contains("alice logged in")),
        "no login line in {:#?}",
        server.output()
    );

    let lines = server.output();
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("[device] OTP for alice:") && line.contains(&code)),
        "no [device] line in {lines:#?}"
    );
    for line in &lines {
        assert!(!line.contains(PASSWORD), "password on the console: {line:?}");
        assert!(!line.contains(WRONG), "wrong password on the console: {line:?}");
    }
}

#[test]
fn add_account_through_the_binary_refuses_bad_input_and_sets_the_deposit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");

    let created = common::run_add_account(&data, &["alice", "--deposit", "12.34"], "alice-password\n");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    assert!(String::from_utf8_lossy(&created.stdout).contains("created account alice with opening balance 12.34"));

    let refusals = [
        (
            vec!["alice"],
            "another-password\n",
            "an account named alice already exists",
        ),
        (vec!["carol"], "short\n", "a password needs at least 8 characters"),
        (
            vec!["NOT VALID"],
            "long-enough-password\n",
            "a username is 3 to 32 characters",
        ),
        (vec!["al"], "long-enough-password\n", "a username is 3 to 32 characters"),
    ];
    for (args, stdin, message) in refusals {
        let output = common::run_add_account(&data, &args, stdin);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(message), "{args:?}: stderr {stderr:?}");
        assert!(stderr.starts_with("bank-server: "), "{args:?}: stderr {stderr:?}");
    }

    let server = common::spawn_server_process(&data, &outbox, &[]);
    let mut client = server.connect();
    // The refused commands changed nothing: alice keeps her password, carol does not exist.
    assert_eq!(
        refused(client.login("alice", "another-password")),
        ErrorCode::InvalidCredentials
    );
    assert_eq!(refused(client.login("carol", "short")), ErrorCode::InvalidCredentials);
    client.login("alice", "alice-password").unwrap();
    let code = common::read_otp_from(&outbox, "alice");
    assert_eq!(client.submit_otp(&code).unwrap(), ("alice".to_string(), 1_234));
}

#[test]
fn a_login_flood_does_not_starve_transactions() {
    // Unknown users are checked against a dummy record with the configured (costly) count.
    // The queue's deadline is tested in tests/abuse.rs: here no flooder may be turned away.
    let server = common::start_server_with(|config| {
        config.pbkdf2_iterations = 100_000;
        config.login_queue_deadline = Duration::from_secs(60);
    });
    server.add_account("alice", ALICE_PASSWORD, 0);
    let mut alice = server.login("alice", ALICE_PASSWORD);

    const FLOODERS: usize = 8;
    const FAILURES_EACH: usize = 5;
    let start = Arc::new(Barrier::new(FLOODERS + 1));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|thread| {
            let mut client = client::connect_pinned(server.addr, &server.fingerprint, Tracer::off()).unwrap();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                for attempt in 0..FAILURES_EACH {
                    let name = format!("nobody{thread}x{attempt}");
                    assert_eq!(
                        refused(client.login(&name, "some-password")),
                        ErrorCode::InvalidCredentials
                    );
                }
            })
        })
        .collect();

    start.wait();
    let mut expected = 0;
    for step in 1..=20 {
        expected += step * 100;
        assert_eq!(alice.deposit(new_txid(), step * 100).unwrap(), expected);
    }
    for flooder in flooders {
        flooder.join().unwrap();
    }
    assert_eq!(alice.balance().unwrap(), expected);
    assert_eq!(expected, 21_000);
}

#[test]
fn the_server_console_logs_logouts_and_disconnects_with_reason_and_duration_but_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outbox) = (dir.path().join("data"), dir.path().join("outbox"));
    common::add_account_with_binary(&data, "alice", ALICE_PASSWORD, "10.00");
    let server = common::spawn_server_process(&data, &outbox, &[]);
    let within = Duration::from_secs(10);

    let mut alice = server.login(&outbox, "alice", ALICE_PASSWORD);
    alice.logout().unwrap();
    assert!(
        server.wait_for_line(within, |line| line.starts_with("[auth] alice logged out after ")
            && line.ends_with(" s")),
        "{:#?}",
        server.output()
    );
    drop(alice);

    let alice = server.login(&outbox, "alice", ALICE_PASSWORD);
    drop(alice); // the socket closes without a logout
    assert!(
        server.wait_for_line(within, |line| line
            .starts_with("[auth] alice disconnected (the client closed the connection) after ")),
        "{:#?}",
        server.output()
    );
    // An anonymous connection that closes is not a logout: nothing is logged for it.
    drop(server.connect());
    std::thread::sleep(Duration::from_millis(200));
    let output = server.output();
    assert_eq!(
        output.iter().filter(|line| line.contains("disconnected")).count(),
        1,
        "{output:#?}"
    );
    assert!(output.iter().all(|line| !line.contains(ALICE_PASSWORD)), "{output:#?}");
}

#[test]
fn parallel_logins_of_one_account_each_get_a_code_written_to_the_outbox() {
    // Two devices of one customer at once: their code files must not trip over each other.
    let server = common::start_server();
    server.add_account("alice", ALICE_PASSWORD, 0);
    let barrier = Arc::new(Barrier::new(16));
    let logins: Vec<_> = (0..16)
        .map(|_| {
            let mut client = server.connect();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                client.login("alice", ALICE_PASSWORD)
            })
        })
        .collect();
    for login in logins {
        assert!(login.join().unwrap().is_ok());
    }
    let leftovers: Vec<_> = std::fs::read_dir(server.outbox())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["alice.otp"], "temporary files left behind");
}
