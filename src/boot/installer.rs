//! Answer files for the installers besides anaconda, and the kernel
//! arguments that point each installer at its file.
//!
//! Layer: boot logic (pure). Two built-in sailfish templates, compiled into
//! the binary:
//!
//! - `templates/preseed.cfg.stpl`: a debian-installer preseed (Debian
//!   installation guide, appendix B "Automating the installation using
//!   preseeding"; format `owner question type value`, one per line),
//!   served at `/preseed/{id}`.
//! - `templates/user-data.stpl`: an Ubuntu autoinstall (subiquity
//!   "Autoinstall configuration reference", version 1) inside a cloud-init
//!   `#cloud-config`, served with `meta-data` and an empty `vendor-data` as
//!   a cloud-init NoCloud seed (cloud-init docs, "NoCloud") at
//!   `/cloud-init/{id}/`; the network block is netplan version 2.
//!
//! Nothing reaches a template unchecked: machine fields are checked when the
//! record is written (`model`), settings when the config is read
//! ([`InstallerSettings`] validators), and the hostname is checked again
//! here. Every YAML scalar that carries a value is written as a
//! double-quoted string ([`yaml_str`], JSON string syntax, which YAML 1.1
//! and 1.2 read the same), so no value can add a key or a line.
//!
//! Kernel arguments ("presets", [`preseed_args`], [`autoinstall_args`]):
//!
//! - preseed: `auto=true priority=critical url=<preseed> interface=auto
//!   hostname=.. domain=..`, and for a static machine the `netcfg/...`
//!   values. debian-installer configures the network *before* it fetches
//!   the preseed, so a static address only works from the kernel line, and
//!   it stops at "Name server addresses" unless DHCP gives one or the line
//!   carries `netcfg/get_nameservers` (the record's `ns1`, else the first
//!   `dhcp_dns`). One name server only: the value cannot hold a space.
//! - autoinstall: `ip=dhcp` (or klibc's `ip=IP::GW:MASK:HOST::none:NS` for
//!   a static machine) unless the boot action sets `ip`, then `autoinstall
//!   ds=nocloud-net;s=<seed>/`. The `;` needs no quoting in either boot
//!   config gopxe writes: pxelinux passes the rest of an `APPEND` line to
//!   the kernel verbatim, and iPXE splits a command only at whitespace and
//!   ends it only at a token that is exactly `;`, `&&` or `||` (or starts
//!   with `#`), so `ds=nocloud-net;s=...` stays one argument. (GRUB would
//!   need it quoted: `'ds=nocloud-net;s=...'`; gopxe writes no GRUB menus.)
//!   The kernel itself treats `;` as an ordinary character.
//!
//! Accounts: with no `installer_user`, preseed installs root only, with no
//! user; autoinstall needs a user and names it `ubuntu`. The password is
//! `installer_password_hash` (a crypt(3) hash, never a clear password), or
//! `!` — a locked password, so the installed machine takes no password
//! logins; `installer_ssh_key` is then the way in.

use super::Urls;
use crate::model::validate::check_hostname;
use crate::model::{Machine, MachineId, Storage, format_mac};
use sailfish::TemplateSimple;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// A package mirror: `http(s)://host[:port]/dir`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub https: bool,
    /// Host name or address, with `:port` when one was given.
    pub host: String,
    /// Absolute path, no trailing `/` (just `/` for the root).
    pub dir: String,
}

impl Mirror {
    /// Debian's own redirector, the default for preseeds.
    pub fn debian() -> Mirror {
        Mirror {
            https: false,
            host: "deb.debian.org".into(),
            dir: "/debian".into(),
        }
    }

    /// Parses and checks a mirror URL.
    pub fn parse(s: &str) -> Result<Mirror, String> {
        let (https, rest) = if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!(
                "`{}` must be an http:// or https:// URL such as http://deb.debian.org/debian",
                s.escape_debug()
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let host = match host.parse::<Ipv4Addr>() {
            Ok(a) => a.to_string(),
            Err(_) => check_hostname("host", host)
                .map_err(|e| format!("the host of `{}`: {}", s.escape_debug(), e.message))?,
        };
        let host = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => format!("{host}:{n}"),
                _ => return Err(format!("`{}` is not a port", p.escape_debug())),
            },
            None => host,
        };
        if path.len() > 200
            || path.contains("//")
            || !path.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '~' | '+' | '-')
            })
        {
            return Err(format!(
                "the path of `{}` may hold only letters, digits and / . _ ~ + - (no query, no spaces)",
                s.escape_debug()
            ));
        }
        let dir = match path.trim_end_matches('/') {
            "" => "/".to_string(),
            d => d.to_string(),
        };
        Ok(Mirror { https, host, dir })
    }

    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme(), self.host, self.dir)
    }
}

/// The installer settings of the config file, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallerSettings {
    /// `debian_mirror`: the preseed's mirror.
    pub debian_mirror: Mirror,
    /// `ubuntu_mirror`: autoinstall's primary archive; `None` leaves the
    /// installer's own choice.
    pub ubuntu_mirror: Option<Mirror>,
    /// `installer_user`: the account to create.
    pub user: Option<String>,
    /// `installer_password_hash`: its crypt(3) password hash.
    pub password_hash: Option<String>,
    /// `installer_ssh_key`: one OpenSSH public key for that account.
    pub ssh_key: Option<String>,
}

impl Default for InstallerSettings {
    fn default() -> Self {
        InstallerSettings {
            debian_mirror: Mirror::debian(),
            ubuntu_mirror: None,
            user: None,
            password_hash: None,
            ssh_key: None,
        }
    }
}

/// A Linux account name: `[a-z_][a-z0-9_-]{0,31}`, not `root`.
pub fn check_username(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if !first_ok
        || s.len() > 32
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
    {
        return Err(format!(
            "`{}` is not an account name (lower-case letters, digits, '_' and '-', 1 to 32, starting with a letter or '_')",
            s.escape_debug()
        ));
    }
    if s == "root" {
        return Err(
            "`root` is always there; leave installer_user unset to install root only".into(),
        );
    }
    Ok(s.to_string())
}

/// A crypt(3) password hash such as `$6$salt$hash` or `$y$j9T$salt$hash`.
pub fn check_password_hash(s: &str) -> Result<String, String> {
    let fields = s.split('$').count();
    if !s.starts_with('$')
        || fields < 4
        || s.len() > 512
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '$' | '='))
    {
        return Err(
            "must be a crypt(3) hash like `$6$salt$hash` (e.g. from `mkpasswd -m sha-512` or `openssl passwd -6`), not a clear-text password"
                .into(),
        );
    }
    Ok(s.to_string())
}

const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// One OpenSSH public key: `TYPE BASE64 [COMMENT]`, the comment one word of
/// `[A-Za-z0-9@._:+=-]` (it is written into a shell command and YAML).
pub fn check_ssh_key(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split(' ').collect();
    let bad = |why: &str| Err(format!("is not one OpenSSH public key: {why}"));
    let (kind, data, comment) = match parts.as_slice() {
        [k, d] => (*k, *d, None),
        [k, d, c] => (*k, *d, Some(*c)),
        _ => return bad("expected `TYPE BASE64 [COMMENT]` separated by single spaces"),
    };
    if !SSH_KEY_TYPES.contains(&kind) {
        return bad("unknown key type (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...)");
    }
    if !(16..=16384).contains(&data.len())
        || !data
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
    {
        return bad("the key data is not base64");
    }
    if let Some(c) = comment
        && (c.is_empty()
            || c.len() > 128
            || !c.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | ':' | '+' | '=' | '-')
            }))
    {
        return bad("the comment may hold only letters, digits and @ . _ : + = -");
    }
    Ok(s.to_string())
}

/// A YAML double-quoted scalar (JSON string syntax: `"`, `\` and control
/// characters escaped), so a value can never end the string early.
pub fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// How the installed machine's network is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Net {
    Dhcp,
    Static {
        ip: Ipv4Addr,
        mask: Ipv4Addr,
        gw: Option<Ipv4Addr>,
    },
}

/// Everything the answer files of one machine are made of, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Canonical machine id.
    pub id: String,
    pub hostname: String,
    /// May be empty.
    pub domain: String,
    pub fqdn: String,
    pub net: Net,
    /// The record's name servers.
    pub dns: Vec<Ipv4Addr>,
    /// The MAC of the installing interface when known (a MAC id, or the one
    /// its DHCP requests came from): netplan matches on it.
    pub mac: Option<[u8; 6]>,
    pub storage: Option<Storage>,
    pub done_url: String,
    /// gopxe's syslog receiver, `host:port`, when it runs.
    pub syslog: Option<String>,
}

impl Target {
    /// Builds the target of machine `m`. The hostname was checked when the
    /// record was written and is checked again; a record without one (or,
    /// impossibly, with a bad one) is named `gopxe-<last 12 hex digits of
    /// its id>`. Static network needs both `ip` and `mask`.
    pub fn new(m: &Machine, storage: Option<Storage>, urls: &Urls, mac: Option<[u8; 6]>) -> Target {
        let fqdn = m
            .hostname
            .as_deref()
            .and_then(|h| check_hostname("hostname", h).ok())
            .unwrap_or_else(|| {
                let hex: String =
                    m.id.canonical()
                        .chars()
                        .filter(char::is_ascii_hexdigit)
                        .collect();
                format!(
                    "gopxe-{}",
                    hex.get(hex.len().saturating_sub(12)..).unwrap_or("")
                )
            });
        let (hostname, domain) = match fqdn.split_once('.') {
            Some((h, d)) => (h.to_string(), d.to_string()),
            None => (fqdn.clone(), String::new()),
        };
        let net = match (m.ip, m.mask) {
            (Some(ip), Some(mask)) => Net::Static { ip, mask, gw: m.gw },
            _ => Net::Dhcp,
        };
        let mac = match m.id {
            MachineId::Mac(a) => Some(a),
            MachineId::Uuid(_) | MachineId::PiSerial(_) => mac,
        };
        Target {
            id: m.id.canonical(),
            hostname,
            domain,
            fqdn,
            net,
            dns: [m.ns1, m.ns2].into_iter().flatten().collect(),
            mac,
            storage,
            done_url: urls.done(&m.id, None),
            syslog: urls.syslog.map(|p| format!("{}:{p}", urls.addr)),
        }
    }
}

fn prefix_len(mask: Ipv4Addr) -> u32 {
    u32::from(mask).leading_ones()
}

/// Kernel arguments for debian-installer (see the module docs).
/// `fallback_dns` is used when the record has no name server.
pub fn preseed_args(t: &Target, urls: &Urls, fallback_dns: &[Ipv4Addr]) -> String {
    let mut a = format!(
        "auto=true priority=critical url={} interface=auto hostname={}",
        urls.preseed(&t.id),
        t.hostname
    );
    if !t.domain.is_empty() {
        let _ = write!(a, " domain={}", t.domain);
    }
    if let Net::Static { ip, mask, gw } = &t.net {
        let _ = write!(
            a,
            " netcfg/disable_autoconfig=true netcfg/get_ipaddress={ip} netcfg/get_netmask={mask}"
        );
        if let Some(gw) = gw {
            let _ = write!(a, " netcfg/get_gateway={gw}");
        }
        a.push_str(" netcfg/confirm_static=true");
    }
    if let Some(ns) = t.dns.first().or(fallback_dns.first()) {
        let _ = write!(a, " netcfg/get_nameservers={ns}");
    }
    a
}

/// Kernel arguments for Ubuntu's live-server installer (see the module
/// docs). `action_sets_ip`: the boot action has its own `ip=`.
pub fn autoinstall_args(t: &Target, urls: &Urls, action_sets_ip: bool) -> String {
    let mut a = String::new();
    if !action_sets_ip {
        match &t.net {
            Net::Static { ip, mask, gw } => {
                let gw = gw.map(|g| g.to_string()).unwrap_or_default();
                let _ = write!(a, "ip={ip}::{gw}:{mask}:{}::none", t.hostname);
                if let Some(ns) = t.dns.first() {
                    let _ = write!(a, ":{ns}");
                }
                a.push(' ');
            }
            Net::Dhcp => a.push_str("ip=dhcp "),
        }
    }
    let _ = write!(a, "autoinstall ds=nocloud-net;s={}", urls.seed(&t.id));
    a
}

/// The kernel arguments that send an installer's log to gopxe's syslog
/// receiver (`urls.syslog`), or `None` when it is off or the installer
/// takes its log target elsewhere:
///
/// - anaconda: `inst.syslog=<host>:<port>` (anaconda appends `*.*
///   @@<host>:<port>` to the installer's rsyslog.conf: TCP, RFC 6587
///   non-transparent framing).
/// - debian-installer: `log_host=<host> log_port=<port>` (installation
///   guide §5.3.2; busybox syslogd `-R`, UDP, without a HOSTNAME field).
/// - autoinstall: nothing on the kernel line; the user-data's top-level
///   `rsyslog` (cloud-init's rsyslog module, applied to the live session
///   before subiquity starts) forwards the session's log over UDP
///   ([`render_user_data`]). subiquity's own `reporting: type: rsyslog`
///   is documented as not implemented, so it is not used.
pub fn log_args(installer: crate::model::Installer, urls: &Urls) -> Option<String> {
    use crate::model::Installer;
    let port = urls.syslog?;
    let host = urls.addr;
    match installer {
        Installer::Kickstart => Some(format!("inst.syslog={host}:{port}")),
        Installer::Preseed => Some(format!("log_host={host} log_port={port}")),
        Installer::Autoinstall => None,
    }
}

#[derive(TemplateSimple)]
#[template(path = "preseed.cfg.stpl")]
struct PreseedTpl<'a> {
    t: &'a Target,
    ip: Option<String>,
    mask: Option<String>,
    gw: String,
    nameservers: String,
    mirror: &'a Mirror,
    user: Option<&'a str>,
    password: &'a str,
    method: &'a str,
    late_command: String,
}

/// A rendered template, ending in a newline (sailfish drops the file's last one).
fn with_newline(r: Result<String, sailfish::RenderError>) -> String {
    let mut s = r.unwrap_or_else(|e| format!("# gopxe: template error: {e}"));
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Renders the preseed of a machine.
pub fn render_preseed(t: &Target, s: &InstallerSettings) -> String {
    let (ip, mask, gw) = match &t.net {
        Net::Static { ip, mask, gw } => (
            Some(ip.to_string()),
            Some(mask.to_string()),
            gw.map(|g| g.to_string()).unwrap_or_default(),
        ),
        Net::Dhcp => (None, None, String::new()),
    };
    let user = s.user.as_deref();
    let (home, owner) = match user {
        Some(u) => (format!("/home/{u}"), u),
        None => ("/root".to_string(), "root"),
    };
    let mut late = String::new();
    if let Some(key) = &s.ssh_key {
        let _ = write!(
            late,
            "mkdir -p /target{home}/.ssh; echo '{key}' >> /target{home}/.ssh/authorized_keys; chmod 700 /target{home}/.ssh; chmod 600 /target{home}/.ssh/authorized_keys; in-target chown -R {owner}:{owner} {home}/.ssh; "
        );
    }
    let _ = write!(
        late,
        "wget -q -O /dev/null --post-data=done '{0}' || in-target wget -q -O /dev/null --post-data=done '{0}' || true",
        t.done_url
    );
    let tpl = PreseedTpl {
        t,
        ip,
        mask,
        gw,
        nameservers: t
            .dns
            .iter()
            .map(Ipv4Addr::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        mirror: &s.debian_mirror,
        user,
        password: s.password_hash.as_deref().unwrap_or("!"),
        method: match t.storage {
            Some(Storage::Lvm) => "lvm",
            Some(Storage::Direct) | None => "regular",
        },
        late_command: late,
    };
    with_newline(tpl.render_once())
}

#[derive(TemplateSimple)]
#[template(path = "user-data.stpl")]
struct UserDataTpl<'a> {
    fqdn: &'a str,
    id: &'a str,
    hostname_q: String,
    username_q: String,
    password_q: String,
    allow_pw: bool,
    keys_q: String,
    match_q: String,
    match_key: &'a str,
    address_q: Option<String>,
    gw_q: Option<String>,
    dns_q: String,
    search_q: String,
    mirror_q: Option<String>,
    layout: &'a str,
    late_q: String,
    /// cloud-init `rsyslog` remote (`@host:port`) and the error command
    /// that logs the failure there, quoted, when the receiver runs.
    syslog_q: Option<(String, String)>,
}

/// The account autoinstall creates when `installer_user` is unset.
pub const AUTOINSTALL_DEFAULT_USER: &str = "ubuntu";

/// Renders the cloud-init `user-data` holding the autoinstall config.
pub fn render_user_data(t: &Target, s: &InstallerSettings) -> String {
    let q = |v: &str| yaml_str(v);
    let list = |items: &[String]| {
        items
            .iter()
            .map(|i| yaml_str(i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (match_key, match_q) = match t.mac {
        Some(m) => ("macaddress", q(&format_mac(&m, ":"))),
        None => ("name", q("en*")),
    };
    let (address_q, gw_q) = match &t.net {
        Net::Static { ip, mask, gw } => (
            Some(q(&format!("{ip}/{}", prefix_len(*mask)))),
            gw.map(|g| q(&g.to_string())),
        ),
        Net::Dhcp => (None, None),
    };
    let dns: Vec<String> = t.dns.iter().map(Ipv4Addr::to_string).collect();
    let search: Vec<String> = if t.domain.is_empty() {
        Vec::new()
    } else {
        vec![t.domain.clone()]
    };
    let late = format!(
        "curl -fsS -X POST '{0}' || wget -q -O /dev/null --post-data=done '{0}' || true",
        t.done_url
    );
    let tpl = UserDataTpl {
        fqdn: &t.fqdn,
        id: &t.id,
        hostname_q: q(&t.hostname),
        username_q: q(s.user.as_deref().unwrap_or(AUTOINSTALL_DEFAULT_USER)),
        password_q: q(s.password_hash.as_deref().unwrap_or("!")),
        allow_pw: s.password_hash.is_some(),
        keys_q: list(s.ssh_key.as_slice()),
        match_q,
        match_key,
        address_q,
        gw_q,
        dns_q: list(&dns),
        search_q: list(&search),
        mirror_q: s.ubuntu_mirror.as_ref().map(|m| q(&m.url())),
        layout: match t.storage {
            Some(Storage::Direct) => "direct",
            Some(Storage::Lvm) | None => "lvm",
        },
        late_q: q(&late),
        syslog_q: t.syslog.as_ref().map(|hp| {
            let (host, port) = hp.rsplit_once(':').unwrap_or((hp, "514"));
            (
                q(&format!("@{hp}")),
                q(&format!(
                    "logger -d -n {host} -P {port} -p user.crit -t gopxe-autoinstall 'autoinstall failed: error-commands ran'"
                )),
            )
        }),
    };
    with_newline(tpl.render_once())
}

/// The cloud-init `meta-data`: instance id (the machine id) and hostname.
pub fn render_meta_data(t: &Target) -> String {
    format!(
        "instance-id: {}\nlocal-hostname: {}\n",
        yaml_str(&t.id),
        yaml_str(&t.hostname)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MachineBody;
    use yaml_rust2::{Yaml, YamlLoader};

    fn urls() -> Urls {
        Urls::new(Ipv4Addr::new(10, 1, 20, 2), 9090)
    }

    fn machine(json: &str) -> Machine {
        let b: MachineBody = serde_json::from_str(json).unwrap();
        Machine::from_body(b, None).unwrap()
    }

    fn static_machine() -> Machine {
        machine(
            r#"{"bootaction": "deb", "hostname": "node7.lab.example", "mac": "52:54:00:12:34:56",
                "ip": "10.1.20.50", "mask": "255.255.255.0", "gw": "10.1.20.1",
                "ns1": "10.1.20.53", "ns2": "9.9.9.9"}"#,
        )
    }

    fn dhcp_machine() -> Machine {
        machine(r#"{"bootaction": "deb", "uuid": "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69"}"#)
    }

    fn full_settings() -> InstallerSettings {
        InstallerSettings {
            debian_mirror: Mirror::parse("https://mirror.lab:8443/debian/").unwrap(),
            ubuntu_mirror: Some(Mirror::parse("http://10.1.20.2:9090/localrepo").unwrap()),
            user: Some("ops".into()),
            password_hash: Some("$6$saltsalt$abcdefghijklmnop./ABC".into()),
            ssh_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@lab".into()),
        }
    }

    /// Every `d-i owner/question type value` line of a preseed, by question.
    fn preseed_value<'a>(p: &'a str, question: &str) -> Option<&'a str> {
        p.lines().find_map(|l| {
            let mut it = l.splitn(4, ' ');
            let (_owner, q, _ty) = (it.next()?, it.next()?, it.next()?);
            (q == question).then(|| it.next().unwrap_or(""))
        })
    }

    fn check_preseed_shape(p: &str) {
        for l in p.lines() {
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = l.splitn(4, ' ').collect();
            assert!(parts.len() >= 3, "not `owner question type [value]`: {l:?}");
            assert!(
                ["d-i", "tasksel", "popularity-contest"].contains(&parts[0]),
                "{l:?}"
            );
            assert!(
                [
                    "string",
                    "boolean",
                    "select",
                    "multiselect",
                    "password",
                    "note"
                ]
                .contains(&parts[2]),
                "{l:?}"
            );
        }
    }

    #[test]
    fn preseed_static_network() {
        let t = Target::new(&static_machine(), None, &urls(), None);
        let p = render_preseed(&t, &InstallerSettings::default());
        check_preseed_shape(&p);
        assert!(p.ends_with("reboot_in_progress note\n"));
        let v = |q| preseed_value(&p, q);
        assert_eq!(v("netcfg/disable_autoconfig"), Some("true"));
        assert_eq!(v("netcfg/get_ipaddress"), Some("10.1.20.50"));
        assert_eq!(v("netcfg/get_netmask"), Some("255.255.255.0"));
        assert_eq!(v("netcfg/get_gateway"), Some("10.1.20.1"));
        assert_eq!(v("netcfg/get_nameservers"), Some("10.1.20.53 9.9.9.9"));
        assert_eq!(v("netcfg/get_hostname"), Some("node7"));
        assert_eq!(v("netcfg/hostname"), Some("node7"));
        assert_eq!(v("netcfg/get_domain"), Some("lab.example"));
        assert_eq!(v("mirror/http/hostname"), Some("deb.debian.org"));
        assert_eq!(v("mirror/http/directory"), Some("/debian"));
        assert_eq!(v("partman-auto/method"), Some("regular"));
        assert_eq!(v("partman-auto/choose_recipe"), Some("atomic"));
        assert_eq!(v("debian-installer/locale"), Some("en_US.UTF-8"));
        assert_eq!(v("keyboard-configuration/xkb-keymap"), Some("us"));
        assert_eq!(v("tasksel/first"), Some("ssh-server"));
        // No account settings: root only, locked.
        assert_eq!(v("passwd/root-login"), Some("true"));
        assert_eq!(v("passwd/make-user"), Some("false"));
        assert_eq!(v("passwd/root-password-crypted"), Some("!"));
        let late = v("preseed/late_command").unwrap();
        let done = "http://10.1.20.2:9090/pxeboot/01-52-54-00-12-34-56/done";
        assert!(
            late.contains(&format!("wget -q -O /dev/null --post-data=done '{done}'")),
            "{late}"
        );
        assert!(late.contains(&format!(
            "in-target wget -q -O /dev/null --post-data=done '{done}'"
        )));
        assert!(!late.contains("authorized_keys"));
    }

    #[test]
    fn preseed_dhcp_and_settings() {
        let t = Target::new(&dhcp_machine(), Some(Storage::Lvm), &urls(), None);
        let p = render_preseed(&t, &full_settings());
        check_preseed_shape(&p);
        let v = |q| preseed_value(&p, q);
        assert_eq!(v("netcfg/disable_autoconfig"), Some("false"));
        assert_eq!(v("netcfg/get_ipaddress"), None);
        assert_eq!(v("netcfg/get_nameservers"), None);
        assert_eq!(v("netcfg/get_hostname"), Some("gopxe-ae3bdcb08c69"));
        assert_eq!(v("mirror/protocol"), Some("https"));
        assert_eq!(v("mirror/https/hostname"), Some("mirror.lab:8443"));
        assert_eq!(v("mirror/https/directory"), Some("/debian"));
        assert_eq!(v("partman-auto/method"), Some("lvm"));
        assert_eq!(v("passwd/root-login"), Some("false"));
        assert_eq!(v("passwd/make-user"), Some("true"));
        assert_eq!(v("passwd/username"), Some("ops"));
        assert_eq!(
            v("passwd/user-password-crypted"),
            Some("$6$saltsalt$abcdefghijklmnop./ABC")
        );
        let late = v("preseed/late_command").unwrap();
        assert!(late.contains(
            "echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@lab' >> /target/home/ops/.ssh/authorized_keys"
        ));
        assert!(late.contains("in-target chown -R ops:ops /home/ops/.ssh"));
        assert!(late.ends_with("/pxeboot/42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69/done' || true"));
    }

    fn parse_yaml(text: &str) -> Yaml {
        let docs = YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(docs.len(), 1, "{text}");
        docs.into_iter().next().unwrap()
    }

    #[test]
    fn user_data_static_parses() {
        let t = Target::new(&static_machine(), None, &urls(), None);
        let text = render_user_data(&t, &full_settings());
        assert!(text.starts_with("#cloud-config\n"), "{text}");
        assert!(text.ends_with("  shutdown: \"reboot\"\n"), "{text}");
        let y = parse_yaml(&text);
        let ai = &y["autoinstall"];
        assert_eq!(ai["version"].as_i64(), Some(1), "{text}");
        assert_eq!(ai["identity"]["hostname"].as_str(), Some("node7"));
        assert_eq!(ai["identity"]["username"].as_str(), Some("ops"));
        assert_eq!(
            ai["identity"]["password"].as_str(),
            Some("$6$saltsalt$abcdefghijklmnop./ABC")
        );
        assert_eq!(ai["ssh"]["allow-pw"].as_bool(), Some(true));
        assert_eq!(
            ai["ssh"]["authorized-keys"][0].as_str(),
            Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@lab")
        );
        let net = &ai["network"];
        assert_eq!(net["version"].as_i64(), Some(2));
        let eth = &net["ethernets"]["gopxe0"];
        assert_eq!(
            eth["match"]["macaddress"].as_str(),
            Some("52:54:00:12:34:56")
        );
        assert_eq!(eth["addresses"][0].as_str(), Some("10.1.20.50/24"));
        assert_eq!(eth["routes"][0]["to"].as_str(), Some("default"));
        assert_eq!(eth["routes"][0]["via"].as_str(), Some("10.1.20.1"));
        assert_eq!(eth["nameservers"]["addresses"][1].as_str(), Some("9.9.9.9"));
        assert_eq!(
            eth["nameservers"]["search"][0].as_str(),
            Some("lab.example")
        );
        assert!(eth["dhcp4"].is_badvalue() || eth["dhcp4"].as_bool() == Some(false));
        assert_eq!(ai["storage"]["layout"]["name"].as_str(), Some("lvm"));
        assert_eq!(
            ai["apt"]["primary"][0]["uri"].as_str(),
            Some("http://10.1.20.2:9090/localrepo")
        );
        let late = ai["late-commands"][0].as_str().unwrap();
        assert_eq!(
            late,
            "curl -fsS -X POST 'http://10.1.20.2:9090/pxeboot/01-52-54-00-12-34-56/done' || wget -q -O /dev/null --post-data=done 'http://10.1.20.2:9090/pxeboot/01-52-54-00-12-34-56/done' || true"
        );
        assert_eq!(ai["shutdown"].as_str(), Some("reboot"));
    }

    #[test]
    fn user_data_dhcp_parses() {
        let mac = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
        let t = Target::new(&dhcp_machine(), Some(Storage::Direct), &urls(), Some(mac));
        let text = render_user_data(&t, &InstallerSettings::default());
        let y = parse_yaml(&text);
        let ai = &y["autoinstall"];
        assert_eq!(
            ai["identity"]["username"].as_str(),
            Some(AUTOINSTALL_DEFAULT_USER)
        );
        assert_eq!(ai["identity"]["password"].as_str(), Some("!"));
        assert_eq!(ai["ssh"]["allow-pw"].as_bool(), Some(false));
        assert_eq!(ai["ssh"]["authorized-keys"].as_vec().map(Vec::len), Some(0));
        let eth = &ai["network"]["ethernets"]["gopxe0"];
        assert_eq!(eth["dhcp4"].as_bool(), Some(true), "{text}");
        assert_eq!(
            eth["match"]["macaddress"].as_str(),
            Some("52:54:00:aa:bb:cc")
        );
        assert!(eth["addresses"].is_badvalue());
        assert!(ai["apt"].is_badvalue());
        assert_eq!(ai["storage"]["layout"]["name"].as_str(), Some("direct"));
        // Without a MAC, netplan matches the Ethernet names.
        let t = Target::new(&dhcp_machine(), None, &urls(), None);
        let y = parse_yaml(&render_user_data(&t, &InstallerSettings::default()));
        assert_eq!(
            y["autoinstall"]["network"]["ethernets"]["gopxe0"]["match"]["name"].as_str(),
            Some("en*")
        );
        let meta = parse_yaml(&render_meta_data(&t));
        assert_eq!(
            meta["instance-id"].as_str(),
            Some("42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69")
        );
        assert_eq!(meta["local-hostname"].as_str(), Some("gopxe-ae3bdcb08c69"));
    }

    /// With the syslog receiver on, the user-data forwards the live
    /// session's log (cloud-init `rsyslog`, UDP) and logs a failure at
    /// `crit` from `error-commands`; off, neither key is there.
    #[test]
    fn user_data_sends_the_log_when_the_receiver_runs() {
        let u = urls().with_syslog(Some(514));
        let t = Target::new(&static_machine(), None, &u, None);
        let text = render_user_data(&t, &InstallerSettings::default());
        let y = parse_yaml(&text);
        assert_eq!(
            y["rsyslog"]["remotes"]["gopxe"].as_str(),
            Some("@10.1.20.2:514"),
            "{text}"
        );
        let cmd = y["autoinstall"]["error-commands"][0].as_str().unwrap();
        assert_eq!(
            cmd,
            "logger -d -n 10.1.20.2 -P 514 -p user.crit -t gopxe-autoinstall 'autoinstall failed: error-commands ran'"
        );
        assert_eq!(y["autoinstall"]["shutdown"].as_str(), Some("reboot"));
        // The failure line meets the failure rule.
        let line = b"<10>1 - node7 gopxe-autoinstall - - - autoinstall failed: error-commands ran";
        assert!(gopxe_proto::syslog::is_install_failure(
            &gopxe_proto::syslog::parse(line)
        ));
        let t = Target::new(&static_machine(), None, &urls(), None);
        let y = parse_yaml(&render_user_data(&t, &InstallerSettings::default()));
        assert!(y["rsyslog"].is_badvalue() && y["autoinstall"]["error-commands"].is_badvalue());
        assert_eq!(log_args(crate::model::Installer::Kickstart, &urls()), None);
        assert_eq!(
            log_args(crate::model::Installer::Preseed, &u).as_deref(),
            Some("log_host=10.1.20.2 log_port=514")
        );
    }

    #[test]
    fn hostile_values_are_refused_or_quoted() {
        // A record can only get a hostile hostname past the API by being
        // forged; it is checked again and replaced.
        let mut m = dhcp_machine();
        m.hostname = Some("x\nautoinstall: {evil: 1}".into());
        let t = Target::new(&m, None, &urls(), None);
        assert_eq!(t.hostname, "gopxe-ae3bdcb08c69");
        // Quoting keeps any value one scalar.
        for v in ["a\"b", "x\ny: 1", "'", "#c", "a: b", "\u{7}"] {
            let doc = parse_yaml(&format!("k: {}\n", yaml_str(v)));
            assert_eq!(doc["k"].as_str(), Some(v), "{v:?}");
        }
        for bad in ["Root", "root", "a b", "a\nb", "1abc", "", &"a".repeat(33)] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        assert!(check_username("ops-1").is_ok());
        for bad in [
            "secret",
            "$6$salt",
            "$6$salt$ha sh",
            "$6$salt$hash\n",
            "$6$salt$ha'sh",
            "$6$salt$ha\"sh",
        ] {
            assert!(check_password_hash(bad).is_err(), "{bad:?}");
        }
        assert!(
            check_password_hash(
                "$y$j9T$Fh0aFyZ/6Fu2Q3eXrEk9f/$4tDiY1KiDVDi.6p0tjr0Zr7F7AXQJuVx2BPXUZJ1s.7"
            )
            .is_ok()
        );
        assert!(check_password_hash("$6$rounds=5000$salt$hash").is_ok());
        for bad in [
            "ssh-ed25519",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI x'; rm -rf /",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI a\nb",
            "ssh-ed25519 AAAAC3Nz'aC1lZDI1NTE5AAAAI",
            "ssh-ed25519  AAAAC3NzaC1lZDI1NTE5AAAAI",
        ] {
            assert!(check_ssh_key(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "ftp://deb.debian.org/debian",
            "http://deb.debian.org/debian?x=1",
            "http://deb debian.org/",
            "http://deb.debian.org/deb ian",
            "http://deb.debian.org/debian\n",
            "http://deb.debian.org:0/debian",
            "http://deb.debian.org:http/debian",
            "http://-bad.example/",
            "http://a.example//x",
        ] {
            assert!(Mirror::parse(bad).is_err(), "{bad:?}");
        }
        let m = Mirror::parse("http://Deb.Debian.Org").unwrap();
        assert_eq!((m.host.as_str(), m.dir.as_str()), ("deb.debian.org", "/"));
        assert_eq!(m.url(), "http://deb.debian.org/");
    }

    #[test]
    fn kernel_argument_presets() {
        let u = urls();
        let t = Target::new(&static_machine(), None, &u, None);
        assert_eq!(
            preseed_args(&t, &u, &[]),
            "auto=true priority=critical url=http://10.1.20.2:9090/preseed/01-52-54-00-12-34-56 interface=auto hostname=node7 domain=lab.example netcfg/disable_autoconfig=true netcfg/get_ipaddress=10.1.20.50 netcfg/get_netmask=255.255.255.0 netcfg/get_gateway=10.1.20.1 netcfg/confirm_static=true netcfg/get_nameservers=10.1.20.53"
        );
        assert_eq!(
            autoinstall_args(&t, &u, false),
            "ip=10.1.20.50::10.1.20.1:255.255.255.0:node7::none:10.1.20.53 autoinstall ds=nocloud-net;s=http://10.1.20.2:9090/cloud-init/01-52-54-00-12-34-56/"
        );
        let t = Target::new(&dhcp_machine(), None, &u, None);
        let dns = [Ipv4Addr::new(10, 0, 0, 53)];
        assert_eq!(
            preseed_args(&t, &u, &dns),
            "auto=true priority=critical url=http://10.1.20.2:9090/preseed/42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69 interface=auto hostname=gopxe-ae3bdcb08c69 netcfg/get_nameservers=10.0.0.53"
        );
        assert!(!preseed_args(&t, &u, &[]).contains("nameservers"));
        assert_eq!(
            autoinstall_args(&t, &u, true),
            "autoinstall ds=nocloud-net;s=http://10.1.20.2:9090/cloud-init/42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69/"
        );
        assert!(autoinstall_args(&t, &u, false).starts_with("ip=dhcp autoinstall "));
    }
}
