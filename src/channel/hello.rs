//! The two cleartext handshake messages, ClientHello and ServerHello, byte for byte.
//!
//! ```text
//! ClientHello payload (70 bytes):  magic "SBNK" | version u16 = 1 | client_random[32] | client_x25519[32]
//! ServerHello payload:             version u16 = 1 | server_random[32] | server_x25519[32]
//!                                  | spki_len u16 | spki DER | sig_len u16 | RSA-PSS signature
//! ```
//! The part of the ServerHello before `sig_len` is what the signature covers (with the
//! ClientHello); see [`crate::channel::keys`].

use crate::codec::{Reader, Writer};
use crate::error::DecodeError;

/// The four bytes that open every ClientHello.
pub const MAGIC: [u8; 4] = *b"SBNK";

/// The only protocol version this code speaks.
pub const VERSION: u16 = 1;

/// Longest SPKI DER accepted: an RSA-4096 SPKI is 550 bytes.
pub const MAX_SPKI_BYTES: usize = 600;

/// Longest signature accepted: an RSA-4096 signature is 512 bytes.
pub const MAX_SIGNATURE_BYTES: usize = 512;

/// The client's opening message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// 32 fresh random bytes, so every transcript is unique.
    pub client_random: [u8; 32],
    /// The client's ephemeral X25519 public key.
    pub client_public: [u8; 32],
}

impl ClientHello {
    /// The payload bytes (after the frame type byte).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(70);
        w.raw(&MAGIC)
            .u16(VERSION)
            .raw(&self.client_random)
            .raw(&self.client_public);
        w.into_bytes()
    }

    /// Parses a payload. Returns `Ok(None)` for a well-formed hello of another magic or
    /// version, so the caller can refuse it as unsupported rather than as malformed.
    pub fn decode(payload: &[u8]) -> Result<Option<Self>, DecodeError> {
        let mut r = Reader::new(payload);
        let magic = r.array::<4>("magic")?;
        let version = r.u16("version")?;
        let client_random = r.array("client_random")?;
        let client_public = r.array("client_x25519")?;
        r.finish()?;
        if magic != MAGIC || version != VERSION {
            return Ok(None);
        }
        Ok(Some(Self {
            client_random,
            client_public,
        }))
    }
}

/// The server's reply: its ephemeral key, its identity and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// 32 fresh random bytes.
    pub server_random: [u8; 32],
    /// The server's ephemeral X25519 public key.
    pub server_public: [u8; 32],
    /// The server's long-term RSA public key, as SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// RSA-PSS-SHA256 signature over [`crate::channel::keys::signed_message`].
    pub signature: Vec<u8>,
}

impl ServerHello {
    /// The signed part of the payload: everything before `sig_len`.
    pub fn signed_part(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(68 + self.spki_der.len());
        w.u16(VERSION)
            .raw(&self.server_random)
            .raw(&self.server_public)
            .bytes16(&self.spki_der);
        w.into_bytes()
    }

    /// The whole payload (after the frame type byte).
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = self.signed_part();
        let mut w = Writer::with_capacity(2 + self.signature.len());
        w.bytes16(&self.signature);
        bytes.extend_from_slice(&w.into_bytes());
        bytes
    }

    /// Parses a payload.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        if r.u16("version")? != VERSION {
            return Err(DecodeError::BadValue("version"));
        }
        let server_random = r.array("server_random")?;
        let server_public = r.array("server_x25519")?;
        let spki_der = r.bytes16(MAX_SPKI_BYTES, "spki")?.to_vec();
        let signature = r.bytes16(MAX_SIGNATURE_BYTES, "signature")?.to_vec();
        r.finish()?;
        Ok(Self {
            server_random,
            server_public,
            spki_der,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hello_round_trips_and_is_70_bytes() {
        let hello = ClientHello {
            client_random: [1; 32],
            client_public: [2; 32],
        };
        let bytes = hello.encode();
        assert_eq!(bytes.len(), 70);
        assert_eq!(ClientHello::decode(&bytes).unwrap(), Some(hello));
    }

    #[test]
    fn client_hello_of_another_version_is_unsupported_not_malformed() {
        let mut bytes = ClientHello {
            client_random: [1; 32],
            client_public: [2; 32],
        }
        .encode();
        bytes[5] = 2;
        assert_eq!(ClientHello::decode(&bytes).unwrap(), None);
        assert!(ClientHello::decode(&bytes[..69]).is_err());
    }

    #[test]
    fn client_refuses_a_server_hello_of_another_version() {
        let hello = ServerHello {
            server_random: [3; 32],
            server_public: [4; 32],
            spki_der: vec![5; 4],
            signature: vec![6; 4],
        };
        let mut bytes = hello.encode();
        bytes[1] = 2;
        assert_eq!(ServerHello::decode(&bytes), Err(DecodeError::BadValue("version")));
    }

    #[test]
    fn server_hello_round_trips() {
        let hello = ServerHello {
            server_random: [3; 32],
            server_public: [4; 32],
            spki_der: vec![5; 40],
            signature: vec![6; 384],
        };
        assert_eq!(ServerHello::decode(&hello.encode()).unwrap(), hello);
    }
}
