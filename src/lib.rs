//! gopxe: a plug-in network-boot appliance in one process.
//!
//! Layers, from the wire inwards:
//! - [`cli`] parses the command line and the configuration; [`serve`]
//!   binds the sockets and starts every service on one executor.
//! - [`http`], `dhcp::server`, `tftp::server` and `tftp::pump`: thin
//!   drivers (smol, and the TFTP data threads) around the cores.
//! - [`fsroot`]: the one place a name from the network becomes an open
//!   file (regular files under a root, for TFTP and HTTP).
//! - [`dhcp`], [`tftp`], [`webhook`]: the drivers, the lease file and the
//!   webhook sender around the sans-I/O protocol cores.
//! - the `gopxe_proto` crate (`crates/gopxe-proto`): the sans-I/O layer,
//!   re-exported here under the old paths: [`model`], `dhcp::{packet,
//!   lease, leaselog, boot, core, config}`, `tftp::{wire, path, transfer}`
//!   and `webhook::{outbox, url}`. Its Cargo.toml takes no I/O crate.
//! - [`app`]: the running service's state and its durable writes.
//! - [`boot`]: what a given client boots (pure rendering).
//! - [`loadercheck`]: which boot-loader files the images tree lacks.
//! - [`store`]: the durable postcard flat-file store.
//! - [`model`] (from `gopxe_proto`), [`config`]: checked data types; raw
//!   serde shapes become checked types through `TryFrom`-style
//!   constructors.
//! - [`clock`]: the wall clock, read in one place.
//! - [`logging`], [`logring`], [`metrics`]: what the service says about
//!   itself (stderr through a writer thread, the status page's tail,
//!   Prometheus counters).
#![forbid(unsafe_code)]

pub mod app;
pub mod boot;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod dhcp;
pub mod discovered;
pub mod fsroot;
pub mod http;
pub mod loadercheck;
pub mod logging;
pub mod logring;
pub mod metrics;
pub mod reactor;
pub mod serve;
pub mod services;
pub mod store;
pub mod syslog;
pub mod tftp;
pub mod webhook;

/// The data model lives in the sans-I/O crate; this path keeps
/// `crate::model::...` working.
pub use gopxe_proto::model;
