//! Request decoding (what the server reads from every record): never panics; a decoded
//! request re-encodes to exactly the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securebank::message::Request;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::decode(data) {
        assert_eq!(request.encode(), data, "re-encoding of {request:?} differs");
        let _ = format!("{request:?}");
    }
});
