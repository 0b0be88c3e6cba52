//! A minimal HTTP/1.1 client for one webhook POST.
//!
//! Layer: driver (async-io sockets and timers). RFC 9112: one request per
//! connection (`Connection: close`), the body framed by `Content-Length`;
//! only the status line of the answer is read (RFC 9112 §4), the rest is
//! ignored and the connection closed. The whole try (name lookup, connect,
//! write, status line) is bounded by one timeout. Hand-written rather than
//! a client crate: the crates that do this pull in a TLS or a runtime
//! stack much larger than these hundred lines, and gopxe needs no more.

use super::url::{HookUrl, Host};
use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a POST got no status code.
#[derive(Debug)]
pub enum PostError {
    /// The receiver's name did not resolve (or to no address).
    Resolve {
        host: String,
        source: Option<io::Error>,
    },
    /// No address of the receiver accepted the connection.
    Connect { addr: SocketAddr, source: io::Error },
    /// Sending the request or reading the answer failed.
    Io {
        step: &'static str,
        source: io::Error,
    },
    /// The connection closed before a status line.
    Closed,
    /// The answer does not start with an HTTP/1 status line.
    BadAnswer(String),
    /// No answer within the timeout.
    Timeout(Duration),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Resolve {
                host,
                source: Some(e),
            } => write!(f, "cannot resolve {host}: {e}"),
            PostError::Resolve { host, source: None } => write!(f, "{host} resolved to no address"),
            PostError::Connect { addr, source } => write!(f, "connect {addr}: {source}"),
            PostError::Io { step, source } => write!(f, "{step}: {source}"),
            PostError::Closed => f.write_str("connection closed before an answer"),
            PostError::BadAnswer(why) => f.write_str(why),
            PostError::Timeout(t) => write!(f, "no answer within {} s", t.as_secs()),
        }
    }
}

impl std::error::Error for PostError {}

/// Longest status line read before giving up on the answer.
const MAX_STATUS_LINE: usize = 1024;

/// The request bytes: head and body.
pub fn request(url: &HookUrl, event: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: gopxe/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         X-Gopxe-Event: {event}\r\nConnection: close\r\n\r\n",
        url.target,
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The status code of a status line `HTTP/1.x NNN reason` (without CRLF).
pub fn parse_status_line(line: &[u8]) -> Result<u16, PostError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| PostError::BadAnswer("status line is not text".into()))?;
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(PostError::BadAnswer(format!(
            "not an HTTP/1 answer: `{}`",
            text.escape_debug()
        )));
    }
    code.parse::<u16>()
        .ok()
        .filter(|c| code.len() == 3 && (100..=599).contains(c))
        .ok_or_else(|| PostError::BadAnswer(format!("bad status line `{}`", text.escape_debug())))
}

async fn addresses(url: &HookUrl) -> Result<Vec<SocketAddr>, PostError> {
    match &url.host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, url.port)]),
        Host::Name(name) => {
            let query = (name.clone(), url.port);
            smol::unblock(move || query.to_socket_addrs().map(Iterator::collect::<Vec<_>>))
                .await
                .map_err(|e| PostError::Resolve {
                    host: name.clone(),
                    source: Some(e),
                })
        }
    }
}

async fn post_inner(url: &HookUrl, request: &[u8]) -> Result<u16, PostError> {
    let mut last = PostError::Resolve {
        host: url.host_header(),
        source: None,
    };
    let mut stream = None;
    for addr in addresses(url).await? {
        match Async::<TcpStream>::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(source) => last = PostError::Connect { addr, source },
        }
    }
    let mut stream = stream.ok_or(last)?;
    let _ = stream.get_ref().set_nodelay(true);
    let io = |step| move |source| PostError::Io { step, source };
    stream.write_all(request).await.map_err(io("send"))?;
    stream.flush().await.map_err(io("send"))?;
    let mut line = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    loop {
        let n = stream.read(&mut buf).await.map_err(io("read"))?;
        if n == 0 {
            return Err(PostError::Closed);
        }
        line.extend_from_slice(buf.get(..n).unwrap_or_default());
        if let Some(end) = line.windows(2).position(|w| w == b"\r\n") {
            return parse_status_line(line.get(..end).unwrap_or_default());
        }
        if line.len() > MAX_STATUS_LINE {
            return Err(PostError::BadAnswer("status line too long".into()));
        }
    }
}

/// Sends one POST and returns the status code, or why there is none.
pub async fn post(url: &HookUrl, request: &[u8], timeout: Duration) -> Result<u16, PostError> {
    futures_lite::future::or(post_inner(url, request), async {
        Timer::after(timeout).await;
        Err(PostError::Timeout(timeout))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_has_the_headers_and_the_body() {
        let url = HookUrl::parse("http://hooks.example:8080/in?k=1").unwrap();
        let r = request(&url, "state_changed", b"{\"a\":1}");
        let text = String::from_utf8(r).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        assert_eq!(lines.next(), Some("POST /in?k=1 HTTP/1.1"));
        let headers: Vec<&str> = lines.collect();
        for h in [
            "Host: hooks.example:8080",
            "Content-Type: application/json",
            "Content-Length: 7",
            "X-Gopxe-Event: state_changed",
            "Connection: close",
        ] {
            assert!(headers.contains(&h), "{h} missing from {headers:?}");
        }
        assert_eq!(body, "{\"a\":1}");
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK").ok(), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 204").ok(), Some(204));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 500 Internal Error").ok(),
            Some(500)
        );
        for bad in [
            &b"HTTP/2 200 OK"[..],
            b"HTTP/1.1 20 OK",
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 099 x",
            b"HTTP/1.1 +20 x",
            b"",
            b"garbage",
            b"HTTP/1.1 \xff\xfe",
        ] {
            let err = parse_status_line(bad).unwrap_err();
            assert!(matches!(err, PostError::BadAnswer(_)), "{bad:?}: {err:?}");
        }
    }
}
