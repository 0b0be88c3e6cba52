//! gopxe: a plug-in network-boot appliance in one process.
//!
//! Layers (see `README.md`):
//! - [`model`], [`config`]: checked data types; raw serde shapes become
//!   checked types through `TryFrom`.
//! - [`store`]: the durable postcard flat-file store.
//! - [`boot`]: what a given client boots (pure rendering).
//! - [`dhcp`], [`tftp`]: sans-I/O protocol cores.
//! - [`http`], [`net`]: thin smol drivers.
#![deny(unsafe_code)]

pub mod dhcp;
pub mod tftp;
