//! DHCP through the real binary over loopback: the test is a relay agent
//! (giaddr 127.0.0.1) with its own port. A machine created through the API
//! gets its reserved address and pxelinux; an unknown one gets a pool
//! address and no boot file; the DHCP steps are events on the machine and
//! the lease is visible at `GET /leases`; each DORA is one info line on
//! stderr. 127.0.0.1 only.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, tempdir};
use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

fn packet(msg_type: u8, mac: [u8; 6], xid: u32, extra: &[(u8, &[u8])]) -> Vec<u8> {
    let pxe: [(u8, &[u8]); 2] = [(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])];
    packet_as(msg_type, mac, xid, &pxe, extra)
}

/// A relayed request from a client that says it is `firmware` (options
/// 60 and 93).
fn packet_as(
    msg_type: u8,
    mac: [u8; 6],
    xid: u32,
    firmware: &[(u8, &[u8])],
    extra: &[(u8, &[u8])],
) -> Vec<u8> {
    let mut b = vec![1u8, 1, 6, 1];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0; 16]); // secs, flags, ciaddr, yiaddr, siaddr
    b.extend_from_slice(&Ipv4Addr::LOCALHOST.octets()); // giaddr: we are the relay
    b.extend_from_slice(&mac);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&[99, 130, 83, 99]);
    let mut opts: Vec<(u8, &[u8])> = vec![(53, std::slice::from_ref(&msg_type))];
    opts.extend_from_slice(firmware);
    opts.extend_from_slice(extra);
    for (c, v) in opts {
        b.push(c);
        b.push(v.len() as u8);
        b.extend_from_slice(v);
    }
    b.push(255);
    b.resize(300, 0);
    b
}

/// (message type, yiaddr, option 67)
fn parse(b: &[u8]) -> (u8, Ipv4Addr, Option<String>) {
    assert!(b.len() > 240 && b[0] == 2, "not a BOOTREPLY");
    let yiaddr = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    let (mut t, mut file) = (0, None);
    let mut i = 240;
    while i + 1 < b.len() && b[i] != 255 {
        if b[i] == 0 {
            i += 1;
            continue;
        }
        let (c, l) = (b[i], b[i + 1] as usize);
        let v = &b[i + 2..i + 2 + l];
        match c {
            53 => t = v[0],
            67 => {
                file = Some(
                    String::from_utf8_lossy(v)
                        .trim_end_matches('\0')
                        .to_string(),
                )
            }
            _ => {}
        }
        i += 2 + l;
    }
    (t, yiaddr, file)
}

fn exchange(sock: &UdpSocket, server: u16, msg: &[u8]) -> (u8, Ipv4Addr, Option<String>) {
    sock.send_to(msg, ("127.0.0.1", server)).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("a DHCP reply within the timeout");
    parse(&buf[..n])
}

/// gopxe with DHCP in `mode` on loopback, and the test's relay socket;
/// returns them and gopxe's DHCP port. Authoritative mode has the pool
/// 127.0.0.100-150.
fn start_relayed(tag: &str, mode: &str) -> (Gopxe, UdpSocket, u16) {
    start_relayed_with(tag, mode, &[])
}

/// [`start_relayed`] with more flags.
fn start_relayed_with(tag: &str, mode: &str, extra: &[&str]) -> (Gopxe, UdpSocket, u16) {
    let dir = tempdir(tag);
    let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (g, server) = common::start_behind_relay(&dir, &relay, mode, extra);
    (g.owning(dir), relay, server)
}

/// UEFI HTTP boot: the offer's boot file is a URL this gopxe serves, and
/// it answers it with the loader from the images tree.
#[test]
fn an_http_boot_client_is_offered_a_url_gopxe_serves() {
    let (g, relay, server) = start_relayed("http-boot", "authoritative");
    std::fs::write(g.dir.join("images/ipxe.efi"), b"MZ an EFI loader").unwrap();
    let r = g.post(
        "/bootaction/a",
        r#"{"kernel": "k/vmlinuz", "loader": "ipxe"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = g.post(
        "/pxeboot",
        r#"{"bootaction": "a", "mac": "52:54:00:00:16:01"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let http: [(u8, &[u8]); 2] = [(60, b"HTTPClient:Arch:00016:UNDI:003001"), (93, &[0, 16])];
    let discover = packet_as(1, [0x52, 0x54, 0, 0, 0x16, 1], 16, &http, &[]);
    let (t, _, file) = exchange(&relay, server, &discover);
    assert_eq!(t, 2, "an offer");
    let url = file.expect("a boot file URL");
    let base = format!("http://127.0.0.1:{}", g.port);
    let path = url
        .strip_prefix(&base)
        .unwrap_or_else(|| panic!("{url} is not on {base}"));
    let got = g.get(path);
    assert_eq!(got.status, 200, "GET {url}");
    assert_eq!(got.text(), "MZ an EFI loader");
}

/// Loaders are data: a boot action without `loader` boots each firmware
/// class's default (signed shim on x64 UEFI, signed GRUB on arm64,
/// pxelinux on BIOS); `--loader` changes a class's default and
/// `--loader-file` a file's name; a boot action's family wins where the
/// class has it.
#[test]
fn each_firmware_class_boots_its_configured_loader() {
    let (g, relay, server) = start_relayed_with(
        "loaders",
        "authoritative",
        &[
            "--loader",
            "efi-arm64=shim-grub",
            "--loader-file",
            "efi-arm64.shim-grub=sb/shimaa64.efi",
        ],
    );
    assert_eq!(
        g.post("/bootaction/auto", r#"{"kernel": "k/vmlinuz"}"#)
            .status,
        201
    );
    let r = g.post(
        "/bootaction/grub",
        r#"{"kernel": "k/vmlinuz", "loader": "grub"}"#,
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["loader"], "grub");
    let uefi = |arch: u8| -> Vec<(u8, Vec<u8>)> {
        vec![
            (
                60,
                format!("PXEClient:Arch:{arch:05}:UNDI:003000").into_bytes(),
            ),
            (93, vec![0, arch]),
        ]
    };
    for (n, action, arch, want) in [
        (1u8, "auto", 0u8, "pxelinux.0"),
        (2, "auto", 7, "shimx64.efi"),
        (3, "auto", 11, "sb/shimaa64.efi"),
        (4, "grub", 7, "grubx64.efi"),
        (5, "grub", 11, "grubaa64.efi"),
        // No GRUB for BIOS: its default.
        (6, "grub", 0, "pxelinux.0"),
    ] {
        let mac = format!("52:54:00:00:17:{n:02x}");
        let body = format!(r#"{{"bootaction": "{action}", "mac": "{mac}"}}"#);
        assert_eq!(g.post("/pxeboot", &body).status, 201);
        let opts = uefi(arch);
        let opts: Vec<(u8, &[u8])> = opts.iter().map(|(c, v)| (*c, v.as_slice())).collect();
        let discover = packet_as(1, [0x52, 0x54, 0, 0, 0x17, n], u32::from(n), &opts, &[]);
        let (t, _, file) = exchange(&relay, server, &discover);
        assert_eq!(
            (t, file.as_deref()),
            (2, Some(want)),
            "{action} on arch {arch}"
        );
    }
    // A family the class has no file for is refused at start, by name.
    let dir = tempdir("loaders-bad");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gopxe"))
        .args(["check-config", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--loader", "bios=grub"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--loader") && err.contains("bios clients have no grub loader"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn machines_get_reservations_and_boot_files_through_a_relay() {
    let (g, relay, server) = start_relayed("dhcp", "authoritative");
    assert_eq!(
        g.post("/bootaction/a", r#"{"kernel": "k/vmlinuz"}"#).status,
        201
    );
    let known = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let body = r#"{"bootaction": "a", "mac": "52:54:00:12:34:56", "hostname": "n1.lab", "ip": "127.0.0.50", "mask": "255.0.0.0", "gw": "127.0.0.1", "ns1": "127.0.0.53"}"#;
    assert_eq!(g.post("/pxeboot", body).status, 201);

    let (t, ip, file) = exchange(&relay, server, &packet(1, known, 1, &[]));
    assert_eq!(
        (t, ip, file.as_deref()),
        (2, Ipv4Addr::new(127, 0, 0, 50), Some("pxelinux.0"))
    );
    let req = packet(
        3,
        known,
        2,
        &[(50, &[127, 0, 0, 50]), (54, &[127, 0, 0, 1])],
    );
    let (t, ip, _) = exchange(&relay, server, &req);
    assert_eq!(
        (t, ip),
        (5, Ipv4Addr::new(127, 0, 0, 50)),
        "ACK with the reserved address"
    );

    let events = g.get("/pxeboot/52:54:00:12:34:56/events").text();
    assert!(
        events.contains("OFFER sent") && events.contains("ACK sent"),
        "{events}"
    );
    let leases = g.get("/leases").json();
    assert!(leases.to_string().contains("127.0.0.50"), "{leases}");

    // An unknown PXE client gets a pool address and no boot file (local boot).
    let stranger = [0x52, 0x54, 0, 0x99, 0x99, 0x99];
    let (t, ip, file) = exchange(&relay, server, &packet(1, stranger, 3, &[]));
    assert_eq!(t, 2);
    assert!((100..=150).contains(&ip.octets()[3]), "{ip}");
    assert_eq!(file, None);
    // Its ACK is the exchange's info line.
    let req = packet(3, stranger, 5, &[(50, &ip.octets()), (54, &[127, 0, 0, 1])]);
    assert_eq!(exchange(&relay, server, &req).0, 5);
    assert!(
        common::wait_until(Duration::from_secs(5), || g
            .log_text()
            .contains("unknown machine ACK sent")),
        "{}",
        g.log_text()
    );

    // The DHCP counters are in the metrics.
    let metrics = g.get("/metrics").text();
    assert!(
        metrics.contains("gopxe_dhcp_packets_total{type=\"OFFER\",outcome=\"sent\"} 2"),
        "{metrics}"
    );

    // Garbage on the DHCP port is dropped and the server keeps answering.
    for junk in [&b""[..], b"\x01", &[0xff; 600], &[1u8; 240]] {
        relay.send_to(junk, ("127.0.0.1", server)).unwrap();
    }
    let (t, _, _) = exchange(&relay, server, &packet(1, known, 4, &[]));
    assert_eq!(t, 2);
}

const UUID: &str = "8d6f2a1e-4b3c-4d2e-9f10-a1b2c3d4e5f6";

/// Option 97 as firmware sends it: type 0 and the UUID in SMBIOS byte
/// order (the first three fields little-endian).
fn option_97() -> Vec<u8> {
    let hex: String = UUID.chars().filter(char::is_ascii_hexdigit).collect();
    let b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut v = vec![0u8];
    v.extend([b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]]);
    v.extend_from_slice(&b[8..]);
    v
}

fn state(g: &Gopxe, id: &str) -> String {
    g.get(&format!("/pxeboot/{id}")).json()["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A machine registered by its SMBIOS UUID: its firmware's DHCP carries
/// the UUID, its installer's does not. The installer still gets the
/// machine's reservation (gopxe learned its MAC from the firmware), and a
/// kickstart fetched from that address is the machine's own: it starts
/// the install. From any other loopback address it is a preview.
#[test]
fn an_installer_without_the_uuid_is_still_its_machine() {
    let (g, relay, server) = start_relayed("dhcp-uuid", "authoritative");
    assert_eq!(
        g.post("/bootaction/a", r#"{"kernel": "k/vmlinuz"}"#).status,
        201
    );
    let body = format!(
        r#"{{"bootaction": "a", "uuid": "{UUID}", "hostname": "n2.lab", "ip": "127.0.0.51", "mask": "255.0.0.0"}}"#
    );
    assert_eq!(g.post("/pxeboot", &body).status, 201);
    let mac = [0x52, 0x54, 0, 0xe2, 0xe1, 0x01];
    let reserved = Ipv4Addr::new(127, 0, 0, 51);
    let uuid = option_97();
    // The firmware: by UUID.
    let (t, ip, _) = exchange(&relay, server, &packet(1, mac, 10, &[(97, &uuid)]));
    assert_eq!((t, ip), (2, reserved));
    // The installer: the same MAC, no UUID.
    let (t, ip, _) = exchange(&relay, server, &packet(1, mac, 11, &[]));
    assert_eq!((t, ip), (2, reserved), "the installer gets the reservation");
    let req = packet(
        3,
        mac,
        12,
        &[(50, &reserved.octets()), (54, &[127, 0, 0, 1])],
    );
    assert_eq!(exchange(&relay, server, &req).1, reserved);
    // Its kickstart: a preview from elsewhere (another loopback address:
    // the admin, without a token), the install from there.
    let ks = format!("/kickstart/{UUID}");
    let r = common::request_from("127.0.0.9", g.port, "GET", &ks, &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(state(&g, UUID), "install");
    let r = common::request_from("127.0.0.51", g.port, "GET", &ks, &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(state(&g, UUID), "installing");
}

/// In proxy mode the lab's server hands out the installer's address; gopxe
/// sees it in the installer's broadcast REQUEST (option 50) and counts that
/// address as the machine's.
#[test]
fn proxy_mode_learns_the_installers_address_from_its_request() {
    let (g, relay, server) = start_relayed("dhcp-proxy-addr", "proxy");
    assert_eq!(
        g.post("/bootaction/a", r#"{"kernel": "k/vmlinuz"}"#).status,
        201
    );
    let body = r#"{"bootaction": "a", "mac": "52:54:00:e2:e1:02", "hostname": "n3.lab"}"#;
    assert_eq!(g.post("/pxeboot", body).status, 201);
    let id = "01-52-54-00-e2-e1-02";
    let mac = [0x52, 0x54, 0, 0xe2, 0xe1, 0x02];
    let ks = format!("/kickstart/{id}");
    let from = |ip: &str| common::request_from(ip, g.port, "GET", &ks, &[], b"");
    assert_eq!(from("127.0.0.77").status, 200);
    assert_eq!(state(&g, id), "install", "not yet its address");
    // The REQUEST to the lab's server (127.0.0.254) for 127.0.0.77.
    let req = packet(
        3,
        mac,
        20,
        &[(50, &[127, 0, 0, 77]), (54, &[127, 0, 0, 254])],
    );
    relay.send_to(&req, ("127.0.0.1", server)).unwrap();
    assert!(
        common::wait_until(Duration::from_secs(5), || {
            from("127.0.0.77");
            state(&g, id) == "installing"
        }),
        "{}",
        g.log_text()
    );
}

/// One DORA, relayed; the address acknowledged.
fn dora(relay: &UdpSocket, server: u16, mac: [u8; 6], xid: u32) -> Ipv4Addr {
    let (t, offered, _) = exchange(relay, server, &packet(1, mac, xid, &[]));
    assert_eq!(t, 2, "an OFFER");
    let opts: [(u8, &[u8]); 2] = [(50, &offered.octets()), (54, &[127, 0, 0, 1])];
    let (t, ip, _) = exchange(relay, server, &packet(3, mac, xid + 1, &opts));
    assert_eq!((t, ip), (5, offered), "an ACK");
    ip
}

/// At the default level (`info`) each DORA is one line on stderr, from a
/// known machine or a stranger; the lines are all there once SIGTERM
/// stopped gopxe (the log's queue is flushed on the way out).
#[test]
fn a_dora_is_one_info_line_on_stderr() {
    let (mut g, relay, server) = start_relayed("dhcp-lines", "authoritative");
    assert_eq!(
        g.post("/bootaction/a", r#"{"kernel": "k/vmlinuz"}"#).status,
        201
    );
    let body = r#"{"bootaction": "a", "mac": "52:54:00:0d:0e:01"}"#;
    assert_eq!(g.post("/pxeboot", body).status, 201);
    let known = [0x52, 0x54, 0, 0x0d, 0x0e, 0x01];
    let stranger = [0x52, 0x54, 0, 0x0d, 0x0e, 0x02];
    for round in 0..3 {
        dora(&relay, server, known, 100 + 10 * round);
        dora(&relay, server, stranger, 200 + 10 * round);
    }
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &g.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut status = None;
    assert!(common::wait_until(Duration::from_secs(10), || {
        status = g.child.try_wait().unwrap();
        status.is_some()
    }));
    let log = g.log_text();
    assert!(log.contains("stopping on Term"), "{log}");
    for mac in ["52:54:00:0d:0e:01", "52:54:00:0d:0e:02"] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" INFO ") && l.contains("dhcp") && l.contains(mac))
            .collect();
        assert_eq!(lines.len(), 3, "one per DORA for {mac}: {lines:#?}\n{log}");
        assert!(lines.iter().all(|l| l.contains("ACK sent")), "{lines:#?}");
    }
    // Every line of the log has the format of the line users read.
    for l in log.lines().filter(|l| l.starts_with('[')) {
        assert_eq!(l.get(20..22), Some("Z "), "{l}");
    }
}
