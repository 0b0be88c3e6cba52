//! Raspberry Pi network boot: the TFTP names a Pi asks for, and the
//! `config.txt` / `cmdline.txt` gopxe renders for it.
//!
//! Layer: boot logic (pure: names in, an [`Answer`] out; no store, socket
//! or file). Documents followed: Raspberry Pi documentation, "Network
//! booting" (the Pi 3 boot ROM asks for `bootcode.bin` and `bootsig.bin` at
//! the root, `bootsig.bin` normally "file not found"; `bootcode.bin` then
//! tries `<serial>/start.elf` and, if it exists, takes every later file
//! from `<serial>/`), "Raspberry Pi bootloader configuration" (the Pi 4/5
//! EEPROM's `TFTP_PREFIX`: 0 the serial, `9ffefdef/`; 2 the MAC,
//! `dc-a6-32-01-36-c2/`; the prefix is dropped when neither `start4.elf`
//! nor `start.elf` is found under it) and "config.txt" (`kernel=`,
//! `initramfs <file> followkernel`, `arm_64bit=`; the firmware reads the
//! kernel command line from `cmdline.txt`). The firmware fetches every
//! file named in `config.txt` relative to its prefix.
//!
//! Under a prefix, [`answer`] gives: `config.txt` and `cmdline.txt`
//! rendered from what the Pi boots ([`PiBoot`]); the boot action's kernel
//! and initrd from their paths in the images tree; anything else (the
//! firmware, device trees, `overlays/`) from the one shared firmware
//! directory. A Pi with nothing to netboot (installed, or unknown while
//! unknown machines boot locally) gets "file not found" for every name
//! under its prefix: its EEPROM then drops the prefix, finds no
//! `start4.elf` at the root either, and moves on to the next mode of its
//! `BOOT_ORDER` (the SD card, USB or NVMe disk it was installed on).

use super::{DefaultBoot, MachineArgs, Urls, machine_args, pi_command_line};
use crate::model::{BootAction, Machine, MachineState, Records, parse_mac};

/// The directory a Pi puts in front of its file names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// Low 32 bits of the board serial (`TFTP_PREFIX=0`, and every Pi 3).
    Serial(u32),
    /// Ethernet MAC, dashed (`TFTP_PREFIX=2`).
    Mac([u8; 6]),
}

/// A TFTP name as a Pi asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PiName<'a> {
    /// `bootcode.bin` at the root (the Pi 3 boot ROM's first file).
    Bootcode,
    /// `bootsig.bin` at the root (the Pi 3 boot ROM's second).
    Bootsig,
    /// `<prefix>/config.txt`.
    Config(Prefix),
    /// `<prefix>/cmdline.txt`.
    Cmdline(Prefix),
    /// Any other `<prefix>/<path>`.
    File(Prefix, &'a str),
}

impl Prefix {
    /// `1a2b3c4d` (8 hex digits) or `dc-a6-32-01-02-03`.
    pub fn parse(dir: &str) -> Option<Prefix> {
        match dir.len() {
            8 if dir.bytes().all(|b| b.is_ascii_hexdigit()) => {
                u32::from_str_radix(dir, 16).ok().map(Prefix::Serial)
            }
            17 if dir.bytes().filter(|&b| b == b'-').count() == 5 => {
                parse_mac(dir).map(Prefix::Mac)
            }
            _ => None,
        }
    }
}

impl<'a> PiName<'a> {
    /// Parses a checked TFTP name (no leading `/`, no `.` or `..`
    /// components: [`crate::tftp::sanitize`] has seen it). `None`: not a
    /// name of the Pi tree (pxelinux names, plain image files).
    pub fn parse(name: &'a str) -> Option<PiName<'a>> {
        match name {
            "bootcode.bin" => return Some(PiName::Bootcode),
            "bootsig.bin" => return Some(PiName::Bootsig),
            _ => {}
        }
        let (dir, rest) = name.split_once('/')?;
        let prefix = Prefix::parse(dir)?;
        Some(match rest {
            "" => return None,
            "config.txt" => PiName::Config(prefix),
            "cmdline.txt" => PiName::Cmdline(prefix),
            _ => PiName::File(prefix, rest),
        })
    }

    /// The prefix the name is under, if any.
    pub fn prefix(&self) -> Option<Prefix> {
        match *self {
            PiName::Bootcode | PiName::Bootsig => None,
            PiName::Config(p) | PiName::Cmdline(p) | PiName::File(p, _) => Some(p),
        }
    }
}

/// The board serial a Pi's DHCP option 97 carries, as the two readings of
/// its 4 bytes (the documents do not give their byte order), or `None`
/// when the GUID is not one a Pi makes: the EEPROM's default form (FourCC
/// `RPi4`/`RPi5`, board revision, MAC low bytes, serial; `DHCP_OPTION97`)
/// or the older serial repeated four times (Pi 3B+, `DHCP_OPTION97=0`).
pub fn serials_in_guid(guid: &[u8; 16]) -> Option<[u32; 2]> {
    let [a, b, c, d] = [0, 4, 8, 12].map(|i| {
        let mut w = [0; 4];
        w.copy_from_slice(guid.get(i..i + 4).unwrap_or(&[0; 4]));
        w
    });
    let repeated = a == b && b == c && c == d;
    (a.starts_with(b"RPi") || repeated).then(|| [u32::from_be_bytes(d), u32::from_le_bytes(d)])
}

/// What a Pi netboots: a boot action, with the machine's own arguments
/// (`None` for an unknown Pi booting the default action).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PiBoot<'s> {
    pub action: &'s BootAction,
    pub args: Option<MachineArgs>,
}

/// What a Pi boots: `m`'s action until it is installed, the configured
/// default for an unknown Pi; `None` when it should not netboot.
pub fn pi_boot<'s>(
    store: &'s Records,
    urls: &Urls,
    default: &DefaultBoot,
    m: Option<&Machine>,
) -> Option<PiBoot<'s>> {
    match m {
        Some(m) if m.state == MachineState::Installed => None,
        Some(m) => {
            let action = store.bootactions.get(&m.bootaction)?;
            Some(PiBoot {
                action,
                args: Some(machine_args(urls, action, m)),
            })
        }
        None => match default {
            DefaultBoot::Action(name) => store
                .bootactions
                .get(name)
                .map(|action| PiBoot { action, args: None }),
            DefaultBoot::Local => None,
        },
    }
}

/// The answer to one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Generated content.
    Text(String),
    /// A file of the images tree, by its path there.
    File(String),
    /// TFTP error 1, file not found.
    Missing,
}

/// `config.txt`: a 64-bit kernel, its initramfs, both fetched by the
/// firmware relative to the prefix (see [`answer`] for where they resolve).
pub fn config_txt(boot: &PiBoot<'_>) -> String {
    let a = boot.action;
    let mut s = format!(
        "# gopxe: boot action {}\narm_64bit=1\nkernel={}\n",
        a.name, a.kernel
    );
    if let Some(i) = &a.initrd {
        s.push_str("initramfs ");
        s.push_str(i);
        s.push_str(" followkernel\n");
    }
    s
}

/// `cmdline.txt`: the same kernel arguments pxelinux and iPXE get (the
/// action's, the installer's, `append`), on one line; the initramfs is
/// named in `config.txt`, not here.
pub fn cmdline_txt(boot: &PiBoot<'_>) -> String {
    let mut s = pi_command_line(boot.action, boot.args.as_ref());
    s.push('\n');
    s
}

/// The answer to `name` for a Pi booting `boot` (`None`: nothing to
/// netboot), with the shared firmware in `firmware_dir` of the images
/// tree. `bootcode.bin` comes from the firmware directory whatever the
/// Pi boots (a Pi 3 needs it to ask for anything else); `bootsig.bin` is
/// never served (the boot ROM expects "file not found").
pub fn answer(name: &PiName<'_>, boot: Option<&PiBoot<'_>>, firmware_dir: &str) -> Answer {
    let firmware = |file: &str| Answer::File(format!("{firmware_dir}/{file}"));
    match (name, boot) {
        (PiName::Bootcode, _) => firmware("bootcode.bin"),
        (PiName::Bootsig, _) | (_, None) => Answer::Missing,
        (PiName::Config(_), Some(b)) => Answer::Text(config_txt(b)),
        (PiName::Cmdline(_), Some(b)) => Answer::Text(cmdline_txt(b)),
        (PiName::File(_, path), Some(b)) => {
            let a = b.action;
            if *path == a.kernel || a.initrd.as_deref() == Some(*path) {
                Answer::File((*path).to_string())
            } else {
                firmware(path)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BootActionBody, MachineBody, MachineId};
    use std::net::Ipv4Addr;

    const SERIAL: Prefix = Prefix::Serial(0x1a2b_3c4d);
    const MAC: Prefix = Prefix::Mac([0xdc, 0xa6, 0x32, 0x01, 0x02, 0x03]);

    #[test]
    fn serials_from_option_97() {
        // A Pi 4's default GUID: "RPi4", revision c03111, MAC low bytes, serial.
        let pi4 = [
            b'R', b'P', b'i', b'4', 0x11, 0x31, 0xc0, 0x00, 0x32, 0x01, 0x02, 0x03, 0x1a, 0x2b,
            0x3c, 0x4d,
        ];
        assert_eq!(serials_in_guid(&pi4), Some([0x1a2b_3c4d, 0x4d3c_2b1a]));
        let mut pi5 = pi4;
        pi5[3] = b'5';
        assert_eq!(serials_in_guid(&pi5), Some([0x1a2b_3c4d, 0x4d3c_2b1a]));
        // The older form: the serial four times.
        let old: [u8; 16] = std::array::from_fn(|i| [0x1a, 0x2b, 0x3c, 0x4d][i % 4]);
        assert_eq!(serials_in_guid(&old), Some([0x1a2b_3c4d, 0x4d3c_2b1a]));
        // An SMBIOS UUID is no Pi's.
        let uuid = crate::model::parse_uuid("42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69").unwrap();
        assert_eq!(serials_in_guid(&uuid), None);
    }

    #[test]
    fn names_of_every_form() {
        assert_eq!(PiName::parse("bootcode.bin"), Some(PiName::Bootcode));
        assert_eq!(PiName::parse("bootsig.bin"), Some(PiName::Bootsig));
        assert_eq!(
            PiName::parse("1a2b3c4d/config.txt"),
            Some(PiName::Config(SERIAL))
        );
        assert_eq!(
            PiName::parse("1A2B3C4D/cmdline.txt"),
            Some(PiName::Cmdline(SERIAL))
        );
        assert_eq!(
            PiName::parse("1a2b3c4d/start4.elf"),
            Some(PiName::File(SERIAL, "start4.elf"))
        );
        assert_eq!(
            PiName::parse("1a2b3c4d/overlays/overlay_map.dtb"),
            Some(PiName::File(SERIAL, "overlays/overlay_map.dtb"))
        );
        assert_eq!(
            PiName::parse("dc-a6-32-01-02-03/config.txt"),
            Some(PiName::Config(MAC))
        );
        assert_eq!(
            PiName::parse("dc-a6-32-01-02-03/fixup4.dat"),
            Some(PiName::File(MAC, "fixup4.dat"))
        );
        assert_eq!(
            PiName::parse("dc-a6-32-01-02-03/config.txt").and_then(|n| n.prefix()),
            Some(MAC)
        );
        for not_pi in [
            "pxelinux.cfg/default",
            "pxelinux.0",
            "start4.elf",
            "config.txt",
            "1a2b3c4d",
            "1a2b3c4d/",
            "1a2b3c4/start4.elf",
            "1a2b3c4d0/start4.elf",
            "1a2b3c4g/start4.elf",
            "+a2b3c4d/start4.elf",
            "dc:a6:32:01:02:03/start4.elf",
            "dca632010203/start4.elf",
            "01-dc-a6-32-01-02-03/start4.elf",
            "debian/1a2b3c4d/start4.elf",
        ] {
            assert_eq!(PiName::parse(not_pi), None, "{not_pi}");
        }
    }

    fn store() -> Records {
        let mut store = Records::default();
        let body: BootActionBody = serde_json::from_str(
            r#"{"kernel": "debian-arm64/linux", "initrd": "debian-arm64/initrd.gz",
                "installer": "preseed", "append": "--- console=ttyAMA0,115200"}"#,
        )
        .unwrap();
        let a = BootAction::from_body("pi-debian", body).unwrap();
        store.bootactions.insert(a.name.clone(), a);
        let mb: MachineBody = serde_json::from_str(
            r#"{"bootaction": "pi-debian", "serial": "1a2b3c4d", "hostname": "pi7.lab"}"#,
        )
        .unwrap();
        let m = Machine::from_body(mb, None).unwrap();
        store.machines.insert(m.id, m);
        store
    }

    fn urls() -> Urls {
        Urls::new(Ipv4Addr::new(10, 1, 20, 2), 9090).with_dns(vec![Ipv4Addr::new(10, 1, 20, 53)])
    }

    const CMDLINE: &str = "auto=true priority=critical url=http://10.1.20.2:9090/preseed/pi-1a2b3c4d interface=auto hostname=pi7 domain=lab netcfg/get_nameservers=10.1.20.53 --- console=ttyAMA0,115200\n";

    #[test]
    fn rendered_per_state() {
        let mut store = store();
        let urls = urls();
        let id = MachineId::PiSerial(0x1a2b_3c4d);
        let config = "# gopxe: boot action pi-debian\narm_64bit=1\nkernel=debian-arm64/linux\ninitramfs debian-arm64/initrd.gz followkernel\n";
        let fw = "rpi";
        for state in [MachineState::Install, MachineState::Installing] {
            store.machines.get_mut(&id).unwrap().state = state;
            let boot = pi_boot(&store, &urls, &DefaultBoot::Local, store.machines.get(&id));
            let boot = boot.as_ref();
            assert_eq!(
                answer(&PiName::Config(SERIAL), boot, fw),
                Answer::Text(config.into()),
                "{state:?}"
            );
            assert_eq!(
                answer(&PiName::Cmdline(SERIAL), boot, fw),
                Answer::Text(CMDLINE.into()),
                "{state:?}"
            );
        }
        // Installed: nothing under the prefix, whatever the name.
        store.machines.get_mut(&id).unwrap().state = MachineState::Installed;
        let boot = pi_boot(&store, &urls, &DefaultBoot::Local, store.machines.get(&id));
        assert_eq!(boot, None);
        for name in [
            PiName::Config(SERIAL),
            PiName::Cmdline(SERIAL),
            PiName::File(SERIAL, "start4.elf"),
            PiName::File(SERIAL, "debian-arm64/linux"),
            PiName::Bootsig,
        ] {
            assert_eq!(answer(&name, None, fw), Answer::Missing, "{name:?}");
        }
        // bootcode.bin still comes from the firmware directory.
        assert_eq!(
            answer(&PiName::Bootcode, None, fw),
            Answer::File("rpi/bootcode.bin".into())
        );

        // Unknown Pis: local boot by default, else the default action
        // without any machine's arguments.
        assert_eq!(pi_boot(&store, &urls, &DefaultBoot::Local, None), None);
        let dflt = DefaultBoot::Action("pi-debian".into());
        let boot = pi_boot(&store, &urls, &dflt, None).unwrap();
        assert_eq!(
            answer(&PiName::Config(MAC), Some(&boot), fw),
            Answer::Text(config.into())
        );
        assert_eq!(
            answer(&PiName::Cmdline(MAC), Some(&boot), fw),
            Answer::Text("--- console=ttyAMA0,115200\n".into())
        );
        // A default naming no action boots locally.
        let gone = DefaultBoot::Action("gone".into());
        assert_eq!(pi_boot(&store, &urls, &gone, None), None);
    }

    #[test]
    fn files_resolve_to_the_action_or_the_shared_firmware() {
        let store = store();
        let urls = urls();
        let m = store.machines.values().next();
        let boot = pi_boot(&store, &urls, &DefaultBoot::Local, m).unwrap();
        let fw = "firmware/rpi";
        for (name, want) in [
            (
                PiName::File(SERIAL, "start4.elf"),
                "firmware/rpi/start4.elf",
            ),
            (PiName::File(MAC, "fixup4.dat"), "firmware/rpi/fixup4.dat"),
            (
                PiName::File(SERIAL, "bcm2711-rpi-4-b.dtb"),
                "firmware/rpi/bcm2711-rpi-4-b.dtb",
            ),
            (
                PiName::File(SERIAL, "overlays/overlay_map.dtb"),
                "firmware/rpi/overlays/overlay_map.dtb",
            ),
            (
                PiName::File(SERIAL, "debian-arm64/linux"),
                "debian-arm64/linux",
            ),
            (
                PiName::File(MAC, "debian-arm64/initrd.gz"),
                "debian-arm64/initrd.gz",
            ),
            // Another path beside the kernel is not the action's: firmware.
            (
                PiName::File(SERIAL, "debian-arm64/other"),
                "firmware/rpi/debian-arm64/other",
            ),
            (PiName::Bootcode, "firmware/rpi/bootcode.bin"),
        ] {
            assert_eq!(
                answer(&name, Some(&boot), fw),
                Answer::File(want.into()),
                "{name:?}"
            );
        }
        assert_eq!(answer(&PiName::Bootsig, Some(&boot), fw), Answer::Missing);
    }

    /// The names a Pi asks for, in the order the Raspberry Pi documents
    /// and boot logs give them, each with what it gets.
    #[test]
    fn boot_sequences_of_a_pi_3_4_and_5() {
        let store = store();
        let urls = urls();
        let m = store.machines.values().next();
        let boot = pi_boot(&store, &urls, &DefaultBoot::Local, m).unwrap();
        let text = |t: &str| Some(Answer::Text(t.into()));
        let config = config_txt(&boot);
        let file = |f: &str| Some(Answer::File(f.into()));
        // Pi 3 boot ROM, then its bootcode.bin and start.elf.
        let pi3 = [
            ("bootcode.bin", file("rpi/bootcode.bin")),
            ("bootsig.bin", Some(Answer::Missing)),
            ("1a2b3c4d/start.elf", file("rpi/start.elf")),
            ("1a2b3c4d/autoboot.txt", file("rpi/autoboot.txt")),
            ("1a2b3c4d/config.txt", text(&config)),
            ("1a2b3c4d/recovery.elf", file("rpi/recovery.elf")),
            ("1a2b3c4d/start.elf", file("rpi/start.elf")),
            ("1a2b3c4d/fixup.dat", file("rpi/fixup.dat")),
            ("1a2b3c4d/cmdline.txt", text(CMDLINE)),
            ("1a2b3c4d/debian-arm64/linux", file("debian-arm64/linux")),
        ];
        // Pi 4 EEPROM (TFTP_PREFIX=0), then start4.elf.
        let pi4 = [
            ("1a2b3c4d/start4.elf", file("rpi/start4.elf")),
            ("1a2b3c4d/config.txt", text(&config)),
            ("1a2b3c4d/pieeprom.sig", file("rpi/pieeprom.sig")),
            ("1a2b3c4d/recover4.elf", file("rpi/recover4.elf")),
            ("1a2b3c4d/recovery.elf", file("rpi/recovery.elf")),
            ("1a2b3c4d/start4.elf", file("rpi/start4.elf")),
            ("1a2b3c4d/fixup4.dat", file("rpi/fixup4.dat")),
            ("1a2b3c4d/config.txt", text(&config)),
            (
                "1a2b3c4d/bcm2711-rpi-4-b.dtb",
                file("rpi/bcm2711-rpi-4-b.dtb"),
            ),
            (
                "1a2b3c4d/overlays/overlay_map.dtb",
                file("rpi/overlays/overlay_map.dtb"),
            ),
            ("1a2b3c4d/cmdline.txt", text(CMDLINE)),
            ("1a2b3c4d/debian-arm64/linux", file("debian-arm64/linux")),
            (
                "1a2b3c4d/debian-arm64/initrd.gz",
                file("debian-arm64/initrd.gz"),
            ),
        ];
        // Pi 5 EEPROM with TFTP_PREFIX=2: it loads the device tree and the
        // kernel itself (no start*.elf).
        let pi5 = [
            ("dc-a6-32-01-02-03/config.txt", text(&config)),
            ("dc-a6-32-01-02-03/pieeprom.sig", file("rpi/pieeprom.sig")),
            (
                "dc-a6-32-01-02-03/bcm2712-rpi-5-b.dtb",
                file("rpi/bcm2712-rpi-5-b.dtb"),
            ),
            ("dc-a6-32-01-02-03/cmdline.txt", text(CMDLINE)),
            (
                "dc-a6-32-01-02-03/debian-arm64/linux",
                file("debian-arm64/linux"),
            ),
            (
                "dc-a6-32-01-02-03/debian-arm64/initrd.gz",
                file("debian-arm64/initrd.gz"),
            ),
        ];
        for (name, want) in pi3.iter().chain(&pi4).chain(&pi5) {
            let got = PiName::parse(name).map(|n| answer(&n, Some(&boot), "rpi"));
            assert_eq!(&got, want, "{name}");
        }
    }
}
