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
//! Reads after a response yield to the other connections first (see
//! `ReadHalf::read`), so a busy keep-alive connection is served without
//! waiting on the reactor.
//!
//! A connection that is not kept alive ends in a lingering close: the
//! write side is shut, and what the client still sends is read and
//! dropped for at most [`LINGER`], so the kernel does not answer unread
//! bytes with a reset that could destroy the response in flight.
//!
//! A request refused for its framing ([`Closing`]) must be the last one:
//! the bytes after its head cannot be trusted to be its body, and may hold
//! a smuggled request, already in picoserve's buffer. The service marks
//! the connection [`Closing::Eof`] (picoserve's drain of the unread body
//! ends at once, nothing more is read), then [`Closing::Hold`] and sends
//! its answer as a picoserve custom response: that response's wait for
//! the client to disconnect marks picoserve's connection upgraded, so it
//! parses nothing more from its buffer, and the read under that wait never
//! completes, so the answer is written in full first. The connection then
//! closes with a linger.

use async_io::Async;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use picoserve::io::{BaseWrite, ErrorKind, ErrorType, Read, Write};
use std::cell::{Cell, RefCell};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// How long a closing connection reads (and drops) what the client still
/// sends before it is closed.
const LINGER: Duration = Duration::from_secs(1);

/// How a connection whose last request was refused for its framing
/// reads (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Closing {
    /// Not closing: reads read.
    #[default]
    No,
    /// Reads end at once (EOF): the body is never read.
    Eof,
    /// Reads never complete: the answer is written, then the connection
    /// closes.
    Hold,
}

/// What a connection's service and socket share.
#[derive(Default)]
pub struct ConnState {
    /// Set by the service when the last response keeps the connection
    /// alive: then `shutdown` leaves the connection open ("parks" it).
    pub keep_alive: Cell<bool>,
    /// Set by the service when the request's framing was refused.
    pub closing: Cell<Closing>,
}

impl ConnState {
    pub fn is_closing(&self) -> bool {
        self.closing.get() != Closing::No
    }
}

/// The runtime marker type for picoserve's generic `Server`.
pub struct SmolRuntime;

/// picoserve timer backed by [`super::coarse`] deadlines.
#[derive(Clone, Copy, Default)]
pub struct SmolTimer;

impl picoserve::Timer<SmolRuntime> for SmolTimer {
    async fn delay(&self, duration: picoserve::time::Duration) {
        super::coarse::Deadline::after(std::time::Duration::from_millis(duration.as_millis()))
            .await;
    }
}

/// An `std::io::Error` as an embedded-io error.
#[derive(Debug)]
pub struct IoError(pub std::io::Error);

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoError {}

impl picoserve::io::Error for IoError {
    fn kind(&self) -> ErrorKind {
        match self.0.kind() {
            std::io::ErrorKind::TimedOut => ErrorKind::TimedOut,
            std::io::ErrorKind::ConnectionReset => ErrorKind::ConnectionReset,
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
pub struct WriteBuf {
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
pub struct SmolSocket<'s> {
    stream: &'s Async<TcpStream>,
    wbuf: RefCell<WriteBuf>,
    capacity: usize,
    state: &'s ConnState,
}

impl<'s> SmolSocket<'s> {
    pub fn new(stream: &'s Async<TcpStream>, write_buffer: usize, state: &'s ConnState) -> Self {
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
async fn drain(stream: &Async<TcpStream>, cell: &RefCell<WriteBuf>) -> Result<bool, IoError> {
    if cell.borrow().len() == 0 {
        return Ok(false);
    }
    let mut data = cell.take();
    let mut s = stream;
    s.write_all(data.filled()).await.map_err(IoError)?;
    data.len = 0;
    cell.replace(data);
    Ok(true)
}

/// Read half: sends any pending response before it waits for input.
pub struct ReadHalf<'a> {
    stream: &'a Async<TcpStream>,
    buf: &'a RefCell<WriteBuf>,
    closing: &'a Cell<Closing>,
}

/// Write half with its buffer.
pub struct WriteHalf<'a> {
    stream: &'a Async<TcpStream>,
    buf: &'a RefCell<WriteBuf>,
    capacity: usize,
}

impl ErrorType for ReadHalf<'_> {
    type Error = IoError;
}

impl Read for ReadHalf<'_> {
    /// Sends the pending response, then reads. Right after a response the
    /// client cannot have sent its next request yet, so the task first
    /// yields: the executor runs the other ready connections, and by the
    /// time this one tries `recv` a busy client has usually answered. Under
    /// load a keep-alive request then costs one `recv` and one `send`, with
    /// no readiness wait and so no re-arm of the one-shot registration
    /// (`benches/http.sh`: 0.03 `epoll_ctl` per request instead of 1). A
    /// failed `recv` is followed by a wait, never by a second try.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        match self.closing.get() {
            Closing::No => {}
            Closing::Eof => return Ok(0),
            Closing::Hold => return std::future::pending().await,
        }
        if drain(self.stream, self.buf).await? {
            futures_lite::future::yield_now().await;
        }
        loop {
            match std::io::Read::read(&mut self.stream.get_ref(), buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // Idle until the client writes: hold no write buffer
                    // meanwhile (it is empty, having just been drained).
                    if self.buf.borrow().len() == 0 {
                        self.buf.take();
                    }
                    self.stream.readable().await.map_err(IoError)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => return r.map_err(IoError),
            }
        }
    }
}

impl ErrorType for WriteHalf<'_> {
    type Error = IoError;
}

impl WriteHalf<'_> {
    fn free(&self) -> usize {
        self.capacity.saturating_sub(self.buf.borrow().len())
    }
}

impl BaseWrite for WriteHalf<'_> {
    async fn write(&mut self, data: &[u8]) -> Result<usize, IoError> {
        if data.len() > self.free() {
            drain(self.stream, self.buf).await?;
        }
        if data.len() >= self.capacity {
            let mut s = self.stream;
            return s.write(data).await.map_err(IoError);
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

impl Write for WriteHalf<'_> {
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
        b.len += n;
        Ok(out)
    }
}

impl picoserve::io::Socket<SmolRuntime> for SmolSocket<'_> {
    type Error = IoError;
    type ReadHalf<'a>
        = ReadHalf<'a>
    where
        Self: 'a;
    type WriteHalf<'a>
        = WriteHalf<'a>
    where
        Self: 'a;

    fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
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
        if !matches!(sent, Ok(Ok(_))) || self.state.is_closing() {
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
async fn linger<T: picoserve::Timer<SmolRuntime>>(stream: &Async<TcpStream>, timer: &T) {
    let _ = stream.get_ref().shutdown(Shutdown::Write);
    let mut scratch = [0u8; 1024];
    let mut s = stream;
    let _ = timer
        .run_with_timeout(
            picoserve::time::Duration::from_millis(LINGER.as_millis() as u64),
            async {
                for _ in 0..64 {
                    match s.read(&mut scratch).await {
                        Ok(n) if n > 0 => continue,
                        _ => break,
                    }
                }
            },
        )
        .await;
}
