//! One HTTP connection's input, arbitrary bytes, through the whole HTTP
//! stack: picoserve's parser and sessions, the framing and access guard,
//! the routes, and the connection's socket (`gopxe::http::harness`, which
//! serves a TCP connection's code over bytes in memory).
//!
//! Input: the first byte picks the client and how the rest arrives (low
//! nibble: reads of that many bytes, 0 = all at once; bits 4-5: the peer
//! address); the rest is what the client sends. The app has an API token,
//! so no request can write (its store is an empty temp dir all the same).
//!
//! Invariants, for any input:
//! 1. No panic, and the connection ends (libFuzzer's `-timeout` catches a
//!    hang): the input is consumed or the connection closed.
//! 2. The output is a sequence of well-formed responses: a status line
//!    `HTTP/1.1 <3 digits> <reason phrase>`, header lines, an empty line,
//!    and exactly as many body bytes as its one `Content-Length` says,
//!    nothing after the last (`harness::parse_responses`). No file is served (there is no
//!    image root), so every body is in memory and counted.
//! 3. No response without a request: each answered request had a head of
//!    at least two `\n`-ended lines (picoserve ends lines at `\n` and a
//!    head at a blank line, so `\r\n\r\n` is not the only head end), and
//!    only the last response may answer a head that did not parse (one
//!    400 from picoserve). So an empty input gets nothing, and there are
//!    at most `lines / 2 + 1` responses.
//! 4. A response with `Connection: close` is the last: nothing the client
//!    sent after that request is answered (framing refusals, HTTP/1.0,
//!    `Connection: close`).
//! 5. When the first request head carries `Transfer-Encoding`, the only
//!    response is a 400 (with `Content-Length`, or a head that did not
//!    parse) or a 501: no body framed by either header is ever parsed as
//!    a request.
//! 6. The answers do not depend on how the input is split into reads: the
//!    same statuses in the same order, read all at once or in chunks.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::OnceLock;

use gopxe::app::App;
use gopxe::boot::Urls;
use gopxe::config::Config;
use gopxe::http::harness::{Response, parse_responses, serve_bytes_chunked};
use gopxe::store::Store;
use libfuzzer_sys::fuzz_target;

const PEERS: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// The store's directory: empty, made once per process.
fn data_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("gopxe-fuzz-http-{}", std::process::id())))
}

/// A fresh app per run, so every input starts from the same state.
fn app() -> Rc<App> {
    let dir = data_dir();
    let (store, _) = Store::open(dir).expect("temp store");
    let config = Config {
        api_token: Some("fuzz-token-never-sent-0123456789".into()),
        data_dir: dir.clone(),
        images: dir.join("no-images"),
        ..Config::default()
    };
    Rc::new(App::new(
        config,
        Urls::new(Ipv4Addr::LOCALHOST, 9090),
        store,
    ))
}

/// Serves `input` and checks invariants 2 to 5; returns the statuses.
fn serve(peer: IpAddr, input: &[u8], chunk: usize) -> Vec<u16> {
    let out = serve_bytes_chunked(app(), peer, input, chunk);
    let responses = match parse_responses(&out) {
        Ok(r) => r,
        Err(e) => panic!("{e}: {:?}", String::from_utf8_lossy(&out)),
    };
    let lines = input.iter().filter(|&&b| b == b'\n').count();
    let bound = if input.is_empty() { 0 } else { lines / 2 + 1 };
    assert!(
        responses.len() <= bound,
        "{} responses to {lines} lines",
        responses.len()
    );
    let closes = |r: &Response<'_>| r.header("Connection") == Some("close");
    if let Some(i) = responses.iter().position(closes) {
        assert_eq!(
            i + 1,
            responses.len(),
            "a response after `Connection: close`"
        );
    }
    if first_head_has_transfer_encoding(input) {
        let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
        assert!(
            matches!(statuses[..], [400 | 501]),
            "Transfer-Encoding answered {statuses:?}"
        );
    }
    responses.iter().map(|r| r.status).collect()
}

/// Whether the first head has a `Transfer-Encoding` header, as picoserve
/// reads heads: lines end at `\n`, the first is the request line, the
/// header lines run to a line of ASCII whitespace only (or the end of the
/// input), a header's name is what precedes its first `:` with ASCII
/// whitespace trimmed. A line with a NUL byte does not count: picoserve
/// drops some NULs from a head (not every one of a run), so its name is
/// not known here.
fn first_head_has_transfer_encoding(input: &[u8]) -> bool {
    input
        .split(|&b| b == b'\n')
        .skip(1)
        .take_while(|line| !line.iter().all(u8::is_ascii_whitespace))
        .any(|line| {
            if line.contains(&0) {
                return false;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return false;
            };
            line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(b"transfer-encoding")
        })
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(how & 0x0f);
    let peer = PEERS[usize::from(how >> 4) & 3];
    let whole = serve(peer, input, usize::MAX);
    if chunk > 0 {
        let chunked = serve(peer, input, chunk);
        assert_eq!(whole, chunked, "reads of {chunk} bytes changed the answers");
    }
});
