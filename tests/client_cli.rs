//! The command lines of both real binaries and the client's plain messages: `--help` on
//! standard output with every flag, unknown options refused as unknown with a hint,
//! `bank-client forget ADDR` (and the mismatch banner that names it), and a missing server
//! reported with the command that starts one.
mod common;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn run(binary: &str, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    common::output_within(child, Duration::from_secs(20))
}

fn client(args: &[&str], stdin: &str) -> Output {
    run(env!("CARGO_BIN_EXE_bank-client"), args, stdin)
}

fn server(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_bank-server"), args, "")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn both_binaries_print_help_with_every_flag_on_stdout_and_exit_zero() {
    for (output, flags) in [
        (
            client(&["--help"], ""),
            &[
                "--connect ADDR",
                "--known-servers PATH",
                "--pin SHA256:",
                "--trace[=bytes]",
                "forget ADDR",
            ][..],
        ),
        (client(&["-h"], ""), &["--connect ADDR"][..]),
        (
            server(&["--help"]),
            &[
                "--data DIR",
                "--listen ADDR",
                "--demo-accounts",
                "--otp-outbox DIR",
                "--max-connections N",
                "--pbkdf2-iterations N",
                "--txid-retention-secs N",
                "--keep-checkpoints K",
                "unlock NAME",
                "make verify",
            ][..],
        ),
    ] {
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{:?}: {stdout}", output.status);
        assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
        for flag in flags {
            assert!(stdout.contains(flag), "{flag} missing from:\n{stdout}");
        }
    }
}

#[test]
fn an_unknown_option_is_refused_as_unknown_with_a_hint_by_both_binaries() {
    for (output, name) in [
        (client(&["--bogus"], ""), "bank-client"),
        (client(&["--bogus", "1"], ""), "bank-client"),
        (server(&["--bogus"]), "bank-server"),
    ] {
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("unknown option --bogus"), "{stderr}");
        assert!(!stderr.contains("needs a value"), "{stderr}");
        assert!(stderr.contains(&format!("Try `{name} --help`")), "{stderr}");
    }
}

#[test]
fn with_no_server_the_client_says_so_and_how_to_start_one_without_system_error_text() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    }; // closed: nothing listens there now
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    let output = client(&["--connect", &addr, "--known-servers", known.to_str().unwrap()], "");
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("no server at {addr} — start one with `make run-server`")),
        "{stderr}"
    );
    assert!(!stderr.contains("os error"), "{stderr}");
}

#[test]
fn the_mismatch_banner_names_the_forget_command_which_removes_the_pin_so_the_next_run_asks_again() {
    let server = common::start_server();
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    let known_text = known.to_str().unwrap();
    let old = common::other_identity().fingerprint().to_string();
    std::fs::write(&known, format!("# mine\n{} {old}\n", server.addr)).unwrap();
    let addr = server.addr.to_string();

    let refused = client(&["--connect", &addr, "--known-servers", known_text], "");
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success());
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].starts_with("bank-client: the server's key is not the one pinned"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("@@@@"),
        "the banner starts on its own line:\n{stderr}"
    );
    assert!(!stderr.contains("Connection refused"), "{stderr}");
    let command = format!("bank-client forget {addr} --known-servers {known_text}");
    assert!(stderr.contains(&command), "{stderr}");

    // The command as printed, run through the real binary.
    let words: Vec<&str> = command.split_whitespace().skip(1).collect();
    let forgot = client(&words, "");
    assert!(forgot.status.success(), "{}", text(&forgot.stderr));
    assert!(
        text(&forgot.stdout).contains(&format!("Forgot the key {old} pinned for {addr}")),
        "{}",
        text(&forgot.stdout)
    );
    assert_eq!(std::fs::read_to_string(&known).unwrap(), "# mine\n");

    // Now the server is a first contact again: its key is shown and the person is asked.
    let asked = client(&["--connect", &addr, "--known-servers", known_text], "no\n");
    let stdout = text(&asked.stdout);
    assert!(stdout.contains("can't be established"), "{stdout}");
    assert!(stdout.contains(&server.fingerprint), "{stdout}");
}
