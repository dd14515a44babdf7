#!/usr/bin/env bash
# Prints README's "Reading order" table: the source files in the order a student reads them,
# with their line counts. Run it after a structural change and paste the output into README.
set -euo pipefail
cd "$(dirname "$0")/.."
row() { printf '| %s | `%s` | %s | %s |\n' "$1" "$2" "$(wc -l < "$2")" "$3"; }
echo '| step | file | lines | what it is |'
echo '|---|---|---:|---|'
row 1 src/lib.rs "the module map"
row 1 src/limits.rs "every limit, with its reason"
row 2 src/codec.rs "big-endian integers and bounded strings"
row 2 src/frame.rs "length-prefixed frames, refused before allocating"
row 3 src/channel/hello.rs "ClientHello and ServerHello"
row 3 src/channel/keys.rs "transcript, key schedule, Finished"
row 3 src/channel/handshake.rs "the handshake state machines"
row 3 src/channel/record.rs "ChaCha20-Poly1305 records and nonces"
row 3 src/channel/transport.rs "the secure channel over a socket"
row 3 src/identity.rs "the server key and its fingerprint"
row 3 src/known_servers.rs "the client's pins"
row 4 src/message.rs "requests and responses"
row 4 src/money.rs "amounts in cents"
row 4 src/error.rs "the error enums"
row 5 src/server/mod.rs "listener, connection threads, the cap"
row 5 src/server/session.rs "login state machine and dispatch"
row 5 src/server/admission.rs "per-address budgets: connections, handshakes, logins"
row 5 src/server/fd_limit.rs "the connection cap fitted to the file limit"
row 5 src/server/auth.rs "passwords and PBKDF2"
row 5 src/server/login_queue.rs "the PBKDF2 line: bounded, in order, with a deadline"
row 5 src/server/otp.rs "one-time codes"
row 5 src/totp.rs "authenticator-app codes (TOTP)"
row 6 src/server/bank.rs "the Bank seam: every operation, checkpoints"
row 6 src/server/bank/login.rs "judging a password: exact lockout, no account oracle"
row 6 src/server/unknown_names.rs "failures of names that have no account"
row 6 src/server/ledger.rs "accounts and the rules of money"
row 6 src/server/retention.rs "transaction ids in time"
row 6 src/server/events.rs "journal events"
row 7 src/server/commit.rs "group commit and segment switches"
row 7 src/server/reply.rs "replies sent after their sync by the batch's writer"
row 7 src/server/journal.rs "segment format and the torn-batch rule"
row 7 src/server/checkpoint.rs "the checkpoint file"
row 7 src/server/snapshot.rs "the ledger as canonical bytes"
row 7 src/server/recovery.rs "start-up: checkpoint plus replay"
row 8 src/client/mod.rs "the client library"
row 8 src/client/cli.rs "the terminal client"
row 8 src/client/retry.rs "a money request kept across a broken connection"
echo
echo 'Can be skipped on a first reading:'
echo
echo '| file | lines | what it is |'
echo '|---|---:|---|'
for file in src/server/storage.rs src/server/storage/sim.rs src/server/verify.rs src/server/admin.rs \
    src/server/operator.rs src/server/operator_socket.rs src/operator_client.rs \
    src/server/otp_command.rs src/server/journal_v1.rs src/client/pinning.rs src/client/plain.rs src/client/terminal.rs \
    src/trace.rs src/args.rs src/rng.rs src/source_address.rs \
    src/bin/bank-server.rs src/bin/bank-client.rs; do
  case "$file" in
    src/server/storage.rs) what="the storage seam (real directory)";;
    src/server/storage/sim.rs) what="the simulated disk for crash tests";;
    src/server/verify.rs) what="\`bank-server verify\`";;
    src/server/admin.rs) what="add-account, demo accounts, prune";;
    src/server/operator.rs) what="operator commands: admin messages and what each does";;
    src/server/operator_socket.rs) what="the admin socket: bind, replace, serve, stop";;
    src/operator_client.rs) what="operator commands from the command line: via the server or offline";;
    src/server/otp_command.rs) what="\`--otp-command\`: codes handed to a gateway program";;
    src/server/journal_v1.rs) what="reader of the first release's journal";;
    src/client/pinning.rs) what="the pinning decision";;
    src/client/plain.rs) what="connection errors in plain words";;
    src/client/terminal.rs) what="the terminal restored on Ctrl-C";;
    src/trace.rs) what="\`--trace\` output";;
    src/args.rs) what="command-line parsing";;
    src/rng.rs) what="random bytes";;
    src/source_address.rs) what="connecting from a chosen loopback address (bench, tests)";;
    *) what="the binary";;
  esac
  printf '| `%s` | %s | %s |\n' "$file" "$(wc -l < "$file")" "$what"
done
