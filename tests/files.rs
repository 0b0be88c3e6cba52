//! Whole-process tests of the image tree's file rules, over TFTP and HTTP
//! alike: only regular files are opened. A FIFO in the tree is refused
//! promptly without blocking anything (the server keeps answering), and a
//! symlink out of the tree is refused with its target named in the log,
//! never in the answer.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, tempdir, wait_until};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A tree with `images/fifo`, `images/loader` (regular) and
/// `images/escape`, a symlink to `secret.txt` beside `images/`; returns the
/// canonical path of the secret.
fn tree(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::write(dir.join("images/loader"), b"loader bytes").unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        dir.join("images/fifo"),
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    std::fs::write(dir.join("secret.txt"), b"top secret").unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), dir.join("images/escape")).unwrap();
    dir.join("secret.txt").canonicalize().unwrap()
}

fn rrq(name: &str) -> Vec<u8> {
    let mut p = vec![0, 1];
    p.extend_from_slice(name.as_bytes());
    p.push(0);
    p.extend_from_slice(b"octet\0");
    p
}

/// Sends an RRQ and returns the first answer (opcode, code or block).
fn ask(port: u16, name: &str) -> (u16, u16, String) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.send_to(&rrq(name), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 1024];
    let (n, _) = s
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no answer to {name}: {e}"));
    let b = &buf[..n];
    assert!(n >= 4, "{b:?}");
    let text = String::from_utf8_lossy(b.get(4..).unwrap_or_default())
        .trim_end_matches('\0')
        .to_string();
    (
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
        text,
    )
}

#[test]
fn a_fifo_over_tftp_is_refused_and_blocks_nothing() {
    let dir = tempdir("fifo-tftp");
    let secret = tree(&dir);
    let g = Gopxe::start(&dir, &[]);
    let port = g.announced_port("tftp").expect("tftp port announced");

    // The request for the FIFO, then /health while it is pending: both
    // answer (opening the FIFO would block the executor until a writer).
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    s.send_to(&rrq("fifo"), ("127.0.0.1", port)).unwrap();
    assert_eq!(g.get("/health").status, 200);
    let mut buf = [0u8; 512];
    let (n, _) = s.recv_from(&mut buf).expect("an answer to the FIFO's RRQ");
    assert_eq!(&buf[..4], [0, 5, 0, 2], "{:?}", &buf[..n]);
    assert!(start.elapsed() < Duration::from_secs(5));

    // A symlink out of the tree: access violation, the reason in the log.
    assert_eq!(ask(port, "escape"), (5, 2, "access violation".into()));
    // The regular file next to them is served.
    assert_eq!(ask(port, "loader").0, 3);

    let reason = format!(
        "escape refused: symlink leaves the images root -> {}",
        secret.display()
    );
    assert!(
        wait_until(Duration::from_secs(5), || {
            let log = g.log_text();
            log.contains("fifo refused: not a regular file: FIFO") && log.contains(&reason)
        }),
        "{}",
        g.log_text()
    );
}

#[test]
fn a_fifo_over_http_is_refused_promptly_and_the_log_says_why() {
    let dir = tempdir("fifo-http");
    let secret = tree(&dir);
    let g = Gopxe::start(&dir, &[]);

    let start = Instant::now();
    let r = g.get("/images/fifo");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(r.json()["error"], "not a regular file");
    // Again, and /health beside it: nothing is left holding a thread.
    assert_eq!(g.get("/images/fifo").status, 403);
    assert_eq!(g.get("/health").status, 200);

    let r = g.get("/images/escape");
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "outside the root");
    let body = r.text();
    assert!(!body.contains("top secret") && !body.contains(&*dir.to_string_lossy()));

    assert_eq!(g.get("/images/loader").body, b"loader bytes");
    assert_eq!(g.get("/images/nothing").status, 404);

    let reason = format!(
        "GET /images/escape refused: symlink leaves the images root -> {}",
        secret.display()
    );
    assert!(
        wait_until(Duration::from_secs(5), || {
            let log = g.log_text();
            log.contains("GET /images/fifo refused: not a regular file: FIFO")
                && log.contains(&reason)
        }),
        "{}",
        g.log_text()
    );
}
