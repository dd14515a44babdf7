//! securebank: a teaching bank server and terminal client over plain TCP.
//!
//! The crate is small on purpose, so it can be read in an afternoon. Module map, from the
//! bytes on the wire upwards:
//!
//! | module | concern |
//! |---|---|
//! | [`args`] | the small command-line parser of the binaries |
//! | [`limits`] | every limit in one place, each with the reason for its value |
//! | [`codec`] | big-endian integers and length-prefixed strings, with bounds checks |
//! | [`frame`] | `u32` length-prefixed frames; oversize lengths refused before allocation |
//! | [`channel`] | the secure channel: handshake (X25519 + RSA-PSS), key schedule, AEAD records |
//! | [`identity`] | the server's RSA-3072 key on disk and its `SHA256:` fingerprint |
//! | [`known_servers`] | the client's pin file, like SSH's `known_hosts` |
//! | [`message`] | application requests and responses carried inside records |
//! | [`money`] | exact parsing and formatting of amounts in cents |
//! | [`error`] | the error enums, one per boundary |
//! | [`rng`] | every random byte, from the operating system |
//! | [`source_address`] | connecting from a chosen source address such as `127.0.0.2` (tests, benchmark) |
//! | [`server`] | listener, connection threads, login, ledger, journal, group commit |
//! | [`client`] | a blocking client session (used by the CLI, the tests and the benchmark) |
//! | [`totp`] | authenticator-app codes (RFC 6238): secrets, HOTP/TOTP, the URI and QR code |
//! | [`operator_client`] | the operator's commands from the command line: via the admin socket, or offline |
//! | [`trace`] | optional `--trace` output of every frame, never printing a secret |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod channel;
pub mod client;
pub mod codec;
pub mod error;
pub mod frame;
pub mod identity;
pub mod known_servers;
pub mod limits;
pub mod message;
pub mod money;
pub mod operator_client;
pub mod rng;
pub mod server;
pub mod source_address;
pub mod totp;
pub mod trace;
