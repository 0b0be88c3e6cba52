//! Configuration: the TOML file, command-line flags, and the checked [`Config`].
//!
//! Layer: config (pure apart from reading the file). The keys are declared
//! once, in [`keys`]: every file key has a flag of the same name with `-`
//! for `_` (`http_listen` ↔ `--http-listen`), and a flag overrides the file.
//! Raw values ([`RawConfig`]) become a checked [`Config`] through
//! [`Config::from_raw`]; an error names where the bad value came from (file
//! and key, or flag) and what is wrong with it. [`to_toml`] writes a
//! [`RawConfig`] back as a file (the serial console saves with it).

use crate::boot::DefaultBoot;
use crate::boot::installer::{self, InstallerSettings, Mirror};
use crate::model::validate::check_token;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

pub mod keys;

pub use crate::dhcp::{Mode as DhcpMode, Pool};
use keys::Picked;
pub use keys::RawConfig;

/// A bad configuration value, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `path: key `k`` or `--flag`.
    pub origin: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The checked configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub images: PathBuf,
    /// The Raspberry Pi firmware directory, relative to `images` (checked:
    /// plain components, no `..`).
    pub rpi_firmware: String,
    pub localrepo: Option<PathBuf>,
    pub http_listen: SocketAddr,
    /// The address written into boot URLs; resolved at start when unset.
    pub advertise_addr: Option<Ipv4Addr>,
    pub api_token: Option<String>,
    /// DNS names the `Host` header may carry besides IP literals and
    /// `localhost` (the system's host name is added at start).
    pub server_names: Vec<String>,
    /// Admin-template limits: minijinja fuel (about one unit per
    /// instruction) and bytes of output.
    pub template_limits: crate::boot::kickstart::Limits,
    pub interface: Option<String>,
    pub unknown_boot: DefaultBoot,
    /// The loader table: each firmware class's default family and files.
    pub loaders: crate::dhcp::Loaders,
    pub repo_url: Option<String>,
    /// Where TFTP listens; `None` is off.
    pub tftp_listen: Option<SocketAddr>,
    /// TFTP was not configured: try udp/69 and go on without TFTP when the
    /// port cannot be had (not root, or another server holds it).
    pub tftp_auto: bool,
    pub tftp_max_transfers: usize,
    /// Concurrent TFTP transfers from one client IP address.
    pub tftp_max_per_client: usize,
    /// Most machines in the discovery inbox.
    pub discovered_max: usize,
    /// Where installers' syslog lines are received; `None` is off.
    pub syslog_listen: Option<SocketAddr>,
    /// `syslog_listen` was not configured: try udp/514 and go on without
    /// the receiver when the port cannot be had.
    pub syslog_auto: bool,
    /// An install `installing` this long turns `failed`; 0: never.
    pub install_timeout_ms: u64,
    pub dhcp_mode: DhcpMode,
    pub dhcp_ranges: Vec<Pool>,
    /// Where DHCP listens (udp/67; another port for relay tests).
    pub dhcp_listen: SocketAddr,
    /// The UDP port of relay agents (67).
    pub dhcp_relay_port: u16,
    /// Option 3 and option 6 for pool addresses.
    pub dhcp_router: Option<Ipv4Addr>,
    pub dhcp_dns: Vec<Ipv4Addr>,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    /// Receivers of a JSON POST for every machine change.
    pub webhooks: Vec<crate::webhook::HookUrl>,
    /// Mirror and account settings of the preseed and autoinstall files.
    pub installer: InstallerSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            images: PathBuf::from("images"),
            rpi_firmware: "rpi".to_string(),
            localrepo: None,
            http_listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            advertise_addr: None,
            api_token: None,
            server_names: Vec::new(),
            template_limits: crate::boot::kickstart::Limits::default(),
            interface: None,
            unknown_boot: DefaultBoot::Local,
            loaders: crate::dhcp::Loaders::default(),
            repo_url: None,
            tftp_listen: Some(SocketAddr::from(([0, 0, 0, 0], 69))),
            tftp_auto: true,
            tftp_max_transfers: 64,
            tftp_max_per_client: 8,
            discovered_max: 1000,
            syslog_listen: Some(SocketAddr::from(([0, 0, 0, 0], 514))),
            syslog_auto: true,
            install_timeout_ms: 2 * 3600 * 1000,
            dhcp_mode: DhcpMode::Off,
            dhcp_ranges: Vec::new(),
            dhcp_listen: SocketAddr::from(([0, 0, 0, 0], 67)),
            dhcp_relay_port: 67,
            dhcp_router: None,
            dhcp_dns: Vec::new(),
            max_body_bytes: 64 * 1024,
            max_connections: 4096,
            webhooks: Vec::new(),
            installer: InstallerSettings::default(),
        }
    }
}

/// Reads and parses a config file.
pub fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        origin: origin.clone(),
        message: format!("cannot read: {e}"),
    })?;
    basic_toml::from_str(&text).map_err(|e| ConfigError {
        origin,
        message: e.to_string(),
    })
}

/// The text of a config file holding `raw`: the `header` as comment lines
/// (each prefixed `# `), a blank line, then the set keys, one per line in
/// table order, by `basic_toml`. Unset keys are not written. The text is
/// parsed back and must give `raw` again, else nothing should be written.
pub fn to_toml(raw: &RawConfig, header: &str) -> Result<String, String> {
    let body = basic_toml::to_string(raw)
        .map_err(|e| format!("internal error: cannot write the configuration: {e}"))?;
    let mut out = String::new();
    for line in header.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    if !header.is_empty() {
        out.push('\n');
    }
    out.push_str(&body);
    let back: RawConfig = basic_toml::from_str(&out)
        .map_err(|e| format!("internal error: the written file would not parse: {e}"))?;
    if &back != raw {
        return Err("internal error: the written file would not read back the same".into());
    }
    Ok(out)
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    if s == "off" {
        return Err("off".into());
    }
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 0)))
        .map_err(|_| format!("`{}` is not an address like 0.0.0.0:9090", s.escape_debug()))
}

impl Config {
    /// What `gopxe check-config` prints: one line per setting that decides
    /// what the appliance does, secrets said to be set and never shown.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let set = |v: &Option<String>| match v {
            Some(_) => "set (not shown)",
            None => "not set",
        };
        let mut out = String::new();
        let mut line = |k: &str, v: String| {
            let _ = writeln!(out, "  {k:<14}{v}");
        };
        line("data dir", self.data_dir.display().to_string());
        line("images", self.images.display().to_string());
        line(
            "http",
            match self.advertise_addr {
                Some(a) => format!("{} (boot URLs name {a})", self.http_listen),
                None => format!(
                    "{} (boot URLs name the interface's address)",
                    self.http_listen
                ),
            },
        );
        line(
            "api token",
            match &self.api_token {
                Some(_) => "set (not shown): writes need it".to_string(),
                None => "not set: writes are accepted from loopback only".to_string(),
            },
        );
        line(
            "tftp",
            match (self.tftp_listen, self.tftp_auto) {
                (None, _) => "off".to_string(),
                (Some(a), true) => format!("{a}, skipped if the port cannot be had"),
                (Some(a), false) => a.to_string(),
            },
        );
        line(
            "syslog",
            match (self.syslog_listen, self.syslog_auto) {
                (None, _) => "off".to_string(),
                (Some(a), true) => format!("{a}, skipped if the port cannot be had"),
                (Some(a), false) => a.to_string(),
            },
        );
        let dhcp = match self.dhcp_mode {
            DhcpMode::Off => "off: the lab's DHCP server hands out the boot file".to_string(),
            DhcpMode::Proxy => format!(
                "proxy on {} (boot options only, beside the lab's DHCP server)",
                self.dhcp_listen
            ),
            DhcpMode::Authoritative => {
                let pools: Vec<String> = self
                    .dhcp_ranges
                    .iter()
                    .map(|p| format!("{}-{}", p.first, p.last))
                    .collect();
                format!(
                    "authoritative on {}, addresses {}",
                    self.dhcp_listen,
                    if pools.is_empty() {
                        "none (reservations only)".to_string()
                    } else {
                        pools.join(", ")
                    }
                )
            }
        };
        line("dhcp", dhcp);
        if let Some(i) = &self.interface {
            line("interface", i.clone());
        }
        line(
            "unknown boot",
            match &self.unknown_boot {
                DefaultBoot::Local => "local disk (unknown machines are not installed)".into(),
                DefaultBoot::Action(a) => format!("boot action `{a}`"),
            },
        );
        line(
            "loaders",
            crate::dhcp::Class::ALL
                .iter()
                .map(|c| {
                    let family = self.loaders.default_family(*c);
                    format!(
                        "{c} {} ({})",
                        family.as_str(),
                        self.loaders.file(*c, family).unwrap_or("-")
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        line(
            "webhooks",
            format!("{} (URLs not shown)", self.webhooks.len()),
        );
        line(
            "installer",
            format!(
                "password hash {}, ssh key {}",
                set(&self.installer.password_hash),
                if self.installer.ssh_key.is_some() {
                    "set"
                } else {
                    "not set"
                }
            ),
        );
        out
    }

    /// The boot-loader file names DHCP hands out, per firmware.
    pub fn loaders(&self) -> crate::dhcp::Loaders {
        self.loaders.clone()
    }
}

impl Config {
    /// Checks `file` overlaid by `flags`. `file_name` names the file in errors.
    pub fn from_raw(
        file: &RawConfig,
        file_name: Option<&Path>,
        flags: &RawConfig,
    ) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        // Every key, taken apart without `..`: a key of the table that is
        // not checked here is a compile error (or an unused variable).
        let Picked {
            data_dir,
            images,
            rpi_firmware,
            localrepo,
            http_listen,
            advertise_addr,
            api_token,
            server_names,
            template_fuel,
            template_max_bytes,
            interface,
            unknown_boot,
            loader,
            loader_file,
            repo_url,
            tftp_listen,
            tftp_max_transfers,
            tftp_max_per_client,
            discovered_max,
            syslog_listen,
            install_timeout,
            dhcp_mode,
            dhcp_range,
            dhcp_router,
            dhcp_dns,
            dhcp_listen,
            dhcp_relay_port,
            max_body_bytes,
            max_connections,
            webhook,
            debian_mirror,
            ubuntu_mirror,
            installer_user,
            installer_password_hash,
            installer_ssh_key,
        } = Picked::new(file, file_name, flags);
        let err = |origin: String, message: String| ConfigError { origin, message };

        if let Some((v, _)) = data_dir {
            c.data_dir = PathBuf::from(v);
        }
        if let Some((v, _)) = images {
            c.images = PathBuf::from(v);
        }
        if let Some((v, o)) = rpi_firmware {
            let inside = |e: String| {
                err(
                    o.clone(),
                    format!(
                        "`{}` is not a directory inside the images dir: {e}",
                        v.escape_debug()
                    ),
                )
            };
            if v.starts_with(['/', '\\']) {
                return Err(inside("it is absolute".into()));
            }
            c.rpi_firmware = crate::tftp::sanitize(v.as_bytes())
                .map_err(|e| inside(e.to_string()))?
                .as_str()
                .to_string();
        }
        if let Some((v, _)) = localrepo {
            c.localrepo = Some(PathBuf::from(v));
        }
        if let Some((v, o)) = http_listen {
            c.http_listen = v.parse::<SocketAddr>().map_err(|_| {
                err(
                    o,
                    format!("`{}` is not an address like 0.0.0.0:9090", v.escape_debug()),
                )
            })?;
        }
        if let Some((v, o)) = advertise_addr {
            let ip = v.parse::<Ipv4Addr>().map_err(|_| {
                err(
                    o.clone(),
                    format!("`{}` is not an IPv4 address", v.escape_debug()),
                )
            })?;
            if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
                return Err(err(o, format!("{ip} cannot be advertised to clients")));
            }
            c.advertise_addr = Some(ip);
        }
        if let Some((v, o)) = api_token {
            if v.len() < 8 || v.len() > 256 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(err(
                    o,
                    "must be 8 to 256 printable characters without spaces".into(),
                ));
            }
            c.api_token = Some(v);
        }
        if let Some((v, o)) = server_names {
            c.server_names = v
                .iter()
                .map(|n| {
                    crate::model::validate::check_hostname("server_names", n)
                        .map_err(|e| err(o.clone(), e.message))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some((v, o)) = template_fuel {
            if !(10_000..=1_000_000_000).contains(&v) {
                return Err(err(o, format!("{v} is out of range 10000..=1000000000")));
            }
            c.template_limits.fuel = v;
        }
        if let Some((v, o)) = template_max_bytes {
            if !(4096..=64 * 1024 * 1024).contains(&v) {
                return Err(err(o, format!("{v} is out of range 4096..=67108864")));
            }
            c.template_limits.max_bytes = v as usize;
        }
        if let Some((v, o)) = interface {
            if v.is_empty() || v.len() > 15 || !v.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
            {
                return Err(err(
                    o,
                    format!("`{}` is not an interface name", v.escape_debug()),
                ));
            }
            c.interface = Some(v);
        }
        if let Some((v, o)) = unknown_boot {
            c.unknown_boot = match v.as_str() {
                "local" => DefaultBoot::Local,
                name => DefaultBoot::Action(check_token("unknown_boot", name).map_err(|e| {
                    err(o, format!("`local` or a boot action name: {}", e.message))
                })?),
            };
        }
        if let Some((v, o)) = loader {
            for spec in &v {
                c.loaders
                    .set_default(spec)
                    .map_err(|e| err(o.clone(), e.0))?;
            }
        }
        if let Some((v, o)) = loader_file {
            for spec in &v {
                c.loaders.set_file(spec).map_err(|e| err(o.clone(), e.0))?;
            }
        }
        if let Some((v, o)) = repo_url {
            if !(v.starts_with("http://") || v.starts_with("https://") || v.starts_with("{server}"))
                || v.chars().any(|c| c.is_control() || c == '"' || c == ' ')
            {
                return Err(err(
                    o,
                    "must be an http(s) URL (placeholders {os}, {version}, {server})".into(),
                ));
            }
            c.repo_url = Some(v);
        }
        if let Some((v, o)) = tftp_listen {
            c.tftp_auto = false;
            c.tftp_listen = match socket_addr(&v) {
                Ok(mut a) => {
                    if a.port() == 0 && !v.contains(':') {
                        a.set_port(69);
                    }
                    Some(a)
                }
                Err(m) if m == "off" => None,
                Err(m) => return Err(err(o, m)),
            };
        }
        if let Some((v, o)) = tftp_max_transfers {
            if !(1..=10_000).contains(&v) {
                return Err(err(o, format!("{v} is out of range 1..=10000")));
            }
            c.tftp_max_transfers = v as usize;
        }
        if let Some((v, o)) = tftp_max_per_client {
            if !(1..=10_000).contains(&v) {
                return Err(err(o, format!("{v} is out of range 1..=10000")));
            }
            c.tftp_max_per_client = v as usize;
        }
        if let Some((v, o)) = discovered_max {
            if !(1..=100_000).contains(&v) {
                return Err(err(o, format!("{v} is out of range 1..=100000")));
            }
            c.discovered_max = v as usize;
        }
        if let Some((v, o)) = syslog_listen {
            c.syslog_auto = false;
            c.syslog_listen = match socket_addr(&v) {
                Ok(mut a) => {
                    if a.port() == 0 && !v.contains(':') {
                        a.set_port(514);
                    }
                    Some(a)
                }
                Err(m) if m == "off" => None,
                Err(m) => return Err(err(o, m)),
            };
        }
        if let Some((v, o)) = install_timeout {
            let secs = match v.as_str() {
                "0" | "never" => 0,
                t => crate::dhcp::config::parse_lease_time(t)
                    .ok()
                    .filter(|&s| s != crate::dhcp::config::INFINITE)
                    .ok_or_else(|| {
                        err(
                            o,
                            format!(
                                "`{}` is not a time like 90m, 2h or 0 (never)",
                                v.escape_debug()
                            ),
                        )
                    })?,
            };
            c.install_timeout_ms = u64::from(secs) * 1000;
        }
        // Where the mode came from, for the check of ranges below.
        let mut mode_origin = String::new();
        if let Some((v, o)) = dhcp_mode {
            c.dhcp_mode = v
                .parse()
                .map_err(|e: crate::dhcp::ConfigError| err(o.clone(), e.0))?;
            mode_origin = o;
        }
        if let Some((v, o)) = dhcp_range {
            c.dhcp_ranges = v
                .iter()
                .map(|r| {
                    r.parse::<Pool>()
                        .map_err(|e| err(o.clone(), format!("`{}`: {}", r.escape_debug(), e.0)))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some((v, o)) = dhcp_listen {
            c.dhcp_listen = match socket_addr(&v) {
                Ok(mut a) => {
                    if a.port() == 0 && !v.contains(':') {
                        a.set_port(67);
                    }
                    a
                }
                Err(m) => return Err(err(o, m)),
            };
        }
        if let Some((v, o)) = dhcp_relay_port {
            c.dhcp_relay_port = u16::try_from(v)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| err(o, format!("{v} is not a UDP port")))?;
        }
        if let Some((v, o)) = dhcp_router {
            c.dhcp_router =
                Some(v.parse().map_err(|_| {
                    err(o, format!("`{}` is not an IPv4 address", v.escape_debug()))
                })?);
        }
        if let Some((v, o)) = dhcp_dns {
            c.dhcp_dns = v
                .iter()
                .map(|a| {
                    a.parse().map_err(|_| {
                        err(
                            o.clone(),
                            format!("`{}` is not an IPv4 address", a.escape_debug()),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if c.dhcp_mode == DhcpMode::Authoritative && c.dhcp_ranges.is_empty() {
            return Err(err(
                mode_origin,
                "authoritative DHCP needs at least one dhcp_range".into(),
            ));
        }
        if let Some((v, o)) = max_body_bytes {
            if !(1024..=16 * 1024 * 1024).contains(&v) {
                return Err(err(o, format!("{v} is out of range 1024..=16777216")));
            }
            c.max_body_bytes = v as usize;
        }
        if let Some((v, o)) = max_connections {
            if !(1..=100_000).contains(&v) {
                return Err(err(o, format!("{v} is out of range 1..=100000")));
            }
            c.max_connections = v as usize;
        }
        if let Some((v, o)) = webhook {
            if v.len() > crate::webhook::MAX_URLS {
                return Err(err(o, format!("at most {} URLs", crate::webhook::MAX_URLS)));
            }
            c.webhooks = v
                .iter()
                .map(|u| crate::webhook::HookUrl::parse(u).map_err(|m| err(o.clone(), m)))
                .collect::<Result<_, _>>()?;
        }
        if let Some((v, o)) = debian_mirror {
            c.installer.debian_mirror = Mirror::parse(&v).map_err(|m| err(o, m))?;
        }
        if let Some((v, o)) = ubuntu_mirror {
            c.installer.ubuntu_mirror = Some(Mirror::parse(&v).map_err(|m| err(o, m))?);
        }
        if let Some((v, o)) = installer_user {
            c.installer.user = Some(installer::check_username(&v).map_err(|m| err(o, m))?);
        }
        if let Some((v, o)) = installer_password_hash {
            c.installer.password_hash =
                Some(installer::check_password_hash(&v).map_err(|m| err(o, m))?);
        }
        if let Some((v, o)) = installer_ssh_key {
            c.installer.ssh_key = Some(installer::check_ssh_key(v.trim()).map_err(|m| err(o, m))?);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_safe_embedded_ones() {
        let c = Config::from_raw(&RawConfig::default(), None, &RawConfig::default()).unwrap();
        assert_eq!(c.http_listen.port(), 9090);
        assert_eq!(c.dhcp_mode, DhcpMode::Off);
        assert_eq!(c.tftp_listen.map(|a| a.port()), Some(69));
        assert!(c.tftp_auto);
        assert_eq!(c.data_dir, PathBuf::from("data"));
    }

    #[test]
    fn flags_override_file_and_errors_name_the_origin() {
        let file: RawConfig =
            basic_toml::from_str("http_listen = \"127.0.0.1:1\"\ndhcp_mode = \"proxy\"\n").unwrap();
        let flags = RawConfig {
            http_listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        };
        let c = Config::from_raw(&file, Some(Path::new("g.toml")), &flags).unwrap();
        assert_eq!(c.http_listen.port(), 2);
        assert_eq!(c.dhcp_mode, DhcpMode::Proxy);

        let bad: RawConfig = basic_toml::from_str("advertise_addr = \"localhost\"\n").unwrap();
        let e =
            Config::from_raw(&bad, Some(Path::new("g.toml")), &RawConfig::default()).unwrap_err();
        assert_eq!(e.origin, "g.toml: key `advertise_addr`");
        assert!(e.message.contains("not an IPv4 address"));
        let flags = RawConfig {
            dhcp_mode: Some("on".into()),
            ..Default::default()
        };
        let e = Config::from_raw(&RawConfig::default(), None, &flags).unwrap_err();
        assert_eq!(e.origin, "--dhcp-mode");
    }

    #[test]
    fn tftp_per_client_limit_is_in_range() {
        let d = Config::from_raw(&RawConfig::default(), None, &RawConfig::default()).unwrap();
        assert_eq!(d.tftp_max_per_client, 8);
        let file: RawConfig = basic_toml::from_str("tftp_max_per_client = 3\n").unwrap();
        let c = Config::from_raw(&file, Some(Path::new("g.toml")), &RawConfig::default()).unwrap();
        assert_eq!(c.tftp_max_per_client, 3);
        for v in [0, 10_001] {
            let flags = RawConfig {
                tftp_max_per_client: Some(v),
                ..Default::default()
            };
            let e = Config::from_raw(&RawConfig::default(), None, &flags).unwrap_err();
            assert_eq!(e.origin, "--tftp-max-per-client", "{v}");
        }
    }

    #[test]
    fn rpi_firmware_stays_inside_the_images_dir() {
        let d = Config::from_raw(&RawConfig::default(), None, &RawConfig::default()).unwrap();
        assert_eq!(d.rpi_firmware, "rpi");
        let c = |v: &str| {
            let file: RawConfig = basic_toml::from_str(&format!("rpi_firmware = {v:?}\n")).unwrap();
            Config::from_raw(&file, Some(Path::new("g.toml")), &RawConfig::default())
        };
        assert_eq!(c("firmware/pi").unwrap().rpi_firmware, "firmware/pi");
        for bad in ["../rpi", "rpi/../..", "/boot/firmware", "rpi//x", ""] {
            let e = c(bad).unwrap_err();
            assert!(e.to_string().contains("rpi_firmware"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn webhook_urls_are_checked_naming_file_key_or_flag() {
        let file: RawConfig =
            basic_toml::from_str("webhook = [\"http://10.0.0.5:8080/hook\", \"http://h\"]\n")
                .unwrap();
        let c = Config::from_raw(&file, Some(Path::new("g.toml")), &RawConfig::default()).unwrap();
        assert_eq!(c.webhooks.len(), 2);
        assert_eq!(c.webhooks[0].port, 8080);
        let bad: RawConfig =
            basic_toml::from_str("webhook = [\"http://h/\", \"https://h/x\"]\n").unwrap();
        let e =
            Config::from_raw(&bad, Some(Path::new("g.toml")), &RawConfig::default()).unwrap_err();
        assert_eq!(e.origin, "g.toml: key `webhook`");
        assert!(e.message.contains("https is not supported"), "{e}");
        let flags = RawConfig {
            webhook: Some(vec!["10.0.0.5/hook".into()]),
            ..Default::default()
        };
        let e = Config::from_raw(&file, Some(Path::new("g.toml")), &flags).unwrap_err();
        assert_eq!(e.origin, "--webhook");
        let many = RawConfig {
            webhook: Some(vec!["http://h/".into(); 17]),
            ..Default::default()
        };
        assert!(
            Config::from_raw(&RawConfig::default(), None, &many)
                .unwrap_err()
                .message
                .contains("at most 16")
        );
    }

    #[test]
    fn installer_keys_are_checked() {
        let file: RawConfig = basic_toml::from_str(
            "debian_mirror = \"http://10.0.0.1:3142/debian/\"\ninstaller_user = \"ops\"\ninstaller_password_hash = \"$6$s$h\"\ninstaller_ssh_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@lab\"\n",
        )
        .unwrap();
        let c = Config::from_raw(&file, Some(Path::new("g.toml")), &RawConfig::default()).unwrap();
        assert_eq!(c.installer.debian_mirror.host, "10.0.0.1:3142");
        assert_eq!(c.installer.debian_mirror.dir, "/debian");
        assert_eq!(c.installer.user.as_deref(), Some("ops"));
        assert_eq!(c.installer.ubuntu_mirror, None);
        let d = Config::from_raw(&RawConfig::default(), None, &RawConfig::default()).unwrap();
        assert_eq!(
            d.installer.debian_mirror.url(),
            "http://deb.debian.org/debian"
        );
        for (toml, key) in [
            ("debian_mirror = \"deb.debian.org\"", "debian_mirror"),
            ("ubuntu_mirror = \"http://a b/\"", "ubuntu_mirror"),
            ("installer_user = \"root\"", "installer_user"),
            (
                "installer_password_hash = \"hunter2\"",
                "installer_password_hash",
            ),
            (
                "installer_ssh_key = \"ssh-rsa AAAA\\nB\"",
                "installer_ssh_key",
            ),
        ] {
            let raw: RawConfig = basic_toml::from_str(toml).unwrap();
            let e = Config::from_raw(&raw, Some(Path::new("g.toml")), &RawConfig::default())
                .unwrap_err();
            assert_eq!(e.origin, format!("g.toml: key `{key}`"), "{toml}");
        }
    }

    #[test]
    fn unknown_keys_and_types_are_refused() {
        assert!(
            basic_toml::from_str::<RawConfig>("no_such_key = 1\n")
                .unwrap_err()
                .to_string()
                .contains("no_such_key")
        );
        assert!(basic_toml::from_str::<RawConfig>("tftp_max_transfers = \"x\"\n").is_err());
        let file: RawConfig = basic_toml::from_str("tftp_listen = \"off\"\n").unwrap();
        assert_eq!(
            Config::from_raw(&file, None, &RawConfig::default())
                .unwrap()
                .tftp_listen,
            None
        );
    }

    #[test]
    fn syslog_listen_and_install_timeout() {
        let d = Config::default();
        assert_eq!(d.syslog_listen.map(|a| a.port()), Some(514));
        assert!(d.syslog_auto);
        assert_eq!(d.install_timeout_ms, 2 * 3600 * 1000);
        let parse = |toml: &str| {
            let file: RawConfig = basic_toml::from_str(toml).unwrap();
            Config::from_raw(&file, Some(Path::new("g.toml")), &RawConfig::default())
        };
        let c = parse("syslog_listen = \"off\"\n").unwrap();
        assert_eq!((c.syslog_listen, c.syslog_auto), (None, false));
        let c = parse("syslog_listen = \"127.0.0.1:5514\"\n").unwrap();
        assert_eq!(c.syslog_listen, Some("127.0.0.1:5514".parse().unwrap()));
        assert!(!c.syslog_auto);
        let c = parse("syslog_listen = \"10.0.0.1\"\n").unwrap();
        assert_eq!(c.syslog_listen, Some("10.0.0.1:514".parse().unwrap()));
        let e = parse("syslog_listen = \"nope\"\n").unwrap_err();
        assert_eq!(e.origin, "g.toml: key `syslog_listen`");
        for (v, ms) in [
            ("0", 0),
            ("never", 0),
            ("90m", 5_400_000),
            ("3", 3000),
            ("1d", 86_400_000),
        ] {
            let c = parse(&format!("install_timeout = \"{v}\"\n")).unwrap();
            assert_eq!(c.install_timeout_ms, ms, "{v}");
        }
        for bad in ["x", "2y", "-1", "infinite", ""] {
            let e = parse(&format!("install_timeout = \"{bad}\"\n")).unwrap_err();
            assert_eq!(e.origin, "g.toml: key `install_timeout`", "{bad}");
        }
    }

    #[test]
    fn to_toml_writes_a_header_and_the_set_keys_only() {
        let raw = RawConfig {
            data_dir: Some("/var/lib/gopxe/data".into()),
            api_token: Some("a\"b\\c".into()),
            interface: Some("eth0".into()),
            installer_password_hash: Some("$6$s$h".into()),
            dhcp_mode: Some("authoritative".into()),
            dhcp_range: Some(vec!["10.0.0.10,10.0.0.20".into(), "x\ny".into()]),
            dhcp_dns: Some(vec![]),
            max_connections: Some(12),
            webhook: Some(vec!["http://10.0.0.5:8080/hook".into()]),
            ..RawConfig::default()
        };
        let text = to_toml(&raw, "written by a test\nsecond line").unwrap();
        assert!(
            text.starts_with("# written by a test\n# second line\n\ndata_dir = "),
            "{text}"
        );
        assert!(text.contains("\ndhcp_mode = \"authoritative\"\n"), "{text}");
        assert!(
            text.contains("\ndhcp_range = [\"10.0.0.10,10.0.0.20\", \"x\\ny\"]\n"),
            "{text}"
        );
        assert!(text.contains("\ndhcp_dns = []\n"), "{text}");
        assert!(text.contains("\nmax_connections = 12\n"), "{text}");
        assert!(!text.contains("images") && !text.contains("tftp"), "{text}");
        let back: RawConfig = basic_toml::from_str(&text).unwrap();
        assert_eq!(back, raw);
        assert_eq!(to_toml(&RawConfig::default(), "").unwrap(), "");
        // A number TOML cannot hold does not read back: refused.
        let big = RawConfig {
            max_connections: Some(u64::MAX),
            ..RawConfig::default()
        };
        assert!(to_toml(&big, "h").is_err());
    }
}
