//! Scenario tests for the decision core: packets laid out byte by byte as
//! the real firmware of the e2e suite (`tests/e2e/`) sends them, time moved by hand.

use std::net::Ipv4Addr;

use dhcproto::v4::{Decodable, Decoder, DhcpOption, Message, MessageType, OptionCode};

use super::config::{DhcpConfig, Loader, Mode, UnknownBoot};
use super::core::*;
use super::lease::{LeaseChange, LeaseState, LeaseTable, Now};
use super::packet::tests::client_packet;
use super::packet::{raw_option, trim_nul};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const T0: Now = 1_700_000_000;

const IPXE_BIOS_CLASS: &[u8] = b"PXEClient:Arch:00000:UNDI:002001";
const IPXE_EFI_CLASS: &[u8] = b"PXEClient:Arch:00007:UNDI:003010";
const OVMF_CLASS: &[u8] = b"PXEClient:Arch:00007:UNDI:003000";

fn mac(n: u8) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x12, 0x34, n]
}

fn uuid_opt(n: u8) -> Vec<u8> {
    std::iter::once(0).chain([n; 16]).collect()
}

fn cid(n: u8) -> Vec<u8> {
    std::iter::once(1).chain(mac(n)).collect()
}

/// Firmware flavours the e2e suite boots (`tests/e2e/README.md`).
#[derive(Clone, Copy)]
enum Fw {
    /// iPXE BIOS ROM: 60, 93=0, 94, 77 iPXE, 97, 61, 57=1472, asks 175.
    IpxeBios,
    /// iPXE EFI: 60 ...00007:UNDI:003010, 93=7, 77 iPXE.
    IpxeEfi,
    /// OVMF's own PXE: 60 ...00007:UNDI:003000, 93=7, no 77, no 61.
    Ovmf,
    /// A BIOS PXE ROM that is not iPXE (e.g. a NIC's own ROM).
    PlainBios,
    /// An OS or installer: no PXE options at all.
    Plain,
}

struct Pkt {
    fw: Fw,
    n: u8,
    xid: u32,
    flags: u16,
    ciaddr: [u8; 4],
    giaddr: [u8; 4],
    extra: Vec<(u8, Vec<u8>)>,
}

impl Pkt {
    fn new(fw: Fw, n: u8) -> Pkt {
        Pkt {
            fw,
            n,
            xid: 0x1000 + u32::from(n),
            flags: 0x8000,
            ciaddr: [0; 4],
            giaddr: [0; 4],
            extra: Vec::new(),
        }
    }
    fn opt(mut self, code: u8, v: &[u8]) -> Pkt {
        self.extra.push((code, v.to_vec()));
        self
    }
    fn unicast(mut self) -> Pkt {
        self.flags = 0;
        self
    }
    fn ciaddr(mut self, ip: [u8; 4]) -> Pkt {
        self.ciaddr = ip;
        self
    }
    fn relayed(mut self, giaddr: [u8; 4]) -> Pkt {
        self.giaddr = giaddr;
        self
    }
    fn bytes(&self, msg_type: u8) -> Vec<u8> {
        let m = mac(self.n);
        let mut opts: Vec<(u8, Vec<u8>)> = vec![(53, vec![msg_type])];
        let uuid = uuid_opt(self.n);
        let prl = vec![1, 3, 6, 12, 43, 60, 66, 67, 128, 175];
        match self.fw {
            Fw::IpxeBios => {
                opts.push((57, vec![0x05, 0xc0]));
                opts.push((93, vec![0, 0]));
                opts.push((94, vec![1, 2, 1]));
                opts.push((60, IPXE_BIOS_CLASS.to_vec()));
                opts.push((77, b"iPXE".to_vec()));
                opts.push((97, uuid));
                opts.push((61, cid(self.n)));
                opts.push((55, prl));
            }
            Fw::IpxeEfi => {
                opts.push((93, vec![0, 7]));
                opts.push((60, IPXE_EFI_CLASS.to_vec()));
                opts.push((77, b"iPXE".to_vec()));
                opts.push((97, uuid));
                opts.push((61, cid(self.n)));
                opts.push((55, prl));
            }
            Fw::Ovmf => {
                opts.push((57, vec![0xff, 0x00]));
                opts.push((93, vec![0, 7]));
                opts.push((94, vec![1, 3, 0]));
                opts.push((60, OVMF_CLASS.to_vec()));
                opts.push((97, uuid));
                opts.push((55, prl));
            }
            Fw::PlainBios => {
                opts.push((93, vec![0, 0]));
                opts.push((60, b"PXEClient:Arch:00000:UNDI:002001".to_vec()));
                opts.push((97, uuid));
            }
            Fw::Plain => opts.push((55, vec![1, 3, 6, 12, 15])),
        }
        opts.extend(self.extra.iter().cloned());
        let refs: Vec<(u8, &[u8])> = opts.iter().map(|(c, v)| (*c, v.as_slice())).collect();
        client_packet(self.xid, m, self.flags, self.ciaddr, self.giaddr, &refs)
    }
    fn discover(&self) -> Vec<u8> {
        self.bytes(1)
    }
    fn request(&self) -> Vec<u8> {
        self.bytes(3)
    }
}

/// A machine store for tests.
#[derive(Default)]
struct Machines(Vec<([u8; 6], MachineView)>);

impl Machines {
    fn with(mut self, n: u8, v: MachineView) -> Machines {
        self.0.push((mac(n), v));
        self
    }
}

impl MachineLookup for Machines {
    fn lookup(&self, q: &MachineQuery) -> Option<MachineView> {
        self.0
            .iter()
            .find(|(m, _)| *m == q.mac)
            .map(|(_, v)| v.clone())
    }
    fn reserved_for_other(&self, ip: Ipv4Addr, mac: [u8; 6]) -> bool {
        self.0.iter().any(|(m, v)| v.ip == Some(ip) && *m != mac)
    }
}

fn ipxe_machine() -> MachineView {
    MachineView {
        loader: Loader::Ipxe,
        ..MachineView::default()
    }
}

fn pxelinux_machine() -> MachineView {
    MachineView {
        loader: Loader::Pxelinux,
        ..MachineView::default()
    }
}

fn auth() -> DhcpConfig {
    DhcpConfig {
        mode: Mode::Authoritative,
        server_addr: SERVER,
        pools: vec!["10.0.0.100,10.0.0.102,255.255.255.0,1h".parse().unwrap()],
        routers: vec![SERVER],
        dns: vec![SERVER],
        ..DhcpConfig::default()
    }
}

fn proxy_cfg() -> DhcpConfig {
    DhcpConfig {
        mode: Mode::Proxy,
        server_addr: SERVER,
        ..DhcpConfig::default()
    }
}

/// The driver's job in miniature: decide, apply the changes.
struct Harness {
    cfg: DhcpConfig,
    table: LeaseTable,
    machines: Machines,
    now: Now,
}

impl Harness {
    fn new(cfg: DhcpConfig, machines: Machines) -> Harness {
        Harness {
            table: LeaseTable::for_pools(&cfg.pools),
            cfg,
            machines,
            now: T0,
        }
    }
    fn send_via(&mut self, bytes: &[u8], via: Via) -> Outcome {
        let out = handle(&self.cfg, &self.table, &self.machines, bytes, via, self.now).unwrap();
        for c in &out.changes {
            self.table.apply(c);
        }
        out
    }
    fn send(&mut self, bytes: &[u8]) -> Outcome {
        self.send_via(bytes, Via::Dhcp)
    }
    /// DISCOVER then REQUEST (SELECTING) for the offered address.
    fn dora(&mut self, p: &Pkt) -> (Message, Message) {
        let offer = reply(&self.send(&p.discover()));
        let yi = offer.yiaddr().octets();
        let req = Pkt {
            extra: vec![(50, yi.to_vec()), (54, SERVER.octets().to_vec())],
            ..Pkt::new(p.fw, p.n)
        };
        let req = Pkt {
            ciaddr: p.ciaddr,
            giaddr: p.giaddr,
            flags: p.flags,
            ..req
        };
        let ack = reply(&self.send(&req.request()));
        (offer, ack)
    }
}

fn reply(out: &Outcome) -> Message {
    let r = out.reply.as_ref().expect("a reply");
    Message::decode(&mut Decoder::new(&r.bytes)).unwrap()
}

fn msg_type(m: &Message) -> Option<MessageType> {
    m.opts().msg_type()
}

fn opt(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
    m.opts().get(code)
}

fn boot_file(m: &Message) -> Option<String> {
    match opt(m, OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(b)) => Some(String::from_utf8(b.clone()).unwrap()),
        _ => None,
    }
}

fn has_175(bytes: &[u8]) -> bool {
    raw_option(bytes, 175).as_deref() == Some(&[176, 1, 1][..])
}

#[test]
fn dora_ipxe_bios_known_machine() {
    let mut h = Harness::new(auth(), Machines::default().with(1, ipxe_machine()));
    let p = Pkt::new(Fw::IpxeBios, 1);
    let out = h.send(&p.discover());
    let r = out.reply.as_ref().unwrap();
    assert_eq!(r.kind, ReplyKind::Offer);
    assert_eq!(r.to, Destination::Broadcast);
    assert!(has_175(&r.bytes));
    assert!(!out.needs_durability(), "offers are not written to disk");
    let offer = reply(&out);
    assert_eq!(msg_type(&offer), Some(MessageType::Offer));
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 0, 0, 100));
    assert_eq!(offer.siaddr(), SERVER);
    assert_eq!(offer.xid(), p.xid);
    assert_eq!(
        opt(&offer, OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        opt(&offer, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(3600))
    );
    assert_eq!(
        opt(&offer, OptionCode::Renewal),
        Some(&DhcpOption::Renewal(1800))
    );
    assert_eq!(
        opt(&offer, OptionCode::Rebinding),
        Some(&DhcpOption::Rebinding(3150))
    );
    assert_eq!(
        opt(&offer, OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        opt(&offer, OptionCode::Router),
        Some(&DhcpOption::Router(vec![SERVER]))
    );
    let url = boot_file(&offer).unwrap();
    assert!(
        url.starts_with("http://10.0.0.1:9090/boot.ipxe?mac=52:54:00:12:34:01&uuid=01010101-"),
        "{url}"
    );
    assert_eq!(trim_nul(offer.fname().unwrap()), url.as_bytes());
    assert!(
        out.events
            .iter()
            .any(|e| e.kind == EventKind::DiscoverSeen && e.known)
    );
    assert!(out.events.iter().any(|e| e.kind == EventKind::OfferSent
        && e.ip == Some(Ipv4Addr::new(10, 0, 0, 100))
        && e.uuid == Some([1; 16])));

    let req = Pkt::new(Fw::IpxeBios, 1)
        .opt(50, &[10, 0, 0, 100])
        .opt(54, &SERVER.octets());
    let out = h.send(&req.request());
    assert!(
        out.needs_durability(),
        "an ACK needs its lease on disk first"
    );
    let ack = reply(&out);
    assert_eq!(msg_type(&ack), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), Ipv4Addr::new(10, 0, 0, 100));
    let lease = h.table.bound_to(&cid(1)).unwrap();
    assert_eq!(lease.expires, T0 + 3600);
    assert!(out.events.iter().any(|e| e.kind == EventKind::AckSent));
}

#[test]
fn boot_file_per_firmware_in_the_reply() {
    let machines = Machines::default()
        .with(1, pxelinux_machine())
        .with(2, pxelinux_machine())
        .with(3, ipxe_machine())
        .with(4, ipxe_machine())
        .with(5, ipxe_machine())
        .with(6, MachineView::default())
        .with(7, MachineView::default());
    let mut cfg = auth();
    cfg.pools = vec!["10.0.0.100,10.0.0.199".parse().unwrap()];
    let mut h = Harness::new(cfg, machines);
    let cases = [
        (Fw::PlainBios, 1, "pxelinux.0"),
        (Fw::Ovmf, 2, "syslinux.efi"),
        (Fw::PlainBios, 3, "undionly.kpxe"),
        (Fw::Ovmf, 4, "ipxe.efi"),
        // `auto`: each class's default family.
        (Fw::PlainBios, 6, "pxelinux.0"),
        (Fw::Ovmf, 7, "shimx64.efi"),
    ];
    for (fw, n, want) in cases {
        let out = h.send(&Pkt::new(fw, n).discover());
        let m = reply(&out);
        assert_eq!(boot_file(&m).as_deref(), Some(want));
        assert_eq!(trim_nul(m.fname().unwrap()), want.as_bytes());
        assert_eq!(trim_nul(m.sname().unwrap()), b"10.0.0.1");
        assert_eq!(
            opt(&m, OptionCode::TFTPServerName),
            Some(&DhcpOption::TFTPServerName(b"10.0.0.1".to_vec()))
        );
        assert!(!has_175(&out.reply.unwrap().bytes));
        // Authoritative replies carry no PXE vendor class / options.
        assert!(opt(&m, OptionCode::ClassIdentifier).is_none());
    }
    let out = h.send(&Pkt::new(Fw::IpxeEfi, 5).discover());
    assert!(has_175(&out.reply.as_ref().unwrap().bytes));
    assert!(
        boot_file(&reply(&out))
            .unwrap()
            .contains("/boot.ipxe?mac=52:54:00:12:34:05")
    );
}

#[test]
fn unknown_and_installed_machines_get_an_address_but_no_boot_file() {
    let installed = MachineView {
        local_boot: true,
        ..MachineView::default()
    };
    let mut cfg = auth();
    cfg.pools = vec!["10.0.0.100,10.0.0.199".parse().unwrap()];
    let mut h = Harness::new(cfg, Machines::default().with(2, installed));
    for n in [1, 2] {
        let m = reply(&h.send(&Pkt::new(Fw::IpxeBios, n).discover()));
        assert!(!m.yiaddr().is_unspecified());
        assert_eq!(boot_file(&m), None);
        assert_eq!(m.fname(), None);
        assert_eq!(m.siaddr(), Ipv4Addr::UNSPECIFIED);
    }
    // Configured default loader for unknown machines.
    h.cfg.unknown_boot = UnknownBoot::Loader(Loader::Pxelinux);
    let m = reply(&h.send(&Pkt::new(Fw::PlainBios, 3).discover()));
    assert_eq!(boot_file(&m).as_deref(), Some("pxelinux.0"));
    // Not a netboot client: address only.
    let m = reply(&h.send(&Pkt::new(Fw::Plain, 4).discover()));
    assert!(!m.yiaddr().is_unspecified());
    assert_eq!(boot_file(&m), None);
}

#[test]
fn relayed_requests_use_the_relays_pool_and_echo_option_82() {
    let mut cfg = auth();
    cfg.pools
        .push("10.1.0.50,10.1.0.60,255.255.255.0,30m".parse().unwrap());
    let mut h = Harness::new(cfg, Machines::default());
    // Circuit id "eth0" and remote id 1.2.3, as a relay agent adds them.
    let agent = [1u8, 4, b'e', b't', b'h', b'0', 2, 3, 1, 2, 3];
    let p = Pkt::new(Fw::Ovmf, 1)
        .unicast()
        .relayed([10, 1, 0, 1])
        .opt(82, &agent);
    let out = h.send(&p.discover());
    let r = out.reply.as_ref().unwrap();
    assert_eq!(r.to, Destination::Relay(Ipv4Addr::new(10, 1, 0, 1)));
    assert_eq!(raw_option(&r.bytes, 82).as_deref(), Some(&agent[..]));
    let m = reply(&out);
    assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 1, 0, 50));
    assert_eq!(m.giaddr(), Ipv4Addr::new(10, 1, 0, 1));
    assert_eq!(
        opt(&m, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(1800))
    );
    // Option 82 is the last option before End.
    let bytes = &r.bytes;
    let end = bytes.iter().rposition(|&b| b == 255).unwrap();
    assert_eq!(
        &bytes[end - agent.len() - 2..end - agent.len()],
        &[82, agent.len() as u8]
    );

    // ACK through the relay too.
    let req = Pkt::new(Fw::Ovmf, 1)
        .unicast()
        .relayed([10, 1, 0, 1])
        .opt(82, &agent)
        .opt(50, &[10, 1, 0, 50])
        .opt(54, &SERVER.octets());
    let out = h.send(&req.request());
    let r = out.reply.as_ref().unwrap();
    assert_eq!(r.kind, ReplyKind::Ack);
    assert_eq!(r.to, Destination::Relay(Ipv4Addr::new(10, 1, 0, 1)));
    assert_eq!(raw_option(&r.bytes, 82).as_deref(), Some(&agent[..]));

    // A relay on a subnet we have no pool for gets nothing.
    let out = h.send(&Pkt::new(Fw::Ovmf, 2).relayed([192, 168, 9, 1]).discover());
    assert!(out.reply.is_none());
    assert!(
        out.events
            .iter()
            .any(|e| e.kind == EventKind::PoolExhausted)
    );
}

#[test]
fn broadcast_and_unicast_rules() {
    let mut h = Harness::new(auth(), Machines::default());
    // Broadcast flag clear, no giaddr/ciaddr: the RFC says unicast to
    // yiaddr; the core says so and the driver broadcasts.
    let out = h.send(&Pkt::new(Fw::Plain, 1).unicast().discover());
    assert_eq!(
        out.reply.unwrap().to,
        Destination::UnconfiguredClient {
            yiaddr: Ipv4Addr::new(10, 0, 0, 100),
            mac: super::packet::Mac(mac(1))
        }
    );
    // Renewing: unicast to ciaddr.
    let (_, ack) = h.dora(&Pkt::new(Fw::Plain, 2));
    let ip = ack.yiaddr().octets();
    h.now += 1800;
    let out = h.send(&Pkt::new(Fw::Plain, 2).unicast().ciaddr(ip).request());
    assert_eq!(
        out.reply.as_ref().unwrap().to,
        Destination::Unicast(ack.yiaddr())
    );
    let m = reply(&out);
    assert_eq!(m.ciaddr(), ack.yiaddr());
    assert_eq!(h.table.bound_to(&cid(2)).unwrap().expires, T0 + 1800 + 3600);
    // A NAK without relay: broadcast.
    let out = h.send(
        &Pkt::new(Fw::Plain, 3)
            .unicast()
            .opt(50, &[192, 168, 7, 7])
            .request(),
    );
    let r = out.reply.unwrap();
    assert_eq!(r.kind, ReplyKind::Nak);
    assert_eq!(r.to, Destination::Broadcast);
    // A NAK through a relay: to the relay with the broadcast bit set.
    let mut cfg = auth();
    cfg.pools
        .push("10.1.0.50,10.1.0.60,255.255.255.0,30m".parse().unwrap());
    h.cfg = cfg;
    let out = h.send(
        &Pkt::new(Fw::Plain, 4)
            .unicast()
            .relayed([10, 1, 0, 1])
            .opt(50, &[10, 2, 0, 7])
            .request(),
    );
    let r = out.reply.as_ref().unwrap();
    assert_eq!(r.to, Destination::Relay(Ipv4Addr::new(10, 1, 0, 1)));
    assert!(reply(&out).flags().broadcast());
}

#[test]
fn pool_exhaustion_and_offers_not_doubled() {
    let mut h = Harness::new(auth(), Machines::default());
    let mut seen = Vec::new();
    for n in 1..=3 {
        let m = reply(&h.send(&Pkt::new(Fw::Plain, n).discover()));
        seen.push(m.yiaddr());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "three clients, three different offers");
    let out = h.send(&Pkt::new(Fw::Plain, 4).discover());
    assert!(out.reply.is_none());
    assert!(
        out.events
            .iter()
            .any(|e| e.kind == EventKind::PoolExhausted)
    );
    // A repeated DISCOVER gets the same offer again.
    let again = reply(&h.send(&Pkt::new(Fw::Plain, 2).discover()));
    assert_eq!(again.yiaddr(), Ipv4Addr::new(10, 0, 0, 101));
    // Offers lapse: the fourth client gets one later.
    h.now += 61;
    assert!(h.send(&Pkt::new(Fw::Plain, 4).discover()).reply.is_some());
}

/// Option 3 in an offer, as a list.
fn routers(m: &Message) -> Option<Vec<Ipv4Addr>> {
    match opt(m, OptionCode::Router) {
        Some(DhcpOption::Router(r)) => Some(r.clone()),
        _ => None,
    }
}

#[test]
fn each_subnet_gets_an_on_link_router() {
    let relay = [10, 1, 0, 1];
    let offer = |h: &mut Harness, n: u8, via: Option<[u8; 4]>| {
        let p = Pkt::new(Fw::Ovmf, n).unicast();
        let p = match via {
            Some(g) => p.relayed(g),
            None => p,
        };
        reply(&h.send(&p.discover()))
    };
    // dhcp_router on the local subnet only: relayed clients get their
    // relay agent, local ones the configured router.
    let mut cfg = auth();
    cfg.pools
        .push("10.1.0.50,10.1.0.60,255.255.255.0,30m".parse().unwrap());
    let mut h = Harness::new(cfg.clone(), Machines::default());
    let local = offer(&mut h, 1, None);
    assert_eq!(local.yiaddr(), Ipv4Addr::new(10, 0, 0, 100));
    assert_eq!(routers(&local), Some(vec![SERVER]));
    let far = offer(&mut h, 2, Some(relay));
    assert_eq!(far.yiaddr(), Ipv4Addr::new(10, 1, 0, 50));
    assert_eq!(routers(&far), Some(vec![Ipv4Addr::from(relay)]));

    // A configured router on the relayed subnet is chosen over the relay,
    // and each subnet gets only its own.
    cfg.routers = vec![SERVER, Ipv4Addr::new(10, 1, 0, 254)];
    let mut h = Harness::new(cfg.clone(), Machines::default());
    assert_eq!(routers(&offer(&mut h, 1, None)), Some(vec![SERVER]));
    assert_eq!(
        routers(&offer(&mut h, 2, Some(relay))),
        Some(vec![Ipv4Addr::new(10, 1, 0, 254)])
    );

    // A router on no pool's subnet is still given to local clients (the
    // lab's addressing is the admin's business), never through a relay.
    cfg.routers = vec![Ipv4Addr::new(192, 168, 7, 1)];
    let mut h = Harness::new(cfg.clone(), Machines::default());
    assert_eq!(
        routers(&offer(&mut h, 1, None)),
        Some(vec![Ipv4Addr::new(192, 168, 7, 1)])
    );
    assert_eq!(
        routers(&offer(&mut h, 2, Some(relay))),
        Some(vec![Ipv4Addr::from(relay)])
    );

    // No router configured: none locally, the relay agent through a relay.
    cfg.routers = Vec::new();
    let mut h = Harness::new(cfg.clone(), Machines::default());
    assert_eq!(routers(&offer(&mut h, 1, None)), None);
    assert_eq!(
        routers(&offer(&mut h, 2, Some(relay))),
        Some(vec![Ipv4Addr::from(relay)])
    );

    // A reserved address without a gateway of its own follows the same
    // rule on its subnet.
    let reserved = MachineView {
        ip: Some(Ipv4Addr::new(10, 1, 0, 70)),
        ..pxelinux_machine()
    };
    cfg.routers = vec![SERVER];
    let mut h = Harness::new(cfg, Machines::default().with(3, reserved));
    let m = offer(&mut h, 3, Some(relay));
    assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 1, 0, 70));
    assert_eq!(routers(&m), Some(vec![Ipv4Addr::from(relay)]));
}

#[test]
fn reservations_give_the_machines_address_and_network() {
    let reserved = MachineView {
        ip: Some(Ipv4Addr::new(10, 0, 0, 101)),
        mask: Some(Ipv4Addr::new(255, 255, 0, 0)),
        gw: Some(Ipv4Addr::new(10, 0, 0, 254)),
        dns: vec![Ipv4Addr::new(9, 9, 9, 9), Ipv4Addr::new(1, 1, 1, 1)],
        hostname: Some("node-7".into()),
        loader: Loader::Pxelinux,
        local_boot: false,
    };
    let mut h = Harness::new(auth(), Machines::default().with(7, reserved));
    let (offer, ack) = h.dora(&Pkt::new(Fw::PlainBios, 7));
    for m in [&offer, &ack] {
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 0, 0, 101));
        assert_eq!(
            opt(m, OptionCode::SubnetMask),
            Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 0, 0)))
        );
        assert_eq!(
            opt(m, OptionCode::Router),
            Some(&DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 0, 254)]))
        );
        assert_eq!(
            opt(m, OptionCode::DomainNameServer),
            Some(&DhcpOption::DomainNameServer(vec![
                Ipv4Addr::new(9, 9, 9, 9),
                Ipv4Addr::new(1, 1, 1, 1)
            ]))
        );
        assert_eq!(
            opt(m, OptionCode::Hostname),
            Some(&DhcpOption::Hostname("node-7".into()))
        );
    }
    assert_eq!(
        h.table.bound_to(&cid(7)).unwrap().hostname.as_deref(),
        Some("node-7")
    );
    // Pool clients never get the reserved address.
    let mut got = Vec::new();
    for n in 1..=3 {
        if let Some(r) = h.send(&Pkt::new(Fw::Plain, n).discover()).reply {
            got.push(
                Message::decode(&mut Decoder::new(&r.bytes))
                    .unwrap()
                    .yiaddr(),
            );
        }
    }
    got.sort();
    assert_eq!(
        got,
        vec![Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 102)]
    );
    // Asking for another address is refused.
    let out = h.send(
        &Pkt::new(Fw::PlainBios, 7)
            .opt(50, &[10, 0, 0, 100])
            .opt(54, &SERVER.octets())
            .request(),
    );
    assert_eq!(out.reply.unwrap().kind, ReplyKind::Nak);
}

#[test]
fn decline_quarantines_the_address() {
    let mut cfg = auth();
    cfg.pools = vec!["10.0.0.100,10.0.0.100,255.255.255.0,1h".parse().unwrap()];
    let mut h = Harness::new(cfg, Machines::default());
    h.dora(&Pkt::new(Fw::Plain, 1));
    let out = h.send(
        &Pkt::new(Fw::Plain, 1)
            .opt(50, &[10, 0, 0, 100])
            .opt(54, &SERVER.octets())
            .bytes(4),
    );
    assert!(out.reply.is_none());
    assert!(out.needs_durability());
    assert!(out.events.iter().any(|e| e.kind == EventKind::Declined));
    assert_eq!(
        h.table.get(Ipv4Addr::new(10, 0, 0, 100)).unwrap().state,
        LeaseState::Declined
    );
    // Nobody gets it during the quarantine, not even the decliner.
    for n in [1, 2] {
        assert!(h.send(&Pkt::new(Fw::Plain, n).discover()).reply.is_none());
    }
    h.now += 600;
    assert!(h.send(&Pkt::new(Fw::Plain, 2).discover()).reply.is_some());
    // A DECLINE for an address that is not the client's is ignored.
    let out = h.send(
        &Pkt::new(Fw::Plain, 3)
            .opt(50, &[10, 0, 0, 100])
            .opt(54, &SERVER.octets())
            .bytes(4),
    );
    assert!(out.changes.is_empty());
}

#[test]
fn init_reboot_wrong_subnet_is_naked_own_lease_acked_unknown_silent() {
    let mut h = Harness::new(auth(), Machines::default());
    // Wrong subnet: NAK.
    let out = h.send(&Pkt::new(Fw::Plain, 1).opt(50, &[192, 168, 1, 20]).request());
    let m = reply(&out);
    assert_eq!(msg_type(&m), Some(MessageType::Nak));
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(opt(&m, OptionCode::AddressLeaseTime).is_none());
    assert!(out.events.iter().any(|e| e.kind == EventKind::NakSent));
    // Right subnet, no record of the client: silent (RFC 2131 §4.3.2).
    let out = h.send(&Pkt::new(Fw::Plain, 1).opt(50, &[10, 0, 0, 101]).request());
    assert!(out.reply.is_none());
    // Its own lease after a reboot: ACK.
    let (_, ack) = h.dora(&Pkt::new(Fw::Plain, 2));
    let out = h.send(
        &Pkt::new(Fw::Plain, 2)
            .opt(50, &ack.yiaddr().octets())
            .request(),
    );
    assert_eq!(reply(&out).yiaddr(), ack.yiaddr());
    // Someone else's lease: NAK.
    let out = h.send(
        &Pkt::new(Fw::Plain, 3)
            .opt(50, &ack.yiaddr().octets())
            .request(),
    );
    assert_eq!(out.reply.unwrap().kind, ReplyKind::Nak);
}

#[test]
fn selecting_another_server_withdraws_the_offer() {
    let mut h = Harness::new(auth(), Machines::default());
    let offer = reply(&h.send(&Pkt::new(Fw::Plain, 1).discover()));
    let out = h.send(
        &Pkt::new(Fw::Plain, 1)
            .opt(50, &offer.yiaddr().octets())
            .opt(54, &[10, 0, 0, 2])
            .request(),
    );
    assert!(out.reply.is_none());
    assert!(h.table.offered_to(&cid(1), h.now).is_none());
    // Requesting an address held for another client: NAK.
    let o2 = reply(&h.send(&Pkt::new(Fw::Plain, 2).discover()));
    let out = h.send(
        &Pkt::new(Fw::Plain, 3)
            .opt(50, &o2.yiaddr().octets())
            .opt(54, &SERVER.octets())
            .request(),
    );
    assert_eq!(out.reply.unwrap().kind, ReplyKind::Nak);
    // A REQUEST with neither option 50 nor ciaddr is ignored.
    assert!(h.send(&Pkt::new(Fw::Plain, 3).request()).reply.is_none());
}

#[test]
fn renew_of_a_lost_lease_and_of_a_foreign_address() {
    let mut h = Harness::new(auth(), Machines::default());
    // Lease not in our table (e.g. lost), address free in our pool: ACK.
    let out = h.send(
        &Pkt::new(Fw::Plain, 1)
            .unicast()
            .ciaddr([10, 0, 0, 102])
            .request(),
    );
    assert_eq!(out.reply.unwrap().kind, ReplyKind::Ack);
    // Renewal of an address bound to someone else: NAK.
    let out = h.send(
        &Pkt::new(Fw::Plain, 2)
            .unicast()
            .ciaddr([10, 0, 0, 102])
            .request(),
    );
    assert_eq!(out.reply.unwrap().kind, ReplyKind::Nak);
    // Renewal on a subnet we do not serve: silent (another server's).
    let out = h.send(
        &Pkt::new(Fw::Plain, 3)
            .unicast()
            .ciaddr([172, 16, 0, 9])
            .request(),
    );
    assert!(out.reply.is_none());
}

#[test]
fn release_and_inform() {
    let mut h = Harness::new(auth(), Machines::default().with(1, pxelinux_machine()));
    let (_, ack) = h.dora(&Pkt::new(Fw::PlainBios, 1));
    let ip = ack.yiaddr();
    let out = h.send(
        &Pkt::new(Fw::PlainBios, 1)
            .unicast()
            .ciaddr(ip.octets())
            .opt(54, &SERVER.octets())
            .bytes(7),
    );
    assert!(out.reply.is_none());
    assert!(out.events.iter().any(|e| e.kind == EventKind::Released));
    assert!(h.table.bound_to(&cid(1)).is_none());
    // INFORM: ACK with the network and boot options, no address, no lease.
    let out = h.send(
        &Pkt::new(Fw::PlainBios, 1)
            .unicast()
            .ciaddr([10, 0, 0, 77])
            .bytes(8),
    );
    let r = out.reply.as_ref().unwrap();
    assert_eq!(r.to, Destination::Unicast(Ipv4Addr::new(10, 0, 0, 77)));
    let m = reply(&out);
    assert_eq!(msg_type(&m), Some(MessageType::Ack));
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.ciaddr(), Ipv4Addr::new(10, 0, 0, 77));
    assert!(opt(&m, OptionCode::AddressLeaseTime).is_none());
    assert!(opt(&m, OptionCode::SubnetMask).is_some());
    assert_eq!(boot_file(&m).as_deref(), Some("pxelinux.0"));
    assert!(out.changes.is_empty());
}

#[test]
fn infinite_leases() {
    let mut cfg = auth();
    cfg.pools = vec![
        "10.0.0.100,10.0.0.102,255.255.255.0,infinite"
            .parse()
            .unwrap(),
    ];
    let mut h = Harness::new(cfg, Machines::default());
    let (_, ack) = h.dora(&Pkt::new(Fw::Plain, 1));
    assert_eq!(lease_secs(&ack), (u32::MAX, u32::MAX, u32::MAX));
    assert_eq!(h.table.bound_to(&cid(1)).unwrap().expires, u64::MAX);
}

#[test]
fn proxy_mode_never_gives_an_address() {
    let mut h = Harness::new(
        proxy_cfg(),
        Machines::default()
            .with(1, pxelinux_machine())
            .with(2, ipxe_machine())
            .with(3, pxelinux_machine()),
    );
    for (fw, n, want) in [
        (Fw::PlainBios, 1, "pxelinux.0".to_string()),
        (Fw::Ovmf, 2, "ipxe.efi".to_string()),
    ] {
        let p = Pkt::new(fw, n);
        let out = h.send(&p.discover());
        assert!(out.changes.is_empty());
        let r = out.reply.as_ref().unwrap();
        assert_eq!(r.kind, ReplyKind::Offer);
        assert_eq!(r.to, Destination::Broadcast);
        let m = reply(&out);
        assert_eq!(msg_type(&m), Some(MessageType::Offer));
        assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(m.siaddr(), SERVER);
        for absent in [
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
        ] {
            assert!(opt(&m, absent).is_none(), "{absent:?} in a proxy reply");
        }
        assert_eq!(
            opt(&m, OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
        );
        assert_eq!(
            opt(&m, OptionCode::VendorExtensions),
            Some(&DhcpOption::VendorExtensions(vec![6, 1, 8, 255]))
        );
        assert_eq!(
            opt(&m, OptionCode::ClientMachineIdentifier),
            Some(&DhcpOption::ClientMachineIdentifier(uuid_opt(n)))
        );
        assert_eq!(boot_file(&m), Some(want.clone()));

        // The boot-server discovery REQUEST on udp/4011, after the lab's
        // DHCP server gave the client 192.168.1.50.
        let disc = Pkt::new(fw, n)
            .unicast()
            .ciaddr([192, 168, 1, 50])
            .opt(43, &[71, 4, 0, 0, 0, 0, 255]);
        let out = h.send_via(&disc.request(), Via::PxeDiscovery);
        let r = out.reply.as_ref().unwrap();
        assert_eq!(r.to, Destination::Source);
        assert_eq!(r.via, Via::PxeDiscovery);
        let m = reply(&out);
        assert_eq!(msg_type(&m), Some(MessageType::Ack));
        assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(m.ciaddr(), Ipv4Addr::new(192, 168, 1, 50));
        assert_eq!(boot_file(&m), Some(want));
        assert_eq!(
            opt(&m, OptionCode::VendorExtensions),
            Some(&DhcpOption::VendorExtensions(vec![
                6, 1, 8, 71, 4, 0, 0, 0, 0, 255
            ]))
        );
        assert!(opt(&m, OptionCode::AddressLeaseTime).is_none());
    }
    // A REQUEST to the lab's server (other server id): not ours.
    let out = h.send(
        &Pkt::new(Fw::PlainBios, 1)
            .opt(50, &[192, 168, 1, 50])
            .opt(54, &[192, 168, 1, 1])
            .request(),
    );
    assert!(out.reply.is_none());
    // A REQUEST naming us answers with boot info, still no address.
    let out = h.send(
        &Pkt::new(Fw::PlainBios, 1)
            .opt(50, &[192, 168, 1, 50])
            .opt(54, &SERVER.octets())
            .request(),
    );
    let m = reply(&out);
    assert_eq!(msg_type(&m), Some(MessageType::Ack));
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    // Non-PXE clients and unknown machines: no answer by default.
    assert!(h.send(&Pkt::new(Fw::Plain, 3).discover()).reply.is_none());
    assert!(
        h.send(&Pkt::new(Fw::PlainBios, 9).discover())
            .reply
            .is_none()
    );
    // ...unless unknown machines are configured to boot something.
    h.cfg.unknown_boot = UnknownBoot::Loader(Loader::Pxelinux);
    assert!(
        h.send(&Pkt::new(Fw::PlainBios, 9).discover())
            .reply
            .is_some()
    );
    // iPXE under a proxy still gets its script and option 175.
    let out = h.send(&Pkt::new(Fw::IpxeBios, 2).discover());
    assert!(has_175(&out.reply.as_ref().unwrap().bytes));
    assert!(h.table.is_empty());
}

#[test]
fn off_mode_and_authoritative_on_4011_say_nothing() {
    let mut cfg = auth();
    cfg.mode = Mode::Off;
    let mut h = Harness::new(cfg, Machines::default());
    assert_eq!(
        h.send(&Pkt::new(Fw::IpxeBios, 1).discover()),
        Outcome::default()
    );
    h.cfg.mode = Mode::Authoritative;
    let out = h.send_via(&Pkt::new(Fw::IpxeBios, 1).discover(), Via::PxeDiscovery);
    assert!(out.reply.is_none());
}

#[test]
fn long_names_never_panic_and_still_reach_option_67() {
    let mut cfg = auth();
    let long = format!("{}/pxelinux.0", "d".repeat(200));
    cfg.loaders
        .set_file(&format!("bios.pxelinux={long}"))
        .unwrap();
    cfg.http_base = Some(format!("http://{}.example:9090", "h".repeat(150)));
    cfg.unknown_boot = UnknownBoot::Loader(Loader::Pxelinux);
    let mut h = Harness::new(cfg.clone(), Machines::default());
    let m = reply(&h.send(&Pkt::new(Fw::PlainBios, 1).discover()));
    assert_eq!(m.fname(), None);
    assert_eq!(boot_file(&m), Some(long));
    let m = reply(&h.send(&Pkt::new(Fw::IpxeBios, 2).discover()));
    assert_eq!(m.fname(), None);
    assert!(boot_file(&m).unwrap().len() > 128);
    // Exactly at the limits.
    h.cfg
        .loaders
        .set_file(&format!("bios.pxelinux={}", "f".repeat(127)))
        .unwrap();
    let m = reply(&h.send(&Pkt::new(Fw::PlainBios, 3).discover()));
    assert_eq!(trim_nul(m.fname().unwrap()).len(), 127);
    h.cfg
        .loaders
        .set_file(&format!("bios.pxelinux={}", "f".repeat(128)))
        .unwrap();
    let m = reply(&h.send(&Pkt::new(Fw::PlainBios, 3).discover()));
    assert_eq!(m.fname(), None);
}

#[test]
fn hostnames_are_checked() {
    assert!(valid_hostname("node-1.lab"));
    for bad in ["", "-a", "a-", "a b", "a\nb", "a..b", &"x".repeat(64)] {
        assert!(!valid_hostname(bad), "{bad:?}");
    }
    // A client's own bad option 12 is not stored.
    let mut h = Harness::new(auth(), Machines::default());
    let p = Pkt::new(Fw::Plain, 1).opt(12, b"bad name\nx");
    let offer = reply(&h.send(&p.discover()));
    let req = Pkt::new(Fw::Plain, 1)
        .opt(12, b"bad name\nx")
        .opt(50, &offer.yiaddr().octets())
        .opt(54, &SERVER.octets());
    h.send(&req.request());
    assert_eq!(h.table.bound_to(&cid(1)).unwrap().hostname, None);
}

/// The lease log's records carry a restart: the log's text here, its file
/// in `gopxe::dhcp::leasefile`'s tests.
#[test]
fn restart_keeps_leases() {
    use super::leaselog::{HEADER, record, replay};
    let mut log = format!("{HEADER}\n");
    let ips: Vec<Ipv4Addr>;
    {
        let mut h = Harness::new(auth(), Machines::default());
        let mut got = Vec::new();
        for n in 1..=3 {
            let p = Pkt::new(Fw::Plain, n);
            let offer = handle(
                &h.cfg,
                &h.table,
                &h.machines,
                &p.discover(),
                Via::Dhcp,
                h.now,
            )
            .unwrap();
            offer.changes.iter().for_each(|c| h.table.apply(c));
            let yi = reply(&offer).yiaddr();
            let req = Pkt::new(Fw::Plain, n)
                .opt(50, &yi.octets())
                .opt(54, &SERVER.octets());
            let ack = handle(
                &h.cfg,
                &h.table,
                &h.machines,
                &req.request(),
                Via::Dhcp,
                h.now,
            )
            .unwrap();
            ack.changes.iter().for_each(|c| h.table.apply(c));
            let durable: Vec<LeaseChange> = ack
                .changes
                .iter()
                .filter(|c| c.is_durable())
                .cloned()
                .collect();
            assert_eq!(durable.len(), 1);
            log.extend(durable.iter().filter_map(record));
            got.push(reply(&ack).yiaddr());
        }
        ips = got;
    }
    let mut table = LeaseTable::new();
    let report = replay(log.as_bytes(), &mut table).unwrap();
    assert_eq!((report.records, report.truncated), (3, None));
    table.purge(T0 + 10, 0);
    let mut h = Harness::new(auth(), Machines::default());
    table.set_pools(&h.cfg.pools);
    h.table = table;
    h.now = T0 + 10;
    for n in 1..=3u8 {
        // Same address offered after the restart, and INIT-REBOOT is ACKed.
        let m = reply(&h.send(&Pkt::new(Fw::Plain, n).discover()));
        assert_eq!(m.yiaddr(), ips[usize::from(n - 1)]);
        let out = h.send(
            &Pkt::new(Fw::Plain, n)
                .opt(50, &m.yiaddr().octets())
                .request(),
        );
        assert_eq!(out.reply.unwrap().kind, ReplyKind::Ack);
    }
    // A new client cannot get any of them.
    assert!(h.send(&Pkt::new(Fw::Plain, 9).discover()).reply.is_none());
}

/// A deterministic pseudo-random sequence (xorshift64) for the bounded
/// randomised tests: the same numbers on every run.
fn xorshift() -> impl FnMut() -> u64 {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// Arbitrary and mutated datagrams through decode + decide in every mode:
/// errors are fine, panics are not. Bounded and deterministic.
#[test]
fn random_bytes_never_panic() {
    let mut rnd = xorshift();
    let seeds: Vec<Vec<u8>> = [
        Fw::IpxeBios,
        Fw::IpxeEfi,
        Fw::Ovmf,
        Fw::PlainBios,
        Fw::Plain,
    ]
    .iter()
    .flat_map(|&fw| {
        let p = Pkt::new(fw, 1)
            .opt(82, &[1, 2, 0, 1])
            .opt(43, &[71, 4, 0, 0, 0, 0]);
        [
            p.discover(),
            p.request(),
            p.bytes(4),
            p.bytes(7),
            p.bytes(8),
        ]
    })
    .collect();
    let mut cfgs = [auth(), proxy_cfg()];
    cfgs[1].unknown_boot = UnknownBoot::Loader(Loader::Ipxe);
    let machines = Machines::default().with(1, ipxe_machine());
    let mut tables = cfgs.each_ref().map(|c| LeaseTable::for_pools(&c.pools));
    for i in 0..20_000u32 {
        let mut bytes = if i % 4 == 0 {
            let len = (rnd() % 600) as usize;
            (0..len).map(|_| rnd() as u8).collect()
        } else {
            seeds[(rnd() % seeds.len() as u64) as usize].clone()
        };
        if !bytes.is_empty() {
            for _ in 0..(rnd() % 8) {
                let at = (rnd() % bytes.len() as u64) as usize;
                bytes[at] = rnd() as u8;
            }
            if rnd().is_multiple_of(5) {
                bytes.truncate((rnd() % bytes.len() as u64) as usize);
            }
        }
        for (cfg, table) in cfgs.iter().zip(tables.iter_mut()) {
            for via in [Via::Dhcp, Via::PxeDiscovery] {
                if let Ok(out) = handle(cfg, table, &machines, &bytes, via, T0 + u64::from(i)) {
                    for c in &out.changes {
                        table.apply(c);
                    }
                }
            }
        }
    }
}

/// A client with any MAC and no PXE options, for the pool tests.
fn plain_packet(mac: [u8; 6], kind: u8, ciaddr: Ipv4Addr, opts: &[(u8, &[u8])]) -> Vec<u8> {
    let kind = [kind];
    let mut all: Vec<(u8, &[u8])> = vec![(53, &kind[..])];
    all.extend_from_slice(opts);
    let xid = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    client_packet(xid, mac, 0x8000, ciaddr.octets(), [0; 4], &all)
}

fn churn_mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

fn churn_cid(i: u32) -> Vec<u8> {
    std::iter::once(1).chain(churn_mac(i)).collect()
}

/// Allocation over a full /16 with churn: 65,000 clients already bound
/// (for 2 to 24 hours), then 20,000 rounds of new and returning clients
/// doing DORA, DISCOVER alone, RELEASE and DECLINE while about five hours
/// pass, with eight addresses in the pool reserved for machines: the pool
/// runs out, then expired leases are reused. Every
/// request costs at most `BOUND` look-ups in the lease table, not just on
/// average.
#[test]
fn a_full_slash16_with_churn_takes_a_few_lookups_per_request() {
    const BOUND: u64 = 64;
    let mut cfg = auth();
    cfg.pools = vec!["10.1.0.1,10.1.255.254,255.255.0.0,1h".parse().unwrap()];
    let reserved: Vec<Ipv4Addr> = (0..8u8).map(|i| Ipv4Addr::new(10, 1, 32 * i, 9)).collect();
    let mut machines = Machines::default();
    for (i, ip) in reserved.iter().enumerate() {
        let view = MachineView {
            ip: Some(*ip),
            ..MachineView::default()
        };
        machines = machines.with(200 + i as u8, view);
    }
    let mut h = Harness::new(cfg, machines);
    let server = SERVER.octets();
    let first = u32::from(Ipv4Addr::new(10, 1, 0, 1));
    let mut at = first;
    for i in 0..65_000u32 {
        while reserved.contains(&Ipv4Addr::from(at)) {
            at += 1;
        }
        h.table.apply(&LeaseChange::Bind(super::lease::Lease {
            ip: Ipv4Addr::from(at),
            state: LeaseState::Bound,
            client_id: churn_cid(i),
            mac: super::packet::Mac(churn_mac(i)),
            // Expiring from 2 h to 24 h from now.
            expires: T0 + 7200 + u64::from(i.wrapping_mul(7919) % 79_200),
            hostname: None,
        }));
        at += 1;
    }
    let mut rnd = xorshift();
    let mut worst = 0;
    let mut send = |h: &mut Harness, bytes: &[u8]| {
        let before = h.table.steps();
        let out = h.send(bytes);
        let steps = h.table.steps() - before;
        assert!(steps <= BOUND, "{steps} look-ups for one request");
        worst = worst.max(steps);
        out
    };
    let (mut returning, mut reused, mut exhausted, mut acks) = (0, 0, 0, 0);
    for _ in 0..20_000 {
        let c = (rnd() % 120_000) as u32;
        let (mac, cid) = (churn_mac(c), churn_cid(c));
        let action = rnd() % 20;
        if action == 19 {
            h.now += 1 + rnd() % 20;
            continue;
        }
        if action >= 17 {
            // RELEASE or DECLINE of what the client holds, if anything.
            let Some(ip) = h.table.bound_to(&cid).map(|l| l.ip) else {
                continue;
            };
            let out = if action == 17 {
                send(&mut h, &plain_packet(mac, 7, ip, &[(54, &server)]))
            } else {
                let opts: [(u8, &[u8]); 2] = [(50, &ip.octets()), (54, &server)];
                send(&mut h, &plain_packet(mac, 4, Ipv4Addr::UNSPECIFIED, &opts))
            };
            assert!(out.reply.is_none());
            continue;
        }
        let own = h
            .table
            .bound_to(&cid)
            .map(|l| l.ip)
            .filter(|&ip| h.table.available(ip, &cid, h.now));
        let out = send(&mut h, &plain_packet(mac, 1, Ipv4Addr::UNSPECIFIED, &[]));
        let Some(r) = out.reply.as_ref() else {
            assert!(
                out.events
                    .iter()
                    .any(|e| e.kind == EventKind::PoolExhausted)
            );
            exhausted += 1;
            continue;
        };
        let ip = reply(&out).yiaddr();
        assert_eq!(r.kind, ReplyKind::Offer);
        assert!(!reserved.contains(&ip), "{ip} is reserved");
        if let Some(own) = own {
            assert_eq!(ip, own, "a returning client gets its address back");
            returning += 1;
        } else if h.table.get(ip).is_some() {
            reused += 1;
        }
        if action < 14 {
            let opts: [(u8, &[u8]); 2] = [(50, &ip.octets()), (54, &server)];
            let out = send(&mut h, &plain_packet(mac, 3, Ipv4Addr::UNSPECIFIED, &opts));
            assert_eq!(out.reply.map(|r| r.kind), Some(ReplyKind::Ack));
            acks += 1;
        }
        h.now += rnd() % 2;
    }
    // Every path was taken; the look-ups per request stayed small.
    assert!(returning > 1000, "{returning} returning clients");
    assert!(reused > 1000, "{reused} expired leases reused");
    assert!(exhausted > 100, "{exhausted} DISCOVERs with the pool full");
    assert!(acks > 10_000, "{acks} ACKs");
    assert!(worst > 4, "{worst}");
    // The machines still get their reserved addresses.
    let m = reply(&h.send(&Pkt::new(Fw::Plain, 203).discover()));
    assert_eq!(m.yiaddr(), reserved[3]);
}

#[test]
fn a_returning_client_gets_its_expired_address_while_fresh_ones_last() {
    let mut cfg = auth();
    cfg.pools = vec!["10.0.0.100,10.0.0.103,255.255.255.0,1h".parse().unwrap()];
    let mut h = Harness::new(cfg, Machines::default());
    let (_, ack) = h.dora(&Pkt::new(Fw::Plain, 1));
    let old = ack.yiaddr();
    // Its lease runs out; two new clients take fresh addresses, not its.
    h.now += 3600 + 10;
    for n in [2, 3] {
        let (_, ack) = h.dora(&Pkt::new(Fw::Plain, n));
        assert_ne!(ack.yiaddr(), old);
    }
    h.now += 10;
    let (offer, ack) = h.dora(&Pkt::new(Fw::Plain, 1));
    assert_eq!((offer.yiaddr(), ack.yiaddr()), (old, old));
    // Once nothing fresh is left, the lease that expired first is reused:
    // 2's (bound first, at the lowest address of the two).
    h.now += 3600 + 10;
    let (_, fresh) = h.dora(&Pkt::new(Fw::Plain, 4));
    assert_eq!(fresh.yiaddr(), Ipv4Addr::new(10, 0, 0, 103));
    let two = h.table.bound_to(&cid(2)).unwrap().ip;
    let (offer, _) = h.dora(&Pkt::new(Fw::Plain, 5));
    assert_eq!(offer.yiaddr(), two);
    assert!(h.table.bound_to(&cid(2)).is_none());
    assert_eq!(h.table.bound_to(&cid(1)).unwrap().ip, old);
}

#[test]
fn reserved_addresses_in_the_pool_go_to_their_machines_only() {
    let mut cfg = auth();
    cfg.pools = vec!["10.0.0.100,10.0.0.102,255.255.255.0,1h".parse().unwrap()];
    let machine = MachineView {
        ip: Some(Ipv4Addr::new(10, 0, 0, 101)),
        ..MachineView::default()
    };
    let mut h = Harness::new(cfg, Machines::default().with(9, machine));
    let mut got = Vec::new();
    for n in [1, 2] {
        let (_, ack) = h.dora(&Pkt::new(Fw::Plain, n));
        got.push(ack.yiaddr());
    }
    assert_eq!(
        got,
        [Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 102)]
    );
    // The pool is full for everyone else; the machine gets its address.
    assert!(h.send(&Pkt::new(Fw::Plain, 3).discover()).reply.is_none());
    let (_, ack) = h.dora(&Pkt::new(Fw::Plain, 9));
    assert_eq!(ack.yiaddr(), Ipv4Addr::new(10, 0, 0, 101));
    // Expired leases are reused, the reservation still skipped.
    h.now += 3600;
    let m = reply(&h.send(&Pkt::new(Fw::Plain, 3).discover()));
    assert_ne!(m.yiaddr(), Ipv4Addr::new(10, 0, 0, 101));
}

/// Options 51, 58 and 59 of a reply.
fn lease_secs(m: &Message) -> (u32, u32, u32) {
    let get = |code| match opt(m, code) {
        Some(
            DhcpOption::AddressLeaseTime(v) | DhcpOption::Renewal(v) | DhcpOption::Rebinding(v),
        ) => *v,
        _ => panic!("no {code:?}"),
    };
    (
        get(OptionCode::AddressLeaseTime),
        get(OptionCode::Renewal),
        get(OptionCode::Rebinding),
    )
}

#[test]
fn a_request_within_a_quarter_of_its_lease_is_answered_from_the_record() {
    let mut h = Harness::new(auth(), Machines::default());
    let (_, ack) = h.dora(&Pkt::new(Fw::Plain, 1));
    let ip = ack.yiaddr();
    assert_eq!(lease_secs(&ack), (3600, 1800, 3150));
    let renew = || {
        Pkt::new(Fw::Plain, 1)
            .unicast()
            .ciaddr(ip.octets())
            .request()
    };
    // 10 minutes on (a reboot, an early renewal): the remaining 50 minutes,
    // no write.
    h.now = T0 + 600;
    let out = h.send(&renew());
    let m = reply(&out);
    assert_eq!(msg_type(&m), Some(MessageType::Ack));
    assert_eq!(m.yiaddr(), ip);
    assert_eq!(lease_secs(&m), (3000, 1500, 2625));
    assert!(!out.needs_durability(), "{:?}", out.changes);
    assert!(out.events.iter().any(|e| e.kind == EventKind::AckSent));
    // The same through INIT-REBOOT (a machine that boots again).
    let out = h.send(&Pkt::new(Fw::Plain, 1).opt(50, &ip.octets()).request());
    assert_eq!(lease_secs(&reply(&out)).0, 3000);
    assert!(out.changes.is_empty());
    // Past a quarter of the lease: a new lease, written.
    h.now = T0 + 901;
    let out = h.send(&renew());
    assert_eq!(lease_secs(&reply(&out)).0, 3600);
    assert!(out.needs_durability());
    assert_eq!(h.table.bound_to(&cid(1)).unwrap().expires, T0 + 901 + 3600);
    // A new host name is written at once.
    let named = Pkt::new(Fw::Plain, 1)
        .opt(50, &ip.octets())
        .opt(12, b"node-7")
        .request();
    h.now += 1;
    let out = h.send(&named);
    assert_eq!(lease_secs(&reply(&out)).0, 3600);
    assert!(out.needs_durability());
    // A shorter lease configured since: the lease is written anew.
    let mut cfg = auth();
    cfg.pools = vec!["10.0.0.100,10.0.0.102,255.255.255.0,10m".parse().unwrap()];
    h.cfg = cfg;
    h.now += 1;
    let out = h.send(&named);
    assert_eq!(lease_secs(&reply(&out)).0, 600);
    assert!(out.needs_durability());
    // An expired lease is never answered from the record.
    h.now += 601;
    let out = h.send(&named);
    assert_eq!(lease_secs(&reply(&out)).0, 600);
    assert!(out.needs_durability());
}

#[test]
fn infinite_leases_are_answered_from_the_record() {
    let mut cfg = auth();
    cfg.pools = vec![
        "10.0.0.100,10.0.0.102,255.255.255.0,infinite"
            .parse()
            .unwrap(),
    ];
    let mut h = Harness::new(cfg, Machines::default());
    let (_, ack) = h.dora(&Pkt::new(Fw::Plain, 1));
    h.now += 86_400 * 365;
    let out = h.send(
        &Pkt::new(Fw::Plain, 1)
            .opt(50, &ack.yiaddr().octets())
            .request(),
    );
    assert_eq!(lease_secs(&reply(&out)), (u32::MAX, u32::MAX, u32::MAX));
    assert!(out.changes.is_empty());
}

/// The discovery inbox's input: the DISCOVER or REQUEST seen of an
/// unknown netboot client carries what it told (firmware class, option
/// 93, option 60, option 82's circuit and remote id, the relay), in
/// either mode; a known machine, a plain DHCP client, an INFORM and
/// every later event carry nothing.
#[test]
fn unknown_netboot_clients_carry_their_details() {
    let relay_info: &[u8] = &[1, 3, b'p', b'1', 0, 2, 2, 0xab, 0xcd];
    let opts: [(u8, &[u8]); 4] = [
        (53, &[1]),
        (60, b"HTTPClient:Arch:00016:UNDI:003001"),
        (93, &[0, 16]),
        (82, relay_info),
    ];
    let lookup = Machines::default().with(2, pxelinux_machine());
    for cfg in [auth(), proxy_cfg()] {
        let mode = cfg.mode;
        let leases = LeaseTable::for_pools(&cfg.pools);
        let run = |m: [u8; 6], opts: &[(u8, &[u8])]| {
            let bytes = client_packet(9, m, 0, [0; 4], [10, 0, 0, 254], opts);
            handle(&cfg, &leases, &lookup, &bytes, Via::Dhcp, T0).unwrap()
        };
        let out = run(mac(1), &opts);
        let seen = &out.events[0];
        assert_eq!(seen.kind, EventKind::DiscoverSeen, "{mode}");
        let c = seen
            .client
            .as_deref()
            .expect("details of an unknown client");
        assert_eq!(c.firmware, super::boot::Firmware::HttpX64);
        assert_eq!(c.firmware.name(), "http-x64");
        assert_eq!(c.arch, Some(16));
        assert_eq!(
            c.vendor_class.as_deref(),
            Some(&b"HTTPClient:Arch:00016:UNDI:003001"[..])
        );
        assert_eq!(c.circuit_id.as_deref(), Some(&b"p1\0"[..]));
        assert_eq!(c.remote_id.as_deref(), Some(&[0xab, 0xcd][..]));
        assert_eq!(c.relay, Some(Ipv4Addr::new(10, 0, 0, 254)));
        assert!(
            out.events[1..].iter().all(|e| e.client.is_none()),
            "{mode}: answers carry nothing"
        );
        // Known, or not a netboot client, or an INFORM: nothing.
        assert!(run(mac(2), &opts).events.iter().all(|e| e.client.is_none()));
        let plain: [(u8, &[u8]); 1] = [(53, &[1])];
        assert!(
            run(mac(3), &plain)
                .events
                .iter()
                .all(|e| e.client.is_none())
        );
        let mut inform = opts;
        inform[0] = (53, &[8]);
        assert!(
            run(mac(1), &inform)
                .events
                .iter()
                .all(|e| e.client.is_none())
        );
        // iPXE (user class) counts, without option 60 or 82; not relayed.
        let ipxe: [(u8, &[u8]); 2] = [(53, &[3]), (77, b"iPXE")];
        let bytes = client_packet(9, mac(4), 0, [0; 4], [0; 4], &ipxe);
        let out = handle(&cfg, &leases, &lookup, &bytes, Via::Dhcp, T0).unwrap();
        let c = out.events[0].client.as_deref().expect("iPXE details");
        assert_eq!((c.firmware.name(), c.relay), ("ipxe", None));
    }
}
