//! The baseline: a minimal length-prefixed echo over `std::net`, one thread per connection,
//! with frames the size of a securebank transaction record. Nothing a request/response
//! server does over loopback can beat it, so securebank's figures are reported as a ratio.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::report::{Latencies, PhaseResult};

/// Bytes of one echo frame on the wire: the size of a Deposit record (5-byte header,
/// 25-byte request, 16-byte tag), so both sides move the same bytes per round trip.
pub const FRAME_BYTES: usize = 46;

fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut frame = [0u8; FRAME_BYTES];
    while stream.read_exact(&mut frame).is_ok() {
        if stream.write_all(&frame).is_err() {
            return;
        }
    }
}

fn start_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// Runs `clients` echo loops for `duration`.
pub fn run(clients: usize, duration: Duration) -> PhaseResult {
    let addr = start_server();
    let started = Instant::now();
    let deadline = started + duration;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect to echo");
                stream.set_nodelay(true).expect("nodelay");
                let mut frame = [7u8; FRAME_BYTES];
                frame[..4].copy_from_slice(&((FRAME_BYTES - 4) as u32).to_be_bytes());
                let mut latencies = Latencies::default();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    stream.write_all(&frame).expect("echo write");
                    stream.read_exact(&mut frame).expect("echo read");
                    latencies.record(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Latencies::default();
    for thread in threads {
        all.merge(thread.join().expect("echo client"));
    }
    PhaseResult::new(clients, all, started.elapsed())
}
