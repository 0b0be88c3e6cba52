//! Durable lease log: `leases` in the data directory, an append-only file of
//! line records, each carrying its own checksum, under a versioned header.
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
//! last field is the FNV-1a 32-bit hash of the rest of the line.
//!
//! After the last record the file holds zeros: free space written ahead
//! (256 KiB at a time), which the next records overwrite in place. So an
//! append's `fdatasync` changes neither the file's size nor its blocks and
//! needs no commit of the file system's own journal (on ext4 such a commit
//! also flushes every other file's new data, the log's included); only the
//! append that runs out of zeros extends the file, once per 256 KiB. A NUL
//! byte where a record would start, with only NUL bytes after it, is the
//! end of the log.
//!
//! On open the log is replayed; a torn or corrupt tail is reported and cut
//! off, then the file is compacted (rewritten with the live entries and
//! fresh zeros: temp file, fsync, rename, fsync of the directory). The
//! driver appends a whole burst's changes with one write and one fsync
//! (group commit) before it sends any of the burst's ACKs. A burst that
//! cannot be written or synced is wiped again (zeros over it, synced) so
//! that no later, shorter burst can be followed by its records; if even
//! that fails, the log refuses every later append until gopxe restarts.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::lease::{Lease, LeaseChange, LeaseState, LeaseTable, NEVER, Now};
use super::packet::Mac;

const HEADER: &str = "gopxe-leases 1";
const FILE_NAME: &str = "leases";
/// Free space (zeros) written ahead of the records, this much at a time.
const AHEAD: u64 = 256 * 1024;

/// What loading found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Records replayed.
    pub records: usize,
    /// Set when a corrupt or torn tail was cut off: byte offset and reason.
    pub truncated: Option<(u64, String)>,
}

/// The open lease log.
#[derive(Debug)]
pub struct LeaseFile {
    path: PathBuf,
    file: File,
    /// Where the next record goes: the end of the last one written.
    end: u64,
    /// The file's length: `end` plus the zeros written ahead.
    len: u64,
    /// Records appended since the last compaction.
    appended: usize,
    /// Set when a failed append could not be wiped: appends are refused.
    broken: bool,
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
fn parse(line: &str) -> Result<LeaseChange, String> {
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

/// Replay a log's text into a table. Stops at the first bad record.
fn replay(text: &[u8], table: &mut LeaseTable) -> Result<LoadReport, io::Error> {
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
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("lease file header {line:?} is not {HEADER:?} (unknown version)"),
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

/// Write `count` zeros at `offset`.
fn write_zeros(file: &File, offset: u64, count: u64) -> io::Result<()> {
    const BLOCK: [u8; 8192] = [0; 8192];
    let mut at = offset;
    let end = offset + count;
    while at < end {
        let n = (end - at).min(BLOCK.len() as u64);
        file.write_all_at(BLOCK.get(..n as usize).unwrap_or_default(), at)?;
        at += n;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LeaseFile {
    /// Open (or create) `dir/leases`, replay it into a table, cut off a
    /// corrupt tail, drop entries expired before `now - grace`, and compact.
    pub fn open(
        dir: &Path,
        now: Now,
        grace: u64,
    ) -> io::Result<(LeaseFile, LeaseTable, LoadReport)> {
        fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut table = LeaseTable::new();
        let report = match fs::read(&path) {
            Ok(text) => replay(&text, &mut table)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => LoadReport::default(),
            Err(e) => return Err(e),
        };
        if let Some((at, why)) = &report.truncated {
            log::warn!(
                "dhcp: lease file {}: corrupt tail at byte {at} ({why}); cut off",
                path.display()
            );
        }
        table.purge(now, grace);
        let (file, end) = Self::compact_to(&path, &table)?;
        Ok((
            LeaseFile {
                path,
                file,
                end,
                len: end + AHEAD,
                appended: 0,
                broken: false,
            },
            table,
            report,
        ))
    }

    /// Rewrite the log from `table`, followed by [`AHEAD`] zeros; returns
    /// the reopened file and where its records end.
    fn compact_to(path: &Path, table: &LeaseTable) -> io::Result<(File, u64)> {
        let tmp = path.with_extension("tmp");
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
        let end = text.len() as u64;
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            write_zeros(&f, end, AHEAD)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok((OpenOptions::new().write(true).open(path)?, end))
    }

    /// Append the durable changes with one write and one fsync. Returns
    /// the number of records written.
    pub fn append(&mut self, changes: &[LeaseChange]) -> io::Result<usize> {
        let mut text = String::new();
        let mut n = 0;
        for r in changes.iter().filter_map(record) {
            text.push_str(&r);
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        if self.broken {
            return Err(io::Error::other(
                "an earlier failed append could not be wiped; restart gopxe",
            ));
        }
        let bytes = text.as_bytes();
        let size = bytes.len() as u64;
        if self.end + size > self.len {
            // Out of zeros: the one append that extends the file (and so
            // commits its size) in AHEAD steps.
            let len = self.end + size + AHEAD;
            write_zeros(&self.file, self.len, len - self.len)?;
            self.file.sync_data()?;
            self.len = len;
        }
        let written = self
            .file
            .write_all_at(bytes, self.end)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let wiped =
                write_zeros(&self.file, self.end, size).and_then(|()| self.file.sync_data());
            if wiped.is_err() {
                self.broken = true;
            }
            return Err(e);
        }
        self.end += size;
        self.appended += n;
        Ok(n)
    }

    /// Worth compacting: many more records appended than entries alive.
    pub fn wants_compaction(&self, table: &LeaseTable) -> bool {
        self.appended > 1024 && self.appended > 4 * table.len()
    }

    /// Rewrite the log from `table`.
    pub fn compact(&mut self, table: &LeaseTable) -> io::Result<()> {
        let (file, end) = Self::compact_to(&self.path, table)?;
        self.file = file;
        self.end = end;
        self.len = end + AHEAD;
        self.appended = 0;
        self.broken = false;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gopxe-leasefile-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    /// The log's text without the zeros after it.
    fn records(path: &Path) -> String {
        let text = fs::read_to_string(path).unwrap();
        text.trim_end_matches('\0').to_string()
    }

    fn lease(ip: [u8; 4], cid: &[u8], expires: Now) -> LeaseChange {
        LeaseChange::Bind(Lease {
            ip: Ipv4Addr::from(ip),
            state: LeaseState::Bound,
            client_id: cid.to_vec(),
            mac: Mac([0x52, 0x54, 0, 0, 0, cid.len() as u8]),
            expires,
            hostname: Some("node-1".into()),
        })
    }

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
    fn survives_restart_and_cuts_corrupt_tail() {
        let dir = tempdir("restart");
        {
            let (mut f, t, rep) = LeaseFile::open(&dir, 100, 0).unwrap();
            assert!(t.is_empty());
            assert_eq!(rep, LoadReport::default());
            f.append(&[
                lease([10, 0, 0, 5], b"a", 5000),
                lease([10, 0, 0, 6], b"bb", 5000),
            ])
            .unwrap();
            f.append(&[LeaseChange::Free {
                ip: Ipv4Addr::new(10, 0, 0, 6),
            }])
            .unwrap();
        }
        // A torn write at the end: the start of a record over the zeros.
        let path = dir.join(FILE_NAME);
        let mut text = fs::read(&path).unwrap();
        let end = text.iter().position(|&b| b == 0).unwrap();
        let torn = b"b 10.0.0.7 5000 52:54:00:00:00:01 61 - 1234";
        text.splice(end..end + torn.len(), torn.iter().copied());
        fs::write(&path, &text).unwrap();
        {
            let (_f, t, rep) = LeaseFile::open(&dir, 200, 0).unwrap();
            assert_eq!(rep.records, 3);
            assert!(rep.truncated.is_some());
            assert_eq!(t.bound_to(b"a").unwrap().ip, Ipv4Addr::new(10, 0, 0, 5));
            assert_eq!(t.len(), 1);
        }
        // Compacted: header plus the live lease, no tail.
        let text = records(&path);
        assert_eq!(text.lines().count(), 2);
        // A flipped byte in a record is caught by the checksum (and a log
        // without zeros after it loads as well).
        fs::write(&path, text.replace("10.0.0.5", "10.0.0.9")).unwrap();
        let (_f, t, rep) = LeaseFile::open(&dir, 200, 0).unwrap();
        assert!(t.is_empty());
        assert_eq!(rep.truncated.unwrap().1, "checksum mismatch");
        // Expired leases are dropped on open.
        let (mut f, _, _) = LeaseFile::open(&dir, 200, 0).unwrap();
        f.append(&[lease([10, 0, 0, 5], b"a", 300)]).unwrap();
        drop(f);
        let (_f, t, _) = LeaseFile::open(&dir, 400, 0).unwrap();
        assert!(t.is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn renewals_are_compacted_away() {
        let dir = tempdir("compact");
        let (mut f, mut t, _) = LeaseFile::open(&dir, 0, 0).unwrap();
        for i in 0..1100 {
            let c = lease([10, 0, 0, 5], b"a", 5000 + i);
            t.apply(&c);
            f.append(std::slice::from_ref(&c)).unwrap();
        }
        assert!(f.wants_compaction(&t));
        f.compact(&t).unwrap();
        assert!(!f.wants_compaction(&t));
        let text = records(&dir.join(FILE_NAME));
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains(" 6099 "));
        // Appends after a compaction land in the new file.
        f.append(&[LeaseChange::Free {
            ip: Ipv4Addr::new(10, 0, 0, 5),
        }])
        .unwrap();
        drop(f);
        let (_f, t, rep) = LeaseFile::open(&dir, 0, 0).unwrap();
        assert_eq!(rep.records, 2);
        assert!(t.is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn appends_overwrite_zeros_and_extend_the_file_only_when_out_of_them() {
        let dir = tempdir("ahead");
        let (mut f, _, _) = LeaseFile::open(&dir, 0, 0).unwrap();
        let path = dir.join(FILE_NAME);
        let len = || fs::metadata(&path).unwrap().len();
        let start = len();
        assert_eq!(start, (HEADER.len() + 1) as u64 + AHEAD);
        f.append(&[lease([10, 0, 0, 5], b"a", 5000)]).unwrap();
        assert_eq!(len(), start, "an append inside the zeros keeps the size");
        // A burst bigger than the zeros left: the file grows once.
        let burst: Vec<_> = (0..5000u32)
            .map(|i| lease([10, 1, (i >> 8) as u8, i as u8], &i.to_be_bytes(), 5000))
            .collect();
        f.append(&burst).unwrap();
        let grown = len();
        assert!(grown > start, "{grown} <= {start}");
        f.append(&[lease([10, 0, 0, 6], b"b", 5000)]).unwrap();
        assert_eq!(len(), grown);
        drop(f);
        let (_f, t, rep) = LeaseFile::open(&dir, 0, 0).unwrap();
        assert_eq!((rep.records, rep.truncated), (5002, None));
        assert_eq!(t.len(), 5002);
        // Anything but zeros after the end is a corrupt tail, cut off.
        let mut text = fs::read(&path).unwrap();
        let end = text.iter().position(|&b| b == 0).unwrap();
        text.splice(end + 100..end + 103, *b"b 1");
        fs::write(&path, &text).unwrap();
        let (_f, t, rep) = LeaseFile::open(&dir, 0, 0).unwrap();
        assert_eq!(
            rep.truncated,
            Some((end as u64, "data after the end".into()))
        );
        assert_eq!(t.len(), 5002, "the records before the end are kept");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_version_is_an_error_not_a_wipe() {
        let dir = tempdir("version");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(FILE_NAME), "gopxe-leases 99\n").unwrap();
        let e = LeaseFile::open(&dir, 0, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            fs::read_to_string(dir.join(FILE_NAME)).unwrap(),
            "gopxe-leases 99\n"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
