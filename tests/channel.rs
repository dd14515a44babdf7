//! The secure channel over real sockets on 127.0.0.1:0: the handshake, key pinning, forged
//! signatures, every way a hostile peer can break the record layer or the handshake, the
//! connection cap, the time limits, and pinning through the real `bank-client` binary.
//!
//! Every hostile case checks the specific failure (the server closes without a reply, the
//! client reports the specific error), and every hostile case on a server is followed by
//! [`assert_serves_fresh_client`]: one peer's misbehaviour ends that connection only.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{RawSession, TestServer, assert_closed, assert_closed_within, raw_handshake};
use securebank::channel::ServerHandshake;
use securebank::channel::handshake::{self, ClientHandshake, Established, FINISHED_BYTES};
use securebank::channel::hello::{ClientHello, ServerHello};
use securebank::channel::keys;
use securebank::channel::record::{RecordCipher, TAG_BYTES};
use securebank::client::{self, Client};
use securebank::error::{ChannelError, ClientError};
use securebank::frame::{self, Frame, FrameKind, HEADER_BYTES};
use securebank::identity;
use securebank::message::{Request, Response};
use securebank::trace::Tracer;

/// Upper bound for anything that should happen "promptly" (never a speed assertion).
const PROMPTLY: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn echo_request() -> Vec<u8> {
    Request::Echo(b"x".to_vec()).encode()
}

/// Sends an echo request on a raw session and checks the server's answer: proves the
/// session is live (so a later close is caused by what the test sends next).
fn assert_echo_round_trips(session: &mut RawSession) {
    let record = session.seal(&echo_request());
    session.stream.write_all(&record).unwrap();
    let plaintext = session.read_response().expect("server answers the echo");
    assert_eq!(Response::decode(&plaintext).unwrap(), Response::Echo(b"x".to_vec()));
}

/// The same server still serves a fresh client: full handshake, pin check, echo.
fn assert_serves_fresh_client(server: &TestServer) {
    let mut client = client::connect_pinned(server.addr, &server.fingerprint, Tracer::off())
        .expect("a fresh client completes the handshake after the hostile connection");
    assert_eq!(client.echo(b"still serving").unwrap(), b"still serving");
}

/// The server closes `stream` without sending a single byte more.
fn assert_closed_silently(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(PROMPTLY)).unwrap();
    let mut byte = [0u8; 1];
    match stream.peek(&mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("server sent bytes instead of closing silently"),
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("connection still open after {PROMPTLY:?}")
        }
        Err(_) => {} // reset: closed
    }
    assert_closed(stream);
}

fn raw_connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// Connects and sends a ClientHello; returns the socket and the ServerHello frame.
fn raw_hello(addr: SocketAddr) -> (TcpStream, ClientHandshake, Frame) {
    let mut stream = raw_connect(addr);
    let handshake = ClientHandshake::start();
    stream.write_all(handshake.client_hello_frame()).unwrap();
    let server_hello = frame::read_frame(&mut stream).unwrap();
    assert_eq!(server_hello.kind, FrameKind::ServerHello as u8);
    (stream, handshake, server_hello)
}

/// A ClientHello frame with the given protocol version (1 is the real one).
fn client_hello_frame_with_version(version: u16) -> Vec<u8> {
    let mut payload = ClientHello {
        client_random: securebank::rng::bytes(),
        client_public: *x25519_dalek::PublicKey::from(
            &x25519_dalek::StaticSecret::from(securebank::rng::bytes::<32>()),
        )
        .as_bytes(),
    }
    .encode();
    payload[4..6].copy_from_slice(&version.to_be_bytes());
    frame::encode(FrameKind::ClientHello, &payload)
}

/// The handshake by hand, with the Finished message built here from the derived keys so
/// that `tamper` can change its plaintext (type byte and MAC) before it is sealed.
fn handshake_with_finished(addr: SocketAddr, tamper: impl FnOnce(&mut [u8; FINISHED_BYTES])) -> RawSession {
    let mut stream = raw_connect(addr);
    let x25519_private: [u8; 32] = securebank::rng::bytes();
    let handshake = ClientHandshake::with_secrets(securebank::rng::bytes(), x25519_private);
    let client_hello = handshake.client_hello_frame().to_vec();
    stream.write_all(&client_hello).unwrap();
    let server_hello = frame::read_frame(&mut stream).unwrap();
    assert_eq!(server_hello.kind, FrameKind::ServerHello as u8);
    let hello = ServerHello::decode(&server_hello.payload).unwrap();
    let shared = x25519_dalek::StaticSecret::from(x25519_private)
        .diffie_hellman(&x25519_dalek::PublicKey::from(hello.server_public));
    let transcript_hash = keys::sha256(&[&client_hello, &frame::encode_raw(&server_hello)]);
    let session_keys = keys::derive(shared.as_bytes(), transcript_hash);
    let mut finished = handshake::finished_plaintext(&session_keys);
    tamper(&mut finished);
    let mut send = RecordCipher::new(&session_keys.client_to_server);
    stream.write_all(&send.seal(&finished).unwrap()).unwrap();
    RawSession {
        stream,
        established: Established {
            send,
            recv: RecordCipher::new(&session_keys.server_to_client),
            session_id: transcript_hash,
            server_fingerprint: identity::fingerprint(&hello.spki_der),
        },
    }
}

/// A fake server on 127.0.0.1:0 for one connection: it reads the ClientHello, answers with
/// whatever `forge` makes of it, then returns every byte the client sent afterwards.
fn fake_server(forge: impl FnOnce(&Frame) -> Vec<u8> + Send + 'static) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let client_hello = frame::read_frame(&mut stream).unwrap();
        assert_eq!(client_hello.kind, FrameKind::ClientHello as u8);
        stream.write_all(&forge(&client_hello)).unwrap();
        let mut after = Vec::new();
        stream.read_to_end(&mut after).unwrap();
        after
    });
    (addr, thread)
}

/// The genuine ServerHello the test key would send for this ClientHello.
fn genuine_server_hello(client_hello: &Frame) -> Vec<u8> {
    let identity = common::test_identity();
    let (server_hello, _awaiting_finished) = ServerHandshake::new(&identity)
        .receive_client_hello(client_hello)
        .unwrap();
    server_hello
}

fn test_fingerprint() -> String {
    common::test_identity().fingerprint().to_string()
}

fn connect_to_fake(addr: SocketAddr) -> Result<Client, ClientError> {
    client::connect_pinned(addr, &test_fingerprint(), Tracer::off())
}

fn assert_bad_signature(result: Result<Client, ClientError>) {
    match result {
        Err(ClientError::Channel(ChannelError::BadSignature)) => {}
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

/// Runs `bank-client` with `args`, stdin null; kills it if it runs past 20 s.
fn run_bank_client(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_bank-client"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::output_within(child, Duration::from_secs(20))
}

/// A well-formed fingerprint that is not the test key's: the other fixture key's.
fn wrong_fingerprint() -> String {
    let wrong = common::other_identity().fingerprint().to_string();
    assert_ne!(wrong, test_fingerprint());
    wrong
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------
// 1. The handshake and an echo
// ---------------------------------------------------------------------------------------

#[test]
fn handshake_succeeds_and_echo_round_trips() {
    let server = common::start_server();
    let mut client = client::connect_pinned(server.addr, &server.fingerprint, Tracer::off()).unwrap();
    assert_eq!(client.server_fingerprint(), server.fingerprint);
    assert_eq!(
        client.echo(b"hello over the channel").unwrap(),
        b"hello over the channel"
    );
    assert_eq!(client.echo(b"and again").unwrap(), b"and again");
}

// ---------------------------------------------------------------------------------------
// 2. Pinning: a man in the middle with its own valid key
// ---------------------------------------------------------------------------------------

#[test]
fn client_refuses_server_whose_key_differs_from_the_pin() {
    let mitm = common::start_server_with_identity(common::other_identity(), |_| {});
    let pinned = test_fingerprint();
    assert_ne!(mitm.fingerprint, pinned);
    let err = client::connect_pinned(mitm.addr, &pinned, Tracer::off()).unwrap_err();
    match &err {
        ClientError::Channel(ChannelError::PinMismatch { expected, presented }) => {
            assert_eq!(expected, &pinned);
            assert_eq!(presented, &mitm.fingerprint);
        }
        other => panic!("expected PinMismatch, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&pinned), "{message}");
    assert!(message.contains(&mitm.fingerprint), "{message}");
    // The man in the middle's key itself is valid: pinned to it, the handshake works.
    assert_serves_fresh_client(&mitm);
}

// ---------------------------------------------------------------------------------------
// 3. Forged ServerHello signatures
// ---------------------------------------------------------------------------------------

#[test]
fn client_accepts_a_genuine_server_hello_from_the_fake_server_harness() {
    // Control for the forgery tests below: the harness itself produces a working handshake.
    let (addr, fake) = fake_server(genuine_server_hello);
    let client = connect_to_fake(addr).expect("genuine ServerHello accepted");
    drop(client);
    let after = fake.join().unwrap();
    assert!(after.len() > HEADER_BYTES, "the client sent its Finished record");
    assert_eq!(after[frame::LENGTH_BYTES], FrameKind::Record as u8);
}

#[test]
fn client_refuses_server_hello_with_a_flipped_signature_bit() {
    // The signature is the last bytes of the frame (RSA-3072: 384 bytes).
    for from_end in [1usize, 100, 384] {
        let (addr, fake) = fake_server(move |client_hello| {
            let mut server_hello = genuine_server_hello(client_hello);
            let index = server_hello.len() - from_end;
            server_hello[index] ^= 0x01;
            server_hello
        });
        assert_bad_signature(connect_to_fake(addr));
        assert!(
            fake.join().unwrap().is_empty(),
            "the client sent bytes after a bad signature (byte {from_end} from the end)"
        );
    }
}

#[test]
fn client_refuses_server_hello_signed_over_a_different_transcript() {
    let (addr, fake) = fake_server(|_client_hello| {
        // A valid signature by the right key, but for someone else's ClientHello (replayed).
        let other = ClientHandshake::start();
        let other_hello = frame::read_frame(&mut other.client_hello_frame()).unwrap();
        genuine_server_hello(&other_hello)
    });
    assert_bad_signature(connect_to_fake(addr));
    assert!(fake.join().unwrap().is_empty());
}

#[test]
fn client_refuses_server_hello_whose_x25519_key_was_replaced() {
    let (addr, fake) = fake_server(|client_hello| {
        let real = frame::read_frame(&mut &genuine_server_hello(client_hello)[..]).unwrap();
        let mut hello = ServerHello::decode(&real.payload).unwrap();
        hello.server_public =
            *x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(securebank::rng::bytes::<32>()))
                .as_bytes();
        frame::encode(FrameKind::ServerHello, &hello.encode())
    });
    assert_bad_signature(connect_to_fake(addr));
    assert!(fake.join().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// 4. The server closes the connection on every hostile input, and keeps serving
// ---------------------------------------------------------------------------------------

#[test]
fn server_closes_connection_on_replayed_record() {
    let server = common::start_server();
    let mut session = raw_handshake(server.addr);
    let record = session.seal(&echo_request());
    session.stream.write_all(&record).unwrap();
    let first = session.read_response().expect("the first copy is answered");
    assert_eq!(Response::decode(&first).unwrap(), Response::Echo(b"x".to_vec()));
    session.stream.write_all(&record).unwrap();
    assert_closed_silently(&mut session.stream);
    assert_serves_fresh_client(&server);
}

#[test]
fn server_closes_connection_on_reordered_record() {
    let server = common::start_server();
    let mut session = raw_handshake(server.addr);
    assert_echo_round_trips(&mut session);
    let _second = session.seal(&echo_request());
    let third = session.seal(&echo_request());
    session.stream.write_all(&third).unwrap();
    assert_closed_silently(&mut session.stream);
    assert_serves_fresh_client(&server);
}

#[test]
fn server_closes_connection_on_record_with_one_bit_flipped() {
    let server = common::start_server();
    // A flipped bit in the first ciphertext byte, in the last tag byte, and in the lowest
    // bit of the authenticated length prefix.
    type Position = fn(&[u8]) -> usize;
    let positions: [(&str, Position); 3] = [
        ("ciphertext", |_| HEADER_BYTES),
        ("tag", |record| record.len() - 1),
        ("length", |_| frame::LENGTH_BYTES - 1),
    ];
    for (what, position) in positions {
        let mut session = raw_handshake(server.addr);
        assert_echo_round_trips(&mut session);
        let mut record = session.seal(&echo_request());
        let index = position(&record);
        record[index] ^= 0x01;
        if what == "length" && record[index] & 0x01 == 0x01 {
            // The flip announced one byte more than was sealed: send one, so the frame is
            // complete and only its authentication can fail.
            record.push(0);
        }
        session.stream.write_all(&record).unwrap();
        assert_closed_silently(&mut session.stream);
        assert_serves_fresh_client(&server);
    }
}

#[test]
fn server_closes_connection_on_record_from_another_session() {
    let server = common::start_server();
    let mut session_a = raw_handshake(server.addr);
    let mut session_b = raw_handshake(server.addr);
    assert_echo_round_trips(&mut session_a);
    assert_echo_round_trips(&mut session_b);
    // Both sessions are at the same sequence number: only the keys differ.
    assert_eq!(
        session_a.established.send.next_sequence(),
        session_b.established.send.next_sequence()
    );
    let from_a = session_a.seal(&echo_request());
    session_b.stream.write_all(&from_a).unwrap();
    assert_closed_silently(&mut session_b.stream);
    assert_serves_fresh_client(&server);
}

#[test]
fn server_closes_connection_on_truncated_frame() {
    let server = common::start_server();
    // After the handshake: a record missing its last bytes, then end of input.
    let mut session = raw_handshake(server.addr);
    assert_echo_round_trips(&mut session);
    let record = session.seal(&echo_request());
    session.stream.write_all(&record[..record.len() - 5]).unwrap();
    session.stream.shutdown(Shutdown::Write).unwrap();
    assert_closed_silently(&mut session.stream);
    assert_serves_fresh_client(&server);
    // Before the handshake: a ClientHello header announcing 71 bytes, 10 sent.
    let mut stream = raw_connect(server.addr);
    let hello = ClientHandshake::start().client_hello_frame().to_vec();
    stream.write_all(&hello[..HEADER_BYTES + 10]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_closed_silently(&mut stream);
    assert_serves_fresh_client(&server);
}

#[test]
fn server_closes_connection_promptly_on_four_gib_length_prefix() {
    // The default time limits (10 s handshake, 300 s idle) are far above PROMPTLY, so a
    // server that allocated and waited for 4 GiB would fail here.
    let server = common::start_server();
    let mut stream = raw_connect(server.addr);
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xff, FrameKind::ClientHello as u8])
        .unwrap();
    assert_closed_silently(&mut stream);
    assert_serves_fresh_client(&server);
    let mut session = raw_handshake(server.addr);
    assert_echo_round_trips(&mut session);
    session
        .stream
        .write_all(&[0xff, 0xff, 0xff, 0xff, FrameKind::Record as u8])
        .unwrap();
    assert_closed_silently(&mut session.stream);
    assert_serves_fresh_client(&server);
}

#[test]
fn server_closes_connection_on_garbage_instead_of_client_hello() {
    let server = common::start_server();
    // Unframed text: "GET " read as a length is over a gigabyte.
    let mut stream = raw_connect(server.addr);
    stream.write_all(b"GET / HTTP/1.1\r\nHost: bank\r\n\r\n").unwrap();
    assert_closed_silently(&mut stream);
    assert_serves_fresh_client(&server);
    // A complete frame of random bytes (random type byte, random body).
    let mut stream = raw_connect(server.addr);
    let mut garbage = vec![0u8, 0, 0, 200];
    garbage.extend_from_slice(&securebank::rng::bytes::<200>());
    stream.write_all(&garbage).unwrap();
    assert_closed_silently(&mut stream);
    assert_serves_fresh_client(&server);
    // An empty frame (length zero).
    let mut stream = raw_connect(server.addr);
    stream.write_all(&[0, 0, 0, 0]).unwrap();
    assert_closed_silently(&mut stream);
    assert_serves_fresh_client(&server);
}

#[test]
fn server_closes_connection_on_second_client_hello_instead_of_finished() {
    let server = common::start_server();
    let (mut stream, _handshake, _server_hello) = raw_hello(server.addr);
    stream.write_all(ClientHandshake::start().client_hello_frame()).unwrap();
    assert_closed_silently(&mut stream);
    assert_serves_fresh_client(&server);
}

#[test]
fn server_closes_connection_on_client_hello_after_handshake() {
    let server = common::start_server();
    let mut session = raw_handshake(server.addr);
    assert_echo_round_trips(&mut session);
    session
        .stream
        .write_all(ClientHandshake::start().client_hello_frame())
        .unwrap();
    assert_closed_silently(&mut session.stream);
    assert_serves_fresh_client(&server);
}

#[test]
fn server_closes_connection_on_record_before_handshake() {
    let server = common::start_server();
    let keys = keys::derive(&[7; 32], [9; 32]);
    let record = RecordCipher::new(&keys.client_to_server).seal(&echo_request()).unwrap();
    let mut stream = raw_connect(server.addr);
    stream.write_all(&record).unwrap();
    assert_closed_silently(&mut stream);
    assert_serves_fresh_client(&server);
}

#[test]
fn server_closes_connection_on_client_hello_with_unknown_version() {
    let server = common::start_server();
    // Control: the hand-built hello with version 1 is answered.
    let mut stream = raw_connect(server.addr);
    stream.write_all(&client_hello_frame_with_version(1)).unwrap();
    assert_eq!(
        frame::read_frame(&mut stream).unwrap().kind,
        FrameKind::ServerHello as u8
    );
    drop(stream);
    for version in [0u16, 2, 0xffff] {
        let mut stream = raw_connect(server.addr);
        stream.write_all(&client_hello_frame_with_version(version)).unwrap();
        assert_closed_silently(&mut stream);
        assert_serves_fresh_client(&server);
    }
}

#[test]
fn server_closes_connection_on_finished_with_wrong_mac() {
    let server = common::start_server();
    // Control: the hand-built Finished with the right MAC completes the handshake.
    let mut session = handshake_with_finished(server.addr, |_| {});
    assert_echo_round_trips(&mut session);
    drop(session);
    for byte in [1usize, 16, FINISHED_BYTES - 1] {
        let mut session = handshake_with_finished(server.addr, |finished| finished[byte] ^= 0x01);
        let record = session.seal(&echo_request());
        // The write may fail if the server already closed; the closure is what matters.
        let _ = session.stream.write_all(&record);
        assert_closed_silently(&mut session.stream);
        assert_serves_fresh_client(&server);
    }
    // A Finished with the right MAC but the wrong type byte is refused too.
    let mut session = handshake_with_finished(server.addr, |finished| finished[0] ^= 0x01);
    assert_closed_silently(&mut session.stream);
    assert_serves_fresh_client(&server);
}

// ---------------------------------------------------------------------------------------
// 5. The connection cap
// ---------------------------------------------------------------------------------------

#[test]
fn server_at_connection_cap_answers_busy_and_serves_again_after_a_slot_frees() {
    let server = common::start_server_with(|config| config.max_connections = 2);
    let mut held_a = server.connect();
    let mut held_b = server.connect();
    assert_eq!(held_a.echo(b"a").unwrap(), b"a");
    assert_eq!(held_b.echo(b"b").unwrap(), b"b");

    let mut third = raw_connect(server.addr);
    let busy = frame::read_frame(&mut third).expect("a busy notice");
    assert_eq!(busy.kind, FrameKind::ServerBusy as u8);
    assert_eq!(busy.kind, 0x03);
    assert_closed(&mut third);

    match client::connect_pinned(server.addr, &server.fingerprint, Tracer::off()) {
        Err(ClientError::Channel(ChannelError::ServerBusy)) => {}
        other => panic!("expected ServerBusy, got {other:?}"),
    }
    // The held clients are unaffected.
    assert_eq!(held_a.echo(b"a").unwrap(), b"a");

    drop(held_a);
    let started = Instant::now();
    let mut fresh = loop {
        match client::connect_pinned(server.addr, &server.fingerprint, Tracer::off()) {
            Ok(client) => break client,
            Err(ClientError::Channel(ChannelError::ServerBusy)) if started.elapsed() < PROMPTLY => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => panic!("slot not released within {PROMPTLY:?}: {err:?}"),
        }
    };
    assert_eq!(fresh.echo(b"served").unwrap(), b"served");
    assert_eq!(held_b.echo(b"b").unwrap(), b"b");
}

// ---------------------------------------------------------------------------------------
// 6. Time limits
// ---------------------------------------------------------------------------------------

#[test]
fn handshake_time_limit_closes_a_silent_connection() {
    let server = common::start_server_with(|config| config.handshake_timeout = Duration::from_millis(300));
    let mut stream = raw_connect(server.addr);
    assert_closed_silently(&mut stream);
}

#[test]
fn handshake_time_limit_closes_a_client_sending_one_byte_every_100_ms() {
    let server = common::start_server_with(|config| config.handshake_timeout = Duration::from_millis(300));
    let mut stream = raw_connect(server.addr);
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let hello = ClientHandshake::start().client_hello_frame().to_vec();
    let started = Instant::now();
    let mut sent = 0;
    let closed = 'trickle: {
        for byte in &hello {
            if stream.write_all(std::slice::from_ref(byte)).is_err() {
                break 'trickle true;
            }
            sent += 1;
            // The 100 ms read timeout paces the trickle and observes the close at once.
            let mut buf = [0u8; 64];
            match stream.read(&mut buf) {
                Ok(0) => break 'trickle true,
                Ok(n) => panic!("server sent {n} bytes to a half-sent ClientHello"),
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break 'trickle true,
            }
            assert!(started.elapsed() < PROMPTLY, "still open after {PROMPTLY:?}");
        }
        false
    };
    assert!(closed, "server waited for the whole slow ClientHello");
    assert!(sent < hello.len());
}

#[test]
fn anonymous_time_limit_closes_a_connection_that_does_not_log_in() {
    let server = common::start_server_with(|config| config.anonymous_idle_timeout = Duration::from_millis(300));
    let mut session = raw_handshake(server.addr);
    assert_echo_round_trips(&mut session);
    assert_closed_within(&mut session.stream, PROMPTLY);
    assert_serves_fresh_client(&server);
}

#[test]
fn echo_does_not_keep_a_connection_that_has_not_logged_in_alive() {
    let server = common::start_server_with(|config| config.anonymous_idle_timeout = Duration::from_millis(600));
    let mut session = raw_handshake(server.addr);
    let started = Instant::now();
    // Echo every 100 ms: under the old rule (idle = silence between requests) this would
    // keep the connection forever.
    let closed = loop {
        assert!(started.elapsed() < PROMPTLY, "echoes kept the connection open");
        std::thread::sleep(Duration::from_millis(100));
        let record = session.seal(&Request::Echo(b"x".to_vec()).encode());
        if frame::write_frame(&mut session.stream, FrameKind::Record, &record).is_err() {
            break true;
        }
        if session.read_response().is_err() {
            break true;
        }
    };
    assert!(closed);
}

#[test]
fn a_logged_in_connection_keeps_the_longer_idle_limit() {
    let server = common::start_server_with(|config| {
        config.anonymous_idle_timeout = Duration::from_millis(300);
        config.idle_timeout = Duration::from_secs(30);
    });
    server.add_account("alice", "password1", 100);
    let mut client = server.login("alice", "password1");
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(
        client.balance().unwrap(),
        100,
        "the anonymous limit applied after login"
    );
}

#[test]
fn idle_time_limit_closes_a_logged_in_connection_that_falls_silent() {
    let server = common::start_server_with(|config| config.idle_timeout = Duration::from_millis(300));
    server.add_account("alice", "password1", 100);
    let mut session = server.raw_login("alice", "password1");
    assert_closed_within(&mut session.stream, PROMPTLY);
    assert_serves_fresh_client(&server);
}

// ---------------------------------------------------------------------------------------
// 7. Pinning through the real bank-client binary
// ---------------------------------------------------------------------------------------

#[test]
fn bank_client_with_the_right_pin_connects() {
    // Control for the refusals below: with stdin closed, it connects and exits cleanly.
    let server = common::start_server();
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    let addr = server.addr.to_string();
    let output = run_bank_client(&[
        "--connect",
        &addr,
        "--known-servers",
        known.to_str().unwrap(),
        "--pin",
        &server.fingerprint,
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(stdout.contains("Secure channel established"), "{stdout}");
    assert!(stdout.contains(&server.fingerprint), "{stdout}");
}

#[test]
fn bank_client_refuses_server_whose_key_differs_from_known_servers_without_prompting() {
    let server = common::start_server();
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    let wrong = wrong_fingerprint();
    let contents = format!("{} {wrong}\n", server.addr);
    std::fs::write(&known, &contents).unwrap();
    let addr = server.addr.to_string();
    let output = run_bank_client(&["--connect", &addr, "--known-servers", known.to_str().unwrap()]);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "stdout: {stdout}");
    assert!(stderr.contains(&wrong), "pinned fingerprint missing: {stderr}");
    assert!(
        stderr.contains(&server.fingerprint),
        "presented fingerprint missing: {stderr}"
    );
    assert!(stderr.contains(known.to_str().unwrap()), "file path missing: {stderr}");
    assert!(!stdout.contains("yes/no"), "offered an override: {stdout}");
    assert!(!stdout.contains("Secure channel established"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&known).unwrap(), contents, "pin file changed");
}

#[test]
fn bank_client_refuses_server_whose_key_differs_from_pin_option() {
    let server = common::start_server();
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    let wrong = wrong_fingerprint();
    let addr = server.addr.to_string();
    let output = run_bank_client(&[
        "--connect",
        &addr,
        "--known-servers",
        known.to_str().unwrap(),
        "--pin",
        &wrong,
    ]);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "stdout: {stdout}");
    assert!(stderr.contains(&wrong), "expected fingerprint missing: {stderr}");
    assert!(
        stderr.contains(&server.fingerprint),
        "presented fingerprint missing: {stderr}"
    );
    assert!(!stdout.contains("yes/no"), "offered an override: {stdout}");
    assert!(!stdout.contains("Secure channel established"), "{stdout}");
    assert!(
        !Path::new(&known).exists(),
        "a refused key was written to known_servers"
    );
}

// ---------------------------------------------------------------------------------------
// 8. Records shorter than the tag
// ---------------------------------------------------------------------------------------

#[test]
fn server_closes_connection_on_record_shorter_than_the_tag() {
    let server = common::start_server();
    for length in [0, 1, TAG_BYTES - 1] {
        let mut session = raw_handshake(server.addr);
        assert_echo_round_trips(&mut session);
        let short = frame::encode(FrameKind::Record, &vec![0xAB; length]);
        session.stream.write_all(&short).unwrap();
        assert_closed_silently(&mut session.stream);
        assert_serves_fresh_client(&server);
    }
    // The same as the Finished record.
    let (mut stream, _handshake, _server_hello) = raw_hello(server.addr);
    stream
        .write_all(&frame::encode(FrameKind::Record, &[0xAB; TAG_BYTES - 1]))
        .unwrap();
    assert_closed_silently(&mut stream);
    assert_serves_fresh_client(&server);
}
