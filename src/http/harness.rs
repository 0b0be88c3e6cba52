//! One HTTP connection in memory, for tests and fuzzing.
//!
//! Layer: driver (test support). [`serve_bytes`] serves given bytes as one
//! connection's input with the code that serves a TCP connection
//! (`super::serve_stream`: the same `Service`, picoserve sessions and
//! socket), over a `conn::MemStream` whose reads hand out the input and
//! then end; no read ever waits, so a call returns once the input is
//! consumed or the connection is closed. [`parse_responses`] splits what
//! came back into responses, strictly: it is what a client on the other
//! end relies on.

use super::conn::{MemStream, NoTimer};
use crate::app::App;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

/// Serves `input` as one connection from `peer` and returns what gopxe
/// sent back. Exists for tests and fuzzing (see the module docs).
#[doc(hidden)]
pub fn serve_bytes(app: Rc<App>, peer: IpAddr, input: &[u8]) -> Vec<u8> {
    serve_bytes_chunked(app, peer, input, usize::MAX)
}

/// [`serve_bytes`] with the input arriving at most `chunk` bytes per read.
#[doc(hidden)]
pub fn serve_bytes_chunked(app: Rc<App>, peer: IpAddr, input: &[u8], chunk: usize) -> Vec<u8> {
    let stream = MemStream::new(input, chunk);
    smol::block_on(super::serve_stream(
        app,
        &stream,
        SocketAddr::new(peer, 0),
        NoTimer,
    ));
    stream.into_output()
}

/// One response as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'o> {
    pub status: u16,
    /// The status line's reason phrase (`Not Found`).
    pub reason: &'o str,
    /// (name, value) in order.
    pub headers: Vec<(&'o str, &'o str)>,
    pub body: &'o [u8],
}

impl Response<'_> {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Splits a connection's output into responses: each a status line
/// `HTTP/1.1 <3 digits> <reason>` with the standard reason phrase of its
/// code (RFC 9110 §15), `Name: value` header lines of UTF-8 text,
/// an empty line, and exactly as many body bytes as its one
/// `Content-Length` says; nothing may follow the last one. An error names
/// the first thing that does not fit.
pub fn parse_responses(mut out: &[u8]) -> Result<Vec<Response<'_>>, String> {
    let mut responses = Vec::new();
    while !out.is_empty() {
        let n = responses.len();
        let end = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or(format!("response {n}: the head does not end"))?;
        let (head, rest) = out.split_at(end);
        let head = std::str::from_utf8(head)
            .map_err(|_| format!("response {n}: the head is not UTF-8"))?;
        let rest = rest.get(4..).unwrap_or_default();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let (code, reason) = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.split_at_checked(3))
            .filter(|(code, _)| code.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|(code, reason)| Some((code.parse::<u16>().ok()?, reason.strip_prefix(' ')?)))
            .filter(|(code, reason)| super::reason::phrase(*code) == Some(*reason))
            .ok_or(format!("response {n}: bad status line {status_line:?}"))?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(": ")
                .filter(|(name, _)| {
                    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
                .ok_or(format!("response {n}: bad header line {line:?}"))?;
            if value.contains(['\r', '\n']) {
                return Err(format!("response {n}: a header value holds CR or LF"));
            }
            headers.push((name, value));
        }
        let mut lengths = headers
            .iter()
            .filter(|(h, _)| h.eq_ignore_ascii_case("content-length"));
        let len = match (lengths.next(), lengths.next()) {
            (Some((_, v)), None) if v.bytes().all(|b| b.is_ascii_digit()) => v
                .parse::<usize>()
                .map_err(|_| format!("response {n}: Content-Length {v:?}"))?,
            _ => {
                return Err(format!(
                    "response {n}: not exactly one decimal Content-Length"
                ));
            }
        };
        let body = rest
            .get(..len)
            .ok_or(format!("response {n}: the body is shorter than {len}"))?;
        out = rest.get(len..).unwrap_or_default();
        responses.push(Response {
            status: code,
            reason,
            headers,
            body,
        });
    }
    Ok(responses)
}

#[cfg(test)]
mod tests {
    //! Whole connections through the harness: each request-level attack
    //! gets its safe answer and changes nothing.
    use super::*;
    use crate::boot::Urls;
    use crate::config::Config;
    use crate::store::Store;
    use std::path::PathBuf;

    const LO: &str = "127.0.0.1";
    const LAN: &str = "192.0.2.7";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// An app whose store (and data dir) is a fresh directory under the
    /// system's temp dir, removed when dropped: for tests whose requests
    /// reach a write.
    struct TempApp {
        app: Rc<App>,
        dir: PathBuf,
    }

    impl TempApp {
        fn new(name: &str, token: Option<&str>) -> TempApp {
            let dir = std::env::temp_dir()
                .join(format!("gopxe-http-harness-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let (store, _) = Store::open(&dir).unwrap();
            let config = Config {
                api_token: token.map(str::to_string),
                data_dir: dir.clone(),
                images: dir.join("images"),
                ..Config::default()
            };
            let app = App::new(
                config,
                Urls::new(std::net::Ipv4Addr::LOCALHOST, 9090),
                store,
            );
            TempApp {
                app: Rc::new(app),
                dir,
            }
        }

        /// The statuses of the responses to `input` sent from `peer`.
        fn statuses(&self, peer: &str, input: &str) -> Vec<u16> {
            statuses(&serve_bytes(self.app.clone(), ip(peer), input.as_bytes()))
        }

        fn has_bootaction(&self, name: &str) -> bool {
            self.app.records().bootactions.contains_key(name)
        }
    }

    impl Drop for TempApp {
        fn drop(&mut self) {
            // Close the store first: its threads write journal files.
            self.app.close_store();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn statuses(out: &[u8]) -> Vec<u16> {
        parse_responses(out)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(out)))
            .iter()
            .map(|r| r.status)
            .collect()
    }

    /// An app that refuses every write before it reaches the store.
    fn memory_app() -> Rc<App> {
        Rc::new(super::super::tests::app(Some("t0k3n-for-tests")))
    }

    const CREATE_X: &str = "POST /bootaction/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\
        Content-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"kernel\":\"k\"}\n";
    const GET_HEALTH: &str = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

    /// Reads of every size: all at once, a byte at a time, and odd chunks.
    const CHUNKS: [usize; 3] = [usize::MAX, 1, 7];

    /// The one response to `input` (whatever the read sizes), which must
    /// close the connection; returns its status.
    fn only_response_closes(app: &Rc<App>, peer: &str, input: &[u8]) -> u16 {
        let mut seen = None;
        for chunk in CHUNKS {
            let out = serve_bytes_chunked(app.clone(), ip(peer), input, chunk);
            let text = String::from_utf8_lossy(&out);
            let r = parse_responses(&out).unwrap_or_else(|e| panic!("{e}: {text:?}"));
            assert_eq!(r.len(), 1, "chunk {chunk}: one response only: {text:?}");
            assert_eq!(r[0].header("Connection"), Some("close"), "{text:?}");
            assert!(seen.is_none_or(|s| s == r[0].status), "{text:?}");
            seen = Some(r[0].status);
        }
        seen.unwrap_or_default()
    }

    #[test]
    fn te_cl_smuggling_is_refused_and_the_smuggled_request_never_runs() {
        let t = TempApp::new("tecl", None);
        assert_eq!(t.statuses(LO, CREATE_X), [201]);
        assert!(t.has_bootaction("x"));
        let smuggled = "DELETE /bootaction/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        // Framed by Content-Length (4), the body is the chunk size line and
        // the DELETE is a second request; framed as chunked, it is body.
        let attack = format!(
            "POST /pxeboot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
            smuggled.len()
        );
        assert_eq!(only_response_closes(&t.app, LO, attack.as_bytes()), 400);
        assert!(t.has_bootaction("x"), "the smuggled DELETE did not run");
        assert_eq!(t.statuses(LO, "GET /bootaction/x HTTP/1.1\r\n\r\n"), [200]);
    }

    #[test]
    fn chunked_bodies_are_not_implemented() {
        let app = memory_app();
        let input = format!(
            "POST /bootaction/y HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n{GET_HEALTH}"
        );
        assert_eq!(only_response_closes(&app, LO, input.as_bytes()), 501);
    }

    #[test]
    fn repeated_or_malformed_content_length_is_refused() {
        let app = memory_app();
        for cl in [
            "Content-Length: 2\r\nContent-Length: 2",
            "Content-Length: 2\r\nContent-Length: 3",
            "Content-Length: -1",
            "Content-Length: +28",
            "Content-Length:  0x10",
            "Content-Length: 1e3",
        ] {
            // A pipelined request follows: nothing after the refused head
            // is parsed, so it is never answered.
            let input = format!(
                "POST /bootaction/y HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Content-Type: application/json\r\n{cl}\r\n\r\n{{}}{GET_HEALTH}"
            );
            assert_eq!(
                only_response_closes(&app, LO, input.as_bytes()),
                400,
                "{cl}"
            );
        }
    }

    #[test]
    fn an_oversized_body_is_refused_before_it_is_read() {
        let app = memory_app();
        let input = "POST /bootaction/y HTTP/1.1\r\nHost: 127.0.0.1\r\n\
            Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{";
        assert_eq!(only_response_closes(&app, LO, input.as_bytes()), 413);
    }

    #[test]
    fn pipelined_requests_are_answered_in_turn() {
        let app = memory_app();
        let input = format!(
            "{GET_HEALTH}GET /pxeboot HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n\
             GET /bootaction/nope HTTP/1.1\r\nConnection: close\r\n\r\n{GET_HEALTH}"
        );
        for chunk in CHUNKS {
            let out = serve_bytes_chunked(app.clone(), ip(LO), input.as_bytes(), chunk);
            let r = parse_responses(&out).unwrap();
            let got: Vec<_> = r
                .iter()
                .map(|r| (r.status, r.header("Connection")))
                .collect();
            assert_eq!(
                got,
                [
                    (200, Some("keep-alive")),
                    (200, Some("keep-alive")),
                    (404, Some("close"))
                ],
                "chunk {chunk}: the request after `Connection: close` is not answered"
            );
        }
    }

    #[test]
    fn connection_close_is_honoured_in_any_case() {
        let app = memory_app();
        for value in ["Close", "CLOSE", "Upgrade", "keep-alive, Upgrade"] {
            let input = format!(
                "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {value}\r\n\r\n{GET_HEALTH}"
            );
            for chunk in CHUNKS {
                let out = serve_bytes_chunked(app.clone(), ip(LO), input.as_bytes(), chunk);
                let r = parse_responses(&out).unwrap();
                assert_eq!(r.len(), 1, "{value}, chunk {chunk}");
                assert_eq!(r[0].header("Connection"), Some("close"), "{value}");
            }
        }
    }

    #[test]
    fn a_foreign_host_is_misdirected() {
        let t = TempApp::new("host", None);
        let machine = "{\"mac\":\"52:54:00:00:00:01\",\"bootaction\":\"x\"}";
        let create = format!(
            "{CREATE_X}POST /pxeboot HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{machine}",
            machine.len()
        );
        assert_eq!(t.statuses(LO, &create), [201, 201]);
        let evil = "Host: evil.example:9090\r\n";
        let get = format!("GET /pxeboot HTTP/1.1\r\n{evil}\r\n");
        assert_eq!(t.statuses(LO, &get), [421]);
        let delete = format!(
            "POST /ui/pxeboot/01-52-54-00-00-00-01/delete HTTP/1.1\r\n{evil}\
             Origin: http://evil.example:9090\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(t.statuses(LO, &delete), [421]);
        assert_eq!(t.app.records().machines.len(), 1, "nothing deleted");
        assert_eq!(
            t.statuses(LO, "GET /pxeboot/01-52-54-00-00-00-01 HTTP/1.1\r\n\r\n"),
            [200]
        );
    }

    #[test]
    fn the_bearer_scheme_ignores_case() {
        let t = TempApp::new("bearer", Some("s3cret-token"));
        let with = |auth: &str| CREATE_X.replace("\r\n\r\n", &format!("\r\n{auth}\r\n\r\n"));
        assert_eq!(t.statuses(LAN, CREATE_X), [401]);
        assert_eq!(
            t.statuses(LO, CREATE_X),
            [401],
            "loopback needs the token too"
        );
        assert_eq!(t.statuses(LAN, &with("Authorization: Bearer wrong")), [401]);
        assert!(!t.has_bootaction("x"));
        assert_eq!(
            t.statuses(LAN, &with("Authorization: bearer s3cret-token")),
            [201]
        );
        assert!(t.has_bootaction("x"));
    }

    #[test]
    fn mapped_loopback_may_write_and_the_lan_may_not() {
        let t = TempApp::new("loopback", None);
        for peer in [LAN, "::ffff:192.0.2.7"] {
            assert_eq!(t.statuses(peer, CREATE_X), [401], "{peer}");
            assert!(!t.has_bootaction("x"));
        }
        assert_eq!(t.statuses("::ffff:127.0.0.1", CREATE_X), [201]);
        assert!(t.has_bootaction("x"));
        let delete = "DELETE /bootaction/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        assert_eq!(t.statuses(LAN, delete), [401]);
        assert!(t.has_bootaction("x"));
        assert_eq!(t.statuses("::ffff:127.0.0.1", delete), [204]);
        assert!(!t.has_bootaction("x"));
    }

    /// The status line of every response to `input` from loopback, as
    /// sent.
    fn status_lines(app: &Rc<App>, input: &str) -> Vec<String> {
        let out = serve_bytes(app.clone(), ip(LO), input.as_bytes());
        let text = String::from_utf8_lossy(&out);
        let responses = parse_responses(&out).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        let lines: Vec<String> = responses
            .iter()
            .map(|r| format!("HTTP/1.1 {} {}", r.status, r.reason))
            .collect();
        for line in &lines {
            assert!(text.contains(&format!("{line}\r\n")), "{line}: {text:?}");
        }
        lines
    }

    #[test]
    fn status_lines_carry_the_reason_phrase() {
        let app = memory_app();
        let input = format!(
            "{GET_HEALTH}GET /nope HTTP/1.1\r\n\r\n\
             PATCH /health HTTP/1.1\r\nAuthorization: Bearer t0k3n-for-tests\r\n\r\n\
             GET /kstemplate/x HTTP/1.1\r\n\r\n\
             DELETE /bootaction/x HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\n\
             GET /pxeboot HTTP/1.1\r\nHost: evil.example\r\n\r\n\
             POST /ui/pxeboot/x/delete HTTP/1.1\r\nContent-Length: 0\r\n\r\n\
             garbage\r\n\r\n"
        );
        assert_eq!(
            status_lines(&app, &input),
            [
                "HTTP/1.1 200 OK",
                "HTTP/1.1 404 Not Found",
                "HTTP/1.1 405 Method Not Allowed",
                "HTTP/1.1 401 Unauthorized",
                "HTTP/1.1 401 Unauthorized",
                "HTTP/1.1 421 Misdirected Request",
                "HTTP/1.1 401 Unauthorized",
                // picoserve's own answer to a head it cannot parse.
                "HTTP/1.1 400 Bad Request",
            ]
        );
        let framing = "POST /pxeboot HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            status_lines(&app, framing),
            ["HTTP/1.1 501 Not Implemented"]
        );
        let big = "POST /pxeboot HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n";
        assert_eq!(status_lines(&app, big), ["HTTP/1.1 413 Content Too Large"]);
    }

    #[test]
    fn responses_are_parsed_strictly() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(statuses(ok), [200, 404]);
        let r = parse_responses(ok).unwrap();
        assert_eq!((r[0].reason, r[1].reason), ("OK", "Not Found"));
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nhi",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
            b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 404 OK\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert!(
                parse_responses(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
