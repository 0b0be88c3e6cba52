//! A Raspberry Pi's TFTP boot through the real binary over loopback: the
//! names a Pi 4 asks for under its serial (or MAC) directory get the
//! rendered `config.txt` / `cmdline.txt`, the shared firmware of the
//! `rpi_firmware` directory and the boot action's kernel; `bootsig.bin` is
//! "file not found"; an installed Pi gets nothing under its directory.
//! Records are keyed `pi-<serial>` through the API. Uses curl's TFTP
//! client, and a raw request where the error code matters.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, tempdir};
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

fn tftp_get(port: u16, name: &str) -> Option<Vec<u8>> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--tftp-blksize", "1468"])
        .arg(format!("tftp://127.0.0.1:{port}/{name}"))
        .output()
        .expect("curl is installed (the test script installs it)");
    out.status.success().then_some(out.stdout)
}

/// A bare RRQ (no options, as the Pi 3 boot ROM sends) and the first
/// packet of the answer.
fn raw_rrq(port: u16, name: &str) -> Vec<u8> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(name.as_bytes());
    rrq.extend_from_slice(b"\0octet\0");
    s.send_to(&rrq, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 1600];
    let (n, _) = s.recv_from(&mut buf).expect("an answer, not silence");
    buf[..n].to_vec()
}

/// The Pi's own address, for its installer's answer-file fetch.
const PI_IP: &str = "127.0.0.7";

#[test]
fn a_pi_boots_from_its_serial_directory() {
    let dir = tempdir("rpi");
    let images = dir.join("images");
    std::fs::create_dir_all(images.join("rpi/overlays")).unwrap();
    std::fs::create_dir_all(images.join("debian-arm64")).unwrap();
    let start4: Vec<u8> = (0..100_000u32).map(|i| ((i * 7) >> 3) as u8).collect();
    std::fs::write(images.join("rpi/start4.elf"), &start4).unwrap();
    std::fs::write(images.join("rpi/overlays/overlay_map.dtb"), b"map").unwrap();
    std::fs::write(images.join("rpi/bootsig.bin"), b"never served").unwrap();
    std::fs::write(images.join("bootsig.bin"), b"never served").unwrap();
    std::fs::write(images.join("debian-arm64/linux"), b"kernel").unwrap();
    let g = Gopxe::start(&dir, &["--advertise-addr", "127.0.0.1"]);
    let port = g.announced_port("tftp").expect("tftp port announced");
    assert_eq!(
        g.post(
            "/bootaction/pi",
            r#"{"kernel": "debian-arm64/linux", "initrd": "debian-arm64/initrd.gz",
                "append": "console=ttyAMA0,115200"}"#
        )
        .status,
        201
    );
    let created = g.post(
        "/pxeboot",
        &format!(r#"{{"bootaction": "pi", "serial": "1a2b3c4d", "hostname": "pi7.lab", "ip": "{PI_IP}"}}"#),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    assert!(created.text().contains("pi-1a2b3c4d"), "{}", created.text());
    assert_eq!(g.get("/pxeboot/pi-1a2b3c4d").status, 200);

    // The Pi 3 boot ROM's second name: TFTP error 1, file not found, even
    // with a file of that name in the tree.
    let err = raw_rrq(port, "bootsig.bin");
    assert_eq!(&err[..4], &[0, 5, 0, 1], "{err:?}");
    assert_eq!(tftp_get(port, "bootsig.bin"), None);

    // A Pi 4 under its serial: the firmware first (shared), then config.txt.
    assert!(tftp_get(port, "1a2b3c4d/start4.elf").unwrap() == start4);
    let config = String::from_utf8(tftp_get(port, "1a2b3c4d/config.txt").unwrap()).unwrap();
    assert!(config.contains("\nkernel=debian-arm64/linux\n"), "{config}");
    assert!(
        config.contains("\ninitramfs debian-arm64/initrd.gz followkernel\n"),
        "{config}"
    );
    assert_eq!(
        tftp_get(port, "1a2b3c4d/overlays/overlay_map.dtb").unwrap(),
        b"map"
    );
    let cmdline = String::from_utf8(tftp_get(port, "1a2b3c4d/cmdline.txt").unwrap()).unwrap();
    assert!(
        cmdline.starts_with("console=ttyAMA0,115200 ks=http://127.0.0.1:")
            && cmdline.ends_with('\n')
            && cmdline.lines().count() == 1,
        "{cmdline}"
    );
    // The kernel config.txt names, fetched under the prefix.
    assert_eq!(
        tftp_get(port, "1a2b3c4d/debian-arm64/linux").unwrap(),
        b"kernel"
    );
    // Missing firmware is "not found"; no way out of the images tree.
    assert_eq!(tftp_get(port, "1a2b3c4d/fixup4.dat"), None);
    assert_eq!(tftp_get(port, "1a2b3c4d/../../etc/passwd"), None);
    let events = g.get("/pxeboot/pi-1a2b3c4d/events").text();
    assert!(events.contains("config.txt"), "{events}");

    // An unknown Pi (unknown machines boot locally): nothing to netboot.
    assert_eq!(tftp_get(port, "0badcafe/config.txt"), None);
    assert_eq!(tftp_get(port, "0badcafe/start4.elf"), None);
    // A MAC-keyed Pi asking under its MAC (TFTP_PREFIX=2).
    assert_eq!(
        g.post(
            "/pxeboot",
            r#"{"bootaction": "pi", "mac": "dc:a6:32:01:02:03"}"#
        )
        .status,
        201
    );
    let config = tftp_get(port, "dc-a6-32-01-02-03/config.txt").unwrap();
    assert!(String::from_utf8_lossy(&config).contains("kernel=debian-arm64/linux"));

    // Installed (its installer fetched its answers from the Pi's address,
    // then called back): every name under its directory is "not found",
    // so its EEPROM moves on to the next boot mode.
    let ks = g.get_from(PI_IP, "/kickstart/pi-1a2b3c4d");
    assert_eq!(ks.status, 200);
    let done = g.post(&common::done_path(&ks.text()), "");
    assert_eq!(done.json()["state"], "installed", "{}", done.text());
    for name in [
        "1a2b3c4d/config.txt",
        "1a2b3c4d/cmdline.txt",
        "1a2b3c4d/start4.elf",
    ] {
        assert_eq!(tftp_get(port, name), None, "{name}");
    }
    let err = raw_rrq(port, "1a2b3c4d/start4.elf");
    assert_eq!(&err[..4], &[0, 5, 0, 1], "{err:?}");
}
