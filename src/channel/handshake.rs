//! The handshake state machines: one type per state, each consumed by its transition, so a
//! message out of turn has no method to receive it and a skipped check does not compile.
//!
//! ```text
//! client: ClientHandshake ──receive_server_hello──▶ (Established, Finished record)
//! server: ServerHandshake ──receive_client_hello──▶ AwaitingFinished ──receive_finished──▶ Established
//! ```

use x25519_dalek::{PublicKey, StaticSecret};

use super::hello::{ClientHello, ServerHello};
use super::keys::{self, SessionKeys};
use super::record::RecordCipher;
use crate::error::ChannelError;
use crate::frame::{self, Frame, FrameKind};
use crate::identity::{self, ServerIdentity};

/// Type byte of the Finished message (the plaintext of the client's first record).
pub const FINISHED_TYPE: u8 = 0x10;

/// Length of the Finished plaintext: type byte and the 32-byte MAC.
pub const FINISHED_BYTES: usize = 33;

/// A completed handshake: one record cipher per direction and what identifies the session.
#[derive(Debug)]
pub struct Established {
    /// Seals records this side sends.
    pub send: RecordCipher,
    /// Opens records this side receives.
    pub recv: RecordCipher,
    /// The transcript hash: unique per handshake, used to bind one-time codes to a session.
    pub session_id: [u8; 32],
    /// Fingerprint of the server's RSA key (as presented and checked).
    pub server_fingerprint: String,
}

fn expect_kind(frame: &Frame, kind: FrameKind, expected: &'static str) -> Result<(), ChannelError> {
    if frame.kind == FrameKind::ServerBusy as u8 && kind == FrameKind::ServerHello {
        return Err(ChannelError::ServerBusy);
    }
    if frame.kind != kind as u8 {
        return Err(ChannelError::UnexpectedFrame {
            expected,
            got: frame.kind,
        });
    }
    Ok(())
}

fn shared_secret(secret: &StaticSecret, peer_public: [u8; 32]) -> Result<x25519_dalek::SharedSecret, ChannelError> {
    let shared = secret.diffie_hellman(&PublicKey::from(peer_public));
    if !shared.was_contributory() {
        return Err(ChannelError::NonContributoryKeyExchange);
    }
    Ok(shared)
}

/// The client's Finished plaintext for these keys.
pub fn finished_plaintext(keys: &SessionKeys) -> [u8; FINISHED_BYTES] {
    let mut plaintext = [0u8; FINISHED_BYTES];
    plaintext[0] = FINISHED_TYPE;
    plaintext[1..].copy_from_slice(&keys::finished_mac(&keys.finished_key, &keys.transcript_hash));
    plaintext
}

/// The client before the ServerHello: it has sent its ClientHello.
pub struct ClientHandshake {
    secret: StaticSecret,
    client_hello_frame: Vec<u8>,
}

impl ClientHandshake {
    /// A handshake with a fresh random and a fresh ephemeral X25519 key.
    pub fn start() -> Self {
        Self::with_secrets(crate::rng::bytes(), crate::rng::bytes())
    }

    /// A handshake with the given random and X25519 private key (test vectors use fixed ones).
    pub fn with_secrets(client_random: [u8; 32], x25519_private: [u8; 32]) -> Self {
        let secret = StaticSecret::from(x25519_private);
        let hello = ClientHello {
            client_random,
            client_public: PublicKey::from(&secret).to_bytes(),
        };
        let client_hello_frame = frame::encode(FrameKind::ClientHello, &hello.encode());
        Self {
            secret,
            client_hello_frame,
        }
    }

    /// The ClientHello frame to send, exactly as it goes on the wire.
    pub fn client_hello_frame(&self) -> &[u8] {
        &self.client_hello_frame
    }

    /// Checks the ServerHello: decodes it, verifies the signature over the transcript,
    /// lets `check_pin` accept or refuse the key's fingerprint, then derives the keys.
    /// Returns the established session and the Finished record to send first.
    pub fn receive_server_hello(
        self,
        frame: &Frame,
        check_pin: impl FnOnce(&str) -> Result<(), ChannelError>,
    ) -> Result<(Established, Vec<u8>), ChannelError> {
        expect_kind(frame, FrameKind::ServerHello, "ServerHello")?;
        let hello = ServerHello::decode(&frame.payload)?;
        let signed = keys::signed_message(&self.client_hello_frame, &hello.signed_part());
        identity::verify_server_signature(&hello.spki_der, &signed, &hello.signature)?;
        let server_fingerprint = identity::fingerprint(&hello.spki_der);
        check_pin(&server_fingerprint)?;
        let shared = shared_secret(&self.secret, hello.server_public)?;
        let server_hello_frame = frame::encode(FrameKind::ServerHello, &frame.payload);
        let transcript_hash = keys::sha256(&[&self.client_hello_frame, &server_hello_frame]);
        let session_keys = keys::derive(shared.as_bytes(), transcript_hash);
        let mut send = RecordCipher::new(&session_keys.client_to_server);
        let finished_record = send.seal(&finished_plaintext(&session_keys))?;
        let established = Established {
            send,
            recv: RecordCipher::new(&session_keys.server_to_client),
            session_id: transcript_hash,
            server_fingerprint,
        };
        Ok((established, finished_record))
    }
}

/// The server waiting for a ClientHello.
pub struct ServerHandshake<'a> {
    identity: &'a ServerIdentity,
}

/// The server after sending its ServerHello, waiting for the client's Finished record.
pub struct AwaitingFinished {
    session_keys: SessionKeys,
    server_fingerprint: String,
}

impl<'a> ServerHandshake<'a> {
    /// A handshake that will sign with `identity`.
    pub fn new(identity: &'a ServerIdentity) -> Self {
        Self { identity }
    }

    /// Answers a ClientHello with fresh randomness. Returns the ServerHello frame to send.
    pub fn receive_client_hello(self, frame: &Frame) -> Result<(Vec<u8>, AwaitingFinished), ChannelError> {
        self.receive_client_hello_with(
            frame,
            crate::rng::bytes(),
            crate::rng::bytes(),
            &mut crate::rng::os_rng(),
        )
    }

    /// Answers a ClientHello with the given random, X25519 key and signing RNG (test vectors).
    pub fn receive_client_hello_with<R: rsa::rand_core::CryptoRng + ?Sized>(
        self,
        frame: &Frame,
        server_random: [u8; 32],
        x25519_private: [u8; 32],
        signing_rng: &mut R,
    ) -> Result<(Vec<u8>, AwaitingFinished), ChannelError> {
        expect_kind(frame, FrameKind::ClientHello, "ClientHello")?;
        let client_hello = ClientHello::decode(&frame.payload)?.ok_or(ChannelError::UnsupportedVersion)?;
        let client_hello_frame = frame::encode(FrameKind::ClientHello, &frame.payload);
        let secret = StaticSecret::from(x25519_private);
        let shared = shared_secret(&secret, client_hello.client_public)?;
        let mut hello = ServerHello {
            server_random,
            server_public: PublicKey::from(&secret).to_bytes(),
            spki_der: self.identity.spki_der().to_vec(),
            signature: Vec::new(),
        };
        let signed = keys::signed_message(&client_hello_frame, &hello.signed_part());
        hello.signature = self.identity.sign_with_rng(signing_rng, &signed);
        let server_hello_frame = frame::encode(FrameKind::ServerHello, &hello.encode());
        let transcript_hash = keys::sha256(&[&client_hello_frame, &server_hello_frame]);
        let session_keys = keys::derive(shared.as_bytes(), transcript_hash);
        let server_fingerprint = self.identity.fingerprint().to_string();
        Ok((
            server_hello_frame,
            AwaitingFinished {
                session_keys,
                server_fingerprint,
            },
        ))
    }
}

impl AwaitingFinished {
    /// Opens the client's first record and checks its Finished MAC before anything else is
    /// accepted.
    pub fn receive_finished(self, frame: &mut Frame) -> Result<Established, ChannelError> {
        expect_kind(frame, FrameKind::Record, "Finished record")?;
        let mut recv = RecordCipher::new(&self.session_keys.client_to_server);
        let header = frame.header();
        recv.open(&header, &mut frame.payload)?;
        let plaintext = &frame.payload;
        if plaintext.len() != FINISHED_BYTES || plaintext[0] != FINISHED_TYPE {
            return Err(ChannelError::BadFinished);
        }
        let keys = &self.session_keys;
        if !keys::verify_finished(&keys.finished_key, &keys.transcript_hash, &plaintext[1..]) {
            return Err(ChannelError::BadFinished);
        }
        Ok(Established {
            send: RecordCipher::new(&keys.server_to_client),
            recv,
            session_id: keys.transcript_hash,
            server_fingerprint: self.server_fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::hello::ClientHello;

    fn test_identity() -> ServerIdentity {
        ServerIdentity::from_pkcs8_pem(include_str!("../../tests/fixtures/test_server_key.pem")).unwrap()
    }

    fn client_hello_frame(client_public: [u8; 32]) -> Frame {
        let hello = ClientHello {
            client_random: [1; 32],
            client_public,
        };
        Frame {
            kind: FrameKind::ClientHello as u8,
            payload: hello.encode(),
        }
    }

    #[test]
    fn server_refuses_a_low_order_client_key() {
        let identity = test_identity();
        let outcome = ServerHandshake::new(&identity).receive_client_hello(&client_hello_frame([0; 32]));
        assert!(matches!(outcome, Err(ChannelError::NonContributoryKeyExchange)));
    }

    #[test]
    fn client_refuses_a_low_order_server_key_even_when_signed() {
        let identity = test_identity();
        let client = ClientHandshake::with_secrets([1; 32], [2; 32]);
        let mut hello = ServerHello {
            server_random: [3; 32],
            server_public: [0; 32],
            spki_der: identity.spki_der().to_vec(),
            signature: Vec::new(),
        };
        let signed = keys::signed_message(client.client_hello_frame(), &hello.signed_part());
        hello.signature = identity.sign(&signed);
        let frame = Frame {
            kind: FrameKind::ServerHello as u8,
            payload: hello.encode(),
        };
        let outcome = client.receive_server_hello(&frame, |_| Ok(()));
        assert!(matches!(outcome, Err(ChannelError::NonContributoryKeyExchange)));
    }

    #[test]
    fn a_server_record_reflected_back_to_the_server_is_rejected() {
        let identity = test_identity();
        let client = ClientHandshake::with_secrets([1; 32], [2; 32]);
        let client_hello = crate::frame::read_frame(&mut client.client_hello_frame()).unwrap();
        let (server_hello, awaiting) = ServerHandshake::new(&identity)
            .receive_client_hello(&client_hello)
            .unwrap();
        let server_hello = crate::frame::read_frame(&mut &server_hello[..]).unwrap();
        let (mut client_side, finished) = client.receive_server_hello(&server_hello, |_| Ok(())).unwrap();
        let mut finished = crate::frame::read_frame(&mut &finished[..]).unwrap();
        let mut server_side = awaiting.receive_finished(&mut finished).unwrap();
        let from_server = server_side.send.seal(b"\x20\x00\x01x").unwrap();
        let mut reflected = crate::frame::read_frame(&mut &from_server[..]).unwrap();
        let header = reflected.header();
        assert!(matches!(
            server_side.recv.open(&header, &mut reflected.payload),
            Err(ChannelError::RecordRejected)
        ));
        let mut genuine = crate::frame::read_frame(&mut &from_server[..]).unwrap();
        client_side.recv.open(&genuine.header(), &mut genuine.payload).unwrap();
    }
}
