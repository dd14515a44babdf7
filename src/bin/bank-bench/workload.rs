//! The measured workloads: durable transactions (a mix of deposit, withdraw, transfer and
//! balance), handshakes, and full two-step logins.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use securebank::client::{Client, new_txid};

use crate::report::{Latencies, PhaseResult};
use crate::setup::{self, Target};

/// Percentages of each operation in the transaction phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    deposit: u32,
    withdraw: u32,
    transfer: u32,
    balance: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            deposit: 40,
            withdraw: 20,
            transfer: 20,
            balance: 20,
        }
    }
}

impl Mix {
    /// Parses `deposit=40,withdraw=20,transfer=20,balance=20` (missing kinds are 0).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut mix = Self {
            deposit: 0,
            withdraw: 0,
            transfer: 0,
            balance: 0,
        };
        for part in text.split(',') {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("--mix: expected name=percent, got {part:?}"))?;
            let value: u32 = value
                .trim()
                .parse()
                .map_err(|_| format!("--mix: bad percent {value:?}"))?;
            match name.trim() {
                "deposit" => mix.deposit = value,
                "withdraw" => mix.withdraw = value,
                "transfer" => mix.transfer = value,
                "balance" => mix.balance = value,
                other => return Err(format!("--mix: unknown operation {other:?}")),
            }
        }
        if mix.deposit + mix.withdraw + mix.transfer + mix.balance != 100 {
            return Err("--mix: the percentages must add up to 100".into());
        }
        Ok(mix)
    }

    fn pick(&self, roll: u32) -> Op {
        let roll = roll % 100;
        if roll < self.deposit {
            Op::Deposit
        } else if roll < self.deposit + self.withdraw {
            Op::Withdraw
        } else if roll < self.deposit + self.withdraw + self.transfer {
            Op::Transfer
        } else {
            Op::Balance
        }
    }
}

/// One kind of operation of the transaction mix.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Deposit 1.00.
    Deposit,
    /// Withdraw 0.50.
    Withdraw,
    /// Transfer 0.10 to the next client's account.
    Transfer,
    /// Read the balance.
    Balance,
}

const OP_NAMES: [&str; 4] = ["deposit", "withdraw", "transfer", "balance"];

/// xorshift64: enough randomness to pick operations, seeded per thread.
pub fn next_random(state: &mut u64) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 32) as u32
}

/// Runs one operation picked from `mix` (deposit 1.00, withdraw 0.50, transfer 0.10 to
/// `recipient`, or a balance read) and says which it was, or why it failed.
pub fn one_operation(
    client: &mut Client,
    mix: Mix,
    seed: &mut u64,
    recipient: &str,
) -> Result<Op, (Op, securebank::error::ClientError)> {
    let op = mix.pick(next_random(seed));
    let outcome = match op {
        Op::Deposit => client.deposit(new_txid(), 100),
        Op::Withdraw => client.withdraw(new_txid(), 50),
        Op::Transfer => client.transfer(new_txid(), 10, recipient),
        Op::Balance => client.balance(),
    };
    outcome.map(|_| op).map_err(|err| (op, err))
}

/// Asks the server to refresh its commit counters (written after a sync, at most every
/// 500 ms) and reads them.
fn fresh_commit_stats(target: &Target, client: &mut Client) -> Option<(u64, u64)> {
    std::thread::sleep(Duration::from_millis(600));
    client.deposit(new_txid(), 1).ok()?;
    target.commit_stats()
}

/// Durable transactions from `clients` logged-in clients for `phase`.
pub fn transactions(target: &Target, clients: usize, phase: Duration, mix: Mix) -> Result<PhaseResult, String> {
    let mut sessions = Vec::with_capacity(clients);
    for index in 0..clients {
        sessions.push(target.login(&setup::tx_account(index))?);
    }
    let mut probe = target.login(&setup::tx_account(0))?;
    let before = fresh_commit_stats(target, &mut probe);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let peers = clients.max(2);
    let threads: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(index, mut client)| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || -> Result<[Latencies; 4], String> {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (index as u64 + 1);
                let recipient = setup::tx_account((index + 1) % peers);
                let mut latencies: [Latencies; 4] = Default::default();
                barrier.wait();
                let deadline = Instant::now() + phase;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let op = one_operation(&mut client, mix, &mut seed, &recipient)
                        .map_err(|(op, err)| format!("{op:?} failed: {err}"))?;
                    latencies[op as usize].record(started.elapsed());
                }
                Ok(latencies)
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut per_op: [Latencies; 4] = Default::default();
    for thread in threads {
        let latencies = thread.join().map_err(|_| "client thread panicked")??;
        for (total, part) in per_op.iter_mut().zip(latencies) {
            total.merge(part);
        }
    }
    let elapsed = started.elapsed();
    let after = fresh_commit_stats(target, &mut probe);
    let mut all = Latencies::default();
    per_op.iter().for_each(|l| all.merge(l.clone()));
    let mut result = PhaseResult::new(clients, all, elapsed);
    result.per_op = OP_NAMES.iter().map(|n| n.to_string()).zip(per_op).collect();
    if let (Some((records_before, syncs_before)), Some((records_after, syncs_after))) = (before, after) {
        let records = records_after.saturating_sub(records_before + 1);
        let syncs = syncs_after.saturating_sub(syncs_before + 1);
        result.records_per_sync = (syncs > 0).then(|| records as f64 / syncs as f64);
    }
    Ok(result)
}

fn run_loops(
    threads: usize,
    phase: Duration,
    work: impl Fn(usize) -> Result<(), String> + Sync,
) -> Result<(Latencies, Duration), String> {
    let started = Instant::now();
    let deadline = started + phase;
    let mut all = Latencies::default();
    std::thread::scope(|scope| -> Result<(), String> {
        let work = &work;
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                scope.spawn(move || -> Result<Latencies, String> {
                    let mut latencies = Latencies::default();
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        work(index)?;
                        latencies.record(started.elapsed());
                    }
                    Ok(latencies)
                })
            })
            .collect();
        for handle in handles {
            all.merge(handle.join().map_err(|_| "thread panicked")??);
        }
        Ok(())
    })?;
    Ok((all, started.elapsed()))
}

/// Full handshakes (the server signs each with RSA-PSS) from `threads` clients.
pub fn handshakes(target: &Target, threads: usize, phase: Duration) -> Result<PhaseResult, String> {
    let (latencies, elapsed) = run_loops(threads, phase, |_| target.connect().map(drop))?;
    Ok(PhaseResult::new(threads, latencies, elapsed))
}

/// Complete logins (handshake, PBKDF2 at the default cost, one-time code, logout).
pub fn logins(target: &Target, phase: Duration) -> Result<PhaseResult, String> {
    let (latencies, elapsed) = run_loops(setup::LOGIN_ACCOUNTS, phase, |index| {
        let mut client = target.login(&setup::login_account(index))?;
        client.logout().map_err(|err| err.to_string())
    })?;
    Ok(PhaseResult::new(setup::LOGIN_ACCOUNTS, latencies, elapsed))
}

/// The cost of one PBKDF2-HMAC-SHA256 check at the default iteration count, measured in
/// this process on one core: the floor of a login's latency, by design.
pub fn pbkdf2_check(checks: usize) -> PhaseResult {
    let record =
        securebank::server::auth::hash_password("bench-password", securebank::limits::DEFAULT_PBKDF2_ITERATIONS);
    let started = Instant::now();
    let mut latencies = Latencies::default();
    for _ in 0..checks {
        let check = Instant::now();
        assert!(securebank::server::auth::verify_password(&record, "bench-password"));
        latencies.record(check.elapsed());
    }
    PhaseResult::new(1, latencies, started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_picks_each_operation_in_proportion() {
        let mix = Mix::parse("deposit=50,balance=50").unwrap();
        let picks: Vec<_> = (0..100).map(|roll| mix.pick(roll) as usize).collect();
        assert_eq!(picks.iter().filter(|&&op| op == Op::Deposit as usize).count(), 50);
        assert_eq!(picks.iter().filter(|&&op| op == Op::Balance as usize).count(), 50);
    }

    #[test]
    fn mix_refuses_unknown_operations_and_wrong_totals() {
        assert!(Mix::parse("deposit=40,withdraw=20").is_err());
        assert!(Mix::parse("steal=100").is_err());
        assert!(Mix::parse("deposit").is_err());
        assert_eq!(
            Mix::parse("deposit=40,withdraw=20,transfer=20,balance=20").unwrap(),
            Mix::default()
        );
    }
}
