//! The HTTP API and boot endpoints: one small function per resource.
//!
//! Layer: service. [`handle`] takes a parsed request (method, decoded path
//! segments, query, body, whether the caller may write) and returns a
//! [`Reply`]; it does not know about sockets, which keeps it testable.
//! Routes (JSON unless noted; writes need the bearer token, or loopback
//! when no token is configured):
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
//! GET  /leases
//! ```

use super::reply::{Body, Reply};
use crate::app::{App, AppError};
use crate::boot::{self, installer, kickstart};
use crate::model::validate::check_token;
use crate::model::{
    BootAction, BootActionBody, EventKind, Machine, MachineBody, MachineId, MachineState,
    format_uuid, parse_mac, parse_uuid,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A request as the router sees it.
pub struct Req<'a> {
    pub method: &'a str,
    /// Percent-decoded path segments (no empty ones except a trailing `""`
    /// when the path ends in `/`).
    pub segments: Vec<String>,
    pub query: &'a str,
    pub body: &'a [u8],
    /// The caller presented the token (or is on loopback with none set).
    pub may_write: bool,
    /// The caller's address (file downloads become events of its machine).
    pub peer: std::net::IpAddr,
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

fn forbidden_write() -> Reply {
    Reply::error(401, None, "this change needs `Authorization: Bearer <token>` (or, with no token configured, a request from loopback)")
        .with_header("WWW-Authenticate", "Bearer realm=\"gopxe\"".into())
}

fn machine_json(app: &App, m: &Machine) -> serde_json::Value {
    let s = |a: Option<std::net::Ipv4Addr>| a.map(|a| a.to_string());
    json!({
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
    })
}

fn parse_id(s: &str) -> Result<MachineId, Reply> {
    s.parse::<MachineId>()
        .map_err(|e| Reply::error(400, Some("id"), &e.to_string()))
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
        ["images", ..] => "/images/",
        ["localrepo", ..] => "/localrepo/",
        _ => "other",
    }
}

/// Routes one request and counts it.
pub async fn handle(app: &App, req: &Req<'_>) -> Reply {
    let reply = route(app, req).await;
    app.metrics
        .http_request(route_label(&req.segments), reply.status);
    reply
}

async fn route(app: &App, req: &Req<'_>) -> Reply {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let write = !matches!(req.method, "GET" | "HEAD");
    if write && !req.may_write && !matches!(segs.as_slice(), ["pxeboot", _, "done"]) {
        return forbidden_write();
    }
    match segs.as_slice() {
        [] | [""] => Reply::json(
            200,
            &json!({"service": "gopxe", "health": "/health", "docs": "see README"}),
        ),
        ["health"] => health(app),
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
            "GET" => kickstart_query(app, req.query).await,
            _ => method_not_allowed("GET"),
        },
        ["kickstart", id] => match req.method {
            "GET" => kickstart_by_id(app, id).await,
            _ => method_not_allowed("GET"),
        },
        ["preseed", id] => match req.method {
            "GET" => answer_file(app, id, "preseed").await,
            _ => method_not_allowed("GET"),
        },
        [
            "cloud-init",
            id,
            file @ ("user-data" | "meta-data" | "vendor-data"),
        ] => match req.method {
            "GET" => answer_file(app, id, file).await,
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
            let reply = serve_file(app.images_root.as_deref(), rest).await;
            file_event(app, req, &reply);
            reply
        }
        ["localrepo", rest @ ..] if req.method == "GET" => {
            serve_file(app.localrepo_root.as_deref(), rest).await
        }
        _ => Reply::error(404, None, "no such resource"),
    }
}

/// A boot file fetched over HTTP by a known machine is an event on it.
fn file_event(app: &App, req: &Req<'_>, reply: &Reply) {
    if let (200, Body::File { len, .. }) = (reply.status, &reply.body)
        && let Some(id) = app.machine_at(req.peer)
    {
        let path = req.segments.join("/");
        app.event(
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
    let text = app.metrics.render(&states, app.started.elapsed().as_secs());
    Reply::bytes(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        text.into_bytes(),
    )
}

fn health(app: &App) -> Reply {
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
    let (state, kind, detail) = match (req.method, action) {
        ("GET", "events") => {
            if !app.store.borrow().machines.contains_key(&id) {
                return Reply::error(404, None, &format!("no machine `{id}`"));
            }
            return Reply::json(200, &app.events_of(&id));
        }
        ("POST", "done") => (
            MachineState::Installed,
            EventKind::Done,
            "installer reported done",
        ),
        ("POST", "reinstall") => (
            MachineState::Install,
            EventKind::Reinstall,
            "reinstall requested",
        ),
        (_, "events") => return method_not_allowed("GET"),
        (_, "done" | "reinstall") => return method_not_allowed("POST"),
        _ => return Reply::error(404, None, "no such resource"),
    };
    match app.set_state(&id, state, kind, detail).await {
        Ok(m) => Reply::json(200, &machine_json(app, &m)),
        Err(e) => app_error(e),
    }
}

async fn render_kickstart(app: &App, p: &kickstart::KsParams, id: Option<MachineId>) -> Reply {
    let server = app.urls.base.clone();
    let done = id.map(|i| app.urls.done(&i));
    let ctx = kickstart::KsContext::new(p, app.config.repo_url.as_deref(), &server, done);
    let text = if p.name == "default" {
        kickstart::render_default(&ctx)
    } else {
        let src = app.store.borrow().templates.get(&p.name).cloned();
        match src {
            Some(src) => match kickstart::render_user(&src, &ctx) {
                Ok(t) => t,
                Err(e) => {
                    return Reply::error(
                        500,
                        Some("name"),
                        &format!("template `{}` failed: {e}", p.name),
                    );
                }
            },
            None => {
                return Reply::error(
                    404,
                    Some("name"),
                    &format!("no kickstart template `{}`", p.name),
                );
            }
        }
    };
    if let Some(id) = id {
        let detail = format!("kickstart `{}` fetched ({} bytes)", p.name, text.len());
        if let Err(r) = note_fetched(app, id, detail).await {
            return r;
        }
    }
    Reply::text(200, text)
}

/// An installer fetched its answers: `install` becomes `installing` (durably,
/// with the event); later fetches are events only. The kickstart, the
/// preseed and the cloud-init user-data all come through here.
async fn note_fetched(app: &App, id: MachineId, detail: String) -> Result<(), Reply> {
    let installing = app
        .store
        .borrow()
        .machines
        .get(&id)
        .is_some_and(|m| m.state == MachineState::Install);
    if installing {
        app.set_state(&id, MachineState::Installing, EventKind::Kickstart, &detail)
            .await
            .map_err(app_error)?;
    } else {
        app.event_at(log::Level::Debug, id, EventKind::Kickstart, detail);
    }
    Ok(())
}

/// `/preseed/{id}` and `/cloud-init/{id}/{file}`: a machine's answer files
/// for debian-installer and Ubuntu autoinstall, whatever its boot action's
/// installer (the action gives the disk layout).
async fn answer_file(app: &App, id: &str, file: &str) -> Reply {
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
    let t = installer::Target::new(&m, storage, &app.urls, app.learned_mac(&id));
    let settings = &app.config.installer;
    let text = match file {
        "preseed" => installer::render_preseed(&t, settings),
        "user-data" => installer::render_user_data(&t, settings),
        "meta-data" => installer::render_meta_data(&t),
        _ => String::new(),
    };
    if matches!(file, "preseed" | "user-data") {
        let detail = format!("{file} fetched ({} bytes)", text.len());
        if let Err(r) = note_fetched(app, id, detail).await {
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

async fn kickstart_query(app: &App, query: &str) -> Reply {
    let p = match kickstart::KsParams::from_query(query) {
        Ok(p) => p,
        Err(f) => return Reply::error(400, Some(&f.field), &f.to_string()),
    };
    let id = app.machine_for_kickstart(p.fqdn.as_deref(), p.ip);
    render_kickstart(app, &p, id).await
}

async fn kickstart_by_id(app: &App, id: &str) -> Reply {
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
    render_kickstart(app, &p, Some(id)).await
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
        "GET" => match app.store.borrow().templates.get(&name) {
            Some(t) => Reply::text(200, t.clone()),
            None => Reply::error(404, None, &format!("no kickstart template `{name}`")),
        },
        "PUT" | "POST" => {
            let text = match std::str::from_utf8(req.body) {
                Ok(t) => t.to_string(),
                Err(_) => return Reply::error(400, Some("body"), "a template must be UTF-8 text"),
            };
            if let Err(e) = kickstart::check_template(&text) {
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
        _ => method_not_allowed("GET, PUT, DELETE"),
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
        Some(m) => app.event(m.id, EventKind::Http, "iPXE script fetched"),
        None => log::info!(
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

/// Resolves decoded segments under `root`, refusing anything that leaves it
/// (`..`, `.`, NUL, backslashes, and symlinks resolving outside the root).
pub fn resolve_under(root: &Path, segments: &[&str]) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    for s in segments {
        if s.is_empty() || *s == "." || *s == ".." || s.contains(['\0', '\\', '/']) || s.len() > 255
        {
            return None;
        }
        p.push(s);
    }
    let real = p.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
}

async fn serve_file(root: Option<&Path>, segments: &[&str]) -> Reply {
    let not_found = || Reply::error(404, None, "no such file");
    let Some(root) = root else { return not_found() };
    let Some(path) = resolve_under(root, segments) else {
        return not_found();
    };
    let opened = smol::unblock(move || {
        let f = std::fs::File::open(&path)?;
        let meta = f.metadata()?;
        Ok::<_, std::io::Error>((f, meta))
    })
    .await;
    match opened {
        Ok((f, meta)) if meta.is_file() => {
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
                    file: Arc::new(f),
                    len: meta.len(),
                },
                header: None,
            }
        }
        _ => not_found(),
    }
}
