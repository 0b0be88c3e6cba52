//! The HTTP API and boot endpoints: one small function per resource.
//!
//! Layer: service. [`handle`] takes a parsed request (method, decoded path
//! segments, query, body, whether the caller holds the API right) and returns a
//! [`Reply`]; it does not know about sockets, which keeps it testable.
//! Routes (JSON unless noted; every request has passed `super::guard`
//! first, so a write here holds the API right or proves its own):
//!
//! ```text
//! GET  /health
//! GET  /bootaction                 POST|PUT /bootaction/{name}   GET|DELETE /bootaction/{name}
//! GET  /pxeboot                    POST /pxeboot                 GET|PUT|DELETE /pxeboot/{id}
//! POST /pxeboot/{id}/done          POST /pxeboot/{id}/reinstall  GET /pxeboot/{id}/events
//! GET  /pxelinux/                  GET /pxelinux/{file}          (text)
//! GET  /kickstart/?name=..&os=..   GET /kickstart/{id}           (text)
//! GET  /preseed/{id}               GET /cloud-init/{id}/{user-data|meta-data|vendor-data}  (text)
//! GET  /kstemplate                 PUT|GET|DELETE /kstemplate/{name}
//! GET  /boot.ipxe?mac=..&uuid=..   (iPXE script)
//! GET  /images/{path}              GET /localrepo/{path}         (files, streamed)
//! GET  /leases                   GET /openapi.json             (this list, described)
//! GET  /                           (status page, HTML; JSON with `Accept: application/json`)
//! POST /ui/pxeboot/{id}/reinstall  POST /ui/pxeboot/{id}/delete  (status-page forms)
//! ```
//!
//! The route list is enumerable: [`ROUTES`] holds every (method, path
//! pattern) the router answers, and `api/openapi.json` (served at
//! `/openapi.json`, compiled in) describes exactly those. Adding a route is
//! an arm in `route`, a label in [`route_label`], one line in [`ROUTES`] and
//! its operation in `api/openapi.json`. Three checks keep them in step: the
//! unit tests below feed a sample path of every table entry to the router
//! (it must answer, and answer 405 to the methods the table does not list);
//! `tests/openapi.rs` compares the table with the document's paths and calls
//! every documented operation on the real server; and in debug builds (all
//! tests) a 2xx answer from a route missing from the table is turned into a
//! 500 naming the missing entry, so a new route's own tests fail until it is
//! listed.

use super::reply::{Body, Reply};
use crate::app::{App, AppError};
use crate::boot::{self, installer, kickstart};
use crate::fsroot::Refusal;
use crate::model::validate::check_token;
use crate::model::{
    BootAction, BootActionBody, EventKind, Machine, MachineBody, MachineId, MachineState,
    format_uuid, parse_mac, parse_uuid,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// A request as the router sees it.
pub struct Req<'a> {
    pub method: &'a str,
    /// Percent-decoded path segments (no empty ones except a trailing `""`
    /// when the path ends in `/`).
    pub segments: Vec<String>,
    pub query: &'a str,
    pub body: &'a [u8],
    /// The caller holds the API right: the token (or loopback with none
    /// set). Writes other than the form posts and `done` have it; reads
    /// of secrets need it.
    pub api_right: bool,
    /// The caller's address (file downloads become events of its machine).
    pub peer: std::net::IpAddr,
    /// The `Accept` header (`GET /` serves HTML unless JSON is asked for).
    pub accept: Option<&'a str>,
}

fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Reply::error(
            400,
            None,
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        // serde names unknown or mistyped fields in its message.
        let msg = e.to_string();
        let field = msg.split('`').nth(1).map(str::to_string);
        Reply::error(400, field.as_deref(), &format!("malformed JSON: {msg}"))
    })
}

fn app_error(e: AppError) -> Reply {
    match e {
        AppError::Invalid(f) => Reply::error(400, Some(&f.field), &f.to_string()),
        AppError::NotFound(m) => Reply::error(404, None, &m),
        AppError::Conflict(m) => Reply::error(409, None, &m),
        AppError::Unprocessable(f) => Reply::error(422, Some(&f.field), &f.to_string()),
        AppError::Forbidden(m) => Reply::error(403, None, &m),
        AppError::Store(e) => {
            log::error!("store write failed: {e}");
            Reply::error(
                500,
                None,
                &format!("the store could not save the change: {e}"),
            )
        }
    }
}

fn method_not_allowed(allow: &str) -> Reply {
    Reply::error(
        405,
        None,
        &format!("method not allowed here; allowed: {allow}"),
    )
    .with_header("Allow", allow.into())
}

fn needs_token(app: &App, what: &str) -> Reply {
    let token = app.config.api_token.is_some();
    Reply::error(401, None, &super::guard::needs_api_right(what, token))
        .with_header("WWW-Authenticate", "Bearer realm=\"gopxe\"".into())
}

fn machine_json(app: &App, m: &Machine) -> serde_json::Value {
    let s = |a: Option<std::net::Ipv4Addr>| a.map(|a| a.to_string());
    let sharing = app.sharing_address(m);
    let mut v = json!({
        "id": m.id.canonical(),
        "uuid": m.id.canonical(),
        "bootaction": m.bootaction,
        "ksfile": m.ksfile,
        "os": m.os,
        "version": m.version,
        "hostname": m.hostname,
        "ip": s(m.ip),
        "mask": s(m.mask),
        "gw": s(m.gw),
        "ns1": s(m.ns1),
        "ns2": s(m.ns2),
        "state": m.state,
        "updated_ms": m.updated_ms,
        "last_event": app.events.borrow().get(&m.id).and_then(|l| l.last().cloned()),
        "pxelinux": format!("/pxelinux/{}", m.id.canonical()),
        "kickstart": format!("/kickstart/{}", m.id.canonical()),
    });
    if let (Some(ip), false, Some(o)) = (m.ip, sharing.is_empty(), v.as_object_mut()) {
        let others: Vec<String> = sharing.iter().map(|o| o.canonical()).collect();
        o.insert(
            "warnings".into(),
            json!([format!(
                "ip {ip} is also the static address of {}",
                others.join(", ")
            )]),
        );
    }
    v
}

fn parse_id(s: &str) -> Result<MachineId, Reply> {
    s.parse::<MachineId>()
        .map_err(|e| Reply::error(400, Some("id"), &e.to_string()))
}

/// Every route the router answers: (method, path pattern). The patterns are
/// the paths of `api/openapi.json`: `{x}` stands for one segment, a final
/// `{path}` for one or more; a trailing `/` is optional when matching.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/bootaction"),
    ("GET", "/bootaction/{name}"),
    ("POST", "/bootaction/{name}"),
    ("PUT", "/bootaction/{name}"),
    ("DELETE", "/bootaction/{name}"),
    ("GET", "/pxeboot"),
    ("POST", "/pxeboot"),
    ("GET", "/pxeboot/{id}"),
    ("PUT", "/pxeboot/{id}"),
    ("DELETE", "/pxeboot/{id}"),
    ("POST", "/pxeboot/{id}/done"),
    ("POST", "/pxeboot/{id}/reinstall"),
    ("GET", "/pxeboot/{id}/events"),
    ("GET", "/pxelinux/"),
    ("GET", "/pxelinux/{file}"),
    ("GET", "/pxelinux.cfg/"),
    ("GET", "/pxelinux.cfg/{file}"),
    ("GET", "/kickstart/"),
    ("GET", "/kickstart/{id}"),
    ("GET", "/preseed/{id}"),
    ("GET", "/cloud-init/{id}/user-data"),
    ("GET", "/cloud-init/{id}/meta-data"),
    ("GET", "/cloud-init/{id}/vendor-data"),
    ("GET", "/kstemplate"),
    ("GET", "/kstemplate/{name}"),
    ("PUT", "/kstemplate/{name}"),
    ("POST", "/kstemplate/{name}"),
    ("DELETE", "/kstemplate/{name}"),
    ("GET", "/boot.ipxe"),
    ("GET", "/leases"),
    ("GET", "/images/{path}"),
    ("GET", "/localrepo/{path}"),
    ("POST", "/ui/pxeboot/{id}/reinstall"),
    ("POST", "/ui/pxeboot/{id}/delete"),
];

/// The OpenAPI 3.1 description of [`ROUTES`], served at `/openapi.json`:
/// `api/openapi.json` without its indentation (see `build.rs`).
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The message of the 404 for a path no route knows (tests tell it apart
/// from a 404 for a missing record).
pub const UNKNOWN_ROUTE: &str = "no such resource";

/// Whether decoded path `segments` match a [`ROUTES`] pattern.
pub fn pattern_matches(pattern: &str, segments: &[&str]) -> bool {
    fn trim<'a, 'b>(s: &'a [&'b str]) -> &'a [&'b str] {
        match s {
            [rest @ .., ""] => rest,
            _ => s,
        }
    }
    let pat: Vec<&str> = pattern.split('/').skip(1).collect();
    let (pat, segs) = (trim(&pat), trim(segments));
    if let [head @ .., "{path}"] = pat {
        return segs.len() > head.len() && head_matches(head, segs);
    }
    pat.len() == segs.len() && head_matches(pat, segs)
}

fn head_matches(pat: &[&str], segs: &[&str]) -> bool {
    pat.iter()
        .zip(segs)
        .all(|(p, s)| (p.starts_with('{') && p.ends_with('}')) || p == s)
}

/// The route pattern of a path, as a metrics label (bounded set).
pub fn route_label(segments: &[String]) -> &'static str {
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        [] | [""] => "/",
        ["health"] => "/health",
        ["metrics"] => "/metrics",
        ["bootaction"] | ["bootaction", ""] => "/bootaction",
        ["bootaction", _] => "/bootaction/{name}",
        ["pxeboot"] | ["pxeboot", ""] => "/pxeboot",
        ["pxeboot", _] => "/pxeboot/{id}",
        ["pxeboot", _, "done"] => "/pxeboot/{id}/done",
        ["pxeboot", _, "reinstall"] => "/pxeboot/{id}/reinstall",
        ["pxeboot", _, "events"] => "/pxeboot/{id}/events",
        ["pxelinux" | "pxelinux.cfg", ..] => "/pxelinux/",
        ["kickstart", ..] => "/kickstart/",
        ["preseed", ..] => "/preseed/{id}",
        ["cloud-init", ..] => "/cloud-init/{id}/",
        ["kstemplate", ..] => "/kstemplate/",
        ["boot.ipxe"] => "/boot.ipxe",
        ["leases"] => "/leases",
        ["ui", ..] => "/ui/",
        ["openapi.json"] => "/openapi.json",
        ["images", ..] => "/images/",
        ["localrepo", ..] => "/localrepo/",
        _ => "other",
    }
}

/// Routes one request and counts it.
pub async fn handle(app: &App, req: &Req<'_>) -> Reply {
    let reply = route(app, req).await;
    #[cfg(debug_assertions)]
    let reply = listed_or_500(req, reply);
    app.metrics
        .http_request(route_label(&req.segments), reply.status);
    reply
}

/// Debug builds: a route that answers 2xx must be in [`ROUTES`] (and so in
/// `api/openapi.json`); otherwise its tests see this 500.
#[cfg(debug_assertions)]
fn listed_or_500(req: &Req<'_>, reply: Reply) -> Reply {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let listed = ROUTES
        .iter()
        .any(|(m, p)| *m == req.method && pattern_matches(p, &segs));
    if (200..300).contains(&reply.status) && !listed {
        let path = req.segments.join("/");
        return Reply::error(
            500,
            None,
            &format!(
                "debug build: `{} /{path}` answered {} but matches no entry of api::ROUTES; \
                 add it there and to api/openapi.json",
                req.method, reply.status
            ),
        );
    }
    reply
}

async fn route(app: &App, req: &Req<'_>) -> Reply {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        [] | [""] if !super::status::wants_json(req.accept) => match req.method {
            "GET" => super::status::page(app),
            _ => method_not_allowed("GET"),
        },
        [] | [""] => match req.method {
            "GET" => Reply::json(
                200,
                &json!({"service": "gopxe", "health": "/health", "docs": "/openapi.json"}),
            ),
            _ => method_not_allowed("GET"),
        },
        ["ui", rest @ ..] => super::status::ui(app, req, rest).await,
        ["health"] => match req.method {
            "GET" => health(app),
            _ => method_not_allowed("GET"),
        },
        ["openapi.json"] => match req.method {
            "GET" => Reply::bytes(200, "application/json", OPENAPI_JSON.as_bytes().to_vec()),
            _ => method_not_allowed("GET"),
        },
        ["metrics"] => match req.method {
            "GET" => metrics(app),
            _ => method_not_allowed("GET"),
        },
        ["bootaction"] | ["bootaction", ""] => match req.method {
            "GET" => {
                let s = app.store.borrow();
                Reply::json(200, &s.bootactions.values().collect::<Vec<_>>())
            }
            _ => method_not_allowed("GET"),
        },
        ["bootaction", name] => bootaction(app, req, name).await,
        ["pxeboot"] | ["pxeboot", ""] => match req.method {
            "GET" => {
                let s = app.store.borrow();
                Reply::json(
                    200,
                    &s.machines
                        .values()
                        .map(|m| machine_json(app, m))
                        .collect::<Vec<_>>(),
                )
            }
            "POST" => put_machine(app, req, None, true).await,
            _ => method_not_allowed("GET, POST"),
        },
        ["pxeboot", id] => machine(app, req, id).await,
        ["pxeboot", id, action] => machine_action(app, req, id, action).await,
        ["pxelinux"] | ["pxelinux", ""] | ["pxelinux.cfg"] | ["pxelinux.cfg", ""] => {
            match req.method {
                "GET" => Reply::json(200, &boot::config_names(&app.store.borrow())),
                _ => method_not_allowed("GET"),
            }
        }
        ["pxelinux" | "pxelinux.cfg", file] => match req.method {
            "GET" => {
                let s = app.store.borrow();
                match boot::config_for(&s, &app.urls, app.default_boot(), file) {
                    Some(text) => Reply::text(200, text),
                    None => Reply::error(
                        404,
                        None,
                        &format!("no pxelinux config `{}`", file.escape_debug()),
                    ),
                }
            }
            _ => method_not_allowed("GET"),
        },
        ["kickstart"] | ["kickstart", ""] => match req.method {
            "GET" => kickstart_query(app, req).await,
            _ => method_not_allowed("GET"),
        },
        ["kickstart", id] => match req.method {
            "GET" => kickstart_by_id(app, req, id).await,
            _ => method_not_allowed("GET"),
        },
        ["preseed", id] => match req.method {
            "GET" => answer_file(app, req, id, "preseed").await,
            _ => method_not_allowed("GET"),
        },
        [
            "cloud-init",
            id,
            file @ ("user-data" | "meta-data" | "vendor-data"),
        ] => match req.method {
            "GET" => answer_file(app, req, id, file).await,
            _ => method_not_allowed("GET"),
        },
        ["kstemplate"] | ["kstemplate", ""] => match req.method {
            "GET" => Reply::json(
                200,
                &app.store.borrow().templates.keys().collect::<Vec<_>>(),
            ),
            _ => method_not_allowed("GET"),
        },
        ["kstemplate", name] => kstemplate(app, req, name).await,
        ["boot.ipxe"] => match req.method {
            "GET" => ipxe(app, req.query),
            _ => method_not_allowed("GET"),
        },
        ["leases"] => match req.method {
            "GET" => {
                let leases = app
                    .dhcp
                    .borrow()
                    .as_ref()
                    .map(|d| d.snapshot())
                    .unwrap_or_default();
                Reply::json(200, &leases)
            }
            _ => method_not_allowed("GET"),
        },
        ["images", rest @ ..] if req.method == "GET" => {
            let reply = serve_file(app.images_root.as_deref(), rest, "images", req.peer).await;
            file_event(app, req, &reply);
            reply
        }
        ["localrepo", rest @ ..] if req.method == "GET" => {
            serve_file(app.localrepo_root.as_deref(), rest, "localrepo", req.peer).await
        }
        _ => Reply::error(404, None, UNKNOWN_ROUTE),
    }
}

/// A boot file fetched over HTTP by a known machine is an event on it.
fn file_event(app: &App, req: &Req<'_>, reply: &Reply) {
    if let (200, Body::File { len, .. }) = (reply.status, &reply.body)
        && let Some(id) = app.machine_at(req.peer)
    {
        let path = req.segments.join("/");
        app.event_at(
            log::Level::Info,
            id,
            EventKind::Http,
            format!("GET /{path} ({len} bytes) to {}", req.peer),
        );
    }
}

fn metrics(app: &App) -> Reply {
    let s = app.store.borrow();
    let count = |st: MachineState| s.machines.values().filter(|m| m.state == st).count();
    let states = [
        MachineState::Install,
        MachineState::Installing,
        MachineState::Installed,
    ]
    .map(|st| (st.as_str(), count(st)));
    let text = app.metrics.render(
        &states,
        app.started.elapsed().as_secs(),
        crate::metrics::LogCounts::now(),
    );
    Reply::bytes(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        text.into_bytes(),
    )
}

fn health(app: &App) -> Reply {
    let warnings = app.loader_check().warnings(&app.config.images);
    let s = app.store.borrow();
    Reply::json(
        200,
        &json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": app.started.elapsed().as_secs(),
            "advertise": app.urls.base,
            "machines": s.machines.len(),
            "bootactions": s.bootactions.len(),
            "dhcp_mode": format!("{:?}", app.config.dhcp_mode).to_lowercase(),
            "warnings": warnings,
        }),
    )
}

async fn bootaction(app: &App, req: &Req<'_>, name: &str) -> Reply {
    match req.method {
        "GET" => match app.store.borrow().bootactions.get(name) {
            Some(a) => Reply::json(200, a),
            None => Reply::error(
                404,
                None,
                &format!("no boot action `{}`", name.escape_debug()),
            ),
        },
        "POST" | "PUT" => {
            let body: BootActionBody = match json_body(req.body) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let a = match BootAction::from_body(name, body) {
                Ok(a) => a,
                Err(f) => return app_error(AppError::Invalid(f)),
            };
            match app.put_bootaction(a.clone()).await {
                // POST answers 201 whether it created or replaced, as the original did.
                Ok(created) => Reply::json(
                    if created || req.method == "POST" {
                        201
                    } else {
                        200
                    },
                    &a,
                ),
                Err(e) => app_error(e),
            }
        }
        "DELETE" => match app.delete_bootaction(name).await {
            Ok(()) => Reply::no_content(),
            Err(e) => app_error(e),
        },
        _ => method_not_allowed("GET, POST, PUT, DELETE"),
    }
}

async fn put_machine(app: &App, req: &Req<'_>, path_id: Option<MachineId>, post: bool) -> Reply {
    let body: MachineBody = match json_body(req.body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let m = match Machine::from_body(body, path_id) {
        Ok(m) => m,
        Err(f) => return app_error(AppError::Invalid(f)),
    };
    let id = m.id;
    match app.put_machine(m).await {
        Ok(created) => {
            let s = app.store.borrow();
            match s.machines.get(&id) {
                Some(m) => Reply::json(
                    if created || post { 201 } else { 200 },
                    &machine_json(app, m),
                ),
                None => Reply::error(500, None, "record vanished after write"),
            }
        }
        Err(e) => app_error(e),
    }
}

async fn machine(app: &App, req: &Req<'_>, id: &str) -> Reply {
    let id = match parse_id(id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match req.method {
        "GET" => match app.store.borrow().machines.get(&id) {
            Some(m) => Reply::json(200, &machine_json(app, m)),
            None => Reply::error(404, None, &format!("no machine `{id}`")),
        },
        "PUT" => put_machine(app, req, Some(id), false).await,
        "DELETE" => match app.delete_machine(&id).await {
            Ok(()) => Reply::no_content(),
            Err(e) => app_error(e),
        },
        _ => method_not_allowed("GET, PUT, DELETE"),
    }
}

async fn machine_action(app: &App, req: &Req<'_>, id: &str, action: &str) -> Reply {
    let id = match parse_id(id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let result = match (req.method, action) {
        ("GET", "events") => {
            if !app.store.borrow().machines.contains_key(&id) {
                return Reply::error(404, None, &format!("no machine `{id}`"));
            }
            return Reply::json(200, &app.events_of(&id));
        }
        ("POST", "done") => {
            let key = form_urlencoded::parse(req.query.as_bytes())
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.into_owned());
            if let Some(k) = &key
                && (k.len() != 32 || !k.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Reply::error(
                    400,
                    Some("key"),
                    "key: not an install key (32 hex digits; a preview's URL carries `preview`, which no call-back accepts)",
                );
            }
            let proof = crate::app::DoneProof {
                key: key.as_deref(),
                api_right: req.api_right,
            };
            app.done(&id, proof).await
        }
        ("POST", "reinstall") => app.reinstall(&id, "reinstall requested").await,
        (_, "events") => return method_not_allowed("GET"),
        (_, "done" | "reinstall") => return method_not_allowed("POST"),
        _ => return Reply::error(404, None, UNKNOWN_ROUTE),
    };
    match result {
        Ok(m) => Reply::json(200, &machine_json(app, &m)),
        Err(e) => app_error(e),
    }
}

/// Who fetched a machine's answer file, which decides what it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    /// The machine itself, from its recorded or DHCP address: the fetch
    /// moves `install` to `installing`, and the call-back URL carries the
    /// install's key.
    Machine,
    /// The admin (API right) from elsewhere: the key, and no change.
    Admin,
    /// Anyone else: a preview with no key, and no change.
    Preview,
}

fn reader_of(app: &App, req: &Req<'_>, id: &MachineId) -> Reader {
    if app.is_machine_address(id, req.peer) {
        Reader::Machine
    } else if req.api_right {
        Reader::Admin
    } else {
        Reader::Preview
    }
}

/// The `done` URL a reader gets: with the install's key for the machine
/// and the admin, with `key=preview` (which no call-back accepts) for
/// anyone else.
fn done_url_for(app: &App, id: &MachineId, reader: Reader) -> String {
    let key = app
        .store
        .borrow()
        .machines
        .get(id)
        .and_then(|m| m.install_key)
        .map(|k| k.hex());
    match reader {
        Reader::Machine | Reader::Admin => app.urls.done(id, key.as_deref()),
        Reader::Preview => app.urls.done(id, Some("preview")),
    }
}

async fn render_kickstart(
    app: &App,
    req: &Req<'_>,
    p: kickstart::KsParams,
    id: Option<MachineId>,
) -> Reply {
    let reader = id.map(|i| (i, reader_of(app, req, &i)));
    let done = reader.map(|(i, r)| done_url_for(app, &i, r));
    let repo = app.config.repo_url.as_deref();
    let (text, name) = if p.name == "default" {
        let text = kickstart::render_default(&p, repo, &app.urls.base, done.as_deref());
        (text, p.name)
    } else {
        let ctx = kickstart::KsContext::new(p, repo, &app.urls.base, done);
        let src = app.store.borrow().templates.get(&ctx.name).cloned();
        let Some(src) = src else {
            return Reply::error(
                404,
                Some("name"),
                &format!("no kickstart template `{}`", ctx.name),
            );
        };
        let name = ctx.name.clone();
        match render_admin_template(app, src, ctx).await {
            Ok(t) => (t, name),
            Err(e) => {
                log::warn!("kickstart template `{name}` failed: {e}");
                return Reply::error(500, Some("name"), &format!("template `{name}` failed: {e}"));
            }
        }
    };
    if let Some((id, reader)) = reader {
        let detail = format!("kickstart `{name}` fetched ({} bytes)", text.len());
        if let Err(r) = note_fetched(app, req, id, reader, EventKind::Kickstart, detail).await {
            return r;
        }
    }
    Reply::text(200, text)
}

/// Renders an admin template off the executor, a few at a time, within
/// the configured limits: a heavy template delays its own requests, not
/// the appliance's other clients.
async fn render_admin_template(
    app: &App,
    src: String,
    ctx: kickstart::KsContext,
) -> Result<String, kickstart::RenderError> {
    let _permit = app.template_permits.acquire().await;
    let limits = app.config.template_limits;
    smol::unblock(move || kickstart::render_user(&src, &ctx, limits)).await
}

/// An installer fetched its answers. From the machine's own address,
/// `install` becomes `installing` (durably, with the event); later
/// fetches are events only. Anyone else's fetch changes nothing and is
/// recorded as a preview. The kickstart, the preseed and the cloud-init
/// user-data all come through here.
async fn note_fetched(
    app: &App,
    req: &Req<'_>,
    id: MachineId,
    reader: Reader,
    kind: EventKind,
    detail: String,
) -> Result<(), Reply> {
    if reader == Reader::Machine {
        return app
            .answers_fetched(&id, kind, &detail)
            .await
            .map(|_| ())
            .map_err(app_error);
    }
    let (recorded, dhcp) = app.machine_addresses(&id);
    let known: Vec<String> = [recorded, dhcp]
        .into_iter()
        .flatten()
        .map(|a| a.to_string())
        .collect();
    let known = if known.is_empty() {
        "none known yet".to_string()
    } else {
        known.join(", ")
    };
    let admin = reader == Reader::Admin;
    let who = if admin { "by the admin " } else { "" };
    // An admin's look is routine; an anonymous fetch from elsewhere may be
    // an installer at an address gopxe does not know: worth a log line.
    let level = if admin {
        log::Level::Debug
    } else {
        log::Level::Info
    };
    app.event_at(
        level,
        id,
        EventKind::Http,
        format!(
            "preview: {detail} {who}from {}, not the machine's address ({known}); state unchanged",
            req.peer
        ),
    );
    Ok(())
}

/// `/preseed/{id}` and `/cloud-init/{id}/{file}`: a machine's answer files
/// for debian-installer and Ubuntu autoinstall, whatever its boot action's
/// installer (the action gives the disk layout).
async fn answer_file(app: &App, req: &Req<'_>, id: &str, file: &str) -> Reply {
    let id = match parse_id(id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let (m, storage) = {
        let s = app.store.borrow();
        let Some(m) = s.machines.get(&id).cloned() else {
            return Reply::error(404, None, &format!("no machine `{id}`"));
        };
        let storage = s.bootactions.get(&m.bootaction).and_then(|a| a.storage);
        (m, storage)
    };
    let reader = reader_of(app, req, &id);
    let mut t = installer::Target::new(&m, storage, &app.urls, app.learned_mac(&id));
    t.done_url = done_url_for(app, &id, reader);
    let settings = &app.config.installer;
    let text = match file {
        "preseed" => installer::render_preseed(&t, settings),
        "user-data" => installer::render_user_data(&t, settings),
        "meta-data" => installer::render_meta_data(&t),
        _ => String::new(),
    };
    if matches!(file, "preseed" | "user-data") {
        let detail = format!("{file} fetched ({} bytes)", text.len());
        let kind = if file == "preseed" {
            EventKind::Preseed
        } else {
            EventKind::Autoinstall
        };
        if let Err(r) = note_fetched(app, req, id, reader, kind, detail).await {
            return r;
        }
    } else {
        app.event_at(
            log::Level::Debug,
            id,
            EventKind::Http,
            format!("cloud-init {file} fetched"),
        );
    }
    Reply::text(200, text)
}

async fn kickstart_query(app: &App, req: &Req<'_>) -> Reply {
    let p = match kickstart::KsParams::from_query(req.query) {
        Ok(p) => p,
        Err(f) => return Reply::error(400, Some(&f.field), &f.to_string()),
    };
    let id = app.machine_for_kickstart(p.fqdn.as_deref(), p.ip);
    render_kickstart(app, req, p, id).await
}

async fn kickstart_by_id(app: &App, req: &Req<'_>, id: &str) -> Reply {
    let id = match parse_id(id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let m = match app.store.borrow().machines.get(&id) {
        Some(m) => m.clone(),
        None => return Reply::error(404, None, &format!("no machine `{id}`")),
    };
    let p = kickstart::KsParams {
        name: m.ksfile.clone(),
        os: m.os.clone(),
        version: m.version.clone(),
        fqdn: m.hostname.clone(),
        ip: m.ip,
        mask: m.mask,
        gw: m.gw,
        ns1: m.ns1,
        ns2: m.ns2,
    };
    render_kickstart(app, req, p, Some(id)).await
}

async fn kstemplate(app: &App, req: &Req<'_>, name: &str) -> Reply {
    let name = match check_token("name", name) {
        Ok(n) if n != "default" => n,
        Ok(_) => {
            return Reply::error(
                400,
                Some("name"),
                "name: `default` is the built-in template",
            );
        }
        Err(f) => return Reply::error(400, Some(&f.field), &f.to_string()),
    };
    match req.method {
        // Templates hold password hashes and the like: reading one needs
        // the API right.
        "GET" if !req.api_right => needs_token(app, "reading a template"),
        "GET" => match app.store.borrow().templates.get(&name) {
            Some(t) => Reply::text(200, t.clone()),
            None => Reply::error(404, None, &format!("no kickstart template `{name}`")),
        },
        "PUT" | "POST" => {
            let text = match std::str::from_utf8(req.body) {
                Ok(t) => t.to_string(),
                Err(_) => return Reply::error(400, Some("body"), "a template must be UTF-8 text"),
            };
            let check = {
                let _permit = app.template_permits.acquire().await;
                let (text, limits) = (text.clone(), app.config.template_limits);
                smol::unblock(move || kickstart::check_template(&text, limits)).await
            };
            if let Err(e) = check {
                return Reply::error(400, Some("body"), &format!("template error: {e}"));
            }
            match app.put_template(&name, text).await {
                Ok(created) => Reply::json(if created { 201 } else { 200 }, &json!({"name": name})),
                Err(e) => app_error(e),
            }
        }
        "DELETE" => match app.delete_template(&name).await {
            Ok(()) => Reply::no_content(),
            Err(e) => app_error(e),
        },
        _ => method_not_allowed("GET, PUT, POST, DELETE"),
    }
}

fn ipxe(app: &App, query: &str) -> Reply {
    let mut mac = None;
    let mut uuid = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "mac" if !v.is_empty() => match parse_mac(&v) {
                Some(m) => mac = Some(m),
                None => return Reply::error(400, Some("mac"), "mac: not a MAC address"),
            },
            "uuid" if !v.is_empty() => match parse_uuid(&v) {
                Some(u) => uuid = Some(u),
                None => return Reply::error(400, Some("uuid"), "uuid: not a UUID"),
            },
            _ => {}
        }
    }
    let s = app.store.borrow();
    let by_uuid = uuid.and_then(|u| boot::find_machine(&s, &boot::ConfigName::Uuid(u)));
    let by_mac = mac.and_then(|m| boot::find_machine(&s, &boot::ConfigName::Mac(m)));
    let m = by_uuid.or(by_mac);
    match m {
        Some(m) => app.event_at(
            log::Level::Info,
            m.id,
            EventKind::Http,
            "iPXE script fetched",
        ),
        None => crate::boot_log!(
            log::Level::Info,
            "iPXE script for unknown machine mac={:?} uuid={:?}: default",
            mac.map(|m| crate::model::format_mac(&m, ":")),
            uuid.map(|u| format_uuid(&u))
        ),
    }
    Reply::bytes(
        200,
        "text/plain; charset=utf-8",
        boot::ipxe_script(&s, &app.urls, app.default_boot(), m).into_bytes(),
    )
}

/// A file under `root` (canonical), streamed; opened through
/// [`crate::fsroot::open_regular`] off the executor (an open is still a
/// system call that can wait on the disk). A missing name is a 404; any
/// other refusal (a FIFO, device or directory, a symlink out of the root,
/// a bad name) is a 403 whose body gives a short reason without paths,
/// and whose full reason goes to the log. `what` names the tree in the log.
async fn serve_file(
    root: Option<&Path>,
    segments: &[&str],
    what: &str,
    peer: std::net::IpAddr,
) -> Reply {
    let not_found = || Reply::error(404, None, "no such file");
    let Some(root) = root else { return not_found() };
    let opened = {
        let root = root.to_path_buf();
        let components: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
        smol::unblock(move || crate::fsroot::open_regular(&root, &components)).await
    };
    let (file, len) = match opened {
        Ok(f) => f,
        Err(Refusal::NotFound) => return not_found(),
        Err(e) => {
            crate::boot_log!(
                log::Level::Warn,
                "http: {peer}: GET /{what}/{} refused: {e}",
                segments.join("/")
            );
            return Reply::error(403, None, e.public_reason());
        }
    };
    let ct = if segments
        .last()
        .is_some_and(|n| n.ends_with(".ipxe") || n.ends_with(".cfg"))
    {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    Reply {
        status: 200,
        content_type: ct,
        body: Body::File {
            file: Arc::new(file),
            len,
        },
        header: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::Urls;
    use crate::config::Config;
    use crate::store::Store;
    use std::collections::BTreeSet;

    const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];

    /// An app with an empty in-memory store. The requests below carry a
    /// body that is neither JSON nor UTF-8, so no write reaches the disk.
    fn app() -> App {
        App::new(
            Config::default(),
            Urls::new(std::net::Ipv4Addr::LOCALHOST, 9090),
            Store::default(),
        )
    }

    /// A concrete path for a pattern, as the router sees it.
    fn sample(pattern: &str) -> String {
        pattern
            .replace("{name}", "sample")
            .replace("{id}", "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69")
            .replace("{file}", "default")
            .replace("{path}", "dir/file.bin")
    }

    fn segments(path: &str) -> Vec<String> {
        path.split('/').skip(1).map(str::to_string).collect()
    }

    fn call(app: &App, method: &str, path: &str) -> Reply {
        let req = Req {
            method,
            segments: segments(path),
            query: "",
            body: b"\xff{",
            api_right: true,
            peer: std::net::Ipv4Addr::LOCALHOST.into(),
            accept: None,
        };
        smol::block_on(handle(app, &req))
    }

    fn is_unknown_route(r: &Reply) -> bool {
        let Body::Bytes(b) = &r.body else {
            return false;
        };
        let v: serde_json::Value = serde_json::from_slice(b).unwrap_or_default();
        r.status == 404 && v["error"] == UNKNOWN_ROUTE
    }

    fn patterns() -> BTreeSet<&'static str> {
        ROUTES.iter().map(|(_, p)| *p).collect()
    }

    #[test]
    fn every_listed_route_answers() {
        let app = app();
        for (method, pattern) in ROUTES {
            let path = sample(pattern);
            let r = call(&app, method, &path);
            assert!(
                r.status != 405 && !is_unknown_route(&r) && r.status != 500,
                "{method} {path} (ROUTES entry {pattern}) answered {}",
                r.status
            );
            assert_ne!(route_label(&segments(&path)), "other", "{pattern}");
        }
    }

    #[test]
    fn methods_not_listed_are_refused_and_allow_agrees() {
        let app = app();
        for pattern in patterns() {
            let listed: BTreeSet<&str> = ROUTES
                .iter()
                .filter(|(_, p)| *p == pattern)
                .map(|(m, _)| *m)
                .collect();
            let path = sample(pattern);
            for method in METHODS.iter().filter(|m| !listed.contains(*m)) {
                let r = call(&app, method, &path);
                assert!(
                    r.status == 405 || is_unknown_route(&r),
                    "{method} {path} is not in ROUTES but answered {}",
                    r.status
                );
                if let Some(("Allow", allow)) = r.header.as_ref().map(|(k, v)| (*k, v)) {
                    let allow: BTreeSet<&str> = allow.split(", ").collect();
                    assert_eq!(allow, listed, "Allow of {pattern} vs ROUTES");
                }
            }
        }
    }

    #[test]
    fn paths_outside_the_table_are_unknown() {
        let app = app();
        for path in [
            "/nope",
            "/health/x",
            "/bootaction/a/b",
            "/pxeboot/42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69/nope",
            "/kickstart/a/b",
            "/openapi.json/x",
        ] {
            let segs = segments(path);
            let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
            assert!(
                !ROUTES.iter().any(|(_, p)| pattern_matches(p, &segs)),
                "{path} matches the table"
            );
            for method in METHODS {
                let r = call(&app, method, path);
                assert!(is_unknown_route(&r), "{method} {path}: {}", r.status);
            }
        }
    }

    #[test]
    fn patterns_match_segments() {
        let m = |p: &str, path: &str| {
            let segs = segments(path);
            let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
            pattern_matches(p, &segs)
        };
        assert!(m("/", "/"));
        assert!(!m("/", "/health"));
        assert!(m("/bootaction", "/bootaction/"));
        assert!(m("/pxelinux/", "/pxelinux"));
        assert!(m("/bootaction/{name}", "/bootaction/x"));
        assert!(!m("/bootaction/{name}", "/bootaction/x/y"));
        assert!(m("/pxeboot/{id}/done", "/pxeboot/x/done"));
        assert!(!m("/pxeboot/{id}/done", "/pxeboot/x/events"));
        assert!(m("/images/{path}", "/images/a/b/c"));
        assert!(m("/images/{path}", "/images/a"));
        assert!(!m("/images/{path}", "/images/"));
        assert!(!m("/images/{path}", "/localrepo/a"));
    }

    #[test]
    fn served_document_is_the_source_without_whitespace() {
        let source = include_str!("../../api/openapi.json");
        let parse = |s| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(parse(OPENAPI_JSON), parse(source));
        assert!(!OPENAPI_JSON.contains('\n'));
        assert!(OPENAPI_JSON.len() < source.len());
    }

    #[test]
    fn document_paths_are_the_table() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        let table: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(table.len(), ROUTES.len(), "ROUTES has duplicates");
        let missing: Vec<_> = table.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&table).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "not documented: {missing:?}; documented but not routed: {extra:?}"
        );
    }

    #[test]
    fn unlisted_success_is_a_500_in_debug_builds() {
        let req = Req {
            method: "GET",
            segments: segments("/not-a-route"),
            query: "",
            body: b"",
            api_right: false,
            peer: std::net::Ipv4Addr::LOCALHOST.into(),
            accept: None,
        };
        let r = listed_or_500(&req, Reply::text(200, "hi"));
        assert_eq!(r.status, 500);
        let r = listed_or_500(&req, Reply::error(404, None, UNKNOWN_ROUTE));
        assert_eq!(r.status, 404);
        let req = Req {
            segments: segments("/health"),
            ..req
        };
        assert_eq!(listed_or_500(&req, Reply::text(200, "hi")).status, 200);
    }
}
