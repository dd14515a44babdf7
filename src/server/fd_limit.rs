//! The file-descriptor budget: every connection holds one, so the connection cap must fit
//! under the process's file limit (`RLIMIT_NOFILE`).
//!
//! With a soft limit under the cap (1,024 is a common default, the same as the default
//! cap), `accept` would fail with "too many open files" before the cap is reached, and
//! clients would wait in the listen backlog with no answer. So at start-up the soft limit is
//! raised toward the hard limit, as far as the cap needs; if that is still too low, the cap
//! is lowered to fit, and the console says so.
//!
//! Invariant: after [`fit_connection_cap`], `cap + RESERVED_FILE_DESCRIPTORS ≤ soft limit`.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::limits::RESERVED_FILE_DESCRIPTORS;

/// What [`fit_connection_cap`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft file limit now in force.
    pub soft_limit: u64,
    /// The connection cap that fits under it.
    pub max_connections: usize,
    /// The cap that was asked for, when it had to be lowered.
    pub lowered_from: Option<usize>,
}

/// Why the server cannot start with this file limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdLimitTooLow {
    /// The soft limit in force.
    pub soft_limit: u64,
}

impl std::fmt::Display for FdLimitTooLow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the file limit (ulimit -n) is {}, too low to serve even one connection: the server keeps \
             {RESERVED_FILE_DESCRIPTORS} descriptors for its own files; raise it (ulimit -n 4096)",
            self.soft_limit
        )
    }
}

impl std::error::Error for FdLimitTooLow {}

/// Raises the soft file limit as far as `max_connections` needs (never past the hard
/// limit) and returns the cap that fits. If the limits cannot be read, the cap is kept.
pub fn fit_connection_cap(max_connections: usize) -> Result<FdBudget, FdLimitTooLow> {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Ok(FdBudget {
            soft_limit: u64::MAX,
            max_connections,
            lowered_from: None,
        });
    };
    let needed = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVED_FILE_DESCRIPTORS);
    let soft = match raised_soft_limit(soft, hard, needed) {
        Some(raised) if setrlimit(Resource::RLIMIT_NOFILE, raised, hard).is_ok() => raised,
        _ => soft,
    };
    budget(max_connections, soft)
}

/// The soft limit to ask for when `needed` descriptors are wanted: `None` when `soft`
/// already suffices, else `needed`, but never past `hard`.
fn raised_soft_limit(soft: u64, hard: u64, needed: u64) -> Option<u64> {
    (soft < needed).then(|| needed.min(hard))
}

/// The cap that fits under `soft_limit`.
fn budget(max_connections: usize, soft_limit: u64) -> Result<FdBudget, FdLimitTooLow> {
    let room = soft_limit.saturating_sub(RESERVED_FILE_DESCRIPTORS);
    if room == 0 {
        return Err(FdLimitTooLow { soft_limit });
    }
    let fits = usize::try_from(room).unwrap_or(usize::MAX);
    Ok(if fits < max_connections {
        FdBudget {
            soft_limit,
            max_connections: fits,
            lowered_from: Some(max_connections),
        }
    } else {
        FdBudget {
            soft_limit,
            max_connections,
            lowered_from: None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_kept_when_it_fits_and_lowered_to_fit_when_not() {
        let reserve = usize::try_from(RESERVED_FILE_DESCRIPTORS).unwrap();
        assert_eq!(budget(1024, 4096).unwrap().lowered_from, None);
        assert_eq!(
            budget(1024, 1024 + RESERVED_FILE_DESCRIPTORS).unwrap().max_connections,
            1024
        );
        let lowered = budget(1024, 1024).unwrap();
        assert_eq!(lowered.max_connections, 1024 - reserve);
        assert_eq!(lowered.lowered_from, Some(1024));
        assert_eq!(budget(1024, RESERVED_FILE_DESCRIPTORS + 1).unwrap().max_connections, 1);
        assert!(budget(1024, RESERVED_FILE_DESCRIPTORS).is_err());
    }

    #[test]
    fn the_soft_limit_is_raised_only_when_short_and_never_past_the_hard_limit() {
        assert_eq!(raised_soft_limit(1024, 4096, 1088), Some(1088));
        assert_eq!(raised_soft_limit(1024, 1050, 1088), Some(1050));
        assert_eq!(raised_soft_limit(1088, 4096, 1088), None);
        assert_eq!(raised_soft_limit(2048, 4096, 1088), None);
    }

    #[test]
    fn too_low_a_limit_is_explained_with_the_number_and_the_fix() {
        let text = FdLimitTooLow { soft_limit: 20 }.to_string();
        assert!(text.contains("is 20"), "{text}");
        assert!(text.contains("ulimit -n"), "{text}");
    }

    #[test]
    fn the_soft_limit_is_raised_far_enough_for_the_cap() {
        let budget = fit_connection_cap(100).unwrap();
        assert!(budget.soft_limit >= 100 + RESERVED_FILE_DESCRIPTORS || budget.lowered_from.is_some());
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, budget.soft_limit);
    }
}
