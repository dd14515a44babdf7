//! Bounded memory of transaction ids: the ledger's clock, the time check of a new id, and
//! the index that forgets ids once they are older than the retention window.
//!
//! A [`TxId`] starts with its creation time in milliseconds ([`txid_created_ms`]). The
//! ledger keeps a clock, `clock_ms`: the largest event time (`at` × 1000) it has applied, a
//! high-water mark that never goes back. Applying any event moves the clock and forgets
//! every id created before `cutoff = clock_ms − window_ms`; `forgotten_before_ms` is the
//! largest cutoff ever used. A request is refused before its id is looked up if the id was
//! created before `max(forgotten_before_ms, now_ms − window_ms)` (`transaction_id_expired`)
//! or after `now_ms + 1 s + skew_ms` (`transaction_id_in_future`), where `now_ms` is the
//! later of the wall clock and `clock_ms`.
//!
//! Invariants: an id is forgotten only when it is below `forgotten_before_ms`, and every id
//! below `forgotten_before_ms` is refused, so no id is ever applied twice, even after it has
//! left memory. This holds across restarts too: forgetting depends only on the events'
//! `at` times (never on the wall clock), so replay forgets exactly what live operation
//! forgot, and a snapshot stores `clock_ms` and `forgotten_before_ms`. Every remembered id
//! is at or above `forgotten_before_ms`, and `forgotten_before_ms ≤ clock_ms`. The memory
//! holds at most the ids created within one window (plus the skew) of the clock.

use std::collections::BTreeSet;

use crate::error::ErrorCode;
use crate::limits::{DEFAULT_TXID_RETENTION_SECS, MAX_TXID_CLOCK_SKEW_SECS};
use crate::message::{TxId, txid_created_ms};

/// Slack added to the skew allowance, in milliseconds: the server's `now` is whole seconds,
/// and an id made in the same second may carry up to 999 more milliseconds.
const NOW_GRANULARITY_MS: u64 = 1_000;

/// How long transaction ids are remembered, and how far ahead a client clock may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxidRetention {
    /// Ids created more than this long before the ledger's clock are forgotten and refused,
    /// in milliseconds.
    pub window_ms: u64,
    /// Ids created more than this far (plus one second) ahead of the server's clock are
    /// refused, in milliseconds.
    pub skew_ms: u64,
}

impl Default for TxidRetention {
    /// [`DEFAULT_TXID_RETENTION_SECS`] and [`MAX_TXID_CLOCK_SKEW_SECS`].
    fn default() -> Self {
        Self {
            window_ms: DEFAULT_TXID_RETENTION_SECS * 1_000,
            skew_ms: MAX_TXID_CLOCK_SKEW_SECS * 1_000,
        }
    }
}

/// The clock, the forgetting floor and the expiry index of every remembered id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TxidMemory {
    retention: TxidRetention,
    clock_ms: u64,
    forgotten_before_ms: u64,
    /// (creation time, id, account) of every remembered id, oldest first. The account is in
    /// the key because ids are scoped per account: two accounts may hold the same id.
    index: BTreeSet<(u64, TxId, String)>,
}

impl TxidMemory {
    /// An empty memory with `retention`.
    pub(super) fn new(retention: TxidRetention) -> Self {
        Self {
            retention,
            ..Self::default()
        }
    }

    /// A memory restored from a snapshot: the clock, the floor and every remembered id.
    /// Refuses (naming the field) a floor above the clock, an id below the floor, or the
    /// same id twice in one account.
    pub(super) fn restore(
        retention: TxidRetention,
        clock_ms: u64,
        forgotten_before_ms: u64,
        ids: impl IntoIterator<Item = (String, TxId)>,
    ) -> Result<Self, &'static str> {
        if forgotten_before_ms > clock_ms {
            return Err("forgotten_before");
        }
        let mut memory = Self {
            retention,
            clock_ms,
            forgotten_before_ms,
            index: BTreeSet::new(),
        };
        for (user, txid) in ids {
            let created_ms = txid_created_ms(&txid);
            if created_ms < forgotten_before_ms {
                return Err("txid");
            }
            if !memory.index.insert((created_ms, txid, user)) {
                return Err("txid");
            }
        }
        Ok(memory)
    }

    /// The retention settings.
    pub(super) fn retention(&self) -> TxidRetention {
        self.retention
    }

    /// The largest event time applied, in Unix milliseconds.
    pub(super) fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Every id created before this (Unix milliseconds) has been, or may have been,
    /// forgotten, and is refused.
    pub(super) fn forgotten_before_ms(&self) -> u64 {
        self.forgotten_before_ms
    }

    /// Number of remembered ids.
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// The time check of a new request with `txid` at `now_secs` (the wall clock), made
    /// before the id is looked up. `None` if the id may be looked up and used.
    pub(super) fn check(&self, txid: &TxId, now_secs: u64) -> Option<ErrorCode> {
        let created_ms = txid_created_ms(txid);
        let now_ms = now_secs.saturating_mul(1_000).max(self.clock_ms);
        let oldest_kept_ms = self
            .forgotten_before_ms
            .max(now_ms.saturating_sub(self.retention.window_ms));
        if created_ms < oldest_kept_ms {
            return Some(ErrorCode::TransactionIdExpired);
        }
        let newest_allowed_ms = now_ms
            .saturating_add(NOW_GRANULARITY_MS)
            .saturating_add(self.retention.skew_ms);
        if created_ms > newest_allowed_ms {
            return Some(ErrorCode::TransactionIdInFuture);
        }
        None
    }

    /// Adds `txid` of `user` to the index (the caller has recorded it in the account).
    pub(super) fn remember(&mut self, user: &str, txid: &TxId) {
        self.index.insert((txid_created_ms(txid), *txid, user.to_string()));
    }

    /// Moves the clock to `at_secs` (never backwards); [`TxidMemory::forget_expired`] then
    /// forgets what falls out of the window.
    pub(super) fn advance(&mut self, at_secs: u64) {
        self.clock_ms = self.clock_ms.max(at_secs.saturating_mul(1_000));
    }

    /// Forgets every id created before `clock_ms − window_ms` and raises the floor to that
    /// cutoff, calling `forget(user, txid)` for each id so the caller drops it too.
    pub(super) fn forget_expired(&mut self, mut forget: impl FnMut(&str, &TxId)) {
        let cutoff = self.clock_ms.saturating_sub(self.retention.window_ms);
        while self.index.first().is_some_and(|(created_ms, ..)| *created_ms < cutoff) {
            if let Some((_, txid, user)) = self.index.pop_first() {
                forget(&user, &txid);
            }
        }
        self.forgotten_before_ms = self.forgotten_before_ms.max(cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::txid_at;
    use crate::server::auth;
    use crate::server::events::{Event, TxKind};
    use crate::server::ledger::{Ledger, TxDecision, TxRequest};

    /// A one-minute window and a five-second skew, so the boundaries are easy to read.
    const SHORT: TxidRetention = TxidRetention {
        window_ms: 60_000,
        skew_ms: 5_000,
    };
    /// A time well after the epoch, in seconds.
    const T0: u64 = 1_700_000_000;

    fn ledger() -> Ledger {
        let mut ledger = Ledger::with_retention(SHORT);
        for (lsn, name) in [(1, "alice"), (2, "bob")] {
            let event = Event::AccountOpened {
                at: T0,
                name: name.into(),
                password: auth::dummy_record(1_000),
                opening_cents: 10_000,
            };
            ledger.apply(&event, lsn).unwrap();
        }
        ledger
    }

    fn deposit(user: &str, txid: TxId) -> TxRequest<'_> {
        TxRequest {
            user,
            txid,
            kind: TxKind::Deposit,
            amount_cents: 100,
            counterparty: "",
        }
    }

    /// Decides and applies a deposit at `now_secs`; panics unless it is recorded.
    fn record(ledger: &mut Ledger, user: &str, txid: TxId, now_secs: u64, lsn: u64) {
        match ledger.decide_transaction(deposit(user, txid), now_secs) {
            TxDecision::Record(event) => ledger.apply(&event, lsn).unwrap(),
            other => panic!("expected a record, got {other:?}"),
        }
    }

    fn refusal(ledger: &Ledger, txid: TxId, now_secs: u64) -> Option<ErrorCode> {
        match ledger.decide_transaction(deposit("alice", txid), now_secs) {
            TxDecision::Invalid(code) => Some(code),
            _ => None,
        }
    }

    /// Applies a login success at `at` (any event moves the clock).
    fn tick(ledger: &mut Ledger, at: u64, lsn: u64) {
        let event = Event::LoginSucceeded { at, name: "bob".into() };
        ledger.apply(&event, lsn).unwrap();
    }

    #[test]
    fn an_id_created_exactly_at_the_window_edge_is_accepted_and_one_ms_earlier_is_expired() {
        let ledger = ledger();
        let now_ms = T0 * 1_000;
        let edge = now_ms - SHORT.window_ms;
        assert_eq!(refusal(&ledger, txid_at(edge), T0), None);
        assert_eq!(
            refusal(&ledger, txid_at(edge - 1), T0),
            Some(ErrorCode::TransactionIdExpired)
        );
    }

    #[test]
    fn an_id_up_to_the_skew_plus_one_second_ahead_is_accepted_and_one_ms_more_is_in_the_future() {
        let ledger = ledger();
        let newest = T0 * 1_000 + 1_000 + SHORT.skew_ms;
        assert_eq!(refusal(&ledger, txid_at(newest), T0), None);
        assert_eq!(
            refusal(&ledger, txid_at(newest + 1), T0),
            Some(ErrorCode::TransactionIdInFuture)
        );
    }

    #[test]
    fn a_refused_id_is_not_recorded_and_changes_nothing() {
        let mut ledger = ledger();
        let before = ledger.clone();
        let old = txid_at(T0 * 1_000 - SHORT.window_ms - 1);
        let TxDecision::Invalid(ErrorCode::TransactionIdExpired) = ledger.decide_transaction(deposit("alice", old), T0)
        else {
            panic!("expected expired")
        };
        assert_eq!(ledger, before);
        // The same bytes with a current time are a new id and apply.
        record(&mut ledger, "alice", txid_at(T0 * 1_000), T0, 3);
        assert_eq!(ledger.account("alice").unwrap().balance_cents, 10_100);
    }

    #[test]
    fn ids_are_forgotten_only_once_the_clock_passes_their_time_plus_the_window() {
        let mut ledger = ledger();
        let created_ms = T0 * 1_000;
        let txid = txid_at(created_ms);
        record(&mut ledger, "alice", txid, T0, 3);
        assert_eq!(ledger.remembered_txids(), 1);
        // The cutoff reaches the id's time exactly: it is kept, and a retry is a repeat.
        tick(&mut ledger, T0 + 60, 4);
        assert_eq!(ledger.remembered_txids(), 1);
        assert_eq!(ledger.forgotten_before_ms(), created_ms);
        assert!(matches!(
            ledger.decide_transaction(deposit("alice", txid), T0 + 60),
            TxDecision::Repeat {
                outcome: Ok(10_100),
                lsn: 3
            }
        ));
        // One second later the cutoff has passed it: forgotten, and refused from now on.
        tick(&mut ledger, T0 + 61, 5);
        assert_eq!(ledger.remembered_txids(), 0);
        assert!(
            ledger.account("alice").unwrap().seen.is_empty(),
            "dropped from the account too"
        );
        assert_eq!(ledger.forgotten_before_ms(), created_ms + 1_000);
        assert_eq!(refusal(&ledger, txid, T0 + 61), Some(ErrorCode::TransactionIdExpired));
    }

    #[test]
    fn a_forgotten_id_is_refused_even_when_the_wall_clock_goes_backwards() {
        let mut ledger = ledger();
        let txid = txid_at(T0 * 1_000);
        record(&mut ledger, "alice", txid, T0, 3);
        tick(&mut ledger, T0 + 3_600, 4);
        assert_eq!(ledger.remembered_txids(), 0);
        // The wall clock is back at the id's own time, where it would look fresh: still refused.
        assert_eq!(refusal(&ledger, txid, T0), Some(ErrorCode::TransactionIdExpired));
        assert_eq!(refusal(&ledger, txid, 0), Some(ErrorCode::TransactionIdExpired));
        assert_eq!(ledger.account("alice").unwrap().balance_cents, 10_100);
    }

    #[test]
    fn a_backward_wall_clock_does_not_move_the_ledger_clock_back() {
        let mut ledger = ledger();
        tick(&mut ledger, T0 + 100, 3);
        let clock = ledger.clock_ms();
        record(&mut ledger, "alice", txid_at(T0 * 1_000 + 90_000), T0 + 10, 4);
        assert_eq!(ledger.clock_ms(), clock);
        // The window is measured from the ledger clock when the wall clock is behind it.
        let edge = clock - SHORT.window_ms;
        assert_eq!(refusal(&ledger, txid_at(edge), T0), None);
        assert_eq!(
            refusal(&ledger, txid_at(edge - 1), T0),
            Some(ErrorCode::TransactionIdExpired)
        );
        // And the skew from the ledger clock too: an id made at the clock's time is not in the future.
        let newest = clock + 1_000 + SHORT.skew_ms;
        assert_eq!(refusal(&ledger, txid_at(newest), T0), None);
        assert_eq!(
            refusal(&ledger, txid_at(newest + 1), T0),
            Some(ErrorCode::TransactionIdInFuture)
        );
    }

    #[test]
    fn the_window_follows_the_wall_clock_ahead_of_the_ledger_clock() {
        let ledger = ledger();
        let later = T0 + 1_000;
        let edge = later * 1_000 - SHORT.window_ms;
        assert_eq!(
            refusal(&ledger, txid_at(edge - 1), later),
            Some(ErrorCode::TransactionIdExpired)
        );
        assert_eq!(refusal(&ledger, txid_at(edge), later), None);
        assert_eq!(
            ledger.forgotten_before_ms(),
            T0 * 1_000 - SHORT.window_ms,
            "decide changes nothing"
        );
    }

    #[test]
    fn the_same_id_in_two_accounts_is_remembered_and_forgotten_for_each() {
        let mut ledger = ledger();
        let txid = txid_at(T0 * 1_000);
        record(&mut ledger, "alice", txid, T0, 3);
        record(&mut ledger, "bob", txid, T0, 4);
        assert_eq!(ledger.remembered_txids(), 2);
        tick(&mut ledger, T0 + 61, 5);
        assert_eq!(ledger.remembered_txids(), 0);
    }

    #[test]
    fn replay_of_the_same_events_forgets_the_same_ids() {
        let opened = ledger();
        let mut live = opened.clone();
        let mut events = Vec::new();
        for (i, at) in [T0, T0 + 30, T0 + 70, T0 + 200].into_iter().enumerate() {
            let txid = txid_at(at * 1_000);
            let TxDecision::Record(event) = live.decide_transaction(deposit("alice", txid), at) else {
                panic!("expected a record")
            };
            live.apply(&event, 3 + i as u64).unwrap();
            events.push(event);
        }
        let mut replayed = opened;
        for (i, event) in events.iter().enumerate() {
            replayed.apply(event, 3 + i as u64).unwrap();
        }
        assert_eq!(replayed, live);
        assert_eq!(live.remembered_txids(), 1);
    }

    #[test]
    fn a_restored_memory_refuses_a_floor_above_the_clock_or_an_id_below_the_floor() {
        let ids = || vec![("alice".to_string(), txid_at(5_000))];
        assert!(TxidMemory::restore(SHORT, 10_000, 5_000, ids()).is_ok());
        assert_eq!(TxidMemory::restore(SHORT, 4_000, 5_000, ids()), Err("forgotten_before"));
        assert_eq!(TxidMemory::restore(SHORT, 10_000, 5_001, ids()), Err("txid"));
    }
}
