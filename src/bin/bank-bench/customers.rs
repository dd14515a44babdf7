//! The customers of `--flood`: one who logs in again and again (whose login times are the
//! figure), and eight who stay logged in and transact. All come from `127.0.0.1`.
//!
//! A customer treats a refusal as a person would: it tries again after
//! [`CUSTOMER_RETRY_PAUSE`], so what is measured is the time until it is in. Only
//! `invalid_credentials` or `account_locked` for a customer is a benchmark error: the
//! attackers never guess the customers' names, so that would mean the bench's own accounts
//! are wrong.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use securebank::client::Client;
use securebank::error::{ClientError, ErrorCode};

use crate::report::Latencies;
use crate::setup;
use crate::workload::{self, Mix};

/// Logged-in customers that transact throughout the flood phase.
pub const TX_CUSTOMERS: usize = 8;

/// Name of the customer whose logins are measured.
pub const CUSTOMER: &str = "customer";

/// Where every customer connects from; the attackers never use it.
pub const CUSTOMER_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Pause between one completed customer login and the next: 24 logins a minute is far more
/// than a person makes, yet inside the server's default budget for one address (30 password
/// checks a minute after a burst of 10, `DEFAULT_LOGINS_PER_SOURCE_PER_MIN`), which the 8
/// transacting customers' own logins share; faster, the customer would be refused as the
/// attackers are.
pub const CUSTOMER_LOGIN_PAUSE: Duration = Duration::from_millis(2_500);

/// Pause before a customer tries again after a refusal.
pub const CUSTOMER_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The flood's server, as the customers see it.
#[derive(Debug)]
pub struct Bank {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Its key.
    pub fingerprint: String,
    /// Where its one-time codes arrive.
    pub outbox: PathBuf,
    /// Every customer's password.
    pub password: String,
}

/// Refusals a customer met on the way in.
#[derive(Debug, Default, Clone, Copy)]
pub struct Refusals {
    /// `unavailable` answers.
    pub unavailable: u64,
    /// ServerBusy, closed or reset connections, timeouts.
    pub other: u64,
}

/// One complete login from [`CUSTOMER_ADDRESS`]: handshake, password, code from the outbox.
fn try_login(bank: &Bank, user: &str) -> Result<Client, ClientError> {
    let (mut client, _socket) = setup::connect_pinned_from(CUSTOMER_ADDRESS, bank.addr, &bank.fingerprint)?;
    client.login(user, &bank.password)?;
    let code = std::fs::read_to_string(bank.outbox.join(format!("{user}.otp")))
        .map_err(|_| ClientError::UnexpectedResponse("no one-time code in the outbox"))?;
    client.submit_otp(code.trim())?;
    Ok(client)
}

/// Logs `user` in, trying again after every refusal until `give_up_at`. `None` if the time
/// ran out; an error only if the server says the bench's own credentials are wrong.
pub fn get_in(bank: &Bank, user: &str, give_up_at: Instant, refusals: &mut Refusals) -> Result<Option<Client>, String> {
    while Instant::now() < give_up_at {
        let outcome = try_login(bank, user);
        if Instant::now() >= give_up_at {
            // Ended by the end of the phase (the server is killed then): not a refusal.
            break;
        }
        match outcome {
            Ok(client) => return Ok(Some(client)),
            Err(ClientError::Refused(ErrorCode::Unavailable)) => refusals.unavailable += 1,
            Err(ClientError::Refused(code @ (ErrorCode::InvalidCredentials | ErrorCode::AccountLocked))) => {
                return Err(format!("flood: customer {user} was refused with {code}"));
            }
            Err(_) => refusals.other += 1,
        }
        std::thread::sleep(CUSTOMER_RETRY_PAUSE);
    }
    Ok(None)
}

/// The measured customer: logs in, out, in again until `window_end`. Returns the time of
/// each login (retries included), the refusals met, and how many were unfinished.
pub fn customer_logins(bank: &Bank, window_end: Instant) -> Result<(Latencies, Refusals, u64), String> {
    let mut latencies = Latencies::default();
    let mut refusals = Refusals::default();
    let mut unfinished = 0;
    while Instant::now() < window_end {
        let started = Instant::now();
        let session = get_in(bank, CUSTOMER, window_end, &mut refusals)?;
        latencies.record(started.elapsed());
        match session {
            Some(mut client) => {
                let _ = client.logout();
                std::thread::sleep(CUSTOMER_LOGIN_PAUSE.min(window_end.saturating_duration_since(Instant::now())));
            }
            None => unfinished += 1,
        }
    }
    Ok((latencies, refusals, unfinished))
}

/// The transacting customers: each runs the mix on its session until `window_end`, and
/// logs in again if the session breaks. Returns the sessions (for the next window), the
/// transactions completed inside the window, and the sessions that broke.
pub fn transact(
    bank: &Bank,
    sessions: Vec<Option<Client>>,
    window_end: Instant,
    mix: Mix,
) -> Result<(Vec<Option<Client>>, u64, u64), String> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = sessions
            .into_iter()
            .enumerate()
            .map(|(index, session)| scope.spawn(move || customer_transacts(bank, index, session, window_end, mix)))
            .collect();
        let (mut sessions, mut done, mut broken) = (Vec::new(), 0, 0);
        for thread in threads {
            let (session, count, breaks) = thread.join().map_err(|_| "a customer thread panicked")??;
            sessions.push(session);
            done += count;
            broken += breaks;
        }
        Ok((sessions, done, broken))
    })
}

fn customer_transacts(
    bank: &Bank,
    index: usize,
    mut session: Option<Client>,
    window_end: Instant,
    mix: Mix,
) -> Result<(Option<Client>, u64, u64), String> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (index as u64 + 1);
    let recipient = setup::tx_account((index + 1) % TX_CUSTOMERS);
    let (mut done, mut broken) = (0, 0);
    while Instant::now() < window_end {
        let Some(client) = session.as_mut() else {
            session = get_in(bank, &setup::tx_account(index), window_end, &mut Refusals::default())?;
            continue;
        };
        match workload::one_operation(client, mix, &mut seed, &recipient) {
            Ok(_) if Instant::now() <= window_end => done += 1,
            Ok(_) => {}
            Err(_) => {
                if Instant::now() < window_end {
                    broken += 1;
                }
                session = None;
            }
        }
    }
    Ok((session, done, broken))
}
