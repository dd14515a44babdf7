//! The secure channel: an authenticated, forward-secret, replay-proof pipe over TCP.
//!
//! ```text
//! client                                         server
//!   ClientHello  (random, X25519 public)  ──────▶
//!                ◀────── ServerHello (random, X25519 public, RSA SPKI,
//!                                     RSA-PSS-SHA256 signature over the transcript)
//!   check pin, verify signature, X25519, HKDF(transcript) → keys
//!   Record[Finished = HMAC(finished_key, transcript)] ──▶  check before anything else
//!   Record ◀──────────────────────────────────────▶ Record   (ChaCha20-Poly1305)
//! ```
//!
//! | file | concern |
//! |---|---|
//! | [`hello`] | the two cleartext handshake messages, byte for byte |
//! | [`keys`] | transcript hashes, the signed message, HKDF key schedule, Finished MAC |
//! | [`record`] | sealing and opening records with implicit sequence numbers |
//! | [`handshake`] | the client and server state machines, one type per state |
//! | [`transport`] | an established channel over a socket: send and receive messages |

pub mod handshake;
pub mod hello;
pub mod keys;
pub mod record;
pub mod transport;

pub use handshake::{ClientHandshake, ServerHandshake};
pub use transport::{SealedRecord, SecureChannel, trace_sent_record};
