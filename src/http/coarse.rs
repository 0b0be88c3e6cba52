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
//! A deadline fires up to one tick late. On a thread where no ticker runs,
//! a [`Deadline`] falls back to an ordinary `async_io::Timer`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often waiting deadlines are checked.
pub const TICK: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Table {
    /// Waiting deadlines by (when, id).
    waiting: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
    /// Set while a ticker task runs on this thread.
    ticker_runs: bool,
    /// The ticker, when it sleeps because nothing is waiting.
    ticker: Option<Waker>,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
}

/// Wakes expired deadlines every [`TICK`] while any wait. Spawn one per
/// thread that serves HTTP; it never returns.
pub async fn ticker() {
    TABLE.with(|t| t.borrow_mut().ticker_runs = true);
    let _stop = Stop;
    loop {
        std::future::poll_fn(|cx| {
            TABLE.with(|t| {
                let mut t = t.borrow_mut();
                if t.waiting.is_empty() {
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
        let expired = TABLE.with(|t| {
            let mut t = t.borrow_mut();
            let later = t.waiting.split_off(&(now, u64::MAX));
            std::mem::replace(&mut t.waiting, later)
        });
        // Woken deadlines see they are due and finish; none is re-added.
        for (_, waker) in expired {
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

/// A future that is ready once `when` has passed (up to a tick later).
pub struct Deadline {
    when: Instant,
    /// Its key in the table while it waits there.
    id: Option<u64>,
    /// Used when no ticker runs on this thread.
    fallback: Option<async_io::Timer>,
}

impl Deadline {
    pub fn after(d: Duration) -> Deadline {
        Deadline {
            when: Instant::now() + d,
            id: None,
            fallback: None,
        }
    }

    fn unregister(&mut self) {
        if let Some(id) = self.id.take() {
            let when = self.when;
            let _ = TABLE.try_with(|t| {
                if let Ok(mut t) = t.try_borrow_mut() {
                    t.waiting.remove(&(when, id));
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
        if Instant::now() >= self.when {
            self.unregister();
            return Poll::Ready(());
        }
        let when = self.when;
        let id = self.id;
        let registered = TABLE.with(|t| {
            let mut t = t.borrow_mut();
            if !t.ticker_runs {
                return None;
            }
            let id = id.unwrap_or_else(|| {
                t.next_id = t.next_id.wrapping_add(1);
                t.next_id
            });
            // (Re)register: the ticker removes the entries it wakes.
            t.waiting.insert((when, id), cx.waker().clone());
            if let Some(ticker) = t.ticker.take() {
                ticker.wake();
            }
            Some(id)
        });
        match registered {
            Some(id) => {
                self.id = Some(id);
                Poll::Pending
            }
            None => {
                let mut timer = async_io::Timer::at(when);
                let poll = Pin::new(&mut timer).poll(cx).map(|_| ());
                self.fallback = Some(timer);
                poll
            }
        }
    }
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
            assert!(TABLE.with(|t| t.borrow().waiting.is_empty()));
        }));
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
