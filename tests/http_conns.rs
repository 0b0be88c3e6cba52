//! HTTP for an appliance: keep-alive, many concurrent connections on one
//! executor, and slow clients that cannot block the others.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, read_response, tempdir};
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let dir = tempdir("keepalive");
    let g = Gopxe::start(&dir, &[]);
    let s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for _ in 0..100 {
        w.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let resp = read_response(&mut r);
        assert_eq!(resp.status, 200);
    }
    // Pipelined requests are answered in order.
    w.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r).status, 200);
    assert_eq!(read_response(&mut r).status, 404);
    // Pipelined responses that nearly fill the write buffer, then headers
    // that no longer fit in what is left of it.
    for size in [3000usize, 3500, 3900, 4096, 5000] {
        std::fs::write(dir.join(format!("images/f{size}")), vec![b'x'; size]).unwrap();
    }
    for size in [3000usize, 3500, 3900, 4096, 5000] {
        let req = format!(
            "GET /images/f{size} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        );
        w.write_all(req.as_bytes()).unwrap();
        let r1 = read_response(&mut r);
        assert_eq!((r1.status, r1.body.len()), (200, size));
        assert_eq!(read_response(&mut r).status, 200);
    }
    // A connection idle past the 1 s park point still serves the next request.
    std::thread::sleep(Duration::from_millis(1500));
    w.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r).status, 200);
    // `Connection: close` is honoured: the answer, then EOF.
    w.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r).status, 200);
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn slow_clients_do_not_block_the_api() {
    let dir = tempdir("slowloris");
    let g = Gopxe::start(&dir, &[]);
    // 300 connections that send half a request line and stall.
    let mut idle = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
        s.write_all(b"GET /heal").unwrap();
        idle.push(s);
    }
    // Meanwhile 50 clients on 10 threads get quick answers.
    let port = g.port;
    let started = Instant::now();
    let threads: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let r = common::request(port, "GET", "/health", &[], b"");
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "API blocked by slow clients: {:?}",
        started.elapsed()
    );
    // The stalled connections are closed after the request timeout (10 s).
    let s = &mut idle[0];
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "a stalled client was not disconnected");
}

#[test]
fn malformed_requests_get_400_and_the_server_stays_up() {
    let dir = tempdir("garbage");
    let g = Gopxe::start(&dir, &[]);
    for junk in [
        &b"\x00\x01\x02\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n",
        b"POST /pxeboot HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /pxeboot HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        // A request head larger than the request buffer.
        &[b"GET /".as_slice(), &[b'a'; 3000], b" HTTP/1.1\r\n\r\n"].concat(),
        &[b'A'; 10_000][..],
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = s.write_all(junk);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            out.is_empty() || text.starts_with("HTTP/1.1 4"),
            "{junk:?} -> {text}"
        );
    }
    assert_eq!(g.get("/health").status, 200);
}

/// What a client reads, byte for byte: the status line with its reason
/// phrase, and a JSON body that ends in one newline.
#[test]
fn status_lines_have_reason_phrases_and_json_ends_in_a_newline() {
    let dir = tempdir("statusline");
    let g = Gopxe::start(&dir, &[]);
    let raw = |method: &str, path: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    for (method, path, line) in [
        ("GET", "/health", "HTTP/1.1 200 OK\r\n"),
        ("GET", "/nope", "HTTP/1.1 404 Not Found\r\n"),
        ("GET", "/bootaction/missing", "HTTP/1.1 404 Not Found\r\n"),
        ("PUT", "/health", "HTTP/1.1 405 Method Not Allowed\r\n"),
        ("GET", "/pxeboot/not-an-id", "HTTP/1.1 400 Bad Request\r\n"),
        ("GET", "/openapi.json", "HTTP/1.1 200 OK\r\n"),
        ("GET", "/pxeboot", "HTTP/1.1 200 OK\r\n"),
    ] {
        let out = raw(method, path);
        assert!(out.starts_with(line), "{method} {path}: {out:?}");
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        assert!(
            body.ends_with('\n') && !body.ends_with("\n\n"),
            "{method} {path}: the JSON body ends in one newline: {body:?}"
        );
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
    let out = raw("GET", "/pxeboot");
    assert!(out.ends_with("\r\n\r\n[]\n"), "{out:?}");
}
