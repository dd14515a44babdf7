//! Durability: torn tails, damaged journals, the data-directory lock, `verify`, and the crash
//! test (the real binary killed with SIGKILL mid-traffic, again and again).
mod common;

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    TEST_ITERATIONS, add_account_with_binary, read_otp_from, run_server_expecting_exit, run_verify,
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
use securebank::server::journal::{self, RECORD_OVERHEAD_BYTES};
use securebank::server::ledger::{Totals, TxRequest};
use securebank::trace::Tracer;

const NAMES: [&str; 3] = ["alice", "bob", "carol"];
const CHAIN_BYTES: u64 = 32;
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

/// Where one record sits in the journal file.
#[derive(Debug, Clone, Copy)]
struct Record {
    offset: u64,
    len: u64,
}

impl Record {
    fn end(self) -> u64 {
        self.offset + self.len
    }
}

fn records_of(path: &Path) -> (Vec<Record>, journal::ScanReport) {
    let file = File::open(path).unwrap();
    let mut records = Vec::new();
    let report = journal::scan(&file, |offset, payload| {
        records.push(Record {
            offset,
            len: (payload.len() + RECORD_OVERHEAD_BYTES) as u64,
        });
        Ok(())
    })
    .unwrap();
    (records, report)
}

/// The first `end` bytes of the journal (the data, without the preallocated zeros).
fn journal_bytes(path: &Path, end: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; end as usize];
    File::open(path).unwrap().read_exact_at(&mut bytes, 0).unwrap();
    bytes
}

/// A fresh data directory whose journal holds exactly `bytes`.
fn data_dir_with_journal(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(journal::path_in(&data), bytes).unwrap();
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

/// A journal made through the library, with every kind of event; its last record is a
/// transfer from alice to bob.
struct Built {
    /// The live bank (its commit thread keeps the directory locked until the test ends).
    bank: Bank,
    _dir: tempfile::TempDir,
    /// The journal's data, up to the end of the last record.
    bytes: Vec<u8>,
    records: Vec<Record>,
    head: [u8; 32],
    /// The state just before the last record.
    before_last: State,
    last_txid: TxId,
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
    let before_last = state_of(&bank);
    let last_txid = client::new_txid();
    assert_eq!(
        transact(&bank, "alice", last_txid, TxKind::Transfer, 1_234, "bob"),
        Ok(100_000 + 2_500 - 1_000 + 700 - 1_234)
    );
    assert_ne!(state_of(&bank), before_last);
    let path = journal::path_in(&data);
    let (records, report) = records_of(&path);
    let bytes = journal_bytes(&path, report.end_offset);
    Built {
        bank,
        _dir: dir,
        bytes,
        records,
        head: report.head,
        before_last,
        last_txid,
    }
}

// ---- torn tails ----

#[test]
fn a_journal_cut_at_every_byte_offset_inside_its_last_record_recovers_to_the_previous_record() {
    let built = build();
    let last = *built.records.last().unwrap();
    let records = built.records.len() as u64;
    for cut in last.offset + 1..last.end() {
        let (_dir, data) = data_dir_with_journal(&built.bytes[..cut as usize]);
        let (bank, report) = Bank::open(&data).unwrap_or_else(|err| panic!("cut at {cut}: {err}"));
        assert_eq!(report.records, records - 1, "cut at {cut}");
        assert_eq!(report.torn_tail_at, Some(last.offset), "cut at {cut}");
        assert_eq!(report.end_offset, last.offset, "cut at {cut}");
        assert_eq!(
            fs::metadata(journal::path_in(&data)).unwrap().len(),
            last.offset,
            "cut at {cut}: the torn tail is cut off the file at open"
        );
        assert_eq!(state_of(&bank), built.before_last, "cut at {cut}");
    }
}

#[test]
fn a_torn_last_record_followed_by_preallocated_zeros_recovers_to_the_previous_record() {
    // The server's file has zeros after the data: a tear leaves a prefix of the record and
    // zeros. Tears in the length prefix and in the payload (the chain value still zero).
    let built = build();
    let last = *built.records.last().unwrap();
    let records = built.records.len() as u64;
    for cut in last.offset + 1..=last.end() - CHAIN_BYTES {
        let (_dir, data) = data_dir_with_journal(&with_zeros_after(&built.bytes[..cut as usize]));
        let (bank, report) = Bank::open(&data).unwrap_or_else(|err| panic!("cut at {cut}: {err}"));
        assert_eq!(report.records, records - 1, "cut at {cut}");
        assert!(
            report.torn_tail_at.is_none_or(|at| at == last.offset),
            "cut at {cut}: {report:?}"
        );
        assert_eq!(report.end_offset, last.offset, "cut at {cut}");
        assert_eq!(state_of(&bank), built.before_last, "cut at {cut}");
    }
}

#[test]
fn a_tear_inside_the_last_records_chain_value_at_a_page_boundary_recovers_to_the_previous_record() {
    // A process killed during the commit thread's pwrite keeps the pages already copied: a
    // record that straddles a 4096-byte page boundary can be torn inside its chain value,
    // with the preallocated zeros after the tear.
    const PAGE: u64 = 4096;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = journal::path_in(&data);
    let (bank, _) = Bank::open(&data).unwrap();
    admin::add_account(&bank, "alice", "alice-password", 1_000, TEST_ITERATIONS).unwrap();
    let mut balance = 1_000;
    let mut found = None;
    for _ in 0..500 {
        balance = transact(&bank, "alice", client::new_txid(), TxKind::Deposit, 1, "").unwrap();
        let (records, report) = records_of(&path);
        let last = *records.last().unwrap();
        let boundary = last.end() / PAGE * PAGE;
        if boundary > last.end() - CHAIN_BYTES && boundary < last.end() {
            found = Some((records.len() as u64, boundary, report.end_offset));
            break;
        }
    }
    let (records, boundary, end) = found.expect("some record's chain value straddles a page boundary");
    let bytes = journal_bytes(&path, end);
    let (_copy, copy) = data_dir_with_journal(&with_zeros_after(&bytes[..boundary as usize]));
    let (recovered, report) = Bank::open(&copy).unwrap_or_else(|err| panic!("tear at {boundary}: {err}"));
    assert_eq!(report.records, records - 1);
    assert_eq!(recovered.balance("alice").unwrap().unwrap(), balance - 1);
}

#[test]
fn after_recovery_the_torn_transaction_id_is_free_and_new_records_follow_the_cut() {
    let built = build();
    let last = *built.records.last().unwrap();
    let records = built.records.len() as u64;
    let cut = last.offset + last.len / 2;
    let (_dir, data) = data_dir_with_journal(&built.bytes[..cut as usize]);
    let (bank, _) = Bank::open(&data).unwrap();
    // The torn record was never acknowledged: its id is unused, so a different request
    // under it is a new transaction, not `transaction_id_reused`.
    let alice_before = bank.balance("alice").unwrap().unwrap();
    assert_eq!(
        transact(&bank, "alice", built.last_txid, TxKind::Transfer, 99, "bob"),
        Ok(alice_before - 99)
    );
    let state = state_of(&bank);
    let path = journal::path_in(&data);
    let (after, report) = records_of(&path);
    assert_eq!(report.records, records);
    assert_eq!(
        after.last().unwrap().offset,
        last.offset,
        "the new record starts at the cut"
    );
    // A copy of the journal as it is now opens cleanly to the same state.
    let (_again, again) = data_dir_with_journal(&journal_bytes(&path, report.end_offset));
    let (reopened, report) = Bank::open(&again).unwrap();
    assert_eq!(report.torn_tail_at, None);
    assert_eq!(report.records, records);
    assert_eq!(state_of(&reopened), state);
}

// ---- damage ----

#[test]
fn a_flipped_byte_in_an_earlier_record_refuses_to_open_naming_the_damaged_records_offset() {
    let built = build();
    // Every payload and chain byte of a record in the middle of the journal (the length
    // prefix has its own test below).
    let damaged = built.records[built.records.len() / 2];
    for at in damaged.offset + 4..damaged.end() {
        for padded in [false, true] {
            let mut bytes = built.bytes.clone();
            bytes[at as usize] ^= 0x40;
            if padded {
                bytes = with_zeros_after(&bytes);
            }
            let (_dir, data) = data_dir_with_journal(&bytes);
            match Bank::open(&data) {
                Err(JournalError::Corrupt { offset, .. }) => {
                    assert_eq!(offset, damaged.offset, "byte {at} flipped")
                }
                Err(other) => panic!("byte {at} flipped: expected corruption, got {other}"),
                Ok((_, report)) => panic!("byte {at} flipped: opened anyway ({report:?})"),
            }
        }
    }
}

#[test]
fn a_flipped_length_byte_in_an_earlier_record_refuses_to_open_and_keeps_the_later_records() {
    let built = build();
    let damaged = built.records[built.records.len() - 2];
    for byte in 0..4u64 {
        for bit in 0..8 {
            for padded in [false, true] {
                let mut bytes = built.bytes.clone();
                bytes[(damaged.offset + byte) as usize] ^= 1 << bit;
                if padded {
                    bytes = with_zeros_after(&bytes);
                }
                let (_dir, data) = data_dir_with_journal(&bytes);
                let path = journal::path_in(&data);
                let what = format!("length byte {byte} bit {bit} flipped, zeros after: {padded}");
                match Bank::open(&data) {
                    Err(JournalError::Corrupt { offset, .. }) => assert_eq!(offset, damaged.offset, "{what}"),
                    Err(other) => panic!("{what}: expected corruption, got {other}"),
                    Ok((_, report)) => panic!(
                        "{what}: opened with {} of {} records, file now {} bytes ({report:?})",
                        report.records,
                        built.records.len(),
                        fs::metadata(&path).unwrap().len()
                    ),
                }
            }
        }
    }
}

#[test]
fn the_server_binary_refuses_to_start_on_a_damaged_journal_naming_the_byte_offset() {
    let built = build();
    let damaged = built.records[1];
    let mut bytes = built.bytes.clone();
    bytes[(damaged.offset + 10) as usize] ^= 0x01;
    let (dir, data) = data_dir_with_journal(&bytes);
    let output = run_server_expecting_exit(&data, &dir.path().join("outbox"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started on a damaged journal: {stderr}");
    assert!(
        stderr.contains(&format!("byte offset {}", damaged.offset)),
        "stderr: {stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening on"));
    // Nothing was cut or rewritten.
    assert_eq!(fs::read(journal::path_in(&data)).unwrap(), bytes);
}

#[test]
fn verify_reports_a_damaged_journal_and_exits_non_zero() {
    let built = build();
    let damaged = built.records[2];
    let mut bytes = built.bytes.clone();
    let last_byte = (damaged.end() - 1) as usize;
    bytes[last_byte] ^= 0x80;
    let (_dir, data) = data_dir_with_journal(&bytes);
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
    let (_dir, data) = data_dir_with_journal(&with_zeros_after(&built.bytes));
    let output = run_verify(&data);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, sum) = built.bank.totals();
    let expected = [
        format!("records:      {}", built.records.len()),
        format!("accounts:     {}", NAMES.len()),
        format!("total:        {}", format_cents(u64::try_from(sum).unwrap())),
        "invariant:    ok".to_string(),
        format!("head:         {}", hex(&built.head)),
    ];
    for line in expected {
        assert!(stdout.contains(&line), "missing {line:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("torn tail"), "{stdout}");
}

#[test]
fn verify_reports_a_torn_tail_without_failing_or_changing_the_file() {
    let built = build();
    let last = *built.records.last().unwrap();
    let bytes = &built.bytes[..(last.offset + 7) as usize];
    let (_dir, data) = data_dir_with_journal(bytes);
    let output = run_verify(&data);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("byte offset {}", last.offset)), "{stdout}");
    assert!(
        stdout.contains(&format!("records:      {}", built.records.len() - 1)),
        "{stdout}"
    );
    assert_eq!(fs::read(journal::path_in(&data)).unwrap(), bytes, "verify is read-only");
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

/// SplitMix64: a tiny seeded generator, so a failing run can be repeated with its seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

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
        let mut server = spawn_server_process(&data, &outbox, &[]);
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
    let file = File::open(journal::path_in(&data)).unwrap();
    let mut recorded: HashMap<(String, TxId), usize> = HashMap::new();
    journal::scan(&file, |_, payload| {
        if let Event::Transaction { user, txid, .. } = Event::decode(payload).map_err(|err| err.to_string())? {
            *recorded.entry((user, txid)).or_default() += 1;
        }
        Ok(())
    })
    .unwrap();
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
