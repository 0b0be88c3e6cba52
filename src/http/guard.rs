//! The one check every HTTP request passes before it is routed: framing,
//! the Host it names, and the right to change state.
//!
//! Layer: service (pure: no sockets, no store). RFC 9112 §6 (message body
//! length), RFC 9110 §7.2 (Host), §11.6.2 and §11.1 (`Authorization`, the
//! scheme is case-insensitive), §15.5.20 (421 Misdirected Request), and
//! Fetch metadata (`Origin`, `Sec-Fetch-Site`).
//!
//! In order, each step answering with its own status:
//! 1. **Framing** ([`framing`]): a body is framed by one `Content-Length`
//!    of decimal digits only. `Transfer-Encoding` is refused (501, or 400
//!    next to a `Content-Length`), as are a repeated or malformed
//!    `Content-Length` (400) and a body over `max_body_bytes` (413). These
//!    answers are sent before the body is read, and the connection is
//!    closed: the bytes after the head cannot be trusted to be a body.
//! 2. **Host** ([`host_is_ours`]): a `Host` header must name this
//!    appliance: an IP literal, `localhost`, or one of its names (the
//!    configured `server_names` and the system host name). Anything else
//!    is 421: a page on `evil.example` that rebinds its name to the
//!    appliance's address reaches it under the wrong name. A request
//!    without `Host` (HTTP/1.0 boot clients) passes: browsers always send
//!    one.
//! 3. **The right to change state**, for every method but GET and HEAD
//!    ([`check`]): never cross-site (403; a browser says so in
//!    `Sec-Fetch-Site`, or in an `Origin` that is not the `Host`); the API
//!    token as `Authorization: Bearer` when one is configured, and without
//!    one only a client on loopback (IPv4-mapped loopback included) (401);
//!    and a body of the type the route reads (415): JSON only as
//!    `application/json`, a form post only as
//!    `application/x-www-form-urlencoded`, a template as anything but the
//!    two form encodings. A browser can send a cross-site `text/plain`
//!    POST without asking first; it cannot send `application/json` so.
//!
//! Two routes prove their right differently, after the body is read: the
//! status page's forms may carry the token as a form field
//! (`status::ui`), and an installer's `done` call-back carries the key
//! gopxe wrote into the machine's kickstart (`api`'s `done`). Both still
//! pass steps 1 and 2 and the cross-site check here.

use super::route::{self, Route};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A request refused before routing. A refusal of [`framing`] is the
/// connection's last answer (the caller closes it without reading on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    pub fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

/// The framing headers of a request, as found in its head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FramingHeaders<'r> {
    /// The first `Content-Length` value (`None` when absent or not UTF-8).
    pub content_length: Option<&'r str>,
    /// How many `Content-Length` headers there were.
    pub content_lengths: usize,
    /// A `Transfer-Encoding` header was present.
    pub transfer_encoding: bool,
}

/// The body length the head announces, or why the request is refused.
pub fn framing(h: &FramingHeaders<'_>, max_body: usize) -> Result<usize, Refusal> {
    if h.transfer_encoding {
        return Err(if h.content_lengths > 0 {
            Refusal::new(
                400,
                "Transfer-Encoding and Content-Length together; send Content-Length only",
            )
        } else {
            Refusal::new(
                501,
                "Transfer-Encoding is not supported; send the body with a Content-Length",
            )
        });
    }
    if h.content_lengths > 1 {
        return Err(Refusal::new(400, "Content-Length is repeated"));
    }
    if h.content_lengths == 0 {
        return Ok(0);
    }
    let digits = h.content_length.unwrap_or_default();
    // Decimal digits only (RFC 9110 §8.6): no sign, no spaces, no hex; a
    // value too long for usize is over any limit anyway.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::new(400, "Content-Length is not a decimal number"));
    }
    let len = digits.parse::<usize>().unwrap_or(usize::MAX);
    if len > max_body {
        return Err(Refusal::new(
            413,
            format!("the body is {digits} bytes; the limit is {max_body} (max_body_bytes)"),
        ));
    }
    Ok(len)
}

/// The host part of a `Host` value: without the port, an IPv6 literal
/// without its brackets. `None` when the value is malformed.
fn host_part(host: &str) -> Option<&str> {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        return (after.is_empty() || port_ok(after.strip_prefix(':')?)).then_some(v6);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port_ok(port) => Some(h),
        Some(_) => None,
        None => Some(host),
    }
}

fn port_ok(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a `Host` header names this appliance: an IP literal,
/// `localhost`, or one of `names` (compared without case; a trailing dot
/// is ignored).
pub fn host_is_ours(host: &str, names: &[String]) -> bool {
    let Some(h) = host_part(host) else {
        return false;
    };
    if h.parse::<Ipv4Addr>().is_ok() || h.parse::<Ipv6Addr>().is_ok() {
        return true;
    }
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && (h.eq_ignore_ascii_case("localhost") || names.iter().any(|n| n.eq_ignore_ascii_case(h)))
}

/// True when a request comes from another site: a `Sec-Fetch-Site` that
/// is neither `same-origin` nor `none`, or an `Origin` that does not name
/// the `Host` it was sent to. Clients that send neither header (curl,
/// scripts, firmware) are not cross-site.
pub fn cross_site(origin: Option<&str>, host: Option<&str>, fetch_site: Option<&str>) -> bool {
    if let Some(site) = fetch_site
        && !matches!(site.trim(), "same-origin" | "none")
    {
        return true;
    }
    let Some(origin) = origin.map(str::trim) else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (authority, host) {
        (Some(a), Some(h)) => !a.eq_ignore_ascii_case(h.trim()),
        _ => true,
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is
/// matched without case (RFC 9110 §11.1).
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares secrets without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The API right: the configured token in the header, or, with no token
/// configured, a client on loopback (IPv4-mapped loopback too).
pub fn has_api_right(token: Option<&str>, peer: IpAddr, authorization: Option<&str>) -> bool {
    match token {
        Some(t) => authorization
            .and_then(bearer)
            .is_some_and(|given| constant_time_eq(given.as_bytes(), t.as_bytes())),
        None => peer.to_canonical().is_loopback(),
    }
}

/// The message of a 401: what `what` needs, with or without a token
/// configured.
pub fn needs_api_right(what: &str, token_configured: bool) -> String {
    if token_configured {
        format!("{what} needs `Authorization: Bearer <token>`")
    } else {
        format!("{what} needs a request from loopback (no API token is configured)")
    }
}

/// How a state-changing route proves its right, and what body it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// The API right ([`has_api_right`]); a JSON body.
    Json,
    /// The API right; a template (text) body.
    Text,
    /// The API right; any body is ignored (DELETE, reinstall).
    NoBody,
    /// A status-page form: the API right or the token as a form field,
    /// checked by the route once the body is read.
    Form,
    /// The installer's call-back: the API right or the install's key,
    /// checked by the route against the machine.
    Callback,
}

/// What a route does with a write, from its method and the route its
/// decoded path names ([`Route::parse`]). A path under `/ui/` is a form
/// whether or not a route knows it (it then answers 404 as HTML); any
/// other path no route knows is a JSON write, which needs the API right.
pub fn write_kind(method: &str, segments: &[&str]) -> Option<Write> {
    if matches!(method, "GET" | "HEAD") {
        return None;
    }
    if route::is_form_path(segments) {
        return Some(Write::Form);
    }
    Some(match Route::parse(segments).map(|(r, _)| r) {
        Some(Route::MachineDone) => Write::Callback,
        Some(Route::MachineReinstall) => Write::NoBody,
        _ if method == "DELETE" => Write::NoBody,
        Some(Route::Template) => Write::Text,
        _ => Write::Json,
    })
}

/// The request as the check sees it.
#[derive(Clone, Copy, Debug)]
pub struct Head<'r> {
    pub method: &'r str,
    pub host: Option<&'r str>,
    pub origin: Option<&'r str>,
    pub sec_fetch_site: Option<&'r str>,
    pub authorization: Option<&'r str>,
    pub content_type: Option<&'r str>,
    pub peer: IpAddr,
    pub body_len: usize,
}

/// What the check found: whether the caller holds the API right (routes
/// that read secrets or check their own proof use it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub api_right: bool,
}

fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type.map(|c| {
        c.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

const FORM_TYPES: [&str; 2] = ["application/x-www-form-urlencoded", "multipart/form-data"];

/// Steps 2 and 3 of the module docs for a request whose framing passed.
pub fn check(
    head: &Head<'_>,
    segments: &[&str],
    token: Option<&str>,
    names: &[String],
) -> Result<Access, Refusal> {
    if let Some(host) = head.host
        && !host_is_ours(host, names)
    {
        return Err(Refusal::new(
            421,
            format!(
                "this appliance does not answer to `{}`; use its address, or add the name to server_names",
                host.escape_debug()
            ),
        ));
    }
    let api_right = has_api_right(token, head.peer, head.authorization);
    let Some(kind) = write_kind(head.method, segments) else {
        return Ok(Access { api_right });
    };
    if cross_site(head.origin, head.host, head.sec_fetch_site) {
        return Err(Refusal::new(
            403,
            "cross-site requests may not change anything; use gopxe's own page or the API from a script",
        ));
    }
    let own_proof = matches!(kind, Write::Form | Write::Callback);
    if !api_right && !own_proof {
        return Err(Refusal::new(
            401,
            needs_api_right("this change", token.is_some()),
        ));
    }
    if head.body_len == 0 {
        return Ok(Access { api_right });
    }
    let media = media_type(head.content_type);
    let ok = match (kind, media.as_deref()) {
        (Write::NoBody | Write::Callback, _) => true,
        (Write::Json, Some(m)) => m == "application/json",
        (Write::Form, Some(m)) => m == FORM_TYPES[0],
        (Write::Text, Some(m)) => !m.is_empty() && !FORM_TYPES.contains(&m),
        (_, None) => false,
    };
    if !ok {
        let want = match kind {
            Write::Json => "Content-Type: application/json",
            Write::Form => "Content-Type: application/x-www-form-urlencoded",
            _ => "a Content-Type such as text/plain (not a form encoding)",
        };
        return Err(Refusal::new(
            415,
            format!(
                "the body is sent as `{}`; this route reads {want}",
                media
                    .as_deref()
                    .unwrap_or("(no Content-Type)")
                    .escape_debug()
            ),
        ));
    }
    Ok(Access { api_right })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_kind_comes_from_the_route() {
        let kind = |method: &str, path: &str| {
            let segs: Vec<&str> = path.split('/').skip(1).collect();
            write_kind(method, &segs)
        };
        assert_eq!(kind("GET", "/pxeboot/x/done"), None);
        assert_eq!(
            kind("POST", "/pxeboot/01-52-54-00-00-00-01/done"),
            Some(Write::Callback)
        );
        assert_eq!(kind("POST", "/pxeboot/x/reinstall"), Some(Write::NoBody));
        assert_eq!(kind("DELETE", "/bootaction/a"), Some(Write::NoBody));
        assert_eq!(kind("DELETE", "/kstemplate/a"), Some(Write::NoBody));
        assert_eq!(kind("PUT", "/kstemplate/a"), Some(Write::Text));
        assert_eq!(kind("POST", "/pxeboot"), Some(Write::Json));
        assert_eq!(kind("PUT", "/bootaction/a"), Some(Write::Json));
        assert_eq!(kind("POST", "/ui/pxeboot/x/reinstall"), Some(Write::Form));
        // Paths no route knows: forms under /ui/, JSON (the API right) else.
        assert_eq!(kind("POST", "/ui/nothing"), Some(Write::Form));
        assert_eq!(kind("POST", "/nothing/here"), Some(Write::Json));
        assert_eq!(kind("POST", "/pxeboot/x/done/more"), Some(Write::Json));
    }

    fn fh(cl: Option<&str>, n: usize, te: bool) -> FramingHeaders<'_> {
        FramingHeaders {
            content_length: cl,
            content_lengths: n,
            transfer_encoding: te,
        }
    }

    #[test]
    fn framing_is_strict() {
        assert_eq!(framing(&fh(None, 0, false), 100), Ok(0));
        assert_eq!(framing(&fh(Some("0"), 1, false), 100), Ok(0));
        assert_eq!(framing(&fh(Some("28"), 1, false), 100), Ok(28));
        assert_eq!(framing(&fh(Some("100"), 1, false), 100), Ok(100));
        let status = |h: FramingHeaders<'_>| framing(&h, 100).map_err(|r| r.status);
        assert_eq!(status(fh(None, 0, true)), Err(501), "chunked");
        assert_eq!(status(fh(Some("5"), 1, true)), Err(400), "TE.CL");
        assert_eq!(status(fh(Some("5"), 2, false)), Err(400), "twice");
        for bad in ["-1", "+28", " 5", "5 ", "0x10", "", "1e3", "٣"] {
            assert_eq!(status(fh(Some(bad), 1, false)), Err(400), "{bad:?}");
        }
        assert_eq!(status(fh(None, 1, false)), Err(400), "not UTF-8");
        assert_eq!(status(fh(Some("101"), 1, false)), Err(413));
        assert_eq!(
            status(fh(Some("1000000000000000000000000"), 1, false)),
            Err(413),
            "past usize"
        );
    }

    #[test]
    fn hosts() {
        let names = vec!["gopxe.lab".to_string()];
        for ok in [
            "10.0.0.1",
            "10.0.0.1:9090",
            "[::1]:9090",
            "[fe80::1]",
            "localhost",
            "LOCALHOST:9090",
            "localhost.",
            "gopxe.lab",
            "GoPXE.Lab.:80",
        ] {
            assert!(host_is_ours(ok, &names), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9090",
            "10.0.0.1.evil.example",
            "gopxe.lab.evil",
            "localhost.evil",
            "",
            ":9090",
            "[::1",
            "[::1]x",
            "10.0.0.1:90a",
            "2130706433",
        ] {
            assert!(!host_is_ours(bad, &names), "{bad}");
        }
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        assert!(!cross_site(None, Some("h:9090"), None), "curl");
        assert!(!cross_site(
            Some("http://h:9090"),
            Some("h:9090"),
            Some("same-origin")
        ));
        assert!(!cross_site(Some("http://H:9090"), Some("h:9090"), None));
        assert!(cross_site(
            Some("http://evil.example"),
            Some("h:9090"),
            Some("cross-site")
        ));
        assert!(cross_site(Some("null"), Some("h:9090"), None));
        assert!(cross_site(Some("http://h:9090"), None, None));
        assert!(cross_site(None, Some("h:9090"), Some("cross-site")));
        assert!(cross_site(None, Some("h:9090"), Some("same-site")));
        assert!(!cross_site(None, None, Some("none")));
    }

    #[test]
    fn bearer_scheme_ignores_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }

    #[test]
    fn api_right_needs_the_token_or_loopback() {
        let lan: IpAddr = "192.0.2.7".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let mapped_lan: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(has_api_right(None, lo, None));
        assert!(has_api_right(None, mapped, None), "IPv4-mapped loopback");
        assert!(has_api_right(None, "::1".parse().unwrap(), None));
        assert!(!has_api_right(None, lan, None));
        assert!(!has_api_right(None, mapped_lan, None));
        assert!(!has_api_right(None, lan, Some("Bearer anything")));
        let t = Some("s3cret-token");
        assert!(
            !has_api_right(t, lo, None),
            "with a token, loopback needs it"
        );
        assert!(!has_api_right(t, lan, Some("Bearer s3cret-tokeN")));
        assert!(!has_api_right(t, lan, Some("Basic s3cret-token")));
        assert!(has_api_right(t, lan, Some("Bearer s3cret-token")));
        assert!(has_api_right(t, lan, Some("bearer s3cret-token")));
    }

    fn head<'a>(method: &'a str, peer: &str) -> Head<'a> {
        Head {
            method,
            host: Some("127.0.0.1:9090"),
            origin: None,
            sec_fetch_site: None,
            authorization: None,
            content_type: None,
            peer: peer.parse().unwrap(),
            body_len: 0,
        }
    }

    fn status(h: &Head<'_>, segs: &[&str], token: Option<&str>) -> u16 {
        match check(h, segs, token, &[]) {
            Ok(_) => 200,
            Err(r) => r.status,
        }
    }

    #[test]
    fn writes_pass_one_check() {
        let reinstall = ["pxeboot", "x", "reinstall"];
        let ba = ["bootaction", "x"];
        // The cross-site write: refused whatever the body.
        let mut h = head("POST", "127.0.0.1");
        h.origin = Some("http://evil.example");
        h.sec_fetch_site = Some("cross-site");
        h.content_type = Some("text/plain");
        h.body_len = 2;
        assert_eq!(status(&h, &reinstall, None), 403);
        assert_eq!(status(&h, &ba, None), 403);
        assert_eq!(status(&h, &["ui", "pxeboot", "x", "delete"], None), 403);
        assert_eq!(status(&h, &["pxeboot", "x", "done"], None), 403);
        // Same-origin loopback, no token: the body type decides.
        let mut h = head("POST", "127.0.0.1");
        h.body_len = 2;
        h.content_type = Some("text/plain");
        assert_eq!(status(&h, &ba, None), 415);
        assert_eq!(status(&h, &["pxeboot"], None), 415);
        h.content_type = Some("application/json; charset=utf-8");
        assert_eq!(status(&h, &ba, None), 200);
        h.content_type = None;
        assert_eq!(status(&h, &ba, None), 415, "a body needs its type");
        let mut put = head("PUT", "127.0.0.1");
        put.body_len = 5;
        put.content_type = Some("text/plain");
        assert_eq!(status(&put, &["kstemplate", "x"], None), 200);
        put.content_type = Some("application/x-www-form-urlencoded");
        assert_eq!(status(&put, &["kstemplate", "x"], None), 415);
        // No body: no type needed.
        assert_eq!(status(&head("POST", "127.0.0.1"), &reinstall, None), 200);
        assert_eq!(status(&head("DELETE", "127.0.0.1"), &ba, None), 200);
        // The LAN without the token.
        assert_eq!(status(&head("POST", "192.0.2.9"), &reinstall, None), 401);
        assert_eq!(
            status(&head("DELETE", "192.0.2.9"), &ba, Some("t0k3n-xyz")),
            401
        );
        let mut h = head("DELETE", "192.0.2.9");
        h.authorization = Some("bearer t0k3n-xyz");
        assert_eq!(status(&h, &ba, Some("t0k3n-xyz")), 200);
        // Forms and the call-back prove their right themselves.
        let mut form = head("POST", "192.0.2.9");
        form.body_len = 11;
        form.content_type = Some("application/x-www-form-urlencoded");
        assert_eq!(
            status(&form, &["ui", "pxeboot", "x", "reinstall"], Some("t")),
            200
        );
        form.content_type = Some("text/plain");
        assert_eq!(
            status(&form, &["ui", "pxeboot", "x", "reinstall"], Some("t")),
            415
        );
        let mut done = head("POST", "192.0.2.9");
        done.body_len = 4;
        done.content_type = Some("application/x-www-form-urlencoded");
        assert_eq!(status(&done, &["pxeboot", "x", "done"], Some("t")), 200);
        // Reads pass, and say whether the caller holds the API right.
        let r = check(&head("GET", "192.0.2.9"), &["kstemplate", "x"], None, &[]);
        assert_eq!(r, Ok(Access { api_right: false }));
        let r = check(
            &head("GET", "::ffff:127.0.0.1"),
            &["kstemplate", "x"],
            None,
            &[],
        );
        assert_eq!(r, Ok(Access { api_right: true }));
    }

    #[test]
    fn a_foreign_host_is_misdirected_for_reads_and_writes() {
        let mut h = head("GET", "127.0.0.1");
        h.host = Some("evil.example:9090");
        assert_eq!(status(&h, &["pxeboot"], None), 421);
        h.method = "POST";
        h.origin = Some("http://evil.example:9090");
        assert_eq!(status(&h, &["ui", "pxeboot", "x", "delete"], None), 421);
        let names = vec!["gopxe.lab".to_string()];
        h.host = Some("gopxe.lab:9090");
        h.origin = Some("http://gopxe.lab:9090");
        assert!(check(&h, &["pxeboot", "x", "reinstall"], None, &names).is_ok());
        h.host = None;
        h.origin = None;
        assert!(check(&h, &["pxeboot", "x", "reinstall"], None, &[]).is_ok());
    }
}
