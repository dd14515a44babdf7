//! Operator tasks: creating accounts, the demo accounts of a first run, and `verify`.

use std::fs::File;
use std::path::Path;

use super::auth;
use super::bank::{self, Bank};
use super::journal;
use crate::error::JournalError;
use crate::money::format_cents;

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
    if bank.password_record(name).is_some() {
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

/// What `bank-server verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Valid records.
    pub records: u64,
    /// Accounts.
    pub accounts: usize,
    /// Sum of all balances, in cents.
    pub total_cents: u128,
    /// Money in (opening balances and deposits), in cents.
    pub deposited_cents: u128,
    /// Money out (withdrawals), in cents.
    pub withdrawn_cents: u128,
    /// Hex of the head chain value.
    pub head: String,
    /// Offset of an incomplete last record that the next start will cut off.
    pub torn_tail_at: Option<u64>,
}

impl VerifyReport {
    /// Whether total = deposits − withdrawals.
    pub fn balanced(&self) -> bool {
        self.deposited_cents.checked_sub(self.withdrawn_cents) == Some(self.total_cents)
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cents = |value: u128| format_cents(u64::try_from(value).unwrap_or(u64::MAX));
        writeln!(f, "records:      {}", self.records)?;
        writeln!(f, "accounts:     {}", self.accounts)?;
        writeln!(f, "total:        {}", cents(self.total_cents))?;
        writeln!(f, "deposits:     {}", cents(self.deposited_cents))?;
        writeln!(f, "withdrawals:  {}", cents(self.withdrawn_cents))?;
        writeln!(
            f,
            "invariant:    {}",
            if self.balanced() {
                "ok (total = deposits - withdrawals)"
            } else {
                "BROKEN"
            }
        )?;
        if let Some(offset) = self.torn_tail_at {
            writeln!(
                f,
                "torn tail:    incomplete last record at byte offset {offset} (cut off at next start)"
            )?;
        }
        write!(f, "head:         {}", self.head)
    }
}

/// Replays the journal in `data_dir` read-only and checks every chain value and the
/// invariants. Safe to run while a server is running.
pub fn verify(data_dir: &Path) -> Result<VerifyReport, JournalError> {
    let file = File::open(journal::path_in(data_dir))?;
    let (ledger, report) = bank::replay(&file)?;
    let totals = ledger.totals();
    Ok(VerifyReport {
        records: report.records,
        accounts: ledger.account_count(),
        total_cents: ledger.sum_of_balances(),
        deposited_cents: totals.deposited_cents,
        withdrawn_cents: totals.withdrawn_cents,
        head: crate::message::hex(&report.head),
        torn_tail_at: report.torn_tail_at,
    })
}
