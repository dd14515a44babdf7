//! A canonical snapshot of the whole ledger, as bytes: what a checkpoint stores so that
//! recovery need not replay the journal from its beginning.
//!
//! Layout (integers big-endian, strings `u16` length + UTF-8):
//!
//! ```text
//! version u8 (3) | deposited u128 | withdrawn u128 | clock_ms u64 | forgotten_before_ms u64
//! | unlocks u64
//! account_count u32, then per account, in increasing byte order of the name:
//!   name str | salt[16] | iterations u32 | hash[32] | balance u64 | consecutive_failures u32
//!   | locked_until u64 | last_lsn u64 | closed u8 (0 or 1)
//!   | totp u8: 0 (console codes), or 1 then secret[20] | last_step u64 (an authenticator app)
//!   history_count u16, then per entry, oldest first:
//!     at u64 | kind u8 | amount u64 | counterparty str | balance_after u64
//!   seen_count u32, then per remembered transaction id, in increasing (creation time, id):
//!     txid[16] | kind u8 | amount u64 | counterparty str
//!     | outcome u8: 0 then balance u64 (applied), 1 then error code name str (refused) | lsn u64
//! ```
//!
//! Invariants: [`encode`] is deterministic (one ledger state, one byte string), and
//! [`decode`] accepts only canonical bytes (strictly increasing names and ids, no trailing
//! bytes), so `encode(decode(bytes)) == bytes`. Decoding never panics and never trusts a
//! count: every count is checked against the bytes that remain before anything is
//! allocated for it, every field against its limit, and the result against the ledger's
//! own invariants (the sum of balances equals deposits − withdrawals; every remembered id is
//! at or above `forgotten_before_ms`), so a damaged snapshot is a [`DecodeError`], never a
//! ledger that replay could not have produced.
//!
//! Version 1 (written before the operator commands existed) lacks `unlocks` and `closed`;
//! it is still read, as a bank with no unlock and no closed account — exactly what that
//! release could record — so checkpoints of a bank upgraded in place keep loading. Version 2
//! (before authenticator apps) lacks `totp`, and is read as a bank where every account uses
//! console codes. Only the current version is canonical: [`in_current_version`] re-encodes
//! an older one.

use std::collections::{HashMap, VecDeque};

use super::events::{PasswordRecord, TxKind};
use super::ledger::{Account, Ledger, SeenTransaction, Totals, TxidRetention};
use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, ErrorCode};
use crate::limits::{
    MAX_BALANCE_CENTS, MAX_ERROR_CODE_BYTES, MAX_HISTORY_ENTRIES, MAX_PBKDF2_ITERATIONS, MAX_USERNAME_BYTES,
    MIN_PBKDF2_ITERATIONS,
};
use crate::message::{EntryKind, HistoryEntry, TxId, txid_created_ms};
use crate::totp::{Enrolment, TotpSecret};

/// The format version this module writes (it also reads [`OLDEST_VERSION`] and later).
pub const VERSION: u8 = 3;

/// The oldest format version still read: 1, without the operator fields.
pub const OLDEST_VERSION: u8 = 1;

/// The version before authenticator apps: no `totp` byte per account.
const VERSION_2: u8 = 2;

/// Fewest bytes one account can take (empty name, no history, no ids, console codes): a
/// declared account count is refused unless this many bytes per account remain.
const MIN_ACCOUNT_BYTES: usize = 2 + 16 + 4 + 32 + 8 + 4 + 8 + 8 + 1 + 1 + 2 + 4;

/// [`MIN_ACCOUNT_BYTES`] in version 2, which has no `totp` byte.
const MIN_ACCOUNT_BYTES_V2: usize = MIN_ACCOUNT_BYTES - 1;

/// [`MIN_ACCOUNT_BYTES`] in version 1, which has no `closed` and no `totp` byte.
const MIN_ACCOUNT_BYTES_V1: usize = MIN_ACCOUNT_BYTES - 2;

/// Fewest bytes one remembered id can take (no counterparty, a refusal with an empty name):
/// a declared id count is refused unless this many bytes per id remain.
const MIN_SEEN_BYTES: usize = 16 + 1 + 8 + 2 + 1 + 2 + 8;

const OUTCOME_APPLIED: u8 = 0;
const OUTCOME_REFUSED: u8 = 1;

/// Bytes one remembered transaction id takes in a snapshot at most: id, kind, amount, a
/// recipient of up to 32 bytes, an outcome of up to 64 bytes, and a position.
const SEEN_ENTRY_BYTES: usize = 16 + 1 + 8 + 2 + 32 + 1 + 2 + 64 + 8;

/// The snapshot bytes of `ledger`, canonical: equal ledgers give equal bytes (tests and
/// tools compare states this way).
pub fn encode(ledger: &Ledger) -> Vec<u8> {
    encode_with(ledger, true)
}

/// The snapshot bytes of `ledger` with each account's remembered ids in memory order, not
/// sorted: what a checkpoint writes, because it is encoded under the ledger lock and
/// sorting hundreds of thousands of ids there would stall every transaction. It decodes to
/// the same ledger as [`encode`]; `verify` compares checkpoints by decoded state.
pub fn encode_unordered(ledger: &Ledger) -> Vec<u8> {
    encode_with(ledger, false)
}

fn encode_with(ledger: &Ledger, ordered: bool) -> Vec<u8> {
    let mut accounts: Vec<_> = ledger.accounts().collect();
    accounts.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let totals = ledger.totals();
    // Sized up front: growing a buffer of tens of MiB by doubling leaves the smaller copies
    // behind in the allocator, and the server's resident memory would creep up with them.
    let mut w = Writer::with_capacity(64 + accounts.len() * 512 + ledger.remembered_txids() * SEEN_ENTRY_BYTES);
    w.u8(VERSION)
        .u128(totals.deposited_cents)
        .u128(totals.withdrawn_cents)
        .u64(ledger.clock_ms())
        .u64(ledger.forgotten_before_ms())
        .u64(ledger.unlocks())
        .u32(u32::try_from(accounts.len()).expect("fewer than 2^32 accounts"));
    for (name, account) in accounts {
        encode_account(&mut w, name, account, ordered);
    }
    w.into_bytes()
}

fn encode_account(w: &mut Writer, name: &str, account: &Account, ordered: bool) {
    w.str16(name)
        .raw(&account.password.salt)
        .u32(account.password.iterations)
        .raw(&account.password.hash)
        .u64(account.balance_cents)
        .u32(account.consecutive_failures)
        .u64(account.locked_until)
        .u64(account.last_lsn)
        .u8(u8::from(account.closed));
    match &account.totp {
        None => w.u8(0),
        Some(enrolment) => w.u8(1).raw(enrolment.secret.as_bytes()).u64(enrolment.last_step),
    };
    w.u16(u16::try_from(account.history.len()).expect("history is bounded"));
    for entry in &account.history {
        w.u64(entry.at_unix_secs)
            .u8(entry.kind as u8)
            .u64(entry.amount_cents)
            .str16(&entry.counterparty)
            .u64(entry.balance_after_cents);
    }
    let mut seen: Vec<_> = account.seen.iter().collect();
    if ordered {
        seen.sort_unstable_by_key(|(txid, _)| (txid_created_ms(txid), **txid));
    }
    w.u32(u32::try_from(seen.len()).expect("fewer than 2^32 ids"));
    for (txid, seen) in seen {
        w.raw(txid)
            .u8(seen.kind as u8)
            .u64(seen.amount_cents)
            .str16(&seen.counterparty);
        match seen.outcome {
            Ok(balance) => w.u8(OUTCOME_APPLIED).u64(balance),
            Err(code) => w.u8(OUTCOME_REFUSED).str16(code.as_str()),
        };
        w.u64(seen.lsn);
    }
}

/// Parses snapshot bytes into a ledger that remembers ids for `retention` (ids the
/// snapshot holds but `retention` no longer keeps are forgotten at once).
pub fn decode(bytes: &[u8], retention: TxidRetention) -> Result<Ledger, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.u8("version")?;
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(DecodeError::BadValue("version"));
    }
    let v1 = version == OLDEST_VERSION;
    let totals = Totals {
        deposited_cents: r.u128("deposited")?,
        withdrawn_cents: r.u128("withdrawn")?,
    };
    let clock_ms = r.u64("clock_ms")?;
    let forgotten_before_ms = r.u64("forgotten_before_ms")?;
    let unlocks = if v1 { 0 } else { r.u64("unlocks")? };
    let declared = r_u32(&mut r, "accounts")?;
    let min_account_bytes = match version {
        OLDEST_VERSION => MIN_ACCOUNT_BYTES_V1,
        VERSION_2 => MIN_ACCOUNT_BYTES_V2,
        _ => MIN_ACCOUNT_BYTES,
    };
    let count = bounded_count(&r, declared, min_account_bytes, "accounts")?;
    let mut accounts = HashMap::with_capacity(count);
    let mut previous: Option<String> = None;
    for _ in 0..count {
        let name = r.str16(MAX_USERNAME_BYTES, "name")?.to_string();
        if previous.as_ref().is_some_and(|previous| *previous >= name) {
            return Err(DecodeError::BadValue("name order"));
        }
        let account = decode_account(&mut r, version)?;
        previous = Some(name.clone());
        accounts.insert(name, account);
    }
    r.finish()?;
    Ledger::from_parts(accounts, totals, unlocks, clock_ms, forgotten_before_ms, retention)
        .map_err(DecodeError::BadValue)
}

/// `bytes` in the current version: unchanged if they are, else decoded (with `retention`)
/// and encoded again. Checkpoints written by an older release compare with a replay this way.
pub fn in_current_version(bytes: &[u8], retention: TxidRetention) -> Result<std::borrow::Cow<'_, [u8]>, DecodeError> {
    if bytes.first() == Some(&VERSION) {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    Ok(std::borrow::Cow::Owned(encode(&decode(bytes, retention)?)))
}

fn r_u32(r: &mut Reader<'_>, field: &'static str) -> Result<usize, DecodeError> {
    usize::try_from(r.u32(field)?).map_err(|_| DecodeError::TooLong(field))
}

/// `count`, if the bytes left can hold that many items of at least `min_bytes` each.
fn bounded_count(r: &Reader<'_>, count: usize, min_bytes: usize, field: &'static str) -> Result<usize, DecodeError> {
    match count.checked_mul(min_bytes) {
        Some(needed) if needed <= r.remaining() => Ok(count),
        _ => Err(DecodeError::Truncated(field)),
    }
}

fn balance(r: &mut Reader<'_>, field: &'static str) -> Result<u64, DecodeError> {
    let cents = r.u64(field)?;
    if cents > MAX_BALANCE_CENTS {
        return Err(DecodeError::BadValue(field));
    }
    Ok(cents)
}

fn decode_account(r: &mut Reader<'_>, version: u8) -> Result<Account, DecodeError> {
    let v1 = version == OLDEST_VERSION;
    let password = PasswordRecord {
        salt: r.array("salt")?,
        iterations: r.u32("iterations")?,
        hash: r.array("hash")?,
    };
    if !(MIN_PBKDF2_ITERATIONS..=MAX_PBKDF2_ITERATIONS).contains(&password.iterations) {
        return Err(DecodeError::BadValue("iterations"));
    }
    let balance_cents = balance(r, "balance")?;
    let consecutive_failures = r.u32("consecutive_failures")?;
    let locked_until = r.u64("locked_until")?;
    let last_lsn = r.u64("last_lsn")?;
    let closed = match if v1 { 0 } else { r.u8("closed")? } {
        0 => false,
        1 => true,
        _ => return Err(DecodeError::BadValue("closed")),
    };
    let totp = match if version >= VERSION { r.u8("totp")? } else { 0 } {
        0 => None,
        1 => Some(Enrolment {
            secret: TotpSecret::from_bytes(r.array("totp secret")?),
            last_step: r.u64("totp last_step")?,
        }),
        _ => return Err(DecodeError::BadValue("totp")),
    };
    let history_count = usize::from(r.u16("history")?);
    if history_count > MAX_HISTORY_ENTRIES {
        return Err(DecodeError::TooLong("history"));
    }
    let mut history = VecDeque::with_capacity(history_count);
    for _ in 0..history_count {
        history.push_back(HistoryEntry {
            at_unix_secs: r.u64("at")?,
            kind: EntryKind::from_byte(r.u8("entry kind")?).ok_or(DecodeError::BadValue("entry kind"))?,
            amount_cents: balance(r, "entry amount")?,
            counterparty: r.str16(MAX_USERNAME_BYTES, "entry counterparty")?.to_string(),
            balance_after_cents: balance(r, "balance_after")?,
        });
    }
    let declared = r_u32(r, "seen")?;
    let seen_count = bounded_count(r, declared, MIN_SEEN_BYTES, "seen")?;
    let mut seen = HashMap::with_capacity(seen_count);
    // Any order (a checkpoint writes memory order: see `encode_unordered`), never twice.
    for _ in 0..seen_count {
        let txid: TxId = r.array("txid")?;
        if seen.insert(txid, decode_seen(r)?).is_some() {
            return Err(DecodeError::BadValue("txid repeated"));
        }
    }
    Ok(Account {
        password,
        balance_cents,
        consecutive_failures,
        locked_until,
        history,
        last_lsn,
        seen,
        closed,
        totp,
    })
}

fn decode_seen(r: &mut Reader<'_>) -> Result<SeenTransaction, DecodeError> {
    let kind = TxKind::from_byte(r.u8("kind")?).ok_or(DecodeError::BadValue("kind"))?;
    let amount_cents = r.u64("amount")?;
    let counterparty = r.str16(MAX_USERNAME_BYTES, "counterparty")?.to_string();
    let outcome = match r.u8("outcome")? {
        OUTCOME_APPLIED => Ok(balance(r, "outcome balance")?),
        OUTCOME_REFUSED => {
            let name = r.str16(MAX_ERROR_CODE_BYTES, "outcome code")?;
            Err(ErrorCode::from_name(name).ok_or(DecodeError::BadValue("outcome code"))?)
        }
        _ => return Err(DecodeError::BadValue("outcome")),
    };
    Ok(SeenTransaction {
        kind,
        amount_cents,
        counterparty,
        outcome,
        lsn: r.u64("lsn")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::txid_at;
    use crate::server::auth;
    use crate::server::events::Event;
    use crate::server::ledger::{TxDecision, TxRequest};

    const SHORT: TxidRetention = TxidRetention {
        window_ms: 60_000,
        skew_ms: 5_000,
    };
    const T0: u64 = 1_700_000_000;

    /// Applies `events` in order, numbering them from 1.
    fn replay(retention: TxidRetention, events: &[Event]) -> Ledger {
        let mut ledger = Ledger::with_retention(retention);
        for (index, event) in events.iter().enumerate() {
            ledger.apply(event, index as u64 + 1).unwrap();
        }
        ledger
    }

    fn opened(name: &str, cents: u64) -> Event {
        Event::AccountOpened {
            at: T0,
            name: name.into(),
            password: auth::dummy_record(1_000),
            opening_cents: cents,
        }
    }

    fn tx(at: u64, user: &str, kind: TxKind, amount: u64, to: &str, refused: Option<ErrorCode>) -> Event {
        Event::Transaction {
            at,
            user: user.into(),
            txid: txid_at(at * 1_000),
            kind,
            amount_cents: amount,
            counterparty: to.into(),
            refused,
        }
    }

    /// Three accounts, history, applied and refused transactions, a lock, a failure count,
    /// and ids that have already been forgotten.
    fn busy_events() -> Vec<Event> {
        vec![
            opened("alice", 10_000),
            opened("bob", 500),
            opened("carol", 0),
            tx(T0, "alice", TxKind::Deposit, 2_500, "", None),
            tx(T0 + 1, "alice", TxKind::Transfer, 1_000, "bob", None),
            tx(
                T0 + 2,
                "bob",
                TxKind::Withdrawal,
                9_999,
                "",
                Some(ErrorCode::InsufficientFunds),
            ),
            tx(T0 + 90, "bob", TxKind::Withdrawal, 200, "", None),
            tx(
                T0 + 91,
                "alice",
                TxKind::Transfer,
                5,
                "nobody",
                Some(ErrorCode::UnknownRecipient),
            ),
            Event::LoginFailed {
                at: T0 + 92,
                name: "carol".into(),
            },
            Event::AccountLocked {
                at: T0 + 93,
                name: "carol".into(),
                until: T0 + 993,
            },
            Event::LoginFailed {
                at: T0 + 94,
                name: "bob".into(),
            },
            opened("dave", 0),
            Event::AccountClosed {
                at: T0 + 95,
                name: "dave".into(),
            },
            Event::AccountUnlocked {
                at: T0 + 96,
                name: "bob".into(),
            },
        ]
    }

    #[test]
    fn a_busy_ledger_round_trips_exactly() {
        let ledger = replay(SHORT, &busy_events());
        assert_eq!(ledger.remembered_txids(), 2, "the first three ids are forgotten");
        assert!(ledger.forgotten_before_ms() > 0);
        assert!(ledger.account("carol").unwrap().is_locked(T0 + 100));
        assert!(ledger.account("dave").unwrap().closed);
        assert_eq!(ledger.unlocks(), 1);
        let bytes = encode(&ledger);
        let decoded = decode(&bytes, SHORT).unwrap();
        assert_eq!(decoded, ledger);
        assert_eq!(encode(&decoded), bytes);
    }

    #[test]
    fn a_decoded_snapshot_decides_like_the_ledger_it_came_from() {
        let events = busy_events();
        let ledger = replay(SHORT, &events);
        let decoded = decode(&encode(&ledger), SHORT).unwrap();
        let Event::Transaction { txid: remembered, .. } = &events[6] else {
            unreachable!()
        };
        let Event::Transaction { txid: forgotten, .. } = &events[3] else {
            unreachable!()
        };
        let request = |txid, amount| TxRequest {
            user: if txid == *remembered { "bob" } else { "alice" },
            txid,
            kind: if txid == *remembered {
                TxKind::Withdrawal
            } else {
                TxKind::Deposit
            },
            amount_cents: amount,
            counterparty: "",
        };
        for decided in [&ledger, &decoded] {
            assert!(matches!(
                decided.decide_transaction(request(*remembered, 200), T0 + 95),
                TxDecision::Repeat { outcome: Ok(_), lsn: 7 }
            ));
            assert!(matches!(
                decided.decide_transaction(request(*forgotten, 2_500), T0 + 95),
                TxDecision::Invalid(ErrorCode::TransactionIdExpired)
            ));
        }
    }

    #[test]
    fn a_snapshot_plus_the_rest_of_the_journal_equals_the_whole_replay() {
        let events = busy_events();
        let whole = replay(SHORT, &events);
        for split in 0..=events.len() {
            let mut resumed = decode(&encode(&replay(SHORT, &events[..split])), SHORT).unwrap();
            for (index, event) in events.iter().enumerate().skip(split) {
                resumed.apply(event, index as u64 + 1).unwrap();
            }
            assert_eq!(resumed, whole, "snapshot after {split} events");
        }
    }

    #[test]
    fn accounts_at_the_edges_of_every_limit_round_trip() {
        let mut rich = opened("rich", MAX_BALANCE_CENTS);
        if let Event::AccountOpened { password, .. } = &mut rich {
            password.iterations = MAX_PBKDF2_ITERATIONS;
        }
        // An empty name, no history and no ids: exactly the smallest account encoding, so
        // the count check must allow a count that fills the rest of the bytes exactly.
        let events = [opened("", 0), rich, opened(&"z".repeat(MAX_USERNAME_BYTES), 1)];
        let ledger = replay(SHORT, &events);
        let smallest = encode(&replay(SHORT, &events[..1]));
        assert_eq!(smallest.len(), ACCOUNT_COUNT_AT + 4 + MIN_ACCOUNT_BYTES);
        assert!(decode(&smallest, SHORT).is_ok());
        assert_eq!(decode(&encode(&ledger), SHORT).unwrap(), ledger);
    }

    #[test]
    fn an_empty_ledger_round_trips() {
        let ledger = Ledger::default();
        assert_eq!(decode(&encode(&ledger), TxidRetention::default()).unwrap(), ledger);
    }

    #[test]
    fn a_shorter_retention_at_decode_forgets_what_it_does_not_keep() {
        let events = busy_events();
        let ledger = replay(TxidRetention::default(), &events);
        assert_eq!(ledger.remembered_txids(), 5);
        let decoded = decode(&encode(&ledger), SHORT).unwrap();
        assert_eq!(decoded.remembered_txids(), 2);
        assert_eq!(decoded, replay(SHORT, &events));
    }

    #[test]
    fn every_truncation_and_an_extra_byte_are_refused() {
        let bytes = encode(&replay(SHORT, &busy_events()));
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], SHORT).is_err(), "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer, SHORT), Err(DecodeError::TrailingBytes));
    }

    /// Byte offset of the account count.
    const ACCOUNT_COUNT_AT: usize = 1 + 16 + 16 + 8 + 8 + 8;

    /// Byte offset of the `closed` byte of the first account, whose name has `name_len` bytes.
    const fn closed_at(name_len: usize) -> usize {
        ACCOUNT_COUNT_AT + 4 + 2 + name_len + 16 + 4 + 32 + 8 + 4 + 8 + 8
    }

    /// The version-1 bytes of a one-account snapshot in the current version (an account
    /// with console codes): no `unlocks` in the header, no `closed` and no `totp` byte in the
    /// account.
    fn as_version_1(bytes: &[u8], name_len: usize) -> Vec<u8> {
        let unlocks_at = ACCOUNT_COUNT_AT - 8;
        let closed = closed_at(name_len);
        [
            &[1][..],
            &bytes[1..unlocks_at],
            &bytes[ACCOUNT_COUNT_AT..closed],
            &bytes[closed + 2..],
        ]
        .concat()
    }

    /// The version-2 bytes of a one-account snapshot in the current version (an account
    /// with console codes): no `totp` byte in the account.
    fn as_version_2(bytes: &[u8], name_len: usize) -> Vec<u8> {
        let totp = closed_at(name_len) + 1;
        [&[2][..], &bytes[1..totp], &bytes[totp + 1..]].concat()
    }

    #[test]
    fn a_version_2_snapshot_still_loads_as_a_bank_where_every_account_uses_console_codes() {
        let ledger = replay(
            SHORT,
            &[opened("alice", 900), tx(T0, "alice", TxKind::Deposit, 100, "", None)],
        );
        let current = encode(&ledger);
        let old = as_version_2(&current, 5);
        assert_eq!(old.len(), current.len() - 1);
        assert_eq!(decode(&old, SHORT).unwrap(), ledger);
        assert_eq!(&*in_current_version(&old, SHORT).unwrap(), &current[..]);
        for len in 0..old.len() {
            assert!(decode(&old[..len], SHORT).is_err(), "version 2 cut at {len}");
        }
    }

    #[test]
    fn an_enrolled_authenticator_and_its_last_step_round_trip() {
        let secret = crate::totp::TotpSecret::from_bytes([9; 20]);
        let enrolled = Event::TotpEnrolled {
            at: T0,
            name: "alice".into(),
            secret: secret.clone(),
            step: T0 / 30,
        };
        let used = Event::TotpLoginSucceeded {
            at: T0 + 30,
            name: "alice".into(),
            step: T0 / 30 + 1,
        };
        let ledger = replay(SHORT, &[opened("alice", 900), opened("bob", 0), enrolled, used]);
        let bytes = encode(&ledger);
        let decoded = decode(&bytes, SHORT).unwrap();
        assert_eq!(decoded, ledger);
        let alice = decoded.account("alice").unwrap().totp.clone().unwrap();
        assert_eq!((alice.secret, alice.last_step), (secret, T0 / 30 + 1));
        assert_eq!(decoded.account("bob").unwrap().totp, None);
        let totp_at = closed_at(5) + 1;
        let mut bad = bytes.clone();
        assert_eq!(bad[totp_at], 1);
        bad[totp_at] = 2;
        assert_eq!(decode(&bad, SHORT), Err(DecodeError::BadValue("totp")));
    }

    #[test]
    fn a_version_1_snapshot_still_loads_as_a_bank_without_unlocks_or_closed_accounts() {
        let ledger = replay(
            SHORT,
            &[opened("alice", 900), tx(T0, "alice", TxKind::Deposit, 100, "", None)],
        );
        let current = encode(&ledger);
        let old = as_version_1(&current, 5);
        assert_eq!(old.len(), current.len() - 10);
        assert_eq!(decode(&old, SHORT).unwrap(), ledger);
        assert_eq!(&*in_current_version(&old, SHORT).unwrap(), &current[..]);
        assert!(matches!(
            in_current_version(&current, SHORT).unwrap(),
            std::borrow::Cow::Borrowed(_)
        ));
        for len in 0..old.len() {
            assert!(decode(&old[..len], SHORT).is_err(), "version 1 cut at {len}");
        }
    }

    /// A snapshot of one account "alice" (1,000 cents) with one remembered deposit of 100.
    fn one_account() -> Vec<u8> {
        encode(&replay(
            SHORT,
            &[opened("alice", 900), tx(T0, "alice", TxKind::Deposit, 100, "", None)],
        ))
    }

    /// Byte offset of the seen count in [`one_account`]: before its one 44-byte id record.
    fn seen_count_at(bytes: &[u8]) -> usize {
        bytes.len() - (16 + 1 + 8 + 2 + 1 + 8 + 8) - 4
    }

    #[test]
    fn a_lying_account_or_id_count_is_refused_before_allocating() {
        let bytes = one_account();
        assert!(decode(&bytes, SHORT).is_ok());
        for count in [2, 1_000, u32::MAX] {
            let mut lying = bytes.clone();
            lying[ACCOUNT_COUNT_AT..ACCOUNT_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
            assert!(decode(&lying, SHORT).is_err(), "account count {count}");
            let mut lying = bytes.clone();
            let at = seen_count_at(&bytes);
            lying[at..at + 4].copy_from_slice(&count.to_be_bytes());
            assert_eq!(
                decode(&lying, SHORT),
                Err(DecodeError::Truncated("seen")),
                "id count {count}"
            );
        }
    }

    #[test]
    fn an_id_recorded_after_its_accounts_last_change_is_refused() {
        let mut bytes = one_account();
        let lsn_at = bytes.len() - 8;
        bytes[lsn_at..].copy_from_slice(&3u64.to_be_bytes());
        assert_eq!(decode(&bytes, SHORT), Err(DecodeError::BadValue("lsn")));
    }

    #[test]
    fn balances_that_do_not_match_the_totals_are_refused() {
        let mut bytes = one_account();
        // deposited is a u128 at offset 1; add one cent.
        bytes[16] += 1;
        assert_eq!(decode(&bytes, SHORT), Err(DecodeError::BadValue("totals")));
    }

    #[test]
    fn duplicate_or_unordered_names_and_ids_are_refused() {
        let two = encode(&replay(SHORT, &[opened("aaa", 0), opened("bbb", 0)]));
        let name_at = |n: usize| ACCOUNT_COUNT_AT + 4 + n * (MIN_ACCOUNT_BYTES + 3) + 2;
        let mut same = two.clone();
        same[name_at(1)..name_at(1) + 3].copy_from_slice(b"aaa");
        assert_eq!(decode(&same, SHORT), Err(DecodeError::BadValue("name order")));
        let mut swapped = two.clone();
        swapped[name_at(0)..name_at(0) + 3].copy_from_slice(b"ccc");
        assert_eq!(decode(&swapped, SHORT), Err(DecodeError::BadValue("name order")));

        let events = [
            opened("alice", 0),
            tx(T0, "alice", TxKind::Deposit, 100, "", None),
            tx(T0 + 1, "alice", TxKind::Deposit, 100, "", None),
        ];
        let bytes = encode(&replay(SHORT, &events));
        let record = 16 + 1 + 8 + 2 + 1 + 8 + 8;
        let (first, second) = (bytes.len() - 2 * record, bytes.len() - record);
        let mut duplicate = bytes.clone();
        duplicate.copy_within(first..first + 16, second);
        assert_eq!(decode(&duplicate, SHORT), Err(DecodeError::BadValue("txid repeated")));
    }

    #[test]
    fn an_unordered_snapshot_decodes_to_the_same_ledger_as_the_canonical_one() {
        let events = [
            opened("alice", 0),
            tx(T0, "alice", TxKind::Deposit, 100, "", None),
            tx(T0 + 1, "alice", TxKind::Deposit, 100, "", None),
            tx(T0 + 2, "alice", TxKind::Withdrawal, 50, "", None),
        ];
        let ledger = replay(SHORT, &events);
        let from_unordered = decode(&encode_unordered(&ledger), SHORT).unwrap();
        assert_eq!(from_unordered, ledger);
        assert_eq!(encode(&from_unordered), encode(&ledger));
    }

    #[test]
    fn out_of_range_fields_are_refused() {
        let bytes = one_account();
        for wrong in [0, VERSION + 1] {
            let mut version = bytes.clone();
            version[0] = wrong;
            assert_eq!(decode(&version, SHORT), Err(DecodeError::BadValue("version")));
        }
        let mut closed = bytes.clone();
        closed[closed_at(5)] = 2;
        assert_eq!(decode(&closed, SHORT), Err(DecodeError::BadValue("closed")));
        let iterations_at = ACCOUNT_COUNT_AT + 4 + 2 + 5 + 16;
        let mut iterations = bytes.clone();
        iterations[iterations_at..iterations_at + 4].copy_from_slice(&999u32.to_be_bytes());
        assert_eq!(decode(&iterations, SHORT), Err(DecodeError::BadValue("iterations")));
        let history_at = iterations_at + 4 + 32 + 8 + 4 + 8 + 8 + 1;
        let mut history = bytes.clone();
        history[history_at..history_at + 2].copy_from_slice(&51u16.to_be_bytes());
        assert_eq!(decode(&history, SHORT), Err(DecodeError::TooLong("history")));
        let outcome_at = bytes.len() - 8 - 8 - 1;
        let mut outcome = bytes.clone();
        outcome[outcome_at] = 2;
        assert_eq!(decode(&outcome, SHORT), Err(DecodeError::BadValue("outcome")));
        // The clock and the floor just above the one remembered id, then the floor alone.
        let clock_at = 1 + 16 + 16;
        let mut floor = bytes.clone();
        floor[clock_at..clock_at + 8].copy_from_slice(&(T0 * 1_000 + 1).to_be_bytes());
        floor[clock_at + 8..clock_at + 16].copy_from_slice(&(T0 * 1_000 + 1).to_be_bytes());
        assert_eq!(decode(&floor, SHORT), Err(DecodeError::BadValue("txid")));
        floor[clock_at..clock_at + 8].copy_from_slice(&(T0 * 1_000).to_be_bytes());
        assert_eq!(decode(&floor, SHORT), Err(DecodeError::BadValue("forgotten_before")));
    }
}
