//! Coarse timeouts for HTTP connections, without a reactor timer each.
//!
//! Layer: driver. picoserve wraps every read and write of a request in a
//! timeout (seconds long). An `async_io::Timer` per timeout costs, per
//! request, a timer insertion and removal in the reactor, and the
//! insertion wakes the reactor (an eventfd write, a read, an extra
//! `epoll_pwait` and a `timerfd_settime`). These timeouts need no such
//! precision, so [`Deadline`]s are kept in a thread-local table instead,
//! and one [`ticker`] task wakes the expired ones every [`TICK`] — only
//! while any are waiting: an idle server has no periodic wake-ups.
//!
//! A deadline fires up to one tick early or late. On a thread where no
//! ticker runs, a [`Deadline`] falls back to an ordinary `async_io::Timer`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often waiting deadlines are checked.
pub(super) const TICK: Duration = Duration::from_millis(100);

/// A waiting deadline: when it is due, its waker, and an id that tells it
/// from a later deadline in the same slot.
struct Waiting {
    when: Instant,
    waker: Waker,
    id: u64,
}

#[derive(Default)]
struct Table {
    /// Waiting deadlines; a slot is reused once free. The ticker scans
    /// them all each tick (there are at most as many as connections), so
    /// adding and removing one is a push and a store, not a tree update.
    slots: Vec<Option<Waiting>>,
    /// The empty slots.
    free: Vec<usize>,
    next_id: u64,
    /// The time at the last tick: deadlines are set from it rather than
    /// from a clock read each (see [`Deadline`]).
    now: Option<Instant>,
    /// Set while a ticker task runs on this thread.
    ticker_runs: bool,
    /// The ticker, when it sleeps because nothing is waiting.
    ticker: Option<Waker>,
}

impl Table {
    fn add(&mut self, when: Instant, waker: Waker) -> (usize, u64) {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let entry = Some(Waiting { when, waker, id });
        let index = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.slots.get_mut(i) {
                    *slot = entry;
                }
                i
            }
            None => {
                self.slots.push(entry);
                self.slots.len() - 1
            }
        };
        (index, id)
    }

    /// The slot if deadline `id` still waits in it.
    fn find(&mut self, index: usize, id: u64) -> Option<&mut Waiting> {
        self.slots
            .get_mut(index)
            .and_then(Option::as_mut)
            .filter(|w| w.id == id)
    }

    fn remove(&mut self, index: usize, id: u64) {
        if self.find(index, id).is_some() {
            if let Some(slot) = self.slots.get_mut(index) {
                *slot = None;
            }
            self.free.push(index);
        }
    }

    /// How many deadlines wait: the slots that are not free.
    fn waiting(&self) -> usize {
        self.slots.len().saturating_sub(self.free.len())
    }
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
}

/// Wakes expired deadlines every [`TICK`] while any wait. Spawn one per
/// thread that serves HTTP; it never returns.
pub(super) async fn ticker() {
    TABLE.with(|t| t.borrow_mut().ticker_runs = true);
    let _stop = Stop;
    loop {
        std::future::poll_fn(|cx| {
            TABLE.with(|t| {
                let mut t = t.borrow_mut();
                if t.waiting() == 0 {
                    // Asleep: the next deadline reads the clock itself.
                    t.now = None;
                    t.ticker = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
        })
        .await;
        async_io::Timer::after(TICK).await;
        let now = Instant::now();
        let mut expired = Vec::new();
        TABLE.with(|t| {
            let mut t = t.borrow_mut();
            t.now = Some(now);
            let t = &mut *t;
            for (i, slot) in t.slots.iter_mut().enumerate() {
                if slot.as_ref().is_some_and(|w| w.when <= now)
                    && let Some(w) = slot.take()
                {
                    expired.push(w.waker);
                    t.free.push(i);
                }
            }
        });
        // Woken deadlines find their slot emptied and finish.
        for waker in expired {
            waker.wake();
        }
    }
}

/// Marks the ticker gone when its task is dropped.
struct Stop;

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = TABLE.try_with(|t| {
            if let Ok(mut t) = t.try_borrow_mut() {
                t.ticker_runs = false;
            }
        });
    }
}

/// A future that is ready once its duration has passed, counted from its
/// first poll, give or take a tick: while the ticker runs, the start is
/// the time of the last tick (no clock read per deadline), and expiry is
/// seen at the next tick after it. picoserve creates a deadline for every
/// read and write and polls it only when they wait; those that never fire
/// cost a slot and nothing else.
pub(super) struct Deadline {
    after: Duration,
    /// (slot, id) while it waits in the table.
    slot: Option<(usize, u64)>,
    /// Used when no ticker runs on this thread.
    fallback: Option<async_io::Timer>,
}

impl Deadline {
    pub(super) fn after(d: Duration) -> Deadline {
        Deadline {
            after: d,
            slot: None,
            fallback: None,
        }
    }

    fn unregister(&mut self) {
        if let Some((index, id)) = self.slot.take() {
            let _ = TABLE.try_with(|t| {
                if let Ok(mut t) = t.try_borrow_mut() {
                    t.remove(index, id);
                }
            });
        }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(timer) = self.fallback.as_mut() {
            return Pin::new(timer).poll(cx).map(|_| ());
        }
        let (after, slot) = (self.after, self.slot);
        let state = TABLE.with(|t| {
            let mut t = t.borrow_mut();
            if !t.ticker_runs {
                return State::NoTicker;
            }
            let Some((index, id)) = slot else {
                let now = *t.now.get_or_insert_with(Instant::now);
                let added = t.add(now + after, cx.waker().clone());
                if let Some(ticker) = t.ticker.take() {
                    ticker.wake();
                }
                return State::Waiting(added);
            };
            match t.find(index, id) {
                Some(w) => {
                    if !w.waker.will_wake(cx.waker()) {
                        w.waker = cx.waker().clone();
                    }
                    State::Waiting((index, id))
                }
                // The ticker emptied the slot: due.
                None => State::Due,
            }
        });
        match state {
            State::Waiting(slot) => {
                self.slot = Some(slot);
                Poll::Pending
            }
            State::Due => {
                self.slot = None;
                Poll::Ready(())
            }
            State::NoTicker => {
                let mut timer = async_io::Timer::after(after);
                let poll = Pin::new(&mut timer).poll(cx).map(|_| ());
                self.fallback = Some(timer);
                poll
            }
        }
    }
}

/// Where a polled [`Deadline`] stands.
enum State {
    /// In the table, at (slot, id).
    Waiting((usize, u64)),
    /// The ticker took it out: due.
    Due,
    /// No ticker runs on this thread: use a reactor timer.
    NoTicker,
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.unregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_fire_and_unregister() {
        let ex = smol::LocalExecutor::new();
        smol::block_on(ex.run(async {
            ex.spawn(ticker()).detach();
            let t0 = Instant::now();
            Deadline::after(Duration::from_millis(150)).await;
            let waited = t0.elapsed();
            assert!(waited >= Duration::from_millis(150), "{waited:?}");
            // A dropped deadline leaves nothing behind.
            let pending = futures_lite::future::poll_once(Deadline::after(Duration::from_secs(60)));
            assert!(pending.await.is_none());
            assert!(TABLE.with(|t| t.borrow().waiting() == 0));
        }));
    }

    #[test]
    fn a_reused_slot_is_not_mistaken_for_the_old_deadline() {
        let mut t = Table::default();
        let now = Instant::now();
        let waker = Waker::noop().clone();
        let (a, a_id) = t.add(now, waker.clone());
        let (b, b_id) = t.add(now, waker.clone());
        assert_ne!(a, b);
        t.remove(a, a_id);
        assert!(t.find(a, a_id).is_none());
        let (c, c_id) = t.add(now, waker);
        assert_eq!(c, a, "the free slot is reused");
        assert!(
            t.find(a, a_id).is_none(),
            "the old deadline sees its slot taken"
        );
        assert!(t.find(c, c_id).is_some());
        t.remove(a, a_id); // a stale remove leaves the new deadline alone
        assert!(t.find(c, c_id).is_some());
        assert_eq!(t.waiting(), 2);
        t.remove(b, b_id);
        t.remove(c, c_id);
        assert_eq!(t.waiting(), 0);
    }

    #[test]
    fn without_a_ticker_falls_back_to_a_timer() {
        let waited = std::thread::spawn(|| {
            let t0 = Instant::now();
            smol::block_on(Deadline::after(Duration::from_millis(20)));
            t0.elapsed()
        })
        .join();
        assert!(matches!(waited, Ok(w) if w >= Duration::from_millis(20)));
    }
}
