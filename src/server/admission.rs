//! Who may start what: per-source budgets for connections, handshakes and logins.
//!
//! A flood of strangers must not make the bank unusable for its customers. Before a
//! connection gets a thread, [`Admission::admit`] checks its source (an IPv4 address, or an
//! IPv6 /64) against three budgets: connections held before logging in, handshakes per
//! second (each costs an RSA signature) and, later, password checks per minute (each costs
//! PBKDF2, see [`Admission::take_login`]). The rates are token buckets: a burst, then a
//! steady rate.
//!
//! Invariants: the table holds at most [`MAX_TRACKED_SOURCES`] sources (an idle source
//! with full buckets carries no information and is forgotten first; when none can be, a new
//! source is refused rather than the table grown); a source's count of anonymous
//! connections goes back down however its connection ends (the [`AnonymousTicket`] guard).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::limits::{
    DEFAULT_ANONYMOUS_PER_SOURCE, DEFAULT_HANDSHAKES_PER_SOURCE_PER_SEC, DEFAULT_LOGINS_PER_SOURCE_PER_MIN,
    HANDSHAKE_BURST_PER_SOURCE, LOGIN_BURST_PER_SOURCE, MAX_TRACKED_SOURCES,
};

/// The per-source budgets; the defaults are in [`crate::limits`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceLimits {
    /// Connections one source may hold before logging in.
    pub anonymous_per_source: usize,
    /// Handshakes one source may start per second, on average.
    pub handshakes_per_sec: f64,
    /// Handshakes in a burst.
    pub handshake_burst: u32,
    /// Password checks one source may ask for per minute, on average.
    pub logins_per_min: f64,
    /// Password checks in a burst.
    pub login_burst: u32,
}

impl Default for SourceLimits {
    fn default() -> Self {
        Self {
            anonymous_per_source: DEFAULT_ANONYMOUS_PER_SOURCE,
            handshakes_per_sec: f64::from(DEFAULT_HANDSHAKES_PER_SOURCE_PER_SEC),
            handshake_burst: HANDSHAKE_BURST_PER_SOURCE,
            logins_per_min: f64::from(DEFAULT_LOGINS_PER_SOURCE_PER_MIN),
            login_burst: LOGIN_BURST_PER_SOURCE,
        }
    }
}

impl SourceLimits {
    /// Budgets no test or benchmark from one address reaches: for tests of everything else.
    pub fn unlimited() -> Self {
        Self {
            anonymous_per_source: usize::MAX,
            handshakes_per_sec: 1e9,
            handshake_burst: u32::MAX,
            logins_per_min: 1e9,
            login_burst: u32::MAX,
        }
    }
}

/// `bank-server` flags that lift every per-source budget (and the refused-transaction budget
/// of a session): for benchmarks and tests that play many clients from one address.
pub const UNLIMITED_SOURCE_FLAGS: [&str; 8] = [
    "--anonymous-per-source",
    "65536",
    "--handshakes-per-source-per-sec",
    "1000000",
    "--logins-per-source-per-min",
    "1000000",
    "--refused-tx-per-session-per-min",
    "1000000",
];

/// Why a connection was not admitted (it is answered ServerBusy and closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source already holds its share of connections that have not logged in.
    TooManyAnonymous,
    /// The source started handshakes faster than its rate.
    TooManyHandshakes,
    /// Every tracked source is busy: the table is full.
    TooManySources,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TooManyAnonymous => "too many connections from this address that have not logged in",
            Self::TooManyHandshakes => "too many new connections from this address",
            Self::TooManySources => "too many addresses connected",
        })
    }
}

/// A token bucket: up to `burst` tokens, refilled at `rate_per_sec`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            updated: now,
        }
    }

    fn refill(&mut self, rate_per_sec: f64, burst: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate_per_sec).min(f64::from(burst));
        self.updated = now;
    }

    /// Takes one token if there is one (after refilling for the time since the last take).
    pub fn take(&mut self, rate_per_sec: f64, burst: u32, now: Instant) -> bool {
        self.refill(rate_per_sec, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a token is there to take at `now` (none is taken).
    pub fn has_token(&mut self, rate_per_sec: f64, burst: u32, now: Instant) -> bool {
        self.refill(rate_per_sec, burst, now);
        self.tokens >= 1.0
    }

    /// Whether the bucket has refilled to `burst` by `now` (then it can be forgotten).
    fn is_full(&self, rate_per_sec: f64, burst: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens + elapsed * rate_per_sec >= f64::from(burst)
    }
}

/// The key a source is counted under: the IPv4 address, or the IPv6 /64 (an IPv4-mapped
/// IPv6 address counts as its IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKey {
    /// One IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6([u8; 8]),
}

impl SourceKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => {
                    let octets = v6.octets();
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&octets[..8]);
                    Self::V6(prefix)
                }
            },
        }
    }
}

#[derive(Debug)]
struct SourceState {
    anonymous: usize,
    handshakes: TokenBucket,
    logins: TokenBucket,
}

/// The table of sources and their budgets.
#[derive(Debug)]
pub struct Admission {
    limits: SourceLimits,
    capacity: usize,
    sources: Mutex<HashMap<SourceKey, SourceState>>,
}

/// Counts one anonymous connection of a source until it logs in or ends.
#[derive(Debug)]
pub struct AnonymousTicket {
    admission: Arc<Admission>,
    source: SourceKey,
    counted: bool,
}

impl Admission {
    /// A table with these budgets and room for [`MAX_TRACKED_SOURCES`] sources.
    pub fn new(limits: SourceLimits) -> Self {
        Self::with_capacity(limits, MAX_TRACKED_SOURCES)
    }

    /// A table with room for `capacity` sources (tests use small ones).
    pub fn with_capacity(limits: SourceLimits, capacity: usize) -> Self {
        assert!(capacity > 0, "a source table holds at least one source");
        Self {
            limits,
            capacity,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Admits a new connection from `ip` at `now`: takes a handshake token and counts it
    /// as anonymous, or says why not (nothing is counted then).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<AnonymousTicket, Refusal> {
        let limits = self.limits;
        let key = SourceKey::of(ip);
        let mut sources = self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !sources.contains_key(&key) && sources.len() >= self.capacity {
            sources.retain(|_, state| !self.forgettable(state, now));
            if sources.len() >= self.capacity {
                return Err(Refusal::TooManySources);
            }
        }
        let state = sources.entry(key).or_insert_with(|| SourceState {
            anonymous: 0,
            handshakes: TokenBucket::full(limits.handshake_burst, now),
            logins: TokenBucket::full(limits.login_burst, now),
        });
        if state.anonymous >= limits.anonymous_per_source {
            return Err(Refusal::TooManyAnonymous);
        }
        if !state
            .handshakes
            .take(limits.handshakes_per_sec, limits.handshake_burst, now)
        {
            return Err(Refusal::TooManyHandshakes);
        }
        state.anonymous += 1;
        Ok(AnonymousTicket {
            admission: Arc::clone(self),
            source: key,
            counted: true,
        })
    }

    /// Takes one password check from the budget of `source`; `false` when it is spent.
    pub fn take_login(&self, source: SourceKey, now: Instant) -> bool {
        let limits = self.limits;
        let rate_per_sec = limits.logins_per_min / 60.0;
        let mut sources = self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The source holds a connection, so its entry exists and cannot have been forgotten.
        sources
            .get_mut(&source)
            .is_some_and(|state| state.logins.take(rate_per_sec, limits.login_burst, now))
    }

    /// Sources remembered now.
    pub fn tracked_sources(&self) -> usize {
        self.sources
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    fn forgettable(&self, state: &SourceState, now: Instant) -> bool {
        let limits = self.limits;
        state.anonymous == 0
            && state
                .handshakes
                .is_full(limits.handshakes_per_sec, limits.handshake_burst, now)
            && state
                .logins
                .is_full(limits.logins_per_min / 60.0, limits.login_burst, now)
    }

    fn change_anonymous(&self, source: SourceKey, counted: bool) {
        let mut sources = self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(state) = sources.get_mut(&source) {
            if counted {
                state.anonymous += 1;
            } else {
                state.anonymous = state.anonymous.saturating_sub(1);
            }
        }
    }
}

impl AnonymousTicket {
    /// The source this connection came from.
    pub fn source(&self) -> SourceKey {
        self.source
    }

    /// Counts the connection as anonymous (`true`: not logged in, or logged out again) or
    /// not (`false`: logged in). Logging out counts again without a check: the connection is
    /// already held.
    pub fn set_anonymous(&mut self, anonymous: bool) {
        if anonymous != self.counted {
            self.admission.change_anonymous(self.source, anonymous);
            self.counted = anonymous;
        }
    }
}

impl Drop for AnonymousTicket {
    fn drop(&mut self) {
        self.set_anonymous(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> SourceLimits {
        SourceLimits {
            anonymous_per_source: 2,
            handshakes_per_sec: 1.0,
            handshake_burst: 3,
            logins_per_min: 60.0,
            login_burst: 2,
        }
    }

    fn secs(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_source_holds_at_most_its_share_of_anonymous_connections_until_one_logs_in() {
        let admission = Arc::new(Admission::new(limits()));
        let now = Instant::now();
        let mut first = admission.admit(ip("127.0.0.2"), now).unwrap();
        let _second = admission.admit(ip("127.0.0.2"), now).unwrap();
        assert_eq!(
            admission.admit(ip("127.0.0.2"), now).unwrap_err(),
            Refusal::TooManyAnonymous
        );
        assert!(
            admission.admit(ip("127.0.0.3"), now).is_ok(),
            "another source is not affected"
        );
        first.set_anonymous(false);
        let third = admission.admit(ip("127.0.0.2"), now).unwrap();
        drop(third);
        first.set_anonymous(true);
        assert_eq!(
            admission.admit(ip("127.0.0.2"), now).unwrap_err(),
            Refusal::TooManyAnonymous,
            "a logged-out connection counts as anonymous again"
        );
    }

    #[test]
    fn handshakes_beyond_the_burst_wait_for_the_rate() {
        let admission = Arc::new(Admission::new(SourceLimits {
            anonymous_per_source: 100,
            ..limits()
        }));
        let start = Instant::now();
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(admission.admit(ip("10.0.0.1"), start).unwrap());
        }
        assert_eq!(
            admission.admit(ip("10.0.0.1"), start).unwrap_err(),
            Refusal::TooManyHandshakes
        );
        assert_eq!(
            admission
                .admit(ip("10.0.0.1"), start + Duration::from_millis(999))
                .unwrap_err(),
            Refusal::TooManyHandshakes,
            "a token takes a whole second to come back"
        );
        assert!(admission.admit(ip("10.0.0.1"), start + secs(1)).is_ok());
    }

    #[test]
    fn login_budget_is_a_burst_then_a_rate_per_minute() {
        let admission = Arc::new(Admission::new(limits()));
        let start = Instant::now();
        let ticket = admission.admit(ip("10.0.0.1"), start).unwrap();
        assert!(admission.take_login(ticket.source(), start));
        assert!(admission.take_login(ticket.source(), start));
        assert!(!admission.take_login(ticket.source(), start));
        assert!(!admission.take_login(ticket.source(), start + Duration::from_millis(999)));
        assert!(admission.take_login(ticket.source(), start + secs(1)));
    }

    #[test]
    fn buckets_refill_at_their_rate_not_one_token_a_second() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(1, start);
        assert!(bucket.take(4.0, 1, start));
        assert!(!bucket.has_token(4.0, 1, start + Duration::from_millis(200)));
        assert!(bucket.has_token(4.0, 1, start + Duration::from_millis(250)));
        assert!(
            bucket.has_token(4.0, 1, start + Duration::from_millis(250)),
            "looking takes nothing"
        );
        assert!(bucket.take(4.0, 1, start + Duration::from_millis(250)));
        assert!(!bucket.has_token(4.0, 1, start + Duration::from_millis(250)));
        let mut slow = TokenBucket::full(1, start);
        assert!(slow.take(0.25, 1, start));
        assert!(!slow.is_full(0.25, 1, start + Duration::from_millis(3_999)));
        assert!(slow.is_full(0.25, 1, start + secs(4)));
    }

    #[test]
    fn a_source_that_holds_a_connection_is_never_forgotten() {
        let admission = Arc::new(Admission::with_capacity(limits(), 1));
        let start = Instant::now();
        let _held = admission.admit(ip("10.0.0.1"), start).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.2"), start + secs(3_600)).unwrap_err(),
            Refusal::TooManySources
        );
    }

    #[test]
    fn a_source_is_forgotten_only_once_its_login_budget_is_full_again() {
        // Logins refill at 60 a minute (one a second) to a burst of 2; handshakes at one a
        // second to 3.
        let admission = Arc::new(Admission::with_capacity(limits(), 1));
        let start = Instant::now();
        let ticket = admission.admit(ip("10.0.0.1"), start).unwrap();
        assert!(admission.take_login(ticket.source(), start));
        assert!(admission.take_login(ticket.source(), start));
        drop(ticket);
        assert_eq!(
            admission.admit(ip("10.0.0.2"), start + secs(1)).unwrap_err(),
            Refusal::TooManySources,
            "after 1 s the login budget holds 1 of 2"
        );
        assert!(admission.admit(ip("10.0.0.2"), start + secs(2)).is_ok());
    }

    #[test]
    fn refusals_say_why_in_words_a_person_understands() {
        assert!(Refusal::TooManyAnonymous.to_string().contains("not logged in"));
        assert!(Refusal::TooManyHandshakes.to_string().contains("new connections"));
        assert!(Refusal::TooManySources.to_string().contains("addresses"));
    }

    #[test]
    fn ipv6_sources_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            SourceKey::of(ip("2001:db8:1:2:aaaa::1")),
            SourceKey::of(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            SourceKey::of(ip("2001:db8:1:2::1")),
            SourceKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(SourceKey::of(ip("::ffff:10.1.2.3")), SourceKey::of(ip("10.1.2.3")));
    }

    #[test]
    fn a_full_table_forgets_idle_sources_and_refuses_when_none_is_idle() {
        let admission = Arc::new(Admission::with_capacity(limits(), 2));
        let start = Instant::now();
        let held = admission.admit(ip("10.0.0.1"), start).unwrap();
        drop(admission.admit(ip("10.0.0.2"), start).unwrap());
        assert_eq!(
            admission.admit(ip("10.0.0.3"), start).unwrap_err(),
            Refusal::TooManySources,
            "10.0.0.2's handshake bucket is not full again yet"
        );
        assert!(admission.admit(ip("10.0.0.3"), start + secs(1)).is_ok());
        assert_eq!(admission.tracked_sources(), 2);
        drop(held);
    }
}
