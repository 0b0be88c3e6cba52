//! picoserve on smol: the `Socket` and `Timer` traits over `async-io`.
//!
//! Layer: driver (I/O). picoserve ships runtimes for tokio and embassy; this
//! adapts it to `async_io::Async<TcpStream>` and gopxe's coarse timers
//! (`super::coarse`). Writes
//! go through a per-connection buffer that is sent when it fills, before
//! the connection next reads (a response is complete by then) and on
//! shutdown. picoserve flushes after the headers and again after the body;
//! deferring both to the next read sends a small response in one segment
//! instead of two, which halves the send calls per request. TCP_NODELAY is
//! set on accept so that segment is not held back by Nagle's algorithm.
//! Status lines get their reason phrase on the way through
//! (`super::reason`: picoserve writes none). Reads after a response yield
//! to the other connections first (see
//! `ReadHalf::read`), so a busy keep-alive connection is served without
//! waiting on the reactor.
//!
//! A connection that is not kept alive ends in a lingering close: the
//! write side is shut, and what the client still sends is read and
//! dropped for at most [`LINGER`], so the kernel does not answer unread
//! bytes with a reset that could destroy the response in flight. A
//! connection marked [`ConnState::closing`] (a request refused for its
//! framing, whose body cannot be trusted) reads nothing more: the service
//! answers, and the connection closes without reading the body or parsing
//! anything read past the head.
//!
//! The socket works on any [`Stream`]: a TCP connection, or [`MemStream`],
//! a connection in memory for tests and fuzzing, whose reads hand out
//! given bytes and never wait.

use async_io::Async;
use futures_lite::AsyncWriteExt;
use picoserve::io::{BaseWrite, ErrorKind, ErrorType, Read, Write};
use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// How long a closing connection reads (and drops) what the client still
/// sends before it is closed.
const LINGER: Duration = Duration::from_secs(1);

/// The byte stream under a connection.
pub(super) trait Stream {
    /// Reads what has arrived, without waiting: `WouldBlock` when nothing
    /// has, `Ok(0)` at the end of the stream.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Waits until [`Stream::try_read`] would not block.
    async fn readable(&self) -> io::Result<()>;
    /// Writes some of `data`, waiting for room.
    async fn write(&self, data: &[u8]) -> io::Result<usize>;
    /// Ends the write side (the peer reads EOF once it has the rest).
    fn shutdown_write(&self);
}

impl Stream for Async<TcpStream> {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut self.get_ref(), buf)
    }

    async fn readable(&self) -> io::Result<()> {
        Async::readable(self).await
    }

    async fn write(&self, data: &[u8]) -> io::Result<usize> {
        AsyncWriteExt::write(&mut &*self, data).await
    }

    fn shutdown_write(&self) {
        let _ = self.get_ref().shutdown(Shutdown::Write);
    }
}

/// Reads, waiting until something has arrived.
async fn read<S: Stream>(stream: &S, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// Writes all of `data`.
async fn write_all<S: Stream>(stream: &S, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match stream.write(data).await {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A connection in memory, for tests and fuzzing: reads hand out `input`
/// at most `chunk` bytes at a time and then end (EOF); they never wait, so
/// nothing on such a connection ever waits for a timer. Writes are
/// appended to the output; after `shutdown_write` they fail.
pub(super) struct MemStream<'i> {
    input: Cell<&'i [u8]>,
    chunk: usize,
    output: RefCell<Vec<u8>>,
    write_shut: Cell<bool>,
}

impl<'i> MemStream<'i> {
    pub(super) fn new(input: &'i [u8], chunk: usize) -> Self {
        MemStream {
            input: Cell::new(input),
            chunk: chunk.max(1),
            output: RefCell::new(Vec::new()),
            write_shut: Cell::new(false),
        }
    }

    /// Everything written.
    pub(super) fn into_output(self) -> Vec<u8> {
        self.output.into_inner()
    }
}

impl Stream for MemStream<'_> {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let input = self.input.get();
        let n = input.len().min(buf.len()).min(self.chunk);
        let (now, rest) = input.split_at(n);
        if let Some(dst) = buf.get_mut(..n) {
            dst.copy_from_slice(now);
        }
        self.input.set(rest);
        Ok(n)
    }

    async fn readable(&self) -> io::Result<()> {
        Ok(())
    }

    async fn write(&self, data: &[u8]) -> io::Result<usize> {
        if self.write_shut.get() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.output.borrow_mut().extend_from_slice(data);
        Ok(data.len())
    }

    fn shutdown_write(&self) {
        self.write_shut.set(true);
    }
}

/// What a connection's service and socket share.
#[derive(Default)]
pub(super) struct ConnState {
    /// Set by the service when the last response keeps the connection
    /// alive: then `shutdown` leaves the connection open ("parks" it).
    pub keep_alive: Cell<bool>,
    /// Set by the service when the request's framing was refused: reads
    /// end (EOF) from then on, so nothing after the head is read; the
    /// session ends after the answer (`http::closing`), so what an earlier
    /// read brought in past the head is dropped unparsed; and the
    /// connection is closed.
    pub closing: Cell<bool>,
}

/// The runtime marker type for picoserve's generic `Server`.
pub(super) struct SmolRuntime;

/// A picoserve timer that never fires, for [`MemStream`] connections:
/// their reads and writes never wait, so no timeout can be due.
#[derive(Clone, Copy, Default)]
pub(super) struct NoTimer;

impl picoserve::Timer<SmolRuntime> for NoTimer {
    async fn delay(&self, _: picoserve::time::Duration) {
        std::future::pending::<()>().await;
    }
}

/// picoserve timer backed by [`super::coarse`] deadlines.
#[derive(Clone, Copy, Default)]
pub(super) struct SmolTimer;

impl picoserve::Timer<SmolRuntime> for SmolTimer {
    async fn delay(&self, duration: picoserve::time::Duration) {
        super::coarse::Deadline::after(std::time::Duration::from_millis(duration.as_millis()))
            .await;
    }
}

/// An `std::io::Error` as an embedded-io error.
#[derive(Debug)]
pub(super) struct IoError(pub io::Error);

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoError {}

impl picoserve::io::Error for IoError {
    fn kind(&self) -> ErrorKind {
        match self.0.kind() {
            io::ErrorKind::TimedOut => ErrorKind::TimedOut,
            io::ErrorKind::ConnectionReset => ErrorKind::ConnectionReset,
            _ => ErrorKind::Other,
        }
    }
}

/// The write buffer: allocated on the first write, grown as responses need
/// (up to the connection's capacity), reused while the client keeps the
/// connection busy and freed as soon as a read finds nothing to read. So a
/// busy keep-alive connection does not allocate per response and an idle
/// one holds no buffer.
///
/// picoserve formats into an initialised slice: the bytes past `len` are
/// initialised (zeroed) once, when the buffer grows, rather than the whole
/// spare room again for every header line.
#[derive(Default)]
pub(super) struct WriteBuf {
    bytes: Vec<u8>,
    len: usize,
}

impl WriteBuf {
    fn len(&self) -> usize {
        self.len
    }

    fn filled(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// At least `n` writable bytes after the filled part.
    fn spare(&mut self, n: usize) -> &mut [u8] {
        let need = self.len + n;
        if self.bytes.is_empty() {
            self.bytes = vec![0; need.max(2 * MIN_SPARE)];
        } else if self.bytes.len() < need {
            let grown = need.max(2 * self.bytes.len());
            self.bytes.resize(grown, 0);
        }
        self.bytes.get_mut(self.len..).unwrap_or_default()
    }

    fn extend(&mut self, data: &[u8]) {
        if let Some(dst) = self.spare(data.len()).get_mut(..data.len()) {
            dst.copy_from_slice(data);
            self.len += data.len();
        }
    }
}

/// Room kept free for picoserve to format one header line into. picoserve
/// retries a format that does not fit after a `flush`, so `flush` drains
/// whenever less than this is free: a header line shorter than this always
/// fits after a flush (gopxe's are well under 200 bytes).
const MIN_SPARE: usize = 1024;

/// One picoserve session on a connection: the stream (owned by the
/// connection task, which may start several sessions on it, see
/// `http::serve_connection`) and the write buffer.
pub(super) struct SmolSocket<'s, S: Stream> {
    stream: &'s S,
    wbuf: RefCell<WriteBuf>,
    capacity: usize,
    state: &'s ConnState,
}

impl<'s, S: Stream> SmolSocket<'s, S> {
    pub(super) fn new(stream: &'s S, write_buffer: usize, state: &'s ConnState) -> Self {
        SmolSocket {
            stream,
            wbuf: RefCell::new(WriteBuf::default()),
            capacity: write_buffer.max(2 * MIN_SPARE),
            state,
        }
    }
}

/// Sends whatever is buffered and returns whether there was anything. The
/// buffer is taken out of the cell for the duration of the write, so no
/// borrow is held across an `.await`, and put back empty afterwards.
async fn drain<S: Stream>(stream: &S, cell: &RefCell<WriteBuf>) -> Result<bool, IoError> {
    if cell.borrow().len() == 0 {
        return Ok(false);
    }
    let mut data = cell.take();
    write_all(stream, data.filled()).await.map_err(IoError)?;
    data.len = 0;
    cell.replace(data);
    Ok(true)
}

/// Read half: sends any pending response before it waits for input.
pub(super) struct ReadHalf<'a, S: Stream> {
    stream: &'a S,
    buf: &'a RefCell<WriteBuf>,
    closing: &'a Cell<bool>,
}

/// Write half with its buffer.
pub(super) struct WriteHalf<'a, S: Stream> {
    stream: &'a S,
    buf: &'a RefCell<WriteBuf>,
    capacity: usize,
}

impl<S: Stream> ErrorType for ReadHalf<'_, S> {
    type Error = IoError;
}

impl<S: Stream> Read for ReadHalf<'_, S> {
    /// Sends the pending response, then reads. Right after a response the
    /// client cannot have sent its next request yet, so the task first
    /// yields: the executor runs the other ready connections, and by the
    /// time this one tries `recv` a busy client has usually answered. Under
    /// load a keep-alive request then costs one `recv` and one `send`, with
    /// no readiness wait and so no re-arm of the one-shot registration
    /// (`benches/http.sh`: 0.03 `epoll_ctl` per request instead of 1). A
    /// failed `recv` is followed by a wait, never by a second try.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        if self.closing.get() {
            return Ok(0);
        }
        if drain(self.stream, self.buf).await? {
            futures_lite::future::yield_now().await;
        }
        loop {
            match self.stream.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Idle until the client writes: hold no write buffer
                    // meanwhile (it is empty, having just been drained).
                    if self.buf.borrow().len() == 0 {
                        self.buf.take();
                    }
                    self.stream.readable().await.map_err(IoError)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r.map_err(IoError),
            }
        }
    }
}

impl<S: Stream> ErrorType for WriteHalf<'_, S> {
    type Error = IoError;
}

impl<S: Stream> WriteHalf<'_, S> {
    fn free(&self) -> usize {
        self.capacity.saturating_sub(self.buf.borrow().len())
    }
}

impl<S: Stream> BaseWrite for WriteHalf<'_, S> {
    async fn write(&mut self, data: &[u8]) -> Result<usize, IoError> {
        if data.len() > self.free() {
            drain(self.stream, self.buf).await?;
        }
        if data.len() >= self.capacity {
            return self.stream.write(data).await.map_err(IoError);
        }
        self.buf.borrow_mut().extend(data);
        Ok(data.len())
    }

    /// Deferred: the buffer goes out when it fills, before the next read,
    /// or at shutdown (see the module docs); here only when less than
    /// [`MIN_SPARE`] is free.
    async fn flush(&mut self) -> Result<(), IoError> {
        if self.free() < MIN_SPARE {
            drain(self.stream, self.buf).await?;
        }
        Ok(())
    }
}

impl<S: Stream> Write for WriteHalf<'_, S> {
    async fn write_with<F: FnOnce(picoserve::mem::BorrowedCursor<'_>) -> R, R>(
        &mut self,
        f: F,
    ) -> Result<R, IoError> {
        if self.free() < MIN_SPARE {
            drain(self.stream, self.buf).await?;
        }
        let mut b = self.buf.borrow_mut();
        let (out, n) = {
            let mut bb = picoserve::mem::BorrowedBuffer::new(b.spare(MIN_SPARE));
            let out = f(bb.unfilled());
            (out, bb.filled().len())
        };
        let start = b.len;
        b.len += n;
        // picoserve's status line has no reason phrase: add it.
        let written = b.bytes.get(start..b.len).unwrap_or_default();
        if let Some(phrase) = super::reason::completed(written) {
            b.len -= 2;
            b.extend(phrase.as_bytes());
            b.extend(b"\r\n");
        }
        Ok(out)
    }
}

impl<S: Stream> picoserve::io::Socket<SmolRuntime> for SmolSocket<'_, S> {
    type Error = IoError;
    type ReadHalf<'a>
        = ReadHalf<'a, S>
    where
        Self: 'a;
    type WriteHalf<'a>
        = WriteHalf<'a, S>
    where
        Self: 'a;

    fn split(&mut self) -> (ReadHalf<'_, S>, WriteHalf<'_, S>) {
        (
            ReadHalf {
                stream: self.stream,
                buf: &self.wbuf,
                closing: &self.state.closing,
            },
            WriteHalf {
                stream: self.stream,
                buf: &self.wbuf,
                capacity: self.capacity,
            },
        )
    }

    /// Sends what is buffered (e.g. picoserve's 400 for a malformed
    /// request), then closes with a linger; the connection task drops the
    /// stream.
    async fn abort<T: picoserve::Timer<SmolRuntime>>(
        self,
        timeouts: &picoserve::Timeouts,
        timer: &T,
    ) -> Result<(), picoserve::Error<IoError>> {
        self.state.keep_alive.set(false);
        let _ = timer
            .run_with_timeout(timeouts.write, drain(self.stream, &self.wbuf))
            .await;
        linger(self.stream, timer).await;
        Ok(())
    }

    async fn shutdown<T: picoserve::Timer<SmolRuntime>>(
        self,
        timeouts: &picoserve::Timeouts,
        timer: &T,
    ) -> Result<(), picoserve::Error<IoError>> {
        let sent = timer
            .run_with_timeout(timeouts.write, drain(self.stream, &self.wbuf))
            .await;
        if !matches!(sent, Ok(Ok(_))) || self.state.closing.get() {
            self.state.keep_alive.set(false);
        }
        if self.state.keep_alive.get() {
            // Idle after a keep-alive response: park, don't close.
            return Ok(());
        }
        linger(self.stream, timer).await;
        Ok(())
    }
}

/// The lingering close (see the module docs): shut the write side, then
/// read and drop what the client still sends, at most 64 KiB for at most
/// [`LINGER`].
async fn linger<S: Stream, T: picoserve::Timer<SmolRuntime>>(stream: &S, timer: &T) {
    stream.shutdown_write();
    let mut scratch = [0u8; 1024];
    let _ = timer
        .run_with_timeout(
            picoserve::time::Duration::from_millis(LINGER.as_millis() as u64),
            async {
                for _ in 0..64 {
                    match read(stream, &mut scratch).await {
                        Ok(n) if n > 0 => continue,
                        _ => break,
                    }
                }
            },
        )
        .await;
}
