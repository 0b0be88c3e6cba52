//! The lease log's records, pure: encoding a lease change as a line,
//! parsing and replaying a log's text into a [`LeaseTable`], and the text a
//! compaction writes. The file itself (`gopxe::dhcp::leasefile`) does the
//! writes, syncs and renames.
//!
//! ```text
//! gopxe-leases 1
//! b 10.0.0.10 1764100000 52:54:00:12:34:56 0152540012345 6 host-1 3f1c9a7e
//! f 10.0.0.10 6c2d0a11
//! d 10.0.0.11 1764100600 52:54:00:12:34:57 9b00e2f4
//! ```
//!
//! `b` binds (expiry in Unix seconds, `-` for infinite; client id in hex;
//! hostname or `-`), `f` frees, `d` quarantines a declined address. The
//! last field is the FNV-1a 32-bit hash of the rest of the line. A NUL
//! byte where a record would start, with only NUL bytes after it, is the
//! end of the log (the file keeps zeros written ahead of its records).

use std::net::Ipv4Addr;

use super::lease::{Lease, LeaseChange, LeaseState, LeaseTable, NEVER, Now};
use super::packet::Mac;

/// The log's first line: its format and version.
pub const HEADER: &str = "gopxe-leases 1";

/// What loading found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Records replayed.
    pub records: usize,
    /// Set when a corrupt or torn tail was cut off: byte offset and reason.
    pub truncated: Option<(u64, String)>,
}

fn fnv1a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn parse_mac(s: &str) -> Option<Mac> {
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    Some(Mac(<[u8; 6]>::try_from(v).ok()?))
}

/// One record as a line (with its newline), or `None` for volatile changes.
pub fn record(change: &LeaseChange) -> Option<String> {
    let body = match change {
        LeaseChange::Bind(l) => format!(
            "b {} {} {} {} {}",
            l.ip,
            if l.expires == NEVER {
                "-".to_string()
            } else {
                l.expires.to_string()
            },
            l.mac,
            if l.client_id.is_empty() {
                "-".to_string()
            } else {
                hex(&l.client_id)
            },
            // Hostnames are checked RFC 1123 names: no spaces, no newlines.
            l.hostname.as_deref().unwrap_or("-"),
        ),
        LeaseChange::Free { ip } => format!("f {ip}"),
        LeaseChange::Decline { ip, mac, until } => format!("d {ip} {until} {mac}"),
        LeaseChange::Offer { .. } | LeaseChange::Withdraw { .. } => return None,
    };
    Some(format!("{body} {:08x}\n", fnv1a(body.as_bytes())))
}

/// Parse one line (without its newline).
pub fn parse(line: &str) -> Result<LeaseChange, String> {
    let (body, sum) = line.rsplit_once(' ').ok_or("no checksum")?;
    let sum = u32::from_str_radix(sum, 16).map_err(|_| "bad checksum field")?;
    if fnv1a(body.as_bytes()) != sum {
        return Err("checksum mismatch".into());
    }
    let f: Vec<&str> = body.split(' ').collect();
    let ip = |s: &str| {
        s.parse::<Ipv4Addr>()
            .map_err(|_| format!("bad address {s:?}"))
    };
    let time = |s: &str| -> Result<Now, String> {
        if s == "-" {
            Ok(NEVER)
        } else {
            s.parse().map_err(|_| format!("bad time {s:?}"))
        }
    };
    let mac = |s: &str| parse_mac(s).ok_or_else(|| format!("bad MAC {s:?}"));
    match f.as_slice() {
        ["b", a, exp, m, cid, host] => Ok(LeaseChange::Bind(Lease {
            ip: ip(a)?,
            state: LeaseState::Bound,
            client_id: if *cid == "-" {
                Vec::new()
            } else {
                unhex(cid).ok_or("bad client id")?
            },
            mac: mac(m)?,
            expires: time(exp)?,
            hostname: (*host != "-").then(|| host.to_string()),
        })),
        ["f", a] => Ok(LeaseChange::Free { ip: ip(a)? }),
        ["d", a, until, m] => Ok(LeaseChange::Decline {
            ip: ip(a)?,
            mac: mac(m)?,
            until: time(until)?,
        }),
        _ => Err("unknown record".into()),
    }
}

/// Replay a log's text into a table. Stops at the first bad record (and
/// says where in the report); a header of another version is an error (the
/// message), since the log must then not be rewritten.
pub fn replay(text: &[u8], table: &mut LeaseTable) -> Result<LoadReport, String> {
    let mut report = LoadReport::default();
    let mut offset = 0usize;
    let mut first = true;
    while offset < text.len() {
        let rest = text.get(offset..).unwrap_or_default();
        if rest.first() == Some(&0) {
            // The zeros written ahead: the clean end, if nothing follows.
            if rest.iter().any(|&b| b != 0) {
                report.truncated = Some((offset as u64, "data after the end".into()));
            }
            break;
        }
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            report.truncated = Some((offset as u64, "torn last record".into()));
            break;
        };
        let line = rest.get(..nl).unwrap_or_default();
        let Ok(line) = std::str::from_utf8(line) else {
            report.truncated = Some((offset as u64, "not UTF-8".into()));
            break;
        };
        if first {
            first = false;
            if line != HEADER {
                return Err(format!(
                    "lease file header {line:?} is not {HEADER:?} (unknown version)"
                ));
            }
        } else {
            match parse(line) {
                Ok(change) => {
                    table.apply(&change);
                    report.records += 1;
                }
                Err(e) => {
                    report.truncated = Some((offset as u64, e));
                    break;
                }
            }
        }
        offset += nl + 1;
    }
    Ok(report)
}

/// A whole log for `table`: the header and one record per durable entry,
/// what a compaction writes.
pub fn snapshot(table: &LeaseTable) -> String {
    let mut text = String::with_capacity(64 * (table.len() + 1));
    text.push_str(HEADER);
    text.push('\n');
    for l in table.durable() {
        let change = match l.state {
            LeaseState::Bound => LeaseChange::Bind(l.clone()),
            LeaseState::Declined => LeaseChange::Decline {
                ip: l.ip,
                mac: l.mac,
                until: l.expires,
            },
        };
        if let Some(r) = record(&change) {
            text.push_str(&r);
        }
    }
    text
}

/// Test support for this crate's tests and the gopxe crate's lease-file
/// tests (feature `testing`, a dev-dependency only).
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// A bound lease of `ip` for client id `cid` (its MAC ends in the id's
    /// length), expiring at `expires`.
    pub fn lease(ip: [u8; 4], cid: &[u8], expires: Now) -> LeaseChange {
        let n = u8::try_from(cid.len()).unwrap_or(u8::MAX);
        LeaseChange::Bind(Lease {
            ip: Ipv4Addr::from(ip),
            state: LeaseState::Bound,
            client_id: cid.to_vec(),
            mac: Mac([0x52, 0x54, 0, 0, 0, n]),
            expires,
            hostname: Some("node-1".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use testing::lease;

    #[test]
    fn records_round_trip() {
        for c in [
            lease([10, 0, 0, 5], &[1, 2, 3], 1000),
            lease([10, 0, 0, 5], &[1, 2, 3], NEVER),
            LeaseChange::Free {
                ip: Ipv4Addr::new(10, 0, 0, 5),
            },
            LeaseChange::Decline {
                ip: Ipv4Addr::new(10, 0, 0, 6),
                mac: Mac([1, 2, 3, 4, 5, 6]),
                until: 99,
            },
        ] {
            let r = record(&c).unwrap();
            assert_eq!(parse(r.trim_end()).unwrap(), c);
        }
        assert_eq!(record(&LeaseChange::Withdraw { client_id: vec![1] }), None);
    }

    #[test]
    fn snapshot_replays_to_the_same_table() {
        let mut t = LeaseTable::new();
        t.apply(&lease([10, 0, 0, 5], b"a", 5000));
        t.apply(&lease([10, 0, 0, 6], b"bb", NEVER));
        let text = snapshot(&t);
        assert!(text.starts_with("gopxe-leases 1\n"));
        let mut back = LeaseTable::new();
        let rep = replay(text.as_bytes(), &mut back).unwrap();
        assert_eq!((rep.records, rep.truncated), (2, None));
        assert_eq!(back.bound_to(b"bb").unwrap().expires, NEVER);
        assert_eq!(back.len(), 2);
    }

    #[test]
    fn replay_stops_at_a_bad_record_and_refuses_another_version() {
        let mut t = LeaseTable::new();
        let mut text = snapshot(&t).into_bytes();
        text.extend_from_slice(
            record(&lease([10, 0, 0, 5], b"a", 5000))
                .unwrap()
                .as_bytes(),
        );
        text.extend_from_slice(b"b 10.0.0.7 torn");
        let rep = replay(&text, &mut t).unwrap();
        assert_eq!(rep.records, 1);
        assert_eq!(rep.truncated.unwrap().1, "torn last record");
        assert!(replay(b"gopxe-leases 99\n", &mut LeaseTable::new()).is_err());
    }
}
