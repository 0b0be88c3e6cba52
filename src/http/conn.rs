//! picoserve on smol: the `Socket` and `Timer` traits over `async-io`.
//!
//! Layer: driver (I/O). picoserve ships runtimes for tokio and embassy; this
//! adapts it to `async_io::Async<TcpStream>` and `async_io::Timer`. Writes
//! go through a per-connection buffer that is flushed when picoserve flushes
//! (end of headers, end of body) or when it fills, so a response leaves in
//! few segments; TCP_NODELAY is set on accept so the last segment is not
//! held back by Nagle's algorithm waiting for a delayed ACK.

use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use picoserve::io::{BaseWrite, ErrorKind, ErrorType, Read, Write};
use std::net::{Shutdown, TcpStream};

/// The runtime marker type for picoserve's generic `Server`.
pub struct SmolRuntime;

/// picoserve timer backed by `async_io::Timer`.
#[derive(Clone, Copy, Default)]
pub struct SmolTimer;

impl picoserve::Timer<SmolRuntime> for SmolTimer {
    async fn delay(&self, duration: picoserve::time::Duration) {
        Timer::after(std::time::Duration::from_millis(duration.as_millis())).await;
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

/// A connection: the stream and its write buffer.
pub struct SmolSocket {
    stream: Async<TcpStream>,
    wbuf: Vec<u8>,
}

impl SmolSocket {
    /// Wraps an accepted stream, setting TCP_NODELAY.
    pub fn new(stream: Async<TcpStream>, write_buffer: usize) -> Self {
        let _ = stream.get_ref().set_nodelay(true);
        SmolSocket {
            stream,
            wbuf: Vec::with_capacity(write_buffer),
        }
    }
}

/// Read half.
pub struct ReadHalf<'a>(&'a Async<TcpStream>);

/// Write half with its buffer.
pub struct WriteHalf<'a> {
    stream: &'a Async<TcpStream>,
    buf: &'a mut Vec<u8>,
}

impl ErrorType for ReadHalf<'_> {
    type Error = IoError;
}

impl Read for ReadHalf<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        let mut s = self.0;
        s.read(buf).await.map_err(IoError)
    }
}

impl ErrorType for WriteHalf<'_> {
    type Error = IoError;
}

impl WriteHalf<'_> {
    async fn drain(&mut self) -> Result<(), IoError> {
        if !self.buf.is_empty() {
            let mut s = self.stream;
            s.write_all(self.buf).await.map_err(IoError)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl BaseWrite for WriteHalf<'_> {
    async fn write(&mut self, data: &[u8]) -> Result<usize, IoError> {
        let room = self.buf.capacity() - self.buf.len();
        if data.len() > room {
            self.drain().await?;
        }
        if data.len() >= self.buf.capacity() {
            let mut s = self.stream;
            return s.write(data).await.map_err(IoError);
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    async fn flush(&mut self) -> Result<(), IoError> {
        self.drain().await
    }
}

impl Write for WriteHalf<'_> {
    async fn write_with<F: FnOnce(picoserve::mem::BorrowedCursor<'_>) -> R, R>(
        &mut self,
        f: F,
    ) -> Result<R, IoError> {
        if self.buf.len() == self.buf.capacity() {
            self.drain().await?;
        }
        let start = self.buf.len();
        let cap = self.buf.capacity();
        self.buf.resize(cap, 0);
        let (out, filled) = {
            let spare = self.buf.get_mut(start..).unwrap_or_default();
            let mut b = picoserve::mem::BorrowedBuffer::new(spare);
            let out = f(b.unfilled());
            (out, b.filled().len())
        };
        self.buf.truncate(start + filled);
        Ok(out)
    }
}

impl picoserve::io::Socket<SmolRuntime> for SmolSocket {
    type Error = IoError;
    type ReadHalf<'a> = ReadHalf<'a>;
    type WriteHalf<'a> = WriteHalf<'a>;

    fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (
            ReadHalf(&self.stream),
            WriteHalf {
                stream: &self.stream,
                buf: &mut self.wbuf,
            },
        )
    }

    async fn abort<T: picoserve::Timer<SmolRuntime>>(
        self,
        _timeouts: &picoserve::Timeouts,
        _timer: &T,
    ) -> Result<(), picoserve::Error<IoError>> {
        Ok(())
    }

    async fn shutdown<T: picoserve::Timer<SmolRuntime>>(
        self,
        timeouts: &picoserve::Timeouts,
        timer: &T,
    ) -> Result<(), picoserve::Error<IoError>> {
        let _ = self.stream.get_ref().shutdown(Shutdown::Write);
        let mut scratch = [0u8; 128];
        let mut s = &self.stream;
        // Drain what the client still sends, bounded by the read timeout.
        for _ in 0..64 {
            match timer
                .run_with_timeout(timeouts.read_request, s.read(&mut scratch))
                .await
            {
                Ok(Ok(n)) if n > 0 => continue,
                _ => break,
            }
        }
        Ok(())
    }
}
