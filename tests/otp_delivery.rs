//! `--otp-command`: the program an operator plugs in to deliver console codes (an SMS or
//! e-mail gateway). It gets the code on standard input; a failing or hanging program makes
//! Login answer `unavailable` without counting a failed login, and the server keeps serving.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use securebank::error::{ClientError, ErrorCode};
use securebank::limits::LOCKOUT_THRESHOLD;

const PASSWORD: &str = "alice-password";

/// Writes an executable shell script. The bytes are written by `install`, a separate process,
/// so no descriptor open for writing it can leak into a program another test thread is
/// starting at that moment (which would make running the script fail with "text file busy").
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let source = dir.join(format!("{name}.txt"));
    std::fs::write(&source, format!("#!/bin/sh\n{body}\n")).unwrap();
    let program = dir.join(name);
    let status = Command::new("install")
        .args(["-m", "0700"])
        .arg(&source)
        .arg(&program)
        .status()
        .unwrap();
    assert!(status.success());
    program
}

fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Refused(code)) => code,
        other => panic!("expected the server to refuse, got {other:?}"),
    }
}

#[test]
fn the_delivery_command_receives_the_code_on_stdin_and_that_code_logs_in() {
    let scripts = tempfile::tempdir().unwrap();
    let received = scripts.path().join("sms.log");
    // The README's example gateway: append "NAME CODE" to a file.
    let program = script(
        scripts.path(),
        "deliver",
        &format!("read code; echo \"$SECUREBANK_USER $code\" >> '{}'", received.display()),
    );
    let server = common::start_server_with(|config| config.otp_command = Some(program));
    server.add_account("alice", PASSWORD, 1_000);
    let mut client = server.connect();
    client.login("alice", PASSWORD).unwrap();
    let line = std::fs::read_to_string(&received).unwrap();
    let code = line.trim().strip_prefix("alice ").expect("the name, then the code");
    assert_eq!(code, server.read_otp("alice"), "the outbox still gets the same code");
    assert_eq!(client.submit_otp(code).unwrap(), ("alice".to_string(), 1_000));
}

#[test]
fn a_failing_delivery_command_answers_unavailable_counts_no_failure_and_the_server_stays_up() {
    let scripts = tempfile::tempdir().unwrap();
    let program = script(scripts.path(), "deliver", "echo 'gateway refused' >&2; exit 1");
    let server = common::start_server_with(|config| config.otp_command = Some(program));
    server.add_account("alice", PASSWORD, 1_000);
    let mut client = server.connect();
    // More attempts than the lockout threshold: had any counted as a failed login, the
    // last would be answered account_locked. An undelivered code is not the customer's fault.
    for _ in 0..=LOCKOUT_THRESHOLD {
        assert_eq!(refused(client.login("alice", PASSWORD)), ErrorCode::Unavailable);
    }
    assert_eq!(server.connect().echo(b"still up").unwrap(), b"still up");
    // The wrong password is still a failure, and is still answered as one.
    assert_eq!(
        refused(client.login("alice", "wrong-password")),
        ErrorCode::InvalidCredentials
    );
}

#[test]
fn a_hanging_delivery_command_is_killed_at_its_deadline_and_answers_unavailable() {
    let scripts = tempfile::tempdir().unwrap();
    let program = script(scripts.path(), "deliver", "exec sleep 600");
    let server = common::start_server_with(|config| {
        config.otp_command = Some(program);
        config.otp_command_timeout = Duration::from_millis(200);
    });
    server.add_account("alice", PASSWORD, 1_000);
    let mut client = server.connect();
    assert_eq!(refused(client.login("alice", PASSWORD)), ErrorCode::Unavailable);
    // The same connection is still usable, and so is the server.
    assert_eq!(client.echo(b"ping").unwrap(), b"ping");
    assert_eq!(server.connect().echo(b"still up").unwrap(), b"still up");
}

#[test]
fn a_missing_delivery_program_answers_unavailable() {
    let server = common::start_server_with(|config| {
        config.otp_command = Some(PathBuf::from("/nonexistent/securebank-deliver"));
    });
    server.add_account("alice", PASSWORD, 1_000);
    let mut client = server.connect();
    assert_eq!(refused(client.login("alice", PASSWORD)), ErrorCode::Unavailable);
}
