//! Durability: torn last batches, damaged journals, the data-directory lock, `verify`, and
//! the crash test (the real binary killed with SIGKILL mid-traffic, again and again, with
//! checkpoints and segment switches happening all the time in some rounds).
mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    SplitMix64, TEST_ITERATIONS, add_account_with_binary, read_otp_from, run_server_expecting_exit, run_verify,
    spawn_server_process, test_identity,
};
use securebank::client::{self, Client};
use securebank::error::{ErrorCode, JournalError};
use securebank::limits::LOCKOUT_THRESHOLD;
use securebank::message::{HistoryEntry, Request, Response, TxId, hex};
use securebank::money::format_cents;
use securebank::server::admin;
use securebank::server::bank::{Bank, now_unix_secs};
use securebank::server::events::{Event, TxKind};
use securebank::server::journal::{self, BATCH_HEADER_BYTES, Position, SECTOR_BYTES};
use securebank::server::ledger::{Totals, TxRequest};
use securebank::server::storage::{DirStorage, Storage};
use securebank::trace::Tracer;

const NAMES: [&str; 3] = ["alice", "bob", "carol"];
/// Zeros after the data, as the server's preallocation leaves them (a small stand-in).
const PREALLOCATED_ZEROS: usize = 64 * 1024;

// ---- helpers: building a journal with the library, and comparing states ----

#[derive(Debug, PartialEq)]
struct AccountState {
    name: &'static str,
    balance: u64,
    history: Vec<HistoryEntry>,
    locked: bool,
}

/// Everything a client or `verify` can observe of a bank.
#[derive(Debug, PartialEq)]
struct State {
    accounts: Vec<AccountState>,
    account_count: usize,
    totals: Totals,
    sum_of_balances: u128,
}

fn state_of(bank: &Bank) -> State {
    let now = now_unix_secs();
    let accounts = NAMES
        .iter()
        .map(|&name| AccountState {
            name,
            balance: bank.balance(name).unwrap().unwrap(),
            history: bank.history(name).unwrap().unwrap(),
            locked: bank.is_locked(name, now),
        })
        .collect();
    let (totals, sum_of_balances) = bank.totals();
    State {
        accounts,
        account_count: bank.account_count(),
        totals,
        sum_of_balances,
    }
}

/// Where one batch sits in a segment file.
#[derive(Debug, Clone, Copy)]
struct Batch {
    offset: u64,
    len: u64,
}

impl Batch {
    fn end(self) -> u64 {
        self.offset + self.len
    }
}

fn segment_path(data: &Path) -> PathBuf {
    data.join(journal::segment_name(1))
}

/// The batches of a well-formed segment, read from their headers.
fn batches_of(bytes: &[u8]) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut at = SECTOR_BYTES as usize;
    while at + BATCH_HEADER_BYTES <= bytes.len() && bytes[at..at + 4] == journal::BATCH_MAGIC {
        let body_len = u32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let len = (BATCH_HEADER_BYTES + body_len).next_multiple_of(SECTOR_BYTES as usize);
        batches.push(Batch {
            offset: at as u64,
            len: len as u64,
        });
        at += len;
    }
    batches
}

/// The data of segment 1 (without the preallocated zeros) and the position at its end.
fn segment_data(data: &Path) -> (Vec<u8>, Position) {
    let storage = DirStorage::new(data);
    let file = storage.open(&journal::segment_name(1)).unwrap();
    let scan = journal::scan_segment(file.as_ref(), "segment", Position::genesis(), true, |_, _| Ok(())).unwrap();
    let mut bytes = vec![0u8; scan.end_offset as usize];
    file.read_full_at(&mut bytes, 0).unwrap();
    (bytes, scan.end)
}

/// A fresh data directory whose only segment holds exactly `bytes`.
fn data_dir_with_segment(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(segment_path(&data), bytes).unwrap();
    (dir, data)
}

fn with_zeros_after(bytes: &[u8]) -> Vec<u8> {
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len() + PREALLOCATED_ZEROS, 0);
    padded
}

fn transact(bank: &Bank, user: &str, txid: TxId, kind: TxKind, amount_cents: u64, to: &str) -> Result<u64, ErrorCode> {
    let request = TxRequest {
        user,
        txid,
        kind,
        amount_cents,
        counterparty: to,
    };
    bank.transact(request, now_unix_secs()).unwrap()
}

fn transfer_event(user: &str, to: &str, amount_cents: u64) -> Event {
    Event::Transaction {
        at: now_unix_secs(),
        user: user.into(),
        txid: client::new_txid(),
        kind: TxKind::Transfer,
        amount_cents,
        counterparty: to.into(),
        refused: None,
    }
}

/// A journal made through the library, with every kind of event, one batch per operation.
struct Built {
    /// The live bank (its commit thread keeps the directory locked until the test ends).
    bank: Bank,
    _dir: tempfile::TempDir,
    /// Segment 1's data, up to the end of the last batch.
    bytes: Vec<u8>,
    batches: Vec<Batch>,
    end: Position,
    /// The state after the last batch.
    state: State,
}

fn build() -> Built {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (bank, _) = Bank::open(&data).unwrap();
    admin::add_account(&bank, "alice", "alice-password", 100_000, TEST_ITERATIONS).unwrap();
    admin::add_account(&bank, "bob", "bob-password", 50_000, TEST_ITERATIONS).unwrap();
    admin::add_account(&bank, "carol", "carol-password", 0, TEST_ITERATIONS).unwrap();
    let now = now_unix_secs();
    bank.login_succeeded("alice", now).unwrap().unwrap();
    transact(&bank, "alice", client::new_txid(), TxKind::Deposit, 2_500, "").unwrap();
    transact(&bank, "alice", client::new_txid(), TxKind::Withdrawal, 1_000, "").unwrap();
    transact(&bank, "bob", client::new_txid(), TxKind::Transfer, 700, "alice").unwrap();
    let refused = transact(&bank, "carol", client::new_txid(), TxKind::Withdrawal, 1, "");
    assert_eq!(refused, Err(ErrorCode::InsufficientFunds));
    bank.login_failed("bob", now).unwrap();
    for _ in 0..LOCKOUT_THRESHOLD {
        bank.login_failed("carol", now).unwrap();
    }
    transact(&bank, "alice", client::new_txid(), TxKind::Transfer, 1_234, "bob").unwrap();
    let (bytes, end) = segment_data(&data);
    let state = state_of(&bank);
    Built {
        bank,
        _dir: dir,
        batches: batches_of(&bytes),
        bytes,
        end,
        state,
    }
}

/// `built`'s segment plus one more batch of twelve transfers (several sectors long), and
/// that batch's place.
fn with_a_long_last_batch(built: &Built) -> (Vec<u8>, Batch) {
    let mut body = Vec::new();
    let mut chain = built.end.chain;
    let events: Vec<Event> = (1..=12).map(|n| transfer_event("alice", "bob", n)).collect();
    for event in &events {
        chain = journal::encode_record(&chain, &event.encode(), &mut body);
    }
    let mut bytes = built.bytes.clone();
    let offset = bytes.len() as u64;
    journal::encode_batch(built.end.lsn + 1, 12, &body, &mut bytes);
    let batch = Batch {
        offset,
        len: bytes.len() as u64 - offset,
    };
    (bytes, batch)
}

// ---- torn last batches ----

#[test]
fn every_sector_pattern_of_a_torn_last_batch_recovers_exactly_the_state_before_it() {
    let built = build();
    let (full, last) = with_a_long_last_batch(&built);
    let sectors = last.len / SECTOR_BYTES;
    assert!(sectors >= 2, "the batch spans several sectors");
    for pattern in 0..(1u64 << sectors) - 1 {
        let mut torn = with_zeros_after(&full[..last.offset as usize]);
        for sector in 0..sectors {
            if pattern & (1 << sector) != 0 {
                let at = (last.offset + sector * SECTOR_BYTES) as usize;
                torn[at..at + SECTOR_BYTES as usize].copy_from_slice(&full[at..at + SECTOR_BYTES as usize]);
            }
        }
        let (_dir, data) = data_dir_with_segment(&torn);
        let (bank, report) = Bank::open(&data).unwrap_or_else(|err| panic!("pattern {pattern:b}: {err}"));
        assert_eq!(report.end_lsn, built.end.lsn, "pattern {pattern:b}");
        let expected_cut = (pattern != 0).then_some(last.offset);
        assert_eq!(report.torn_batch.map(|(_, at)| at), expected_cut, "pattern {pattern:b}");
        assert_eq!(
            state_of(&bank),
            built.state,
            "pattern {pattern:b}: none of the batch applied"
        );
    }
    let (_dir, data) = data_dir_with_segment(&full);
    let (_, report) = Bank::open(&data).unwrap();
    assert_eq!(
        report.end_lsn,
        built.end.lsn + 12,
        "every sector persisted: the whole batch"
    );
}

#[test]
fn a_segment_cut_anywhere_inside_its_last_batch_recovers_the_state_before_it_and_cuts_the_file() {
    let built = build();
    let (full, last) = with_a_long_last_batch(&built);
    for cut in (last.offset + 1..last.end()).step_by(61) {
        let (_dir, data) = data_dir_with_segment(&full[..cut as usize]);
        let (bank, report) = Bank::open(&data).unwrap_or_else(|err| panic!("cut at {cut}: {err}"));
        assert_eq!(report.torn_batch.map(|(_, at)| at), Some(last.offset), "cut at {cut}");
        assert_eq!(
            fs::metadata(segment_path(&data)).unwrap().len(),
            last.offset,
            "cut at {cut}: the torn batch is cut off the file at open"
        );
        assert_eq!(state_of(&bank), built.state, "cut at {cut}");
    }
}

#[test]
fn after_recovery_the_torn_transaction_id_is_free_and_new_batches_follow_the_cut() {
    let built = build();
    let (full, last) = with_a_long_last_batch(&built);
    let mut torn = with_zeros_after(&full[..last.end() as usize]);
    torn[(last.offset + SECTOR_BYTES) as usize..].fill(0);
    let (_dir, data) = data_dir_with_segment(&torn);
    let (bank, _) = Bank::open(&data).unwrap();
    let Event::Transaction { txid, .. } = transfer_event("alice", "bob", 1) else {
        unreachable!()
    };
    let alice_before = bank.balance("alice").unwrap().unwrap();
    assert_eq!(
        transact(&bank, "alice", txid, TxKind::Transfer, 99, "bob"),
        Ok(alice_before - 99)
    );
    let state = state_of(&bank);
    let (bytes, end) = segment_data(&data);
    assert_eq!(end.lsn, built.end.lsn + 1);
    assert_eq!(
        batches_of(&bytes).last().unwrap().offset,
        last.offset,
        "the new batch starts at the cut"
    );
    let (_again, again) = data_dir_with_segment(&bytes);
    let (reopened, report) = Bank::open(&again).unwrap();
    assert_eq!(report.torn_batch, None);
    assert_eq!(state_of(&reopened), state);
}

// ---- damage ----

fn assert_damage_at(bytes: &[u8], offset: u64, what: &str) {
    let (_dir, data) = data_dir_with_segment(bytes);
    match Bank::open(&data) {
        Err(JournalError::Corrupt {
            offset: found, file, ..
        }) => {
            assert_eq!(found, offset, "{what}");
            assert!(file.ends_with(&journal::segment_name(1)), "{what}: {file}");
        }
        Err(other) => panic!("{what}: expected damage, got {other}"),
        Ok((_, report)) => panic!("{what}: opened anyway ({report:?})"),
    }
}

#[test]
fn a_flipped_bit_anywhere_in_an_earlier_batch_refuses_to_open_naming_that_batch() {
    let built = build();
    let damaged = built.batches[built.batches.len() / 2];
    for at in (damaged.offset..damaged.end()).step_by(7) {
        for padded in [false, true] {
            let mut bytes = built.bytes.clone();
            bytes[at as usize] ^= 0x40;
            if padded {
                bytes = with_zeros_after(&bytes);
            }
            assert_damage_at(&bytes, damaged.offset, &format!("byte {at} flipped"));
        }
    }
}

#[test]
fn a_flipped_bit_anywhere_in_the_last_batch_is_damage_not_a_tear() {
    let built = build();
    let (full, last) = with_a_long_last_batch(&built);
    for at in (last.offset..last.end()).step_by(5) {
        let mut bytes = with_zeros_after(&full);
        bytes[at as usize] ^= 0x01;
        assert_damage_at(&bytes, last.offset, &format!("byte {at} flipped"));
    }
}

#[test]
fn a_lost_earlier_batch_refuses_to_open_because_acknowledged_batches_follow() {
    let built = build();
    let damaged = built.batches[1];
    let mut bytes = with_zeros_after(&built.bytes);
    bytes[damaged.offset as usize..damaged.end() as usize].fill(0);
    // Zero where a batch should be, data after it: only damage can do that, however far
    // the following batches are.
    let (_dir, data) = data_dir_with_segment(&bytes);
    assert!(matches!(Bank::open(&data), Err(JournalError::Corrupt { .. })));
}

#[test]
fn the_server_binary_refuses_to_start_on_a_damaged_journal_naming_the_file_and_byte_offset() {
    let built = build();
    let damaged = built.batches[1];
    let mut bytes = built.bytes.clone();
    bytes[(damaged.offset + 100) as usize] ^= 0x01;
    let (dir, data) = data_dir_with_segment(&bytes);
    let output = run_server_expecting_exit(&data, &dir.path().join("outbox"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started on a damaged journal: {stderr}");
    assert!(stderr.contains(&journal::segment_name(1)), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("byte offset {}", damaged.offset)),
        "stderr: {stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening on"));
    assert_eq!(
        fs::read(segment_path(&data)).unwrap(),
        bytes,
        "nothing was cut or rewritten"
    );
}

#[test]
fn verify_reports_a_damaged_journal_and_exits_non_zero() {
    let built = build();
    let damaged = built.batches[2];
    let mut bytes = built.bytes.clone();
    bytes[(damaged.end() - 1) as usize] ^= 0x80;
    let (_dir, data) = data_dir_with_segment(&bytes);
    let output = run_verify(&data);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "verify accepted a damaged journal");
    assert!(stderr.contains("verify FAILED"), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("byte offset {}", damaged.offset)),
        "stderr: {stderr}"
    );
}

#[test]
fn verify_on_a_healthy_journal_prints_records_total_and_head_and_exits_zero() {
    let built = build();
    let (_dir, data) = data_dir_with_segment(&with_zeros_after(&built.bytes));
    let output = run_verify(&data);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, sum) = built.bank.totals();
    let expected = [
        "from:         the first record".to_string(),
        format!("records:      {}", built.end.lsn),
        format!("accounts:     {}", NAMES.len()),
        format!("total:        {}", format_cents(u64::try_from(sum).unwrap())),
        "invariant:    ok".to_string(),
        format!("head:         {}", hex(&built.end.chain)),
    ];
    for line in expected {
        assert!(stdout.contains(&line), "missing {line:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("torn"), "{stdout}");
}

#[test]
fn verify_reports_a_torn_last_batch_without_failing_or_changing_the_file() {
    let built = build();
    let (full, last) = with_a_long_last_batch(&built);
    let mut bytes = with_zeros_after(&full);
    bytes[(last.offset + SECTOR_BYTES) as usize..last.end() as usize].fill(0);
    let (_dir, data) = data_dir_with_segment(&bytes);
    let output = run_verify(&data);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("byte offset {}", last.offset)), "{stdout}");
    assert!(stdout.contains(&format!("records:      {}", built.end.lsn)), "{stdout}");
    assert_eq!(fs::read(segment_path(&data)).unwrap(), bytes, "verify is read-only");
}

// ---- the data-directory lock ----

#[test]
fn a_second_server_on_the_same_data_directory_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    add_account_with_binary(&data, "alice", "alice-password", "10.00");
    let first = spawn_server_process(&data, &outbox, &[]);
    let output = run_server_expecting_exit(&data, &outbox);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a second server started");
    assert!(stderr.contains("already using"), "stderr: {stderr}");
    assert!(stderr.contains("lock"), "stderr: {stderr}");
    // The library refuses too, with its own error.
    assert!(matches!(Bank::open(&data), Err(JournalError::Locked(_))));
    // The first server is unharmed.
    assert_eq!(
        first.login(&outbox, "alice", "alice-password").balance().unwrap(),
        1_000
    );
}

// ---- the crash test ----

const CRASH_ACCOUNTS: [&str; 4] = ["acct-a", "acct-b", "acct-c", "acct-d"];
const CRASH_OPENING_CENTS: [u64; 4] = [5_000, 10_000, 15_000, 20_000];
const CRASH_OPENING_TEXT: [&str; 4] = ["50.00", "100.00", "150.00", "200.00"];
const CRASH_PASSWORD: &str = "crash-password";
const CRASH_ROUNDS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The server answered TxApplied with this balance (acknowledged).
    Applied(u64),
    /// The server answered with this refusal (acknowledged: refusals are recorded too).
    Refused(ErrorCode),
    /// The connection broke before an answer arrived.
    InFlight,
}

#[derive(Debug, Clone)]
struct Sent {
    from: usize,
    to: usize,
    amount_cents: u64,
    txid: TxId,
    outcome: Outcome,
}

impl Sent {
    fn request(&self) -> Request {
        Request::Transfer {
            txid: self.txid,
            amount_cents: self.amount_cents,
            to: CRASH_ACCOUNTS[self.to].to_string(),
        }
    }
}

fn crash_login(addr: std::net::SocketAddr, outbox: &Path, user: &str) -> Result<Client, String> {
    let fingerprint = test_identity().fingerprint().to_string();
    let mut client = client::connect_pinned(addr, &fingerprint, Tracer::off()).map_err(|err| err.to_string())?;
    client.login(user, CRASH_PASSWORD).map_err(|err| err.to_string())?;
    client
        .submit_otp(&read_otp_from(outbox, user))
        .map_err(|err| err.to_string())?;
    Ok(client)
}

/// Transfers from account `from` to random others until the connection breaks; returns
/// every request with what came of it.
fn crash_worker(
    addr: std::net::SocketAddr,
    outbox: &Path,
    from: usize,
    seed: u64,
    ready: &mpsc::Sender<()>,
) -> Result<Vec<Sent>, String> {
    let mut rng = SplitMix64(seed);
    let mut client = crash_login(addr, outbox, CRASH_ACCOUNTS[from])?;
    ready.send(()).map_err(|err| err.to_string())?;
    let mut log = Vec::new();
    loop {
        let mut sent = Sent {
            from,
            to: (from + 1 + rng.below(3) as usize) % CRASH_ACCOUNTS.len(),
            amount_cents: 1 + rng.below(3_000),
            txid: client::new_txid(),
            outcome: Outcome::InFlight,
        };
        sent.outcome = match client.request(&sent.request()) {
            Ok(Response::TxApplied { txid, balance_cents }) if txid == sent.txid => Outcome::Applied(balance_cents),
            Ok(Response::Error(code)) => Outcome::Refused(code),
            Ok(other) => return Err(format!("unexpected response {other:?} to {sent:?}")),
            Err(_) => Outcome::InFlight,
        };
        let broke = sent.outcome == Outcome::InFlight;
        log.push(sent);
        if broke {
            return Ok(log);
        }
    }
}

fn balances(clients: &mut [Client]) -> Vec<u64> {
    clients.iter_mut().map(|client| client.balance().unwrap()).collect()
}

#[test]
fn crash_test_sigkill_mid_traffic_loses_nothing_acknowledged_and_conserves_money() {
    let started = Instant::now();
    let seed = std::env::var("CRASH_TEST_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| u64::from_be_bytes(securebank::rng::bytes()));
    eprintln!("crash test seed: {seed} (set CRASH_TEST_SEED={seed} to repeat the schedule)");
    let mut rng = SplitMix64(seed);
    let total: u64 = CRASH_OPENING_CENTS.iter().sum();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    for (name, opening) in CRASH_ACCOUNTS.iter().zip(CRASH_OPENING_TEXT) {
        add_account_with_binary(&data, name, CRASH_PASSWORD, opening);
    }

    let mut sent: Vec<Sent> = Vec::new();
    for round in 0..CRASH_ROUNDS {
        // Odd rounds checkpoint every few records, so the kill often lands while a
        // checkpoint is written or the journal switches segments.
        let extra: &[&str] = if round % 2 == 1 {
            &["--checkpoint-every", "7", "--journal-preallocate-kib", "64"]
        } else {
            &[]
        };
        let mut server = spawn_server_process(&data, &outbox, extra);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        for from in 0..CRASH_ACCOUNTS.len() {
            let (ready_tx, done_tx) = (ready_tx.clone(), done_tx.clone());
            let (addr, outbox, worker_seed) = (server.addr, outbox.clone(), rng.next());
            std::thread::spawn(move || {
                let _ = done_tx.send(crash_worker(addr, &outbox, from, worker_seed, &ready_tx));
            });
        }
        drop((ready_tx, done_tx));
        for _ in 0..CRASH_ACCOUNTS.len() {
            ready_rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|err| panic!("round {round}: a worker did not log in ({err})"));
        }
        let delay = Duration::from_millis(50 + rng.below(351));
        std::thread::sleep(delay);
        server.kill(); // SIGKILL, then wait
        let deadline = Instant::now() + Duration::from_secs(60);
        for _ in 0..CRASH_ACCOUNTS.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let log = done_rx
                .recv_timeout(left)
                .unwrap_or_else(|err| panic!("round {round}: a worker did not stop after the kill ({err})"))
                .unwrap_or_else(|err| panic!("round {round}: {err}"));
            sent.extend(log);
        }
        eprintln!("round {round}: killed after {delay:?}, {} requests so far", sent.len());
    }

    let (acknowledged, in_flight): (Vec<Sent>, Vec<Sent>) =
        sent.into_iter().partition(|s| s.outcome != Outcome::InFlight);
    assert!(
        !acknowledged.is_empty(),
        "no transfer was acknowledged in {CRASH_ROUNDS} rounds"
    );
    assert!(in_flight.len() <= CRASH_ROUNDS * CRASH_ACCOUNTS.len());
    for s in &acknowledged {
        assert!(
            matches!(
                s.outcome,
                Outcome::Applied(_) | Outcome::Refused(ErrorCode::InsufficientFunds)
            ),
            "{s:?}"
        );
    }

    // After the last kill: money is conserved.
    let server = spawn_server_process(&data, &outbox, &[]);
    let mut clients: Vec<Client> = CRASH_ACCOUNTS
        .iter()
        .map(|name| server.login(&outbox, name, CRASH_PASSWORD))
        .collect();
    let recovered = balances(&mut clients);
    assert_eq!(recovered.iter().sum::<u64>(), total, "balances {recovered:?}");

    // Every acknowledged transfer is there: re-sending it answers the original outcome
    // (a repeat) and moves no money.
    for s in &acknowledged {
        let response = clients[s.from].request(&s.request()).unwrap();
        let expected = match s.outcome {
            Outcome::Applied(balance_cents) => Response::TxApplied {
                txid: s.txid,
                balance_cents,
            },
            Outcome::Refused(code) => Response::Error(code),
            Outcome::InFlight => unreachable!(),
        };
        assert_eq!(response, expected, "acknowledged {s:?}");
    }
    assert_eq!(
        balances(&mut clients),
        recovered,
        "re-sending acknowledged transfers moved money"
    );

    // An in-flight transfer either happened (its repeat answers the original outcome) or
    // happens now, once: a second re-send answers the same.
    for s in &in_flight {
        let first = clients[s.from].request(&s.request()).unwrap();
        assert!(
            matches!(first, Response::TxApplied { txid, .. } if txid == s.txid)
                || first == Response::Error(ErrorCode::InsufficientFunds),
            "in flight {s:?}: {first:?}"
        );
        let second = clients[s.from].request(&s.request()).unwrap();
        assert_eq!(second, first, "in flight {s:?}");
    }
    let settled = balances(&mut clients);
    assert_eq!(settled.iter().sum::<u64>(), total, "balances {settled:?}");
    drop(clients);
    drop(server);

    // In the journal, every transfer sent (acknowledged or re-sent) is recorded exactly once.
    let recorded = transactions_in_journal(&data);
    for s in acknowledged.iter().chain(&in_flight) {
        let key = (CRASH_ACCOUNTS[s.from].to_string(), s.txid);
        assert_eq!(recorded.get(&key), Some(&1), "{s:?}");
    }
    assert_eq!(recorded.len(), acknowledged.len() + in_flight.len());

    let output = run_verify(&data);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "verify: {stdout}");
    assert!(stdout.contains("invariant:    ok"), "{stdout}");
    assert!(
        stdout.contains(&format!("total:        {}", format_cents(total))),
        "{stdout}"
    );
    eprintln!(
        "crash test: {} acknowledged, {} in flight, {:?}",
        acknowledged.len(),
        in_flight.len(),
        started.elapsed()
    );
}

/// How often each (account, transaction id) is recorded across every segment, replayed
/// from the first record.
fn transactions_in_journal(data: &Path) -> HashMap<(String, TxId), usize> {
    let storage = DirStorage::new(data);
    let mut recorded: HashMap<(String, TxId), usize> = HashMap::new();
    let mut position = Position::genesis();
    for number in 1.. {
        let Ok(file) = storage.open(&journal::segment_name(number)) else {
            break;
        };
        let scan = journal::scan_segment(file.as_ref(), "segment", position, true, |_, payload| {
            if let Event::Transaction { user, txid, .. } = Event::decode(payload).map_err(|err| err.to_string())? {
                *recorded.entry((user, txid)).or_default() += 1;
            }
            Ok(())
        });
        match scan {
            Ok(scan) => position = scan.end,
            // A segment created but never started has a zero header: it holds nothing.
            Err(_) if is_unstarted(&fs::read(data.join(journal::segment_name(number))).unwrap()) => break,
            Err(err) => panic!("segment {number}: {err}"),
        }
    }
    recorded
}

fn is_unstarted(segment: &[u8]) -> bool {
    segment.iter().all(|&byte| byte == 0)
}
