//! GRUB configs, rendered per machine like the pxelinux ones.
//!
//! Layer: boot logic (pure). GRUB's network image reads its config under
//! its prefix on the server it came from. Debian's signed
//! `grubnetx64.efi` / `grubnetaa64.efi` (prefix `/grub`) source
//! `grub/<platform>/grub.cfg` when it exists, else `grub/grub.cfg`; a GRUB
//! whose prefix is a network path and that was given no config file
//! searches `grub.cfg-01-<mac>`, `grub.cfg-<uuid>`, `grub.cfg-<HEX IP>`
//! (shortened one digit at a time) and then `grub.cfg` (GRUB manual,
//! "Network"; `grub_net_search_config_file`). gopxe answers each of these
//! names under any folder called `grub`, so every prefix works:
//! - `grub.cfg` is a dispatcher: it takes the MAC GRUB booted from
//!   (`$net_default_mac`) and reads `grub.cfg-01-<mac>`; when gopxe has no
//!   machine with it (GRUB prints "file not found" and goes on: `[ -e ]`
//!   is always false on `(tftp)`, which lists no directory) it boots the
//!   unknown-machine default. It never guesses a machine from the
//!   client's IP address: a stale address would boot another machine's
//!   installer.
//! - `grub.cfg-<name>` is a machine's config, the names parsed as for
//!   `pxelinux.cfg/` ([`ConfigName`]): the installer (`linux` + `initrd`)
//!   while the machine is `install` or `installing`, `exit` (back to the
//!   firmware, which tries its next boot entry: the disk) once it is
//!   `installed`. An unknown name is "not found", as for pxelinux.
//!
//! Kernel and initrd are named from the root GRUB booted from: `/path`
//! over TFTP, `/images/path` when the config was fetched over HTTP.
//! Every word GRUB reads is single-quoted when it holds anything but
//! `[A-Za-z0-9._/:=,@+%-]`: in GRUB script `;`, `&`, `$`, `{`, quotes and
//! blanks are syntax, and a kickstart URL or `ds=nocloud-net;s=...` must
//! reach the kernel as one argument.

use super::{ConfigName, DefaultBoot, MachineArgs, Urls, find_machine, machine_args};
use crate::model::{BootAction, Machine, MachineState, Records};
use std::fmt::Write as _;

/// A GRUB config name, parsed from a path in the images tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrubName {
    /// `.../grub/grub.cfg`: the dispatcher.
    Dispatcher,
    /// `.../grub/grub.cfg-<name>`.
    Config(ConfigName),
}

impl GrubName {
    /// Parses `[dir/]grub/grub.cfg[-name]` (no leading `/`).
    pub fn parse(path: &str) -> Option<GrubName> {
        let (dir, file) = path.rsplit_once('/')?;
        if dir != "grub" && !dir.ends_with("/grub") {
            return None;
        }
        match file.strip_prefix("grub.cfg")? {
            "" => Some(GrubName::Dispatcher),
            rest => match ConfigName::parse(rest.strip_prefix('-')?)? {
                ConfigName::Default => None,
                name => Some(GrubName::Config(name)),
            },
        }
    }
}

/// Where the config was fetched from, and so where kernel paths point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// TFTP: the images tree is the server's root.
    Tftp,
    /// HTTP: the images tree is under `/images/`.
    Http,
}

impl Over {
    fn base(self) -> &'static str {
        match self {
            Over::Tftp => "/",
            Over::Http => "/images/",
        }
    }
}

/// One word of GRUB script, quoted when it needs to be.
fn word(out: &mut String, w: &str) {
    let plain = !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/:=,@+%-".contains(&b));
    if plain {
        out.push_str(w);
    } else {
        out.push('\'');
        // Inside single quotes nothing is special but the quote itself.
        out.push_str(&w.replace('\'', "'\\''"));
        out.push('\'');
    }
}

/// The config that hands the machine back to the firmware.
fn local(why: &str) -> String {
    format!("# gopxe: {why}: back to the firmware's next boot entry\nexit\n")
}

/// A boot action's menu entry: kernel, its arguments, initrd.
fn action(a: &BootAction, extra: Option<&MachineArgs>, over: Over) -> String {
    let mut s = String::from("set timeout=0\nmenuentry ");
    word(&mut s, &format!("gopxe: {}", a.menu));
    s.push_str(" {\n\techo ");
    word(&mut s, &format!("gopxe: loading {}", a.kernel));
    s.push_str("\n\tlinux ");
    word(&mut s, &format!("{}{}", over.base(), a.kernel));
    for arg in super::command_line(a, None, extra).split(' ') {
        if !arg.is_empty() {
            s.push(' ');
            word(&mut s, arg);
        }
    }
    if let Some(i) = &a.initrd {
        s.push_str("\n\tinitrd ");
        word(&mut s, &format!("{}{i}", over.base()));
    }
    s.push_str("\n}\n");
    s
}

/// A machine's GRUB config: its installer, or local boot once installed.
pub fn machine(store: &Records, urls: &Urls, m: &Machine, over: Over) -> String {
    if m.state == MachineState::Installed {
        return local(&format!("machine {} is installed", m.id));
    }
    match store.bootactions.get(&m.bootaction) {
        Some(a) => action(a, Some(&machine_args(urls, a, m)), over),
        None => local(&format!(
            "machine {}: no boot action `{}`",
            m.id, m.bootaction
        )),
    }
}

/// What GRUB boots on a machine gopxe does not know.
pub fn default(store: &Records, default: &DefaultBoot, over: Over) -> String {
    match default {
        DefaultBoot::Action(name) => match store.bootactions.get(name) {
            Some(a) => action(a, None, over),
            None => local(&format!("no boot action `{name}` for unknown machines")),
        },
        DefaultBoot::Local => local("unknown machine"),
    }
}

/// `grub.cfg`: the machine's own config by GRUB's MAC, else the default.
pub fn dispatcher(store: &Records, default_boot: &DefaultBoot, over: Over) -> String {
    let mut s = String::from(
        "# gopxe: this machine's config by the MAC GRUB booted from, else the default\n\
         if regexp --set=1:m1 --set=2:m2 --set=3:m3 --set=4:m4 --set=5:m5 --set=6:m6 \
         '^([0-9a-f][0-9a-f]):([0-9a-f][0-9a-f]):([0-9a-f][0-9a-f]):([0-9a-f][0-9a-f]):([0-9a-f][0-9a-f]):([0-9a-f][0-9a-f])$' \
         \"$net_default_mac\"; then\n\
         \tif configfile \"$prefix/grub.cfg-01-$m1-$m2-$m3-$m4-$m5-$m6\"; then\n\
         \t\texit\n\
         \tfi\n\
         fi\n",
    );
    let _ = write!(s, "{}", default(store, default_boot, over));
    s
}

/// The text of a GRUB config path, or `None` when it is not one or names
/// no machine (GRUB then tries its next name).
pub fn config_for(
    store: &Records,
    urls: &Urls,
    default_boot: &DefaultBoot,
    path: &str,
    over: Over,
) -> Option<(String, Option<crate::model::MachineId>)> {
    match GrubName::parse(path)? {
        GrubName::Dispatcher => Some((dispatcher(store, default_boot, over), None)),
        GrubName::Config(name) => {
            let m = find_machine(store, &name)?;
            Some((machine(store, urls, m, over), Some(m.id)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BootActionBody, MachineBody};
    use std::net::Ipv4Addr;

    fn records(installer: &str) -> Records {
        let mut store = Records::default();
        let body: BootActionBody = serde_json::from_str(&format!(
            r#"{{"kernel": "debian12/linux", "initrd": "debian12/initrd.gz",
                "menu": "Debian 12", "installer": "{installer}", "append": "console=ttyS0,115200n8"}}"#
        ))
        .unwrap();
        let a = BootAction::from_body("deb", body).unwrap();
        store.bootactions.insert(a.name.clone(), a);
        let mb: MachineBody = serde_json::from_str(
            r#"{"bootaction": "deb", "hostname": "node1.lab", "mac": "52:54:00:aa:bb:01",
                "ip": "10.0.0.50", "mask": "255.255.255.0", "gw": "10.0.0.1"}"#,
        )
        .unwrap();
        let m = Machine::from_body(mb, None).unwrap();
        store.machines.insert(m.id, m);
        store
    }

    fn urls() -> Urls {
        Urls::new(Ipv4Addr::new(10, 0, 0, 1), 9090)
    }

    #[test]
    fn every_name_grub_asks_for() {
        use GrubName::{Config, Dispatcher};
        for (path, want) in [
            ("grub/grub.cfg", Some(Dispatcher)),
            ("debian-installer/amd64/grub/grub.cfg", Some(Dispatcher)),
            (
                "grub/grub.cfg-01-52-54-00-aa-bb-01",
                Some(Config(ConfigName::Mac([0x52, 0x54, 0, 0xaa, 0xbb, 1]))),
            ),
            (
                "boot/grub/grub.cfg-8d7c6b5a-4e3f-4a2b-9c1d-0e8f7a6b5c4d",
                ConfigName::parse("8d7c6b5a-4e3f-4a2b-9c1d-0e8f7a6b5c4d").map(Config),
            ),
            (
                "grub/grub.cfg-0A000032",
                Some(Config(ConfigName::HexIp("0A000032".into()))),
            ),
            (
                "grub/grub.cfg-0A00003",
                Some(Config(ConfigName::HexIp("0A00003".into()))),
            ),
            ("grub/grub.cfg-default", None),
            ("grub/grub.cfg-", None),
            ("grub/grub.cfgx", None),
            ("grub/x86_64-efi/grub.cfg", None),
            ("grub.cfg", None),
            ("mygrub/grub.cfg", None),
            ("grub/grub.cfg-01-52-54-00-aa-bb", None),
            ("grub/grub.cfg-../../etc", None),
        ] {
            assert_eq!(GrubName::parse(path), want, "{path}");
        }
    }

    #[test]
    fn a_machine_boots_its_installer_until_installed_then_exits() {
        let mut store = records("preseed");
        let u = urls();
        let (text, id) = config_for(
            &store,
            &u,
            &DefaultBoot::Local,
            "grub/grub.cfg-01-52-54-00-aa-bb-01",
            Over::Tftp,
        )
        .unwrap();
        assert_eq!(id, Some("52:54:00:aa:bb:01".parse().unwrap()));
        assert!(text.starts_with("set timeout=0\nmenuentry 'gopxe: Debian 12' {\n"));
        assert!(
            text.contains(
                "\tlinux /debian12/linux auto=true priority=critical url=http://10.0.0.1:9090/preseed/01-52-54-00-aa-bb-01 "
            ),
            "{text}"
        );
        assert!(text.contains(" console=ttyS0,115200n8\n\tinitrd /debian12/initrd.gz\n}\n"));
        assert!(!text.contains("initrd="), "GRUB needs no initrd= argument");
        // The same machine by its static address, over HTTP.
        let (http, _) = config_for(
            &store,
            &u,
            &DefaultBoot::Local,
            "images-sub/grub/grub.cfg-0A000032",
            Over::Http,
        )
        .unwrap();
        assert!(http.contains("\tlinux /images/debian12/linux "), "{http}");
        assert!(http.contains("\tinitrd /images/debian12/initrd.gz\n"));
        // Installed: back to the firmware; reinstall brings the installer back.
        let id: crate::model::MachineId = "52:54:00:aa:bb:01".parse().unwrap();
        store.machines.get_mut(&id).unwrap().state = MachineState::Installed;
        let (text, _) = config_for(
            &store,
            &u,
            &DefaultBoot::Local,
            "grub/grub.cfg-01-52-54-00-aa-bb-01",
            Over::Tftp,
        )
        .unwrap();
        assert!(
            text.ends_with("\nexit\n") && !text.contains("linux"),
            "{text}"
        );
        store.machines.get_mut(&id).unwrap().state = MachineState::Install;
        let (text, _) = config_for(
            &store,
            &u,
            &DefaultBoot::Local,
            "grub/grub.cfg-01-52-54-00-aa-bb-01",
            Over::Tftp,
        )
        .unwrap();
        assert!(text.contains("\tlinux /debian12/linux"));
        // Names gopxe does not know are not found: GRUB tries the next.
        for other in [
            "grub/grub.cfg-01-52-54-00-aa-bb-02",
            "grub/grub.cfg-0A000033",
        ] {
            assert_eq!(
                config_for(&store, &u, &DefaultBoot::Local, other, Over::Tftp),
                None
            );
        }
    }

    #[test]
    fn words_grub_would_split_are_quoted() {
        let store = records("kickstart");
        let (text, _) = config_for(
            &store,
            &urls(),
            &DefaultBoot::Local,
            "grub/grub.cfg-01-52-54-00-aa-bb-01",
            Over::Tftp,
        )
        .unwrap();
        // The kickstart URL's `&` and `?` are GRUB syntax: one quoted word.
        assert!(
            text.contains(" 'ks=http://10.0.0.1:9090/kickstart/?name=default&fqdn=node1.lab&ip=10.0.0.50&mask=255.255.255.0&gw=10.0.0.1'\n"),
            "{text}"
        );
        let mut s = String::new();
        word(&mut s, "ds=nocloud-net;s=http://x/");
        word(&mut s, " ");
        word(&mut s, "it's");
        word(&mut s, "");
        assert_eq!(s, r"'ds=nocloud-net;s=http://x/'' ''it'\''s'''");
        let autoinstall = records("autoinstall");
        let (text, _) = config_for(
            &autoinstall,
            &urls(),
            &DefaultBoot::Local,
            "grub/grub.cfg-01-52-54-00-aa-bb-01",
            Over::Tftp,
        )
        .unwrap();
        assert!(
            text.contains(
                "'ds=nocloud-net;s=http://10.0.0.1:9090/cloud-init/01-52-54-00-aa-bb-01/'"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_dispatcher_reads_the_machine_config_by_mac_else_the_default() {
        let store = records("preseed");
        let (text, id) = config_for(
            &store,
            &urls(),
            &DefaultBoot::Local,
            "grub/grub.cfg",
            Over::Tftp,
        )
        .unwrap();
        assert_eq!(id, None);
        assert!(text.contains("\"$net_default_mac\"; then\n"));
        assert!(text.contains(
            "\tif configfile \"$prefix/grub.cfg-01-$m1-$m2-$m3-$m4-$m5-$m6\"; then\n\t\texit\n"
        ));
        assert!(!text.contains("[ -e"), "test -e is always false on (tftp)");
        assert!(text.ends_with("unknown machine: back to the firmware's next boot entry\nexit\n"));
        let (text, _) = config_for(
            &store,
            &urls(),
            &DefaultBoot::Action("deb".into()),
            "grub/grub.cfg",
            Over::Tftp,
        )
        .unwrap();
        // The default action, without any machine's answer file.
        assert!(
            text.contains("\tlinux /debian12/linux console=ttyS0,115200n8\n"),
            "{text}"
        );
        let (text, _) = config_for(
            &store,
            &urls(),
            &DefaultBoot::Action("gone".into()),
            "grub/grub.cfg",
            Over::Tftp,
        )
        .unwrap();
        assert!(text.ends_with("\nexit\n"), "{text}");
    }
}
