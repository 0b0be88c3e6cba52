//! The discovery inbox through the real binary: the test is a relay agent
//! (giaddr 127.0.0.1) sending real DHCP packets over loopback, as
//! `tests/dhcp_process.rs` does. Unknown netboot clients show up at
//! `GET /discovered` with what their requests said; a flood of random
//! MACs keeps the inbox at `discovered_max` and counts the dropped;
//! adoption creates the machine, which then boots its boot action; the
//! inbox survives a restart; the status page's adopt form needs the
//! token and a same-site post. 127.0.0.1 only.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, request, tempdir, wait_until};
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

const BIOS: [(u8, &[u8]); 2] = [(60, b"PXEClient:Arch:00000:UNDI:002001"), (93, &[0, 0])];

/// A relayed request (giaddr 127.0.0.1) with these options.
fn packet(msg_type: u8, mac: [u8; 6], xid: u32, opts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = vec![1u8, 1, 6, 1];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0; 16]);
    b.extend_from_slice(&[127, 0, 0, 1]);
    b.extend_from_slice(&mac);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, msg_type]);
    for (c, v) in opts {
        b.push(*c);
        b.push(v.len() as u8);
        b.extend_from_slice(v);
    }
    b.push(255);
    b.resize(b.len().max(300), 0);
    b
}

/// Option 67 of a reply, if any.
fn boot_file(b: &[u8]) -> Option<String> {
    let mut i = 240;
    while i + 1 < b.len() && b[i] != 255 {
        if b[i] == 0 {
            i += 1;
            continue;
        }
        let (c, l) = (b[i], b[i + 1] as usize);
        if c == 67 {
            let v = &b[i + 2..i + 2 + l];
            return Some(String::from_utf8_lossy(v).trim_end_matches('\0').into());
        }
        i += 2 + l;
    }
    None
}

struct Lab {
    g: Gopxe,
    relay: UdpSocket,
    server: u16,
}

impl Lab {
    /// gopxe in `mode` with its data in `dir`, relayed to `relay`.
    fn start(dir: &Path, relay: UdpSocket, mode: &str, extra: &[&str]) -> Lab {
        let (g, server) = common::start_behind_relay(dir, &relay, mode, extra);
        Lab { g, relay, server }
    }

    fn send(&self, msg: &[u8]) {
        self.relay.send_to(msg, ("127.0.0.1", self.server)).unwrap();
    }

    /// Sends and waits for the answer.
    fn exchange(&self, msg: &[u8]) -> Vec<u8> {
        self.send(msg);
        let mut buf = [0u8; 1500];
        let (n, _) = self.relay.recv_from(&mut buf).expect("a DHCP reply");
        buf[..n].to_vec()
    }

    fn discovered(&self) -> serde_json::Value {
        let r = self.g.get("/discovered");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    fn wait_for(&self, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let ok = wait_until(Duration::from_secs(5), || {
            last = self.discovered();
            f(&last)
        });
        assert!(ok, "{what}: {last:#}");
        last
    }

    fn metric(&self, name: &str) -> u64 {
        let text = self.g.get("/metrics").text();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }
}

fn relay() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn mac(n: u16) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x52, 0x54, 0, 0xd1, b[0], b[1]]
}

const UUID_WIRE: [u8; 16] = [
    0x5a, 0x0d, 0x33, 0x42, 0xad, 0x0e, 0xfa, 0xf7, 0x4e, 0x3a, 0xae, 0x3b, 0xdc, 0xb0, 0x8c, 0x69,
];

/// Unknown clients with options 93/60/97/82 are listed with what they
/// said, newest first; a plain DHCP client and a known machine are not;
/// an unknown machine's answer is what it was before (no boot file with
/// the default `unknown_boot`); then adoption, and its next boot.
#[test]
fn unknown_netboot_clients_are_listed_and_adopted() {
    let dir = tempdir("discovery");
    let lab = Lab::start(&dir, relay(), "authoritative", &[]);
    let g = &lab.g;
    assert_eq!(
        g.post("/bootaction/a", r#"{"kernel": "k/vmlinuz"}"#).status,
        201
    );
    let known = r#"{"bootaction": "a", "mac": "52:54:00:d1:00:09"}"#;
    assert_eq!(g.post("/pxeboot", known).status, 201);

    let mut uuid = vec![0u8];
    uuid.extend_from_slice(&UUID_WIRE);
    let relay_info: &[u8] = &[
        1, 7, b'g', b'e', b'-', b'0', b'/', b'0', b'/', 2, 3, 0, 0x1b, 0xff,
    ];
    let efi: [(u8, &[u8]); 4] = [
        (60, b"PXEClient:Arch:00007:UNDI:003000"),
        (93, &[0, 7]),
        (97, &uuid),
        (82, relay_info),
    ];
    let offer = lab.exchange(&packet(1, mac(1), 1, &efi));
    assert_eq!(boot_file(&offer), None, "discovery changes no answer");
    // A REQUEST (SELECTING) counts as well.
    let req: [(u8, &[u8]); 4] = [
        BIOS[0],
        BIOS[1],
        (50, &[127, 0, 0, 120]),
        (54, &[127, 0, 0, 1]),
    ];
    let ack = lab.exchange(&packet(3, mac(2), 2, &req));
    assert_eq!(ack[16..20], [127, 0, 0, 120]);
    // Not a netboot client; a known machine.
    lab.exchange(&packet(1, mac(3), 3, &[]));
    lab.exchange(&packet(1, mac(9), 4, &BIOS));
    let list = lab.wait_for("two discovered", |v| v.as_array().unwrap().len() == 2);
    assert_eq!(list[0]["mac"], "52:54:00:d1:00:02", "newest first");
    assert_eq!(list[0]["firmware"], "bios");
    let e = &list[1];
    assert_eq!(e["mac"], "52:54:00:d1:00:01");
    assert_eq!(e["uuid_wire"], "5a0d3342-ad0e-faf7-4e3a-ae3bdcb08c69");
    assert_eq!(e["uuid_dmidecode"], "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69");
    assert_eq!(e["firmware"], "efi-x64");
    assert_eq!(e["arch"], 7);
    assert_eq!(e["vendor_class"], "PXEClient:Arch:00007:UNDI:003000");
    assert_eq!(e["circuit_id"], "ge-0/0/", "{e:#}");
    assert_eq!(e["remote_id"], "0x001bff");
    assert_eq!(e["relay"], "127.0.0.1");
    assert_eq!(e["times_seen"], 1);
    let kinds: Vec<&str> = e["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["DISCOVER received", "OFFER sent"]);
    // Seen again: counted, first seen kept.
    lab.exchange(&packet(1, mac(1), 5, &efi));
    let one = g.get("/discovered/52-54-00-D1-00-01").json();
    assert_eq!(one["times_seen"], 2);
    assert!(one["last_seen_ms"].as_u64() >= one["first_seen_ms"].as_u64());
    assert_eq!(g.get("/discovered/not-a-mac").status, 400);
    assert_eq!(g.get("/discovered/52:54:00:d1:00:03").status, 404);
    assert_eq!(lab.metric("gopxe_discovered"), 2);

    // Adoption: the POST /pxeboot checks and answers.
    let adopt = "/discovered/52:54:00:d1:00:01/adopt";
    let bad = g.post(adopt, r#"{"bootaction": "a", "hostname": "-bad-"}"#);
    assert_eq!(
        (bad.status, bad.json()["field"].as_str()),
        (400, Some("hostname"))
    );
    let missing = g.post(adopt, r#"{"bootaction": "nope"}"#);
    assert_eq!(missing.status, 422, "{}", missing.text());
    let other = g.post(adopt, r#"{"bootaction": "a", "mac": "52:54:00:d1:00:02"}"#);
    assert_eq!(other.status, 400, "{}", other.text());
    let unknown = g.post(
        "/discovered/52:54:00:d1:00:07/adopt",
        r#"{"bootaction": "a"}"#,
    );
    assert_eq!(unknown.status, 404);
    let r = g.post(adopt, r#"{"bootaction": "a", "hostname": "web1.lab"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let m = r.json();
    assert_eq!(m["id"], "01-52-54-00-d1-00-01");
    assert_eq!(
        (m["hostname"].as_str(), m["state"].as_str()),
        (Some("web1.lab"), Some("install"))
    );
    assert_eq!(m["last_event"]["detail"], "record created through the API");
    assert_eq!(g.get("/pxeboot/52:54:00:d1:00:01").status, 200);
    assert_eq!(g.get("/discovered/52:54:00:d1:00:01").status, 404);
    let list = lab.discovered();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        g.post(adopt, r#"{"bootaction": "a"}"#).status,
        404,
        "gone from the inbox"
    );
    // Its next boot installs: its boot action's loader; it stays known.
    let offer = lab.exchange(&packet(1, mac(1), 6, &efi));
    assert_eq!(boot_file(&offer).as_deref(), Some("shimx64.efi"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(g.get("/discovered/52:54:00:d1:00:01").status, 404);
    // Forgetting one.
    assert_eq!(g.delete("/discovered/52:54:00:d1:00:02").status, 204);
    assert_eq!(g.delete("/discovered/52:54:00:d1:00:02").status, 404);
    assert_eq!(lab.discovered(), serde_json::json!([]));
    // A record made with POST /pxeboot also takes a machine out.
    lab.exchange(&packet(1, mac(4), 7, &BIOS));
    lab.wait_for("discovered again", |v| v.as_array().unwrap().len() == 1);
    let body = r#"{"bootaction": "a", "mac": "52:54:00:d1:00:04"}"#;
    assert_eq!(g.post("/pxeboot", body).status, 201);
    assert_eq!(lab.discovered(), serde_json::json!([]));
}

/// Random MACs past `discovered_max` keep the inbox at its bound, the
/// newest kept, the dropped counted.
#[test]
fn a_flood_of_macs_stays_bounded() {
    let dir = tempdir("discovery-flood");
    let lab = Lab::start(&dir, relay(), "proxy", &["--discovered-max", "40"]);
    let n: u16 = 300;
    for i in 0..n {
        lab.send(&packet(1, mac(1000 + i), u32::from(i), &BIOS));
        if i % 50 == 49 {
            // Loopback does not drop, but the socket buffer is finite.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let ok = wait_until(Duration::from_secs(10), || {
        lab.metric("gopxe_discovered_dropped_total") == u64::from(n - 40)
    });
    assert!(ok, "{}", lab.g.get("/metrics").text());
    let list = lab.discovered();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 40);
    assert_eq!(lab.metric("gopxe_discovered"), 40);
    let last = mac(1000 + n - 1);
    let want = format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        last[0], last[1], last[2], last[3], last[4], last[5]
    );
    assert_eq!(list[0]["mac"], want.as_str());
}

/// The inbox is saved a few seconds after a change (a SIGKILL then loses
/// nothing) and at a SIGTERM; a corrupt file is an empty inbox.
#[test]
fn the_inbox_survives_a_restart() {
    let dir = tempdir("discovery-restart");
    let file = dir.join("data/discovered.rec");
    let mut lab = Lab::start(&dir, relay(), "proxy", &[]);
    lab.send(&packet(1, mac(1), 1, &BIOS));
    lab.wait_for("one", |v| v.as_array().unwrap().len() == 1);
    assert!(
        wait_until(Duration::from_secs(8), || file.exists()),
        "saved"
    );
    lab.g.kill();
    let Lab { relay, .. } = lab;
    let mut lab = Lab::start(&dir, relay, "proxy", &[]);
    let list = lab.discovered();
    assert_eq!(list[0]["mac"], "52:54:00:d1:00:01", "{list}");
    assert_eq!(list[0]["firmware"], "bios");
    // A change then SIGTERM at once: saved on the way out.
    lab.send(&packet(1, mac(2), 2, &BIOS));
    lab.wait_for("two", |v| v.as_array().unwrap().len() == 2);
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &lab.g.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert!(wait_until(Duration::from_secs(10), || {
        lab.g.child.try_wait().unwrap().is_some()
    }));
    let Lab { relay, .. } = lab;
    let mut lab = Lab::start(&dir, relay, "proxy", &[]);
    assert_eq!(lab.discovered().as_array().unwrap().len(), 2);
    lab.g.kill();
    // Corrupt: a warning and an empty inbox, gopxe serves.
    std::fs::write(&file, b"GPXR garbage").unwrap();
    let Lab { relay, .. } = lab;
    let lab = Lab::start(&dir, relay, "proxy", &[]);
    assert_eq!(lab.discovered(), serde_json::json!([]));
    assert!(
        lab.g.log_text().contains("discovery inbox"),
        "{}",
        lab.g.log_text()
    );
}

/// The status page lists a discovered machine with its adopt form; the
/// form needs the token (as a field or the header) and a same-site post.
#[test]
fn the_status_page_adopt_form_is_guarded() {
    let dir = tempdir("discovery-ui");
    let lab = Lab::start(&dir, relay(), "proxy", &["--api-token", "s3cret-token"]);
    let g = &lab.g;
    let auth = [
        ("Authorization", "Bearer s3cret-token"),
        ("Content-Type", "application/json"),
    ];
    let r = request(
        g.port,
        "POST",
        "/bootaction/a",
        &auth,
        br#"{"kernel": "k"}"#,
    );
    assert_eq!(r.status, 201);
    lab.send(&packet(1, mac(5), 1, &BIOS));
    lab.wait_for("one", |v| v.as_array().unwrap().len() == 1);
    let page = g.get("/").text();
    assert!(page.contains("id=\"discovered\""), "{page}");
    assert!(page.contains("52:54:00:d1:00:05"));
    assert!(page.contains("action=\"/ui/discovered/52:54:00:d1:00:05/adopt\""));
    assert!(page.contains("<option value=\"a\">a</option>"));

    let path = "/ui/discovered/52:54:00:d1:00:05/adopt";
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let post = |headers: &[(&str, &str)], body: &[u8]| {
        let mut h = vec![form];
        h.extend_from_slice(headers);
        request(g.port, "POST", path, &h, body).status
    };
    let host = format!("127.0.0.1:{}", g.port);
    let same = format!("http://{host}");
    assert_eq!(post(&[], b"bootaction=a"), 401, "no token");
    assert_eq!(post(&[], b"bootaction=a&token=wrong"), 401, "wrong token");
    let evil = [
        ("Origin", "http://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ];
    assert_eq!(post(&evil, b"bootaction=a&token=s3cret-token"), 403, "CSRF");
    let evil = [("Origin", "http://evil.example")];
    assert_eq!(
        post(&evil, b"bootaction=a&token=s3cret-token"),
        403,
        "CSRF by Origin"
    );
    let plain = [("Content-Type", "text/plain")];
    let r = request(
        g.port,
        "POST",
        path,
        &plain,
        b"bootaction=a&token=s3cret-token",
    );
    assert_eq!(r.status, 415);
    assert_eq!(
        g.get("/pxeboot").json(),
        serde_json::json!([]),
        "nothing adopted"
    );
    assert_eq!(lab.discovered().as_array().unwrap().len(), 1);
    // The admin's own page: same origin, the token typed in.
    let own = [("Origin", same.as_str()), ("Sec-Fetch-Site", "same-origin")];
    assert_eq!(
        post(&own, b"bootaction=a&hostname=web5.lab&token=s3cret-token"),
        303
    );
    let m = g.get("/pxeboot/52:54:00:d1:00:05").json();
    assert_eq!(m["hostname"], "web5.lab");
    assert_eq!(lab.discovered(), serde_json::json!([]));
    assert_eq!(
        post(&own, b"bootaction=a&token=s3cret-token"),
        404,
        "no longer discovered"
    );
}
