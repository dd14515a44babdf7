//! Tests of the group commit: who writes a batch, the hand-over to the commit thread,
//! records nobody claimed, shutdown, and the stats file.

use super::*;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// An in-memory segment that notes which thread ran each `fdatasync`, and can hold the
/// next sync until the test lets it go.
#[derive(Default)]
struct WatchedFile {
    bytes: Mutex<Vec<u8>>,
    sync_threads: Mutex<Vec<String>>,
    hold_syncs: Mutex<bool>,
    released: Condvar,
    panic_at_next_sync: Mutex<bool>,
}

impl WatchedFile {
    fn syncs_by(&self) -> Vec<String> {
        self.sync_threads.lock().unwrap().clone()
    }

    fn hold(&self, held: bool) {
        *self.hold_syncs.lock().unwrap() = held;
        self.released.notify_all();
    }
}

impl StorageFile for Arc<WatchedFile> {
    fn size(&self) -> io::Result<u64> {
        Ok(self.bytes.lock().unwrap().len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let bytes = self.bytes.lock().unwrap();
        let from = (offset as usize).min(bytes.len());
        let n = buf.len().min(bytes.len() - from);
        buf[..n].copy_from_slice(&bytes[from..from + n]);
        Ok(n)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut bytes = self.bytes.lock().unwrap();
        let end = offset as usize + buf.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[offset as usize..end].copy_from_slice(buf);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut held = self.hold_syncs.lock().unwrap();
        while *held {
            held = self.released.wait(held).unwrap();
        }
        drop(held);
        if std::mem::take(&mut *self.panic_at_next_sync.lock().unwrap()) {
            panic!("a bug while writing the journal");
        }
        let name = thread::current().name().unwrap_or("unnamed").to_string();
        self.sync_threads.lock().unwrap().push(name);
        Ok(())
    }
    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.bytes.lock().unwrap().resize(len as usize, 0);
        Ok(())
    }
}

/// A journal with its commit thread, on a fresh watched segment.
fn started_journal() -> (Arc<Journal>, Arc<WatchedFile>) {
    let file = Arc::new(WatchedFile::default());
    file.write_all_at(&journal::encode_segment_header(1, &Position::genesis()), 0)
        .unwrap();
    let journal = Journal::start(WriterSetup {
        file: Box::new(Arc::clone(&file)),
        segment: 1,
        offset: journal::SECTOR_BYTES,
        end: Position::genesis(),
        records_in_segment: 0,
        preallocate_bytes: 4096,
        checkpoint_every_records: u64::MAX,
        exit_on_failure: false,
        stats_path: None,
    });
    assert!(eventually(|| journal.lock().thread_asleep), "the commit thread starts");
    (journal, file)
}

fn event() -> Event {
    Event::UnknownNameLoginFailed { at: 1 }
}

/// Polls `done` for up to 10 s (generous for a loaded CI machine).
fn eventually(done: impl Fn() -> bool) -> bool {
    let give_up = Instant::now() + Duration::from_secs(10);
    while Instant::now() < give_up {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(1));
    }
    false
}

/// A thread called `name` that appends one record and waits until it is durable, as a
/// connection does; it returns the record's position.
fn append_and_wait(journal: &Arc<Journal>, name: &str) -> thread::JoinHandle<u64> {
    let journal = Arc::clone(journal);
    thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let lsn = journal.append(&event());
            journal.wait_durable(lsn).unwrap();
            lsn
        })
        .unwrap()
}

/// Starts a first waiter, which becomes the writer, and holds it in the sync of a batch of
/// its own record alone: from then on the pending batch can only grow.
fn first_writer_held_in_its_sync(journal: &Arc<Journal>, file: &WatchedFile) -> thread::JoinHandle<u64> {
    file.hold(true);
    let first = append_and_wait(journal, "first-connection");
    assert!(eventually(|| journal.lock().taken_lsn == 1));
    first
}

#[test]
fn a_lone_waiter_writes_and_syncs_its_own_batch_and_the_commit_thread_stays_asleep() {
    let (journal, file) = started_journal();
    let lsn = append_and_wait(&journal, "lone-connection").join().unwrap();
    assert!(journal.is_durable(lsn));
    assert_eq!(file.syncs_by(), ["lone-connection"]);
    journal.shutdown();
    assert_eq!(file.syncs_by(), ["lone-connection"], "nothing was left for the thread");
}

#[test]
fn an_appended_record_nobody_waits_for_is_written_only_once_commit_unclaimed_is_called() {
    let (journal, file) = started_journal();
    let lsn = journal.append(&event());
    thread::sleep(Duration::from_millis(50));
    assert!(!journal.is_durable(lsn), "appending wakes nobody");
    journal.commit_unclaimed();
    assert!(eventually(|| journal.is_durable(lsn)), "the commit thread writes it");
    assert_eq!(file.syncs_by(), ["journal-commit"]);
    journal.shutdown();
}

#[test]
fn records_appended_while_a_waiter_syncs_are_handed_to_the_commit_thread_and_their_waiters_woken() {
    let (journal, file) = started_journal();
    let first = first_writer_held_in_its_sync(&journal, &file);
    // These queue behind the held writer.
    let later: Vec<_> = (0..3).map(|_| append_and_wait(&journal, "later-connection")).collect();
    assert!(eventually(|| journal.lock().waiters.len() == 3));
    file.hold(false);
    first.join().unwrap();
    for waiter in later {
        let lsn = waiter.join().unwrap();
        assert!(journal.is_durable(lsn));
    }
    let syncs = file.syncs_by();
    assert_eq!(
        syncs,
        ["first-connection", "journal-commit"],
        "the first writer synced its own record, then went back to its connection"
    );
    assert_eq!(journal.stats().records_written, 4);
    journal.shutdown();
}

#[test]
fn shutdown_writes_what_is_still_pending() {
    let (journal, file) = started_journal();
    let lsn = journal.append(&event());
    journal.shutdown();
    assert_eq!(file.syncs_by(), ["journal-commit"]);
    assert_eq!(journal.stats().records_written, 1);
    assert_eq!(lsn, 1);
}

#[test]
fn the_stats_file_is_0600_and_a_planted_link_is_replaced_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "keep").unwrap();
    let path = dir.path().join("commit_stats");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    std::os::unix::fs::symlink(&target, path.with_extension("tmp")).unwrap();
    write_stats_file(&path, "syncs 1\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "keep",
        "no write through a link"
    );
    let metadata = std::fs::symlink_metadata(&path).unwrap();
    assert!(metadata.file_type().is_file());
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "syncs 1\n");
}

#[test]
fn a_writer_that_panics_poisons_the_journal_instead_of_leaving_later_waiters_hanging() {
    let (journal, file) = started_journal();
    *file.panic_at_next_sync.lock().unwrap() = true;
    let writer = thread::spawn({
        let journal = Arc::clone(&journal);
        move || {
            let lsn = journal.append(&event());
            journal.wait_durable(lsn)
        }
    });
    assert!(writer.join().is_err(), "the writer panicked in its sync");
    let lsn = journal.append(&event());
    assert!(matches!(journal.wait_durable(lsn), Err(JournalError::Poisoned)));
    assert!(!journal.is_durable(lsn));
}

#[test]
fn an_append_that_would_overfill_the_batch_waits_until_the_writer_has_taken_the_batch() {
    let (journal, file) = started_journal();
    let first = first_writer_held_in_its_sync(&journal, &file);
    // Fill the pending batch as far as whole records fit; none of these appends waits.
    let record_bytes = journal::RECORD_OVERHEAD_BYTES + event().encode().len();
    let fitting = (MAX_BATCH_BYTES - BATCH_HEADER_BYTES) / record_bytes;
    for _ in 0..fitting {
        journal.append(&event());
    }
    let overfill = thread::spawn({
        let journal = Arc::clone(&journal);
        move || journal.append(&event())
    });
    thread::sleep(Duration::from_millis(100));
    assert!(!overfill.is_finished(), "one more record would make the batch too big");
    file.hold(false);
    first.join().unwrap();
    let last = overfill.join().unwrap();
    assert_eq!(last, 1 + fitting as u64 + 1);
    journal.wait_durable(last).unwrap();
    let batches = file.syncs_by().len();
    assert!(batches >= 3, "the full batch went alone: {batches} syncs");
    journal.shutdown();
}
