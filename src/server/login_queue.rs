//! The queue for PBKDF2 work: one check per slot (a slot per core), first come first
//! served, a bounded line, and a deadline.
//!
//! A password check costs about 85 ms of one core at the default cost, so the checks a
//! server can do per second are few. Without a bound, a flood of logins makes every login
//! wait for all those before it, without end. Here a login waits in line at most until its
//! deadline and is then told `unavailable` (counting no failure: its password was never
//! checked); when [`MAX_WAITING_LOGINS`] already wait, it is told so at once.
//!
//! Invariants: at most `slots` checks run at once; slots are handed out in the order the
//! waiters arrived (a waiter that gives up leaves the line without blocking those behind
//! it); at most `max_waiting` wait.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::limits::MAX_WAITING_LOGINS;

/// Why a login got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRefusal {
    /// [`MAX_WAITING_LOGINS`] were already waiting.
    LineFull,
    /// The deadline passed before a slot was free.
    DeadlinePassed,
}

#[derive(Debug)]
struct Line {
    running: usize,
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

/// A bounded first-in-first-out line for PBKDF2 slots.
#[derive(Debug)]
pub struct LoginQueue {
    slots: usize,
    max_waiting: usize,
    line: Mutex<Line>,
    changed: Condvar,
}

/// A slot to run one PBKDF2 check; given back on drop.
#[derive(Debug)]
pub struct HashPermit<'a> {
    queue: &'a LoginQueue,
}

impl LoginQueue {
    /// A queue with `slots` slots (at least one) and room for `max_waiting` waiters.
    pub fn new(slots: usize, max_waiting: usize) -> Self {
        Self {
            slots: slots.max(1),
            max_waiting,
            line: Mutex::new(Line {
                running: 0,
                waiting: VecDeque::new(),
                next_ticket: 0,
            }),
            changed: Condvar::new(),
        }
    }

    /// One slot per available core and [`MAX_WAITING_LOGINS`] places in line.
    pub fn per_core() -> Self {
        Self::new(
            std::thread::available_parallelism().map_or(1, usize::from),
            MAX_WAITING_LOGINS,
        )
    }

    /// Waits in line for a slot until `deadline` (`None`: as long as it takes, and even
    /// when the line is full: the operator's own account creation).
    pub fn acquire(&self, deadline: Option<Instant>) -> Result<HashPermit<'_>, QueueRefusal> {
        let mut line = self.lock();
        if deadline.is_some() && line.waiting.len() >= self.max_waiting {
            return Err(QueueRefusal::LineFull);
        }
        let ticket = line.next_ticket;
        line.next_ticket += 1;
        line.waiting.push_back(ticket);
        loop {
            if line.running < self.slots && line.waiting.front() == Some(&ticket) {
                line.waiting.pop_front();
                line.running += 1;
                // The next in line may also find a free slot.
                self.changed.notify_all();
                return Ok(HashPermit { queue: self });
            }
            line = match deadline {
                None => self.changed.wait(line).unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        line.waiting.retain(|&waiter| waiter != ticket);
                        self.changed.notify_all();
                        return Err(QueueRefusal::DeadlinePassed);
                    }
                    self.changed
                        .wait_timeout(line, deadline - now)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
            };
        }
    }

    /// Logins waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for HashPermit<'_> {
    fn drop(&mut self) {
        self.queue.lock().running -= 1;
        self.queue.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn never_more_checks_at_once_than_slots() {
        let queue = Arc::new(LoginQueue::new(2, 100));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (queue, running, peak) = (queue.clone(), running.clone(), peak.clone());
                std::thread::spawn(move || {
                    let _permit = queue.acquire(None).unwrap();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        threads.into_iter().for_each(|thread| thread.join().unwrap());
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    /// Starts a thread that queues for a slot, and waits until it is in line.
    fn queue_up(queue: &Arc<LoginQueue>, order: &Arc<Mutex<Vec<usize>>>, who: usize) -> std::thread::JoinHandle<()> {
        let before = queue.waiting();
        let (queue_for_thread, order) = (Arc::clone(queue), Arc::clone(order));
        let thread = std::thread::spawn(move || {
            let _permit = queue_for_thread.acquire(None).unwrap();
            order.lock().unwrap().push(who);
        });
        while queue.waiting() == before {
            std::thread::yield_now();
        }
        thread
    }

    #[test]
    fn slots_go_to_waiters_in_the_order_they_arrived() {
        let queue = Arc::new(LoginQueue::new(1, 100));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = queue.acquire(None).unwrap();
        let threads: Vec<_> = (0..6).map(|who| queue_up(&queue, &order, who)).collect();
        drop(held);
        threads.into_iter().for_each(|thread| thread.join().unwrap());
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_waiter_past_its_deadline_leaves_the_line_and_the_next_one_is_served() {
        let queue = Arc::new(LoginQueue::new(1, 100));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = queue.acquire(None).unwrap();
        let refused = queue.acquire(Some(Instant::now() + Duration::from_millis(20)));
        assert_eq!(refused.unwrap_err(), QueueRefusal::DeadlinePassed);
        assert_eq!(queue.waiting(), 0, "the waiter that gave up left the line");
        let later = queue_up(&queue, &order, 7);
        drop(held);
        later.join().unwrap();
        assert_eq!(*order.lock().unwrap(), vec![7]);
    }

    #[test]
    fn a_waiter_gets_the_slot_freed_before_its_deadline() {
        let queue = Arc::new(LoginQueue::new(1, 100));
        let held = queue.acquire(None).unwrap();
        let waiter = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || queue.acquire(Some(Instant::now() + Duration::from_secs(60))).map(drop))
        };
        while queue.waiting() == 0 {
            std::thread::yield_now();
        }
        drop(held);
        assert_eq!(waiter.join().unwrap(), Ok(()));
    }

    #[test]
    fn a_full_line_refuses_at_once_but_the_operator_may_still_wait() {
        let queue = Arc::new(LoginQueue::new(1, 1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = queue.acquire(None).unwrap();
        let waiter = queue_up(&queue, &order, 1);
        let far = Some(Instant::now() + Duration::from_secs(3_600));
        assert_eq!(queue.acquire(far).unwrap_err(), QueueRefusal::LineFull);
        let operator = queue_up(&queue, &order, 2);
        drop(held);
        waiter.join().unwrap();
        operator.join().unwrap();
        assert_eq!(*order.lock().unwrap(), vec![1, 2]);
    }
}
