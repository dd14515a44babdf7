//! Start-up recovery and `verify`: from the files of the data directory back to the ledger.
//!
//! Recovery loads the newest checkpoint that checks out and replays the segments after it.
//! A checkpoint that does not check out is set aside (renamed `*.damaged`) and named in the
//! report, and recovery falls back to an older one — or to the very first record — plus a
//! longer replay: slower, never wrong. Only the newest segment that was started may end in a
//! torn batch, which is cut; anything else that does not check out stops recovery with the
//! file and byte offset. A data directory of the first release (`journal.log`) is migrated
//! once: its records are read, a checkpoint is written at their end and segment 1 continues
//! the same chain; the old file is kept as `journal-v1.log`.
//!
//! `verify` replays every record from the first one (or, after `prune`, from the oldest
//! checkpoint kept, and says so), checks every checksum and chain value, and checks that
//! each checkpoint equals the replay at its position.

use std::collections::BTreeSet;

use super::checkpoint::{self, Checkpoint};
use super::events::Event;
use super::journal::{self, Position};
use super::journal_v1;
use super::ledger::Ledger;
use super::retention::TxidRetention;
use super::snapshot;
use super::storage::{Storage, StorageFile, StorageReader};
use crate::error::JournalError;

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The checkpoint loaded, by the segment it precedes, and its position.
    pub checkpoint: Option<(u64, u64)>,
    /// Records replayed after it.
    pub records_replayed: u64,
    /// The position after the last record.
    pub end_lsn: u64,
    /// A torn last batch that was cut: file and byte offset.
    pub torn_batch: Option<(String, u64)>,
    /// Checkpoints that did not check out: file name and reason (each was renamed
    /// `*.damaged` and is kept for inspection).
    pub damaged_checkpoints: Vec<(String, String)>,
    /// Records read from a first-release `journal.log` that was migrated on this start.
    pub migrated_v1_records: Option<u64>,
}

/// The state recovered, and where the journal continues.
pub struct Recovered {
    /// The ledger as of the last record.
    pub ledger: Ledger,
    /// The position after the last record.
    pub end: Position,
    /// The newest segment, open for writing.
    pub file: Box<dyn StorageFile>,
    /// Its number.
    pub segment: u64,
    /// Where its next batch goes.
    pub end_offset: u64,
    /// Records already in it.
    pub records_in_segment: u64,
    /// What was found.
    pub report: RecoveryReport,
}

/// The files of a data directory that belong to the journal.
#[derive(Debug, Default)]
pub(super) struct Inventory {
    /// Segment numbers present.
    pub(super) segments: BTreeSet<u64>,
    /// Checkpoints present, by the segment after them.
    pub(super) checkpoints: BTreeSet<u64>,
    /// A first-release `journal.log` not yet migrated.
    pub(super) v1_to_migrate: bool,
    /// A first-release journal kept as `journal-v1.log`.
    pub(super) v1_kept: bool,
}

pub(super) fn inventory(storage: &dyn Storage) -> Result<Inventory, JournalError> {
    let mut found = Inventory::default();
    for name in storage.list()? {
        if let Some(number) = journal::parse_segment_name(&name) {
            found.segments.insert(number);
        } else if let Some(number) = checkpoint::parse_file_name(&name) {
            found.checkpoints.insert(number);
        } else if name == journal_v1::FILE_NAME {
            found.v1_to_migrate = true;
        } else if name == journal_v1::KEPT_NAME {
            found.v1_kept = true;
        }
    }
    Ok(found)
}

pub(super) fn apply_payload(ledger: &mut Ledger, lsn: u64, payload: &[u8]) -> Result<(), String> {
    let event = Event::decode(payload).map_err(|err| format!("record does not parse: {err}"))?;
    ledger
        .apply(&event, lsn)
        .map_err(|reason| format!("record breaks a ledger rule: {reason}"))
}

/// A first-release journal replayed: where it ends, a torn tail, and the open file.
struct V1Replay {
    end: Position,
    torn_tail_at: Option<u64>,
    file: Box<dyn StorageFile>,
}

/// Replays a first-release journal into `ledger`.
fn replay_v1(storage: &dyn Storage, name: &str, ledger: &mut Ledger) -> Result<V1Replay, JournalError> {
    let file = storage.open(name)?;
    let mut lsn = 0;
    let report = journal_v1::scan(
        StorageReader::new(file.as_ref()),
        &storage.describe(name),
        |_, payload| {
            lsn += 1;
            apply_payload(ledger, lsn, payload)
        },
    )?;
    let end = Position {
        lsn: report.records,
        chain: report.head,
    };
    Ok(V1Replay {
        end,
        torn_tail_at: report.torn_tail_at,
        file,
    })
}

/// Migrates a first-release `journal.log`: checkpoint 1 at its end, segment 1 after it.
fn migrate_v1(storage: &dyn Storage, retention: TxidRetention, now: u64) -> Result<u64, JournalError> {
    let mut ledger = Ledger::with_retention(retention);
    let V1Replay {
        end,
        torn_tail_at,
        file,
    } = replay_v1(storage, journal_v1::FILE_NAME, &mut ledger)?;
    if let Some(offset) = torn_tail_at {
        file.set_len(offset)?;
    }
    // Its last records may be in the page cache only (a process that died mid-sync): make
    // what is about to be checkpointed durable first.
    file.sync_all()?;
    if !storage.list()?.contains(&journal::segment_name(1)) {
        create_segment(storage, 1, &end)?;
    }
    let checkpoint = Checkpoint {
        next_segment: 1,
        position: end,
        written_at: now,
        snapshot: snapshot::encode(&ledger),
    };
    checkpoint::write(storage, &checkpoint)?;
    storage.rename(journal_v1::FILE_NAME, journal_v1::KEPT_NAME)?;
    storage.sync_dir()?;
    Ok(end.lsn)
}

/// Creates segment `number` starting at `base`, with its header, durably.
pub fn create_segment(
    storage: &dyn Storage,
    number: u64,
    base: &Position,
) -> Result<Box<dyn StorageFile>, JournalError> {
    let file = storage.create(&journal::segment_name(number))?;
    file.write_all_at(&journal::encode_segment_header(number, base), 0)?;
    file.sync_all()?;
    storage.sync_dir()?;
    Ok(file)
}

/// The checkpoint to start from: the newest that checks out, with its ledger. A checkpoint
/// whose segment is missing is not damage to step over but a lost segment: the records in
/// it were acknowledged, so recovery refuses ([`JournalError::Inconsistent`]).
fn newest_good_checkpoint(
    storage: &dyn Storage,
    found: &Inventory,
    retention: TxidRetention,
    report: &mut RecoveryReport,
) -> Result<Option<(Checkpoint, Ledger)>, JournalError> {
    for &number in found.checkpoints.iter().rev() {
        if !found.segments.contains(&number) {
            return Err(JournalError::Inconsistent(format!(
                "{} names segment {}, which is missing",
                checkpoint::file_name(number),
                journal::segment_name(number)
            )));
        }
        let name = checkpoint::file_name(number);
        // A read the disk refuses says nothing about the file: it stops recovery (to be
        // retried), instead of setting a good checkpoint aside.
        let loaded = checkpoint::read(storage, &name)?.and_then(|checkpoint| {
            let ledger = snapshot::decode(&checkpoint.snapshot, retention)
                .map_err(|err| format!("its ledger snapshot does not parse: {err}"))?;
            Ok((checkpoint, ledger))
        });
        match loaded {
            Ok(good) => return Ok(Some(good)),
            Err(reason) => report.damaged_checkpoints.push((name, reason)),
        }
    }
    Ok(None)
}

/// Where replay starts without a checkpoint: the first record, through `journal-v1.log`
/// if segment 1 continues one.
pub(super) fn start_from_the_first_record(
    storage: &dyn Storage,
    found: &Inventory,
    retention: TxidRetention,
) -> Result<(u64, Position, Ledger), JournalError> {
    let first = *found.segments.first().expect("checked non-empty");
    if first != 1 {
        return Err(JournalError::Inconsistent(format!(
            "segments before {first} were pruned and no checkpoint is readable"
        )));
    }
    let mut ledger = Ledger::with_retention(retention);
    let base = segment_base(storage, 1)?.unwrap_or_else(Position::genesis);
    if base.lsn == 0 {
        return Ok((1, Position::genesis(), ledger));
    }
    if !found.v1_kept {
        return Err(JournalError::Inconsistent(
            "segment 1 continues journal-v1.log, which is missing, and no checkpoint is readable".into(),
        ));
    }
    let replayed = replay_v1(storage, journal_v1::KEPT_NAME, &mut ledger)?;
    let end = replayed.end;
    if replayed.torn_tail_at.is_some() || end != base {
        return Err(JournalError::Inconsistent(
            "journal-v1.log does not end where segment 1 starts".into(),
        ));
    }
    Ok((1, end, ledger))
}

/// The base position in segment `number`'s header; `None` if the header was never written.
fn segment_base(storage: &dyn Storage, number: u64) -> Result<Option<Position>, JournalError> {
    let name = journal::segment_name(number);
    let file = storage.open(&name)?;
    let mut sector = vec![0u8; journal::SECTOR_BYTES as usize];
    file.read_full_at(&mut sector, 0)?;
    match journal::decode_segment_header(&sector) {
        Ok(header) => Ok(header.map(|(_, base)| base)),
        Err(reason) => Err(JournalError::Corrupt {
            file: storage.describe(&name),
            offset: 0,
            reason,
        }),
    }
}

/// Whether segment `number` may end in a torn batch: it is the newest one, or the one
/// before a newest that was created but never started (its header is still zero). Every
/// other segment was finished with a sync before the next one began. A missing segment in
/// the range is [`JournalError::Inconsistent`].
pub(super) fn may_be_torn(storage: &dyn Storage, segments: &BTreeSet<u64>, number: u64) -> Result<bool, JournalError> {
    if !segments.contains(&number) {
        return Err(JournalError::Inconsistent(format!(
            "segment {} is missing",
            journal::segment_name(number)
        )));
    }
    let newest = *segments.last().expect("contains number");
    Ok(number == newest || (number + 1 == newest && segment_base(storage, newest)?.is_none()))
}

/// Writes the bytes of the batch at `offset` again and syncs them. A process that died while
/// its sync was running leaves that batch in the page cache only: readable now, but lost to
/// a power failure, and after a failed sync the kernel may even have marked it clean. It is
/// the only batch that can be in that state (the next one starts after its sync returns),
/// and recovery is about to build on it, so it is made durable first.
fn make_durable(file: &dyn StorageFile, offset: u64, len: u64) -> Result<(), JournalError> {
    let mut bytes = vec![0u8; usize::try_from(len).map_err(|_| JournalError::Inconsistent("batch too long".into()))?];
    let got = file.read_full_at(&mut bytes, offset)?;
    bytes.truncate(got);
    file.write_all_at(&bytes, offset)?;
    file.sync_all()?;
    Ok(())
}

/// One segment replayed: the scan, and the open file.
pub(super) struct Replayed {
    /// What the scan found.
    pub(super) scan: journal::SegmentScan,
    file: Box<dyn StorageFile>,
    header_written: bool,
}

/// Replays segment `number`, which must start at `start`, into `ledger`.
pub(super) fn replay_segment(
    storage: &dyn Storage,
    number: u64,
    start: Position,
    newest: bool,
    ledger: &mut Ledger,
) -> Result<Replayed, JournalError> {
    let name = journal::segment_name(number);
    let described = storage.describe(&name);
    let file = storage.open(&name)?;
    let mut sector = vec![0u8; journal::SECTOR_BYTES as usize];
    file.read_full_at(&mut sector, 0)?;
    let header = journal::decode_segment_header(&sector).map_err(|reason| JournalError::Corrupt {
        file: described.clone(),
        offset: 0,
        reason,
    })?;
    let header_written = match header {
        Some((found_number, base)) if found_number == number && base == start => true,
        Some(_) => {
            return Err(JournalError::Inconsistent(format!(
                "{described} does not start where the segment or checkpoint before it ends"
            )));
        }
        None => false,
    };
    let scan = if header_written {
        journal::scan_segment(file.as_ref(), &described, start, newest, |lsn, payload| {
            apply_payload(ledger, lsn, payload)
        })?
    } else {
        // A segment created but never started holds nothing but zeros.
        let mut probe = vec![0u8; 64 * 1024];
        let mut at = 0;
        loop {
            let got = file.read_at(&mut probe, at)?;
            if got == 0 {
                break;
            }
            if probe[..got].iter().any(|&b| b != 0) {
                return Err(JournalError::Corrupt {
                    file: described,
                    offset: 0,
                    reason: "segment header missing but data present".into(),
                });
            }
            at += got as u64;
        }
        journal::SegmentScan {
            end: start,
            end_offset: journal::SECTOR_BYTES,
            batches: 0,
            torn_at: None,
            last_batch: None,
        }
    };
    Ok(Replayed {
        scan,
        file,
        header_written,
    })
}

/// Recovers the data directory behind `storage` for a server: migrates a first-release
/// journal, sets damaged checkpoints aside, cuts a torn last batch, and opens the newest
/// segment for writing (creating segment 1 in a new directory).
pub fn recover(storage: &dyn Storage, retention: TxidRetention, now: u64) -> Result<Recovered, JournalError> {
    let mut report = RecoveryReport::default();
    let mut found = inventory(storage)?;
    if found.v1_to_migrate {
        report.migrated_v1_records = Some(migrate_v1(storage, retention, now)?);
        found = inventory(storage)?;
    }
    if found.segments.is_empty() {
        if !found.checkpoints.is_empty() {
            return Err(JournalError::Inconsistent(
                "checkpoints without any journal segment".into(),
            ));
        }
        let file = create_segment(storage, 1, &Position::genesis())?;
        return Ok(Recovered {
            ledger: Ledger::with_retention(retention),
            end: Position::genesis(),
            file,
            segment: 1,
            end_offset: journal::SECTOR_BYTES,
            records_in_segment: 0,
            report,
        });
    }
    let (first, start, mut ledger) = match newest_good_checkpoint(storage, &found, retention, &mut report)? {
        Some((checkpoint, ledger)) => {
            report.checkpoint = Some((checkpoint.next_segment, checkpoint.position.lsn));
            (checkpoint.next_segment, checkpoint.position, ledger)
        }
        None => start_from_the_first_record(storage, &found, retention)?,
    };
    let newest = *found.segments.last().expect("non-empty");
    let mut position = start;
    let mut last = None;
    for number in first..=newest {
        let newest_started = may_be_torn(storage, &found.segments, number)?;
        let replayed = replay_segment(storage, number, position, newest_started, &mut ledger)?;
        position = replayed.scan.end;
        if let Some(offset) = replayed.scan.torn_at {
            replayed.file.set_len(offset)?;
            replayed.file.sync_all()?;
            report.torn_batch = Some((storage.describe(&journal::segment_name(number)), offset));
        }
        if newest_started && let Some((offset, len)) = replayed.scan.last_batch {
            make_durable(replayed.file.as_ref(), offset, len)?;
        }
        last = Some(replayed);
    }
    // Only now that recovery has succeeded: a checkpoint set aside too early would be lost
    // to a start that then fails for another reason.
    for (name, _) in &report.damaged_checkpoints {
        storage.rename(name, &format!("{name}.damaged"))?;
    }
    let last = last.expect("at least one segment replayed");
    report.records_replayed = position.lsn - start.lsn;
    report.end_lsn = position.lsn;
    if !last.header_written {
        last.file
            .write_all_at(&journal::encode_segment_header(newest, &position), 0)?;
        last.file.sync_all()?;
    }
    let base_lsn = segment_base(storage, newest)?.map_or(position.lsn, |base| base.lsn);
    storage.sync_dir()?;
    Ok(Recovered {
        ledger,
        end: position,
        file: last.file,
        segment: newest,
        end_offset: last.scan.end_offset,
        records_in_segment: position.lsn - base_lsn,
        report,
    })
}
