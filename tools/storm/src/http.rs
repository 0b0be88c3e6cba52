//! A minimal HTTP/1.1 client (RFC 9112) for `http://` URLs: one request per
//! connection (`Connection: close`), Content-Length or chunked bodies,
//! bounded sizes and timeouts. Enough for a kickstart and a call-back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

const MAX_BODY: usize = 4 << 20;

/// `http://host[:port]/path?query` split into its parts.
#[derive(Debug, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub target: String,
}

pub fn parse_url(u: &str) -> Result<Url, String> {
    let rest = u
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {u}"))?;
    let (auth, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match auth.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in {u}"))?),
        None => (auth, 80),
    };
    if host.is_empty() {
        return Err(format!("no host in {u}"));
    }
    Ok(Url {
        host: host.to_string(),
        port,
        target: target.to_string(),
    })
}

/// Replace the scheme, host and port of `u` with `base` (`http://h:p`).
pub fn rebase(u: &str, base: &str) -> Result<String, String> {
    let url = parse_url(u)?;
    Ok(format!("{}{}", base.trim_end_matches('/'), url.target))
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One request on its own connection; from `source` when given (bound
/// before connecting).
pub fn request(
    method: &str,
    url: &str,
    body: &[u8],
    timeout: Duration,
    source: Option<std::net::Ipv4Addr>,
) -> Result<Response, String> {
    let u = parse_url(url)?;
    let addr: SocketAddr = (u.host.as_str(), u.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {}: {e}", u.host))?
        .next()
        .ok_or_else(|| format!("no address for {}", u.host))?;
    let mut s = match source {
        None => TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?,
        Some(ip) => {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .map_err(|e| format!("socket: {e}"))?;
            let from = SocketAddr::from((ip, 0));
            sock.bind(&from.into())
                .map_err(|e| format!("bind {ip}: {e}"))?;
            sock.connect_timeout(&addr.into(), timeout)
                .map_err(|e| format!("connect from {ip}: {e}"))?;
            sock.into()
        }
    };
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let host = if u.port == 80 {
        u.host.clone()
    } else {
        format!("{}:{}", u.host, u.port)
    };
    let mut req = format!(
        "{method} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gopxe-storm\r\nConnection: close\r\n",
        u.target
    );
    if method != "GET" || !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    s.write_all(&out).map_err(|e| format!("send: {e}"))?;
    // A server trickling bytes may not hold a client longer than 3 timeouts.
    read_response(&mut s, Instant::now() + timeout * 3)
}

fn read_some(s: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<usize, String> {
    if Instant::now() >= deadline {
        return Err("response too slow".into());
    }
    s.read(buf).map_err(|e| format!("read: {e}"))
}

fn read_response(s: &mut TcpStream, deadline: Instant) -> Result<Response, String> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Err("response head too large".into());
        }
        let n = read_some(s, &mut chunk, deadline)?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "response head not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(format!("bad status line: {status_line:.60}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {status_line:.60}"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse().map_err(|_| "bad Content-Length")?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let mut body = buf[head_end + 4..].to_vec();
    if let (Some(l), false) = (length, chunked) {
        if l > MAX_BODY {
            return Err("body too large".into());
        }
        while body.len() < l {
            let n = read_some(s, &mut chunk, deadline)?;
            if n == 0 {
                return Err(format!("body cut at {} of {l} bytes", body.len()));
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(l);
    } else {
        loop {
            if body.len() > MAX_BODY {
                return Err("body too large".into());
            }
            let n = read_some(s, &mut chunk, deadline)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        if chunked {
            body = dechunk(&body)?;
        }
    }
    Ok(Response { status, body })
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let i = find(b, b"\r\n").ok_or("chunk size line missing")?;
        let line = std::str::from_utf8(&b[..i]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        b = &b[i + 2..];
        if size == 0 {
            return Ok(out);
        }
        let data = b.get(..size).ok_or("chunk cut short")?;
        out.extend_from_slice(data);
        b = b.get(size + 2..).ok_or("chunk cut short")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://10.0.0.1:9090/kickstart/?a=b").unwrap(),
            Url {
                host: "10.0.0.1".into(),
                port: 9090,
                target: "/kickstart/?a=b".into()
            }
        );
        assert_eq!(parse_url("http://h").unwrap().target, "/");
        assert!(parse_url("https://h/").is_err());
        assert!(parse_url("http://:80/").is_err());
        assert_eq!(
            rebase("http://a:1/x?y", "http://b:2/").unwrap(),
            "http://b:2/x?y"
        );
    }

    #[test]
    fn chunks() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"ff\r\nabc").is_err());
        assert!(dechunk(b"zz\r\n").is_err());
    }
}
