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
//! last field is the FNV-1a 32-bit hash of the rest of the line. The
//! records are encoded, parsed and replayed by the pure
//! `gopxe_proto::dhcp::leaselog`; this module does the file's I/O.
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
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::lease::{LeaseChange, LeaseTable, Now};
pub use super::leaselog::LoadReport;
use super::leaselog::{record, replay, snapshot};

const FILE_NAME: &str = "leases";
/// Free space (zeros) written ahead of the records, this much at a time.
const AHEAD: u64 = 256 * 1024;

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
            Ok(text) => replay(&text, &mut table)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
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
        let text = snapshot(table);
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
    use crate::dhcp::leaselog::HEADER;
    use std::net::Ipv4Addr;

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

    use gopxe_proto::dhcp::leaselog::testing::lease;

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
