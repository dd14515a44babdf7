//! The crash simulator: the real bank (ledger, group commit, checkpoints, segment switches,
//! recovery, `verify`) on a simulated disk that loses what was not synced, tears the last
//! write at sector granularity in any pattern, and fails syncs. In the spirit of
//! TigerBeetle's VOPR: seeded and deterministic, so a failure names its seed and repeats.
//!
//! Each seed runs a random workload of batches of transfers, deposits and withdrawals (new
//! ids, repeated ids, refused ones), with checkpoints at random and on request, and crashes
//! the process at a random storage operation again and again. After every crash it recovers
//! and checks:
//! - the state is exactly the acknowledged state, or that plus the whole in-flight batch
//!   (never part of it): every acknowledged transaction is there exactly once, no other;
//! - repeating an acknowledged transaction returns its outcome and records nothing;
//! - `verify` passes: every chain value, and every checkpoint equal to the replay.
//!
//! `SIM_SEEDS=N` runs more seeds (the default keeps `make test` fast); `SIM_SEED=S` runs one.

mod common;

use std::sync::Arc;

use common::SplitMix64 as Rng;

use securebank::error::{ErrorCode, JournalError};
use securebank::message::TxId;
use securebank::server::auth;
use securebank::server::bank::{Bank, BankOptions, CommitMode};
use securebank::server::events::TxKind;
use securebank::server::ledger::TxRequest;
use securebank::server::retention::TxidRetention;
use securebank::server::storage::sim::{SimDisk, SimStorage};
use securebank::server::verify;

/// Seeds run by default: each has [`CRASHES_PER_SEED`] crash points.
const DEFAULT_SEEDS: u64 = 40;
/// Crash-and-recover cycles per seed.
const CRASHES_PER_SEED: usize = 25;
/// `verify` replays the whole journal: after every fifth crash (and the last) is enough to
/// check every checkpoint against the replay, and keeps the test fast.
const VERIFY_EVERY_CRASHES: usize = 5;
const ACCOUNTS: [&str; 4] = ["ann", "ben", "cat", "dan"];
const OPENING_CENTS: u64 = 10_000;
/// The simulated wall clock starts here (Unix seconds) and moves one second per batch.
const T0: u64 = 1_800_000_000;

/// A transaction the workload sent, and what the bank answered.
#[derive(Debug, Clone)]
struct Sent {
    user: usize,
    txid: TxId,
    kind: TxKind,
    amount_cents: u64,
    to: String,
    outcome: Result<u64, ErrorCode>,
}

impl Sent {
    fn request(&self) -> TxRequest<'_> {
        TxRequest {
            user: ACCOUNTS[self.user],
            txid: self.txid,
            kind: self.kind,
            amount_cents: self.amount_cents,
            counterparty: &self.to,
        }
    }
}

fn options() -> BankOptions {
    BankOptions {
        retention: TxidRetention::default(),
        checkpoint_every_records: 40,
        preallocate_bytes: 4096,
        ..BankOptions::default()
    }
}

fn open(disk: &Arc<SimDisk>) -> Result<Bank, JournalError> {
    Bank::open_storage(Arc::new(SimStorage(Arc::clone(disk))), options(), CommitMode::Manual).map(|(bank, _)| bank)
}

/// One seed's run.
struct Sim {
    seed: u64,
    rng: Rng,
    disk: Arc<SimDisk>,
    bank: Bank,
    now: u64,
    /// Acknowledged transactions that recorded something (not refused before recording).
    acknowledged: Vec<Sent>,
    /// Transactions applied in memory whose batch is not yet durable.
    in_flight: Vec<Sent>,
    /// The state after the last acknowledged batch.
    acknowledged_snapshot: Vec<u8>,
    /// The journal's requests for a checkpoint (every `checkpoint_every_records`).
    checkpoint_requests: Option<std::sync::mpsc::Receiver<()>>,
    crash_points: usize,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let disk = SimDisk::new();
        let bank = open(&disk).unwrap();
        let record = auth::hash_password("sim-password", 1_000);
        for name in ACCOUNTS {
            bank.open_account(name, record.clone(), OPENING_CENTS, T0)
                .unwrap()
                .unwrap();
        }
        let acknowledged_snapshot = bank.snapshot();
        let checkpoint_requests = bank.take_checkpoint_requests();
        Self {
            seed,
            rng: Rng(seed),
            disk,
            bank,
            now: T0,
            acknowledged: Vec::new(),
            in_flight: Vec::new(),
            acknowledged_snapshot,
            checkpoint_requests,
            crash_points: 0,
        }
    }

    fn txid(&mut self) -> TxId {
        let mut txid = [0u8; 16];
        txid[..6].copy_from_slice(&(self.now * 1_000).to_be_bytes()[2..]);
        txid[6..].copy_from_slice(&self.rng.next().to_be_bytes().repeat(2)[..10]);
        txid
    }

    /// A random request: mostly new, sometimes a repeat of an acknowledged one.
    fn request(&mut self) -> Sent {
        if !self.acknowledged.is_empty() && self.rng.chance(8) {
            let index = self.rng.below(self.acknowledged.len() as u64) as usize;
            return self.acknowledged[index].clone();
        }
        let user = self.rng.below(ACCOUNTS.len() as u64) as usize;
        let (kind, to) = match self.rng.below(3) {
            0 => (TxKind::Deposit, String::new()),
            1 => (TxKind::Withdrawal, String::new()),
            _ => {
                let to = (user + 1 + self.rng.below(ACCOUNTS.len() as u64 - 1) as usize) % ACCOUNTS.len();
                (TxKind::Transfer, ACCOUNTS[to].to_string())
            }
        };
        Sent {
            user,
            txid: self.txid(),
            kind,
            amount_cents: 1 + self.rng.below(3_000),
            to,
            outcome: Ok(0),
        }
    }

    /// One batch of requests, perhaps a checkpoint, then the commit. Returns an error if the
    /// simulated process crashed or a sync failed.
    fn step(&mut self) -> Result<(), JournalError> {
        self.now += 1;
        for _ in 0..1 + self.rng.below(8) {
            let mut sent = self.request();
            let (outcome, lsn) = self.bank.transact_deferred(sent.request(), self.now);
            let repeat = self
                .acknowledged
                .iter()
                .find(|old| old.txid == sent.txid && old.user == sent.user);
            if let Some(old) = repeat {
                assert_eq!(outcome, old.outcome, "seed {}: a repeat changed its outcome", self.seed);
            } else if lsn > 0 {
                sent.outcome = outcome;
                self.in_flight.push(sent);
            }
        }
        let asked = self
            .checkpoint_requests
            .as_ref()
            .is_some_and(|requests| requests.try_recv().is_ok());
        if asked || self.rng.chance(10) {
            self.bank.checkpoint()?;
        }
        while self.bank.commit_once()? {}
        self.acknowledged.append(&mut self.in_flight);
        self.acknowledged_snapshot = self.bank.snapshot();
        Ok(())
    }

    /// Crashes the process, restarts the disk with a random sector pattern, recovers, and
    /// checks the recovered bank.
    fn crash_and_recover(&mut self) {
        self.crash_points += 1;
        let in_flight_snapshot = self.bank.snapshot();
        // One crash in three is the process alone: unsynced writes stay readable, and a
        // later power loss must not take back what recovery then built on.
        let replaced = if self.rng.chance(3) {
            self.disk.restart_process();
            open(&self.disk).unwrap_or_else(|err| panic!("seed {}: recovery after a process crash: {err}", self.seed))
        } else {
            open_after_crash(&self.disk, &mut self.rng, self.seed)
        };
        drop(std::mem::replace(&mut self.bank, replaced));
        self.checkpoint_requests = self.bank.take_checkpoint_requests();
        let recovered = self.bank.snapshot();
        let seed = self.seed;
        assert!(
            recovered == self.acknowledged_snapshot || recovered == in_flight_snapshot,
            "seed {seed}: recovered a state that is neither the acknowledged one nor that plus the whole \
             in-flight batch (crash point {})",
            self.crash_points
        );
        if recovered == self.acknowledged_snapshot {
            self.in_flight.clear();
        } else {
            // The in-flight batch reached the disk whole: it counts as acknowledged now.
            self.acknowledged_snapshot = recovered;
            self.acknowledged.append(&mut self.in_flight);
        }
        let before = self.bank.position();
        for sent in self.acknowledged.iter().rev().take(20) {
            let (outcome, _) = self.bank.transact_deferred(sent.request(), self.now);
            assert_eq!(outcome, sent.outcome, "seed {seed}: an acknowledged transaction lost");
        }
        assert_eq!(self.bank.position(), before, "seed {seed}: a repeat recorded something");
        if !self.crash_points.is_multiple_of(VERIFY_EVERY_CRASHES) {
            return;
        }
        let storage = SimStorage(Arc::clone(&self.disk));
        let report = verify::verify_storage(&storage, TxidRetention::default())
            .unwrap_or_else(|err| panic!("seed {seed}: verify after recovery: {err}"));
        assert!(report.balanced(), "seed {seed}: money does not add up");
        assert_eq!(report.records, before.lsn, "seed {seed}: verify read another journal");
    }
}

/// Restarts `disk` after a crash, each unsynced sector persisted or not at random, and
/// recovers a bank from it.
fn open_after_crash(disk: &Arc<SimDisk>, rng: &mut Rng, seed: u64) -> Bank {
    disk.restart(|_, _| rng.chance(2));
    open(disk).unwrap_or_else(|err| panic!("seed {seed}: recovery refused a crashed disk: {err}"))
}

fn run_seed(seed: u64) -> usize {
    let mut sim = Sim::new(seed);
    for _ in 0..CRASHES_PER_SEED {
        let horizon = 1 + sim.rng.below(120);
        let at = sim.disk.operations() + horizon;
        if sim.rng.chance(4) {
            sim.disk.fail_sync_at(at);
        } else {
            sim.disk.crash_at(at);
        }
        loop {
            if sim.step().is_err() || sim.disk.operations() > at {
                break;
            }
        }
        sim.crash_and_recover();
    }
    sim.crash_points
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|text| text.parse().ok()) {
        return vec![seed];
    }
    let count = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    (1..=count).map(|n| n.wrapping_mul(0x2545_F491_4F6C_DD1D)).collect()
}

#[test]
fn recovery_after_any_crash_holds_every_acknowledged_transaction_exactly_once_and_no_other() {
    let mut crash_points = 0;
    for seed in seeds() {
        eprintln!("simulating seed {seed} (repeat with SIM_SEED={seed})");
        crash_points += run_seed(seed);
    }
    eprintln!("{crash_points} crash points recovered and checked");
    assert!(crash_points > 0);
}

#[test]
fn a_crash_while_a_checkpoint_is_written_recovers_from_the_journal() {
    // Crash at every storage operation of one checkpoint in turn.
    let probe = Sim::new(7);
    let start = probe.disk.operations();
    probe.bank.checkpoint().unwrap();
    let steps = probe.disk.operations() - start;
    drop(probe);
    for crash in 1..=steps {
        let mut sim = Sim::new(7);
        sim.step().unwrap();
        sim.disk.crash_at(sim.disk.operations() + crash);
        assert!(sim.bank.checkpoint().is_err(), "crash at step {crash}");
        sim.crash_and_recover();
    }
}

#[test]
fn a_failed_sync_is_never_retried_and_recovery_restores_the_acknowledged_state() {
    let mut sim = Sim::new(11);
    sim.step().unwrap();
    sim.disk.fail_sync_at(sim.disk.operations() + 2);
    let mut failed = false;
    for _ in 0..5 {
        if sim.step().is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "the failed sync was reported");
    assert!(
        matches!(sim.bank.commit_once(), Err(JournalError::Poisoned)),
        "the journal stays poisoned: the sync is not retried"
    );
    sim.crash_and_recover();
}

/// Deposits 1 cent to ann with a fresh id and commits it.
fn acknowledged_deposit(sim: &mut Sim) {
    let txid = sim.txid();
    let request = TxRequest {
        user: ACCOUNTS[0],
        txid,
        kind: TxKind::Deposit,
        amount_cents: 1,
        counterparty: "",
    };
    let (_, lsn) = sim.bank.transact_deferred(request, sim.now);
    sim.bank.wait_durable(lsn).unwrap();
}

/// Writes a batch (a 7-cent deposit to ann) whose sync never returns: the process dies
/// during it. Returns the deposit's id.
fn die_during_a_sync(sim: &mut Sim) -> TxId {
    let txid = sim.txid();
    let (_, lsn) = sim.bank.transact_deferred(seven_cents(txid), sim.now);
    sim.disk.crash_at(sim.disk.operations() + 2); // the write, then its sync
    assert!(sim.bank.wait_durable(lsn).is_err());
    assert!(
        !sim.disk.unsynced_sectors().is_empty(),
        "the batch is written, not synced"
    );
    txid
}

fn seven_cents(txid: TxId) -> TxRequest<'static> {
    TxRequest {
        user: ACCOUNTS[0],
        txid,
        kind: TxKind::Deposit,
        amount_cents: 7,
        counterparty: "",
    }
}

#[test]
fn a_repeat_answered_from_a_batch_recovery_read_in_the_page_cache_survives_a_power_loss() {
    let mut sim = Sim::new(21);
    let txid = die_during_a_sync(&mut sim);
    sim.disk.restart_process();
    sim.bank = open(&sim.disk).unwrap();
    // The client retries: the recovered batch answers it as already applied.
    let (outcome, lsn) = sim.bank.transact_deferred(seven_cents(txid), sim.now);
    assert!(outcome.is_ok() && lsn > 0);
    sim.bank.wait_durable(lsn).unwrap();
    sim.disk.restart(|_, _| false);
    let bank = open(&sim.disk).unwrap_or_else(|err| panic!("recovery after the power loss: {err}"));
    assert!(
        bank.position().lsn >= lsn,
        "the deposit the client was told about is gone after a power loss"
    );
}

#[test]
fn a_process_that_died_mid_sync_before_a_segment_switch_recovers_after_a_power_loss() {
    let mut sim = Sim::new(22);
    // The checkpointer created the next segment, then the process died during a sync.
    let storage = SimStorage(Arc::clone(&sim.disk));
    use securebank::server::storage::Storage;
    let next = storage.create("journal-0000000002.seg").unwrap();
    next.write_all_at(&[0u8; 4096], 0).unwrap();
    next.sync_all().unwrap();
    storage.sync_dir().unwrap();
    die_during_a_sync(&mut sim);
    sim.disk.restart_process();
    sim.bank = open(&sim.disk).unwrap();
    acknowledged_deposit(&mut sim);
    let acknowledged = sim.bank.snapshot();
    sim.disk.restart(|_, _| false);
    let bank = open(&sim.disk).unwrap_or_else(|err| panic!("acknowledged data unrecoverable: {err}"));
    assert_eq!(bank.snapshot(), acknowledged);
}

#[test]
fn two_checkpoints_in_a_row_with_nothing_in_between_both_succeed() {
    let mut sim = Sim::new(23);
    sim.step().unwrap();
    sim.bank.checkpoint().unwrap();
    sim.bank.checkpoint().unwrap();
    sim.crash_and_recover();
}
