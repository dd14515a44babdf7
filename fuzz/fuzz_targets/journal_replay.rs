//! Replay of *validly chained* journal segments of arbitrary events (mostly well-formed,
//! sometimes raw bytes), optionally damaged by one mutation: the fuzzer cannot forge SHA-256
//! chain values or batch checksums, so this target builds them itself to reach event
//! decoding and the ledger's rules on replay (through `verify`, on a simulated disk). Never
//! panics; an accepted journal keeps the money invariant (sum of balances = deposits -
//! withdrawals); an undamaged journal replays exactly as applying its events one by one.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use securebank::error::{ErrorCode, JournalError};
use securebank::limits::{MAX_JOURNAL_RECORD_BYTES, MAX_TRANSACTION_CENTS};
use securebank::server::events::{Event, PasswordRecord, TxKind};
use securebank::server::journal::{self, Position};
use securebank::server::ledger::Ledger;
use securebank::server::retention::TxidRetention;
use securebank::server::storage::Storage;
use securebank::server::storage::sim::{SimDisk, SimStorage};
use securebank::server::verify;

const NAMES: [&str; 5] = ["alice", "bob", "carol", "", "a-very-long-name-of-32-bytes-xyz"];

#[derive(Arbitrary, Debug)]
enum Op {
    Open {
        name: u8,
        opening_cents: u64,
    },
    LoginFailed {
        name: u8,
        at: u64,
    },
    Locked {
        name: u8,
        at: u64,
        until: u64,
    },
    LoginSucceeded {
        name: u8,
    },
    Tx {
        user: u8,
        txid: u8,
        kind: u8,
        amount: u64,
        counterparty: u8,
        refused: Option<u8>,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    Flip { at: u32, mask: u8 },
    Truncate { at: u32 },
    ZeroFrom { at: u32 },
    Append(Vec<u8>),
    Splice { at: u32, bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    ops: Vec<Op>,
    zero_padding: u16,
    mutation: Option<Mutation>,
}

fn name(index: u8) -> String {
    NAMES[usize::from(index) % NAMES.len()].to_string()
}

/// Small amounts mostly, so transactions apply; the full range sometimes.
fn amount(raw: u64) -> u64 {
    if raw >> 63 == 1 {
        raw & !(1 << 63)
    } else {
        raw % (MAX_TRANSACTION_CENTS + 2)
    }
}

fn payload(op: &Op) -> Vec<u8> {
    let event = match op {
        Op::Open { name: n, opening_cents } => Event::AccountOpened {
            at: 1,
            name: name(*n),
            password: PasswordRecord {
                salt: [1; 16],
                iterations: 1_000,
                hash: [2; 32],
            },
            opening_cents: amount(*opening_cents),
        },
        Op::LoginFailed { name: n, at } => Event::LoginFailed {
            at: *at,
            name: name(*n),
        },
        Op::Locked { name: n, at, until } => Event::AccountLocked {
            at: *at,
            name: name(*n),
            until: *until,
        },
        Op::LoginSucceeded { name: n } => Event::LoginSucceeded { at: 2, name: name(*n) },
        Op::Tx {
            user,
            txid,
            kind,
            amount: raw,
            counterparty,
            refused,
        } => Event::Transaction {
            at: 3,
            user: name(*user),
            txid: [*txid; 16],
            kind: [TxKind::Deposit, TxKind::Withdrawal, TxKind::Transfer][usize::from(*kind) % 3],
            amount_cents: amount(*raw),
            counterparty: if *kind % 3 == 2 {
                name(*counterparty)
            } else {
                String::new()
            },
            refused: refused.map(|code| ErrorCode::ALL[usize::from(code) % ErrorCode::ALL.len()]),
        },
        Op::Raw(bytes) => return bytes.clone(),
    };
    event.encode()
}

/// Records per batch in the built segment.
const RECORDS_PER_BATCH: usize = 3;

fuzz_target!(|input: Input| {
    let payloads: Vec<Vec<u8>> = input
        .ops
        .iter()
        .map(payload)
        .filter(|payload| !payload.is_empty() && payload.len() <= MAX_JOURNAL_RECORD_BYTES)
        .collect();
    let mut bytes = journal::encode_segment_header(1, &Position::genesis());
    let header_len = bytes.len();
    let mut chain = journal::genesis_chain();
    for (index, batch) in payloads.chunks(RECORDS_PER_BATCH).enumerate() {
        let mut body = Vec::new();
        for payload in batch {
            chain = journal::encode_record(&chain, payload, &mut body);
        }
        let first_lsn = (index * RECORDS_PER_BATCH) as u64 + 1;
        journal::encode_batch(first_lsn, batch.len() as u32, &body, &mut bytes);
    }
    bytes.resize(bytes.len() + usize::from(input.zero_padding % 2048), 0);
    let damaged = input.mutation.is_some();
    if let Some(mutation) = &input.mutation {
        let body = bytes.len() - header_len;
        let at = |raw: u32| header_len + if body == 0 { 0 } else { raw as usize % body };
        match mutation {
            Mutation::Flip { at: raw, mask } => {
                if body > 0 {
                    let index = at(*raw);
                    bytes[index] ^= mask | 1;
                }
            }
            Mutation::Truncate { at: raw } => bytes.truncate(at(*raw)),
            Mutation::ZeroFrom { at: raw } => {
                let start = at(*raw);
                bytes[start..].fill(0);
            }
            Mutation::Append(extra) => bytes.extend_from_slice(extra),
            Mutation::Splice { at: raw, bytes: extra } => {
                let index = at(*raw);
                bytes.splice(index..index, extra.iter().copied());
            }
        }
    }
    let storage = SimStorage(SimDisk::new());
    let file = storage.create(&journal::segment_name(1)).expect("create");
    file.write_all_at(&bytes, 0).expect("write");

    let replayed = verify::verify_storage(&storage, TxidRetention::default());
    if let Ok(report) = &replayed {
        assert!(report.balanced(), "an accepted journal breaks the money invariant");
        assert!(report.records as usize <= payloads.len() || damaged);
    }
    if !damaged {
        // Undamaged: replay must agree with applying the decoded events one by one.
        let mut direct = Ledger::default();
        let mut expect_ok = true;
        for (index, payload) in payloads.iter().enumerate() {
            let applied = Event::decode(payload)
                .map_err(|_| ())
                .and_then(|event| direct.apply(&event, index as u64 + 1).map_err(|_| ()));
            if applied.is_err() {
                expect_ok = false;
                break;
            }
        }
        match (&replayed, expect_ok) {
            (Ok(report), true) => {
                assert_eq!(report.records as usize, payloads.len());
                assert_eq!(report.torn_at, None, "zeros after whole batches are not a tear");
                assert_eq!(report.total_cents, direct.sum_of_balances());
                assert_eq!(report.deposited_cents, direct.totals().deposited_cents);
                assert_eq!(report.withdrawn_cents, direct.totals().withdrawn_cents);
            }
            (Err(JournalError::Corrupt { .. }), false) => {}
            (other, expected) => panic!("undamaged journal: replay gave {other:?}, direct apply ok = {expected}"),
        }
    }
});
