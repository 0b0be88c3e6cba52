//! DHCPv4 for network boot: a sans-I/O decision core and a thin smol driver.
//!
//! - RFC 2131 (DHCP) and RFC 2132 (options): authoritative server with
//!   pools, reservations, leases, DECLINE/RELEASE/INFORM, INIT-REBOOT and
//!   renewals, the broadcast/unicast rules of §4.1.
//! - RFC 3046: relay agents (giaddr; option 82 echoed verbatim).
//! - RFC 4578 and the PXE spec 2.1: client architecture (93), UUID (97),
//!   proxyDHCP on udp/67 and boot-server discovery on udp/4011.
//!
//! Layers, from the wire in (all but the last two in the sans-I/O crate,
//! `gopxe_proto::dhcp`, re-exported here):
//! - [`packet`]: untrusted bytes → checked [`packet::Request`]; reply
//!   encoding that never panics (dhcproto does the wire format).
//! - [`boot`]: which boot file / URL / vendor options a client gets.
//! - [`lease`]: the pure lease table (time passed in) and its allocator,
//!   O(log n) per request whatever the pool's size.
//! - [`core`]: the decision: `(config, leases, machine, request, now) →
//!   reply + lease changes + events`.
//! - [`leaselog`]: the lease log's records (encode, parse, replay).
//! - [`leasefile`]: the durable, append-only lease log (the file).
//! - [`server`]: sockets, clock, group commit.
//!
//! Wiring it into a process:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::rc::Rc;
//! use gopxe::dhcp::{serve, DhcpConfig, DhcpState, Mode, NoMachines};
//!
//! let cfg = DhcpConfig {
//!     mode: Mode::Authoritative,
//!     server_addr: "10.0.0.1".parse()?,
//!     pools: vec!["10.0.0.100,10.0.0.200,255.255.255.0,12h".parse()?],
//!     interface: Some("br0".into()),
//!     ..DhcpConfig::default()
//! };
//! let state = DhcpState::open(std::path::Path::new("/var/lib/gopxe"))?;
//! let for_http = state.clone(); // GET /leases: for_http.snapshot()
//! smol::block_on(serve(cfg, state, Rc::new(NoMachines), |event| {
//!     log::info!("{event:?}") // attach to the machine record
//! }))?;
//! # drop(for_http);
//! # Ok(()) }
//! ```

pub mod leasefile;
pub mod server;

/// The sans-I/O modules live in `gopxe_proto::dhcp`; these paths keep
/// `crate::dhcp::core::...` and the like working.
pub use gopxe_proto::dhcp::{boot, config, core, lease, leaselog, loaders, packet};

pub use config::{ConfigError, DhcpConfig, Loader, LoaderFile, Loaders, Mode, Pool, UnknownBoot};
pub use core::{
    ClientInfo, Destination, Event, EventKind, MachineLookup, MachineQuery, MachineView,
    NoMachines, Outcome, Reply, ReplyKind, Via, decide, handle,
};
pub use lease::{LeaseInfo, LeaseTable};
pub use loaders::Class;
pub use server::{DhcpServer, DhcpState, serve};
