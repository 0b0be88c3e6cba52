//! Wiring: the protocol servers, fed from the app's store and reporting to it.
//!
//! Layer: service glue. The DHCP core asks [`StoreLookup`] what it knows
//! about a client (reservation, network options, loader, installed or
//! not); its observations become events on the machine they belong to
//! ([`on_dhcp_event`]) and counters in the metrics. The TFTP server reads
//! generated boot configs through [`App::boot_file`] and reports each
//! transfer the same way.

use crate::app::App;
use crate::boot::{self, ConfigName};
use crate::dhcp::{self, DhcpConfig, MachineLookup, MachineQuery, MachineView};
use crate::model::{EventKind, Loader, MachineId, MachineState, format_mac};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

/// The store as the DHCP core sees it.
pub struct StoreLookup(pub Rc<App>);

/// The machine a DHCP client is: by option 97 UUID (either byte order),
/// else by MAC, else the machine whose firmware was seen with this MAC
/// (an installer's DHCP carries no UUID: it still gets the machine's
/// reservation, and its answer-file fetches count as the machine's).
fn machine_id(app: &App, mac: [u8; 6], uuid: Option<[u8; 16]>) -> Option<MachineId> {
    let found = {
        let store = app.store.borrow();
        let by_uuid = uuid.and_then(|u| boot::find_machine(&store, &ConfigName::Uuid(u)));
        by_uuid
            .or_else(|| boot::find_machine(&store, &ConfigName::Mac(mac)))
            .map(|m| m.id)
    };
    found.or_else(|| app.owner_of_mac(mac))
}

impl MachineLookup for StoreLookup {
    fn lookup(&self, q: &MachineQuery) -> Option<MachineView> {
        let id = machine_id(&self.0, q.mac, q.uuid)?;
        self.0.learn_mac(id, q.mac);
        let store = self.0.store.borrow();
        let m = store.machines.get(&id)?;
        let loader = match store.bootactions.get(&m.bootaction).map(|a| a.loader) {
            Some(Loader::Ipxe) => dhcp::Loader::Ipxe,
            _ => dhcp::Loader::Pxelinux,
        };
        let installed = m.state == MachineState::Installed;
        Some(MachineView {
            ip: m.ip,
            mask: m.mask,
            gw: m.gw,
            dns: [m.ns1, m.ns2].into_iter().flatten().collect(),
            hostname: m
                .hostname
                .as_deref()
                .and_then(|h| h.split('.').next())
                .map(str::to_string),
            loader,
            // An installed BIOS machine still loads pxelinux, whose config
            // says LOCALBOOT; UEFI firmware is better served by no boot
            // file at all: it moves on to its next boot option (the disk).
            local_boot: installed && matches!(q.arch, Some(a) if a != 0),
        })
    }

    fn reserved_for_other(&self, ip: Ipv4Addr, mac: [u8; 6]) -> bool {
        let store = self.0.store.borrow();
        store.machines.values().any(|m| {
            m.ip == Some(ip)
                && m.id != MachineId::Mac(mac)
                && self.0.learned_mac(&m.id) != Some(mac)
        })
    }
}

/// The DHCP configuration from the app's.
pub fn dhcp_config(app: &App) -> DhcpConfig {
    let c = &app.config;
    let adv = app.urls.addr;
    DhcpConfig {
        mode: c.dhcp_mode,
        server_addr: adv,
        http_base: Some(app.urls.base.clone()),
        pools: c.dhcp_ranges.clone(),
        routers: c.dhcp_router.into_iter().collect(),
        dns: c.dhcp_dns.clone(),
        unknown_boot: match &c.unknown_boot {
            boot::DefaultBoot::Local => dhcp::UnknownBoot::LocalBoot,
            boot::DefaultBoot::Action(_) => dhcp::UnknownBoot::Loader(dhcp::Loader::Pxelinux),
        },
        interface: c.interface.clone(),
        listen: c.dhcp_listen,
        pxe_listen: std::net::SocketAddr::new(
            c.dhcp_listen.ip(),
            if c.dhcp_listen.port() == 67 { 4011 } else { 0 },
        ),
        relay_port: c.dhcp_relay_port,
        ..DhcpConfig::default()
    }
}

fn kind_label(k: dhcp::EventKind) -> (&'static str, &'static str) {
    use dhcp::EventKind as K;
    match k {
        K::DiscoverSeen => ("DISCOVER", "received"),
        K::RequestSeen => ("REQUEST", "received"),
        K::InformSeen => ("INFORM", "received"),
        K::OfferSent => ("OFFER", "sent"),
        K::AckSent => ("ACK", "sent"),
        K::NakSent => ("NAK", "sent"),
        K::BootInfoSent => ("PROXY", "sent"),
        K::Declined => ("DECLINE", "received"),
        K::Released => ("RELEASE", "received"),
        K::PoolExhausted => ("DISCOVER", "pool_exhausted"),
    }
}

/// Records a DHCP observation: metrics always; an event on the machine
/// when it is known; an info line for unknown PXE clients.
pub fn on_dhcp_event(app: &App, e: &dhcp::Event) {
    let (msg, outcome) = kind_label(e.kind);
    app.metrics.dhcp_packet(msg, outcome);
    let mac = e.mac.0;
    let id = if e.known {
        machine_id(app, mac, e.uuid)
    } else {
        None
    };
    // Unknown clients: their offers and acks are logged at info, the rest
    // at debug. The text is built only when someone will read it, so a
    // storm of unknown clients with logging at warn costs no formatting.
    let noisy = matches!(
        e.kind,
        dhcp::EventKind::OfferSent | dhcp::EventKind::AckSent | dhcp::EventKind::DiscoverSeen
    );
    let unknown_level = if noisy {
        log::Level::Info
    } else {
        log::Level::Debug
    };
    if id.is_none() && !log::log_enabled!(unknown_level) {
        return;
    }
    let mut detail = format!("{msg} {outcome} mac {}", format_mac(&mac, ":"));
    if let Some(ip) = e.ip {
        detail.push_str(&format!(" ip {ip}"));
    }
    if let Some(f) = &e.boot_file {
        detail.push_str(&format!(" boot file {f}"));
    }
    match id {
        Some(id) => {
            if let (dhcp::EventKind::AckSent | dhcp::EventKind::BootInfoSent, Some(ip)) =
                (e.kind, e.ip)
            {
                app.note_client(IpAddr::V4(ip), id);
            }
            // The address the machine got (authoritative) or asked the
            // lab's server for (option 50, seen in proxy mode): its answer
            // files fetched from there are its own.
            if let (dhcp::EventKind::AckSent | dhcp::EventKind::RequestSeen, Some(ip)) =
                (e.kind, e.ip)
            {
                app.note_dhcp_address(id, IpAddr::V4(ip));
            }
            let level = match e.kind {
                dhcp::EventKind::DiscoverSeen | dhcp::EventKind::RequestSeen => log::Level::Debug,
                _ => log::Level::Info,
            };
            app.event_at(level, id, EventKind::Dhcp, format!("dhcp {detail}"));
        }
        None if noisy => {
            let uuid = e
                .uuid
                .map(|u| crate::model::format_uuid(&u))
                .unwrap_or_else(|| "-".into());
            log::info!(
                "dhcp: unknown machine {detail} uuid {uuid}: default boot {:?}",
                app.default_boot()
            );
        }
        None => log::debug!("dhcp: {detail}"),
    }
}

/// Records a TFTP transfer: metrics, and an event on the machine at the
/// client's address.
pub fn on_tftp_report(app: &App, r: &crate::tftp::TransferReport) {
    use crate::tftp::Outcome;
    let outcome = match &r.outcome {
        Outcome::Completed => "completed",
        Outcome::ClientError { .. } => "client_error",
        Outcome::TimedOut => "timed_out",
        Outcome::Aborted(_) => "aborted",
        Outcome::Refused { code: 1, .. } => {
            app.metrics.tftp_error("not_found");
            return;
        }
        Outcome::Refused { code, .. } => {
            app.metrics.tftp_error(match code {
                2 => "access_violation",
                4 => "illegal_operation",
                _ => "refused",
            });
            return;
        }
    };
    app.metrics.tftp_transfer(outcome, r.bytes);
    if let Some(id) = app.machine_at(r.client.ip()) {
        let detail = format!(
            "tftp {} {} ({} bytes, {} ms, blksize {}, windowsize {}, {} retransmissions)",
            r.file,
            r.outcome,
            r.bytes,
            r.duration.as_millis(),
            r.blksize,
            r.windowsize,
            r.retransmissions
        );
        // The driver already logged the transfer at info.
        app.event_at(log::Level::Debug, id, EventKind::Tftp, detail);
    }
}
