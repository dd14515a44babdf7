//! The shortest end-to-end path: handshake, login with a code, a deposit.
mod common;

#[test]
fn handshake_login_and_deposit_over_a_real_socket() {
    let server = common::start_server();
    server.add_account("alice", "alice-password", 1_000);
    let mut client = server.login("alice", "alice-password");
    assert_eq!(client.echo(b"ping").unwrap(), b"ping");
    assert_eq!(client.deposit(securebank::client::new_txid(), 250).unwrap(), 1_250);
    assert_eq!(client.balance().unwrap(), 1_250);
}
