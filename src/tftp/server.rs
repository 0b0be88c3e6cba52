//! The TFTP driver: smol sockets, timers and files around the sans-I/O
//! [`Transfer`] core (RFC 1350 §4: one new TID, i.e. one ephemeral UDP port,
//! per transfer).
//!
//! [`serve`] reads requests on the listening socket. A read request is
//! checked ([`sanitize`]) and opened through a [`FileProvider`] here, on
//! the caller's executor (so the provider need not be `Send`); the
//! negotiated transfer then runs on a data thread ([`super::pump`]),
//! which hands it back to be reported when it ends. A new transfer goes to
//! an idle data thread, else to a new one (up to
//! [`ServerConfig::data_threads`]), else to the least busy (`pick_thread`),
//! so a boot that runs alone keeps a thread to itself (the pump's solo
//! mode). Each transfer binds a socket to the listening address's IP,
//! port 0. Refused: write requests (error 2), names that fail [`sanitize`]
//! (error 2), missing files (error 1), names [`crate::fsroot`] will not
//! open (error 2, or 0 for an I/O error; the reason is logged at warn:
//! a symlink out of the root, a FIFO, a device...), requests past
//! [`ServerConfig::max_transfers`] (error 0 "server busy") and past
//! [`ServerConfig::max_per_client`] from one IP address (error 0 "too many
//! transfers from your address"). A repeated RRQ from the same client port
//! for the same file while its transfer runs is ignored. Packets from a
//! foreign TID get error 5 and are otherwise ignored.
//!
//! Files are streamed by the data thread in chunks, never read whole.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use async_io::Async;
use futures_lite::future;
use log::{Level, debug, warn};

use super::path::{RelativePath, sanitize};
use super::pump::{Content, Finished, Job, Pump, outcome_of};
use super::transfer::{Outcome, Transfer, TransferConfig, netascii_len};
use super::wire::{ErrorCode, Mode, Packet, Request, error_packet};
use crate::fsroot::{self, Refusal};

/// Driver settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub transfer: TransferConfig,
    /// Transfers running at once; requests past it get "server busy".
    pub max_transfers: usize,
    /// Transfers running at once for one client IP address (any port), so
    /// one client cannot take every slot; requests past it get "too many
    /// transfers from your address".
    pub max_per_client: usize,
    /// Data threads the transfers are spread over (see [`super::pump`]).
    pub data_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            transfer: TransferConfig::default(),
            max_transfers: 128,
            max_per_client: 8,
            data_threads: default_data_threads(),
        }
    }
}

/// Data threads by default: sixteen per core, at most 64. A thread with
/// one transfer waits for it in two system calls per block, one with
/// several in three (see [`super::pump`]), and lock-step transfers spend
/// most of their time waiting for the client, so threads are cheap and
/// more of them serve concurrent boots faster: on 2 cores, 20 and 100
/// concurrent downloads ran 15-20 % faster with 32 threads than with 8,
/// and 64 or 128 gave nothing more. Each thread's stack is 256 KiB of
/// address space, of which a few pages are used.
pub fn default_data_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_mul(16)
        .clamp(1, 64)
}

/// What a name resolves to.
pub enum Source {
    /// Generated content (boot configs), served from memory.
    Virtual(Vec<u8>),
    /// An open regular file and its length.
    File { file: File, len: u64 },
}

/// The hook that turns a checked name into content, per client.
pub trait FileProvider {
    fn open(&self, path: &RelativePath, client: SocketAddr) -> Result<Source, Refusal>;
}

/// Serves regular files under one directory, through
/// [`fsroot::open_regular`]: symlinks are followed only while they stay
/// inside it, and FIFOs, sockets, devices and directories are never opened.
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
    fn open(&self, path: &RelativePath, _client: SocketAddr) -> Result<Source, Refusal> {
        let (file, len) = fsroot::open_regular(&self.root, path.components())?;
        Ok(Source::File { file, len })
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
    fn open(&self, path: &RelativePath, client: SocketAddr) -> Result<Source, Refusal> {
        match (self.lookup)(path, client) {
            Some(content) => Ok(Source::Virtual(content)),
            None => self.inner.open(path, client),
        }
    }
}

/// What a [`WithRedirect`] lookup makes of a name.
pub enum Redirect {
    /// Generated content.
    Virtual(Vec<u8>),
    /// Serve this other name of the inner provider instead (the name
    /// asked for when that one does not exist).
    To(RelativePath),
    /// "File not found", whatever the inner provider holds.
    NotFound,
}

/// A provider whose `lookup` may answer a name, rename it or refuse it
/// (the Raspberry Pi tree, [`crate::boot::rpi`]); names it returns `None`
/// for go to `inner` unchanged.
pub struct WithRedirect<F, P> {
    pub lookup: F,
    pub inner: P,
}

impl<F, P> FileProvider for WithRedirect<F, P>
where
    F: Fn(&RelativePath, SocketAddr) -> Option<Redirect>,
    P: FileProvider,
{
    fn open(&self, path: &RelativePath, client: SocketAddr) -> Result<Source, Refusal> {
        match (self.lookup)(path, client) {
            None => self.inner.open(path, client),
            Some(Redirect::Virtual(content)) => Ok(Source::Virtual(content)),
            Some(Redirect::NotFound) => Err(Refusal::NotFound),
            Some(Redirect::To(other)) => match self.inner.open(&other, client) {
                Err(Refusal::NotFound) => self.inner.open(path, client),
                answer => answer,
            },
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

/// A running transfer as the request side knows it.
struct Active {
    client: SocketAddr,
    file: String,
    /// Index of its data thread in [`Shared::pumps`].
    thread: usize,
}

struct Shared<P, R> {
    cfg: ServerConfig,
    provider: P,
    on_report: R,
    local_ip: std::net::IpAddr,
    /// The data threads, started as transfers need them (`pick_thread`),
    /// each with the number of transfers it runs.
    pumps: RefCell<Vec<(Pump, usize)>>,
    /// Transfers running in all data threads, kept by them.
    running: Arc<AtomicUsize>,
    finished_tx: smol::channel::Sender<Finished>,
    /// Running transfers, by job id.
    active: RefCell<HashMap<u64, Active>>,
    next_id: Cell<u64>,
}

impl<P, R: Fn(&TransferReport)> Shared<P, R> {
    /// Logs a transfer's end and hands the report on. A transfer that ran
    /// is a boot line (info, held back in a storm); a refusal is debug
    /// here: a missing name is routine (pxelinux probes many config
    /// names), and any other reason was logged where it was found.
    fn report(&self, report: TransferReport) {
        match &report.outcome {
            Outcome::Completed => crate::boot_log!(
                Level::Info,
                "{} {}: sent {} bytes in {} ms (blksize {}, windowsize {}, {} retransmissions)",
                report.client,
                report.file,
                report.bytes,
                report.duration.as_millis(),
                report.blksize,
                report.windowsize,
                report.retransmissions
            ),
            Outcome::Refused { .. } => {
                debug!("{} {}: {}", report.client, report.file, report.outcome)
            }
            outcome => crate::boot_log!(
                Level::Info,
                "{} {}: {} after {} bytes",
                report.client,
                report.file,
                outcome,
                report.bytes
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
    P: FileProvider,
    R: Fn(&TransferReport),
{
    let (finished_tx, finished) = smol::channel::unbounded::<Finished>();
    let shared = Shared {
        cfg,
        provider,
        on_report,
        local_ip: socket.get_ref().local_addr()?.ip(),
        pumps: RefCell::new(Vec::new()),
        running: Arc::default(),
        finished_tx,
        active: RefCell::new(HashMap::new()),
        next_id: Cell::new(0),
    };
    let requests = async {
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
            if let Some(reply) = on_request(&shared, datagram, peer)
                && let Err(e) = socket.send_to(&reply, peer).await
            {
                debug!("tftp: send to {peer}: {e}");
            }
        }
    };
    let reports = async {
        while let Ok(f) = finished.recv().await {
            shared.finished(f);
        }
        Err(io::Error::other("tftp data thread stopped"))
    };
    future::or(requests, reports).await
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
fn on_request<P, R>(shared: &Shared<P, R>, datagram: &[u8], peer: SocketAddr) -> Option<Vec<u8>>
where
    P: FileProvider,
    R: Fn(&TransferReport),
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
            let (msg, name) = (e.to_string(), raw_name());
            crate::boot_log!(Level::Warn, "tftp: {peer}: {name} refused: {msg}");
            shared.refused(name, peer, ErrorCode::AccessViolation, &msg);
            return Some(error_packet(ErrorCode::AccessViolation, &msg));
        }
    };
    let admission = admit(&shared.active.borrow(), &shared.cfg, peer, path.as_str());
    match admission {
        Admission::Start => {}
        Admission::Duplicate => {
            debug!("tftp: {peer}: duplicate request for {path} ignored");
            return None;
        }
        Admission::Refuse(msg) => {
            crate::boot_log!(Level::Warn, "tftp: {peer}: {path} refused: {msg}");
            shared.refused(path.to_string(), peer, ErrorCode::NotDefined, msg);
            return Some(error_packet(ErrorCode::NotDefined, msg));
        }
    }
    match start_transfer(shared, &request, path.clone(), peer) {
        Ok(()) => None,
        Err((code, msg)) => {
            shared.refused(path.to_string(), peer, code, msg);
            Some(error_packet(code, msg))
        }
    }
}

/// What to do with a read request, given the transfers running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Start,
    /// The same client port already fetches this file (a retransmitted
    /// RRQ): ignored.
    Duplicate,
    /// Past a limit: error 0 with this message.
    Refuse(&'static str),
}

/// The limits on new transfers: a repeated request is ignored; past
/// [`ServerConfig::max_transfers`] in all, or
/// [`ServerConfig::max_per_client`] from the requester's IP address (any
/// port), the request is refused.
fn admit(
    active: &HashMap<u64, Active>,
    cfg: &ServerConfig,
    peer: SocketAddr,
    file: &str,
) -> Admission {
    if active.values().any(|a| a.client == peer && a.file == file) {
        return Admission::Duplicate;
    }
    if active.len() >= cfg.max_transfers {
        return Admission::Refuse("server busy, try again later");
    }
    let from_peer = active
        .values()
        .filter(|a| a.client.ip() == peer.ip())
        .count();
    if from_peer >= cfg.max_per_client {
        return Admission::Refuse("too many transfers from your address, try again later");
    }
    Admission::Start
}

/// Open the file, negotiate, bind the transfer's socket and hand it to
/// the data thread.
fn start_transfer<P, R>(
    shared: &Shared<P, R>,
    request: &Request<'_>,
    path: RelativePath,
    peer: SocketAddr,
) -> Result<(), (ErrorCode, &'static str)>
where
    P: FileProvider,
    R: Fn(&TransferReport),
{
    let source = shared.provider.open(&path, peer).map_err(|e| {
        if !matches!(e, Refusal::NotFound) {
            // A missing name is routine (pxelinux probes many config
            // names) and is reported at debug; anything else is a reason
            // the admin wants to read.
            crate::boot_log!(Level::Warn, "tftp: {peer}: {path} refused: {e}");
        }
        match e {
            Refusal::NotFound => (ErrorCode::FileNotFound, "file not found"),
            Refusal::Io(_) => (ErrorCode::NotDefined, "cannot open file"),
            _ => (ErrorCode::AccessViolation, "access violation"),
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
    let socket = UdpSocket::bind(SocketAddr::new(shared.local_ip, 0)).map_err(|e| {
        warn!("tftp: cannot bind a transfer socket: {e}");
        (ErrorCode::NotDefined, "no transfer socket")
    })?;
    debug!("tftp: {peer}: {path} started, {:?}", t.negotiated());
    let id = shared.next_id.get();
    shared.next_id.set(id.wrapping_add(1));
    let content = match source {
        Source::Virtual(v) => Content::Memory(v),
        Source::File { file, .. } => Content::File(file),
    };
    let job = Job {
        id,
        socket,
        peer,
        transfer: t,
        content,
    };
    let thread = shared.submit(job).map_err(|e| {
        warn!("tftp: {e}");
        (ErrorCode::NotDefined, "server busy, try again later")
    })?;
    shared.active.borrow_mut().insert(
        id,
        Active {
            client: peer,
            file: path.as_str().to_owned(),
            thread,
        },
    );
    Ok(())
}

/// Where a new transfer goes, given how many transfers each running data
/// thread has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// The running thread at this index.
    Thread(usize),
    /// A new thread.
    Start,
}

/// An idle thread if there is one; else a new thread while fewer than
/// `max_threads` run; else the least busy. A thread alone with one
/// transfer runs it in solo mode (see [`super::pump`]) and only notices a
/// second one after the client's next packet, so idle threads come first.
fn pick_thread(loads: &[usize], max_threads: usize) -> Pick {
    let least = loads
        .iter()
        .enumerate()
        .min_by_key(|&(_, &n)| n)
        .map(|(i, &n)| (i, n));
    match least {
        Some((i, 0)) => Pick::Thread(i),
        _ if loads.len() < max_threads.max(1) => Pick::Start,
        Some((i, _)) => Pick::Thread(i),
        None => Pick::Start,
    }
}

impl<P, R: Fn(&TransferReport)> Shared<P, R> {
    /// Hand a job to a data thread, starting one if [`pick_thread`] says
    /// so; returns the thread's index.
    fn submit(&self, job: Job) -> io::Result<usize> {
        let mut pumps = self.pumps.borrow_mut();
        let loads: Vec<usize> = pumps.iter().map(|(_, n)| *n).collect();
        let i = match pick_thread(&loads, self.cfg.data_threads) {
            Pick::Thread(i) => i,
            Pick::Start => {
                let tx = self.finished_tx.clone();
                pumps.push((
                    Pump::start(self.running.clone(), move |f| {
                        let _ = tx.try_send(f);
                    })?,
                    0,
                ));
                pumps.len() - 1
            }
        };
        let (pump, load) = pumps
            .get_mut(i)
            .ok_or_else(|| io::Error::other("no tftp data thread"))?;
        pump.submit(job)?;
        *load += 1;
        Ok(i)
    }

    /// A transfer the data thread finished: forget it and report it.
    fn finished(&self, f: Finished) {
        let Some(active) = self.active.borrow_mut().remove(&f.id) else {
            return;
        };
        if let Some((_, load)) = self.pumps.borrow_mut().get_mut(active.thread) {
            *load = load.saturating_sub(1);
        }
        let t: &Transfer = &f.transfer;
        let stats = t.stats();
        let neg = t.negotiated();
        self.report(TransferReport {
            file: active.file,
            client: active.client,
            bytes: stats.bytes,
            blocks: stats.blocks,
            retransmissions: stats.retransmissions,
            blksize: neg.blksize,
            windowsize: neg.windowsize,
            duration: f.duration,
            outcome: outcome_of(t),
        });
    }
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
    fn idle_threads_first_then_new_ones_then_the_least_busy() {
        assert_eq!(pick_thread(&[], 4), Pick::Start);
        assert_eq!(pick_thread(&[], 0), Pick::Start);
        assert_eq!(pick_thread(&[1, 0, 2], 4), Pick::Thread(1));
        // Every thread busy: a new one while there is room...
        assert_eq!(pick_thread(&[1, 1], 4), Pick::Start);
        // ...then the least busy.
        assert_eq!(pick_thread(&[3, 2, 2, 5], 4), Pick::Thread(1));
        assert_eq!(pick_thread(&[1], 1), Pick::Thread(0));
        assert_eq!(pick_thread(&[1], 0), Pick::Thread(0));
    }

    #[test]
    fn admission_limits_in_all_and_per_client_address() {
        let cfg = ServerConfig {
            max_transfers: 4,
            max_per_client: 2,
            ..ServerConfig::default()
        };
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let mut active = HashMap::new();
        let mut run = |client: &str, file: &str| {
            let id = active.len() as u64;
            active.insert(
                id,
                Active {
                    client: addr(client),
                    file: file.to_owned(),
                    thread: 0,
                },
            );
        };
        run("10.0.0.5:1001", "pxelinux.0");
        run("10.0.0.5:1002", "pxelinux.0");
        let per_client = Admission::Refuse("too many transfers from your address, try again later");
        // A third from the same address, whatever its port or file...
        assert_eq!(admit(&active, &cfg, addr("10.0.0.5:1003"), "x"), per_client);
        // ...while the same port and file is a retransmitted request.
        assert_eq!(
            admit(&active, &cfg, addr("10.0.0.5:1001"), "pxelinux.0"),
            Admission::Duplicate
        );
        // Another address still starts.
        assert_eq!(
            admit(&active, &cfg, addr("10.0.0.6:1001"), "pxelinux.0"),
            Admission::Start
        );
        let mut run = |client: &str| {
            let id = active.len() as u64;
            active.insert(
                id,
                Active {
                    client: addr(client),
                    file: "f".to_owned(),
                    thread: 0,
                },
            );
            admit(&active, &cfg, addr("10.0.0.9:1"), "f")
        };
        assert_eq!(run("10.0.0.6:1"), Admission::Start);
        // Four running in all: the global limit comes first.
        assert_eq!(
            run("10.0.0.7:1"),
            Admission::Refuse("server busy, try again later")
        );
    }

    #[test]
    fn transient_errors() {
        assert!(transient(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
        assert!(!transient(&io::Error::from(io::ErrorKind::InvalidInput)));
    }
}
