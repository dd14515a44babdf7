//! Passwords: validation, PBKDF2-HMAC-SHA256 hashing and constant-time checking. (How
//! many checks run at once, and in which order, is [`super::login_queue`]'s concern.)
//!
//! Invariants: a password is never stored or logged, only its salted hash; an unknown user
//! costs the same PBKDF2 work as a wrong password (checked against a dummy record).

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::events::PasswordRecord;
use crate::limits::{
    MAX_PASSWORD_BYTES, MAX_PBKDF2_ITERATIONS, MAX_USERNAME_BYTES, MIN_PASSWORD_BYTES, MIN_PBKDF2_ITERATIONS,
    MIN_USERNAME_BYTES, PASSWORD_SALT_BYTES,
};

/// Why a name or password was refused when creating an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// The name has the wrong length or characters.
    BadUsername,
    /// The password is shorter than [`MIN_PASSWORD_BYTES`].
    PasswordTooShort,
    /// The password is longer than [`MAX_PASSWORD_BYTES`].
    PasswordTooLong,
}

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadUsername => write!(
                f,
                "a username is {MIN_USERNAME_BYTES} to {MAX_USERNAME_BYTES} characters: lowercase letters, digits, '_' or '-', starting with a letter"
            ),
            Self::PasswordTooShort => write!(f, "a password needs at least {MIN_PASSWORD_BYTES} characters"),
            Self::PasswordTooLong => write!(f, "a password has at most {MAX_PASSWORD_BYTES} bytes"),
        }
    }
}

impl std::error::Error for CredentialError {}

/// Checks an account name: 3–32 bytes of `a-z`, `0-9`, `_`, `-`, starting with a letter.
pub fn validate_username(name: &str) -> Result<(), CredentialError> {
    let bytes = name.as_bytes();
    let allowed = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'_' || *byte == b'-';
    if (MIN_USERNAME_BYTES..=MAX_USERNAME_BYTES).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(allowed)
    {
        Ok(())
    } else {
        Err(CredentialError::BadUsername)
    }
}

/// Checks a new password's length.
pub fn validate_new_password(password: &str) -> Result<(), CredentialError> {
    if password.len() < MIN_PASSWORD_BYTES {
        Err(CredentialError::PasswordTooShort)
    } else if password.len() > MAX_PASSWORD_BYTES {
        Err(CredentialError::PasswordTooLong)
    } else {
        Ok(())
    }
}

fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, out.as_mut());
    out
}

/// Hashes a password with a fresh random salt.
pub fn hash_password(password: &str, iterations: u32) -> PasswordRecord {
    assert!(
        (MIN_PBKDF2_ITERATIONS..=MAX_PBKDF2_ITERATIONS).contains(&iterations),
        "configured iteration count in range"
    );
    let salt: [u8; PASSWORD_SALT_BYTES] = crate::rng::bytes();
    let hash = *derive(password.as_bytes(), &salt, iterations);
    PasswordRecord { salt, iterations, hash }
}

/// Whether `password` matches `record`, compared in constant time.
pub fn verify_password(record: &PasswordRecord, password: &str) -> bool {
    let iterations = record.iterations.clamp(MIN_PBKDF2_ITERATIONS, MAX_PBKDF2_ITERATIONS);
    let candidate = derive(password.as_bytes(), &record.salt, iterations);
    bool::from(candidate.as_ref().ct_eq(&record.hash)) && iterations == record.iterations
}

/// A record no password matches, checked for unknown users so they cost the same work.
pub fn dummy_record(iterations: u32) -> PasswordRecord {
    PasswordRecord {
        salt: crate::rng::bytes(),
        iterations,
        hash: crate::rng::bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_password_verifies_and_wrong_one_does_not() {
        let record = hash_password("correct horse", 1_000);
        assert!(verify_password(&record, "correct horse"));
        assert!(!verify_password(&record, "correct hors"));
        assert!(!verify_password(&dummy_record(1_000), "correct horse"));
    }

    #[test]
    fn a_stored_iteration_count_out_of_range_never_verifies() {
        let mut record = hash_password("correct horse", 1_000);
        record.iterations = 500;
        record.hash = *derive(b"correct horse", &record.salt, 500);
        assert!(
            !verify_password(&record, "correct horse"),
            "a record claiming too few iterations verified"
        );
    }

    #[test]
    fn same_password_gets_different_salts() {
        assert_ne!(
            hash_password("pw123456", 1_000).hash,
            hash_password("pw123456", 1_000).hash
        );
    }

    #[test]
    fn validates_usernames_and_passwords() {
        assert!(validate_username("user123").is_ok());
        assert!(validate_username("alice").is_ok());
        for bad in ["al", "Alice", "1abc", "a b c", "ali\u{e9}", "", &"a".repeat(33)] {
            assert!(validate_username(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(validate_new_password("short"), Err(CredentialError::PasswordTooShort));
        assert!(validate_new_password("long enough").is_ok());
        assert_eq!(
            validate_new_password(&"x".repeat(129)),
            Err(CredentialError::PasswordTooLong)
        );
    }

    #[test]
    fn passwords_of_exactly_the_shortest_and_longest_length_are_accepted() {
        let shortest = "x".repeat(MIN_PASSWORD_BYTES);
        let longest = "x".repeat(MAX_PASSWORD_BYTES);
        assert_eq!(validate_new_password(&shortest), Ok(()));
        assert_eq!(validate_new_password(&longest), Ok(()));
        assert_eq!(
            validate_new_password(&shortest[1..]),
            Err(CredentialError::PasswordTooShort)
        );
        assert_eq!(
            validate_new_password(&format!("{longest}x")),
            Err(CredentialError::PasswordTooLong)
        );
    }
}
