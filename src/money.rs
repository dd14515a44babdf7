//! Money as exact integers: `u64` cents, parsed from and printed as decimal text.
//!
//! Invariant: no floating point anywhere. `"12.34"` becomes 1234 by digit arithmetic with
//! overflow checks; anything that is not a plain positive amount with at most two decimals
//! and at most [`MAX_TRANSACTION_CENTS`] is refused with a reason.

use std::fmt;

use crate::limits::MAX_TRANSACTION_CENTS;

/// Why a typed amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    /// Nothing was typed.
    Empty,
    /// A minus sign: amounts are always positive; the operation says the direction.
    Negative,
    /// Not digits with an optional decimal point.
    NotANumber,
    /// More than two digits after the decimal point.
    TooManyDecimals,
    /// The amount is zero.
    Zero,
    /// The amount is over [`MAX_TRANSACTION_CENTS`].
    OverLimit,
}

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = match self {
            Self::Empty => "no amount was entered",
            Self::Negative => "amounts cannot be negative",
            Self::NotANumber => "that is not a number",
            Self::TooManyDecimals => "at most two digits are allowed after the decimal point",
            Self::Zero => "the amount must be more than zero",
            Self::OverLimit => "the amount is over the per-transaction limit",
        };
        write!(
            f,
            "{reason}. Enter an amount like 12.34 or 5: more than 0, at most {}, with at most two decimals.",
            format_cents(MAX_TRANSACTION_CENTS)
        )
    }
}

impl std::error::Error for AmountError {}

fn digits_value(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |acc, byte| {
        acc.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
    })
}

/// Parses an amount such as `12.34`, `12` or `0.5` into cents, up to the per-transaction
/// limit.
pub fn parse_amount(text: &str) -> Result<u64, AmountError> {
    parse_amount_up_to(text, MAX_TRANSACTION_CENTS)
}

/// Parses an amount into cents, up to `max_cents` (opening balances use the balance limit).
pub fn parse_amount_up_to(text: &str, max_cents: u64) -> Result<u64, AmountError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    if text.starts_with('-') {
        return Err(AmountError::Negative);
    }
    let (units, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    // `.5` is half a unit, as people write it; `.` alone is not a number.
    if (units.is_empty() && fraction.is_empty())
        || !all_digits(units)
        || !all_digits(fraction)
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(AmountError::NotANumber);
    }
    if fraction.len() > 2 {
        return Err(AmountError::TooManyDecimals);
    }
    let fraction_cents = digits_value(fraction).unwrap_or(0) * if fraction.len() == 1 { 10 } else { 1 };
    let cents = (if units.is_empty() { Some(0) } else { digits_value(units) })
        .and_then(|value| value.checked_mul(100))
        .and_then(|value| value.checked_add(fraction_cents))
        .ok_or(AmountError::OverLimit)?;
    if cents == 0 {
        return Err(AmountError::Zero);
    }
    if cents > max_cents {
        return Err(AmountError::OverLimit);
    }
    Ok(cents)
}

/// Formats cents as `units.cc`, e.g. 1234 → `12.34`.
pub fn format_cents(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_amounts_without_floats() {
        assert_eq!(parse_amount("12.34"), Ok(1234));
        assert_eq!(parse_amount("12"), Ok(1200));
        assert_eq!(parse_amount("0.5"), Ok(50));
        assert_eq!(parse_amount(".5"), Ok(50));
        assert_eq!(parse_amount(".05"), Ok(5));
        assert_eq!(parse_amount("0.01"), Ok(1));
        assert_eq!(parse_amount(" 7.10 "), Ok(710));
        assert_eq!(parse_amount("1000000.00"), Ok(MAX_TRANSACTION_CENTS));
    }

    #[test]
    fn refuses_bad_amounts_with_a_reason() {
        assert_eq!(parse_amount("-5"), Err(AmountError::Negative));
        assert_eq!(parse_amount("0"), Err(AmountError::Zero));
        assert_eq!(parse_amount("0.00"), Err(AmountError::Zero));
        assert_eq!(parse_amount("1.234"), Err(AmountError::TooManyDecimals));
        assert_eq!(parse_amount("abc"), Err(AmountError::NotANumber));
        assert_eq!(parse_amount(""), Err(AmountError::Empty));
        assert_eq!(parse_amount("1e5"), Err(AmountError::NotANumber));
        assert_eq!(parse_amount("."), Err(AmountError::NotANumber));
        assert_eq!(parse_amount("5."), Err(AmountError::NotANumber));
        assert_eq!(parse_amount("+5"), Err(AmountError::NotANumber));
        assert_eq!(parse_amount("1000000.01"), Err(AmountError::OverLimit));
        assert_eq!(parse_amount("99999999999999999999999"), Err(AmountError::OverLimit));
        assert!(AmountError::Zero.to_string().contains("1000000.00"));
    }

    #[test]
    fn formats_cents() {
        assert_eq!(format_cents(1234), "12.34");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(format_cents(100), "1.00");
    }
}
