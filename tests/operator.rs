//! Operator commands on a running bank, through the admin socket `DIR/admin.sock`, and the
//! same commands offline: what they promise, shown with the real `bank-server` binary.
//!
//! - an account added while customers transact logs in at once, and a transfer racing its
//!   creation either reaches it or is refused cleanly (`unknown_recipient`);
//! - `unlock` lets a locked account log in again and leaves "unlocked by the bank" in its
//!   history (for clients that ask for notices; version-1 History is unchanged);
//! - `close-account` refuses while money is left; a closed account can neither log in
//!   (answered like a wrong password) nor be paid (`unknown_recipient`);
//! - `stats` shows sane live numbers; `checkpoint` writes one on demand;
//! - offline and through a server the same commands give the same answers;
//! - the socket is 0600 in the 0700 directory, a stale one left by a killed server is
//!   replaced, a second server cannot take a live one's socket, garbage on the socket ends
//!   only that admin connection, and a fifth concurrent admin connection is told "busy";
//! - every operator action is a journal event: it survives a clean stop and a restart, and
//!   `verify` counts it.
mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{TestServer, output_within, run_server_expecting_exit, spawn_server_process, start_server};
use securebank::client::new_txid;
use securebank::error::{ClientError, ErrorCode};
use securebank::frame::{self, FrameKind};
use securebank::message::EntryKind;
use securebank::server::bank::{Bank, BankOptions, CommitMode};
use securebank::server::operator::{Command as Operation, Reply, Status};
use securebank::server::operator_socket::{OperatorSocket, socket_path};
use securebank::server::storage::DirStorage;

const ALICE_PASSWORD: &str = "alice-password";
const BOB_PASSWORD: &str = "bob-password";
/// How long one `bank-server` command may run before the test gives up on it.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

// ---- helpers ----

/// Runs `bank-server ARGS --data DATA` (cheap PBKDF2 for offline accounts), feeding `stdin`.
fn bank_server(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bank-server"))
        .args(args)
        .args(["--pbkdf2-iterations", "1000", "--data"])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may finish before reading its input: a broken pipe here is expected.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    output_within(child, COMMAND_LIMIT)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; returns its standard output.
fn succeeds(data: &Path, args: &[&str], stdin: &str) -> String {
    let output = bank_server(data, args, stdin);
    assert!(
        output.status.success(),
        "{args:?} failed:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Runs a command that a rule must refuse; returns its standard error.
fn refused(data: &Path, args: &[&str], stdin: &str) -> String {
    let output = bank_server(data, args, stdin);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("bank-server: "), "{args:?}: {stderr}");
    stderr
}

/// The value after `label:` on the report line that starts with it.
fn field<'a>(report: &'a str, label: &str) -> &'a str {
    report
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{label}:")))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{report}"))
        .trim()
}

fn refusal<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Refused(code)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Five wrong passwords: the account is locked.
fn lock_out(server: &TestServer, user: &str) {
    let mut client = server.connect();
    for _ in 0..4 {
        assert_eq!(
            refusal(client.login(user, "wrong-password")),
            ErrorCode::InvalidCredentials
        );
    }
    assert_eq!(refusal(client.login(user, "wrong-password")), ErrorCode::AccountLocked);
}

/// Sends raw bytes on a fresh admin connection and reads the one reply, then expects the
/// server to close the connection.
fn garbage_gets_malformed_and_closes(data: &Path, bytes: &[u8]) -> Reply {
    let mut stream = UnixStream::connect(socket_path(data)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(bytes).unwrap();
    let reply = frame::read_frame(&mut stream).unwrap();
    assert_eq!(reply.kind, FrameKind::OperatorReply as u8);
    let reply = Reply::decode(&reply.payload).unwrap();
    assert_eq!(reply.status, Status::Malformed, "{reply:?}");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the server sent more after a malformed request");
    reply
}

fn request_frame(payload: &[u8]) -> Vec<u8> {
    frame::encode(FrameKind::OperatorRequest, payload)
}

// ---- accounts on a running bank ----

#[test]
fn an_account_added_while_clients_transact_logs_in_at_once_and_racing_transfers_reach_it_or_are_refused() {
    let server = Arc::new(start_server());
    server.add_account("alice", ALICE_PASSWORD, 1_000_000);
    server.add_account("bob", BOB_PASSWORD, 1_000_000);
    let stop = Arc::new(AtomicBool::new(false));
    let paid_to_zed = Arc::new(AtomicU64::new(0));
    let refused_for_zed = Arc::new(AtomicU64::new(0));
    let payer = {
        let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
        let (paid, refused) = (Arc::clone(&paid_to_zed), Arc::clone(&refused_for_zed));
        std::thread::spawn(move || {
            let mut alice = server.login("alice", ALICE_PASSWORD);
            while !stop.load(Ordering::SeqCst) {
                match alice.transfer(new_txid(), 1, "zed") {
                    Ok(_) => paid.fetch_add(1, Ordering::SeqCst),
                    Err(ClientError::Refused(ErrorCode::UnknownRecipient)) => refused.fetch_add(1, Ordering::SeqCst),
                    Err(other) => panic!("a transfer racing add-account failed: {other}"),
                };
            }
        })
    };
    let traffic = {
        let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut bob = server.login("bob", BOB_PASSWORD);
            let mut rounds = 0u64;
            while !stop.load(Ordering::SeqCst) {
                bob.transfer(new_txid(), 1, "alice").unwrap();
                rounds += 1;
            }
            rounds
        })
    };
    let started = Instant::now();
    while refused_for_zed.load(Ordering::SeqCst) == 0 && started.elapsed() < COMMAND_LIMIT {
        std::thread::sleep(Duration::from_millis(5));
    }

    let stdout = succeeds(
        &server.data_dir(),
        &["add-account", "zed", "--deposit", "10.00"],
        "zed-password\n",
    );
    assert!(stdout.starts_with("via the running server"), "{stdout}");
    assert!(
        stdout.contains("created account zed with opening balance 10.00"),
        "{stdout}"
    );
    let mut zed = server.login("zed", "zed-password");

    while paid_to_zed.load(Ordering::SeqCst) == 0 && started.elapsed() < COMMAND_LIMIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    payer.join().unwrap();
    assert!(traffic.join().unwrap() > 0, "customers transacted throughout");
    let paid = paid_to_zed.load(Ordering::SeqCst);
    assert!(paid > 0 && refused_for_zed.load(Ordering::SeqCst) > 0);
    assert_eq!(
        zed.balance().unwrap(),
        1_000 + paid,
        "every transfer that reached zed counts"
    );
    let (totals, sum) = server.shared.bank.totals();
    assert_eq!(sum, totals.deposited_cents - totals.withdrawn_cents);
    assert_eq!(sum, 2_000_000 + 1_000);
}

#[test]
fn an_unlocked_account_can_log_in_at_once_and_its_history_says_so() {
    let server = start_server();
    server.add_account("alice", ALICE_PASSWORD, 5_000);
    lock_out(&server, "alice");
    assert_eq!(
        refusal(server.connect().login("alice", ALICE_PASSWORD)),
        ErrorCode::AccountLocked
    );

    let stdout = succeeds(&server.data_dir(), &["unlock", "alice"], "");
    assert!(stdout.starts_with("via the running server"), "{stdout}");
    assert!(stdout.contains("unlocked alice"), "{stdout}");

    let mut alice = server.login("alice", ALICE_PASSWORD);
    let notices = alice.history_with_notices().unwrap();
    let last = notices.last().unwrap();
    assert_eq!(
        (last.kind, last.amount_cents, last.balance_after_cents),
        (EntryKind::Unlocked, 0, 5_000)
    );
    assert!(
        alice.history().unwrap().iter().all(|entry| !entry.kind.is_notice()),
        "a version-1 History never carries a kind its clients do not know"
    );
    // Nothing left to unlock: refused, nothing recorded.
    let position = server.shared.bank.position().lsn;
    let stderr = refused(&server.data_dir(), &["unlock", "alice"], "");
    assert!(stderr.contains("not locked"), "{stderr}");
    assert_eq!(server.shared.bank.position().lsn, position);
}

#[test]
fn closing_an_account_with_money_left_is_refused_and_changes_nothing() {
    let server = start_server();
    server.add_account("alice", ALICE_PASSWORD, 1_234);
    let position = server.shared.bank.position().lsn;
    let stderr = refused(&server.data_dir(), &["close-account", "alice"], "");
    assert!(stderr.contains("alice still holds 12.34"), "{stderr}");
    assert_eq!(server.shared.bank.position().lsn, position, "nothing was recorded");
    assert_eq!(server.login("alice", ALICE_PASSWORD).balance().unwrap(), 1_234);
}

#[test]
fn a_closed_account_can_neither_log_in_nor_be_paid() {
    let server = start_server();
    server.add_account("alice", ALICE_PASSWORD, 1_000);
    server.add_account("bob", BOB_PASSWORD, 300);
    let mut bob = server.login("bob", BOB_PASSWORD);
    bob.transfer(new_txid(), 300, "alice").unwrap();

    let stdout = succeeds(&server.data_dir(), &["close-account", "bob"], "");
    assert!(stdout.contains("closed account bob"), "{stdout}");

    // No oracle: the closed account is answered exactly like a wrong password.
    assert_eq!(
        refusal(server.connect().login("bob", BOB_PASSWORD)),
        ErrorCode::InvalidCredentials
    );
    let mut alice = server.login("alice", ALICE_PASSWORD);
    assert_eq!(
        refusal(alice.transfer(new_txid(), 100, "bob")),
        ErrorCode::UnknownRecipient
    );
    assert_eq!(alice.balance().unwrap(), 1_300);
    // A session that logged in before the close can do nothing more.
    assert_eq!(refusal(bob.balance()), ErrorCode::NotAuthenticated);
    assert_eq!(refusal(bob.deposit(new_txid(), 100)), ErrorCode::NotAuthenticated);
    // Wrong passwords for it are answered exactly as for a name never opened, lock included
    // (anything else would reveal which names exist).
    // (One failure was counted for "bob" above; give the never-opened name one too.)
    let answers = |name: &str| -> Vec<ErrorCode> {
        (0..6)
            .map(|_| refusal(server.connect().login(name, "wrong-password")))
            .collect()
    };
    let _ = server.connect().login("never-opened", "wrong-password");
    let for_closed = answers("bob");
    assert_eq!(for_closed, answers("never-opened"));
    assert_eq!(for_closed[..3], [ErrorCode::InvalidCredentials; 3]);
    assert_eq!(for_closed[3..], [ErrorCode::AccountLocked; 3]);
    // The name stays taken, and closing twice is refused.
    let stderr = refused(&server.data_dir(), &["add-account", "bob"], "new-bob-password\n");
    assert!(stderr.contains("bob"), "{stderr}");
    let stderr = refused(&server.data_dir(), &["close-account", "bob"], "");
    assert!(stderr.contains("closed"), "{stderr}");
}

// ---- stats, checkpoint, and offline against online ----

#[test]
fn stats_shows_uptime_connections_accounts_journal_syncs_checkpoint_and_limits() {
    let server = start_server();
    server.add_account("alice", ALICE_PASSWORD, 1_000);
    server.add_account("bob", BOB_PASSWORD, 0);
    let _logged_in = server.login("alice", ALICE_PASSWORD);
    let _anonymous = server.connect();

    let report = succeeds(&server.data_dir(), &["stats"], "");
    assert!(report.starts_with("via the running server"), "{report}");
    let uptime: u64 = field(&report, "uptime").trim_end_matches(" s").parse().unwrap();
    assert!(uptime < 600, "{report}");
    assert_eq!(
        field(&report, "connections"),
        "2 open: 1 anonymous, 1 logged in (cap 1024)"
    );
    assert_eq!(field(&report, "accounts"), "2 (2 open, 0 closed)");
    let position = server.shared.bank.position().lsn;
    assert_eq!(field(&report, "journal"), format!("record {position}, segment 1"));
    let syncs = field(&report, "syncs");
    assert!(syncs.contains(&format!("{position} records written")), "{syncs}");
    assert!(syncs.contains("records per sync"), "{syncs}");
    assert_eq!(field(&report, "checkpoint"), "none yet");
    assert_eq!(
        field(&report, "operator"),
        "2 events: 2 accounts opened, 0 unlocked, 0 closed"
    );
    let limits = field(&report, "limits");
    for expected in [
        "connections 1024",
        "handshake 10 s",
        "idle 300 s",
        "lockout after 5 failures for 900 s",
        "pbkdf2 1000 iterations",
        "checkpoint every 300000 records",
        "transaction ids kept 86400 s",
    ] {
        assert!(limits.contains(expected), "{expected:?} missing in {limits}");
    }
}

#[test]
fn checkpoint_on_demand_writes_one_that_stats_and_verify_see() {
    let server = start_server();
    server.add_account("alice", ALICE_PASSWORD, 1_000);
    server.login("alice", ALICE_PASSWORD).deposit(new_txid(), 500).unwrap();
    let position = server.shared.bank.position().lsn;

    let stdout = succeeds(&server.data_dir(), &["checkpoint"], "");
    assert!(stdout.starts_with("via the running server"), "{stdout}");
    assert!(
        stdout.contains(&format!("checkpoint written at record {position} (")),
        "{stdout}"
    );
    assert!(stdout.contains("the journal continues in segment 2"), "{stdout}");
    assert!(server.data_dir().join("checkpoint-0000000002.ckp").is_file());

    let report = succeeds(&server.data_dir(), &["stats"], "");
    assert!(
        field(&report, "checkpoint").starts_with(&format!("written at record {position} ")),
        "{report}"
    );
    assert_eq!(field(&report, "journal"), format!("record {position}, segment 2"));
    let verified = succeeds(&server.data_dir(), &["verify"], "");
    assert!(verified.starts_with("via the running server"), "{verified}");
    assert_eq!(field(&verified, "checkpoints"), "1 checked, each equal to the replay");
}

#[test]
fn offline_and_through_the_running_server_the_same_commands_give_the_same_answers() {
    let offline_dir = tempfile::tempdir().unwrap();
    let offline = offline_dir.path().join("data");
    // The default per-source budgets, as the offline tool shows them.
    let server = common::start_server_with(|config| config.sources = Default::default());
    let online = server.data_dir();
    let steps: [(&[&str], &str); 10] = [
        (&["add-account", "carol", "--deposit", "5.00"], "carol-password\n"),
        (&["add-account", "dave"], "dave-password\n"),
        (&["add-account", "carol"], "other-password\n"),
        (&["close-account", "carol"], ""),
        (&["close-account", "dave"], ""),
        (&["unlock", "dave"], ""),
        (&["unlock", "carol"], ""),
        (&["unlock", "nobody"], ""),
        (&["stats"], ""),
        (&["verify"], ""),
    ];
    // Lines that depend on the process or the path, not on the bank.
    let live = [
        "uptime:",
        "connections:",
        "syncs:",
        "checkpoint:",
        "head:",
        "journal in ",
    ];
    let answer = |output: &Output| {
        let stdout = text(&output.stdout);
        let mut lines = stdout.lines();
        let way = lines.next().unwrap_or_default().to_string();
        let rest: Vec<String> = lines
            .filter(|line| !live.iter().any(|prefix| line.starts_with(prefix)))
            .map(str::to_string)
            .collect();
        (way, output.status.code(), rest, text(&output.stderr))
    };
    for (args, stdin) in steps {
        let (way_off, code_off, out_off, err_off) = answer(&bank_server(&offline, args, stdin));
        let (way_on, code_on, out_on, err_on) = answer(&bank_server(&online, args, stdin));
        assert!(
            way_off.starts_with("offline: no server is running"),
            "{args:?}: {way_off}"
        );
        assert!(way_on.starts_with("via the running server"), "{args:?}: {way_on}");
        assert_eq!((code_off, &out_off, &err_off), (code_on, &out_on, &err_on), "{args:?}");
        if args == ["verify"] {
            assert!(
                out_on
                    .iter()
                    .any(|line| line.ends_with("3 events: 2 accounts opened, 0 unlocked, 1 closed")),
                "{out_on:?}"
            );
        }
    }
}

// ---- the socket file ----

#[test]
fn the_admin_socket_is_mode_0600_in_the_0700_data_directory() {
    let server = start_server();
    let socket = std::fs::symlink_metadata(socket_path(&server.data_dir())).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&socket.file_type()));
    assert_eq!(socket.permissions().mode() & 0o777, 0o600);
    let dir = std::fs::metadata(server.data_dir()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    assert!(
        !server.data_dir().join("admin.sock.new").exists(),
        "the staging name is gone"
    );
}

#[test]
fn a_stale_socket_left_by_a_killed_server_is_replaced_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outbox) = (dir.path().join("data"), dir.path().join("outbox"));
    let mut first = spawn_server_process(&data, &outbox, &[]);
    let stale = std::fs::symlink_metadata(socket_path(&data)).unwrap().ino();
    first.kill();
    assert!(socket_path(&data).exists(), "SIGKILL leaves the socket file behind");
    assert!(
        UnixStream::connect(socket_path(&data)).is_err(),
        "nobody answers on the stale socket"
    );

    let _second = spawn_server_process(&data, &outbox, &[]);
    let fresh = std::fs::symlink_metadata(socket_path(&data)).unwrap();
    assert_ne!(fresh.ino(), stale, "the stale socket was replaced");
    assert_eq!(fresh.permissions().mode() & 0o777, 0o600);
    let report = succeeds(&data, &["stats"], "");
    assert!(report.starts_with("via the running server"), "{report}");
}

#[test]
fn a_second_server_cannot_take_the_socket_of_a_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outbox) = (dir.path().join("data"), dir.path().join("outbox"));
    let _first = spawn_server_process(&data, &outbox, &[]);
    let before = std::fs::symlink_metadata(socket_path(&data)).unwrap().ino();

    let second = run_server_expecting_exit(&data, &outbox);
    assert!(!second.status.success(), "a second server started");
    assert!(
        text(&second.stderr).contains("already using"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(
        std::fs::symlink_metadata(socket_path(&data)).unwrap().ino(),
        before,
        "the live server's socket is untouched"
    );
    let report = succeeds(&data, &["stats"], "");
    assert!(report.starts_with("via the running server"), "{report}");

    // In the library, binding needs the data directory's lock: a bank without it is refused.
    let other = tempfile::tempdir().unwrap();
    let storage = Arc::new(DirStorage::new(other.path()));
    let (unlocked, _) = Bank::open_storage(storage, BankOptions::default(), CommitMode::Manual).unwrap();
    let err = OperatorSocket::bind(&unlocked).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(!socket_path(other.path()).exists());
}

#[test]
fn garbage_on_the_admin_socket_is_answered_malformed_and_ends_that_connection_only() {
    let server = start_server();
    server.add_account("alice", ALICE_PASSWORD, 1_000);
    let data = server.data_dir();
    // A connection that says nothing does not block the others.
    let _silent = UnixStream::connect(socket_path(&data)).unwrap();

    let reply = garbage_gets_malformed_and_closes(&data, &frame::encode(FrameKind::Record, b"\x00"));
    assert!(reply.text.contains("frame type 0x17"), "{reply:?}");
    let reply = garbage_gets_malformed_and_closes(&data, &request_frame(&[0x7f]));
    assert!(reply.text.contains("unknown message type 0x7f"), "{reply:?}");
    let reply = garbage_gets_malformed_and_closes(&data, &[0xff, 0xff, 0xff, 0xff, 0x0a]);
    assert!(reply.text.contains("over the limit"), "{reply:?}");
    let reply = garbage_gets_malformed_and_closes(&data, &[0, 0, 0, 0]);
    assert!(reply.text.contains("empty frame"), "{reply:?}");
    let mut trailing = Operation::Unlock { name: "alice".into() }.encode().to_vec();
    trailing.push(0);
    let reply = garbage_gets_malformed_and_closes(&data, &request_frame(&trailing));
    assert!(reply.text.contains("unexpected bytes"), "{reply:?}");
    let mut long_name = vec![0x02];
    long_name.extend_from_slice(&1000u16.to_be_bytes());
    long_name.extend_from_slice(&[b'a'; 1000]);
    garbage_gets_malformed_and_closes(&data, &request_frame(&long_name));
    // Half a frame, then the peer goes away.
    let mut half = UnixStream::connect(socket_path(&data)).unwrap();
    half.write_all(&[0, 0, 0, 9, 0x0a, 0x04]).unwrap();
    drop(half);

    // The server and its socket carry on, for operators and customers.
    let report = succeeds(&data, &["stats"], "");
    assert_eq!(field(&report, "accounts"), "1 (1 open, 0 closed)");
    assert_eq!(server.login("alice", ALICE_PASSWORD).balance().unwrap(), 1_000);
}

#[test]
fn a_fifth_admin_connection_is_answered_busy_until_one_of_four_closes() {
    let server = start_server();
    let data = server.data_dir();
    let silent: Vec<UnixStream> = (0..4)
        .map(|_| UnixStream::connect(socket_path(&data)).unwrap())
        .collect();
    let mut fifth = UnixStream::connect(socket_path(&data)).unwrap();
    fifth.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let reply = frame::read_frame(&mut fifth).unwrap();
    let reply = Reply::decode(&reply.payload).unwrap();
    assert_eq!(reply.status, Status::Refused);
    assert!(reply.text.starts_with("busy"), "{reply:?}");

    drop(silent);
    let deadline = Instant::now() + COMMAND_LIMIT;
    loop {
        let output = bank_server(&data, &["stats"], "");
        if output.status.success() {
            break;
        }
        assert!(text(&output.stderr).contains("busy"), "{}", text(&output.stderr));
        assert!(Instant::now() < deadline, "the slots were never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- the audit trail ----

#[test]
fn every_operator_action_survives_a_clean_stop_and_a_restart_and_verify_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outbox) = (dir.path().join("data"), dir.path().join("outbox"));
    let stdout = succeeds(
        &data,
        &["add-account", "alice", "--deposit", "50.00"],
        "alice-password\n",
    );
    assert!(stdout.starts_with("offline: no server is running"), "{stdout}");
    let mut server = spawn_server_process(&data, &outbox, &[]);
    succeeds(&data, &["add-account", "bob"], "bob-password\n");
    succeeds(
        &data,
        &["add-account", "carol", "--deposit", "1.00"],
        "carol-password\n",
    );
    let mut client = server.connect();
    for _ in 0..5 {
        let _ = client.login("alice", "wrong-password");
    }
    succeeds(&data, &["unlock", "alice"], "");
    succeeds(&data, &["close-account", "bob"], "");
    succeeds(&data, &["checkpoint"], "");
    let stderr = refused(&data, &["unlock", "carol"], "");
    assert!(stderr.contains("not locked"), "{stderr}");

    let stopped = succeeds(&data, &["stop"], "");
    assert!(stopped.contains("stopped at record"), "{stopped}");
    assert!(stopped.contains("admin socket removed"), "{stopped}");
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit after stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "a clean stop exits 0: {status:?}");
    assert!(server.wait_for_line(Duration::from_secs(5), |line| line == "bank-server stopped"));
    assert!(!socket_path(&data).exists(), "a clean stop removes the socket");

    let expected = "5 events: 3 accounts opened, 1 unlocked, 1 closed";
    let verified = succeeds(&data, &["verify"], "");
    assert!(verified.starts_with("offline: no server is running"), "{verified}");
    assert_eq!(field(&verified, "operator"), expected, "{verified}");
    assert_eq!(field(&verified, "checkpoints"), "1 checked, each equal to the replay");
    assert_eq!(field(&verified, "invariant"), "ok (total = deposits - withdrawals)");

    let restarted = spawn_server_process(&data, &outbox, &[]);
    // The clean stop wrote a checkpoint: the restart replays nothing.
    let banner = restarted.output();
    assert!(
        banner.iter().any(|line| line.contains("loaded, 0 records replayed")),
        "{banner:?}"
    );
    let mut alice = restarted.login(&outbox, "alice", ALICE_PASSWORD);
    let notices = alice.history_with_notices().unwrap();
    assert_eq!(
        notices.iter().map(|entry| entry.kind).collect::<Vec<_>>(),
        [EntryKind::Opening, EntryKind::Unlocked]
    );
    assert_eq!(
        refusal(alice.transfer(new_txid(), 100, "bob")),
        ErrorCode::UnknownRecipient
    );
    assert_eq!(
        refusal(restarted.connect().login("bob", BOB_PASSWORD)),
        ErrorCode::InvalidCredentials
    );
    let carol = restarted.login(&outbox, "carol", "carol-password").balance().unwrap();
    assert_eq!(carol, 100);
    let report = succeeds(&data, &["stats"], "");
    assert_eq!(field(&report, "accounts"), "3 (2 open, 1 closed)");
    assert_eq!(field(&report, "operator"), expected);
    let verified = succeeds(&data, &["verify"], "");
    assert!(verified.starts_with("via the running server"), "{verified}");
    assert_eq!(field(&verified, "operator"), expected);
}

#[test]
fn ctrl_c_on_the_server_console_stops_it_cleanly_with_status_zero_and_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outbox) = (dir.path().join("data"), dir.path().join("outbox"));
    common::add_account_with_binary(&data, "alice", ALICE_PASSWORD, "50.00");
    let mut server = spawn_server_process(&data, &outbox, &[]);
    let mut alice = server.login(&outbox, "alice", ALICE_PASSWORD);
    assert_eq!(alice.deposit(new_txid(), 125).unwrap(), 5_125);
    assert!(socket_path(&data).exists());
    // Ctrl-C on a terminal sends SIGINT.
    let sent = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean stop: {status:?}");
    assert!(server.wait_for_line(Duration::from_secs(5), |line| line == "bank-server stopped"));
    assert!(!socket_path(&data).exists(), "a clean stop removes the socket");
    let restarted = spawn_server_process(&data, &outbox, &[]);
    assert_eq!(
        restarted.login(&outbox, "alice", ALICE_PASSWORD).balance().unwrap(),
        5_125
    );
}
