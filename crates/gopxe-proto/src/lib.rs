//! gopxe-proto: the sans-I/O layer of gopxe.
//!
//! The checked data model and the protocol cores, as pure code: bytes,
//! records and the current time go in (the caller reads the clock), and
//! replies, state changes and events come out. No socket, file, clock,
//! random source or executor is touched here; the drivers in the `gopxe`
//! crate do all I/O, logging of events and metrics.
//!
//! - [`model`]: machine records, ids and their validation.
//! - [`dhcp`]: DHCPv4 packet codec, lease table, boot choice and the
//!   decision core.
//! - [`tftp`]: TFTP wire codec, request paths and the read-transfer state
//!   machine.
//! - [`webhook`]: webhook URLs and the per-receiver retry queue.
//! - [`syslog`]: RFC 5424 / RFC 3164 messages from installers, parsed.
//!
//! This crate's `Cargo.toml` must never take an I/O crate (smol, async-io,
//! rustix, socket2, getrandom, ...): `scripts/test.sh` checks its
//! dependency tree.
#![forbid(unsafe_code)]

pub mod dhcp;
pub mod model;
pub mod syslog;
pub mod tftp;
pub mod webhook;
