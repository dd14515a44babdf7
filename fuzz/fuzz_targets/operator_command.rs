//! Admin-socket decoding (what the server reads from every local OperatorRequest frame, and
//! what the command line reads back): never panics; a decoded command or reply re-encodes to
//! exactly the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securebank::server::operator::{Command, Reply};

fuzz_target!(|data: &[u8]| {
    if let Ok(command) = Command::decode(data) {
        assert_eq!(&command.encode()[..], data, "re-encoding of {command:?} differs");
        let _ = format!("{command:?}");
    }
    if let Ok(reply) = Reply::decode(data) {
        assert_eq!(reply.encode(), data, "re-encoding of {reply:?} differs");
    }
});
