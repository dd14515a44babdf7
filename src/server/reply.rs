//! Replies that wait for the disk: the connection thread seals a reply and hands it to the
//! thread writing the batch with its record, which sends it right after the `fdatasync`
//! that makes that record durable. If nobody is writing, the connection thread writes and
//! syncs the batch itself and then sends its own reply ([`super::commit`], "Who writes").
//!
//! ```text
//! connection thread                                the writer (commit thread, or the
//!   read request; lock ledger; decide; apply;        thread of another connection)
//!   append(event) → lsn; unlock ledger
//!   seal reply (seq n) ── send_when_durable(lsn) ──▶ (queued with the pending batch)
//!   back to reading the socket                       pwrite batch; fdatasync
//!        │                                           send(reply, MSG_DONTWAIT): all of it,
//!        │                                             or hand the rest back ──┐
//!   next request arrives; or, within               ◀─────────────────────────┘
//!   RETURNED_REPLY_CHECK_MS, write what was handed back (with the reply's write deadline)
//! ```
//!
//! Why: an echo costs one sleep and one wake-up per request on each side. A connection
//! thread that parked until its sync, then woke to send, paid one more of each per request,
//! and on two cores that was the gap between durable transactions and the echo ceiling
//! (BENCHMARKS.md). Now a connection thread sleeps only in `read`, as in echo (or in its
//! own `fdatasync`, when it writes the batch itself).
//!
//! Invariants:
//! - **Durable first.** A queued reply is sent only from [`super::commit`]'s `made_durable`,
//!   after the sync that covers its record; if the journal fails, queued replies are
//!   dropped unsent ([`QueuedReply::abandon`]) and the server exits.
//! - **One reply in flight per connection, so records reach the wire in sequence order.**
//!   A reply sealed with sequence number n is on the wire before n + 1 is sealed: before
//!   it sends anything, a connection first *settles* its slot ([`Outbox::send`]): it waits
//!   until the writer has sent the queued reply or handed back its rest, and writes
//!   that rest itself. A client that waits for each reply never waits here; only a
//!   pipelining one does.
//! - **The connection thread is the only reader of its socket**; a writer only
//!   writes to it, and only while the connection's reply is in flight (the connection writes
//!   nothing meanwhile).
//! - **A writer never blocks on another client.** It sends with `MSG_DONTWAIT`; whatever
//!   the socket does not take at once goes back to the connection thread, which writes it
//!   with the reply's write deadline (`--write-timeout-secs`, from the moment the writer
//!   tried), so a client that never reads is dropped by that deadline, as before.
//! - **A connection that is reading still notices a reply handed back.** While its reply is
//!   in flight, it waits for the next request in steps of [`RETURNED_REPLY_CHECK_MS`] and
//!   looks at the slot between them ([`Outbox::await_request`]). Only its first byte is
//!   waited for this way, so a timeout never cuts a frame.

use std::io;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{SendFlags, send};

use crate::channel::{SealedRecord, SecureChannel, trace_sent_record};
use crate::error::ChannelError;
use crate::limits::RETURNED_REPLY_CHECK_MS;
use crate::message::Response;
use crate::trace::{Direction, Tracer};

/// What the reply path needs from the bank, so that this module does not depend on it (the
/// bank depends on this one): whether a journal position is durable, the hand-over of a
/// reply to the batch's writer, and, for the trace, the size of a batch.
pub trait Durability {
    /// Whether every record up to `lsn` is durable.
    fn is_durable(&self, lsn: u64) -> bool;
    /// Hands `reply` to whoever writes its record's batch, to be sent right after the sync
    /// that makes it durable; or, if nobody is writing, writes and syncs that batch on the
    /// calling thread; gives the reply back once its record is durable.
    fn send_when_durable(&self, reply: QueuedReply) -> Handed;
    /// Asks for records nobody is writing to be written: called when a connection that
    /// appended cannot go on to [`Self::send_when_durable`].
    fn commit_unclaimed(&self);
    /// How many records the batch that made `lsn` durable held, if it is still known.
    fn batch_records_covering(&self, lsn: u64) -> Option<u32>;
}

/// What became of a reply handed to the journal ([`Durability::send_when_durable`]).
#[derive(Debug)]
pub enum Handed {
    /// Queued (or, if the journal failed, dropped): the thread that writes the batch
    /// sends it after the sync.
    Queued,
    /// Its record is durable: the caller sends the reply itself.
    Durable {
        /// The reply, given back.
        reply: QueuedReply,
        /// Whether the calling thread wrote and synced the batch (nobody else was writing).
        synced_here: bool,
    },
}

/// Where a connection's one reply in flight stands.
#[derive(Debug)]
enum SlotState {
    /// Nothing in flight: the connection may write.
    Idle,
    /// Queued with the batch's writer, or being sent by it.
    InFlight,
    /// The socket did not take all of it at once: the connection writes the rest.
    Returned {
        record: Vec<u8>,
        sent: usize,
        deadline: Instant,
    },
    /// The socket refused it (the peer reset the connection): the connection ends.
    Failed(io::ErrorKind),
}

/// What the connection thread and the batch's writer share about one connection.
#[derive(Debug)]
struct ReplySlot {
    /// The connection's socket (the same descriptor the connection reads).
    socket: Arc<TcpStream>,
    /// The connection thread, woken when its reply has been dealt with.
    owner: Thread,
    /// How long a peer may take to accept one reply.
    write_limit: Duration,
    state: Mutex<SlotState>,
}

impl ReplySlot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records what became of the reply in flight and wakes the connection thread (a
    /// no-op unless it is parked in [`Outbox::settle`]).
    fn resolve(&self, outcome: SlotState) {
        *self.lock() = outcome;
        self.owner.unpark();
    }
}

/// What `--trace` shows when a queued reply is sent.
#[derive(Debug)]
struct ReplyTrace {
    tracer: Tracer,
    response: String,
    sequence: u64,
    queued_at: Instant,
}

/// A sealed reply waiting with the batch's writer for record `lsn` to be durable.
#[derive(Debug)]
pub struct QueuedReply {
    slot: Arc<ReplySlot>,
    record: SealedRecord,
    lsn: u64,
    /// Boxed: only a traced connection pays for it.
    trace: Option<Box<ReplyTrace>>,
}

impl QueuedReply {
    /// The journal position that must be durable before this reply is sent.
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// Sends the reply now that its record is durable (in a batch of `batch_records`
    /// records). Never blocks: what the socket does not take at once goes back to the
    /// connection thread. Called by the batch's writer only.
    pub fn send_durable(self, batch_records: u32) {
        if let Some(trace) = &self.trace {
            let plural = if batch_records == 1 { "" } else { "s" };
            trace.tracer.line(
                Direction::Local,
                format_args!(
                    "journal: record {} is durable: written in a batch of {batch_records} record{plural}, waited {} \
                     µs for its fdatasync; only now is the reply sent, by the thread that wrote the batch",
                    self.lsn,
                    trace.queued_at.elapsed().as_micros()
                ),
            );
            trace
                .tracer
                .line(Direction::Sent, format_args!("  response {}", trace.response));
            trace_sent_record(&trace.tracer, &self.record.bytes, trace.sequence);
        }
        let bytes = self.record.bytes;
        let outcome = match send_without_waiting(&self.slot.socket, &bytes) {
            Ok(sent) if sent == bytes.len() => SlotState::Idle,
            Ok(sent) => SlotState::Returned {
                record: bytes,
                sent,
                deadline: Instant::now() + self.slot.write_limit,
            },
            Err(err) => SlotState::Failed(io::Error::from(err).kind()),
        };
        self.slot.resolve(outcome);
    }

    /// For `--trace`: says that the reply now waits with the batch's writer. Called under
    /// the journal's lock, so the line comes before the writer's "is durable" line.
    pub fn trace_queued(&self) {
        if let Some(trace) = &self.trace {
            trace.tracer.line(
                Direction::Local,
                format_args!(
                    "reply sealed (seq {}) and left with the thread writing the batch of record {}, which sends \
                     it after its fdatasync; this thread goes back to reading its socket",
                    trace.sequence, self.lsn
                ),
            );
        }
    }

    /// Drops the reply unsent because the journal failed: its record may not be durable.
    pub fn abandon(self) {
        self.slot.resolve(SlotState::Failed(io::ErrorKind::BrokenPipe));
    }
}

/// One `send` that never waits for room in the socket: returns how much was taken (0 when
/// the socket is full). `MSG_NOSIGNAL`: a peer that left gives `EPIPE`, not a signal.
fn send_without_waiting(socket: &TcpStream, bytes: &[u8]) -> Result<usize, Errno> {
    let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
    loop {
        match send(socket, bytes, flags) {
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Ok(0),
            other => return other,
        }
    }
}

/// A connection's side of the reply path: sends replies in order, directly when nothing
/// waits for the disk, through the batch's writer when something does.
#[derive(Debug)]
pub struct Outbox {
    slot: Arc<ReplySlot>,
}

impl Outbox {
    /// The outbox of the connection on `channel`, served by the calling thread.
    pub fn new(channel: &SecureChannel, write_limit: Duration) -> Self {
        Self {
            slot: Arc::new(ReplySlot {
                socket: channel.shared_socket(),
                owner: thread::current(),
                write_limit,
                state: Mutex::new(SlotState::Idle),
            }),
        }
    }

    /// Sends `response` once journal position `durable_at` is durable (0: nothing to wait
    /// for). If it is not durable yet, the sealed reply goes to whoever writes its batch and
    /// this returns at once; or, if nobody is writing, this thread writes and syncs the
    /// batch, then sends the reply. Any earlier reply is on the wire before this one is sealed.
    pub fn send(
        &mut self,
        channel: &mut SecureChannel,
        bank: &dyn Durability,
        response: &Response,
        durable_at: u64,
    ) -> Result<(), ChannelError> {
        let tracer = *channel.tracer();
        let sealed = self.settle(channel).and_then(|()| channel.seal(&response.encode()));
        let mut record = match sealed {
            Ok(record) => record,
            Err(err) => {
                if durable_at > 0 {
                    // Its record was appended, and nobody will wait for it here: hand it on.
                    bank.commit_unclaimed();
                }
                return Err(err);
            }
        };
        let mut synced_here = false;
        let started = Instant::now();
        if durable_at > 0 && !bank.is_durable(durable_at) {
            match self.hand_over(bank, record, durable_at, tracer, response) {
                None => return Ok(()),
                // Durable now: synced by this thread, or just before the hand-over.
                Some((returned, here)) => (record, synced_here) = (returned, here),
            }
        }
        if durable_at > 0 && tracer.enabled() {
            let batch = bank.batch_records_covering(durable_at).map_or_else(
                || "an earlier batch".to_string(),
                |n| format!("a batch of {n} record{}", if n == 1 { "" } else { "s" }),
            );
            let how = if synced_here {
                format!(
                    "waited {} µs for its fdatasync, which this connection's thread did itself since no other \
                     thread was writing; it sends the reply itself",
                    started.elapsed().as_micros()
                )
            } else {
                "waited 0 µs for its fdatasync (it was done before the reply was ready); the connection thread \
                 sends the reply itself"
                    .to_string()
            };
            tracer.line(
                Direction::Local,
                format_args!("journal: record {durable_at} is durable: written in {batch}, {how}"),
            );
        }
        tracer.line(
            Direction::Sent,
            format_args!("  response {}", crate::trace::response(response)),
        );
        channel.write_sealed(&record)
    }

    /// Queues `record` with whoever writes the batch of `durable_at` (`None`); gives it
    /// back once durable, saying whether this thread synced it.
    fn hand_over(
        &mut self,
        bank: &dyn Durability,
        record: SealedRecord,
        durable_at: u64,
        tracer: Tracer,
        response: &Response,
    ) -> Option<(SealedRecord, bool)> {
        let trace = tracer.enabled().then(|| {
            Box::new(ReplyTrace {
                tracer,
                response: crate::trace::response(response).to_string(),
                sequence: record.sequence,
                queued_at: Instant::now(),
            })
        });
        *self.slot.lock() = SlotState::InFlight;
        let queued = QueuedReply {
            slot: Arc::clone(&self.slot),
            record,
            lsn: durable_at,
            trace,
        };
        match bank.send_when_durable(queued) {
            Handed::Queued => None,
            Handed::Durable { reply, synced_here } => {
                *self.slot.lock() = SlotState::Idle;
                Some((reply.record, synced_here))
            }
        }
    }

    /// Waits until the next request starts to arrive (or `deadline` passes: the read that
    /// follows then reports the timeout). While a reply is in flight, it looks at the slot
    /// every [`RETURNED_REPLY_CHECK_MS`] and writes whatever the writer handed back.
    pub fn await_request(&mut self, channel: &mut SecureChannel, deadline: Instant) -> Result<(), ChannelError> {
        loop {
            if !matches!(*self.slot.lock(), SlotState::InFlight) {
                return self.settle(channel);
            }
            let check = deadline.min(Instant::now() + Duration::from_millis(RETURNED_REPLY_CHECK_MS));
            if channel.wait_readable(check)? || check >= deadline {
                return Ok(());
            }
        }
    }

    /// At the end of the connection: lets the reply in flight, if any, reach the peer (or
    /// fail) before the socket is closed.
    pub fn finish(&mut self, channel: &mut SecureChannel) {
        let _ = self.settle(channel);
    }

    /// Waits until no reply is in flight, writing what the writer handed back.
    fn settle(&mut self, channel: &mut SecureChannel) -> Result<(), ChannelError> {
        loop {
            let mut state = self.slot.lock();
            match std::mem::replace(&mut *state, SlotState::Idle) {
                SlotState::Idle => return Ok(()),
                SlotState::InFlight => {
                    *state = SlotState::InFlight;
                    drop(state);
                    thread::park();
                }
                SlotState::Returned { record, sent, deadline } => {
                    drop(state);
                    return channel.write_by(&record[sent..], deadline);
                }
                SlotState::Failed(kind) => {
                    *state = SlotState::Failed(kind);
                    return Err(io::Error::from(kind).into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ServerIdentity;
    use std::net::TcpListener;

    /// The server and client ends of an established channel over loopback.
    fn channel_pair() -> (SecureChannel, SecureChannel) {
        let pem = include_str!("../../tests/fixtures/test_server_key.pem");
        let identity = ServerIdentity::from_pkcs8_pem(pem).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = thread::spawn(move || SecureChannel::connect(addr, |_| Ok(()), Tracer::off()).unwrap());
        let (stream, _) = listener.accept().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let server = SecureChannel::accept(stream, &identity, deadline, Tracer::off()).unwrap();
        (server, client.join().unwrap())
    }

    /// What the commit thread does for a reply whose record became durable.
    fn commit_thread_sends(outbox: &Outbox, record: SealedRecord) {
        *outbox.slot.lock() = SlotState::InFlight;
        let reply = QueuedReply {
            slot: Arc::clone(&outbox.slot),
            record,
            lsn: 1,
            trace: None,
        };
        reply.send_durable(1);
    }

    /// A bank whose records are never durable, noting whether it was asked to write
    /// records nobody claimed.
    #[derive(Default)]
    struct UnwrittenJournal {
        asked_to_write_unclaimed: std::cell::Cell<bool>,
    }

    impl Durability for UnwrittenJournal {
        fn is_durable(&self, _lsn: u64) -> bool {
            false
        }
        fn send_when_durable(&self, _reply: QueuedReply) -> Handed {
            panic!("a connection whose earlier reply failed hands nothing over")
        }
        fn commit_unclaimed(&self) {
            self.asked_to_write_unclaimed.set(true);
        }
        fn batch_records_covering(&self, _lsn: u64) -> Option<u32> {
            None
        }
    }

    #[test]
    fn a_reply_that_cannot_be_sent_still_gets_its_record_written_and_one_with_no_record_asks_nothing() {
        let (mut server, _client) = channel_pair();
        let mut outbox = Outbox::new(&server, Duration::from_secs(60));
        let response = Response::Echo(b"after a failed reply".to_vec());
        // The connection's earlier reply failed (the peer reset the connection).
        *outbox.slot.lock() = SlotState::Failed(io::ErrorKind::ConnectionReset);
        let journal = UnwrittenJournal::default();
        assert!(outbox.send(&mut server, &journal, &response, 7).is_err());
        assert!(
            journal.asked_to_write_unclaimed.get(),
            "record 7 was appended: with no reply to wait for it, someone else must write it"
        );
        let journal = UnwrittenJournal::default();
        assert!(outbox.send(&mut server, &journal, &response, 0).is_err());
        assert!(!journal.asked_to_write_unclaimed.get(), "nothing was appended");
    }

    #[test]
    fn a_reply_the_socket_cannot_take_goes_back_to_the_reading_connection_thread_and_keeps_its_place() {
        let (mut server, mut client) = channel_pair();
        let mut outbox = Outbox::new(&server, Duration::from_secs(60));
        let payload = vec![0x5A; 1024];
        // The client reads nothing yet: the commit thread's sends fill the socket until one
        // is not taken whole, which the commit thread hands back instead of waiting.
        let mut queued = 0usize;
        let (record, sent, deadline) = loop {
            commit_thread_sends(&outbox, server.seal(&payload).unwrap());
            queued += 1;
            let state = std::mem::replace(&mut *outbox.slot.lock(), SlotState::InFlight);
            match state {
                SlotState::Idle => assert!(queued < 1_000_000, "the socket never filled"),
                SlotState::Returned { record, sent, deadline } => break (record, sent, deadline),
                other => panic!("unexpected {other:?}"),
            }
        };
        // The hand-back reaches the connection thread while it waits for the next request.
        let slot = Arc::clone(&outbox.slot);
        let hand_back = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            slot.resolve(SlotState::Returned { record, sent, deadline });
        });
        let reader = thread::spawn(move || {
            let mut messages = Vec::new();
            for _ in 0..=queued {
                messages.push(client.recv(None).expect("every record opens, in sequence order"));
            }
            messages
        });
        outbox
            .await_request(&mut server, Instant::now() + Duration::from_secs(60))
            .expect("the rest is written by the connection thread");
        // Then a reply the connection thread sends itself, after the one handed back.
        outbox.settle(&mut server).unwrap();
        server.send(b"direct").unwrap();
        hand_back.join().unwrap();
        let messages = reader.join().unwrap();
        assert_eq!(messages.len(), queued + 1);
        assert!(messages[..queued].iter().all(|message| *message == payload));
        assert_eq!(messages[queued], b"direct");
    }
}
