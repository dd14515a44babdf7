//! `login_timing`: does the time of a Login answer tell whether an account exists?
//! (issue 11, "No account oracle").
//!
//! For each of two PBKDF2 costs — the default and the minimum a record may have
//! (`MIN_PBKDF2_ITERATIONS`) — it starts a quiet server with `--pbkdf2-iterations` at that
//! cost (so the dummy record checked for unknown names costs the same) on a data directory
//! whose accounts were created at that cost, and times Login requests (from sending the
//! request to its answer, handshake excluded) of two kinds:
//!
//! - a wrong password for a real account;
//! - any password for a name no account has.
//!
//! The two kinds alternate, and which goes first alternates too, so that drift on a shared
//! machine falls on both alike. The figure is each kind's median and their gap,
//! `100 × (wrong − unknown) / unknown` percent (positive: wrong passwords are slower).
//!
//! Lockout must not change the path: 5 failures lock an account, and a locked account
//! answers differently. So each name is probed only [`PROBES_PER_NAME`] times (fewer than
//! the threshold) and there are enough real accounts for every sample; unknown names are
//! used the same number of times each, in case the server counts failures for them too. No
//! unlock is needed, and nothing the server does between probes is measured. Each
//! connection carries [`PROBES_PER_CONNECTION`] probes and comes from its own address in
//! `127.1.0.0/16`, so that per-address login limits do not turn probes into refusals. A
//! probe answered with anything but `invalid_credentials` is not a sample; it is counted as
//! discarded, and the report shows how many.

use std::fmt::{self, Display};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use securebank::client::Client;
use securebank::error::{ClientError, ErrorCode};
use securebank::limits::{DEFAULT_PBKDF2_ITERATIONS, LOCKOUT_THRESHOLD, MIN_PBKDF2_ITERATIONS};
use securebank::server::admin;

use crate::report::{Latencies, progress};
use crate::setup::{self, ScratchDir, ServerChild};

/// Samples of each kind at the default cost, by default: at about 65 ms a probe, 100 pairs
/// take about 13 s, and the median of 100 is stable to a fraction of a millisecond.
pub const DEFAULT_TIMING_SAMPLES: usize = 100;

/// Most samples `--timing-samples` accepts: 10,000 pairs at the default cost take over
/// twenty minutes.
pub const MAX_TIMING_SAMPLES: usize = 10_000;

/// At the minimum cost a probe takes well under a millisecond, so it gets this many times
/// as many samples (the gap there is a few tens of microseconds, and noisier).
pub const MINIMUM_COST_SAMPLE_FACTOR: usize = 10;

/// Probes per name: one fewer than the lockout threshold, so no account is ever locked.
pub const PROBES_PER_NAME: usize = LOCKOUT_THRESHOLD as usize - 1;

/// Probes per connection before the next connection (from the next source address): as
/// few as a per-address login limit is sure to allow, and few enough handshakes to matter.
pub const PROBES_PER_CONNECTION: usize = 4;

/// Most probe pairs sent per sample wanted before giving up (refusals, dropped
/// connections); there are enough real accounts for all of them.
const MAX_TRIES_PER_SAMPLE: usize = 2;

/// Wait after a refused probe.
const REFUSAL_PAUSE: Duration = Duration::from_millis(100);

/// The password of every probe (no account has it).
const PROBE_PASSWORD: &str = "not-the-password";

/// What one cost measured.
#[derive(Debug, Default)]
pub struct CostTiming {
    /// PBKDF2 iterations of the accounts and of the server's dummy record.
    pub iterations: u32,
    /// Answer times for names no account has.
    pub unknown: Latencies,
    /// Answer times for a wrong password on a real account.
    pub wrong_password: Latencies,
    /// Probes that were not samples (refused or dropped).
    pub discarded: u64,
}

impl CostTiming {
    /// Medians in microseconds (unknown, wrong password) and the gap in percent.
    pub fn medians(&self) -> (u32, u32, f64) {
        let unknown = self.unknown.summary()[0];
        let wrong = self.wrong_password.summary()[0];
        let gap = if unknown == 0 {
            0.0
        } else {
            100.0 * (f64::from(wrong) - f64::from(unknown)) / f64::from(unknown)
        };
        (unknown, wrong, gap)
    }

    fn json(&self) -> String {
        let (unknown, wrong, gap) = self.medians();
        format!(
            "{{\"iterations\":{},\"samples\":{},\"unknown_p50_us\":{unknown},\"wrong_password_p50_us\":{wrong},\
             \"gap_percent\":{gap:.2}}}",
            self.iterations,
            self.unknown.count().min(self.wrong_password.count())
        )
    }
}

/// Both costs.
#[derive(Debug, Default)]
pub struct LoginTiming {
    /// At [`DEFAULT_PBKDF2_ITERATIONS`].
    pub default: CostTiming,
    /// At [`MIN_PBKDF2_ITERATIONS`].
    pub minimum: CostTiming,
}

impl LoginTiming {
    /// The `"login_timing": {...}` member of the JSON line.
    pub fn json(&self) -> String {
        format!(
            "\"login_timing\":{{\"default\":{},\"minimum\":{}}}",
            self.default.json(),
            self.minimum.json()
        )
    }
}

impl crate::report::Section for LoginTiming {
    fn json(&self) -> String {
        LoginTiming::json(self)
    }
}

impl Display for LoginTiming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\nlogin timing (median Login answer, handshake excluded; unknown names and wrong passwords interleaved):"
        )?;
        for (label, cost) in [("default", &self.default), ("minimum", &self.minimum)] {
            let (unknown, wrong, gap) = cost.medians();
            writeln!(
                f,
                "  {label} cost ({} iterations): unknown name {unknown} us, wrong password {wrong} us: gap {gap:+.2} % \
                 ({} samples each, {} probes discarded)",
                cost.iterations,
                cost.unknown.count().min(cost.wrong_password.count()),
                cost.discarded
            )?;
        }
        Ok(())
    }
}

/// Measures both costs, `samples` of each kind at the default cost.
pub fn run(samples: usize) -> Result<LoginTiming, String> {
    Ok(LoginTiming {
        default: measure(DEFAULT_PBKDF2_ITERATIONS, samples)?,
        minimum: measure(MIN_PBKDF2_ITERATIONS, samples * MINIMUM_COST_SAMPLE_FACTOR)?,
    })
}

/// The source address of probe connection `index`: `127.1.x.y`, a new one each time.
fn source_of(index: usize) -> IpAddr {
    let host = u8::try_from(index % 250 + 1).unwrap_or(1);
    let subnet = u8::try_from(index / 250 % 250).unwrap_or(0);
    IpAddr::V4(Ipv4Addr::new(127, 1, subnet, host))
}

fn real_name(index: usize) -> String {
    format!("probe-{index:05}")
}

fn unknown_name(index: usize) -> String {
    format!("ghost-{index:05}")
}

/// `samples` probes of each kind at `iterations`.
fn measure(iterations: u32, samples: usize) -> Result<CostTiming, String> {
    let scratch = ScratchDir::new("timing")?;
    let data_dir = scratch.0.join("data");
    let names = samples.div_ceil(PROBES_PER_NAME) * MAX_TRIES_PER_SAMPLE;
    progress(format_args!(
        "login timing at {iterations} iterations: {names} accounts, {samples} probes of each kind"
    ));
    let accounts: Vec<(String, u32)> = (0..names).map(|index| (real_name(index), iterations)).collect();
    setup::create_accounts(&data_dir, &accounts, &admin::generate_password())?;
    let server = ServerChild::spawn_with_default_limits(
        &data_dir,
        &scratch.0.join("outbox"),
        &["--pbkdf2-iterations", &iterations.to_string()],
    )?;
    let mut prober = Prober {
        server: &server,
        connection: None,
        connections: 0,
        on_connection: 0,
    };
    let mut timing = CostTiming {
        iterations,
        ..CostTiming::default()
    };
    // Pair `pair` probes name `pair / PROBES_PER_NAME` of each kind: below `names` while
    // `pair` stays below `samples * MAX_TRIES_PER_SAMPLE`.
    let mut pair = 0;
    while timing.unknown.count() < samples || timing.wrong_password.count() < samples {
        if pair >= samples * MAX_TRIES_PER_SAMPLE {
            return Err(format!(
                "login timing: {} of {} probes at {iterations} iterations were refused or dropped",
                timing.discarded,
                pair * 2
            ));
        }
        let name = pair / PROBES_PER_NAME;
        // Which kind goes first alternates by pair and, since a connection carries two
        // pairs, by connection too: no kind always takes a connection's first slot.
        let order = if (pair + pair / 2) % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for real in order {
            let (probe_name, wanted) = if real {
                (real_name(name), &mut timing.wrong_password)
            } else {
                (unknown_name(name), &mut timing.unknown)
            };
            match prober.probe(&probe_name)? {
                Some(took) if wanted.count() < samples => wanted.record(took),
                Some(_) => {}
                None => timing.discarded += 1,
            }
        }
        pair += 1;
    }
    Ok(timing)
}

/// Sends the probes, opening connections as needed.
struct Prober<'a> {
    server: &'a ServerChild,
    connection: Option<(Client, TcpStream)>,
    connections: usize,
    on_connection: usize,
}

impl Prober<'_> {
    /// One Login with the wrong password for `name`: its answer time if the answer was
    /// `invalid_credentials`, `None` if the probe was refused or its connection dropped.
    fn probe(&mut self, name: &str) -> Result<Option<Duration>, String> {
        if self.on_connection >= PROBES_PER_CONNECTION {
            self.connection = None;
        }
        let (client, _) = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let source = source_of(self.connections);
                self.connections += 1;
                self.on_connection = 0;
                // An Echo first, not timed: the first request on a new connection is slower
                // (cold socket and caches), and it must not fall on one kind of probe.
                let warmed = setup::connect_pinned_from(source, self.server.addr, &self.server.fingerprint)
                    .and_then(|(mut client, socket)| client.echo(b"warm-up").map(|_| (client, socket)));
                match warmed {
                    Ok(connection) => self.connection.insert(connection),
                    Err(_) => {
                        std::thread::sleep(REFUSAL_PAUSE);
                        return Ok(None);
                    }
                }
            }
        };
        self.on_connection += 1;
        let started = Instant::now();
        let outcome = client.login(name, PROBE_PASSWORD);
        let took = started.elapsed();
        match outcome {
            Err(ClientError::Refused(ErrorCode::InvalidCredentials)) => Ok(Some(took)),
            Ok(_) => Err(format!("login timing: the probe password was accepted for {name}")),
            Err(ClientError::Refused(_)) => {
                std::thread::sleep(REFUSAL_PAUSE);
                Ok(None)
            }
            Err(_) => {
                self.connection = None;
                std::thread::sleep(REFUSAL_PAUSE);
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_name_is_probed_often_enough_to_lock_it() {
        assert!(PROBES_PER_NAME < LOCKOUT_THRESHOLD as usize);
    }

    #[test]
    fn every_probe_connection_comes_from_its_own_address_away_from_the_flood() {
        let sources: std::collections::HashSet<IpAddr> = (0..10_000).map(source_of).collect();
        assert_eq!(sources.len(), 10_000);
        for source in sources {
            let IpAddr::V4(v4) = source else { panic!("not IPv4") };
            assert_eq!(v4.octets()[..2], [127, 1]);
            assert_ne!(v4.octets()[3], 0);
        }
    }

    #[test]
    fn gap_is_relative_to_the_unknown_name_median() {
        let mut timing = CostTiming::default();
        timing.unknown.record(Duration::from_micros(200));
        timing.wrong_password.record(Duration::from_micros(210));
        assert_eq!(timing.medians(), (200, 210, 5.0));
        assert!(timing.json().contains("\"gap_percent\":5.00"));
    }
}
