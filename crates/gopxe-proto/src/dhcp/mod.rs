//! DHCPv4 for network boot, the sans-I/O part: packet codec, lease table,
//! boot choice, the decision core and the lease log's record format. The smol driver and the durable lease
//! log are `gopxe::dhcp::{server, leasefile}`.
//!
//! - [`packet`]: untrusted bytes → checked [`packet::Request`]; reply
//!   encoding that never panics (dhcproto does the wire format).
//! - [`boot`]: which boot file / URL / vendor options a client gets.
//! - [`lease`]: the pure lease table (time passed in) and its allocator,
//!   O(log n) per request whatever the pool's size.
//! - [`core`]: the decision: `(config, leases, machine, request, now) →
//!   reply + lease changes + events`.
//! - [`leaselog`]: the lease log's records: encode, parse, replay.
//! - [`config`]: the checked DHCP configuration.
//! - [`loaders`]: the loader table: per firmware class, each family's
//!   file, what it fetches beside itself, and the default family.

pub mod boot;
pub mod config;
pub mod core;
pub mod lease;
pub mod leaselog;
pub mod loaders;
pub mod packet;

#[cfg(test)]
mod core_tests;

pub use config::{ConfigError, DhcpConfig, Loader, LoaderFile, Loaders, Mode, Pool, UnknownBoot};
pub use core::{
    ClientInfo, Destination, Event, EventKind, MachineLookup, MachineQuery, MachineView,
    NoMachines, Outcome, Reply, ReplyKind, Via, decide, handle,
};
pub use lease::{LeaseInfo, LeaseTable};
pub use loaders::Class;
