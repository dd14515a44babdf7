//! Response decoding (what the client reads from every record): never panics; a decoded
//! response re-encodes to exactly the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securebank::message::Response;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = Response::decode(data) {
        assert_eq!(response.encode(), data, "re-encoding of {response:?} differs");
    }
});
