//! The recent log lines, kept in memory for the status page's live tail,
//! and the text rules every log line follows.
//!
//! Layer: service (logging). No RFC. The logger ([`crate::logging`])
//! formats every line it lets through (same `RUST_LOG` filter as stderr)
//! once more for a [`LogRing`] ([`format_line`]). The ring is bounded
//! twice: at most [`LogRing::MAX_LINES`] lines and [`LogRing::MAX_BYTES`]
//! bytes in total, each line cut at [`LogRing::MAX_LINE`] bytes, the oldest
//! lines falling off first. TFTP transfers and DHCP run on other threads
//! than HTTP, so the ring sits behind a `std::sync::Mutex`; a poisoned lock
//! is recovered (a panic elsewhere must not silence the log). Lines are
//! kept as logged and are untrusted (they quote file names and paths from
//! the network): whoever shows them must escape them.
//!
//! Every line, on stderr and in the ring, has the secrets of the URLs in
//! it taken out first ([`redact`]): the userinfo (`user:password@`) and the
//! query string (webhook URLs carry keys there, call-back URLs the
//! install's key), so neither reaches a serial console, a log file or the
//! status page's anonymous readers.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

struct Lines {
    lines: VecDeque<String>,
    bytes: usize,
}

/// A bounded, thread-safe buffer of recent log lines.
pub struct LogRing {
    inner: Mutex<Lines>,
}

impl Default for LogRing {
    fn default() -> Self {
        Self::new()
    }
}

impl LogRing {
    /// Most lines kept.
    pub const MAX_LINES: usize = 300;
    /// Most bytes kept, all lines together.
    pub const MAX_BYTES: usize = 64 * 1024;
    /// Longer lines are cut here (at a character boundary) and end in `…`.
    pub const MAX_LINE: usize = 1024;

    pub const fn new() -> LogRing {
        LogRing {
            inner: Mutex::new(Lines {
                lines: VecDeque::new(),
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lines> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a line, dropping the oldest ones past the bounds.
    pub fn push(&self, mut line: String) {
        if line.len() > Self::MAX_LINE {
            let mut cut = Self::MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        let mut g = self.lock();
        g.bytes += line.len();
        g.lines.push_back(line);
        while g.lines.len() > Self::MAX_LINES || g.bytes > Self::MAX_BYTES {
            match g.lines.pop_front() {
                Some(old) => g.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// The kept lines, oldest first.
    pub fn snapshot(&self) -> Vec<String> {
        self.lock().lines.iter().cloned().collect()
    }

    /// Bytes currently kept.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// The process's ring, filled by the logger once [`crate::logging::init`] ran.
pub static RING: LogRing = LogRing::new();

/// `2026-11-26 01:54:01` (UTC) for Unix milliseconds (jiff, which the
/// webhooks' timestamps use too); empty past jiff's range (year 9999).
pub fn utc(ms: u64) -> String {
    stamp(ms, ' ', "")
}

/// `2026-11-26T01:54:01Z`, RFC 3339 to the second (stderr's lines);
/// empty past jiff's range.
pub fn rfc3339(ms: u64) -> String {
    stamp(ms, 'T', "Z")
}

fn stamp(ms: u64, between: char, zone: &str) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let Ok(t) = jiff::Timestamp::from_millisecond(ms) else {
        return String::new();
    };
    let d = jiff::tz::Offset::UTC.to_datetime(t);
    format!(
        "{:04}-{:02}-{:02}{between}{:02}:{:02}:{:02}{zone}",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// `text` with each URL's userinfo and query string replaced by `…`
/// (`http://…@host/path?…`). Borrowed when there is no URL in it.
pub fn redact(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let ends = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (before, url) = rest.split_at(i + 3);
        out.push_str(before);
        let end = url.find(ends).unwrap_or(url.len());
        let (token, after) = url.split_at(end);
        let host_end = token.find(['/', '?', '#']).unwrap_or(token.len());
        let (authority, path) = token.split_at(host_end);
        match authority.rsplit_once('@') {
            Some((_, host)) => {
                out.push_str("…@");
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        match path.split_once('?') {
            Some((p, _)) => {
                out.push_str(p);
                out.push_str("?…");
            }
            None => out.push_str(path),
        }
        rest = after;
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// One ring line: `2026-11-26 01:54:01 INFO  gopxe::tftp: message`.
pub fn format_line(
    at_ms: u64,
    level: log::Level,
    target: &str,
    args: &std::fmt::Arguments,
) -> String {
    let mut line = String::with_capacity(96);
    let _ = write!(line, "{} {level:<5} {target}: {args}", utc(at_ms));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_in_lines() {
        let r = LogRing::new();
        for i in 0..(LogRing::MAX_LINES + 50) {
            r.push(format!("line {i}"));
        }
        let s = r.snapshot();
        assert_eq!(s.len(), LogRing::MAX_LINES);
        assert_eq!(s.first().unwrap(), "line 50", "oldest lines fall off");
        assert_eq!(
            s.last().unwrap(),
            &format!("line {}", LogRing::MAX_LINES + 49)
        );
        assert_eq!(r.bytes(), s.iter().map(String::len).sum::<usize>());
    }

    #[test]
    fn ring_is_bounded_in_bytes_and_cuts_long_lines() {
        let r = LogRing::new();
        // 200 lines of ~1 KiB exceed MAX_BYTES long before MAX_LINES.
        for i in 0..200 {
            r.push(format!("{i:04}{}", "é".repeat(2000)));
        }
        assert!(r.bytes() <= LogRing::MAX_BYTES);
        let s = r.snapshot();
        assert!(s.len() < 200 && s.len() >= LogRing::MAX_BYTES / (LogRing::MAX_LINE + 3));
        for l in &s {
            assert!(l.len() <= LogRing::MAX_LINE + '…'.len_utf8(), "{}", l.len());
            assert!(l.ends_with('…'));
        }
        assert!(s.last().unwrap().starts_with("0199"));
        // One huge line alone still fits.
        r.push("x".repeat(10 * LogRing::MAX_BYTES));
        assert!(r.bytes() <= LogRing::MAX_BYTES);
    }

    #[test]
    fn ring_takes_lines_from_many_threads() {
        static R: LogRing = LogRing::new();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..100 {
                        R.push(format!("t{t} {i}"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = R.snapshot();
        assert_eq!(s.len(), LogRing::MAX_LINES);
        assert_eq!(R.bytes(), s.iter().map(String::len).sum::<usize>());
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_709_251_199_999), "2024-02-29 23:59:59");
        assert_eq!(utc(1_795_658_041_000), "2026-11-26 01:54:01");
        assert_eq!(utc(4_102_444_800_000), "2100-01-01 00:00:00");
        assert_eq!(rfc3339(1_795_658_041_000), "2026-11-26T01:54:01Z");
        assert_eq!(rfc3339(u64::MAX), "");
    }

    #[test]
    fn urls_lose_their_secrets() {
        assert!(matches!(redact("no url here"), Cow::Borrowed(_)));
        assert_eq!(
            redact("webhook: POSTing machine changes to http://10.0.0.5:8080/hook?key=s3cret"),
            "webhook: POSTing machine changes to http://10.0.0.5:8080/hook?…"
        );
        assert_eq!(
            redact("to http://ops:hunter2@hooks.lab/x?a=1&b=2 failed; retry http://h/y"),
            "to http://…@hooks.lab/x?… failed; retry http://h/y"
        );
        assert_eq!(
            redact("'http://10.1.20.2:9090/pxeboot/01-aa/done?key=00ff' || true"),
            "'http://10.1.20.2:9090/pxeboot/01-aa/done?…' || true"
        );
        assert_eq!(redact("u=\"http://a@b\""), "u=\"http://…@b\"");
        assert_eq!(redact("ends with ://"), "ends with ://");
        assert_eq!(redact("http://h?q é"), "http://h?… é");
    }

    #[test]
    fn line_format() {
        let l = format_line(0, log::Level::Warn, "gopxe::tftp", &format_args!("a <b>"));
        assert_eq!(l, "1970-01-01 00:00:00 WARN  gopxe::tftp: a <b>");
    }
}
