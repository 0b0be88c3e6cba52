//! A TFTP read client: RFC 1350 with option negotiation (RFC 2347),
//! blksize (RFC 2348), tsize (RFC 2349) and windowsize (RFC 7440).
//!
//! The receiver side of the protocol: ACK the last block of each window,
//! on a gap ACK the last block received in order (once per window), on a
//! timeout send the RRQ again (nothing heard yet) or the last ACK. Packets
//! from a port other than the transfer's are counted and dropped.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::dhcp::Retry;

/// `send_to` through the impairment. A failed send (a firewall's EPERM, a
/// full buffer) is counted and treated as a lost packet: the timeout and
/// retransmission recover from it, as they would on the wire.
fn send(sock: &UdpSocket, b: &[u8], to: SocketAddr) -> std::io::Result<usize> {
    if crate::impair::on_send() {
        return Ok(b.len());
    }
    sock.send_to(b, to).or_else(|_| {
        crate::SEND_ERRORS.fetch_add(1, Ordering::Relaxed);
        Ok(0)
    })
}

const RRQ: u16 = 1;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub blksize: u16,
    pub windowsize: u16,
    pub tsize: bool,
}

/// What a finished transfer returns.
#[derive(Debug, Default)]
pub struct Got {
    pub bytes: u64,
    /// The file's content, when asked to keep it.
    pub body: Vec<u8>,
    pub tsize: Option<u64>,
}

pub fn rrq(file: &str, o: &Options) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + file.len());
    b.extend_from_slice(&RRQ.to_be_bytes());
    let mut s = |x: &str| {
        b.extend_from_slice(x.as_bytes());
        b.push(0);
    };
    s(file);
    s("octet");
    if o.blksize != 512 {
        s("blksize");
        s(&o.blksize.to_string());
    }
    if o.tsize {
        s("tsize");
        s("0");
    }
    if o.windowsize > 1 {
        s("windowsize");
        s(&o.windowsize.to_string());
    }
    b
}

fn ack(block: u16) -> [u8; 4] {
    let b = block.to_be_bytes();
    [0, ACK as u8, b[0], b[1]]
}

/// A parsed server packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Data(u16, &'a [u8]),
    Oack(Vec<(String, String)>),
    Error(u16, String),
}

pub fn parse(b: &[u8]) -> Result<Packet<'_>, &'static str> {
    if b.len() < 4 {
        return Err("short packet");
    }
    let op = u16::from_be_bytes([b[0], b[1]]);
    let rest = &b[2..];
    match op {
        DATA => Ok(Packet::Data(u16::from_be_bytes([b[2], b[3]]), &b[4..])),
        ERROR => {
            let code = u16::from_be_bytes([b[2], b[3]]);
            let msg = &b[4..];
            let end = msg.iter().position(|&c| c == 0).unwrap_or(msg.len());
            Ok(Packet::Error(
                code,
                String::from_utf8_lossy(&msg[..end]).into_owned(),
            ))
        }
        OACK => {
            let Some(body) = rest.strip_suffix(&[0]) else {
                return Err("OACK not NUL-terminated");
            };
            let fields: Vec<&[u8]> = body.split(|&c| c == 0).collect();
            if !fields.len().is_multiple_of(2) {
                return Err("OACK option without a value");
            }
            let mut opts = Vec::new();
            for kv in fields.chunks(2) {
                let k = std::str::from_utf8(kv[0]).map_err(|_| "OACK not UTF-8")?;
                let v = std::str::from_utf8(kv[1]).map_err(|_| "OACK not UTF-8")?;
                opts.push((k.to_ascii_lowercase(), v.to_string()));
            }
            Ok(Packet::Oack(opts))
        }
        _ => Err("unexpected opcode"),
    }
}

/// Counters a transfer adds to.
pub struct Counters<'a> {
    pub retrans: &'a AtomicU64,
    pub malformed: &'a AtomicU64,
}

/// Where and how to read files.
pub struct Transfer {
    pub bind: SocketAddr,
    pub server: SocketAddr,
    pub opts: Options,
    pub retry: Retry,
    pub give_up: Instant,
}

/// Read `file`; keep the body if `keep` (config files).
pub fn get(t: &Transfer, file: &str, keep: bool, c: &Counters) -> Result<Got, String> {
    let Transfer {
        bind,
        server,
        opts: ref o,
        retry,
        give_up,
    } = *t;
    let sock = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
    let req = rrq(file, o);
    send(&sock, &req, server).map_err(|e| format!("send: {e}"))?;
    let mut got = Got::default();
    let mut peer: Option<SocketAddr> = None;
    let mut blksize = 512usize;
    let mut window = 1u16;
    let mut next: u16 = 1; // the block expected
    let mut in_window = 0u16;
    let mut gap_acked = false;
    let mut timeout = retry.timeout;
    let mut timeouts = 0u32;
    let mut buf = vec![0u8; 65536];
    loop {
        if Instant::now() >= give_up {
            return Err("phase deadline passed".into());
        }
        sock.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                timeouts += 1;
                if timeouts > retry.retries {
                    return Err(format!(
                        "timeout after {} retransmissions at block {}",
                        retry.retries,
                        next.wrapping_sub(1)
                    ));
                }
                c.retrans.fetch_add(1, Ordering::Relaxed);
                match peer {
                    None => send(&sock, &req, server),
                    Some(p) => send(&sock, &ack(next.wrapping_sub(1)), p),
                }
                .map_err(|e| format!("send: {e}"))?;
                in_window = 0;
                timeout = (timeout * 2).min(retry.max_timeout);
                continue;
            }
            Err(e) => return Err(format!("recv: {e}")),
        };
        if crate::impair::on_recv() {
            continue;
        }
        if peer.is_some_and(|p| p != from) || from.ip() != server.ip() {
            c.malformed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let pkt = match parse(&buf[..n]) {
            Ok(p) => p,
            Err(_) => {
                c.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let first = peer.is_none();
        match pkt {
            Packet::Error(code, msg) => return Err(format!("server error {code}: {msg}")),
            Packet::Oack(opts) => {
                if !first && next != 1 {
                    c.malformed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                peer = Some(from);
                for (k, v) in opts {
                    let num: Option<u64> = v.parse().ok();
                    match (k.as_str(), num) {
                        ("blksize", Some(b))
                            if (8..=65464).contains(&b) && b <= u64::from(o.blksize) =>
                        {
                            blksize = b as usize
                        }
                        ("windowsize", Some(w))
                            if (1..=u64::from(o.windowsize.max(1))).contains(&w) =>
                        {
                            window = w as u16
                        }
                        ("tsize", Some(t)) => got.tsize = Some(t),
                        ("timeout", Some(_)) => {}
                        _ => return Err(format!("bad OACK option {k}={v}")),
                    }
                }
                timeouts = 0;
                timeout = retry.timeout;
                send(&sock, &ack(0), from).map_err(|e| format!("send: {e}"))?;
            }
            Packet::Data(block, data) => {
                peer = Some(from);
                if data.len() > blksize {
                    c.malformed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if block == next {
                    timeouts = 0;
                    timeout = retry.timeout;
                    gap_acked = false;
                    got.bytes += data.len() as u64;
                    if keep {
                        if got.body.len() + data.len() > 1 << 20 {
                            return Err("kept file larger than 1 MiB".into());
                        }
                        got.body.extend_from_slice(data);
                    }
                    next = next.wrapping_add(1);
                    in_window += 1;
                    let last = data.len() < blksize;
                    if last || in_window >= window {
                        send(&sock, &ack(block), from).map_err(|e| format!("send: {e}"))?;
                        in_window = 0;
                    }
                    if last {
                        if let Some(t) = got.tsize.filter(|&t| t != got.bytes) {
                            return Err(format!("tsize {t} but {} bytes received", got.bytes));
                        }
                        return Ok(got);
                    }
                } else if block.wrapping_sub(next) < 0x8000 {
                    // Ahead of the expected block: one lost; ACK what we have.
                    if !gap_acked {
                        gap_acked = true;
                        c.retrans.fetch_add(1, Ordering::Relaxed);
                        send(&sock, &ack(next.wrapping_sub(1)), from)
                            .map_err(|e| format!("send: {e}"))?;
                        in_window = 0;
                    }
                } else if window == 1 && block == next.wrapping_sub(1) {
                    // Our ACK was lost and the server sent the block again.
                    send(&sock, &ack(block), from).map_err(|e| format!("send: {e}"))?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrq_carries_options() {
        let o = Options {
            blksize: 1468,
            windowsize: 4,
            tsize: true,
        };
        let b = rrq("pxelinux.0", &o);
        assert_eq!(
            b,
            b"\0\x01pxelinux.0\0octet\0blksize\x001468\0tsize\x000\0windowsize\x004\0".to_vec()
        );
    }

    #[test]
    fn parse_is_total() {
        assert!(parse(b"").is_err());
        assert!(parse(b"\0\x06blksize\0").is_err());
        assert!(parse(b"\0\x06blk").is_err());
        assert_eq!(
            parse(b"\0\x06blksize\x001468\0").unwrap(),
            Packet::Oack(vec![("blksize".into(), "1468".into())])
        );
        assert_eq!(parse(b"\0\x03\0\x01ab").unwrap(), Packet::Data(1, b"ab"));
        assert!(matches!(
            parse(b"\0\x05\0\x01nope"),
            Ok(Packet::Error(1, _))
        ));
        assert!(parse(b"\0\x09\0\x01").is_err());
    }
}
