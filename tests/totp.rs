//! Authenticator apps (TOTP, RFC 6238) end to end: enrolment through the admin socket and
//! the real `bank-server enrol-totp`, then logins whose codes the tests compute themselves
//! from the secret (`common::independent_totp`, not the crate's code). The in-process
//! servers check codes at a fixed clock the test moves, so no test depends on when a 30 s
//! step happens to end.
mod common;

use securebank::error::{ClientError, ErrorCode};
use securebank::limits::{LOCKOUT_THRESHOLD, TOTP_STEP_SECS};
use securebank::message::{CodeKind, Request, Response};
use securebank::operator_client;
use securebank::server::bank::BankOptions;
use securebank::server::operator::{Command, Reply, Status};
use securebank::server::operator_socket::socket_path;
use securebank::totp::{TotpClock, TotpSecret};
use zeroize::Zeroizing;

const PASSWORD: &str = "alice-password";

/// A fixed time 10 s into a step.
const T0: u64 = 1_700_000_010;
const S0: u64 = T0 / TOTP_STEP_SECS;

fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Refused(code)) => code,
        other => panic!("expected the server to refuse, got {other:?}"),
    }
}

struct Bench {
    server: common::TestServer,
    clock: TotpClock,
    secret: [u8; 20],
}

impl Bench {
    /// A server with alice (10.00) whose authenticator clock stands at `T0`.
    fn new() -> Self {
        let clock = TotpClock::fixed(T0);
        let server_clock = clock.clone();
        let server = common::start_server_with(|config| config.totp_clock = server_clock);
        server.add_account("alice", PASSWORD, 1_000);
        Self {
            server,
            clock,
            // Fixed, so every assertion below about distinct codes holds on every run.
            secret: *b"securebank-test-key!",
        }
    }

    /// Moves the authenticator clock to 10 s into step `step`.
    fn at_step(&self, step: u64) {
        self.clock.set(step * TOTP_STEP_SECS + 10);
    }

    fn code(&self, step: u64) -> String {
        common::independent_totp(&self.secret, step)
    }

    fn admin(&self, command: &Command) -> Reply {
        operator_client::call(&socket_path(&self.server.data_dir()), command).unwrap()
    }

    /// Enrols the bench's secret through the admin socket, confirmed with `code`.
    fn enrol_with(&self, code: &str) -> Reply {
        self.admin(&Command::EnrolTotp {
            name: "alice".into(),
            secret: TotpSecret::from_bytes(self.secret),
            code: Zeroizing::new(code.into()),
        })
    }

    /// Enrols alice at step `S0` (that step is used up by the confirmation).
    fn enrolled() -> Self {
        let bench = Self::new();
        let reply = bench.enrol_with(&bench.code(S0));
        assert_eq!(reply.status, Status::Done, "{reply:?}");
        bench
    }

    /// A connection past the password step, waiting for an authenticator code.
    fn awaiting_code(&self) -> securebank::client::Client {
        let mut client = self.server.connect();
        assert_eq!(
            client.login_with_code_kind("alice", PASSWORD).unwrap(),
            (CodeKind::Authenticator, 120)
        );
        client
    }

    /// A code that is none of the codes of steps `step - 1 ..= step + 1`.
    fn wrong_code(&self, step: u64) -> String {
        let window: Vec<String> = (step - 1..=step + 1).map(|s| self.code(s)).collect();
        (100..)
            .map(|n| self.code(step + n))
            .find(|code| !window.contains(code))
            .unwrap()
    }
}

#[test]
fn enrol_then_log_in_with_a_code_the_test_computes_from_the_secret() {
    let bench = Bench::enrolled();
    bench.at_step(S0 + 1);
    let mut client = bench.awaiting_code();
    assert!(
        !bench.server.outbox().join("alice.otp").exists(),
        "no console code is issued for an authenticator account"
    );
    assert_eq!(
        client.submit_otp(&bench.code(S0 + 1)).unwrap(),
        ("alice".to_string(), 1_000)
    );
    assert_eq!(client.balance().unwrap(), 1_000);
}

#[test]
fn a_version_1_login_gets_otp_sent_and_the_app_code_still_logs_in() {
    let bench = Bench::enrolled();
    bench.at_step(S0 + 1);
    let mut client = bench.server.connect();
    let answer = client
        .request(&Request::Login {
            username: "alice".into(),
            password: PASSWORD.into(),
        })
        .unwrap();
    assert_eq!(answer, Response::OtpSent { ttl_secs: 120 });
    assert_eq!(client.submit_otp(&bench.code(S0 + 1)).unwrap().0, "alice");
}

#[test]
fn a_replayed_code_in_the_same_step_is_refused() {
    let bench = Bench::enrolled();
    bench.at_step(S0 + 1);
    let code = bench.code(S0 + 1);
    let mut first = bench.awaiting_code();
    first.submit_otp(&code).unwrap();
    let mut second = bench.awaiting_code();
    assert_eq!(refused(second.submit_otp(&code)), ErrorCode::OtpInvalid);
    // The confirmation code of the enrolment is used up as well.
    assert_eq!(refused(second.submit_otp(&bench.code(S0))), ErrorCode::OtpInvalid);
    // The next step's code is good.
    assert_eq!(second.submit_otp(&bench.code(S0 + 2)).unwrap().0, "alice");
}

#[test]
fn a_code_from_two_steps_ago_is_refused() {
    let bench = Bench::enrolled();
    bench.at_step(S0 + 5);
    let stale = bench.code(S0 + 3);
    assert!((S0 + 4..=S0 + 6).all(|step| bench.code(step) != stale));
    let mut client = bench.awaiting_code();
    assert_eq!(refused(client.submit_otp(&stale)), ErrorCode::OtpInvalid);
    assert_eq!(client.submit_otp(&bench.code(S0 + 5)).unwrap().0, "alice");
}

#[test]
fn one_step_before_and_one_step_after_the_current_one_are_accepted() {
    let bench = Bench::enrolled();
    bench.at_step(S0 + 10);
    let mut client = bench.awaiting_code();
    assert_eq!(client.submit_otp(&bench.code(S0 + 9)).unwrap().0, "alice");
    assert_eq!(client.request(&Request::Logout).unwrap(), Response::LoggedOut);
    let mut client = bench.awaiting_code();
    assert_eq!(client.submit_otp(&bench.code(S0 + 11)).unwrap().0, "alice");
    // Step S0 + 10 is now behind the last step used: its code can no longer log in.
    let mut client = bench.awaiting_code();
    assert_eq!(refused(client.submit_otp(&bench.code(S0 + 10))), ErrorCode::OtpInvalid);
}

#[test]
fn wrong_codes_count_toward_the_lockout() {
    let bench = Bench::enrolled();
    bench.at_step(S0 + 1);
    let wrong = bench.wrong_code(S0 + 1);
    let mut client = bench.awaiting_code();
    assert_eq!(refused(client.submit_otp(&wrong)), ErrorCode::OtpInvalid);
    assert_eq!(refused(client.submit_otp(&wrong)), ErrorCode::OtpInvalid);
    assert_eq!(refused(client.submit_otp(&wrong)), ErrorCode::OtpTriesExhausted);
    let mut client = bench.awaiting_code();
    assert_eq!(LOCKOUT_THRESHOLD, 5);
    assert_eq!(refused(client.submit_otp(&wrong)), ErrorCode::OtpInvalid);
    assert_eq!(refused(client.submit_otp(&wrong)), ErrorCode::AccountLocked);
    // Locked: even the right password and the right code do nothing now.
    assert_eq!(
        refused(client.login_with_code_kind("alice", PASSWORD)),
        ErrorCode::AccountLocked
    );
}

#[test]
fn enrolment_with_a_wrong_confirmation_code_does_not_take_effect() {
    let bench = Bench::new();
    let reply = bench.enrol_with(&bench.wrong_code(S0));
    assert_eq!(reply.status, Status::Refused);
    assert!(reply.text.contains("nothing was enrolled"), "{}", reply.text);
    let reply = bench.enrol_with(&bench.code(S0 - 2));
    assert_eq!(
        reply.status,
        Status::Refused,
        "a code from two steps ago does not confirm"
    );
    let status = bench.admin(&Command::TotpStatus { name: "alice".into() });
    assert_eq!(status.text, "alice logs in with console codes");
    let mut client = bench.server.connect();
    let (kind, _) = client.login_with_code_kind("alice", PASSWORD).unwrap();
    assert_eq!(kind, CodeKind::Device);
    client.submit_otp(&bench.server.read_otp("alice")).unwrap();
}

#[test]
fn enrolment_of_an_unknown_account_is_refused() {
    let bench = Bench::new();
    let reply = bench.admin(&Command::EnrolTotp {
        name: "zed".into(),
        secret: TotpSecret::from_bytes(bench.secret),
        code: Zeroizing::new(bench.code(S0)),
    });
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (Status::Refused, "no account is named zed")
    );
}

#[test]
fn remove_totp_reverts_to_console_codes() {
    let bench = Bench::enrolled();
    let reply = bench.admin(&Command::RemoveTotp { name: "alice".into() });
    assert_eq!(reply.status, Status::Done, "{reply:?}");
    let mut client = bench.server.connect();
    let (kind, ttl) = client.login_with_code_kind("alice", PASSWORD).unwrap();
    assert_eq!((kind, ttl), (CodeKind::Device, 120));
    assert_eq!(client.submit_otp(&bench.server.read_otp("alice")).unwrap().0, "alice");
    let again = bench.admin(&Command::RemoveTotp { name: "alice".into() });
    assert_eq!(again.status, Status::Refused);
    assert_eq!(again.text, "alice has no authenticator app: it uses console codes");
}

#[test]
fn a_login_waiting_for_a_code_when_the_app_is_removed_must_start_again() {
    let bench = Bench::enrolled();
    bench.at_step(S0 + 1);
    let mut client = bench.awaiting_code();
    bench.admin(&Command::RemoveTotp { name: "alice".into() });
    assert_eq!(refused(client.submit_otp(&bench.code(S0 + 1))), ErrorCode::OtpExpired);
}

#[test]
fn the_secret_and_the_last_step_used_survive_a_checkpoint_and_a_restart_and_verify_passes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = TotpSecret::from_bytes([0x42; 20]);
    let code = |step: u64| common::independent_totp(secret.as_bytes(), step);
    let at = |step: u64| step * TOTP_STEP_SECS + 10;
    {
        let (bank, _) = common::open_bank_when_free(&data, BankOptions::default());
        let record = securebank::server::auth::hash_password(PASSWORD, common::TEST_ITERATIONS);
        bank.open_account("alice", record, 100, T0).unwrap().unwrap();
        bank.enrol_totp("alice", &secret, &code(S0), at(S0), T0)
            .unwrap()
            .unwrap();
        bank.checkpoint().unwrap();
        assert_eq!(
            bank.totp_login("alice", &code(S0 + 1), at(S0 + 1), T0).unwrap(),
            Ok(100)
        );
        bank.close().unwrap();
    }
    // Replay after the checkpoint (the login), then a checkpoint with the step in it.
    for _ in 0..2 {
        let (bank, _) = common::open_bank_when_free(&data, BankOptions::default());
        assert!(bank.uses_totp("alice"));
        assert_eq!(
            bank.totp_login("alice", &code(S0 + 1), at(S0 + 1), T0).unwrap(),
            Err(ErrorCode::OtpInvalid),
            "the step used before the restart stays used"
        );
        bank.close().unwrap();
    }
    let verified = common::run_verify(&data);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let (bank, _) = common::open_bank_when_free(&data, BankOptions::default());
    assert_eq!(
        bank.totp_login("alice", &code(S0 + 2), at(S0 + 2), T0).unwrap(),
        Ok(100)
    );
    bank.remove_totp("alice", T0).unwrap().unwrap();
    assert!(!bank.uses_totp("alice"));
}

#[test]
fn enrol_totp_through_the_binary_offline_shows_the_uri_secret_and_qr_code_then_enrols_on_a_right_code() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::add_account_with_binary(&data, "alice", PASSWORD, "10.00");
    let (output, secret) = common::enrol_totp_with_binary(&data, "alice", &[Some(0)]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(secret.len(), 20, "160 bits");
    let uri = stdout
        .lines()
        .find_map(|line| line.strip_prefix("uri:"))
        .unwrap()
        .trim();
    let base32 = TotpSecret::from_bytes(secret.clone().try_into().unwrap()).to_base32();
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/securebank:alice?secret={}&issuer=securebank&algorithm=SHA1&digits=6&period=30",
            base32.as_str()
        )
    );
    assert!(
        stdout.contains("█▀▀▀▀▀█") || stdout.contains("▄▄▄▄▄"),
        "a QR code: {stdout}"
    );
    assert!(stdout.contains("offline: no server is running"));
    assert!(stdout.contains("enrolled an authenticator app for alice"), "{stdout}");

    // remove-totp, offline too; a second removal is refused.
    let args = [
        "remove-totp".as_ref(),
        "alice".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
    ];
    let removed = common::run_bank_server(&args, std::time::Duration::from_secs(30));
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    let again = common::run_bank_server(&args, std::time::Duration::from_secs(30));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("has no authenticator app"));
}

#[test]
fn enrol_totp_through_the_binary_with_wrong_codes_enrols_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::add_account_with_binary(&data, "alice", PASSWORD, "10.00");
    let (output, _) = common::enrol_totp_with_binary(&data, "alice", &[None, Some(-3), None]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("2 tries left") && stdout.contains("0 tries left"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing was enrolled"));
    let (bank, _) = common::open_bank_when_free(&data, BankOptions::default());
    assert!(!bank.uses_totp("alice"));
}

#[test]
fn enrol_totp_of_an_unknown_account_is_refused_before_any_secret_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::add_account_with_binary(&data, "alice", PASSWORD, "10.00");
    let (output, secret) = common::enrol_totp_with_binary(&data, "zed", &[]);
    assert!(!output.status.success());
    assert!(secret.is_empty());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("secret:"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no open account is named zed"));
}

#[test]
fn enrol_totp_through_a_running_server_then_log_in_with_the_next_code() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outbox = dir.path().join("outbox");
    common::add_account_with_binary(&data, "alice", PASSWORD, "10.00");
    let server = common::spawn_server_process(&data, &outbox, &[]);
    let (output, secret) = common::enrol_totp_with_binary(&data, "alice", &[Some(0)]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("via the running server"), "{stdout}");
    let mut client = server.connect();
    let (kind, _) = client.login_with_code_kind("alice", PASSWORD).unwrap();
    assert_eq!(kind, CodeKind::Authenticator);
    // The enrolment used the current step; the next one's code is within the ±1 window
    // whether or not a step boundary passed meanwhile.
    let code = common::independent_totp(&secret, common::current_totp_step() + 1);
    assert_eq!(client.submit_otp(&code).unwrap(), ("alice".to_string(), 1_000));
}
