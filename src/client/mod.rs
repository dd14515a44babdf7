//! A blocking client session over the secure channel: the interactive CLI, the integration
//! tests and the benchmark all use it.
//!
//! | file | concern |
//! |---|---|
//! | this file | [`Client`]: typed requests and responses over a [`SecureChannel`] |
//! | [`pinning`] | deciding whether to trust a server key: `--pin`, known_servers, first contact |
//! | [`cli`] | the interactive terminal program behind `bank-client` |
//! | [`retry`] | a sent-but-unanswered money request, and what its retry shows |
//! | [`plain`] | connection errors in plain words, with a next step |
//! | [`terminal`] | the terminal restored on Ctrl-C, with any pending request named |
//!
//! Invariant: a response that does not fit its request is an error, never guessed at.

pub mod cli;
pub mod pinning;
pub mod plain;
pub mod retry;
pub mod terminal;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::channel::SecureChannel;
use crate::channel::handshake::ClientHandshake;
use crate::error::{ChannelError, ClientError, ErrorCode};
use crate::message::{CodeKind, HistoryEntry, Request, Response, TxId};
use crate::trace::{Direction, Tracer};

/// How long the client waits for any response, in seconds. A login waits behind other
/// logins' PBKDF2 checks on a busy server, so this is generous.
pub const RESPONSE_TIMEOUT_SECS: u64 = 60;

/// A fresh transaction id (one per user action; reuse it only to retry that action): the
/// current time in Unix milliseconds, then 80 random bits (see [`TxId`]). A retry must
/// happen within the server's retention window (24 hours by default) of this moment.
pub fn new_txid() -> TxId {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
    crate::message::txid_at(now_ms)
}

/// A connected, handshaken client.
#[derive(Debug)]
pub struct Client {
    channel: SecureChannel,
}

/// Connects to `addr`, accepting only the server key with `fingerprint`.
pub fn connect_pinned(addr: SocketAddr, fingerprint: &str, tracer: Tracer) -> Result<Client, ClientError> {
    let channel = SecureChannel::connect(addr, pin_check(fingerprint, tracer), tracer)?;
    Ok(Client { channel })
}

/// Runs the handshake on an already connected `stream` (one connected from a chosen source
/// address, say: [`crate::source_address::connect_from`]), accepting only the server key
/// with `fingerprint`.
pub fn connect_pinned_over(stream: TcpStream, fingerprint: &str, tracer: Tracer) -> Result<Client, ClientError> {
    let channel =
        SecureChannel::client_handshake(stream, ClientHandshake::start(), pin_check(fingerprint, tracer), tracer)?;
    Ok(Client { channel })
}

/// The check of the presented key against the pinned `fingerprint`, traced.
fn pin_check(fingerprint: &str, tracer: Tracer) -> impl FnOnce(&str) -> Result<(), ChannelError> {
    let expected = fingerprint.to_string();
    move |presented| {
        if presented == expected {
            tracer.line(
                Direction::Local,
                format_args!("pin check: server key {presented} is the pinned key: accepted"),
            );
            Ok(())
        } else {
            tracer.line(
                Direction::Local,
                format_args!("pin check: server key {presented} is NOT the pinned key {expected}: REFUSED, closing"),
            );
            Err(ChannelError::PinMismatch {
                expected,
                presented: presented.to_string(),
            })
        }
    }
}

/// Runs a handshake only to learn the server's key fingerprint (its signature is verified,
/// so the server does hold that key), then disconnects. Used before asking a person to
/// confirm a first contact, so no live connection waits on them.
pub fn probe_fingerprint(addr: SocketAddr, tracer: Tracer) -> Result<String, ClientError> {
    let tracer = tracer.probe();
    tracer.line(
        Direction::Local,
        "first contact: no key is pinned for this address; this probe handshake only learns the key",
    );
    let channel = SecureChannel::connect(
        addr,
        |presented| {
            tracer.line(
                Direction::Local,
                format_args!("pin check: nothing pinned yet; server key {presented} goes to you to confirm"),
            );
            Ok(())
        },
        tracer,
    )?;
    tracer.line(
        Direction::Local,
        "probe done: closing before any request; a new connection follows once you confirm",
    );
    Ok(channel.server_fingerprint().to_string())
}

impl Client {
    /// Wraps an established channel.
    pub fn from_channel(channel: SecureChannel) -> Self {
        Self { channel }
    }

    /// The fingerprint of the server this client is connected to.
    pub fn server_fingerprint(&self) -> &str {
        self.channel.server_fingerprint()
    }

    /// Sends one request and reads its response.
    pub fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let tracer = *self.channel.tracer();
        tracer.line(Direction::Sent, format_args!("  request {request:?}"));
        // The encoding may hold a password or a code: wipe it once sent.
        self.channel.send(&zeroize::Zeroizing::new(request.encode()))?;
        let deadline = Instant::now() + Duration::from_secs(RESPONSE_TIMEOUT_SECS);
        let plaintext = self.channel.recv(Some(deadline))?;
        let response = Response::decode(&plaintext).map_err(ChannelError::from)?;
        tracer.line(
            Direction::Received,
            format_args!("  response {}", crate::trace::response(&response)),
        );
        Ok(response)
    }

    fn expect<T>(
        &mut self,
        request: &Request,
        pick: impl FnOnce(Response) -> Option<T>,
        what: &'static str,
    ) -> Result<T, ClientError> {
        match self.request(request)? {
            Response::Error(code) => Err(ClientError::Refused(code)),
            response => pick(response).ok_or(ClientError::UnexpectedResponse(what)),
        }
    }

    /// Echoes `data` through the server.
    pub fn echo(&mut self, data: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.expect(
            &Request::Echo(data.to_vec()),
            |r| if let Response::Echo(d) = r { Some(d) } else { None },
            "echo",
        )
    }

    /// First login step. Returns the code's lifetime in seconds.
    pub fn login(&mut self, username: &str, password: &str) -> Result<u32, ClientError> {
        let mut request = Request::Login {
            username: username.to_string(),
            password: password.to_string(),
        };
        let outcome = self.expect(
            &request,
            |r| {
                if let Response::OtpSent { ttl_secs } = r {
                    Some(ttl_secs)
                } else {
                    None
                }
            },
            "login",
        );
        if let Request::Login { password, .. } = &mut request {
            zeroize::Zeroize::zeroize(password);
        }
        outcome
    }

    /// First login step, asking the server to name the kind of code it wants
    /// (LoginWithCodeKind): returns that kind and the time the login waits for the code.
    pub fn login_with_code_kind(&mut self, username: &str, password: &str) -> Result<(CodeKind, u32), ClientError> {
        let mut request = Request::LoginWithCodeKind {
            username: username.to_string(),
            password: password.to_string(),
        };
        let outcome = self.expect(
            &request,
            |r| {
                if let Response::CodeRequested { kind, ttl_secs } = r {
                    Some((kind, ttl_secs))
                } else {
                    None
                }
            },
            "login",
        );
        if let Request::LoginWithCodeKind { password, .. } = &mut request {
            zeroize::Zeroize::zeroize(password);
        }
        outcome
    }

    /// Second login step. Returns the account name and balance.
    pub fn submit_otp(&mut self, code: &str) -> Result<(String, u64), ClientError> {
        let mut request = Request::SubmitOtp(code.to_string());
        let outcome = self.expect(
            &request,
            |r| {
                if let Response::LoggedIn {
                    username,
                    balance_cents,
                } = r
                {
                    Some((username, balance_cents))
                } else {
                    None
                }
            },
            "one-time code",
        );
        if let Request::SubmitOtp(code) = &mut request {
            zeroize::Zeroize::zeroize(code);
        }
        outcome
    }

    /// The balance in cents.
    pub fn balance(&mut self) -> Result<u64, ClientError> {
        self.expect(
            &Request::Balance,
            |r| if let Response::Balance(c) = r { Some(c) } else { None },
            "balance",
        )
    }

    fn transaction(&mut self, request: &Request, txid: TxId) -> Result<u64, ClientError> {
        self.expect(
            request,
            |r| match r {
                Response::TxApplied {
                    txid: echoed,
                    balance_cents,
                } if echoed == txid => Some(balance_cents),
                _ => None,
            },
            "transaction",
        )
    }

    /// Deposits; returns the new balance.
    pub fn deposit(&mut self, txid: TxId, amount_cents: u64) -> Result<u64, ClientError> {
        self.transaction(&Request::Deposit { txid, amount_cents }, txid)
    }

    /// Withdraws; returns the new balance.
    pub fn withdraw(&mut self, txid: TxId, amount_cents: u64) -> Result<u64, ClientError> {
        self.transaction(&Request::Withdraw { txid, amount_cents }, txid)
    }

    /// Transfers to `to`; returns the new balance.
    pub fn transfer(&mut self, txid: TxId, amount_cents: u64, to: &str) -> Result<u64, ClientError> {
        self.transaction(
            &Request::Transfer {
                txid,
                amount_cents,
                to: to.to_string(),
            },
            txid,
        )
    }

    /// Sends a money request (first time or retry: same id, same contents); returns the
    /// new balance. The bank answers a repeated id with the first outcome.
    pub fn send_money(&mut self, pending: &retry::Pending) -> Result<u64, ClientError> {
        self.transaction(&pending.request(), pending.txid)
    }

    /// The most recent history entries, oldest first.
    pub fn history(&mut self) -> Result<Vec<HistoryEntry>, ClientError> {
        self.expect(
            &Request::History,
            |r| if let Response::History(h) = r { Some(h) } else { None },
            "history",
        )
    }

    /// The most recent history entries, oldest first, with the bank's notices (such as
    /// "unlocked by the bank") among them. A server older than these notices closes the
    /// connection on this request: use [`Client::history`] with it.
    pub fn history_with_notices(&mut self) -> Result<Vec<HistoryEntry>, ClientError> {
        self.expect(
            &Request::HistoryWithNotices,
            |r| if let Response::History(h) = r { Some(h) } else { None },
            "history",
        )
    }

    /// Ends the session.
    pub fn logout(&mut self) -> Result<(), ClientError> {
        self.expect(
            &Request::Logout,
            |r| matches!(r, Response::LoggedOut).then_some(()),
            "logout",
        )
    }
}

/// Whether an error is the server refusing with `code`.
pub fn is_refused(result: &Result<impl Sized, ClientError>, code: ErrorCode) -> bool {
    matches!(result, Err(ClientError::Refused(found)) if *found == code)
}
