//! The wall clock, in one place.
//!
//! Layer: driver (reads the system clock). The protocol cores never read a
//! clock: their drivers pass the time in. Everything else that stamps a
//! record, an event, a log line or a webhook body takes it from here, so
//! no module needs another one just to know the time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
