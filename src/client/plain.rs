//! Client errors in plain words, each with a next step: what the person sees instead of
//! `os error 111` or `failed to fill whole buffer`.

use std::io::ErrorKind;
use std::net::SocketAddr;

use crate::error::{ChannelError, ClientError};

/// Whether the connection itself failed (closed, reset, timed out, or a record that did not
/// authenticate): after such an error a sent request may or may not have been applied.
pub fn connection_lost(err: &ClientError) -> bool {
    matches!(err, ClientError::Channel(_))
}

/// One sentence saying what happened and what to do, for the server at `addr`.
pub fn describe(err: &ClientError, addr: &SocketAddr) -> String {
    match err {
        ClientError::Channel(ChannelError::Io(io)) => match io.kind() {
            ErrorKind::ConnectionRefused => {
                format!("no server at {addr} — start one with `make run-server`")
            }
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => "the server closed the connection (did it restart?)".to_string(),
            ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                format!("the server at {addr} did not answer in time — is it overloaded or stopped?")
            }
            ErrorKind::AddrNotAvailable | ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                format!("cannot reach {addr} — check the address given with --connect")
            }
            kind => format!("the connection to {addr} failed ({kind}) — check that the server is running"),
        },
        ClientError::Channel(ChannelError::Timeout) => {
            format!("the server at {addr} did not answer in time — is it overloaded or stopped?")
        }
        ClientError::Channel(ChannelError::ServerBusy) => {
            format!("the server at {addr} is busy (too many connections) — try again in a moment")
        }
        ClientError::Channel(ChannelError::RecordRejected) => {
            "a message from the server failed its integrity check, so the connection was closed \
             (someone may be tampering with the network)"
                .to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: ErrorKind, text: &str) -> ClientError {
        ClientError::Channel(ChannelError::Io(std::io::Error::new(kind, text)))
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:7878".parse().unwrap()
    }

    #[test]
    fn a_refused_connection_says_no_server_and_how_to_start_one() {
        let text = describe(
            &io(ErrorKind::ConnectionRefused, "Connection refused (os error 111)"),
            &addr(),
        );
        assert_eq!(text, "no server at 127.0.0.1:7878 — start one with `make run-server`");
    }

    #[test]
    fn a_closed_connection_says_the_server_closed_it_without_system_text() {
        let text = describe(&io(ErrorKind::UnexpectedEof, "failed to fill whole buffer"), &addr());
        assert_eq!(text, "the server closed the connection (did it restart?)");
        let reset = describe(
            &io(ErrorKind::ConnectionReset, "Connection reset by peer (os error 104)"),
            &addr(),
        );
        assert!(!reset.contains("os error"), "{reset}");
    }

    #[test]
    fn other_io_errors_never_show_the_os_error_text() {
        let text = describe(
            &io(ErrorKind::PermissionDenied, "Permission denied (os error 13)"),
            &addr(),
        );
        assert!(!text.contains("os error"), "{text}");
        assert!(text.contains("127.0.0.1:7878"), "{text}");
    }
}
