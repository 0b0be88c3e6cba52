//! Whole-process tests of the preseed and autoinstall installers: boot
//! actions that pick them, the boot lines machines get, the answer files,
//! the install -> installing -> installed life cycle, and old stores.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, done_path, tempdir};
use std::time::Duration;

/// The machines' own addresses: loopback addresses the test client can
/// send from, so their answer-file fetches count as the machine's.
const MACHINE_IP: &str = "127.0.0.50";
const MACHINE_IP_2: &str = "127.0.0.51";

use std::process::Command;
use yaml_rust2::YamlLoader;

const MAC_ID: &str = "01-52-54-00-12-34-56";
const UUID: &str = "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69";

fn state(g: &Gopxe, id: &str) -> String {
    g.get(&format!("/pxeboot/{id}")).json()["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn events(g: &Gopxe, id: &str) -> String {
    g.get(&format!("/pxeboot/{id}/events")).text()
}

#[test]
fn preseed_machine_from_boot_line_to_done() {
    let dir = tempdir("preseed");
    let g = Gopxe::start(
        &dir,
        &[
            "--advertise-addr",
            "10.1.20.2",
            "--debian-mirror",
            "http://10.1.20.2:3142/debian",
        ],
    );
    let r = g.post(
        "/bootaction/debian12",
        r#"{"kernel": "debian/linux", "initrd": "debian/initrd.gz",
            "installer": "preseed", "append": "--- console=ttyS0"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["installer"], "preseed");
    let r = g.post(
        "/pxeboot",
        r#"{"bootaction": "debian12", "hostname": "node7.lab", "mac": "52:54:00:12:34:56",
            "ip": "127.0.0.50", "mask": "255.0.0.0", "gw": "127.0.0.1", "ns1": "10.1.20.53"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // The boot line points debian-installer at the machine's preseed.
    let port = g.port;
    let cfg = g.get(&format!("/pxelinux/{MAC_ID}")).text();
    assert!(
        cfg.contains(&format!(
            " APPEND initrd=debian/initrd.gz auto=true priority=critical url=http://10.1.20.2:{port}/preseed/{MAC_ID} interface=auto hostname=node7 domain=lab netcfg/disable_autoconfig=true netcfg/get_ipaddress=127.0.0.50 netcfg/get_netmask=255.0.0.0 netcfg/get_gateway=127.0.0.1 netcfg/confirm_static=true netcfg/get_nameservers=10.1.20.53 --- console=ttyS0\n"
        )),
        "{cfg}"
    );
    let script = g.get("/boot.ipxe?mac=52:54:00:12:34:56").text();
    assert!(
        script.contains(&format!("url=http://10.1.20.2:{port}/preseed/{MAC_ID} ")),
        "{script}"
    );
    assert_eq!(state(&g, MAC_ID), "install");

    // The admin's look (loopback, no token configured) is a preview: it
    // shows the install's key and changes nothing.
    let preview = g.get(&format!("/preseed/{MAC_ID}")).text();
    assert!(preview.contains("/done?key="), "{preview}");
    assert_eq!(state(&g, MAC_ID), "install");
    // Fetched by the machine from its own address, the preseed starts the
    // install, like a kickstart.
    let p = g.get_from(MACHINE_IP, &format!("/preseed/{MAC_ID}"));
    assert_eq!(p.status, 200);
    assert!(
        p.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    let text = p.text();
    assert!(
        text.contains("d-i netcfg/get_hostname string node7\n"),
        "{text}"
    );
    assert!(text.contains("d-i mirror/http/hostname string 10.1.20.2:3142\n"));
    assert!(text.contains("d-i netcfg/get_ipaddress string 127.0.0.50\n"));
    assert!(text.contains(&format!(
        "wget -q -O /dev/null --post-data=done 'http://10.1.20.2:{port}/pxeboot/{MAC_ID}/done?key="
    )));
    assert_eq!(text, preview, "the machine and the admin read the same");
    assert_eq!(state(&g, MAC_ID), "installing");
    assert!(events(&g, MAC_ID).contains("preseed fetched"));
    // Fetched again (the installer retries): still installing, same text.
    assert_eq!(
        g.get_from(MACHINE_IP, &format!("/preseed/{MAC_ID}")).text(),
        text
    );
    assert_eq!(state(&g, MAC_ID), "installing");

    // The late_command's call-back (a POST, as wget --post-data sends).
    let r = g.post(&done_path(&text), "done");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(state(&g, MAC_ID), "installed");
    assert!(
        g.get(&format!("/pxelinux/{MAC_ID}"))
            .text()
            .contains("LOCALBOOT 0")
    );
    // The state survives a restart (it is in the store).
    drop(g);
    let g = Gopxe::start(&dir, &[]);
    assert_eq!(state(&g, MAC_ID), "installed");
}

#[test]
fn autoinstall_seed_and_life_cycle() {
    let dir = tempdir("autoinstall");
    let g = Gopxe::start(
        &dir,
        &[
            "--advertise-addr",
            "10.1.20.2",
            "--installer-user",
            "ops",
            "--installer-ssh-key",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@lab",
        ],
    );
    let r = g.post(
        "/bootaction/noble",
        r#"{"kernel": "ubuntu/vmlinuz", "initrd": "ubuntu/initrd", "loader": "ipxe",
            "installer": "autoinstall", "storage": "direct",
            "append": "url=http://10.1.20.2:9090/images/ubuntu/live-server.iso cloud-config-url=/dev/null"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = g.post(
        "/pxeboot",
        &format!(
            r#"{{"bootaction": "noble", "hostname": "web1.lab.example", "uuid": "{UUID}",
                 "ip": "{MACHINE_IP_2}", "mask": "255.0.0.0"}}"#
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let port = g.port;
    let seed = format!("http://10.1.20.2:{port}/cloud-init/{UUID}/");
    let script = g.get(&format!("/boot.ipxe?uuid={UUID}")).text();
    let kernel = script
        .lines()
        .find(|l| l.starts_with("kernel "))
        .unwrap_or_default();
    assert!(
        kernel.contains(&format!(" initrd=initrd.img ip={MACHINE_IP_2}:"))
            && kernel.ends_with(&format!(
                " autoinstall ds=nocloud-net;s={seed} url=http://10.1.20.2:9090/images/ubuntu/live-server.iso cloud-config-url=/dev/null"
            )),
        "{script}"
    );
    assert!(
        g.get(&format!("/pxelinux/{UUID}"))
            .text()
            .contains(&format!(" autoinstall ds=nocloud-net;s={seed} "))
    );

    // cloud-init asks for meta-data first: no state change yet.
    let meta = g.get(&format!("/cloud-init/{UUID}/meta-data"));
    assert_eq!(meta.status, 200);
    let doc = &YamlLoader::load_from_str(&meta.text()).unwrap()[0];
    assert_eq!(doc["instance-id"].as_str(), Some(UUID));
    assert_eq!(doc["local-hostname"].as_str(), Some("web1"));
    let vendor = g.get(&format!("/cloud-init/{UUID}/vendor-data"));
    assert_eq!((vendor.status, vendor.body.len()), (200, 0));
    assert_eq!(state(&g, UUID), "install");

    let ud = g.get_from(MACHINE_IP_2, &format!("/cloud-init/{UUID}/user-data"));
    assert_eq!(ud.status, 200);
    let text = ud.text();
    assert!(text.starts_with("#cloud-config\n"), "{text}");
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    let ai = &doc["autoinstall"];
    assert_eq!(ai["version"].as_i64(), Some(1));
    assert_eq!(ai["identity"]["hostname"].as_str(), Some("web1"));
    assert_eq!(ai["identity"]["username"].as_str(), Some("ops"));
    assert_eq!(ai["identity"]["password"].as_str(), Some("!"));
    assert_eq!(ai["storage"]["layout"]["name"].as_str(), Some("direct"));
    assert_eq!(
        ai["network"]["ethernets"]["gopxe0"]["addresses"][0].as_str(),
        Some(format!("{MACHINE_IP_2}/8").as_str())
    );
    let late = ai["late-commands"][0].as_str().unwrap_or_default();
    let done = format!("http://10.1.20.2:{port}/pxeboot/{UUID}/done?key=");
    assert!(
        late.starts_with(&format!("curl -fsS -X POST '{done}")),
        "{late}"
    );
    assert_eq!(state(&g, UUID), "installing");
    assert!(events(&g, UUID).contains("user-data fetched"));

    // The late-command's call-back, by the path in the user-data.
    assert_eq!(g.post(&done_path(late), "").status, 200);
    assert_eq!(state(&g, UUID), "installed");
    assert!(
        g.get(&format!("/boot.ipxe?uuid={UUID}"))
            .text()
            .contains("exit")
    );
}

#[test]
fn answer_files_refuse_unknown_machines_and_bad_requests() {
    let dir = tempdir("installer-404");
    let g = Gopxe::start(&dir, &[]);
    for path in [
        "/preseed/52:54:00:00:00:01",
        "/preseed/01-52-54-00-00-00-01",
        "/cloud-init/52-54-00-00-00-01/user-data",
        "/cloud-init/52-54-00-00-00-01/meta-data",
        "/cloud-init/52-54-00-00-00-01/vendor-data",
        &format!("/preseed/{UUID}"),
    ] {
        let r = g.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap_or("")
                .contains("no machine")
        );
    }
    assert_eq!(g.get("/preseed/not-an-id").status, 400);
    assert_eq!(g.get("/preseed/..%2F..%2Fetc%2Fpasswd").status, 400);
    assert_eq!(g.post("/bootaction/a", r#"{"kernel": "k"}"#).status, 201);
    assert_eq!(
        g.post(
            "/pxeboot",
            r#"{"bootaction": "a", "mac": "52:54:00:00:00:02"}"#
        )
        .status,
        201
    );
    // Files cloud-init may ask for that gopxe does not serve.
    assert_eq!(
        g.get("/cloud-init/52:54:00:00:00:02/network-config").status,
        404
    );
    assert_eq!(g.get("/cloud-init/52:54:00:00:00:02/").status, 404);
    // Read-only routes.
    let r = g.post("/preseed/52:54:00:00:00:02", "{}");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(
        g.post("/cloud-init/52:54:00:00:00:02/user-data", "{}")
            .status,
        405
    );
    // Nothing above changed the machine.
    assert_eq!(state(&g, "52:54:00:00:00:02"), "install");
    // Bad installer fields are 400s naming the field, and nothing is written.
    for (body, field) in [
        (r#"{"kernel": "k", "installer": "anaconda"}"#, "installer"),
        (
            r#"{"kernel": "k", "installer": "preseed", "storage": "zfs"}"#,
            "storage",
        ),
    ] {
        let r = g.post("/bootaction/b", body);
        assert_eq!((r.status, r.json()["field"].as_str()), (400, Some(field)));
    }
    assert_eq!(g.get("/bootaction/b").status, 404);
}

#[test]
fn original_bootaction_calls_default_to_kickstart() {
    let dir = tempdir("installer-default");
    let g = Gopxe::start(&dir, &[]);
    let r = g.post(
        "/bootaction/c7",
        r#"{"default": "linux", "label": "linux", "menu": "centos7", "kernel": "centos7/vmlinuz",
            "ksdevice": "link", "ip": "dhcp", "load_ramdisk": "1", "initrd":"centos7/initrd.img"}"#,
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["installer"], "kickstart");
    let r = g.post(
        "/pxeboot",
        &format!(r#"{{"bootaction": "c7", "hostname": "a.lab", "uuid": "{UUID}"}}"#),
    );
    assert_eq!(r.status, 201);
    let cfg = g.get(&format!("/pxelinux/{UUID}")).text();
    assert!(
        cfg.contains(" ks=http://") && !cfg.contains("preseed"),
        "{cfg}"
    );
}

/// Record files written by gopxe before boot actions had `installer`
/// (schema version 1): a boot action `deb` and a machine using it.
const V1_BOOTACTION: &str = "475058520100d092cbfe03646562056c696e7578056c696e75780864656269616e31320c64656269616e2f6c696e7578011064656269616e2f696e697472642e677a000000010d636f6e736f6c653d747479533001";
const V1_MACHINE: &str = "475058520100c79c423801525400123456036465620764656661756c74000001066e312e6c6162010a00000501ffffff00010a000001010a000035000098aec6aca134";

fn unhex(s: &str) -> Vec<u8> {
    s.as_bytes()
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn a_version_1_store_still_loads_and_is_upgraded_on_write() {
    let dir = tempdir("installer-v1");
    let data = dir.join("data");
    for sub in ["bootactions", "machines", "templates"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
    }
    std::fs::write(data.join("bootactions/deb.rec"), unhex(V1_BOOTACTION)).unwrap();
    std::fs::write(
        data.join("machines/01-52-54-00-12-34-56.rec"),
        unhex(V1_MACHINE),
    )
    .unwrap();
    let g = Gopxe::start(&dir, &[]);
    assert!(!dir.join("data/corrupt").exists(), "{}", g.log_text());
    let a = g.get("/bootaction/deb").json();
    assert_eq!(a["installer"], "kickstart");
    assert_eq!(a["append"], "console=ttyS0");
    assert_eq!(a["loader"], "ipxe");
    let m = g.get(&format!("/pxeboot/{MAC_ID}")).json();
    assert_eq!(m["hostname"], "n1.lab");
    assert!(
        g.get(&format!("/pxelinux/{MAC_ID}"))
            .text()
            .contains(" ks=http://")
    );
    // Switching the old action to preseed writes it as version 2.
    let r = g.put(
        "/bootaction/deb",
        r#"{"kernel": "debian/linux", "initrd": "debian/initrd.gz", "installer": "preseed"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    drop(g);
    let g = Gopxe::start(&dir, &[]);
    assert_eq!(g.get("/bootaction/deb").json()["installer"], "preseed");
    // The change went to the store's journal; this start folded it into
    // the record file.
    assert!(common::wait_until(Duration::from_secs(10), || {
        common::journal_files(&data) == 0
    }));
    let bytes = std::fs::read(data.join("bootactions/deb.rec")).unwrap();
    assert_eq!(bytes.get(4..6), Some(&[2u8, 0][..]));
    assert!(
        g.get(&format!("/pxelinux/{MAC_ID}"))
            .text()
            .contains(&format!("/preseed/{MAC_ID} "))
    );
}

#[test]
fn bad_installer_settings_stop_gopxe_with_the_key_named() {
    for (flag, value) in [
        ("--debian-mirror", "ftp://deb.debian.org/debian"),
        ("--ubuntu-mirror", "http://archive ubuntu.com/"),
        ("--installer-user", "root"),
        ("--installer-password-hash", "hunter2"),
        ("--installer-ssh-key", "ssh-ed25519 AAAA'; reboot"),
    ] {
        let out = Command::new(common::bin())
            .args(["check-config", flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag}: {err}");
    }
    let out = Command::new(common::bin())
        .args([
            "check-config",
            "--debian-mirror",
            "https://mirror.lab/debian/",
            "--installer-password-hash",
            "$6$salt$hash",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Previews change nothing: the admin's reads (API right, from anywhere but
/// the machine's address) and `?preview=1` from anyone get exactly what
/// the machine gets, leaving its state and its events as they were; a
/// stranger's read (no right) gets no install key and is recorded; only
/// the machine's own fetch moves it to `installing`.
#[test]
fn previews_change_nothing_and_only_the_machine_moves_its_state() {
    let dir = tempdir("preview");
    let token = "preview-token-0123456789";
    let g = Gopxe::start(
        &dir,
        &["--advertise-addr", "127.0.0.1", "--api-token", token],
    );
    let auth = format!("Bearer {token}");
    let admin = |method: &str, path: &str, body: &str| {
        common::request(
            g.port,
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    };
    let action = r#"{"kernel": "deb/linux", "initrd": "deb/initrd.gz", "installer": "preseed", "loader": "grub"}"#;
    assert_eq!(admin("POST", "/bootaction/deb", action).status, 201);
    let record = format!(
        r#"{{"bootaction": "deb", "mac": "52:54:00:12:34:56", "hostname": "p1.lab", "ip": "{MACHINE_IP}"}}"#
    );
    assert_eq!(admin("POST", "/pxeboot", &record).status, 201);
    let events = || admin("GET", &format!("/pxeboot/{MAC_ID}/events"), "").text();
    let before = events();

    let paths = [
        format!("/preseed/{MAC_ID}"),
        format!("/cloud-init/{MAC_ID}/user-data"),
        format!("/kickstart/{MAC_ID}"),
        "/boot.ipxe?mac=52:54:00:12:34:56".to_string(),
        "/images/grub/grub.cfg-01-52-54-00-12-34-56".to_string(),
    ];
    for path in &paths {
        let by_admin = admin("GET", path, "");
        assert_eq!(by_admin.status, 200, "{path}");
        let sep = if path.contains('?') { '&' } else { '?' };
        let preview = format!("{path}{sep}preview=1");
        let by_machine = common::request_from(MACHINE_IP, g.port, "GET", &preview, &[], b"");
        assert_eq!(by_machine.status, 200, "{preview}");
        assert_eq!(
            by_admin.body, by_machine.body,
            "{path}: the admin sees what the machine gets"
        );
        let by_stranger = g.get(&preview);
        assert_eq!(by_stranger.status, 200, "{preview}");
        assert_eq!(state(&g, MAC_ID), "install", "{path}");
    }
    assert_eq!(events(), before, "no look left an event");
    // The install key is the machine's and the admin's, never a stranger's.
    let admin_preseed = admin("GET", &paths[0], "").text();
    assert!(admin_preseed.contains("/done?key="), "{admin_preseed}");
    assert!(!admin_preseed.contains("key=preview"));
    let stranger = g.get(&paths[0]).text();
    assert!(stranger.contains("/done?key=preview"), "{stranger}");
    assert_eq!(state(&g, MAC_ID), "install");
    let after = events();
    assert!(
        after.contains("preview: preseed fetched") && after.contains("from 127.0.0.1"),
        "a stranger's read without ?preview=1 is recorded: {after}"
    );
    // The machine itself: installing.
    let own = common::request_from(MACHINE_IP, g.port, "GET", &paths[0], &[], b"");
    assert_eq!(own.status, 200);
    assert_eq!(own.body, admin_preseed.as_bytes());
    assert_eq!(state(&g, MAC_ID), "installing");
}
