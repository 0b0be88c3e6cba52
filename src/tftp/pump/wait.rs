//! How a data thread with one transfer waits for the client's next packet:
//! poll first or block at once.
//!
//! Layer: pure logic. [`WaitChooser`] is fed the time each wait took and
//! answers whether the next one polls; it reads no clock and touches no
//! socket (the driver, [`super`], does both).

use std::time::Duration;

/// How long a thread with one transfer polls its socket, without
/// blocking, for the client's answer before it sleeps in `recvfrom`.
pub const SPIN: Duration = Duration::from_micros(100);

/// Waits after [`WaitChooser`] switches ways that are not measured.
const SETTLE: u32 = 32;

/// While blocking waits take less than this on average, polling is not
/// tried: the client answers about as fast as it can when it shares the
/// core, polling could not save much, and trying it could make the
/// scheduler move the client to another core. A wake-up across cores
/// costs more than this on the virtual machines measured.
const QUICK: Duration = Duration::from_micros(20);

/// Waits averaged in one measurement of [`WaitChooser`].
const MEASURE: u32 = 128;

/// Waits done the way [`WaitChooser`] chose before it measures again
/// (unless kept blocking gets slow).
const KEEP: u32 = 16384;

/// A wait is counted as at most this long, so one retransmission timeout
/// does not decide a measurement.
const SAMPLE_CAP: Duration = Duration::from_millis(1);

/// Chooses, per transfer, how solo mode waits for the client: poll first
/// ([`SPIN`]) or block at once. Neither is always faster. When the client
/// runs on another core, a thread that sleeps must be woken across cores
/// for every block, which on a virtual machine costs tens of
/// microseconds, and polling saves that; when the client shares the core,
/// polling only adds system calls, and a client slower than [`SPIN`]
/// gains nothing from it.
///
/// So the transfer blocks and watches: every [`MEASURE`] waits, timed from
/// one packet to the next, are averaged. While that stays under
/// [`QUICK`], it keeps blocking. Otherwise polling is tried for as many
/// waits (after [`SETTLE`] waits not counted, while the scheduler places
/// the threads anew) and kept for [`KEEP`] waits if it was at least 10 %
/// faster. If it was not, blocking is kept as long, still timed: should
/// [`MEASURE`] of those waits take so long that polling, as measured, would
/// be faster (the scheduler has moved client and server apart since),
/// polling is tried again at once; otherwise a slow client costs a poll
/// only once in [`KEEP`] waits. Then the cycle starts again.
#[derive(Debug)]
pub(super) struct WaitChooser {
    step: Step,
    /// Waits done in this step.
    done: u32,
    /// Time taken by the waits measured in [`Step::Block`], or by the
    /// last [`MEASURE`] or fewer waits of blocking kept.
    blocked: Duration,
    /// Time taken by the waits measured in [`Step::Spin`].
    spun: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Blocking, not measured: the threads settle after polling.
    SettleBlock,
    /// Blocking and measuring, [`MEASURE`] waits at a time.
    Block,
    /// Polling, not measured: the threads settle after blocking.
    SettleSpin,
    /// Polling and measuring.
    Spin,
    /// Keeping the way chosen (`true`: polling) for [`KEEP`] waits.
    Keep(bool),
}

impl Default for WaitChooser {
    fn default() -> WaitChooser {
        WaitChooser {
            step: Step::Block,
            done: 0,
            blocked: Duration::ZERO,
            spun: Duration::ZERO,
        }
    }
}

impl WaitChooser {
    /// Whether the coming wait polls first.
    pub(super) fn spin(&self) -> bool {
        matches!(self.step, Step::SettleSpin | Step::Spin | Step::Keep(true))
    }

    /// The wait chosen by [`WaitChooser::spin`], with the handling of what
    /// it brought, took `took` (counted as at most [`SAMPLE_CAP`]).
    pub(super) fn record(&mut self, took: Duration) {
        let took = took.min(SAMPLE_CAP);
        match self.step {
            // Blocking kept is still timed, see below.
            Step::Block | Step::Keep(false) => self.blocked = self.blocked.saturating_add(took),
            Step::Spin => self.spun = self.spun.saturating_add(took),
            Step::SettleBlock | Step::SettleSpin | Step::Keep(true) => {}
        }
        self.done += 1;
        if self.step == Step::Keep(false) && self.done.is_multiple_of(MEASURE) {
            // The first measurement of a transfer is often taken while
            // client and server still share a core. When the scheduler
            // has spread them since, blocking gets slower than polling
            // was: try polling again at once.
            if faster(self.spun, self.blocked) {
                self.enter(Step::SettleSpin);
                return;
            }
            self.blocked = Duration::ZERO;
        }
        if self.done < self.step.len() {
            return;
        }
        let next = match self.step {
            Step::SettleBlock => Step::Block,
            Step::Block if self.blocked < QUICK.saturating_mul(MEASURE) => Step::Block,
            Step::Block => Step::SettleSpin,
            Step::SettleSpin => Step::Spin,
            Step::Spin => Step::Keep(faster(self.spun, self.blocked)),
            Step::Keep(true) => Step::SettleBlock,
            Step::Keep(false) => Step::Block,
        };
        self.enter(next);
    }

    /// Start `step` with the sum it adds to empty. The other sum stays:
    /// blocking's, just measured, is what polling is compared with, and
    /// polling's is what blocking is watched against while kept.
    fn enter(&mut self, step: Step) {
        self.step = step;
        self.done = 0;
        match step {
            Step::Block | Step::Keep(false) => self.blocked = Duration::ZERO,
            Step::SettleSpin => self.spun = Duration::ZERO,
            Step::SettleBlock | Step::Spin | Step::Keep(true) => {}
        }
    }
}

impl Step {
    /// Waits the step lasts.
    fn len(self) -> u32 {
        match self {
            Step::SettleBlock | Step::SettleSpin => SETTLE,
            Step::Block | Step::Spin => MEASURE,
            Step::Keep(_) => KEEP,
        }
    }
}

/// Whether `a` is at least 10 % faster than `b` (sums of as many waits).
fn faster(a: Duration, b: Duration) -> bool {
    a.saturating_mul(10) < b.saturating_mul(9)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` waits of `us` microseconds each, which must all be polling
    /// (`spin`) or all blocking.
    fn waits(w: &mut WaitChooser, n: u32, us: u64, spin: bool) {
        for i in 0..n {
            assert_eq!(w.spin(), spin, "wait {i} of {n}: {w:?}");
            w.record(Duration::from_micros(us));
        }
    }

    /// One measuring cycle from [`Step::Block`]: blocking waits of
    /// `block_us`, then (after settling) polling waits of `poll_us`.
    fn try_polling(w: &mut WaitChooser, block_us: u64, poll_us: u64) {
        waits(w, MEASURE, block_us, false);
        waits(w, SETTLE, poll_us, true);
        waits(w, MEASURE, poll_us, true);
    }

    #[test]
    fn chooser_keeps_blocking_while_the_client_is_quick() {
        let mut w = WaitChooser::default();
        waits(&mut w, 100 * MEASURE, 8, false);
    }

    #[test]
    fn chooser_polls_when_blocking_is_slow_and_polling_faster() {
        let mut w = WaitChooser::default();
        waits(&mut w, 3 * MEASURE, 10, false);
        // Slow wake-ups: after the next measurement, polling is tried.
        waits(&mut w, MEASURE, 60, false);
        waits(&mut w, SETTLE, 500, true); // not counted
        waits(&mut w, MEASURE, 20, true);
        // Faster: kept, whatever the waits then take.
        waits(&mut w, KEEP, 300, true);
        // Then blocking is measured again, after settling.
        waits(&mut w, SETTLE, 500, false);
        waits(&mut w, MEASURE, 10, false);
        waits(&mut w, 10 * MEASURE, 10, false);
    }

    #[test]
    fn chooser_blocks_when_polling_is_not_clearly_faster() {
        let mut w = WaitChooser::default();
        // A client slower than SPIN: the poll gives up and blocks anyway,
        // 5 % faster is not worth the core.
        try_polling(&mut w, 300, 285);
        waits(&mut w, KEEP, 300, false);
        // Measured again: tried again.
        waits(&mut w, MEASURE, 300, false);
        assert!(w.spin());
    }

    #[test]
    fn chooser_polls_when_kept_blocking_gets_slow() {
        let mut w = WaitChooser::default();
        // The first measurement: client and server share a core, blocking
        // is just over QUICK and polling slower: blocking is kept.
        try_polling(&mut w, 25, 40);
        assert_eq!(w.step, Step::Keep(false));
        // While blocking stays as fast, it is kept without a poll ...
        waits(&mut w, 20 * MEASURE, 25, false);
        // ... until a measurement's worth of waits is slower than polling
        // was (the scheduler spread the threads): polling is tried again
        // and, faster now, kept.
        try_polling(&mut w, 60, 40);
        assert_eq!(w.step, Step::Keep(true));
        waits(&mut w, KEEP, 40, true);
    }

    #[test]
    fn chooser_keeps_blocking_that_stays_faster_for_the_whole_keep() {
        let mut w = WaitChooser::default();
        try_polling(&mut w, 25, 40);
        // A slower stretch that stays under polling's 40 µs changes nothing.
        waits(&mut w, KEEP / 2, 25, false);
        waits(&mut w, KEEP / 2, 38, false);
        // Then blocking is measured afresh.
        assert_eq!(w.step, Step::Block);
        waits(&mut w, MEASURE, 10, false);
        assert_eq!(w.step, Step::Block);
    }

    #[test]
    fn chooser_is_not_decided_by_one_timeout() {
        let mut w = WaitChooser::default();
        waits(&mut w, MEASURE, 60, false);
        waits(&mut w, SETTLE, 60, true);
        // One retransmission timeout (a whole second) among fast polls.
        w.record(Duration::from_secs(1));
        waits(&mut w, MEASURE - 1, 20, true);
        assert_eq!(w.step, Step::Keep(true));
    }
}
