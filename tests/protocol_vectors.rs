//! PROTOCOL.md's worked example, checked against the code two ways, and a client written from
//! the document alone.
//!
//! | test | what it proves |
//! |---|---|
//! | `document_vectors_match_the_crate` | every value in the ```` ```vectors ```` blocks of PROTOCOL.md is what the crate's own handshake, key schedule, record layer and codec produce |
//! | `document_vectors_match_an_independent_computation` | the same values, recomputed with the primitive crates only by following the document |
//! | `document_states_every_limit_and_error_code` | the limits table and the error-code table agree with the code |
//! | `independent_client_from_protocol_md_completes_a_session` | a client built from the document (primitive crates and `std::net` only) completes a real session |
//! | `print_protocol_vectors` (ignored) | prints the vectors blocks to paste into PROTOCOL.md |
//!
//! To regenerate the blocks after a deliberate protocol change:
//! `cargo test --test protocol_vectors -- --ignored --nocapture print_protocol_vectors`
mod common;

use std::collections::BTreeMap;

use securebank::channel::handshake::{self, ClientHandshake, ServerHandshake};
use securebank::channel::hello::{ClientHello, ServerHello};
use securebank::channel::keys;
use securebank::error::ErrorCode;
use securebank::frame::{self, FrameKind};
use securebank::message::{EntryKind, HistoryEntry, Request, Response};
use securebank::server::operator::{Command as OperatorCommand, Reply as OperatorReply};

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md");
const KEY_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test_server_key.pem");

// ---------------------------------------------------------------------------------------------
// The document: its ```vectors blocks.
// ---------------------------------------------------------------------------------------------

/// The `name = value` entries of every ```vectors block of PROTOCOL.md. A line with `=` starts
/// an entry; a line without one continues the previous entry; `#` lines are comments.
struct Doc {
    text: String,
    entries: BTreeMap<String, String>,
}

impl Doc {
    fn load() -> Self {
        let text = std::fs::read_to_string(DOC_PATH).expect("PROTOCOL.md is readable");
        let mut entries = BTreeMap::new();
        let mut last: Option<String> = None;
        let mut inside = false;
        for line in text.lines() {
            let line = line.trim();
            if !inside {
                inside = line == "```vectors";
                continue;
            }
            if line.starts_with("```") {
                inside = false;
                last = None;
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((name, value)) = line.split_once('=') {
                let name = name.trim().to_string();
                let previous = entries.insert(name.clone(), value.trim().to_string());
                assert!(previous.is_none(), "vector `{name}` appears twice in PROTOCOL.md");
                last = Some(name);
            } else {
                let name = last.as_ref().expect("a continuation line follows a `name =` line");
                let value: &mut String = entries.get_mut(name).expect("entry exists");
                value.push(' ');
                value.push_str(line);
            }
        }
        assert!(!entries.is_empty(), "PROTOCOL.md has no ```vectors block");
        Self { text, entries }
    }

    fn raw(&self, name: &str) -> &str {
        self.entries
            .get(name)
            .unwrap_or_else(|| panic!("PROTOCOL.md has no vector `{name}`"))
    }

    fn hex(&self, name: &str) -> Vec<u8> {
        unhex(self.raw(name))
    }

    fn hex32(&self, name: &str) -> [u8; 32] {
        self.hex(name).try_into().expect("a 32-byte vector")
    }

    fn text(&self, name: &str) -> &str {
        self.raw(name).trim()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|byte| !byte.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits in {text:?}");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).expect("hex digits"))
        .collect()
}

fn seq32(start: u8) -> [u8; 32] {
    std::array::from_fn(|index| start + u8::try_from(index).unwrap())
}

fn seq16(start: u8) -> [u8; 16] {
    std::array::from_fn(|index| start + u8::try_from(index).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Vector entries: what the generator prints and the checks compare.
// ---------------------------------------------------------------------------------------------

enum Value {
    /// Bytes, shown as hex; fields are separated by a space for readability.
    Hex(Vec<Vec<u8>>),
    /// Text shown as is (a fingerprint, a decimal number).
    Text(String),
}

struct Entry {
    name: &'static str,
    comment: Option<&'static str>,
    value: Value,
}

impl Entry {
    fn hex(name: &'static str, bytes: &[u8]) -> Self {
        Self {
            name,
            comment: None,
            value: Value::Hex(vec![bytes.to_vec()]),
        }
    }

    fn text(name: &'static str, text: impl Into<String>) -> Self {
        Self {
            name,
            comment: None,
            value: Value::Text(text.into()),
        }
    }

    /// A message shown field by field; asserts the fields concatenate to `encoded`.
    fn fields(name: &'static str, comment: &'static str, fields: &[&[u8]], encoded: &[u8]) -> Self {
        assert_eq!(
            fields.concat(),
            encoded,
            "field split of `{name}` does not match the encoding"
        );
        Self {
            name,
            comment: Some(comment),
            value: Value::Hex(fields.iter().map(|field| field.to_vec()).collect()),
        }
    }

    /// The value in a form the document's value can be compared with.
    fn normalized(&self) -> String {
        match &self.value {
            Value::Hex(fields) => hex(&fields.concat()),
            Value::Text(text) => text.clone(),
        }
    }

    fn doc_normalized(&self, doc: &Doc) -> String {
        match &self.value {
            Value::Hex(_) => hex(&doc.hex(self.name)),
            Value::Text(_) => doc.text(self.name).to_string(),
        }
    }

    fn print(&self) {
        if let Some(comment) = self.comment {
            println!("# {comment}");
        }
        match &self.value {
            Value::Text(text) => println!("{} = {text}", self.name),
            Value::Hex(fields) if fields.len() == 1 => {
                let text = hex(&fields[0]);
                if text.len() <= 64 {
                    println!("{} = {text}", self.name);
                } else {
                    println!("{} =", self.name);
                    for chunk in text.as_bytes().chunks(64) {
                        println!("    {}", std::str::from_utf8(chunk).unwrap());
                    }
                }
            }
            Value::Hex(fields) => {
                let words: Vec<String> = fields
                    .iter()
                    .flat_map(|field| field.chunks(32).map(hex).collect::<Vec<_>>())
                    .collect();
                let one_line = words.join(" ");
                if one_line.len() + self.name.len() + 3 <= 100 {
                    println!("{} = {one_line}", self.name);
                    return;
                }
                println!("{} =", self.name);
                let mut line = String::new();
                for word in words {
                    if !line.is_empty() && line.len() + 1 + word.len() > 72 {
                        println!("    {line}");
                        line.clear();
                    }
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(&word);
                }
                println!("    {line}");
            }
        }
    }
}

fn check_against_doc(doc: &Doc, entries: &[Entry], source: &str) {
    let mut mismatches = Vec::new();
    for entry in entries {
        let expected = entry.normalized();
        let documented = entry.doc_normalized(doc);
        if expected != documented {
            mismatches.push(format!(
                "  {}:\n    PROTOCOL.md: {documented}\n    {source}: {expected}",
                entry.name
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "PROTOCOL.md disagrees with {source} (regenerate with the ignored test print_protocol_vectors):\n{}",
        mismatches.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// A deterministic RNG for the RSA-PSS salt: yields 0x80, 0x81, 0x82, ... (wrapping).
// ---------------------------------------------------------------------------------------------

/// Yields the bytes `start, start+1, ...`; the PSS salt is the first 32 bytes drawn. (The rsa
/// crate also draws blinding values from it; blinding does not change the signature.)
struct CountingRng(u8);

impl rsa::rand_core::TryRng for CountingRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for byte in dst {
            *byte = self.0;
            self.0 = self.0.wrapping_add(1);
        }
        Ok(())
    }
}

impl rsa::rand_core::TryCryptoRng for CountingRng {}

// ---------------------------------------------------------------------------------------------
// The vectors as the crate computes them.
// ---------------------------------------------------------------------------------------------

fn nonce_for(iv: &[u8; 12], sequence: u64) -> [u8; 12] {
    let mut nonce = *iv;
    for (byte, seq_byte) in nonce[4..].iter_mut().zip(sequence.to_be_bytes()) {
        *byte ^= seq_byte;
    }
    nonce
}

/// The worked example, run through the crate's handshake state machines and record ciphers.
fn crate_handshake_vectors() -> Vec<Entry> {
    let identity = common::test_identity();
    let client = ClientHandshake::with_secrets(seq32(0x00), seq32(0x20));
    let client_hello_frame = client.client_hello_frame().to_vec();
    let client_hello = frame::read_frame(&mut &client_hello_frame[..]).unwrap();
    let client_public = ClientHello::decode(&client_hello.payload)
        .unwrap()
        .unwrap()
        .client_public;

    let (server_hello_frame, awaiting_finished) = ServerHandshake::new(&identity)
        .receive_client_hello_with(&client_hello, seq32(0x40), seq32(0x60), &mut CountingRng(0x80))
        .unwrap();
    let server_hello = frame::read_frame(&mut &server_hello_frame[..]).unwrap();
    let hello = ServerHello::decode(&server_hello.payload).unwrap();
    let signed_part = hello.signed_part();
    let th_sign = keys::sha256(&[&client_hello_frame, &signed_part]);
    let signed = keys::signed_message(&client_hello_frame, &signed_part);
    let transcript_hash = keys::sha256(&[&client_hello_frame, &server_hello_frame]);

    let shared = x25519_dalek::StaticSecret::from(seq32(0x20))
        .diffie_hellman(&x25519_dalek::PublicKey::from(hello.server_public))
        .to_bytes();
    let server_side_shared = x25519_dalek::StaticSecret::from(seq32(0x60))
        .diffie_hellman(&x25519_dalek::PublicKey::from(client_public))
        .to_bytes();
    assert_eq!(shared, server_side_shared);
    let session_keys = keys::derive(&shared, transcript_hash);
    // The crate does not expose the PRK; it is HKDF-Extract as keys::derive performs it.
    let (prk, _) = hkdf::Hkdf::<sha2::Sha256>::extract(Some(&transcript_hash), &shared);
    let finished_mac = keys::finished_mac(&session_keys.finished_key, &transcript_hash);
    let finished_plaintext = handshake::finished_plaintext(&session_keys);

    let mut presented = String::new();
    let (mut client_side, finished_record) = client
        .receive_server_hello(&server_hello, |fingerprint| {
            presented = fingerprint.to_string();
            Ok(())
        })
        .unwrap();
    assert_eq!(presented, identity.fingerprint());
    assert_eq!(client_side.session_id, transcript_hash);
    let mut finished = frame::read_frame(&mut &finished_record[..]).unwrap();
    let mut server_side = awaiting_finished.receive_finished(&mut finished).unwrap();
    assert_eq!(server_side.session_id, transcript_hash);
    assert_eq!(finished.payload, finished_plaintext);

    let echo_request = Request::Echo(b"ping".to_vec()).encode();
    assert_eq!(client_side.send.next_sequence(), 1);
    let echo_request_record = client_side.send.seal(&echo_request).unwrap();
    let mut received = frame::read_frame(&mut &echo_request_record[..]).unwrap();
    server_side
        .recv
        .open(&received.header(), &mut received.payload)
        .unwrap();
    assert_eq!(received.payload, echo_request);

    let echo_response = Response::Echo(b"ping".to_vec()).encode();
    assert_eq!(server_side.send.next_sequence(), 0);
    let echo_response_record = server_side.send.seal(&echo_response).unwrap();
    let mut received = frame::read_frame(&mut &echo_response_record[..]).unwrap();
    client_side
        .recv
        .open(&received.header(), &mut received.payload)
        .unwrap();
    assert_eq!(received.payload, echo_response);

    let c2s_iv: [u8; 12] = *session_keys.client_to_server.iv;
    let s2c_iv: [u8; 12] = *session_keys.server_to_client.iv;
    vec![
        Entry::hex("client_random", &seq32(0x00)),
        Entry::hex("client_x25519_private", &seq32(0x20)),
        Entry::hex("client_x25519_public", &client_public),
        Entry::hex("server_random", &hello.server_random),
        Entry::hex("server_x25519_private", &seq32(0x60)),
        Entry::hex("server_x25519_public", &hello.server_public),
        Entry::hex("pss_salt", &seq32(0x80)),
        Entry::hex("client_hello_frame", &client_hello_frame),
        Entry::hex("server_spki_der", identity.spki_der()),
        Entry::text("server_fingerprint", identity.fingerprint()),
        Entry::text("server_hello_signed_part_len", signed_part.len().to_string()),
        Entry::hex("th_sign", &th_sign),
        Entry::text("signed_message_len", signed.len().to_string()),
        Entry::hex("signed_message", &signed),
        Entry::hex("signature", &hello.signature),
        Entry::hex("server_hello_frame", &server_hello_frame),
        Entry::hex("transcript_hash", &transcript_hash),
        Entry::hex("shared_secret", &shared),
        Entry::hex("hkdf_prk", &prk),
        Entry::hex("c2s_key", session_keys.client_to_server.key.as_ref()),
        Entry::hex("c2s_iv", &c2s_iv),
        Entry::hex("s2c_key", session_keys.server_to_client.key.as_ref()),
        Entry::hex("s2c_iv", &s2c_iv),
        Entry::hex("finished_key", session_keys.finished_key.as_ref()),
        Entry::hex("finished_mac", &finished_mac),
        Entry::hex("finished_plaintext", &finished_plaintext),
        Entry::hex("finished_nonce", &nonce_for(&c2s_iv, 0)),
        Entry::hex("finished_record", &finished_record),
        Entry::hex("echo_request_plaintext", &echo_request),
        Entry::hex("echo_request_nonce", &nonce_for(&c2s_iv, 1)),
        Entry::hex("echo_request_record", &echo_request_record),
        Entry::hex("echo_response_plaintext", &echo_response),
        Entry::hex("echo_response_nonce", &nonce_for(&s2c_iv, 0)),
        Entry::hex("echo_response_record", &echo_response_record),
    ]
}

/// One example of every application message (and of the ServerBusy frame), encoded by the
/// crate and shown field by field.
fn crate_message_vectors() -> Vec<Entry> {
    let txid = seq16(0xa0);
    let be64 = |value: u64| value.to_be_bytes();
    let history = Response::History(vec![
        HistoryEntry {
            at_unix_secs: 1_700_000_000,
            kind: EntryKind::Opening,
            amount_cents: 10_000,
            counterparty: String::new(),
            balance_after_cents: 10_000,
        },
        HistoryEntry {
            at_unix_secs: 1_700_000_060,
            kind: EntryKind::TransferOut,
            amount_cents: 1_000,
            counterparty: "bob".into(),
            balance_after_cents: 9_000,
        },
    ]);
    let busy_reason = securebank::server::BUSY_REASON.as_bytes();
    let mut busy_payload = u16::try_from(busy_reason.len()).unwrap().to_be_bytes().to_vec();
    busy_payload.extend_from_slice(busy_reason);
    let busy_frame = frame::encode(FrameKind::ServerBusy, &busy_payload);
    let busy_len = u32::try_from(busy_frame.len() - 4).unwrap().to_be_bytes();
    let busy_reason_len = u16::try_from(busy_reason.len()).unwrap().to_be_bytes();
    vec![
        Entry::fields(
            "request_echo",
            "Echo(data = \"ping\")",
            &[&[0x20], &[0x00, 0x04], b"ping"],
            &Request::Echo(b"ping".to_vec()).encode(),
        ),
        Entry::fields(
            "request_login",
            "Login(username = \"alice\", password = \"correct horse\")",
            &[&[0x21], &[0x00, 0x05], b"alice", &[0x00, 0x0d], b"correct horse"],
            &Request::Login {
                username: "alice".into(),
                password: "correct horse".into(),
            }
            .encode(),
        ),
        Entry::fields(
            "request_submit_otp",
            "SubmitOtp(code = \"012345\")",
            &[&[0x22], &[0x00, 0x06], b"012345"],
            &Request::SubmitOtp("012345".into()).encode(),
        ),
        Entry::fields("request_balance", "Balance", &[&[0x23]], &Request::Balance.encode()),
        Entry::fields(
            "request_deposit",
            "Deposit(txid = a0..af, amount = 12345 cents)",
            &[&[0x24], &txid, &be64(12_345)],
            &Request::Deposit {
                txid,
                amount_cents: 12_345,
            }
            .encode(),
        ),
        Entry::fields(
            "request_withdraw",
            "Withdraw(txid = a0..af, amount = 500 cents)",
            &[&[0x25], &txid, &be64(500)],
            &Request::Withdraw {
                txid,
                amount_cents: 500,
            }
            .encode(),
        ),
        Entry::fields(
            "request_transfer",
            "Transfer(txid = a0..af, amount = 1000 cents, to = \"bob\")",
            &[&[0x26], &txid, &be64(1_000), &[0x00, 0x03], b"bob"],
            &Request::Transfer {
                txid,
                amount_cents: 1_000,
                to: "bob".into(),
            }
            .encode(),
        ),
        Entry::fields("request_history", "History", &[&[0x27]], &Request::History.encode()),
        Entry::fields("request_logout", "Logout", &[&[0x28]], &Request::Logout.encode()),
        Entry::fields(
            "request_history_with_notices",
            "HistoryWithNotices",
            &[&[0x29]],
            &Request::HistoryWithNotices.encode(),
        ),
        Entry::fields(
            "response_error",
            "Error(\"insufficient_funds\")",
            &[&[0x80], &[0x00, 0x12], b"insufficient_funds"],
            &Response::Error(ErrorCode::InsufficientFunds).encode(),
        ),
        Entry::fields(
            "response_echo",
            "Echo(data = \"ping\")",
            &[&[0x81], &[0x00, 0x04], b"ping"],
            &Response::Echo(b"ping".to_vec()).encode(),
        ),
        Entry::fields(
            "response_otp_sent",
            "OtpSent(ttl_secs = 120)",
            &[&[0x82], &120u32.to_be_bytes()],
            &Response::OtpSent { ttl_secs: 120 }.encode(),
        ),
        Entry::fields(
            "response_logged_in",
            "LoggedIn(username = \"alice\", balance = 10000 cents)",
            &[&[0x83], &[0x00, 0x05], b"alice", &be64(10_000)],
            &Response::LoggedIn {
                username: "alice".into(),
                balance_cents: 10_000,
            }
            .encode(),
        ),
        Entry::fields(
            "response_balance",
            "Balance(balance = 9000 cents)",
            &[&[0x84], &be64(9_000)],
            &Response::Balance(9_000).encode(),
        ),
        Entry::fields(
            "response_tx_applied",
            "TxApplied(txid = a0..af, balance = 22345 cents)",
            &[&[0x85], &txid, &be64(22_345)],
            &Response::TxApplied {
                txid,
                balance_cents: 22_345,
            }
            .encode(),
        ),
        Entry::fields(
            "response_history",
            "History: [opening 10000 at 1700000000 -> 10000, transfer out 1000 to \"bob\" at 1700000060 -> 9000]",
            &[
                &[0x86],
                &[0x00, 0x02],
                &be64(1_700_000_000),
                &[0x01],
                &be64(10_000),
                &[0x00, 0x00],
                &be64(10_000),
                &be64(1_700_000_060),
                &[0x04],
                &be64(1_000),
                &[0x00, 0x03],
                b"bob",
                &be64(9_000),
            ],
            &history.encode(),
        ),
        Entry::fields(
            "response_history_notice",
            "History (answering HistoryWithNotices): [unlocked by the bank at 1700000120, balance 9000]",
            &[
                &[0x86],
                &[0x00, 0x01],
                &be64(1_700_000_120),
                &[0x06],
                &be64(0),
                &[0x00, 0x00],
                &be64(9_000),
            ],
            &Response::History(vec![HistoryEntry {
                at_unix_secs: 1_700_000_120,
                kind: EntryKind::Unlocked,
                amount_cents: 0,
                counterparty: String::new(),
                balance_after_cents: 9_000,
            }])
            .encode(),
        ),
        Entry::fields(
            "response_logged_out",
            "LoggedOut",
            &[&[0x87]],
            &Response::LoggedOut.encode(),
        ),
        Entry::fields(
            "request_login_with_code_kind",
            "LoginWithCodeKind(username = \"alice\", password = \"correct horse\")",
            &[&[0x2a], &[0x00, 0x05], b"alice", &[0x00, 0x0d], b"correct horse"],
            &Request::LoginWithCodeKind {
                username: "alice".into(),
                password: "correct horse".into(),
            }
            .encode(),
        ),
        Entry::fields(
            "response_code_requested",
            "CodeRequested(kind = 2 authenticator app, ttl_secs = 120)",
            &[&[0x88], &[0x02], &120u32.to_be_bytes()],
            &Response::CodeRequested {
                kind: securebank::message::CodeKind::Authenticator,
                ttl_secs: 120,
            }
            .encode(),
        ),
        Entry::fields(
            "operator_unlock_frame",
            "admin socket: OperatorRequest frame, Unlock(name = \"alice\")",
            &[&[0x00, 0x00, 0x00, 0x09], &[0x0a], &[0x02], &[0x00, 0x05], b"alice"],
            &frame::encode(
                FrameKind::OperatorRequest,
                &OperatorCommand::Unlock { name: "alice".into() }.encode(),
            ),
        ),
        Entry::fields(
            "operator_refused_frame",
            "admin socket: OperatorReply frame, status 1 (refused), text \"no account is named zed\"",
            &[
                &[0x00, 0x00, 0x00, 0x1b],
                &[0x0b],
                &[0x01],
                &[0x00, 0x17],
                b"no account is named zed",
            ],
            &frame::encode(
                FrameKind::OperatorReply,
                &OperatorReply::refused("no account is named zed").encode(),
            ),
        ),
        Entry::fields(
            "server_busy_frame",
            "ServerBusy frame (whole frame: length, type 0x03, reason length, reason text)",
            &[&busy_len, &[0x03], &busy_reason_len, busy_reason],
            &busy_frame,
        ),
    ]
}

#[test]
#[ignore = "prints the ```vectors blocks of PROTOCOL.md"]
fn print_protocol_vectors() {
    println!("----- handshake and records -----");
    println!("```vectors");
    for entry in crate_handshake_vectors() {
        entry.print();
    }
    println!("```");
    println!("----- messages -----");
    println!("```vectors");
    for entry in crate_message_vectors() {
        entry.print();
    }
    println!("```");
}

#[test]
fn document_vectors_match_the_crate() {
    let doc = Doc::load();
    let mut entries = crate_handshake_vectors();
    entries.extend(crate_message_vectors());
    check_against_doc(&doc, &entries, "the crate");
    let known: Vec<&str> = entries.iter().map(|entry| entry.name).collect();
    let unknown: Vec<&String> = doc
        .entries
        .keys()
        .filter(|name| !known.contains(&name.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "PROTOCOL.md has vectors no test checks: {unknown:?}"
    );

    // The messages also decode back with the crate's decoders.
    for entry in crate_message_vectors() {
        let bytes = doc.hex(entry.name);
        if entry.name.starts_with("request_") {
            assert_eq!(Request::decode(&bytes).unwrap().encode(), bytes, "{}", entry.name);
        } else if entry.name.starts_with("response_") {
            assert_eq!(Response::decode(&bytes).unwrap().encode(), bytes, "{}", entry.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The same vectors, recomputed from the document with the primitive crates only.
// ---------------------------------------------------------------------------------------------

#[test]
fn document_vectors_match_an_independent_computation() {
    use independent as ind;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use rsa::signature::{RandomizedSigner, SignatureEncoding};

    let doc = Doc::load();
    // Inputs, as the document states them.
    assert_eq!(doc.hex32("client_random"), seq32(0x00));
    assert_eq!(doc.hex32("client_x25519_private"), seq32(0x20));
    assert_eq!(doc.hex32("server_random"), seq32(0x40));
    assert_eq!(doc.hex32("server_x25519_private"), seq32(0x60));
    assert_eq!(doc.hex32("pss_salt"), seq32(0x80));
    let client_random = doc.hex32("client_random");
    let client_private = doc.hex32("client_x25519_private");
    let server_random = doc.hex32("server_random");
    let server_private = doc.hex32("server_x25519_private");

    // The server key: the PEM in tests/fixtures, its SPKI DER and fingerprint.
    let pem = std::fs::read_to_string(KEY_PATH).unwrap();
    let private_key = rsa::PrivateKey::from_pkcs8_pem(&pem).unwrap();
    let spki = private_key
        .to_public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let mut values: Vec<Entry> = Vec::new();
    values.push(Entry::hex("server_spki_der", &spki));
    values.push(Entry::text("server_fingerprint", ind::fingerprint(&spki)));

    // ClientHello.
    let client_public = x25519_dalek::x25519(client_private, x25519_dalek::X25519_BASEPOINT_BYTES);
    let server_public = x25519_dalek::x25519(server_private, x25519_dalek::X25519_BASEPOINT_BYTES);
    values.push(Entry::hex("client_x25519_public", &client_public));
    values.push(Entry::hex("server_x25519_public", &server_public));
    let client_hello_frame = ind::frame(0x01, &ind::client_hello_payload(&client_random, &client_public));
    values.push(Entry::hex("client_hello_frame", &client_hello_frame));

    // ServerHello: signed part, signed message, signature (salt 0x80..0x9f), whole frame.
    let signed_part = ind::server_hello_signed_part(&server_random, &server_public, &spki);
    values.push(Entry::text(
        "server_hello_signed_part_len",
        signed_part.len().to_string(),
    ));
    values.push(Entry::hex(
        "th_sign",
        &ind::sha256(&[&client_hello_frame, &signed_part]),
    ));
    let signed = ind::signed_message(&client_hello_frame, &signed_part);
    values.push(Entry::text("signed_message_len", signed.len().to_string()));
    values.push(Entry::hex("signed_message", &signed));
    // The document's signature must verify whatever produced it...
    ind::verify_signature(&spki, &signed, &doc.hex("signature")).expect("the documented signature verifies");
    // ...and PSS with the documented salt reproduces it exactly.
    let signing_key = rsa::pss::SigningKey::<sha2::Sha256>::new_with_salt_len(private_key, 32);
    let signature = signing_key.sign_with_rng(&mut CountingRng(0x80), &signed).to_vec();
    values.push(Entry::hex("signature", &signature));
    let mut server_hello_payload = signed_part.clone();
    ind::put_bytes16(&mut server_hello_payload, &signature);
    let server_hello_frame = ind::frame(0x02, &server_hello_payload);
    values.push(Entry::hex("server_hello_frame", &server_hello_frame));
    let parsed = ind::parse_server_hello(&server_hello_payload).unwrap();
    assert_eq!(parsed.signed_part, signed_part);

    // Key schedule.
    let transcript_hash = ind::sha256(&[&client_hello_frame, &server_hello_frame]);
    values.push(Entry::hex("transcript_hash", &transcript_hash));
    let shared = ind::x25519_shared(client_private, server_public).unwrap();
    assert_eq!(ind::x25519_shared(server_private, client_public), Some(shared));
    values.push(Entry::hex("shared_secret", &shared));
    let keys = ind::key_schedule(&shared, &transcript_hash);
    values.push(Entry::hex("hkdf_prk", &keys.prk));
    values.push(Entry::hex("c2s_key", &keys.c2s_key));
    values.push(Entry::hex("c2s_iv", &keys.c2s_iv));
    values.push(Entry::hex("s2c_key", &keys.s2c_key));
    values.push(Entry::hex("s2c_iv", &keys.s2c_iv));
    values.push(Entry::hex("finished_key", &keys.finished_key));
    let mac = ind::finished_mac(&keys.finished_key, &transcript_hash);
    values.push(Entry::hex("finished_mac", &mac));
    let mut finished_plaintext = vec![0x10];
    finished_plaintext.extend_from_slice(&mac);
    values.push(Entry::hex("finished_plaintext", &finished_plaintext));

    // Records.
    values.push(Entry::hex("finished_nonce", &ind::nonce(&keys.c2s_iv, 0)));
    values.push(Entry::hex(
        "finished_record",
        &ind::seal(&keys.c2s_key, &keys.c2s_iv, 0, &finished_plaintext),
    ));
    let echo_request = ind::request_echo(b"ping");
    values.push(Entry::hex("echo_request_plaintext", &echo_request));
    values.push(Entry::hex("echo_request_nonce", &ind::nonce(&keys.c2s_iv, 1)));
    values.push(Entry::hex(
        "echo_request_record",
        &ind::seal(&keys.c2s_key, &keys.c2s_iv, 1, &echo_request),
    ));
    let mut echo_response = vec![0x81];
    ind::put_bytes16(&mut echo_response, b"ping");
    values.push(Entry::hex("echo_response_plaintext", &echo_response));
    values.push(Entry::hex("echo_response_nonce", &ind::nonce(&keys.s2c_iv, 0)));
    values.push(Entry::hex(
        "echo_response_record",
        &ind::seal(&keys.s2c_key, &keys.s2c_iv, 0, &echo_response),
    ));
    check_against_doc(&doc, &values, "the independent computation");

    // The documented records open with the documented keys, and a wrong sequence fails.
    let opened = ind::open(&keys.s2c_key, &keys.s2c_iv, 0, &doc.hex("echo_response_record")).unwrap();
    assert_eq!(
        ind::decode_response(&opened).unwrap(),
        ind::Resp::Echo(b"ping".to_vec())
    );
    assert!(ind::open(&keys.s2c_key, &keys.s2c_iv, 1, &doc.hex("echo_response_record")).is_err());
    let opened = ind::open(&keys.c2s_key, &keys.c2s_iv, 0, &doc.hex("finished_record")).unwrap();
    assert_eq!(opened, doc.hex("finished_plaintext"));

    // Every message example, encoded and decoded by the independent codec.
    let txid = seq16(0xa0);
    let requests: [(&str, Vec<u8>); 9] = [
        ("request_echo", ind::request_echo(b"ping")),
        ("request_login", ind::request_login("alice", "correct horse")),
        ("request_submit_otp", ind::request_submit_otp("012345")),
        ("request_balance", ind::request_balance()),
        ("request_deposit", ind::request_money(0x24, &txid, 12_345, None)),
        ("request_withdraw", ind::request_money(0x25, &txid, 500, None)),
        ("request_transfer", ind::request_money(0x26, &txid, 1_000, Some("bob"))),
        ("request_history", ind::request_history()),
        ("request_logout", ind::request_logout()),
    ];
    for (name, bytes) in requests {
        assert_eq!(hex(&doc.hex(name)), hex(&bytes), "{name}");
    }
    let responses = [
        ("response_error", ind::Resp::Error("insufficient_funds".into())),
        ("response_echo", ind::Resp::Echo(b"ping".to_vec())),
        ("response_otp_sent", ind::Resp::OtpSent(120)),
        ("response_logged_in", ind::Resp::LoggedIn("alice".into(), 10_000)),
        ("response_balance", ind::Resp::Balance(9_000)),
        ("response_tx_applied", ind::Resp::TxApplied(txid, 22_345)),
        (
            "response_history",
            ind::Resp::History(vec![
                ind::HistoryLine {
                    at: 1_700_000_000,
                    kind: 1,
                    amount: 10_000,
                    counterparty: String::new(),
                    balance_after: 10_000,
                },
                ind::HistoryLine {
                    at: 1_700_000_060,
                    kind: 4,
                    amount: 1_000,
                    counterparty: "bob".into(),
                    balance_after: 9_000,
                },
            ]),
        ),
        ("response_logged_out", ind::Resp::LoggedOut),
    ];
    for (name, expected) in responses {
        assert_eq!(ind::decode_response(&doc.hex(name)).unwrap(), expected, "{name}");
    }
    let busy = doc.hex("server_busy_frame");
    let (kind, payload) = ind::read_frame(&mut &busy[..]).unwrap();
    assert_eq!(kind, 0x03);
    let reason_len = usize::from(u16::from_be_bytes([payload[0], payload[1]]));
    assert_eq!(payload.len(), 2 + reason_len);
}

// ---------------------------------------------------------------------------------------------
// Limits and error codes: the tables of PROTOCOL.md against the code.
// ---------------------------------------------------------------------------------------------

/// The cells of every Markdown table row of the document.
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|line| line.starts_with('|') && line.ends_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

/// The leading number of a cell such as `16,384 bytes` or `100,000,000 cents (1,000,000.00)`.
fn leading_number(cell: &str) -> u64 {
    let digits: String = cell
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number at the start of {cell:?}"))
}

#[test]
fn document_states_every_limit_and_error_code() {
    use securebank::limits as l;
    let doc = Doc::load();
    let rows = table_rows(&doc.text);
    let as_u64 = |value: usize| u64::try_from(value).unwrap();
    let limits: [(&str, u64); 47] = [
        ("MAX_FRAME_BODY_BYTES", as_u64(l::MAX_FRAME_BODY_BYTES)),
        (
            "MAX_PLAINTEXT_BYTES",
            as_u64(securebank::channel::record::MAX_PLAINTEXT_BYTES),
        ),
        ("TAG_BYTES", as_u64(securebank::channel::record::TAG_BYTES)),
        ("MAX_SPKI_BYTES", as_u64(securebank::channel::hello::MAX_SPKI_BYTES)),
        (
            "MAX_SIGNATURE_BYTES",
            as_u64(securebank::channel::hello::MAX_SIGNATURE_BYTES),
        ),
        ("MIN_RSA_KEY_BITS", as_u64(securebank::identity::MIN_RSA_KEY_BITS)),
        ("MAX_RSA_KEY_BITS", as_u64(securebank::identity::MAX_RSA_KEY_BITS)),
        ("RSA_KEY_BITS", as_u64(securebank::identity::RSA_KEY_BITS)),
        ("DEFAULT_MAX_CONNECTIONS", as_u64(l::DEFAULT_MAX_CONNECTIONS)),
        ("DEFAULT_HANDSHAKE_TIMEOUT_SECS", l::DEFAULT_HANDSHAKE_TIMEOUT_SECS),
        ("DEFAULT_IDLE_TIMEOUT_SECS", l::DEFAULT_IDLE_TIMEOUT_SECS),
        ("DEFAULT_WRITE_TIMEOUT_SECS", l::DEFAULT_WRITE_TIMEOUT_SECS),
        (
            "DEFAULT_ANONYMOUS_IDLE_TIMEOUT_SECS",
            l::DEFAULT_ANONYMOUS_IDLE_TIMEOUT_SECS,
        ),
        ("OTP_ANSWER_GRACE_SECS", l::OTP_ANSWER_GRACE_SECS),
        ("DEFAULT_ANONYMOUS_PER_SOURCE", as_u64(l::DEFAULT_ANONYMOUS_PER_SOURCE)),
        (
            "DEFAULT_HANDSHAKES_PER_SOURCE_PER_SEC",
            u64::from(l::DEFAULT_HANDSHAKES_PER_SOURCE_PER_SEC),
        ),
        ("HANDSHAKE_BURST_PER_SOURCE", u64::from(l::HANDSHAKE_BURST_PER_SOURCE)),
        (
            "DEFAULT_LOGINS_PER_SOURCE_PER_MIN",
            u64::from(l::DEFAULT_LOGINS_PER_SOURCE_PER_MIN),
        ),
        ("LOGIN_BURST_PER_SOURCE", u64::from(l::LOGIN_BURST_PER_SOURCE)),
        ("LOGGED_IN_RESERVED_PERCENT", as_u64(l::LOGGED_IN_RESERVED_PERCENT)),
        ("MAX_WAITING_LOGINS", as_u64(l::MAX_WAITING_LOGINS)),
        ("DEFAULT_LOGIN_QUEUE_DEADLINE_MS", l::DEFAULT_LOGIN_QUEUE_DEADLINE_MS),
        (
            "REFUSED_TX_BURST_PER_SESSION",
            u64::from(l::REFUSED_TX_BURST_PER_SESSION),
        ),
        (
            "REFUSED_TX_PER_SESSION_PER_MIN",
            u64::from(l::REFUSED_TX_PER_SESSION_PER_MIN),
        ),
        (
            "CLIENT_HANDSHAKE_TIMEOUT_SECS",
            securebank::channel::transport::CLIENT_HANDSHAKE_TIMEOUT_SECS,
        ),
        ("RESPONSE_TIMEOUT_SECS", securebank::client::RESPONSE_TIMEOUT_SECS),
        ("MIN_USERNAME_BYTES", as_u64(l::MIN_USERNAME_BYTES)),
        ("MAX_USERNAME_BYTES", as_u64(l::MAX_USERNAME_BYTES)),
        ("MIN_PASSWORD_BYTES", as_u64(l::MIN_PASSWORD_BYTES)),
        ("MAX_PASSWORD_BYTES", as_u64(l::MAX_PASSWORD_BYTES)),
        ("MAX_OTP_FIELD_BYTES", as_u64(securebank::message::MAX_OTP_FIELD_BYTES)),
        ("OTP_DIGITS", as_u64(l::OTP_DIGITS)),
        ("DEFAULT_OTP_TTL_SECS", l::DEFAULT_OTP_TTL_SECS),
        ("OTP_MAX_TRIES", u64::from(l::OTP_MAX_TRIES)),
        ("LOCKOUT_THRESHOLD", u64::from(l::LOCKOUT_THRESHOLD)),
        ("LOCKOUT_DURATION_SECS", l::LOCKOUT_DURATION_SECS),
        ("MAX_TRANSACTION_CENTS", l::MAX_TRANSACTION_CENTS),
        ("MAX_BALANCE_CENTS", l::MAX_BALANCE_CENTS),
        ("MAX_HISTORY_ENTRIES", as_u64(l::MAX_HISTORY_ENTRIES)),
        ("DEFAULT_TXID_RETENTION_SECS", l::DEFAULT_TXID_RETENTION_SECS),
        ("MAX_TXID_CLOCK_SKEW_SECS", l::MAX_TXID_CLOCK_SKEW_SECS),
        ("MAX_ERROR_CODE_BYTES", as_u64(l::MAX_ERROR_CODE_BYTES)),
        ("MAX_ECHO_BYTES", as_u64(l::MAX_ECHO_BYTES)),
        ("DEFAULT_PBKDF2_ITERATIONS", u64::from(l::DEFAULT_PBKDF2_ITERATIONS)),
        ("MIN_PBKDF2_ITERATIONS", u64::from(l::MIN_PBKDF2_ITERATIONS)),
        ("MAX_PBKDF2_ITERATIONS", u64::from(l::MAX_PBKDF2_ITERATIONS)),
        ("PASSWORD_SALT_BYTES", as_u64(l::PASSWORD_SALT_BYTES)),
    ];
    let journal_limits = [
        ("MAX_JOURNAL_RECORD_BYTES", as_u64(l::MAX_JOURNAL_RECORD_BYTES)),
        ("MAX_BATCH_BYTES", as_u64(l::MAX_BATCH_BYTES)),
        ("JOURNAL_PREALLOCATE_BYTES", l::JOURNAL_PREALLOCATE_BYTES),
        ("DEFAULT_CHECKPOINT_EVERY_RECORDS", l::DEFAULT_CHECKPOINT_EVERY_RECORDS),
        ("MAX_OPERATOR_CONNECTIONS", as_u64(l::MAX_OPERATOR_CONNECTIONS)),
        ("OPERATOR_IO_TIMEOUT_SECS", l::OPERATOR_IO_TIMEOUT_SECS),
        ("OPERATOR_REPLY_TIMEOUT_SECS", l::OPERATOR_REPLY_TIMEOUT_SECS),
        ("MAX_OPERATOR_TEXT_BYTES", as_u64(l::MAX_OPERATOR_TEXT_BYTES)),
    ];
    let delivery_and_totp_limits = [
        ("DEFAULT_OTP_COMMAND_TIMEOUT_SECS", l::DEFAULT_OTP_COMMAND_TIMEOUT_SECS),
        ("MAX_OTP_COMMAND_LOG_LINES", as_u64(l::MAX_OTP_COMMAND_LOG_LINES)),
        (
            "MAX_OTP_COMMAND_LOG_LINE_BYTES",
            as_u64(l::MAX_OTP_COMMAND_LOG_LINE_BYTES),
        ),
        ("TOTP_STEP_SECS", l::TOTP_STEP_SECS),
        ("TOTP_SKEW_STEPS", l::TOTP_SKEW_STEPS),
        ("TOTP_SECRET_BYTES", as_u64(l::TOTP_SECRET_BYTES)),
        ("TOTP_ENROL_TRIES", u64::from(l::TOTP_ENROL_TRIES)),
    ];
    for (name, value) in limits.into_iter().chain(journal_limits).chain(delivery_and_totp_limits) {
        let cell = format!("`{name}`");
        let row = rows
            .iter()
            .find(|row| row.first() == Some(&cell))
            .unwrap_or_else(|| panic!("PROTOCOL.md's limits table has no row for {name}"));
        assert_eq!(
            leading_number(&row[1]),
            value,
            "PROTOCOL.md states the wrong value for {name}"
        );
    }

    for code in ErrorCode::ALL {
        let cell = format!("`{}`", code.as_str());
        assert!(
            rows.iter().any(|row| row.first() == Some(&cell)),
            "PROTOCOL.md's error-code table has no row for {}",
            code.as_str()
        );
    }
    assert!(doc.text.contains(&format!("\"{}\"", securebank::server::BUSY_REASON)));
    assert!(
        doc.text
            .contains(&String::from_utf8_lossy(keys::SIGNATURE_CONTEXT).into_owned())
    );
    for label in [
        keys::LABEL_C2S_KEY,
        keys::LABEL_C2S_IV,
        keys::LABEL_S2C_KEY,
        keys::LABEL_S2C_IV,
        keys::LABEL_FINISHED,
    ] {
        let label = format!("`{}`", String::from_utf8_lossy(label));
        assert!(
            doc.text.contains(&label),
            "PROTOCOL.md does not name the HKDF label {label}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A client written from PROTOCOL.md alone, against a real server.
// ---------------------------------------------------------------------------------------------

#[test]
fn independent_client_from_protocol_md_completes_a_session() {
    use independent::{self as ind, Resp};
    use std::io::Write;
    use std::net::TcpStream;
    use std::time::Duration;

    let server = common::start_server();
    server.add_account("carol", "carol-password", 5_000);
    server.add_account("dave", "dave-password", 0);

    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();

    // ClientHello.
    let mut client_random = [0u8; 32];
    let mut client_private = [0u8; 32];
    getrandom::fill(&mut client_random).unwrap();
    getrandom::fill(&mut client_private).unwrap();
    let client_public = x25519_dalek::x25519(client_private, x25519_dalek::X25519_BASEPOINT_BYTES);
    let client_hello_frame = ind::frame(0x01, &ind::client_hello_payload(&client_random, &client_public));
    stream.write_all(&client_hello_frame).unwrap();

    // ServerHello: parse, check the key size and the signature, then the pin.
    let (kind, payload) = ind::read_frame(&mut stream).unwrap();
    assert_eq!(kind, 0x02, "expected a ServerHello");
    let hello = ind::parse_server_hello(&payload).unwrap();
    let signed = ind::signed_message(&client_hello_frame, &hello.signed_part);
    ind::verify_signature(&hello.spki, &signed, &hello.signature).unwrap();
    assert_eq!(ind::fingerprint(&hello.spki), server.fingerprint, "pinned key");

    // Keys and Finished.
    let shared = ind::x25519_shared(client_private, hello.server_public).expect("contributory");
    let server_hello_frame = ind::frame(0x02, &payload);
    let transcript_hash = ind::sha256(&[&client_hello_frame, &server_hello_frame]);
    let keys = ind::key_schedule(&shared, &transcript_hash);
    let mut session = ind::Session::new(stream, &keys);
    let mut finished = vec![0x10];
    finished.extend_from_slice(&ind::finished_mac(&keys.finished_key, &transcript_hash));
    session.send(&finished);

    // Echo, allowed before login.
    assert_eq!(
        session.request(&ind::request_echo(b"ping")),
        Resp::Echo(b"ping".to_vec())
    );
    assert_eq!(
        session.request(&ind::request_balance()),
        Resp::Error("not_authenticated".into())
    );

    // Login: password, then the code from the "device".
    assert_eq!(
        session.request(&ind::request_login("carol", "carol-password")),
        Resp::OtpSent(120)
    );
    assert_eq!(
        session.request(&ind::request_balance()),
        Resp::Error("not_authenticated".into())
    );
    let code = server.read_otp("carol");
    assert_eq!(code.len(), 6);
    assert_eq!(
        session.request(&ind::request_submit_otp(&code)),
        Resp::LoggedIn("carol".into(), 5_000)
    );

    // Money.
    let txid = ind::new_txid();
    let deposit = ind::request_money(0x24, &txid, 250, None);
    assert_eq!(session.request(&deposit), Resp::TxApplied(txid, 5_250));
    assert_eq!(session.request(&ind::request_balance()), Resp::Balance(5_250));
    // A retry with the same id returns the original outcome; other contents are refused.
    assert_eq!(session.request(&deposit), Resp::TxApplied(txid, 5_250));
    assert_eq!(
        session.request(&ind::request_money(0x24, &txid, 251, None)),
        Resp::Error("transaction_id_reused".into())
    );
    let txid2 = ind::new_txid();
    assert_eq!(
        session.request(&ind::request_money(0x26, &txid2, 1_000_000, Some("dave"))),
        Resp::Error("insufficient_funds".into())
    );
    let txid3 = ind::new_txid();
    assert_eq!(
        session.request(&ind::request_money(0x26, &txid3, 250, Some("dave"))),
        Resp::TxApplied(txid3, 5_000)
    );
    assert_eq!(session.request(&ind::request_balance()), Resp::Balance(5_000));
    let Resp::History(lines) = session.request(&ind::request_history()) else {
        panic!("expected a history response");
    };
    let summary: Vec<(u8, u64, &str, u64)> = lines
        .iter()
        .map(|line| (line.kind, line.amount, line.counterparty.as_str(), line.balance_after))
        .collect();
    assert_eq!(
        summary,
        [(1, 5_000, "", 5_000), (2, 250, "", 5_250), (4, 250, "dave", 5_000)]
    );
    assert_eq!(session.request(&ind::request_logout()), Resp::LoggedOut);
    assert_eq!(
        session.request(&ind::request_balance()),
        Resp::Error("not_authenticated".into())
    );
}

// ---------------------------------------------------------------------------------------------
// BEGIN INDEPENDENT CODE: written from PROTOCOL.md with the primitive crates and std only. It
// must not use the securebank crate (checked by `independent_code_uses_no_securebank_code`).
// ---------------------------------------------------------------------------------------------

mod independent {
    use std::io::{self, Read, Write};
    use std::net::TcpStream;

    use chacha20poly1305::aead::{Aead, Payload};
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
    use hmac::{Hmac, Mac};
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    use rsa::traits::PublicKeyParts;
    use sha2::{Digest, Sha256};

    /// Largest frame body (type byte included).
    pub const MAX_BODY: usize = 16_384;
    /// The context string of the signed message.
    pub const CONTEXT: &[u8] = b"securebank v1 server handshake signature";

    /// `u32` big-endian body length, then the type byte, then the payload.
    pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(payload.len() + 1).unwrap().to_be_bytes().to_vec();
        out.push(kind);
        out.extend_from_slice(payload);
        out
    }

    /// Reads one frame: (type byte, payload). Refuses a length of 0 or over the maximum
    /// before reading the body.
    pub fn read_frame(input: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
        let mut length = [0u8; 4];
        input.read_exact(&mut length)?;
        let length = usize::try_from(u32::from_be_bytes(length)).unwrap();
        if length == 0 || length > MAX_BODY {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad frame length"));
        }
        let mut body = vec![0u8; length];
        input.read_exact(&mut body)?;
        let payload = body.split_off(1);
        Ok((body[0], payload))
    }

    pub fn put_bytes16(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_be_bytes());
        out.extend_from_slice(bytes);
    }

    pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        hasher.finalize().into()
    }

    /// "SBNK" | version 0x0001 | client_random | client X25519 public key.
    pub fn client_hello_payload(random: &[u8; 32], public: &[u8; 32]) -> Vec<u8> {
        let mut out = b"SBNK".to_vec();
        out.extend_from_slice(&[0x00, 0x01]);
        out.extend_from_slice(random);
        out.extend_from_slice(public);
        out
    }

    /// version 0x0001 | server_random | server X25519 public key | spki_len u16 | spki.
    pub fn server_hello_signed_part(random: &[u8; 32], public: &[u8; 32], spki: &[u8]) -> Vec<u8> {
        let mut out = vec![0x00, 0x01];
        out.extend_from_slice(random);
        out.extend_from_slice(public);
        put_bytes16(&mut out, spki);
        out
    }

    pub struct ServerHelloFields {
        pub server_public: [u8; 32],
        pub spki: Vec<u8>,
        pub signature: Vec<u8>,
        /// The payload bytes before `sig_len`.
        pub signed_part: Vec<u8>,
    }

    pub fn parse_server_hello(payload: &[u8]) -> Result<ServerHelloFields, String> {
        let mut r = Cursor(payload);
        if r.u16()? != 1 {
            return Err("version".into());
        }
        let _server_random = r.take(32)?;
        let server_public: [u8; 32] = r.take(32)?.try_into().unwrap();
        let spki = r.bytes16(600)?.to_vec();
        let signed_part = payload[..payload.len() - r.0.len()].to_vec();
        let signature = r.bytes16(512)?.to_vec();
        r.finish()?;
        Ok(ServerHelloFields {
            server_public,
            spki,
            signature,
            signed_part,
        })
    }

    /// 64 × 0x20 | context | 0x00 | SHA-256(ClientHello frame || ServerHello signed part).
    pub fn signed_message(client_hello_frame: &[u8], signed_part: &[u8]) -> Vec<u8> {
        let mut out = vec![0x20u8; 64];
        out.extend_from_slice(CONTEXT);
        out.push(0x00);
        out.extend_from_slice(&sha256(&[client_hello_frame, signed_part]));
        out
    }

    /// RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 bytes; key 3072..=4096 bits.
    pub fn verify_signature(spki: &[u8], message: &[u8], signature: &[u8]) -> Result<(), String> {
        let public = rsa::PublicKey::from_public_key_der(spki).map_err(|err| err.to_string())?;
        let bits = public.size() * 8;
        if !(3072..=4096).contains(&bits) {
            return Err(format!("{bits}-bit key"));
        }
        let key = rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(public, 32);
        let signature = rsa::pss::Signature::try_from(signature).map_err(|err| err.to_string())?;
        key.verify(message, &signature).map_err(|err| err.to_string())
    }

    /// `SHA256:` + unpadded standard base64 of SHA-256(SPKI DER).
    pub fn fingerprint(spki: &[u8]) -> String {
        use base64ct::{Base64Unpadded, Encoding};
        format!("SHA256:{}", Base64Unpadded::encode_string(&sha256(&[spki])))
    }

    /// X25519; `None` for an all-zero result.
    pub fn x25519_shared(private: [u8; 32], peer_public: [u8; 32]) -> Option<[u8; 32]> {
        let shared = x25519_dalek::x25519(private, peer_public);
        (shared != [0u8; 32]).then_some(shared)
    }

    pub struct Keys {
        pub prk: [u8; 32],
        pub c2s_key: [u8; 32],
        pub c2s_iv: [u8; 12],
        pub s2c_key: [u8; 32],
        pub s2c_iv: [u8; 12],
        pub finished_key: [u8; 32],
    }

    fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// HKDF-SHA256 spelled out: PRK = HMAC(th, shared); OKM = HMAC(PRK, label || 0x01)[..len].
    pub fn key_schedule(shared: &[u8; 32], transcript_hash: &[u8; 32]) -> Keys {
        let prk = hmac(transcript_hash, &[shared]);
        let expand = |label: &str| hmac(&prk, &[label.as_bytes(), &[0x01]]);
        // And the same through the hkdf crate, to be sure the spelled-out form is HKDF.
        let hk = hkdf::Hkdf::<Sha256>::new(Some(transcript_hash), shared);
        let mut check = [0u8; 32];
        hk.expand(b"securebank v1 c2s key", &mut check).unwrap();
        assert_eq!(check, expand("securebank v1 c2s key"));
        Keys {
            prk,
            c2s_key: expand("securebank v1 c2s key"),
            c2s_iv: expand("securebank v1 c2s iv")[..12].try_into().unwrap(),
            s2c_key: expand("securebank v1 s2c key"),
            s2c_iv: expand("securebank v1 s2c iv")[..12].try_into().unwrap(),
            finished_key: expand("securebank v1 finished"),
        }
    }

    pub fn finished_mac(finished_key: &[u8; 32], transcript_hash: &[u8; 32]) -> [u8; 32] {
        hmac(finished_key, &[transcript_hash])
    }

    /// IV with the last 8 bytes XORed with the big-endian sequence number.
    pub fn nonce(iv: &[u8; 12], sequence: u64) -> [u8; 12] {
        let mut out = *iv;
        for (index, byte) in sequence.to_be_bytes().into_iter().enumerate() {
            out[4 + index] ^= byte;
        }
        out
    }

    /// A whole record frame: header (AAD) then ciphertext and tag.
    pub fn seal(key: &[u8; 32], iv: &[u8; 12], sequence: u64, plaintext: &[u8]) -> Vec<u8> {
        let mut header = u32::try_from(plaintext.len() + 1 + 16).unwrap().to_be_bytes().to_vec();
        header.push(0x17);
        let cipher = ChaCha20Poly1305::new_from_slice(key).unwrap();
        let sealed = cipher
            .encrypt(
                &nonce(iv, sequence).into(),
                Payload {
                    msg: plaintext,
                    aad: &header,
                },
            )
            .unwrap();
        [header, sealed].concat()
    }

    /// Opens a whole record frame.
    pub fn open(key: &[u8; 32], iv: &[u8; 12], sequence: u64, frame_bytes: &[u8]) -> Result<Vec<u8>, String> {
        let (kind, payload) = read_frame(&mut &frame_bytes[..]).map_err(|err| err.to_string())?;
        if kind != 0x17 || payload.len() < 16 {
            return Err("not a record".into());
        }
        let cipher = ChaCha20Poly1305::new_from_slice(key).unwrap();
        cipher
            .decrypt(
                &nonce(iv, sequence).into(),
                Payload {
                    msg: &payload,
                    aad: &frame_bytes[..5],
                },
            )
            .map_err(|_| "record rejected".to_string())
    }

    /// An established connection: one key, IV and sequence number per direction.
    pub struct Session {
        stream: TcpStream,
        send_key: [u8; 32],
        send_iv: [u8; 12],
        send_seq: u64,
        recv_key: [u8; 32],
        recv_iv: [u8; 12],
        recv_seq: u64,
    }

    impl Session {
        pub fn new(stream: TcpStream, keys: &Keys) -> Self {
            Self {
                stream,
                send_key: keys.c2s_key,
                send_iv: keys.c2s_iv,
                send_seq: 0,
                recv_key: keys.s2c_key,
                recv_iv: keys.s2c_iv,
                recv_seq: 0,
            }
        }

        pub fn send(&mut self, plaintext: &[u8]) {
            let record = seal(&self.send_key, &self.send_iv, self.send_seq, plaintext);
            self.send_seq += 1;
            self.stream.write_all(&record).unwrap();
        }

        pub fn recv(&mut self) -> Vec<u8> {
            let (kind, payload) = read_frame(&mut self.stream).unwrap();
            let record = frame(kind, &payload);
            let plaintext = open(&self.recv_key, &self.recv_iv, self.recv_seq, &record).unwrap();
            self.recv_seq += 1;
            plaintext
        }

        pub fn request(&mut self, request: &[u8]) -> Resp {
            self.send(request);
            decode_response(&self.recv()).unwrap()
        }
    }

    pub fn request_echo(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x20];
        put_bytes16(&mut out, data);
        out
    }

    pub fn request_login(username: &str, password: &str) -> Vec<u8> {
        let mut out = vec![0x21];
        put_bytes16(&mut out, username.as_bytes());
        put_bytes16(&mut out, password.as_bytes());
        out
    }

    pub fn request_submit_otp(code: &str) -> Vec<u8> {
        let mut out = vec![0x22];
        put_bytes16(&mut out, code.as_bytes());
        out
    }

    pub fn request_balance() -> Vec<u8> {
        vec![0x23]
    }

    /// A fresh transaction id: the current Unix time in milliseconds as 6 bytes big-endian,
    /// then 10 random bytes.
    pub fn new_txid() -> [u8; 16] {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let mut txid = [0u8; 16];
        txid[..6].copy_from_slice(&u64::try_from(now_ms).unwrap().to_be_bytes()[2..]);
        getrandom::fill(&mut txid[6..]).unwrap();
        txid
    }

    /// Deposit (0x24), Withdraw (0x25) or Transfer (0x26, with `to`).
    pub fn request_money(kind: u8, txid: &[u8; 16], amount: u64, to: Option<&str>) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(txid);
        out.extend_from_slice(&amount.to_be_bytes());
        if let Some(to) = to {
            put_bytes16(&mut out, to.as_bytes());
        }
        out
    }

    pub fn request_history() -> Vec<u8> {
        vec![0x27]
    }

    pub fn request_logout() -> Vec<u8> {
        vec![0x28]
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct HistoryLine {
        pub at: u64,
        pub kind: u8,
        pub amount: u64,
        pub counterparty: String,
        pub balance_after: u64,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Resp {
        Error(String),
        Echo(Vec<u8>),
        OtpSent(u32),
        LoggedIn(String, u64),
        Balance(u64),
        TxApplied([u8; 16], u64),
        History(Vec<HistoryLine>),
        LoggedOut,
    }

    struct Cursor<'a>(&'a [u8]);

    impl<'a> Cursor<'a> {
        fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
            if self.0.len() < len {
                return Err("truncated".into());
            }
            let (head, tail) = self.0.split_at(len);
            self.0 = tail;
            Ok(head)
        }
        fn u8(&mut self) -> Result<u8, String> {
            Ok(self.take(1)?[0])
        }
        fn u16(&mut self) -> Result<u16, String> {
            Ok(u16::from_be_bytes(self.take(2)?.try_into().unwrap()))
        }
        fn u32(&mut self) -> Result<u32, String> {
            Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
        }
        fn u64(&mut self) -> Result<u64, String> {
            Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
        }
        fn bytes16(&mut self, max: usize) -> Result<&'a [u8], String> {
            let len = usize::from(self.u16()?);
            if len > max {
                return Err("field too long".into());
            }
            self.take(len)
        }
        fn str16(&mut self, max: usize) -> Result<String, String> {
            String::from_utf8(self.bytes16(max)?.to_vec()).map_err(|_| "not UTF-8".to_string())
        }
        fn finish(&self) -> Result<(), String> {
            if self.0.is_empty() {
                Ok(())
            } else {
                Err("trailing bytes".into())
            }
        }
    }

    pub fn decode_response(bytes: &[u8]) -> Result<Resp, String> {
        let mut r = Cursor(bytes);
        let response = match r.u8()? {
            0x80 => Resp::Error(r.str16(64)?),
            0x81 => Resp::Echo(r.bytes16(1024)?.to_vec()),
            0x82 => Resp::OtpSent(r.u32()?),
            0x83 => Resp::LoggedIn(r.str16(32)?, r.u64()?),
            0x84 => Resp::Balance(r.u64()?),
            0x85 => Resp::TxApplied(r.take(16)?.try_into().unwrap(), r.u64()?),
            0x86 => {
                let count = r.u16()?;
                if count > 50 {
                    return Err("too many history entries".into());
                }
                let mut lines = Vec::new();
                for _ in 0..count {
                    lines.push(HistoryLine {
                        at: r.u64()?,
                        kind: r.u8()?,
                        amount: r.u64()?,
                        counterparty: r.str16(32)?,
                        balance_after: r.u64()?,
                    });
                }
                Resp::History(lines)
            }
            0x87 => Resp::LoggedOut,
            other => return Err(format!("unknown response type {other:#04x}")),
        };
        r.finish()?;
        Ok(response)
    }
}

// END INDEPENDENT CODE

#[test]
fn independent_code_uses_no_securebank_code() {
    let source = include_str!("protocol_vectors.rs");
    let begin = source.find("// BEGIN INDEPENDENT CODE").unwrap();
    let end = source.find(concat!("// END ", "INDEPENDENT CODE")).unwrap();
    let independent = &source[begin..end];
    let forbidden = concat!("secure", "bank::");
    assert!(
        !independent.contains(forbidden),
        "the independent client must not use the crate under test"
    );
}
