//! What a transfer sends, and how its bytes are read: from memory, or from
//! a file with positional reads of [`READ_CHUNK`] bytes at a time.
//!
//! Layer: driver (file I/O), used by the data thread ([`super`]) to answer
//! the core's read requests, and to read ahead after a send.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Read-ahead size for files when the window needs less.
pub const READ_CHUNK: usize = 64 * 1024;

/// What a transfer sends.
pub enum Content {
    Memory(Vec<u8>),
    File(File),
}

/// Supplies the core's read requests from memory or from a file.
pub(super) enum Reader {
    Memory(Vec<u8>),
    File(ReadAhead),
}

/// A file read [`READ_CHUNK`] bytes (or one request, when larger) at a
/// time.
pub(super) struct ReadAhead {
    file: File,
    buf: Vec<u8>,
    /// Source offset of `buf[0]`.
    start: u64,
    /// `buf` ends at end of file.
    eof: bool,
    /// Offset and length of the request expected next: right after the
    /// last one, as long.
    next: u64,
    next_len: usize,
}

impl Reader {
    pub(super) fn new(content: Content) -> Reader {
        match content {
            Content::Memory(v) => Reader::Memory(v),
            Content::File(file) => Reader::File(ReadAhead {
                file,
                buf: Vec::new(),
                start: 0,
                eof: false,
                next: 0,
                next_len: 0,
            }),
        }
    }

    pub(super) fn read(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        match self {
            Reader::Memory(v) => Ok(part(v, offset, len)),
            Reader::File(f) => {
                if !f.covers(offset, len) {
                    f.fill(offset, len)?;
                }
                f.next = offset.saturating_add(len as u64);
                f.next_len = len;
                Ok(part(&f.buf, offset - f.start, len))
            }
        }
    }

    /// Refill the read-ahead now if the expected next request would miss
    /// it. Called after a send, so the read overlaps the round trip
    /// instead of delaying the answer to the next ACK. A failed read is
    /// left for that request to report.
    pub(super) fn prefetch(&mut self) {
        if let Reader::File(f) = self
            && f.next_len > 0
            && !f.covers(f.next, f.next_len)
            && f.fill(f.next, f.next_len).is_err()
        {
            f.buf.clear();
            f.eof = false;
        }
    }
}

/// Up to `len` bytes of `data` from `from`, clamped to its end.
fn part(data: &[u8], from: u64, len: usize) -> &[u8] {
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(data.len());
    let to = from.saturating_add(len).min(data.len());
    data.get(from..to).unwrap_or_default()
}

impl ReadAhead {
    /// Whether the read-ahead answers `len` bytes at `offset`.
    fn covers(&self, offset: u64, len: usize) -> bool {
        let buf_end = self.start + self.buf.len() as u64;
        offset >= self.start && (offset.saturating_add(len as u64) <= buf_end || self.eof)
    }

    /// Read [`READ_CHUNK`] bytes (or `len`, when larger) at `offset`.
    fn fill(&mut self, offset: u64, len: usize) -> io::Result<()> {
        let want = len.max(READ_CHUNK);
        self.buf.resize(want, 0);
        let n = read_full(&self.file, offset, &mut self.buf)?;
        self.buf.truncate(n);
        self.start = offset;
        self.eof = n < want;
        Ok(())
    }
}

/// Fill `buf` from `offset`, stopping early only at end of file.
fn read_full(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..) {
        if rest.is_empty() {
            break;
        }
        match file.read_at(rest, offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reader_clamps() {
        let mut r = Reader::new(Content::Memory(b"hello".to_vec()));
        assert_eq!(r.read(0, 3).ok(), Some(&b"hel"[..]));
        assert_eq!(r.read(3, 10).ok(), Some(&b"lo"[..]));
        assert_eq!(r.read(99, 10).ok(), Some(&b""[..]));
    }

    #[test]
    fn file_reader_prefetches_the_next_chunk_only_when_it_would_miss() {
        let path = std::env::temp_dir().join(format!("gopxe-pump-{}", std::process::id()));
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let file = File::open(&path).expect("open");
        let _ = std::fs::remove_file(&path);
        let mut r = Reader::new(Content::File(file));
        let start_of = |r: &Reader| match r {
            Reader::File(f) => f.start,
            Reader::Memory(_) => u64::MAX,
        };
        assert_eq!(r.read(0, 30_000).ok(), Some(&data[..30_000]));
        r.prefetch(); // 30_000..60_000 is in the first chunk
        assert_eq!(start_of(&r), 0);
        assert_eq!(r.read(30_000, 30_000).ok(), Some(&data[30_000..60_000]));
        r.prefetch(); // 60_000..90_000 is not: read it now
        assert_eq!(start_of(&r), 60_000);
        assert_eq!(r.read(60_000, 30_000).ok(), Some(&data[60_000..90_000]));
        assert_eq!(start_of(&r), 60_000);
        // The short read at the end of the file.
        assert_eq!(r.read(120_000, 40_000).ok(), Some(&data[120_000..]));
        r.prefetch();
        assert_eq!(r.read(150_000, 40_000).ok(), Some(&b""[..]));
    }
}
