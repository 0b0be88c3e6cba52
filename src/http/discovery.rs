//! The discovery inbox over HTTP: `GET /discovered`, `GET` and `DELETE
//! /discovered/{mac}`, `POST /discovered/{mac}/adopt`.
//!
//! Layer: service (one small handler per route, as in `super::api`). The
//! inbox is [`crate::discovered`]; adoption takes a `POST /pxeboot` body
//! (`MachineBody`, the same checks and answers) and creates the machine
//! keyed by its MAC.

use super::api::{Req, app_error, json_body, machine_json};
use super::reply::Reply;
use crate::app::{App, AppError};
use crate::discovered;
use crate::model::{Machine, MachineBody, MachineId, format_mac, parse_mac};

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
    match adopt_machine(app, mac, body).await {
        Ok(m) => Reply::json(201, &machine_json(app, &m, &app.sharing_address(&m))),
        Err(e) => app_error(e),
    }
}

/// Adopts a discovered machine: its record, keyed by its MAC, from a
/// `POST /pxeboot` body (same checks and answers), created only if no
/// machine has that id; the inbox then forgets it (`App::put_machine`'s
/// rule for every record).
pub(super) async fn adopt_machine(
    app: &App,
    mac: [u8; 6],
    body: MachineBody,
) -> Result<Machine, AppError> {
    let id = MachineId::Mac(mac);
    if app.discovered.borrow().get(&mac).is_none() {
        return Err(AppError::NotFound(format!(
            "no discovered machine `{}`",
            format_mac(&mac, ":")
        )));
    }
    let m = Machine::from_body(body, Some(id)).map_err(AppError::Invalid)?;
    app.create_machine(m).await?;
    app.discovered.borrow_mut().remove(&mac);
    log::info!("machine {id}: adopted from the discovery inbox");
    app.records()
        .machines
        .get(&id)
        .cloned()
        .ok_or_else(|| AppError::NotFound(format!("no machine `{id}`")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::boot::Firmware;
    use crate::dhcp::packet::Mac;
    use crate::dhcp::{ClientInfo, Event, EventKind};

    fn mac(n: u8) -> [u8; 6] {
        [0x52, 0x54, 0, 0, 0, n]
    }

    fn event(m: [u8; 6], uuid: Option<[u8; 16]>) -> Event {
        Event {
            kind: EventKind::DiscoverSeen,
            mac: Mac(m),
            uuid,
            ip: None,
            known: false,
            boot_file: None,
            client: None,
        }
    }

    fn info() -> ClientInfo {
        ClientInfo {
            firmware: Firmware::Bios,
            arch: Some(0),
            vendor_class: None,
            circuit_id: None,
            remote_id: None,
            relay: None,
        }
    }

    fn what(at: u64) -> discovered::Seen {
        discovered::Seen {
            at_ms: at,
            msg: "DISCOVER".into(),
            outcome: "received".into(),
            ip: None,
            boot_file: None,
        }
    }

    /// Two adoptions of one machine at once (a double-clicked form): the
    /// first creates it, the second finds it and is a conflict.
    #[test]
    fn a_second_adoption_at_once_is_a_conflict() {
        use crate::model::{BootAction, BootActionBody};
        let (app, dir) = crate::app::tests::app_on_disk("adopt-twice");
        let a = BootActionBody {
            kernel: Some("k".into()),
            ..Default::default()
        };
        let a = BootAction::from_body("a", a).unwrap();
        smol::block_on(app.put_bootaction(a)).unwrap();
        app.discovered
            .borrow_mut()
            .seen(1, &event(mac(1), None), &info(), what(1));
        let body = || MachineBody {
            bootaction: Some("a".into()),
            ..Default::default()
        };
        let (first, second) = smol::block_on(futures_lite::future::zip(
            adopt_machine(&app, mac(1), body()),
            adopt_machine(&app, mac(1), body()),
        ));
        assert_eq!(first.unwrap().id, MachineId::Mac(mac(1)));
        assert!(matches!(second, Err(AppError::Conflict(_))), "{second:?}");
        assert!(app.discovered.borrow().is_empty());
        let again = smol::block_on(adopt_machine(&app, mac(1), body()));
        assert!(matches!(again, Err(AppError::NotFound(_))), "{again:?}");
        drop(app);
        let _ = std::fs::remove_dir_all(dir);
    }
}
