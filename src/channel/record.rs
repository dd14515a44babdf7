//! Records: ChaCha20-Poly1305 with an implicit, per-direction 64-bit sequence number.
//!
//! ```text
//! frame   = length u32 | 0x17 | ciphertext | tag[16]
//! nonce   = iv XOR (0x00000000 || sequence as u64 big-endian)
//! aad     = the 5 header bytes (length and type)
//! ```
//! Invariants: the sequence number is never sent; each side counts records it seals and
//! opens, from 0, so a replayed, reordered, dropped or reflected record (the other
//! direction has another key) fails authentication. A failure is final: the caller closes
//! the connection. A sequence number is never reused: at `u64::MAX` the channel refuses.

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};

use super::keys::{DirectionKeys, IV_BYTES};
use crate::error::ChannelError;
use crate::frame::{self, FrameKind, HEADER_BYTES};
use crate::limits::MAX_FRAME_BODY_BYTES;

/// Length of the Poly1305 tag, in bytes.
pub const TAG_BYTES: usize = 16;

/// Largest plaintext that fits one record.
pub const MAX_PLAINTEXT_BYTES: usize = MAX_FRAME_BODY_BYTES - 1 - TAG_BYTES;

/// One direction of the record layer: a key, a nonce base and the next sequence number.
pub struct RecordCipher {
    aead: ChaCha20Poly1305,
    iv: [u8; IV_BYTES],
    next_sequence: u64,
}

impl std::fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCipher")
            .field("next_sequence", &self.next_sequence)
            .finish_non_exhaustive()
    }
}

impl Drop for RecordCipher {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.iv);
    }
}

impl RecordCipher {
    /// A cipher for one direction, starting at sequence number 0.
    pub fn new(keys: &DirectionKeys) -> Self {
        let aead = ChaCha20Poly1305::new_from_slice(keys.key.as_ref()).expect("key is 32 bytes");
        Self {
            aead,
            iv: *keys.iv,
            next_sequence: 0,
        }
    }

    /// The sequence number the next record will use.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    fn take_nonce(&mut self) -> Result<Nonce, ChannelError> {
        let sequence = self.next_sequence;
        self.next_sequence = sequence.checked_add(1).ok_or(ChannelError::SequenceExhausted)?;
        let mut nonce = self.iv;
        for (byte, seq_byte) in nonce[IV_BYTES - 8..].iter_mut().zip(sequence.to_be_bytes()) {
            *byte ^= seq_byte;
        }
        Ok(Nonce::from(nonce))
    }

    /// Encrypts `plaintext` into a whole frame (header, ciphertext, tag).
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, ChannelError> {
        assert!(
            plaintext.len() <= MAX_PLAINTEXT_BYTES,
            "caller keeps messages under the record limit"
        );
        let nonce = self.take_nonce()?;
        let header = frame::header_for(FrameKind::Record as u8, plaintext.len() + TAG_BYTES);
        let mut out = Vec::with_capacity(HEADER_BYTES + plaintext.len() + TAG_BYTES);
        out.extend_from_slice(&header);
        out.extend_from_slice(plaintext);
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce, &header, (&mut out[HEADER_BYTES..]).into())
            .map_err(|_| ChannelError::RecordRejected)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a record frame's payload in place; `header` is the frame's 5 header bytes.
    /// On success the payload holds the plaintext.
    pub fn open(&mut self, header: &[u8; HEADER_BYTES], payload: &mut Vec<u8>) -> Result<(), ChannelError> {
        if payload.len() < TAG_BYTES {
            return Err(ChannelError::RecordRejected);
        }
        let nonce = self.take_nonce()?;
        let text_len = payload.len() - TAG_BYTES;
        let (text, tag) = payload.split_at_mut(text_len);
        let tag = chacha20poly1305::Tag::try_from(&*tag).map_err(|_| ChannelError::RecordRejected)?;
        self.aead
            .decrypt_inout_detached(&nonce, header, text.into(), &tag)
            .map_err(|_| ChannelError::RecordRejected)?;
        payload.truncate(text_len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::read_frame;
    use zeroize::Zeroizing;

    fn pair() -> (RecordCipher, RecordCipher) {
        let keys = DirectionKeys {
            key: Zeroizing::new([7; 32]),
            iv: Zeroizing::new([9; 12]),
        };
        (RecordCipher::new(&keys), RecordCipher::new(&keys))
    }

    fn open_frame(cipher: &mut RecordCipher, bytes: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let mut frame = read_frame(&mut &bytes[..])?;
        cipher.open(&frame.header(), &mut frame.payload)?;
        Ok(frame.payload)
    }

    #[test]
    fn seals_and_opens_in_order() {
        let (mut tx, mut rx) = pair();
        let first = tx.seal(b"one").unwrap();
        let second = tx.seal(b"two").unwrap();
        assert_eq!(open_frame(&mut rx, &first).unwrap(), b"one");
        assert_eq!(open_frame(&mut rx, &second).unwrap(), b"two");
    }

    #[test]
    fn rejects_replayed_record() {
        let (mut tx, mut rx) = pair();
        let first = tx.seal(b"one").unwrap();
        open_frame(&mut rx, &first).unwrap();
        assert!(matches!(open_frame(&mut rx, &first), Err(ChannelError::RecordRejected)));
    }

    #[test]
    fn rejects_reordered_record() {
        let (mut tx, mut rx) = pair();
        let _first = tx.seal(b"one").unwrap();
        let second = tx.seal(b"two").unwrap();
        assert!(matches!(
            open_frame(&mut rx, &second),
            Err(ChannelError::RecordRejected)
        ));
    }

    #[test]
    fn rejects_any_flipped_bit_including_the_header() {
        let (mut tx, _) = pair();
        let sealed = tx.seal(b"hello").unwrap();
        for index in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[index] ^= 0x01;
            let (_, mut rx) = pair();
            assert!(
                open_frame(&mut rx, &flipped).is_err(),
                "bit flip at byte {index} accepted"
            );
        }
    }
}
