//! Checkpoints and segments: what they promise, shown from the outside.
//!
//! - a restart loads the newest checkpoint and replays only the records after it, to the
//!   same state; the server binary writes one every `--checkpoint-every` records, in
//!   numbered files that `verify` checks;
//! - a damaged checkpoint is set aside (renamed `*.damaged`, named in the report and in a
//!   WARNING) and recovery falls back to an older one or the first record, to the same state;
//!   a checkpoint whose checksum is right but whose ledger is not makes `verify` fail;
//! - `prune` archives what the oldest kept checkpoint makes unnecessary, and refuses to
//!   keep no checkpoint or to run beside a server;
//! - transaction ids survive a checkpoint: a repeat is still a repeat and an expired id is
//!   still expired;
//! - a first-release `journal.log` is migrated once and verifies from its first record;
//! - a segment missing from the middle of the journal refuses the start, naming it.
mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{
    TEST_ITERATIONS, add_account_with_binary, read_otp_from, run_bank_server, run_server_expecting_exit, run_verify,
    spawn_server_process, spawn_server_process_captured, test_identity,
};
use securebank::client::{self, new_txid};
use securebank::error::{ErrorCode, JournalError};
use securebank::message::{HistoryEntry, TxId, hex, txid_at};
use securebank::server::bank::{Bank, BankOptions, CheckpointInfo, now_unix_secs};
use securebank::server::checkpoint::{self, Checkpoint};
use securebank::server::events::{Event, TxKind};
use securebank::server::journal;
use securebank::server::ledger::{Totals, TxRequest};
use securebank::server::recovery::RecoveryReport;
use securebank::server::retention::TxidRetention;
use securebank::server::{admin, auth, snapshot};
use securebank::trace::Tracer;

const NAMES: [&str; 2] = ["alice", "bob"];
const PASSWORD: &str = "correct horse 1";
/// Records one round of [`traffic`] appends.
const ROUND_RECORDS: u64 = 3;
/// Zeros each segment is extended by: small, so tests write little.
const PREALLOCATE_BYTES: u64 = 64 * 1024;
/// How long a one-shot `bank-server` command may run before the test gives up on it.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

// ---- helpers: a bank, its traffic and its observable state ----

fn options() -> BankOptions {
    BankOptions {
        preallocate_bytes: PREALLOCATE_BYTES,
        ..BankOptions::default()
    }
}

fn open(data: &Path) -> (Bank, RecoveryReport) {
    common::open_bank_when_free(data, options())
}

/// Stops a bank without [`Bank::close`]: everything acknowledged is durable (each call
/// waited for its sync), but no closing checkpoint is written, as when the process is killed.
fn stop_without_closing(bank: Bank) {
    drop(bank);
}

fn transact(
    bank: &Bank,
    user: &str,
    txid: TxId,
    kind: TxKind,
    cents: u64,
    to: &str,
    now: u64,
) -> Result<u64, ErrorCode> {
    let request = TxRequest {
        user,
        txid,
        kind,
        amount_cents: cents,
        counterparty: to,
    };
    bank.transact(request, now).unwrap()
}

fn deposit(bank: &Bank, user: &str, txid: TxId, cents: u64) -> Result<u64, ErrorCode> {
    transact(bank, user, txid, TxKind::Deposit, cents, "", now_unix_secs())
}

/// `rounds` × (a deposit to alice, a transfer alice → bob, a withdrawal by bob): each one
/// record, [`ROUND_RECORDS`] per round.
fn traffic(bank: &Bank, rounds: u64) {
    let now = now_unix_secs();
    for round in 1..=rounds {
        transact(bank, "alice", new_txid(), TxKind::Deposit, 100 + round, "", now).unwrap();
        transact(bank, "alice", new_txid(), TxKind::Transfer, 50, "bob", now).unwrap();
        transact(bank, "bob", new_txid(), TxKind::Withdrawal, 7, "", now).unwrap();
    }
}

/// A bank in `data` with alice and bob and some traffic, then `checkpoints` times a
/// checkpoint followed by more traffic. Returns it open, with the checkpoints written.
fn bank_with_checkpoints(data: &Path, checkpoints: usize) -> (Bank, Vec<CheckpointInfo>) {
    let (bank, _) = open(data);
    for name in NAMES {
        admin::add_account(&bank, name, PASSWORD, 10_000, TEST_ITERATIONS).unwrap();
    }
    traffic(&bank, 2);
    let written = (0..checkpoints)
        .map(|_| {
            let info = bank.checkpoint().unwrap();
            traffic(&bank, 2);
            info
        })
        .collect();
    (bank, written)
}

/// Everything a client or `verify` can observe of a bank, and its canonical snapshot.
#[derive(Debug, PartialEq)]
struct State {
    accounts: Vec<(&'static str, u64, Vec<HistoryEntry>)>,
    account_count: usize,
    totals: Totals,
    sum_of_balances: u128,
    snapshot: Vec<u8>,
}

fn state_of(bank: &Bank) -> State {
    let accounts = NAMES
        .iter()
        .map(|&name| {
            let balance = bank.balance(name).unwrap().unwrap();
            (name, balance, bank.history(name).unwrap().unwrap())
        })
        .collect();
    let (totals, sum_of_balances) = bank.totals();
    State {
        accounts,
        account_count: bank.account_count(),
        totals,
        sum_of_balances,
        snapshot: bank.snapshot(),
    }
}

fn balance_of(state: &State, name: &str) -> u64 {
    state.accounts.iter().find(|(n, ..)| *n == name).unwrap().1
}

// ---- helpers: files and the binary ----

/// The number in `name` if it is `PREFIX` + exactly ten digits + `SUFFIX`.
fn numbered(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().unwrap())
}

/// Segment and checkpoint numbers in `dir`, checking every journal-looking name on the way.
fn journal_files(dir: &Path) -> (Vec<u64>, Vec<u64>) {
    let (mut segments, mut checkpoints) = (Vec::new(), Vec::new());
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("journal-") && name.ends_with(".seg") {
            segments.push(numbered(&name, "journal-", ".seg").unwrap_or_else(|| panic!("bad segment name {name}")));
        } else if name.starts_with("checkpoint-") && name.ends_with(".ckp") {
            checkpoints.push(numbered(&name, "checkpoint-", ".ckp").unwrap_or_else(|| panic!("bad name {name}")));
        }
    }
    segments.sort_unstable();
    checkpoints.sort_unstable();
    (segments, checkpoints)
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn flip_byte_in_the_middle(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `bank-server ARGS --data DATA` to completion.
fn bank_server(args: &[&str], data: &Path) -> std::process::Output {
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.extend([OsStr::new("--data"), data.as_os_str()]);
    run_bank_server(&all, COMMAND_LIMIT)
}

/// `bank-server verify` on `data`, which must pass; returns its standard output.
fn verify_passes(data: &Path) -> String {
    let output = run_verify(data);
    assert!(
        output.status.success(),
        "verify failed:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// The value after `label` on the line of verify's report that starts with it.
fn report_field<'a>(report: &'a str, label: &str) -> &'a str {
    report
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{report}"))
        .trim()
}

/// Logs in to the server at `addr` as `user` (code from `outbox`) and reads the balance.
fn balance_over_the_wire(addr: std::net::SocketAddr, outbox: &Path, user: &str) -> u64 {
    let fingerprint = test_identity().fingerprint().to_string();
    let mut client = client::connect_pinned(addr, &fingerprint, Tracer::off()).unwrap();
    client.login(user, PASSWORD).unwrap();
    client.submit_otp(&read_otp_from(outbox, user)).unwrap();
    client.balance().unwrap()
}

// ---- 1. restart from a checkpoint ----

#[test]
fn a_restart_after_a_checkpoint_loads_it_and_replays_only_the_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (bank, written) = bank_with_checkpoints(&data, 1);
    let before = state_of(&bank);
    let end = bank.position().lsn;
    stop_without_closing(bank);

    let (bank, report) = open(&data);
    assert_eq!(report.checkpoint, Some((written[0].next_segment, written[0].lsn)));
    assert_eq!(
        report.records_replayed,
        2 * ROUND_RECORDS,
        "only the traffic after the checkpoint"
    );
    assert_eq!(report.end_lsn, end);
    assert!(report.damaged_checkpoints.is_empty() && report.torn_batch.is_none());
    assert_eq!(state_of(&bank), before);
    bank.close().unwrap();

    // close() wrote a checkpoint at the end: the next start replays nothing.
    let (bank, report) = open(&data);
    assert_eq!(report.checkpoint.map(|(_, lsn)| lsn), Some(end));
    assert_eq!(report.records_replayed, 0);
    assert_eq!(state_of(&bank), before);
}

// ---- 2. the server binary writes checkpoints every N records ----

#[test]
fn the_server_binary_with_checkpoint_every_10_writes_numbered_segments_and_checkpoints_that_verify_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outbox) = (dir.path().join("data"), dir.path().join("outbox"));
    add_account_with_binary(&data, "alice", PASSWORD, "100.00");
    let server = spawn_server_process(&data, &outbox, &["--checkpoint-every", "10"]);
    let mut alice = server.login(&outbox, "alice", PASSWORD);
    // Checkpoints are written by a background thread; deposit until two have appeared.
    let mut deposits = 0u64;
    while journal_files(&data).1.len() < 2 {
        assert!(deposits < 2_000, "no second checkpoint after {deposits} deposits");
        alice.deposit(new_txid(), 1).unwrap();
        deposits += 1;
    }
    let balance = alice.balance().unwrap();
    assert_eq!(balance, 10_000 + deposits);
    drop(server); // killed: whatever a checkpoint in progress left must still verify

    let (segments, checkpoints) = journal_files(&data);
    let newest = *segments.last().unwrap();
    assert_eq!(
        segments,
        (1..=newest).collect::<Vec<_>>(),
        "segments numbered from 1 without gaps"
    );
    assert!(checkpoints.len() >= 2 && checkpoints.iter().all(|n| (2..=newest).contains(n)));
    let report = verify_passes(&data);
    let checked = format!("{} checked", checkpoints.len());
    assert!(report_field(&report, "checkpoints:").starts_with(&checked), "{report}");
    assert_eq!(report_field(&report, "from:"), "the first record");
    // alice's account, her login, her deposits.
    assert_eq!(report_field(&report, "records:"), (2 + deposits).to_string());

    let restarted = spawn_server_process(&data, &dir.path().join("outbox2"), &[]);
    let loaded = restarted
        .output()
        .iter()
        .any(|line| line.contains("checkpoint at record"));
    assert!(loaded, "{:?}", restarted.output());
    assert_eq!(
        balance_over_the_wire(restarted.addr, &dir.path().join("outbox2"), "alice"),
        balance
    );
}

// ---- 3. a damaged checkpoint ----

#[test]
fn a_damaged_newest_checkpoint_is_renamed_and_recovery_falls_back_to_the_older_one_with_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (bank, written) = bank_with_checkpoints(&data, 2);
    let before = state_of(&bank);
    let end = bank.position().lsn;
    stop_without_closing(bank);
    let newest = checkpoint::file_name(written[1].next_segment);
    flip_byte_in_the_middle(&data.join(&newest));

    let (bank, report) = open(&data);
    assert_eq!(report.damaged_checkpoints.len(), 1, "{report:?}");
    assert_eq!(report.damaged_checkpoints[0].0, newest);
    assert_eq!(report.checkpoint, Some((written[0].next_segment, written[0].lsn)));
    assert_eq!(report.records_replayed, end - written[0].lsn);
    assert_eq!(state_of(&bank), before);
    assert!(!data.join(&newest).exists());
    assert!(data.join(format!("{newest}.damaged")).exists());
    drop(bank);
    verify_passes(&data);
}

#[test]
fn the_server_binary_warns_on_stderr_naming_a_damaged_checkpoint_and_recovers_from_the_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outbox) = (dir.path().join("data"), dir.path().join("outbox"));
    let (bank, written) = bank_with_checkpoints(&data, 1);
    let before = state_of(&bank);
    stop_without_closing(bank);
    let only = checkpoint::file_name(written[0].next_segment);
    flip_byte_in_the_middle(&data.join(&only));

    let mut server = spawn_server_process_captured(&data, &outbox, &[]);
    let warning = format!("WARNING: checkpoint {only} is damaged");
    assert!(
        server.wait_for_stderr(COMMAND_LIMIT, |stderr| stderr.contains(&warning)),
        "{}",
        server.stderr_text()
    );
    for name in NAMES {
        assert_eq!(
            balance_over_the_wire(server.addr, &outbox, name),
            balance_of(&before, name)
        );
    }
    let (stdout, _) = server.stop();
    assert!(
        !text(&stdout).contains("checkpoint at record"),
        "no checkpoint was usable"
    );
    assert!(data.join(format!("{only}.damaged")).exists() && !data.join(&only).exists());
}

// ---- 4. a checkpoint that checks out but holds the wrong ledger ----

#[test]
fn verify_fails_naming_a_checkpoint_whose_checksum_is_valid_but_whose_ledger_differs_from_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (bank, written) = bank_with_checkpoints(&data, 2);
    bank.close().unwrap();
    verify_passes(&data);

    // Rewrite the older checkpoint with one balance changed (bob got one more cent), keeping
    // its position and a valid checksum.
    let name = checkpoint::file_name(written[0].next_segment);
    let mut forged = Checkpoint::decode(&fs::read(data.join(&name)).unwrap()).unwrap();
    let mut ledger = snapshot::decode(&forged.snapshot, TxidRetention::default()).unwrap();
    let clock_ms = ledger.clock_ms();
    let extra_cent = Event::Transaction {
        at: clock_ms / 1_000,
        user: "bob".into(),
        txid: txid_at(clock_ms),
        kind: TxKind::Deposit,
        amount_cents: 1,
        counterparty: String::new(),
        refused: None,
    };
    ledger.apply(&extra_cent, forged.position.lsn).unwrap();
    forged.snapshot = snapshot::encode(&ledger);
    fs::write(data.join(&name), forged.encode()).unwrap();

    let output = run_verify(&data);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&name) && stderr.contains("differs from the replay"),
        "{stderr}"
    );
}

// ---- 5. prune ----

#[test]
fn prune_keeping_one_checkpoint_archives_older_files_and_the_bank_still_starts_and_verifies_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outbox) = (dir.path().join("data"), dir.path().join("outbox"));
    let (bank, _) = bank_with_checkpoints(&data, 2);
    let before = state_of(&bank);
    bank.close().unwrap(); // checkpoints before segments 2, 3 and 4
    assert_eq!(journal_files(&data), (vec![1, 2, 3, 4], vec![2, 3, 4]));

    let refused = bank_server(&["prune", "--keep-checkpoints", "0"], &data);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("at least 1"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(journal_files(&data), (vec![1, 2, 3, 4], vec![2, 3, 4]), "nothing moved");

    let pruned = bank_server(&["prune", "--keep-checkpoints", "1"], &data);
    assert!(pruned.status.success(), "{}", text(&pruned.stderr));
    assert_eq!(journal_files(&data), (vec![4], vec![4]));
    let archived = [1, 2, 3].map(journal::segment_name).into_iter();
    let mut expected: Vec<String> = archived.chain([2, 3].map(checkpoint::file_name)).collect();
    expected.sort();
    assert_eq!(file_names(&data.join(admin::ARCHIVE_DIR)), expected);

    let server = spawn_server_process(&data, &outbox, &[]);
    for name in NAMES {
        assert_eq!(
            balance_over_the_wire(server.addr, &outbox, name),
            balance_of(&before, name)
        );
    }
    let beside_the_server = bank_server(&["prune", "--keep-checkpoints", "1"], &data);
    assert!(!beside_the_server.status.success());
    let stderr = text(&beside_the_server.stderr);
    assert!(stderr.contains("already using"), "{stderr}");
    drop(server);

    let report = verify_passes(&data);
    let from = report_field(&report, "from:");
    assert!(
        from.contains("checkpoint before segment 4") && from.contains("older segments were pruned"),
        "{report}"
    );
}

// ---- 6 and 7. transaction ids across a checkpoint ----

#[test]
fn a_transaction_id_used_before_a_checkpoint_is_a_repeat_after_a_restart_that_loaded_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (bank, _) = bank_with_checkpoints(&data, 0);
    let (applied, refused) = (new_txid(), new_txid());
    let balance = deposit(&bank, "alice", applied, 500).unwrap();
    let too_much = transact(
        &bank,
        "bob",
        refused,
        TxKind::Withdrawal,
        1_000_000,
        "",
        now_unix_secs(),
    );
    assert_eq!(too_much, Err(ErrorCode::InsufficientFunds));
    bank.checkpoint().unwrap();
    let before = state_of(&bank);
    bank.close().unwrap();

    let (bank, report) = open(&data);
    assert!(
        report.checkpoint.is_some() && report.records_replayed == 0,
        "{report:?}"
    );
    let end = bank.position();
    assert_eq!(deposit(&bank, "alice", applied, 500), Ok(balance), "the same outcome");
    let again = transact(
        &bank,
        "bob",
        refused,
        TxKind::Withdrawal,
        1_000_000,
        "",
        now_unix_secs(),
    );
    assert_eq!(again, Err(ErrorCode::InsufficientFunds), "the same refusal");
    assert_eq!(
        deposit(&bank, "alice", applied, 501),
        Err(ErrorCode::TransactionIdReused)
    );
    assert_eq!(bank.position(), end, "nothing recorded");
    assert_eq!(state_of(&bank), before);
}

#[test]
fn a_transaction_id_older_than_the_retention_window_is_expired_after_a_restart_from_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let options = BankOptions {
        retention: TxidRetention {
            window_ms: 60_000,
            ..TxidRetention::default()
        },
        ..options()
    };
    let now = now_unix_secs();
    let an_hour_later = now + 3_600;
    let (bank, _) = common::open_bank_when_free(&data, options);
    admin::add_account(&bank, "alice", PASSWORD, 10_000, TEST_ITERATIONS).unwrap();
    let early = txid_at(now * 1_000);
    assert_eq!(
        transact(&bank, "alice", early, TxKind::Deposit, 100, "", now),
        Ok(10_100)
    );
    // A deposit an hour later moves the ledger's clock on: the early id is forgotten.
    let late = txid_at(an_hour_later * 1_000);
    assert_eq!(
        transact(&bank, "alice", late, TxKind::Deposit, 100, "", an_hour_later),
        Ok(10_200)
    );
    assert_eq!(bank.remembered_txids(), 1);
    bank.checkpoint().unwrap();
    let snapshot = bank.snapshot();
    bank.close().unwrap();

    let (bank, report) = common::open_bank_when_free(&data, options);
    assert!(
        report.checkpoint.is_some() && report.records_replayed == 0,
        "{report:?}"
    );
    assert_eq!(bank.snapshot(), snapshot);
    // Retried at the wall-clock time it was made: fresh by the wall clock, but the clock the
    // checkpoint restored says it was forgotten, so it must not apply a second time.
    let retried = transact(&bank, "alice", early, TxKind::Deposit, 100, "", now);
    assert_eq!(retried, Err(ErrorCode::TransactionIdExpired));
    let older = txid_at(now * 1_000 - 120_000);
    assert_eq!(
        deposit(&bank, "alice", older, 100),
        Err(ErrorCode::TransactionIdExpired)
    );
    assert_eq!(
        transact(&bank, "alice", late, TxKind::Deposit, 100, "", an_hour_later),
        Ok(10_200)
    );
    assert_eq!(bank.balance("alice").unwrap(), Ok(10_200));
}

// ---- 8. a first-release data directory ----

/// Writes a first-release `journal.log` of `events` by hand (magic, then
/// `length u32 | payload | chain[32]` per record, then preallocated zeros); returns the chain
/// value of its last record.
fn write_v1_journal(path: &Path, events: &[Event]) -> [u8; 32] {
    let mut bytes = b"SBJRNL01".to_vec();
    let mut chain = journal::genesis_chain();
    for event in events {
        let payload = event.encode();
        chain = journal::next_chain(&chain, &payload);
        bytes.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&chain);
    }
    bytes.resize(bytes.len() + 4_096, 0);
    fs::write(path, bytes).unwrap();
    chain
}

/// A first-release data directory: alice 100.00 and bob 50.00 opened, alice deposits 25.00
/// (with `deposit_txid`) and sends 40.00 to bob, bob's withdrawal of 999.00 is refused.
/// Afterwards alice has 85.00 and bob 90.00. Returns the head chain value.
fn first_release_data_dir(data: &Path, deposit_txid: TxId) -> [u8; 32] {
    common::install_test_key(data);
    let at = now_unix_secs() - 600;
    let opened = |name: &str, opening_cents| Event::AccountOpened {
        at,
        name: name.into(),
        password: auth::hash_password(PASSWORD, TEST_ITERATIONS),
        opening_cents,
    };
    let transaction = |user: &str, txid, kind, amount_cents, to: &str, refused| Event::Transaction {
        at: at + 1,
        user: user.into(),
        txid,
        kind,
        amount_cents,
        counterparty: to.into(),
        refused,
    };
    let fresh = || txid_at((at + 1) * 1_000);
    let events = [
        opened("alice", 10_000),
        opened("bob", 5_000),
        transaction("alice", deposit_txid, TxKind::Deposit, 2_500, "", None),
        transaction("alice", fresh(), TxKind::Transfer, 4_000, "bob", None),
        transaction(
            "bob",
            fresh(),
            TxKind::Withdrawal,
            99_900,
            "",
            Some(ErrorCode::InsufficientFunds),
        ),
    ];
    write_v1_journal(&data.join("journal.log"), &events)
}

#[test]
fn a_first_release_journal_log_is_migrated_once_kept_as_journal_v1_log_and_verifies_from_its_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let deposit_txid = txid_at((now_unix_secs() - 599) * 1_000);
    let head = first_release_data_dir(&data, deposit_txid);

    let (bank, report) = open(&data);
    assert_eq!(report.migrated_v1_records, Some(5));
    assert_eq!(
        report.checkpoint,
        Some((1, 5)),
        "the migration's checkpoint before segment 1"
    );
    assert_eq!(report.end_lsn, 5);
    assert_eq!(bank.balance("alice").unwrap(), Ok(8_500));
    assert_eq!(bank.balance("bob").unwrap(), Ok(9_000));
    assert_eq!(
        bank.history("bob").unwrap().unwrap().len(),
        2,
        "opening and transfer in"
    );
    assert_eq!(
        deposit(&bank, "alice", deposit_txid, 2_500),
        Ok(12_500),
        "a repeat of the v1 deposit"
    );
    assert_eq!(bank.position().lsn, 5, "nothing recorded");
    let before = state_of(&bank);
    bank.close().unwrap();
    assert!(data.join("journal-v1.log").exists() && !data.join("journal.log").exists());

    let report = verify_passes(&data);
    assert_eq!(report_field(&report, "from:"), "the first record");
    assert_eq!(report_field(&report, "records:"), "5");
    assert_eq!(
        report_field(&report, "head:"),
        hex(&head),
        "segments continue the v1 chain"
    );

    let (bank, report) = open(&data);
    assert_eq!(report.migrated_v1_records, None, "migrated once");
    assert_eq!(report.checkpoint, Some((1, 5)));
    assert_eq!(state_of(&bank), before);
    deposit(&bank, "bob", new_txid(), 1).unwrap();
    bank.close().unwrap();
    let report = verify_passes(&data);
    assert_eq!(report_field(&report, "records:"), "6");
    assert_ne!(report_field(&report, "head:"), hex(&head));
}

#[test]
fn after_prune_keeps_the_migration_checkpoint_of_a_first_release_directory_verify_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    first_release_data_dir(&data, new_txid());
    let (bank, _) = open(&data);
    bank.close().unwrap();
    assert_eq!(journal_files(&data), (vec![1], vec![1]));

    let pruned = bank_server(&["prune", "--keep-checkpoints", "1"], &data);
    assert!(pruned.status.success(), "{}", text(&pruned.stderr));
    // Segment 1 is kept, and it continues journal-v1.log: verify must still be able to start.
    verify_passes(&data);
}

// ---- 9. a missing segment ----

#[test]
fn a_segment_missing_from_the_middle_without_a_checkpoint_after_it_refuses_to_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outbox) = (dir.path().join("data"), dir.path().join("outbox"));
    let (bank, written) = bank_with_checkpoints(&data, 2);
    stop_without_closing(bank);
    assert_eq!(journal_files(&data).0, vec![1, 2, 3]);
    for info in &written {
        fs::remove_file(data.join(checkpoint::file_name(info.next_segment))).unwrap();
    }
    let missing = journal::segment_name(2);
    fs::remove_file(data.join(&missing)).unwrap();

    match common::try_open_bank_when_free(&data, options()) {
        Err(JournalError::Inconsistent(reason)) => assert!(reason.contains(&missing), "{reason}"),
        other => panic!("expected an inconsistent directory, got {other:?}"),
    }
    let refused = run_server_expecting_exit(&data, &outbox);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains(&missing), "{}", text(&refused.stderr));
    assert_eq!(journal_files(&data), (vec![1, 3], vec![]), "nothing changed");
}

#[test]
fn a_missing_newest_segment_that_a_checkpoint_names_refuses_to_start_instead_of_dropping_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (bank, written) = bank_with_checkpoints(&data, 2);
    stop_without_closing(bank);
    let missing = journal::segment_name(written[1].next_segment);
    fs::remove_file(data.join(&missing)).unwrap();

    // checkpoint-0000000003.ckp proves segment 3 existed: its records were acknowledged.
    match common::try_open_bank_when_free(&data, options()) {
        Err(JournalError::Inconsistent(reason)) => assert!(reason.contains(&missing), "{reason}"),
        Err(other) => panic!("expected an inconsistent directory, got {other:?}"),
        Ok((bank, report)) => panic!(
            "started at record {} without {missing} ({report:?}), {} records lost",
            report.end_lsn,
            written[1].lsn + 2 * ROUND_RECORDS - bank.position().lsn
        ),
    }
}
