//! Deciding whether to trust a server key, as SSH does with `known_hosts`.
//!
//! - `--pin SHA256:…`: only that key is accepted, nothing is asked.
//! - a key pinned in known_servers for the address: only that key is accepted; a different
//!   key is a hard failure naming both fingerprints and the file, with no override prompt.
//! - first contact: the fingerprint is shown and the person confirms it against the server
//!   console; a confirmed key is stored.

use std::net::SocketAddr;

use crate::error::{ChannelError, ClientError};
use crate::known_servers::{KnownServers, PinStatus};

/// The answer to "which key should this address have?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinDecision {
    /// Accept only this fingerprint.
    Expect(String),
    /// Nothing is known: ask the person, then store the answer.
    FirstContact,
}

/// Decides from `--pin` and the known_servers file.
pub fn decide(pin: Option<&str>, known: &KnownServers, addr: &str) -> PinDecision {
    match (pin, known.pinned(addr)) {
        (Some(pin), _) => PinDecision::Expect(pin.to_string()),
        (None, Some(pinned)) => PinDecision::Expect(pinned.to_string()),
        (None, None) => PinDecision::FirstContact,
    }
}

/// The loud message for a key that differs from the stored one. Its first line is a
/// summary (the program's name goes before it), so the banner below stays aligned.
pub fn mismatch_warning(addr: &str, pinned: &str, presented: &str, known: &KnownServers) -> String {
    let path = known.path();
    let forget = if path == crate::known_servers::default_path() {
        format!("bank-client forget {addr}")
    } else {
        format!("bank-client forget {addr} --known-servers {}", path.display())
    };
    format!(
        "the server's key is not the one pinned for {addr}: not connecting.\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @   WARNING: THE SERVER'S IDENTIFICATION HAS CHANGED!    @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         Someone could be intercepting your connection (man-in-the-middle attack),\n\
         or the server's key was replaced.\n\
         Server:             {addr}\n\
         Pinned fingerprint: {pinned}\n\
         Presented:          {presented}\n\
         The pinned key is in {}.\n\
         Nothing was sent to this server. If its key really changed, check the new\n\
         fingerprint on the server console, then forget the old key with:\n\
         \n    {forget}\n\n\
         and connect again.",
        path.display()
    )
}

/// Turns a pin mismatch from the channel into the loud, file-naming message.
pub fn explain(err: ClientError, addr: &SocketAddr, known: &KnownServers) -> String {
    match err {
        ClientError::Channel(ChannelError::PinMismatch { expected, presented }) => {
            let status = known.check(&addr.to_string(), &presented);
            if matches!(status, PinStatus::Mismatch { .. }) {
                mismatch_warning(&addr.to_string(), &expected, &presented, known)
            } else {
                format!(
                    "the server's key {presented} is not the key given with --pin ({expected}): \
                     not connecting."
                )
            }
        }
        other => other.to_string(),
    }
}
