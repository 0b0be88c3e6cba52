//! Whole-process tests of the syslog receiver and the `failed` state:
//! installer lines sent from a machine's address (raw datagrams and TCP
//! from loopback aliases, and util-linux `logger` in both RFC formats) land
//! in `GET /pxeboot/{id}/events`; lines from an unknown address are counted
//! and dropped; a burst keeps the per-machine bound; a critical line and a
//! stalled install turn the machine `failed`, and `reinstall` clears it.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, tempdir, wait_until};
use serde_json::Value;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

/// Machine A's address (a loopback alias the test sends from).
const A_IP: &str = "127.0.0.50";
const A: &str = "01-52-54-00-00-00-0a";
/// Machine B lives at 127.0.0.1, where `logger` sends from.
const B: &str = "01-52-54-00-00-00-0b";
/// Machine C only stalls.
const C_IP: &str = "127.0.0.52";
const C: &str = "01-52-54-00-00-00-0c";

fn state(g: &Gopxe, id: &str) -> String {
    g.get(&format!("/pxeboot/{id}")).json()["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn events(g: &Gopxe, id: &str) -> Vec<Value> {
    g.get(&format!("/pxeboot/{id}/events"))
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn syslog_details(g: &Gopxe, id: &str) -> Vec<String> {
    events(g, id)
        .iter()
        .filter(|e| e["kind"] == "syslog")
        .map(|e| e["detail"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn send_udp(from: &str, port: u16, line: &[u8]) {
    let s = UdpSocket::bind(format!("{from}:0")).unwrap();
    s.send_to(line, ("127.0.0.1", port)).unwrap();
}

fn send_tcp(from: &str, port: u16, data: &[u8]) {
    let src: SocketAddr = format!("{from}:0").parse().unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&src.into()).unwrap();
    let dst: SocketAddr = ([127, 0, 0, 1], port).into();
    sock.connect(&dst.into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.write_all(data).unwrap();
}

/// A kickstart machine at `ip` (MAC `52:54:00:00:00:<last>`), installing:
/// its kickstart fetched from its own address.
fn installing_machine(g: &Gopxe, id: &str, ip: &str) {
    let mac = id.trim_start_matches("01-").replace('-', ":");
    let r = g.post(
        "/pxeboot",
        &format!(r#"{{"bootaction": "el9", "mac": "{mac}", "ip": "{ip}"}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(g.get_from(ip, &format!("/kickstart/{id}")).status, 200);
    assert_eq!(state(g, id), "installing");
}

/// A webhook receiver on loopback: answers 204 and keeps each body.
fn hook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{BufRead, BufReader, Read};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0;
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line.trim() != "" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() {
                keep.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
            let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (url, seen)
}

fn start(dir: &std::path::Path, timeout: &str, extra: &[&str]) -> (Gopxe, u16) {
    let mut args = vec![
        "--syslog-listen",
        "127.0.0.1:0",
        "--install-timeout",
        timeout,
    ];
    args.extend_from_slice(extra);
    let g = Gopxe::start(dir, &args);
    let port = g.announced_port("syslog").expect("syslog announced");
    let r = g.post(
        "/bootaction/el9",
        r#"{"kernel": "el9/vmlinuz", "initrd": "el9/initrd.img", "append": "console=ttyS0"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    (g, port)
}

#[test]
fn installer_lines_are_filed_on_their_machine() {
    let dir = tempdir("syslog-lines");
    let (g, port) = start(&dir, "0", &[]);
    installing_machine(&g, A, A_IP);

    // The kernel line tells anaconda where to log.
    let cfg = g.get(&format!("/pxelinux/{A}")).text();
    assert!(
        cfg.contains(&format!(" inst.syslog=127.0.0.1:{port} console=ttyS0 ks=")),
        "{cfg}"
    );

    // Raw datagrams from A's address: RFC 3164 without a host name (as
    // busybox forwards), with one, RFC 5424, garbage.
    send_udp(
        A_IP,
        port,
        b"<13>Dec  6 06:04:23 anna[2345]: retrieving nic-modules\n",
    );
    send_udp(
        A_IP,
        port,
        b"<190>Dec  6 06:04:24 localhost anaconda[1732]: program: Running udevadm",
    );
    send_udp(
        A_IP,
        port,
        b"<14>1 2026-12-06T06:04:25Z node curtin 7 - - installing kernel",
    );
    send_udp(A_IP, port, b"\x00\xffbinary \x1b[31mnoise");
    // TCP, as anaconda's rsyslog forwards (`@@`): lines, then octet counting.
    send_tcp(
        A_IP,
        port,
        b"<134>Dec  6 06:04:26 localhost anaconda[1732]: storage: line one\n<134>Dec  6 06:04:26 localhost anaconda[1732]: storage: line two\n22 <13>tcp: octet counted",
    );
    let want = [
        "user.notice anna[2345]: retrieving nic-modules",
        "local7.info anaconda[1732]: program: Running udevadm",
        "user.info curtin[7]: installing kernel",
        "user.notice \\x00\\xffbinary \\x1b[31mnoise",
        "local0.info anaconda[1732]: storage: line one",
        "local0.info anaconda[1732]: storage: line two",
        "user.notice tcp: octet counted",
    ];
    assert!(
        wait_until(Duration::from_secs(10), || syslog_details(&g, A).len()
            >= want.len()),
        "{:#?}",
        syslog_details(&g, A)
    );
    let got = syslog_details(&g, A);
    for w in want {
        assert!(got.iter().any(|d| d == w), "{w:?} not in {got:#?}");
    }

    // util-linux logger, both formats, over UDP and TCP, from 127.0.0.1:
    // filed on machine B, which fetched its kickstart from there.
    installing_machine(&g, B, "127.0.0.1");
    for (fmt, proto) in [
        ("--rfc3164", "--udp"),
        ("--rfc5424", "--udp"),
        ("--rfc5424", "--tcp"),
    ] {
        let tag = format!("gopxe-test{}{}", &fmt[5..], &proto[2..]);
        let ok = Command::new("logger")
            .args(["--server", "127.0.0.1", "--port", &port.to_string()])
            .args([proto, fmt, "-t", &tag, "-p", "local1.warning"])
            .arg("hello from logger")
            .status()
            .expect("util-linux logger")
            .success();
        assert!(ok, "logger {fmt} {proto}");
        let line = format!("local1.warning {tag}");
        assert!(
            wait_until(Duration::from_secs(10), || {
                syslog_details(&g, B)
                    .iter()
                    .any(|d| d.starts_with(&line) && d.ends_with(": hello from logger"))
            }),
            "{line}: {:#?}",
            syslog_details(&g, B)
        );
    }
    assert_eq!(state(&g, B), "installing", "warnings fail nothing");

    // An unknown address: counted and dropped, on nobody's timeline.
    let before_a = syslog_details(&g, A).len();
    send_udp("127.0.0.77", port, b"<13>stranger: who am I");
    assert!(wait_until(Duration::from_secs(10), || {
        g.get("/metrics")
            .text()
            .contains("gopxe_syslog_lines_total{outcome=\"unknown_source\"} 1\n")
    }));
    for id in [A, B] {
        assert!(
            !syslog_details(&g, id)
                .iter()
                .any(|d| d.contains("stranger"))
        );
    }
    assert_eq!(syslog_details(&g, A).len(), before_a);

    // A burst: at most the bound is kept, and the boot steps stay.
    for i in 0..300 {
        send_udp(A_IP, port, format!("<13>burst: line {i}").as_bytes());
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(wait_until(Duration::from_secs(10), || {
        syslog_details(&g, A)
            .iter()
            .any(|d| d.ends_with("line 299"))
    }));
    let all = events(&g, A);
    let n = all.iter().filter(|e| e["kind"] == "syslog").count();
    assert_eq!(n, 100, "the per-machine bound");
    assert!(all.iter().any(|e| e["kind"] == "kickstart"), "{all:#?}");
    assert!(all.iter().any(|e| e["kind"] == "created"));
}

#[test]
fn a_critical_line_and_a_stalled_install_fail_and_reinstall_clears_it() {
    let dir = tempdir("syslog-failed");
    let (hook, hooked) = hook_receiver();
    let (g, port) = start(&dir, "3s", &["--webhook", &hook]);
    installing_machine(&g, A, A_IP);
    // An `err` line is no failure; a `crit` line is.
    send_udp(
        A_IP,
        port,
        b"<11>main-menu[1]: WARNING **: Menu item 'x' failed.",
    );
    send_udp(
        A_IP,
        port,
        b"<10>1 - node gopxe-autoinstall - - - autoinstall failed",
    );
    assert!(wait_until(Duration::from_secs(10), || state(&g, A) == "failed"));
    let evs = events(&g, A);
    let failed = evs
        .iter()
        .find(|e| e["kind"] == "failed")
        .expect("a failed event");
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .contains("user.crit gopxe-autoinstall: autoinstall failed"),
        "{failed}"
    );
    assert_eq!(g.get(&format!("/pxeboot/{A}")).json()["state"], "failed");

    // A stalled install: failed after install_timeout (3 s).
    installing_machine(&g, C, C_IP);
    assert!(
        wait_until(Duration::from_secs(15), || state(&g, C) == "failed"),
        "{:#?}",
        events(&g, C)
    );
    assert!(events(&g, C).iter().any(
        |e| e["kind"] == "failed" && e["detail"].as_str().unwrap().contains("install_timeout")
    ));
    let metrics = g.get("/metrics").text();
    assert!(
        metrics.contains("gopxe_machines{state=\"failed\"} 2\n"),
        "{metrics}"
    );
    let page = g.get("/").text();
    assert!(
        page.contains("class=\"st st-failed\">failed<"),
        "the status page shows it"
    );

    // Each failure was posted to the webhooks.
    assert!(
        wait_until(Duration::from_secs(10), || {
            hooked
                .lock()
                .unwrap()
                .iter()
                .filter(|b| {
                    b["event"] == "state_changed"
                        && b["old_state"] == "installing"
                        && b["new_state"] == "failed"
                })
                .count()
                == 2
        }),
        "{:#?}",
        hooked.lock().unwrap()
    );

    // reinstall clears it.
    for id in [A, C] {
        let r = g.post(&format!("/pxeboot/{id}/reinstall"), "");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(state(&g, id), "install");
    }
}
