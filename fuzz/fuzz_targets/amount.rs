//! Typed amounts: parsing any text never panics; an accepted amount is within the limits
//! and formats back to text that parses to the same number of cents.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securebank::limits::MAX_TRANSACTION_CENTS;
use securebank::money::{format_cents, parse_amount};

fuzz_target!(|text: &str| {
    if let Ok(cents) = parse_amount(text) {
        assert!((1..=MAX_TRANSACTION_CENTS).contains(&cents));
        assert_eq!(parse_amount(&format_cents(cents)), Ok(cents));
    }
});
