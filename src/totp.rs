//! Authenticator-app codes: HOTP (RFC 4226) and TOTP (RFC 6238) with HMAC-SHA1, 6 digits and
//! 30-second steps, the secret they share with the phone, and the ways to hand that secret
//! over (an `otpauth://` URI, the Base32 text in groups of four, a QR code for the terminal).
//!
//! Invariants: a secret comes only from the OS RNG ([`TotpSecret::generate`]), is 160 bits,
//! is wiped from memory when dropped and never appears in `Debug` output; a code is compared
//! in constant time ([`verify`] computes every candidate of the window and folds the
//! comparisons with `subtle`, so neither the match nor its position shows in the time taken);
//! a step at or before the last accepted one is never accepted again, so a code works once.
//!
//! SHA-1 is here only because authenticator apps expect it: HOTP needs HMAC to be a
//! pseudo-random function, which HMAC-SHA1 still is (SHA-1's collisions do not touch that);
//! SECURITY.md says more.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base32ct::{Base32Upper, Base32UpperUnpadded, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use qrcodegen::{QrCode, QrCodeEcc};
use sha1::Sha1;
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::limits::{OTP_DIGITS, TOTP_SECRET_BYTES, TOTP_SKEW_STEPS, TOTP_STEP_SECS};

/// The issuer shown by authenticator apps, in the URI's label and `issuer` parameter.
pub const ISSUER: &str = "securebank";

/// Modules of light border around a QR code: the quiet zone ISO/IEC 18004 asks for.
const QR_QUIET_ZONE: i32 = 4;

/// A TOTP secret shared with one customer's authenticator app.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Zeroizing<[u8; TOTP_SECRET_BYTES]>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(hidden)")
    }
}

impl TotpSecret {
    /// A fresh random secret from the OS RNG.
    pub fn generate() -> Self {
        Self(Zeroizing::new(crate::rng::bytes()))
    }

    /// The secret with these bytes (as stored in the journal).
    pub fn from_bytes(bytes: [u8; TOTP_SECRET_BYTES]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret typed or scanned as Base32 (RFC 4648, either case, spaces and padding
    /// ignored); `None` unless it decodes to exactly [`TOTP_SECRET_BYTES`] bytes.
    pub fn from_base32(text: &str) -> Option<Self> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '=')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let mut bytes = Zeroizing::new([0u8; TOTP_SECRET_BYTES + 5]);
        let decoded = Base32UpperUnpadded::decode(cleaned.as_bytes(), bytes.as_mut()).ok()?;
        let secret: [u8; TOTP_SECRET_BYTES] = decoded.try_into().ok()?;
        Some(Self::from_bytes(secret))
    }

    /// The raw bytes (for the journal record).
    pub fn as_bytes(&self) -> &[u8; TOTP_SECRET_BYTES] {
        &self.0
    }

    /// The secret in Base32 without padding, as authenticator apps take it (32 characters).
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(Base32UpperUnpadded::encode_string(self.as_bytes()))
    }

    /// The Base32 secret in groups of four characters, for typing it into an app by hand.
    pub fn grouped(&self) -> Zeroizing<String> {
        let base32 = self.to_base32();
        let groups: Vec<&str> = base32
            .as_bytes()
            .chunks(4)
            .map(|group| std::str::from_utf8(group).expect("Base32 is ASCII"))
            .collect();
        Zeroizing::new(groups.join(" "))
    }

    /// The `otpauth://` URI an authenticator app scans (Google Authenticator's Key Uri
    /// Format): `otpauth://totp/securebank:NAME?secret=…&issuer=securebank&algorithm=SHA1&digits=6&period=30`.
    pub fn uri(&self, account: &str) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "otpauth://totp/{ISSUER}:{}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits={OTP_DIGITS}&period={TOTP_STEP_SECS}",
            percent_encode(account),
            self.to_base32().as_str()
        ))
    }
}

/// Percent-encodes every byte outside RFC 3986's unreserved set (account names are
/// `[a-z0-9_-]` already, so this changes nothing for a valid name).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// Base32 of `bytes` with padding, as RFC 4648 §6 defines it (the secret itself is shown
/// without padding: it is 160 bits, a whole number of 40-bit groups).
pub fn base32_padded(bytes: &[u8]) -> String {
    Base32Upper::encode_string(bytes)
}

/// RFC 4226 §5.3 dynamic truncation: 31 bits of the HMAC value, from the offset its last
/// nibble names.
pub fn dynamic_truncate(hmac: &[u8; 20]) -> u32 {
    let offset = usize::from(hmac[19] & 0x0f);
    let word = [hmac[offset], hmac[offset + 1], hmac[offset + 2], hmac[offset + 3]];
    u32::from_be_bytes(word) & 0x7fff_ffff
}

/// `HMAC-SHA1(key, counter as 8 big-endian bytes)`.
pub fn hmac_sha1(key: &[u8], counter: u64) -> [u8; 20] {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(&counter.to_be_bytes());
    mac.finalize().into_bytes().into()
}

/// HOTP (RFC 4226): the code for `counter` as a number below 10^`digits` (6 to 8 digits).
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    assert!((6..=8).contains(&digits), "HOTP codes have 6 to 8 digits");
    dynamic_truncate(&hmac_sha1(key, counter)) % 10u32.pow(digits)
}

/// The TOTP time step (RFC 6238 `T`) that `unix_secs` falls in: `T0` = 0, 30-second steps.
pub fn step_at(unix_secs: u64) -> u64 {
    unix_secs / TOTP_STEP_SECS
}

/// The 6-digit code of `secret` for time step `step`, as text with leading zeros.
pub fn code_at_step(secret: &TotpSecret, step: u64) -> Zeroizing<String> {
    let value = hotp(secret.as_bytes(), step, OTP_DIGITS as u32);
    Zeroizing::new(format!("{value:0width$}", width = OTP_DIGITS))
}

/// Checks `code` against `secret` at `now_unix_secs`: the current step and
/// [`TOTP_SKEW_STEPS`] on each side, but only steps after `last_step` (the last step this
/// account logged in with, 0 if none), so a code is good once. Returns the step the code
/// belongs to (the latest, should two steps share a code), or `None`.
///
/// Every candidate's code is computed and compared in constant time, and the outcome is
/// folded without branching on it: the time taken says nothing about the code.
pub fn verify(secret: &TotpSecret, code: &str, now_unix_secs: u64, last_step: u64) -> Option<u64> {
    if code.len() != OTP_DIGITS || !code.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let current = step_at(now_unix_secs);
    let first = current.saturating_sub(TOTP_SKEW_STEPS).max(last_step.saturating_add(1));
    let mut found = subtle::Choice::from(0);
    let mut matched_step = 0u64;
    for step in first..=current.saturating_add(TOTP_SKEW_STEPS) {
        let equal = code_at_step(secret, step).as_bytes().ct_eq(code.as_bytes());
        matched_step = u64::conditional_select(&matched_step, &step, equal);
        found |= equal;
    }
    bool::from(found).then_some(matched_step)
}

/// An account's authenticator app: the shared secret and the last time step a code was
/// accepted for (at enrolment, the confirmation code's step), so no step is used twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// The secret shared with the app.
    pub secret: TotpSecret,
    /// The last step accepted: a code of this step or an earlier one is refused.
    pub last_step: u64,
}

/// The time TOTP codes are checked at: the system clock, or (for tests) a fixed time that
/// the test moves itself, so a code's step never changes under it.
#[derive(Debug, Clone, Default)]
pub struct TotpClock(Option<Arc<AtomicU64>>);

impl TotpClock {
    /// The system clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that stays at `unix_secs` until [`TotpClock::set`] moves it (tests only).
    pub fn fixed(unix_secs: u64) -> Self {
        Self(Some(Arc::new(AtomicU64::new(unix_secs))))
    }

    /// Moves a fixed clock (every clone sees it); does nothing to the system clock.
    pub fn set(&self, unix_secs: u64) {
        if let Some(time) = &self.0 {
            time.store(unix_secs, Ordering::SeqCst);
        }
    }

    /// The time now, in Unix seconds.
    pub fn now_unix_secs(&self) -> u64 {
        match &self.0 {
            Some(time) => time.load(Ordering::SeqCst),
            None => crate::server::bank::now_unix_secs(),
        }
    }
}

/// What `bank-server enrol-totp` shows the customer: the QR code, the secret to type by
/// hand (in groups of four) and the `otpauth://` URI. It holds the secret: it is wiped when
/// dropped, and shown once.
pub fn enrolment_sheet(account: &str, secret: &TotpSecret) -> Zeroizing<String> {
    let uri = secret.uri(account);
    Zeroizing::new(format!(
        "Authenticator app for {account} ({ISSUER}). Show this to the customer only: whoever \
         sees it can make the codes.\nScan the QR code with the app, or add the account by hand \
         with the secret (time-based, SHA-1, {OTP_DIGITS} digits, every {TOTP_STEP_SECS} s).\n\n{}\n\
         secret:  {}\nuri:     {}\n",
        qr_text(&uri),
        secret.grouped().as_str(),
        uri.as_str()
    ))
}

/// `text` (an `otpauth://` URI) as a QR code drawn with block characters, two rows of
/// modules per line, with the standard 4-module quiet zone.
///
/// Drawn for a terminal with light text on a dark background (the usual): a *light*
/// module is a filled block, a dark one is blank, so the code shows dark on light as
/// scanners expect. Error correction level M (15 %).
pub fn qr_text(text: &str) -> String {
    // An otpauth URI is under 200 bytes (names are at most 32); a QR code holds 2,331 bytes
    // at level M, so this never fails.
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).expect("a short URI fits a QR code");
    let light = |x: i32, y: i32| !qr.get_module(x, y);
    let first = -QR_QUIET_ZONE;
    let last = qr.size() + QR_QUIET_ZONE;
    let mut out = String::new();
    for y in (first..last).step_by(2) {
        for x in first..last {
            let top = light(x, y);
            // Past the last row (an odd count) the half below is the terminal's background.
            let bottom = y + 1 < last && light(x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The secret of RFC 4226 Appendix D and RFC 6238 Appendix B (SHA-1): ASCII
    /// "12345678901234567890".
    const RFC_KEY: &[u8; 20] = b"12345678901234567890";

    #[test]
    fn hotp_matches_rfc_4226_appendix_d() {
        // Count, truncated 31-bit value, 6-digit HOTP value.
        let rows: [(u64, u32, u32); 10] = [
            (0, 1_284_755_224, 755_224),
            (1, 1_094_287_082, 287_082),
            (2, 137_359_152, 359_152),
            (3, 1_726_969_429, 969_429),
            (4, 1_640_338_314, 338_314),
            (5, 868_254_676, 254_676),
            (6, 1_918_287_922, 287_922),
            (7, 82_162_583, 162_583),
            (8, 673_399_871, 399_871),
            (9, 645_520_489, 520_489),
        ];
        for (count, truncated, code) in rows {
            assert_eq!(dynamic_truncate(&hmac_sha1(RFC_KEY, count)), truncated, "count {count}");
            assert_eq!(hotp(RFC_KEY, count, 6), code, "count {count}");
        }
    }

    #[test]
    fn hotp_hmac_values_match_rfc_4226_appendix_d() {
        let first = hmac_sha1(RFC_KEY, 0);
        let hex: String = first.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(hex, "cc93cf18508d94934c64b65d8ba7667fb7cde4b0");
    }

    #[test]
    fn totp_matches_rfc_6238_appendix_b_sha1_rows() {
        // Time (Unix seconds), T in hex, 8-digit TOTP.
        let rows: [(u64, u64, u32); 6] = [
            (59, 0x1, 94_287_082),
            (1_111_111_109, 0x23523EC, 7_081_804),
            (1_111_111_111, 0x23523ED, 14_050_471),
            (1_234_567_890, 0x273EF07, 89_005_924),
            (2_000_000_000, 0x3F940AA, 69_279_037),
            (20_000_000_000, 0x27BC86AA, 65_353_130),
        ];
        for (time, step, code) in rows {
            assert_eq!(step_at(time), step, "time {time}");
            assert_eq!(hotp(RFC_KEY, step, 8), code, "time {time}");
        }
    }

    #[test]
    fn base32_matches_rfc_4648_section_10() {
        let vectors = [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base32_padded(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn a_secret_is_160_random_bits_shown_as_32_base32_characters_and_read_back() {
        let secret = TotpSecret::generate();
        assert_ne!(secret, TotpSecret::generate());
        let base32 = secret.to_base32();
        assert_eq!(base32.len(), 32);
        assert_eq!(TotpSecret::from_base32(&base32), Some(secret.clone()));
        assert_eq!(TotpSecret::from_base32(&secret.grouped().to_lowercase()), Some(secret));
        assert_eq!(TotpSecret::from_base32("MZXW6YTB"), None, "too short");
        assert_eq!(TotpSecret::from_base32(&"1".repeat(32)), None, "not Base32");
    }

    #[test]
    fn the_secret_is_grouped_in_fours_and_hidden_from_debug() {
        let secret = TotpSecret::from_bytes(*RFC_KEY);
        assert_eq!(secret.to_base32().as_str(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(secret.grouped().as_str(), "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ");
        assert_eq!(format!("{secret:?}"), "TotpSecret(hidden)");
    }

    #[test]
    fn the_uri_has_the_key_uri_format_authenticator_apps_scan() {
        let secret = TotpSecret::from_bytes(*RFC_KEY);
        assert_eq!(
            secret.uri("alice").as_str(),
            "otpauth://totp/securebank:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=securebank\
             &algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(percent_encode("a b:c"), "a%20b%3Ac");
    }

    #[test]
    fn the_current_step_and_one_either_side_are_accepted() {
        let secret = TotpSecret::from_bytes(*RFC_KEY);
        let now = 1_700_000_015;
        let step = step_at(now);
        for accepted in [step - 1, step, step + 1] {
            assert_eq!(
                verify(&secret, &code_at_step(&secret, accepted), now, 0),
                Some(accepted)
            );
        }
    }

    #[test]
    fn a_code_from_two_steps_away_is_refused() {
        let secret = TotpSecret::from_bytes(*RFC_KEY);
        let now = 1_700_000_015;
        let step = step_at(now);
        for refused in [step - 2, step + 2] {
            let code = code_at_step(&secret, refused);
            let window: Vec<_> = (step - 1..=step + 1).map(|s| code_at_step(&secret, s)).collect();
            assert!(!window.contains(&code), "the RFC key has distinct codes here");
            assert_eq!(verify(&secret, &code, now, 0), None);
        }
    }

    #[test]
    fn a_step_at_or_before_the_last_accepted_one_is_refused() {
        let secret = TotpSecret::from_bytes(*RFC_KEY);
        let now = 1_700_000_015;
        let step = step_at(now);
        let code = code_at_step(&secret, step);
        assert_eq!(verify(&secret, &code, now, step - 1), Some(step));
        assert_eq!(verify(&secret, &code, now, step), None, "the same code replayed");
        assert_eq!(verify(&secret, &code_at_step(&secret, step - 1), now, step), None);
        assert_eq!(
            verify(&secret, &code_at_step(&secret, step + 1), now, step),
            Some(step + 1),
            "the next step's code is still good"
        );
    }

    #[test]
    fn malformed_codes_and_other_secrets_are_refused() {
        let secret = TotpSecret::from_bytes(*RFC_KEY);
        let now = 1_700_000_015;
        let code = code_at_step(&secret, step_at(now));
        for bad in ["", "12345", "1234567", "12a456", " 12345", "１２３４５６"] {
            assert_eq!(verify(&secret, bad, now, 0), None, "{bad:?}");
        }
        let other = TotpSecret::from_bytes([7; 20]);
        let step = step_at(now);
        let others: Vec<_> = (step - 1..=step + 1).map(|s| code_at_step(&other, s)).collect();
        assert!(!others.contains(&code), "the two secrets have distinct codes here");
        assert_eq!(verify(&other, &code, now, 0), None);
    }

    #[test]
    fn the_enrolment_sheet_shows_the_qr_code_the_grouped_secret_and_the_uri() {
        let secret = TotpSecret::from_bytes(*RFC_KEY);
        let sheet = enrolment_sheet("alice", &secret);
        assert!(sheet.contains(&qr_text(&secret.uri("alice"))));
        assert!(sheet.contains("\nsecret:  GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ\n"));
        assert!(sheet.contains(&format!("\nuri:     {}\n", secret.uri("alice").as_str())));
    }

    #[test]
    fn the_qr_code_has_a_quiet_zone_and_draws_every_module() {
        let text = TotpSecret::from_bytes(*RFC_KEY).uri("alice");
        let drawn = qr_text(&text);
        let qr = QrCode::encode_text(&text, QrCodeEcc::Medium).unwrap();
        let width = qr.size() + 2 * QR_QUIET_ZONE;
        let lines: Vec<Vec<char>> = drawn.lines().map(|line| line.chars().collect()).collect();
        assert_eq!(lines.len() as i32, (width + 1) / 2);
        assert!(lines.iter().all(|line| line.len() as i32 == width));
        assert!(lines[0].iter().all(|c| *c == '█'), "the quiet zone is light");
        // An odd number of rows: the last line's lower half is the terminal's background.
        assert_eq!(width % 2, 1);
        assert!(
            lines[lines.len() - 1].iter().all(|c| *c == '▀'),
            "the last line draws one light half-row, not two"
        );
        // Read every module back from the half blocks.
        for y in 0..qr.size() {
            for x in 0..qr.size() {
                let (row, col) = ((y + QR_QUIET_ZONE) / 2, x + QR_QUIET_ZONE);
                let cell = lines[row as usize][col as usize];
                let top_half = (y + QR_QUIET_ZONE) % 2 == 0;
                let light = match cell {
                    '█' => true,
                    ' ' => false,
                    '▀' => top_half,
                    '▄' => !top_half,
                    other => panic!("unexpected {other:?}"),
                };
                assert_eq!(light, !qr.get_module(x, y), "module ({x}, {y})");
            }
        }
    }
}
