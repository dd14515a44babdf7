//! A simulated disk for crash tests, in the spirit of TigerBeetle's VOPR: deterministic,
//! in memory, and no kinder than a real disk.
//!
//! What it models, and why each is allowed by a real disk:
//! - a write reaches "the disk" only at a sync of its file; until then it can be lost;
//! - at a crash, each 512-byte sector that an unsynced write touched is either persisted or
//!   not, independently and in any pattern (disks promise no order inside a write); the
//!   caller chooses the pattern, so tests can enumerate every one or draw them from a seed;
//! - a create, rename or remove is durable only after [`Storage::sync_dir`];
//! - a sync can fail ([`SimDisk::fail_sync_at`]); the data it covered is then not durable;
//! - the process can crash at any storage operation ([`SimDisk::crash_at`]): that operation
//!   (a write is applied first, so it can be torn) and every later one fail until
//!   [`SimDisk::restart`] (the machine lost power: only what was synced is certain) or
//!   [`SimDisk::restart_process`] (only the process died: the page cache keeps every write,
//!   synced or not, until a later power loss).
//!
//! Invariant: after `restart`, every file holds exactly its last synced bytes plus a subset
//! of the sectors written since, as chosen by the pattern; files opened before the crash
//! answer every call with an error.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Storage, StorageFile};

/// The granularity at which the simulated disk tears a write.
pub const SECTOR_BYTES: u64 = 512;

#[derive(Debug, Default, Clone)]
struct FileData {
    /// What a read sees now.
    current: Vec<u8>,
    /// What survives a crash for certain.
    durable: Vec<u8>,
    /// Sectors written since the last sync.
    dirty_sectors: BTreeSet<u64>,
}

#[derive(Debug, Default)]
struct State {
    files: Vec<FileData>,
    names: BTreeMap<String, usize>,
    durable_names: BTreeMap<String, usize>,
    generation: u64,
    operations: u64,
    crash_at: Option<u64>,
    fail_sync_at: Option<u64>,
    crashed: bool,
}

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash: the disk is gone until restart")
}

impl State {
    /// Counts one operation; fails it if the process "crashed" at or before it.
    fn step(&mut self) -> io::Result<()> {
        if self.crashed {
            return Err(crashed_error());
        }
        self.operations += 1;
        if self.crash_at == Some(self.operations) {
            self.crashed = true;
        }
        Ok(())
    }
}

/// The simulated disk. Clone the `Arc` to share it between the code under test and the test.
#[derive(Debug, Default)]
pub struct SimDisk {
    state: Mutex<State>,
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Storage operations performed so far (the clock that `crash_at` counts in).
    pub fn operations(&self) -> u64 {
        self.lock().operations
    }

    /// Crash the process at the `n`-th operation from the start (counted by
    /// [`SimDisk::operations`]); a write at that point is applied first, so it can be torn.
    pub fn crash_at(&self, n: u64) {
        self.lock().crash_at = Some(n);
    }

    /// Make the sync that is the `n`-th operation fail (its data stays unsynced).
    pub fn fail_sync_at(&self, n: u64) {
        self.lock().fail_sync_at = Some(n);
    }

    /// Whether the simulated process has crashed.
    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Every sector written but not yet synced, as (file name, sector index).
    pub fn unsynced_sectors(&self) -> Vec<(String, u64)> {
        let state = self.lock();
        let mut sectors = Vec::new();
        for (name, &id) in &state.names {
            for &sector in &state.files[id].dirty_sectors {
                sectors.push((name.clone(), sector));
            }
        }
        sectors
    }

    /// Crashes (if not already crashed) and comes back: the directory is what was last
    /// synced, each file its synced bytes plus the unsynced sectors for which `persisted`
    /// says yes. Handles opened before are dead.
    pub fn restart(&self, mut persisted: impl FnMut(&str, u64) -> bool) {
        let mut state = self.lock();
        let names: Vec<(String, usize)> = state.durable_names.iter().map(|(n, &id)| (n.clone(), id)).collect();
        for (name, id) in names {
            let file = &mut state.files[id];
            let mut survived = file.durable.clone();
            for &sector in &file.dirty_sectors {
                if !persisted(&name, sector) {
                    continue;
                }
                let start = sector * SECTOR_BYTES;
                let end = (start + SECTOR_BYTES).min(file.current.len() as u64);
                if start >= end {
                    continue;
                }
                if survived.len() < end as usize {
                    survived.resize(end as usize, 0);
                }
                survived[start as usize..end as usize].copy_from_slice(&file.current[start as usize..end as usize]);
            }
            file.current = survived.clone();
            file.durable = survived;
            file.dirty_sectors.clear();
        }
        state.names = state.durable_names.clone();
        state.generation += 1;
        state.crashed = false;
        state.crash_at = None;
        state.fail_sync_at = None;
    }

    /// Only the process dies and comes back: the kernel's page cache survives, so every file
    /// reads as it was (unsynced writes included, and still unsynced) and the directory keeps
    /// its names. Handles opened before are dead.
    pub fn restart_process(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.crashed = false;
        state.crash_at = None;
        state.fail_sync_at = None;
    }

    /// The current bytes of `name` (for assertions and for tests that damage a file).
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        let state = self.lock();
        state.names.get(name).map(|&id| state.files[id].current.clone())
    }

    /// Replaces the bytes of `name`, durably (a test damaging the disk on purpose).
    pub fn overwrite(&self, name: &str, bytes: &[u8]) {
        let mut state = self.lock();
        let id = *state.names.get(name).expect("file exists");
        let file = &mut state.files[id];
        file.current = bytes.to_vec();
        file.durable = bytes.to_vec();
        file.dirty_sectors.clear();
    }
}

/// A [`Storage`] view of a shared [`SimDisk`].
#[derive(Debug, Clone)]
pub struct SimStorage(pub Arc<SimDisk>);

struct SimFile {
    disk: Arc<SimDisk>,
    id: usize,
    generation: u64,
}

impl SimFile {
    fn with<T>(&self, action: impl FnOnce(&mut State, usize) -> io::Result<T>) -> io::Result<T> {
        let mut state = self.disk.lock();
        if state.generation != self.generation {
            return Err(crashed_error());
        }
        action(&mut state, self.id)
    }
}

fn mark_dirty(file: &mut FileData, start: u64, end: u64) {
    if end > start {
        for sector in start / SECTOR_BYTES..end.div_ceil(SECTOR_BYTES) {
            file.dirty_sectors.insert(sector);
        }
    }
}

impl StorageFile for SimFile {
    fn size(&self) -> io::Result<u64> {
        self.with(|state, id| {
            state.step()?;
            Ok(state.files[id].current.len() as u64)
        })
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with(|state, id| {
            if state.crashed {
                return Err(crashed_error());
            }
            let data = &state.files[id].current;
            let start = (offset as usize).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        })
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(|state, id| {
            state.step()?;
            let file = &mut state.files[id];
            let end = offset as usize + buf.len();
            if file.current.len() < end {
                file.current.resize(end, 0);
            }
            file.current[offset as usize..end].copy_from_slice(buf);
            mark_dirty(file, offset, end as u64);
            if state.crashed { Err(crashed_error()) } else { Ok(()) }
        })
    }
    fn sync_data(&self) -> io::Result<()> {
        self.sync_all()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.with(|state, id| {
            state.step()?;
            if state.crashed {
                return Err(crashed_error());
            }
            if state.fail_sync_at == Some(state.operations) {
                return Err(io::Error::other("simulated sync failure"));
            }
            let file = &mut state.files[id];
            file.durable = file.current.clone();
            file.dirty_sectors.clear();
            Ok(())
        })
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|state, id| {
            state.step()?;
            let file = &mut state.files[id];
            let old = file.current.len() as u64;
            file.current.resize(len as usize, 0);
            mark_dirty(file, old.min(len), old.max(len));
            if state.crashed { Err(crashed_error()) } else { Ok(()) }
        })
    }
}

impl SimStorage {
    fn file(&self, state: &State, id: usize) -> Box<dyn StorageFile> {
        Box::new(SimFile {
            disk: Arc::clone(&self.0),
            id,
            generation: state.generation,
        })
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file {name}"))
}

impl Storage for SimStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut state = self.0.lock();
        state.step()?;
        Ok(state.names.keys().cloned().collect())
    }
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.0.lock();
        state.step()?;
        if state.names.contains_key(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, name.to_string()));
        }
        state.files.push(FileData::default());
        let id = state.files.len() - 1;
        state.names.insert(name.to_string(), id);
        if state.crashed {
            return Err(crashed_error());
        }
        Ok(self.file(&state, id))
    }
    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.0.lock();
        state.step()?;
        let id = *state.names.get(name).ok_or_else(|| not_found(name))?;
        if state.crashed {
            return Err(crashed_error());
        }
        Ok(self.file(&state, id))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.0.lock();
        state.step()?;
        let id = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_string(), id);
        if state.crashed { Err(crashed_error()) } else { Ok(()) }
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = self.0.lock();
        state.step()?;
        state.names.remove(name).ok_or_else(|| not_found(name))?;
        if state.crashed { Err(crashed_error()) } else { Ok(()) }
    }
    fn sync_dir(&self) -> io::Result<()> {
        let mut state = self.0.lock();
        state.step()?;
        if state.crashed {
            return Err(crashed_error());
        }
        if state.fail_sync_at == Some(state.operations) {
            return Err(io::Error::other("simulated directory sync failure"));
        }
        state.durable_names = state.names.clone();
        Ok(())
    }
    fn describe(&self, name: &str) -> String {
        format!("sim:{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_vanish_at_a_crash_and_synced_ones_stay() {
        let disk = SimDisk::new();
        let storage = SimStorage(Arc::clone(&disk));
        let file = storage.create("a").unwrap();
        storage.sync_dir().unwrap();
        file.write_all_at(b"kept", 0).unwrap();
        file.sync_data().unwrap();
        file.write_all_at(b"lost", 4).unwrap();
        disk.restart(|_, _| false);
        assert_eq!(disk.read("a").unwrap(), b"kept");
        assert!(file.size().is_err(), "a handle from before the crash is dead");
    }

    #[test]
    fn a_crash_keeps_exactly_the_chosen_sectors_of_an_unsynced_write() {
        let disk = SimDisk::new();
        let storage = SimStorage(Arc::clone(&disk));
        let file = storage.create("a").unwrap();
        storage.sync_dir().unwrap();
        file.write_all_at(&[7u8; 3 * 512], 0).unwrap();
        assert_eq!(disk.unsynced_sectors().len(), 3);
        disk.restart(|_, sector| sector == 1);
        let bytes = disk.read("a").unwrap();
        assert_eq!(bytes.len(), 1024);
        assert!(bytes[..512].iter().all(|&b| b == 0));
        assert!(bytes[512..].iter().all(|&b| b == 7));
    }

    #[test]
    fn a_name_is_durable_only_after_the_directory_sync() {
        let disk = SimDisk::new();
        let storage = SimStorage(Arc::clone(&disk));
        let file = storage.create("a").unwrap();
        file.sync_all().unwrap();
        disk.restart(|_, _| true);
        assert!(disk.read("a").is_none());
    }

    #[test]
    fn the_crashing_operation_and_every_later_one_fail() {
        let disk = SimDisk::new();
        let storage = SimStorage(Arc::clone(&disk));
        let file = storage.create("a").unwrap();
        disk.crash_at(disk.operations() + 2);
        assert!(file.write_all_at(b"x", 0).is_ok());
        assert!(file.write_all_at(b"y", 1).is_err());
        assert!(storage.sync_dir().is_err());
        assert!(disk.has_crashed());
    }

    #[test]
    fn a_failed_sync_leaves_the_data_unsynced() {
        let disk = SimDisk::new();
        let storage = SimStorage(Arc::clone(&disk));
        let file = storage.create("a").unwrap();
        storage.sync_dir().unwrap();
        file.write_all_at(b"data", 0).unwrap();
        disk.fail_sync_at(disk.operations() + 1);
        assert!(file.sync_data().is_err());
        assert_eq!(disk.unsynced_sectors().len(), 1);
    }
}
