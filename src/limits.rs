//! Every limit of the system, in one place, each with the reason for its value.
//!
//! A limit that a test needs to shrink (time limits, the PBKDF2 cost) is only the *default*
//! here; the running value lives in [`crate::server::ServerConfig`].

/// Largest frame body accepted from a peer, in bytes. The largest legitimate frame is a
/// history response (about 50 entries of under 100 bytes) or a ServerHello (about 900 bytes
/// with an RSA-3072 key and signature); 16 KiB leaves room and bounds the memory a peer can
/// make us allocate per connection.
pub const MAX_FRAME_BODY_BYTES: usize = 16 * 1024;

/// Default cap on concurrently open connections. Each costs one thread; 1,024 threads fit
/// comfortably in memory on the 2-core machine this runs on, and a connection over the cap
/// is told "busy" instead of queuing without bound.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Default time a client has to finish the whole handshake, in seconds. A real client needs
/// one round trip; 10 s tolerates slow links yet stops a peer from holding a thread by
/// sending nothing (or one byte at a time).
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;

/// Default time a connection may stay silent between requests, in seconds, and the time a
/// single request frame may take to arrive. Five minutes lets a person read the menu; after
/// that the thread is returned.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;

/// Default time a single reply may take to be accepted by the peer's socket, in seconds
/// (one deadline for the whole reply, however the kernel splits the write). A client that
/// never reads its replies fills the socket buffers; this bounds how long it can block a
/// worker.
pub const DEFAULT_WRITE_TIMEOUT_SECS: u64 = 10;

/// While a connection's reply waits with the commit thread, the connection thread reads its
/// socket in steps of this many milliseconds and looks between them whether the commit
/// thread handed the reply back (the socket could not take it all at once: a full buffer,
/// memory pressure). That rare reply then waits at most this long before its own thread
/// writes it; a connection whose reply went out wakes once more at most, after its last
/// reply. Longer than a sync (0.1-0.5 ms), short next to a person's patience.
pub const RETURNED_REPLY_CHECK_MS: u64 = 10;

/// Shortest account name, in bytes: two letters are too easy to guess as a target.
pub const MIN_USERNAME_BYTES: usize = 3;

/// Longest account name, in bytes: names are shown in menus and logs, and 32 is plenty.
pub const MAX_USERNAME_BYTES: usize = 32;

/// Shortest password accepted when an account is created (NIST SP 800-63B asks for 8).
pub const MIN_PASSWORD_BYTES: usize = 8;

/// Longest password accepted, in bytes. PBKDF2 hashes any length, but an unbounded field is
/// an unbounded allocation; 128 bytes holds any passphrase a person types.
pub const MAX_PASSWORD_BYTES: usize = 128;

/// Default PBKDF2-HMAC-SHA256 iteration count for new password records: OWASP's 2023
/// recommendation for this FIPS-approved construction.
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 600_000;

/// Fewest PBKDF2 iterations a stored record may claim. Tests use small counts for speed;
/// a journal that claims fewer than this is treated as damaged.
pub const MIN_PBKDF2_ITERATIONS: u32 = 1_000;

/// Most PBKDF2 iterations a stored record may claim: bounds the CPU one login can cost.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// Length of a password salt, in bytes (NIST SP 800-132 asks for at least 128 bits).
pub const PASSWORD_SALT_BYTES: usize = 16;

/// Digits in a one-time code: the familiar SMS format, one in a million per guess.
pub const OTP_DIGITS: usize = 6;

/// Default lifetime of a one-time code, in seconds: long enough to read it off a phone,
/// short enough that a guessed code is rarely still valid.
pub const DEFAULT_OTP_TTL_SECS: u64 = 120;

/// Wrong codes allowed per login attempt before the attempt is ended. With 3 tries the
/// chance of guessing a code is 3 in a million per password-verified attempt.
pub const OTP_MAX_TRIES: u32 = 3;

/// Consecutive failed logins (password or code) that lock an account.
pub const LOCKOUT_THRESHOLD: u32 = 5;

/// How long a locked account stays locked, in seconds (15 minutes): online guessing is
/// slowed to 5 tries per quarter hour per account.
pub const LOCKOUT_DURATION_SECS: u64 = 15 * 60;

/// Largest amount a single deposit, withdrawal or transfer may move, in cents
/// (1,000,000.00). Bounds the damage of a mistyped amount.
pub const MAX_TRANSACTION_CENTS: u64 = 100_000_000;

/// Largest balance an account may hold, in cents (10^15.00). Keeps the sum of every balance
/// far below `u64::MAX`, so totals can never overflow.
pub const MAX_BALANCE_CENTS: u64 = 100_000_000_000_000_000;

/// History entries kept per account in memory and returned by a history request. Bounds the
/// reply size (about 50 × 100 bytes, well under [`MAX_FRAME_BODY_BYTES`]).
pub const MAX_HISTORY_ENTRIES: usize = 50;

/// Default time a transaction id is remembered, in seconds (24 hours), counted from the
/// creation time written in the id. A client that lost its connection has a day to retry
/// and learn the outcome; an older id is refused, never applied, so the server's memory of
/// ids is bounded by (transaction rate × this window) instead of growing forever.
pub const DEFAULT_TXID_RETENTION_SECS: u64 = 86_400;

/// Longest retention an operator may set, in seconds (30 days). Remembered ids cost memory
/// and checkpoint bytes in proportion to rate × window; a month covers any realistic retry
/// while keeping that product bounded.
pub const MAX_TXID_RETENTION_SECS: u64 = 30 * 86_400;

/// How far ahead of the server's clock a transaction id's creation time may be, in seconds
/// (5 minutes): client clocks drift, but an id from further ahead would stay remembered
/// beyond the window and could be used to pin memory.
pub const MAX_TXID_CLOCK_SKEW_SECS: u64 = 300;

/// Longest error-code string on the wire, in bytes.
pub const MAX_ERROR_CODE_BYTES: usize = 64;

/// Longest echo payload, in bytes; an echo is a connectivity check, not a bulk transfer.
pub const MAX_ECHO_BYTES: usize = 1024;

/// Largest journal record payload, in bytes. The largest record is a transaction record
/// (two names, an id, an error code name: under 200 bytes). 400 bytes leaves room while a
/// record with its length and chain value stays under 444 bytes, which is what makes the
/// torn-batch rule sound: every 512-byte sector of a written batch then holds a whole chain
/// value, the batch magic, or non-zero padding, so it is never all zero (see
/// [`crate::server::journal`]).
pub const MAX_JOURNAL_RECORD_BYTES: usize = 400;

/// Largest sync batch on disk (header and records, before padding), in bytes. The commit
/// thread writes at most this much per `fdatasync` (appenders wait for room), so recovery
/// knows how far a torn last batch can reach. 1 MiB is thousands of records: far more than
/// one sync ever gathers from 1,024 connections.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Bytes a journal segment is extended by, with zeros, ahead of the data, so that a sync
/// does not also have to commit a change of file size. 64 MiB is about 600,000 records.
pub const JOURNAL_PREALLOCATE_BYTES: u64 = 64 * 1024 * 1024;

/// Largest preallocation an operator may ask for, in KiB (4 GiB): each segment and each
/// extension writes this many zeros, so a mistyped value must not fill the disk at once.
pub const MAX_JOURNAL_PREALLOCATE_KIB: u64 = 4 * 1024 * 1024;

/// Default number of records between checkpoints. Recovery loads the newest checkpoint and
/// replays the records after it: at most this many plus those appended while the next
/// checkpoint was being prepared. The 10-million-transaction soak (BENCHMARKS.md) restarted
/// in 1.2 s with 388,000 records to replay and in 1.6 s with about 500,000, on the 2-core
/// machine this is measured on; 300,000 keeps a restart near one second, whatever the age
/// of the bank.
pub const DEFAULT_CHECKPOINT_EVERY_RECORDS: u64 = 300_000;

/// Largest checkpoint file accepted, in bytes. A checkpoint holds every account (with up to
/// 50 history entries of under 100 bytes) and every remembered transaction id (about 60
/// bytes each); 4 GiB is far beyond any bank this single-machine design serves, and bounds
/// what a damaged length can make recovery allocate.
pub const MAX_CHECKPOINT_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Operator (admin socket) connections served at once. An operator runs one command at a
/// time; a few allow a second terminal or a monitoring script, and the cap keeps a looping
/// local script from piling up threads. One over the cap is answered "busy" and closed.
pub const MAX_OPERATOR_CONNECTIONS: usize = 4;

/// Time an operator connection may take to send each whole request frame, and each reply
/// may take to be accepted, in seconds. The command-line tool sends its request at once;
/// 30 s is generous, and frees the thread of a local peer that connects and says nothing
/// (or trickles one byte at a time).
pub const OPERATOR_IO_TIMEOUT_SECS: u64 = 30;

/// Time the command-line tool waits for the running server's reply to one operator
/// request, in seconds. `verify` replays the whole journal (about a million records a
/// second here, BENCHMARKS.md) and `checkpoint` encodes the whole ledger, so an old, large
/// bank needs minutes; ten minutes covers hundreds of millions of records without letting a
/// hung server hang the operator forever.
pub const OPERATOR_REPLY_TIMEOUT_SECS: u64 = 600;

/// Longest text in an operator reply, in bytes. The longest reply is `verify`'s report or
/// `stats` (well under 2 KiB); 8 KiB leaves room and keeps the reply inside one frame
/// ([`MAX_FRAME_BODY_BYTES`]).
pub const MAX_OPERATOR_TEXT_BYTES: usize = 8 * 1024;

// ---- Abuse limits (issue 11): fair logins under flood, per-source budgets. ----
// A "source" is one IPv4 address, or one IPv6 /64 (what one customer's network is usually
// given): counting single IPv6 addresses would let one host take 2^64 budgets.

/// Logins that may wait for a PBKDF2 slot at once, beyond those running. A queued login
/// waits at most [`DEFAULT_LOGIN_QUEUE_DEADLINE_MS`]; with one slot per core and about 85 ms
/// per check at the default cost, 64 waiters are about 2.7 s of work on 2 cores, so a full
/// queue is about as long as the deadline. One more is answered `unavailable` at once.
pub const MAX_WAITING_LOGINS: usize = 64;

/// Default longest wait for a PBKDF2 slot, in milliseconds. Past it, Login is answered
/// `unavailable` and no failure is counted. 3 s keeps a customer's worst login well under
/// the client's 60 s reply timeout and tells them "busy, try again" instead of a spinner.
pub const DEFAULT_LOGIN_QUEUE_DEADLINE_MS: u64 = 3_000;

/// Default connections one source may hold before logging in. A household or office
/// behind one address opens a few at a time; 32 leaves room for that and for scripts,
/// while 8 flooding addresses hold at most 256 threads, a quarter of the default cap.
pub const DEFAULT_ANONYMOUS_PER_SOURCE: usize = 32;

/// Default handshakes one source may start per second, on average. Each costs the server an
/// RSA-3072 signature (about 1.5 ms of one core here): 10 a second per source is far more
/// than a person needs and keeps 8 flooding sources under an eighth of one core.
pub const DEFAULT_HANDSHAKES_PER_SOURCE_PER_SEC: u32 = 10;

/// Handshakes one source may start in a burst before the per-second rate applies (a client
/// that reconnects several times in a row, a test or a script starting up).
pub const HANDSHAKE_BURST_PER_SOURCE: u32 = 20;

/// Default login attempts (passwords checked) one source may make per minute, on average.
/// Each costs about 85 ms of PBKDF2 on one core: 30 a minute from each of 8 flooding
/// sources is a third of one core, and no person types 30 passwords a minute.
pub const DEFAULT_LOGINS_PER_SOURCE_PER_MIN: u32 = 30;

/// Login attempts one source may make in a burst before the per-minute rate applies.
pub const LOGIN_BURST_PER_SOURCE: u32 = 10;

/// Sources whose counters are remembered at once. An idle source with full buckets is
/// forgotten first (forgetting it changes nothing); 65,536 sources cost about 4 MiB. When
/// every entry is busy, a new source is refused as busy rather than growing the table.
pub const MAX_TRACKED_SOURCES: usize = 65_536;

/// Default time a connection may stay silent before it logs in, in seconds. A handshake
/// takes one round trip and the client asks for the password before it is needed again;
/// 30 s lets a person type a name and password, and frees the thread of a stranger who
/// connects and waits (the client reconnects by itself if its idle connection was closed).
pub const DEFAULT_ANONYMOUS_IDLE_TIMEOUT_SECS: u64 = 30;

/// Share of the connection cap, in percent, that only logged-in sessions may use: strangers
/// can fill at most the rest, so a flood cannot push out customers who are already in.
pub const LOGGED_IN_RESERVED_PERCENT: usize = 25;

/// Refused transactions a session may make in a burst. A refusal (unknown recipient,
/// insufficient funds) tells the session something about the bank (that a name exists);
/// 10 covers any honest run of typos.
pub const REFUSED_TX_BURST_PER_SESSION: u32 = 10;

/// Refused transactions a session may make per minute once the burst is spent: 6 a minute
/// makes listing account names through Transfer take days, each session costing a full
/// two-step login. Past it, money requests are answered `unavailable` and not judged.
pub const REFUSED_TX_PER_SESSION_PER_MIN: u32 = 6;

/// Names that never existed whose failed logins are counted, so that they lock exactly like
/// real accounts (the lockout answer must not tell which names exist). Evicting a locked
/// name early would be an oracle: at the default cost 2 cores judge about 24 logins a
/// second, 21,600 in one 15-minute lock, so 65,536 entries cannot be cycled within a lock.
pub const MAX_TRACKED_UNKNOWN_NAMES: usize = 65_536;

/// File descriptors kept free beyond one per connection: the listener, the admin socket and
/// its 4 connections, journal segments, checkpoints being written, the stats file, the
/// outbox, standard streams, with room to spare. The connection cap is lowered to fit
/// the file limit minus this.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 64;

/// Longest any time limit flag may be set to, in seconds (one day). A longer limit holds a
/// thread for longer than any client waits, and values near `u64::MAX` would overflow the
/// clock arithmetic of every connection.
pub const MAX_TIME_LIMIT_SECS: u64 = 86_400;

/// Shortest a lockout may be set to, in seconds: a one-second lock still stops a parallel
/// burst of guesses, which is what tests need; operators use minutes.
pub const MIN_LOCKOUT_SECS: u64 = 1;

/// Largest connection cap an operator may set. Each connection is a thread with a 256 KiB
/// stack and a descriptor; 65,536 is far past what one machine of this design serves.
pub const MAX_CONNECTIONS_LIMIT: usize = 65_536;

/// Longest login-queue deadline an operator may set, in milliseconds: the client gives up
/// on a reply after 60 s, so waiting longer only wastes the work.
pub const MAX_LOGIN_QUEUE_DEADLINE_MS: u64 = 60_000;

/// Largest per-source rate an operator may set (per second or per minute). A million is no
/// limit at all in practice (tests and benchmarks from one address use it); bounding it
/// keeps the arithmetic finite.
pub const MAX_SOURCE_RATE: u32 = 1_000_000;

/// Time past a one-time code's lifetime that a connection awaiting it is kept, in seconds:
/// a code typed at the last moment is answered "expired" instead of finding the connection
/// closed.
pub const OTP_ANSWER_GRACE_SECS: u64 = 5;
/// Bytes in a TOTP secret (160 bits): the length RFC 4226 §4 recommends for an HOTP key
/// (it requires at least 128 bits), the output size of SHA-1, and what authenticator apps
/// expect to scan.
pub const TOTP_SECRET_BYTES: usize = 20;

/// Length of one TOTP time step, in seconds: RFC 6238's default, and the only period that
/// every common authenticator app supports.
pub const TOTP_STEP_SECS: u64 = 30;

/// Time steps on each side of the current one whose code is also accepted. RFC 6238 §5.2
/// recommends at most one step of allowance for clock drift and typing delay. Three codes
/// match at any moment, so each guess is worth three; every extra step would add two more.
pub const TOTP_SKEW_STEPS: u64 = 1;

/// Codes `bank-server enrol-totp` asks for before it gives up (nothing is enrolled until one
/// matches the new secret). A customer who mistypes twice gets a third chance, as at login;
/// more failures mean a wrong secret or a wrong clock, which another try will not fix.
pub const TOTP_ENROL_TRIES: u32 = 3;

/// Default time the `--otp-command` program has to take a code, in seconds; it is killed at
/// the deadline and the login answered `unavailable`. An SMS or e-mail gateway call answers
/// in a second or two; 10 s tolerates a slow one while a hung gateway holds the customer's
/// connection (and nothing else) for a bounded time.
pub const DEFAULT_OTP_COMMAND_TIMEOUT_SECS: u64 = 10;

/// Lines of each output stream of the `--otp-command` program copied to the server log per
/// code (longer lines are cut at [`MAX_OTP_COMMAND_LOG_LINE_BYTES`]). A gateway says a line or
/// two; the cap keeps a chatty or broken program from flooding the log. The rest is read and
/// dropped, so the program never blocks on a full pipe.
pub const MAX_OTP_COMMAND_LOG_LINES: usize = 20;

/// Longest line of the `--otp-command` program's output copied to the log, in bytes.
pub const MAX_OTP_COMMAND_LOG_LINE_BYTES: usize = 200;
