//! Scale scenarios: many idle connections, a large bank, and recovery of a long journal.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Duration;

use securebank::server::events::{Event, TxKind};
use securebank::server::{auth, journal};

use crate::Options;
use crate::report::ScaleResults;
use crate::setup::{self, ScratchDir, ServerChild, Target};
use crate::workload;

/// Idle connections held open while others transact.
const IDLE_CONNECTIONS: usize = 1000;
/// Accounts in the large-bank start.
const LARGE_BANK_ACCOUNTS: usize = 100_000;
/// Records in the recovery journal.
const RECOVERY_RECORDS: u64 = 1_000_000;
/// Accounts the recovery journal's deposits are spread over.
const RECOVERY_ACCOUNTS: u64 = 1_000;

/// Runs the three scenarios.
pub fn run(target: &Target, options: &Options) -> Result<ScaleResults, String> {
    let mut results = ScaleResults::default();
    crate::report::progress(format_args!("opening {IDLE_CONNECTIONS} idle connections"));
    let idle: Vec<_> = (0..IDLE_CONNECTIONS)
        .map(|_| target.connect())
        .collect::<Result<_, _>>()?;
    let during = workload::transactions(target, 8, options.phase, options.mix)?;
    results.idle_connections = idle.len();
    results.tx_per_sec_with_idle = during.per_sec;
    if let Some((rss, threads)) = target.rss_and_threads() {
        results.rss_with_idle_kib = rss;
        results.threads_with_idle = threads;
    }
    drop(idle);
    crate::report::progress(format_args!("writing a journal of {LARGE_BANK_ACCOUNTS} accounts"));
    let (start, rss) = start_on_journal(LARGE_BANK_ACCOUNTS as u64, 0)?;
    results.accounts = LARGE_BANK_ACCOUNTS;
    results.accounts_start_secs = start.as_secs_f64();
    results.accounts_rss_kib = rss;
    crate::report::progress(format_args!("writing a journal of {RECOVERY_RECORDS} records"));
    let (start, rss) = start_on_journal(RECOVERY_ACCOUNTS, RECOVERY_RECORDS - RECOVERY_ACCOUNTS)?;
    results.journal_records = RECOVERY_RECORDS;
    results.recovery_secs = start.as_secs_f64();
    results.recovery_rss_kib = rss;
    Ok(results)
}

/// Writes a journal of `accounts` opened accounts followed by `deposits` deposits, starts
/// a server on it, and returns its start-up time (replay included) and RSS.
fn start_on_journal(accounts: u64, deposits: u64) -> Result<(Duration, u64), String> {
    let scratch = ScratchDir::new("scale")?;
    let data_dir = scratch.0.join("data");
    securebank::identity::create_private_dir(&data_dir).map_err(|err| err.to_string())?;
    write_journal(&journal::path_in(&data_dir), accounts, deposits).map_err(|err| err.to_string())?;
    let server = ServerChild::spawn(&data_dir, &scratch.0.join("outbox"), &[])?;
    let rss = server.rss_and_threads().map_or(0, |(rss, _)| rss);
    Ok((server.start_time, rss))
}

fn write_journal(path: &std::path::Path, accounts: u64, deposits: u64) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    out.write_all(&journal::MAGIC)?;
    let mut chain = journal::genesis_chain();
    let mut record = Vec::with_capacity(256);
    let password = auth::hash_password("bench-password", setup::CHEAP_ITERATIONS);
    let mut append = |event: &Event, out: &mut BufWriter<File>| -> std::io::Result<()> {
        record.clear();
        chain = journal::encode_record(&chain, &event.encode(), &mut record);
        out.write_all(&record)
    };
    for index in 0..accounts {
        let event = Event::AccountOpened {
            at: 0,
            name: format!("acct-{index:06}"),
            password: password.clone(),
            opening_cents: 0,
        };
        append(&event, &mut out)?;
    }
    for index in 0..deposits {
        let mut txid = [0u8; 16];
        txid[..8].copy_from_slice(&index.to_be_bytes());
        let event = Event::Transaction {
            at: 0,
            user: format!("acct-{:06}", index % accounts),
            txid,
            kind: TxKind::Deposit,
            amount_cents: 100,
            counterparty: String::new(),
            refused: None,
        };
        append(&event, &mut out)?;
    }
    out.flush()?;
    out.get_ref().sync_all()
}
