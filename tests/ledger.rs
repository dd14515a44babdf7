//! The rules of money over real sockets: every refusal the server can send, atomicity under
//! concurrency, idempotent transaction ids (also across a restart of the real binary) and
//! their retention window, history, and what a restart restores.
mod common;

use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use common::{TestServer, add_account_with_binary, assert_closed, raw_handshake, spawn_server_process, start_server};
use securebank::client::{self, Client, is_refused};
use securebank::error::{ClientError, ErrorCode};
use securebank::limits::{
    DEFAULT_TXID_RETENTION_SECS, LOCKOUT_THRESHOLD, MAX_BALANCE_CENTS, MAX_HISTORY_ENTRIES, MAX_TRANSACTION_CENTS,
    MAX_TXID_CLOCK_SKEW_SECS,
};
use securebank::message::{EntryKind, HistoryEntry, Request, Response, TxId, txid_at};
use securebank::server::bank::now_unix_secs;

const ALICE_PW: &str = "alice-password";
const BOB_PW: &str = "bob-password";

/// Request type bytes, written out by hand (PROTOCOL.md) rather than taken from the encoder.
const BALANCE: u8 = 0x23;
const DEPOSIT: u8 = 0x24;
const WITHDRAW: u8 = 0x25;
const TRANSFER: u8 = 0x26;

/// Hand-built money request: type | txid[16] | amount u64 BE | (transfer) to u16-len str.
fn money_request(kind: u8, txid: &TxId, amount_cents: u64, to: Option<&str>) -> Vec<u8> {
    let mut bytes = vec![kind];
    bytes.extend_from_slice(txid);
    bytes.extend_from_slice(&amount_cents.to_be_bytes());
    if let Some(to) = to {
        bytes.extend_from_slice(&u16::try_from(to.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(to.as_bytes());
    }
    bytes
}

fn refused(code: ErrorCode) -> Response {
    Response::Error(code)
}

/// A server with alice (100.00) and bob (50.00).
fn alice_and_bob() -> TestServer {
    let server = start_server();
    server.add_account("alice", ALICE_PW, 10_000);
    server.add_account("bob", BOB_PW, 5_000);
    server
}

fn history_of(server: &TestServer, user: &str) -> Vec<HistoryEntry> {
    server.shared.bank.history(user).unwrap().unwrap()
}

/// Receives `count` results from worker threads, failing (instead of hanging) if they do not
/// all arrive within `within`.
fn collect<T>(rx: &mpsc::Receiver<T>, count: usize, within: Duration, what: &str) -> Vec<T> {
    let deadline = Instant::now() + within;
    (0..count)
        .map(|i| {
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left)
                .unwrap_or_else(|err| panic!("{what}: only {i} of {count} threads finished within {within:?} ({err})"))
        })
        .collect()
}

// ---- every money error, from a raw client ----

#[test]
fn a_zero_amount_is_refused_with_amount_must_be_positive() {
    let server = alice_and_bob();
    let mut raw = server.raw_login("alice", ALICE_PW);
    for (kind, to) in [(DEPOSIT, None), (WITHDRAW, None), (TRANSFER, Some("bob"))] {
        let response = raw.request_bytes(&money_request(kind, &client::new_txid(), 0, to));
        assert_eq!(response, refused(ErrorCode::AmountMustBePositive), "type 0x{kind:02x}");
    }
    assert_eq!(raw.request_bytes(&[BALANCE]), Response::Balance(10_000));
    assert_eq!(server.bank_balance("bob"), 5_000);
}

#[test]
fn an_amount_over_the_transaction_limit_is_refused_with_amount_exceeds_limit() {
    let server = alice_and_bob();
    let mut raw = server.raw_login("alice", ALICE_PW);
    for amount in [MAX_TRANSACTION_CENTS + 1, u64::MAX] {
        for (kind, to) in [(DEPOSIT, None), (WITHDRAW, None), (TRANSFER, Some("bob"))] {
            let response = raw.request_bytes(&money_request(kind, &client::new_txid(), amount, to));
            assert_eq!(
                response,
                refused(ErrorCode::AmountExceedsLimit),
                "type 0x{kind:02x} amount {amount}"
            );
        }
    }
    // The same through the client library's raw `request` with a hostile Request.
    let mut alice = server.login("alice", ALICE_PW);
    let hostile = Request::Deposit {
        txid: client::new_txid(),
        amount_cents: u64::MAX,
    };
    assert_eq!(alice.request(&hostile).unwrap(), refused(ErrorCode::AmountExceedsLimit));
    assert_eq!(server.bank_balance("alice"), 10_000);
    assert_eq!(server.bank_balance("bob"), 5_000);
    // The limit itself is allowed.
    let txid = client::new_txid();
    assert_eq!(
        raw.request_bytes(&money_request(DEPOSIT, &txid, MAX_TRANSACTION_CENTS, None)),
        Response::TxApplied {
            txid,
            balance_cents: 10_000 + MAX_TRANSACTION_CENTS
        }
    );
}

#[test]
fn a_withdrawal_or_transfer_over_the_balance_is_refused_with_insufficient_funds() {
    let server = alice_and_bob();
    let mut raw = server.raw_login("alice", ALICE_PW);
    assert_eq!(
        raw.request_bytes(&money_request(WITHDRAW, &client::new_txid(), 10_001, None)),
        refused(ErrorCode::InsufficientFunds)
    );
    assert_eq!(
        raw.request_bytes(&money_request(TRANSFER, &client::new_txid(), 10_001, Some("bob"))),
        refused(ErrorCode::InsufficientFunds)
    );
    assert_eq!(server.bank_balance("alice"), 10_000);
    assert_eq!(server.bank_balance("bob"), 5_000);
    // Exactly the balance is allowed and leaves zero.
    let txid = client::new_txid();
    assert_eq!(
        raw.request_bytes(&money_request(WITHDRAW, &txid, 10_000, None)),
        Response::TxApplied { txid, balance_cents: 0 }
    );
    assert_eq!(
        raw.request_bytes(&money_request(WITHDRAW, &client::new_txid(), 1, None)),
        refused(ErrorCode::InsufficientFunds)
    );
}

#[test]
fn a_credit_over_the_maximum_balance_is_refused_with_balance_would_overflow() {
    let server = alice_and_bob();
    server.add_account("rich", "rich-password", MAX_BALANCE_CENTS - 100);
    let mut rich = server.raw_login("rich", "rich-password");
    assert_eq!(
        rich.request_bytes(&money_request(DEPOSIT, &client::new_txid(), 101, None)),
        refused(ErrorCode::BalanceWouldOverflow)
    );
    assert_eq!(server.bank_balance("rich"), MAX_BALANCE_CENTS - 100);

    // A transfer into the rich account is refused the same way, and the sender keeps its money.
    let mut bob = server.raw_login("bob", BOB_PW);
    assert_eq!(
        bob.request_bytes(&money_request(TRANSFER, &client::new_txid(), 101, Some("rich"))),
        refused(ErrorCode::BalanceWouldOverflow)
    );
    assert_eq!(server.bank_balance("bob"), 5_000);
    assert_eq!(server.bank_balance("rich"), MAX_BALANCE_CENTS - 100);

    // Up to the maximum exactly is allowed; one cent more is not.
    let txid = client::new_txid();
    assert_eq!(
        rich.request_bytes(&money_request(DEPOSIT, &txid, 100, None)),
        Response::TxApplied {
            txid,
            balance_cents: MAX_BALANCE_CENTS
        }
    );
    assert_eq!(
        rich.request_bytes(&money_request(DEPOSIT, &client::new_txid(), 1, None)),
        refused(ErrorCode::BalanceWouldOverflow)
    );
}

#[test]
fn a_transfer_to_an_unknown_or_malformed_name_is_refused_with_unknown_recipient() {
    let server = alice_and_bob();
    let mut raw = server.raw_login("alice", ALICE_PW);
    let longest_valid = "z".repeat(securebank::limits::MAX_USERNAME_BYTES);
    // A well-formed name without an account, then names no account can have.
    for to in [
        "nobody",
        longest_valid.as_str(),
        "",
        "ab",
        "Bob",
        "bob!",
        "9bob",
        "bo b",
    ] {
        let bytes = money_request(TRANSFER, &client::new_txid(), 100, Some(to));
        assert_eq!(
            raw.request_bytes(&bytes),
            refused(ErrorCode::UnknownRecipient),
            "to {to:?}"
        );
    }
    assert_eq!(server.bank_balance("alice"), 10_000);
    assert_eq!(server.bank_balance("bob"), 5_000);
}

#[test]
fn a_transfer_to_oneself_is_refused_with_cannot_transfer_to_self() {
    let server = alice_and_bob();
    let mut raw = server.raw_login("alice", ALICE_PW);
    assert_eq!(
        raw.request_bytes(&money_request(TRANSFER, &client::new_txid(), 100, Some("alice"))),
        refused(ErrorCode::CannotTransferToSelf)
    );
    assert_eq!(server.bank_balance("alice"), 10_000);
}

#[test]
fn a_transaction_id_reused_for_a_different_request_is_refused_with_transaction_id_reused() {
    let server = alice_and_bob();
    let mut raw = server.raw_login("alice", ALICE_PW);
    let txid = client::new_txid();
    assert_eq!(
        raw.request_bytes(&money_request(TRANSFER, &txid, 300, Some("bob"))),
        Response::TxApplied {
            txid,
            balance_cents: 9_700
        }
    );
    server.add_account("carol", "carol-password", 0);
    let different = [
        money_request(TRANSFER, &txid, 301, Some("bob")),   // amount
        money_request(TRANSFER, &txid, 300, Some("carol")), // recipient
        money_request(WITHDRAW, &txid, 300, None),          // kind
        money_request(DEPOSIT, &txid, 300, None),           // kind
    ];
    for bytes in &different {
        assert_eq!(raw.request_bytes(bytes), refused(ErrorCode::TransactionIdReused));
    }
    assert_eq!(server.bank_balance("alice"), 9_700);
    assert_eq!(server.bank_balance("bob"), 5_300);
    assert_eq!(server.bank_balance("carol"), 0);
    // The original request with that id is still answered as the original.
    assert_eq!(
        raw.request_bytes(&money_request(TRANSFER, &txid, 300, Some("bob"))),
        Response::TxApplied {
            txid,
            balance_cents: 9_700
        }
    );
}

#[test]
fn a_request_refused_by_a_rule_of_its_own_shape_does_not_consume_its_transaction_id() {
    let server = alice_and_bob();
    let mut raw = server.raw_login("alice", ALICE_PW);
    let txid = client::new_txid();
    assert_eq!(
        raw.request_bytes(&money_request(DEPOSIT, &txid, 0, None)),
        refused(ErrorCode::AmountMustBePositive)
    );
    assert_eq!(
        raw.request_bytes(&money_request(TRANSFER, &txid, 5, Some("alice"))),
        refused(ErrorCode::CannotTransferToSelf)
    );
    assert_eq!(
        raw.request_bytes(&money_request(DEPOSIT, &txid, 500, None)),
        Response::TxApplied {
            txid,
            balance_cents: 10_500
        }
    );
}

#[test]
fn money_requests_before_login_are_refused_with_not_authenticated() {
    let server = alice_and_bob();
    let mut raw = raw_handshake(server.addr);
    for (kind, to) in [(DEPOSIT, None), (WITHDRAW, None), (TRANSFER, Some("bob"))] {
        assert_eq!(
            raw.request_bytes(&money_request(kind, &client::new_txid(), 100, to)),
            refused(ErrorCode::NotAuthenticated)
        );
    }
    assert_eq!(raw.request_bytes(&[BALANCE]), refused(ErrorCode::NotAuthenticated));
    assert_eq!(server.bank_balance("alice"), 10_000);
}

// ---- malformed requests close the connection ----

/// Sends `plaintext` in a valid record on a logged-in raw session and expects the server to
/// close the connection without answering; the account must be unchanged.
fn assert_malformed_request_closes(plaintext: &[u8]) {
    let server = alice_and_bob();
    let mut raw = server.raw_login("alice", ALICE_PW);
    raw.send_plaintext(plaintext);
    assert_closed(&mut raw.stream);
    assert_eq!(server.bank_balance("alice"), 10_000, "request {plaintext:02x?}");
    assert_eq!(server.bank_balance("bob"), 5_000, "request {plaintext:02x?}");
    // The server itself is fine.
    assert_eq!(server.login("alice", ALICE_PW).balance().unwrap(), 10_000);
}

#[test]
fn an_unknown_request_type_closes_the_connection() {
    assert_malformed_request_closes(&[0x7f]);
    // A response type sent as a request is just as unknown.
    assert_malformed_request_closes(&[0x85]);
}

#[test]
fn a_request_with_trailing_bytes_closes_the_connection_without_applying_it() {
    let mut bytes = money_request(DEPOSIT, &client::new_txid(), 100, None);
    bytes.push(0);
    assert_malformed_request_closes(&bytes);
    let mut bytes = money_request(TRANSFER, &client::new_txid(), 100, Some("bob"));
    bytes.extend_from_slice(b"xx");
    assert_malformed_request_closes(&bytes);
    assert_malformed_request_closes(&[BALANCE, 0]);
}

#[test]
fn a_truncated_or_over_long_request_closes_the_connection() {
    let whole = money_request(WITHDRAW, &client::new_txid(), 100, None);
    assert_malformed_request_closes(&whole[..whole.len() - 1]);
    assert_malformed_request_closes(&whole[..5]);
    let too_long = "b".repeat(securebank::limits::MAX_USERNAME_BYTES + 1);
    assert_malformed_request_closes(&money_request(TRANSFER, &client::new_txid(), 100, Some(&too_long)));
    // A length prefix that claims more bytes than there are.
    let mut lying = money_request(TRANSFER, &client::new_txid(), 100, Some("bob"));
    let at = lying.len() - 5;
    lying[at..at + 2].copy_from_slice(&10u16.to_be_bytes());
    assert_malformed_request_closes(&lying);
}

// ---- refusals change nothing ----

#[test]
fn a_transfer_to_self_to_an_unknown_account_or_over_the_balance_leaves_both_balances_unchanged() {
    let server = alice_and_bob();
    let mut alice = server.login("alice", ALICE_PW);
    let history_alice = history_of(&server, "alice");
    let history_bob = history_of(&server, "bob");
    let attempts: [(&str, u64, ErrorCode); 3] = [
        ("alice", 100, ErrorCode::CannotTransferToSelf),
        ("nobody", 100, ErrorCode::UnknownRecipient),
        ("bob", 10_001, ErrorCode::InsufficientFunds),
    ];
    for (to, amount, code) in attempts {
        let result = alice.transfer(client::new_txid(), amount, to);
        assert!(is_refused(&result, code), "to {to} amount {amount}: {result:?}");
        assert_eq!(alice.balance().unwrap(), 10_000);
        assert_eq!(server.bank_balance("bob"), 5_000);
    }
    assert_eq!(history_of(&server, "alice"), history_alice);
    assert_eq!(history_of(&server, "bob"), history_bob);
    let (totals, sum) = server.shared.bank.totals();
    assert_eq!(sum, 15_000);
    assert_eq!(totals.deposited_cents - totals.withdrawn_cents, sum);
}

// ---- concurrency ----

#[test]
fn thirty_two_concurrent_withdrawals_never_overdraw_and_leave_an_exact_balance() {
    const THREADS: usize = 32;
    let server = start_server();
    server.add_account("alice", ALICE_PW, 1_000);
    // Log in one after another (the codes of one user share an outbox file).
    let clients: Vec<Client> = (0..THREADS).map(|_| server.login("alice", ALICE_PW)).collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let (tx, rx) = mpsc::channel();
    for mut client in clients {
        let barrier = Arc::clone(&barrier);
        let tx = tx.clone();
        std::thread::spawn(move || {
            barrier.wait();
            let _ = tx.send(client.withdraw(client::new_txid(), 50));
        });
    }
    drop(tx);
    let results = collect(&rx, THREADS, Duration::from_secs(120), "withdrawals");
    let mut balances_after = Vec::new();
    let mut insufficient = 0;
    for result in results {
        match result {
            Ok(balance) => balances_after.push(balance),
            Err(ClientError::Refused(ErrorCode::InsufficientFunds)) => insufficient += 1,
            Err(other) => panic!("unexpected outcome: {other}"),
        }
    }
    assert_eq!(balances_after.len(), 20);
    assert_eq!(insufficient, 12);
    // Each success saw the one before it: the balances after are 950, 900, ..., 0, once each.
    balances_after.sort_unstable();
    assert_eq!(balances_after, (0..20).map(|i| i * 50).collect::<Vec<u64>>());
    assert_eq!(server.bank_balance("alice"), 0);
    assert_eq!(server.login("alice", ALICE_PW).balance().unwrap(), 0);
}

#[test]
fn concurrent_transfers_in_both_directions_never_deadlock_and_conserve_the_total() {
    const THREADS_EACH_WAY: usize = 8;
    const TRANSFERS_EACH: u64 = 25;
    let server = start_server();
    server.add_account("alice", ALICE_PW, 100_000);
    server.add_account("bob", BOB_PW, 100_000);
    let mut workers = Vec::new();
    for _ in 0..THREADS_EACH_WAY {
        workers.push((server.login("alice", ALICE_PW), "bob"));
        workers.push((server.login("bob", BOB_PW), "alice"));
    }
    let barrier = Arc::new(Barrier::new(workers.len()));
    let (tx, rx) = mpsc::channel();
    for (index, (mut client, to)) in workers.into_iter().enumerate() {
        let barrier = Arc::clone(&barrier);
        let tx = tx.clone();
        std::thread::spawn(move || {
            barrier.wait();
            let mut sent = 0u64;
            for i in 0..TRANSFERS_EACH {
                let amount = 1 + (index as u64 * 7 + i * 13) % 100;
                match client.transfer(client::new_txid(), amount, to) {
                    Ok(_) => sent += amount,
                    Err(err) => {
                        let _ = tx.send(Err(format!("transfer to {to} failed: {err}")));
                        return;
                    }
                }
            }
            let _ = tx.send(Ok((to, sent)));
        });
    }
    drop(tx);
    let results = collect(
        &rx,
        2 * THREADS_EACH_WAY,
        Duration::from_secs(120),
        "transfers (deadlock?)",
    );
    let (mut alice_to_bob, mut bob_to_alice) = (0, 0);
    for result in results {
        match result.unwrap() {
            ("bob", sent) => alice_to_bob += sent,
            (_, sent) => bob_to_alice += sent,
        }
    }
    let alice = server.bank_balance("alice");
    let bob = server.bank_balance("bob");
    assert_eq!(alice + bob, 200_000);
    assert_eq!(alice, 100_000 - alice_to_bob + bob_to_alice);
    assert_eq!(bob, 100_000 - bob_to_alice + alice_to_bob);
    assert_eq!(
        history_of(&server, "alice").len(),
        MAX_HISTORY_ENTRIES.min(1 + 2 * THREADS_EACH_WAY * TRANSFERS_EACH as usize)
    );
}

// ---- idempotent transaction ids ----

#[test]
fn a_repeated_transaction_id_on_the_same_connection_applies_once() {
    let server = alice_and_bob();
    let mut alice = server.login("alice", ALICE_PW);
    let deposit = client::new_txid();
    assert_eq!(alice.deposit(deposit, 250).unwrap(), 10_250);
    assert_eq!(alice.deposit(deposit, 250).unwrap(), 10_250);
    let withdrawal = client::new_txid();
    assert_eq!(alice.withdraw(withdrawal, 1_000).unwrap(), 9_250);
    assert_eq!(alice.withdraw(withdrawal, 1_000).unwrap(), 9_250);
    let transfer = client::new_txid();
    assert_eq!(alice.transfer(transfer, 2_000, "bob").unwrap(), 7_250);
    assert_eq!(alice.transfer(transfer, 2_000, "bob").unwrap(), 7_250);
    assert_eq!(alice.balance().unwrap(), 7_250);
    assert_eq!(server.bank_balance("bob"), 7_000);
    // One history entry per transaction, not per request.
    assert_eq!(history_of(&server, "alice").len(), 4);
    assert_eq!(history_of(&server, "bob").len(), 2);
}

#[test]
fn a_repeated_transaction_id_on_a_new_connection_applies_once() {
    let server = alice_and_bob();
    let txid = client::new_txid();
    let first = server.login("alice", ALICE_PW).transfer(txid, 1_500, "bob").unwrap();
    assert_eq!(first, 8_500);
    // Something else happens in between: the repeat still answers the original balance.
    let mut again = server.login("alice", ALICE_PW);
    assert_eq!(again.deposit(client::new_txid(), 100).unwrap(), 8_600);
    assert_eq!(again.transfer(txid, 1_500, "bob").unwrap(), first);
    assert_eq!(again.balance().unwrap(), 8_600);
    assert_eq!(server.bank_balance("bob"), 6_500);
}

#[test]
fn a_repeated_transaction_id_after_a_restart_of_the_real_binary_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    add_account_with_binary(&data, "alice", ALICE_PW, "100.00");
    add_account_with_binary(&data, "bob", BOB_PW, "50.00");
    let deposit = client::new_txid();
    let transfer = client::new_txid();
    let refused_withdrawal = client::new_txid();

    let mut server = spawn_server_process(&data, &outbox, &[]);
    let mut alice = server.login(&outbox, "alice", ALICE_PW);
    let after_deposit = alice.deposit(deposit, 250).unwrap();
    assert_eq!(after_deposit, 10_250);
    let after_transfer = alice.transfer(transfer, 1_000, "bob").unwrap();
    assert_eq!(after_transfer, 9_250);
    let result = alice.withdraw(refused_withdrawal, 1_000_000);
    assert!(is_refused(&result, ErrorCode::InsufficientFunds), "{result:?}");
    server.kill();

    let server = spawn_server_process(&data, &outbox, &[]);
    let mut alice = server.login(&outbox, "alice", ALICE_PW);
    assert_eq!(alice.deposit(deposit, 250).unwrap(), after_deposit);
    assert_eq!(alice.transfer(transfer, 1_000, "bob").unwrap(), after_transfer);
    let result = alice.withdraw(refused_withdrawal, 1_000_000);
    assert!(is_refused(&result, ErrorCode::InsufficientFunds), "{result:?}");
    assert_eq!(alice.balance().unwrap(), 9_250);
    assert_eq!(server.login(&outbox, "bob", BOB_PW).balance().unwrap(), 6_000);
    // A different request under the old id is still refused after the restart.
    let result = alice.deposit(deposit, 251);
    assert!(is_refused(&result, ErrorCode::TransactionIdReused), "{result:?}");
}

/// An id created `ago_secs` seconds before now (negative: in the future), by the wall clock.
fn txid_created_secs_ago(ago_secs: i64) -> TxId {
    let now_ms = i64::try_from(now_unix_secs() * 1_000).unwrap();
    txid_at(u64::try_from(now_ms - ago_secs * 1_000).unwrap())
}

#[test]
fn a_transaction_id_older_than_the_retention_window_is_refused_with_transaction_id_expired() {
    let server = alice_and_bob();
    let mut raw = server.raw_login("alice", ALICE_PW);
    let history = history_of(&server, "alice");
    let old = txid_created_secs_ago(i64::try_from(DEFAULT_TXID_RETENTION_SECS).unwrap() + 60);
    for (kind, to) in [(DEPOSIT, None), (WITHDRAW, None), (TRANSFER, Some("bob"))] {
        assert_eq!(
            raw.request_bytes(&money_request(kind, &old, 100, to)),
            refused(ErrorCode::TransactionIdExpired),
            "type 0x{kind:02x}"
        );
    }
    // Nothing changed and nothing was recorded: the retry is refused the same way.
    assert_eq!(
        raw.request_bytes(&money_request(DEPOSIT, &old, 100, None)),
        refused(ErrorCode::TransactionIdExpired)
    );
    assert_eq!(server.bank_balance("alice"), 10_000);
    assert_eq!(server.bank_balance("bob"), 5_000);
    assert_eq!(history_of(&server, "alice"), history);
    assert_eq!(server.shared.bank.totals().1, 15_000);
}

#[test]
fn a_transaction_id_from_beyond_the_clock_skew_is_refused_with_transaction_id_in_future() {
    let server = alice_and_bob();
    let mut raw = server.raw_login("alice", ALICE_PW);
    let ahead = txid_created_secs_ago(-(i64::try_from(MAX_TXID_CLOCK_SKEW_SECS).unwrap() + 60));
    for (kind, to) in [(DEPOSIT, None), (WITHDRAW, None), (TRANSFER, Some("bob"))] {
        assert_eq!(
            raw.request_bytes(&money_request(kind, &ahead, 100, to)),
            refused(ErrorCode::TransactionIdInFuture),
            "type 0x{kind:02x}"
        );
    }
    assert_eq!(server.bank_balance("alice"), 10_000);
    assert_eq!(server.bank_balance("bob"), 5_000);
    // A client clock a little ahead (within the skew) is fine.
    let slightly_ahead = txid_created_secs_ago(-60);
    assert_eq!(
        raw.request_bytes(&money_request(DEPOSIT, &slightly_ahead, 100, None)),
        Response::TxApplied {
            txid: slightly_ahead,
            balance_cents: 10_100
        }
    );
}

#[test]
fn a_day_old_transaction_id_inside_the_window_is_answered_as_a_repeat_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    add_account_with_binary(&data, "alice", ALICE_PW, "100.00");
    add_account_with_binary(&data, "bob", BOB_PW, "50.00");
    // Created almost a full window ago: a client retrying late, but in time.
    let retention = i64::try_from(DEFAULT_TXID_RETENTION_SECS).unwrap();
    let late = txid_created_secs_ago(retention - 600);
    let refused_late = txid_created_secs_ago(retention - 600);

    let mut server = spawn_server_process(&data, &outbox, &[]);
    let mut alice = server.login(&outbox, "alice", ALICE_PW);
    assert_eq!(alice.transfer(late, 700, "bob").unwrap(), 9_300);
    let result = alice.withdraw(refused_late, 1_000_000);
    assert!(is_refused(&result, ErrorCode::InsufficientFunds), "{result:?}");
    server.kill();

    let server = spawn_server_process(&data, &outbox, &[]);
    let mut alice = server.login(&outbox, "alice", ALICE_PW);
    assert_eq!(alice.transfer(late, 700, "bob").unwrap(), 9_300);
    let result = alice.withdraw(refused_late, 1_000_000);
    assert!(is_refused(&result, ErrorCode::InsufficientFunds), "{result:?}");
    let result = alice.transfer(late, 701, "bob");
    assert!(is_refused(&result, ErrorCode::TransactionIdReused), "{result:?}");
    assert_eq!(alice.balance().unwrap(), 9_300);
    assert_eq!(server.login(&outbox, "bob", BOB_PW).balance().unwrap(), 5_700);
}

#[test]
fn the_same_transaction_id_with_a_different_amount_is_refused_with_transaction_id_reused() {
    let server = alice_and_bob();
    let mut alice = server.login("alice", ALICE_PW);
    let txid = client::new_txid();
    assert_eq!(alice.withdraw(txid, 400).unwrap(), 9_600);
    let result = alice.withdraw(txid, 401);
    assert!(is_refused(&result, ErrorCode::TransactionIdReused), "{result:?}");
    // Also from a new connection.
    let result = server.login("alice", ALICE_PW).withdraw(txid, 399);
    assert!(is_refused(&result, ErrorCode::TransactionIdReused), "{result:?}");
    assert_eq!(alice.balance().unwrap(), 9_600);
}

#[test]
fn a_refused_transaction_stays_refused_on_retry_even_after_a_deposit_made_it_affordable() {
    let server = alice_and_bob();
    let mut alice = server.login("alice", ALICE_PW);
    let txid = client::new_txid();
    let result = alice.withdraw(txid, 15_000);
    assert!(is_refused(&result, ErrorCode::InsufficientFunds), "{result:?}");
    assert_eq!(alice.deposit(client::new_txid(), 10_000).unwrap(), 20_000);
    let retry = alice.withdraw(txid, 15_000);
    assert!(is_refused(&retry, ErrorCode::InsufficientFunds), "{retry:?}");
    assert_eq!(alice.balance().unwrap(), 20_000);
    // The same for a transfer to an account that did not exist yet.
    let transfer = client::new_txid();
    let result = alice.transfer(transfer, 100, "carol");
    assert!(is_refused(&result, ErrorCode::UnknownRecipient), "{result:?}");
    server.add_account("carol", "carol-password", 0);
    let retry = alice.transfer(transfer, 100, "carol");
    assert!(is_refused(&retry, ErrorCode::UnknownRecipient), "{retry:?}");
    assert_eq!(server.bank_balance("carol"), 0);
    // A fresh id is what makes it happen.
    assert_eq!(alice.withdraw(client::new_txid(), 15_000).unwrap(), 5_000);
}

#[test]
fn transaction_ids_are_per_user() {
    let server = alice_and_bob();
    let txid = client::new_txid();
    let mut alice = server.login("alice", ALICE_PW);
    assert_eq!(alice.deposit(txid, 100).unwrap(), 10_100);
    let mut bob = server.login("bob", BOB_PW);
    // Not a repeat of alice's deposit (which would answer 10_100), and not a reuse.
    assert_eq!(bob.deposit(txid, 100).unwrap(), 5_100);
    let other = client::new_txid();
    assert_eq!(bob.withdraw(other, 50).unwrap(), 5_050);
    assert_eq!(alice.transfer(other, 300, "bob").unwrap(), 9_800);
    assert_eq!(server.bank_balance("bob"), 5_350);
}

// ---- history ----

fn entry(
    kind: EntryKind,
    amount_cents: u64,
    counterparty: &str,
    balance_after_cents: u64,
) -> (EntryKind, u64, String, u64) {
    (kind, amount_cents, counterparty.to_string(), balance_after_cents)
}

fn without_times(history: &[HistoryEntry]) -> Vec<(EntryKind, u64, String, u64)> {
    history
        .iter()
        .map(|e| entry(e.kind, e.amount_cents, &e.counterparty, e.balance_after_cents))
        .collect()
}

#[test]
fn history_shows_each_entry_in_order_with_kind_amount_counterparty_and_balance_after() {
    let started = now_unix_secs();
    let server = alice_and_bob();
    server.add_account("carol", "carol-password", 0);
    let mut alice = server.login("alice", ALICE_PW);
    let mut bob = server.login("bob", BOB_PW);
    alice.deposit(client::new_txid(), 2_500).unwrap();
    alice.withdraw(client::new_txid(), 1_000).unwrap();
    alice.transfer(client::new_txid(), 3_000, "bob").unwrap();
    let refused = alice.withdraw(client::new_txid(), 1_000_000);
    assert!(is_refused(&refused, ErrorCode::InsufficientFunds));
    let refused = alice.transfer(client::new_txid(), 1, "nobody");
    assert!(is_refused(&refused, ErrorCode::UnknownRecipient));
    bob.transfer(client::new_txid(), 500, "alice").unwrap();

    let history = alice.history().unwrap();
    assert_eq!(
        without_times(&history),
        vec![
            entry(EntryKind::Opening, 10_000, "", 10_000),
            entry(EntryKind::Deposit, 2_500, "", 12_500),
            entry(EntryKind::Withdrawal, 1_000, "", 11_500),
            entry(EntryKind::TransferOut, 3_000, "bob", 8_500),
            entry(EntryKind::TransferIn, 500, "bob", 9_000),
        ]
    );
    let ended = now_unix_secs();
    assert!(history.windows(2).all(|w| w[0].at_unix_secs <= w[1].at_unix_secs));
    assert!(history.iter().all(|e| (started..=ended).contains(&e.at_unix_secs)));
    assert_eq!(
        without_times(&bob.history().unwrap()),
        vec![
            entry(EntryKind::Opening, 5_000, "", 5_000),
            entry(EntryKind::TransferIn, 3_000, "alice", 8_000),
            entry(EntryKind::TransferOut, 500, "alice", 7_500),
        ]
    );
    // An account opened with nothing has no entries; refusals never appear.
    let mut carol = server.login("carol", "carol-password");
    assert_eq!(carol.history().unwrap(), Vec::new());
    let refused = carol.withdraw(client::new_txid(), 1);
    assert!(is_refused(&refused, ErrorCode::InsufficientFunds));
    assert_eq!(carol.history().unwrap(), Vec::new());
}

#[test]
fn history_is_bounded_by_max_history_entries_and_keeps_the_most_recent() {
    let extra = 10;
    let deposits = MAX_HISTORY_ENTRIES + extra;
    let server = start_server();
    server.add_account("alice", ALICE_PW, 1_000);
    let mut alice = server.login("alice", ALICE_PW);
    let mut balance = 1_000;
    let mut expected = vec![entry(EntryKind::Opening, 1_000, "", 1_000)];
    for amount in 1..=deposits as u64 {
        balance += amount;
        assert_eq!(alice.deposit(client::new_txid(), amount).unwrap(), balance);
        expected.push(entry(EntryKind::Deposit, amount, "", balance));
    }
    let history = alice.history().unwrap();
    assert_eq!(history.len(), MAX_HISTORY_ENTRIES);
    assert_eq!(
        without_times(&history),
        expected[expected.len() - MAX_HISTORY_ENTRIES..]
    );
    assert_eq!(alice.balance().unwrap(), balance);
}

// ---- restart (real binary) ----

#[test]
fn a_restart_restores_balances_history_and_lockouts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    add_account_with_binary(&data, "alice", ALICE_PW, "100.00");
    add_account_with_binary(&data, "bob", BOB_PW, "50.00");
    add_account_with_binary(&data, "carol", "carol-password", "10.00");
    add_account_with_binary(&data, "dave", "dave-password", "1.00");

    let mut server = spawn_server_process(&data, &outbox, &[]);
    let mut alice = server.login(&outbox, "alice", ALICE_PW);
    alice.deposit(client::new_txid(), 2_500).unwrap();
    alice.withdraw(client::new_txid(), 700).unwrap();
    alice.transfer(client::new_txid(), 1_300, "bob").unwrap();
    let refused = alice.withdraw(client::new_txid(), 100_000_000);
    assert!(is_refused(&refused, ErrorCode::InsufficientFunds));
    let alice_balance = alice.balance().unwrap();
    assert_eq!(alice_balance, 10_500);
    let alice_history = alice.history().unwrap();
    let mut bob = server.login(&outbox, "bob", BOB_PW);
    bob.transfer(client::new_txid(), 200, "carol").unwrap();
    let bob_balance = bob.balance().unwrap();
    let bob_history = bob.history().unwrap();

    // carol: the threshold of wrong passwords locks her; dave: one short of it.
    let mut guesser = server.connect();
    for attempt in 1..=LOCKOUT_THRESHOLD {
        let result = guesser.login("carol", "wrong-password");
        let expected = if attempt == LOCKOUT_THRESHOLD {
            ErrorCode::AccountLocked
        } else {
            ErrorCode::InvalidCredentials
        };
        assert!(is_refused(&result, expected), "attempt {attempt}: {result:?}");
    }
    for _ in 1..LOCKOUT_THRESHOLD {
        let result = guesser.login("dave", "wrong-password");
        assert!(is_refused(&result, ErrorCode::InvalidCredentials), "{result:?}");
    }
    let result = server.connect().login("carol", "carol-password");
    assert!(is_refused(&result, ErrorCode::AccountLocked), "{result:?}");
    server.kill();

    let server = spawn_server_process(&data, &outbox, &[]);
    let mut alice = server.login(&outbox, "alice", ALICE_PW);
    assert_eq!(alice.balance().unwrap(), alice_balance);
    assert_eq!(alice.history().unwrap(), alice_history);
    let mut bob = server.login(&outbox, "bob", BOB_PW);
    assert_eq!(bob.balance().unwrap(), bob_balance);
    assert_eq!(bob.history().unwrap(), bob_history);
    // Still locked, even with the right password.
    let result = server.connect().login("carol", "carol-password");
    assert!(is_refused(&result, ErrorCode::AccountLocked), "{result:?}");
    // dave's failure count survived too: one more failure locks him.
    let mut guesser = server.connect();
    let result = guesser.login("dave", "wrong-password");
    assert!(is_refused(&result, ErrorCode::AccountLocked), "{result:?}");
    let result = server.connect().login("dave", "dave-password");
    assert!(is_refused(&result, ErrorCode::AccountLocked), "{result:?}");
}

// ---- pipelined requests: replies that wait for the disk keep their order ----

/// A client may send many requests before reading any reply. Replies that wait for their
/// journal record go out from the commit thread, the others from the connection thread, so
/// this checks that they still reach the wire in sequence order (a reply out of order would
/// fail to open) and that each says what it should, in request order.
#[test]
fn pipelined_requests_are_answered_in_order_whoever_sends_each_reply() {
    use std::io::Write;
    const ROUNDS: u64 = 20;
    let server = alice_and_bob();
    let mut raw = server.raw_login("alice", ALICE_PW);
    let mut burst = Vec::new();
    let mut expected = Vec::new();
    let mut balance = 10_000;
    for round in 0..ROUNDS {
        let (deposit, to_self, withdrawal, transfer) = (
            client::new_txid(),
            client::new_txid(),
            client::new_txid(),
            client::new_txid(),
        );
        let echo = round.to_be_bytes().to_vec();
        let requests = [
            // Waits for its record: sent by the commit thread.
            money_request(DEPOSIT, &deposit, 3, None),
            // Shows that record: waits for it too, behind the deposit's reply.
            vec![BALANCE],
            // Nothing to wait for: sent by the connection thread, after the balance.
            Request::Echo(echo.clone()).encode(),
            // Refused before anything is recorded: sent directly too.
            money_request(TRANSFER, &to_self, 1, Some("alice")),
            money_request(WITHDRAW, &withdrawal, 1, None),
            money_request(TRANSFER, &transfer, 1, Some("bob")),
            // A repeat of a durable transaction: its first outcome, sent directly.
            money_request(DEPOSIT, &deposit, 3, None),
        ];
        for plaintext in requests {
            burst.extend_from_slice(&raw.seal(&plaintext));
        }
        let after_deposit = balance + 3;
        balance = after_deposit - 2;
        expected.extend([
            Response::TxApplied {
                txid: deposit,
                balance_cents: after_deposit,
            },
            Response::Balance(after_deposit),
            Response::Echo(echo),
            refused(ErrorCode::CannotTransferToSelf),
            Response::TxApplied {
                txid: withdrawal,
                balance_cents: after_deposit - 1,
            },
            Response::TxApplied {
                txid: transfer,
                balance_cents: balance,
            },
            Response::TxApplied {
                txid: deposit,
                balance_cents: after_deposit,
            },
        ]);
    }
    raw.stream.write_all(&burst).unwrap();
    for (index, want) in expected.iter().enumerate() {
        let bytes = raw
            .read_response()
            .unwrap_or_else(|err| panic!("reply {index} did not open (out of order?): {err}"));
        assert_eq!(&Response::decode(&bytes).unwrap(), want, "reply {index}");
    }
    assert_eq!(server.bank_balance("alice"), balance);
    assert_eq!(server.bank_balance("bob"), 5_000 + ROUNDS);
}
