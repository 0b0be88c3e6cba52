//! Fuzz the DHCP request path: decode + decide in authoritative and proxy
//! mode, on both server ports, twice (the second pass sees the lease
//! changes of the first, e.g. an offer then a request).
#![no_main]

use std::net::Ipv4Addr;

use gopxe::dhcp::{
    DhcpConfig, LeaseTable, Loader, MachineLookup, MachineQuery, MachineView, Mode, UnknownBoot,
    Via, handle,
};
use libfuzzer_sys::fuzz_target;

/// Every client is known, half of them with a reservation.
struct All;

impl MachineLookup for All {
    fn lookup(&self, q: &MachineQuery) -> Option<MachineView> {
        Some(MachineView {
            ip: (q.mac[5] % 2 == 0).then(|| Ipv4Addr::new(10, 0, 0, q.mac[5])),
            loader: if q.mac[4] % 2 == 0 {
                Loader::Ipxe
            } else {
                Loader::Pxelinux
            },
            local_boot: q.mac[3] == 0xff,
            hostname: Some("node".into()),
            ..MachineView::default()
        })
    }
    fn reserved_for_other(&self, ip: Ipv4Addr, mac: [u8; 6]) -> bool {
        ip.octets()[3] % 2 == 0 && ip.octets()[3] != mac[5]
    }
}

fuzz_target!(|data: &[u8]| {
    let base = DhcpConfig {
        server_addr: Ipv4Addr::new(10, 0, 0, 1),
        pools: vec![
            "10.0.0.100,10.0.0.103".parse().unwrap(),
            "10.1.0.10,10.1.0.12,255.255.255.0,infinite".parse().unwrap(),
        ],
        unknown_boot: UnknownBoot::Loader(Loader::Ipxe),
        ..DhcpConfig::default()
    };
    for mode in [Mode::Authoritative, Mode::Proxy] {
        let cfg = DhcpConfig { mode, ..base.clone() };
        let mut table = LeaseTable::for_pools(&cfg.pools);
        for now in [1_000u64, 1_030] {
            for via in [Via::Dhcp, Via::PxeDiscovery] {
                if let Ok(out) = handle(&cfg, &table, &All, data, via, now) {
                    for c in &out.changes {
                        table.apply(c);
                    }
                }
            }
        }
    }
});
