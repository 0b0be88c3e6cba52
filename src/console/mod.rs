//! `gopxe console`: the appliance's serial-console configuration screen.
//!
//! Layer: console (front end, blocking I/O). A line-oriented UI for any
//! serial terminal: no cursor control, one question per line, read from
//! stdin, written to stdout. On start it shows what the admin needs (the
//! interface's IPv4 addresses, DHCP mode and ranges, the API URL and token,
//! machines and their latest boot steps, fetched from the running service
//! over loopback with [`client`]); a numbered menu then changes the
//! interface address ([`netfile`]), the DHCP mode and ranges, the API
//! token, the default boot for unknown machines, or resets the appliance.
//!
//! Every answer is checked and asked again when wrong; a change is written
//! only after the whole resulting configuration passes
//! [`Config::from_raw`], atomically ([`write_atomic`]), and then applied to
//! the running service by the apply command (`/etc/init.d/S50gopxe
//! restart` on the appliance). EOF on stdin leaves with status 0.
//!
//! `gopxe firstboot` ([`firstboot`]) writes the plug-in default
//! configuration on an appliance's first boot.

pub mod client;
pub mod firstboot;
pub mod flags;
pub mod netfile;

use crate::config::{Config, DhcpMode, Pool, RawConfig, read_file, to_toml};
use crate::model::validate::check_token;
use crate::store::{remove_durable, write_atomic};
use netfile::{NetMode, NetSettings, check_gateway, parse_cidr};
use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The appliance's service script; `restart` re-reads the configuration.
pub const SERVICE_SCRIPT: &str = "/etc/init.d/S50gopxe";
/// The appliance's network script; `restart` applies `network.conf`.
pub const NETWORK_SCRIPT: &str = "/etc/init.d/S45gopxe-net";

const USAGE: &str = "\
Usage: gopxe console --config FILE [--apply-command CMD] [--network-command CMD]
                     [--network-file FILE]

  --config FILE           the configuration gopxe serves with (edited in place)
  --apply-command CMD     run (sh -c) after a change to apply it
                          [/etc/init.d/S50gopxe restart, when it exists]
  --network-command CMD   run after the network settings change
                          [/etc/init.d/S45gopxe-net restart, when it exists]
  --network-file FILE     the appliance's network settings
                          [$GOPXE_NETWORK, else network.conf beside the config]
";

const HEADER: &str = "gopxe configuration, written by `gopxe console`.\n\
Keys: see docs/configuration.md in the source tree. Change it on the serial\n\
console (or edit it and run `gopxe check-config --config FILE`).";

/// What `gopxe console` was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    pub apply_command: Option<String>,
    pub network_command: Option<String>,
    pub network_file: PathBuf,
}

fn default_if_exists(script: &str) -> Option<String> {
    Path::new(script)
        .exists()
        .then(|| format!("{script} restart"))
}

/// Parses the console's arguments (after `console`).
pub fn parse_args(args: Vec<OsString>) -> Result<Option<Options>, String> {
    let mut f = flags::Flags::new(args, "console");
    let (mut config, mut apply, mut net, mut netfile) = (None, None, None, None);
    while let Some(arg) = f.next_option()? {
        let mut val = |name: &str| f.value(name);
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--config" => config = Some(PathBuf::from(val("config")?)),
            "--apply-command" => apply = Some(val("apply-command")?),
            "--network-command" => net = Some(val("network-command")?),
            "--network-file" => netfile = Some(PathBuf::from(val("network-file")?)),
            other => return Err(f.unknown(other)),
        }
    }
    let config = config
        .or_else(|| std::env::var_os("GOPXE_CONFIG").map(PathBuf::from))
        .ok_or("console: give the configuration with --config FILE")?;
    let network_file = netfile
        .or_else(|| std::env::var_os("GOPXE_NETWORK").map(PathBuf::from))
        .unwrap_or_else(|| {
            config
                .parent()
                .unwrap_or(Path::new("."))
                .join("network.conf")
        });
    let empty_is_none = |c: Option<String>| c.filter(|c| !c.trim().is_empty());
    Ok(Some(Options {
        config,
        apply_command: match apply {
            Some(c) => empty_is_none(Some(c)),
            None => default_if_exists(SERVICE_SCRIPT),
        },
        network_command: match net {
            Some(c) => empty_is_none(Some(c)),
            None => default_if_exists(NETWORK_SCRIPT),
        },
        network_file,
    }))
}

/// `gopxe console ...`: returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    let opts = match parse_args(args) {
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
    let stdin = std::io::stdin();
    let mut c = Console::new(stdin.lock(), std::io::stdout(), opts);
    c.run();
    0
}

/// 32 hex digits from /dev/urandom.
pub fn new_token() -> Result<String, String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The IPv4 addresses of this machine's interfaces (not loopback).
pub fn interface_addresses() -> Vec<(String, netfile::Cidr)> {
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| match i.addr {
            if_addrs::IfAddr::V4(a) if !a.ip.is_loopback() => Some((
                i.name,
                netfile::Cidr {
                    ip: a.ip,
                    prefix: a.prefixlen,
                },
            )),
            _ => None,
        })
        .collect()
}

/// A shell command run to apply a change, bounded in time.
fn run_command(cmd: &str, limit: Duration) -> Result<(), String> {
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(format!("`{cmd}` failed ({st})")),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{cmd}` did not finish within {} s",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("`{cmd}`: {e}")),
        }
    }
}

fn age(at_ms: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let s = now.saturating_sub(at_ms) / 1000;
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        7200..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// One value read from the terminal.
enum Answer {
    Line(String),
    Eof,
}

/// Leave the console (EOF or `q`).
struct Quit;

/// The console's state: the terminal and the options.
pub struct Console<R: BufRead, W: Write> {
    input: R,
    out: W,
    opts: Options,
}

/// One line to the terminal (write errors on a serial line are ignored).
#[inline(never)]
fn emit<W: Write>(out: &mut W, args: std::fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

macro_rules! say {
    ($c:expr, $($arg:tt)*) => {
        emit(&mut $c.out, format_args!($($arg)*))
    };
}

impl<R: BufRead, W: Write> Console<R, W> {
    pub fn new(input: R, out: W, opts: Options) -> Self {
        Console { input, out, opts }
    }

    /// Status, then the menu until EOF or `q`.
    pub fn run(&mut self) {
        self.status();
        loop {
            if self.menu_once().is_err() {
                say!(self, "\nLeaving the console.");
                return;
            }
        }
    }

    fn read_line(&mut self) -> Answer {
        let mut buf = Vec::new();
        match (&mut self.input).take(4096).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => Answer::Eof,
            Ok(_) => {
                let s = String::from_utf8_lossy(&buf);
                Answer::Line(
                    s.chars()
                        .filter(|c| !c.is_control())
                        .collect::<String>()
                        .trim()
                        .to_string(),
                )
            }
        }
    }

    fn ask(&mut self, prompt: &str) -> Result<String, Quit> {
        let _ = write!(self.out, "{prompt}");
        let _ = self.out.flush();
        match self.read_line() {
            Answer::Line(l) => Ok(l),
            Answer::Eof => Err(Quit),
        }
    }

    /// Asks until `check` accepts the answer; an empty answer cancels (`None`).
    fn ask_valid<T>(
        &mut self,
        prompt: &str,
        mut check: impl FnMut(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Quit> {
        loop {
            let a = self.ask(prompt)?;
            if a.is_empty() {
                say!(self, "  (cancelled: nothing changed)");
                return Ok(None);
            }
            match check(&a) {
                Ok(v) => return Ok(Some(v)),
                Err(m) => say!(self, "  ! {m} — try again, or press Enter to cancel"),
            }
        }
    }

    /// The configuration file as it is now (`None` when it cannot be read).
    fn load(&mut self) -> Option<RawConfig> {
        if !self.opts.config.exists() {
            return Some(RawConfig::default());
        }
        match read_file(&self.opts.config) {
            Ok(r) => Some(r),
            Err(e) => {
                say!(self, "  ! the configuration cannot be read: {e}");
                say!(self, "    fix the file, or use 6 (factory reset)");
                None
            }
        }
    }

    fn netsettings(&self) -> Result<Option<NetSettings>, String> {
        match std::fs::read_to_string(&self.opts.network_file) {
            Ok(t) => NetSettings::parse(&t)
                .map(Some)
                .map_err(|e| format!("{}: {e}", self.opts.network_file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.opts.network_file.display())),
        }
    }

    /// Where the running service answers, from the configuration.
    fn service_addr(cfg: &Config) -> SocketAddr {
        let l = cfg.http_listen;
        match l.ip() {
            ip if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), l.port()),
            _ => l,
        }
    }

    fn fetch(addr: SocketAddr, path: &str) -> Result<serde_json::Value, String> {
        let (status, body) = client::get(addr, path, Duration::from_secs(3))?;
        if status != 200 {
            return Err(format!("{path} answered {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{path}: {e}"))
    }

    /// The status screen.
    fn status(&mut self) {
        let tty = std::env::var("GOPXE_CONSOLE_TTY").unwrap_or_default();
        say!(self, "");
        say!(
            self,
            "=================== gopxe network-boot appliance ==================="
        );
        say!(
            self,
            " gopxe {}{}   config {}",
            env!("CARGO_PKG_VERSION"),
            if tty.is_empty() {
                String::new()
            } else {
                format!(" on {tty}")
            },
            self.opts.config.display()
        );
        let raw = self.load();
        let cfg = match raw
            .as_ref()
            .map(|r| Config::from_raw(r, Some(&self.opts.config), &RawConfig::default()))
        {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                say!(self, " ! configuration problem: {e}");
                None
            }
            None => None,
        };
        let cfg = cfg.unwrap_or_default();
        let addrs = interface_addresses();
        let iface = cfg.interface.clone();
        if addrs.is_empty() {
            say!(
                self,
                " address    none yet (no IPv4 address on any interface)"
            );
        }
        for (name, c) in &addrs {
            let mark = if iface.as_deref() == Some(name.as_str()) {
                "  (served)"
            } else {
                ""
            };
            say!(self, " address    {name} {c}{mark}");
        }
        match self.netsettings() {
            Ok(Some(n)) => match n.mode {
                NetMode::Dhcp => say!(self, " network    {}: DHCP client", n.interface),
                NetMode::Static { addr, gw } => say!(
                    self,
                    " network    {}: static {addr}{}",
                    n.interface,
                    gw.map(|g| format!(" gateway {g}")).unwrap_or_default()
                ),
            },
            Ok(None) => say!(
                self,
                " network    set by the system (no {})",
                self.opts.network_file.display()
            ),
            Err(e) => say!(self, " network    ! {e}"),
        }
        let ranges: Vec<String> = raw
            .as_ref()
            .and_then(|r| r.dhcp_range.clone())
            .unwrap_or_default();
        say!(
            self,
            " dhcp       {}{}   interface {}",
            cfg.dhcp_mode,
            if ranges.is_empty() {
                String::new()
            } else {
                format!("   ranges {}", ranges.join(" "))
            },
            iface.as_deref().unwrap_or("any")
        );
        let port = cfg.http_listen.port();
        let mut urls: Vec<String> = Vec::new();
        if let Some(a) = cfg.advertise_addr {
            urls.push(format!("http://{a}:{port}/"));
        } else if cfg.http_listen.ip().is_unspecified() {
            for (name, c) in &addrs {
                if iface.is_none() || iface.as_deref() == Some(name.as_str()) {
                    urls.push(format!("http://{}:{port}/", c.ip));
                }
            }
        } else {
            urls.push(format!("http://{}/", cfg.http_listen));
        }
        if urls.is_empty() {
            urls.push(format!("http://<address>:{port}/"));
        }
        say!(self, " API        {}", urls.join("  "));
        match &cfg.api_token {
            Some(t) => say!(self, " API token  {t}"),
            None => say!(
                self,
                " API token  none: API writes only from the appliance itself"
            ),
        }
        let unknown = raw
            .as_ref()
            .and_then(|r| r.unknown_boot.clone())
            .unwrap_or_else(|| "local".into());
        say!(
            self,
            " unknown    machines without a record boot: {unknown}"
        );
        let svc = Self::service_addr(&cfg);
        match Self::fetch(svc, "/health") {
            Ok(h) => {
                say!(
                    self,
                    " service    up {}s, dhcp {}, {} machines, {} boot actions",
                    h.get("uptime_s")
                        .unwrap_or(&serde_json::Value::Null)
                        .as_u64()
                        .unwrap_or(0),
                    h.get("dhcp_mode")
                        .unwrap_or(&serde_json::Value::Null)
                        .as_str()
                        .unwrap_or("?"),
                    h.get("machines")
                        .unwrap_or(&serde_json::Value::Null)
                        .as_u64()
                        .unwrap_or(0),
                    h.get("bootactions")
                        .unwrap_or(&serde_json::Value::Null)
                        .as_u64()
                        .unwrap_or(0)
                );
                self.machines(svc);
            }
            Err(e) => say!(self, " service    not answering on {svc} ({e})"),
        }
        say!(
            self,
            "===================================================================="
        );
    }

    fn machines(&mut self, svc: SocketAddr) {
        let list = match Self::fetch(svc, "/pxeboot") {
            Ok(serde_json::Value::Array(a)) => a,
            Ok(_) => return,
            Err(e) => {
                say!(self, " machines   ? ({e})");
                return;
            }
        };
        if list.is_empty() {
            say!(self, " machines   none yet (POST /pxeboot)");
        }
        for m in list.iter().take(12) {
            say!(
                self,
                " machine    {}  {}  {}  {}",
                m["hostname"].as_str().unwrap_or("-"),
                m["id"].as_str().unwrap_or("?"),
                m["state"].as_str().unwrap_or("?"),
                m["bootaction"].as_str().unwrap_or("-"),
            );
        }
        if list.len() > 12 {
            say!(
                self,
                " machines   ... and {} more (GET /pxeboot)",
                list.len() - 12
            );
        }
        // A boot step is any event but a write of the record itself.
        let mut recent: Vec<(u64, String)> = list
            .iter()
            .filter_map(|m| {
                let e = m.get("last_event")?;
                if matches!(e["kind"].as_str(), Some("created" | "updated")) {
                    return None;
                }
                let at = e["at_ms"].as_u64()?;
                Some((
                    at,
                    format!(
                        "{}  {}",
                        m["hostname"].as_str().or(m["id"].as_str()).unwrap_or("?"),
                        e["detail"].as_str().unwrap_or("")
                    ),
                ))
            })
            .collect();
        recent.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        if !recent.is_empty() {
            say!(self, " recent boots:");
        }
        for (at, line) in recent.iter().take(5) {
            say!(self, "   {:>8}  {line}", age(*at));
        }
        if let Ok(serde_json::Value::Array(l)) = Self::fetch(svc, "/leases") {
            say!(self, " leases     {}", l.len());
        }
    }

    fn menu_once(&mut self) -> Result<(), Quit> {
        say!(self, "");
        say!(
            self,
            " 1) interface address     2) DHCP mode        3) DHCP ranges"
        );
        say!(
            self,
            " 4) API token             5) unknown machines 6) factory reset"
        );
        say!(self, " r) refresh the status    q) leave the console");
        let choice = self.ask("choice> ")?;
        match choice.as_str() {
            "" => Ok(()),
            "1" => self.set_address(),
            "2" => self.set_mode(),
            "3" => self.set_ranges(),
            "4" => self.token(),
            "5" => self.set_unknown(),
            "6" => self.factory_reset(),
            "r" | "R" => {
                self.status();
                Ok(())
            }
            "q" | "Q" | "quit" | "exit" => Err(Quit),
            other => {
                say!(
                    self,
                    "  ! `{}` is not on the menu: type 1-6, r or q",
                    other.escape_debug()
                );
                Ok(())
            }
        }
    }

    /// Checks, writes and applies a new configuration; false when refused.
    fn commit(&mut self, raw: &RawConfig, what: &str) -> bool {
        if let Err(e) = Config::from_raw(raw, Some(&self.opts.config), &RawConfig::default()) {
            say!(self, "  ! refused: {e}");
            say!(self, "    nothing was written");
            return false;
        }
        let text = match to_toml(raw, HEADER) {
            Ok(t) => t,
            Err(e) => {
                say!(self, "  ! {e}; nothing was written");
                return false;
            }
        };
        if let Some(dir) = self
            .opts
            .config
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = write_atomic(&self.opts.config, text.as_bytes()) {
            say!(self, "  ! cannot write {}: {e}", self.opts.config.display());
            return false;
        }
        say!(self, "  saved {what} in {}", self.opts.config.display());
        self.apply_service();
        true
    }

    fn apply_service(&mut self) {
        let Some(cmd) = self.opts.apply_command.clone() else {
            say!(
                self,
                "  (no apply command: restart gopxe to use the change)"
            );
            return;
        };
        say!(self, "  applying: {cmd}");
        if let Err(e) = run_command(&cmd, Duration::from_secs(90)) {
            say!(self, "  ! {e}");
            return;
        }
        let Some(cfg) = self.load().and_then(|r| {
            Config::from_raw(&r, Some(&self.opts.config), &RawConfig::default()).ok()
        }) else {
            return;
        };
        let svc = Self::service_addr(&cfg);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match Self::fetch(svc, "/health") {
                Ok(h) => {
                    say!(
                        self,
                        "  applied: gopxe is serving, dhcp {}",
                        h.get("dhcp_mode")
                            .unwrap_or(&serde_json::Value::Null)
                            .as_str()
                            .unwrap_or("?")
                    );
                    return;
                }
                Err(e) if Instant::now() > deadline => {
                    say!(
                        self,
                        "  ! gopxe does not answer on {svc} after the change ({e}); see its log"
                    );
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    fn apply_network(&mut self) {
        match self.opts.network_command.clone() {
            Some(cmd) => {
                say!(self, "  applying: {cmd}");
                if let Err(e) = run_command(&cmd, Duration::from_secs(60)) {
                    say!(self, "  ! {e}");
                }
            }
            None => say!(
                self,
                "  (no network command: the address is used from the next boot)"
            ),
        }
    }

    fn set_address(&mut self) -> Result<(), Quit> {
        let Some(mut raw) = self.load() else {
            return Ok(());
        };
        let ifname = raw.interface.clone().unwrap_or_else(|| "eth0".into());
        let prompt = format!(
            "address of {ifname}: `dhcp`, or IP/PREFIX like 192.168.1.10/24 (Enter cancels): "
        );
        let Some(mode) = self.ask_valid(&prompt, |a| {
            if a.eq_ignore_ascii_case("dhcp") {
                Ok(None)
            } else {
                parse_cidr(a).map(Some)
            }
        })?
        else {
            return Ok(());
        };
        let mode = match mode {
            None => NetMode::Dhcp,
            Some(addr) => {
                let gw = loop {
                    let a = self.ask("default gateway (Enter for none): ")?;
                    if a.is_empty() {
                        break None;
                    }
                    match check_gateway(addr, &a) {
                        Ok(g) => break Some(g),
                        Err(m) => say!(self, "  ! {m} — try again, or press Enter for none"),
                    }
                };
                NetMode::Static { addr, gw }
            }
        };
        let settings = NetSettings {
            interface: ifname,
            mode: mode.clone(),
        };
        if let Some(dir) = self
            .opts
            .network_file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = write_atomic(&self.opts.network_file, settings.render().as_bytes()) {
            say!(
                self,
                "  ! cannot write {}: {e}",
                self.opts.network_file.display()
            );
            return Ok(());
        }
        say!(
            self,
            "  saved the network settings in {}",
            self.opts.network_file.display()
        );
        self.apply_network();
        // Boot URLs follow the address: a fixed advertise_addr moves with it.
        let before = raw.advertise_addr.clone();
        match &mode {
            NetMode::Static { addr, .. } => {
                if raw.advertise_addr.is_some() {
                    raw.advertise_addr = Some(addr.ip.to_string());
                }
                let off_subnet: Vec<&String> = raw
                    .dhcp_range
                    .iter()
                    .flatten()
                    .filter(|r| {
                        r.parse::<Pool>()
                            .map(|p| !addr.contains(p.first))
                            .unwrap_or(true)
                    })
                    .collect();
                if raw.dhcp_mode.as_deref() == Some("authoritative") && !off_subnet.is_empty() {
                    say!(
                        self,
                        "  note: DHCP range(s) not on {addr}: change them with 3"
                    );
                }
            }
            NetMode::Dhcp => raw.advertise_addr = None,
        }
        if before != raw.advertise_addr {
            self.commit(&raw, "the advertised address");
        } else {
            self.apply_service();
        }
        Ok(())
    }

    fn ask_ranges(&mut self, suggestion: Option<String>) -> Result<Option<Vec<String>>, Quit> {
        let eg = suggestion.unwrap_or_else(|| "10.77.0.100,10.77.0.200,255.255.255.0,12h".into());
        let prompt = format!(
            "DHCP range(s), FIRST,LAST[,MASK[,LEASE]], several separated by spaces\n  e.g. {eg}  (`none` clears, Enter cancels): "
        );
        self.ask_valid(&prompt, |a| {
            if a == "none" {
                return Ok(Vec::new());
            }
            a.split([' ', ';'])
                .filter(|r| !r.is_empty())
                .map(|r| {
                    r.parse::<Pool>()
                        .map(|_| r.to_string())
                        .map_err(|e| format!("`{}`: {}", r.escape_debug(), e.0))
                })
                .collect()
        })
    }

    fn suggested_range(&self, raw: &RawConfig) -> Option<String> {
        let ifname = raw.interface.clone().unwrap_or_else(|| "eth0".into());
        let addr = interface_addresses()
            .into_iter()
            .find(|(n, _)| *n == ifname)
            .map(|(_, c)| c)?;
        if addr.prefix > 24 {
            return None;
        }
        let net = u32::from(addr.ip) & 0xffff_ff00;
        Some(format!(
            "{},{},{},12h",
            Ipv4Addr::from(net + 100),
            Ipv4Addr::from(net + 200),
            addr.mask()
        ))
    }

    fn set_mode(&mut self) -> Result<(), Quit> {
        let Some(mut raw) = self.load() else {
            return Ok(());
        };
        let Some(mode) = self.ask_valid(
            "DHCP mode: off, proxy (next to the lab's DHCP server) or authoritative (Enter cancels): ",
            |a| a.parse::<DhcpMode>().map_err(|e| e.0),
        )?
        else {
            return Ok(());
        };
        raw.dhcp_mode = Some(mode.to_string());
        if mode == DhcpMode::Authoritative && raw.dhcp_range.as_ref().is_none_or(Vec::is_empty) {
            say!(
                self,
                "  authoritative DHCP hands out addresses: give the range(s) it may use"
            );
            let sugg = self.suggested_range(&raw);
            let Some(r) = self.ask_ranges(sugg)? else {
                return Ok(());
            };
            raw.dhcp_range = Some(r);
        }
        self.commit(&raw, &format!("DHCP mode {mode}"));
        Ok(())
    }

    fn set_ranges(&mut self) -> Result<(), Quit> {
        let Some(mut raw) = self.load() else {
            return Ok(());
        };
        let sugg = self.suggested_range(&raw);
        let Some(r) = self.ask_ranges(sugg)? else {
            return Ok(());
        };
        raw.dhcp_range = if r.is_empty() { None } else { Some(r) };
        self.commit(&raw, "the DHCP ranges");
        Ok(())
    }

    fn token(&mut self) -> Result<(), Quit> {
        let Some(mut raw) = self.load() else {
            return Ok(());
        };
        match &raw.api_token {
            Some(t) => say!(self, "  API token: {t}"),
            None => say!(
                self,
                "  no API token: API writes are taken from the appliance itself only"
            ),
        }
        say!(
            self,
            "  API clients send it as `Authorization: Bearer <token>`."
        );
        let a = self.ask(
            "type `new` for a new random token (the old one stops working), Enter keeps it: ",
        )?;
        if a != "new" {
            if !a.is_empty() {
                say!(
                    self,
                    "  ! `{}` is not `new`: the token is unchanged",
                    a.escape_debug()
                );
            }
            return Ok(());
        }
        let t = match new_token() {
            Ok(t) => t,
            Err(e) => {
                say!(self, "  ! {e}");
                return Ok(());
            }
        };
        raw.api_token = Some(t.clone());
        if self.commit(&raw, "a new API token") {
            say!(self, "  new API token: {t}");
        }
        Ok(())
    }

    fn set_unknown(&mut self) -> Result<(), Quit> {
        let Some(mut raw) = self.load() else {
            return Ok(());
        };
        let Some(v) = self.ask_valid(
            "machines without a record boot: `local` (their disk) or a boot action name (Enter cancels): ",
            |a| {
                if a == "local" {
                    Ok(a.to_string())
                } else {
                    check_token("boot action", a).map_err(|e| e.to_string())
                }
            },
        )?
        else {
            return Ok(());
        };
        if v != "local"
            && let Some(cfg) =
                Config::from_raw(&raw, Some(&self.opts.config), &RawConfig::default()).ok()
        {
            let svc = Self::service_addr(&cfg);
            if let Ok((404, _)) =
                client::get(svc, &format!("/bootaction/{v}"), Duration::from_secs(3))
            {
                say!(
                    self,
                    "  note: there is no boot action `{v}` yet; unknown machines boot locally until it exists"
                );
            }
        }
        raw.unknown_boot = Some(v.clone());
        self.commit(&raw, &format!("the default boot `{v}`"));
        Ok(())
    }

    fn factory_reset(&mut self) -> Result<(), Quit> {
        say!(
            self,
            "  factory reset deletes the configuration ({}) and the network settings ({}).",
            self.opts.config.display(),
            self.opts.network_file.display()
        );
        say!(
            self,
            "  The appliance then sets itself up as on its first boot (new API token)."
        );
        say!(
            self,
            "  Boot actions, machines and images in the data folder are kept."
        );
        let a = self.ask("type RESET to confirm (anything else cancels): ")?;
        if a != "RESET" {
            say!(self, "  not confirmed: nothing changed");
            return Ok(());
        }
        for p in [self.opts.config.clone(), self.opts.network_file.clone()] {
            if let Err(e) = remove_durable(&p) {
                say!(self, "  ! cannot delete {}: {e}", p.display());
                return Ok(());
            }
        }
        say!(self, "  deleted the configuration and the network settings");
        self.apply_network();
        self.apply_service();
        self.status();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> Options {
        Options {
            config: dir.join("gopxe.toml"),
            apply_command: None,
            network_command: None,
            network_file: dir.join("network.conf"),
        }
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gopxe-console-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn drive(dir: &Path, input: &str) -> String {
        let mut out = Vec::new();
        let mut c = Console::new(input.as_bytes(), &mut out, opts(dir));
        c.run();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn bad_answers_are_asked_again_and_nothing_is_written() {
        let d = tmp("bad");
        let cfg = d.join("gopxe.toml");
        std::fs::write(&cfg, "http_listen = \"127.0.0.1:1\"\ndhcp_mode = \"off\"\n").unwrap();
        let before = std::fs::read(&cfg).unwrap();
        let out = drive(
            &d,
            "2\nsometimes\n\n3\n10.0.0.20,10.0.0.10\n\n9\n1\n300.1.1.1/24\n\n6\nno\n",
        );
        assert!(out.contains("unknown DHCP mode"), "{out}");
        assert!(out.contains("is empty"), "{out}");
        assert!(out.contains("not on the menu"), "{out}");
        assert!(out.contains("not an IPv4 address"), "{out}");
        assert!(out.contains("not confirmed"), "{out}");
        assert!(out.contains("Leaving the console"), "{out}");
        assert_eq!(std::fs::read(&cfg).unwrap(), before);
        assert!(!d.join("network.conf").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn changes_are_checked_as_a_whole_then_written() {
        let d = tmp("good");
        let cfg = d.join("gopxe.toml");
        std::fs::write(&cfg, "http_listen = \"127.0.0.1:1\"\n").unwrap();
        // authoritative without ranges asks for one; `none` is refused as a whole
        let out = drive(
            &d,
            "2\nauthoritative\nnone\n2\nauthoritative\n10.9.0.10,10.9.0.20\n5\nbad name\nlocal\n",
        );
        assert!(out.contains("needs at least one dhcp_range"), "{out}");
        let raw = read_file(&cfg).unwrap();
        assert_eq!(raw.dhcp_mode.as_deref(), Some("authoritative"));
        assert_eq!(
            raw.dhcp_range,
            Some(vec!["10.9.0.10,10.9.0.20".to_string()])
        );
        assert_eq!(raw.unknown_boot.as_deref(), Some("local"));
        assert_eq!(raw.http_listen.as_deref(), Some("127.0.0.1:1"));
        let out = drive(&d, "1\n10.9.0.2/24\n10.8.0.1\n10.9.0.1\n");
        assert!(out.contains("not on 10.9.0.2/24's subnet"), "{out}");
        let n =
            NetSettings::parse(&std::fs::read_to_string(d.join("network.conf")).unwrap()).unwrap();
        assert_eq!(
            n.mode,
            NetMode::Static {
                addr: parse_cidr("10.9.0.2/24").unwrap(),
                gw: Some(Ipv4Addr::new(10, 9, 0, 1))
            }
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
