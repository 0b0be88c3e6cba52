//! TFTP through the real binary over loopback: per-machine configs are the
//! same text `GET /pxelinux/{file}` returns, under every name pxelinux asks
//! for; images are served byte for byte; transfers become events of the
//! machine and counters in the metrics. Uses curl's TFTP client.

mod common;

use common::{Gopxe, tempdir};
use std::process::Command;

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
