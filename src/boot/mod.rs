//! What a given client boots: config-file names, pxelinux and iPXE configs.
//!
//! Layer: boot logic (pure; shared by HTTP, TFTP and DHCP). pxelinux asks
//! for `pxelinux.cfg/<uuid>` (option 97 byte order), `pxelinux.cfg/01-<mac>`,
//! the client IP in upper-case hex shortened one digit at a time, then
//! `pxelinux.cfg/default` (syslinux doc "PXELINUX", config file search);
//! syslinux.efi asks for the same names. [`config_for`] answers each of them
//! from the store with exactly the text `GET /pxelinux/{file}` returns.
//! The `ks=` URL keeps the original GoPXE query form
//! (`/kickstart/?name=..&os=..`) with URL-encoded values.
//!
//! A boot action's `installer` picks the per-machine kernel arguments
//! ([`MachineArgs`]): `ks=<kickstart>` last on the line, as the original
//! wrote it, or the preseed / autoinstall presets of [`installer`], which go
//! *before* the action's `append` so that an admin's `--- console=...`
//! (arguments after `---` are copied to the installed system) stays last.
//!
//! The kernel keeps a command line of at most `MAX_KERNEL_LINE - 1` bytes
//! ([`MAX_KERNEL_LINE`] counts its NUL) and boot loaders cut a longer one
//! silently — with `ks=` written last, the installer would lose its
//! kickstart. [`kernel_line_len`] measures the longest line an action
//! gives a machine, counting what the
//! loaders put in front (pxelinux: `BOOT_IMAGE=<kernel> `, syslinux
//! `execute.c`; iPXE on UEFI: the image name and a space, iPXE
//! `efi_image_cmdline`), and [`check_kernel_line`] refuses a line that
//! would not fit; the API checks it on every write that changes one.

pub mod grub;
pub mod installer;
pub mod kickstart;
pub mod rpi;

use crate::model::{
    BootAction, Installer, Loader, Machine, MachineId, MachineState, Records, parse_mac, parse_uuid,
};
use std::fmt;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

pub use crate::model::validate::MAX_KERNEL_LINE;

/// The name an iPXE script gives the initrd, and so the `initrd=` argument.
const IPXE_INITRD: &str = "initrd.img";

/// What `pxelinux.cfg/default` (and an unknown machine) gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DefaultBoot {
    /// Boot from the local disk (the safe default).
    #[default]
    Local,
    /// Run the named boot action (no per-machine kickstart).
    Action(String),
}

/// Where boot URLs point: `http://<advertise>:<port>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Urls {
    /// The advertised address (also next-server and the TFTP server).
    pub addr: Ipv4Addr,
    pub base: String,
    /// Name servers for debian-installer's kernel line when a record has
    /// none (the config's `dhcp_dns`).
    pub dns: Vec<Ipv4Addr>,
    /// The port of gopxe's syslog receiver on `addr`, when it runs: the
    /// installers are told to log there ([`installer::log_args`]).
    pub syslog: Option<u16>,
}

impl Urls {
    pub fn new(addr: Ipv4Addr, port: u16) -> Self {
        let base = if port == 80 {
            format!("http://{addr}")
        } else {
            format!("http://{addr}:{port}")
        };
        Urls {
            addr,
            base,
            dns: Vec::new(),
            syslog: None,
        }
    }

    /// The same, with installers told to log to the syslog receiver.
    pub fn with_syslog(mut self, port: Option<u16>) -> Self {
        self.syslog = port;
        self
    }

    /// The same, with name servers for installer kernel lines.
    pub fn with_dns(mut self, dns: Vec<Ipv4Addr>) -> Self {
        self.dns = dns;
        self
    }

    /// A machine's debian-installer preseed (`id` canonical).
    pub fn preseed(&self, id: &str) -> String {
        format!("{}/preseed/{id}", self.base)
    }

    /// A machine's cloud-init NoCloud seed; cloud-init appends the file
    /// names (`meta-data`, `user-data`, ...), so it ends in `/`.
    pub fn seed(&self, id: &str) -> String {
        format!("{}/cloud-init/{id}/", self.base)
    }

    /// The `ks=` URL for a machine: the original's query form.
    pub fn kickstart(&self, m: &Machine) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("name", &m.ksfile);
        let ip = |a: Option<Ipv4Addr>| a.map(|a| a.to_string());
        for (k, v) in [
            ("os", m.os.clone()),
            ("version", m.version.clone()),
            ("fqdn", m.hostname.clone()),
            ("ip", ip(m.ip)),
            ("mask", ip(m.mask)),
            ("gw", ip(m.gw)),
            ("ns1", ip(m.ns1)),
            ("ns2", ip(m.ns2)),
        ] {
            if let Some(v) = v {
                q.append_pair(k, &v);
            }
        }
        format!("{}/kickstart/?{}", self.base, q.finish())
    }

    /// The call-back the installer makes when it is done, with the
    /// install's key (hex) when the reader may have it.
    pub fn done(&self, id: &MachineId, key: Option<&str>) -> String {
        // Without format!: made for every kickstart a known machine fetches.
        let (sep, key) = match key {
            Some(k) => ("?key=", k),
            None => ("", ""),
        };
        [
            self.base.as_str(),
            "/pxeboot/",
            &id.canonical(),
            "/done",
            sep,
            key,
        ]
        .concat()
    }

    /// An image file over HTTP.
    pub fn image(&self, path: &str) -> String {
        format!("{}/images/{}", self.base, path)
    }
}

/// A `pxelinux.cfg/` file name, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigName {
    Uuid([u8; 16]),
    Mac([u8; 6]),
    /// Upper-case hex of the client address (full 8 digits only match).
    HexIp(String),
    Default,
}

impl ConfigName {
    /// Parses the part after `pxelinux.cfg/`.
    pub fn parse(name: &str) -> Option<ConfigName> {
        if name == "default" {
            return Some(ConfigName::Default);
        }
        if let Some(mac) = name.strip_prefix("01-") {
            return (mac.len() == 17)
                .then(|| parse_mac(mac))
                .flatten()
                .map(ConfigName::Mac);
        }
        if name.len() == 36 {
            return parse_uuid(name).map(ConfigName::Uuid);
        }
        if (1..=8).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(ConfigName::HexIp(name.to_ascii_uppercase()));
        }
        None
    }
}

/// Upper-case hex of an address, as pxelinux spells it.
pub fn hex_ip(a: Ipv4Addr) -> String {
    a.octets().iter().map(|b| format!("{b:02X}")).collect()
}

/// Finds the machine a config name stands for.
pub fn find_machine<'s>(store: &'s Records, name: &ConfigName) -> Option<&'s Machine> {
    match name {
        ConfigName::Uuid(u) => store
            .machines
            .get(&MachineId::Uuid(*u))
            .or_else(|| store.machines.values().find(|m| m.id.matches_uuid_bytes(u))),
        ConfigName::Mac(mac) => store.machines.get(&MachineId::Mac(*mac)),
        ConfigName::HexIp(h) if h.len() == 8 => store
            .machines
            .values()
            .find(|m| m.ip.is_some_and(|ip| hex_ip(ip) == *h)),
        ConfigName::HexIp(_) | ConfigName::Default => None,
    }
}

/// The pxelinux config that boots from the local disk.
pub fn pxelinux_local() -> String {
    "default local\n label local\n MENU LABEL boot from local disk\n LOCALBOOT 0\n".to_string()
}

fn kernel_args(a: &BootAction) -> String {
    let mut args = String::new();
    for (k, v) in [
        ("ksdevice", &a.ksdevice),
        ("ip", &a.ip),
        ("load_ramdisk", &a.load_ramdisk),
    ] {
        if let Some(v) = v {
            let _ = write!(args, "{k}={v} ");
        }
    }
    args
}

/// A machine's own kernel arguments: where its installer finds its answers
/// (and, with the syslog receiver on, where it logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineArgs {
    /// The kickstart URL, written last as `ks=<url>`; `logs` (anaconda's
    /// `inst.syslog=`) goes before the action's `append`.
    Kickstart { url: String, logs: Option<String> },
    /// Preset arguments of another installer, written before `append`.
    Preset(String),
}

/// The kernel arguments of machine `m` booting action `a`.
pub fn machine_args(urls: &Urls, a: &BootAction, m: &Machine) -> MachineArgs {
    let target = || installer::Target::new(m, a.storage, urls, None);
    let logs = installer::log_args(a.installer, urls);
    match a.installer {
        Installer::Kickstart => MachineArgs::Kickstart {
            url: urls.kickstart(m),
            logs,
        },
        Installer::Preseed => {
            let mut p = installer::preseed_args(&target(), urls, &urls.dns);
            if let Some(l) = logs {
                p.push(' ');
                p.push_str(&l);
            }
            MachineArgs::Preset(p)
        }
        Installer::Autoinstall => {
            MachineArgs::Preset(installer::autoinstall_args(&target(), urls, a.ip.is_some()))
        }
    }
}

/// The kernel command line after the kernel: the action's arguments, the
/// initrd (`initrd_arg`, pxelinux only), the machine's arguments, `append`.
fn command_line(a: &BootAction, initrd_arg: Option<&str>, extra: Option<&MachineArgs>) -> String {
    let mut args = kernel_args(a);
    if let Some(i) = initrd_arg {
        let _ = write!(args, "initrd={i} ");
    }
    if let Some(MachineArgs::Preset(p) | MachineArgs::Kickstart { logs: Some(p), .. }) = extra {
        let _ = write!(args, "{p} ");
    }
    if let Some(x) = &a.append {
        let _ = write!(args, "{x} ");
    }
    if let Some(MachineArgs::Kickstart { url: ks, .. }) = extra {
        let _ = write!(args, "ks={ks}");
    }
    args.trim_end().to_string()
}

/// The `APPEND` text of a pxelinux config: the initrd by its path.
fn pxelinux_args(a: &BootAction, extra: Option<&MachineArgs>) -> String {
    command_line(a, a.initrd.as_deref(), extra)
}

/// A Raspberry Pi's `cmdline.txt` line: the firmware loads the initrd
/// named in `config.txt` and passes it in the device tree, so no `initrd=`.
pub(crate) fn pi_command_line(a: &BootAction, extra: Option<&MachineArgs>) -> String {
    command_line(a, None, extra)
}

/// The arguments after the kernel URL in an iPXE script: the initrd by
/// the name the script gives it.
fn ipxe_args(a: &BootAction, extra: Option<&MachineArgs>) -> String {
    command_line(a, a.initrd.as_ref().map(|_| IPXE_INITRD), extra)
}

/// The name iPXE gives the kernel it downloads: the URL's last component.
fn ipxe_image_name(kernel: &str) -> &str {
    kernel.rsplit('/').next().unwrap_or(kernel)
}

/// Bytes of the longest command line the kernel of action `a` receives,
/// booting machine `m` (`None`: an unknown machine booting the default),
/// through pxelinux (`BOOT_IMAGE=<kernel> <APPEND text>`), iPXE (on
/// UEFI `<image name> <arguments after the URL>`; on BIOS the arguments
/// alone, which is shorter) or GRUB (`BOOT_IMAGE=<path> <arguments>`,
/// GRUB's `linux` loader). The terminating NUL is not counted.
pub fn kernel_line_len(urls: &Urls, a: &BootAction, m: Option<&Machine>) -> usize {
    let extra = m.map(|m| machine_args(urls, a, m));
    let pxelinux =
        "BOOT_IMAGE=".len() + a.kernel.len() + 1 + pxelinux_args(a, extra.as_ref()).len();
    let ipxe = ipxe_image_name(&a.kernel).len() + 1 + ipxe_args(a, extra.as_ref()).len();
    // GRUB: `BOOT_IMAGE=/images/<kernel> ` (over HTTP the longest), no initrd=.
    let grub = "BOOT_IMAGE=/images/".len()
        + a.kernel.len()
        + 1
        + command_line(a, None, extra.as_ref()).len();
    pxelinux.max(ipxe).max(grub)
}

/// A kernel command line the kernel would cut short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineTooLong {
    /// Its length in bytes, without the terminating NUL.
    pub bytes: usize,
    /// The machine it is for; `None`: unknown machines.
    pub machine: Option<MachineId>,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the kernel command line")?;
        if let Some(id) = &self.machine {
            write!(f, " of machine {id}")?;
        }
        write!(
            f,
            " would be {} bytes; the kernel keeps at most {} (COMMAND_LINE_SIZE {MAX_KERNEL_LINE} with its terminating NUL)",
            self.bytes,
            MAX_KERNEL_LINE - 1
        )
    }
}

/// Checks that action `a` gives unknown machines and each of `machines`
/// a kernel line the kernel keeps whole; names the longest one otherwise.
pub fn check_kernel_line<'m>(
    urls: &Urls,
    a: &BootAction,
    machines: impl IntoIterator<Item = &'m Machine>,
) -> Result<(), LineTooLong> {
    let unknown = LineTooLong {
        bytes: kernel_line_len(urls, a, None),
        machine: None,
    };
    let longest = machines
        .into_iter()
        .map(|m| LineTooLong {
            bytes: kernel_line_len(urls, a, Some(m)),
            machine: Some(m.id),
        })
        .fold(unknown, |l, m| if m.bytes > l.bytes { m } else { l });
    if longest.bytes < MAX_KERNEL_LINE {
        Ok(())
    } else {
        Err(longest)
    }
}

/// The pxelinux config of an action; `extra` are the machine's arguments.
/// pxelinux hands the rest of the `APPEND` line to the kernel verbatim (no
/// quoting, `;` is an ordinary character).
pub fn pxelinux_action(a: &BootAction, extra: Option<&MachineArgs>) -> String {
    format!(
        "default {}\n label {}\n MENU LABEL {}\n KERNEL {}\n APPEND {}\n",
        a.default,
        a.label,
        a.menu,
        a.kernel,
        pxelinux_args(a, extra)
    )
}

/// A machine's pxelinux config: its installer, or local boot once installed.
pub fn pxelinux_machine(store: &Records, urls: &Urls, m: &Machine) -> String {
    if m.state == MachineState::Installed {
        return pxelinux_local();
    }
    match store.bootactions.get(&m.bootaction) {
        Some(a) => pxelinux_action(a, Some(&machine_args(urls, a, m))),
        None => pxelinux_local(),
    }
}

/// The fallback for machines gopxe does not know.
pub fn pxelinux_default(store: &Records, default: &DefaultBoot) -> String {
    match default {
        DefaultBoot::Action(name) => match store.bootactions.get(name) {
            Some(a) => pxelinux_action(a, None),
            None => pxelinux_local(),
        },
        DefaultBoot::Local => pxelinux_local(),
    }
}

/// The text of `pxelinux.cfg/<name>`, or `None` when pxelinux should try
/// its next name (unknown UUID/MAC/IP) or the name is not a config name.
pub fn config_for(
    store: &Records,
    urls: &Urls,
    default: &DefaultBoot,
    name: &str,
) -> Option<String> {
    config_with_machine(store, urls, default, name).map(|(text, _)| text)
}

/// [`config_for`], with the machine the name stands for (`None` for
/// `default`), as [`grub::config_for`] gives it.
pub fn config_with_machine(
    store: &Records,
    urls: &Urls,
    default: &DefaultBoot,
    name: &str,
) -> Option<(String, Option<MachineId>)> {
    match ConfigName::parse(name)? {
        ConfigName::Default => Some((pxelinux_default(store, default), None)),
        n => find_machine(store, &n).map(|m| (pxelinux_machine(store, urls, m), Some(m.id))),
    }
}

/// Every config file name gopxe serves: `default` and one per machine.
pub fn config_names(store: &Records) -> Vec<String> {
    let mut names: Vec<String> = store.machines.keys().map(MachineId::canonical).collect();
    names.push("default".into());
    names
}

/// The iPXE script of a machine (or of the default for unknown ones).
pub fn ipxe_script(
    store: &Records,
    urls: &Urls,
    default: &DefaultBoot,
    m: Option<&Machine>,
) -> String {
    let local = "#!ipxe\necho gopxe: booting from local disk\nexit\n".to_string();
    let (action, m) = match m {
        Some(m) if m.state == MachineState::Installed => return local,
        Some(m) => (store.bootactions.get(&m.bootaction), Some(m)),
        None => match default {
            DefaultBoot::Action(n) => (store.bootactions.get(n), None),
            DefaultBoot::Local => (None, None),
        },
    };
    let Some(a) = action else { return local };
    // iPXE splits a command at whitespace only; a token ends the command
    // only when it is exactly `;`, `&&` or `||` (or starts with `#`), so
    // `ds=nocloud-net;s=...` needs no quoting here either.
    let extra = m.map(|m| machine_args(urls, a, m));
    let mut s = format!(
        "#!ipxe\necho gopxe: {}\nkernel {} {}\n",
        a.menu,
        urls.image(&a.kernel),
        ipxe_args(a, extra.as_ref())
    );
    if let Some(i) = &a.initrd {
        let _ = writeln!(s, "initrd --name {IPXE_INITRD} {}", urls.image(i));
    }
    s.push_str("boot\n");
    s
}

/// Whether a machine boots through iPXE (its action says so).
pub fn wants_ipxe(store: &Records, m: &Machine) -> bool {
    store
        .bootactions
        .get(&m.bootaction)
        .is_some_and(|a| a.loader == Loader::Ipxe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BootActionBody, MachineBody};

    #[test]
    fn done_urls() {
        let urls = Urls::new(Ipv4Addr::new(10, 1, 20, 2), 9090);
        let mac: MachineId = "AA:BB:CC:DD:EE:0F".parse().unwrap();
        assert_eq!(
            urls.done(&mac, None),
            "http://10.1.20.2:9090/pxeboot/01-aa-bb-cc-dd-ee-0f/done"
        );
        assert_eq!(
            urls.done(&mac, Some("00ff")),
            "http://10.1.20.2:9090/pxeboot/01-aa-bb-cc-dd-ee-0f/done?key=00ff"
        );
        let uuid: MachineId = "42330D5A-0EAD-F7FA-4E3A-AE3BDCB08C69".parse().unwrap();
        assert_eq!(
            Urls::new(Ipv4Addr::new(192, 0, 2, 1), 80).done(&uuid, None),
            "http://192.0.2.1/pxeboot/42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69/done"
        );
    }

    fn store_with_readme_records() -> Records {
        let mut store = Records::default();
        let body: BootActionBody = serde_json::from_str(
            r#"{"default": "linux", "label": "linux", "menu": "centos7", "kernel": "centos7/vmlinuz",
                "ksdevice": "link", "ip": "dhcp", "load_ramdisk": "1", "initrd":"centos7/initrd.img"}"#,
        )
        .unwrap();
        let a = BootAction::from_body("vmtemplate", body).unwrap();
        store.bootactions.insert(a.name.clone(), a);
        let mb: MachineBody = serde_json::from_str(
            r#"{"bootaction": "vmtemplate", "ksfile": "default", "os": "centos-7", "version": "7.5.1804",
                "hostname": "test-myvm1.local", "ip": "10.1.20.50", "mask": "255.255.255.0",
                "ns1": "8.8.8.8", "ns2": "8.8.4.4", "gw": "10.1.20.1",
                "uuid": "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69"}"#,
        )
        .unwrap();
        let m = Machine::from_body(mb, None).unwrap();
        store.machines.insert(m.id, m);
        store
    }

    #[test]
    fn readme_results_block_with_bugs_fixed() {
        let store = store_with_readme_records();
        let urls = Urls::new(Ipv4Addr::new(10, 1, 20, 2), 9090);
        let got = config_for(
            &store,
            &urls,
            &DefaultBoot::Local,
            "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69",
        )
        .unwrap();
        assert_eq!(
            got,
            "default linux\n label linux\n MENU LABEL centos7\n KERNEL centos7/vmlinuz\n APPEND ksdevice=link ip=dhcp load_ramdisk=1 initrd=centos7/initrd.img ks=http://10.1.20.2:9090/kickstart/?name=default&os=centos-7&version=7.5.1804&fqdn=test-myvm1.local&ip=10.1.20.50&mask=255.255.255.0&gw=10.1.20.1&ns1=8.8.8.8&ns2=8.8.4.4\n"
        );
        // The SMBIOS byte order pxelinux asks for finds the same machine.
        let swapped = config_for(
            &store,
            &urls,
            &DefaultBoot::Local,
            "5a0d3342-ad0e-faf7-4e3a-ae3bdcb08c69",
        );
        assert_eq!(swapped.as_deref(), Some(got.as_str()));
        // So does the hex IP, and nothing else.
        assert_eq!(
            config_for(&store, &urls, &DefaultBoot::Local, "0A011432").as_deref(),
            Some(got.as_str())
        );
        assert_eq!(
            config_for(&store, &urls, &DefaultBoot::Local, "0A01143"),
            None
        );
        assert_eq!(
            config_for(&store, &urls, &DefaultBoot::Local, "01-aa-bb-cc-dd-ee-ff"),
            None
        );
        assert_eq!(
            config_for(&store, &urls, &DefaultBoot::Local, "../../etc/passwd"),
            None
        );
        assert_eq!(
            config_for(&store, &urls, &DefaultBoot::Local, "default").unwrap(),
            pxelinux_local()
        );
    }

    #[test]
    fn installed_machines_boot_locally_and_values_are_encoded() {
        let mut store = store_with_readme_records();
        let urls = Urls::new(Ipv4Addr::new(192, 0, 2, 1), 80);
        let m = store.machines.values_mut().next().unwrap();
        m.os = Some("a+b".into());
        let m = m.clone();
        assert!(
            urls.kickstart(&m)
                .starts_with("http://192.0.2.1/kickstart/?name=default&os=a%2Bb&")
        );
        store.machines.get_mut(&m.id).unwrap().state = MachineState::Installed;
        let cfg = config_for(&store, &urls, &DefaultBoot::Local, &m.id.canonical()).unwrap();
        assert!(cfg.contains("LOCALBOOT 0"));
        let script = ipxe_script(
            &store,
            &urls,
            &DefaultBoot::Local,
            store.machines.get(&m.id),
        );
        assert!(script.contains("exit"));
    }

    #[test]
    fn ipxe_script_fetches_over_http() {
        let store = store_with_readme_records();
        let urls = Urls::new(Ipv4Addr::new(10, 99, 0, 1), 9090);
        let m = store.machines.values().next();
        let s = ipxe_script(&store, &urls, &DefaultBoot::Local, m);
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains("kernel http://10.99.0.1:9090/images/centos7/vmlinuz ksdevice=link"));
        assert!(s.contains(
            "initrd --name initrd.img http://10.99.0.1:9090/images/centos7/initrd.img\n"
        ));
        assert!(s.contains(" ks=http://10.99.0.1:9090/kickstart/?name=default"));
        let unknown = ipxe_script(&store, &urls, &DefaultBoot::Local, None);
        assert!(unknown.contains("exit"));
        let dflt = ipxe_script(
            &store,
            &urls,
            &DefaultBoot::Action("vmtemplate".into()),
            None,
        );
        assert!(dflt.contains("kernel ") && !dflt.contains("ks="));
    }
    fn store_with_installer(installer: &str, append: Option<&str>) -> (Records, Machine) {
        let mut store = Records::default();
        let mut body: BootActionBody = serde_json::from_str(&format!(
            r#"{{"kernel": "debian/linux", "initrd": "debian/initrd.gz", "installer": "{installer}"}}"#
        ))
        .unwrap();
        body.append = append.map(str::to_string);
        let a = BootAction::from_body("inst", body).unwrap();
        store.bootactions.insert(a.name.clone(), a);
        let mb: MachineBody = serde_json::from_str(
            r#"{"bootaction": "inst", "hostname": "node7.lab", "mac": "52:54:00:12:34:56",
                "ip": "10.1.20.50", "mask": "255.255.255.0", "gw": "10.1.20.1"}"#,
        )
        .unwrap();
        let m = Machine::from_body(mb, None).unwrap();
        store.machines.insert(m.id, m.clone());
        (store, m)
    }

    #[test]
    fn installer_presets_on_pxelinux_and_ipxe_lines() {
        let urls = Urls::new(Ipv4Addr::new(10, 1, 20, 2), 9090)
            .with_dns(vec![Ipv4Addr::new(10, 1, 20, 53)]);
        // debian-installer: its preset before the admin's `append`, which
        // keeps `---` last; the name server comes from the config.
        let (store, m) = store_with_installer("preseed", Some("--- console=ttyS0"));
        let cfg = pxelinux_machine(&store, &urls, &m);
        assert_eq!(
            cfg,
            "default linux\n label linux\n MENU LABEL inst\n KERNEL debian/linux\n APPEND initrd=debian/initrd.gz auto=true priority=critical url=http://10.1.20.2:9090/preseed/01-52-54-00-12-34-56 interface=auto hostname=node7 domain=lab netcfg/disable_autoconfig=true netcfg/get_ipaddress=10.1.20.50 netcfg/get_netmask=255.255.255.0 netcfg/get_gateway=10.1.20.1 netcfg/confirm_static=true netcfg/get_nameservers=10.1.20.53 --- console=ttyS0\n"
        );
        assert!(!cfg.contains("ks="));
        let script = ipxe_script(&store, &urls, &DefaultBoot::Local, Some(&m));
        assert!(script.contains(
            "\nkernel http://10.1.20.2:9090/images/debian/linux initrd=initrd.img auto=true priority=critical url=http://10.1.20.2:9090/preseed/01-52-54-00-12-34-56 "
        ), "{script}");
        assert!(script.contains(" --- console=ttyS0\ninitrd --name initrd.img "));

        // Ubuntu autoinstall: the `;` stays inside one argument on both lines.
        let (store, m) = store_with_installer("autoinstall", None);
        let cfg = pxelinux_machine(&store, &urls, &m);
        assert!(cfg.ends_with(
            " APPEND initrd=debian/initrd.gz ip=10.1.20.50::10.1.20.1:255.255.255.0:node7::none autoinstall ds=nocloud-net;s=http://10.1.20.2:9090/cloud-init/01-52-54-00-12-34-56/\n"
        ), "{cfg}");
        let script = ipxe_script(&store, &urls, &DefaultBoot::Local, Some(&m));
        let kernel = script.lines().find(|l| l.starts_with("kernel ")).unwrap();
        let tokens: Vec<&str> = kernel.split_whitespace().collect();
        assert!(
            tokens.contains(
                &"ds=nocloud-net;s=http://10.1.20.2:9090/cloud-init/01-52-54-00-12-34-56/"
            )
        );
        // No token iPXE would take as a command separator or a comment.
        assert!(
            tokens.iter().all(|t| !matches!(*t, ";" | "&&" | "||")
                && !t.starts_with('#')
                && !t.contains("${"))
        );
        // An installed machine boots locally whatever its installer.
        let mut store = store;
        store.machines.get_mut(&m.id).unwrap().state = MachineState::Installed;
        let m = store.machines.get(&m.id).unwrap().clone();
        assert_eq!(pxelinux_machine(&store, &urls, &m), pxelinux_local());
        // Unknown machines booting a preset action get no per-machine URL.
        let dflt = pxelinux_default(&store, &DefaultBoot::Action("inst".into()));
        assert!(
            !dflt.contains("cloud-init") && !dflt.contains("autoinstall"),
            "{dflt}"
        );
    }

    /// Lengths of what the kernel receives, read off rendered configs:
    /// pxelinux `BOOT_IMAGE=<KERNEL> <APPEND>`, iPXE on UEFI `<image name>
    /// <arguments after the kernel URL>`.
    fn rendered_lens(pxelinux: &str, ipxe: &str) -> (usize, usize) {
        let field = |key: &str| {
            pxelinux
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {pxelinux}"))
        };
        let pxe = format!("BOOT_IMAGE={} {}", field(" KERNEL "), field(" APPEND "));
        let kernel = ipxe
            .lines()
            .find_map(|l| l.strip_prefix("kernel "))
            .unwrap_or_else(|| panic!("no kernel line in {ipxe}"));
        let (url, args) = kernel.split_once(' ').unwrap();
        let name = url.rsplit('/').next().unwrap();
        (pxe.len(), format!("{name} {args}").len())
    }

    /// With the syslog receiver on, anaconda gets `inst.syslog=` and
    /// debian-installer `log_host=`/`log_port=` before the admin's
    /// `append` (so `---` and `ks=` keep their places); autoinstall's line
    /// is unchanged (its user-data carries the remote). Off: nothing.
    #[test]
    fn kernel_lines_carry_the_log_arguments() {
        let plain = Urls::new(Ipv4Addr::new(10, 1, 20, 2), 9090);
        let urls = plain.clone().with_syslog(Some(5514));
        let (store, m) = store_with_installer("kickstart", Some("console=ttyS0"));
        let cfg = pxelinux_machine(&store, &urls, &m);
        let append = cfg
            .lines()
            .find_map(|l| l.strip_prefix(" APPEND "))
            .unwrap();
        assert!(
            append.starts_with(
                "initrd=debian/initrd.gz inst.syslog=10.1.20.2:5514 console=ttyS0 ks=http://10.1.20.2:9090/kickstart/?"
            ),
            "{append}"
        );
        let script = ipxe_script(&store, &urls, &DefaultBoot::Local, Some(&m));
        assert!(
            script.contains(" inst.syslog=10.1.20.2:5514 console=ttyS0 ks="),
            "{script}"
        );
        let grub = grub::machine(&store, &urls, &m, grub::Over::Http);
        assert!(grub.contains(" inst.syslog=10.1.20.2:5514 "), "{grub}");

        let (store, m) = store_with_installer("preseed", Some("--- console=ttyS0"));
        let cfg = pxelinux_machine(&store, &urls, &m);
        assert!(
            cfg.contains(
                " netcfg/confirm_static=true log_host=10.1.20.2 log_port=5514 --- console=ttyS0\n"
            ),
            "{cfg}"
        );
        let (store, m) = store_with_installer("autoinstall", None);
        assert_eq!(
            pxelinux_machine(&store, &urls, &m),
            pxelinux_machine(&store, &plain, &m)
        );
        // Off, or unknown machines: no log arguments.
        for installer in ["kickstart", "preseed"] {
            let (store, m) = store_with_installer(installer, None);
            let off = pxelinux_machine(&store, &plain, &m);
            assert!(
                !off.contains("syslog") && !off.contains("log_host"),
                "{off}"
            );
            let dflt = pxelinux_default(&store, &DefaultBoot::Action("inst".into()));
            assert!(
                !dflt.contains("syslog") && !dflt.contains("log_host"),
                "{dflt}"
            );
            // The length check counts them.
            let a = store.bootactions.get("inst").unwrap();
            assert!(kernel_line_len(&urls, a, Some(&m)) > kernel_line_len(&plain, a, Some(&m)));
        }
    }

    #[test]
    fn kernel_line_len_is_the_rendered_length() {
        let plain = Urls::new(Ipv4Addr::new(10, 1, 20, 2), 9090)
            .with_dns(vec![Ipv4Addr::new(10, 1, 20, 53)]);
        for urls in [plain.clone(), plain.with_syslog(Some(514))] {
            for installer in ["kickstart", "preseed", "autoinstall"] {
                for append in [None, Some("--- console=ttyS0,115200n8")] {
                    let (store, m) = store_with_installer(installer, append);
                    let a = store.bootactions.get("inst").unwrap();
                    let (pxe, ipxe) = rendered_lens(
                        &pxelinux_machine(&store, &urls, &m),
                        &ipxe_script(&store, &urls, &DefaultBoot::Local, Some(&m)),
                    );
                    assert_eq!(
                        kernel_line_len(&urls, a, Some(&m)),
                        pxe.max(ipxe),
                        "{installer} {append:?}"
                    );
                    // pxelinux names the initrd by its path, iPXE by a short
                    // name: here pxelinux's line is the longer.
                    assert!(pxe > ipxe, "{installer}");
                    let dflt = DefaultBoot::Action("inst".into());
                    let (pxe, ipxe) = rendered_lens(
                        &pxelinux_default(&store, &dflt),
                        &ipxe_script(&store, &urls, &dflt, None),
                    );
                    assert_eq!(
                        kernel_line_len(&urls, a, None),
                        pxe.max(ipxe),
                        "{installer} {append:?}"
                    );
                }
            }
        }
        let urls = Urls::new(Ipv4Addr::new(10, 1, 20, 2), 9090).with_syslog(Some(514));
        // The README's kickstart action, whose ks= URL carries every field.
        let store = store_with_readme_records();
        let m = store.machines.values().next().unwrap();
        let a = store.bootactions.get("vmtemplate").unwrap();
        let (pxe, ipxe) = rendered_lens(
            &pxelinux_machine(&store, &urls, m),
            &ipxe_script(&store, &urls, &DefaultBoot::Local, Some(m)),
        );
        assert_eq!(kernel_line_len(&urls, a, Some(m)), pxe.max(ipxe));
    }

    /// An `append` of exactly `n` bytes: words of at most 255 characters.
    fn append_of(n: usize) -> String {
        let mut s = String::new();
        while s.len() < n {
            if !s.is_empty() {
                s.push(' ');
            }
            let word = (n - s.len()).min(255);
            s.push_str(&"a".repeat(word));
        }
        s
    }

    #[test]
    fn kernel_lines_are_refused_from_2048_bytes_with_the_nul() {
        let urls = Urls::new(Ipv4Addr::new(10, 1, 20, 2), 9090);
        let (store, m) = store_with_installer("kickstart", None);
        let bare = store.bootactions.get("inst").unwrap().clone();
        let with_append = |n: usize| BootAction {
            append: Some(append_of(n)),
            ..bare.clone()
        };
        // Sized so that the machine's line is exactly 2047 bytes.
        let fixed = kernel_line_len(&urls, &with_append(1), Some(&m)) - 1;
        let fits = with_append(MAX_KERNEL_LINE - 1 - fixed);
        assert_eq!(kernel_line_len(&urls, &fits, Some(&m)), MAX_KERNEL_LINE - 1);
        assert_eq!(check_kernel_line(&urls, &fits, [&m]), Ok(()));
        let over = with_append(MAX_KERNEL_LINE - fixed);
        let e = check_kernel_line(&urls, &over, [&m]).unwrap_err();
        assert_eq!(
            e,
            LineTooLong {
                bytes: MAX_KERNEL_LINE,
                machine: Some(m.id)
            }
        );
        assert_eq!(
            e.to_string(),
            "the kernel command line of machine 01-52-54-00-12-34-56 would be 2048 bytes; the kernel keeps at most 2047 (COMMAND_LINE_SIZE 2048 with its terminating NUL)"
        );
        // Unknown machines get no ks= URL: the same action fits them.
        assert_eq!(check_kernel_line(&urls, &over, []), Ok(()));
        // A longer hostname lengthens the ks= URL past the limit; the
        // longest line is the one named.
        let mut long = m.clone();
        long.id = "52:54:00:12:34:57".parse().unwrap();
        long.hostname = Some(format!("{}.lab", "h".repeat(60)));
        let e = check_kernel_line(&urls, &fits, [&m, &long]).unwrap_err();
        assert_eq!(e.machine, Some(long.id));
        assert_eq!(e.bytes, kernel_line_len(&urls, &fits, Some(&long)));
        // An append that alone fills the line is refused for unknown
        // machines too.
        let e = check_kernel_line(&urls, &with_append(MAX_KERNEL_LINE), []).unwrap_err();
        assert_eq!(e.machine, None);
    }
}
