//! The storage seam: every byte the journal and the checkpoints put on disk goes through
//! these two small traits, so tests can swap the real file system for a simulated disk
//! ([`sim`]) that loses unsynced writes, tears a write at sector granularity and fails syncs.
//!
//! The interface is the smallest one the durability code needs: files in one flat data
//! directory, positional reads and writes, `fdatasync`/`fsync`, and the directory operations
//! whose durability also needs a sync (create, rename, remove, then [`Storage::sync_dir`]).
//! Invariant: nothing written is durable until a sync of its file (data) and, for a new,
//! renamed or removed name, a sync of the directory, has returned `Ok`. Code above this seam
//! may assume no more than that; the simulator gives no more than that.

pub mod sim;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One open file of a [`Storage`].
pub trait StorageFile: Send + Sync {
    /// Current size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the written data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes data and metadata such as the length durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Fills `buf` from `offset`; returns how many bytes the file had (fewer at its end).
    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read_at(&mut buf[filled..], offset + filled as u64)? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    }
}

/// A flat directory of files: the data directory, or a simulation of it.
pub trait Storage: Send + Sync {
    /// Names of the files in the directory, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates a new file (mode 0600); fails if the name exists.
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals durable (`fsync` of the directory).
    fn sync_dir(&self) -> io::Result<()>;
    /// A human-readable path of `name`, for messages.
    fn describe(&self, name: &str) -> String;
}

/// Shared handle to a storage, as the journal and checkpoint code hold it.
pub type SharedStorage = Arc<dyn Storage>;

/// The real file system: a data directory.
#[derive(Debug, Clone)]
pub struct DirStorage {
    dir: PathBuf,
}

impl DirStorage {
    /// Storage in `dir`, which must exist.
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    fn path(&self, name: &str) -> PathBuf {
        assert!(
            !name.contains('/') && !name.is_empty() && name != "." && name != "..",
            "storage names are plain file names"
        );
        self.dir.join(name)
    }
}

struct DirFile(File);

impl StorageFile for DirFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Storage for DirStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.path(name))?;
        Ok(Box::new(DirFile(file)))
    }
    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).open(self.path(name))?;
        Ok(Box::new(DirFile(file)))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.path(from), self.path(to))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name))
    }
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
    fn describe(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// Reads a [`StorageFile`] from the start as a stream (for the version-1 journal reader).
pub struct StorageReader<'a> {
    file: &'a dyn StorageFile,
    offset: u64,
}

impl<'a> StorageReader<'a> {
    /// A reader at the start of `file`.
    pub fn new(file: &'a dyn StorageFile) -> Self {
        Self { file, offset: 0 }
    }
}

impl io::Read for StorageReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = self.file.read_at(buf, self.offset)?;
        self.offset += got as u64;
        Ok(got)
    }
}
