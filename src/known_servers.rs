//! The client's `known_servers` file: which server key belongs to which address, like SSH's
//! `known_hosts`.
//!
//! Format: one `ADDRESS SHA256:fingerprint` pair per line; `#` starts a comment. Invariants:
//! an address has at most one pinned key; a pin is only ever added (after the user
//! confirmed it), never silently replaced, and removed only by the person's explicit
//! `bank-client forget ADDR`; the file is created with mode 0600.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::ClientError;

/// Longest fingerprint line accepted, in bytes (a line is about 70).
const MAX_LINE_BYTES: usize = 512;

/// What the file says about an address and a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinStatus {
    /// The presented key is the pinned one.
    Match,
    /// Nothing is pinned for this address yet (first contact).
    Unknown,
    /// A different key is pinned for this address.
    Mismatch {
        /// The pinned fingerprint.
        pinned: String,
    },
}

/// The pins, as read from the file.
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
    entries: Vec<(String, String)>,
}

/// The default file: `$HOME/.securebank/known_servers`.
pub fn default_path() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".securebank").join("known_servers")
}

/// Whether `text` looks like a fingerprint this program prints.
pub fn is_fingerprint(text: &str) -> bool {
    text.strip_prefix("SHA256:").is_some_and(|b64| {
        b64.len() == 43
            && b64
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/')
    })
}

impl KnownServers {
    /// Reads the file at `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => String::new(),
            Err(err) => {
                return Err(ClientError::KnownServers(format!(
                    "cannot read {}: {}",
                    path.display(),
                    err.kind()
                )));
            }
        };
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            match (fields.next(), fields.next(), fields.next()) {
                (Some(addr), Some(fp), None) if line.len() <= MAX_LINE_BYTES && is_fingerprint(fp) => {
                    entries.push((addr.to_string(), fp.to_string()));
                }
                _ => {
                    return Err(ClientError::KnownServers(format!(
                        "{} line {} is not `ADDRESS SHA256:fingerprint`",
                        path.display(),
                        number + 1
                    )));
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The file this list was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fingerprint pinned for `addr`, if any.
    pub fn pinned(&self, addr: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(known, _)| known == addr)
            .map(|(_, fp)| fp.as_str())
    }

    /// Compares a presented fingerprint with the pin for `addr`.
    pub fn check(&self, addr: &str, presented: &str) -> PinStatus {
        match self.pinned(addr) {
            None => PinStatus::Unknown,
            Some(pinned) if pinned == presented => PinStatus::Match,
            Some(pinned) => PinStatus::Mismatch {
                pinned: pinned.to_string(),
            },
        }
    }

    /// Pins `fingerprint` for `addr` and appends it to the file (created with mode 0600).
    pub fn add(&mut self, addr: &str, fingerprint: &str) -> Result<(), ClientError> {
        assert!(self.pinned(addr).is_none(), "a pin is never replaced");
        assert!(is_fingerprint(fingerprint), "only well-formed fingerprints are pinned");
        let fail =
            |err: io::Error| ClientError::KnownServers(format!("cannot write {}: {}", self.path.display(), err.kind()));
        if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(fail)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(fail)?;
        writeln!(file, "{addr} {fingerprint}").map_err(fail)?;
        file.sync_all().map_err(fail)?;
        self.entries.push((addr.to_string(), fingerprint.to_string()));
        Ok(())
    }

    /// Removes the pin for `addr` (for `bank-client forget`): rewrites the file without that
    /// address's line, keeping every other line and comment, through a temporary file
    /// renamed over it (mode 0600). Returns the fingerprint that was pinned, if any.
    pub fn remove(&mut self, addr: &str) -> Result<Option<String>, ClientError> {
        let Some(index) = self.entries.iter().position(|(known, _)| known == addr) else {
            return Ok(None);
        };
        let fail = |err: io::Error| {
            ClientError::KnownServers(format!("cannot rewrite {}: {}", self.path.display(), err.kind()))
        };
        let text = fs::read_to_string(&self.path).map_err(fail)?;
        let kept: String = text
            .lines()
            .filter(|line| line.split_whitespace().next() != Some(addr))
            .map(|line| format!("{line}\n"))
            .collect();
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(fail)?;
        file.write_all(kept.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        fs::rename(&temporary, &self.path).map_err(fail)?;
        Ok(Some(self.entries.remove(index).1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP_A: &str = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const FP_B: &str = "SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    #[test]
    fn first_contact_is_unknown_then_pinned_key_matches_and_other_key_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("known_servers");
        let mut known = KnownServers::load(&path).unwrap();
        assert_eq!(known.check("127.0.0.1:7878", FP_A), PinStatus::Unknown);
        known.add("127.0.0.1:7878", FP_A).unwrap();
        let reloaded = KnownServers::load(&path).unwrap();
        assert_eq!(reloaded.check("127.0.0.1:7878", FP_A), PinStatus::Match);
        assert_eq!(
            reloaded.check("127.0.0.1:7878", FP_B),
            PinStatus::Mismatch {
                pinned: FP_A.to_string()
            }
        );
        assert_eq!(reloaded.check("127.0.0.1:9999", FP_B), PinStatus::Unknown);
    }

    #[test]
    fn removing_a_pin_keeps_the_other_lines_and_makes_the_address_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_servers");
        fs::write(&path, format!("# pins\n127.0.0.1:7878 {FP_A}\n127.0.0.1:9999 {FP_B}\n")).unwrap();
        let mut known = KnownServers::load(&path).unwrap();
        assert_eq!(known.remove("127.0.0.1:7878").unwrap().as_deref(), Some(FP_A));
        assert_eq!(known.remove("127.0.0.1:7878").unwrap(), None);
        let reloaded = KnownServers::load(&path).unwrap();
        assert_eq!(reloaded.check("127.0.0.1:7878", FP_A), PinStatus::Unknown);
        assert_eq!(reloaded.pinned("127.0.0.1:9999"), Some(FP_B));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("# pins\n127.0.0.1:9999 {FP_B}\n")
        );
    }

    #[test]
    fn refuses_a_malformed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_servers");
        fs::write(&path, "127.0.0.1:7878 not-a-fingerprint\n").unwrap();
        assert!(KnownServers::load(&path).is_err());
    }
}
