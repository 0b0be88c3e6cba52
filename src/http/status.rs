//! The status page at `/` and its two form actions.
//!
//! Layer: service (presentation). No RFC beyond HTML5 forms (HTML Living
//! Standard §4.10) and Fetch metadata (`Origin`, `Sec-Fetch-Site`). The
//! page is one server-rendered document from the compiled sailfish
//! template `templates/status.html.stpl`: inline CSS, no external assets,
//! readable without JavaScript (a `<noscript>` meta refresh reloads it
//! every 30 s); a small inline script refetches `/` every 3 s and swaps the
//! sections in place, keeping open timelines open, and pauses while a
//! token is being typed. Every value goes through `<%= %>`, which escapes
//! `& " ' < >`: machine ids, hostnames, menus, event details and log lines
//! are all untrusted. The page also sends a Content-Security-Policy that
//! allows only its own inline style and script, and `frame-ancestors
//! 'none'` so the action buttons cannot be framed (clickjacking).
//!
//! Sizes are bounded: at most [`MAX_MACHINES`] machines (most recently
//! active first, each with its bounded event log) and [`MAX_LEASES`]
//! leases; the rest is counted and pointed to in the JSON API.
//!
//! Actions are HTML form posts, `POST /ui/pxeboot/{id}/reinstall` and
//! `POST /ui/pxeboot/{id}/delete`. A browser form cannot send
//! `Authorization: Bearer`, so the same token is accepted as a form field
//! `token` (compared in constant time); the header still works, and with
//! no token configured a post from loopback is enough, as for the API.
//! Cross-site posts, posts that are not `application/x-www-form-urlencoded`
//! and a `Host` that is not the appliance's are refused before this module
//! sees them (`super::guard`, whose refusals for `/ui/` are this module's
//! message page): that stops another web site open in the admin's browser
//! from driving a token-less gopxe on loopback. Success answers `303 See Other` to `/` (the usual
//! post/redirect/get, so a reload does not post again); a refusal answers
//! a small HTML page with the reason and a link back. The JSON API and its
//! status codes are unchanged.

use super::api::Req;
use super::reply::Reply;
use crate::app::{App, AppError, now_ms};
use crate::logring::utc;
use crate::model::{MachineId, MachineState};
use sailfish::TemplateSimple;

/// Most machines listed on the page.
pub const MAX_MACHINES: usize = 500;
/// Most leases listed on the page.
pub const MAX_LEASES: usize = 1000;
/// Most discovered machines listed on the page.
pub const MAX_DISCOVERED: usize = 200;

const HTML: &str = "text/html; charset=utf-8";
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// One event line of a machine's timeline.
pub struct EventView {
    pub at: String,
    pub ago: String,
    pub kind: String,
    pub detail: String,
}

/// One machine row.
pub struct MachineView {
    pub id: String,
    pub hostname: String,
    pub state: &'static str,
    pub bootaction: String,
    pub address: String,
    pub last_seen: String,
    pub last_seen_at: String,
    /// The timeline starts open for the most recently active machine and
    /// while an install is under way.
    pub open: bool,
    pub events: Vec<EventView>,
}

/// One boot-action row.
pub struct ActionView {
    pub name: String,
    pub menu: String,
    pub loader: String,
    pub kernel: String,
    pub initrd: String,
    pub args: String,
    pub users: usize,
}

/// One lease row.
pub struct LeaseView {
    pub ip: String,
    pub mac: String,
    pub state: String,
    pub hostname: String,
    pub expires: String,
}

/// One discovered machine row, with its adopt form.
pub struct DiscoveredView {
    pub mac: String,
    /// The UUID as dmidecode shows it, and as option 97 carried it.
    pub uuid: String,
    pub uuid_wire: String,
    pub firmware: String,
    pub vendor_class: String,
    /// Relay, circuit id, remote id.
    pub relay: String,
    pub last_seen: String,
    pub last_seen_at: String,
    pub times_seen: u64,
}

/// Everything the page shows, already formatted.
#[derive(TemplateSimple)]
#[template(path = "status.html.stpl")]
pub struct StatusPage {
    pub version: &'static str,
    pub now: String,
    pub mode: String,
    pub advertise: String,
    /// `http 127.0.0.1:9090` ...: the bound sockets, or the configured
    /// addresses when none were noted (unit tests).
    pub listening: Vec<String>,
    /// What keeps machines from booting (missing boot loaders).
    pub warnings: Vec<String>,
    pub uptime: String,
    pub token_required: bool,
    pub machine_count: usize,
    pub state_counts: Vec<(&'static str, usize)>,
    pub machines: Vec<MachineView>,
    pub hidden_machines: usize,
    pub actions: Vec<ActionView>,
    pub dhcp_running: bool,
    pub leases: Vec<LeaseView>,
    pub hidden_leases: usize,
    pub log: Vec<String>,
    pub discovered: Vec<DiscoveredView>,
    pub hidden_discovered: usize,
}

/// A refusal or error shown to a person.
#[derive(TemplateSimple)]
#[template(path = "status_msg.html.stpl")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

/// `3 s ago`, `5 min ago`, `2 h ago`, `4 d ago`.
pub fn ago(now_ms: u64, at_ms: u64) -> String {
    let s = now_ms.saturating_sub(at_ms) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// `1d 2h 3m 4s`, leading zero units left out.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

fn lower_debug(v: impl std::fmt::Debug) -> String {
    format!("{v:?}").to_lowercase()
}

fn or_dash(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "—".to_string(), |v| v.to_string())
}

/// Gathers the page's data from the running app.
pub fn page_data(app: &App, log: Vec<String>, now_ms: u64) -> StatusPage {
    let store = app.records();
    let seen = app.seen_addresses();
    let last_at = |id: &MachineId| app.last_event_at(id);

    let mut order: Vec<_> = store.machines.values().collect();
    // Most recently active first; then by id for a stable page.
    order.sort_unstable_by(|a, b| {
        let (ta, tb) = (
            last_at(&a.id).unwrap_or(a.updated_ms),
            last_at(&b.id).unwrap_or(b.updated_ms),
        );
        tb.cmp(&ta)
            .then_with(|| a.id.canonical().cmp(&b.id.canonical()))
    });
    let machines = order
        .iter()
        .take(MAX_MACHINES)
        .enumerate()
        .map(|(i, m)| {
            let evs: Vec<EventView> = app
                .events_of(&m.id)
                .into_iter()
                .map(|e| EventView {
                    at: utc(e.at_ms),
                    ago: ago(now_ms, e.at_ms),
                    kind: lower_debug(e.kind),
                    detail: e.detail,
                })
                .collect();
            let address = match (m.ip, seen.get(&m.id)) {
                (Some(ip), _) => ip.to_string(),
                (None, Some(ip)) => format!("{ip} (seen)"),
                (None, None) => "—".into(),
            };
            let (last_seen, last_seen_at) = match last_at(&m.id) {
                Some(t) => (ago(now_ms, t), format!("{} UTC", utc(t))),
                None => ("never".into(), String::new()),
            };
            MachineView {
                id: m.id.canonical(),
                hostname: or_dash(m.hostname.as_deref()),
                state: m.state.as_str(),
                bootaction: m.bootaction.clone(),
                address,
                last_seen,
                last_seen_at,
                open: i == 0 || matches!(m.state, MachineState::Installing | MachineState::Failed),
                events: evs,
            }
        })
        .collect();

    let actions = store
        .bootactions
        .values()
        .map(|a| {
            let args = [
                a.ksdevice.as_ref().map(|v| format!("ksdevice={v}")),
                a.ip.as_ref().map(|v| format!("ip={v}")),
                a.load_ramdisk.as_ref().map(|v| format!("load_ramdisk={v}")),
                a.append.clone(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
            ActionView {
                name: a.name.clone(),
                menu: a.menu.clone(),
                loader: a.loader.as_str().to_string(),
                kernel: a.kernel.clone(),
                initrd: or_dash(a.initrd.as_deref()),
                args,
                users: store
                    .machines
                    .values()
                    .filter(|m| m.bootaction == a.name)
                    .count(),
            }
        })
        .collect();

    let dhcp = app.dhcp_state();
    let all_leases = dhcp.as_ref().map(|d| d.snapshot()).unwrap_or_default();
    let leases = all_leases
        .iter()
        .take(MAX_LEASES)
        .map(|l| LeaseView {
            ip: l.ip.to_string(),
            mac: l.mac.clone(),
            state: lower_debug(l.state),
            hostname: or_dash(l.hostname.as_deref()),
            expires: l
                .expires
                .map_or_else(|| "never".into(), |s| utc(s.saturating_mul(1000))),
        })
        .collect();

    let states = MachineState::ALL;
    let (discovered, hidden_discovered) = discovered_rows(app, now_ms);
    let c = &app.config;
    let mut listening = app.listening();
    if listening.is_empty() {
        listening.push(format!("http {} (configured)", c.http_listen));
    }
    StatusPage {
        version: env!("CARGO_PKG_VERSION"),
        now: utc(now_ms),
        mode: lower_debug(c.dhcp_mode),
        advertise: app.urls.base.clone(),
        listening,
        warnings: app.loader_check().warnings(&c.images),
        uptime: uptime(app.started.elapsed().as_secs()),
        token_required: c.api_token.is_some(),
        machine_count: store.machines.len(),
        state_counts: states
            .iter()
            .map(|st| {
                let n = store.machines.values().filter(|m| m.state == *st).count();
                (st.as_str(), n)
            })
            .collect(),
        hidden_machines: store.machines.len().saturating_sub(MAX_MACHINES),
        machines,
        actions,
        dhcp_running: dhcp.is_some(),
        hidden_leases: all_leases.len().saturating_sub(MAX_LEASES),
        leases,
        log,
        discovered,
        hidden_discovered,
    }
}

/// The discovered machines, most recently seen first, and how many more.
fn discovered_rows(app: &App, now_ms: u64) -> (Vec<DiscoveredView>, usize) {
    use crate::discovered::{id_text, text};
    use crate::model::{format_mac, format_uuid, swap_uuid};
    let inbox = app.discovered.borrow();
    let rows = inbox
        .newest_first()
        .take(MAX_DISCOVERED)
        .map(|e| {
            let relay = [
                e.relay.map(|r| format!("relay {r}")),
                e.circuit_id
                    .as_deref()
                    .map(|c| format!("circuit {}", id_text(c))),
                e.remote_id
                    .as_deref()
                    .map(|r| format!("remote {}", id_text(r))),
            ];
            let relay: Vec<String> = relay.into_iter().flatten().collect();
            DiscoveredView {
                mac: format_mac(&e.mac, ":"),
                uuid: or_dash(e.uuid.map(|u| format_uuid(&swap_uuid(u)))),
                uuid_wire: or_dash(e.uuid.map(|u| format_uuid(&u))),
                firmware: match e.arch {
                    Some(a) => format!("{} (arch {a})", e.firmware),
                    None => e.firmware.to_string(),
                },
                vendor_class: or_dash(e.vendor_class.as_deref().map(text)),
                relay: if relay.is_empty() {
                    "—".into()
                } else {
                    relay.join(", ")
                },
                last_seen: ago(now_ms, e.last_seen_ms),
                last_seen_at: format!("{} UTC", utc(e.last_seen_ms)),
                times_seen: e.times_seen,
            }
        })
        .collect();
    (rows, inbox.len().saturating_sub(MAX_DISCOVERED))
}

/// Renders the page as HTML.
pub fn render(app: &App, log: Vec<String>, now_ms: u64) -> Result<String, sailfish::RenderError> {
    page_data(app, log, now_ms).render_once()
}

/// `GET /` for a browser.
pub fn page(app: &App) -> Reply {
    match render(app, crate::logring::RING.snapshot(), now_ms()) {
        Ok(html) => Reply::bytes(200, HTML, html.into_bytes())
            .with_header("Content-Security-Policy", CSP.into()),
        Err(e) => message(
            500,
            "Error",
            &format!("the page could not be rendered: {e}"),
        ),
    }
}

/// A small HTML page with a message and a link back to `/`.
pub fn message(status: u16, title: &str, msg: &str) -> Reply {
    let html = MessagePage {
        title,
        message: msg,
    }
    .render_once()
    .unwrap_or_else(|_| String::from("<!DOCTYPE html><title>gopxe</title><a href=\"/\">back</a>"));
    Reply::bytes(status, HTML, html.into_bytes()).with_header("Content-Security-Policy", CSP.into())
}

/// True when `GET /` asks for the JSON summary instead of the page: the
/// `Accept` header names JSON and not HTML (a browser always names HTML;
/// curl's `*/*` gets the page).
pub fn wants_json(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

/// The `token` field of an `application/x-www-form-urlencoded` body.
pub fn form_token(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
}

/// May this form post change things: the API's rule (bearer header, or
/// loopback with no token configured), or the configured token in the form.
fn form_may_write(app: &App, req: &Req<'_>) -> bool {
    if req.api_right {
        return true;
    }
    match (&app.config.api_token, form_token(req.body)) {
        (Some(t), Some(given)) => super::guard::constant_time_eq(given.as_bytes(), t.as_bytes()),
        _ => false,
    }
}

/// What a status-page form asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormAction {
    /// `POST /ui/pxeboot/{id}/reinstall`.
    Reinstall,
    /// `POST /ui/pxeboot/{id}/delete`.
    Delete,
}

/// `POST /ui/pxeboot/{id}/reinstall|delete` (the router has checked the
/// method and answers unknown `/ui/` paths with [`message`]).
pub async fn ui(app: &App, req: &Req<'_>, id: &str, action: FormAction) -> Reply {
    if !form_may_write(app, req) {
        return not_allowed(app);
    }
    let id: MachineId = match id.parse() {
        Ok(i) => i,
        Err(e) => return message(400, "Bad machine id", &e.to_string()),
    };
    let result = match action {
        FormAction::Delete => app.delete_machine(&id).await,
        FormAction::Reinstall => app
            .reinstall(&id, "reinstall requested on the status page")
            .await
            .map(|_| ()),
    };
    let action = match action {
        FormAction::Delete => "delete",
        FormAction::Reinstall => "reinstall",
    };
    form_outcome(result, req, &format!("{action} of machine {id}"))
}

/// The refusal of a form post without the right to write.
fn not_allowed(app: &App) -> Reply {
    let why = if app.config.api_token.is_some() {
        "the API token is missing or wrong"
    } else {
        "no API token is configured, so changes are accepted from loopback only"
    };
    // The message page has no buttons, so it needs no framing guard;
    // a 401 carries its challenge instead (RFC 9110 §11.6.1).
    message(401, "Not allowed", why)
        .with_header("WWW-Authenticate", "Bearer realm=\"gopxe\"".into())
}

/// `POST /ui/discovered/{mac}/adopt`: the form's `bootaction` and
/// `hostname` as a `POST /pxeboot` body for the discovered MAC.
pub async fn ui_adopt(app: &App, req: &Req<'_>, mac: &str) -> Reply {
    if !form_may_write(app, req) {
        return not_allowed(app);
    }
    let Some(mac) = crate::model::parse_mac(mac) else {
        return message(400, "Bad MAC address", "not a MAC address");
    };
    let mut body = crate::model::MachineBody::default();
    for (k, v) in form_urlencoded::parse(req.body) {
        let v = v.trim();
        match &*k {
            "bootaction" if !v.is_empty() => body.bootaction = Some(v.to_string()),
            "hostname" if !v.is_empty() => body.hostname = Some(v.to_string()),
            _ => {}
        }
    }
    let what = format!("adoption of {}", crate::model::format_mac(&mac, ":"));
    let result = super::discovery::adopt_machine(app, mac, body)
        .await
        .map(|_| ());
    form_outcome(result, req, &what)
}

/// A form's answer: 303 to `/` when done, else the reason as a page.
fn form_outcome(result: Result<(), AppError>, req: &Req<'_>, what: &str) -> Reply {
    match result {
        Ok(()) => {
            log::info!("status page: {what} by {}", req.peer);
            Reply::bytes(303, HTML, b"<!DOCTYPE html><a href=\"/\">done</a>".to_vec())
                .with_header("Location", "/".into())
        }
        Err(AppError::NotFound(m)) => message(404, "Not found", &m),
        Err(AppError::Store(e)) => {
            log::error!("store write failed: {e}");
            message(
                500,
                "Not saved",
                &format!("the store could not save the change: {e}"),
            )
        }
        Err(AppError::Invalid(f) | AppError::Unprocessable(f)) => {
            message(400, "Refused", &f.to_string())
        }
        Err(AppError::Conflict(m)) => message(409, "Refused", &m),
        Err(AppError::Forbidden(m)) => message(403, "Refused", &m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::Urls;
    use crate::config::Config;
    use crate::model::{BootAction, BootActionBody, EventKind, Machine, MachineBody};
    use crate::store::Store;

    use super::super::tests::app;

    fn add(app: &App, menu: &str) -> MachineId {
        let a = BootAction::from_body(
            "centos",
            BootActionBody {
                kernel: Some("centos/vmlinuz".into()),
                menu: Some(menu.into()),
                ..Default::default()
            },
        )
        .unwrap();
        app.records_for_test().bootactions.insert(a.name.clone(), a);
        let m = Machine::from_body(
            MachineBody {
                mac: Some("aa:bb:cc:dd:ee:01".into()),
                bootaction: Some("centos".into()),
                hostname: Some("web1.lab".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        let id = m.id;
        app.records_for_test().machines.insert(id, m);
        id
    }

    #[test]
    fn empty_state_renders_every_section() {
        let html = render(&app(None), Vec::new(), 0).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        for id in [
            "appliance",
            "machines",
            "bootactions",
            "leases",
            "log",
            "no-machines",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
        }
        assert!(html.contains("No boot actions yet"));
        assert!(html.contains("DHCP does not run"));
        assert!(html.contains("loopback only"));
        assert!(
            !html.contains("name=\"token\""),
            "no token field without a token"
        );
        assert!(html.contains("(last 0 lines)"));
    }

    #[test]
    fn untrusted_values_are_escaped() {
        let a = app(Some("t0k"));
        let id = add(&a, "<script>alert(1)</script>\"'&");
        a.event(
            id,
            EventKind::Http,
            "GET /images/<img src=x onerror=alert(2)>",
        );
        let log = vec!["WARN x: <b>bold</b> & \"q\"".to_string()];
        let html = render(&a, log, now_ms()).unwrap();
        assert!(!html.contains("<script>alert"), "menu not escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#039;&amp;"));
        assert!(!html.contains("<img src=x"));
        assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
        assert!(!html.contains("<b>bold</b>"));
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &quot;q&quot;"));
        // The only script is the page's own.
        assert_eq!(html.matches("<script").count(), 1);
        assert!(
            html.contains("name=\"token\""),
            "token field when a token is set"
        );
    }

    #[test]
    fn machine_row_has_state_action_address_and_timeline() {
        let a = app(None);
        let id = add(&a, "CentOS");
        a.note_client("192.0.2.9".parse().unwrap(), id);
        a.event(id, EventKind::Dhcp, "dhcp ack 192.0.2.9");
        a.event(
            id,
            EventKind::Tftp,
            "tftp pxelinux.0 ok (26579 bytes, 12 ms)",
        );
        a.event(
            id,
            EventKind::Kickstart,
            "kickstart `default` fetched (900 bytes)",
        );
        let html = render(&a, Vec::new(), now_ms()).unwrap();
        assert!(html.contains("id=\"m-01-aa-bb-cc-dd-ee-01\""));
        assert!(html.contains("st-install\">install<"));
        assert!(html.contains("192.0.2.9 (seen)"));
        assert!(html.contains("web1.lab"));
        assert!(html.contains("3 event(s)"));
        let (d, t, k) = (
            html.find("k-dhcp").unwrap(),
            html.find("k-tftp").unwrap(),
            html.find("k-kickstart").unwrap(),
        );
        assert!(d < t && t < k, "timeline oldest first");
        assert!(html.contains("(26579 bytes, 12 ms)"));
        assert!(html.contains("action=\"/ui/pxeboot/01-aa-bb-cc-dd-ee-01/reinstall\""));
        assert!(html.contains("formaction=\"/ui/pxeboot/01-aa-bb-cc-dd-ee-01/delete\""));
        assert!(html.contains("1 install, 0 installing, 0 installed"));
    }

    /// A discovered machine's row: escaped values, both UUID forms, the
    /// relay and circuit, and an adopt form naming the boot actions.
    #[test]
    fn discovered_rows_have_an_adopt_form() {
        use crate::dhcp::boot::Firmware;
        use crate::dhcp::{ClientInfo, Event, EventKind, packet::Mac};
        let a = app(Some("t0k-t0k-t0k"));
        add(&a, "m");
        let mac = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
        let e = Event {
            kind: EventKind::DiscoverSeen,
            mac: Mac(mac),
            uuid: Some([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
            ip: None,
            known: false,
            boot_file: None,
            client: None,
        };
        let c = ClientInfo {
            firmware: Firmware::Bios,
            arch: Some(0),
            vendor_class: Some(b"PXEClient<script>alert(1)</script>".to_vec()),
            circuit_id: Some(b"ge-0/0/1".to_vec()),
            remote_id: None,
            relay: Some("10.0.0.254".parse().unwrap()),
        };
        let seen = crate::discovered::Seen {
            at_ms: now_ms(),
            msg: "DISCOVER".into(),
            outcome: "received".into(),
            ip: None,
            boot_file: None,
        };
        a.discovered.borrow_mut().seen(now_ms(), &e, &c, seen);
        let html = render(&a, Vec::new(), now_ms()).unwrap();
        assert!(html.contains("52:54:00:aa:bb:cc"));
        assert!(html.contains("04030201-0605-0807-090a-0b0c0d0e0f10"));
        assert!(html.contains("01020304-0506-0708-090a-0b0c0d0e0f10"));
        assert!(html.contains("bios (arch 0)"));
        assert!(html.contains("relay 10.0.0.254, circuit ge-0/0/1"));
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("action=\"/ui/discovered/52:54:00:aa:bb:cc/adopt\""));
        assert!(html.contains("<option value=\"centos\">centos</option>"));
    }

    #[test]
    fn json_only_when_asked_without_html() {
        assert!(!wants_json(None));
        assert!(!wants_json(Some("*/*")));
        assert!(wants_json(Some("application/json")));
        assert!(!wants_json(Some(
            "text/html,application/xhtml+xml,application/json;q=0.9"
        )));
    }

    #[test]
    fn form_token_is_read_from_the_body() {
        assert_eq!(form_token(b"token=a%20b&x=1").as_deref(), Some("a b"));
        assert_eq!(form_token(b"x=1").as_deref(), None);
        assert_eq!(form_token(b"\xff\xfe").as_deref(), None);
    }

    #[test]
    fn durations() {
        assert_eq!(ago(10_000, 9_000), "1 s ago");
        assert_eq!(ago(0, 5_000), "0 s ago", "clock skew");
        assert_eq!(ago(7_200_000, 0), "2 h ago");
        assert_eq!(ago(200_000_000, 0), "2 d ago");
        assert_eq!(uptime(59), "59s");
        assert_eq!(uptime(3_725), "1h 2m 5s");
        assert_eq!(uptime(90_061), "1d 1h 1m 1s");
    }

    fn req(body: &[u8], api_right: bool) -> Req<'_> {
        Req {
            method: "POST",
            segments: Vec::new(),
            query: "",
            body,
            api_right,
            peer: "192.0.2.1".parse().unwrap(),
            accept: None,
        }
    }

    #[test]
    fn form_actions_need_the_token() {
        let dir = std::env::temp_dir().join(format!("gopxe-status-ui-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, _) = Store::open(&dir).unwrap();
        let config = Config {
            api_token: Some("s3cret".into()),
            ..Config::default()
        };
        let a = App::new(
            config,
            Urls::new(std::net::Ipv4Addr::LOCALHOST, 9090),
            store,
        );
        let id = add(&a, "m");
        a.records_for_test().machines.get_mut(&id).unwrap().state = MachineState::Installed;
        let machine = "01-aa-bb-cc-dd-ee-01";
        let run = |r: Req<'_>| smol::block_on(ui(&a, &r, machine, FormAction::Reinstall)).status;
        assert_eq!(run(req(b"", false)), 401);
        assert_eq!(run(req(b"token=wrong", false)), 401);
        assert_eq!(
            a.records().machines.get(&id).unwrap().state,
            MachineState::Installed,
            "nothing changed by refused posts"
        );
        assert_eq!(run(req(b"token=s3cret", false)), 303);
        assert_eq!(
            a.records().machines.get(&id).unwrap().state,
            MachineState::Install
        );
        let r = req(b"token=s3cret", false);
        let bad = smol::block_on(ui(&a, &r, "x", FormAction::Delete)).status;
        assert_eq!(bad, 400, "not a machine id");
        let r = req(b"", true);
        let del = || smol::block_on(ui(&a, &r, machine, FormAction::Delete)).status;
        assert_eq!(del(), 303, "bearer header");
        assert!(a.records().machines.is_empty());
        assert_eq!(del(), 404);
        drop(a);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
