//! ServerHello payloads, as a client receives them: decode never panics and re-encodes
//! canonically; then the whole client-side check (SPKI DER parsing with the peer's key,
//! RSA-PSS verification, X25519, key schedule) runs on the frame and must never panic.
//! The client handshake uses fixed secrets, so a genuine ServerHello from the seed corpus
//! (fuzz/seeds/server_hello) verifies and mutations of it explore the paths after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securebank::channel::handshake::ClientHandshake;
use securebank::channel::hello::ServerHello;
use securebank::frame::{Frame, FrameKind};

fuzz_target!(|data: &[u8]| {
    if let Ok(hello) = ServerHello::decode(data) {
        assert_eq!(hello.encode(), data, "ServerHello re-encoding differs");
    }
    let handshake = ClientHandshake::with_secrets([1; 32], [2; 32]);
    let frame = Frame {
        kind: FrameKind::ServerHello as u8,
        payload: data.to_vec(),
    };
    if let Ok((established, finished)) = handshake.receive_server_hello(&frame, |_| Ok(())) {
        assert!(!finished.is_empty());
        assert!(established.server_fingerprint.starts_with("SHA256:"));
    }
});
