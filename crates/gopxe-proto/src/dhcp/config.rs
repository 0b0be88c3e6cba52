//! DHCP configuration: modes, address pools in dnsmasq's `--dhcp-range`
//! vocabulary, boot-loader names and the default for unknown machines.
//!
//! Everything here is checked data; parsing from strings (`FromStr`) is the
//! only fallible step, so the decision core never sees an invalid pool.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;

use crate::model::validate::same_subnet;

/// How the server answers DHCP (`off`, `proxy`, `authoritative`; the
/// config file takes the same strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Mode {
    /// No DHCP at all.
    #[default]
    Off,
    /// proxyDHCP (PXE spec, RFC 4578): boot information only, never an
    /// address; udp/67 and udp/4011.
    Proxy,
    /// Full DHCP server (RFC 2131): pools, reservations, leases.
    Authoritative,
}

impl FromStr for Mode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Mode::Off),
            "proxy" => Ok(Mode::Proxy),
            "authoritative" => Ok(Mode::Authoritative),
            other => Err(ConfigError(format!(
                "unknown DHCP mode {other:?} (expected off, proxy or authoritative)"
            ))),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Off => "off",
            Mode::Proxy => "proxy",
            Mode::Authoritative => "authoritative",
        })
    }
}

/// A configuration value that does not parse or does not make sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Lease time meaning "never expires" (RFC 2131 §3.3: 0xffffffff).
pub const INFINITE: u32 = u32::MAX;

/// Default lease time when a range gives none (dnsmasq's default, 1 h).
pub const DEFAULT_LEASE_SECS: u32 = 3600;

/// An address pool: `FIRST,LAST[,MASK[,LEASE]]` (also as a config-file
/// string).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Pool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    pub mask: Ipv4Addr,
    /// Lease time in seconds; [`INFINITE`] for `infinite`.
    pub lease_secs: u32,
}

impl Pool {
    /// Build a checked pool: `first <= last`, contiguous mask, both ends in
    /// one subnet.
    pub fn new(
        first: Ipv4Addr,
        last: Ipv4Addr,
        mask: Ipv4Addr,
        lease_secs: u32,
    ) -> Result<Pool, ConfigError> {
        let m = u32::from(mask);
        if m.leading_ones() + m.trailing_zeros() != 32 {
            return Err(ConfigError(format!("netmask {mask} is not contiguous")));
        }
        if u32::from(first) > u32::from(last) {
            return Err(ConfigError(format!("range {first}..{last} is empty")));
        }
        if !same_subnet(first, last, mask) {
            return Err(ConfigError(format!(
                "range {first}..{last} spans more than one {mask} subnet"
            )));
        }
        if lease_secs < 120 {
            return Err(ConfigError(format!(
                "lease time {lease_secs}s is shorter than 2 minutes"
            )));
        }
        Ok(Pool {
            first,
            last,
            mask,
            lease_secs,
        })
    }

    /// Is `ip` inside `first..=last`?
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(self.first)..=u32::from(self.last)).contains(&u32::from(ip))
    }

    /// Is `ip` on this pool's subnet (not necessarily in the range)?
    pub fn same_subnet(&self, ip: Ipv4Addr) -> bool {
        same_subnet(ip, self.first, self.mask)
    }

    /// Number of addresses in the range.
    pub fn size(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }

    /// The subnet's network and broadcast addresses, never handed out.
    pub fn is_network_or_broadcast(&self, ip: Ipv4Addr) -> bool {
        let m = u32::from(self.mask);
        let ip = u32::from(ip);
        m != u32::MAX && m != u32::MAX - 1 && (ip & !m == 0 || ip & !m == !m)
    }
}

/// Parse a dnsmasq lease time: `3600`, `45m`, `12h`, `2d`, `1w`, `infinite`.
pub fn parse_lease_time(s: &str) -> Result<u32, ConfigError> {
    if s == "infinite" {
        return Ok(INFINITE);
    }
    let bad = || {
        ConfigError(format!(
            "bad lease time {s:?} (e.g. 3600, 30m, 12h, infinite)"
        ))
    };
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        Some(_) => (s, 's'),
        None => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(mult).ok_or_else(bad)?;
    // Anything at or above 0xffffffff would read as infinite on the wire.
    u32::try_from(secs)
        .ok()
        .filter(|&v| v != INFINITE)
        .ok_or_else(bad)
}

impl FromStr for Pool {
    type Err = ConfigError;
    /// `FIRST,LAST[,MASK[,LEASE]]` as in dnsmasq's `--dhcp-range`. Without a
    /// mask, `/24` is assumed; without a lease time, one hour.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let ip = |p: &str| -> Result<Ipv4Addr, ConfigError> {
            p.parse()
                .map_err(|_| ConfigError(format!("bad address {p:?} in DHCP range {s:?}")))
        };
        match parts.as_slice() {
            [first, last] => Pool::new(
                ip(first)?,
                ip(last)?,
                Ipv4Addr::new(255, 255, 255, 0),
                DEFAULT_LEASE_SECS,
            ),
            [first, last, third] => {
                // dnsmasq allows FIRST,LAST,LEASE as well.
                if let Ok(mask) = third.parse::<Ipv4Addr>() {
                    Pool::new(ip(first)?, ip(last)?, mask, DEFAULT_LEASE_SECS)
                } else {
                    Pool::new(
                        ip(first)?,
                        ip(last)?,
                        Ipv4Addr::new(255, 255, 255, 0),
                        parse_lease_time(third)?,
                    )
                }
            }
            [first, last, mask, lease] => {
                Pool::new(ip(first)?, ip(last)?, ip(mask)?, parse_lease_time(lease)?)
            }
            _ => Err(ConfigError(format!(
                "bad DHCP range {s:?} (expected FIRST,LAST[,MASK[,LEASE]])"
            ))),
        }
    }
}

impl TryFrom<String> for Mode {
    type Error = ConfigError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for Pool {
    type Error = ConfigError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The loader family a machine boots with: one type for the whole
/// crate, the boot action's `loader` field.
pub use crate::model::Loader;

/// What a machine that the lookup does not know boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownBoot {
    /// No boot file: the firmware falls through to its next boot device.
    /// In proxy mode unknown machines get no answer at all.
    #[default]
    LocalBoot,
    /// Boot this loader family (proxy mode then answers unknown machines).
    Loader(Loader),
}

pub use super::loaders::{LoaderFile, Loaders};

/// Everything the DHCP core and driver need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    pub mode: Mode,
    /// Address clients are told about: server identifier (opt 54),
    /// next-server (siaddr), TFTP server name (opt 66), HTTP URLs.
    pub server_addr: Ipv4Addr,
    /// Base of HTTP URLs handed to iPXE and UEFI HTTP boot, without a
    /// trailing slash; `http://{server_addr}:9090` when `None`.
    pub http_base: Option<String>,
    /// Address pools (authoritative mode); several allowed.
    pub pools: Vec<Pool>,
    /// Default routers (opt 3) and DNS servers (opt 6) for pool addresses.
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub loaders: Loaders,
    pub unknown_boot: UnknownBoot,
    /// Interface to bind to (SO_BINDTODEVICE); any when `None`.
    pub interface: Option<String>,
    /// Where the driver listens for DHCP (normally `0.0.0.0:67`).
    pub listen: SocketAddr,
    /// Where the driver listens for PXE boot-server discovery in proxy mode
    /// (normally `0.0.0.0:4011`; port 0 picks a free one, for tests).
    pub pxe_listen: SocketAddr,
    /// UDP port of relay agents (67; tests use their own).
    pub relay_port: u16,
    /// UDP port of clients (68).
    pub client_port: u16,
    /// How long an offered address is held for its client, in seconds.
    pub offer_hold_secs: u32,
    /// How long a declined address stays out of the pool, in seconds.
    pub decline_quarantine_secs: u32,
}

impl Default for DhcpConfig {
    fn default() -> Self {
        DhcpConfig {
            mode: Mode::Off,
            server_addr: Ipv4Addr::UNSPECIFIED,
            http_base: None,
            pools: Vec::new(),
            routers: Vec::new(),
            dns: Vec::new(),
            loaders: Loaders::default(),
            unknown_boot: UnknownBoot::LocalBoot,
            interface: None,
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 67)),
            pxe_listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 4011)),
            relay_port: 67,
            client_port: 68,
            offer_hold_secs: 60,
            decline_quarantine_secs: 600,
        }
    }
}

impl DhcpConfig {
    /// The HTTP base URL without a trailing slash.
    pub fn http_base(&self) -> String {
        match &self.http_base {
            Some(b) => b.trim_end_matches('/').to_string(),
            None => format!("http://{}:9090", self.server_addr),
        }
    }

    /// Check the combination: an authoritative server needs a pool or
    /// at least an address to identify itself with; pools must not overlap.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.mode != Mode::Off && self.server_addr.is_unspecified() {
            return Err(ConfigError(
                "DHCP needs the server's address (advertise address)".into(),
            ));
        }
        for (i, a) in self.pools.iter().enumerate() {
            for b in self.pools.iter().skip(i + 1) {
                if a.contains(b.first) || a.contains(b.last) || b.contains(a.first) {
                    return Err(ConfigError(format!(
                        "DHCP ranges {}..{} and {}..{} overlap",
                        a.first, a.last, b.first, b.last
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dnsmasq_ranges() {
        let p: Pool = "10.0.0.10,10.0.0.20,255.255.255.0,12h".parse().unwrap();
        assert_eq!(p.first, Ipv4Addr::new(10, 0, 0, 10));
        assert_eq!(p.last, Ipv4Addr::new(10, 0, 0, 20));
        assert_eq!(p.lease_secs, 12 * 3600);
        assert_eq!(p.size(), 11);
        let p: Pool = "10.0.0.10,10.0.0.20".parse().unwrap();
        assert_eq!(p.mask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(p.lease_secs, DEFAULT_LEASE_SECS);
        let p: Pool = "10.0.0.10,10.0.0.20,30m".parse().unwrap();
        assert_eq!(p.lease_secs, 1800);
        let p: Pool = "10.0.0.10, 10.0.0.20, 255.255.0.0, infinite"
            .parse()
            .unwrap();
        assert_eq!(p.lease_secs, INFINITE);
        let p: Pool = "10.0.0.10,10.0.0.20,255.255.255.0,3600".parse().unwrap();
        assert_eq!(p.lease_secs, 3600);
    }

    #[test]
    fn rejects_bad_ranges() {
        for bad in [
            "",
            "10.0.0.1",
            "10.0.0.20,10.0.0.10",
            "10.0.0.1,10.0.1.1,255.255.255.0",
            "10.0.0.1,10.0.0.9,255.0.255.0",
            "10.0.0.1,10.0.0.9,255.255.255.0,12x",
            "10.0.0.1,10.0.0.9,255.255.255.0,10",
            "a,b",
            "10.0.0.1,10.0.0.9,255.255.255.0,1h,extra",
            "10.0.0.1,10.0.0.9,255.255.255.0,99999999999999999999",
        ] {
            assert!(bad.parse::<Pool>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn lease_times() {
        assert_eq!(parse_lease_time("3600"), Ok(3600));
        assert_eq!(parse_lease_time("2d"), Ok(172_800));
        assert_eq!(parse_lease_time("1w"), Ok(604_800));
        assert!(parse_lease_time("h").is_err());
        assert!(parse_lease_time("4294967295").is_err());
    }

    #[test]
    fn config_file_strings() {
        #[derive(serde::Deserialize)]
        struct Raw {
            mode: Mode,
            range: Vec<Pool>,
        }
        let raw: Raw = basic_toml::from_str(
            "mode = \"proxy\"\nrange = [\"10.0.0.10,10.0.0.20,255.255.255.0,12h\"]",
        )
        .unwrap();
        assert_eq!(raw.mode, Mode::Proxy);
        assert_eq!(raw.range[0].lease_secs, 43_200);
        assert!(basic_toml::from_str::<Raw>("mode = \"on\"\nrange = []").is_err());
    }

    #[test]
    fn modes_round_trip() {
        for m in [Mode::Off, Mode::Proxy, Mode::Authoritative] {
            assert_eq!(m.to_string().parse::<Mode>(), Ok(m));
        }
        assert!("on".parse::<Mode>().is_err());
    }

    #[test]
    fn overlapping_pools_rejected() {
        let cfg = DhcpConfig {
            mode: Mode::Authoritative,
            server_addr: Ipv4Addr::new(10, 0, 0, 1),
            pools: vec![
                "10.0.0.10,10.0.0.20".parse().unwrap(),
                "10.0.0.15,10.0.0.30".parse().unwrap(),
            ],
            ..DhcpConfig::default()
        };
        assert!(cfg.check().is_err());
    }
}
