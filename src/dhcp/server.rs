//! Thin smol driver for the DHCP core: UDP sockets (socket2: SO_REUSEADDR,
//! SO_BROADCAST, SO_BINDTODEVICE), the clock, the lease file, and group
//! commit.
//!
//! Each wake-up reads every datagram already queued (up to a bound), runs
//! the core on each, appends all durable lease changes of the burst with one
//! write and one fsync, and only then sends the burst's replies: no ACK
//! leaves before the lease it grants is on disk.
//!
//! Replies that RFC 2131 §4.1 would unicast to a client that has no address
//! yet (broadcast flag clear, no giaddr, no ciaddr) are broadcast instead:
//! unicasting to yiaddr needs an ARP entry a UDP socket cannot create.

use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_io::Async;
use socket2::{Domain, Protocol, Socket, Type};

use super::config::{DhcpConfig, Mode};
use super::core::{self, Destination, Event, MachineLookup, Outcome, Reply, ReplyKind, Via};
use super::lease::{LeaseChange, LeaseInfo, LeaseTable, Now};
use super::leasefile::LeaseFile;
use super::packet::MAX_PACKET_LEN;

/// Datagrams handled per group commit at most.
const BATCH: usize = 256;
/// Receive buffer, so that a burst queues while a batch is being fsynced.
const RCVBUF: usize = 1 << 20;
/// Expired leases are kept this long for their old client (1 day).
const EXPIRED_GRACE: u64 = 86_400;
/// How often stale offers and leases are purged from memory.
const PURGE_EVERY: Now = 60;
/// Consecutive receive errors tolerated before the service gives up.
const MAX_RECV_ERRORS: u32 = 100;

/// Lease state shared with the HTTP side (`GET /leases`).
#[derive(Debug)]
pub struct DhcpState {
    pub leases: RefCell<LeaseTable>,
    file: RefCell<Option<LeaseFile>>,
}

impl DhcpState {
    /// Leases in memory only (tests, proxy mode).
    pub fn in_memory() -> Rc<DhcpState> {
        Rc::new(DhcpState {
            leases: RefCell::new(LeaseTable::new()),
            file: RefCell::new(None),
        })
    }

    /// Load `data_dir/leases` (compacting it) and keep appending to it.
    pub fn open(data_dir: &Path) -> io::Result<Rc<DhcpState>> {
        let (file, table, report) = LeaseFile::open(data_dir, unix_now(), EXPIRED_GRACE)?;
        log::info!(
            "{} lease records replayed from {}",
            report.records,
            file.path().display()
        );
        Ok(Rc::new(DhcpState {
            leases: RefCell::new(table),
            file: RefCell::new(Some(file)),
        }))
    }

    /// Live leases, for `GET /leases`.
    pub fn snapshot(&self) -> Vec<LeaseInfo> {
        self.leases.borrow().snapshot(unix_now())
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> Now {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn udp_socket(addr: SocketAddr, interface: Option<&str>) -> io::Result<Async<UdpSocket>> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    if let Err(e) = s.set_recv_buffer_size(RCVBUF) {
        log::debug!("SO_RCVBUF: {e}");
    }
    if let Some(ifname) = interface {
        s.bind_device(Some(ifname.as_bytes())).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind DHCP to interface {ifname}: {e}"),
            )
        })?;
    }
    s.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind DHCP to {addr}: {e}")))?;
    Async::new(UdpSocket::from(s))
}

/// Bound sockets, ready to [`run`](DhcpServer::run).
pub struct DhcpServer {
    cfg: DhcpConfig,
    dhcp: Async<UdpSocket>,
    pxe: Option<Async<UdpSocket>>,
}

impl DhcpServer {
    /// Bind udp/67 (and udp/4011 in proxy mode) as configured.
    pub fn bind(cfg: DhcpConfig) -> io::Result<DhcpServer> {
        cfg.check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let iface = cfg.interface.as_deref();
        let dhcp = udp_socket(cfg.listen, iface)?;
        let pxe = match cfg.mode {
            Mode::Proxy => Some(udp_socket(cfg.pxe_listen, iface)?),
            _ => None,
        };
        Ok(DhcpServer { cfg, dhcp, pxe })
    }

    /// Where the DHCP socket listens.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.dhcp.get_ref().local_addr()
    }

    /// Where the PXE boot-server socket listens (proxy mode).
    pub fn pxe_local_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.pxe.as_ref().map(|s| s.get_ref().local_addr())
    }

    /// Serve until a socket keeps failing. `on_event` gets every
    /// observation (DISCOVER seen, OFFER/ACK sent, ...).
    ///
    /// Group commit, pipelined: while one batch of lease records is being
    /// written and fsynced (on a blocking thread), the next datagrams are
    /// received and decided and their offers sent; their ACKs wait for the
    /// next fsync. At most one fsync is in flight.
    pub async fn run(
        self,
        state: Rc<DhcpState>,
        lookup: Rc<dyn MachineLookup>,
        mut on_event: impl FnMut(Event),
    ) -> io::Result<()> {
        if self.cfg.mode == Mode::Off {
            return Ok(());
        }
        state.leases.borrow_mut().set_pools(&self.cfg.pools);
        let mut buf = vec![0u8; MAX_PACKET_LEN + 1];
        let mut pxe_buf = vec![0u8; MAX_PACKET_LEN + 1];
        let mut last_purge: Now = 0;
        let mut recv_errors = 0u32;
        let mut in_flight: Option<(smol::Task<Committed>, Vec<Addressed>)> = None;
        let mut queued: Vec<LeaseChange> = Vec::new();
        let mut queued_acks: Vec<Addressed> = Vec::new();
        // Set when a commit failed: the table holds changes the file may
        // not, so the next commit rewrites the file from the table.
        let mut resync = false;
        loop {
            let step = match in_flight.as_mut() {
                None => Step::Received(self.recv(&mut buf, &mut pxe_buf).await),
                Some((task, _)) => {
                    futures_lite::future::or(
                        async { Step::Received(self.recv(&mut buf, &mut pxe_buf).await) },
                        async { Step::Committed(task.await) },
                    )
                    .await
                }
            };
            match step {
                Step::Committed((file, result)) => {
                    let acks = in_flight.take().map(|(_, a)| a).unwrap_or_default();
                    match result {
                        Ok(_) => {
                            for (reply, src) in &acks {
                                self.send(reply, *src).await;
                            }
                        }
                        Err(e) => {
                            log::error!(
                                "cannot write lease file {}: {e}; {} ACKs not sent",
                                file.path().display(),
                                acks.len()
                            );
                            resync = true;
                        }
                    }
                    *state.file.borrow_mut() = Some(file);
                }
                Step::Received(received) => {
                    // A failed receive is logged and retried; a socket that
                    // keeps failing ends the service with its error.
                    let first = match received {
                        Ok(first) => {
                            recv_errors = 0;
                            first
                        }
                        Err(e) if recv_errors < MAX_RECV_ERRORS => {
                            recv_errors += 1;
                            log::warn!("receive: {e}");
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let mut batch = vec![first];
                    self.drain(&mut batch, &mut buf);
                    let now = unix_now();
                    if now.saturating_sub(last_purge) >= PURGE_EVERY {
                        state.leases.borrow_mut().purge(now, EXPIRED_GRACE);
                        last_purge = now;
                    }
                    let (replies, durable, events) =
                        self.decide_batch(&state, &*lookup, &batch, now);
                    // Offers and NAKs promise nothing durable: out now. An
                    // ACK waits for its own write, and an ACK from the
                    // lease on record (lease caching, which writes
                    // nothing) for every write before it, this batch's
                    // included: that lease may be in one of them.
                    let pending =
                        in_flight.is_some() || resync || !queued.is_empty() || !durable.is_empty();
                    for (reply, needs_disk, src) in replies {
                        if needs_disk || (pending && reply.kind == ReplyKind::Ack) {
                            queued_acks.push((reply, src));
                        } else {
                            self.send(&reply, src).await;
                        }
                    }
                    queued.extend(durable);
                    for e in events {
                        on_event(e);
                    }
                }
            }
            if in_flight.is_none() && (resync || !queued.is_empty() || !queued_acks.is_empty()) {
                let file = state.file.borrow_mut().take();
                match file {
                    // Leases in memory only: nothing to wait for.
                    None => {
                        queued.clear();
                        for (reply, src) in std::mem::take(&mut queued_acks) {
                            self.send(&reply, src).await;
                        }
                    }
                    Some(file) => {
                        let changes = std::mem::take(&mut queued);
                        let snapshot = {
                            let table = state.leases.borrow();
                            (resync || file.wants_compaction(&table)).then(|| table.clone())
                        };
                        let again = std::mem::take(&mut resync);
                        let task = smol::unblock(move || commit(file, changes, snapshot, again));
                        in_flight = Some((task, std::mem::take(&mut queued_acks)));
                    }
                }
            }
        }
    }

    /// Wait for the next datagram on either socket.
    async fn recv(
        &self,
        buf: &mut [u8],
        pxe_buf: &mut [u8],
    ) -> io::Result<(Via, Vec<u8>, SocketAddr)> {
        match &self.pxe {
            None => {
                let (n, src) = self.dhcp.recv_from(buf).await?;
                Ok((Via::Dhcp, buf.get(..n).unwrap_or_default().to_vec(), src))
            }
            Some(pxe) => {
                let a = async {
                    let (n, src) = self.dhcp.recv_from(buf).await?;
                    io::Result::Ok((Via::Dhcp, buf.get(..n).unwrap_or_default().to_vec(), src))
                };
                let b = async {
                    let (n, src) = pxe.recv_from(pxe_buf).await?;
                    io::Result::Ok((
                        Via::PxeDiscovery,
                        pxe_buf.get(..n).unwrap_or_default().to_vec(),
                        src,
                    ))
                };
                futures_lite::future::or(a, b).await
            }
        }
    }

    /// Read every datagram already queued, up to [`BATCH`].
    fn drain(&self, batch: &mut Vec<(Via, Vec<u8>, SocketAddr)>, buf: &mut [u8]) {
        let sockets = [
            (Via::Dhcp, Some(&self.dhcp)),
            (Via::PxeDiscovery, self.pxe.as_ref()),
        ];
        for (via, sock) in sockets {
            let Some(sock) = sock else { continue };
            while batch.len() < BATCH {
                match sock.get_ref().recv_from(buf) {
                    Ok((n, src)) => {
                        batch.push((via, buf.get(..n).unwrap_or_default().to_vec(), src))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        log::debug!("recv: {e}");
                        break;
                    }
                }
            }
        }
    }

    /// Run the core on each datagram, applying lease changes as it goes so
    /// later datagrams of the burst see them.
    #[allow(clippy::type_complexity)]
    fn decide_batch(
        &self,
        state: &DhcpState,
        lookup: &dyn MachineLookup,
        batch: &[(Via, Vec<u8>, SocketAddr)],
        now: Now,
    ) -> (Vec<(Reply, bool, SocketAddr)>, Vec<LeaseChange>, Vec<Event>) {
        let mut replies = Vec::new();
        let mut durable = Vec::new();
        let mut events = Vec::new();
        let mut table = state.leases.borrow_mut();
        for (via, bytes, src) in batch {
            if bytes.len() > MAX_PACKET_LEN {
                log::debug!("oversized datagram from {src} dropped");
                continue;
            }
            let outcome: Outcome = match core::handle(&self.cfg, &table, lookup, bytes, *via, now) {
                Ok(o) => o,
                Err(e) => {
                    log::debug!("dropped datagram from {src}: {e}");
                    continue;
                }
            };
            let needs = outcome.needs_durability();
            for c in &outcome.changes {
                table.apply(c);
                if c.is_durable() {
                    durable.push(c.clone());
                }
            }
            if let Some(r) = outcome.reply {
                replies.push((r, needs, *src));
            }
            events.extend(outcome.events);
        }
        (replies, durable, events)
    }

    async fn send(&self, reply: &Reply, src: SocketAddr) {
        let bcast = || SocketAddr::from((Ipv4Addr::BROADCAST, self.cfg.client_port));
        let to = match reply.to {
            Destination::Relay(g) => SocketAddr::from((g, self.cfg.relay_port)),
            Destination::Unicast(ip) => SocketAddr::from((ip, self.cfg.client_port)),
            Destination::Broadcast | Destination::UnconfiguredClient { .. } => bcast(),
            Destination::Source => src,
        };
        let sock = match (reply.via, &self.pxe) {
            (Via::PxeDiscovery, Some(p)) => p,
            _ => &self.dhcp,
        };
        if let Err(e) = sock.send_to(&reply.bytes, to).await {
            log::warn!("send {:?} to {to}: {e}", reply.kind);
        }
    }
}

/// A reply with the source address of the datagram it answers.
type Addressed = (Reply, SocketAddr);

/// The lease file back from a commit, with the append's result.
type Committed = (LeaseFile, io::Result<usize>);

/// What woke the driver up.
enum Step {
    Received(io::Result<(Via, Vec<u8>, SocketAddr)>),
    Committed(Committed),
}

/// Make a batch's durable changes durable: one append, one fsync (runs on a
/// blocking thread). Compacts afterwards when `snapshot` is given; when
/// `resync` is set (an earlier commit failed) the batch counts as written
/// only once that compaction is.
fn commit(
    mut file: LeaseFile,
    changes: Vec<LeaseChange>,
    snapshot: Option<LeaseTable>,
    resync: bool,
) -> Committed {
    let mut result = file.append(&changes);
    if result.is_ok()
        && let Some(table) = snapshot
        && let Err(e) = file.compact(&table)
    {
        if resync {
            result = Err(e);
        } else {
            log::error!("cannot compact lease file: {e}");
        }
    }
    (file, result)
}

/// Bind and serve: the whole DHCP service in one call.
pub async fn serve(
    cfg: DhcpConfig,
    state: Rc<DhcpState>,
    lookup: Rc<dyn MachineLookup>,
    on_event: impl FnMut(Event),
) -> io::Result<()> {
    if cfg.mode == Mode::Off {
        return Ok(());
    }
    DhcpServer::bind(cfg)?.run(state, lookup, on_event).await
}
