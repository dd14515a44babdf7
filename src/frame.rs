//! Length-prefixed frames: the only way bytes cross the socket.
//!
//! A frame is a `u32` big-endian body length, then the body; the body's first byte is the
//! frame type ([`FrameKind`]). Invariants: a length over [`MAX_FRAME_BODY_BYTES`] (or zero)
//! is refused *before* any buffer is allocated for it; a frame is written with a single
//! `write_all` of header and body together (one syscall, one TCP segment when small); a read
//! never waits past the caller's deadline.
//!
//! The operator's Unix socket (`DIR/admin.sock`, [`crate::server::operator`]) uses the same
//! frames with two kinds of its own, which the bank's TCP port never accepts.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::ChannelError;
use crate::limits::MAX_FRAME_BODY_BYTES;

/// Size of the length prefix, in bytes.
pub const LENGTH_BYTES: usize = 4;

/// Size of the frame header that records authenticate: length prefix plus type byte.
pub const HEADER_BYTES: usize = LENGTH_BYTES + 1;

/// The type byte at the start of every frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Cleartext handshake message from the client.
    ClientHello = 0x01,
    /// Cleartext handshake message from the server.
    ServerHello = 0x02,
    /// Cleartext notice from the server that it is at its connection cap; it then closes.
    ServerBusy = 0x03,
    /// An encrypted record (ChaCha20-Poly1305 ciphertext and tag).
    Record = 0x17,
    /// An operator's command, on the admin socket only (cleartext: the socket is local).
    OperatorRequest = 0x0a,
    /// The server's answer to an operator's command, on the admin socket only.
    OperatorReply = 0x0b,
}

impl FrameKind {
    /// The kind for a type byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0x01 => Some(Self::ClientHello),
            0x02 => Some(Self::ServerHello),
            0x03 => Some(Self::ServerBusy),
            0x17 => Some(Self::Record),
            0x0a => Some(Self::OperatorRequest),
            0x0b => Some(Self::OperatorReply),
            _ => None,
        }
    }

    /// A short name for traces and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientHello => "ClientHello",
            Self::ServerHello => "ServerHello",
            Self::ServerBusy => "ServerBusy",
            Self::Record => "Record",
            Self::OperatorRequest => "OperatorRequest",
            Self::OperatorReply => "OperatorReply",
        }
    }
}

/// One frame as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The type byte (not yet checked against [`FrameKind`]: the state machine does that).
    pub kind: u8,
    /// The body after the type byte.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The 5 header bytes this frame had on the wire (length prefix and type byte).
    pub fn header(&self) -> [u8; HEADER_BYTES] {
        header_for(self.kind, self.payload.len())
    }
}

/// The header bytes for a frame of `kind` whose payload is `payload_len` bytes.
pub fn header_for(kind: u8, payload_len: usize) -> [u8; HEADER_BYTES] {
    assert!(payload_len < MAX_FRAME_BODY_BYTES, "frame payload over the limit");
    let body_len = u32::try_from(payload_len + 1).expect("bounded by the limit");
    let mut header = [0u8; HEADER_BYTES];
    header[..LENGTH_BYTES].copy_from_slice(&body_len.to_be_bytes());
    header[LENGTH_BYTES] = kind;
    header
}

/// Encodes a whole frame (header and payload) into one buffer.
pub fn encode(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&header_for(kind as u8, payload.len()));
    bytes.extend_from_slice(payload);
    bytes
}

/// Re-encodes a frame read from the wire into the exact bytes it had there.
pub fn encode_raw(frame: &Frame) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + frame.payload.len());
    bytes.extend_from_slice(&frame.header());
    bytes.extend_from_slice(&frame.payload);
    bytes
}

/// Writes a whole frame with one `write_all`.
pub fn write_frame<W: Write>(out: &mut W, kind: FrameKind, payload: &[u8]) -> io::Result<()> {
    out.write_all(&encode(kind, payload))?;
    out.flush()
}

/// Reads one frame, refusing a bad length before allocating for it.
pub fn read_frame<R: Read>(input: &mut R) -> Result<Frame, ChannelError> {
    let mut length = [0u8; LENGTH_BYTES];
    input.read_exact(&mut length)?;
    let body_len = u32::from_be_bytes(length);
    let body_len_usize = usize::try_from(body_len).map_err(|_| ChannelError::FrameTooLarge(body_len))?;
    if body_len_usize > MAX_FRAME_BODY_BYTES {
        return Err(ChannelError::FrameTooLarge(body_len));
    }
    if body_len_usize == 0 {
        return Err(ChannelError::EmptyFrame);
    }
    let mut kind = [0u8; 1];
    input.read_exact(&mut kind)?;
    let mut payload = vec![0u8; body_len_usize - 1];
    input.read_exact(&mut payload)?;
    Ok(Frame { kind: kind[0], payload })
}

/// A `TcpStream` reader that never waits (much) past a deadline.
///
/// Setting the socket's timeout costs a system call, so it is changed only when needed: a
/// timeout that fires before the deadline is simply retried with the time remaining, and
/// the timeout is lowered only when it would let a read run more than an eighth past the
/// deadline. With a per-frame idle deadline this makes the steady state free of extra calls.
#[derive(Debug)]
pub struct DeadlineStream {
    /// Shared with the journal's commit thread, which sends replies on it (see
    /// `crate::server::reply`); only this stream reads from it.
    stream: Arc<TcpStream>,
    deadline: Option<Instant>,
    socket_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl DeadlineStream {
    /// Wraps a connected stream; reads wait forever until [`Self::set_deadline`] is called.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream: Arc::new(stream),
            deadline: None,
            socket_timeout: None,
            write_timeout: None,
        }
    }

    /// Reads from now on fail with a timeout once `deadline` has passed.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// The underlying socket.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// The underlying socket, for a writer on another thread; it stays open while either
    /// holds it.
    pub fn shared(&self) -> Arc<TcpStream> {
        Arc::clone(&self.stream)
    }

    /// Writes all of `bytes`, failing with `TimedOut` once `deadline` has passed: a peer that
    /// stops reading cannot hold this thread past the deadline, however the kernel splits
    /// the write. (A plain `write_all` with `SO_SNDTIMEO` restarts the clock at every
    /// partial write.) The socket timeout is changed only when it would overrun the deadline.
    pub fn write_all_by(&mut self, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
        let mut force = false;
        while !bytes.is_empty() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let too_long = self
                .write_timeout
                .is_none_or(|timeout| timeout > remaining + remaining / 8);
            if force || too_long {
                self.stream.set_write_timeout(Some(remaining))?;
                self.write_timeout = Some(remaining);
            }
            match (&*self.stream).write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => bytes = &bytes[written..],
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => force = true,
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    fn set_socket_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.socket_timeout != timeout {
            self.stream.set_read_timeout(timeout)?;
            self.socket_timeout = timeout;
        }
        Ok(())
    }

    /// Makes sure a blocking read cannot overrun the deadline by more than an eighth.
    fn arm(&mut self) -> io::Result<()> {
        let Some(deadline) = self.deadline else {
            return self.set_socket_timeout(None);
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let too_long = self
            .socket_timeout
            .is_none_or(|timeout| timeout > remaining + remaining / 8);
        if too_long {
            self.set_socket_timeout(Some(remaining))
        } else {
            Ok(())
        }
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.arm()?;
            match (&*self.stream).read(buf) {
                Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    // The socket timed out; if the deadline has not passed, wait the rest.
                    let remaining = self
                        .deadline
                        .map(|deadline| deadline.saturating_duration_since(Instant::now()));
                    match remaining {
                        Some(remaining) if !remaining.is_zero() => self.set_socket_timeout(Some(remaining))?,
                        _ => return Err(err),
                    }
                }
                other => return other,
            }
        }
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.stream).flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_frame() {
        let bytes = encode(FrameKind::Record, b"hello");
        assert_eq!(&bytes[..5], &[0, 0, 0, 6, 0x17]);
        let frame = read_frame(&mut &bytes[..]).unwrap();
        assert_eq!(
            frame,
            Frame {
                kind: 0x17,
                payload: b"hello".to_vec()
            }
        );
        assert_eq!(frame.header(), [0, 0, 0, 6, 0x17]);
    }

    #[test]
    fn refuses_four_gib_length_without_allocating() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0x17];
        assert!(matches!(
            read_frame(&mut &bytes[..]),
            Err(ChannelError::FrameTooLarge(u32::MAX))
        ));
    }

    #[test]
    fn refuses_length_one_over_the_limit_and_accepts_the_limit() {
        let over = u32::try_from(MAX_FRAME_BODY_BYTES + 1).unwrap().to_be_bytes();
        assert!(matches!(
            read_frame(&mut &over[..]),
            Err(ChannelError::FrameTooLarge(_))
        ));
        let mut at_limit = u32::try_from(MAX_FRAME_BODY_BYTES).unwrap().to_be_bytes().to_vec();
        at_limit.resize(LENGTH_BYTES + MAX_FRAME_BODY_BYTES, 0x17);
        assert_eq!(
            read_frame(&mut &at_limit[..]).unwrap().payload.len(),
            MAX_FRAME_BODY_BYTES - 1
        );
    }

    #[test]
    fn deadline_stream_times_out_at_the_deadline_and_then_waits_for_a_later_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut reader = DeadlineStream::new(listener.accept().unwrap().0);
        let mut byte = [0u8; 1];
        reader.set_deadline(Some(Instant::now() + Duration::from_millis(100)));
        let started = Instant::now();
        let err = reader.read(&mut byte).unwrap_err();
        assert!(matches!(
            err.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "deadline overrun: {:?}",
            started.elapsed()
        );
        reader.set_deadline(Some(Instant::now() + Duration::from_secs(30)));
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            writer.write_all(b"x").unwrap();
        });
        assert_eq!(
            reader.read(&mut byte).unwrap(),
            1,
            "a short socket timeout must be retried until the deadline"
        );
        assert_eq!(&byte, b"x");
        sender.join().unwrap();
    }

    #[test]
    fn write_all_by_gives_up_at_the_deadline_when_the_peer_never_reads() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer_that_never_reads = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut writer = DeadlineStream::new(listener.accept().unwrap().0);
        let chunk = vec![0u8; 1 << 20];
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        let outcome = (0..64).try_for_each(|_| writer.write_all_by(&chunk, deadline));
        let err = outcome.expect_err("64 MiB cannot fit in the socket buffers");
        assert!(matches!(
            err.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "held for {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn refuses_empty_and_truncated_frames() {
        assert!(matches!(
            read_frame(&mut &[0u8, 0, 0, 0][..]),
            Err(ChannelError::EmptyFrame)
        ));
        assert!(matches!(
            read_frame(&mut &[0u8, 0, 0, 9, 1, 2][..]),
            Err(ChannelError::Io(_))
        ));
    }
}
