//! The table of configuration keys: one declaration per key.
//!
//! Layer: config (pure). Each key is declared once in the
//! [`config_table!`] invocation below with its TOML name (the field), its
//! flag, its value type, the placeholder and default shown in help, a
//! one-line help text and (optionally) a Markdown meaning for the docs.
//! From that declaration come:
//!
//! - [`RawConfig`], the serde shape of the file (unknown keys refused,
//!   unset keys not written), and [`RawConfig::set_flag`], the flag side;
//! - [`KEYS`], which renders the `--help` option list ([`options_help`])
//!   and the settings table of `docs/configuration.md` ([`markdown_table`]);
//! - [`Picked`], each key's value with where it came from (flag over file),
//!   which [`Config::from_raw`](super::Config::from_raw) takes apart field
//!   by field, so a key added here and not checked there does not compile.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The kind of a key's value, from its Rust type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A TOML string; the flag takes the text.
    Str,
    /// A TOML integer; the flag takes a whole number.
    Num,
    /// A TOML array of strings; the flag is repeatable and adds one.
    List,
}

/// The default shown in help and docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// No default (the setting is off or absent).
    None,
    /// A literal value (`code` in the docs).
    Value(&'static str),
    /// A description of what happens when unset.
    Prose(&'static str),
}

/// One key of the table.
#[derive(Clone, Copy, Debug)]
pub struct KeyInfo {
    /// The TOML key (and [`RawConfig`] field).
    pub key: &'static str,
    /// The flag, without `--`.
    pub flag: &'static str,
    pub kind: Kind,
    /// The value placeholder in help (`DIR`, `off|proxy|authoritative`).
    pub value: &'static str,
    pub default: Shown,
    /// One line for `--help`.
    pub help: &'static str,
    /// The meaning column of the docs table (Markdown).
    pub doc: &'static str,
}

/// A value type a key can have: how a flag sets it.
pub trait FlagValue: Sized {
    const KIND: Kind;
    /// Sets (or, for lists, adds to) `slot` from the text given to `--flag`.
    fn set_from_flag(slot: &mut Option<Self>, flag: &str, text: String) -> Result<(), String>;
}

impl FlagValue for String {
    const KIND: Kind = Kind::Str;
    fn set_from_flag(slot: &mut Option<Self>, _flag: &str, text: String) -> Result<(), String> {
        *slot = Some(text);
        Ok(())
    }
}

impl FlagValue for u64 {
    const KIND: Kind = Kind::Num;
    fn set_from_flag(slot: &mut Option<Self>, flag: &str, text: String) -> Result<(), String> {
        let n = text
            .parse()
            .map_err(|_| format!("--{flag}: `{}` is not a whole number", text.escape_debug()))?;
        *slot = Some(n);
        Ok(())
    }
}

impl FlagValue for Vec<String> {
    const KIND: Kind = Kind::List;
    fn set_from_flag(slot: &mut Option<Self>, _flag: &str, text: String) -> Result<(), String> {
        slot.get_or_insert_with(Vec::new).push(text);
        Ok(())
    }
}

/// Where a picked value came from, as errors name it: the flag, or the
/// file and key (the flag too when there is no file name).
fn origin(key: &str, flag: &str, from_flag: bool, file_name: Option<&Path>) -> String {
    match (from_flag, file_name) {
        (true, _) | (false, None) => format!("--{flag}"),
        (false, Some(f)) => format!("{}: key `{key}`", f.display()),
    }
}

/// The flag's value when given, else the file's, with its origin.
fn pick<T: Clone>(
    key: &str,
    flag: &str,
    from_flags: &Option<T>,
    from_file: &Option<T>,
    file_name: Option<&Path>,
) -> Option<(T, String)> {
    match (from_flags, from_file) {
        (Some(v), _) => Some((v.clone(), origin(key, flag, true, file_name))),
        (None, Some(v)) => Some((v.clone(), origin(key, flag, false, file_name))),
        (None, None) => None,
    }
}

macro_rules! shown {
    (none) => {
        Shown::None
    };
    (value $v:literal) => {
        Shown::Value($v)
    };
    (prose $v:literal) => {
        Shown::Prose($v)
    };
}

/// The first of its literals: the doc text when given, else the help.
macro_rules! first {
    ($a:literal $(, $rest:literal)*) => {
        $a
    };
}

/// Declares the keys; see the module doc for what it generates.
macro_rules! config_table {
    ($(
        $field:ident: $ty:ty {
            flag: $flag:literal,
            value: $value:literal,
            default: $dkind:ident $($dval:literal)?,
            help: $help:literal
            $(, doc: $doc:literal)?
            $(,)?
        }
    ),* $(,)?) => {
        /// The config file's shape (and the flags' values), before checking.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawConfig {
            $(
                #[doc = $help]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        /// Every key, in the order of help, docs and the written file.
        pub const KEYS: &[KeyInfo] = &[$(
            KeyInfo {
                key: stringify!($field),
                flag: $flag,
                kind: <$ty as FlagValue>::KIND,
                value: $value,
                default: shown!($dkind $($dval)?),
                help: $help,
                doc: first!($($doc,)? $help),
            },
        )*];

        impl RawConfig {
            /// Sets the key of `--flag` from its text; an error names the
            /// flag (an unknown one, or a number that is not one).
            pub fn set_flag(&mut self, flag: &str, text: String) -> Result<(), String> {
                match flag {
                    $($flag => <$ty as FlagValue>::set_from_flag(&mut self.$field, flag, text),)*
                    _ => Err(format!("unknown option --{flag}; try --help")),
                }
            }
        }

        /// Each key's value, the flag's over the file's, with where it
        /// came from (`--flag` or `file: key `k``) for error messages.
        #[derive(Clone, Debug, Default)]
        pub struct Picked {
            $(pub $field: Option<($ty, String)>,)*
        }

        impl Picked {
            pub fn new(file: &RawConfig, file_name: Option<&Path>, flags: &RawConfig) -> Picked {
                Picked {
                    $($field: pick(
                        stringify!($field),
                        $flag,
                        &flags.$field,
                        &file.$field,
                        file_name,
                    ),)*
                }
            }
        }
    };
}

config_table! {
    data_dir: String {
        flag: "data-dir", value: "DIR", default: value "data",
        help: "where records are stored",
        doc: "the store",
    },
    images: String {
        flag: "images", value: "DIR", default: value "images",
        help: "boot files served over TFTP and HTTP",
        doc: "boot files served over TFTP and at `/images/`",
    },
    rpi_firmware: String {
        flag: "rpi-firmware", value: "DIR", default: value "rpi",
        help: "Raspberry Pi firmware shared by every Pi, inside the images dir",
        doc: "the Raspberry Pi firmware every Pi gets (`start4.elf`, device trees, `overlays/`), a directory of the images tree (see [Raspberry Pi](raspberry-pi.md))",
    },
    localrepo: String {
        flag: "localrepo", value: "DIR", default: none,
        help: "install tree served at /localrepo/",
        doc: "install tree served at `/localrepo/`",
    },
    http_listen: String {
        flag: "http-listen", value: "ADDR", default: value "0.0.0.0:9090",
        help: "API and HTTP boot address",
    },
    advertise_addr: String {
        flag: "advertise-addr", value: "IP", default: prose "the served interface's address",
        help: "the address written into boot URLs",
    },
    api_token: String {
        flag: "api-token", value: "TOKEN", default: prose "none: writes from loopback only",
        help: "bearer token for API writes",
    },
    server_names: Vec<String> {
        flag: "server-name", value: "NAME", default: none,
        help: "a DNS name the API answers to besides IP literals, localhost and the host name",
        doc: "DNS names the API answers to besides IP literals, `localhost` and the host name",
    },
    template_fuel: u64 {
        flag: "template-fuel", value: "N", default: value "1000000",
        help: "admin template work limit (minijinja fuel)",
        doc: "most steps of one admin-template render (minijinja fuel)",
    },
    template_max_bytes: u64 {
        flag: "template-max-bytes", value: "N", default: value "1048576",
        help: "admin template output limit",
        doc: "most bytes one admin template renders",
    },
    interface: String {
        flag: "interface", value: "IF", default: none,
        help: "network interface to serve",
    },
    unknown_boot: String {
        flag: "unknown-boot", value: "local|ACTION", default: value "local",
        help: "what machines without a record boot: local disk or a boot action",
        doc: "what machines without a record boot: `local` or a boot action",
    },
    loader: Vec<String> {
        flag: "loader", value: "CLASS=FAMILY", default: prose "bios=pxelinux, efi-x64=shim-grub, efi-arm64=grub, http-x64=ipxe, http-arm64=ipxe",
        help: "the loader family a firmware class boots when its boot action says auto",
        doc: "the loader family a firmware class boots when its boot action says `auto` (see [Boot loaders](boot-loaders.md))",
    },
    loader_file: Vec<String> {
        flag: "loader-file", value: "CLASS.FAMILY=PATH", default: prose "the names in docs/boot-loaders.md",
        help: "another file name in the images tree for a class's loader",
        doc: "another file name in the images tree for a class's loader, e.g. `efi-x64.grub=boot/grubx64.efi`",
    },
    repo_url: String {
        flag: "repo-url", value: "URL", default: prose "per os",
        help: "kickstart repository ({os}, {version}, {server})",
        doc: "kickstart repository (`{os}`, `{version}`, `{server}`)",
    },
    tftp_listen: String {
        flag: "tftp-listen", value: "ADDR|off", default: prose "0.0.0.0:69 when it can be had",
        help: "TFTP address, or off",
        doc: "TFTP address, or `off`",
    },
    tftp_max_transfers: u64 {
        flag: "tftp-max-transfers", value: "N", default: value "64",
        help: "concurrent TFTP transfers",
    },
    tftp_max_per_client: u64 {
        flag: "tftp-max-per-client", value: "N", default: value "8",
        help: "concurrent TFTP transfers from one client IP address",
    },
    discovered_max: u64 {
        flag: "discovered-max", value: "N", default: value "1000",
        help: "unknown netboot clients kept in the discovery inbox",
        doc: "unknown netboot clients kept in the discovery inbox (`GET /discovered`); past it the one seen longest ago is dropped",
    },
    syslog_listen: String {
        flag: "syslog-listen", value: "ADDR|off", default: prose "0.0.0.0:514 when it can be had",
        help: "where installers' syslog lines are received (UDP and TCP), or off",
        doc: "where installers' syslog lines are received (UDP and TCP), or `off` (see [Installer logs](installers.md#installer-logs))",
    },
    install_timeout: String {
        flag: "install-timeout", value: "DURATION", default: value "2h",
        help: "an install still running after this is failed (30m, 2h; 0: never)",
        doc: "an install still `installing` after this turns `failed` (`30m`, `2h`; `0`: never)",
    },
    dhcp_mode: String {
        flag: "dhcp-mode", value: "off|proxy|authoritative", default: value "off",
        help: "DHCP service: none, boot options beside the lab's server, or addresses too",
        doc: "`off` (the lab's DHCP server hands out the boot file), `proxy` (boot options beside it) or `authoritative` (addresses too)",
    },
    dhcp_range: Vec<String> {
        flag: "dhcp-range", value: "FIRST,LAST[,MASK[,LEASE]]", default: none,
        help: "an address pool of authoritative DHCP (LEASE like 12h)",
        doc: "an address pool of authoritative DHCP (`LEASE` like `12h`)",
    },
    dhcp_router: String {
        flag: "dhcp-router", value: "IP", default: none,
        help: "option 3 for pool addresses",
        doc: "option 3 for pool addresses (the router only on its own subnet; relayed subnets get the relay agent)",
    },
    dhcp_dns: Vec<String> {
        flag: "dhcp-dns", value: "IP", default: none,
        help: "option 6 for pool addresses",
    },
    dhcp_listen: String {
        flag: "dhcp-listen", value: "ADDR", default: value "0.0.0.0:67",
        help: "DHCP address",
        doc: "DHCP address (another port for relay tests)",
    },
    dhcp_relay_port: u64 {
        flag: "dhcp-relay-port", value: "N", default: value "67",
        help: "UDP port of relay agents",
    },
    max_body_bytes: u64 {
        flag: "max-body-bytes", value: "N", default: value "65536",
        help: "largest API request body",
    },
    max_connections: u64 {
        flag: "max-connections", value: "N", default: value "4096",
        help: "open HTTP connections",
    },
    webhook: Vec<String> {
        flag: "webhook", value: "URL", default: none,
        help: "POST machine changes as JSON here (http:// only)",
        doc: "`http://` URLs told about every machine change (see [Webhooks](webhooks-and-metrics.md#webhooks))",
    },
    debian_mirror: String {
        flag: "debian-mirror", value: "URL", default: value "http://deb.debian.org/debian",
        help: "preseed mirror",
        doc: "the preseed's mirror (`http(s)://host[:port]/dir`)",
    },
    ubuntu_mirror: String {
        flag: "ubuntu-mirror", value: "URL", default: prose "the installer's own",
        help: "autoinstall's primary archive",
    },
    installer_user: String {
        flag: "installer-user", value: "NAME", default: prose "root / ubuntu",
        help: "account preseed/autoinstall create",
        doc: "account preseed/autoinstall create (preseed: root only; autoinstall: `ubuntu`)",
    },
    installer_password_hash: String {
        flag: "installer-password-hash", value: "HASH", default: prose "none: locked",
        help: "its crypt(3) hash",
        doc: "its crypt(3) hash, e.g. from `mkpasswd -m sha-512`",
    },
    installer_ssh_key: String {
        flag: "installer-ssh-key", value: "KEY", default: none,
        help: "one OpenSSH public key for it",
    },
}

/// The key of `--flag`, if it is one.
pub fn by_flag(flag: &str) -> Option<&'static KeyInfo> {
    KEYS.iter().find(|k| k.flag == flag)
}

/// Where help text starts on an option line.
const HELP_COLUMN: usize = 27;
/// The width option lines wrap at.
const HELP_WIDTH: usize = 79;

/// Appends `words` after `line`, wrapping at [`HELP_WIDTH`] onto lines
/// indented to [`HELP_COLUMN`].
fn wrap_into(out: &mut String, mut line: String, words: &str) {
    for word in words.split_whitespace() {
        let at_start = line.chars().all(|c| c == ' ');
        let len = line.chars().count();
        if !at_start && len + 1 + word.chars().count() > HELP_WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(HELP_COLUMN);
        } else if !at_start && !line.ends_with(' ') {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// One `--help` line for an option that is not a key (`--config FILE`).
pub fn option_line(out: &mut String, option: &str, help: &str) {
    let mut line = format!("  {option}");
    let len = line.chars().count();
    if len + 2 <= HELP_COLUMN {
        line.push_str(&" ".repeat(HELP_COLUMN - len));
    } else {
        line.push_str("  ");
    }
    wrap_into(out, line, help);
}

/// The option list of `gopxe --help`: every key's flag, value, help and
/// default, one option per line (wrapped when long).
pub fn options_help() -> String {
    let mut out = String::new();
    for k in KEYS {
        let mut help = k.help.to_string();
        if k.kind == Kind::List {
            help.push_str("; repeatable");
        }
        match k.default {
            Shown::None => {}
            Shown::Value(v) | Shown::Prose(v) => {
                help.push_str(&format!(" [{v}]"));
            }
        }
        option_line(&mut out, &format!("--{} {}", k.flag, k.value), &help);
    }
    out
}

/// The settings table of `docs/configuration.md`, in Markdown.
pub fn markdown_table() -> String {
    let mut out = String::from("| key | flag | default | meaning |\n|---|---|---|---|\n");
    for k in KEYS {
        let default = match k.default {
            Shown::None => "—".to_string(),
            Shown::Value(v) => format!("`{v}`"),
            Shown::Prose(v) => v.to_string(),
        };
        let repeat = if k.kind == Kind::List {
            ", repeatable"
        } else {
            ""
        };
        out.push_str(&format!(
            "| `{}` | `--{} {}`{repeat} | {default} | {} |\n",
            k.key,
            k.flag,
            k.value.replace('|', "\\|"),
            k.doc.replace('|', "\\|"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value of the key's kind that its flag accepts.
    fn sample(k: &KeyInfo) -> String {
        match k.kind {
            Kind::Num => "7".into(),
            Kind::Str | Kind::List => format!("{} \"q\" \\ \u{1}", k.key),
        }
    }

    #[test]
    fn keys_and_flags_are_unique_and_named_alike() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(
                KEYS.iter()
                    .skip(i + 1)
                    .all(|o| o.key != k.key && o.flag != k.flag),
                "{} declared twice",
                k.key
            );
            // The flag is the key with `-` for `_` (lists may be plural).
            let flag_key = k.flag.replace('-', "_");
            assert!(
                flag_key == k.key || (k.kind == Kind::List && format!("{flag_key}s") == k.key),
                "{} has flag --{}",
                k.key,
                k.flag
            );
            assert!(!k.help.contains('\n') && !k.doc.contains('\n'), "{}", k.key);
            assert_eq!(by_flag(k.flag).map(|b| b.key), Some(k.key));
        }
    }

    #[test]
    fn every_key_round_trips_through_its_flag_and_the_file() {
        let mut raw = RawConfig::default();
        for k in KEYS {
            raw.set_flag(k.flag, sample(k)).unwrap();
            if k.kind == Kind::List {
                raw.set_flag(k.flag, "second".into()).unwrap();
            }
        }
        let text = basic_toml::to_string(&raw).unwrap();
        for k in KEYS {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{} = ", k.key))),
                "{} not written:\n{text}",
                k.key
            );
        }
        let back: RawConfig = basic_toml::from_str(&text).unwrap();
        assert_eq!(back, raw, "{text}");
        // Every key is picked, from the flags over the file.
        let picked = Picked::new(&RawConfig::default(), Some(Path::new("g.toml")), &raw);
        let from_file = Picked::new(&raw, Some(Path::new("g.toml")), &RawConfig::default());
        let shown = format!("{picked:?}");
        let shown_file = format!("{from_file:?}");
        for k in KEYS {
            assert!(shown.contains(&format!("\"--{}\"", k.flag)), "{}", k.key);
            assert!(
                shown_file.contains(&format!("\"g.toml: key `{}`\"", k.key)),
                "{}",
                k.key
            );
        }
    }

    #[test]
    fn unset_keys_are_not_written() {
        assert_eq!(basic_toml::to_string(&RawConfig::default()).unwrap(), "");
        let raw = RawConfig {
            dhcp_mode: Some("proxy".into()),
            max_connections: Some(3),
            ..RawConfig::default()
        };
        assert_eq!(
            basic_toml::to_string(&raw).unwrap(),
            "dhcp_mode = \"proxy\"\nmax_connections = 3\n"
        );
    }

    #[test]
    fn flags_refuse_unknown_names_and_bad_numbers() {
        let mut raw = RawConfig::default();
        assert_eq!(
            raw.set_flag("nope", "x".into()).unwrap_err(),
            "unknown option --nope; try --help"
        );
        let e = raw.set_flag("max-connections", "x".into()).unwrap_err();
        assert!(
            e.contains("--max-connections") && e.contains("whole number"),
            "{e}"
        );
        assert_eq!(raw, RawConfig::default());
    }

    #[test]
    fn help_lists_every_flag_within_the_width() {
        let help = options_help();
        for k in KEYS {
            assert!(
                help.lines()
                    .any(|l| l.starts_with(&format!("  --{} {}", k.flag, k.value))),
                "--{} missing:\n{help}",
                k.flag
            );
        }
        for l in help.lines() {
            assert!(l.chars().count() <= HELP_WIDTH, "too wide: {l}");
        }
    }

    /// The table in docs/configuration.md is the one [`markdown_table`]
    /// renders: the rows from its `| key |` header to the first line that
    /// is not a table row.
    #[test]
    fn docs_table_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let docs = std::fs::read_to_string(path).unwrap();
        let found: String = docs
            .lines()
            .skip_while(|l| !l.starts_with("| key |"))
            .take_while(|l| l.starts_with('|'))
            .map(|l| format!("{l}\n"))
            .collect();
        let expected = markdown_table();
        assert!(
            found == expected,
            "the key table of docs/configuration.md is not the generated one; \
             replace it with:\n\n{expected}"
        );
    }
}
