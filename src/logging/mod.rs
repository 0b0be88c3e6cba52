//! gopxe's logger: `RUST_LOG` levels, stderr through a thread of its own,
//! the status page's ring, and a limit on boot lines in a storm.
//!
//! Layer: service (logging). No RFC; it implements the `log` crate's `Log`
//! trait. A `log` call, on whichever thread (the executor's DHCP, TFTP and
//! HTTP tasks, the TFTP data threads), only checks the level ([`filter`]),
//! formats the line with the secrets of its URLs taken out
//! ([`crate::logring::redact`]) and hands it over: to
//! [`crate::logring::RING`] for the status page, and to a bounded
//! [`queue`] that the `gopxe-log` thread writes to stderr. Only that
//! thread waits for stderr (a serial console, an SD card, a stopped pipe);
//! when the queue is full a line is dropped and counted ([`dropped_lines`],
//! `gopxe_log_lines_dropped_total`). Without that thread (it could not
//! start) lines are written to stderr directly, as before the queue.
//!
//! The stderr line is env_logger's default: `[2026-11-26T01:54:01Z INFO
//! gopxe::tftp] message`, the further lines of a message indented by four
//! spaces.
//!
//! Levels, by convention: `info` is what an operator follows (a machine's
//! state changes, one line per boot step: a DHCP exchange's answer, a
//! finished transfer, an iPXE script), `warn`/`error` what needs them;
//! every packet and request is `debug`. Boot lines go through
//! [`boot_log!`](crate::boot_log) and its storm limiter ([`limit`]): past
//! 20 a second they are logged at debug instead, and one info line later
//! says how many (`gopxe_log_boot_lines_suppressed_total`).
//!
//! [`flush`] waits (a second at most) until the queued lines are written:
//! before a clean exit, before an error is printed, and on a panic (whose
//! message the default hook then prints to stderr itself).

pub mod filter;
pub mod limit;
pub mod queue;

use crate::logring::{self, LogRing, RING};
use filter::Filter;
use limit::{BootLimit, Suppressed};
use queue::{LineQueue, Pushed};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lines waiting for the writer at most; more are dropped.
pub const QUEUE_LINES: usize = 1024;
/// Longest wait for the queue to drain (exit, panic).
const FLUSH_WITHIN: Duration = Duration::from_secs(1);
/// The writer thread's name.
const WRITER: &str = "gopxe-log";

struct Logger {
    filter: Filter,
    queue: LineQueue,
    ring: &'static LogRing,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// Milliseconds on a monotonic clock (the limiter's time: a wall clock
/// set back by NTP must not silence the log).
fn mono_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(not(test))]
fn with_limit<R>(f: impl FnOnce(&mut BootLimit) -> R) -> R {
    static BOOT: std::sync::Mutex<BootLimit> = std::sync::Mutex::new(BootLimit::new());
    f(&mut BOOT.lock().unwrap_or_else(|e| e.into_inner()))
}

// Tests run in parallel threads: each has a bucket of its own, so what
// one test logs cannot use up another's.
#[cfg(test)]
fn with_limit<R>(f: impl FnOnce(&mut BootLimit) -> R) -> R {
    thread_local! {
        static BOOT: std::cell::RefCell<BootLimit> = const { std::cell::RefCell::new(BootLimit::new()) };
    }
    BOOT.with_borrow_mut(f)
}

fn log_summary(s: Suppressed) {
    log::info!(
        "{} boot lines suppressed in the last {} s (more than {}/s; they went to debug)",
        s.lines,
        s.over_ms.div_ceil(1000),
        BootLimit::PER_SECOND
    );
}

/// May a boot line be logged now? Used by [`boot_log!`](crate::boot_log);
/// counts the lines held back and logs the summary when it is due.
pub fn admit_boot_line() -> bool {
    let now = mono_ms();
    let (pass, summary) = with_limit(|l| (l.admit(now), l.summary(now)));
    if !pass {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(s) = summary {
        log_summary(s);
    }
    pass
}

/// The writer's tick: a summary due after the storm is over.
fn summary_tick() {
    let now = mono_ms();
    if let Some(s) = with_limit(|l| l.summary(now)) {
        log_summary(s);
    }
}

/// Logs a boot line: one per client request that an operator follows (a
/// DHCP exchange's answer, a finished transfer, a file or script fetched,
/// a request refused), at `level`. At info and above it goes through the
/// storm limiter ([`crate::logging::limit`]): a line held back is logged
/// at debug instead. Debug and trace lines are logged as they are.
#[macro_export]
macro_rules! boot_log {
    ($level:expr, $($arg:tt)+) => {{
        let level: ::log::Level = $level;
        let held_back = level <= ::log::Level::Info
            && ::log::log_enabled!(level)
            && !$crate::logging::admit_boot_line();
        let level = if held_back { ::log::Level::Debug } else { level };
        ::log::log!(level, $($arg)+);
    }};
}

/// Lines dropped because the writer's queue was full.
pub fn dropped_lines() -> u64 {
    LOGGER.get().map_or(0, |l| l.queue.dropped())
}

/// Boot lines the limiter held back (logged at debug instead).
pub fn suppressed_lines() -> u64 {
    SUPPRESSED.load(Ordering::Relaxed)
}

/// Waits, a second at most, until every line logged so far is on stderr.
pub fn flush() {
    if let Some(l) = LOGGER.get() {
        l.queue.flush(FLUSH_WITHIN);
    }
}

/// One stderr line, env_logger's default format:
/// `[2026-11-26T01:54:01Z INFO  gopxe::tftp] message` and a newline; the
/// further lines of a message are indented by four spaces.
pub fn stderr_line(at_ms: u64, level: log::Level, target: &str, message: &str) -> String {
    let mut line = String::with_capacity(message.len() + 48 + target.len());
    let _ = write!(line, "[{} {level:<5}", logring::rfc3339(at_ms));
    if !target.is_empty() {
        line.push(' ');
        line.push_str(target);
    }
    line.push_str("] ");
    for (i, part) in message.split('\n').enumerate() {
        if i > 0 {
            line.push_str("\n    ");
        }
        line.push_str(part);
    }
    line.push('\n');
    line
}

fn write_stderr(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.filter.enabled(metadata.level(), metadata.target())
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let owned;
        let message = match record.args().as_str() {
            Some(s) => s,
            None => {
                owned = record.args().to_string();
                &owned
            }
        };
        let message = logring::redact(message);
        let (level, target) = (record.level(), record.target());
        let now = crate::clock::now_ms();
        if let Pushed::NoWriter(line) = self.queue.push(stderr_line(now, level, target, &message)) {
            write_stderr(line.as_bytes());
        }
        self.ring.push(logring::format_line(
            now,
            level,
            target,
            &format_args!("{message}"),
        ));
    }

    fn flush(&self) {
        self.queue.flush(FLUSH_WITHIN);
    }
}

/// Installs the logger: the filter from `RUST_LOG` (`info` when unset or
/// empty), the `gopxe-log` writer thread, and a panic hook that flushes
/// the queue before the panic's own message. A second call does nothing.
pub fn init() {
    if LOGGER.get().is_some() {
        return;
    }
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let (filter, warnings) = Filter::parse(spec.as_deref().unwrap_or("info"));
    for w in &warnings {
        eprintln!("warning: {w}, ignoring it");
    }
    let (queue, writer) = LineQueue::new(QUEUE_LINES);
    let started = std::thread::Builder::new()
        .name(WRITER.into())
        .spawn(move || writer.run(write_stderr, summary_tick));
    if let Err(e) = started {
        // The writer's end went with the closure: lines come back to the
        // logger, which writes them itself.
        eprintln!(
            "gopxe: cannot start the log writer thread ({e}); logging writes stderr directly"
        );
    }
    let max = filter.max_level();
    let logger = LOGGER.get_or_init(|| Logger {
        filter,
        queue,
        ring: &RING,
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(WRITER) {
                flush();
            }
            previous(info);
        }));
    }
}

/// A logger for unit tests that keeps what each thread logs.
#[cfg(test)]
pub(crate) mod capture {
    use std::cell::RefCell;

    /// (level, target, message)
    pub(crate) type Line = (log::Level, String, String);

    thread_local! {
        static LINES: RefCell<Option<Vec<Line>>> = const { RefCell::new(None) };
    }

    struct Capture;

    static CAPTURE: Capture = Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, r: &log::Record) {
            LINES.with_borrow_mut(|lines| {
                if let Some(lines) = lines {
                    lines.push((r.level(), r.target().to_string(), r.args().to_string()));
                }
            });
        }
        fn flush(&self) {}
    }

    /// Runs `f` and returns what it logged on this thread, every level.
    pub(crate) fn lines<R>(f: impl FnOnce() -> R) -> (R, Vec<Line>) {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            if log::set_logger(&CAPTURE).is_ok() {
                log::set_max_level(log::LevelFilter::Trace);
            }
        });
        LINES.set(Some(Vec::new()));
        let r = f();
        (r, LINES.take().unwrap_or_default())
    }

    /// The lines at info and above.
    pub(crate) fn info_and_above(lines: &[Line]) -> Vec<&Line> {
        lines.iter().filter(|l| l.0 <= log::Level::Info).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    #[test]
    fn stderr_lines_keep_env_loggers_format() {
        assert_eq!(
            stderr_line(0, Level::Warn, "gopxe::tftp", "a <b>"),
            "[1970-01-01T00:00:00Z WARN  gopxe::tftp] a <b>\n"
        );
        assert_eq!(
            stderr_line(1_795_658_041_999, Level::Info, "", "two\nlines"),
            "[2026-11-26T01:54:01Z INFO ] two\n    lines\n"
        );
    }

    #[test]
    fn boot_lines_past_the_burst_go_to_debug() {
        let ((), lines) = capture::lines(|| {
            for i in 0..80 {
                crate::boot_log!(Level::Info, "boot {i}");
            }
            crate::boot_log!(Level::Warn, "refused");
        });
        assert_eq!(lines.len(), 81);
        let loud = capture::info_and_above(&lines).len();
        // The burst, and a token or two if the loop took 50 ms or more.
        assert!((50..60).contains(&loud), "{loud}");
        assert_eq!(
            lines[0],
            (Level::Info, module_path!().into(), "boot 0".into())
        );
        let quiet = lines.iter().filter(|l| l.0 == Level::Debug).count();
        assert_eq!(quiet, 81 - loud, "held back, logged at debug");
        assert_eq!(lines[80].2, "refused");
        assert!(suppressed_lines() >= 81 - 60);
    }
}
