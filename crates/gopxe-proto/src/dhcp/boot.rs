//! What a netbooting client is told to load: the boot file per firmware
//! (RFC 4578 option 93 architecture types, option 77 user class `iPXE`,
//! UEFI HTTP boot's `HTTPClient` class, Raspberry Pi's option 43) and the
//! PXE vendor options (PXE spec 2.1 §2.4: option 43 sub-options 6, 9, 10, 71).
//!
//! Option 93 values are matched as raw numbers: 7 and 9 are both x64 UEFI
//! in practice (the RFC 4578 table and the IANA registry disagree on them).

use super::config::{DhcpConfig, Loader, UnknownBoot};
use super::core::MachineView;
use super::loaders::Class;
use super::packet::{Request, sub_option, uuid_text};

/// The client's firmware, as far as its request tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Already running iPXE (user class `iPXE`).
    Ipxe,
    /// Legacy BIOS PXE (arch 0).
    Bios,
    /// x64 UEFI PXE (arch 7 or 9).
    EfiX64,
    /// arm64 UEFI PXE (arch 11).
    EfiArm64,
    /// UEFI HTTP boot, x64 (arch 16).
    HttpX64,
    /// UEFI HTTP boot, arm64 (arch 19).
    HttpArm64,
    /// Raspberry Pi boot ROM/EEPROM.
    RaspberryPi,
    /// A PXE/HTTP client of an architecture we have no loader for.
    Unsupported(u16),
    /// Not a netboot client (an OS, an installer, syslinux's own DHCP).
    None,
}

impl Firmware {
    /// The class name gopxe gives it: the loader table's classes (`bios`,
    /// `efi-x64`, `efi-arm64`, `http-x64`, `http-arm64`), `ipxe`,
    /// `raspberry-pi`, `unsupported` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Ipxe => "ipxe",
            Firmware::Bios => "bios",
            Firmware::EfiX64 => "efi-x64",
            Firmware::EfiArm64 => "efi-arm64",
            Firmware::HttpX64 => "http-x64",
            Firmware::HttpArm64 => "http-arm64",
            Firmware::RaspberryPi => "raspberry-pi",
            Firmware::Unsupported(_) => "unsupported",
            Firmware::None => "none",
        }
    }
}

/// MAC prefixes (OUIs) of Raspberry Pi boards: the Raspberry Pi
/// Foundation's (Pi 3 and earlier) and Raspberry Pi Trading's (Pi 4, 400,
/// CM4, Pi 5, CM5), as registered with the IEEE.
const PI_OUIS: [[u8; 3]; 6] = [
    [0xb8, 0x27, 0xeb],
    [0xdc, 0xa6, 0x32],
    [0xe4, 0x5f, 0x01],
    [0x28, 0xcd, 0xc1],
    [0xd8, 0x3a, 0xdd],
    [0x2c, 0xcf, 0x67],
];

/// The vendor class the Pi boot ROM sends (the same string as iPXE's BIOS
/// build: the MAC prefix tells them apart).
const PI_VENDOR_CLASS: &[u8] = b"PXEClient:Arch:00000:UNDI:002001";

/// Architecture from option 93, or from the `PXEClient:Arch:NNNNN` vendor
/// class when option 93 is missing.
fn arch_of(req: &Request) -> Option<u16> {
    req.arch.or_else(|| {
        let v = req.vendor_class.as_deref()?;
        let rest = v
            .strip_prefix(b"PXEClient:Arch:")
            .or_else(|| v.strip_prefix(b"HTTPClient:Arch:"))?;
        let digits = rest.get(..5)?;
        std::str::from_utf8(digits).ok()?.parse().ok()
    })
}

/// Classify the client.
pub fn firmware(req: &Request) -> Firmware {
    if req.is_ipxe() {
        return Firmware::Ipxe;
    }
    if !req.is_netboot_client() {
        return Firmware::None;
    }
    let oui = [req.mac.0[0], req.mac.0[1], req.mac.0[2]];
    if req.vendor_class.as_deref() == Some(PI_VENDOR_CLASS) && PI_OUIS.contains(&oui) {
        return Firmware::RaspberryPi;
    }
    let http = req.vendor_class_starts_with(b"HTTPClient");
    match (arch_of(req), http) {
        (Some(16), _) | (Some(7 | 9), true) => Firmware::HttpX64,
        (Some(19), _) | (Some(11), true) => Firmware::HttpArm64,
        (Some(0), false) => Firmware::Bios,
        (Some(7 | 9), false) => Firmware::EfiX64,
        (Some(11), false) => Firmware::EfiArm64,
        (Some(a), _) => Firmware::Unsupported(a),
        (None, _) => Firmware::Unsupported(u16::MAX),
    }
}

/// Boot information for a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    pub firmware: Firmware,
    /// Boot file (file field if it fits, always option 67). `None` for the
    /// Raspberry Pi, which fetches its own fixed file names.
    pub file: Option<String>,
    /// Option 60 to send back (`PXEClient` / `HTTPClient`), if any.
    pub vendor_class: Option<&'static str>,
    /// Option 43 to send (PXE vendor options), if any.
    pub vendor_opts: Option<Vec<u8>>,
    /// iPXE's option 175 with 176 = 1 (no-pxedhcp: don't wait for proxies).
    pub ipxe_no_pxedhcp: bool,
}

/// The loader family this client boots with, or `None` for "boot from the
/// local disk" (no boot file; the firmware tries its next boot device).
/// `unknown` is what a client the lookup does not know boots.
pub fn loader_for(unknown: UnknownBoot, machine: Option<&MachineView>) -> Option<Loader> {
    match machine {
        Some(m) if m.local_boot => None,
        Some(m) => Some(m.loader),
        None => match unknown {
            UnknownBoot::LocalBoot => None,
            UnknownBoot::Loader(l) => Some(l),
        },
    }
}

/// PXE option 43 telling the client to take the boot file from this offer
/// and skip boot-server discovery (sub-option 6, bit 3).
pub fn pxe_use_bootfile() -> Vec<u8> {
    vec![6, 1, 8, 255]
}

/// PXE option 43 the Raspberry Pi boot code looks for: a boot menu
/// (sub-option 9) whose entry reads `Raspberry Pi Boot`, and a menu prompt
/// (sub-option 10) with no timeout.
pub fn raspberry_pi_vendor_opts() -> Vec<u8> {
    const ITEM: &[u8] = b"Raspberry Pi Boot";
    let mut v = vec![9, (3 + ITEM.len()) as u8, 0, 0, ITEM.len() as u8];
    v.extend_from_slice(ITEM);
    v.extend_from_slice(&[10, 4, 0]);
    v.extend_from_slice(b"PXE");
    v.push(255);
    v
}

/// The boot-server ACK's option 43: echo the requested boot item
/// (sub-option 71: type and layer, PXE spec §2.2.6), then "use the file".
pub fn pxe_boot_server_ack(req: &Request) -> Vec<u8> {
    let mut v = vec![6, 1, 8];
    if let Some(item) = req
        .vendor_opts
        .as_deref()
        .and_then(|o| sub_option(o, 71))
        .filter(|i| i.len() == 4)
    {
        v.push(71);
        v.push(4);
        v.extend_from_slice(item);
    }
    v.push(255);
    v
}

/// The iPXE script URL for this client.
pub fn ipxe_script_url(cfg: &DhcpConfig, req: &Request) -> String {
    let mut url = format!("{}/boot.ipxe?mac={}", cfg.http_base(), req.mac);
    if let Some(u) = &req.uuid {
        url.push_str("&uuid=");
        url.push_str(&uuid_text(u));
    }
    url
}

/// Decide what the client boots. `None`: nothing to boot (not a netboot
/// client, local boot, or no loader for its architecture). `proxy` adds the
/// option 60/43 a proxyDHCP reply needs.
pub fn choose(
    cfg: &DhcpConfig,
    unknown: UnknownBoot,
    req: &Request,
    machine: Option<&MachineView>,
    proxy: bool,
) -> Option<BootInfo> {
    let fw = firmware(req);
    if fw == Firmware::None {
        return None;
    }
    let wanted = loader_for(unknown, machine)?;
    let l = &cfg.loaders;
    let pxe_class = proxy.then_some("PXEClient");
    let pxe_opts = proxy.then(pxe_use_bootfile);
    let info = |file: Option<String>, class, opts| BootInfo {
        firmware: fw,
        file,
        vendor_class: class,
        vendor_opts: opts,
        ipxe_no_pxedhcp: false,
    };
    let class = match fw {
        // iPXE (a NIC's iPXE ROM, or the iPXE we handed out) gets its
        // script over HTTP, not iPXE again: no boot loop. A machine whose
        // loader is pxelinux gets pxelinux itself (iPXE runs it over its
        // PXE API, and pxelinux then asks for `pxelinux.cfg/<uuid>`);
        // chaining pxelinux from a script would make the script URL its
        // path prefix and lose the UUID lookup. GRUB families get the
        // script too: iPXE boots the same kernel line.
        Firmware::Ipxe => {
            let pxelinux = match arch_of(req) {
                Some(7 | 9) => Some(Class::EfiX64),
                Some(0) | None => Some(Class::Bios),
                _ => None,
            }
            .and_then(|c| match l.boot_file(c, wanted) {
                Some((Loader::Pxelinux, f)) => Some(f.to_string()),
                _ => None,
            });
            let file = pxelinux.unwrap_or_else(|| ipxe_script_url(cfg, req));
            return Some(BootInfo {
                ipxe_no_pxedhcp: true,
                ..info(Some(file), pxe_class, pxe_opts)
            });
        }
        Firmware::RaspberryPi => {
            return Some(info(
                None,
                Some("PXEClient"),
                Some(raspberry_pi_vendor_opts()),
            ));
        }
        Firmware::Bios => Class::Bios,
        Firmware::EfiX64 => Class::EfiX64,
        Firmware::EfiArm64 => Class::EfiArm64,
        Firmware::HttpX64 => Class::HttpX64,
        Firmware::HttpArm64 => Class::HttpArm64,
        Firmware::Unsupported(a) => {
            // Per packet: debug (the answer's info line has no boot file).
            log::debug!("dhcp: {}: no boot loader for architecture {a}", req.mac);
            return None;
        }
        Firmware::None => return None,
    };
    let (_, file) = l.boot_file(class, wanted)?;
    if class.is_http() {
        // UEFI HTTP boot loads an EFI binary by URL (the images tree is
        // served under /images/), never a redirect.
        let url = format!("{}/images/{file}", cfg.http_base());
        return Some(info(Some(url), Some("HTTPClient"), None));
    }
    Some(info(Some(file.to_string()), pxe_class, pxe_opts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::packet::{decode, tests::client_packet};

    fn req(mac: [u8; 6], opts: &[(u8, &[u8])]) -> Request {
        let mut all: Vec<(u8, &[u8])> = vec![(53, &[1])];
        all.extend_from_slice(opts);
        decode(&client_packet(7, mac, 0, [0; 4], [0; 4], &all)).unwrap()
    }

    fn cfg() -> DhcpConfig {
        DhcpConfig {
            server_addr: std::net::Ipv4Addr::new(10, 0, 0, 1),
            ..DhcpConfig::default()
        }
    }

    fn known(loader: Loader) -> MachineView {
        MachineView {
            loader,
            ..MachineView::default()
        }
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0, 1, 2, 3];

    #[test]
    fn bios_and_uefi_files_by_loader() {
        let c = cfg();
        let bios = req(
            MAC,
            &[(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])],
        );
        let b = choose(
            &c,
            c.unknown_boot,
            &bios,
            Some(&known(Loader::Pxelinux)),
            false,
        )
        .unwrap();
        assert_eq!(b.file.as_deref(), Some("pxelinux.0"));
        assert_eq!(b.vendor_class, None);
        let b = choose(&c, c.unknown_boot, &bios, Some(&known(Loader::Ipxe)), false).unwrap();
        assert_eq!(b.file.as_deref(), Some("undionly.kpxe"));
        for arch in [7u8, 9] {
            let efi = req(
                MAC,
                &[(60, b"PXEClient:Arch:00007:UNDI:003000"), (93, &[0, arch])],
            );
            assert_eq!(firmware(&efi), Firmware::EfiX64);
            let b = choose(
                &c,
                c.unknown_boot,
                &efi,
                Some(&known(Loader::Pxelinux)),
                false,
            )
            .unwrap();
            assert_eq!(b.file.as_deref(), Some("syslinux.efi"));
            let b = choose(&c, c.unknown_boot, &efi, Some(&known(Loader::Ipxe)), false).unwrap();
            assert_eq!(b.file.as_deref(), Some("ipxe.efi"));
        }
        let arm = req(
            MAC,
            &[(60, b"PXEClient:Arch:00011:UNDI:003000"), (93, &[0, 11])],
        );
        let b = choose(
            &c,
            c.unknown_boot,
            &arm,
            Some(&known(Loader::Pxelinux)),
            false,
        )
        .unwrap();
        // No pxelinux for arm64: its class's default, signed GRUB.
        assert_eq!(b.file.as_deref(), Some("grubaa64.efi"));
        let b = choose(&c, c.unknown_boot, &arm, Some(&known(Loader::Ipxe)), false).unwrap();
        assert_eq!(b.file.as_deref(), Some("ipxe-arm64.efi"));
        let b = choose(&c, c.unknown_boot, &arm, Some(&known(Loader::Auto)), false).unwrap();
        assert_eq!(b.file.as_deref(), Some("grubaa64.efi"));
        // Architecture from the vendor class when option 93 is missing.
        let efi = req(MAC, &[(60, b"PXEClient:Arch:00007:UNDI:003000")]);
        assert_eq!(firmware(&efi), Firmware::EfiX64);
    }

    #[test]
    fn ipxe_gets_its_script_not_ipxe_again() {
        let c = cfg();
        let uuid: Vec<u8> = std::iter::once(0).chain([0xab; 16]).collect();
        let r = req(
            MAC,
            &[
                (60, b"PXEClient:Arch:00007:UNDI:003010"),
                (93, &[0, 7]),
                (77, b"iPXE"),
                (97, &uuid),
            ],
        );
        let b = choose(&c, c.unknown_boot, &r, Some(&known(Loader::Ipxe)), false).unwrap();
        assert_eq!(
            b.file.as_deref(),
            Some(
                "http://10.0.0.1:9090/boot.ipxe?mac=52:54:00:01:02:03\
                 &uuid=abababab-abab-abab-abab-abababababab"
            )
        );
        assert!(b.ipxe_no_pxedhcp);
        // A pxelinux machine behind an iPXE ROM gets pxelinux itself.
        let b = choose(
            &c,
            c.unknown_boot,
            &r,
            Some(&known(Loader::Pxelinux)),
            false,
        )
        .unwrap();
        assert_eq!(b.file.as_deref(), Some("syslinux.efi"));
        let bios = req(
            MAC,
            &[
                (60, b"PXEClient:Arch:00000:UNDI:002001"),
                (93, &[0, 0]),
                (77, b"iPXE"),
            ],
        );
        let b = choose(
            &c,
            c.unknown_boot,
            &bios,
            Some(&known(Loader::Pxelinux)),
            false,
        )
        .unwrap();
        assert_eq!(b.file.as_deref(), Some("pxelinux.0"));
        assert!(b.ipxe_no_pxedhcp);
        // Unknown machines boot locally by default: no file at all.
        assert_eq!(choose(&c, c.unknown_boot, &bios, None, false), None);
    }

    #[test]
    fn http_boot_gets_a_url_and_httpclient() {
        let c = cfg();
        let r = req(
            MAC,
            &[(60, b"HTTPClient:Arch:00016:UNDI:003001"), (93, &[0, 16])],
        );
        let b = choose(
            &c,
            c.unknown_boot,
            &r,
            Some(&known(Loader::Pxelinux)),
            false,
        )
        .unwrap();
        assert_eq!(
            b.file.as_deref(),
            Some("http://10.0.0.1:9090/images/ipxe.efi")
        );
        assert_eq!(b.vendor_class, Some("HTTPClient"));
        let r = req(
            MAC,
            &[(60, b"HTTPClient:Arch:00019:UNDI:003001"), (93, &[0, 19])],
        );
        assert_eq!(firmware(&r), Firmware::HttpArm64);
    }

    #[test]
    fn raspberry_pi_by_class_and_oui() {
        let c = cfg();
        let r = req(
            [0xdc, 0xa6, 0x32, 1, 2, 3],
            &[(60, PI_VENDOR_CLASS), (93, &[0, 0])],
        );
        let b = choose(
            &c,
            c.unknown_boot,
            &r,
            Some(&known(Loader::Pxelinux)),
            false,
        )
        .unwrap();
        assert_eq!(b.firmware, Firmware::RaspberryPi);
        assert_eq!(b.file, None);
        let opts = b.vendor_opts.unwrap();
        let menu = sub_option(&opts, 9).unwrap();
        assert_eq!(&menu[3..], b"Raspberry Pi Boot");
        // Same class, other vendor's MAC: a BIOS PXE client.
        let r = req(MAC, &[(60, PI_VENDOR_CLASS), (93, &[0, 0])]);
        assert_eq!(firmware(&r), Firmware::Bios);
    }

    /// A Pi's DISCOVER: the BOOTP header, then the options exactly as the
    /// boot ROM / EEPROM lays them out after the magic cookie.
    fn pi_discover(mac: [u8; 6], options: &[u8]) -> Request {
        let mut p = client_packet(0x26f3_0339, mac, 0, [0; 4], [0; 4], &[]);
        p.truncate(240);
        p.extend_from_slice(options);
        p.resize(p.len().max(300), 0);
        decode(&p).unwrap()
    }

    /// Options of a Pi 3 boot ROM DISCOVER (Raspberry Pi documentation,
    /// "Network booting", DHCP request capture): 53, 55, 93 = 0, 94,
    /// 97 = a constant GUID (0x44 x 16), 60.
    const PI3_OPTIONS: &[u8] = &[
        53, 1, 1, //
        55, 12, 43, 60, 67, 128, 129, 130, 131, 132, 133, 134, 135, 66, //
        93, 2, 0, 0, //
        94, 3, 1, 2, 1, //
        97, 17, 0, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44,
        0x44, 0x44, 0x44, //
        60, 32, b'P', b'X', b'E', b'C', b'l', b'i', b'e', b'n', b't', b':', b'A', b'r', b'c', b'h',
        b':', b'0', b'0', b'0', b'0', b'0', b':', b'U', b'N', b'D', b'I', b':', b'0', b'0', b'2',
        b'0', b'0', b'1', //
        255,
    ];

    /// Options of a Pi 4 / Pi 5 EEPROM DISCOVER: option 55 as dnsmasq logs
    /// it for a CM4, option 97 in the EEPROM's default GUID form
    /// (`DHCP_OPTION97`: FourCC `RPi4`/`RPi5`, board revision, MAC low
    /// bytes, serial), with `fourcc` and `serial` filled in.
    fn pi4_options(fourcc: u8, mac: [u8; 6], serial: [u8; 4]) -> Vec<u8> {
        let mut o = vec![
            53, 1, 1, //
            55, 14, 1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135, //
            93, 2, 0, 0, //
            94, 3, 1, 2, 1, //
            97, 17, 0, b'R', b'P', b'i', fourcc, 0x11, 0x31, 0xc0, 0x00,
        ];
        o.extend_from_slice(&mac[2..]);
        o.extend_from_slice(&serial);
        o.extend_from_slice(&[60, 32]);
        o.extend_from_slice(PI_VENDOR_CLASS);
        o.push(255);
        o
    }

    #[test]
    fn every_pi_oui_is_a_pi() {
        let c = cfg();
        let serial = [0x4d, 0x3c, 0x2b, 0x1a];
        let cases: [([u8; 6], Vec<u8>); 6] = [
            ([0xb8, 0x27, 0xeb, 0x28, 0xf6, 0x6d], PI3_OPTIONS.to_vec()),
            (
                [0xdc, 0xa6, 0x32, 0xc2, 0x1f, 0xfe],
                pi4_options(b'4', [0xdc, 0xa6, 0x32, 0xc2, 0x1f, 0xfe], serial),
            ),
            (
                [0xe4, 0x5f, 0x01, 0xb7, 0x9d, 0xf1],
                pi4_options(b'4', [0xe4, 0x5f, 0x01, 0xb7, 0x9d, 0xf1], serial),
            ),
            (
                [0x28, 0xcd, 0xc1, 0x01, 0x02, 0x03],
                pi4_options(b'5', [0x28, 0xcd, 0xc1, 0x01, 0x02, 0x03], serial),
            ),
            (
                [0xd8, 0x3a, 0xdd, 0x01, 0x02, 0x03],
                pi4_options(b'5', [0xd8, 0x3a, 0xdd, 0x01, 0x02, 0x03], serial),
            ),
            (
                [0x2c, 0xcf, 0x67, 0x01, 0x02, 0x03],
                pi4_options(b'5', [0x2c, 0xcf, 0x67, 0x01, 0x02, 0x03], serial),
            ),
        ];
        assert_eq!(cases.len(), PI_OUIS.len());
        for (mac, options) in &cases {
            let r = pi_discover(*mac, options);
            assert_eq!(firmware(&r), Firmware::RaspberryPi, "{:02x?}", &mac[..3]);
            let b = choose(
                &c,
                c.unknown_boot,
                &r,
                Some(&known(Loader::Pxelinux)),
                false,
            )
            .unwrap();
            assert_eq!((b.firmware, b.file), (Firmware::RaspberryPi, None));
            assert_eq!(b.vendor_class, Some("PXEClient"));
            // The same request from a MAC outside the Pi OUIs is BIOS PXE.
            let other = pi_discover(MAC, options);
            assert_eq!(firmware(&other), Firmware::Bios);
        }
    }

    #[test]
    fn local_boot_and_unknown_machines() {
        let mut c = cfg();
        let bios = req(
            MAC,
            &[(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])],
        );
        let installed = MachineView {
            local_boot: true,
            ..MachineView::default()
        };
        assert_eq!(
            choose(&c, c.unknown_boot, &bios, Some(&installed), false),
            None
        );
        assert_eq!(choose(&c, c.unknown_boot, &bios, None, false), None);
        c.unknown_boot = UnknownBoot::Loader(Loader::Ipxe);
        let b = choose(&c, c.unknown_boot, &bios, None, true).unwrap();
        assert_eq!(b.file.as_deref(), Some("undionly.kpxe"));
        assert_eq!(b.vendor_class, Some("PXEClient"));
        assert_eq!(b.vendor_opts, Some(pxe_use_bootfile()));
        // Not a netboot client at all.
        let plain = req(MAC, &[]);
        assert_eq!(choose(&c, c.unknown_boot, &plain, None, false), None);
        // An architecture we have no loader for.
        let r = req(
            MAC,
            &[(60, b"PXEClient:Arch:00002:UNDI:003000"), (93, &[0, 2])],
        );
        assert_eq!(choose(&c, c.unknown_boot, &r, None, false), None);
    }

    #[test]
    fn boot_server_ack_echoes_boot_item() {
        let r = req(
            MAC,
            &[
                (60, b"PXEClient:Arch:00000:UNDI:002001"),
                (43, &[71, 4, 0x80, 0x00, 0x00, 0x00, 255]),
            ],
        );
        let v = pxe_boot_server_ack(&r);
        assert_eq!(sub_option(&v, 71), Some(&[0x80, 0, 0, 0][..]));
        assert_eq!(sub_option(&v, 6), Some(&[8][..]));
    }
}
