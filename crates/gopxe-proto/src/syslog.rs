//! Syslog messages as installers send them, parsed best effort.
//!
//! Layer: wire format (pure). Follows RFC 5424 ("The Syslog Protocol") §6
//! for `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`, and the
//! older BSD form of RFC 3164 §4.1 (`<PRI>Mmm dd hh:mm:ss HOSTNAME
//! TAG[pid]: MSG`) that rsyslog's default forwarding template, busybox
//! syslogd (debian-installer) and glibc's `syslog(3)` write. Transport is
//! the caller's: one UDP datagram is one message (RFC 5426 §3.1), one
//! line of a TCP stream is one message (RFC 6587 §3.4.2, non-transparent
//! framing, what rsyslog's `@@host` sends), see [`split_frames`].
//!
//! [`parse`] never fails and never panics: what is not a valid header is
//! kept as the message (RFC 3164 §4.3.3 gives a message without a PRI the
//! priority `user.notice`, 13), and the text a person reads is escaped
//! ([`escape`]): control characters, NUL and bytes that are not UTF-8
//! become `\xNN`, and it is cut at [`MAX_TEXT`] bytes. Busybox and glibc
//! omit the HOSTNAME field; a token after the timestamp that ends in `:`
//! or holds `[pid]` is taken as the tag, as rsyslog's parser does.
//!
//! The time stamp is skipped: the receiver's clock dates the event (an
//! installer's clock is often wrong before NTP), and RFC 3164's has no year
//! or zone. Structured data (RFC 5424 §6.3) is skipped too.

use std::fmt::{self, Write as _};

/// Most bytes of a message's escaped text; the rest is cut, with `…`.
pub const MAX_TEXT: usize = 1024;
/// Most bytes of a host name, app name or process id kept.
const MAX_FIELD: usize = 64;

/// RFC 5424 §6.2.1 table 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Emergency = 0,
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Informational = 6,
    Debug = 7,
}

impl Severity {
    const ALL: [Severity; 8] = [
        Severity::Emergency,
        Severity::Alert,
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Notice,
        Severity::Informational,
        Severity::Debug,
    ];

    /// The low three bits of a PRI value.
    pub fn from_code(code: u8) -> Severity {
        Self::ALL
            .get(usize::from(code & 7))
            .copied()
            .unwrap_or(Severity::Debug)
    }

    /// The name `syslog.conf` selectors use.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Emergency => "emerg",
            Severity::Alert => "alert",
            Severity::Critical => "crit",
            Severity::Error => "err",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Informational => "info",
            Severity::Debug => "debug",
        }
    }
}

/// The facility's name (RFC 5424 §6.2.1 table 1, names as in `syslog.conf`).
pub fn facility_name(code: u8) -> &'static str {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "security", "console", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    NAMES.get(usize::from(code)).copied().unwrap_or("unknown")
}

/// Which header a message had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `<PRI>1 ...`: RFC 5424.
    Rfc5424,
    /// `<PRI>` and the BSD form (or any text after a PRI): RFC 3164.
    Rfc3164,
    /// No valid PRI: the whole datagram is the message (`user.notice`).
    Raw,
}

/// One message, checked: every text field is escaped and bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub format: Format,
    /// 0 (kern) to 23 (local7).
    pub facility: u8,
    pub severity: Severity,
    pub hostname: Option<String>,
    /// RFC 5424 APP-NAME, or RFC 3164 TAG without `[pid]` and `:`.
    pub app: Option<String>,
    pub pid: Option<String>,
    /// The message, escaped ([`escape`]), at most [`MAX_TEXT`] bytes.
    pub text: String,
}

impl fmt::Display for Message {
    /// `facility.severity app[pid]: text`, as a timeline line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            facility_name(self.facility),
            self.severity.as_str()
        )?;
        if let Some(a) = &self.app {
            write!(f, " {a}")?;
            if let Some(p) = &self.pid {
                write!(f, "[{p}]")?;
            }
            f.write_str(":")?;
        }
        write!(f, " {}", self.text)
    }
}

/// Escapes bytes for a timeline line: printable UTF-8 is kept (tabs
/// become a space), `\` is doubled, and control characters (C0, DEL, C1),
/// NUL and bytes that are not UTF-8 become `\xNN` per byte. At most `max`
/// bytes of output; a longer text ends in `…`.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max));
    let mut rest = bytes;
    let push = |out: &mut String, piece: &str| -> bool {
        if out.len() + piece.len() > max {
            out.push('…');
            return false;
        }
        out.push_str(piece);
        true
    };
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, &[][..]),
            Err(e) => {
                let (ok, tail) = rest.split_at(e.valid_up_to());
                let n = e.error_len().unwrap_or(tail.len()).max(1);
                let (bad, after) = tail.split_at(n.min(tail.len()));
                rest = after;
                (std::str::from_utf8(ok).unwrap_or(""), bad)
            }
        };
        if bad.is_empty() {
            rest = &[];
        }
        for c in valid.chars() {
            let mut buf = [0u8; 4];
            let piece: String = match c {
                '\t' => " ".into(),
                '\\' => "\\\\".into(),
                c if c.is_control() => {
                    let mut s = String::new();
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(s, "\\x{b:02x}");
                    }
                    s
                }
                c => c.encode_utf8(&mut buf).to_string(),
            };
            if !push(&mut out, &piece) {
                return out;
            }
        }
        for b in bad {
            if !push(&mut out, &format!("\\x{b:02x}")) {
                return out;
            }
        }
    }
    out
}

/// Whether a line says the install failed: severity `crit` or worse
/// (`crit`, `alert`, `emerg`) from any facility but `kern`.
///
/// Deliberately conservative. Installers log `err` lines on healthy
/// installs: debian-installer's components report failed probes (no
/// firmware for a NIC, `hw-detect`, `partman` checks) and anaconda logs
/// errors it recovers from (mirror retries, storage probes), so `err` is no
/// signal. Their fatal paths stop and wait on the console instead of
/// logging anything a receiver could tell apart — `install_timeout`
/// catches those. `crit` and worse are rare enough to mean it: anaconda's
/// Python `CRITICAL`, and the line gopxe's own autoinstall
/// `error-commands` send (`user.crit`, tag `gopxe-autoinstall`). The
/// kernel is left out: a thermal or MCE warning (`kern.crit`) on a lab
/// machine is no failed install.
pub fn is_install_failure(m: &Message) -> bool {
    m.severity <= Severity::Critical && m.facility != 0
}

/// Splits `bytes` at the first space: the token and what follows it.
fn token(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b' ') {
        Some(i) => (
            bytes.get(..i).unwrap_or_default(),
            bytes.get(i + 1..).unwrap_or_default(),
        ),
        None => (bytes, &[]),
    }
}

/// `<PRI>`: 1 to 3 digits, at most 191 (RFC 5424 §6.2.1).
fn pri(bytes: &[u8]) -> Option<(u8, &[u8])> {
    let rest = bytes.strip_prefix(b"<")?;
    let end = rest.iter().take(4).position(|&b| b == b'>')?;
    let digits = rest.get(..end)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits
        .iter()
        .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    let v = u8::try_from(v).ok().filter(|&v| v <= 191)?;
    Some((v, rest.get(end + 1..).unwrap_or_default()))
}

/// A header field: `-` (NILVALUE) is none; otherwise escaped and bounded.
fn field(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty() && bytes != b"-").then(|| escape(bytes, MAX_FIELD))
}

/// RFC 3164 §4.1.2 `Mmm dd hh:mm:ss` (day padded with a space) and a space.
fn bsd_timestamp(bytes: &[u8]) -> Option<&[u8]> {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let ts = bytes.get(..16)?;
    let ok = MONTHS.contains(&ts.get(..3)?)
        && ts.get(3) == Some(&b' ')
        && matches!(ts.get(4), Some(b' ' | b'0'..=b'9'))
        && ts.get(5).is_some_and(u8::is_ascii_digit)
        && ts.get(6) == Some(&b' ')
        && ts.get(7..15)?.iter().enumerate().all(|(i, b)| match i {
            2 | 5 => *b == b':',
            _ => b.is_ascii_digit(),
        })
        && ts.get(15) == Some(&b' ');
    ok.then(|| bytes.get(16..).unwrap_or_default())
}

/// An RFC 3339 time stamp token (`2026-12-06T06:04:23.5Z`) and its space,
/// as rsyslog writes in the BSD form with high-precision time stamps.
fn rfc3339_timestamp(bytes: &[u8]) -> Option<&[u8]> {
    let (t, rest) = token(bytes);
    let looks = t.len() >= 19
        && t.get(..4)?.iter().all(u8::is_ascii_digit)
        && t.get(4) == Some(&b'-')
        && t.get(10) == Some(&b'T');
    looks.then_some(rest)
}

/// A BSD TAG: `name:` or `name[pid]:` (the `:` optional after `[pid]`),
/// name of printable characters. Returns app, pid and the message.
fn bsd_tag(bytes: &[u8]) -> Option<(String, Option<String>, &[u8])> {
    let (t, rest) = token(bytes);
    let (name, pid) = match t.iter().position(|&b| b == b'[') {
        Some(i) => {
            let inner = t.get(i + 1..)?;
            let close = inner.iter().position(|&b| b == b']')?;
            let after = inner.get(close + 1..)?;
            if !(after.is_empty() || after == b":") {
                return None;
            }
            (t.get(..i)?, Some(inner.get(..close)?))
        }
        None => (t.strip_suffix(b":")?, None),
    };
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b':' && b != b'[');
    ok.then(|| (escape(name, MAX_FIELD), pid.and_then(field), rest))
}

/// The rest of an RFC 5424 message after `<PRI>1 `.
fn rfc5424(m: &mut Message, bytes: &[u8]) {
    let (_timestamp, rest) = token(bytes);
    let (host, rest) = token(rest);
    let (app, rest) = token(rest);
    let (pid, rest) = token(rest);
    let (_msgid, rest) = token(rest);
    m.hostname = field(host);
    m.app = field(app);
    m.pid = field(pid);
    let msg = skip_structured_data(rest);
    let msg = msg.strip_prefix(b"\xef\xbb\xbf").unwrap_or(msg);
    m.text = escape(msg, MAX_TEXT);
}

/// Skips RFC 5424 §6.3 STRUCTURED-DATA (`-` or `[id k="v" ...]...`, where
/// `\"`, `\\` and `\]` are escapes inside values) and the space after it.
fn skip_structured_data(bytes: &[u8]) -> &[u8] {
    if let Some(rest) = bytes.strip_prefix(b"-") {
        return rest.strip_prefix(b" ").unwrap_or(rest);
    }
    let mut i = 0;
    let (mut in_element, mut in_value, mut escaped) = (false, false, false);
    while let Some(&b) = bytes.get(i) {
        if !in_element {
            if b != b'[' {
                break;
            }
            in_element = true;
        } else if in_value {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_value = false,
                _ => {}
            }
        } else if b == b'"' {
            in_value = true;
        } else if b == b']' {
            in_element = false;
        }
        i += 1;
    }
    let rest = bytes.get(i..).unwrap_or_default();
    rest.strip_prefix(b" ").unwrap_or(rest)
}

/// Parses one message (a datagram, or a frame of [`split_frames`]). Never
/// fails: see the module docs.
pub fn parse(bytes: &[u8]) -> Message {
    // Trailing line ends and NULs (busybox adds `\n`, some senders a NUL).
    let end = bytes
        .iter()
        .rposition(|&b| !matches!(b, b'\n' | b'\r' | 0))
        .map_or(0, |i| i + 1);
    let bytes = bytes.get(..end).unwrap_or_default();
    let mut m = Message {
        format: Format::Raw,
        facility: 1,
        severity: Severity::Notice,
        hostname: None,
        app: None,
        pid: None,
        text: String::new(),
    };
    let Some((prival, rest)) = pri(bytes) else {
        m.text = escape(bytes, MAX_TEXT);
        return m;
    };
    m.facility = prival >> 3;
    m.severity = Severity::from_code(prival);
    if let Some(rest) = rest.strip_prefix(b"1 ") {
        m.format = Format::Rfc5424;
        rfc5424(&mut m, rest);
        return m;
    }
    m.format = Format::Rfc3164;
    let after_ts = bsd_timestamp(rest).or_else(|| rfc3339_timestamp(rest));
    let mut rest = after_ts.unwrap_or(rest);
    if after_ts.is_some() && bsd_tag(rest).is_none() {
        let (host, r) = token(rest);
        if !host.is_empty() {
            m.hostname = field(host);
            rest = r;
        }
    }
    if let Some((app, pid, r)) = bsd_tag(rest) {
        m.app = Some(app);
        m.pid = pid;
        rest = r;
    }
    m.text = escape(rest, MAX_TEXT);
    m
}

/// Splits a TCP syslog stream (RFC 6587) into frames: each complete line
/// (non-transparent framing, `\n`-terminated, what rsyslog sends), or an
/// octet-counted frame (`LEN SP MSG`, §3.4.1) when the data starts with a
/// digit. Returns the frames and how many bytes they used; the caller keeps
/// the rest for the next read. A line longer than `max` is cut into
/// pieces of `max` bytes, so a sender without line ends cannot make the
/// caller buffer without bound.
pub fn split_frames(data: &[u8], max: usize) -> (Vec<&[u8]>, usize) {
    let max = max.max(1);
    let mut frames = Vec::new();
    let mut used = 0;
    loop {
        let rest = data.get(used..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        // Octet counting: digits, a space, then exactly that many bytes.
        if rest.first().is_some_and(|b| (b'1'..=b'9').contains(b)) {
            let (len, after) = token(rest);
            if len.len() < rest.len()
                && len.len() <= 6
                && len.iter().all(u8::is_ascii_digit)
                && let Ok(n) = std::str::from_utf8(len).unwrap_or("x").parse::<usize>()
            {
                let head = len.len() + 1;
                match after.get(..n) {
                    Some(frame) => {
                        frames.push(frame);
                        used += head + n;
                        continue;
                    }
                    None if head + n <= max => break,
                    None => {}
                }
            }
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i < max => {
                frames.push(rest.get(..i).unwrap_or_default());
                used += i + 1;
            }
            _ if rest.len() >= max => {
                frames.push(rest.get(..max).unwrap_or_default());
                used += max;
            }
            _ => break,
        }
    }
    (frames, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(b: &[u8]) -> Message {
        parse(b)
    }

    #[test]
    fn rfc3164_with_hostname() {
        let m = p(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!((m.facility, m.severity), (4, Severity::Critical));
        assert_eq!(m.hostname.as_deref(), Some("mymachine"));
        assert_eq!(m.app.as_deref(), Some("su"));
        assert_eq!(m.pid, None);
        assert_eq!(m.text, "'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(
            m.to_string(),
            "auth.crit su: 'su root' failed for lonvick on /dev/pts/8"
        );
    }

    #[test]
    fn rfc3164_without_hostname_as_busybox_forwards_it() {
        // debian-installer: glibc syslog(3) through busybox syslogd -R.
        let m = p(b"<13>Dec  6 06:04:23 anna[2345]: DEBUG: retrieving nic-modules\n");
        assert_eq!(m.hostname, None);
        assert_eq!(m.app.as_deref(), Some("anna"));
        assert_eq!(m.pid.as_deref(), Some("2345"));
        assert_eq!(m.text, "DEBUG: retrieving nic-modules");
        let m = p(b"<11>Dec 16 06:04:23 main-menu: WARNING **: Menu item 'x' failed.");
        assert_eq!((m.facility, m.severity), (1, Severity::Error));
        assert_eq!(m.app.as_deref(), Some("main-menu"));
        assert_eq!(m.text, "WARNING **: Menu item 'x' failed.");
    }

    #[test]
    fn rfc3164_rsyslog_forwarding_and_variants() {
        // rsyslog's RSYSLOG_TraditionalForwardFormat (anaconda's @@ line).
        let m = p(b"<190>Dec  6 06:04:23 localhost anaconda[1732]: program: Running... udevadm");
        assert_eq!((m.facility, m.severity), (23, Severity::Informational));
        assert_eq!(m.hostname.as_deref(), Some("localhost"));
        assert_eq!(m.app.as_deref(), Some("anaconda"));
        assert_eq!(m.pid.as_deref(), Some("1732"));
        assert_eq!(m.text, "program: Running... udevadm");
        // `[pid]` without a colon.
        let m = p(b"<14>Jan  1 00:00:00 host app[7] hello");
        assert_eq!((m.app.as_deref(), m.text.as_str()), (Some("app"), "hello"));
        // RFC 3339 time stamp in the BSD form.
        let m = p(b"<14>2026-12-06T06:04:23.123+00:00 node7 curtin: installing");
        assert_eq!(m.hostname.as_deref(), Some("node7"));
        assert_eq!(m.app.as_deref(), Some("curtin"));
        // No time stamp: a tag is still found, no host name is guessed.
        let m = p(b"<13>gopxe-test: hello there");
        assert_eq!((m.hostname, m.app.as_deref()), (None, Some("gopxe-test")));
        assert_eq!(m.text, "hello there");
        let m = p(b"<13>just some words");
        assert_eq!((m.app, m.text.as_str()), (None, "just some words"));
        // A time stamp and nothing that looks like a tag: host, then text.
        let m = p(b"<13>Feb 29 12:00:00 host words without tag");
        assert_eq!(m.hostname.as_deref(), Some("host"));
        assert_eq!((m.app, m.text.as_str()), (None, "words without tag"));
    }

    #[test]
    fn rfc5424() {
        let m = p(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xef\xbb\xbfAn application event log entry...",
        );
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!((m.facility, m.severity), (20, Severity::Notice));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.app.as_deref(), Some("evntslog"));
        assert_eq!(m.pid, None);
        assert_eq!(m.text, "An application event log entry...");
        // util-linux logger --rfc5424: timeQuality SD, quotes escaped.
        let m = p(
            b"<13>1 2026-12-06T06:04:23.5+00:00 host tester 42 - [timeQuality tzKnown=\"1\" x=\"a\\\"]b\"][two]  msg with  spaces",
        );
        assert_eq!(m.pid.as_deref(), Some("42"));
        assert_eq!(m.text, " msg with  spaces");
        // Everything nil.
        let m = p(b"<0>1 - - - - - -");
        assert_eq!((m.facility, m.severity), (0, Severity::Emergency));
        assert_eq!((m.hostname, m.app, m.pid), (None, None, None));
        assert_eq!(m.text, "");
        // A header cut short.
        let m = p(b"<13>1 2026-12-06T06:04:23Z host");
        assert_eq!(m.hostname.as_deref(), Some("host"));
        assert_eq!(m.text, "");
    }

    #[test]
    fn bad_pri_is_a_raw_line() {
        for (input, text) in [
            (&b"no pri at all"[..], "no pri at all"),
            (b"<192>too big", "<192>too big"),
            (b"<>empty", "<>empty"),
            (b"<1x>letters", "<1x>letters"),
            (b"<1234>long", "<1234>long"),
            (b"<13", "<13"),
            (b"", ""),
            (b"\n\r\0", ""),
        ] {
            let m = p(input);
            assert_eq!(m.format, Format::Raw, "{input:?}");
            assert_eq!((m.facility, m.severity), (1, Severity::Notice));
            assert_eq!(m.text, text, "{input:?}");
        }
        let m = p(b"<191>x");
        assert_eq!((m.facility, m.severity), (23, Severity::Debug));
        assert_eq!(p(b"<007>x").severity, Severity::Debug);
    }

    #[test]
    fn text_is_escaped_and_bounded() {
        let m = p(b"<13>tag: a\0b\x1b[31mred\x7f\tx\\y \xff\xfe caf\xc3\xa9 \xe2\x82");
        assert_eq!(
            m.text,
            "a\\x00b\\x1b[31mred\\x7f x\\\\y \\xff\\xfe café \\xe2\\x82"
        );
        // C1 controls (U+0085 NEL) too; line ends inside a message.
        assert_eq!(
            escape("a\u{85}b\nc\r".as_bytes(), 100),
            "a\\xc2\\x85b\\x0ac\\x0d"
        );
        let huge = [b'a'; 70_000];
        let m = p(&[&b"<13>"[..], &huge[..]].concat());
        assert!(m.text.len() <= MAX_TEXT + '…'.len_utf8());
        assert!(m.text.ends_with('…'));
        // A hostile host name or tag is escaped and bounded too.
        let mut line = b"<13>Dec  6 06:04:23 ".to_vec();
        line.extend([b'h'; 500]);
        line.extend(b" x\x01y: hi");
        let m = p(&line);
        assert!(m.hostname.unwrap().len() <= MAX_FIELD + 3);
        // A tag with a control character is no tag: it stays in the text.
        assert_eq!((m.app, m.text.as_str()), (None, "x\\x01y: hi"));
        // Escaping stops inside multi-byte output without splitting it.
        assert_eq!(escape(b"\x01\x02", 5), "\\x01…");
        assert_eq!(escape("éé".as_bytes(), 3), "é…");
    }

    /// Random and mangled inputs: never a panic, always bounded output.
    #[test]
    fn garbage_never_panics() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let seeds: [&[u8]; 5] = [
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
            b"<165>1 2003-10-11T22:14:15.003Z h app 1 ID [a b=\"c\\\"\"] msg",
            b"<13>anna[1]: x",
            b"12 <13>1 - - - - - x\n",
            b"",
        ];
        for round in 0..20_000 {
            let base = seeds[round % seeds.len()];
            let mut v = base.to_vec();
            let len = (next() % 300) as usize;
            for _ in 0..(next() % 8) {
                if v.is_empty() {
                    break;
                }
                let i = (next() as usize) % v.len();
                v[i] = next() as u8;
            }
            if round % 3 == 0 {
                v.truncate((next() as usize) % (v.len() + 1));
            }
            if round % 5 == 0 {
                v.extend((0..len).map(|_| next() as u8));
            }
            let m = parse(&v);
            assert!(m.text.len() <= MAX_TEXT + 3);
            assert!(m.facility <= 23);
            assert!(!m.to_string().chars().any(|c| c.is_control()), "{v:?}");
            let (frames, used) = split_frames(&v, 64);
            assert!(used <= v.len());
            assert!(frames.iter().all(|f| f.len() <= 64.max(f.len())));
        }
    }

    #[test]
    fn failure_rule_is_conservative() {
        for (line, failed) in [
            (&b"<10>Dec  6 06:04:23 host anaconda[1]: fatal"[..], true),
            (b"<9>x: alert", true),
            (b"<8>x: emerg", true),
            (
                b"<11>main-menu[2]: WARNING **: Menu item 'x' failed.",
                false,
            ),
            (b"<12>x: warning", false),
            (b"<2>kernel: CPU0: Core temperature above threshold", false),
            (b"<0>kernel: panic", false),
            (
                b"<10>1 - host gopxe-autoinstall - - - autoinstall failed",
                true,
            ),
            (b"no pri: crit", false),
        ] {
            assert_eq!(is_install_failure(&parse(line)), failed, "{line:?}");
        }
    }

    #[test]
    fn tcp_frames() {
        let data = b"<13>a: one\n<13>a: two\r\n<13>a: par";
        let (frames, used) = split_frames(data, 1024);
        assert_eq!(frames, [&b"<13>a: one"[..], b"<13>a: two\r"]);
        assert_eq!(&data[used..], b"<13>a: par");
        let data = b"10 <13>a: one11 <13>a: two\n9 <13>";
        let (frames, used) = split_frames(data, 1024);
        assert_eq!(frames, [&b"<13>a: one"[..], b"<13>a: two\n"]);
        assert_eq!(&data[used..], b"9 <13>");
        // No line end: cut at max so the buffer stays bounded.
        let long = [b'x'; 100];
        let (frames, used) = split_frames(&long, 40);
        assert_eq!(frames.len(), 2);
        assert_eq!(used, 80);
        // A huge octet count is no frame: the line is split instead.
        let (frames, _) = split_frames(b"999999 abc\n", 1024);
        assert_eq!(frames, [&b"999999 abc"[..]]);
    }
}
