//! TFTP (RFC 1350, 2347, 2348, 2349, 7440), the sans-I/O part: wire codec,
//! path checks and the transfer core. The smol driver and the data threads
//! are `gopxe::tftp::{server, pump}`.
//!
//! - [`wire`]: packet codec (untrusted bytes to a checked [`wire::Packet`]).
//! - [`path`]: request names to [`path::RelativePath`] (pure).
//! - [`transfer`]: one read transfer as a state machine fed with `(now,
//!   packet)`; no socket, clock or file.

pub mod path;
pub mod transfer;
pub mod wire;

pub use path::{PathError, RelativePath, sanitize};
pub use transfer::{Outcome, Stats, Transfer, TransferConfig};
