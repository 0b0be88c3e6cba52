//! The storm limiter for boot lines: a token bucket and the summary of
//! what it held back.
//!
//! Layer: service (logging), pure: no clock, no lock; the caller passes the
//! time (milliseconds on a monotonic clock) and tests move it by hand.
//!
//! A *boot line* is an info (or warn) line written once per client request:
//! a DHCP exchange's answer, a finished TFTP transfer, a file or script
//! fetched over HTTP, a request refused. One machine booting writes a
//! handful; a thousand machines powered on at once, or one client looping,
//! would write thousands a second to a serial console and an SD card. Lines
//! pass while the bucket has a token (it holds [`BootLimit::BURST`] and
//! gains [`BootLimit::PER_SECOND`] a second); the others are counted, and
//! [`BootLimit::summary`] gives their number once per
//! [`BootLimit::SUMMARY_EVERY_MS`] at most, for one line that says so.

/// Lines held back since the last summary, and over how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed {
    pub lines: u64,
    /// From the first line held back to the summary.
    pub over_ms: u64,
}

/// A token bucket over boot lines, counting the lines it holds back.
#[derive(Debug)]
pub struct BootLimit {
    per_second: u64,
    burst: u64,
    /// Tokens in thousandths: a millisecond adds `per_second` of them.
    milli_tokens: u64,
    last_ms: u64,
    suppressed: u64,
    since_ms: u64,
}

impl Default for BootLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl BootLimit {
    /// Lines a second, once a burst is spent.
    pub const PER_SECOND: u64 = 20;
    /// Lines that may pass at once after a quiet time.
    pub const BURST: u64 = 50;
    /// Least time between two summaries, and from the first line held back
    /// to its summary.
    pub const SUMMARY_EVERY_MS: u64 = 5_000;

    /// A full bucket at time 0 with gopxe's rate.
    pub const fn new() -> BootLimit {
        Self::with_rate(Self::PER_SECOND, Self::BURST)
    }

    /// A full bucket at time 0.
    pub const fn with_rate(per_second: u64, burst: u64) -> BootLimit {
        BootLimit {
            per_second,
            burst,
            milli_tokens: burst.saturating_mul(1000),
            last_ms: 0,
            suppressed: 0,
            since_ms: 0,
        }
    }

    /// May a boot line be written at `now_ms`? A line held back is counted.
    /// Time going backwards adds nothing.
    pub fn admit(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(elapsed.saturating_mul(self.per_second))
            .min(self.burst.saturating_mul(1000));
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            return true;
        }
        if self.suppressed == 0 {
            self.since_ms = now_ms;
        }
        self.suppressed += 1;
        false
    }

    /// The lines held back, once [`Self::SUMMARY_EVERY_MS`] passed since
    /// the first of them; the count starts again from zero.
    pub fn summary(&mut self, now_ms: u64) -> Option<Suppressed> {
        let over_ms = now_ms.saturating_sub(self.since_ms);
        if self.suppressed == 0 || over_ms < Self::SUMMARY_EVERY_MS {
            return None;
        }
        let lines = std::mem::take(&mut self.suppressed);
        Some(Suppressed { lines, over_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed(l: &mut BootLimit, now_ms: u64, n: u64) -> u64 {
        (0..n).filter(|_| l.admit(now_ms)).count() as u64
    }

    #[test]
    fn a_burst_passes_then_the_rate() {
        let mut l = BootLimit::new();
        assert_eq!(passed(&mut l, 0, 1000), BootLimit::BURST);
        // 100 ms later: two more (20 a second).
        assert_eq!(passed(&mut l, 100, 1000), 2);
        assert_eq!(passed(&mut l, 149, 1000), 0, "not yet a whole token");
        assert_eq!(passed(&mut l, 150, 1000), 1);
        // A steady storm over ten seconds: 20 a second get through.
        let mut through = 0;
        for ms in (160..=10_150).step_by(10) {
            through += passed(&mut l, ms, 80); // 8,000 a second
        }
        assert!((199..=201).contains(&through), "{through}");
    }

    #[test]
    fn a_quiet_time_refills_up_to_the_burst_only() {
        let mut l = BootLimit::new();
        assert_eq!(passed(&mut l, 0, 1000), 50);
        assert_eq!(
            passed(&mut l, 3_600_000, 1000),
            50,
            "an hour refills 50, not 72,000"
        );
        // One line a second never waits.
        for s in 3_601..3_700 {
            assert!(l.admit(s * 1000));
        }
    }

    #[test]
    fn time_going_backwards_gives_nothing() {
        let mut l = BootLimit::with_rate(1, 1);
        assert!(l.admit(10_000));
        assert!(!l.admit(5_000));
        assert!(!l.admit(10_500), "the clock went back; no token since 10 s");
        assert!(l.admit(11_000));
    }

    #[test]
    fn held_back_lines_are_summed_up_once_per_period() {
        let mut l = BootLimit::new();
        assert_eq!(l.summary(0), None);
        passed(&mut l, 1_000, 50);
        assert_eq!(l.summary(100_000), None, "nothing held back");
        passed(&mut l, 100_000, 50 + 30); // the burst, then 30 held back
        assert_eq!(l.summary(100_000), None, "too early");
        assert_eq!(l.summary(104_999), None);
        passed(&mut l, 102_000, 1000); // 40 pass (2 s), 960 held
        assert_eq!(
            l.summary(105_000),
            Some(Suppressed {
                lines: 990,
                over_ms: 5_000
            })
        );
        assert_eq!(l.summary(105_000), None, "one summary");
        assert_eq!(l.summary(200_000), None, "none while nothing is held");
        // The next period counts from its first held-back line.
        passed(&mut l, 200_000, 100);
        assert_eq!(l.summary(204_000), None);
        assert_eq!(
            l.summary(206_500),
            Some(Suppressed {
                lines: 50,
                over_ms: 6_500
            })
        );
    }
}
