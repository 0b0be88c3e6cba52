//! The syslog receiver: installers' log lines filed on their machines, and
//! the install time-out.
//!
//! Layer: driver (async, on the executor). One UDP socket (RFC 5426: a
//! datagram is a message) and, on the same port, a TCP listener (RFC 6587:
//! anaconda's rsyslog forwards over TCP with `\n` framing, and octet
//! counting is understood too). Each message is parsed by the pure
//! [`gopxe_proto::syslog`] and filed on the machine at the sender's
//! address ([`App::machine_by_address`], a few map look-ups, no scan of
//! the records) as an [`EventKind::Syslog`] event, bounded per machine by
//! `EventLog::SYSLOG_CAPACITY`. A line from an address no machine is known
//! at is counted (`gopxe_syslog_lines_total{outcome="unknown_source"}`)
//! and dropped, with one debug line a second at most. A line that says the
//! install failed ([`syslog::is_install_failure`]) turns an `installing`
//! machine `failed` in a task of its own: the receive loop never waits for
//! the store, and logging never blocks it (the log is a bounded queue,
//! [`crate::logging`]).
//!
//! [`spawn_timeout`] drives the install time-out: the pure
//! [`App::fail_overdue`] with the wall clock, then a sleep until the next
//! install can be overdue.

use crate::app::{App, now_ms};
use crate::model::{EventKind, MachineState};
use gopxe_proto::syslog;
use smol::LocalExecutor;
use std::cell::Cell;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

/// The largest datagram read; longer ones are cut (RFC 5426 §3.2 asks
/// receivers for 2048 octets at least).
const MAX_DATAGRAM: usize = 8192;
/// The longest TCP frame; a longer line is cut into pieces.
const MAX_FRAME: usize = 8192;
/// TCP connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// How often the time-out is looked at, at the longest (a clock set
/// forward or back is noticed within this).
const MAX_TIMER_SLEEP: Duration = Duration::from_secs(60);

/// The bound sockets of the receiver.
pub struct Receiver {
    udp: async_io::Async<UdpSocket>,
    tcp: Option<async_io::Async<TcpListener>>,
    pub local: SocketAddr,
}

/// Binds the receiver on `listen`: UDP, then TCP on the same port (a TCP
/// port that cannot be had leaves UDP alone, with a warning).
pub fn bind(listen: SocketAddr) -> std::io::Result<Receiver> {
    let udp = UdpSocket::bind(listen)?;
    let local = udp.local_addr()?;
    let udp = async_io::Async::new(udp)?;
    let tcp = match TcpListener::bind(local).and_then(async_io::Async::new) {
        Ok(t) => Some(t),
        Err(e) => {
            log::warn!("syslog: udp only, cannot listen on tcp {local}: {e}");
            None
        }
    };
    Ok(Receiver { udp, tcp, local })
}

/// What the receive loops share: the app and the debug-line limiter.
struct Filer {
    app: Rc<App>,
    ex: Rc<LocalExecutor<'static>>,
    /// The second of the last debug line about an unknown source.
    last_unknown_s: Cell<u64>,
}

impl Filer {
    /// Files one message from `peer`.
    fn file(&self, peer: IpAddr, bytes: &[u8]) {
        let app = &self.app;
        let Some(id) = app.machine_by_address(peer) else {
            app.metrics.syslog_line("unknown_source");
            let now_s = now_ms() / 1000;
            if log::log_enabled!(log::Level::Debug) && self.last_unknown_s.replace(now_s) != now_s {
                log::debug!("syslog: line from {peer}, where no machine is known, dropped");
            }
            return;
        };
        app.metrics.syslog_line("filed");
        let msg = syslog::parse(bytes);
        let detail = msg.to_string();
        let failed = syslog::is_install_failure(&msg)
            && app
                .records()
                .machines
                .get(&id)
                .is_some_and(|m| m.state == MachineState::Installing);
        app.event_at(log::Level::Debug, id, EventKind::Syslog, detail.clone());
        if failed {
            let app = app.clone();
            self.ex
                .spawn(async move {
                    let why = format!("install failed: the installer logged `{detail}`");
                    if let Err(e) = app.fail(&id, &why).await {
                        log::debug!("machine {id}: not failed: {e:?}");
                    }
                })
                .detach();
        }
    }
}

/// Spawns the receive loops of `r`.
pub fn spawn(ex: &Rc<LocalExecutor<'static>>, app: &Rc<App>, r: Receiver) {
    let filer = Rc::new(Filer {
        app: app.clone(),
        ex: ex.clone(),
        last_unknown_s: Cell::new(u64::MAX),
    });
    let udp_filer = filer.clone();
    let udp = r.udp;
    ex.spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match udp.recv_from(&mut buf).await {
                Ok((n, peer)) => udp_filer.file(peer.ip(), buf.get(..n).unwrap_or_default()),
                Err(e) => {
                    log::warn!("syslog: udp receive: {e}");
                    async_io::Timer::after(Duration::from_millis(100)).await;
                }
            }
        }
    })
    .detach();
    let Some(tcp) = r.tcp else { return };
    let ex2 = ex.clone();
    ex.spawn(async move {
        let open = Rc::new(Cell::new(0usize));
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("syslog: tcp accept: {e}");
                    async_io::Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if open.get() >= MAX_CONNECTIONS {
                log::debug!("syslog: {peer}: too many connections, closed");
                continue;
            }
            open.set(open.get() + 1);
            let (filer, open) = (filer.clone(), open.clone());
            ex2.spawn(async move {
                read_stream(&filer, stream, peer.ip()).await;
                open.set(open.get().saturating_sub(1));
            })
            .detach();
        }
    })
    .detach();
}

/// Reads one TCP connection to its end, filing each frame.
async fn read_stream(
    filer: &Filer,
    mut stream: async_io::Async<std::net::TcpStream>,
    peer: IpAddr,
) {
    use futures_lite::AsyncReadExt;
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_FRAME);
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let (frames, used) = syslog::split_frames(&buf, MAX_FRAME);
        for f in frames {
            filer.file(peer, f);
        }
        buf.drain(..used.min(buf.len()));
    }
    if !buf.is_empty() {
        filer.file(peer, &buf);
    }
}

/// Spawns the install time-out's timer (nothing when `install_timeout`
/// is 0).
pub fn spawn_timeout(ex: &Rc<LocalExecutor<'static>>, app: &Rc<App>) {
    if app.config.install_timeout_ms == 0 {
        return;
    }
    let app = app.clone();
    ex.spawn(async move {
        loop {
            let now = now_ms();
            let Some(next) = app.fail_overdue(now).await else {
                return;
            };
            let wait = Duration::from_millis(next.saturating_sub(now_ms()))
                .clamp(Duration::from_millis(200), MAX_TIMER_SLEEP);
            async_io::Timer::after(wait).await;
        }
    })
    .detach();
}
