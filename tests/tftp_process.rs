//! TFTP through the real binary over loopback: per-machine configs are the
//! same text `GET /pxelinux/{file}` returns, under every name pxelinux asks
//! for; images are served byte for byte; transfers become events of the
//! machine and counters in the metrics; one client address cannot take
//! more than `tftp_max_per_client` transfers. Uses curl's TFTP client, and
//! raw requests where the test needs transfers left hanging.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, tempdir};
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

fn tftp_get(port: u16, name: &str, blksize: &str) -> Option<Vec<u8>> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--tftp-blksize", blksize])
        .arg(format!("tftp://127.0.0.1:{port}/{name}"))
        .output()
        .expect("curl is installed (the test script installs it)");
    out.status.success().then_some(out.stdout)
}

#[test]
fn boot_configs_and_images_over_tftp() {
    let dir = tempdir("tftp");
    std::fs::create_dir_all(dir.join("images/k")).unwrap();
    let kernel: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("images/k/vmlinuz"), &kernel).unwrap();
    std::fs::write(dir.join("images/pxelinux.0"), b"loader").unwrap();
    let g = Gopxe::start(&dir, &["--advertise-addr", "127.0.0.1"]);
    let port = g.announced_port("tftp").expect("tftp port announced");
    assert_eq!(
        g.post("/bootaction/a", r#"{"kernel": "k/vmlinuz", "ip": "dhcp"}"#)
            .status,
        201
    );
    let uuid = "5a6e8f1c-2b3d-4e5f-8899-aabbccddeeff";
    let body = format!(
        r#"{{"bootaction": "a", "uuid": "{uuid}", "hostname": "t1.lab", "ip": "127.0.0.1"}}"#
    );
    assert_eq!(g.post("/pxeboot", &body).status, 201);

    let want = g.get(&format!("/pxelinux/{uuid}")).body;
    assert!(String::from_utf8_lossy(&want).contains("KERNEL k/vmlinuz"));
    // pxelinux's names: the UUID in option-97 byte order, the hex IP.
    for name in [
        format!("pxelinux.cfg/{uuid}"),
        "pxelinux.cfg/1c8f6e5a-3d2b-5f4e-8899-aabbccddeeff".to_string(),
        "/pxelinux.cfg/7F000001".to_string(),
    ] {
        assert_eq!(
            tftp_get(port, &name, "1468").as_deref(),
            Some(want.as_slice()),
            "{name}"
        );
    }
    // Unknown names fall through; `default` is local boot.
    assert_eq!(
        tftp_get(port, "pxelinux.cfg/01-52-54-00-00-00-09", "512"),
        None
    );
    let dflt = tftp_get(port, "pxelinux.cfg/default", "512").unwrap();
    assert!(String::from_utf8_lossy(&dflt).contains("LOCALBOOT 0"));
    // Files: byte for byte, at two block sizes.
    assert_eq!(tftp_get(port, "pxelinux.0", "512").unwrap(), b"loader");
    assert!(tftp_get(port, "k/vmlinuz", "1468").unwrap() == kernel);
    assert_eq!(tftp_get(port, "../etc/passwd", "512"), None);

    let events = g.get(&format!("/pxeboot/{uuid}/events")).text();
    assert!(
        events.contains("tftp k/vmlinuz completed (3000000 bytes"),
        "{events}"
    );
    let metrics = g.get("/metrics").text();
    assert!(
        metrics.contains("gopxe_tftp_transfers_total{outcome=\"completed\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gopxe_tftp_errors_total{error=\"not_found\"}"),
        "{metrics}"
    );
}

/// GRUB's config names over TFTP and `/images/` over HTTP: the dispatcher,
/// a machine's config by MAC and hex IP, following the machine from
/// `install` to `installed` (exit) and back with `reinstall`; a file of
/// the same name in the images tree is not what GRUB gets.
#[test]
fn grub_configs_follow_the_machine_over_tftp_and_http() {
    let dir = tempdir("grub");
    std::fs::create_dir_all(dir.join("images/grub")).unwrap();
    std::fs::write(dir.join("images/grub/grub.cfg"), b"static config").unwrap();
    let g = Gopxe::start(&dir, &["--advertise-addr", "127.0.0.1"]);
    let port = g.announced_port("tftp").expect("tftp port announced");
    let action = r#"{"kernel": "deb/linux", "initrd": "deb/initrd.gz", "installer": "preseed", "loader": "shim-grub"}"#;
    assert_eq!(g.post("/bootaction/deb", action).status, 201);
    let body = r#"{"bootaction": "deb", "mac": "52:54:00:00:00:0a", "hostname": "g1.lab", "ip": "127.0.0.5"}"#;
    assert_eq!(g.post("/pxeboot", body).status, 201);
    let id = "01-52-54-00-00-00-0a";

    let text = |b: Option<Vec<u8>>| String::from_utf8(b.expect("answered")).unwrap();
    let dispatcher = text(tftp_get(port, "grub/grub.cfg", "512"));
    assert!(dispatcher.contains("$net_default_mac"), "{dispatcher}");
    assert!(
        dispatcher.ends_with("\nexit\n"),
        "unknown machines boot locally"
    );
    let by_mac = text(tftp_get(port, "grub/grub.cfg-01-52-54-00-00-00-0a", "512"));
    assert!(
        by_mac.contains("\tlinux /deb/linux auto=true priority=critical url=http://127.0.0.1:"),
        "{by_mac}"
    );
    assert!(by_mac.contains("\tinitrd /deb/initrd.gz\n"), "{by_mac}");
    // By its static address, under the prefix of Debian's installer GRUB.
    let name = "debian-installer/amd64/grub/grub.cfg-7F000005";
    assert_eq!(text(tftp_get(port, name, "512")), by_mac);
    assert_eq!(
        tftp_get(port, "grub/grub.cfg-01-52-54-00-00-00-0b", "512"),
        None
    );
    // Over HTTP: the same config, kernel paths under /images/.
    let http = g.get("/images/grub/grub.cfg-01-52-54-00-00-00-0a");
    assert_eq!(http.status, 200);
    assert!(
        http.text().contains("\tlinux /images/deb/linux "),
        "{}",
        http.text()
    );
    assert!(
        g.get("/images/grub/grub.cfg")
            .text()
            .contains("$net_default_mac")
    );
    assert_eq!(
        g.get("/images/grub/grub.cfg-01-52-54-00-00-00-0b").status,
        404
    );

    // The installer fetches its preseed, then calls back: installed, and
    // GRUB goes back to the firmware; reinstall: the installer again.
    assert_eq!(
        g.get_from("127.0.0.5", &format!("/preseed/{id}")).status,
        200
    );
    let done = format!("/pxeboot/{id}/done");
    assert!(g.post(&done, "").status < 300);
    let local = text(tftp_get(port, "grub/grub.cfg-01-52-54-00-00-00-0a", "512"));
    assert!(
        local.ends_with("\nexit\n") && !local.contains("linux"),
        "{local}"
    );
    assert!(g.post(&format!("/pxeboot/{id}/reinstall"), "").status < 300);
    let again = text(tftp_get(port, "grub/grub.cfg-01-52-54-00-00-00-0a", "512"));
    assert!(again.contains("\tlinux /deb/linux"), "{again}");
    // Each TFTP fetch is an event; the look over HTTP from another
    // address (an admin's browser) is not.
    let events = g.get(&format!("/pxeboot/{id}/events")).text();
    assert_eq!(
        events
            .matches("config grub/grub.cfg-01-52-54-00-00-00-0a sent")
            .count(),
        3,
        "{events}"
    );
}

/// Sends an RRQ for `name` from `from` (port 0) and returns the first
/// packet answered, from whichever port; the transfer is never ACKed.
fn rrq_from(from: &str, port: u16, name: &str) -> Vec<u8> {
    let s = UdpSocket::bind((from, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut p = vec![0, 1];
    p.extend_from_slice(name.as_bytes());
    p.extend_from_slice(b"\0octet\0");
    s.send_to(&p, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 1024];
    let (n, _) = s
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no answer from {from}: {e}"));
    buf[..n].to_vec()
}

#[test]
fn one_address_gets_at_most_max_per_client_transfers() {
    let dir = tempdir("tftp-per-client");
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::write(dir.join("images/pxelinux.0"), vec![7u8; 4000]).unwrap();
    let g = Gopxe::start(&dir, &["--tftp-max-per-client", "2"]);
    let port = g.announced_port("tftp").expect("tftp port announced");
    // Two transfers from 127.0.0.1 start (DATA block 1) and hang.
    for _ in 0..2 {
        let p = rrq_from("127.0.0.1", port, "pxelinux.0");
        assert_eq!(p.get(..4), Some(&[0, 3, 0, 1][..]), "{p:?}");
    }
    // A third from the same address, another port: error 0.
    let p = rrq_from("127.0.0.1", port, "pxelinux.0");
    let mut want = vec![0, 5, 0, 0];
    want.extend_from_slice(b"too many transfers from your address, try again later\0");
    assert_eq!(p, want, "{}", String::from_utf8_lossy(&p));
    // Another address still starts one.
    let p = rrq_from("127.0.0.2", port, "pxelinux.0");
    assert_eq!(p.get(..4), Some(&[0, 3, 0, 1][..]), "{p:?}");
    // The log is written by a thread of its own: wait for the line.
    assert!(
        common::wait_until(Duration::from_secs(5), || g
            .log_text()
            .contains("too many transfers from your address")),
        "{}",
        g.log_text()
    );
}
