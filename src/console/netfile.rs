//! The appliance's network settings file (`/var/lib/gopxe/network.conf`).
//!
//! Layer: console (pure parsing and rendering). The overlay's init script
//! `/etc/init.d/S45gopxe-net` sources this file (BusyBox sh) and configures
//! the interface from it; the console and `gopxe firstboot` write it. Only
//! these keys, each checked, so sourcing it can never run anything:
//!
//! ```text
//! GOPXE_NET_IF=eth0
//! GOPXE_NET_MODE=static          # or dhcp
//! GOPXE_NET_ADDR=10.77.0.1/24    # static only
//! GOPXE_NET_GW=10.77.0.254       # static only, optional
//! ```

use std::fmt;
use std::net::Ipv4Addr;

use crate::model::validate::same_subnet;

/// An IPv4 address with its prefix length (`10.77.0.1/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub ip: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// The netmask of the prefix.
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32u32.saturating_sub(u32::from(self.prefix)))
                .unwrap_or(0),
        )
    }

    /// Is `ip` on the same subnet?
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        same_subnet(ip, self.ip, self.mask())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

/// Parses an interface address `A.B.C.D/P` (P from 8 to 30, a host address).
pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let (ip, prefix) = s.split_once('/').ok_or_else(|| {
        format!(
            "`{}`: give the address with its prefix, like 192.168.1.10/24",
            s.escape_debug()
        )
    })?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("`{}` is not an IPv4 address", ip.escape_debug()))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (8..=30).contains(p))
        .ok_or_else(|| {
            format!(
                "prefix `{}` must be a number from 8 to 30",
                prefix.escape_debug()
            )
        })?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
        return Err(format!("{ip} cannot be the appliance's address"));
    }
    let c = Cidr { ip, prefix };
    let host = u32::from(ip) & !u32::from(c.mask());
    if host == 0 || host == !u32::from(c.mask()) {
        return Err(format!(
            "{ip} is the network or broadcast address of /{prefix}"
        ));
    }
    Ok(c)
}

/// How the appliance's interface gets its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetMode {
    /// A DHCP client (the lab's DHCP server).
    Dhcp,
    /// A fixed address, optionally with a default gateway.
    Static { addr: Cidr, gw: Option<Ipv4Addr> },
}

/// The whole settings file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSettings {
    pub interface: String,
    pub mode: NetMode,
}

/// An interface name as Linux takes it (1-15 characters, no `/`, no spaces).
pub fn check_ifname(s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.len() > 15
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b':'))
    {
        return Err(format!("`{}` is not an interface name", s.escape_debug()));
    }
    Ok(s.to_string())
}

/// Checks a gateway for `addr`: an IPv4 address on its subnet, not itself.
pub fn check_gateway(addr: Cidr, s: &str) -> Result<Ipv4Addr, String> {
    let gw: Ipv4Addr = s
        .parse()
        .map_err(|_| format!("`{}` is not an IPv4 address", s.escape_debug()))?;
    if !addr.contains(gw) {
        return Err(format!("gateway {gw} is not on {addr}'s subnet"));
    }
    if gw == addr.ip {
        return Err(format!("gateway {gw} is the appliance's own address"));
    }
    Ok(gw)
}

impl NetSettings {
    /// The file text.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# gopxe appliance network, read by /etc/init.d/S45gopxe-net.\n\
             # Written by gopxe (console or first boot); change it there.\n",
        );
        out.push_str(&format!("GOPXE_NET_IF={}\n", self.interface));
        match &self.mode {
            NetMode::Dhcp => out.push_str("GOPXE_NET_MODE=dhcp\n"),
            NetMode::Static { addr, gw } => {
                out.push_str(&format!("GOPXE_NET_MODE=static\nGOPXE_NET_ADDR={addr}\n"));
                if let Some(gw) = gw {
                    out.push_str(&format!("GOPXE_NET_GW={gw}\n"));
                }
            }
        }
        out
    }

    /// Parses and checks the file text.
    pub fn parse(text: &str) -> Result<NetSettings, String> {
        let (mut iface, mut mode, mut addr, mut gw) = (None, None, None, None);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: not KEY=value", n + 1))?;
            match k {
                "GOPXE_NET_IF" => iface = Some(check_ifname(v)?),
                "GOPXE_NET_MODE" => mode = Some(v.to_string()),
                "GOPXE_NET_ADDR" => addr = Some(parse_cidr(v)?),
                "GOPXE_NET_GW" => gw = Some(v.to_string()),
                _ => return Err(format!("line {}: unknown key {k}", n + 1)),
            }
        }
        let interface = iface.ok_or("no GOPXE_NET_IF")?;
        let mode = match mode.as_deref() {
            Some("dhcp") => NetMode::Dhcp,
            Some("static") => {
                let addr = addr.ok_or("static without GOPXE_NET_ADDR")?;
                let gw = gw.map(|g| check_gateway(addr, &g)).transpose()?;
                NetMode::Static { addr, gw }
            }
            _ => return Err("GOPXE_NET_MODE must be static or dhcp".into()),
        };
        Ok(NetSettings { interface, mode })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_checked() {
        assert_eq!(
            parse_cidr("10.77.0.1/24").unwrap().to_string(),
            "10.77.0.1/24"
        );
        assert_eq!(
            parse_cidr("10.77.0.1/24").unwrap().mask(),
            Ipv4Addr::new(255, 255, 255, 0)
        );
        for bad in [
            "10.77.0.1",
            "10.77.0.0/24",
            "10.77.0.255/24",
            "10.0.0.1/31",
            "x/24",
            "127.0.0.1/8",
            "1.2.3.4/",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_round_trips_and_refuses_junk() {
        let s = NetSettings {
            interface: "eth0".into(),
            mode: NetMode::Static {
                addr: parse_cidr("192.168.5.2/24").unwrap(),
                gw: Some(Ipv4Addr::new(192, 168, 5, 1)),
            },
        };
        assert_eq!(NetSettings::parse(&s.render()).unwrap(), s);
        let d = NetSettings {
            interface: "eth0".into(),
            mode: NetMode::Dhcp,
        };
        assert_eq!(NetSettings::parse(&d.render()).unwrap(), d);
        assert!(NetSettings::parse("GOPXE_NET_IF=$(reboot)\nGOPXE_NET_MODE=dhcp\n").is_err());
        assert!(NetSettings::parse("GOPXE_NET_IF=eth0\nGOPXE_NET_MODE=static\nGOPXE_NET_ADDR=10.0.0.2/24\nGOPXE_NET_GW=10.1.0.1\n").is_err());
        assert!(check_gateway(parse_cidr("10.0.0.2/24").unwrap(), "10.0.0.2").is_err());
    }
}
