//! `bank-server verify`: reads the whole journal read-only — every batch checksum, every
//! record's chain value, every ledger rule — and checks that each checkpoint equals the
//! replay at its position and that money adds up (sum of balances = deposits − withdrawals).
//! Safe to run while a server is running: it never writes.
//!
//! It starts at the very first record (through `journal-v1.log` if the bank began with the
//! first release). After `bank-server prune` removed the oldest segments it starts at the
//! oldest checkpoint kept, and says so. The comparison of a checkpoint with the replay is
//! on the decoded state (every account, balance, lock, history entry and remembered id,
//! whatever the snapshot version), so both must use the same transaction-id retention the
//! server used (the same flag).
//!
//! The report counts the operator's actions (accounts opened, unlocks, closes) since the
//! first record: the totals of the audit trail that the journal keeps event by event.

use std::path::Path;

use super::checkpoint;
use super::journal::{self, Position};
use super::journal_v1;
use super::ledger::Ledger;
use super::recovery::{self, Inventory};
use super::retention::TxidRetention;
use super::snapshot;
use super::storage::{DirStorage, Storage, StorageReader};
use crate::error::JournalError;
use crate::money::format_cents;

/// Where the verified history begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifiedFrom {
    /// The first record of the bank: the whole history was checked.
    FirstRecord,
    /// The checkpoint before this segment, at this record: older segments were pruned.
    Checkpoint {
        /// The segment after the checkpoint.
        next_segment: u64,
        /// Its position.
        lsn: u64,
    },
}

/// What `bank-server verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Where the check began.
    pub from: VerifiedFrom,
    /// Records in the journal (the position of the last one).
    pub records: u64,
    /// Segment files read (a first-release journal counts as one).
    pub segments: u64,
    /// Checkpoints compared with the replay.
    pub checkpoints_checked: u64,
    /// Accounts, closed ones included.
    pub accounts: usize,
    /// Accounts closed by the operator.
    pub closed_accounts: usize,
    /// Unlocks by the operator.
    pub unlocks: u64,
    /// Sum of all balances, in cents.
    pub total_cents: u128,
    /// Money in (opening balances and deposits), in cents.
    pub deposited_cents: u128,
    /// Money out (withdrawals), in cents.
    pub withdrawn_cents: u128,
    /// Hex of the head chain value.
    pub head: String,
    /// A torn last batch (or torn tail of a first-release journal) the next start will cut.
    pub torn_at: Option<(String, u64)>,
}

impl VerifyReport {
    /// Whether total = deposits − withdrawals.
    pub fn balanced(&self) -> bool {
        self.deposited_cents.checked_sub(self.withdrawn_cents) == Some(self.total_cents)
    }

    /// Operator actions recorded: every account opening, unlock and close. (Accounts are
    /// never removed, so the openings are the number of accounts.)
    pub fn operator_events(&self) -> u64 {
        self.accounts as u64 + self.unlocks + self.closed_accounts as u64
    }

    fn new(from: VerifiedFrom, ledger: &Ledger, end: &Position) -> Self {
        let totals = ledger.totals();
        Self {
            from,
            records: end.lsn,
            segments: 0,
            checkpoints_checked: 0,
            accounts: ledger.account_count(),
            closed_accounts: ledger.closed_count(),
            unlocks: ledger.unlocks(),
            total_cents: ledger.sum_of_balances(),
            deposited_cents: totals.deposited_cents,
            withdrawn_cents: totals.withdrawn_cents,
            head: crate::message::hex(&end.chain),
            torn_at: None,
        }
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cents = |value: u128| format_cents(u64::try_from(value).unwrap_or(u64::MAX));
        match self.from {
            VerifiedFrom::FirstRecord => writeln!(f, "from:         the first record")?,
            VerifiedFrom::Checkpoint { next_segment, lsn } => writeln!(
                f,
                "from:         checkpoint before segment {next_segment} at record {lsn} \
                 (older segments were pruned; history before it is not checked)"
            )?,
        }
        writeln!(f, "records:      {}", self.records)?;
        writeln!(f, "segments:     {}", self.segments)?;
        match self.checkpoints_checked {
            0 => writeln!(f, "checkpoints:  none to check")?,
            n => writeln!(f, "checkpoints:  {n} checked, each equal to the replay")?,
        }
        writeln!(f, "accounts:     {}", self.accounts)?;
        writeln!(
            f,
            "operator:     {} events: {} accounts opened, {} unlocked, {} closed",
            self.operator_events(),
            self.accounts,
            self.unlocks,
            self.closed_accounts
        )?;
        writeln!(f, "total:        {}", cents(self.total_cents))?;
        writeln!(f, "deposits:     {}", cents(self.deposited_cents))?;
        writeln!(f, "withdrawals:  {}", cents(self.withdrawn_cents))?;
        let invariant = if self.balanced() {
            "ok (total = deposits - withdrawals)"
        } else {
            "BROKEN"
        };
        writeln!(f, "invariant:    {invariant}")?;
        if let Some((file, offset)) = &self.torn_at {
            writeln!(
                f,
                "torn batch:   {file} at byte offset {offset}: never acknowledged, cut at next start"
            )?;
        }
        write!(f, "head:         {}", self.head)
    }
}

/// Verifies the data directory `data_dir` with the default retention.
pub fn verify(data_dir: &Path) -> Result<VerifyReport, JournalError> {
    verify_storage(&DirStorage::new(data_dir), TxidRetention::default())
}

/// Verifies the journal and checkpoints behind `storage`, read-only.
pub fn verify_storage(storage: &dyn Storage, retention: TxidRetention) -> Result<VerifyReport, JournalError> {
    let found = recovery::inventory(storage)?;
    if found.segments.is_empty() {
        return verify_v1_only(storage, &found, retention);
    }
    let (first, from, mut position, mut ledger) = if found.segments.contains(&1) {
        let (first, position, ledger) = recovery::start_from_the_first_record(storage, &found, retention)?;
        (first, VerifiedFrom::FirstRecord, position, ledger)
    } else {
        oldest_checkpoint(storage, &found, retention)?
    };
    let mut segments = u64::from(found.v1_kept && from == VerifiedFrom::FirstRecord);
    let mut checked = 0;
    let mut torn_at = None;
    let newest = *found.segments.last().expect("non-empty");
    for number in first..=newest {
        if found.checkpoints.contains(&number) {
            compare_checkpoint(storage, number, &position, &ledger, retention)?;
            checked += 1;
        }
        let newest_started = recovery::may_be_torn(storage, &found.segments, number)?;
        let replayed = recovery::replay_segment(storage, number, position, newest_started, &mut ledger)?;
        position = replayed.scan.end;
        if let Some(offset) = replayed.scan.torn_at {
            torn_at = Some((storage.describe(&journal::segment_name(number)), offset));
        }
        segments += 1;
    }
    if let Some(orphan) = found.checkpoints.iter().find(|&&n| n > newest) {
        return Err(JournalError::Inconsistent(format!(
            "{} names segment {orphan}, which does not exist",
            checkpoint::file_name(*orphan)
        )));
    }
    let mut report = VerifyReport::new(from, &ledger, &position);
    report.segments = segments;
    report.checkpoints_checked = checked;
    report.torn_at = torn_at;
    Ok(report)
}

/// The oldest checkpoint that checks out, for a journal whose first segments were pruned.
fn oldest_checkpoint(
    storage: &dyn Storage,
    found: &Inventory,
    retention: TxidRetention,
) -> Result<(u64, VerifiedFrom, Position, Ledger), JournalError> {
    let first_segment = *found.segments.first().expect("non-empty");
    let number = found
        .checkpoints
        .iter()
        .copied()
        .find(|&n| n >= first_segment)
        .ok_or_else(|| {
            JournalError::Inconsistent(format!(
                "the journal starts at segment {first_segment}, and no checkpoint precedes it"
            ))
        })?;
    let name = checkpoint::file_name(number);
    let loaded = checkpoint::read(storage, &name)?.map_err(|reason| damaged(storage, &name, reason))?;
    let ledger = snapshot::decode(&loaded.snapshot, retention)
        .map_err(|err| damaged(storage, &name, format!("its ledger snapshot does not parse: {err}")))?;
    let from = VerifiedFrom::Checkpoint {
        next_segment: number,
        lsn: loaded.position.lsn,
    };
    Ok((number, from, loaded.position, ledger))
}

fn damaged(storage: &dyn Storage, name: &str, reason: String) -> JournalError {
    JournalError::Corrupt {
        file: storage.describe(name),
        offset: 0,
        reason,
    }
}

/// Checks that checkpoint `number` holds exactly the replayed state at `position`.
fn compare_checkpoint(
    storage: &dyn Storage,
    number: u64,
    position: &Position,
    ledger: &Ledger,
    retention: TxidRetention,
) -> Result<(), JournalError> {
    let name = checkpoint::file_name(number);
    let loaded = checkpoint::read(storage, &name)?.map_err(|reason| damaged(storage, &name, reason))?;
    if loaded.position != *position {
        return Err(damaged(
            storage,
            &name,
            format!(
                "it claims record {} but segment {number} starts at record {}",
                loaded.position.lsn, position.lsn
            ),
        ));
    }
    // Compared as decoded states: a checkpoint lists each account's ids in memory order
    // (it is encoded under the ledger lock, where sorting would stall transactions).
    let stored = snapshot::decode(&loaded.snapshot, retention)
        .map_err(|err| damaged(storage, &name, format!("its ledger snapshot does not parse: {err}")))?;
    if stored != *ledger {
        return Err(damaged(
            storage,
            &name,
            format!(
                "its ledger differs from the replay of the journal up to record {}",
                position.lsn
            ),
        ));
    }
    Ok(())
}

/// A data directory of the first release that no server of this release has opened yet.
fn verify_v1_only(
    storage: &dyn Storage,
    found: &Inventory,
    retention: TxidRetention,
) -> Result<VerifyReport, JournalError> {
    let mut ledger = Ledger::with_retention(retention);
    if !found.v1_to_migrate {
        return Ok(VerifyReport::new(
            VerifiedFrom::FirstRecord,
            &ledger,
            &Position::genesis(),
        ));
    }
    let file = storage.open(journal_v1::FILE_NAME)?;
    let described = storage.describe(journal_v1::FILE_NAME);
    let mut lsn = 0;
    let scan = journal_v1::scan(StorageReader::new(file.as_ref()), &described, |_, payload| {
        lsn += 1;
        recovery::apply_payload(&mut ledger, lsn, payload)
    })?;
    let end = Position {
        lsn: scan.records,
        chain: scan.head,
    };
    let mut report = VerifyReport::new(VerifiedFrom::FirstRecord, &ledger, &end);
    report.segments = 1;
    report.torn_at = scan.torn_tail_at.map(|offset| (described, offset));
    Ok(report)
}
