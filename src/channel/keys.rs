//! The key schedule: transcript hashes, the message the server signs, HKDF-SHA256 keys, and
//! the client's Finished MAC.
//!
//! ```text
//! th_sign = SHA-256(ClientHello frame || ServerHello signed part)
//! signed  = 0x20 × 64 || SIGNATURE_CONTEXT || 0x00 || th_sign      (as TLS 1.3 CertificateVerify)
//! th      = SHA-256(ClientHello frame || ServerHello frame)
//! prk     = HKDF-Extract(salt = th, ikm = X25519 shared secret)
//! key/iv  = HKDF-Expand(prk, label, 32 or 12) for each label below
//! Finished = HMAC-SHA256(finished_key, th)
//! ```
//! "Frame" means the exact bytes on the wire: length prefix, type byte and payload.
//! Invariant: every secret here is wiped on drop ([`Zeroizing`]).

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Context string inside the signed message; binds the signature to this protocol and role.
pub const SIGNATURE_CONTEXT: &[u8] = b"securebank v1 server handshake signature";
/// HKDF label for the client-to-server record key.
pub const LABEL_C2S_KEY: &[u8] = b"securebank v1 c2s key";
/// HKDF label for the client-to-server nonce base.
pub const LABEL_C2S_IV: &[u8] = b"securebank v1 c2s iv";
/// HKDF label for the server-to-client record key.
pub const LABEL_S2C_KEY: &[u8] = b"securebank v1 s2c key";
/// HKDF label for the server-to-client nonce base.
pub const LABEL_S2C_IV: &[u8] = b"securebank v1 s2c iv";
/// HKDF label for the key of the client's Finished MAC.
pub const LABEL_FINISHED: &[u8] = b"securebank v1 finished";

/// Length of a ChaCha20-Poly1305 key, in bytes.
pub const KEY_BYTES: usize = 32;
/// Length of a ChaCha20-Poly1305 nonce (and of a direction's IV), in bytes.
pub const IV_BYTES: usize = 12;

/// SHA-256 of the concatenated parts.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The exact message the server signs with RSA-PSS-SHA256.
pub fn signed_message(client_hello_frame: &[u8], server_signed_part: &[u8]) -> Vec<u8> {
    let th_sign = sha256(&[client_hello_frame, server_signed_part]);
    let mut message = vec![0x20u8; 64];
    message.extend_from_slice(SIGNATURE_CONTEXT);
    message.push(0x00);
    message.extend_from_slice(&th_sign);
    message
}

/// Key and nonce base for one direction of the channel.
pub struct DirectionKeys {
    /// ChaCha20-Poly1305 key.
    pub key: Zeroizing<[u8; KEY_BYTES]>,
    /// Nonce base: each record's nonce is this XOR its sequence number.
    pub iv: Zeroizing<[u8; IV_BYTES]>,
}

/// Everything the handshake derives.
pub struct SessionKeys {
    /// Keys for records the client sends.
    pub client_to_server: DirectionKeys,
    /// Keys for records the server sends.
    pub server_to_client: DirectionKeys,
    /// Key of the Finished MAC.
    pub finished_key: Zeroizing<[u8; 32]>,
    /// The transcript hash `th`; also the session's identifier (it is unique per handshake).
    pub transcript_hash: [u8; 32],
}

fn expand<const N: usize>(prk: &Hkdf<Sha256>, label: &[u8]) -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    prk.expand(label, out.as_mut())
        .expect("N is far below HKDF's 255 × 32 byte limit");
    out
}

/// Derives the session keys from the X25519 shared secret and the transcript hash.
pub fn derive(shared_secret: &[u8; 32], transcript_hash: [u8; 32]) -> SessionKeys {
    let prk = Hkdf::<Sha256>::new(Some(&transcript_hash), shared_secret);
    SessionKeys {
        client_to_server: DirectionKeys {
            key: expand(&prk, LABEL_C2S_KEY),
            iv: expand(&prk, LABEL_C2S_IV),
        },
        server_to_client: DirectionKeys {
            key: expand(&prk, LABEL_S2C_KEY),
            iv: expand(&prk, LABEL_S2C_IV),
        },
        finished_key: expand(&prk, LABEL_FINISHED),
        transcript_hash,
    }
}

fn finished_hmac(finished_key: &[u8; 32], transcript_hash: &[u8; 32]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(finished_key).expect("HMAC takes any key length");
    mac.update(transcript_hash);
    mac
}

/// The client's Finished MAC.
pub fn finished_mac(finished_key: &[u8; 32], transcript_hash: &[u8; 32]) -> [u8; 32] {
    finished_hmac(finished_key, transcript_hash)
        .finalize()
        .into_bytes()
        .into()
}

/// Checks a Finished MAC in constant time.
pub fn verify_finished(finished_key: &[u8; 32], transcript_hash: &[u8; 32], presented: &[u8]) -> bool {
    finished_hmac(finished_key, transcript_hash)
        .verify_slice(presented)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_get_different_keys_and_ivs() {
        let keys = derive(&[7; 32], [9; 32]);
        assert_ne!(*keys.client_to_server.key, *keys.server_to_client.key);
        assert_ne!(*keys.client_to_server.iv, *keys.server_to_client.iv);
        assert_ne!(*keys.finished_key, *keys.client_to_server.key);
    }

    #[test]
    fn keys_depend_on_the_transcript() {
        let a = derive(&[7; 32], [9; 32]);
        let b = derive(&[7; 32], [8; 32]);
        assert_ne!(*a.client_to_server.key, *b.client_to_server.key);
    }

    #[test]
    fn finished_mac_verifies_and_rejects_a_flipped_bit() {
        let mac = finished_mac(&[1; 32], &[2; 32]);
        assert!(verify_finished(&[1; 32], &[2; 32], &mac));
        let mut bad = mac;
        bad[0] ^= 1;
        assert!(!verify_finished(&[1; 32], &[2; 32], &bad));
        assert!(!verify_finished(&[1; 32], &[2; 32], &mac[..31]));
    }

    #[test]
    fn signed_message_has_tls13_shape() {
        let message = signed_message(b"ch", b"sh");
        assert_eq!(&message[..64], &[0x20; 64]);
        assert_eq!(&message[64..64 + SIGNATURE_CONTEXT.len()], SIGNATURE_CONTEXT);
        assert_eq!(message[64 + SIGNATURE_CONTEXT.len()], 0);
        assert_eq!(message.len(), 64 + SIGNATURE_CONTEXT.len() + 1 + 32);
    }
}
