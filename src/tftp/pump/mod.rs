//! The TFTP data plane: a thread that runs the packets of many transfers.
//!
//! Layer: driver. The request socket, file opening and reporting stay on
//! the smol executor ([`super::server`]); each accepted transfer — its
//! [`Transfer`] core, its own UDP socket (RFC 1350 §4: one TID per
//! transfer) and its content — is handed to one of these threads (the
//! server starts them as concurrent transfers need them, up to sixteen
//! per core, and gives a new transfer to an idle thread first), which hands
//! each finished core back through a channel.
//!
//! Why a thread of its own rather than a task per transfer: a lock-step
//! transfer (RFC 1350, windowsize 1) is one round trip per block, so its
//! speed is the cost of that round trip. Under the async reactor a block
//! cost about six system calls (send, a one-shot re-arm, the wait, the
//! read, the executor's wake-up notifications). Here a thread waits in one
//! of two ways, chosen again after every packet:
//!
//! - **Solo**, while it runs exactly one transfer (the common case: one
//!   machine boots at a time): a blocking `recvfrom` on that transfer's
//!   socket, then `sendto` — two system calls per block, and the client's
//!   packet wakes the thread straight out of `recvfrom`. Or, when that
//!   is measured to be faster, non-blocking reads with `sched_yield`
//!   between them for up to [`SPIN`] before the blocking one (see "Why
//!   poll at all" below). The socket is blocking with `SO_RCVTIMEO` =
//!   [`SOLO_WAIT`], so the thread looks at its job queue, the transfer's
//!   deadline and a stop request at least that often even when the
//!   client is silent (and after every packet otherwise); retransmission
//!   timeouts, whole seconds (RFC 2349), fire at most that late.
//! - **Epoll**, with none or several: one level-triggered epoll set over
//!   the transfers' sockets and an eventfd that announces new jobs, read
//!   with `MSG_DONTWAIT` — three system calls per block (`epoll_wait`,
//!   shared by every transfer that is ready, `recvfrom`, `sendto`); no
//!   re-arm is needed. Deadlines come from the cores
//!   ([`Transfer::poll_timeout`]) and become the `epoll_wait` timeout.
//!
//! Sockets stay registered in the epoll set in both modes, so switching
//! costs no system call. Sends always use `MSG_DONTWAIT`: a full send
//! buffer counts as a lost packet, which the timer retransmits.
//!
//! Why poll at all: a lock-step transfer waits once per block, and a
//! thread that sleeps has to be woken. When the client runs on another
//! core that wake-up crosses cores, and on a virtual machine whose idle
//! vCPU halts it costs tens of microseconds, several times the work of a
//! block: polling made 512-byte lock-step downloads on loopback about
//! three times as fast there. When the client shares the core, polling
//! only adds system calls and can make the scheduler move the client away;
//! a client slower than [`SPIN`] gains nothing; and a client that needs
//! both cores for its own work loses one. So a transfer polls only while
//! its measurements say polling is faster ([`WaitChooser`]), and only
//! while it is the one transfer the server runs: with several, the cores
//! are shared work.
//!
//! Measured off loopback too (`benches/tftp.sh` with `NETNS=1`: atftp in
//! one network namespace, gopxe in another, a veth pair between them; a
//! 2-vCPU VM shared with other work; 64 MiB lock-step downloads, median
//! MiB/s of 5 interleaved runs; `nopoll` is `GOPXE_TFTP_POLL=0`,
//! `always` is `GOPXE_TFTP_POLL=always`, see `Polling`; "apart" pins
//! gopxe to core 0 and atftp to core 1):
//!
//! | path     | placement          | blksize | chooser | nopoll | always |
//! |----------|--------------------|---------|---------|--------|--------|
//! | veth     | scheduler's choice |     512 |    59.0 |   57.1 |   21.4 |
//! | veth     | scheduler's choice |    1468 |   139.0 |  140.8 |   91.8 |
//! | loopback | scheduler's choice |     512 |    60.3 |   48.7 |   51.0 |
//! | loopback | scheduler's choice |    1468 |   156.8 |  161.0 |  131.5 |
//! | veth     | apart (cores 0, 1) |     512 |     5.0 |    3.8 |    4.8 |
//! | veth     | apart (cores 0, 1) |    1468 |    20.3 |    9.9 |   21.2 |
//! | loopback | apart (cores 0, 1) |     512 |    18.4 |    3.6 |   14.4 |
//! | loopback | apart (cores 0, 1) |    1468 |    48.9 |   15.3 |   49.2 |
//!
//! Left to the scheduler, client and server mostly share a core, a round
//! trip takes about 10 µs (under the chooser's 20 µs), the chooser seldom
//! tries polling, and polling makes no difference beyond the noise of a
//! shared machine (single runs there swing between 20 and 160 MiB/s), on
//! veth as on loopback; polling every wait regardless costs up to two
//! thirds. Kept on different cores, every wake-up crosses cores (a round
//! trip without polling takes 90 to 140 µs, over veth as on loopback), and
//! polling, chosen or forced, is 1.3 to 2 times as fast over veth and 3 to
//! 5 times on loopback. So polling stays, for any peer, not only on
//! loopback: off loopback it helps where it does on loopback. A client
//! behind a real NIC that answers slower than [`SPIN`] was not measured (a
//! veth pair adds no delay, and the test machine has no netem); for such a
//! client polling is not faster, so the chooser keeps blocking and tries
//! polling again once in 16,384 waits.
//!
//! Connecting the socket to the client would save a route lookup per send
//! but would make the kernel drop packets from other TIDs instead of
//! letting us answer them with error 5.
//!
//! Files are read on this thread with positional reads, [`READ_CHUNK`]
//! bytes (or one window, when larger) at a time, never whole; boot files
//! come from the page cache, so a read does not hold up the other
//! transfers for long.
//!
//! The module's files:
//! - `mod.rs` (this one; driver): the thread, its job queue and its loop —
//!   solo and epoll waits, sends, deadlines, retiring finished transfers.
//! - `wait.rs` (pure logic): `WaitChooser`, whether a solo wait polls
//!   first, from the times of earlier waits.
//! - `content.rs` (driver, file I/O): [`Content`] and the reader that
//!   answers the core's read requests, with its read-ahead.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use log::{debug, warn};
use rustix::buffer::spare_capacity;
use rustix::event::{EventfdFlags, Timespec, epoll, eventfd};
use rustix::io::Errno;
use rustix::net::{self, RecvFlags, SendFlags, SocketAddrAny};

use super::transfer::{Outcome, Transfer};
use super::wire::{ErrorCode, Packet, error_packet};

mod content;
mod wait;

pub use content::{Content, READ_CHUNK};
pub use wait::SPIN;

use content::Reader;
use wait::WaitChooser;

/// The longest a thread with one transfer blocks in `recvfrom` before it
/// looks at its job queue and the transfer's deadline (`SO_RCVTIMEO`).
/// Retransmission timeouts (whole seconds, RFC 2349) fire at most this late.
pub const SOLO_WAIT: Duration = Duration::from_millis(20);

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
    /// `running` counts the transfers of every thread that shares it
    /// (one count per server): a thread polls only while it runs the one
    /// transfer there is.
    pub fn start<D>(running: Arc<AtomicUsize>, done: D) -> io::Result<Pump>
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
            closed: false,
            running: HashMap::new(),
            everywhere: running,
            polling: Polling::from_env(),
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
    wait: WaitChooser,
    /// When solo mode's previous wait ended.
    waited: Option<Instant>,
}

impl Running {
    /// Solo mode's wait for the next datagram. While the client answers
    /// fast, poll the socket for up to [`SPIN`] first, giving the core
    /// away between polls (`sched_yield`: when the client shares it, the
    /// client runs); then block in `recvfrom` (`SO_RCVTIMEO`).
    fn recv_solo(
        &mut self,
        buf: &mut [u8],
        poll: bool,
    ) -> Result<(usize, Option<SocketAddrAny>), Errno> {
        if poll {
            let start = Instant::now();
            loop {
                match net::recvfrom(&self.socket, &mut *buf, RecvFlags::DONTWAIT) {
                    Err(Errno::AGAIN) if start.elapsed() < SPIN => std::thread::yield_now(),
                    Err(Errno::AGAIN) => break,
                    got => return got.map(|(n, _, from)| (n, from)),
                }
            }
        }
        net::recvfrom(&self.socket, buf, RecvFlags::empty()).map(|(n, _, from)| (n, from))
    }

    /// A datagram that arrived on the transfer's socket.
    fn on_datagram(&mut self, datagram: &[u8], from: Option<SocketAddrAny>, now: Instant) {
        let from = from.and_then(|a| SocketAddr::try_from(a).ok());
        match from {
            Some(from) if from == self.peer => match Packet::decode(datagram) {
                Ok(p) => self.transfer.handle(now, &p),
                Err(e) => debug!("tftp: bad packet from {}: {e}", self.peer),
            },
            // RFC 1350 §4: another TID gets error 5; the transfer goes on.
            Some(from) => {
                debug!(
                    "tftp: packet from unknown TID {from} (transfer with {})",
                    self.peer
                );
                let err = error_packet(ErrorCode::UnknownTid, "unknown transfer ID");
                let _ = net::sendto(&self.socket, &err, SendFlags::DONTWAIT, &from);
            }
            None => {}
        }
    }

    /// Send one packet without blocking. A full send buffer is treated
    /// like a lost packet: the timer retransmits.
    fn send(&self, packet: &[u8]) {
        if let Err(e) = net::sendto(&self.socket, packet, SendFlags::DONTWAIT, &self.peer) {
            debug!("tftp: send to {}: {e}", self.peer);
        }
    }
}

struct Loop<D> {
    epoll: OwnedFd,
    wake: Arc<OwnedFd>,
    jobs: mpsc::Receiver<Job>,
    /// The request side dropped its [`Pump`]: stop.
    closed: bool,
    running: HashMap<u64, Running>,
    /// Transfers running in all the server's data threads.
    everywhere: Arc<AtomicUsize>,
    /// Whether solo waits poll.
    polling: Polling,
    done: D,
}

/// Whether a solo wait polls before it blocks, from the environment
/// variable `GOPXE_TFTP_POLL`, read once, when the first data thread
/// starts: unset (or anything else) lets [`WaitChooser`] decide, `0` never
/// polls, `always` always does (while the transfer is the only one). For
/// measuring what polling brings; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Polling {
    Chosen,
    Never,
    Always,
}

impl Polling {
    fn from_env() -> Polling {
        static POLLING: OnceLock<Polling> = OnceLock::new();
        *POLLING.get_or_init(|| {
            match std::env::var_os("GOPXE_TFTP_POLL")
                .as_deref()
                .and_then(|v| v.to_str())
            {
                Some("0") => Polling::Never,
                Some("always") => Polling::Always,
                _ => Polling::Chosen,
            }
        })
    }
}

/// How the thread waits for its next packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// A blocking `recvfrom` on the socket of this, the only, transfer.
    Solo(u64),
    /// `epoll_wait` over every transfer's socket and the wake-up eventfd.
    Epoll,
}

/// Solo while exactly one transfer runs; epoll when there is none (only
/// the eventfd can bring work) or several.
fn wait_mode<V>(running: &HashMap<u64, V>) -> Wait {
    let mut ids = running.keys();
    match (ids.next(), ids.next()) {
        (Some(&id), None) => Wait::Solo(id),
        _ => Wait::Epoll,
    }
}

impl<D: Fn(Finished)> Loop<D> {
    fn run(&mut self) {
        let mut events = Vec::with_capacity(64);
        let mut buf = vec![0u8; 2048];
        let mut out = Vec::with_capacity(65536 + 4);
        while !self.closed {
            self.take_jobs(&mut out);
            if self.closed {
                break;
            }
            match wait_mode(&self.running) {
                Wait::Solo(id) => self.solo(id, &mut buf, &mut out),
                Wait::Epoll => self.wait_epoll(&mut events, &mut buf, &mut out),
            }
        }
        // Abandoned with the thread.
        self.everywhere
            .fetch_sub(self.running.len(), Ordering::Relaxed);
    }

    /// Start queued jobs; sets `closed` when the request side is gone.
    /// Costs no system call: the eventfd is drained only when epoll
    /// reports it.
    fn take_jobs(&mut self, out: &mut Vec<u8>) {
        loop {
            match self.jobs.try_recv() {
                Ok(job) => self.start(job, out),
                Err(mpsc::TryRecvError::Empty) => return,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Run the thread's only transfer with blocking reads until it ends,
    /// another job arrives or the thread is told to stop. `recvfrom`
    /// returns after [`SOLO_WAIT`] at the latest (`SO_RCVTIMEO`), so a
    /// deadline, a new job or a stop is noticed that late at worst; while
    /// the client sends, after every packet.
    fn solo(&mut self, id: u64, buf: &mut [u8], out: &mut Vec<u8>) {
        loop {
            let Some(r) = self.running.get_mut(&id) else {
                return;
            };
            // Polling takes a core, which other transfers would need.
            let alone = self.everywhere.load(Ordering::Relaxed) == 1;
            let poll = alone
                && match self.polling {
                    Polling::Chosen => r.wait.spin(),
                    Polling::Never => false,
                    Polling::Always => true,
                };
            let got = r.recv_solo(buf, poll);
            let now = Instant::now();
            match r.waited.replace(now) {
                Some(then) if alone => r.wait.record(now.saturating_duration_since(then)),
                _ => {}
            }
            match got {
                Ok((n, from)) => r.on_datagram(buf.get(..n).unwrap_or_default(), from, now),
                Err(Errno::AGAIN | Errno::INTR) => {}
                // E.g. an ICMP error for an earlier send: the timer retransmits.
                Err(e) => debug!("tftp: recv from {}: {e}", r.peer),
            }
            if r.transfer.poll_timeout().is_some_and(|d| d <= now) {
                r.transfer.handle_timeout(now);
            }
            self.drive(id, now, out);
            self.take_jobs(out);
            if self.closed || wait_mode(&self.running) != Wait::Solo(id) {
                // Time spent in epoll mode is no solo wait.
                if let Some(r) = self.running.get_mut(&id) {
                    r.waited = None;
                }
                return;
            }
        }
    }

    /// One `epoll_wait` and what it reports, then the expired deadlines.
    fn wait_epoll(&mut self, events: &mut Vec<epoll::Event>, buf: &mut [u8], out: &mut Vec<u8>) {
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
        match epoll::wait(&self.epoll, spare_capacity(events), timeout.as_ref()) {
            Ok(_) => {}
            Err(Errno::INTR) => return,
            Err(e) => {
                warn!("tftp: data thread stops: epoll_wait: {e}");
                self.closed = true;
                return;
            }
        }
        let now = Instant::now();
        for ev in events.iter() {
            let key = ev.data.u64();
            if key == WAKE {
                // Jobs are taken by the main loop; only reset the counter.
                let mut counter = [0u8; 8];
                let _ = rustix::io::read(&*self.wake, &mut counter);
            } else {
                self.on_readable(key, now, buf, out);
            }
        }
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
            self.drive(id, now, out);
        }
    }

    fn start(&mut self, job: Job, out: &mut Vec<u8>) {
        // The socket stays blocking for solo mode, with a bounded wait;
        // the epoll path reads with MSG_DONTWAIT.
        let registered = job.socket.set_read_timeout(Some(SOLO_WAIT)).and_then(|()| {
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
        self.everywhere.fetch_add(1, Ordering::Relaxed);
        self.running.insert(
            job.id,
            Running {
                socket: job.socket,
                peer: job.peer,
                transfer,
                reader: Reader::new(job.content),
                started: Instant::now(),
                wait: WaitChooser::default(),
                waited: None,
            },
        );
        self.drive(job.id, Instant::now(), out);
    }

    fn on_readable(&mut self, id: u64, now: Instant, buf: &mut [u8], out: &mut Vec<u8>) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        // One datagram per readiness: the set is level-triggered, so a
        // second one queued behind it is reported by the next wait, and no
        // read is wasted on finding the queue empty.
        match net::recvfrom(&r.socket, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _, from)) => r.on_datagram(buf.get(..n).unwrap_or_default(), from, now),
            Err(Errno::AGAIN | Errno::INTR) => return,
            // E.g. an ICMP error for an earlier send: the timer retransmits.
            Err(e) => debug!("tftp: recv from {}: {e}", r.peer),
        }
        self.drive(id, now, out);
    }

    /// Feed the core its reads, send what it has, and retire it when done.
    fn drive(&mut self, id: u64, now: Instant, out: &mut Vec<u8>) {
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
        while r.transfer.poll_transmit(now, out) {
            r.send(out);
        }
        if r.transfer.outcome().is_none() {
            r.reader.prefetch();
        }
        if r.transfer.outcome().is_none() && r.transfer.poll_timeout().is_none() {
            r.transfer
                .abort(ErrorCode::NotDefined, "internal error: transfer stalled");
            while r.transfer.poll_transmit(now, out) {
                r.send(out);
            }
        }
        if r.transfer.outcome().is_some()
            && let Some(r) = self.running.remove(&id)
        {
            self.everywhere.fetch_sub(1, Ordering::Relaxed);
            let _ = epoll::delete(&self.epoll, &r.socket);
            (self.done)(Finished {
                id,
                duration: r.started.elapsed(),
                transfer: r.transfer,
            });
        }
    }
}

/// The outcome a finished core reports (a core without one timed out).
pub fn outcome_of(t: &Transfer) -> Outcome {
    t.outcome().cloned().unwrap_or(Outcome::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::transfer::TransferConfig;
    use crate::tftp::wire::{Mode, Options};

    #[test]
    fn solo_only_with_exactly_one_transfer() {
        let mut running = HashMap::new();
        assert_eq!(wait_mode(&running), Wait::Epoll);
        running.insert(7u64, ());
        assert_eq!(wait_mode(&running), Wait::Solo(7));
        running.insert(9, ());
        assert_eq!(wait_mode(&running), Wait::Epoll);
        running.remove(&7);
        assert_eq!(wait_mode(&running), Wait::Solo(9));
    }

    /// A pump on loopback with a job source and the finished transfers.
    struct Rig {
        pump: Pump,
        done: mpsc::Receiver<Finished>,
    }

    fn rig() -> Rig {
        rig_counting(Arc::default())
    }

    /// A rig whose thread counts its transfers in `running`.
    fn rig_counting(running: Arc<AtomicUsize>) -> Rig {
        let (tx, done) = mpsc::channel();
        let pump = Pump::start(running, move |f| {
            let _ = tx.send(f);
        })
        .expect("pump");
        Rig { pump, done }
    }

    /// A client socket that gives up waiting after 5 s.
    fn client() -> UdpSocket {
        let c = UdpSocket::bind("127.0.0.1:0").expect("bind");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c
    }

    /// Submit a transfer of `content` (RFC 1350 defaults: 512-byte blocks,
    /// no OACK) to `client`.
    fn submit(rig: &Rig, id: u64, client: &UdpSocket, content: &[u8], cfg: &TransferConfig) {
        let t = Transfer::new(
            Mode::Octet,
            &Options::default(),
            Some(content.len() as u64),
            cfg,
        )
        .expect("transfer");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rig.pump
            .submit(Job {
                id,
                socket,
                peer: client.local_addr().expect("addr"),
                transfer: t,
                content: Content::Memory(content.to_vec()),
            })
            .expect("submit");
    }

    fn recv(c: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0u8; 600];
        let (n, from) = c.recv_from(&mut buf).expect("a packet within 5 s");
        (buf[..n].to_vec(), from)
    }

    #[test]
    fn a_long_solo_transfer_arrives_whole_whichever_way_it_waits() {
        // 4,000 blocks: long enough for the chooser to measure blocking,
        // try polling and keep one of them; the bytes must not care.
        let rig = rig();
        let data: Vec<u8> = (0..4000 * 512 + 100).map(|i| (i % 253) as u8).collect();
        let a = client();
        submit(&rig, 1, &a, &data, &TransferConfig::default());
        let mut got = Vec::new();
        let mut expect: u16 = 1;
        loop {
            let (p, tid) = recv(&a);
            assert_eq!(p[..4], [0, 3, (expect >> 8) as u8, expect as u8]);
            got.extend_from_slice(&p[4..]);
            a.send_to(&[0, 4, p[2], p[3]], tid).expect("ack");
            if p.len() < 4 + 512 {
                break;
            }
            expect = expect.wrapping_add(1);
        }
        assert!(got == data, "the file arrived changed");
        let f = rig.done.recv_timeout(Duration::from_secs(5)).expect("done");
        assert_eq!(outcome_of(&f.transfer), Outcome::Completed);
        assert_eq!(f.transfer.stats().retransmissions, 0);
    }

    #[test]
    fn threads_sharing_a_count_see_each_others_transfers() {
        // Two threads of one server: while both run a transfer, the count
        // is 2, so neither may poll; finished or abandoned, they leave it.
        let running = Arc::new(AtomicUsize::new(0));
        let one = rig_counting(running.clone());
        let two = rig_counting(running.clone());
        let (a, b) = (client(), client());
        submit(&one, 1, &a, &[1u8; 700], &TransferConfig::default());
        submit(&two, 2, &b, &[2u8; 700], &TransferConfig::default());
        let (p, tid_a) = recv(&a);
        assert_eq!(p[..4], [0, 3, 0, 1]);
        let _ = recv(&b);
        assert_eq!(running.load(Ordering::Relaxed), 2);
        a.send_to(&[0, 4, 0, 1], tid_a).expect("ack");
        let (p, _) = recv(&a);
        assert_eq!(p.len(), 4 + 188);
        a.send_to(&[0, 4, 0, 2], tid_a).expect("ack");
        let f = one.done.recv_timeout(Duration::from_secs(5)).expect("done");
        assert_eq!(outcome_of(&f.transfer), Outcome::Completed);
        assert_eq!(running.load(Ordering::Relaxed), 1);
        // The other is abandoned when its pump is dropped.
        drop(two);
        let deadline = Instant::now() + Duration::from_secs(5);
        while running.load(Ordering::Relaxed) != 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(running.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_second_job_is_not_held_up_by_a_silent_solo_transfer() {
        let rig = rig();
        let cfg = TransferConfig::default();
        let a = client();
        submit(&rig, 1, &a, &[1u8; 700], &cfg);
        let (p, tid_a) = recv(&a);
        assert_eq!(p[..4], [0, 3, 0, 1]);
        // `a` stays silent: its transfer has the thread to itself and
        // blocks in recvfrom. A second job must start long before a's
        // one-second retransmission timeout.
        let b = client();
        let t0 = Instant::now();
        submit(&rig, 2, &b, b"second", &cfg);
        let (p, tid_b) = recv(&b);
        assert_eq!(p, b"\x00\x03\x00\x01second");
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        b.send_to(&[0, 4, 0, 1], tid_b).expect("send");
        let f = rig
            .done
            .recv_timeout(Duration::from_secs(5))
            .expect("b done");
        assert_eq!((f.id, outcome_of(&f.transfer)), (2, Outcome::Completed));
        // Back to one transfer: a goes on.
        a.send_to(&[0, 4, 0, 1], tid_a).expect("send");
        let (p, _) = recv(&a);
        assert_eq!(p.len(), 4 + 700 - 512);
        a.send_to(&[0, 4, 0, 2], tid_a).expect("send");
        let f = rig
            .done
            .recv_timeout(Duration::from_secs(5))
            .expect("a done");
        assert_eq!((f.id, outcome_of(&f.transfer)), (1, Outcome::Completed));
        assert_eq!(f.transfer.stats().retransmissions, 0);
    }

    #[test]
    fn solo_transfer_answers_a_foreign_tid_and_retransmits_on_timeout() {
        let rig = rig();
        let cfg = TransferConfig {
            default_timeout: Duration::from_millis(100),
            max_backoff: Duration::from_millis(100),
            max_retries: 1,
            ..TransferConfig::default()
        };
        let a = client();
        submit(&rig, 1, &a, &[5u8; 600], &cfg);
        let (first, tid) = recv(&a);
        assert_eq!(first[..4], [0, 3, 0, 1]);
        let stranger = client();
        stranger.send_to(&[0, 4, 0, 1], tid).expect("send");
        let (p, from) = recv(&stranger);
        assert_eq!(from, tid);
        assert_eq!(p[..4], [0, 5, 0, 5]);
        // The stranger's ACK did not move the transfer: the next packet to
        // `a` is DATA 1 again, sent by the timer.
        let (again, _) = recv(&a);
        assert_eq!(again, first);
        // A duplicate ACK 0 is not answered; the second timeout ends it.
        let f = rig.done.recv_timeout(Duration::from_secs(5)).expect("done");
        assert_eq!(outcome_of(&f.transfer), Outcome::TimedOut);
        assert_eq!(f.transfer.stats().retransmissions, 1);
    }

    #[test]
    fn dropping_the_pump_stops_a_solo_thread() {
        let rig = rig();
        let a = client();
        submit(&rig, 1, &a, &[0u8; 600], &TransferConfig::default());
        let _ = recv(&a);
        let Rig { pump, done } = rig;
        drop(pump);
        // The thread ends (dropping its callback, which closes the
        // channel) within a few SOLO_WAITs, without finishing the transfer.
        match done.recv_timeout(Duration::from_secs(2)) {
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
            other => panic!("thread still running: {:?}", other.map(|f| f.id)),
        }
    }
}
