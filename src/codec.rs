//! Big-endian integers and length-prefixed strings, the building blocks of every message.
//!
//! Invariants: a [`Reader`] never reads past its slice and never allocates more than a
//! field's declared limit; every failure is a [`DecodeError`], never a panic. A string is a
//! `u16` big-endian byte length followed by that many bytes of UTF-8.

use crate::error::DecodeError;

/// Appends fields to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// A writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
        }
    }

    /// Appends one byte.
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.bytes.push(value);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Appends a big-endian `u128`.
    pub fn u128(&mut self, value: u128) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Appends raw bytes with no length prefix (fixed-size fields).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// Appends a `u16` length then the bytes. Asserts the length fits: callers only pass
    /// values they built under a limit far below 65,535.
    pub fn bytes16(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u16::try_from(bytes.len()).expect("field under its u16 limit");
        self.u16(len).raw(bytes)
    }

    /// Appends a `u16` length then the UTF-8 of `text`.
    pub fn str16(&mut self, text: &str) -> &mut Self {
        self.bytes16(text.as_bytes())
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads fields from a byte slice, front to back.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Takes exactly `len` bytes, or fails naming `field`.
    pub fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < len {
            return Err(DecodeError::Truncated(field));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian `u128`.
    pub fn u128(&mut self, field: &'static str) -> Result<u128, DecodeError> {
        Ok(u128::from_be_bytes(self.array(field)?))
    }

    /// Bytes not read yet: a decoder bounds a declared count by this before allocating.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Reads a `u16`-length-prefixed byte field of at most `max_len` bytes.
    pub fn bytes16(&mut self, max_len: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16(field)?);
        if len > max_len {
            return Err(DecodeError::TooLong(field));
        }
        self.take(len, field)
    }

    /// Reads a `u16`-length-prefixed UTF-8 string of at most `max_len` bytes.
    pub fn str16(&mut self, max_len: usize, field: &'static str) -> Result<&'a str, DecodeError> {
        let bytes = self.bytes16(max_len, field)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::BadUtf8(field))
    }

    /// Fails unless every byte has been read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field_kind() {
        let mut w = Writer::default();
        w.u8(7)
            .u16(513)
            .u32(70_000)
            .u64(u64::MAX)
            .u128(u128::MAX - 1)
            .str16("héllo")
            .raw(&[1, 2]);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u16("b").unwrap(), 513);
        assert_eq!(r.u32("c").unwrap(), 70_000);
        assert_eq!(r.u64("d").unwrap(), u64::MAX);
        assert_eq!(r.u128("d2").unwrap(), u128::MAX - 1);
        assert_eq!(r.remaining(), 2 + "héllo".len() + 2);
        assert_eq!(r.str16(16, "e").unwrap(), "héllo");
        assert_eq!(r.array::<2>("f").unwrap(), [1, 2]);
        r.finish().unwrap();
    }

    #[test]
    fn refuses_string_longer_than_its_limit() {
        let mut w = Writer::default();
        w.str16("abcdef");
        let bytes = w.into_bytes();
        assert_eq!(Reader::new(&bytes).str16(5, "name"), Err(DecodeError::TooLong("name")));
    }

    #[test]
    fn refuses_truncated_input_and_trailing_bytes() {
        assert_eq!(
            Reader::new(&[0, 5, b'a']).str16(10, "s"),
            Err(DecodeError::Truncated("s"))
        );
        assert_eq!(Reader::new(&[1]).u16("n"), Err(DecodeError::Truncated("n")));
        assert_eq!(Reader::new(&[1]).finish(), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn refuses_invalid_utf8() {
        assert_eq!(
            Reader::new(&[0, 1, 0xff]).str16(10, "s"),
            Err(DecodeError::BadUtf8("s"))
        );
    }
}
