//! Failed logins for names that no open account has, counted like real accounts' so that
//! the lockout answer does not tell which names exist.
//!
//! A real account locks after [`crate::limits::LOCKOUT_THRESHOLD`] failures; if a name that
//! was never opened did not, "locked" would confirm the name. So failures for unknown names
//! are counted here by the same rule ([`super::ledger::failure_locks`]), in memory only (the
//! journal is for the bank's state, and what strangers type is not kept).
//!
//! Invariants: at most `capacity` names are held ([`MAX_TRACKED_UNKNOWN_NAMES`]); a name
//! is held as a keyed 64-bit hash, never as text; when full, an eighth of the table makes
//! room at once (unlocked names touched longest ago first; a locked name only when every
//! name is locked), so a flood of new names pays one scan per 8,192 failures, not one each. Limits:
//! the counts start again at a restart, which a stranger cannot cause.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use super::ledger::failure_locks;
use crate::limits::MAX_TRACKED_UNKNOWN_NAMES;

#[derive(Debug, Clone, Copy)]
struct Failures {
    consecutive: u32,
    locked_until: u64,
    last_touched: u64,
}

/// The bounded table of unknown names' failures.
#[derive(Debug)]
pub struct UnknownNames {
    capacity: usize,
    hasher: RandomState,
    names: HashMap<u64, Failures>,
}

impl Default for UnknownNames {
    fn default() -> Self {
        Self::with_capacity(MAX_TRACKED_UNKNOWN_NAMES)
    }
}

impl UnknownNames {
    /// A table holding at most `capacity` names (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            hasher: RandomState::new(),
            names: HashMap::new(),
        }
    }

    /// Whether `name` is locked at `now` (Unix seconds), as a real account would be.
    pub fn is_locked(&self, name: &str, now: u64) -> bool {
        self.names
            .get(&self.key(name))
            .is_some_and(|failures| now < failures.locked_until)
    }

    /// Counts a failed login for `name` at `now`; a lock of `lockout_secs` starts when the
    /// count reaches the threshold. Returns whether `name` is now locked.
    pub fn record_failure(&mut self, name: &str, now: u64, lockout_secs: u64) -> bool {
        let key = self.key(name);
        if !self.names.contains_key(&key) && self.names.len() >= self.capacity {
            self.make_room(now);
        }
        let failures = self.names.entry(key).or_insert(Failures {
            consecutive: 0,
            locked_until: 0,
            last_touched: now,
        });
        failures.last_touched = now;
        if failure_locks(failures.consecutive) {
            failures.consecutive = 0;
            failures.locked_until = now.saturating_add(lockout_secs);
            true
        } else {
            failures.consecutive += 1;
            false
        }
    }

    /// Names held now.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn key(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    /// Forgets an eighth of the table at once (at least one name), so the scan is paid once
    /// per many failures, not at each: names whose lock is over (or that never locked)
    /// first, those touched longest ago first; a locked name only when every name is locked.
    fn make_room(&mut self, now: u64) {
        let batch = (self.capacity / 8).max(1);
        let mut unlocked: Vec<(u64, u64)> = self
            .names
            .iter()
            .filter(|(_, failures)| now >= failures.locked_until)
            .map(|(&key, failures)| (failures.last_touched, key))
            .collect();
        if unlocked.is_empty() {
            let oldest = self
                .names
                .iter()
                .min_by_key(|(_, failures)| failures.last_touched)
                .map(|(&key, _)| key);
            if let Some(key) = oldest {
                self.names.remove(&key);
            }
            return;
        }
        let batch = batch.min(unlocked.len());
        unlocked.select_nth_unstable(batch - 1);
        for (_, key) in &unlocked[..batch] {
            self.names.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LOCKOUT_THRESHOLD;

    #[test]
    fn an_unknown_name_locks_after_the_same_number_of_failures_as_an_account() {
        let mut names = UnknownNames::default();
        for failure in 1..LOCKOUT_THRESHOLD {
            assert!(!names.record_failure("mallory", 100, 900), "locked after {failure}");
            assert!(!names.is_locked("mallory", 100));
        }
        assert!(names.record_failure("mallory", 100, 900));
        assert!(names.is_locked("mallory", 100));
        assert!(names.is_locked("mallory", 999), "still locked a second before the end");
        assert!(!names.is_locked("mallory", 1_000), "unlocked exactly at the end");
        assert!(!names.is_locked("trudy", 100), "other names are not affected");
    }

    #[test]
    fn after_a_lock_the_count_starts_again() {
        let mut names = UnknownNames::default();
        for _ in 0..LOCKOUT_THRESHOLD {
            names.record_failure("mallory", 100, 10);
        }
        for _ in 1..LOCKOUT_THRESHOLD {
            assert!(!names.record_failure("mallory", 200, 10));
        }
        assert!(names.record_failure("mallory", 200, 10));
    }

    #[test]
    fn a_full_table_forgets_an_unlocked_name_before_a_locked_one_even_a_newer_one() {
        let mut names = UnknownNames::with_capacity(2);
        assert!(names.is_empty());
        for _ in 0..LOCKOUT_THRESHOLD {
            names.record_failure("locked", 50, 900);
        }
        names.record_failure("counting", 100, 900);
        assert!(!names.is_empty());
        names.record_failure("newcomer", 200, 900);
        assert_eq!(names.len(), 2);
        assert!(
            names.is_locked("locked", 200),
            "the locked name was kept, though touched longer ago"
        );
    }

    #[test]
    fn a_full_table_forgets_an_eighth_of_its_unlocked_names_at_once_oldest_first() {
        let mut names = UnknownNames::with_capacity(16);
        for n in 0..16 {
            names.record_failure(&format!("name{n}"), n, 900);
        }
        names.record_failure("newcomer", 100, 900);
        assert_eq!(names.len(), 15, "two forgotten, one added");
        // name0 and name1 were forgotten: their counts start again, name2's goes on.
        for _ in 1..LOCKOUT_THRESHOLD {
            names.record_failure("name0", 101, 900);
            names.record_failure("name2", 101, 900);
        }
        assert!(!names.is_locked("name0", 101));
        assert!(names.is_locked("name2", 101));
    }

    #[test]
    fn a_lock_that_ends_now_no_longer_protects_its_name_from_being_forgotten() {
        let mut names = UnknownNames::with_capacity(2);
        for _ in 0..LOCKOUT_THRESHOLD {
            names.record_failure("was-locked", 10, 90);
        }
        names.record_failure("recent", 99, 90);
        // At 100 the lock has ended: the name touched longest ago goes, locked or not.
        names.record_failure("newcomer", 100, 90);
        for _ in 1..LOCKOUT_THRESHOLD {
            names.record_failure("recent", 101, 90);
        }
        assert!(names.is_locked("recent", 101), "recent kept its count");
    }
}
