//! Shared helpers for whole-process tests: start the real `gopxe` binary on
//! 127.0.0.1 port 0 with a fresh data dir, and a minimal HTTP/1.1 client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh temp folder for one test, removed when dropped (kept, with its
/// path printed, when the test is failing, to look at).
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test folder kept: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh temp folder for one test.
pub fn tempdir(tag: &str) -> TempDir {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("gopxe-it-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// A running gopxe process; killed on drop.
pub struct Gopxe {
    pub child: Child,
    pub port: u16,
    /// Further `gopxe: ...` lines of stdout (dhcp/tftp addresses).
    pub announced: Vec<String>,
    _stdout: Option<BufReader<std::process::ChildStdout>>,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub args: Vec<String>,
    /// The test folder, when this process owns it (removed after the kill).
    owned: Option<TempDir>,
}

/// The binary under test: `GOPXE_TEST_BIN` when set (the test script
/// points it at the release build for `tests/security.rs`), else the one
/// cargo built for these tests.
pub fn bin() -> String {
    std::env::var("GOPXE_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_gopxe").to_string())
}

impl Gopxe {
    /// Starts gopxe with its data in `dir/data`, images in `dir/images`.
    pub fn start(dir: &Path, extra: &[&str]) -> Gopxe {
        std::fs::create_dir_all(dir.join("images")).unwrap();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--http-listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--images".into(),
            dir.join("images").display().to_string(),
        ];
        if !extra.contains(&"--tftp-listen") {
            args.extend(["--tftp-listen".into(), "127.0.0.1:0".into()]);
        }
        if !extra.contains(&"--syslog-listen") {
            args.extend(["--syslog-listen".into(), "off".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start_args(dir, args)
    }

    pub fn start_args(dir: &Path, args: Vec<String>) -> Gopxe {
        let log = dir.join(format!(
            "gopxe-{}.log",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let mut child = Command::new(bin())
            .args(&args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start gopxe");
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let mut announced = Vec::new();
        // Every announcement comes before the http one.
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.contains("http listening") {
                break;
            }
            announced.push(line.trim().to_string());
        }
        let port = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no port in {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        Gopxe {
            child,
            port,
            announced,
            _stdout: Some(reader),
            dir: dir.to_path_buf(),
            log,
            args,
            owned: None,
        }
    }

    /// Hands this process its test folder: removed once it is killed.
    pub fn owning(mut self, dir: TempDir) -> Gopxe {
        self.owned = Some(dir);
        self
    }

    /// The port of an announced service (`dhcp`, `tftp`).
    pub fn announced_port(&self, service: &str) -> Option<u16> {
        let l = self
            .announced
            .iter()
            .find(|l| l.contains(&format!("gopxe: {service}")))?;
        let addr = l.split("listening on ").nth(1)?.split_whitespace().next()?;
        addr.rsplit(':').next()?.parse().ok()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn get(&self, path: &str) -> Resp {
        request(self.port, "GET", path, &[], b"")
    }

    /// A GET from another loopback address (a machine's own, in tests).
    pub fn get_from(&self, source: &str, path: &str) -> Resp {
        request_from(source, self.port, "GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, body: &str) -> Resp {
        request(
            self.port,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }

    pub fn put(&self, path: &str, body: &str) -> Resp {
        request(
            self.port,
            "PUT",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }

    pub fn delete(&self, path: &str) -> Resp {
        request(self.port, "DELETE", path, &[], b"")
    }
}

impl Drop for Gopxe {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection (`Connection: close`).
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    request_from("127.0.0.1", port, method, path, headers, body)
}

/// [`request`] from a given loopback source address (any 127.x.y.z): a
/// machine's own address in tests, since its answer-file fetches count
/// only from there.
pub fn request_from(
    source: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let src: std::net::SocketAddr = format!("{source}:0").parse().expect("source address");
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&src.into()).expect("bind source");
    let dst: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    sock.connect(&dst.into()).expect("connect");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut BufReader::new(s))
}

/// Reads one response (Content-Length framed) from a buffered stream.
pub fn read_response<R: Read>(r: &mut BufReader<R>) -> Resp {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    // `HTTP/1.1 <code> <reason phrase>`: every response carries its phrase.
    let status: u16 = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.strip_suffix("\r\n"))
        .and_then(|r| r.split_once(' '))
        .filter(|(_, reason)| !reason.trim().is_empty())
        .and_then(|(code, _)| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    Resp {
        status,
        headers,
        body,
    }
}

/// The path (from `/pxeboot/`) of the first `done` call-back URL in an
/// answer file: up to the quote, space or line end that closes it.
pub fn done_path(text: &str) -> String {
    let start = text.find("/pxeboot/").expect("a done URL");
    text[start..]
        .split(['\'', '"', ' ', '\n'])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// How many store journal files (`journal.<n>`) the data dir `data` has:
/// none once a start-up's checkpoint has folded them into the record files.
pub fn journal_files(data: &Path) -> usize {
    std::fs::read_dir(data)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("journal."))
                .count()
        })
        .unwrap_or(0)
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// gopxe with DHCP in `mode` on loopback behind the test's relay socket
/// `relay` (read timeout 5 s), data in `dir`; authoritative mode has the
/// pool 127.0.0.100-150. Returns gopxe and its DHCP port.
pub fn start_behind_relay(
    dir: &Path,
    relay: &std::net::UdpSocket,
    mode: &str,
    extra: &[&str],
) -> (Gopxe, u16) {
    relay
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let relay_port = relay.local_addr().unwrap().port().to_string();
    let mut args = vec![
        "--dhcp-mode",
        mode,
        "--dhcp-listen",
        "127.0.0.1:0",
        "--dhcp-relay-port",
        &relay_port,
        "--advertise-addr",
        "127.0.0.1",
    ];
    if mode == "authoritative" {
        args.extend(["--dhcp-range", "127.0.0.100,127.0.0.150,255.0.0.0,1h"]);
    }
    args.extend_from_slice(extra);
    let g = Gopxe::start(dir, &args);
    let server = g.announced_port("dhcp").expect("dhcp port announced");
    (g, server)
}
