//! The store is durable and honest: SIGKILL during a stream of writes, or
//! during a burst of `done` call-backs, loses no acknowledged record, and a
//! corrupt record file is moved aside at start-up while the rest is served.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, request, tempdir};
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ACTION: &str = r#"{"kernel": "k/vmlinuz", "initrd": "k/initrd.img"}"#;

fn record(i: u32, round: u32) -> (String, String) {
    let mac = format!("52:54:00:{:02x}:{:02x}:{:02x}", round, i >> 8, i & 0xff);
    let body = format!(
        r#"{{"bootaction": "a", "mac": "{mac}", "hostname": "h{i}-r{round}.lab", "os": "rocky", "version": "9.{i}"}}"#
    );
    (mac, body)
}

/// A tiny xorshift so the kill moments vary without a dependency.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn sigkill_during_writes_loses_no_acknowledged_record() {
    let dir = tempdir("sigkill");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ std::process::id() as u64;
    // Every record the server acknowledged (201), with the hostname it holds.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut g = Gopxe::start(&dir, &[]);
    assert_eq!(g.post("/bootaction/a", ACTION).status, 201);
    for round in 0..6u32 {
        let port = g.port;
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut writers = Vec::new();
        for w in 0..3u32 {
            let (stop, got) = (stop.clone(), got.clone());
            writers.push(std::thread::spawn(move || {
                // Keep-alive connection; stop at the first error (the kill).
                let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else { return };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut s = s;
                for i in 0..400u32 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let (mac, body) = record(w * 1000 + i, round);
                    let req = format!(
                        "POST /pxeboot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(req.as_bytes()).is_err() {
                        return;
                    }
                    let resp = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| common::read_response(&mut r)));
                    match resp {
                        Ok(resp) if resp.status == 201 => {
                            let host = format!("h{}-r{round}.lab", w * 1000 + i);
                            got.lock().unwrap().push((mac, host));
                        }
                        _ => return,
                    }
                }
            }));
        }
        // Kill at a random moment, 20..220 ms into the stream.
        std::thread::sleep(Duration::from_millis(20 + rng(&mut seed) % 200));
        g.kill();
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            let _ = w.join();
        }
        for (mac, host) in got.lock().unwrap().drain(..) {
            acked.insert(mac, host);
        }
        g = Gopxe::start(&dir, &[]);
        let log = g.log_text();
        assert!(!log.contains("store: "), "a record was damaged: {log}");
        // Every acknowledged record is there and intact.
        let list = g.get("/pxeboot").json();
        let have: BTreeMap<String, String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_string(),
                    m["hostname"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (mac, host) in &acked {
            let id = format!("01-{}", mac.replace(':', "-"));
            assert_eq!(
                have.get(&id),
                Some(host),
                "acknowledged record {id} lost or damaged after kill {round}"
            );
        }
    }
    assert!(
        acked.len() > 20,
        "the test wrote too little to mean anything: {}",
        acked.len()
    );
    eprintln!(
        "sigkill test: {} acknowledged records survived 6 kills",
        acked.len()
    );
}

#[test]
fn corrupt_record_is_moved_aside_and_the_rest_served() {
    let dir = tempdir("corrupt");
    let g = Gopxe::start(&dir, &[]);
    assert_eq!(g.post("/bootaction/a", ACTION).status, 201);
    let (_, body) = record(1, 0);
    assert_eq!(g.post("/pxeboot", &body).status, 201);
    let (_, body2) = record(2, 0);
    assert_eq!(g.post("/pxeboot", &body2).status, 201);
    drop(g);
    // The records are in the journal; the next start folds them into
    // their files (in the background) and deletes it.
    let g = Gopxe::start(&dir, &[]);
    let data = dir.join("data");
    assert!(common::wait_until(Duration::from_secs(10), || {
        common::journal_files(&data) == 0
    }));
    drop(g);
    // Truncate one record, garble a boot action file.
    let victim = dir.join("data/machines/01-52-54-00-00-00-02.rec");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(dir.join("data/bootactions/zz.rec"), b"\x00garbage").unwrap();
    let started = Instant::now();
    let g = Gopxe::start(&dir, &[]);
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = g.log_text();
    assert!(
        log.contains("01-52-54-00-00-00-02.rec") && log.contains("moved to"),
        "{log}"
    );
    assert!(log.contains("zz.rec"), "{log}");
    assert!(dir.join("data/corrupt/01-52-54-00-00-00-02.rec").exists());
    assert_eq!(g.get("/pxeboot/52:54:00:00:00:01").status, 200);
    assert_eq!(g.get("/pxeboot/52:54:00:00:00:02").status, 404);
    assert_eq!(g.get("/bootaction/a").status, 200);
    assert_eq!(request(g.port, "GET", "/health", &[], b"").status, 200);
}

/// One request from `source` on its own connection; the status, or
/// `None` when the connection fails (the server was killed).
fn try_post_from(source: &str, port: u16, path: &str) -> Option<u16> {
    use std::io::{BufRead, Read};
    let src: std::net::SocketAddr = format!("{source}:0").parse().ok()?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    sock.bind(&src.into()).ok()?;
    let dst: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    sock.connect(&dst.into()).ok()?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    // The whole answer: a status line alone could be cut off from its body.
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).ok()?;
    Some(status)
}

/// The loopback address machine `i` installs from.
fn machine_ip(i: usize) -> String {
    format!("127.0.{}.{}", 1 + i / 250, 1 + i % 250)
}

/// A boot storm's end: hundreds of installers call back `done` at once
/// and gopxe is killed in the middle of it. Every call-back answered 200
/// finds its machine `installed` after the restart (the answers went out
/// only after their batch of the journal was on disk), and the store
/// reads back without damage.
#[test]
fn sigkill_during_a_burst_of_done_call_backs_loses_no_answered_one() {
    const N: usize = 240;
    let dir = tempdir("sigkill-done");
    let mut g = Gopxe::start(&dir, &[]);
    assert_eq!(g.post("/bootaction/a", ACTION).status, 201);
    let macs: Vec<String> = (0..N)
        .map(|i| format!("52:54:01:00:{:02x}:{:02x}", i >> 8, i & 0xff))
        .collect();
    for (i, mac) in macs.iter().enumerate() {
        let body = format!(
            r#"{{"bootaction": "a", "mac": "{mac}", "hostname": "d{i}.lab", "ip": "{}", "mask": "255.0.0.0", "gw": "127.0.0.1"}}"#,
            machine_ip(i)
        );
        assert_eq!(g.post("/pxeboot", &body).status, 201, "machine {i}");
    }
    // Each installer fetches its kickstart from its own address (the
    // machine becomes `installing`) and keeps the keyed done URL.
    let port = g.port;
    let fetchers: Vec<_> = (0..8)
        .map(|t| {
            let macs = macs.clone();
            std::thread::spawn(move || {
                (t..N)
                    .step_by(8)
                    .map(|i| {
                        let id = format!("01-{}", macs[i].replace(':', "-"));
                        let ks = common::request_from(
                            &machine_ip(i),
                            port,
                            "GET",
                            &format!("/kickstart/{id}"),
                            &[],
                            b"",
                        );
                        assert_eq!(ks.status, 200, "kickstart of {id}");
                        (i, common::done_path(&ks.text()))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut done_paths = vec![String::new(); N];
    for f in fetchers {
        for (i, p) in f.join().unwrap() {
            done_paths[i] = p;
        }
    }
    let list = g.get("/pxeboot").json();
    let installing = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "installing")
        .count();
    assert_eq!(installing, N);

    // The burst: 24 installers at a time call back; gopxe is killed once
    // a third of them have their answer.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let answered = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..24)
        .map(|_| {
            let (next, answered, stop) = (next.clone(), answered.clone(), stop.clone());
            let done_paths = done_paths.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(path) = done_paths.get(i) else {
                        return;
                    };
                    match try_post_from(&machine_ip(i), port, path) {
                        Some(200) => answered.lock().unwrap().push(i),
                        Some(s) => panic!("done of machine {i}: {s}"),
                        None => return,
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    while answered.lock().unwrap().len() < N / 3 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(1));
    }
    g.kill();
    stop.store(true, Ordering::SeqCst);
    for c in callers {
        c.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    let sent = next.load(Ordering::SeqCst).min(N);
    assert!(answered.len() >= N / 3, "only {} answered", answered.len());

    let g = Gopxe::start(&dir, &[]);
    let log = g.log_text();
    assert!(!log.contains("store: "), "the store was damaged: {log}");
    let list = g.get("/pxeboot").json();
    let states: BTreeMap<String, String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_string(),
                m["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(states.len(), N);
    for i in &answered {
        let id = format!("01-{}", macs[*i].replace(':', "-"));
        assert_eq!(
            states.get(&id).map(String::as_str),
            Some("installed"),
            "machine {id}: its done call-back was answered 200 before the kill"
        );
    }
    let installed = states.values().filter(|s| *s == "installed").count();
    eprintln!(
        "done burst: {} of {sent} call-backs answered before the kill, {installed} machines installed after it",
        answered.len()
    );
    // Every machine not answered is still in one piece: installing or installed.
    assert!(
        states
            .values()
            .all(|s| s == "installing" || s == "installed")
    );
}
