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
    write_journal(&data_dir.join(journal::segment_name(1)), accounts, deposits).map_err(|err| err.to_string())?;
    let server = ServerChild::spawn(&data_dir, &scratch.0.join("outbox"), &[])?;
    let rss = server.rss_and_threads().map_or(0, |(rss, _)| rss);
    Ok((server.start_time, rss))
}

/// Records per batch in the written journal: about what 64 busy clients give one sync.
const RECORDS_PER_BATCH: u32 = 32;

/// Writes segment 1 with no checkpoint before it, so start-up replays every record.
fn write_journal(path: &std::path::Path, accounts: u64, deposits: u64) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    out.write_all(&journal::encode_segment_header(1, &journal::Position::genesis()))?;
    let mut chain = journal::genesis_chain();
    let mut lsn = 0u64;
    let mut body = Vec::with_capacity(64 * 1024);
    let mut in_batch = 0u32;
    let mut framed = Vec::with_capacity(64 * 1024);
    let password = auth::hash_password("bench-password", setup::CHEAP_ITERATIONS);
    let mut append = |event: Option<&Event>, out: &mut BufWriter<File>| -> std::io::Result<()> {
        if let Some(event) = event {
            chain = journal::encode_record(&chain, &event.encode(), &mut body);
            in_batch += 1;
        }
        if in_batch > 0 && (event.is_none() || in_batch == RECORDS_PER_BATCH) {
            framed.clear();
            journal::encode_batch(lsn + 1, in_batch, &body, &mut framed);
            lsn += u64::from(in_batch);
            in_batch = 0;
            body.clear();
            out.write_all(&framed)?;
        }
        Ok(())
    };
    for index in 0..accounts {
        let event = Event::AccountOpened {
            at: 0,
            name: format!("acct-{index:06}"),
            password: password.clone(),
            opening_cents: 0,
        };
        append(Some(&event), &mut out)?;
    }
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis()),
    )
    .unwrap_or(0);
    for index in 0..deposits {
        let mut txid = [0u8; 16];
        txid[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
        txid[8..].copy_from_slice(&index.to_be_bytes());
        let event = Event::Transaction {
            at: now_ms / 1_000,
            user: format!("acct-{:06}", index % accounts),
            txid,
            kind: TxKind::Deposit,
            amount_cents: 100,
            counterparty: String::new(),
            refused: None,
        };
        append(Some(&event), &mut out)?;
    }
    append(None, &mut out)?;
    out.flush()?;
    out.get_ref().sync_all()
}
