//! Stand-alone DHCP server on gopxe's DHCP core, for benchmarks
//! (`benches/dhcp.sh`) until `gopxe serve` carries the same flags.
//!
//! `dhcp_server --listen 127.0.0.1:6767 --relay-port 6768 --server 127.0.0.1
//!  --dhcp-range 127.1.0.1,127.1.255.254,255.0.0.0,12h --data-dir DIR`

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;

use lexopt::prelude::*;

use gopxe::dhcp::{DhcpConfig, DhcpServer, DhcpState, Mode, NoMachines};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let mut cfg = DhcpConfig {
        mode: Mode::Authoritative,
        ..DhcpConfig::default()
    };
    let mut data: Option<PathBuf> = None;
    let mut args = lexopt::Parser::from_env();
    while let Some(arg) = args.next()? {
        match arg {
            Long("listen") => cfg.listen = args.value()?.parse::<SocketAddr>()?,
            Long("relay-port") => cfg.relay_port = args.value()?.parse()?,
            Long("server") => cfg.server_addr = args.value()?.parse::<Ipv4Addr>()?,
            Long("dhcp-range") => cfg.pools.push(args.value()?.parse()?),
            Long("dhcp-mode") => cfg.mode = args.value()?.parse()?,
            Long("interface") => cfg.interface = Some(args.value()?.parse()?),
            Long("data-dir") => data = Some(args.value()?.into()),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let state = match &data {
        Some(d) => DhcpState::open(d)?,
        None => DhcpState::in_memory(),
    };
    let server = DhcpServer::bind(cfg)?;
    smol::block_on(server.run(state, Rc::new(NoMachines), |_| {}))?;
    Ok(())
}
