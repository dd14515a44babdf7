//! Journal event decoding: never panics; a decoded event re-encodes to the same bytes, and
//! applying it to an empty ledger (as replay would) never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securebank::server::events::Event;
use securebank::server::ledger::Ledger;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::decode(data) {
        assert_eq!(event.encode(), data, "re-encoding of {event:?} differs");
        let mut ledger = Ledger::default();
        if ledger.apply(&event, 1).is_ok() {
            // An event that applies is applied exactly once: the same again must be refused
            // or be harmless, never panic.
            let _ = ledger.apply(&event, 2);
        }
    }
});
