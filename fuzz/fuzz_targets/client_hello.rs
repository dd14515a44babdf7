//! ClientHello payloads: decode never panics; a decoded hello re-encodes to the same bytes;
//! `Ok(None)` (unsupported) only for a well-formed 70-byte hello of another magic or version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securebank::channel::hello::{ClientHello, MAGIC, VERSION};

fuzz_target!(|data: &[u8]| {
    match ClientHello::decode(data) {
        Ok(Some(hello)) => assert_eq!(hello.encode(), data),
        Ok(None) => {
            assert_eq!(data.len(), 70);
            assert!(data[..4] != MAGIC || data[4..6] != VERSION.to_be_bytes());
        }
        Err(_) => assert_ne!(data.len(), 70, "a 70-byte hello is never malformed"),
    }
});
