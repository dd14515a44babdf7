//! Operator tasks: creating accounts, the demo accounts of a first run, and `prune`.
//!
//! (The operator commands a running server also answers — unlock, close-account, stats,
//! checkpoint, verify — are in [`super::operator`].)

use std::fs::File;
use std::path::Path;

use super::auth;
use super::bank::{self, Bank};
use super::storage::{DirStorage, Storage};
use super::{checkpoint, journal, journal_v1};

/// Demo accounts created on the first run of `make run-server`: name and opening balance.
pub const DEMO_ACCOUNTS: [(&str, u64); 2] = [("user123", 100_000), ("alice", 50_000)];

/// Letters of generated passwords: 32 symbols without look-alikes (so `byte % 32` is uniform).
const PASSWORD_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// Length of a generated demo password: 16 symbols of 5 bits = 80 bits of entropy.
const GENERATED_PASSWORD_LEN: usize = 16;

/// A random password for a demo account.
pub fn generate_password() -> String {
    let bytes: [u8; GENERATED_PASSWORD_LEN] = crate::rng::bytes();
    bytes
        .iter()
        .map(|byte| char::from(PASSWORD_ALPHABET[usize::from(byte % 32)]))
        .collect()
}

/// Validates and creates an account.
pub fn add_account(bank: &Bank, name: &str, password: &str, opening_cents: u64, iterations: u32) -> Result<(), String> {
    auth::validate_username(name).map_err(|err| err.to_string())?;
    auth::validate_new_password(password).map_err(|err| err.to_string())?;
    if bank.account_exists(name) {
        return Err(format!("an account named {name} already exists"));
    }
    let record = auth::hash_password(password, iterations);
    match bank.open_account(name, record, opening_cents, bank::now_unix_secs()) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(reason.to_string()),
        Err(err) => Err(err.to_string()),
    }
}

/// On a bank with no accounts, creates the demo accounts with random passwords and returns
/// their names and passwords (to print once). Returns nothing on a bank that has accounts.
pub fn create_demo_accounts(bank: &Bank, iterations: u32) -> Result<Vec<(String, String)>, String> {
    if bank.account_count() > 0 {
        return Ok(Vec::new());
    }
    let mut created = Vec::new();
    for (name, opening_cents) in DEMO_ACCOUNTS {
        let password = generate_password();
        add_account(bank, name, &password, opening_cents, iterations)?;
        created.push((name.to_string(), password));
    }
    Ok(created)
}

/// What `bank-server prune` moved away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Checkpoints kept, by the segment after each.
    pub kept_checkpoints: Vec<u64>,
    /// Files moved into the archive folder.
    pub archived: Vec<String>,
}

/// The folder inside the data directory that `prune` moves old files into.
pub const ARCHIVE_DIR: &str = "archive";

/// Keeps the newest `keep` checkpoints and moves every older checkpoint, and every segment
/// (and first-release journal) before the oldest kept one, into `DIR/archive/`. Run it with
/// the server stopped (it takes the data directory's lock). Refuses `keep` = 0 and a
/// directory with fewer checkpoints than asked to keep: pruning never removes the only way
/// to recover.
pub fn prune(data_dir: &Path, keep: usize) -> Result<PruneReport, String> {
    if keep == 0 {
        return Err("--keep-checkpoints must be at least 1".into());
    }
    let _lock = bank::lock_data_dir(data_dir).map_err(|err| err.to_string())?;
    let storage = DirStorage::new(data_dir);
    let mut good = Vec::new();
    for name in storage.list().map_err(|err| err.to_string())? {
        if let Some(number) = checkpoint::parse_file_name(&name)
            && matches!(checkpoint::read(&storage, &name), Ok(Ok(_)))
        {
            good.push(number);
        }
    }
    good.sort_unstable();
    if good.len() < keep {
        return Err(format!(
            "only {} readable checkpoint(s); nothing pruned (asked to keep {keep})",
            good.len()
        ));
    }
    let kept = good.split_off(good.len() - keep);
    let oldest_kept = kept[0];
    let archive = data_dir.join(ARCHIVE_DIR);
    crate::identity::create_private_dir(&archive).map_err(|err| err.to_string())?;
    // Oldest first, the first-release journal after segment 1: if prune stops half-way, what
    // is left still starts at a segment or checkpoint that verify can begin from.
    let mut archived: Vec<(u64, String)> = Vec::new();
    for name in storage.list().map_err(|err| err.to_string())? {
        let segment = journal::parse_segment_name(&name).filter(|&n| n < oldest_kept);
        let checkpoint = checkpoint::parse_file_name(&name).filter(|&n| n < oldest_kept);
        // The first-release journal precedes segment 1: it goes only with segment 1.
        let v1 = (name == journal_v1::KEPT_NAME && oldest_kept > 1).then_some(1);
        if let Some(order) = segment.or(checkpoint).or(v1) {
            archived.push((order, name));
        }
    }
    archived.sort_by_key(|(order, name)| (*order, name == journal_v1::KEPT_NAME, name.clone()));
    for (_, name) in &archived {
        std::fs::rename(data_dir.join(name), archive.join(name)).map_err(|err| err.to_string())?;
    }
    storage.sync_dir().map_err(|err| err.to_string())?;
    File::open(&archive)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| err.to_string())?;
    let mut archived: Vec<String> = archived.into_iter().map(|(_, name)| name).collect();
    archived.sort();
    Ok(PruneReport {
        kept_checkpoints: kept,
        archived,
    })
}
