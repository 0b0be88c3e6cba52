//! The DHCP driver over loopback: the test acts as a relay agent
//! (giaddr 127.0.0.1, option 82) and receives the replies on its own port;
//! leases survive a restart of the server. Proxy mode answers the PXE
//! boot-server request on its second port. 127.0.0.1 only.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use gopxe::dhcp::{
    DhcpConfig, DhcpServer, DhcpState, Event, EventKind, Loader, MachineLookup, MachineQuery,
    MachineView, Mode,
};

const LOOP: Ipv4Addr = Ipv4Addr::LOCALHOST;
const AGENT: [u8; 8] = [1, 6, b'p', b'o', b'r', b't', b'-', b'7'];

fn mac(n: u8) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0xab, 0xcd, n]
}

/// One iPXE machine is known; the rest are not.
struct Lab;

impl MachineLookup for Lab {
    fn lookup(&self, q: &MachineQuery) -> Option<MachineView> {
        (q.mac == mac(1)).then(|| MachineView {
            loader: Loader::Ipxe,
            hostname: Some("node-1".into()),
            ..MachineView::default()
        })
    }
}

/// A relayed client message as iPXE (BIOS) sends it, relay fields filled.
fn packet(msg_type: u8, n: u8, xid: u32, extra: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = vec![1u8, 1, 6, 1];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 0]); // secs, flags
    b.extend_from_slice(&[0; 12]); // ciaddr, yiaddr, siaddr
    b.extend_from_slice(&LOOP.octets()); // giaddr
    b.extend_from_slice(&mac(n));
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&[99, 130, 83, 99]);
    let mut cid = vec![1];
    cid.extend_from_slice(&mac(n));
    let mut opts: Vec<(u8, &[u8])> = vec![
        (53, std::slice::from_ref(&msg_type)),
        (60, b"PXEClient:Arch:00000:UNDI:002001"),
        (93, &[0, 0]),
        (77, b"iPXE"),
        (61, &cid),
    ];
    opts.extend_from_slice(extra);
    opts.push((82, &AGENT));
    for (c, v) in opts {
        b.push(c);
        b.push(v.len() as u8);
        b.extend_from_slice(v);
    }
    b.push(255);
    b.resize(b.len().max(300), 0);
    b
}

/// Minimal reply reader: (xid, yiaddr, message type, file option).
struct Reply {
    xid: u32,
    yiaddr: Ipv4Addr,
    msg_type: u8,
    file: Option<String>,
    agent: Option<Vec<u8>>,
}

fn parse(b: &[u8]) -> Reply {
    assert!(b.len() >= 240 && b[0] == 2, "not a BOOTREPLY");
    let mut r = Reply {
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        yiaddr: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
        msg_type: 0,
        file: None,
        agent: None,
    };
    let mut i = 240;
    while i < b.len() && b[i] != 255 {
        if b[i] == 0 {
            i += 1;
            continue;
        }
        let (c, len) = (b[i], usize::from(b[i + 1]));
        let v = &b[i + 2..i + 2 + len];
        match c {
            53 => r.msg_type = v[0],
            67 => r.file = Some(String::from_utf8(v.to_vec()).unwrap()),
            82 => r.agent = Some(v.to_vec()),
            _ => {}
        }
        i += 2 + len;
    }
    r
}

struct Running {
    addr: SocketAddr,
    pxe: Option<SocketAddr>,
    stop: smol::channel::Sender<()>,
    thread: JoinHandle<Vec<Event>>,
}

impl Running {
    fn stop(self) -> Vec<Event> {
        let _ = self.stop.try_send(());
        self.thread.join().unwrap()
    }
}

/// Start the driver on its own thread (its state is `!Send`).
fn start(cfg: DhcpConfig, data: Option<PathBuf>) -> Running {
    let (tx, rx) = mpsc::channel();
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let thread = std::thread::spawn(move || {
        let server = DhcpServer::bind(cfg).unwrap();
        let pxe = server.pxe_local_addr().map(|a| a.unwrap());
        tx.send((server.local_addr().unwrap(), pxe)).unwrap();
        let state = match &data {
            Some(d) => DhcpState::open(d).unwrap(),
            None => DhcpState::in_memory(),
        };
        let events = Rc::new(RefCell::new(Vec::new()));
        let sink = events.clone();
        smol::block_on(futures_lite::future::or(
            async move {
                server
                    .run(state, Rc::new(Lab), move |e| sink.borrow_mut().push(e))
                    .await
                    .unwrap()
            },
            async move {
                let _ = stopped.recv().await;
            },
        ));
        events.take()
    });
    let (addr, pxe) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Running {
        addr,
        pxe,
        stop,
        thread,
    }
}

fn relay_socket() -> UdpSocket {
    let s = UdpSocket::bind((LOOP, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Send and wait for the reply with this xid (bounded).
fn exchange(sock: &UdpSocket, to: SocketAddr, bytes: &[u8], xid: u32) -> Reply {
    sock.send_to(bytes, to).unwrap();
    let mut buf = [0u8; 1500];
    for _ in 0..20 {
        let (n, _) = sock.recv_from(&mut buf).expect("a reply within 5 s");
        let r = parse(&buf[..n]);
        if r.xid == xid {
            return r;
        }
    }
    panic!("no reply with xid {xid:#x}");
}

fn authoritative(relay_port: u16) -> DhcpConfig {
    DhcpConfig {
        mode: Mode::Authoritative,
        server_addr: LOOP,
        pools: vec!["127.1.0.10,127.1.0.29,255.0.0.0,1h".parse().unwrap()],
        listen: SocketAddr::from((LOOP, 0)),
        relay_port,
        ..DhcpConfig::default()
    }
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gopxe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn dora(sock: &UdpSocket, server: SocketAddr, n: u8) -> (Reply, Reply) {
    let xid = 0x5000 + u32::from(n);
    let offer = exchange(sock, server, &packet(1, n, xid, &[]), xid);
    assert_eq!(offer.msg_type, 2, "OFFER");
    let ip = offer.yiaddr.octets();
    let sid = LOOP.octets();
    let ack = exchange(
        sock,
        server,
        &packet(3, n, xid, &[(50, &ip), (54, &sid)]),
        xid,
    );
    (offer, ack)
}

fn read_leases(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("leases")).unwrap()
}

#[test]
fn relayed_dora_for_several_clients_then_restart_keeps_leases() {
    let dir = tempdir("dhcp-relay");
    let sock = relay_socket();
    let port = sock.local_addr().unwrap().port();

    let server = start(authoritative(port), Some(dir.clone()));
    let mut ips = Vec::new();
    for n in 1..=6u8 {
        let (offer, ack) = dora(&sock, server.addr, n);
        assert_eq!(ack.msg_type, 5, "ACK");
        assert_eq!(ack.yiaddr, offer.yiaddr);
        assert_eq!(ack.agent.as_deref(), Some(&AGENT[..]));
        if n == 1 {
            let file = ack.file.unwrap();
            assert!(file.starts_with("http://127.0.0.1:9090/boot.ipxe?mac=52:54:00:ab:cd:01"));
        } else {
            assert_eq!(ack.file, None, "unknown machines boot locally");
        }
        ips.push(ack.yiaddr);
    }
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ips.len());
    // Every ACK's lease was on disk before the ACK arrived.
    let text = read_leases(&dir);
    for ip in &ips {
        assert!(text.contains(&format!("b {ip} ")), "{ip} not in {text}");
    }
    let events = server.stop();
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::AckSent && e.known && e.mac.0 == mac(1))
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::OfferSent && !e.known)
    );

    // Restart on the same data directory.
    let server = start(authoritative(port), Some(dir.clone()));
    for n in 1..=6u8 {
        // INIT-REBOOT: the old address, no server id.
        let xid = 0x6000 + u32::from(n);
        let ip = ips[usize::from(n - 1)].octets();
        let ack = exchange(&sock, server.addr, &packet(3, n, xid, &[(50, &ip)]), xid);
        assert_eq!(ack.msg_type, 5, "ACK after restart for client {n}");
        assert_eq!(ack.yiaddr, ips[usize::from(n - 1)]);
        // And a fresh DISCOVER is offered the same address.
        let offer = exchange(&sock, server.addr, &packet(1, n, xid + 1, &[]), xid + 1);
        assert_eq!(offer.yiaddr, ips[usize::from(n - 1)]);
    }
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_burst_of_discovers_gets_distinct_offers() {
    let sock = relay_socket();
    let port = sock.local_addr().unwrap().port();
    let server = start(authoritative(port), None);
    for n in 1..=20u8 {
        sock.send_to(&packet(1, n, 0x7000 + u32::from(n), &[]), server.addr)
            .unwrap();
    }
    let mut buf = [0u8; 1500];
    let mut ips = Vec::new();
    for _ in 0..20 {
        let (len, _) = sock.recv_from(&mut buf).expect("an offer within 5 s");
        ips.push(parse(&buf[..len]).yiaddr);
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "pool of 20, 20 clients, 20 offers");
    // The pool is full: the 21st client hears nothing.
    sock.send_to(&packet(1, 21, 0x7100, &[]), server.addr)
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(sock.recv_from(&mut buf).is_err());
    let events = server.stop();
    assert!(events.iter().any(|e| e.kind == EventKind::PoolExhausted));
}

#[test]
fn proxy_mode_answers_the_boot_server_request_on_its_second_port() {
    let cfg = DhcpConfig {
        mode: Mode::Proxy,
        server_addr: LOOP,
        listen: SocketAddr::from((LOOP, 0)),
        pxe_listen: SocketAddr::from((LOOP, 0)),
        ..DhcpConfig::default()
    };
    let server = start(cfg, None);
    let pxe = server.pxe.expect("a PXE port in proxy mode");
    let sock = relay_socket();
    // Client 1 is known; client 2 is not (no answer by default).
    let known = exchange(&sock, pxe, &packet(3, 1, 0x8001, &[]), 0x8001);
    assert_eq!(known.msg_type, 5);
    assert_eq!(known.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(known.file.unwrap().contains("boot.ipxe"));
    sock.send_to(&packet(3, 2, 0x8002, &[]), pxe).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 1500];
    assert!(sock.recv_from(&mut buf).is_err());
    server.stop();
}
