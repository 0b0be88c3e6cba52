//! The running appliance's state: config, store, events, and the writes.
//!
//! Layer: service (async, single-threaded). Everything runs on one
//! `LocalExecutor`, so state lives in `RefCell`s and is never borrowed
//! across an `.await`. Writes take `write_lock`, check against the current
//! store, make the record durable off the executor (`smol::unblock`), and
//! only then change memory and answer: nothing is acknowledged that a crash
//! could lose. Record writes take the lock exclusively; state changes
//! (kickstart fetched, `done`, reinstall) take it shared plus a lock of
//! their machine, so those of different machines are made durable side by
//! side and their fsyncs share the file system's journal commits — in a
//! boot storm, hundreds of machines fetch their kickstarts at once.
//! Events are kept in memory in a bounded log per machine; the state
//! changes they accompany are durable. A durable machine change is then
//! queued for the webhooks (`crate::webhook`), never awaited.

use crate::boot::{DefaultBoot, Urls};
use crate::config::Config;
use crate::model::validate::FieldError;
use crate::model::{BootAction, Event, EventKind, EventLog, Machine, MachineId, MachineState};
use crate::store::{self, Kind, Store};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Why a write was refused; the API maps each to a status code.
#[derive(Debug)]
pub enum AppError {
    /// 400: a field is invalid.
    Invalid(FieldError),
    /// 404.
    NotFound(String),
    /// 409: e.g. a boot action still in use.
    Conflict(String),
    /// 422: the record names something that does not exist.
    Unprocessable(FieldError),
    /// 500: the store could not make the change durable.
    Store(io::Error),
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Shared state of the running service.
pub struct App {
    pub config: Config,
    pub urls: Urls,
    pub store: RefCell<Store>,
    pub events: RefCell<HashMap<MachineId, EventLog>>,
    /// The images root, canonicalised (files served must stay under it).
    pub images_root: Option<PathBuf>,
    pub localrepo_root: Option<PathBuf>,
    pub started: Instant,
    pub metrics: crate::metrics::Metrics,
    /// Which machine was last seen at which address (from DHCP and from
    /// the per-machine configs it fetched), to attach later file transfers
    /// from that address to it. Bounded by [`App::MAX_CLIENTS`].
    clients: RefCell<HashMap<IpAddr, MachineId>>,
    /// The MAC each machine's DHCP requests came from, so that a machine
    /// keyed by UUID is not refused its own reserved address.
    macs: RefCell<HashMap<MachineId, [u8; 6]>>,
    /// DHCP lease state when DHCP runs (for `GET /leases`).
    pub dhcp: RefCell<Option<std::rc::Rc<crate::dhcp::DhcpState>>>,
    /// The bound sockets, `service address` (for the status page).
    pub listening: RefCell<Vec<String>>,
    /// Receivers told about every machine change (queued, never awaited).
    pub webhooks: crate::webhook::Webhooks,
    write_lock: async_lock::RwLock<()>,
    /// One lock per machine whose state is changing (removed when free).
    machine_locks: RefCell<HashMap<MachineId, Rc<async_lock::Mutex<()>>>>,
}

async fn persist(path: PathBuf, bytes: Option<Vec<u8>>) -> io::Result<()> {
    smol::unblock(move || match bytes {
        Some(b) => store::write_atomic(&path, &b),
        None => store::remove_durable(&path),
    })
    .await
}

impl App {
    pub fn new(config: Config, urls: Urls, store: Store) -> App {
        let images_root = config.images.canonicalize().ok();
        let localrepo_root = config
            .localrepo
            .as_ref()
            .and_then(|p| p.canonicalize().ok());
        let webhooks = crate::webhook::Webhooks::new(&config.webhooks, Default::default());
        App {
            config,
            urls,
            store: RefCell::new(store),
            events: RefCell::new(HashMap::new()),
            images_root,
            localrepo_root,
            started: Instant::now(),
            metrics: Default::default(),
            clients: RefCell::new(HashMap::new()),
            macs: RefCell::new(HashMap::new()),
            dhcp: RefCell::new(None),
            listening: RefCell::new(Vec::new()),
            webhooks,
            write_lock: async_lock::RwLock::new(()),
            machine_locks: RefCell::new(HashMap::new()),
        }
    }

    /// Most addresses remembered in the address-to-machine map.
    pub const MAX_CLIENTS: usize = 8192;

    /// Remembers that `id` is at `ip`.
    pub fn note_client(&self, ip: IpAddr, id: MachineId) {
        let mut c = self.clients.borrow_mut();
        if c.len() >= Self::MAX_CLIENTS && !c.contains_key(&ip) {
            c.clear();
        }
        c.insert(ip, id);
    }

    /// Remembers the MAC a machine's DHCP requests come from.
    pub fn learn_mac(&self, id: MachineId, mac: [u8; 6]) {
        let mut m = self.macs.borrow_mut();
        if m.len() >= Self::MAX_CLIENTS && !m.contains_key(&id) {
            m.clear();
        }
        m.insert(id, mac);
    }

    pub fn learned_mac(&self, id: &MachineId) -> Option<[u8; 6]> {
        self.macs.borrow().get(id).copied()
    }

    /// Where each machine was last seen (for the status page).
    pub fn seen_addresses(&self) -> HashMap<MachineId, IpAddr> {
        self.clients
            .borrow()
            .iter()
            .map(|(ip, id)| (*id, *ip))
            .collect()
    }

    /// The machine last seen at `ip`: remembered, or a record with that address.
    pub fn machine_at(&self, ip: IpAddr) -> Option<MachineId> {
        if let Some(id) = self.clients.borrow().get(&ip) {
            return Some(*id);
        }
        let IpAddr::V4(v4) = ip else { return None };
        self.store
            .borrow()
            .machines
            .values()
            .find(|m| m.ip == Some(v4))
            .map(|m| m.id)
    }

    /// A file generated for a boot loader asking over TFTP (or HTTP):
    /// `pxelinux.cfg/<name>`, with an optional leading `/`. Remembers which
    /// machine asked from `client`, and records the event.
    pub fn boot_file(&self, name: &str, client: IpAddr) -> Option<Vec<u8>> {
        let name = name.strip_prefix('/').unwrap_or(name);
        let cfg = name.strip_prefix("pxelinux.cfg/")?;
        let store = self.store.borrow();
        let parsed = crate::boot::ConfigName::parse(cfg)?;
        match crate::boot::find_machine(&store, &parsed) {
            Some(m) => {
                let text = crate::boot::pxelinux_machine(&store, &self.urls, m);
                let id = m.id;
                drop(store);
                self.note_client(client, id);
                self.event(
                    id,
                    EventKind::Tftp,
                    format!("config {name} sent to {client}"),
                );
                Some(text.into_bytes())
            }
            None if parsed == crate::boot::ConfigName::Default => {
                log::info!(
                    "unknown machine at {client}: sending {name} ({:?})",
                    self.default_boot()
                );
                Some(crate::boot::pxelinux_default(&store, self.default_boot()).into_bytes())
            }
            None => None,
        }
    }

    pub fn default_boot(&self) -> &DefaultBoot {
        &self.config.unknown_boot
    }

    /// Records an event on a machine's log and logs it at info.
    pub fn event(&self, id: MachineId, kind: EventKind, detail: impl Into<String>) {
        self.event_at(log::Level::Info, id, kind, detail)
    }

    /// Records an event, logging it at `level` (debug for repeats that
    /// change nothing, such as a kickstart fetched again).
    pub fn event_at(
        &self,
        level: log::Level,
        id: MachineId,
        kind: EventKind,
        detail: impl Into<String>,
    ) {
        let detail = detail.into();
        log::log!(level, "machine {id}: {kind:?} {detail}");
        self.events.borrow_mut().entry(id).or_default().push(Event {
            at_ms: now_ms(),
            kind,
            detail,
        });
    }

    /// A machine's events, oldest first.
    pub fn events_of(&self, id: &MachineId) -> Vec<Event> {
        self.events
            .borrow()
            .get(id)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Creates or replaces a boot action. Returns true when it was created.
    /// Refused (field `append`) when the kernel line it gives unknown
    /// machines or any machine that boots it would be too long for the
    /// kernel (`boot::check_kernel_line`).
    pub async fn put_bootaction(&self, a: BootAction) -> Result<bool, AppError> {
        let _g = self.write_lock.write().await;
        let path = {
            let s = self.store.borrow();
            let users = s.machines.values().filter(|m| m.bootaction == a.name);
            crate::boot::check_kernel_line(&self.urls, &a, users)
                .map_err(|e| AppError::Invalid(FieldError::new("append", e.to_string())))?;
            s.path(Kind::BootAction, &a.name)
        };
        persist(path, Some(store::encode(&a).map_err(AppError::Store)?))
            .await
            .map_err(AppError::Store)?;
        Ok(self
            .store
            .borrow_mut()
            .bootactions
            .insert(a.name.clone(), a)
            .is_none())
    }

    /// Deletes a boot action no machine uses.
    pub async fn delete_bootaction(&self, name: &str) -> Result<(), AppError> {
        let _g = self.write_lock.write().await;
        let path = {
            let s = self.store.borrow();
            if !s.bootactions.contains_key(name) {
                return Err(AppError::NotFound(format!("no boot action `{name}`")));
            }
            let users: Vec<String> = s
                .machines
                .values()
                .filter(|m| m.bootaction == name)
                .map(|m| m.id.canonical())
                .collect();
            if !users.is_empty() {
                return Err(AppError::Conflict(format!(
                    "boot action `{name}` is used by {} machine(s): {}",
                    users.len(),
                    users.join(", ")
                )));
            }
            if matches!(&self.config.unknown_boot, DefaultBoot::Action(n) if n == name) {
                return Err(AppError::Conflict(format!(
                    "boot action `{name}` is the default for unknown machines"
                )));
            }
            s.path(Kind::BootAction, name)
        };
        persist(path, None).await.map_err(AppError::Store)?;
        self.store.borrow_mut().bootactions.remove(name);
        Ok(())
    }

    fn check_references(&self, m: &Machine) -> Result<(), AppError> {
        let s = self.store.borrow();
        if !s.bootactions.contains_key(&m.bootaction) {
            return Err(AppError::Unprocessable(FieldError::new(
                "bootaction",
                format!(
                    "no boot action `{}`; create it with POST /bootaction/{}",
                    m.bootaction, m.bootaction
                ),
            )));
        }
        if m.ksfile != "default" && !s.templates.contains_key(&m.ksfile) {
            return Err(AppError::Unprocessable(FieldError::new(
                "ksfile",
                format!(
                    "no kickstart template `{}`; upload it with PUT /kstemplate/{}",
                    m.ksfile, m.ksfile
                ),
            )));
        }
        Ok(())
    }

    /// The kernel line machine `m` would boot with must fit the kernel
    /// (`boot::check_kernel_line`). A refusal names `hostname` when the
    /// record has one — it is the longest value the record puts on the
    /// line (in the `ks=` URL, the preseed's `hostname=`/`domain=`,
    /// autoinstall's `ip=`) — and otherwise `bootaction`, whose arguments
    /// make the rest of the line.
    fn check_kernel_line(&self, m: &Machine) -> Result<(), AppError> {
        let s = self.store.borrow();
        let Some(a) = s.bootactions.get(&m.bootaction) else {
            return Ok(());
        };
        crate::boot::check_kernel_line(&self.urls, a, [m]).map_err(|e| {
            let field = if m.hostname.is_some() {
                "hostname"
            } else {
                "bootaction"
            };
            AppError::Invalid(FieldError::new(
                field,
                format!("with boot action `{}`, {e}", a.name),
            ))
        })
    }

    /// Creates or replaces a machine (a replaced record starts a new
    /// install). Returns true when it was created.
    pub async fn put_machine(&self, mut m: Machine) -> Result<bool, AppError> {
        let _g = self.write_lock.write().await;
        self.check_references(&m)?;
        self.check_kernel_line(&m)?;
        m.updated_ms = now_ms();
        m.state = MachineState::Install;
        let path = self.store.borrow().path(Kind::Machine, &m.id.canonical());
        persist(path, Some(store::encode(&m).map_err(AppError::Store)?))
            .await
            .map_err(AppError::Store)?;
        let id = m.id;
        let old = self
            .store
            .borrow_mut()
            .machines
            .insert(id, m.clone())
            .map(|o| o.state);
        let created = old.is_none();
        let change = if created {
            crate::webhook::Change::Created
        } else {
            crate::webhook::Change::Updated
        };
        self.webhooks
            .notify(&self.metrics, change, &m, old, Some(m.state));
        self.event(
            id,
            if created {
                EventKind::Created
            } else {
                EventKind::Updated
            },
            "record written through the API",
        );
        Ok(created)
    }

    pub async fn delete_machine(&self, id: &MachineId) -> Result<(), AppError> {
        let _g = self.write_lock.write().await;
        if !self.store.borrow().machines.contains_key(id) {
            return Err(AppError::NotFound(format!("no machine `{id}`")));
        }
        let path = self.store.borrow().path(Kind::Machine, &id.canonical());
        persist(path, None).await.map_err(AppError::Store)?;
        let old = self.store.borrow_mut().machines.remove(id);
        self.events.borrow_mut().remove(id);
        if let Some(m) = old {
            self.webhooks.notify(
                &self.metrics,
                crate::webhook::Change::Deleted,
                &m,
                Some(m.state),
                None,
            );
        }
        Ok(())
    }

    /// Moves a machine to `state` (durably), recording `kind` as an event.
    pub async fn set_state(
        &self,
        id: &MachineId,
        state: MachineState,
        kind: EventKind,
        detail: &str,
    ) -> Result<Machine, AppError> {
        let _shared = self.write_lock.read().await;
        let lock = self
            .machine_locks
            .borrow_mut()
            .entry(*id)
            .or_default()
            .clone();
        let result = {
            let _mine = lock.lock().await;
            self.change_state(id, state, kind, detail).await
        };
        // The map's reference and this one: nobody else waits for it.
        if Rc::strong_count(&lock) <= 2 {
            self.machine_locks.borrow_mut().remove(id);
        }
        result
    }

    /// [`App::set_state`] under its locks.
    async fn change_state(
        &self,
        id: &MachineId,
        state: MachineState,
        kind: EventKind,
        detail: &str,
    ) -> Result<Machine, AppError> {
        let mut m = self
            .store
            .borrow()
            .machines
            .get(id)
            .cloned()
            .ok_or_else(|| AppError::NotFound(format!("no machine `{id}`")))?;
        if m.state != state {
            let old = m.state;
            m.state = state;
            m.updated_ms = now_ms();
            let path = self.store.borrow().path(Kind::Machine, &id.canonical());
            persist(path, Some(store::encode(&m).map_err(AppError::Store)?))
                .await
                .map_err(AppError::Store)?;
            self.store.borrow_mut().machines.insert(*id, m.clone());
            self.webhooks.notify(
                &self.metrics,
                crate::webhook::Change::StateChanged,
                &m,
                Some(old),
                Some(state),
            );
        }
        self.event(*id, kind, format!("{detail}; state {state}"));
        Ok(m)
    }

    /// Stores an admin kickstart template (already checked). True if created.
    pub async fn put_template(&self, name: &str, text: String) -> Result<bool, AppError> {
        let _g = self.write_lock.write().await;
        let path = self.store.borrow().path(Kind::Template, name);
        persist(path, Some(text.clone().into_bytes()))
            .await
            .map_err(AppError::Store)?;
        Ok(self
            .store
            .borrow_mut()
            .templates
            .insert(name.to_string(), text)
            .is_none())
    }

    pub async fn delete_template(&self, name: &str) -> Result<(), AppError> {
        let _g = self.write_lock.write().await;
        let path = {
            let s = self.store.borrow();
            if !s.templates.contains_key(name) {
                return Err(AppError::NotFound(format!(
                    "no kickstart template `{name}`"
                )));
            }
            if let Some(m) = s.machines.values().find(|m| m.ksfile == name) {
                return Err(AppError::Conflict(format!(
                    "template `{name}` is used by machine {}",
                    m.id
                )));
            }
            s.path(Kind::Template, name)
        };
        persist(path, None).await.map_err(AppError::Store)?;
        self.store.borrow_mut().templates.remove(name);
        Ok(())
    }

    /// The machine a kickstart request is for: by hostname, and by address
    /// when one is given.
    pub fn machine_for_kickstart(
        &self,
        fqdn: Option<&str>,
        ip: Option<std::net::Ipv4Addr>,
    ) -> Option<MachineId> {
        let s = self.store.borrow();
        let fqdn = fqdn?;
        s.machines
            .values()
            .find(|m| m.hostname.as_deref() == Some(fqdn) && (ip.is_none() || m.ip == ip))
            .map(|m| m.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BootActionBody, MachineBody};

    /// Many state changes at once, several per machine, as in a boot
    /// storm: each lands on disk exactly as it is in memory, and no
    /// machine lock is left behind.
    #[test]
    fn concurrent_state_changes_are_durable_and_consistent() {
        let dir = std::env::temp_dir().join(format!("gopxe-app-states-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, _) = Store::open(&dir).unwrap();
        let config = Config {
            data_dir: dir.clone(),
            ..Config::default()
        };
        let app = Rc::new(App::new(
            config,
            Urls::new(std::net::Ipv4Addr::LOCALHOST, 9090),
            store,
        ));
        let ex = smol::LocalExecutor::new();
        let ids: Vec<MachineId> = smol::block_on(ex.run(async {
            let body = BootActionBody {
                kernel: Some("k".into()),
                ..Default::default()
            };
            app.put_bootaction(BootAction::from_body("a", body).unwrap())
                .await
                .unwrap();
            let mut ids = Vec::new();
            for i in 0..10u8 {
                let body = MachineBody {
                    mac: Some(format!("52:54:00:00:00:{i:02x}")),
                    bootaction: Some("a".into()),
                    ..Default::default()
                };
                let m = Machine::from_body(body, None).unwrap();
                ids.push(m.id);
                app.put_machine(m).await.unwrap();
            }
            ids
        }));
        let states = [
            MachineState::Installing,
            MachineState::Installed,
            MachineState::Install,
        ];
        smol::block_on(ex.run(async {
            let tasks: Vec<_> = (0..60)
                .map(|i| {
                    let app = app.clone();
                    let id = ids[i % ids.len()];
                    let state = states[(i / ids.len()) % states.len()];
                    ex.spawn(async move {
                        app.set_state(&id, state, EventKind::Kickstart, "test")
                            .await
                            .map(|m| m.state)
                    })
                })
                .collect();
            for t in tasks {
                assert!(t.await.is_ok());
            }
        }));
        assert!(app.machine_locks.borrow().is_empty());
        let (disk, warnings) = Store::open(&dir).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        for id in &ids {
            let mem = app.store.borrow().machines.get(id).map(|m| m.state);
            assert_eq!(disk.machines.get(id).map(|m| m.state), mem, "{id}");
            // 60 changes over 10 machines: each saw the three states twice,
            // the last one `install`.
            assert_eq!(mem, Some(MachineState::Install), "{id}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
