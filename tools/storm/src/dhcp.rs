//! DHCPv4 (RFC 2131/2132) as PXE firmware speaks it (PXE 2.1, RFC 4578),
//! sent through a relay agent: the tool is the relay (giaddr = its own
//! address) so the server answers to `giaddr:relay-port` and the storm runs
//! on loopback or across a veth pair with one UDP socket for all clients.
//!
//! Replies are checked field by field; anything short or malformed is an
//! error value, never a panic.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;

const COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Who the simulated client is.
#[derive(Clone, Debug)]
pub struct Identity {
    pub mac: [u8; 6],
    /// SMBIOS UUID bytes as option 97 carries them.
    pub uuid: [u8; 16],
}

/// A client message as a BIOS PXE ROM sends it, relay fields filled.
pub fn build(
    msg: u8,
    id: &Identity,
    xid: u32,
    secs: u16,
    giaddr: Ipv4Addr,
    requested: Option<(Ipv4Addr, Ipv4Addr)>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(400);
    b.extend_from_slice(&[1, 1, 6, 1]); // op, htype, hlen, hops
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&secs.to_be_bytes());
    b.extend_from_slice(&0x8000u16.to_be_bytes()); // broadcast, as PXE ROMs set it
    b.extend_from_slice(&[0; 12]); // ciaddr, yiaddr, siaddr
    b.extend_from_slice(&giaddr.octets());
    b.extend_from_slice(&id.mac);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&COOKIE);
    let mut opt = |code: u8, v: &[u8]| {
        b.push(code);
        b.push(v.len() as u8);
        b.extend_from_slice(v);
    };
    opt(53, &[msg]);
    if let Some((ip, server)) = requested {
        opt(50, &ip.octets());
        opt(54, &server.octets());
    }
    opt(57, &1472u16.to_be_bytes());
    opt(
        55,
        &[
            1, 3, 6, 12, 15, 28, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135,
        ],
    );
    opt(60, b"PXEClient:Arch:00000:UNDI:002001");
    opt(93, &[0, 0]);
    opt(94, &[1, 2, 1]);
    let mut guid = [0u8; 17];
    guid[1..].copy_from_slice(&id.uuid);
    opt(97, &guid);
    let mut cid = [1u8; 7];
    cid[1..].copy_from_slice(&id.mac);
    opt(61, &cid);
    b.push(255);
    b.resize(b.len().max(300), 0);
    b
}

/// The fields of a server reply the client acts on.
#[derive(Clone, Debug)]
pub struct Reply {
    pub xid: u32,
    pub msg_type: u8,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub server_id: Option<Ipv4Addr>,
    pub chaddr: [u8; 6],
    /// Boot file name: option 67, else the `file` header field.
    pub file: Option<String>,
    /// TFTP server: option 66 if it is a dotted quad, else siaddr.
    pub next_server: Option<Ipv4Addr>,
}

fn ip4(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
}

fn cstr(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = std::str::from_utf8(&b[..end]).ok()?.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Parse a BOOTREPLY; `Err` names what is wrong.
pub fn parse(b: &[u8]) -> Result<Reply, &'static str> {
    if b.len() < 240 {
        return Err("short packet");
    }
    if b[0] != 2 {
        return Err("not a BOOTREPLY");
    }
    if b[236..240] != COOKIE {
        return Err("bad magic cookie");
    }
    let mut r = Reply {
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        msg_type: 0,
        yiaddr: ip4(&b[16..20]).unwrap_or(Ipv4Addr::UNSPECIFIED),
        siaddr: ip4(&b[20..24]).unwrap_or(Ipv4Addr::UNSPECIFIED),
        server_id: None,
        chaddr: [0; 6],
        file: None,
        next_server: None,
    };
    r.chaddr.copy_from_slice(&b[28..34]);
    let header_file = cstr(&b[108..236]);
    let mut opt66 = None;
    let mut i = 240;
    loop {
        let Some(&code) = b.get(i) else {
            return Err("options run past the end");
        };
        match code {
            255 => break,
            0 => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let len = usize::from(*b.get(i + 1).ok_or("option length missing")?);
        let v = b
            .get(i + 2..i + 2 + len)
            .ok_or("option runs past the end")?;
        match code {
            53 => r.msg_type = *v.first().ok_or("empty option 53")?,
            54 => r.server_id = ip4(v),
            66 => opt66 = cstr(v),
            67 => r.file = cstr(v),
            _ => {}
        }
        i += 2 + len;
    }
    if r.msg_type == 0 {
        return Err("no message type");
    }
    if r.file.is_none() {
        r.file = header_file;
    }
    r.next_server = opt66
        .and_then(|s| s.parse().ok())
        .or((!r.siaddr.is_unspecified()).then_some(r.siaddr));
    Ok(r)
}

type Waiters = Arc<Mutex<HashMap<u32, mpsc::Sender<Reply>>>>;

/// The relay socket shared by all clients: one thread receives and hands
/// each reply to the client waiting on its xid.
pub struct Relay {
    sock: UdpSocket,
    pub server: SocketAddr,
    pub giaddr: Ipv4Addr,
    waiters: Waiters,
    stop: Arc<AtomicBool>,
    pub malformed: Arc<AtomicU64>,
    pub stray: Arc<AtomicU64>,
}

impl Relay {
    pub fn bind(
        local: SocketAddr,
        server: SocketAddr,
        giaddr: Option<Ipv4Addr>,
    ) -> std::io::Result<Arc<Relay>> {
        let sock = UdpSocket::bind(local)?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let giaddr = match (giaddr, sock.local_addr()?) {
            (Some(g), _) => g,
            (None, SocketAddr::V4(a)) => *a.ip(),
            (None, SocketAddr::V6(_)) => Ipv4Addr::LOCALHOST,
        };
        let relay = Arc::new(Relay {
            sock,
            server,
            giaddr,
            waiters: Arc::default(),
            stop: Arc::default(),
            malformed: Arc::default(),
            stray: Arc::default(),
        });
        let r = relay.clone();
        std::thread::Builder::new()
            .name("dhcp-relay".into())
            .spawn(move || r.receive_loop())?;
        Ok(relay)
    }

    fn receive_loop(&self) {
        let mut buf = [0u8; 2048];
        while !self.stop.load(Ordering::Relaxed) {
            let n = match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => n,
                Err(_) => continue, // timeout: look at the stop flag again
            };
            match parse(&buf[..n]) {
                Ok(r) => {
                    let tx = self
                        .waiters
                        .lock()
                        .ok()
                        .and_then(|w| w.get(&r.xid).cloned());
                    match tx {
                        Some(tx) => {
                            let _ = tx.send(r);
                        }
                        None => {
                            self.stray.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Err(_) => {
                    self.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn register(&self, xid: u32) -> mpsc::Receiver<Reply> {
        let (tx, rx) = mpsc::channel();
        if let Ok(mut w) = self.waiters.lock() {
            w.insert(xid, tx);
        }
        rx
    }

    fn unregister(&self, xid: u32) {
        if let Ok(mut w) = self.waiters.lock() {
            w.remove(&xid);
        }
    }
}

/// Retry policy of one exchange.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub timeout: Duration,
    pub max_timeout: Duration,
    pub retries: u32,
}

/// The outcome of a DORA.
#[derive(Clone, Debug)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub next_server: Option<Ipv4Addr>,
    pub file: Option<String>,
}

/// One DISCOVER/OFFER/REQUEST/ACK; `retrans` counts packets sent again.
pub fn dora(
    relay: &Relay,
    id: &Identity,
    xid: u32,
    retry: Retry,
    retrans: &AtomicU64,
) -> Result<Lease, String> {
    let rx = relay.register(xid);
    let out = dora_inner(relay, id, xid, retry, retrans, &rx);
    relay.unregister(xid);
    out
}

fn dora_inner(
    relay: &Relay,
    id: &Identity,
    xid: u32,
    retry: Retry,
    retrans: &AtomicU64,
    rx: &mpsc::Receiver<Reply>,
) -> Result<Lease, String> {
    let start = Instant::now();
    let secs = || start.elapsed().as_secs().min(u64::from(u16::MAX)) as u16;
    let discover = build(DISCOVER, id, xid, 0, relay.giaddr, None);
    let offer = exchange(relay, &discover, retry, retrans, rx, |r| {
        (r.msg_type == OFFER && r.chaddr == id.mac).then_some(())
    })
    .map_err(|e| format!("DISCOVER: {e}"))?;
    if offer.yiaddr.is_unspecified() {
        return Err("OFFER without an address".into());
    }
    let sid = offer
        .server_id
        .ok_or_else(|| "OFFER without a server identifier".to_string())?;
    let request = build(
        REQUEST,
        id,
        xid,
        secs(),
        relay.giaddr,
        Some((offer.yiaddr, sid)),
    );
    let ack = exchange(relay, &request, retry, retrans, rx, |r| {
        (r.chaddr == id.mac && matches!(r.msg_type, ACK | NAK)).then_some(())
    })
    .map_err(|e| format!("REQUEST: {e}"))?;
    if ack.msg_type == NAK {
        return Err("NAK".into());
    }
    if ack.yiaddr != offer.yiaddr {
        return Err(format!(
            "ACK for {} after OFFER of {}",
            ack.yiaddr, offer.yiaddr
        ));
    }
    Ok(Lease {
        ip: ack.yiaddr,
        next_server: ack.next_server.or(offer.next_server),
        file: ack.file.or(offer.file),
    })
}

/// Send, wait for a matching reply, send again on timeout (doubling).
fn exchange(
    relay: &Relay,
    pkt: &[u8],
    retry: Retry,
    retrans: &AtomicU64,
    rx: &mpsc::Receiver<Reply>,
    accept: impl Fn(&Reply) -> Option<()>,
) -> Result<Reply, String> {
    // Replies to an earlier phase of this xid (e.g. a late OFFER) are dropped.
    while rx.try_recv().is_ok() {}
    let mut timeout = retry.timeout;
    for attempt in 0..=retry.retries {
        if attempt > 0 {
            retrans.fetch_add(1, Ordering::Relaxed);
        }
        // A failed send is a lost packet: the timeout recovers from it.
        if !crate::impair::on_send() && relay.sock.send_to(pkt, relay.server).is_err() {
            crate::SEND_ERRORS.fetch_add(1, Ordering::Relaxed);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(_) if crate::impair::on_recv() => continue,
                Ok(r) if accept(&r).is_some() => return Ok(r),
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err("relay closed".into()),
            }
        }
        timeout = (timeout * 2).min(retry.max_timeout);
    }
    Err(format!("no reply after {} sends", retry.retries + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            mac: [0x52, 0x54, 0, 1, 2, 3],
            uuid: [7; 16],
        }
    }

    #[test]
    fn build_then_parse_as_reply() {
        let mut b = build(DISCOVER, &id(), 0x1234, 0, Ipv4Addr::LOCALHOST, None);
        b[0] = 2;
        let r = parse(&b).unwrap();
        assert_eq!(r.xid, 0x1234);
        assert_eq!(r.msg_type, DISCOVER);
        assert_eq!(r.chaddr, id().mac);
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[2; 239]).is_err());
        let mut b = build(OFFER, &id(), 1, 0, Ipv4Addr::LOCALHOST, None);
        b[0] = 2;
        // Truncate inside the options, and a length running off the end.
        for cut in 240..260 {
            let _ = parse(&b[..cut]);
        }
        let mut bad = b[..242].to_vec();
        bad[241] = 200;
        assert!(parse(&bad).is_err());
        for i in 0..b.len() {
            let mut m = b.clone();
            m[i] ^= 0xff;
            let _ = parse(&m);
        }
    }
}
