//! The TFTP driver: smol sockets, timers and files around the sans-I/O
//! [`Transfer`] core (RFC 1350 §4: one new TID, i.e. one ephemeral UDP port,
//! per transfer).
//!
//! [`serve`] reads requests on the listening socket. A read request is
//! checked ([`sanitize`]), opened through a [`FileProvider`], and run in its
//! own task on a `LocalExecutor` owned by `serve` (so nothing here needs to
//! be `Send`; run `serve` on any executor, or on its own thread with
//! `smol::block_on`). Each transfer binds a socket to the listening
//! address's IP, port 0. Refused: write requests (error 2), names that fail
//! [`sanitize`] (error 2), missing files (error 1), requests past
//! [`ServerConfig::max_transfers`] (error 0 "server busy"). A repeated RRQ
//! from the same client port for the same file while its transfer runs is
//! ignored. Packets from a foreign TID get error 5 and are otherwise ignored.
//!
//! Files are read in chunks with positional reads (`FileExt::read_at`) on
//! the blocking thread pool (`smol::unblock`), at most [`READ_CHUNK`] bytes
//! or one window ahead; never whole.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::future;
use log::{debug, info, warn};
use smol::LocalExecutor;

use super::path::{RelativePath, sanitize};
use super::transfer::{Outcome, Transfer, TransferConfig, netascii_len};
use super::wire::{ErrorCode, Mode, Packet, Request, error_packet};

/// Read-ahead size for files when the window needs less.
pub const READ_CHUNK: usize = 64 * 1024;

/// Driver settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub transfer: TransferConfig,
    /// Transfers running at once; requests past it get "server busy".
    pub max_transfers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            transfer: TransferConfig::default(),
            max_transfers: 128,
        }
    }
}

/// What a name resolves to.
pub enum Source {
    /// Generated content (boot configs), served from memory.
    Virtual(Vec<u8>),
    /// An open regular file and its length.
    File { file: File, len: u64 },
}

/// Why a name could not be opened.
#[derive(Debug)]
pub enum OpenError {
    NotFound,
    AccessDenied,
    Io(io::Error),
}

/// The hook that turns a checked name into content, per client.
pub trait FileProvider {
    fn open(&self, path: &RelativePath, client: SocketAddr) -> Result<Source, OpenError>;
}

/// Serves regular files under one directory. Symlinks are followed only
/// while they stay inside it: the full path is canonicalised and must start
/// with the canonical root.
#[derive(Debug, Clone)]
pub struct ImagesRoot {
    root: PathBuf,
}

impl ImagesRoot {
    pub fn new(root: impl AsRef<Path>) -> io::Result<ImagesRoot> {
        Ok(ImagesRoot {
            root: root.as_ref().canonicalize()?,
        })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl FileProvider for ImagesRoot {
    fn open(&self, path: &RelativePath, _client: SocketAddr) -> Result<Source, OpenError> {
        let canonical = path.under(&self.root).canonicalize().map_err(io_error)?;
        if !canonical.starts_with(&self.root) {
            return Err(OpenError::AccessDenied);
        }
        let file = File::open(&canonical).map_err(io_error)?;
        let meta = file.metadata().map_err(io_error)?;
        if !meta.is_file() {
            return Err(OpenError::NotFound);
        }
        Ok(Source::File {
            file,
            len: meta.len(),
        })
    }
}

fn io_error(e: io::Error) -> OpenError {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => OpenError::NotFound,
        io::ErrorKind::PermissionDenied => OpenError::AccessDenied,
        _ => OpenError::Io(e),
    }
}

/// A provider that asks `lookup` first (virtual files such as
/// `pxelinux.cfg/01-<mac>`) and falls back to `inner`.
pub struct WithVirtual<F, P> {
    pub lookup: F,
    pub inner: P,
}

impl<F, P> FileProvider for WithVirtual<F, P>
where
    F: Fn(&RelativePath, SocketAddr) -> Option<Vec<u8>>,
    P: FileProvider,
{
    fn open(&self, path: &RelativePath, client: SocketAddr) -> Result<Source, OpenError> {
        match (self.lookup)(path, client) {
            Some(content) => Ok(Source::Virtual(content)),
            None => self.inner.open(path, client),
        }
    }
}

/// One finished (or refused) request.
#[derive(Debug, Clone)]
pub struct TransferReport {
    /// The checked name, or the raw name (lossy) when it was refused.
    pub file: String,
    pub client: SocketAddr,
    /// Payload bytes the client acknowledged.
    pub bytes: u64,
    pub blocks: u64,
    pub retransmissions: u64,
    pub blksize: u16,
    pub windowsize: u16,
    pub duration: Duration,
    pub outcome: Outcome,
}

struct Shared<P, R> {
    cfg: ServerConfig,
    provider: P,
    on_report: R,
    local_ip: std::net::IpAddr,
    /// (client, file) of running transfers.
    active: RefCell<HashSet<(SocketAddr, String)>>,
}

impl<P, R: Fn(&TransferReport)> Shared<P, R> {
    fn report(&self, report: TransferReport) {
        match &report.outcome {
            Outcome::Completed => info!(
                "tftp {} {}: sent {} bytes in {} ms (blksize {}, windowsize {}, {} retransmissions)",
                report.client,
                report.file,
                report.bytes,
                report.duration.as_millis(),
                report.blksize,
                report.windowsize,
                report.retransmissions
            ),
            outcome => info!(
                "tftp {} {}: {} after {} bytes",
                report.client, report.file, outcome, report.bytes
            ),
        }
        (self.on_report)(&report);
    }

    fn refused(&self, file: String, client: SocketAddr, code: ErrorCode, message: &str) {
        self.report(TransferReport {
            file,
            client,
            bytes: 0,
            blocks: 0,
            retransmissions: 0,
            blksize: 0,
            windowsize: 0,
            duration: Duration::ZERO,
            outcome: Outcome::Refused {
                code: code.to_u16(),
                message: message.to_owned(),
            },
        });
    }
}

/// Serve TFTP read requests arriving on `socket`; returns only on an I/O
/// error that makes the socket unusable.
/// `on_report` sees every finished or refused request (after it is logged).
pub async fn serve<P, R>(
    socket: Async<UdpSocket>,
    cfg: ServerConfig,
    provider: P,
    on_report: R,
) -> io::Result<()>
where
    P: FileProvider + 'static,
    R: Fn(&TransferReport) + 'static,
{
    let shared = Rc::new(Shared {
        cfg,
        provider,
        on_report,
        local_ip: socket.get_ref().local_addr()?.ip(),
        active: RefCell::new(HashSet::new()),
    });
    // The request loop is a task of its own: the future handed to `run` is
    // polled on every wake-up of the executor (each packet of each
    // transfer), which would retry the listening socket each time.
    let ex = Rc::new(LocalExecutor::new());
    let spawner = ex.clone();
    let requests = ex.spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, peer) = match socket.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) if transient(&e) => {
                    debug!("tftp: recv on listening socket: {e}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let datagram = buf.get(..n).unwrap_or_default();
            if let Some(reply) = on_request(&spawner, &shared, datagram, peer)
                && let Err(e) = socket.send_to(&reply, peer).await
            {
                debug!("tftp: send to {peer}: {e}");
            }
        }
    });
    ex.run(requests).await
}

/// Errors a UDP socket can report for one datagram (e.g. an ICMP error for
/// an earlier send) that do not make the socket unusable.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The largest block size a path MTU carries without IP fragmentation:
/// MTU - 20 (IPv4) - 8 (UDP) - 4 (TFTP header), within 8..=65464. Set
/// [`TransferConfig::max_blksize`] from it where the interface MTU is known.
pub fn blksize_for_mtu(mtu: u32) -> u16 {
    let b = mtu.saturating_sub(32).clamp(8, 65464);
    u16::try_from(b).unwrap_or(65464)
}

/// Handle one datagram on the listening socket; returns an ERROR to send
/// from it, if any.
fn on_request<P, R>(
    ex: &LocalExecutor<'_>,
    shared: &Rc<Shared<P, R>>,
    datagram: &[u8],
    peer: SocketAddr,
) -> Option<Vec<u8>>
where
    P: FileProvider + 'static,
    R: Fn(&TransferReport) + 'static,
{
    let request = match Packet::decode(datagram) {
        Ok(Packet::Rrq(r)) => r,
        Ok(Packet::Wrq(r)) => {
            let name = String::from_utf8_lossy(r.filename).into_owned();
            let msg = "write requests are not supported";
            shared.refused(name, peer, ErrorCode::AccessViolation, msg);
            return Some(error_packet(ErrorCode::AccessViolation, msg));
        }
        Ok(other) => {
            debug!("tftp: {peer}: unexpected packet on the request port: {other:?}");
            return None;
        }
        Err(e) => {
            debug!("tftp: {peer}: bad packet: {e}");
            // A request we cannot parse still deserves an answer.
            let is_request = matches!(datagram, [0, 1 | 2, ..]);
            return is_request
                .then(|| error_packet(ErrorCode::IllegalOperation, "malformed request"));
        }
    };
    let raw_name = || String::from_utf8_lossy(request.filename).into_owned();
    let path = match sanitize(request.filename) {
        Ok(p) => p,
        Err(e) => {
            let msg = e.to_string();
            shared.refused(raw_name(), peer, ErrorCode::AccessViolation, &msg);
            return Some(error_packet(ErrorCode::AccessViolation, &msg));
        }
    };
    let key = (peer, path.as_str().to_owned());
    if shared.active.borrow().contains(&key) {
        debug!("tftp: {peer}: duplicate request for {path} ignored");
        return None;
    }
    if shared.active.borrow().len() >= shared.cfg.max_transfers {
        let msg = "server busy, try again later";
        warn!("tftp: {peer}: {path} refused: {msg}");
        shared.refused(path.to_string(), peer, ErrorCode::NotDefined, msg);
        return Some(error_packet(ErrorCode::NotDefined, msg));
    }
    match start_transfer(ex, shared, &request, path.clone(), peer) {
        Ok(()) => None,
        Err((code, msg)) => {
            shared.refused(path.to_string(), peer, code, msg);
            Some(error_packet(code, msg))
        }
    }
}

/// Open the file, negotiate, bind the transfer's socket and spawn its task.
fn start_transfer<P, R>(
    ex: &LocalExecutor<'_>,
    shared: &Rc<Shared<P, R>>,
    request: &Request<'_>,
    path: RelativePath,
    peer: SocketAddr,
) -> Result<(), (ErrorCode, &'static str)>
where
    P: FileProvider + 'static,
    R: Fn(&TransferReport) + 'static,
{
    let source = shared.provider.open(&path, peer).map_err(|e| match e {
        OpenError::NotFound => (ErrorCode::FileNotFound, "file not found"),
        OpenError::AccessDenied => (ErrorCode::AccessViolation, "access violation"),
        OpenError::Io(e) => {
            warn!("tftp: open {path}: {e}");
            (ErrorCode::NotDefined, "cannot open file")
        }
    })?;
    let tsize = match (&source, request.mode) {
        (Source::Virtual(v), Mode::NetAscii) => Some(netascii_len(v)),
        (Source::Virtual(v), _) => Some(v.len() as u64),
        (Source::File { len, .. }, Mode::Octet) => Some(*len),
        // The exact netascii size of a file would need a full read.
        (Source::File { .. }, _) => None,
    };
    let t = Transfer::new(request.mode, &request.options, tsize, &shared.cfg.transfer)?;
    let sock = Async::<UdpSocket>::bind(SocketAddr::new(shared.local_ip, 0)).map_err(|e| {
        warn!("tftp: cannot bind a transfer socket: {e}");
        (ErrorCode::NotDefined, "no transfer socket")
    })?;
    debug!("tftp: {peer}: {path} started, {:?}", t.negotiated());
    let key = (peer, path.as_str().to_owned());
    shared.active.borrow_mut().insert(key.clone());
    let shared = shared.clone();
    ex.spawn(async move {
        let started = Instant::now();
        let t = run_transfer(sock, peer, t, Reader::new(source)).await;
        shared.active.borrow_mut().remove(&key);
        let stats = t.stats();
        let neg = t.negotiated();
        shared.report(TransferReport {
            file: key.1,
            client: peer,
            bytes: stats.bytes,
            blocks: stats.blocks,
            retransmissions: stats.retransmissions,
            blksize: neg.blksize,
            windowsize: neg.windowsize,
            duration: started.elapsed(),
            outcome: t.outcome().cloned().unwrap_or(Outcome::TimedOut),
        });
    })
    .detach();
    Ok(())
}

enum Event {
    Packet(usize, SocketAddr),
    Timeout,
}

/// Drive one transfer to its end; returns the finished core.
async fn run_transfer(
    sock: Async<UdpSocket>,
    peer: SocketAddr,
    mut t: Transfer,
    mut reader: Reader,
) -> Transfer {
    let mut out = Vec::with_capacity(usize::from(t.negotiated().blksize) + 4);
    let mut buf = vec![0u8; 1024];
    // One timer for the whole transfer, moved only when the core's deadline
    // comes earlier than where it is set (a deadline moves on every packet
    // sent; moving the timer each time would cost reactor work per packet).
    // When it fires early, it is set again to the current deadline.
    let mut timer = Timer::never();
    let mut armed: Option<Instant> = None;
    loop {
        while let Some(req) = t.poll_read() {
            match reader.read(req.offset, req.len).await {
                Ok(data) => t.supply(req.offset, data),
                Err(e) => {
                    warn!("tftp: read error for {peer}: {e}");
                    t.abort(ErrorCode::NotDefined, "read error");
                }
            }
        }
        let now = Instant::now();
        while t.poll_transmit(now, &mut out) {
            if let Err(e) = sock.send_to(&out, peer).await {
                // Treated like a lost packet: the timer retransmits.
                debug!("tftp: send to {peer}: {e}");
            }
        }
        if t.outcome().is_some() {
            return t;
        }
        let Some(deadline) = t.poll_timeout() else {
            t.abort(ErrorCode::NotDefined, "internal error: transfer stalled");
            continue;
        };
        if armed.is_none_or(|a| deadline < a) {
            timer.set_at(deadline);
            armed = Some(deadline);
        }
        let recv = async {
            // Wait for readiness first: right after a send the answer is
            // almost never there yet, so trying to read first would cost a
            // failed system call per packet.
            loop {
                if let Err(e) = sock.readable().await {
                    debug!("tftp: wait for {peer}: {e}");
                    return future::pending().await;
                }
                match sock.get_ref().recv_from(&mut buf) {
                    Ok((n, from)) => return Event::Packet(n, from),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        debug!("tftp: recv from {peer}: {e}");
                        return future::pending().await;
                    }
                }
            }
        };
        let fired = async {
            (&mut timer).await;
            Event::Timeout
        };
        match future::or(recv, fired).await {
            Event::Packet(_, from) if from != peer => {
                debug!("tftp: packet from unknown TID {from} (transfer with {peer})");
                let err = error_packet(ErrorCode::UnknownTid, "unknown transfer ID");
                let _ = sock.send_to(&err, from).await;
            }
            Event::Packet(n, _) => match Packet::decode(buf.get(..n).unwrap_or_default()) {
                Ok(p) => t.handle(Instant::now(), &p),
                Err(e) => debug!("tftp: bad packet from {peer}: {e}"),
            },
            Event::Timeout => {
                armed = None;
                t.handle_timeout(Instant::now());
            }
        }
    }
}

/// Supplies the core's read requests from memory or from a file.
enum Reader {
    Virtual(Vec<u8>),
    File {
        file: Arc<File>,
        buf: Vec<u8>,
        /// Source offset of `buf[0]`.
        start: u64,
        /// `buf` ends at end of file.
        eof: bool,
    },
}

impl Reader {
    fn new(source: Source) -> Reader {
        match source {
            Source::Virtual(v) => Reader::Virtual(v),
            Source::File { file, .. } => Reader::File {
                file: Arc::new(file),
                buf: Vec::new(),
                start: 0,
                eof: false,
            },
        }
    }

    async fn read(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        match self {
            Reader::Virtual(v) => {
                let from = usize::try_from(offset).unwrap_or(usize::MAX).min(v.len());
                let to = from.saturating_add(len).min(v.len());
                Ok(v.get(from..to).unwrap_or_default())
            }
            Reader::File {
                file,
                buf,
                start,
                eof,
            } => {
                let end = offset.saturating_add(len as u64);
                let buf_end = *start + buf.len() as u64;
                let hit = offset >= *start && (end <= buf_end || *eof);
                if !hit {
                    let want = len.max(READ_CHUNK);
                    let mut b = std::mem::take(buf);
                    let f = file.clone();
                    let (b, res) = smol::unblock(move || {
                        b.resize(want, 0);
                        let res = read_full(&f, offset, &mut b);
                        (b, res)
                    })
                    .await;
                    *buf = b;
                    let n = res?;
                    buf.truncate(n);
                    *start = offset;
                    *eof = n < want;
                }
                let from = usize::try_from(offset - *start).unwrap_or(usize::MAX);
                let from = from.min(buf.len());
                let to = from.saturating_add(len).min(buf.len());
                Ok(buf.get(from..to).unwrap_or_default())
            }
        }
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
    fn blksize_from_mtu() {
        assert_eq!(blksize_for_mtu(1500), 1468);
        assert_eq!(blksize_for_mtu(9000), 8968);
        assert_eq!(blksize_for_mtu(65536), 65464);
        assert_eq!(blksize_for_mtu(0), 8);
    }

    #[test]
    fn transient_errors() {
        assert!(transient(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
        assert!(!transient(&io::Error::from(io::ErrorKind::InvalidInput)));
    }
}
