//! One connection's session: the login state machine and the dispatch of requests.
//!
//! ```text
//! Anonymous ──Login ok──▶ AwaitingOtp ──right code──▶ Authenticated ──Logout──▶ Anonymous
//!     ▲                        │ wrong code ×3, expired, locked                 │
//!     └────────────────────────┴────────────────────────────────────────────────┘
//! ```
//! Invariants: account operations run only in `Authenticated`, and only on the session's
//! own account (no request names a source account); a code is consumed when checked; the
//! password and the code are wiped after use.

use zeroize::Zeroizing;

use super::Shared;
use super::auth;
use super::bank::now_unix_secs;
use super::events::TxKind;
use super::ledger::TxRequest;
use super::otp::{self, PendingOtp};
use crate::error::{ErrorCode, JournalError};
use crate::message::{Request, Response, TxId};

/// Where a connection is in the login flow.
#[derive(Debug)]
enum State {
    Anonymous,
    AwaitingOtp(PendingOtp),
    Authenticated { username: String },
}

/// The per-connection session.
#[derive(Debug)]
pub struct Session {
    session_id: [u8; 32],
    state: State,
}

impl Session {
    /// A new, anonymous session on a channel with this id.
    pub fn new(session_id: [u8; 32]) -> Self {
        Self {
            session_id,
            state: State::Anonymous,
        }
    }

    /// Whether the session is logged in to an account.
    pub fn is_logged_in(&self) -> bool {
        matches!(self.state, State::Authenticated { .. })
    }

    /// Answers one request. An `Err` means the journal failed: close without answering.
    pub fn handle(&mut self, request: Request, shared: &Shared) -> Result<Response, JournalError> {
        let user = match (&self.state, &request) {
            (_, Request::Echo(data)) => return Ok(Response::Echo(data.clone())),
            (_, Request::Logout) => {
                self.state = State::Anonymous;
                return Ok(Response::LoggedOut);
            }
            (_, Request::Login { .. }) | (_, Request::SubmitOtp(_)) => None,
            (State::Authenticated { username }, _) => Some(username.clone()),
            _ => return Ok(Response::Error(ErrorCode::NotAuthenticated)),
        };
        match (request, user) {
            (Request::Login { username, password }, _) => self.login(username, &Zeroizing::new(password), shared),
            (Request::SubmitOtp(code), _) => self.submit_otp(&Zeroizing::new(code), shared),
            (Request::Balance, Some(user)) => Ok(ruled(shared.bank.balance(&user)?, Response::Balance)),
            (Request::History, Some(user)) => Ok(ruled(shared.bank.history(&user)?, |mut entries| {
                // Version-1 clients know only the movements of money (kinds 1-5).
                entries.retain(|entry| !entry.kind.is_notice());
                Response::History(entries)
            })),
            (Request::HistoryWithNotices, Some(user)) => Ok(ruled(shared.bank.history(&user)?, Response::History)),
            (Request::Deposit { txid, amount_cents }, Some(user)) => {
                transact(shared, &user, txid, TxKind::Deposit, amount_cents, "")
            }
            (Request::Withdraw { txid, amount_cents }, Some(user)) => {
                transact(shared, &user, txid, TxKind::Withdrawal, amount_cents, "")
            }
            (Request::Transfer { txid, amount_cents, to }, Some(user)) => {
                transact(shared, &user, txid, TxKind::Transfer, amount_cents, &to)
            }
            _ => Ok(Response::Error(ErrorCode::NotAuthenticated)),
        }
    }

    fn login(&mut self, username: String, password: &str, shared: &Shared) -> Result<Response, JournalError> {
        if !matches!(self.state, State::Anonymous) {
            return Ok(Response::Error(ErrorCode::UnexpectedRequest));
        }
        let stored = auth::validate_username(&username)
            .ok()
            .and_then(|()| shared.bank.password_record(&username));
        let exists = stored.is_some();
        let record = stored.unwrap_or_else(|| shared.dummy_password.clone());
        let password_ok = {
            let _permit = shared.hash_limiter.acquire();
            auth::verify_password(&record, password)
        };
        let now = now_unix_secs();
        if !exists {
            return Ok(Response::Error(ErrorCode::InvalidCredentials));
        }
        if shared.bank.is_locked(&username, now) {
            return Ok(Response::Error(ErrorCode::AccountLocked));
        }
        if !password_ok {
            let locked = shared.bank.login_failed(&username, now)?;
            log_failure(&username, locked);
            let code = if locked {
                ErrorCode::AccountLocked
            } else {
                ErrorCode::InvalidCredentials
            };
            return Ok(Response::Error(code));
        }
        let code = otp::generate_code();
        let tag = shared.otp_key.tag(&self.session_id, &username, &code);
        let ttl_secs = shared.config.otp_ttl.as_secs();
        if let Err(err) = otp::deliver(&username, &code, ttl_secs, shared.config.otp_outbox.as_deref()) {
            eprintln!("[auth] could not write the one-time code for {username} to the outbox: {err}");
            return Ok(Response::Error(ErrorCode::Unavailable));
        }
        self.state = State::AwaitingOtp(PendingOtp::new(username, tag));
        Ok(Response::OtpSent {
            ttl_secs: u32::try_from(ttl_secs).unwrap_or(u32::MAX),
        })
    }

    fn submit_otp(&mut self, code: &str, shared: &Shared) -> Result<Response, JournalError> {
        if !matches!(self.state, State::AwaitingOtp(_)) {
            return Ok(Response::Error(ErrorCode::UnexpectedRequest));
        }
        let State::AwaitingOtp(mut pending) = std::mem::replace(&mut self.state, State::Anonymous) else {
            unreachable!("checked just above");
        };
        if pending.expired(shared.config.otp_ttl) {
            return Ok(Response::Error(ErrorCode::OtpExpired));
        }
        let now = now_unix_secs();
        if shared
            .otp_key
            .matches(&self.session_id, &pending.username, code, &pending.tag)
        {
            return Ok(match shared.bank.login_succeeded(&pending.username, now)? {
                Ok(balance_cents) => {
                    println!("[auth] {} logged in", pending.username);
                    let username = pending.username.clone();
                    self.state = State::Authenticated {
                        username: pending.username,
                    };
                    Response::LoggedIn {
                        username,
                        balance_cents,
                    }
                }
                Err(code) => Response::Error(code),
            });
        }
        let locked = shared.bank.login_failed(&pending.username, now)?;
        log_failure(&pending.username, locked);
        pending.tries_left -= 1;
        Ok(Response::Error(if locked {
            ErrorCode::AccountLocked
        } else if pending.tries_left == 0 {
            ErrorCode::OtpTriesExhausted
        } else {
            self.state = State::AwaitingOtp(pending);
            ErrorCode::OtpInvalid
        }))
    }
}

fn log_failure(username: &str, locked: bool) {
    if locked {
        println!("[auth] failed login for {username}: account locked");
    } else {
        println!("[auth] failed login for {username}");
    }
}

fn ruled<T>(outcome: Result<T, ErrorCode>, wrap: impl FnOnce(T) -> Response) -> Response {
    outcome.map_or_else(Response::Error, wrap)
}

fn transact(
    shared: &Shared,
    user: &str,
    txid: TxId,
    kind: TxKind,
    amount_cents: u64,
    counterparty: &str,
) -> Result<Response, JournalError> {
    let request = TxRequest {
        user,
        txid,
        kind,
        amount_cents,
        counterparty,
    };
    let outcome = shared.bank.transact(request, now_unix_secs())?;
    Ok(ruled(outcome, |balance_cents| Response::TxApplied {
        txid,
        balance_cents,
    }))
}
