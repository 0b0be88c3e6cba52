//! The discovery inbox over HTTP: `GET /discovered`, `GET` and `DELETE
//! /discovered/{mac}`, `POST /discovered/{mac}/adopt`.
//!
//! Layer: service (one small handler per route, as in `super::api`). The
//! inbox is [`crate::discovered`]; adoption takes a `POST /pxeboot` body
//! (`MachineBody`, the same checks and answers) and creates the machine
//! keyed by its MAC.

use super::api::{Req, app_error, json_body, machine_json};
use super::reply::Reply;
use crate::app::App;
use crate::discovered;
use crate::model::{MachineBody, format_mac, parse_mac};

/// The `{mac}` of a path, or the 400 naming it.
pub(super) fn parse(s: &str) -> Result<[u8; 6], Reply> {
    parse_mac(s).ok_or_else(|| {
        Reply::error(
            400,
            Some("mac"),
            &format!("mac: `{}` is not a MAC address", s.escape_debug()),
        )
    })
}

fn not_found(mac: &[u8; 6]) -> Reply {
    let mac = format_mac(mac, ":");
    Reply::error(404, None, &format!("no discovered machine `{mac}`"))
}

/// `GET /discovered` (newest first), `GET` and `DELETE /discovered/{mac}`.
pub(super) async fn inbox(app: &App, req: &Req<'_>, mac: Option<&str>) -> Reply {
    let Some(mac) = mac else {
        let inbox = app.discovered.borrow();
        let all: Vec<_> = inbox.newest_first().map(discovered::json).collect();
        return Reply::json(200, &all);
    };
    let mac = match parse(mac) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if req.method == "DELETE" {
        return match app.discovered.borrow_mut().remove(&mac) {
            Some(_) => Reply::no_content(),
            None => not_found(&mac),
        };
    }
    match app.discovered.borrow().get(&mac) {
        Some(e) => Reply::json(200, &discovered::json(e)),
        None => not_found(&mac),
    }
}

/// `POST /discovered/{mac}/adopt`: 201 with the machine.
pub(super) async fn adopt(app: &App, req: &Req<'_>, mac: &str) -> Reply {
    let mac = match parse(mac) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if app.discovered.borrow().get(&mac).is_none() {
        return not_found(&mac);
    }
    let body: MachineBody = match json_body(req.body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match discovered::adopt(app, mac, body).await {
        Ok(m) => Reply::json(201, &machine_json(app, &m, &app.sharing_address(&m))),
        Err(e) => app_error(e),
    }
}
