//! `--otp-command PROGRAM`: hands each console code to a program of the operator's, the way
//! a bank plugs in an SMS or e-mail gateway.
//!
//! The program is run directly, never through a shell (so no name or code is ever parsed as
//! shell syntax): `PROGRAM NAME`, with `SECUREBANK_USER=NAME` and
//! `SECUREBANK_OTP_TTL_SECS=SECONDS` added to the server's environment, and the code and a
//! newline on its standard input, which is then closed. Exit status 0 means delivered.
//!
//! Invariants: the program gets at most the configured time (default
//! [`DEFAULT_OTP_COMMAND_TIMEOUT_SECS`](crate::limits::DEFAULT_OTP_COMMAND_TIMEOUT_SECS));
//! at the deadline it is killed (SIGKILL) and reaped, so no run outlives its login by more
//! than that; its standard output and error go to the server log, each line prefixed with
//! `[otp-command NAME]`, at most [`MAX_OTP_COMMAND_LOG_LINES`] lines of
//! [`MAX_OTP_COMMAND_LOG_LINE_BYTES`] per stream (the rest is read and dropped, so the
//! program never blocks on a full pipe); the code itself is never logged by the server.
//! Only the program is killed, not processes it started: a script that starts a long-lived
//! child should `exec` it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::DeliveryError;
use crate::limits::{MAX_OTP_COMMAND_LOG_LINE_BYTES, MAX_OTP_COMMAND_LOG_LINES};

/// Environment variable that carries the account name to the program.
pub const USER_VARIABLE: &str = "SECUREBANK_USER";

/// Environment variable that carries the code's lifetime in seconds to the program.
pub const TTL_VARIABLE: &str = "SECUREBANK_OTP_TTL_SECS";

/// Longest pause between two checks of whether the program has ended. Short enough that a
/// login waits at most this long after the program is done.
const POLL_MAX: Duration = Duration::from_millis(10);

/// Runs `program` for one code of `username` and waits for it, at most `timeout`.
pub fn run(program: &Path, username: &str, code: &str, ttl_secs: u64, timeout: Duration) -> Result<(), DeliveryError> {
    let mut child = Command::new(program)
        .arg(username)
        .env(USER_VARIABLE, username)
        .env(TTL_VARIABLE, ttl_secs.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(DeliveryError::CommandStart)?;
    copy_to_log(child.stdout.take(), username);
    copy_to_log(child.stderr.take(), username);
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading its input is judged by its exit status, so a
        // broken pipe here is not an error of its own. The code is 7 bytes: far below a
        // pipe's buffer, so this write never waits for the program.
        let _ = writeln!(stdin, "{code}");
    }
    let status = wait_until(&mut child, Instant::now() + timeout)?;
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(DeliveryError::CommandFailed(describe(status))),
        None => Err(DeliveryError::CommandTimedOut(timeout.as_secs())),
    }
}

/// Waits for `child` until `deadline`; past it, kills and reaps it and returns `None`.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>, DeliveryError> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().map_err(DeliveryError::CommandIo)? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            // `kill` fails only if the program has just exited: reaping it is right either way.
            let _ = child.kill();
            child.wait().map_err(DeliveryError::CommandIo)?;
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(POLL_MAX);
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Copies the lines of one of the program's output streams to the server log on a thread of
/// its own, which ends when the stream does.
fn copy_to_log(stream: Option<impl Read + Send + 'static>, username: &str) {
    let Some(stream) = stream else { return };
    let prefix = format!("[otp-command {username}]");
    let reader_prefix = prefix.clone();
    let spawned = std::thread::Builder::new()
        .name("otp-command-log".into())
        .spawn(move || log_lines(BufReader::new(stream), &reader_prefix, |line| eprintln!("{line}")));
    if let Err(err) = spawned {
        // Without a reader the program could block on a full pipe; its deadline still holds.
        eprintln!("{prefix} cannot read the program's output: {err}");
    }
}

/// Passes the first lines of `reader` to `emit`, prefixed and cut to length, then a count of
/// the lines not shown; reads to the end either way.
fn log_lines(mut reader: impl BufRead, prefix: &str, mut emit: impl FnMut(String)) {
    let mut shown = 0;
    let mut dropped = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if shown < MAX_OTP_COMMAND_LOG_LINES => {
                shown += 1;
                let end = line.len().min(MAX_OTP_COMMAND_LOG_LINE_BYTES);
                let text = String::from_utf8_lossy(&line[..end]);
                emit(format!("{prefix} {}", text.trim_end()));
            }
            Ok(_) => dropped += 1,
        }
    }
    if dropped > 0 {
        emit(format!("{prefix} ({dropped} more lines not shown)"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An executable script, written by `install` (another process) so that no descriptor
    /// open for writing it leaks into a program another test thread starts meanwhile (which
    /// would make running it fail with "text file busy").
    fn script(dir: &Path, body: &str) -> std::path::PathBuf {
        let source = dir.join("deliver.txt");
        std::fs::write(&source, format!("#!/bin/sh\n{body}\n")).unwrap();
        let path = dir.join("deliver.sh");
        let status = Command::new("install")
            .args(["-m", "0700"])
            .arg(&source)
            .arg(&path)
            .status();
        assert!(status.unwrap().success());
        path
    }

    #[test]
    fn the_program_gets_the_name_as_argument_and_variable_and_the_code_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got");
        let program = script(
            dir.path(),
            &format!(
                "read code; echo \"$1 $SECUREBANK_USER $SECUREBANK_OTP_TTL_SECS $code\" > '{}'",
                out.display()
            ),
        );
        run(&program, "alice", "012345", 120, Duration::from_secs(30)).unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap(), "alice alice 120 012345\n");
    }

    #[test]
    fn a_non_zero_exit_is_a_failure_naming_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(dir.path(), "echo gateway down >&2; exit 3");
        let err = run(&program, "alice", "012345", 120, Duration::from_secs(30)).unwrap_err();
        assert!(matches!(&err, DeliveryError::CommandFailed(status) if status == "exit status 3"));
    }

    #[test]
    fn a_missing_program_is_a_failure_to_start() {
        let err = run(
            Path::new("/nonexistent/deliver"),
            "alice",
            "012345",
            120,
            Duration::from_secs(30),
        )
        .unwrap_err();
        assert!(matches!(err, DeliveryError::CommandStart(_)));
    }

    #[test]
    fn a_program_past_its_deadline_is_killed_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(dir.path(), "exec sleep 600");
        let err = run(&program, "alice", "012345", 120, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, DeliveryError::CommandTimedOut(_)));
    }

    #[test]
    fn only_the_first_lines_of_output_are_logged_and_the_rest_counted() {
        let long = "x".repeat(MAX_OTP_COMMAND_LOG_LINE_BYTES + 50);
        let mut text = format!("{long}\n");
        text.extend((1..MAX_OTP_COMMAND_LOG_LINES + 5).map(|n| format!("line {n}\n")));
        let mut logged = Vec::new();
        log_lines(std::io::Cursor::new(text.into_bytes()), "[p]", |line| logged.push(line));
        assert_eq!(logged.len(), MAX_OTP_COMMAND_LOG_LINES + 1);
        assert_eq!(logged[0], format!("[p] {}", &long[..MAX_OTP_COMMAND_LOG_LINE_BYTES]));
        assert_eq!(logged[1], "[p] line 1");
        assert_eq!(logged[MAX_OTP_COMMAND_LOG_LINES], "[p] (5 more lines not shown)");
    }
}
