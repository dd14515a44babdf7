//! Abuse: the login defences of issue 11, each through real sockets against a real server.
//!
//! - exact lockout: many parallel guesses are judged at most [`LOCKOUT_THRESHOLD`] per lock
//!   window, and no code is issued while locked;
//! - no account oracle: an unknown name is answered like a wrong password, lock included,
//!   and journals one record as a real failure does;
//! - the PBKDF2 queue's deadline answers `unavailable` and counts no failure;
//! - the per-source budgets (anonymous connections, handshakes, logins) and the share of the
//!   cap kept for logged-in sessions;
//! - refused transactions are budgeted per session;
//! - a low file limit lowers the cap, and the extra client is told busy, not left hanging;
//! - time-limit flags are bounded; a lock ends on time.
//!
//! The flood from other loopback addresses is in tests/flood.rs.

mod common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::TestServer;
use securebank::client::{self, new_txid};
use securebank::error::{ChannelError, ClientError, ErrorCode};
use securebank::frame::{self, FrameKind};
use securebank::limits::{LOCKOUT_THRESHOLD, REFUSED_TX_BURST_PER_SESSION};
use securebank::message::{Request, Response};
use securebank::server::admission::SourceLimits;
use securebank::server::bank::now_unix_secs;
use securebank::trace::Tracer;

const PASSWORD: &str = "correct horse";

fn refusal<T: std::fmt::Debug>(outcome: Result<T, ClientError>) -> ErrorCode {
    match outcome {
        Err(ClientError::Refused(code)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The answers to `guesses` sent at once, each on its own connection whose handshake was
/// done beforehand, released together by a barrier.
fn parallel_guesses(server: &TestServer, name: &str, guesses: &[String]) -> Vec<Response> {
    let barrier = Arc::new(Barrier::new(guesses.len()));
    let threads: Vec<_> = guesses
        .iter()
        .map(|guess| {
            let mut session = common::raw_handshake(server.addr);
            let (barrier, name, guess) = (Arc::clone(&barrier), name.to_string(), guess.clone());
            std::thread::spawn(move || {
                barrier.wait();
                session.request(&Request::Login {
                    username: name,
                    password: guess,
                })
            })
        })
        .collect();
    threads.into_iter().map(|thread| thread.join().unwrap()).collect()
}

fn count(responses: &[Response], wanted: impl Fn(&Response) -> bool) -> usize {
    responses.iter().filter(|response| wanted(response)).count()
}

#[test]
fn parallel_guesses_are_judged_at_most_five_per_lock_window_and_never_confirm_a_password_while_locked() {
    let server = common::start_server();
    server.add_account("alice", PASSWORD, 100);
    const GUESSES: usize = 40;
    for round in 0..5 {
        // Distinct candidates, one of them right, at a different place each round.
        let mut guesses: Vec<String> = (0..GUESSES).map(|n| format!("candidate-{round}-{n}")).collect();
        guesses[(round * 7) % GUESSES] = PASSWORD.to_string();
        let answers = parallel_guesses(&server, "alice", &guesses);
        let wrong = count(&answers, |r| *r == Response::Error(ErrorCode::InvalidCredentials));
        let codes = count(&answers, |r| matches!(r, Response::OtpSent { .. }));
        let locked = count(&answers, |r| *r == Response::Error(ErrorCode::AccountLocked));
        assert_eq!(wrong + codes + locked, GUESSES, "round {round}: {answers:?}");
        // The fifth wrong guess is answered "locked"; every later guess is refused unjudged.
        assert!(
            wrong < LOCKOUT_THRESHOLD as usize,
            "round {round}: {wrong} wrong guesses judged"
        );
        assert!(
            wrong + codes <= LOCKOUT_THRESHOLD as usize,
            "round {round}: {wrong} wrong and {codes} right guesses judged in one lock window"
        );
        assert!(server.shared.bank.is_locked("alice", now_unix_secs()), "round {round}");
        server.shared.bank.unlock("alice", now_unix_secs()).unwrap().unwrap();
    }
}

#[test]
fn a_locked_account_is_refused_for_every_parallel_right_password() {
    let server = common::start_server();
    server.add_account("alice", PASSWORD, 100);
    for _ in 0..LOCKOUT_THRESHOLD {
        let _ = server.connect().login("alice", "wrong password");
    }
    let answers = parallel_guesses(&server, "alice", &vec![PASSWORD.to_string(); 24]);
    assert!(
        answers.iter().all(|r| *r == Response::Error(ErrorCode::AccountLocked)),
        "{answers:?}"
    );
}

#[test]
fn an_unknown_name_gets_the_same_answers_as_a_wrong_password_lock_included() {
    let server = common::start_server();
    server.add_account("alice", PASSWORD, 100);
    let answers = |name: &str| -> Vec<ErrorCode> {
        (0..LOCKOUT_THRESHOLD + 2)
            .map(|_| refusal(server.connect().login(name, "wrong password")))
            .collect()
    };
    let real = answers("alice");
    assert_eq!(real, answers("nobody"));
    assert_eq!(real.iter().filter(|&&code| code == ErrorCode::AccountLocked).count(), 3);
    // Even the right password is refused while the name is locked, as for any name.
    assert_eq!(
        refusal(server.connect().login("alice", PASSWORD)),
        ErrorCode::AccountLocked
    );
}

#[test]
fn an_unknown_name_waits_for_one_journal_record_as_a_wrong_password_does() {
    let server = common::start_server();
    server.add_account("alice", PASSWORD, 100);
    let lsn = || server.shared.bank.stats().journal_lsn;
    let before = lsn();
    let _ = server.connect().login("alice", "wrong password");
    assert_eq!(lsn(), before + 1, "a wrong password journals one failure");
    let _ = server.connect().login("nobody", "wrong password");
    assert_eq!(lsn(), before + 2, "an unknown name journals one record too");
    let _ = server.connect().login("Not A Valid Name!", "wrong password");
    assert_eq!(lsn(), before + 3, "so does a name that could never exist");
}

#[test]
fn past_the_queue_deadline_login_is_unavailable_and_counts_no_failure() {
    let server = common::start_server_with(|config| {
        config.login_slots = 1;
        config.login_queue_deadline = Duration::from_millis(100);
    });
    server.add_account("alice", PASSWORD, 100);
    let mut client = server.connect();
    {
        // The test holds the only PBKDF2 slot: every login waits past its deadline.
        let _slot = server.shared.login_queue.acquire(None).unwrap();
        for _ in 0..LOCKOUT_THRESHOLD + 1 {
            assert_eq!(refusal(client.login("alice", "wrong password")), ErrorCode::Unavailable);
        }
    }
    assert!(!server.shared.bank.is_locked("alice", now_unix_secs()));
    // Four wrong passwords are still allowed before the lock: none of the above counted.
    for _ in 1..LOCKOUT_THRESHOLD {
        assert_eq!(
            refusal(client.login("alice", "wrong password")),
            ErrorCode::InvalidCredentials
        );
    }
    assert!(client.login("alice", PASSWORD).is_ok());
}

fn limited(limits: SourceLimits) -> TestServer {
    common::start_server_with(|config| config.sources = limits)
}

fn expect_busy(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let busy = frame::read_frame(stream).expect("a busy notice");
    assert_eq!(busy.kind, FrameKind::ServerBusy as u8);
    String::from_utf8_lossy(&busy.payload[2..]).into_owned()
}

fn is_busy(outcome: &Result<securebank::client::Client, ClientError>) -> bool {
    matches!(outcome, Err(ClientError::Channel(ChannelError::ServerBusy)))
}

#[test]
fn one_address_holds_at_most_its_share_of_connections_before_logging_in() {
    let server = limited(SourceLimits {
        anonymous_per_source: 3,
        ..SourceLimits::unlimited()
    });
    server.add_account("alice", PASSWORD, 100);
    let mut held: Vec<_> = (0..3).map(|_| server.connect()).collect();
    let mut fourth = TcpStream::connect(server.addr).unwrap();
    assert!(expect_busy(&mut fourth).contains("not logged in"));
    // Once one of them logs in, it no longer counts against the address.
    held[0].login("alice", PASSWORD).unwrap();
    held[0].submit_otp(&server.read_otp("alice")).unwrap();
    let mut fourth = retry_until_admitted(&server);
    assert!(fourth.login("alice", "wrong password").is_err());
}

fn retry_until_admitted(server: &TestServer) -> securebank::client::Client {
    let started = Instant::now();
    loop {
        let outcome = client::connect_pinned(server.addr, &server.fingerprint, Tracer::off());
        match outcome {
            Ok(client) => return client,
            Err(_) if started.elapsed() < Duration::from_secs(5) => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => panic!("not admitted again: {err}"),
        }
    }
}

#[test]
fn handshakes_beyond_an_addresss_burst_are_told_busy_until_the_rate_allows() {
    let server = limited(SourceLimits {
        handshake_burst: 3,
        handshakes_per_sec: 1.0,
        ..SourceLimits::unlimited()
    });
    let started = Instant::now();
    for _ in 0..3 {
        drop(server.connect());
    }
    let fourth = client::connect_pinned(server.addr, &server.fingerprint, Tracer::off());
    assert!(
        is_busy(&fourth) || started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        fourth.map(|_| ())
    );
    std::thread::sleep(Duration::from_millis(1_100));
    assert!(client::connect_pinned(server.addr, &server.fingerprint, Tracer::off()).is_ok());
}

#[test]
fn password_checks_beyond_an_addresss_budget_are_unavailable_and_count_no_failure() {
    let server = limited(SourceLimits {
        login_burst: 2,
        logins_per_min: 1.0,
        ..SourceLimits::unlimited()
    });
    server.add_account("alice", PASSWORD, 100);
    let mut client = server.connect();
    for _ in 0..2 {
        assert_eq!(
            refusal(client.login("alice", "wrong password")),
            ErrorCode::InvalidCredentials
        );
    }
    for _ in 0..LOCKOUT_THRESHOLD {
        assert_eq!(refusal(client.login("alice", "wrong password")), ErrorCode::Unavailable);
    }
    // A new connection from the same address shares the budget.
    assert_eq!(
        refusal(server.connect().login("alice", PASSWORD)),
        ErrorCode::Unavailable
    );
    assert!(!server.shared.bank.is_locked("alice", now_unix_secs()));
}

#[test]
fn strangers_cannot_take_the_part_of_the_cap_kept_for_logged_in_sessions() {
    // Cap 8: 2 are kept for logged-in sessions, so at most 6 may be anonymous.
    let server = common::start_server_with(|config| config.max_connections = 8);
    server.add_account("alice", PASSWORD, 100);
    let mut customer = server.connect();
    customer.login("alice", PASSWORD).unwrap();
    customer.submit_otp(&server.read_otp("alice")).unwrap();
    let strangers: Vec<_> = (0..5).map(|_| server.connect()).collect();
    let sixth = server.connect();
    let seventh = client::connect_pinned(server.addr, &server.fingerprint, Tracer::off());
    assert!(
        is_busy(&seventh),
        "a 7th stranger was admitted with only 7 of 8 places taken"
    );
    // A customer arriving now waits like a stranger until an anonymous place frees; once
    // logged in, its session sits in the kept part of the cap.
    drop(sixth);
    let mut second = retry_until_admitted(&server);
    second.login("alice", PASSWORD).unwrap();
    second.submit_otp(&server.read_otp("alice")).unwrap();
    assert_eq!(customer.balance().unwrap(), 100);
    assert_eq!(second.balance().unwrap(), 100);
    drop(strangers);
}

#[test]
fn a_session_that_keeps_getting_refusals_is_answered_unavailable_without_judging() {
    let server = common::start_server_with(|config| config.refused_tx_per_min = 1);
    server.add_account("alice", PASSWORD, 100);
    server.add_account("bob", PASSWORD, 0);
    let mut alice = server.login("alice", PASSWORD);
    for n in 0..REFUSED_TX_BURST_PER_SESSION {
        assert_eq!(
            refusal(alice.transfer(new_txid(), 1, &format!("probe{n}"))),
            ErrorCode::UnknownRecipient
        );
    }
    let lsn = server.shared.bank.stats().journal_lsn;
    // Past the budget, even a name that exists gets the same answer: nothing is judged.
    assert_eq!(refusal(alice.transfer(new_txid(), 1, "bob")), ErrorCode::Unavailable);
    assert_eq!(refusal(alice.transfer(new_txid(), 1, "nobody")), ErrorCode::Unavailable);
    assert_eq!(refusal(alice.deposit(new_txid(), 1)), ErrorCode::Unavailable);
    assert_eq!(server.shared.bank.stats().journal_lsn, lsn, "nothing was journaled");
    assert_eq!(alice.balance().unwrap(), 100, "reads are not budgeted");
    // A successful transaction does not spend the budget: a fresh session shows it.
    let mut again = server.login("alice", PASSWORD);
    for _ in 0..2 * REFUSED_TX_BURST_PER_SESSION {
        again.deposit(new_txid(), 1).unwrap();
    }
}

#[test]
fn a_lock_ends_after_its_duration_and_the_account_logs_in_again() {
    // 4 s: long enough that a slow machine still sees the lock right after it is set (the
    // exact second is tested on the ledger, src/server/ledger.rs).
    let server = common::start_server_with(|config| config.bank.lockout_secs = 4);
    server.add_account("alice", PASSWORD, 100);
    for _ in 0..LOCKOUT_THRESHOLD {
        let _ = server.connect().login("alice", "wrong password");
    }
    assert_eq!(
        refusal(server.connect().login("alice", PASSWORD)),
        ErrorCode::AccountLocked
    );
    // The lock is whole seconds of the bank's clock: it has ended 5 s later at the latest.
    std::thread::sleep(Duration::from_millis(5_100));
    let mut client = server.login("alice", PASSWORD);
    assert_eq!(client.balance().unwrap(), 100);
}

#[test]
fn time_limit_flags_out_of_range_are_refused_with_the_range() {
    for (flag, value) in [
        ("--idle-timeout-secs", "18446744073709551615"),
        ("--handshake-timeout-secs", "0"),
        ("--write-timeout-secs", "86401"),
        ("--otp-ttl-secs", "18446744073709551615"),
        ("--anonymous-idle-timeout-secs", "18446744073709551615"),
        ("--lockout-secs", "0"),
        ("--login-queue-deadline-ms", "60001"),
        ("--max-connections", "0"),
        ("--logins-per-source-per-min", "0"),
    ] {
        let output = common::run_bank_server(
            &[
                flag.as_ref(),
                value.as_ref(),
                "--data".as_ref(),
                "/nonexistent/never-created".as_ref(),
            ],
            Duration::from_secs(30),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(&format!("{flag} must be")), "{flag} {value}: {stderr}");
    }
}

#[test]
fn under_a_low_file_limit_the_cap_is_lowered_and_the_extra_client_is_told_busy() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outbox) = (dir.path().join("data"), dir.path().join("outbox"));
    // 96 descriptors: 64 kept for the server's own files leaves 32 connections.
    let inner = common::server_command(&data, &outbox, &["--max-connections", "1024"]);
    let mut wrapped = Command::new("sh");
    wrapped
        .arg("-c")
        .arg("ulimit -n 96 && exec \"$0\" \"$@\"")
        .arg(inner.get_program())
        .args(inner.get_args())
        .stdin(Stdio::null());
    let server = common::spawn_command(wrapped);
    let stats = common::run_bank_server(
        &["stats".as_ref(), "--data".as_ref(), data.as_os_str()],
        Duration::from_secs(30),
    );
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.contains("(cap 32)"), "{stats}");
    let mut admitted = Vec::new();
    let started = Instant::now();
    let busy = loop {
        assert!(admitted.len() <= 32, "more clients admitted than the lowered cap");
        assert!(started.elapsed() < Duration::from_secs(60), "clients hang");
        match client::connect_pinned(server.addr, &server.fingerprint, Tracer::off()) {
            Ok(client) => admitted.push(client),
            Err(ClientError::Channel(ChannelError::ServerBusy)) => break true,
            Err(err) => panic!("after {} clients: {err}", admitted.len()),
        }
    };
    assert!(busy);
    // 8 of 32 are kept for logged-in sessions.
    assert_eq!(admitted.len(), 24);
}
