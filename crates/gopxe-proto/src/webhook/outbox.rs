//! The webhook outbox: a bounded FIFO of deliveries with retry decisions.
//!
//! Layer: core (sans-I/O, no clock: the driver passes `now` in, and tests
//! move time by hand). One outbox per configured URL. Deliveries leave in
//! the order they were queued: only the head is ever tried, and a failed
//! head is retried (after an exponential backoff, doubling from
//! [`Policy::first_delay`] up to [`Policy::max_delay`]) before anything
//! behind it, until it succeeds or has been tried [`Policy::max_attempts`]
//! times; then it is given up and the next one goes. A receiver that is
//! down therefore delays the events behind it but never reorders them.
//!
//! The queue holds at most [`Policy::capacity`] deliveries. When it is
//! full, the oldest one that is not being sent right now is dropped to make
//! room (the newest state is the one worth telling); the caller counts it.
//! No jitter: one appliance with a handful of receivers does not make a
//! thundering herd, and a deterministic schedule is easier to test.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Queue bound and retry schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Most deliveries waiting (at least 2: the one in flight and one more).
    pub capacity: usize,
    /// Tries per delivery, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure.
    pub first_delay: Duration,
    /// The longest wait between two tries.
    pub max_delay: Duration,
}

impl Default for Policy {
    /// 256 waiting; 10 tries waiting 0.5 s, 1 s, 2 s, ... 60 s between them
    /// (about three minutes in all before a delivery is given up).
    fn default() -> Self {
        Policy {
            capacity: 256,
            max_attempts: 10,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl Policy {
    /// The wait after the `failures`-th failed try (1 for the first):
    /// `first_delay * 2^(failures-1)`, at most `max_delay`.
    pub fn delay_after(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(30);
        self.first_delay
            .saturating_mul(1u32 << shift)
            .min(self.max_delay)
    }
}

struct Entry<T> {
    seq: u64,
    item: T,
    /// Tries made so far.
    attempts: u32,
    /// Not to be tried before this (after a failure).
    not_before: Option<Instant>,
}

/// What the driver should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<T> {
    /// Try this delivery now, then report with [`Outbox::finish`].
    Send { seq: u64, attempt: u32, item: T },
    /// The head waits for its retry time; ask again then (or when woken).
    WaitUntil(Instant),
    /// A delivery is being tried; nothing else may start.
    Busy,
    /// Nothing queued.
    Idle,
}

/// How a try ended, for logs and metrics.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered on try number `attempts`.
    Delivered { attempts: u32 },
    /// Failed; tried again at `at` (after `delay`).
    Retry {
        attempts: u32,
        delay: Duration,
        at: Instant,
    },
    /// Failed `attempts` times: given up, the next delivery goes.
    GaveUp { attempts: u32 },
    /// Not the delivery in flight (a driver bug; ignored).
    Stale,
}

/// A bounded, ordered delivery queue for one receiver.
pub struct Outbox<T> {
    policy: Policy,
    entries: VecDeque<Entry<T>>,
    /// The sequence number of the head while it is being tried.
    in_flight: Option<u64>,
}

impl<T: Clone> Outbox<T> {
    pub fn new(mut policy: Policy) -> Self {
        policy.capacity = policy.capacity.max(2);
        policy.max_attempts = policy.max_attempts.max(1);
        Outbox {
            policy,
            entries: VecDeque::new(),
            in_flight: None,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queues `item` as delivery `seq`. When the queue is full, the oldest
    /// delivery not in flight is dropped and its sequence number returned.
    pub fn push(&mut self, seq: u64, item: T) -> Option<u64> {
        let mut dropped = None;
        if self.entries.len() >= self.policy.capacity {
            let oldest = usize::from(self.in_flight.is_some());
            dropped = self.entries.remove(oldest).map(|e| e.seq);
        }
        self.entries.push_back(Entry {
            seq,
            item,
            attempts: 0,
            not_before: None,
        });
        dropped
    }

    /// What to do at `now`.
    pub fn next(&mut self, now: Instant) -> Next<T> {
        if self.in_flight.is_some() {
            return Next::Busy;
        }
        let Some(head) = self.entries.front_mut() else {
            return Next::Idle;
        };
        if let Some(t) = head.not_before
            && t > now
        {
            return Next::WaitUntil(t);
        }
        head.attempts += 1;
        head.not_before = None;
        self.in_flight = Some(head.seq);
        Next::Send {
            seq: head.seq,
            attempt: head.attempts,
            item: head.item.clone(),
        }
    }

    /// Reports how the try of `seq` went (`delivered`: a 2xx answer).
    pub fn finish(&mut self, seq: u64, delivered: bool, now: Instant) -> Outcome {
        if self.in_flight != Some(seq) {
            return Outcome::Stale;
        }
        self.in_flight = None;
        let Some(head) = self.entries.front_mut().filter(|h| h.seq == seq) else {
            return Outcome::Stale;
        };
        let attempts = head.attempts;
        if delivered {
            self.entries.pop_front();
            return Outcome::Delivered { attempts };
        }
        if attempts >= self.policy.max_attempts {
            self.entries.pop_front();
            return Outcome::GaveUp { attempts };
        }
        let delay = self.policy.delay_after(attempts);
        let at = now + delay;
        head.not_before = Some(at);
        Outcome::Retry {
            attempts,
            delay,
            at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn sent(n: Next<&'static str>) -> (u64, u32, &'static str) {
        match n {
            Next::Send { seq, attempt, item } => (seq, attempt, item),
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_without_overflow() {
        let p = Policy::default();
        let got: Vec<u64> = (1..=9)
            .map(|n| p.delay_after(n).as_millis() as u64)
            .collect();
        assert_eq!(
            got,
            [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]
        );
        assert_eq!(p.delay_after(0), ms(500));
        assert_eq!(p.delay_after(u32::MAX), Duration::from_secs(60));
        let huge = Policy {
            first_delay: Duration::MAX,
            max_delay: Duration::MAX,
            ..p
        };
        assert_eq!(huge.delay_after(40), Duration::MAX);
    }

    #[test]
    fn a_failed_head_is_retried_on_schedule_before_the_next() {
        let t0 = Instant::now();
        let mut o = Outbox::new(Policy::default());
        assert_eq!(o.next(t0), Next::Idle);
        assert_eq!(o.push(1, "a"), None);
        assert_eq!(o.push(2, "b"), None);
        assert_eq!(sent(o.next(t0)), (1, 1, "a"));
        assert_eq!(o.next(t0), Next::Busy, "one try at a time");
        let t1 = t0 + ms(30);
        assert_eq!(
            o.finish(1, false, t1),
            Outcome::Retry {
                attempts: 1,
                delay: ms(500),
                at: t1 + ms(500)
            }
        );
        // "b" does not overtake "a" while "a" waits.
        assert_eq!(o.next(t1), Next::WaitUntil(t1 + ms(500)));
        assert_eq!(o.next(t1 + ms(499)), Next::WaitUntil(t1 + ms(500)));
        assert_eq!(sent(o.next(t1 + ms(500))), (1, 2, "a"));
        let t2 = t1 + ms(600);
        assert!(matches!(
            o.finish(1, false, t2),
            Outcome::Retry { attempts: 2, delay, .. } if delay == ms(1000)
        ));
        assert_eq!(sent(o.next(t2 + ms(1000))), (1, 3, "a"));
        assert_eq!(
            o.finish(1, true, t2 + ms(1001)),
            Outcome::Delivered { attempts: 3 }
        );
        assert_eq!(sent(o.next(t2 + ms(1001))), (2, 1, "b"));
        assert_eq!(
            o.finish(2, true, t2 + ms(1002)),
            Outcome::Delivered { attempts: 1 }
        );
        assert_eq!(o.next(t2 + ms(1002)), Next::Idle);
        assert!(o.is_empty());
    }

    #[test]
    fn gives_up_after_max_attempts_and_moves_on() {
        let mut o = Outbox::new(Policy {
            max_attempts: 3,
            ..Policy::default()
        });
        o.push(7, "x");
        o.push(8, "y");
        let mut now = Instant::now();
        for attempt in 1..=3 {
            assert_eq!(sent(o.next(now)), (7, attempt, "x"));
            match o.finish(7, false, now) {
                Outcome::Retry { at, .. } => now = at,
                Outcome::GaveUp { attempts } => assert_eq!(attempts, 3),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sent(o.next(now)), (8, 1, "y"));
        // Waits were 0.5 s and 1 s: the schedule's total.
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_waiting_never_the_one_in_flight() {
        let mut o = Outbox::new(Policy {
            capacity: 3,
            ..Policy::default()
        });
        let t = Instant::now();
        for s in 1..=3 {
            assert_eq!(o.push(s, "e"), None);
        }
        assert_eq!(o.push(4, "e"), Some(1), "idle: the very oldest goes");
        assert_eq!(sent(o.next(t)).0, 2);
        assert_eq!(o.push(5, "e"), Some(3), "2 is in flight: 3 goes");
        assert_eq!(o.len(), 3);
        assert_eq!(o.finish(2, true, t), Outcome::Delivered { attempts: 1 });
        assert_eq!(sent(o.next(t)).0, 4);
        assert_eq!(o.finish(4, true, t), Outcome::Delivered { attempts: 1 });
        assert_eq!(sent(o.next(t)).0, 5);
    }

    #[test]
    fn stale_reports_change_nothing() {
        let mut o = Outbox::new(Policy {
            capacity: 0,
            max_attempts: 0,
            ..Policy::default()
        });
        assert_eq!(o.policy().capacity, 2);
        let t = Instant::now();
        assert_eq!(o.finish(1, true, t), Outcome::Stale);
        o.push(1, "a");
        assert_eq!(o.finish(1, true, t), Outcome::Stale, "not sent yet");
        assert_eq!(sent(o.next(t)), (1, 1, "a"));
        assert_eq!(o.finish(9, true, t), Outcome::Stale);
        assert_eq!(o.next(t), Next::Busy);
        // max_attempts 0 is read as 1: the first failure gives up.
        assert_eq!(o.finish(1, false, t), Outcome::GaveUp { attempts: 1 });
        assert_eq!(o.next(t), Next::Idle);
    }
}
