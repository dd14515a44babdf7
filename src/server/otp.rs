//! One-time codes: 6 uniform digits from the OS RNG, kept only as a keyed tag, delivered on
//! the server console (standing in for an SMS) and optionally to an outbox file.
//!
//! `--otp-command` hands each code to a program as well (an SMS or e-mail gateway):
//! [`super::otp_command`].
//!
//! Invariants: the code itself is never stored — only `HMAC-SHA256(process_secret,
//! session_id | username | code)`, so it is bound to this connection's handshake and
//! useless on another; a code is single use (the pending state is consumed on success),
//! expires after its lifetime, and allows [`OTP_MAX_TRIES`] wrong tries.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::ServerConfig;
use crate::error::DeliveryError;
use crate::limits::{OTP_DIGITS, OTP_MAX_TRIES};

/// Largest multiple of 10^6 that fits in a `u32`: draws at or above it are rejected so
/// every code is equally likely (no modulo bias).
const UNBIASED_LIMIT: u32 = u32::MAX - (u32::MAX % 1_000_000);

// Checked when compiling: the limit is a multiple of 10^6 and wastes less than 10^6 draws.
const _: () = assert!(UNBIASED_LIMIT.is_multiple_of(1_000_000) && u32::MAX - UNBIASED_LIMIT < 1_000_000);

/// Draws a uniformly random 6-digit code (as text, leading zeros kept).
pub fn generate_code() -> Zeroizing<String> {
    loop {
        let draw = crate::rng::u32();
        if draw < UNBIASED_LIMIT {
            return Zeroizing::new(format!("{:0width$}", draw % 1_000_000, width = OTP_DIGITS));
        }
    }
}

/// The per-process secret that keys code tags (random at every start; never leaves memory).
pub struct OtpKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for OtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpKey(hidden)")
    }
}

impl Default for OtpKey {
    fn default() -> Self {
        Self::random()
    }
}

impl OtpKey {
    /// A fresh random key.
    pub fn random() -> Self {
        Self(Zeroizing::new(crate::rng::bytes()))
    }

    fn mac(&self, session_id: &[u8; 32], username: &str, code: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_ref()).expect("any key length");
        mac.update(session_id);
        mac.update(&(username.len() as u16).to_be_bytes());
        mac.update(username.as_bytes());
        mac.update(code.as_bytes());
        mac
    }

    /// The tag stored in place of a code.
    pub fn tag(&self, session_id: &[u8; 32], username: &str, code: &str) -> [u8; 32] {
        self.mac(session_id, username, code).finalize().into_bytes().into()
    }

    /// Whether `code` has `tag`, compared in constant time.
    pub fn matches(&self, session_id: &[u8; 32], username: &str, code: &str, tag: &[u8; 32]) -> bool {
        self.mac(session_id, username, code).verify_slice(tag).is_ok()
    }
}

/// A code waiting to be entered on one connection.
#[derive(Debug)]
pub struct PendingOtp {
    /// The account whose password was verified.
    pub username: String,
    /// Tag of the code sent to the device (never the code); `None` when the account's
    /// authenticator app gives the code (checked by the bank against its secret).
    pub tag: Option<[u8; 32]>,
    /// When the code was issued.
    pub issued_at: Instant,
    /// Wrong tries left.
    pub tries_left: u32,
}

impl PendingOtp {
    /// A pending code for `username` with its tag, issued now.
    pub fn new(username: String, tag: [u8; 32]) -> Self {
        Self {
            username,
            tag: Some(tag),
            issued_at: Instant::now(),
            tries_left: OTP_MAX_TRIES,
        }
    }

    /// A login of `username` waiting, from now, for a code of its authenticator app.
    pub fn authenticator(username: String) -> Self {
        Self {
            username,
            tag: None,
            issued_at: Instant::now(),
            tries_left: OTP_MAX_TRIES,
        }
    }

    /// Whether the code is older than `ttl`.
    pub fn expired(&self, ttl: Duration) -> bool {
        self.issued_at.elapsed() > ttl
    }
}

/// Delivers a code to the "registered device": the server console; if configured, the file
/// `outbox/<user>.otp` (mode 0600, replaced atomically); then, if configured, the
/// `--otp-command` program ([`super::otp_command`]). Any failure means the customer will
/// not get the code.
pub fn deliver(username: &str, code: &str, config: &ServerConfig) -> Result<(), DeliveryError> {
    let ttl_secs = config.otp_ttl.as_secs();
    println!("[device] OTP for {username}: {code} (valid {ttl_secs} s)");
    if let Some(outbox) = config.otp_outbox.as_deref() {
        write_outbox(outbox, username, code).map_err(DeliveryError::Outbox)?;
    }
    if let Some(program) = config.otp_command.as_deref() {
        super::otp_command::run(program, username, code, ttl_secs, config.otp_command_timeout)?;
    }
    Ok(())
}

fn write_outbox(outbox: &Path, username: &str, code: &str) -> io::Result<()> {
    crate::identity::create_private_dir(outbox)?;
    // A temporary name of its own: two logins of the same account at once (two devices)
    // must not remove or overwrite each other's half-written file.
    let unique: [u8; 8] = crate::rng::bytes();
    let unique: String = unique.iter().map(|byte| format!("{byte:02x}")).collect();
    let temporary = outbox.join(format!(".{username}.otp.{unique}.tmp"));
    let written = write_private_file(&temporary, code)
        .and_then(|()| fs::rename(&temporary, outbox.join(format!("{username}.otp"))));
    if written.is_err() {
        // Never leave a code behind in a file nobody will replace.
        let _ = fs::remove_file(&temporary);
    }
    written
}

fn write_private_file(path: &Path, code: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    writeln!(file, "{code}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..200 {
            let code = generate_code();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|byte| byte.is_ascii_digit()));
        }
    }

    #[test]
    fn tag_binds_session_user_and_code() {
        let key = OtpKey::random();
        let tag = key.tag(&[1; 32], "alice", "123456");
        assert!(key.matches(&[1; 32], "alice", "123456", &tag));
        assert!(!key.matches(&[2; 32], "alice", "123456", &tag));
        assert!(!key.matches(&[1; 32], "bob", "123456", &tag));
        assert!(!key.matches(&[1; 32], "alice", "123457", &tag));
        assert!(!OtpKey::random().matches(&[1; 32], "alice", "123456", &tag));
    }
}
