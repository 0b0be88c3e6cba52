//! `gopxe firstboot`: the plug-in default configuration of an appliance.
//!
//! Layer: console (front end; writes files). On the first boot with no
//! configuration, the overlay's `/etc/init.d/S45gopxe-net` probes the
//! interface for a DHCP server (BusyBox `udhcpc -n`) and then runs
//!
//! ```text
//! gopxe firstboot --interface eth0 --out /var/lib/gopxe/gopxe.toml \
//!     --network-out /var/lib/gopxe/network.conf --base /etc/gopxe/gopxe.toml \
//!     [--lease 192.168.1.57/24]
//! ```
//!
//! - with `--lease` (a DHCP server answered and gave that address): the
//!   appliance stays a DHCP client and runs **proxyDHCP**, next to the lab's
//!   server;
//! - without: it takes the fixed address `--subnet` (10.77.0.1/24) and runs
//!   **authoritative** DHCP there (`.100`–`.200`, 12 h leases).
//!
//! Either way it generates an API token. The configuration (the base file's
//! keys, overridden) is checked with [`Config::from_raw`] and written with
//! [`write_atomic`], as is the network file; an existing configuration is
//! never overwritten. A summary for the console goes to stdout.

use super::netfile::{Cidr, NetMode, NetSettings, check_ifname, parse_cidr};
use super::new_token;
use crate::config::{Config, RawConfig, read_file, to_toml};
use crate::store::write_atomic;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

const USAGE: &str = "\
Usage: gopxe firstboot --interface IF --out FILE [--network-out FILE] [--base FILE]
                       [--lease ADDR/PREFIX] [--subnet ADDR/PREFIX]

Writes the plug-in default configuration (never over an existing FILE):
  --lease ADDR/PREFIX   a DHCP server gave the interface this address:
                        proxyDHCP, the appliance stays a DHCP client
  (no --lease)          no DHCP server answered: the fixed address of
                        --subnet [10.77.0.1/24] and authoritative DHCP on it
  --base FILE           start from this configuration (the factory one)
  --network-out FILE    the network settings for S45gopxe-net
                        [network.conf beside --out]
";

/// The subnet taken when no DHCP server answers.
pub const DEFAULT_SUBNET: &str = "10.77.0.1/24";

/// What `gopxe firstboot` was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub interface: String,
    pub out: PathBuf,
    pub network_out: PathBuf,
    pub base: Option<PathBuf>,
    pub lease: Option<Cidr>,
    pub subnet: Cidr,
}

fn parse_args(args: Vec<OsString>) -> Result<Option<Options>, String> {
    let mut f = super::flags::Flags::new(args, "firstboot");
    let (mut iface, mut out, mut netout, mut base, mut lease, mut subnet) =
        (None, None, None, None, None, None);
    while let Some(arg) = f.next_option()? {
        let mut val = |name: &str| f.value(name);
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--interface" => {
                iface = Some(
                    check_ifname(&val("interface")?).map_err(|e| format!("--interface: {e}"))?,
                )
            }
            "--out" => out = Some(PathBuf::from(val("out")?)),
            "--network-out" => netout = Some(PathBuf::from(val("network-out")?)),
            "--base" => base = Some(PathBuf::from(val("base")?)),
            "--lease" => {
                lease = Some(parse_cidr(&val("lease")?).map_err(|e| format!("--lease: {e}"))?)
            }
            "--subnet" => {
                subnet = Some(parse_cidr(&val("subnet")?).map_err(|e| format!("--subnet: {e}"))?)
            }
            other => return Err(f.unknown(other)),
        }
    }
    let out = out.ok_or("firstboot: give the configuration to write with --out FILE")?;
    let subnet = match subnet {
        Some(s) => s,
        None => parse_cidr(DEFAULT_SUBNET)?,
    };
    if subnet.prefix > 24 {
        return Err("--subnet: use a /24 or larger subnet".into());
    }
    Ok(Some(Options {
        interface: iface.ok_or("firstboot: give the interface with --interface IF")?,
        network_out: netout
            .unwrap_or_else(|| out.parent().unwrap_or(Path::new(".")).join("network.conf")),
        out,
        base,
        lease,
        subnet,
    }))
}

/// The plug-in default: configuration and network settings (pure).
pub fn plan(base: RawConfig, o: &Options, token: String) -> (RawConfig, NetSettings) {
    let mut raw = base;
    raw.interface = Some(o.interface.clone());
    raw.api_token = Some(token);
    let mode = match o.lease {
        Some(_) => {
            raw.dhcp_mode = Some("proxy".into());
            raw.dhcp_range = None;
            raw.advertise_addr = None;
            NetMode::Dhcp
        }
        None => {
            let net = u32::from(o.subnet.ip) & u32::from(o.subnet.mask());
            raw.dhcp_mode = Some("authoritative".into());
            raw.dhcp_range = Some(vec![format!(
                "{},{},{},12h",
                Ipv4Addr::from(net + 100),
                Ipv4Addr::from(net + 200),
                o.subnet.mask()
            )]);
            raw.advertise_addr = Some(o.subnet.ip.to_string());
            NetMode::Static {
                addr: o.subnet,
                gw: None,
            }
        }
    };
    (
        raw,
        NetSettings {
            interface: o.interface.clone(),
            mode,
        },
    )
}

fn run(o: &Options) -> Result<(), String> {
    if o.out.exists() {
        return Err(format!(
            "{} exists: the appliance is configured already (delete it for a factory reset)",
            o.out.display()
        ));
    }
    let base = match &o.base {
        Some(b) if b.exists() => read_file(b).map_err(|e| e.to_string())?,
        _ => RawConfig::default(),
    };
    let (raw, net) = plan(base, o, new_token()?);
    let cfg =
        Config::from_raw(&raw, Some(&o.out), &RawConfig::default()).map_err(|e| e.to_string())?;
    let header = match o.lease {
        Some(l) => format!(
            "gopxe plug-in default (first boot): a DHCP server answered on {} and gave {l};\nproxyDHCP next to it. Change it on the serial console.",
            o.interface
        ),
        None => format!(
            "gopxe plug-in default (first boot): no DHCP server answered on {};\nfixed address {} and authoritative DHCP. Change it on the serial console.",
            o.interface, o.subnet
        ),
    };
    let text = to_toml(&raw, &header)?;
    for p in [&o.out, &o.network_out] {
        if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
    }
    write_atomic(&o.network_out, net.render().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", o.network_out.display()))?;
    write_atomic(&o.out, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", o.out.display()))?;
    match o.lease {
        Some(l) => println!(
            "gopxe: first boot: a DHCP server answered on {}: address {l} from it, proxyDHCP",
            o.interface
        ),
        None => println!(
            "gopxe: first boot: no DHCP server on {}: address {}, authoritative DHCP {}",
            o.interface,
            o.subnet,
            raw.dhcp_range.as_deref().unwrap_or_default().join(" ")
        ),
    }
    println!(
        "gopxe: API token {}",
        cfg.api_token.as_deref().unwrap_or_default()
    );
    println!(
        "gopxe: wrote {} and {}",
        o.out.display(),
        o.network_out.display()
    );
    Ok(())
}

/// `gopxe firstboot ...`: returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    let o = match parse_args(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("gopxe: {e}");
            return 2;
        }
    };
    match run(&o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gopxe: firstboot: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(lease: Option<&str>) -> Options {
        Options {
            interface: "eth0".into(),
            out: "x/gopxe.toml".into(),
            network_out: "x/network.conf".into(),
            base: None,
            lease: lease.map(|l| parse_cidr(l).unwrap()),
            subnet: parse_cidr(DEFAULT_SUBNET).unwrap(),
        }
    }

    #[test]
    fn a_dhcp_server_means_proxy_none_means_authoritative() {
        let base = RawConfig {
            data_dir: Some("/var/lib/gopxe/data".into()),
            dhcp_mode: Some("off".into()),
            ..RawConfig::default()
        };
        let (raw, net) = plan(
            base.clone(),
            &opts(Some("192.168.1.57/24")),
            "t0k3n-abcdef".into(),
        );
        assert_eq!(raw.dhcp_mode.as_deref(), Some("proxy"));
        assert_eq!(net.mode, NetMode::Dhcp);
        assert_eq!(raw.data_dir, base.data_dir);
        Config::from_raw(&raw, None, &RawConfig::default()).unwrap();

        let (raw, net) = plan(base, &opts(None), "t0k3n-abcdef".into());
        assert_eq!(raw.dhcp_mode.as_deref(), Some("authoritative"));
        assert_eq!(
            raw.dhcp_range,
            Some(vec!["10.77.0.100,10.77.0.200,255.255.255.0,12h".into()])
        );
        assert_eq!(raw.advertise_addr.as_deref(), Some("10.77.0.1"));
        assert_eq!(
            net.mode,
            NetMode::Static {
                addr: parse_cidr("10.77.0.1/24").unwrap(),
                gw: None
            }
        );
        let c = Config::from_raw(&raw, None, &RawConfig::default()).unwrap();
        assert_eq!(c.api_token.as_deref(), Some("t0k3n-abcdef"));
    }
}
