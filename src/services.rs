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
/// else by the Raspberry Pi serial in it, else by MAC, else the machine whose firmware was seen with this MAC
/// (an installer's DHCP carries no UUID: it still gets the machine's
/// reservation, and its answer-file fetches count as the machine's).
fn machine_id(app: &App, mac: [u8; 6], uuid: Option<[u8; 16]>) -> Option<MachineId> {
    let found = {
        let store = app.records();
        let by_uuid = uuid.and_then(|u| boot::find_machine(&store, &ConfigName::Uuid(u)));
        // A Raspberry Pi keyed by its serial: option 97 carries it.
        let by_serial = || {
            let serials = boot::rpi::serials_in_guid(&uuid?)?;
            serials
                .into_iter()
                .find_map(|n| store.machines.get(&MachineId::PiSerial(n)))
        };
        by_uuid
            .or_else(by_serial)
            .or_else(|| boot::find_machine(&store, &ConfigName::Mac(mac)))
            .map(|m| m.id)
    };
    found.or_else(|| app.owner_of_mac(mac))
}

impl MachineLookup for StoreLookup {
    fn lookup(&self, q: &MachineQuery) -> Option<MachineView> {
        let id = machine_id(&self.0, q.mac, q.uuid)?;
        self.0.learn_mac(id, q.mac);
        let store = self.0.records();
        let m = store.machines.get(&id)?;
        let loader = store
            .bootactions
            .get(&m.bootaction)
            .map(|a| a.loader)
            .unwrap_or_default();
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

    /// With `unknown_boot` naming a boot action, unknown machines get that
    /// action's loader, read when they ask (the action can change while
    /// gopxe runs); the configured family only while it does not exist.
    fn unknown_boot(&self, configured: dhcp::UnknownBoot) -> dhcp::UnknownBoot {
        match &self.0.config.unknown_boot {
            boot::DefaultBoot::Action(name) => self
                .0
                .records()
                .bootactions
                .get(name)
                .map_or(configured, |a| dhcp::UnknownBoot::Loader(a.loader)),
            boot::DefaultBoot::Local => configured,
        }
    }

    fn reserved_for_other(&self, ip: Ipv4Addr, mac: [u8; 6]) -> bool {
        let store = self.0.records();
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
            boot::DefaultBoot::Action(_) => dhcp::UnknownBoot::Loader(Loader::Auto),
        },
        interface: c.interface.clone(),
        listen: c.dhcp_listen,
        pxe_listen: std::net::SocketAddr::new(
            c.dhcp_listen.ip(),
            if c.dhcp_listen.port() == 67 { 4011 } else { 0 },
        ),
        relay_port: c.dhcp_relay_port,
        loaders: c.loaders(),
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
        K::BootInfoSent | K::BootInfoAcked => ("PROXY", "sent"),
        K::Declined => ("DECLINE", "received"),
        K::Released => ("RELEASE", "received"),
        K::PoolExhausted => ("DISCOVER", "pool_exhausted"),
    }
}

/// The level of a DHCP event's log line, the same for known and unknown
/// machines. The answer that ends an exchange is the one info line of a
/// DORA (the ACK; in proxy mode the offer with the boot file, the only
/// answer some firmware waits for) and a NAK; an exhausted pool is a
/// warning; every other packet seen or sent is debug.
pub fn dhcp_level(kind: dhcp::EventKind) -> log::Level {
    use dhcp::EventKind as K;
    match kind {
        K::AckSent | K::BootInfoSent | K::NakSent => log::Level::Info,
        K::PoolExhausted => log::Level::Warn,
        K::DiscoverSeen
        | K::RequestSeen
        | K::InformSeen
        | K::OfferSent
        | K::BootInfoAcked
        | K::Declined
        | K::Released => log::Level::Debug,
    }
}

/// Records a DHCP observation: metrics always; an event on the machine
/// when it is known; a log line at [`dhcp_level`], info and warn lines as
/// boot lines (rate-limited in a storm, [`crate::boot_log`]).
pub fn on_dhcp_event(app: &App, e: &dhcp::Event) {
    let (msg, outcome) = kind_label(e.kind);
    app.metrics.dhcp_packet(msg, outcome);
    if !e.known {
        discovered(app, e, msg, outcome);
    }
    let mac = e.mac.0;
    let id = if e.known {
        machine_id(app, mac, e.uuid)
    } else {
        None
    };
    let level = dhcp_level(e.kind);
    // The text is built only when someone will read it (or for the
    // machine's timeline): a storm of unknown clients costs no formatting.
    if id.is_none() && !log::log_enabled!(level) {
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
            if let (
                dhcp::EventKind::AckSent
                | dhcp::EventKind::BootInfoSent
                | dhcp::EventKind::BootInfoAcked,
                Some(ip),
            ) = (e.kind, e.ip)
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
            app.event_at(level, id, EventKind::Dhcp, format!("dhcp {detail}"));
        }
        None if level == log::Level::Debug => log::debug!("dhcp: {detail}"),
        None => {
            let uuid = e
                .uuid
                .map(|u| crate::model::format_uuid(&u))
                .unwrap_or_else(|| "-".into());
            let boot = match level {
                log::Level::Info => format!(": default boot {:?}", app.default_boot()),
                _ => String::new(),
            };
            crate::boot_log!(level, "dhcp: unknown machine {detail} uuid {uuid}{boot}");
        }
    }
}

/// Files a DHCP event of a client the lookup did not know in the
/// discovery inbox: a sighting when it carries the client's details, else
/// an event of an entry already there. Cheap: no text, no disk.
fn discovered(app: &App, e: &dhcp::Event, msg: &'static str, outcome: &'static str) {
    use std::borrow::Cow;
    let seen = || crate::discovered::Seen {
        at_ms: crate::app::now_ms(),
        msg: Cow::Borrowed(msg),
        outcome: Cow::Borrowed(outcome),
        ip: e.ip,
        boot_file: e.boot_file.clone(),
    };
    let mut inbox = app.discovered.borrow_mut();
    match &e.client {
        Some(c) => {
            let what = seen();
            inbox.seen(what.at_ms, e, c, what);
        }
        None => inbox.note(&e.mac.0, seen),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::{add_machine, app_on_disk};
    use crate::dhcp::core::{Via, handle};
    use crate::dhcp::packet::testing::client_packet;
    use crate::dhcp::{LeaseTable, Mode, UnknownBoot};
    use crate::logging::capture;

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const KNOWN: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
    const STRANGER: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x99];

    fn config_for(mode: Mode) -> DhcpConfig {
        DhcpConfig {
            mode,
            server_addr: SERVER,
            pools: match mode {
                Mode::Authoritative => {
                    vec!["10.0.0.100,10.0.0.150,255.255.255.0,1h".parse().unwrap()]
                }
                _ => Vec::new(),
            },
            unknown_boot: UnknownBoot::Loader(Loader::Pxelinux),
            ..DhcpConfig::default()
        }
    }

    /// One boot's DHCP as a BIOS PXE ROM does it, through the real core
    /// and [`on_dhcp_event`]: DISCOVER, then REQUEST for the offered
    /// address (authoritative) or to the boot server on udp/4011 (proxy).
    /// Returns what was logged, and whether the last request was answered.
    fn dora(app: &Rc<App>, cfg: &DhcpConfig, mac: [u8; 6]) -> (bool, Vec<capture::Line>) {
        let lookup = StoreLookup(app.clone());
        let mut table = LeaseTable::for_pools(&cfg.pools);
        let pxe: [(u8, &[u8]); 2] = [(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])];
        let mut send = |msg_type: u8, ciaddr: [u8; 4], extra: &[(u8, &[u8])], via: Via| {
            let mut opts: Vec<(u8, &[u8])> = vec![(53, std::slice::from_ref(&msg_type))];
            opts.extend_from_slice(&pxe);
            opts.extend_from_slice(extra);
            let bytes = client_packet(7, mac, 0x8000, ciaddr, [0; 4], &opts);
            let out = handle(cfg, &table, &lookup, &bytes, via, 1_700_000_000).unwrap();
            for c in &out.changes {
                table.apply(c);
            }
            for e in &out.events {
                on_dhcp_event(app, e);
            }
            out.reply.map(|r| r.bytes)
        };
        capture::lines(|| {
            let offer = send(1, [0; 4], &[], Via::Dhcp).expect("an offer");
            let answered = match cfg.mode {
                Mode::Authoritative => {
                    let yi = offer[16..20].to_vec();
                    let opts: [(u8, &[u8]); 2] = [(50, &yi), (54, &SERVER.octets())];
                    send(3, [0; 4], &opts, Via::Dhcp)
                }
                _ => send(3, [10, 0, 0, 7], &[], Via::PxeDiscovery),
            };
            answered.is_some()
        })
    }

    /// The one info line of each DORA, whoever the client.
    #[test]
    fn a_dora_logs_one_info_line_known_or_not() {
        let (app, dir) = app_on_disk("dora-lines");
        let app = Rc::new(app);
        let id = smol::block_on(add_machine(&app, "52:54:00:00:00:01"));
        for (mode, answer) in [
            (Mode::Authoritative, "ACK sent"),
            (Mode::Proxy, "PROXY sent"),
        ] {
            let cfg = config_for(mode);
            for (mac, who) in [(KNOWN, "machine"), (STRANGER, "unknown machine")] {
                let (answered, lines) = dora(&app, &cfg, mac);
                assert!(answered, "{mode}: {who} answered");
                let info = capture::info_and_above(&lines);
                assert_eq!(info.len(), 1, "{mode}, {who}: {lines:#?}");
                let line = &info[0].2;
                let stranger = line.contains("unknown machine");
                assert!(
                    line.contains(answer) && line.contains(who) && stranger == (mac == STRANGER),
                    "{mode}: {info:?}"
                );
                assert!(lines.len() >= 4, "every packet at debug: {lines:#?}");
            }
        }
        // The known machine's timeline keeps every packet of both.
        let events = app.events_of(&id);
        let seen = |what: &str| events.iter().filter(|e| e.detail.contains(what)).count();
        assert_eq!(seen("DISCOVER received"), 2);
        assert_eq!(seen("OFFER sent"), 1);
        assert_eq!(seen("REQUEST received"), 2);
        assert_eq!(seen("ACK sent"), 1);
        assert_eq!(seen("PROXY sent"), 2, "the proxy's offer and its ACK");
        // The store's threads are joined before its folder goes.
        drop(app);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// `unknown_boot` naming a boot action: an unknown BIOS client is
    /// offered that action's loader, and a change of the action's loader
    /// is seen by the next offer.
    /// A Pi keyed by its serial is found by the serial in its option 97
    /// (either byte order), and its MAC is learnt: its TFTP names under
    /// the MAC prefix are then its own.
    #[test]
    fn a_pi_keyed_by_serial_is_found_by_its_option_97() {
        use crate::boot::rpi::Answer;
        use crate::model::{BootAction, BootActionBody, Machine, MachineBody};
        let (app, dir) = app_on_disk("pi-serial");
        let app = Rc::new(app);
        smol::block_on(async {
            let body = BootActionBody {
                kernel: Some("k".into()),
                ..Default::default()
            };
            app.put_bootaction(BootAction::from_body("a", body).unwrap())
                .await
                .unwrap();
            let body = MachineBody {
                serial: Some("1a2b3c4d".into()),
                bootaction: Some("a".into()),
                ..Default::default()
            };
            app.put_machine(Machine::from_body(body, None).unwrap())
                .await
                .unwrap();
        });
        let lookup = StoreLookup(app.clone());
        let mac = [0xdc, 0xa6, 0x32, 0x01, 0x02, 0x03];
        let query = |guid: [u8; 16]| MachineQuery {
            mac,
            uuid: Some(guid),
            arch: Some(0),
        };
        let tftp_client = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
        // Before its DHCP, its MAC names nothing.
        assert_eq!(
            app.pi_file("dc-a6-32-01-02-03/config.txt", tftp_client),
            Some(Answer::Missing)
        );
        let pi4 = *b"RPi4\x11\x31\xc0\x00\x32\x01\x02\x03\x1a\x2b\x3c\x4d";
        // Another serial: not this Pi (asked first: a found Pi's MAC is
        // learnt, and would find it from then on).
        let mut other = pi4;
        other[15] = 0;
        assert!(lookup.lookup(&query(other)).is_none());
        let mut le = pi4;
        le[12..].reverse();
        for guid in [pi4, le] {
            assert!(lookup.lookup(&query(guid)).is_some(), "{guid:02x?}");
        }
        assert!(matches!(
            app.pi_file("dc-a6-32-01-02-03/config.txt", tftp_client),
            Some(Answer::Text(t)) if t.contains("kernel=k")
        ));
        drop(lookup);
        drop(app);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unknown_machines_get_the_loader_of_the_default_boot_action() {
        use crate::model::{BootAction, BootActionBody};
        let (mut app, dir) = app_on_disk("unknown-loader");
        app.config.unknown_boot = boot::DefaultBoot::Action("rescue".into());
        let app = Rc::new(app);
        let mut cfg = config_for(Mode::Authoritative);
        cfg.unknown_boot = dhcp_config(&app).unknown_boot;
        let offered_file = |app: &Rc<App>| {
            let lookup = StoreLookup(app.clone());
            let table = LeaseTable::for_pools(&cfg.pools);
            let opts: [(u8, &[u8]); 3] = [
                (53, &[1]),
                (60, b"PXEClient:Arch:00000:UNDI:002001"),
                (93, &[0, 0]),
            ];
            let bytes = client_packet(7, STRANGER, 0x8000, [0; 4], [0; 4], &opts);
            let out = handle(&cfg, &table, &lookup, &bytes, Via::Dhcp, 1_700_000_000).unwrap();
            let reply = out.reply.expect("an offer").bytes;
            let file = reply.get(108..236).unwrap_or_default();
            let end = file.iter().position(|&b| b == 0).unwrap_or(file.len());
            String::from_utf8_lossy(&file[..end]).into_owned()
        };
        // No such action yet: the configured family.
        assert_eq!(offered_file(&app), "pxelinux.0");
        for (loader, file) in [
            (Loader::Ipxe, "undionly.kpxe"),
            (Loader::Pxelinux, "pxelinux.0"),
        ] {
            let body = BootActionBody {
                kernel: Some("k".into()),
                loader: Some(loader),
                ..Default::default()
            };
            let a = BootAction::from_body("rescue", body).unwrap();
            smol::block_on(app.put_bootaction(a)).unwrap();
            assert_eq!(offered_file(&app), file, "{loader:?}");
        }
        drop(app);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn dhcp_levels() {
        use dhcp::EventKind as K;
        use log::Level::*;
        assert_eq!(dhcp_level(K::AckSent), Info);
        assert_eq!(dhcp_level(K::BootInfoSent), Info);
        assert_eq!(dhcp_level(K::NakSent), Info);
        assert_eq!(dhcp_level(K::PoolExhausted), Warn);
        for k in [
            K::DiscoverSeen,
            K::RequestSeen,
            K::InformSeen,
            K::OfferSent,
            K::BootInfoAcked,
            K::Declined,
            K::Released,
        ] {
            assert_eq!(dhcp_level(k), Debug, "{k:?}");
        }
    }
}
