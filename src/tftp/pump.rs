//! The TFTP data plane: a thread that runs the packets of many transfers.
//!
//! Layer: driver. The request socket, file opening and reporting stay on
//! the smol executor ([`super::server`]); each accepted transfer — its
//! [`Transfer`] core, its own UDP socket (RFC 1350 §4: one TID per
//! transfer) and its content — is handed to one of these threads (the
//! server starts them as concurrent transfers need them, up to four per
//! core), which drives its transfers from one level-triggered epoll set
//! and hands each finished core back through a channel.
//!
//! Why a thread of its own rather than a task per transfer: a lock-step
//! transfer (RFC 1350, windowsize 1) is one round trip per block, so its
//! speed is the cost of that round trip. Under the async reactor a block
//! cost about six system calls (send, a one-shot re-arm, the wait, the
//! read, the executor's wake-up notifications); here it costs three —
//! `sendto`, `epoll_wait` (shared by every transfer that is ready) and
//! `recvfrom` — because level-triggered registration needs no re-arm and
//! nothing else shares the loop. Deadlines come from the cores
//! ([`Transfer::poll_timeout`]) and become the `epoll_wait` timeout.
//!
//! Files are read here with positional reads, [`READ_CHUNK`] bytes (or one
//! window, when larger) at a time, never whole; boot files come from the
//! page cache, so a read does not hold up the other transfers for long.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use log::{debug, warn};
use rustix::buffer::spare_capacity;
use rustix::event::{EventfdFlags, Timespec, epoll, eventfd};

use super::transfer::{Outcome, Transfer};
use super::wire::{ErrorCode, Packet, error_packet};

/// Read-ahead size for files when the window needs less.
pub const READ_CHUNK: usize = 64 * 1024;

/// The epoll key of the wake-up eventfd; transfers use their own ids.
const WAKE: u64 = u64::MAX;

/// One transfer handed to the pump.
pub struct Job {
    /// Chosen by the caller; comes back in [`Finished::id`].
    pub id: u64,
    /// The transfer's own socket, bound, not connected.
    pub socket: UdpSocket,
    pub peer: SocketAddr,
    pub transfer: Transfer,
    pub content: Content,
}

/// What a transfer sends.
pub enum Content {
    Memory(Vec<u8>),
    File(File),
}

/// A transfer that ended (completed, failed or timed out).
pub struct Finished {
    pub id: u64,
    pub transfer: Transfer,
    pub duration: Duration,
}

/// The handle the request side keeps: submit jobs, and on drop stop the
/// thread (running transfers are abandoned with it).
pub struct Pump {
    jobs: Option<mpsc::Sender<Job>>,
    wake: Arc<OwnedFd>,
}

impl Pump {
    /// Start the thread. `done` receives every finished transfer; it runs
    /// on the pump thread and must not block (e.g. a channel send).
    pub fn start<D>(done: D) -> io::Result<Pump>
    where
        D: Fn(Finished) + Send + 'static,
    {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        epoll::add(
            &epoll,
            &*wake,
            epoll::EventData::new_u64(WAKE),
            epoll::EventFlags::IN,
        )?;
        let (tx, rx) = mpsc::channel();
        let mut pump = Loop {
            epoll,
            wake: wake.clone(),
            jobs: rx,
            running: HashMap::new(),
            done,
        };
        std::thread::Builder::new()
            .name("tftp-data".into())
            .stack_size(256 * 1024)
            .spawn(move || pump.run())?;
        Ok(Pump {
            jobs: Some(tx),
            wake,
        })
    }

    /// Hand a transfer to the thread. Fails only when the thread is gone.
    pub fn submit(&self, job: Job) -> io::Result<()> {
        let gone = || io::Error::other("tftp data thread stopped");
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        ring(&self.wake)
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.jobs = None;
        let _ = ring(&self.wake);
    }
}

fn ring(fd: &OwnedFd) -> io::Result<()> {
    match rustix::io::write(fd, &1u64.to_ne_bytes()) {
        // A full counter already means "wake up".
        Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// One running transfer.
struct Running {
    socket: UdpSocket,
    peer: SocketAddr,
    transfer: Transfer,
    reader: Reader,
    started: Instant,
}

struct Loop<D> {
    epoll: OwnedFd,
    wake: Arc<OwnedFd>,
    jobs: mpsc::Receiver<Job>,
    running: HashMap<u64, Running>,
    done: D,
}

impl<D: Fn(Finished)> Loop<D> {
    fn run(&mut self) {
        let mut events = Vec::with_capacity(64);
        let mut buf = vec![0u8; 2048];
        let mut out = Vec::with_capacity(65536 + 4);
        loop {
            let now = Instant::now();
            let timeout = self
                .running
                .values()
                .filter_map(|r| r.transfer.poll_timeout())
                .min()
                .map(|d| d.saturating_duration_since(now))
                .map(|d| Timespec {
                    tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
                    tv_nsec: d.subsec_nanos().into(),
                });
            events.clear();
            match epoll::wait(&self.epoll, spare_capacity(&mut events), timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    warn!("tftp: data thread stops: epoll_wait: {e}");
                    return;
                }
            }
            for ev in &events {
                let key = ev.data.u64();
                if key == WAKE {
                    if !self.take_jobs(&mut out) {
                        return;
                    }
                } else {
                    self.on_readable(key, &mut buf, &mut out);
                }
            }
            let now = Instant::now();
            let expired: Vec<u64> = self
                .running
                .iter()
                .filter(|(_, r)| r.transfer.poll_timeout().is_some_and(|d| d <= now))
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                if let Some(r) = self.running.get_mut(&id) {
                    r.transfer.handle_timeout(now);
                }
                self.drive(id, &mut out);
            }
        }
    }

    /// Drain the wake-up counter and start queued jobs; false when the
    /// request side is gone.
    fn take_jobs(&mut self, out: &mut Vec<u8>) -> bool {
        let mut counter = [0u8; 8];
        let _ = rustix::io::read(&*self.wake, &mut counter);
        loop {
            match self.jobs.try_recv() {
                Ok(job) => self.start(job, out),
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn start(&mut self, job: Job, out: &mut Vec<u8>) {
        let registered = job.socket.set_nonblocking(true).and_then(|()| {
            epoll::add(
                &self.epoll,
                &job.socket,
                epoll::EventData::new_u64(job.id),
                epoll::EventFlags::IN,
            )
            .map_err(io::Error::from)
        });
        let mut transfer = job.transfer;
        if let Err(e) = registered {
            warn!("tftp: {}: cannot run transfer: {e}", job.peer);
            transfer.abort(ErrorCode::NotDefined, "internal error");
        }
        self.running.insert(
            job.id,
            Running {
                socket: job.socket,
                peer: job.peer,
                transfer,
                reader: Reader::new(job.content),
                started: Instant::now(),
            },
        );
        self.drive(job.id, out);
    }

    fn on_readable(&mut self, id: u64, buf: &mut [u8], out: &mut Vec<u8>) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        // One datagram per readiness: the set is level-triggered, so a
        // second one queued behind it is reported by the next wait, and no
        // read is wasted on finding the queue empty.
        match r.socket.recv_from(buf) {
            Ok((_, from)) if from != r.peer => {
                debug!(
                    "tftp: packet from unknown TID {from} (transfer with {})",
                    r.peer
                );
                let err = error_packet(ErrorCode::UnknownTid, "unknown transfer ID");
                let _ = r.socket.send_to(&err, from);
                return;
            }
            Ok((n, _)) => match Packet::decode(buf.get(..n).unwrap_or_default()) {
                Ok(p) => r.transfer.handle(Instant::now(), &p),
                Err(e) => debug!("tftp: bad packet from {}: {e}", r.peer),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            // E.g. an ICMP error for an earlier send: the timer retransmits.
            Err(e) => debug!("tftp: recv from {}: {e}", r.peer),
        }
        self.drive(id, out);
    }

    /// Feed the core its reads, send what it has, and retire it when done.
    fn drive(&mut self, id: u64, out: &mut Vec<u8>) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        while let Some(req) = r.transfer.poll_read() {
            match r.reader.read(req.offset, req.len) {
                Ok(data) => r.transfer.supply(req.offset, data),
                Err(e) => {
                    warn!("tftp: read error for {}: {e}", r.peer);
                    r.transfer.abort(ErrorCode::NotDefined, "read error");
                }
            }
        }
        let now = Instant::now();
        while r.transfer.poll_transmit(now, out) {
            if let Err(e) = r.socket.send_to(out, r.peer) {
                // Treated like a lost packet: the timer retransmits.
                debug!("tftp: send to {}: {e}", r.peer);
            }
        }
        if r.transfer.outcome().is_none() && r.transfer.poll_timeout().is_none() {
            r.transfer
                .abort(ErrorCode::NotDefined, "internal error: transfer stalled");
            while r.transfer.poll_transmit(now, out) {
                let _ = r.socket.send_to(out, r.peer);
            }
        }
        if r.transfer.outcome().is_some()
            && let Some(r) = self.running.remove(&id)
        {
            let _ = epoll::delete(&self.epoll, &r.socket);
            (self.done)(Finished {
                id,
                duration: r.started.elapsed(),
                transfer: r.transfer,
            });
        }
    }
}

/// Supplies the core's read requests from memory or from a file.
enum Reader {
    Memory(Vec<u8>),
    File {
        file: File,
        buf: Vec<u8>,
        /// Source offset of `buf[0]`.
        start: u64,
        /// `buf` ends at end of file.
        eof: bool,
    },
}

impl Reader {
    fn new(content: Content) -> Reader {
        match content {
            Content::Memory(v) => Reader::Memory(v),
            Content::File(file) => Reader::File {
                file,
                buf: Vec::new(),
                start: 0,
                eof: false,
            },
        }
    }

    fn read(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        match self {
            Reader::Memory(v) => {
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
                    buf.resize(want, 0);
                    let n = read_full(file, offset, buf)?;
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

/// The outcome a finished core reports (a core without one timed out).
pub fn outcome_of(t: &Transfer) -> Outcome {
    t.outcome().cloned().unwrap_or(Outcome::TimedOut)
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
}
