//! The attackers of `--flood`: connections from `127.0.0.2`–`127.0.0.9` that hold no
//! credentials and try to make the server spend its work on them.
//!
//! Attacker `i` comes from `127.0.0.(2 + i % 8)` and plays role `i % 4`:
//!
//! | role | what it does, again and again |
//! |---|---|
//! | handshake | connect, send a ClientHello, read the ServerHello (the server has paid for an RSA-3072 signature), reset the connection |
//! | real names | handshake, then wrong-password Logins for the victim accounts, one after another on the same connection |
//! | unknown names | the same for names no account has (a fresh one each time) |
//! | idle | handshake, then stay anonymous, with an Echo every [`IDLE_ECHO_INTERVAL`] to look alive |
//!
//! Each attacker is one thread holding one connection at a time, blocking, with a small
//! stack ([`ATTACKER_STACK_BYTES`]): 1,000 such threads cost the benchmark little memory
//! and no CPU while they wait, and a thread per connection keeps each role a plain loop
//! (the server itself is built the same way). Every answer the server can give an attacker
//! is an outcome to count, never a benchmark error: a ServerBusy frame, a refused or reset
//! connection, a timeout, `invalid_credentials`, `account_locked`, `unavailable`,
//! `not_authenticated`. After a refusal an attacker waits [`ATTACKER_RETRY_PAUSE`] before it
//! tries again; the pause keeps the benchmark's own CPU use (it shares the cores with the
//! server) small while the server still sees up to 1,000 / 0.2 s = 5,000 attempts a second.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use securebank::channel::ClientHandshake;
use securebank::client::Client;
use securebank::error::{ChannelError, ClientError, ErrorCode};
use securebank::frame::{self, FrameKind};
use securebank::source_address::connect_from;

use crate::setup;

/// Distinct source addresses of the attackers: `127.0.0.2` to `127.0.0.9`.
pub const ATTACKER_ADDRESSES: u8 = 8;

/// Stack of an attacker thread. Its deepest work is verifying the server's RSA-PSS
/// signature during a handshake; 128 KiB is half of what the server gives a connection
/// thread (which signs), and 1,000 of them reserve 128 MiB of address space, little of it
/// ever touched.
pub const ATTACKER_STACK_BYTES: usize = 128 * 1024;

/// Wait after the server refused or dropped an attacker (see the module doc).
pub const ATTACKER_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// How often an idle attacker sends an Echo: well inside today's 300 s idle limit, so an
/// anonymous connection would stay forever if Echo kept it alive.
pub const IDLE_ECHO_INTERVAL: Duration = Duration::from_secs(10);

/// How long an attacker waits for a ServerHello: the client's own handshake limit.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// The password every attacker guesses (no account has it).
const WRONG_PASSWORD: &str = "not-the-password";

/// Name of victim account `index`: a real account the attackers guess passwords for. The
/// customer whose logins are measured is not among them: its own lockout would measure the
/// lockout rule, not whether the server stays fair.
pub fn victim_account(index: usize) -> String {
    format!("victim-{index}")
}

/// Victim accounts (real names) the attackers cycle through.
pub const VICTIM_ACCOUNTS: usize = 4;

/// What an attacker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Handshake,
    RealNames,
    UnknownNames,
    Idle,
}

impl Role {
    fn of(index: usize) -> Self {
        match index % 4 {
            0 => Self::Handshake,
            1 => Self::RealNames,
            2 => Self::UnknownNames,
            _ => Self::Idle,
        }
    }
}

/// Counts of what the attackers got, for the report.
#[derive(Debug, Default)]
pub struct AttackCounts {
    /// ServerHellos received (the server signed for an attacker).
    pub handshakes: AtomicU64,
    /// ServerBusy frames.
    pub busy: AtomicU64,
    /// Connections that could not be made (refused, no port, connect timeout).
    pub connect_failed: AtomicU64,
    /// Connections the server closed or reset before answering.
    pub closed: AtomicU64,
    /// Waits for an answer that ran out.
    pub timeouts: AtomicU64,
    /// Logins answered `invalid_credentials`.
    pub invalid_credentials: AtomicU64,
    /// Logins answered `account_locked`.
    pub account_locked: AtomicU64,
    /// Logins answered `unavailable`.
    pub unavailable: AtomicU64,
    /// Echoes answered.
    pub echoes: AtomicU64,
    /// Requests answered with another error code (e.g. `not_authenticated` for an Echo).
    pub other_refusals: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl AttackCounts {
    /// The counts as (label, value) pairs, for the report.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        [
            ("handshakes", &self.handshakes),
            ("busy", &self.busy),
            ("connect failed", &self.connect_failed),
            ("closed", &self.closed),
            ("timeouts", &self.timeouts),
            ("invalid_credentials", &self.invalid_credentials),
            ("account_locked", &self.account_locked),
            ("unavailable", &self.unavailable),
            ("echoes", &self.echoes),
            ("other refusals", &self.other_refusals),
        ]
        .into_iter()
        .map(|(label, counter)| (label, counter.load(Ordering::Relaxed)))
        .collect()
    }

    /// Counts a failed request; true if the connection is gone.
    fn failure(&self, err: &ClientError) -> bool {
        match err {
            ClientError::Refused(ErrorCode::InvalidCredentials) => bump(&self.invalid_credentials),
            ClientError::Refused(ErrorCode::AccountLocked) => bump(&self.account_locked),
            ClientError::Refused(ErrorCode::Unavailable) => bump(&self.unavailable),
            ClientError::Refused(_) => bump(&self.other_refusals),
            ClientError::Channel(err) => {
                self.channel_failure(err);
                return true;
            }
            ClientError::UnexpectedResponse(_) | ClientError::KnownServers(_) => {
                bump(&self.closed);
                return true;
            }
        }
        false
    }

    fn channel_failure(&self, err: &ChannelError) {
        match err {
            ChannelError::ServerBusy => bump(&self.busy),
            ChannelError::UnexpectedFrame { got, .. } if *got == FrameKind::ServerBusy as u8 => bump(&self.busy),
            ChannelError::Timeout => bump(&self.timeouts),
            _ => bump(&self.closed),
        }
    }
}

/// What the attackers share.
#[derive(Debug)]
pub struct Attack {
    server: SocketAddr,
    fingerprint: String,
    /// Set to end the attack; each attacker stops at its next step (the caller also stops
    /// the server, which ends every wait).
    pub stop: AtomicBool,
    /// What the attackers got.
    pub counts: AttackCounts,
}

impl Attack {
    /// An attack on `server`, whose key is `fingerprint` (attackers may verify it: the
    /// server's key is public).
    pub fn new(server: SocketAddr, fingerprint: &str) -> Arc<Self> {
        Arc::new(Self {
            server,
            fingerprint: fingerprint.to_string(),
            stop: AtomicBool::new(false),
            counts: AttackCounts::default(),
        })
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Starts `count` attacker threads.
pub fn start(attack: &Arc<Attack>, count: usize) -> Result<Vec<JoinHandle<()>>, String> {
    (0..count)
        .map(|index| {
            let attack = Arc::clone(attack);
            std::thread::Builder::new()
                .name(format!("attacker-{index}"))
                .stack_size(ATTACKER_STACK_BYTES)
                .spawn(move || run(&attack, index))
                .map_err(|err| format!("cannot start attacker thread {index}: {err}"))
        })
        .collect()
}

/// The source address of attacker `index`.
pub fn source_of(index: usize) -> IpAddr {
    let offset = u8::try_from(index % usize::from(ATTACKER_ADDRESSES)).unwrap_or(0);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + offset))
}

fn run(attack: &Attack, index: usize) {
    let source = source_of(index);
    let mut round = 0u64;
    while !attack.stopped() {
        let refused = match Role::of(index) {
            Role::Handshake => hello_only(attack, source),
            Role::RealNames | Role::UnknownNames => guess_passwords(attack, source, index, &mut round),
            Role::Idle => hold_idle(attack, source),
        };
        if refused && !attack.stopped() {
            std::thread::sleep(ATTACKER_RETRY_PAUSE);
        }
    }
}

/// Closes with a reset (SO_LINGER 0), as a flooding client does: no FIN exchange, and no
/// TIME_WAIT entry left on the benchmark's side to run it out of ports.
fn abandon(socket: TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(&socket, Some(Duration::ZERO));
}

/// One ClientHello, one ServerHello, reset. Returns true if the server refused.
fn hello_only(attack: &Attack, source: IpAddr) -> bool {
    let counts = &attack.counts;
    let mut stream = match connect_from(source, attack.server, HELLO_TIMEOUT) {
        Ok(stream) => stream,
        Err(_) => {
            bump(&counts.connect_failed);
            return true;
        }
    };
    let handshake = ClientHandshake::start();
    let sent = stream
        .set_read_timeout(Some(HELLO_TIMEOUT))
        .and_then(|()| stream.write_all(handshake.client_hello_frame()));
    if sent.is_err() {
        bump(&counts.closed);
        return true;
    }
    let refused = match frame::read_frame(&mut stream) {
        Ok(hello) if hello.kind == FrameKind::ServerHello as u8 => {
            bump(&counts.handshakes);
            false
        }
        Ok(busy) if busy.kind == FrameKind::ServerBusy as u8 => {
            bump(&counts.busy);
            true
        }
        Ok(_) => {
            bump(&counts.other_refusals);
            true
        }
        Err(err) => {
            counts.channel_failure(&err);
            true
        }
    };
    abandon(stream);
    refused
}

/// A full handshake from `source`, counted.
fn connect(attack: &Attack, source: IpAddr) -> Option<(Client, TcpStream)> {
    let Ok(stream) = connect_from(source, attack.server, HELLO_TIMEOUT) else {
        bump(&attack.counts.connect_failed);
        return None;
    };
    match setup::handshake_pinned(stream, &attack.fingerprint) {
        Ok(connected) => {
            bump(&attack.counts.handshakes);
            Some(connected)
        }
        Err(err) => {
            attack.counts.failure(&err);
            None
        }
    }
}

/// Wrong-password Logins on one connection until the server drops it. Returns true if the
/// server refused (busy, closed, unreachable).
fn guess_passwords(attack: &Attack, source: IpAddr, index: usize, round: &mut u64) -> bool {
    let Some((mut client, socket)) = connect(attack, source) else {
        return true;
    };
    let real_names = Role::of(index) == Role::RealNames;
    while !attack.stopped() {
        *round += 1;
        let name = if real_names {
            victim_account(usize::try_from(*round).unwrap_or(0) % VICTIM_ACCOUNTS)
        } else {
            format!("nobody-{index}-{round}")
        };
        match client.login(&name, WRONG_PASSWORD) {
            Ok(_) => bump(&attack.counts.other_refusals),
            Err(err) => {
                if attack.counts.failure(&err) {
                    abandon(socket);
                    return true;
                }
                if matches!(err, ClientError::Refused(ErrorCode::Unavailable)) {
                    std::thread::sleep(ATTACKER_RETRY_PAUSE);
                }
            }
        }
    }
    abandon(socket);
    false
}

/// An anonymous connection held open, with an Echo now and then. Returns true when the
/// server closed it or would not accept it.
fn hold_idle(attack: &Attack, source: IpAddr) -> bool {
    let Some((mut client, socket)) = connect(attack, source) else {
        return true;
    };
    loop {
        let next_echo = Instant::now() + IDLE_ECHO_INTERVAL;
        while Instant::now() < next_echo {
            if attack.stopped() {
                abandon(socket);
                return false;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        match client.echo(b"still here") {
            Ok(_) => bump(&attack.counts.echoes),
            Err(err) => {
                if attack.counts.failure(&err) {
                    abandon(socket);
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attackers_come_from_127_0_0_2_to_127_0_0_9_in_turn() {
        let sources: Vec<IpAddr> = (0..16).map(source_of).collect();
        assert_eq!(sources[0], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(sources[7], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)));
        assert_eq!(sources[8], sources[0]);
    }

    #[test]
    fn every_role_gets_a_quarter_of_the_attackers() {
        let roles: Vec<Role> = (0..8).map(Role::of).collect();
        for role in [Role::Handshake, Role::RealNames, Role::UnknownNames, Role::Idle] {
            assert_eq!(roles.iter().filter(|&&r| r == role).count(), 2);
        }
    }
}
