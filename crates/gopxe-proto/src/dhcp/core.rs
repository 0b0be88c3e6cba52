//! Decision core: a reply is a pure function of (configuration, lease table,
//! machine information, request, now), built by a fixed pipeline of small
//! functions — classify, pick an address, build the reply, choose where it
//! goes. No socket, clock or file here.
//!
//! - Authoritative mode follows RFC 2131 §4.3: DISCOVER → OFFER (address held
//!   briefly), REQUEST in SELECTING / INIT-REBOOT / RENEWING-REBINDING state
//!   (§4.3.2) → ACK or NAK or silence, DECLINE (address quarantined),
//!   RELEASE, INFORM (ACK without address or lease time). Lease times are
//!   options 51/58/59 (RFC 2132 §9.2, §9.11, §9.12).
//! - Proxy mode follows the PXE spec 2.1 and RFC 4578: PXE clients only,
//!   boot information but never an address, on udp/67 and udp/4011.
//! - Relayed requests (giaddr) pick the pool by the relay's subnet and get
//!   option 82 echoed (RFC 3046 §2.2). Option 3 names only a router on the
//!   served subnet; a relayed subnet without one gets the relay agent
//!   (`routers_on`).
//! - Where the reply goes follows RFC 2131 §4.1 ([`Destination`]).

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode, UnknownOption};

use crate::model::validate::same_subnet;

use super::boot::{self, BootInfo};
use super::config::{DEFAULT_LEASE_SECS, DhcpConfig, INFINITE, Loader, Mode, Pool, UnknownBoot};
use super::lease::{Lease, LeaseChange, LeaseState, LeaseTable, NEVER, Now};
use super::packet::{self, Kind, Mac, PacketError, Request};

/// What the machine store knows about a client, filled in by the driver's
/// [`MachineLookup`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MachineView {
    /// Reserved address (authoritative mode always hands out this one).
    pub ip: Option<Ipv4Addr>,
    /// Options 1, 3, 6 for the reserved address; the pool's (or the
    /// configured defaults) when empty.
    pub mask: Option<Ipv4Addr>,
    pub gw: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Loader family for its next network boot.
    pub loader: Loader,
    /// Installed: boot from disk (no boot file).
    pub local_boot: bool,
}

/// What the lookup gets to identify a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineQuery {
    pub mac: [u8; 6],
    /// Option 97's 16 bytes as sent (SMBIOS byte order).
    pub uuid: Option<[u8; 16]>,
    /// Option 93, raw.
    pub arch: Option<u16>,
}

/// The machine store as the DHCP core sees it.
pub trait MachineLookup {
    /// The machine with this MAC or UUID, if known.
    fn lookup(&self, query: &MachineQuery) -> Option<MachineView>;

    /// Is `ip` reserved for a machine other than `mac`? Pool allocation
    /// skips such addresses.
    fn reserved_for_other(&self, _ip: Ipv4Addr, _mac: [u8; 6]) -> bool {
        false
    }

    /// What a client this lookup does not know boots, given the
    /// configured [`DhcpConfig::unknown_boot`]. The default keeps it; a
    /// lookup whose default boot is a record of its own answers from it.
    fn unknown_boot(&self, configured: UnknownBoot) -> UnknownBoot {
        configured
    }
}

/// A lookup that knows no machine.
pub struct NoMachines;

impl MachineLookup for NoMachines {
    fn lookup(&self, _query: &MachineQuery) -> Option<MachineView> {
        None
    }
}

/// The port a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// udp/67.
    Dhcp,
    /// udp/4011, PXE boot-server discovery (proxy mode).
    PxeDiscovery,
}

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// To the relay agent at giaddr, server port.
    Relay(Ipv4Addr),
    /// To the client's configured address (ciaddr), client port.
    Unicast(Ipv4Addr),
    /// To 255.255.255.255, client port.
    Broadcast,
    /// RFC 2131 would unicast to yiaddr at chaddr; that needs an ARP entry
    /// the driver cannot inject from a UDP socket, so the driver broadcasts.
    UnconfiguredClient { yiaddr: Ipv4Addr, mac: Mac },
    /// Back to the datagram's source address (PXE boot-server replies).
    Source,
}

/// A reply message, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyKind,
    pub bytes: Vec<u8>,
    pub to: Destination,
    pub via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Offer,
    Ack,
    Nak,
}

/// Things seen or done, for the machine's event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    DiscoverSeen,
    RequestSeen,
    InformSeen,
    OfferSent,
    AckSent,
    NakSent,
    /// proxyDHCP's offer with boot information (the answer to a DISCOVER).
    BootInfoSent,
    /// proxyDHCP's or the PXE boot server's ACK with boot information
    /// (the answer to a REQUEST or INFORM, on udp/67 or 4011).
    BootInfoAcked,
    Declined,
    Released,
    /// No address left in the pool for this client.
    PoolExhausted,
}

/// One observation, tagged with the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub mac: Mac,
    pub uuid: Option<[u8; 16]>,
    pub ip: Option<Ipv4Addr>,
    /// The machine lookup knew this client.
    pub known: bool,
    /// Boot file handed out, if any.
    pub boot_file: Option<String>,
    /// What the client told about itself: only on the DISCOVER or
    /// REQUEST seen of a netboot client the lookup does not know (the
    /// discovery inbox's input), `None` on every other event.
    pub client: Option<Box<ClientInfo>>,
}

/// What an unknown netboot client's request says about it, raw: the
/// service layer formats it when someone reads it (RFC 4578 options 93
/// and 60, RFC 3046 option 82 sub-options 1 and 2, giaddr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The class [`boot::firmware`] gives it (never `Firmware::None`).
    pub firmware: boot::Firmware,
    /// Option 93, the first architecture listed.
    pub arch: Option<u16>,
    /// Option 60 as sent.
    pub vendor_class: Option<Vec<u8>>,
    /// Option 82 sub-option 1, the relay's circuit id.
    pub circuit_id: Option<Vec<u8>>,
    /// Option 82 sub-option 2, the relay's remote id.
    pub remote_id: Option<Vec<u8>>,
    /// The relay agent (giaddr) when the request was relayed.
    pub relay: Option<Ipv4Addr>,
}

impl ClientInfo {
    /// The details of a netboot client's request (PXE, UEFI HTTP boot,
    /// iPXE, Raspberry Pi); `None` for any other client.
    pub fn of(req: &Request) -> Option<ClientInfo> {
        let firmware = boot::firmware(req);
        if firmware == boot::Firmware::None {
            return None;
        }
        let relay_sub = |code| {
            req.relay_info
                .as_deref()
                .and_then(|r| packet::sub_option(r, code))
                .map(<[u8]>::to_vec)
        };
        Some(ClientInfo {
            firmware,
            arch: req.arch,
            vendor_class: req.vendor_class.clone(),
            circuit_id: relay_sub(1),
            remote_id: relay_sub(2),
            relay: (!req.giaddr.is_unspecified()).then_some(req.giaddr),
        })
    }
}

/// The result of one request: at most one reply, lease changes to apply
/// (durable ones before sending), and events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub reply: Option<Reply>,
    pub changes: Vec<LeaseChange>,
    pub events: Vec<Event>,
}

impl Outcome {
    /// Does the reply depend on a lease change reaching the disk first?
    pub fn needs_durability(&self) -> bool {
        self.changes.iter().any(LeaseChange::is_durable)
    }
}

/// Decode and decide. A bad datagram is a typed error (log and drop).
pub fn handle(
    cfg: &DhcpConfig,
    leases: &LeaseTable,
    lookup: &dyn MachineLookup,
    bytes: &[u8],
    via: Via,
    now: Now,
) -> Result<Outcome, PacketError> {
    let req = packet::decode(bytes)?;
    Ok(decide(cfg, leases, lookup, &req, via, now))
}

/// Everything one decision needs, gathered once.
struct Ctx<'a> {
    cfg: &'a DhcpConfig,
    leases: &'a LeaseTable,
    lookup: &'a dyn MachineLookup,
    req: &'a Request,
    machine: Option<MachineView>,
    /// What this client boots if `machine` is `None`.
    unknown: UnknownBoot,
    via: Via,
    now: Now,
}

impl Ctx<'_> {
    fn event(&self, kind: EventKind, ip: Option<Ipv4Addr>, boot: Option<&BootInfo>) -> Event {
        Event {
            kind,
            mac: self.req.mac,
            uuid: self.req.uuid,
            ip,
            known: self.machine.is_some(),
            boot_file: boot.and_then(|b| b.file.clone()),
            client: None,
        }
    }
}

/// Decide on a checked request.
pub fn decide(
    cfg: &DhcpConfig,
    leases: &LeaseTable,
    lookup: &dyn MachineLookup,
    req: &Request,
    via: Via,
    now: Now,
) -> Outcome {
    if cfg.mode == Mode::Off {
        return Outcome::default();
    }
    let machine = lookup.lookup(&MachineQuery {
        mac: req.mac.0,
        uuid: req.uuid,
        arch: req.arch,
    });
    let unknown = match machine {
        None => lookup.unknown_boot(cfg.unknown_boot),
        Some(_) => cfg.unknown_boot,
    };
    let cx = Ctx {
        cfg,
        leases,
        lookup,
        req,
        machine,
        unknown,
        via,
        now,
    };
    let mut out = Outcome::default();
    let seen = match req.kind {
        Kind::Discover => Some(EventKind::DiscoverSeen),
        Kind::Request => Some(EventKind::RequestSeen),
        Kind::Inform => Some(EventKind::InformSeen),
        Kind::Decline | Kind::Release => None,
    };
    if let Some(k) = seen {
        let mut e = cx.event(k, req.requested_ip, None);
        if cx.machine.is_none() && req.kind != Kind::Inform {
            e.client = ClientInfo::of(req).map(Box::new);
        }
        out.events.push(e);
    }
    match cfg.mode {
        Mode::Off => {}
        Mode::Proxy => proxy(&cx, &mut out),
        Mode::Authoritative => {
            if via == Via::Dhcp {
                authoritative(&cx, &mut out);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Authoritative mode

/// Network parameters for an address: mask, routers, DNS, lease time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Net {
    mask: Ipv4Addr,
    routers: Vec<Ipv4Addr>,
    dns: Vec<Ipv4Addr>,
    lease_secs: u32,
}

/// The subnet a request comes from: the relay's, else the client's own
/// address (renew, inform), else the server's.
fn subnet_hint(cx: &Ctx) -> Ipv4Addr {
    if !cx.req.giaddr.is_unspecified() {
        cx.req.giaddr
    } else if !cx.req.ciaddr.is_unspecified() {
        cx.req.ciaddr
    } else {
        cx.cfg.server_addr
    }
}

/// Pools serving the request's subnet. A local (non-relayed) request on a
/// server whose own address is in none of the pools' subnets may use any
/// pool: the lab's addressing is the admin's business.
fn pools_for<'a>(cx: &Ctx<'a>) -> Vec<&'a Pool> {
    let hint = subnet_hint(cx);
    let on: Vec<&Pool> = cx
        .cfg
        .pools
        .iter()
        .filter(|p| p.same_subnet(hint))
        .collect();
    if on.is_empty() && cx.req.giaddr.is_unspecified() && cx.req.ciaddr.is_unspecified() {
        cx.cfg.pools.iter().collect()
    } else {
        on
    }
}

fn net_for_pool(cx: &Ctx, p: &Pool) -> Net {
    Net {
        mask: p.mask,
        routers: routers_on(cx, p.first, p.mask),
        dns: cx.cfg.dns.clone(),
        lease_secs: p.lease_secs,
    }
}

/// Option 3 for an address on the subnet of `ip`/`mask`: the configured
/// routers on that subnet (a gateway must be on-link, RFC 1122 §3.3.1.1).
/// With none there, a relayed request gets its relay agent's address,
/// which is the router on that subnet in the usual set-up (a routed switch
/// forwarding DHCP); a local request gets the configured routers as given,
/// since the lab's addressing is the admin's business.
fn routers_on(cx: &Ctx, ip: Ipv4Addr, mask: Ipv4Addr) -> Vec<Ipv4Addr> {
    let on_link: Vec<Ipv4Addr> = cx
        .cfg
        .routers
        .iter()
        .copied()
        .filter(|r| same_subnet(*r, ip, mask))
        .collect();
    if !on_link.is_empty() {
        on_link
    } else if !cx.req.giaddr.is_unspecified() {
        vec![cx.req.giaddr]
    } else {
        cx.cfg.routers.clone()
    }
}

/// The machine's reserved address with its network parameters, if it has
/// one usable on the request's subnet.
fn reservation(cx: &Ctx) -> Option<(Ipv4Addr, Net)> {
    let m = cx.machine.as_ref()?;
    let ip = m.ip?;
    let pool = cx.cfg.pools.iter().find(|p| p.same_subnet(ip));
    let mask = m
        .mask
        .or(pool.map(|p| p.mask))
        .unwrap_or(Ipv4Addr::new(255, 255, 255, 0));
    let relayed_elsewhere =
        !cx.req.giaddr.is_unspecified() && !same_subnet(cx.req.giaddr, ip, mask);
    if relayed_elsewhere {
        log::warn!(
            "dhcp: {}: reserved address {ip} is not on relay {}'s subnet; using the pool",
            cx.req.mac,
            cx.req.giaddr
        );
        return None;
    }
    let net = Net {
        mask,
        routers: m.gw.map_or_else(|| routers_on(cx, ip, mask), |g| vec![g]),
        dns: if m.dns.is_empty() {
            cx.cfg.dns.clone()
        } else {
            m.dns.clone()
        },
        lease_secs: pool.map_or(DEFAULT_LEASE_SECS, |p| p.lease_secs),
    };
    Some((ip, net))
}

/// Never hand out the server's own address or one reserved for another
/// machine.
fn skip(cx: &Ctx, ip: Ipv4Addr) -> bool {
    ip == cx.cfg.server_addr || cx.lookup.reserved_for_other(ip, cx.req.mac.0)
}

/// May this pool address go to this client now?
fn pool_address_ok(cx: &Ctx, pools: &[&Pool], ip: Ipv4Addr) -> Option<Net> {
    let p = pools.iter().find(|p| p.contains(ip))?;
    let ok = !p.is_network_or_broadcast(ip)
        && !skip(cx, ip)
        && cx.leases.available(ip, &cx.req.client_id, cx.now);
    ok.then(|| net_for_pool(cx, p))
}

/// Pick the address to offer: reservation, the client's current lease, its
/// pending offer, the address it asks for, then the first free one.
fn address_for_discover(cx: &Ctx) -> Option<(Ipv4Addr, Net)> {
    if let Some(r) = reservation(cx) {
        if cx.leases.bound_to_other(r.0, &cx.req.client_id, cx.now) {
            log::warn!(
                "dhcp: reserved address {} for {} is leased to another client",
                r.0,
                cx.req.mac
            );
        }
        return Some(r);
    }
    let pools = pools_for(cx);
    let cid = &cx.req.client_id;
    let previous = [
        cx.leases.bound_to(cid).map(|l| l.ip),
        cx.leases.offered_to(cid, cx.now),
        cx.req.requested_ip,
    ];
    for ip in previous.into_iter().flatten() {
        if let Some(net) = pool_address_ok(cx, &pools, ip) {
            return Some((ip, net));
        }
    }
    pools.iter().find_map(|p| {
        cx.leases
            .find_free(p, cid, cx.now, &|ip| skip(cx, ip))
            .map(|ip| (ip, net_for_pool(cx, p)))
    })
}

/// RFC 2131 §4.3.2 client states of a DHCPREQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestState {
    Selecting {
        server: Ipv4Addr,
        ip: Ipv4Addr,
    },
    InitReboot {
        ip: Ipv4Addr,
    },
    /// Renewing (unicast) or rebinding (broadcast): same handling.
    Renewing {
        ip: Ipv4Addr,
    },
    Invalid,
}

fn request_state(req: &Request) -> RequestState {
    match (req.server_id, req.requested_ip, req.ciaddr.is_unspecified()) {
        (Some(server), Some(ip), _) => RequestState::Selecting { server, ip },
        // Some clients put the address in ciaddr instead of option 50.
        (Some(server), None, false) => RequestState::Selecting {
            server,
            ip: req.ciaddr,
        },
        (None, Some(ip), true) => RequestState::InitReboot { ip },
        (None, _, false) => RequestState::Renewing { ip: req.ciaddr },
        _ => RequestState::Invalid,
    }
}

/// What to answer a DHCPREQUEST with.
enum Verdict {
    Ack(Ipv4Addr, Net),
    Nak(&'static str),
    Silent(&'static str),
}

fn verdict_for_request(cx: &Ctx) -> Verdict {
    let cid = &cx.req.client_id;
    let reserved = reservation(cx);
    let pools = pools_for(cx);
    match request_state(cx.req) {
        RequestState::Invalid => Verdict::Silent("request without address"),
        RequestState::Selecting { server, ip } => {
            if server != cx.cfg.server_addr {
                return Verdict::Silent("client chose another server");
            }
            if let Some((r, net)) = reserved {
                return if r == ip {
                    Verdict::Ack(ip, net)
                } else {
                    Verdict::Nak("not the reserved address")
                };
            }
            match pool_address_ok(cx, &pools, ip) {
                Some(net) => Verdict::Ack(ip, net),
                None => Verdict::Nak("address not available"),
            }
        }
        RequestState::InitReboot { ip } | RequestState::Renewing { ip } => {
            if let Some((r, net)) = reserved {
                return if r == ip {
                    Verdict::Ack(ip, net)
                } else {
                    Verdict::Nak("not the reserved address")
                };
            }
            if !pools.iter().any(|p| p.same_subnet(ip)) {
                return if pools.is_empty() && !cx.req.ciaddr.is_unspecified() {
                    Verdict::Silent("not one of our subnets")
                } else {
                    Verdict::Nak("wrong subnet")
                };
            }
            if cx.leases.bound_to(cid).is_some_and(|l| l.ip == ip)
                && let Some(net) = pool_address_ok(cx, &pools, ip)
            {
                return Verdict::Ack(ip, net);
            }
            if cx.leases.bound_to_other(ip, cid, cx.now) || skip(cx, ip) {
                return Verdict::Nak("address belongs to another client");
            }
            let is_init_reboot = matches!(request_state(cx.req), RequestState::InitReboot { .. });
            match pool_address_ok(cx, &pools, ip) {
                // A renewing client whose lease we lost (or that is on our
                // subnet outside the pool's history): keep it working.
                Some(net) if !is_init_reboot => Verdict::Ack(ip, net),
                // RFC 2131 §4.3.2: no record of the client → remain silent.
                _ if is_init_reboot => Verdict::Silent("no record of this client"),
                _ => Verdict::Nak("address outside the pool"),
            }
        }
    }
}

fn authoritative(cx: &Ctx, out: &mut Outcome) {
    let req = cx.req;
    match req.kind {
        Kind::Discover => match address_for_discover(cx) {
            Some((ip, net)) => {
                let boot = boot::choose(cx.cfg, cx.unknown, req, cx.machine.as_ref(), false);
                let msg = address_reply(cx, MessageType::Offer, ip, &net, boot.as_ref());
                out.changes.push(LeaseChange::Offer {
                    ip,
                    client_id: req.client_id.clone(),
                    until: cx.now.saturating_add(u64::from(cx.cfg.offer_hold_secs)),
                });
                out.events
                    .push(cx.event(EventKind::OfferSent, Some(ip), boot.as_ref()));
                out.reply = finish(cx, ReplyKind::Offer, &msg, destination(req, ip, false));
            }
            None => {
                // No pool for the relay's subnet is a misrouted (or forged)
                // packet: debug. A full pool is the admin's business: the
                // event is logged as a warning (by the service, which
                // holds such lines back in a storm).
                let pools = pools_for(cx);
                if pools.is_empty() {
                    log::debug!("dhcp: no pool for giaddr {} ({})", req.giaddr, req.mac);
                } else if let Some(p) = pools.iter().find(|p| !cx.leases.indexes(p)) {
                    log::error!(
                        "dhcp: the lease table has no index for pool {}..{}: no address from it",
                        p.first,
                        p.last
                    );
                } else {
                    log::debug!(
                        "dhcp: pool exhausted, no free address for {} (giaddr {})",
                        req.mac,
                        req.giaddr
                    );
                }
                out.events
                    .push(cx.event(EventKind::PoolExhausted, None, None));
            }
        },
        Kind::Request => match verdict_for_request(cx) {
            Verdict::Ack(ip, net) => {
                let boot = boot::choose(cx.cfg, cx.unknown, req, cx.machine.as_ref(), false);
                let hostname = client_hostname(cx);
                let mut net = net;
                match cached_lease_secs(cx, ip, net.lease_secs, &hostname) {
                    // The lease on record still covers most of a lease:
                    // its remaining time, and nothing to write.
                    Some(remaining) => net.lease_secs = remaining,
                    None => out.changes.push(LeaseChange::Bind(Lease {
                        ip,
                        state: LeaseState::Bound,
                        client_id: req.client_id.clone(),
                        mac: req.mac,
                        expires: if net.lease_secs == INFINITE {
                            NEVER
                        } else {
                            cx.now.saturating_add(u64::from(net.lease_secs))
                        },
                        hostname,
                    })),
                }
                let msg = address_reply(cx, MessageType::Ack, ip, &net, boot.as_ref());
                out.events
                    .push(cx.event(EventKind::AckSent, Some(ip), boot.as_ref()));
                out.reply = finish(cx, ReplyKind::Ack, &msg, destination(req, ip, false));
            }
            Verdict::Nak(why) => {
                // The NAK itself is an event, logged at info by the service.
                log::debug!("dhcp: NAK to {}: {why}", req.mac);
                let msg = nak(cx, why);
                out.events.push(cx.event(EventKind::NakSent, None, None));
                out.reply = finish(
                    cx,
                    ReplyKind::Nak,
                    &msg,
                    destination(req, Ipv4Addr::UNSPECIFIED, true),
                );
            }
            Verdict::Silent(why) => {
                log::debug!("dhcp: no answer to REQUEST from {}: {why}", req.mac);
                if let RequestState::Selecting { server, .. } = request_state(req)
                    && server != cx.cfg.server_addr
                {
                    out.changes.push(LeaseChange::Withdraw {
                        client_id: req.client_id.clone(),
                    });
                }
            }
        },
        Kind::Decline => {
            let ours = req.server_id.is_none_or(|s| s == cx.cfg.server_addr);
            let Some(ip) = req.requested_ip else { return };
            let theirs = cx
                .leases
                .bound_to(&req.client_id)
                .is_some_and(|l| l.ip == ip)
                || cx.leases.offered_to(&req.client_id, cx.now) == Some(ip);
            if ours && theirs {
                log::warn!(
                    "dhcp: {} declined {ip}: address in use, quarantined",
                    req.mac
                );
                out.changes.push(LeaseChange::Decline {
                    ip,
                    mac: req.mac,
                    until: cx
                        .now
                        .saturating_add(u64::from(cx.cfg.decline_quarantine_secs)),
                });
                out.events
                    .push(cx.event(EventKind::Declined, Some(ip), None));
            }
        }
        Kind::Release => {
            let ip = req.ciaddr;
            let ours = req.server_id.is_none_or(|s| s == cx.cfg.server_addr);
            if ours
                && cx
                    .leases
                    .bound_to(&req.client_id)
                    .is_some_and(|l| l.ip == ip)
            {
                out.changes.push(LeaseChange::Free { ip });
                out.events
                    .push(cx.event(EventKind::Released, Some(ip), None));
            }
        }
        Kind::Inform => {
            if req.ciaddr.is_unspecified() {
                return;
            }
            let net = reservation(cx)
                .filter(|(ip, _)| *ip == req.ciaddr)
                .map(|(_, n)| n)
                .or_else(|| {
                    pools_for(cx)
                        .into_iter()
                        .find(|p| p.same_subnet(req.ciaddr))
                        .map(|p| net_for_pool(cx, p))
                });
            let boot = boot::choose(cx.cfg, cx.unknown, req, cx.machine.as_ref(), false);
            let mut m = packet::reply_skeleton(req);
            m.set_ciaddr(req.ciaddr);
            let o = m.opts_mut();
            o.insert(DhcpOption::MessageType(MessageType::Ack));
            o.insert(DhcpOption::ServerIdentifier(cx.cfg.server_addr));
            if let Some(net) = &net {
                net_options(&mut m, net);
            }
            boot_options(cx, &mut m, boot.as_ref());
            out.events
                .push(cx.event(EventKind::AckSent, None, boot.as_ref()));
            out.reply = finish(
                cx,
                ReplyKind::Ack,
                &m,
                destination(req, Ipv4Addr::UNSPECIFIED, false),
            );
        }
    }
}

/// Lease caching: a client that asks again for the address it holds,
/// within the first [`CACHE_THRESHOLD_PERCENT`] of its lease (a returning
/// machine that reboots, a retransmitted REQUEST, an early renewal), gets
/// the remaining time of the lease on record instead of a new one, so its
/// ACK needs no write and no fsync (ISC dhcpd's and Kea's
/// `cache-threshold`). Nothing is promised beyond the lease on record.
/// Returns the seconds left, or `None` when the lease must be written:
/// another address, MAC or host name, a lease longer than the one now
/// configured, or one past the threshold.
fn cached_lease_secs(
    cx: &Ctx,
    ip: Ipv4Addr,
    lease_secs: u32,
    hostname: &Option<String>,
) -> Option<u32> {
    let held = cx.leases.bound_to(&cx.req.client_id)?;
    if held.ip != ip || held.mac != cx.req.mac || &held.hostname != hostname {
        return None;
    }
    if lease_secs == INFINITE {
        return (held.expires == NEVER).then_some(INFINITE);
    }
    let left = u32::try_from(held.expires.checked_sub(cx.now)?).ok()?;
    let used = lease_secs.checked_sub(left)?;
    (u64::from(used) * 100 < u64::from(lease_secs) * u64::from(CACHE_THRESHOLD_PERCENT))
        .then_some(left)
}

/// See [`cached_lease_secs`]: the share of a lease (percent) within which a
/// repeated REQUEST is answered from the lease on record.
pub const CACHE_THRESHOLD_PERCENT: u32 = 25;

/// The client's hostname (option 12) if it is a valid RFC 1123 name;
/// the machine record's name wins.
fn client_hostname(cx: &Ctx) -> Option<String> {
    cx.machine
        .as_ref()
        .and_then(|m| m.hostname.clone())
        .or_else(|| cx.req.hostname.clone())
        .filter(|h| valid_hostname(h))
}

/// RFC 1123 host name: labels of 1–63 letters, digits, hyphens, not
/// starting or ending with a hyphen; 253 characters at most.
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// OFFER or ACK carrying an address (RFC 2131 §4.3.1 table 3).
fn address_reply(
    cx: &Ctx,
    kind: MessageType,
    ip: Ipv4Addr,
    net: &Net,
    boot: Option<&BootInfo>,
) -> Message {
    let req = cx.req;
    let mut m = packet::reply_skeleton(req);
    m.set_yiaddr(ip);
    if kind == MessageType::Ack {
        m.set_ciaddr(req.ciaddr);
    }
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    o.insert(DhcpOption::ServerIdentifier(cx.cfg.server_addr));
    let (t1, t2) = if net.lease_secs == INFINITE {
        (INFINITE, INFINITE)
    } else {
        (net.lease_secs / 2, net.lease_secs / 8 * 7)
    };
    o.insert(DhcpOption::AddressLeaseTime(net.lease_secs));
    o.insert(DhcpOption::Renewal(t1));
    o.insert(DhcpOption::Rebinding(t2));
    if let Some(h) = cx.machine.as_ref().and_then(|m| m.hostname.clone())
        && valid_hostname(&h)
    {
        o.insert(DhcpOption::Hostname(h));
    }
    net_options(&mut m, net);
    boot_options(cx, &mut m, boot);
    m
}

/// Options 1, 3, 6.
fn net_options(m: &mut Message, net: &Net) {
    let o = m.opts_mut();
    o.insert(DhcpOption::SubnetMask(net.mask));
    if !net.routers.is_empty() {
        o.insert(DhcpOption::Router(net.routers.clone()));
    }
    if !net.dns.is_empty() {
        o.insert(DhcpOption::DomainNameServer(net.dns.clone()));
    }
}

/// siaddr, sname/66, file/67, and 60/43/175 as the boot choice says. The
/// BOOTP fields are only filled when the name fits; the options always are.
fn boot_options(cx: &Ctx, m: &mut Message, boot: Option<&BootInfo>) {
    let Some(b) = boot else { return };
    let server = cx.cfg.server_addr.to_string();
    m.set_siaddr(cx.cfg.server_addr);
    packet::set_sname_checked(m, &server);
    if let Some(f) = &b.file {
        packet::set_fname_checked(m, f);
    }
    let o = m.opts_mut();
    o.insert(DhcpOption::TFTPServerName(server.into_bytes()));
    if let Some(f) = &b.file {
        o.insert(DhcpOption::BootfileName(f.clone().into_bytes()));
    }
    if let Some(c) = b.vendor_class {
        o.insert(DhcpOption::ClassIdentifier(c.as_bytes().to_vec()));
    }
    if let Some(v) = &b.vendor_opts {
        o.insert(DhcpOption::VendorExtensions(v.clone()));
    }
    if b.ipxe_no_pxedhcp {
        o.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::from(175u8),
            vec![176, 1, 1],
        )));
    }
}

fn nak(cx: &Ctx, why: &str) -> Message {
    let mut m = packet::reply_skeleton(cx.req);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Nak));
    o.insert(DhcpOption::ServerIdentifier(cx.cfg.server_addr));
    o.insert(DhcpOption::Message(why.to_string()));
    m
}

/// RFC 2131 §4.1: relay if giaddr; NAKs otherwise broadcast; ciaddr gets
/// unicast; the broadcast flag asks for broadcast; else unicast to yiaddr.
fn destination(req: &Request, yiaddr: Ipv4Addr, is_nak: bool) -> Destination {
    if !req.giaddr.is_unspecified() {
        Destination::Relay(req.giaddr)
    } else if is_nak {
        Destination::Broadcast
    } else if !req.ciaddr.is_unspecified() {
        Destination::Unicast(req.ciaddr)
    } else if req.flags_broadcast || yiaddr.is_unspecified() {
        Destination::Broadcast
    } else {
        Destination::UnconfiguredClient {
            yiaddr,
            mac: req.mac,
        }
    }
}

/// Encode; a NAK through a relay sets the broadcast bit (§4.3.2).
fn finish(cx: &Ctx, kind: ReplyKind, msg: &Message, to: Destination) -> Option<Reply> {
    let mut msg = msg.clone();
    if kind == ReplyKind::Nak && matches!(to, Destination::Relay(_)) {
        msg.set_flags(dhcproto::v4::Flags::default().set_broadcast());
    }
    match packet::encode(&msg, cx.req.relay_info.as_deref()) {
        Ok(bytes) => Some(Reply {
            kind,
            bytes,
            to,
            via: cx.via,
        }),
        Err(e) => {
            log::error!("dhcp: cannot encode reply to {}: {e}", cx.req.mac);
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Proxy mode

fn proxy(cx: &Ctx, out: &mut Outcome) {
    let req = cx.req;
    if !req.is_netboot_client() {
        return;
    }
    let Some(mut boot) = boot::choose(cx.cfg, cx.unknown, req, cx.machine.as_ref(), true) else {
        log::debug!("dhcp: proxy: nothing to boot for {}", req.mac);
        return;
    };
    let (kind, msg_type, to) = match (cx.via, req.kind) {
        (Via::Dhcp, Kind::Discover) => (
            ReplyKind::Offer,
            MessageType::Offer,
            destination(req, Ipv4Addr::UNSPECIFIED, false),
        ),
        (Via::Dhcp, Kind::Request) if req.server_id == Some(cx.cfg.server_addr) => (
            ReplyKind::Ack,
            MessageType::Ack,
            destination(req, Ipv4Addr::UNSPECIFIED, false),
        ),
        (Via::PxeDiscovery, Kind::Request | Kind::Inform) => {
            if boot.firmware != boot::Firmware::RaspberryPi
                && boot.vendor_class == Some("PXEClient")
            {
                boot.vendor_opts = Some(boot::pxe_boot_server_ack(req));
            }
            (ReplyKind::Ack, MessageType::Ack, Destination::Source)
        }
        _ => return,
    };
    let mut m = packet::reply_skeleton(req);
    if kind == ReplyKind::Ack {
        m.set_ciaddr(req.ciaddr);
    }
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(msg_type));
    o.insert(DhcpOption::ServerIdentifier(cx.cfg.server_addr));
    // PXE spec: a proxy reply carries the client's UUID back.
    if let Some(u) = req.uuid {
        let mut v = Vec::with_capacity(17);
        v.push(0);
        v.extend_from_slice(&u);
        o.insert(DhcpOption::ClientMachineIdentifier(v));
    }
    boot_options(cx, &mut m, Some(&boot));
    let event = match kind {
        ReplyKind::Offer => EventKind::BootInfoSent,
        _ => EventKind::BootInfoAcked,
    };
    out.events.push(cx.event(event, None, Some(&boot)));
    out.reply = finish(cx, kind, &m, to);
}
