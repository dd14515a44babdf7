//! Connecting from a chosen source address, e.g. `127.0.0.2`, so one machine can play many
//! clients.
//!
//! A server that limits work *per source address* can only be tested, and benchmarked, if
//! the test can choose where its connections come from. On Linux every address in
//! `127.0.0.0/8` is the loopback interface: a client may bind `127.0.0.2` … `127.255.255.254`
//! as its source and connect to a server listening on `127.0.0.1`, and the server's
//! `accept` sees that address as the peer. `bank-bench --flood` sends its attackers from
//! `127.0.0.2`–`127.0.0.9` while the customers stay on `127.0.0.1`; the hostile tests do
//! the same.
//!
//! The standard library cannot bind a socket before connecting it (`TcpStream::connect`
//! does both in one step, from an address the kernel picks), and this crate forbids
//! `unsafe`. So the socket is made with `rustix`'s safe wrappers of `socket`, `bind`,
//! `connect` and `poll` (`rustix` is already in the tree through `tempfile`; `nix`, also in
//! the tree, would have brought one more crate for its socket calls), and handed to std as
//! the [`OwnedFd`](std::os::fd::OwnedFd) `socket` returns (`TcpStream::from(OwnedFd)` is
//! safe): from then on it is an ordinary blocking [`TcpStream`].
//!
//! ```no_run
//! use std::net::{IpAddr, Ipv4Addr, SocketAddr};
//! use std::time::Duration;
//!
//! let server: SocketAddr = "127.0.0.1:7878".parse().unwrap();
//! let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
//! let stream = securebank::source_address::connect_from(source, server, Duration::from_secs(5))?;
//! assert_eq!(stream.local_addr()?.ip(), source);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, bind, connect, socket_with, sockopt};

/// Opens a TCP connection to `server` whose source address is `source` (the port is chosen
/// by the kernel), waiting at most `timeout` for the connection to be established.
///
/// The returned stream is blocking, with no read or write timeout set, exactly like one
/// from [`TcpStream::connect_timeout`].
///
/// Errors: `InvalidInput` if `source` and `server` are not of the same family (IPv4 or
/// IPv6); `AddrNotAvailable` if `source` is not an address of this machine; `TimedOut` if
/// the connection is not established within `timeout` (a server whose listen backlog is
/// full drops the SYN, and the kernel would otherwise keep retrying for minutes); any other
/// error of `connect`, such as `ConnectionRefused`.
pub fn connect_from(source: IpAddr, server: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let family = match (source, server) {
        (IpAddr::V4(_), SocketAddr::V4(_)) => AddressFamily::INET,
        (IpAddr::V6(_), SocketAddr::V6(_)) => AddressFamily::INET6,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("source {source} and server {server} are not of the same address family"),
            ));
        }
    };
    let stream = TcpStream::from(socket_with(family, SocketType::STREAM, socket_flags(), None)?);
    // Non-blocking, so that `connect` returns at once and the wait below can have a limit.
    stream.set_nonblocking(true)?;
    bind(&stream, &SocketAddr::new(source, 0))?;
    match connect(&stream, &server) {
        Ok(()) => {}
        Err(Errno::INPROGRESS) => wait_until_connected(&stream, timeout)?,
        Err(errno) => return Err(errno.into()),
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Flags for the new socket: close-on-exec, as std sets on every socket it makes, so that
/// processes spawned later (a benchmark's servers) do not inherit client sockets. Set
/// atomically where the platform can (not on Apple's).
fn socket_flags() -> SocketFlags {
    #[cfg(not(target_vendor = "apple"))]
    {
        SocketFlags::CLOEXEC
    }
    #[cfg(target_vendor = "apple")]
    {
        SocketFlags::empty()
    }
}

/// Waits until a non-blocking `connect` finishes, and returns its outcome.
fn wait_until_connected(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
        }
        let limit = Timespec::try_from(left).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut fds = [PollFd::new(stream, PollFlags::OUT)];
        match poll(&mut fds, Some(&limit)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => break,
            Err(errno) => return Err(errno.into()),
        }
    }
    // Writable (or hung up) means the TCP handshake ended; SO_ERROR says how.
    sockopt::socket_error(stream)?.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    #[test]
    fn the_server_sees_the_chosen_source_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let client = connect_from(source, server, Duration::from_secs(10)).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), source);
        assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
        assert_eq!(client.peer_addr().unwrap(), server);
    }

    #[test]
    fn the_stream_is_blocking_and_carries_bytes_both_ways() {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
        let mut client = connect_from(source, listener.local_addr().unwrap(), Duration::from_secs(10)).unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        client.write_all(b"ping").unwrap();
        let mut four = [0u8; 4];
        accepted.read_exact(&mut four).unwrap();
        assert_eq!(&four, b"ping");
        accepted.write_all(b"pong").unwrap();
        // A non-blocking stream would fail here with WouldBlock if the reply were late.
        client.read_exact(&mut four).unwrap();
        assert_eq!(&four, b"pong");
    }

    #[test]
    fn a_closed_port_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        drop(listener);
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
        let err = connect_from(source, server, Duration::from_secs(10)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn mixed_address_families_are_refused_before_any_socket_call() {
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let err = connect_from("::1".parse().unwrap(), server, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_source_address_of_another_machine_cannot_be_bound() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine.
        let source = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let err = connect_from(source, listener.local_addr().unwrap(), Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
    }
}
