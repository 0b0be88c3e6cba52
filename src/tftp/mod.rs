//! TFTP (RFC 1350, 2347, 2348, 2349, 7440): wire codec, sans-I/O transfer
//! core, path checks and a thin smol driver.
//!
//! Layers, bottom up (the first three in the sans-I/O crate,
//! `gopxe_proto::tftp`, re-exported here):
//! - [`wire`]: packet codec (untrusted bytes to a checked [`wire::Packet`]).
//! - [`path`]: request names to [`path::RelativePath`] (pure).
//! - [`transfer`]: one read transfer as a state machine fed with `(now,
//!   packet)`; no socket, clock or file.
//! - [`server`]: the smol driver (sockets, timers, files, concurrency
//!   limit) and the [`server::FileProvider`] hook for real and virtual files.

pub mod pump;
pub mod server;

/// The sans-I/O modules live in `gopxe_proto::tftp`; these paths keep
/// `crate::tftp::wire::...` and the like working.
pub use gopxe_proto::tftp::{path, transfer, wire};

pub use path::{PathError, RelativePath, sanitize};
pub use server::{
    FileProvider, ImagesRoot, Redirect, ServerConfig, Source, TransferReport, WithRedirect,
    WithVirtual, blksize_for_mtu, serve,
};
pub use transfer::{Outcome, Stats, Transfer, TransferConfig};
