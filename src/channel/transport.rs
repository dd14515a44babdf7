//! An established secure channel over a TCP socket: send and receive whole messages.
//!
//! Invariants: the handshake completes (and on the server the Finished MAC is checked)
//! before a [`SecureChannel`] exists; every message after that is one record; any failure
//! to open a record is returned as an error and the caller drops the connection.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handshake::{ClientHandshake, Established, ServerHandshake};
use super::hello::{ClientHello, ServerHello};
use super::keys;
use super::record::TAG_BYTES;
use crate::error::ChannelError;
use crate::frame::{self, DeadlineStream, FrameKind};
use crate::identity::ServerIdentity;
use crate::trace::{self, Direction, Tracer};

/// Time the client allows for connecting and for the whole handshake.
pub const CLIENT_HANDSHAKE_TIMEOUT_SECS: u64 = 15;

/// A record sealed for sending, with the sequence number its nonce used.
#[derive(Debug)]
pub struct SealedRecord {
    /// The whole frame: header, ciphertext, tag.
    pub bytes: Vec<u8>,
    /// Its sending sequence number: it must reach the wire after every lower one.
    pub sequence: u64,
}

/// Traces a record this side sealed and is sending now, from whichever thread sends it (the
/// server's commit thread sends replies that waited for the disk).
pub fn trace_sent_record(tracer: &Tracer, bytes: &[u8], sequence: u64) {
    trace_record(tracer, Direction::Sent, bytes, sequence, "");
}

/// A secure channel: a socket with a record cipher for each direction.
pub struct SecureChannel {
    reader: BufReader<DeadlineStream>,
    established: Established,
    tracer: Tracer,
    write_limit: Option<Duration>,
}

impl std::fmt::Debug for SecureChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureChannel")
            .field("server", &self.established.server_fingerprint)
            .finish_non_exhaustive()
    }
}

fn trace_frame(tracer: &Tracer, direction: Direction, frame_bytes: &[u8], detail: impl std::fmt::Display) {
    if tracer.enabled() {
        let kind = FrameKind::from_byte(frame_bytes[frame::LENGTH_BYTES]).map_or("unknown", FrameKind::name);
        tracer.line(
            direction,
            format_args!("{kind} frame, {} bytes: {detail}", frame_bytes.len()),
        );
        tracer.dump(frame_bytes);
    }
}

/// Traces a record frame: its sequence number (never sent: both sides count), the direction
/// key that seals it, and how its bytes split into header, ciphertext and tag.
fn trace_record(tracer: &Tracer, direction: Direction, frame_bytes: &[u8], sequence: u64, content: &str) {
    if tracer.enabled() {
        let ciphertext = frame_bytes.len().saturating_sub(frame::HEADER_BYTES + TAG_BYTES);
        let detail = format_args!(
            "seq {sequence}, {} key; {} header + {ciphertext} ciphertext + {TAG_BYTES} tag{content}",
            tracer.record_key(direction),
            frame::HEADER_BYTES
        );
        trace_frame(tracer, direction, frame_bytes, detail);
        if sequence == 0 {
            let key = tracer.record_key(direction);
            tracer.line(
                Direction::Local,
                format_args!(
                    "(first {key} record, explained once: the {} header bytes are a 4-byte length + a 1-byte type, \
                     authenticated as associated data; nonce = {key} IV XOR (0000 0000 ‖ seq as 8 bytes), so \
                     seq 0 uses the IV itself and each record the next number; the IV comes from the key \
                     schedule and is never sent or shown)",
                    frame::HEADER_BYTES
                ),
            );
        }
    }
}

fn trace_client_hello(tracer: &Tracer, direction: Direction, frame_bytes: &[u8]) {
    if !tracer.enabled() {
        return;
    }
    if let Ok(Some(hello)) = ClientHello::decode(&frame_bytes[frame::HEADER_BYTES..]) {
        let detail = format_args!(
            "magic SBNK, version 1, client_random {}, client_x25519 {}",
            trace::abbreviate(&hello.client_random),
            trace::abbreviate(&hello.client_public)
        );
        trace_frame(tracer, direction, frame_bytes, detail);
        let mut fields = trace::header_fields(frame_bytes, "ClientHello");
        fields.extend([
            (5, 4, "magic \"SBNK\"".to_string()),
            (9, 2, "protocol version, u16 = 1".to_string()),
            (
                11,
                32,
                "client_random: fresh random bytes, make this transcript unique".to_string(),
            ),
            (43, 32, "client_x25519: the client's ephemeral public key".to_string()),
        ]);
        tracer.fields(&fields);
    }
}

fn trace_server_hello(tracer: &Tracer, direction: Direction, frame_bytes: &[u8]) {
    if !tracer.enabled() {
        return;
    }
    if let Ok(hello) = ServerHello::decode(&frame_bytes[frame::HEADER_BYTES..]) {
        let detail = format_args!(
            "version 1, server_random {}, server_x25519 {}, RSA public key {} ({} bytes SPKI DER), \
             RSA-PSS signature {} bytes",
            trace::abbreviate(&hello.server_random),
            trace::abbreviate(&hello.server_public),
            crate::identity::fingerprint(&hello.spki_der),
            hello.spki_der.len(),
            hello.signature.len()
        );
        trace_frame(tracer, direction, frame_bytes, detail);
        let spki = hello.spki_der.len();
        let signature = hello.signature.len();
        let mut fields = trace::header_fields(frame_bytes, "ServerHello");
        fields.extend([
            (5, 2, "protocol version, u16 = 1".to_string()),
            (7, 32, "server_random: fresh random bytes".to_string()),
            (39, 32, "server_x25519: the server's ephemeral public key".to_string()),
            (71, 2, format!("spki_len, u16 = {spki}")),
            (
                73,
                spki,
                "the server's RSA public key (SPKI DER); its SHA-256 is the fingerprint".to_string(),
            ),
            (73 + spki, 2, format!("sig_len, u16 = {signature}")),
            (
                75 + spki,
                signature,
                "RSA-PSS-SHA256 signature over both hellos up to sig_len".to_string(),
            ),
        ]);
        tracer.fields(&fields);
    }
}

fn trace_keys(tracer: &Tracer) {
    if !tracer.enabled() {
        return;
    }
    let label = |bytes: &'static [u8]| String::from_utf8_lossy(bytes);
    tracer.line(
        Direction::Local,
        "X25519 shared secret (checked not all-zero) + transcript hash -> HKDF-SHA256",
    );
    tracer.line(
        Direction::Local,
        format_args!(
            "  derived {:?}, {:?}, {:?}, {:?}, {:?} (labels only: key bytes are never printed)",
            label(keys::LABEL_C2S_KEY),
            label(keys::LABEL_C2S_IV),
            label(keys::LABEL_S2C_KEY),
            label(keys::LABEL_S2C_IV),
            label(keys::LABEL_FINISHED)
        ),
    );
}

impl SecureChannel {
    /// Connects to `addr`, runs the client handshake, and sends Finished. `check_pin` sees
    /// the server key's fingerprint after its signature verified, and may refuse it.
    pub fn connect(
        addr: SocketAddr,
        check_pin: impl FnOnce(&str) -> Result<(), ChannelError>,
        tracer: Tracer,
    ) -> Result<Self, ChannelError> {
        let timeout = Duration::from_secs(CLIENT_HANDSHAKE_TIMEOUT_SECS);
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        tracer.line(
            Direction::Local,
            format_args!("TCP connected to {addr}; starting the handshake"),
        );
        Self::client_handshake(stream, ClientHandshake::start(), check_pin, tracer)
    }

    /// Runs the client handshake on a connected stream.
    pub fn client_handshake(
        stream: TcpStream,
        handshake: ClientHandshake,
        check_pin: impl FnOnce(&str) -> Result<(), ChannelError>,
        tracer: Tracer,
    ) -> Result<Self, ChannelError> {
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(CLIENT_HANDSHAKE_TIMEOUT_SECS)))?;
        let mut deadline_stream = DeadlineStream::new(stream);
        deadline_stream.set_deadline(Some(
            Instant::now() + Duration::from_secs(CLIENT_HANDSHAKE_TIMEOUT_SECS),
        ));
        let mut reader = BufReader::new(deadline_stream);
        trace_client_hello(&tracer, Direction::Sent, handshake.client_hello_frame());
        reader.get_mut().write_all(handshake.client_hello_frame())?;
        let server_hello = frame::read_frame(&mut reader)?;
        if tracer.enabled() {
            trace_server_hello(&tracer, Direction::Received, &frame::encode_raw(&server_hello));
        }
        let (established, finished_record) = handshake.receive_server_hello(&server_hello, |fingerprint| {
            tracer.line(
                Direction::Local,
                "RSA-PSS-SHA256 signature over the transcript (ClientHello + ServerHello up to the \
                 signature): verified, so the server holds the private half of the key it sent",
            );
            check_pin(fingerprint)
        })?;
        trace_keys(&tracer);
        trace_record(
            &tracer,
            Direction::Sent,
            &finished_record,
            0,
            " = Finished: HMAC-SHA256(finished key, transcript hash)",
        );
        reader.get_mut().write_all(&finished_record)?;
        reader.get_mut().set_deadline(None);
        Ok(Self {
            reader,
            established,
            tracer,
            write_limit: None,
        })
    }

    /// Runs the server handshake on an accepted stream; the whole handshake must finish by
    /// `deadline`.
    pub fn accept(
        stream: TcpStream,
        identity: &ServerIdentity,
        deadline: Instant,
        tracer: Tracer,
    ) -> Result<Self, ChannelError> {
        let mut deadline_stream = DeadlineStream::new(stream);
        deadline_stream.set_deadline(Some(deadline));
        let mut reader = BufReader::new(deadline_stream);
        let client_hello = frame::read_frame(&mut reader)?;
        if tracer.enabled() {
            trace_client_hello(&tracer, Direction::Received, &frame::encode_raw(&client_hello));
        }
        let (server_hello, awaiting_finished) = ServerHandshake::new(identity).receive_client_hello(&client_hello)?;
        tracer.line(
            Direction::Local,
            format_args!(
                "fresh X25519 key pair made; transcript (ClientHello + ServerHello up to the signature) \
                 signed with RSA-PSS-SHA256 by server key {}",
                identity.fingerprint()
            ),
        );
        trace_keys(&tracer);
        trace_server_hello(&tracer, Direction::Sent, &server_hello);
        reader.get_mut().write_all(&server_hello)?;
        let mut finished = frame::read_frame(&mut reader)?;
        let finished_bytes = tracer.enabled().then(|| frame::encode_raw(&finished));
        let established = awaiting_finished.receive_finished(&mut finished)?;
        if let Some(bytes) = finished_bytes {
            trace_record(
                &tracer,
                Direction::Received,
                &bytes,
                0,
                " = Finished: MAC verified, handshake complete",
            );
        }
        Ok(Self {
            reader,
            established,
            tracer,
            write_limit: None,
        })
    }

    /// Encrypts and sends one message.
    pub fn send(&mut self, plaintext: &[u8]) -> Result<(), ChannelError> {
        let record = self.seal(plaintext)?;
        self.write_sealed(&record)
    }

    /// Encrypts one message with the next sending sequence number, without sending it. The
    /// caller sends the records in sequence order ([`Self::write_sealed`]), or the peer
    /// rejects the first one out of order and everything after it.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<SealedRecord, ChannelError> {
        let sequence = self.established.send.next_sequence();
        let bytes = self.established.send.seal(plaintext)?;
        Ok(SealedRecord { bytes, sequence })
    }

    /// Sends a record from [`Self::seal`] (within the write limit, if one is set).
    pub fn write_sealed(&mut self, record: &SealedRecord) -> Result<(), ChannelError> {
        trace_sent_record(&self.tracer, &record.bytes, record.sequence);
        match self.write_limit {
            Some(limit) => self.write_by(&record.bytes, Instant::now() + limit),
            None => Ok(self.reader.get_mut().write_all(&record.bytes)?),
        }
    }

    /// Writes raw bytes of sealed records, failing once `deadline` has passed.
    pub fn write_by(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), ChannelError> {
        Ok(self.reader.get_mut().write_all_by(bytes, deadline)?)
    }

    /// Waits until at least one byte of the next record has arrived (or the peer closed):
    /// `true`; `false` if nothing came by `until`. Consumes nothing, so a frame is never cut.
    pub fn wait_readable(&mut self, until: Instant) -> Result<bool, ChannelError> {
        self.reader.get_mut().set_deadline(Some(until));
        match self.reader.fill_buf() {
            Ok(_) => Ok(true),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// From now on, each message must be accepted by the peer's socket within `limit`, or
    /// sending fails: a peer that never reads cannot hold the sending thread for longer.
    pub fn set_write_limit(&mut self, limit: Duration) {
        self.write_limit = Some(limit);
    }

    /// Receives and decrypts one message; fails if none arrives by `deadline`.
    pub fn recv(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, ChannelError> {
        self.reader.get_mut().set_deadline(deadline);
        let mut frame = frame::read_frame(&mut self.reader)?;
        if frame.kind != FrameKind::Record as u8 {
            return Err(ChannelError::UnexpectedFrame {
                expected: "Record",
                got: frame.kind,
            });
        }
        let sequence = self.established.recv.next_sequence();
        if self.tracer.enabled() {
            let bytes = frame::encode_raw(&frame);
            trace_record(&self.tracer, Direction::Received, &bytes, sequence, "");
        }
        self.established.recv.open(&frame.header(), &mut frame.payload)?;
        Ok(frame.payload)
    }

    /// The session identifier (the handshake transcript hash).
    pub fn session_id(&self) -> [u8; 32] {
        self.established.session_id
    }

    /// The fingerprint of the server key this channel was established with.
    pub fn server_fingerprint(&self) -> &str {
        &self.established.server_fingerprint
    }

    /// The tracer of this connection.
    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// The underlying socket (tests use it to send raw bytes; the server to shut it down).
    pub fn socket(&self) -> &TcpStream {
        self.reader.get_ref().get_ref()
    }

    /// The underlying socket, for the server's commit thread to send replies on (it never
    /// reads from it); the socket stays open while either holds it.
    pub fn shared_socket(&self) -> Arc<TcpStream> {
        self.reader.get_ref().shared()
    }

    /// Sets the socket's write timeout.
    pub fn set_write_timeout(&self, timeout: Duration) -> Result<(), ChannelError> {
        Ok(self.socket().set_write_timeout(Some(timeout))?)
    }
}
