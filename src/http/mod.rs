//! HTTP server: picoserve on smol, serving the API, boot configs and files.
//!
//! Layer: driver. One task per connection on the shared `LocalExecutor`
//! (picoserve's futures are `!Send`). While a connection is in use it has
//! a 2 KiB request buffer (request line, headers and a small body; a head
//! that does not fit is answered 400), freed when it has been idle for a
//! second ("parked", see `serve_connection`), and while it is busy a write
//! buffer (`conn::WriteBuf`); so 1,000 idle keep-alive connections fit in
//! a few MiB.
//!
//! Every request passes [`guard`] before it is routed: its framing (one
//! decimal `Content-Length`, no `Transfer-Encoding`; a body over
//! `max_body_bytes` is 413), its `Host`, and for a write the right to
//! change state. A framing refusal is sent before the body is read and is
//! the connection's last answer (`ConnState::closing`). Bodies up to
//! `max_body_bytes` are read through picoserve's body reader.
//!
//! Keep-alive is on; the read timeouts bound how long a slow client holds
//! a connection, and `max_connections` bounds how many it can hold (past
//! it, new connections are closed at once).

pub mod api;
mod coarse;
mod conn;
mod discovery;
pub mod guard;
#[doc(hidden)]
pub mod harness;
mod reason;
pub mod reply;
pub mod route;
pub mod status;

use crate::app::App;
use async_io::Async;
use conn::{ConnState, SmolRuntime, SmolSocket, SmolTimer};
use picoserve::io::Read;
use picoserve::request::{Path, Request};
use picoserve::response::{ResponseWriter, StatusCode};
use picoserve::routing::PathRouterService;
use picoserve::{ResponseSent, Router};
use reply::{Content, Reply};
use std::cell::Cell;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

const REQUEST_BUFFER: usize = 2048;
const WRITE_BUFFER: usize = 4096;
/// How long a new connection may stay silent.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a parked keep-alive connection may stay silent.
const PARKED_TIMEOUT: Duration = Duration::from_secs(30);

/// The request headers gopxe reads, found in one pass over the head. As
/// with picoserve's `get`, the first of a repeated header counts, and a
/// value that is not UTF-8 counts as absent; `Content-Length` is counted
/// and `Transfer-Encoding` noted for the framing check.
struct Wanted<'r> {
    authorization: Option<&'r str>,
    accept: Option<&'r str>,
    origin: Option<&'r str>,
    host: Option<&'r str>,
    sec_fetch_site: Option<&'r str>,
    content_type: Option<&'r str>,
    framing: guard::FramingHeaders<'r>,
}

impl<'r> From<picoserve::request::Headers<'r>> for Wanted<'r> {
    fn from(headers: picoserve::request::Headers<'r>) -> Self {
        Wanted::from_pairs(
            headers
                .iter()
                .map(|(name, value)| (name.as_raw(), value.as_str().ok())),
        )
    }
}

impl<'r> Wanted<'r> {
    /// From (name, value) pairs in request order; `None` for a value that
    /// is not UTF-8.
    fn from_pairs(pairs: impl Iterator<Item = (&'r [u8], Option<&'r str>)>) -> Self {
        const NAMES: [&str; 7] = [
            "authorization",
            "accept",
            "origin",
            "host",
            "sec-fetch-site",
            "content-type",
            "content-length",
        ];
        let mut found: [Option<Option<&'r str>>; 7] = [None; 7];
        let mut framing = guard::FramingHeaders::default();
        for (name, value) in pairs {
            if name.eq_ignore_ascii_case(b"content-length") {
                framing.content_lengths += 1;
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                framing.transfer_encoding = true;
            }
            let slot = NAMES
                .iter()
                .zip(found.iter_mut())
                .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()));
            if let Some((_, slot @ None)) = slot {
                *slot = Some(value);
            }
        }
        let [
            authorization,
            accept,
            origin,
            host,
            sec_fetch_site,
            content_type,
            content_length,
        ] = found.map(Option::flatten);
        framing.content_length = content_length;
        Wanted {
            authorization,
            accept,
            origin,
            host,
            sec_fetch_site,
            content_type,
            framing,
        }
    }
}

/// Per-connection service: the app, who is calling, and what the
/// connection's socket shares with it (keep-alive, closing).
struct Service {
    app: Rc<App>,
    peer: IpAddr,
    state: Rc<ConnState>,
}

/// picoserve's keep-alive rule, with its header comparisons (the first
/// `Connection` header, values without case, tokens trimmed): HTTP/1.1
/// without `Connection: close` or an `upgrade` token. picoserve keeps
/// serving the session by this rule; the connection must agree once the
/// session ends.
fn keeps_alive(version: &str, headers: &picoserve::request::Headers<'_>) -> bool {
    version == "HTTP/1.1"
        && headers
            .get("connection")
            .is_none_or(|c| c != "close" && !c.split(b',').any(|t| t == "upgrade"))
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// The answer to a request refused by [`guard`]: the status page's own
/// HTML message for its forms, JSON otherwise.
fn refusal_reply(r: guard::Refusal, segments: &[&str]) -> Reply {
    let reply = if route::is_form_path(segments) {
        status::message(r.status, "Refused", &r.message)
    } else {
        Reply::error(r.status, None, &r.message)
    };
    match r.status {
        // RFC 9110 §11.6.1: a 401 carries its challenge.
        401 => reply.with_header("WWW-Authenticate", "Bearer realm=\"gopxe\"".into()),
        _ => reply,
    }
}

impl PathRouterService<()> for Service {
    async fn call_path_router_service<R: Read, W: ResponseWriter<Error = R::Error>>(
        &self,
        _state: &(),
        _params: (),
        path: Path<'_>,
        request: Request<'_, R>,
        response_writer: W,
    ) -> Result<ResponseSent, W::Error> {
        // Boxed: the handling state exists only while a request is handled,
        // so an idle keep-alive connection's task stays small.
        Box::pin(self.respond(path, request, response_writer)).await
    }
}

impl Service {
    async fn respond<R: Read, W: ResponseWriter<Error = R::Error>>(
        &self,
        path: Path<'_>,
        mut request: Request<'_, R>,
        response_writer: W,
    ) -> Result<ResponseSent, W::Error> {
        let method = request.parts.method();
        let headers = Wanted::from(request.parts.headers());
        self.state.keep_alive.set(keeps_alive(
            request.parts.http_version(),
            &request.parts.headers(),
        ));
        let query = request.parts.query().map(|q| q.0).unwrap_or("");
        let raw_path = path.encoded();
        let config = &self.app.config;

        let mut body = Vec::new();
        let reply = 'reply: {
            let rb = request.body_connection.body();
            let len = match guard::framing(&headers.framing, config.max_body_bytes) {
                // picoserve frames the body by the same header; the two
                // agree for every value the check lets through.
                Ok(len) if len == rb.content_length() => len,
                refused => {
                    // Nothing after the head is read: it cannot be
                    // trusted to be this request's body.
                    self.state.closing.set(true);
                    self.state.keep_alive.set(false);
                    let r = refused.err().unwrap_or_else(|| {
                        guard::Refusal::new(400, "Content-Length is not understood")
                    });
                    self.app.metrics.http_request(route::OTHER, r.status);
                    break 'reply refusal_reply(r, &[]).with_header("Connection", "close".into());
                }
            };
            let segments: Option<Vec<String>> =
                raw_path.split('/').skip(1).map(percent_decode).collect();
            let Some(mut segments) = segments else {
                break 'reply Reply::error(
                    400,
                    None,
                    "the path is not valid percent-encoded UTF-8",
                );
            };
            // `/a/b/` keeps a trailing "" so `/pxelinux/` differs from `/pxelinux`.
            if segments.len() > 1 && segments.last().is_some_and(String::is_empty) {
                segments.truncate(segments.len() - 1);
                segments.push(String::new());
            }
            let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
            let head = guard::Head {
                method,
                host: headers.host,
                origin: headers.origin,
                sec_fetch_site: headers.sec_fetch_site,
                authorization: headers.authorization,
                content_type: headers.content_type,
                peer: self.peer,
                body_len: len,
            };
            let access = match guard::check(
                &head,
                &segs,
                config.api_token.as_deref(),
                &self.app.host_names,
            ) {
                Ok(a) => a,
                Err(r) => {
                    log::debug!("{} {method} {raw_path}: refused: {}", self.peer, r.message);
                    self.app
                        .metrics
                        .http_request(route::label(&segments), r.status);
                    break 'reply refusal_reply(r, &segs);
                }
            };
            if len > 0 {
                if rb.entire_body_fits_into_buffer() {
                    match rb.read_all().await {
                        Ok(b) => body.extend_from_slice(b),
                        Err(_) => {
                            break 'reply Reply::error(
                                400,
                                None,
                                "could not read the request body",
                            );
                        }
                    }
                } else {
                    let mut reader = rb.reader();
                    body.resize(len, 0);
                    let mut got = 0;
                    while got < len {
                        match reader.read(body.get_mut(got..).unwrap_or_default()).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n,
                        }
                    }
                    if got < len {
                        break 'reply Reply::error(400, None, "the request body ended early");
                    }
                }
            }
            let req = api::Req {
                method,
                segments,
                query,
                body: &body,
                api_right: access.api_right,
                peer: self.peer,
                accept: headers.accept,
            };
            api::handle(&self.app, &req).await
        };
        log::debug!("{} {} {} -> {}", self.peer, method, raw_path, reply.status);

        let connection = request.body_connection.finalize().await?;
        let status = StatusCode::new(reply.status);
        let content = Content {
            content_type: reply.content_type,
            body: reply.body,
        };
        let response = picoserve::response::Response::new(status, content);
        match reply.header {
            Some((name, value)) => {
                response_writer
                    .write_response(connection, response.with_header(name, value))
                    .await
            }
            None => response_writer.write_response(connection, response).await,
        }
    }
}

fn server_config() -> picoserve::Config {
    picoserve::Config::new(picoserve::Timeouts {
        start_read_request: picoserve::time::Duration::from_secs(10),
        // After this long idle, a keep-alive connection is parked.
        persistent_start_read_request: picoserve::time::Duration::from_secs(1),
        read_request: picoserve::time::Duration::from_secs(10),
        write: picoserve::time::Duration::from_secs(30),
    })
    .keep_connection_alive()
}

/// Ready once the connection is closing ([`ConnState::closing`]). It
/// registers no waker: picoserve polls its shutdown signal before it
/// reads each request and with every poll of the request's handler, and
/// `closing` is only set by that handler.
fn closing(state: &ConnState) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(|_| {
        if state.closing.get() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

/// Serves one TCP connection (see [`serve_stream`]).
async fn serve_connection(app: Rc<App>, stream: Async<std::net::TcpStream>, peer: SocketAddr) {
    let _ = stream.get_ref().set_nodelay(true);
    serve_stream(app, &stream, peer, SmolTimer).await;
}

/// Serves one connection from `peer` over `stream`. picoserve holds a
/// request buffer for as long as it serves, so the buffer is allocated
/// only once the client has sent something, and a keep-alive connection
/// that stays idle for a second is "parked": picoserve returns, the buffer
/// is freed, and a new session starts when the next request arrives. A
/// connection idle for [`IDLE_TIMEOUT`] (first request) or
/// [`PARKED_TIMEOUT`] is closed.
async fn serve_stream<S: conn::Stream, T: picoserve::Timer<SmolRuntime> + Copy>(
    app: Rc<App>,
    stream: &S,
    peer: SocketAddr,
    timer: T,
) {
    let state = Rc::new(ConnState::default());
    let router = Router::from_service(Service {
        app,
        // `::ffff:a.b.c.d` on a dual-stack listener is the IPv4 client.
        peer: peer.ip().to_canonical(),
        state: state.clone(),
    });
    let config = server_config();
    let mut idle = IDLE_TIMEOUT;
    loop {
        let readable = futures_lite::future::or(async { Some(stream.readable().await) }, async {
            coarse::Deadline::after(idle).await;
            None
        });
        if !matches!(readable.await, Some(Ok(()))) {
            break;
        }
        state.keep_alive.set(false);
        // The session's state (picoserve's, about 2 KiB) lives in its own
        // allocation, freed when the connection parks, so the task of an
        // idle connection stays a few hundred bytes.
        let session = Box::pin(async {
            let mut buffer = vec![0u8; REQUEST_BUFFER];
            let socket = SmolSocket::new(stream, WRITE_BUFFER, &state);
            // A request refused for its framing ends the session once it
            // is answered: picoserve may already hold bytes read after the
            // refused head (a pipelined or smuggled request), and those
            // must never be parsed.
            let server = picoserve::Server::<SmolRuntime, _, _, _>::custom(
                &router,
                timer,
                &config,
                &mut buffer,
            )
            .with_graceful_shutdown(closing(&state), config.timeouts.write);
            server.serve(socket).await
        });
        if let Err(e) = session.await {
            log::debug!("http connection from {peer}: {e:?}");
            break;
        }
        if !state.keep_alive.get() || state.closing.get() {
            break;
        }
        idle = PARKED_TIMEOUT;
    }
}

/// Accepts connections forever, one task each on `ex`.
pub async fn serve(
    ex: Rc<smol::LocalExecutor<'static>>,
    app: Rc<App>,
    listener: Async<TcpListener>,
) {
    let active = Rc::new(Cell::new(0usize));
    ex.spawn(coarse::ticker()).detach();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                log::warn!("http accept failed: {e}");
                async_io::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        if active.get() >= app.config.max_connections {
            crate::boot_log!(
                log::Level::Warn,
                "http: {} connections open, refusing {peer}",
                active.get()
            );
            drop(stream);
            continue;
        }
        active.set(active.get() + 1);
        let (app, active) = (app.clone(), active.clone());
        let fut = async move {
            serve_connection(app, stream, peer).await;
            active.set(active.get() - 1);
        };
        ex.spawn(fut).detach();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::boot::Urls;
    use crate::config::Config;
    use crate::store::Store;

    /// An app with an empty in-memory store and, if given, an API token.
    pub(crate) fn app(token: Option<&str>) -> App {
        let config = Config {
            api_token: token.map(str::to_string),
            ..Config::default()
        };
        App::new(
            config,
            Urls::new(std::net::Ipv4Addr::LOCALHOST, 9090),
            Store::default(),
        )
    }

    #[test]
    fn wanted_headers_in_one_pass() {
        let pairs: [(&[u8], Option<&str>); 7] = [
            (b"Host", Some("a:1")),
            (b"ACCEPT", Some("text/html")),
            (b"Connection", Some("close")),
            (b"x-other", Some("1")),
            (b"host", Some("b")),
            (b"Origin", None),
            (b"Origin", Some("http://c")),
        ];
        let w = Wanted::from_pairs(pairs.into_iter());
        assert_eq!(w.host, Some("a:1"), "the first Host counts");
        assert_eq!(w.accept, Some("text/html"), "names ignore case");
        assert_eq!(w.origin, None, "a non-UTF-8 first value counts as absent");
        assert_eq!(w.authorization, None);
        assert_eq!(w.sec_fetch_site, None);
        assert_eq!(w.framing, guard::FramingHeaders::default());
        let pairs: [(&[u8], Option<&str>); 4] = [
            (b"Content-Length", Some("5")),
            (b"content-length", Some("6")),
            (b"Transfer-Encoding", None),
            (b"Content-Type", Some("application/json")),
        ];
        let w = Wanted::from_pairs(pairs.into_iter());
        assert_eq!(
            w.framing,
            guard::FramingHeaders {
                content_length: Some("5"),
                content_lengths: 2,
                transfer_encoding: true,
            },
            "every Content-Length counted; Transfer-Encoding noted even when not UTF-8"
        );
        assert_eq!(w.content_type, Some("application/json"));
    }
}
