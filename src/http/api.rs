//! The HTTP API and boot endpoints: one small function per resource.
//!
//! Layer: service. [`handle`] takes a parsed request (method, decoded path
//! segments, query, body, whether the caller holds the API right) and returns a
//! [`Reply`]; it does not know about sockets, which keeps it testable.
//! Every request has passed `super::guard` first, so a write here holds
//! the API right or proves its own. Answers are JSON unless the route's
//! line in the table says otherwise.
//!
//! The routes are the variants of [`Route`] (`super::route`, the pure
//! routing layer, whose table is the list of paths and methods; the
//! document at `/openapi.json` describes them): each is declared once, and
//! [`handle`] parses the path into one, answers 405 (with `Allow` from the
//! route's methods) to any other method, counts the request under the
//! route's pattern (`other` for a path no route knows), and [`dispatch`]es
//! on the variant, one arm per route with no catch-all, so a new variant
//! does not compile until it has a handler. Adding a route is its line in
//! the `routes!` table, its arm in [`dispatch`] and its operation in
//! `api/openapi.json`; two checks keep the document in step: the unit tests
//! below compare [`Route::operations`] with the document's paths and call
//! every operation, and `tests/openapi.rs` does both against the real
//! server, with the document's examples.

use super::reply::{Body, Reply};
use super::route::{self, Route};
use super::status::FormAction;
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
use std::collections::HashMap;
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

pub(super) fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
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

pub(super) fn app_error(e: AppError) -> Reply {
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

fn needs_token(app: &App, what: &str) -> Reply {
    let token = app.config.api_token.is_some();
    Reply::error(401, None, &super::guard::needs_api_right(what, token))
        .with_header("WWW-Authenticate", "Bearer realm=\"gopxe\"".into())
}

/// A machine record as the API shows it. `sharing`: the other machines
/// whose record names its static address ([`App::sharing_address`]).
pub(super) fn machine_json(app: &App, m: &Machine, sharing: &[MachineId]) -> serde_json::Value {
    let s = |a: Option<std::net::Ipv4Addr>| a.map(|a| a.to_string());
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
        "last_event": app.last_event(&m.id),
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

/// The OpenAPI 3.1 description of every [`Route`], served at
/// `/openapi.json`: `api/openapi.json` without its indentation (see
/// `build.rs`), ending in one newline like every JSON body.
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The message of the 404 for a path no route knows (tests tell it apart
/// from a 404 for a missing record).
pub const UNKNOWN_ROUTE: &str = "no such resource";

/// Routes one request and counts it under its route's pattern.
pub async fn handle(app: &App, req: &Req<'_>) -> Reply {
    let found = Route::parse(&req.segments);
    let reply = match &found {
        None if route::is_form_path(&req.segments) => {
            super::status::message(404, "Not found", "no such page")
        }
        None => Reply::error(404, None, UNKNOWN_ROUTE),
        Some((r, _)) if !r.allows(req.method) => method_not_allowed(*r),
        Some((r, c)) => dispatch(app, req, *r, c.param, c.tail).await,
    };
    let label = found.map_or(route::OTHER, |(r, _)| r.label());
    app.metrics.http_request(label, reply.status);
    reply
}

/// The 405 for a method `r` does not answer, with `Allow` from its methods.
fn method_not_allowed(r: Route) -> Reply {
    let allow = r.allow();
    let reply = if r.is_form() {
        super::status::message(405, "Method not allowed", "this address takes a form POST")
    } else {
        Reply::error(
            405,
            None,
            &format!("method not allowed here; allowed: {allow}"),
        )
    };
    reply.with_header("Allow", allow)
}

/// One handler per route; `req.method` is one of `r`'s methods. `param`
/// is the pattern's one-segment parameter, `tail` what a `{path}` matched.
async fn dispatch(app: &App, req: &Req<'_>, r: Route, param: &str, tail: &[String]) -> Reply {
    match r {
        Route::Root if super::status::wants_json(req.accept) => Reply::json(
            200,
            &json!({"service": "gopxe", "health": "/health", "docs": "/openapi.json"}),
        ),
        Route::Root => super::status::page(app),
        Route::Health => health(app),
        Route::Metrics => metrics(app),
        Route::OpenApi => Reply::bytes(200, "application/json", OPENAPI_JSON.as_bytes().to_vec()),
        Route::BootActions => {
            let s = app.records();
            Reply::json(200, &s.bootactions.values().collect::<Vec<_>>())
        }
        Route::BootAction => bootaction(app, req, param).await,
        Route::Machines => match req.method {
            "POST" => put_machine(app, req, None, true).await,
            _ => {
                let s = app.records();
                // The static addresses, gathered once: asking for each
                // machine would scan every record for every record.
                let mut by_ip: HashMap<std::net::Ipv4Addr, Vec<MachineId>> = HashMap::new();
                for m in s.machines.values() {
                    if let Some(ip) = m.ip {
                        by_ip.entry(ip).or_default().push(m.id);
                    }
                }
                let sharing = |m: &Machine| -> Vec<MachineId> {
                    m.ip.and_then(|ip| by_ip.get(&ip))
                        .map(|ids| ids.iter().filter(|o| **o != m.id).copied().collect())
                        .unwrap_or_default()
                };
                Reply::json(
                    200,
                    &s.machines
                        .values()
                        .map(|m| machine_json(app, m, &sharing(m)))
                        .collect::<Vec<_>>(),
                )
            }
        },
        Route::Machine => machine(app, req, param).await,
        Route::MachineDone => machine_done(app, req, param).await,
        Route::MachineReinstall => machine_reinstall(app, param).await,
        Route::MachineEvents => machine_events(app, param),
        Route::PxelinuxNames | Route::PxelinuxCfgNames => {
            Reply::json(200, &boot::config_names(&app.records()))
        }
        Route::Pxelinux | Route::PxelinuxCfg => pxelinux(app, param),
        Route::KickstartQuery => kickstart_query(app, req).await,
        Route::Kickstart => kickstart_by_id(app, req, param).await,
        Route::Preseed => answer_file(app, req, param, "preseed").await,
        Route::CloudInitUserData => answer_file(app, req, param, "user-data").await,
        Route::CloudInitMetaData => answer_file(app, req, param, "meta-data").await,
        Route::CloudInitVendorData => answer_file(app, req, param, "vendor-data").await,
        Route::Templates => Reply::json(200, &app.records().templates.keys().collect::<Vec<_>>()),
        Route::Template => kstemplate(app, req, param).await,
        Route::BootIpxe => ipxe(app, req),
        Route::Leases => {
            let leases = app.dhcp_state().map(|d| d.snapshot()).unwrap_or_default();
            Reply::json(200, &leases)
        }
        Route::Images => {
            // Generated boot configs first, as over TFTP.
            let fetch = crate::app::Fetch::Http {
                api_right: req.api_right,
                preview: wants_preview(req.query),
            };
            if let Some(text) = app.boot_file(&tail.join("/"), req.peer, fetch) {
                return Reply::bytes(200, "text/plain; charset=utf-8", text);
            }
            let reply = serve_file(app.images_root.as_deref(), tail, "images", req.peer).await;
            file_event(app, req, &reply);
            reply
        }
        Route::LocalRepo => {
            serve_file(app.localrepo_root.as_deref(), tail, "localrepo", req.peer).await
        }
        Route::UiReinstall => super::status::ui(app, req, param, FormAction::Reinstall).await,
        Route::UiDelete => super::status::ui(app, req, param, FormAction::Delete).await,
        Route::Discovered => super::discovery::inbox(app, req, None).await,
        Route::DiscoveredOne => super::discovery::inbox(app, req, Some(param)).await,
        Route::DiscoveredAdopt => super::discovery::adopt(app, req, param).await,
        Route::UiAdopt => super::status::ui_adopt(app, req, param).await,
    }
}

fn pxelinux(app: &App, file: &str) -> Reply {
    let s = app.records();
    match boot::config_for(&s, &app.urls, app.default_boot(), file) {
        Some(text) => Reply::text(200, text),
        None => Reply::error(
            404,
            None,
            &format!("no pxelinux config `{}`", file.escape_debug()),
        ),
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
    let s = app.records();
    let count = |st: MachineState| s.machines.values().filter(|m| m.state == st).count();
    let states = MachineState::ALL.map(|st| (st.as_str(), count(st)));
    let mut text = app.metrics.render(
        &states,
        app.started.elapsed().as_secs(),
        crate::metrics::LogCounts::now(),
    );
    text.push_str(&crate::discovered::metrics_text(&app.discovered.borrow()));
    Reply::bytes(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        text.into_bytes(),
    )
}

fn health(app: &App) -> Reply {
    let warnings = app.loader_check().warnings(&app.config.images);
    let s = app.records();
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
        "GET" => match app.records().bootactions.get(name) {
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
        _ => method_not_allowed(Route::BootAction),
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
            let s = app.records();
            match s.machines.get(&id) {
                Some(m) => Reply::json(
                    if created || post { 201 } else { 200 },
                    &machine_json(app, m, &app.sharing_address(m)),
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
        "GET" => match app.records().machines.get(&id) {
            Some(m) => Reply::json(200, &machine_json(app, m, &app.sharing_address(m))),
            None => Reply::error(404, None, &format!("no machine `{id}`")),
        },
        "PUT" => put_machine(app, req, Some(id), false).await,
        "DELETE" => match app.delete_machine(&id).await {
            Ok(()) => Reply::no_content(),
            Err(e) => app_error(e),
        },
        _ => method_not_allowed(Route::Machine),
    }
}

fn machine_events(app: &App, id: &str) -> Reply {
    let id = match parse_id(id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    if !app.records().machines.contains_key(&id) {
        return Reply::error(404, None, &format!("no machine `{id}`"));
    }
    Reply::json(200, &app.events_of(&id))
}

async fn machine_done(app: &App, req: &Req<'_>, id: &str) -> Reply {
    let id = match parse_id(id) {
        Ok(i) => i,
        Err(r) => return r,
    };
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
    machine_reply(app, app.done(&id, proof).await)
}

async fn machine_reinstall(app: &App, id: &str) -> Reply {
    let id = match parse_id(id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    machine_reply(app, app.reinstall(&id, "reinstall requested").await)
}

fn machine_reply(app: &App, result: Result<Machine, AppError>) -> Reply {
    match result {
        Ok(m) => Reply::json(200, &machine_json(app, &m, &app.sharing_address(&m))),
        Err(e) => app_error(e),
    }
}

/// Who fetched a machine's answer file, which decides what it gets.
/// Only the machine itself moves its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    /// The machine itself, from its recorded or DHCP address: the fetch
    /// moves `install` to `installing`, and the call-back URL carries the
    /// install's key.
    Machine,
    /// The admin (API right) from another address, or anyone at the
    /// machine's address with `?preview=1`: what the machine gets, key
    /// included; no change, nothing recorded.
    Admin,
    /// Anyone else: no key, no change. Recorded on the machine as a
    /// preview, unless it asked for one (`?preview=1`).
    Stranger { asked: bool },
}

/// Whether the query asks for a preview: `preview` with any value but
/// empty, `0` or `false` (a misspelt value errs on the side of changing
/// nothing).
fn wants_preview(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "preview" && !matches!(&*v, "" | "0" | "false"))
}

fn reader_of(app: &App, req: &Req<'_>, id: &MachineId) -> Reader {
    let preview = wants_preview(req.query);
    match (app.is_machine_address(id, req.peer), preview) {
        (true, false) => Reader::Machine,
        (true, true) => Reader::Admin,
        (false, _) if req.api_right => Reader::Admin,
        (false, asked) => Reader::Stranger { asked },
    }
}

/// The `done` URL a reader gets: with the install's key for the machine
/// and the admin, with `key=preview` (which no call-back accepts) for
/// anyone else.
fn done_url_for(app: &App, id: &MachineId, reader: Reader) -> String {
    let key = app
        .records()
        .machines
        .get(id)
        .and_then(|m| m.install_key)
        .map(|k| k.hex());
    match reader {
        Reader::Machine | Reader::Admin => app.urls.done(id, key.as_deref()),
        Reader::Stranger { .. } => app.urls.done(id, Some("preview")),
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
        let src = app.records().templates.get(&ctx.name).cloned();
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
/// fetches are events only. Anyone else's fetch changes nothing: the
/// admin's records nothing, a stranger's is recorded as a preview. The kickstart, the preseed and the cloud-init
/// user-data all come through here.
async fn note_fetched(
    app: &App,
    req: &Req<'_>,
    id: MachineId,
    reader: Reader,
    kind: EventKind,
    detail: String,
) -> Result<(), Reply> {
    let asked = match reader {
        Reader::Machine => {
            // Its installer runs there: its syslog lines are its own.
            app.note_client(req.peer, id);
            return app
                .answers_fetched(&id, kind, &detail)
                .await
                .map(|_| ())
                .map_err(app_error);
        }
        Reader::Admin => {
            log::debug!(
                "machine {id}: {detail} by the admin from {}: a look, nothing recorded",
                req.peer
            );
            return Ok(());
        }
        Reader::Stranger { asked } => asked,
    };
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
    let detail = format!(
        "preview: {detail} from {}, not the machine's address ({known}); state unchanged",
        req.peer
    );
    // A fetch from elsewhere may be an installer at an address gopxe does
    // not know: worth a line on the machine, unless it asked for a preview.
    if asked {
        log::info!("machine {id}: {detail}");
    } else {
        app.event_at(log::Level::Info, id, EventKind::Http, detail);
    }
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
        let s = app.records();
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
    let m = match app.records().machines.get(&id) {
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
        "GET" => match app.records().templates.get(&name) {
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
        _ => method_not_allowed(Route::Template),
    }
}

fn ipxe(app: &App, req: &Req<'_>) -> Reply {
    let mut mac = None;
    let mut uuid = None;
    for (k, v) in form_urlencoded::parse(req.query.as_bytes()) {
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
    let s = app.records();
    let by_uuid = uuid.and_then(|u| boot::find_machine(&s, &boot::ConfigName::Uuid(u)));
    let by_mac = mac.and_then(|m| boot::find_machine(&s, &boot::ConfigName::Mac(m)));
    let m = by_uuid.or(by_mac);
    let preview = wants_preview(req.query);
    match m {
        Some(m) if app.is_a_look(&m.id, req.peer, req.api_right, preview) => {
            log::debug!(
                "machine {}: iPXE script read by {}: a look, nothing recorded",
                m.id,
                req.peer
            );
        }
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
    segments: &[String],
    what: &str,
    peer: std::net::IpAddr,
) -> Reply {
    let not_found = || Reply::error(404, None, "no such file");
    let Some(root) = root else { return not_found() };
    let opened = {
        let root = root.to_path_buf();
        let components = segments.to_vec();
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
            .replace("{mac}", "52:54:00:12:34:56")
            .replace("{file}", "default")
            .replace("{path}", "dir/file.bin")
    }

    fn segments(path: &str) -> Vec<String> {
        path.split('/').skip(1).map(str::to_string).collect()
    }

    fn call_with(app: &App, method: &str, path: &str, accept: Option<&str>) -> Reply {
        let req = Req {
            method,
            segments: segments(path),
            query: "",
            body: b"\xff{",
            api_right: true,
            peer: std::net::Ipv4Addr::LOCALHOST.into(),
            accept,
        };
        smol::block_on(handle(app, &req))
    }

    fn call(app: &App, method: &str, path: &str) -> Reply {
        call_with(app, method, path, None)
    }

    fn body(r: &Reply) -> &[u8] {
        match &r.body {
            Body::Bytes(b) => b,
            Body::File { .. } => b"",
        }
    }

    fn is_unknown_route(r: &Reply) -> bool {
        let v: serde_json::Value = serde_json::from_slice(body(r)).unwrap_or_default();
        r.status == 404 && v["error"] == UNKNOWN_ROUTE
    }

    #[test]
    fn every_route_answers_its_methods() {
        let app = app();
        for (method, pattern) in Route::operations() {
            let path = sample(pattern);
            let r = call(&app, method, &path);
            assert!(
                r.status != 405 && !is_unknown_route(&r) && r.status != 500,
                "{method} {path} ({pattern}) answered {}",
                r.status
            );
        }
    }

    #[test]
    fn other_methods_are_405_with_allow_from_the_route() {
        let app = app();
        for r in Route::ALL {
            let path = sample(r.pattern());
            for method in METHODS.iter().filter(|m| !r.allows(m)) {
                let reply = call(&app, method, &path);
                assert_eq!(reply.status, 405, "{method} {path}");
                let allow = reply.header.as_ref().map(|(k, v)| (*k, v.as_str()));
                assert_eq!(
                    allow,
                    Some(("Allow", r.allow().as_str())),
                    "{method} {path}"
                );
                let html = reply.content_type.starts_with("text/html");
                assert_eq!(html, r.is_form(), "{method} {path}: a form answers HTML");
            }
        }
    }

    #[test]
    fn paths_no_route_knows_are_404() {
        let app = app();
        for path in [
            "/nope",
            "/health/x",
            "/health/",
            "/bootaction/a/b",
            "/pxeboot/42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69/nope",
            "/pxeboot/42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69/",
            "/kickstart/a/b",
            "/openapi.json/x",
            "/images",
        ] {
            for method in METHODS {
                let r = call(&app, method, path);
                assert!(is_unknown_route(&r), "{method} {path}: {}", r.status);
            }
        }
        // Under /ui/, the status page's own HTML message.
        let r = call(&app, "POST", "/ui/pxeboot/x/frobnicate");
        assert_eq!(r.status, 404);
        assert!(r.content_type.starts_with("text/html"));
    }

    #[test]
    fn requests_are_counted_under_their_pattern() {
        let app = app();
        let id = "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69";
        call(&app, "GET", &format!("/kickstart/{id}"));
        call(&app, "GET", "/pxelinux/01-aa-bb-cc-dd-ee-ff");
        call(&app, "GET", "/pxelinux.cfg/default");
        call(&app, "GET", "/kickstart/");
        call(&app, "PATCH", "/health");
        call(&app, "GET", "/no/such/path");
        call(&app, "GET", "/images/a/b");
        let text = app
            .metrics
            .render(&[], 0, crate::metrics::LogCounts::default());
        let count = |route: &str, status: &str| {
            let series =
                format!("gopxe_http_requests_total{{route=\"{route}\",status=\"{status}\"}} 1\n");
            assert!(text.contains(&series), "{series} in\n{text}");
        };
        count("/kickstart/{id}", "4xx");
        count("/pxelinux/{file}", "4xx");
        count("/pxelinux.cfg/{file}", "2xx");
        count("/kickstart/", "2xx");
        count("/health", "4xx");
        count("other", "4xx");
        count("/images/{path}", "4xx");
        assert!(!text.contains("no/such"), "no raw path in a label");
    }

    #[test]
    fn json_bodies_end_in_one_newline() {
        let app = app();
        let mut seen = 0;
        let mut check = |what: &str, r: &Reply| {
            let b = body(r);
            if !r.content_type.starts_with("application/json") || b.is_empty() {
                return;
            }
            assert!(
                b.ends_with(b"\n") && !b.ends_with(b"\n\n"),
                "{what} -> {}: {:?}",
                r.status,
                String::from_utf8_lossy(b)
            );
            assert!(
                serde_json::from_slice::<serde_json::Value>(b).is_ok(),
                "{what}"
            );
            seen += 1;
        };
        for (method, pattern) in Route::operations() {
            let path = sample(pattern);
            check(&path, &call(&app, method, &path));
            check(&path, &call(&app, "PATCH", &path));
        }
        check(
            "/ json",
            &call_with(&app, "GET", "/", Some("application/json")),
        );
        check("unknown", &call(&app, "GET", "/nope"));
        check("error", &Reply::error(400, Some("f"), "m"));
        check("list", &Reply::json(200, &[1, 2]));
        assert!(seen > 30, "{seen} JSON bodies checked");
    }

    #[test]
    fn served_document_is_the_source_without_whitespace() {
        let source = include_str!("../../api/openapi.json");
        let parse = |s| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(parse(OPENAPI_JSON), parse(source));
        let (doc, end) = OPENAPI_JSON.split_at(OPENAPI_JSON.len() - 1);
        assert_eq!(end, "\n", "ends in one newline");
        assert!(!doc.contains('\n'));
        assert!(OPENAPI_JSON.len() < source.len());
    }

    #[test]
    fn document_paths_are_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        let table: BTreeSet<(String, String)> = Route::operations()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(table.len(), Route::operations().count(), "duplicates");
        let missing: Vec<_> = table.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&table).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "not documented: {missing:?}; documented but not routed: {extra:?}"
        );
    }
}
