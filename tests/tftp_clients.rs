//! TFTP over loopback with real clients (curl, atftp, tftp-hpa) and a raw
//! UDP client: byte-identical downloads, windowsize, path traversal,
//! concurrency limit, TIDs. Only 127.0.0.1, port 0. Every loop is bounded
//! in count and time.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::Async;
use gopxe::tftp::{
    ImagesRoot, Outcome, ServerConfig, TransferConfig, TransferReport, WithVirtual, serve,
};

const SECRET: &[u8] = b"TOP-SECRET-do-not-serve-0123456789";
const VIRTUAL: &[u8] = b"DEFAULT local\nLABEL local\n  LOCALBOOT 0\n";

struct Fixture {
    dir: PathBuf,
    root: PathBuf,
    port: u16,
    reports: Arc<Mutex<Vec<TransferReport>>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn fixture(cfg: ServerConfig) -> Fixture {
    let dir = std::env::temp_dir().join(format!(
        "gopxe-tftp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let root = dir.join("images");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("secret.txt"), SECRET).unwrap();
    std::fs::write(root.join("small.bin"), rand_bytes(1000, 1)).unwrap();
    std::fs::write(root.join("sub/deeper/medium.bin"), rand_bytes(100_000, 2)).unwrap();
    std::fs::write(root.join("big.bin"), rand_bytes(5 * 1024 * 1024 + 123, 3)).unwrap();
    std::fs::write(root.join("exact.bin"), rand_bytes(4096, 4)).unwrap();
    std::fs::write(root.join("empty.bin"), b"").unwrap();
    std::fs::write(
        root.join("text.txt"),
        b"line 1\nline 2\r\n\nend\n".repeat(300),
    )
    .unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("escape")).unwrap();
    std::os::unix::fs::symlink("..", root.join("updir")).unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("abs-escape")).unwrap();
    std::os::unix::fs::symlink("small.bin", root.join("inner-link")).unwrap();

    let provider = WithVirtual {
        lookup: |p: &gopxe::tftp::RelativePath, _client: SocketAddr| {
            (p.as_str() == "pxelinux.cfg/default").then(|| VIRTUAL.to_vec())
        },
        inner: ImagesRoot::new(&root).unwrap(),
    };
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    std::thread::spawn(move || {
        let sock = Async::new(sock).unwrap();
        let _ = smol::block_on(serve(sock, cfg, provider, move |rep: &TransferReport| {
            r.lock().unwrap().push(rep.clone());
        }));
    });
    Fixture {
        dir,
        root,
        port,
        reports,
    }
}

fn have(bin: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        eprintln!("!!!!!!!! SKIPPED: `{bin}` is not installed (apt-get install {bin}) !!!!!!!!");
    }
    found
}

fn run(cmd: &mut Command) -> bool {
    let out = cmd.output().expect("spawn client");
    if !out.status.success() {
        eprintln!(
            "{cmd:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

fn curl_get(port: u16, name: &str, blksize: Option<u32>, out: &Path) -> bool {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "--path-as-is", "-o"])
        .arg(out)
        .arg(format!("tftp://127.0.0.1:{port}/{name}"));
    if let Some(b) = blksize {
        cmd.args(["--tftp-blksize", &b.to_string()]);
    }
    run(&mut cmd)
}

fn atftp_get(port: u16, name: &str, options: &[&str], out: &Path) -> bool {
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "atftp", "--get", "-r", name, "-l"])
        .arg(out);
    for o in options {
        cmd.args(["--option", o]);
    }
    cmd.args(["127.0.0.1", &port.to_string()]);
    run(&mut cmd)
}

/// Wait (bounded) for the report of `file`.
fn report_for(fx: &Fixture, file: &str) -> TransferReport {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if let Some(r) = fx.reports.lock().unwrap().iter().find(|r| r.file == file) {
            return r.clone();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no report for {file}");
}

#[test]
fn curl_downloads_are_byte_identical() {
    if !have("curl") {
        return;
    }
    let fx = fixture(ServerConfig::default());
    let cases: &[(&str, Option<u32>)] = &[
        ("small.bin", None),
        ("small.bin", Some(8)),
        ("exact.bin", Some(512)),
        ("empty.bin", None),
        ("sub/deeper/medium.bin", Some(1468)),
        ("big.bin", Some(512)),
        ("big.bin", Some(1468)),
        ("big.bin", Some(8192)),
        ("big.bin", Some(65464)),
        ("inner-link", None),
    ];
    for (i, (name, blksize)) in cases.iter().enumerate() {
        let out = fx.dir.join(format!("curl-{i}"));
        assert!(
            curl_get(fx.port, name, *blksize, &out),
            "{name} {blksize:?}"
        );
        let want = std::fs::read(fx.root.join(name)).unwrap();
        assert!(
            std::fs::read(&out).unwrap() == want,
            "{name} {blksize:?} differs"
        );
    }
    let r = report_for(&fx, "small.bin");
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.bytes, 1000);
    assert_eq!(r.client.ip().to_string(), "127.0.0.1");
    // The virtual file, exactly.
    let out = fx.dir.join("curl-virtual");
    assert!(curl_get(fx.port, "pxelinux.cfg/default", None, &out));
    assert_eq!(std::fs::read(&out).unwrap(), VIRTUAL);
}

#[test]
fn curl_past_block_65535() {
    if !have("curl") {
        return;
    }
    let fx = fixture(ServerConfig::default());
    // blksize 512: 33 MiB is 67584 blocks, so numbers wrap once.
    let data = rand_bytes(33 * 1024 * 1024 + 7, 9);
    std::fs::write(fx.root.join("huge.bin"), &data).unwrap();
    let out = fx.dir.join("huge.out");
    assert!(curl_get(fx.port, "huge.bin", Some(512), &out));
    assert!(std::fs::read(&out).unwrap() == data, "huge.bin differs");
    let r = report_for(&fx, "huge.bin");
    assert_eq!(r.outcome, Outcome::Completed);
    assert!(r.blocks > 65536);
}

#[test]
fn atftp_downloads_with_windowsize() {
    if !have("atftp") {
        return;
    }
    let fx = fixture(ServerConfig::default());
    let cases: &[(&str, &[&str])] = &[
        ("small.bin", &[]),
        ("exact.bin", &["blksize 1024"]),
        ("big.bin", &["blksize 1468"]),
        ("big.bin", &["blksize 1468", "windowsize 8"]),
        ("big.bin", &["blksize 1468", "windowsize 32"]),
        ("big.bin", &["blksize 8192", "windowsize 8"]),
        ("big.bin", &["blksize 512", "windowsize 4", "tsize 0"]),
        (
            "sub/deeper/medium.bin",
            &["blksize 1432", "tsize 0", "timeout 2"],
        ),
        ("pxelinux.cfg/default", &["tsize 0"]),
    ];
    for (i, (name, options)) in cases.iter().enumerate() {
        let out = fx.dir.join(format!("atftp-{i}"));
        assert!(
            atftp_get(fx.port, name, options, &out),
            "{name} {options:?}"
        );
        let want = match *name {
            "pxelinux.cfg/default" => VIRTUAL.to_vec(),
            _ => std::fs::read(fx.root.join(name)).unwrap(),
        };
        assert!(
            std::fs::read(&out).unwrap() == want,
            "{name} {options:?} differs"
        );
    }
    let r = report_for(&fx, "pxelinux.cfg/default");
    assert_eq!(r.outcome, Outcome::Completed);
}

#[test]
fn tftp_hpa_netascii_and_octet() {
    if !have("tftp") {
        return;
    }
    let fx = fixture(ServerConfig::default());
    for (mode, name) in [("ascii", "text.txt"), ("binary", "big.bin")] {
        let out = fx.dir.join(format!("hpa-{mode}"));
        let mut cmd = Command::new("timeout");
        cmd.args([
            "60",
            "tftp",
            "-m",
            mode,
            "127.0.0.1",
            &fx.port.to_string(),
            "-c",
            "get",
            name,
        ])
        .arg(&out);
        assert!(run(&mut cmd), "{mode}");
        let want = std::fs::read(fx.root.join(name)).unwrap();
        assert!(
            std::fs::read(&out).unwrap() == want,
            "{mode} {name} differs"
        );
    }
}

// ---- raw client -------------------------------------------------------

fn rrq(name: &[u8], options: &[(&str, &str)]) -> Vec<u8> {
    let mut v = vec![0, 1];
    v.extend_from_slice(name);
    v.extend_from_slice(b"\0octet\0");
    for (k, val) in options {
        v.extend_from_slice(k.as_bytes());
        v.push(0);
        v.extend_from_slice(val.as_bytes());
        v.push(0);
    }
    v
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// Download with RFC 1350 defaults; Err((code, message)) on an ERROR.
fn raw_get(port: u16, name: &[u8]) -> Result<Vec<u8>, (u16, String)> {
    let s = client();
    s.send_to(&rrq(name, &[]), ("127.0.0.1", port)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 600];
    let mut expect = 1u16;
    for _ in 0..100_000 {
        let (n, from) = s.recv_from(&mut buf).expect("server answer");
        let p = &buf[..n];
        match p {
            [0, 5, hi, lo, msg @ ..] => {
                let msg = String::from_utf8_lossy(msg.split(|&b| b == 0).next().unwrap());
                return Err((u16::from_be_bytes([*hi, *lo]), msg.into_owned()));
            }
            [0, 3, hi, lo, data @ ..] => {
                let block = u16::from_be_bytes([*hi, *lo]);
                if block == expect {
                    got.extend_from_slice(data);
                    expect = expect.wrapping_add(1);
                }
                s.send_to(&[0, 4, *hi, *lo], from).unwrap();
                if data.len() < 512 {
                    return Ok(got);
                }
            }
            other => panic!("unexpected packet {other:?}"),
        }
    }
    panic!("transfer did not end");
}

#[test]
fn traversal_attacks_never_leak() {
    let fx = fixture(ServerConfig::default());
    let long = "a/".repeat(600) + "x";
    let long_comp = "b".repeat(300);
    let attacks: Vec<Vec<u8>> = [
        "../secret.txt",
        "/../secret.txt",
        "../../../../../../etc/passwd",
        "/etc/passwd",
        "//etc/passwd",
        "..\\secret.txt",
        "..\\..\\etc\\passwd",
        "sub\\..\\..\\secret.txt",
        "sub/../../secret.txt",
        "foo/../../x",
        "sub/deeper/../../../secret.txt",
        "./../secret.txt",
        ".",
        "..",
        "sub/./../../secret.txt",
        "%2e%2e/secret.txt",
        "%2e%2e%2fsecret.txt",
        "..%2fsecret.txt",
        "..%5csecret.txt",
        "escape",
        "abs-escape",
        "updir/secret.txt",
        "updir/images/small.bin/../../secret.txt",
        "sub/",
        "sub",
        &long,
        &long_comp,
        "/",
        "",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        b"secret.txt\0../secret.txt".to_vec(),
        b"..\0/secret.txt".to_vec(),
        b"\xc0\xae\xc0\xae/secret.txt".to_vec(),
        b"..\xc0\xafsecret.txt".to_vec(),
        b"sub/\n../../secret.txt".to_vec(),
    ])
    .collect();
    assert!(attacks.len() >= 20);
    for name in &attacks {
        let shown = String::from_utf8_lossy(name);
        match raw_get(fx.port, name) {
            Err((code, _)) => assert!(matches!(code, 1 | 2 | 4), "{shown}: code {code}"),
            Ok(data) => panic!("{shown}: served {} bytes", data.len()),
        }
    }
    // With curl too (sends the path as is).
    if have("curl") {
        for name in [
            "../secret.txt",
            "escape",
            "updir/secret.txt",
            "..%2fsecret.txt",
        ] {
            let out = fx.dir.join("curl-attack");
            let _ = std::fs::remove_file(&out);
            assert!(!curl_get(fx.port, name, None, &out), "{name} served");
            let got = std::fs::read(&out).unwrap_or_default();
            assert!(
                !got.windows(SECRET.len()).any(|w| w == SECRET),
                "{name} leaked"
            );
        }
    }
    // The secret never went out in any report either.
    for r in fx.reports.lock().unwrap().iter() {
        assert!(r.bytes == 0, "{} sent bytes", r.file);
    }
    // Sanity: a legitimate name through the same client works.
    assert_eq!(
        raw_get(fx.port, b"/small.bin").unwrap(),
        rand_bytes(1000, 1)
    );
}

#[test]
fn write_requests_refused() {
    let fx = fixture(ServerConfig::default());
    let s = client();
    let mut wrq = rrq(b"new.bin", &[]);
    wrq[1] = 2;
    s.send_to(&wrq, ("127.0.0.1", fx.port)).unwrap();
    let mut buf = [0u8; 600];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..4], [0, 5, 0, 2], "{:?}", &buf[..n]);
    assert!(!fx.root.join("new.bin").exists());
}

#[test]
fn concurrency_limit_answers_busy() {
    let max = 3;
    let extra = 4;
    let fx = fixture(ServerConfig {
        max_transfers: max,
        // Every client is 127.0.0.1: only the global limit is tested here.
        max_per_client: max + extra,
        ..ServerConfig::default()
    });
    let clients: Vec<UdpSocket> = (0..max + extra).map(|_| client()).collect();
    let mut buf = [0u8; 600];
    let mut tids = Vec::new();
    let mut busy = 0;
    for (i, c) in clients.iter().enumerate() {
        c.send_to(&rrq(b"big.bin", &[]), ("127.0.0.1", fx.port))
            .unwrap();
        let (n, from) = c.recv_from(&mut buf).unwrap();
        match &buf[..n] {
            [0, 3, 0, 1, ..] => tids.push((i, from)),
            [0, 5, 0, 0, msg @ ..] => {
                assert!(String::from_utf8_lossy(msg).contains("busy"));
                busy += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(tids.len(), max);
    assert_eq!(busy, extra);
    // End one transfer: a new request is served again.
    let (i, tid) = tids[0];
    clients[i]
        .send_to(b"\x00\x05\x00\x00stop\x00", tid)
        .unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    let c = client();
    loop {
        assert!(Instant::now() < end, "slot never freed");
        c.send_to(&rrq(b"small.bin", &[]), ("127.0.0.1", fx.port))
            .unwrap();
        let (n, _) = c.recv_from(&mut buf).unwrap();
        if buf[..n].starts_with(&[0, 3, 0, 1]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn wrong_tid_gets_error_5_and_transfer_goes_on() {
    let fx = fixture(ServerConfig::default());
    let a = client();
    let b = client();
    let mut buf = [0u8; 600];
    a.send_to(&rrq(b"small.bin", &[]), ("127.0.0.1", fx.port))
        .unwrap();
    let (n, tid) = a.recv_from(&mut buf).unwrap();
    assert!(buf[..n].starts_with(&[0, 3, 0, 1]));
    assert_ne!(tid.port(), fx.port, "a new TID per transfer");
    b.send_to(&[0, 4, 0, 1], tid).unwrap();
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!(from, tid);
    assert!(buf[..n].starts_with(&[0, 5, 0, 5]));
    a.send_to(&[0, 4, 0, 1], tid).unwrap();
    let (n, _) = a.recv_from(&mut buf).unwrap();
    assert!(buf[..n].starts_with(&[0, 3, 0, 2]));
    assert_eq!(n, 4 + 1000 - 512);
    a.send_to(&[0, 4, 0, 2], tid).unwrap();
    assert_eq!(report_for(&fx, "small.bin").outcome, Outcome::Completed);
}

#[test]
fn duplicate_rrq_starts_one_transfer() {
    let fx = fixture(ServerConfig::default());
    let a = client();
    a.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let req = rrq(b"small.bin", &[("blksize", "512")]);
    a.send_to(&req, ("127.0.0.1", fx.port)).unwrap();
    a.send_to(&req, ("127.0.0.1", fx.port)).unwrap();
    let mut buf = [0u8; 600];
    let mut sources = Vec::new();
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end && sources.len() < 10 {
        if let Ok((_, from)) = a.recv_from(&mut buf) {
            sources.push(from);
        }
    }
    // DATA 1, then its retransmission after the 1 s timeout: same TID.
    assert!(sources.len() >= 2, "{sources:?}");
    assert!(sources.iter().all(|s| *s == sources[0]), "{sources:?}");
    let _ = a.send_to(b"\x00\x05\x00\x00bye\x00", sources[0]);
}

#[test]
fn oack_and_options_over_the_wire() {
    let fx = fixture(ServerConfig {
        transfer: TransferConfig {
            max_blksize: 1400,
            ..TransferConfig::default()
        },
        ..ServerConfig::default()
    });
    let a = client();
    let mut buf = [0u8; 2000];
    let req = rrq(
        b"small.bin",
        &[("TSIZE", "0"), ("blksize", "9000"), ("windowsize", "4")],
    );
    a.send_to(&req, ("127.0.0.1", fx.port)).unwrap();
    let (n, tid) = a.recv_from(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"\x00\x06blksize\x001400\x00tsize\x001000\x00windowsize\x004\x00"
    );
    a.send_to(&[0, 4, 0, 0], tid).unwrap();
    let (n, _) = a.recv_from(&mut buf).unwrap();
    assert_eq!(n, 4 + 1000);
    a.send_to(&[0, 4, 0, 1], tid).unwrap();
    assert_eq!(report_for(&fx, "small.bin").outcome, Outcome::Completed);
}
