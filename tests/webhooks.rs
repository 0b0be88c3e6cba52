//! Whole-process tests of webhooks: the real binary POSTs every machine
//! change to a receiver on loopback that fails some deliveries, and a dead
//! receiver never slows the API.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, tempdir, wait_until};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const UUID: &str = "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69";
/// The record's address: its kickstart fetched from here is its own.
const MACHINE_IP: &str = "127.0.0.90";

const RECORD: &str = r#"{
  "bootaction": "hooked",
  "ksfile": "default",
  "os": "centos-7",
  "version": "7.5.1804",
  "hostname": "node1.lab.local",
  "ip": "127.0.0.90",
  "mask": "255.0.0.0",
  "gw": "127.0.0.1",
  "uuid": "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69"
}"#;

/// How the receiver answers one connection.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    Status(u16),
    /// Read the request, then close without a word.
    Close,
    /// Accept, never read or answer (kept open).
    Hang,
}

type Headers = Vec<(String, String)>;

/// One request the receiver saw.
#[derive(Clone, Debug)]
struct Seen {
    request_line: String,
    headers: Headers,
    body: serde_json::Value,
    answer: Answer,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(s: &TcpStream) -> Option<(String, Headers, Vec<u8>)> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((line.trim_end().to_string(), headers, body))
}

/// A webhook receiver on 127.0.0.1 port 0.
struct Receiver {
    port: u16,
    /// Requests read, in order.
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections accepted.
    accepted: Arc<Mutex<usize>>,
}

/// Starts a receiver answering connection `n` with `plan(n)`.
fn receiver(plan: impl Fn(usize) -> Answer + Send + 'static) -> Receiver {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let accepted = Arc::new(Mutex::new(0));
    let (seen2, accepted2) = (seen.clone(), accepted.clone());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for n in 0..1000 {
            let Ok((s, _)) = l.accept() else { return };
            *accepted2.lock().unwrap() += 1;
            let answer = plan(n);
            if answer == Answer::Hang {
                held.push(s);
                continue;
            }
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let Some((request_line, headers, body)) = read_request(&s) else {
                continue;
            };
            let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            seen2.lock().unwrap().push(Seen {
                request_line,
                headers,
                body,
                answer,
            });
            if let Answer::Status(code) = answer {
                let mut s = s;
                let _ = write!(
                    s,
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        }
    });
    Receiver {
        port,
        seen,
        accepted,
    }
}

fn metric(g: &Gopxe, outcome: &str) -> u64 {
    let text = g.get("/metrics").text();
    let key = format!("gopxe_webhooks_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(|v| v.parse().unwrap())
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn every_change_arrives_once_in_order_despite_failures() {
    // Connections 0 and 1 get a 500, connection 3 is closed unanswered.
    let Receiver { port, seen, .. } = receiver(|n| match n {
        0 | 1 => Answer::Status(500),
        3 => Answer::Close,
        _ => Answer::Status(204),
    });
    let dir = tempdir("webhook");
    let url = format!("http://127.0.0.1:{port}/hook?key=s3cret");
    let g = Gopxe::start(&dir, &["--webhook", &url]);
    let start_ms = now_ms();

    let hooked = r#"{"kernel": "centos7/vmlinuz", "initrd": "centos7/initrd.img"}"#;
    assert_eq!(g.post("/bootaction/hooked", hooked).status, 201);
    assert_eq!(g.post("/pxeboot", RECORD).status, 201);
    let ks = format!("/kickstart/{UUID}");
    assert_eq!(g.get_from(MACHINE_IP, &ks).status, 200);
    // A second fetch changes nothing and tells no one.
    assert_eq!(g.get_from(MACHINE_IP, &ks).status, 200);
    assert_eq!(
        g.post(&format!("/pxeboot/{UUID}/done"), "").json()["state"],
        "installed"
    );
    assert_eq!(
        g.post(&format!("/pxeboot/{UUID}/reinstall"), "").json()["state"],
        "install"
    );
    assert_eq!(g.put(&format!("/pxeboot/{UUID}"), RECORD).status, 200);
    assert_eq!(g.delete(&format!("/pxeboot/{UUID}")).status, 204);

    let expected = [
        ("created", None, Some("install")),
        ("state_changed", Some("install"), Some("installing")),
        ("state_changed", Some("installing"), Some("installed")),
        ("state_changed", Some("installed"), Some("install")),
        ("updated", Some("install"), Some("install")),
        ("deleted", Some("install"), None),
    ];
    let delivered = |s: &[Seen]| {
        s.iter()
            .filter(|a| matches!(a.answer, Answer::Status(200..=299)))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(30), || delivered(&seen.lock().unwrap())
            >= expected.len()),
        "not all delivered: {:#?}\nlog: {}",
        seen.lock().unwrap(),
        g.log_text()
    );
    // Nothing more comes (a duplicate would follow its original at once).
    std::thread::sleep(Duration::from_millis(300));
    let seen = seen.lock().unwrap().clone();

    // Every try, in order: event 1 three times (500, 500, ok), event 2
    // twice (closed, ok), then one try each.
    let seqs: Vec<u64> = seen
        .iter()
        .map(|a| a.body["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 1, 1, 2, 2, 3, 4, 5, 6], "{seen:#?}");
    let answers: Vec<Answer> = seen.iter().map(|a| a.answer).collect();
    assert_eq!(
        &answers[..5],
        [
            Answer::Status(500),
            Answer::Status(500),
            Answer::Status(204),
            Answer::Close,
            Answer::Status(204)
        ]
    );
    // A retry sends the same body.
    assert_eq!(seen[0].body, seen[2].body);
    assert_eq!(seen[3].body, seen[4].body);

    let ok: Vec<&Seen> = seen
        .iter()
        .filter(|a| a.answer == Answer::Status(204))
        .collect();
    assert_eq!(ok.len(), expected.len());
    let mut last_ms = start_ms.saturating_sub(1000);
    for (i, (a, (event, old, new))) in ok.iter().zip(expected).enumerate() {
        let b = &a.body;
        assert_eq!(a.request_line, "POST /hook?key=s3cret HTTP/1.1");
        assert_eq!(a.header("Host"), Some(format!("127.0.0.1:{port}").as_str()));
        assert_eq!(a.header("Content-Type"), Some("application/json"));
        assert_eq!(a.header("X-Gopxe-Event"), Some(event));
        assert_eq!(b["seq"], i as u64 + 1);
        assert_eq!(b["event"], event, "{b}");
        assert_eq!(b["old_state"].as_str(), old, "{b}");
        assert_eq!(b["new_state"].as_str(), new, "{b}");
        assert_eq!(b["id"], UUID);
        assert_eq!(b["hostname"], "node1.lab.local");
        assert_eq!(b["ip"], MACHINE_IP);
        assert_eq!(b["bootaction"], "hooked");
        assert_eq!(b["gopxe_version"], env!("CARGO_PKG_VERSION"));
        let ms = b["timestamp_ms"].as_u64().unwrap();
        assert!(ms >= last_ms && ms <= now_ms(), "{ms} after {last_ms}");
        last_ms = ms;
        let ts = b["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z') && ts.get(10..11) == Some("T"), "{ts}");
    }

    // The retries are in the log and the metrics.
    let log = g.log_text();
    assert!(log.contains("event 1 try 1 failed (answered 500)"), "{log}");
    assert!(
        log.contains("event 2 try 1 failed (connection closed"),
        "{log}"
    );
    assert!(
        log.contains("event 1 (created) delivered on try 3"),
        "{log}"
    );
    assert_eq!(metric(&g, "delivered"), 6);
    assert_eq!(metric(&g, "retried"), 3);
    assert_eq!(metric(&g, "dropped"), 0);
}

#[test]
fn a_dead_webhook_never_slows_the_api() {
    // One receiver accepts and never answers; another port refuses.
    let Receiver {
        port: hang_port,
        accepted,
        ..
    } = receiver(|_| Answer::Hang);
    let refused_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempdir("webhook-dead");
    let hang = format!("http://127.0.0.1:{hang_port}/hook");
    let refused = format!("http://127.0.0.1:{refused_port}/hook");
    let g = Gopxe::start(&dir, &["--webhook", &hang, "--webhook", &refused]);

    let hooked = r#"{"kernel": "centos7/vmlinuz"}"#;
    assert_eq!(g.post("/bootaction/hooked", hooked).status, 201);
    let t = Instant::now();
    assert_eq!(g.post("/pxeboot", RECORD).status, 201);
    let mut slowest = t.elapsed();
    // 100 install rounds (kickstart fetched by the machine, done,
    // reinstall): 301 changes, more than a queue holds.
    let rounds = 100;
    for _ in 0..rounds {
        let t = Instant::now();
        let r = g.get_from(MACHINE_IP, &format!("/kickstart/{UUID}"));
        assert_eq!(r.status, 200, "{}", r.text());
        slowest = slowest.max(t.elapsed());
        for action in ["done", "reinstall"] {
            let t = Instant::now();
            let r = g.post(&format!("/pxeboot/{UUID}/{action}"), "");
            assert_eq!(r.status, 200, "{}", r.text());
            slowest = slowest.max(t.elapsed());
        }
    }
    // One try to the hanging receiver takes 10 s to time out: an API that
    // waited on it would show that here.
    assert!(
        slowest < Duration::from_secs(5),
        "an API write took {slowest:?}"
    );
    assert!(*accepted.lock().unwrap() >= 1, "gopxe never connected");
    let t = Instant::now();
    assert_eq!(g.get("/health").status, 200);
    assert!(t.elapsed() < Duration::from_secs(5));

    // Each queue holds 256: the 45 oldest beyond that were dropped from each.
    let events = 1 + 3 * rounds;
    assert_eq!(metric(&g, "dropped"), 2 * (events - 256));
    assert_eq!(metric(&g, "delivered"), 0);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let log = g.log_text();
            log.contains(&format!(
                "webhook {refused}: event 1 try 1 failed (connect 127.0.0.1:{refused_port}"
            )) && log.contains(&format!("webhook {hang}: queue full, dropped event"))
        }),
        "{}",
        g.log_text()
    );
}
