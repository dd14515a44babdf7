//! One connection's session: the login state machine and the dispatch of requests.
//!
//! ```text
//! Anonymous ──Login ok──▶ AwaitingOtp ──right code──▶ Authenticated ──Logout──▶ Anonymous
//!     ▲                        │ wrong code ×3, expired, locked                 │
//!     └────────────────────────┴────────────────────────────────────────────────┘
//! ```
//! Invariants: account operations run only in `Authenticated`, and only on the session's
//! own account (no request names a source account); a code is consumed when checked; the
//! password and the code are wiped after use. The console shows each login, logout and
//! disconnect of a logged-in session (name, reason, duration; never a secret).
//!
//! Abuse limits kept here (issue 11; SECURITY.md §3.8): a password is checked only if the
//! source's login budget allows and a PBKDF2 slot frees before the deadline (else
//! `unavailable`, no failure counted); the outcome is judged under one ledger lock
//! ([`super::bank::Bank::judge_password`]); a session that is not logged in lives until
//! `anonymous_until`, renewed by a Login, never by an Echo; a session that has had
//! [`REFUSED_TX_BURST_PER_SESSION`] transactions refused gets `unavailable` for money
//! requests until its budget refills.
//!
//! The code of `AwaitingOtp` is either one the server drew and delivered (kept as a tag) or,
//! for an account with an authenticator app, the app's current code, which the bank checks
//! and whose time step it uses up ([`super::bank::Bank::totp_login`]).

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::Shared;
use super::admission::{SourceKey, TokenBucket};
use super::auth;
use super::bank::{Judgement, TxStep, now_unix_secs};
use super::events::TxKind;
use super::ledger::TxRequest;
use super::otp::{self, PendingOtp};
use crate::error::{ErrorCode, JournalError};
use crate::limits::{OTP_ANSWER_GRACE_SECS, REFUSED_TX_BURST_PER_SESSION};
use crate::message::{CodeKind, Request, Response};
use crate::trace::{Direction, Tracer};

/// A response and the journal position that must be durable before it is sent.
#[derive(Debug)]
pub struct Reply {
    /// What to answer.
    pub response: Response,
    /// The last journal record the answer shows or confirms (0: none). The server sends
    /// the answer only once this record is durable ([`super::reply::Outbox::send`]).
    pub durable_at: u64,
}

impl Reply {
    /// A response that shows nothing waiting for the disk.
    fn now(response: Response) -> Self {
        Self {
            response,
            durable_at: 0,
        }
    }

    /// A response that may be sent once journal record `durable_at` is durable.
    fn after(response: Response, durable_at: u64) -> Self {
        Self { response, durable_at }
    }
}

/// Where a connection is in the login flow.
#[derive(Debug)]
enum State {
    Anonymous,
    AwaitingOtp(PendingOtp),
    Authenticated { username: String, since: Instant },
}

/// The per-connection session.
#[derive(Debug)]
pub struct Session {
    session_id: [u8; 32],
    state: State,
    tracer: Tracer,
    /// Where the connection comes from (whose login budget a password check is paid from).
    source: SourceKey,
    /// When a connection that is not logged in is closed, unless a Login renews it; Echo
    /// does not, so a stranger cannot hold a thread for free.
    anonymous_until: Instant,
    /// The budget of refused transactions (each tells something about other accounts).
    refusals: TokenBucket,
    /// The current login came as LoginWithCodeKind: answer CodeRequested, not OtpSent.
    names_code_kind: bool,
}

impl Session {
    /// A new, anonymous session on a channel with this id, from `source`, that must log in
    /// by `anonymous_until`.
    pub fn new(session_id: [u8; 32], source: SourceKey, anonymous_until: Instant) -> Self {
        Self {
            session_id,
            state: State::Anonymous,
            tracer: Tracer::off(),
            source,
            anonymous_until,
            refusals: TokenBucket::full(REFUSED_TX_BURST_PER_SESSION, Instant::now()),
            names_code_kind: false,
        }
    }

    /// Until when the next request may take to arrive: the idle limit after the last
    /// request once logged in; before that, the anonymous deadline (a code being awaited
    /// keeps the connection for as long as the code lives).
    pub fn read_deadline(&self, shared: &Shared, now: Instant) -> Instant {
        match &self.state {
            State::Authenticated { .. } => now + shared.config.idle_timeout,
            // A few seconds past the code's life, so a late code is answered "expired"
            // rather than met by a closed connection.
            State::AwaitingOtp(pending) => {
                pending.issued_at + shared.config.otp_ttl + Duration::from_secs(OTP_ANSWER_GRACE_SECS)
            }
            State::Anonymous => self.anonymous_until,
        }
    }

    /// The same session, tracing its password checks and journal steps with `tracer`.
    pub fn traced(self, tracer: Tracer) -> Self {
        Self { tracer, ..self }
    }

    /// Whether the session is logged in to an account.
    pub fn is_logged_in(&self) -> bool {
        matches!(self.state, State::Authenticated { .. })
    }

    /// Answers one request. Money requests and reads do not wait for the disk: the reply
    /// names the journal record that must be durable before it is sent. An `Err` means the
    /// journal failed: close without answering.
    pub fn handle(&mut self, request: Request, shared: &Shared) -> Result<Reply, JournalError> {
        let user = match (&self.state, &request) {
            (_, Request::Echo(data)) => return Ok(Reply::now(Response::Echo(data.clone()))),
            (_, Request::Logout) => {
                if let State::Authenticated { username, since } = &self.state {
                    println!("[auth] {username} logged out after {}", session_length(since.elapsed()));
                }
                self.state = State::Anonymous;
                self.anonymous_until = Instant::now() + shared.config.anonymous_idle_timeout;
                return Ok(Reply::now(Response::LoggedOut));
            }
            (_, Request::Login { .. } | Request::LoginWithCodeKind { .. } | Request::SubmitOtp(_)) => None,
            (State::Authenticated { username, .. }, _) => Some(username.clone()),
            _ => return Ok(Reply::now(Response::Error(ErrorCode::NotAuthenticated))),
        };
        Ok(match (request, user) {
            (Request::Login { username, password }, _) => {
                self.names_code_kind = false;
                Reply::now(self.login(username, &Zeroizing::new(password), shared)?)
            }
            (Request::LoginWithCodeKind { username, password }, _) => {
                self.names_code_kind = true;
                Reply::now(self.login(username, &Zeroizing::new(password), shared)?)
            }
            (Request::SubmitOtp(code), _) => Reply::now(self.submit_otp(&Zeroizing::new(code), shared)?),
            (Request::Balance, Some(user)) => {
                let (outcome, lsn) = shared.bank.balance_deferred(&user);
                Reply::after(ruled(outcome, Response::Balance), lsn)
            }
            (Request::History, Some(user)) => {
                let (outcome, lsn) = shared.bank.history_deferred(&user);
                let response = ruled(outcome, |mut entries| {
                    // Version-1 clients know only the movements of money (kinds 1-5).
                    entries.retain(|entry| !entry.kind.is_notice());
                    Response::History(entries)
                });
                Reply::after(response, lsn)
            }
            (Request::HistoryWithNotices, Some(user)) => {
                let (outcome, lsn) = shared.bank.history_deferred(&user);
                Reply::after(ruled(outcome, Response::History), lsn)
            }
            (Request::Deposit { txid, amount_cents }, Some(user)) => self.transact_budgeted(
                shared,
                TxRequest {
                    user: &user,
                    txid,
                    kind: TxKind::Deposit,
                    amount_cents,
                    counterparty: "",
                },
            ),
            (Request::Withdraw { txid, amount_cents }, Some(user)) => self.transact_budgeted(
                shared,
                TxRequest {
                    user: &user,
                    txid,
                    kind: TxKind::Withdrawal,
                    amount_cents,
                    counterparty: "",
                },
            ),
            (Request::Transfer { txid, amount_cents, to }, Some(user)) => self.transact_budgeted(
                shared,
                TxRequest {
                    user: &user,
                    txid,
                    kind: TxKind::Transfer,
                    amount_cents,
                    counterparty: &to,
                },
            ),
            _ => Reply::now(Response::Error(ErrorCode::NotAuthenticated)),
        })
    }

    /// A money request, unless the session has used up its budget of refusals: then it is
    /// answered `unavailable` without being judged (and so without telling anything).
    fn transact_budgeted(&mut self, shared: &Shared, request: TxRequest<'_>) -> Reply {
        let rate_per_sec = f64::from(shared.config.refused_tx_per_min) / 60.0;
        let now = Instant::now();
        if !self.refusals.has_token(rate_per_sec, REFUSED_TX_BURST_PER_SESSION, now) {
            return Reply::now(Response::Error(ErrorCode::Unavailable));
        }
        let reply = transact(shared, self.tracer, request);
        if matches!(reply.response, Response::Error(_)) {
            self.refusals.take(rate_per_sec, REFUSED_TX_BURST_PER_SESSION, now);
        }
        reply
    }

    fn login(&mut self, username: String, password: &str, shared: &Shared) -> Result<Response, JournalError> {
        if !matches!(self.state, State::Anonymous) {
            return Ok(Response::Error(ErrorCode::UnexpectedRequest));
        }
        // A login is worth a fresh (short) deadline: it is paid for from the source's budget.
        let queued = Instant::now();
        self.anonymous_until = queued + shared.config.anonymous_idle_timeout;
        if !shared.admission.take_login(self.source, queued) {
            println!("[auth] login refused: too many attempts from one address");
            return Ok(Response::Error(ErrorCode::Unavailable));
        }
        let Ok(permit) = shared
            .login_queue
            .acquire(Some(queued + shared.config.login_queue_deadline))
        else {
            println!("[auth] login refused: the password-check queue is full or too slow");
            return Ok(Response::Error(ErrorCode::Unavailable));
        };
        let stored = auth::validate_username(&username)
            .ok()
            .and_then(|()| shared.bank.password_record(&username));
        let checked_real = stored.is_some();
        let record = stored.unwrap_or_else(|| shared.dummy_password.clone());
        let started = Instant::now();
        let password_ok = auth::verify_password(&record, password);
        drop(permit);
        if self.tracer.enabled() {
            self.tracer.line(
                Direction::Local,
                format_args!(
                    "password check: PBKDF2-HMAC-SHA256, {} iterations, took {} ms (after {} ms waiting for a \
                     hashing slot; an unknown name costs the same); this is why a login pauses",
                    record.iterations,
                    started.elapsed().as_millis(),
                    started.duration_since(queued).as_millis()
                ),
            );
        }
        let judgement = shared
            .bank
            .judge_password(&username, checked_real, password_ok, now_unix_secs())?;
        match judgement {
            Judgement::Locked => return Ok(Response::Error(ErrorCode::AccountLocked)),
            Judgement::Failed { locked } => {
                // One console line either way (a line for real names only would take time
                // that tells them apart); what a stranger typed as a name is not printed.
                log_failure(
                    if checked_real {
                        &username
                    } else {
                        "a name with no account"
                    },
                    locked,
                );
                let code = if locked {
                    ErrorCode::AccountLocked
                } else {
                    ErrorCode::InvalidCredentials
                };
                return Ok(Response::Error(code));
            }
            Judgement::Accepted => {}
        }
        Ok(self.start_second_step(username, shared))
    }

    /// After a correct password: waits for a code of the account's authenticator app if it
    /// has one; else issues and delivers a one-time code, and waits for that. A code that
    /// cannot be delivered answers `unavailable` and counts no failure.
    fn start_second_step(&mut self, username: String, shared: &Shared) -> Response {
        let ttl_secs = u32::try_from(shared.config.otp_ttl.as_secs()).unwrap_or(u32::MAX);
        if shared.bank.uses_totp(&username) {
            self.state = State::AwaitingOtp(PendingOtp::authenticator(username));
            return self.code_requested(CodeKind::Authenticator, ttl_secs);
        }
        let code = otp::generate_code();
        let tag = shared.otp_key.tag(&self.session_id, &username, &code);
        if let Err(err) = otp::deliver(&username, &code, &shared.config) {
            eprintln!("[auth] could not deliver the one-time code for {username}: {err}");
            return Response::Error(ErrorCode::Unavailable);
        }
        self.state = State::AwaitingOtp(PendingOtp::new(username, tag));
        self.code_requested(CodeKind::Device, ttl_secs)
    }

    /// The answer to a right password: CodeRequested naming the kind for a client that
    /// asked with LoginWithCodeKind, OtpSent (either kind) for a version-1 Login.
    fn code_requested(&self, kind: CodeKind, ttl_secs: u32) -> Response {
        if self.names_code_kind {
            Response::CodeRequested { kind, ttl_secs }
        } else {
            Response::OtpSent { ttl_secs }
        }
    }

    fn submit_otp(&mut self, code: &str, shared: &Shared) -> Result<Response, JournalError> {
        if !matches!(self.state, State::AwaitingOtp(_)) {
            return Ok(Response::Error(ErrorCode::UnexpectedRequest));
        }
        let State::AwaitingOtp(mut pending) = std::mem::replace(&mut self.state, State::Anonymous) else {
            unreachable!("checked just above");
        };
        // Whatever comes of the code, the session is anonymous again for a while (a right
        // password earned that).
        self.anonymous_until = Instant::now() + shared.config.anonymous_idle_timeout;
        if pending.expired(shared.config.otp_ttl) {
            return Ok(Response::Error(ErrorCode::OtpExpired));
        }
        let now = now_unix_secs();
        let checked = match pending.tag {
            Some(tag) if shared.otp_key.matches(&self.session_id, &pending.username, code, &tag) => {
                shared.bank.login_succeeded(&pending.username, now)?
            }
            Some(_) => Err(ErrorCode::OtpInvalid),
            None => {
                let totp_now = shared.config.totp_clock.now_unix_secs();
                shared.bank.totp_login(&pending.username, code, totp_now, now)?
            }
        };
        if checked != Err(ErrorCode::OtpInvalid) {
            return Ok(match checked {
                Ok(balance_cents) => {
                    println!("[auth] {} logged in", pending.username);
                    let username = pending.username.clone();
                    self.state = State::Authenticated {
                        username: pending.username,
                        since: Instant::now(),
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

impl Session {
    /// Logs the end of the connection on the console if it was logged in: `reason` says why
    /// it ended (the client closed it, the idle limit, a failed record, …).
    pub fn disconnected(&self, reason: &str) {
        if let State::Authenticated { username, since } = &self.state {
            println!(
                "[auth] {username} disconnected ({reason}) after {}",
                session_length(since.elapsed())
            );
        }
    }
}

/// A session's length for the console: `42 s`, `3 min 05 s`, `2 h 03 min`.
fn session_length(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, secs % 3600 / 60),
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

fn transact(shared: &Shared, tracer: Tracer, request: TxRequest<'_>) -> Reply {
    let txid = request.txid;
    let (outcome, lsn) = if tracer.enabled() {
        traced_transact(shared, tracer, request)
    } else {
        shared.bank.transact_deferred(request, now_unix_secs())
    };
    let response = ruled(outcome, |balance_cents| Response::TxApplied { txid, balance_cents });
    Reply::after(response, lsn)
}

/// [`Bank::transact_deferred`](super::bank::Bank::transact_deferred) with its step traced:
/// the ledger's decision and the journal append. The wait for the group commit's
/// `fdatasync` is traced where it ends ([`super::reply`]).
fn traced_transact(shared: &Shared, tracer: Tracer, request: TxRequest<'_>) -> (super::bank::Ruled<u64>, u64) {
    let (outcome, step) = shared.bank.transact_step(request, now_unix_secs(), true);
    let lsn = match step {
        TxStep::Refused => {
            tracer.line(
                Direction::Local,
                "ledger: refused by a rule before anything is recorded; nothing appended to the journal",
            );
            0
        }
        TxStep::Repeat { lsn } => {
            tracer.line(
                Direction::Local,
                format_args!(
                    "ledger: this transaction id was already used for this request: the first outcome \
                     (journal record {lsn}) again, nothing appended"
                ),
            );
            lsn
        }
        TxStep::Appended { lsn, record_bytes } => {
            let what = if outcome.is_ok() {
                "applied"
            } else {
                "refused (the refusal is recorded)"
            };
            tracer.line(
                Direction::Local,
                format_args!(
                    "ledger: {what} under the ledger lock; journal: record {lsn} appended ({record_bytes} \
                     bytes) to the group commit's pending batch"
                ),
            );
            lsn
        }
    };
    (outcome, lsn)
}

#[cfg(test)]
mod tests {
    use super::session_length;
    use std::time::Duration;

    #[test]
    fn session_lengths_read_as_seconds_minutes_or_hours() {
        assert_eq!(session_length(Duration::from_millis(42_900)), "42 s");
        assert_eq!(session_length(Duration::from_secs(185)), "3 min 05 s");
        assert_eq!(session_length(Duration::from_secs(7_380)), "2 h 03 min");
    }
}
