//! The record layer: opening arbitrary bytes never panics and never succeeds unless the
//! bytes are exactly what sealing that plaintext produces (a success on anything else is a
//! forgery); sealing any plaintext opens back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securebank::channel::keys::DirectionKeys;
use securebank::channel::record::{MAX_PLAINTEXT_BYTES, RecordCipher};
use securebank::frame::{self, HEADER_BYTES};
use zeroize::Zeroizing;

fn keys() -> DirectionKeys {
    DirectionKeys {
        key: Zeroizing::new([7; 32]),
        iv: Zeroizing::new([9; 12]),
    }
}

fn check_open(header: &[u8; HEADER_BYTES], payload: &[u8]) {
    let mut opened = payload.to_vec();
    if RecordCipher::new(&keys()).open(header, &mut opened).is_ok() {
        // Only a genuine record opens: sealing the plaintext must give back these bytes.
        let sealed = RecordCipher::new(&keys()).seal(&opened).expect("seal");
        assert_eq!(&sealed[..HEADER_BYTES], header, "forged header accepted");
        assert_eq!(&sealed[HEADER_BYTES..], payload, "forged record accepted");
    }
}

fuzz_target!(|data: &[u8]| {
    // As a frame read from the wire (the header is consistent with the body).
    if let Ok(frame) = frame::read_frame(&mut &data[..]) {
        check_open(&frame.header(), &frame.payload);
    }
    // As arbitrary header bytes and body.
    if data.len() >= HEADER_BYTES {
        let header: [u8; HEADER_BYTES] = data[..HEADER_BYTES].try_into().expect("5 bytes");
        check_open(&header, &data[HEADER_BYTES..]);
    }
    // Round trip of the input as a plaintext.
    let plaintext = &data[..data.len().min(MAX_PLAINTEXT_BYTES)];
    let sealed = RecordCipher::new(&keys()).seal(plaintext).expect("seal");
    let mut frame = frame::read_frame(&mut &sealed[..]).expect("a sealed record is a frame");
    RecordCipher::new(&keys())
        .open(&frame.header(), &mut frame.payload)
        .expect("a sealed record opens");
    assert_eq!(frame.payload, plaintext);
});
