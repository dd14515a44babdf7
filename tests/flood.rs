//! A flood of strangers from other loopback addresses (127.0.0.2–127.0.0.5) against a
//! server with its default per-source budgets: handshakes, wrong passwords for a real and
//! for unknown names, and idle connections that never log in. Meanwhile a customer from
//! 127.0.0.1 must still log in, again and again, and a logged-in customer keeps depositing.
//! (The figures under a 1,000-connection flood are `bank-bench --flood`'s, BENCHMARKS.md.)

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use securebank::client::{self, Client, new_txid};
use securebank::error::{ChannelError, ClientError, ErrorCode};
use securebank::server::admission::SourceLimits;
use securebank::source_address::connect_from;
use securebank::trace::Tracer;

const PASSWORD: &str = "correct horse";
const ATTACKER_ADDRESSES: u8 = 4;
const ATTACKERS_PER_ADDRESS: usize = 12;
const IDLE_PER_ADDRESS: usize = 40;
/// How long the customer keeps trying one login (the server, its attackers and this test
/// share the machine's cores, so this is generous: the figure that matters is the
/// benchmark's login p99, BENCHMARKS.md).
const CUSTOMER_PATIENCE: Duration = Duration::from_secs(30);

/// A handshake from `source`, pinned to the test key.
fn connect(source: IpAddr, server: &common::TestServer) -> Result<Client, ClientError> {
    let stream = connect_from(source, server.addr, Duration::from_secs(5)).map_err(ChannelError::from)?;
    client::connect_pinned_over(stream, &server.fingerprint, Tracer::off())
}

/// Whether the server admitted `stream` (it sent nothing: it waits for the ClientHello)
/// rather than answering busy.
fn is_waiting_for_a_hello(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
}

#[derive(Default)]
struct Tally {
    judged: AtomicU64,
    refused: AtomicU64,
}

#[test]
fn a_flood_from_other_loopback_addresses_still_lets_a_customer_in_and_transact() {
    let server = Arc::new(common::start_server_with(|config| {
        config.sources = SourceLimits::default();
    }));
    server.add_account("alice", PASSWORD, 100);
    server.add_account("bob", PASSWORD, 0);
    server.add_account("carol", PASSWORD, 100);
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());

    // Idle strangers: as many connections as each address may hold, and more, never logging in.
    let mut idle = Vec::new();
    for address in 0..ATTACKER_ADDRESSES {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + address));
        for _ in 0..IDLE_PER_ADDRESS {
            if let Ok(stream) = connect_from(source, server.addr, Duration::from_secs(5)) {
                idle.push(stream);
            }
        }
    }
    // Guessers: handshake, then wrong passwords for a real name and for unknown names.
    let guessers: Vec<_> = (0..ATTACKER_ADDRESSES)
        .flat_map(|address| (0..ATTACKERS_PER_ADDRESS).map(move |n| (address, n)))
        .map(|(address, n)| {
            let (server, stop, tally) = (Arc::clone(&server), Arc::clone(&stop), Arc::clone(&tally));
            std::thread::spawn(move || {
                let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + address));
                let mut attempt = 0;
                while !stop.load(Ordering::SeqCst) {
                    attempt += 1;
                    let name = if attempt % 2 == 0 {
                        "bob".to_string()
                    } else {
                        format!("ghost{n}x{attempt}")
                    };
                    match connect(source, &server).map(|mut client| client.login(&name, "not the password")) {
                        Ok(Err(ClientError::Refused(ErrorCode::InvalidCredentials | ErrorCode::AccountLocked))) => {
                            tally.judged.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(Err(ClientError::Refused(ErrorCode::Unavailable)))
                        | Err(ClientError::Channel(ChannelError::ServerBusy)) => {
                            tally.refused.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        other => panic!("an attacker got {other:?}"),
                    }
                }
            })
        })
        .collect();

    let depositor = {
        let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut carol = server.login("carol", PASSWORD);
            let mut deposits = 0u64;
            while !stop.load(Ordering::SeqCst) {
                carol
                    .deposit(new_txid(), 1)
                    .expect("a logged-in customer's deposit during the flood");
                deposits += 1;
            }
            deposits
        })
    };

    // The customer logs in from 127.0.0.1 five times during the flood. Like a person, it
    // tries again after `unavailable` ("busy, nothing counted"); it must get in each time.
    for round in 0..5 {
        let started = Instant::now();
        let mut client = loop {
            let mut client = server.connect();
            match client.login("alice", PASSWORD) {
                Ok(_) => break client,
                Err(ClientError::Refused(ErrorCode::Unavailable)) if started.elapsed() < CUSTOMER_PATIENCE => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(err) => panic!("login {round} during the flood: {err} after {:?}", started.elapsed()),
            }
        };
        client.submit_otp(&server.read_otp("alice")).unwrap();
        assert!(client.balance().unwrap() >= 100);
    }

    stop.store(true, Ordering::SeqCst);
    for guesser in guessers {
        guesser.join().unwrap();
    }
    let deposits = depositor.join().unwrap();
    assert!(deposits > 0);
    assert!(
        tally.refused.load(Ordering::SeqCst) > 0,
        "the flood was never limited ({} judged)",
        tally.judged.load(Ordering::SeqCst)
    );
    // Each address held at most its share of connections that never logged in: the rest
    // were told busy at once (an admitted one is still waiting for its ClientHello).
    let admitted = idle
        .iter_mut()
        .map(is_waiting_for_a_hello)
        .filter(|&waiting| waiting)
        .count();
    assert!(
        admitted <= usize::from(ATTACKER_ADDRESSES) * SourceLimits::default().anonymous_per_source,
        "{admitted} idle strangers admitted"
    );
}
