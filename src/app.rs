//! The running appliance's state: config, store, events, and the writes.
//!
//! Layer: service (async, single-threaded). Everything runs on one
//! `LocalExecutor`, so state lives in `RefCell`s and is never borrowed
//! across an `.await`. Writes take `write_lock`, check against the current
//! store, queue the change for the store's journal (`Store::commit`: its
//! committer thread writes every change queued meanwhile and fsyncs once),
//! and when that batch is on disk change memory and answer: nothing is
//! acknowledged that a crash could lose. Record writes take the lock
//! exclusively; state changes (kickstart fetched, `done`, reinstall) take
//! it shared plus a lock of their machine, so those of different machines
//! wait for the same batch — in a boot storm, hundreds of machines fetch
//! their kickstarts at once, and a batch's one fsync answers them all.
//! Events are kept in memory in a bounded log per machine; the state
//! changes they accompany are durable. A durable machine change is then
//! queued for the webhooks (`crate::webhook`), never awaited.

use crate::boot::{DefaultBoot, Urls};
use crate::config::Config;
use crate::model::validate::FieldError;
use crate::model::{
    BootAction, Event, EventKind, EventLog, InstallKey, Machine, MachineId, MachineState,
};
use crate::store::{self, Change, Kind, Store};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

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
    /// 403: the caller may not make this change (e.g. a `done` without
    /// the install's key).
    Forbidden(String),
    /// 500: the store could not make the change durable.
    Store(io::Error),
}

/// A fresh [`InstallKey`] from the system's random source.
fn new_install_key() -> Result<InstallKey, AppError> {
    let mut k = [0u8; 16];
    getrandom::fill(&mut k)
        .map_err(|e| AppError::Store(io::Error::other(format!("no random source: {e}"))))?;
    Ok(InstallKey(k))
}

/// What a `done` call-back shows to prove it ends the install.
#[derive(Clone, Copy, Debug)]
pub struct DoneProof<'a> {
    /// The `key` the call-back URL carried.
    pub key: Option<&'a str>,
    /// The caller holds the API right (token, or loopback without one).
    pub api_right: bool,
}

/// The system's host name (`/proc/sys/kernel/hostname`), lower case, if
/// it is a valid one other than `localhost`.
fn system_host_name() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    crate::model::validate::check_hostname("hostname", raw.trim())
        .ok()
        .filter(|h| h != "localhost")
}

pub use crate::clock::now_ms;

/// How a generated boot file was asked for ([`App::boot_file`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetch {
    /// Over TFTP: firmware or a boot loader.
    Tftp,
    /// Over HTTP (`/images/<path>`), with the caller's right and whether
    /// it asked for a preview.
    Http { api_right: bool, preview: bool },
}

/// Shared state of the running service.
pub struct App {
    pub config: Config,
    pub urls: Urls,
    store: RefCell<Store>,
    events: RefCell<HashMap<MachineId, EventLog>>,
    /// The images root, canonicalised (files served must stay under it).
    pub images_root: Option<PathBuf>,
    pub localrepo_root: Option<PathBuf>,
    pub started: Instant,
    pub metrics: Rc<crate::metrics::Metrics>,
    /// Which machine was last seen at which address (from DHCP and from
    /// the per-machine configs it fetched), to attach later file transfers
    /// from that address to it. Bounded by [`App::MAX_CLIENTS`].
    clients: RefCell<HashMap<IpAddr, MachineId>>,
    /// The MAC each machine's DHCP requests came from, so that a machine
    /// keyed by UUID is not refused its own reserved address.
    macs: RefCell<HashMap<MachineId, [u8; 6]>>,
    /// The same, the other way: the machine a MAC was seen for. An
    /// installer's DHCP carries no UUID (option 97 is the firmware's), so a
    /// machine keyed by UUID is known to it by the MAC its firmware used.
    mac_owners: RefCell<HashMap<[u8; 6], MachineId>>,
    /// The address DHCP last gave each machine, or saw it ask for (proxy
    /// mode: the lab's server hands it out). With the record's own `ip`,
    /// these are the addresses whose answer-file fetches count as the
    /// machine's ([`App::is_machine_address`]); unlike `clients`, nothing
    /// but DHCP writes here.
    dhcp_addrs: RefCell<HashMap<MachineId, IpAddr>>,
    /// The same, the other way: the machine DHCP last placed at an address
    /// (for [`App::machine_by_address`]).
    dhcp_owners: RefCell<HashMap<IpAddr, MachineId>>,
    /// The names the `Host` header may carry besides IP literals and
    /// `localhost`: the configured `server_names` and the system's host
    /// name (see `http::guard`).
    pub host_names: Vec<String>,
    /// DHCP lease state when DHCP runs (for `GET /leases`).
    dhcp: RefCell<Option<std::rc::Rc<crate::dhcp::DhcpState>>>,
    /// The bound sockets, `service address` (for the status page).
    listening: RefCell<Vec<String>>,
    /// Receivers told about every machine change (queued, never awaited).
    pub webhooks: crate::webhook::Webhooks,
    write_lock: async_lock::RwLock<()>,
    /// Admin templates rendering at once (off the executor).
    pub template_permits: async_lock::Semaphore,
    /// One lock per machine whose state is changing (removed when free).
    machine_locks: RefCell<HashMap<MachineId, Rc<async_lock::Mutex<()>>>>,
    /// Unknown netboot clients seen by DHCP ([`crate::discovered`]).
    pub discovered: Rc<RefCell<crate::discovered::Inbox>>,
}

impl App {
    pub fn new(config: Config, urls: Urls, store: Store) -> App {
        let images_root = config.images.canonicalize().ok();
        let localrepo_root = config
            .localrepo
            .as_ref()
            .and_then(|p| p.canonicalize().ok());
        let webhooks = crate::webhook::Webhooks::new(&config.webhooks, Default::default());
        let mut host_names = config.server_names.clone();
        if let Some(h) = system_host_name()
            && !host_names.iter().any(|n| n.eq_ignore_ascii_case(&h))
        {
            host_names.push(h);
        }
        let discovered = Rc::new(RefCell::new(crate::discovered::Inbox::new(
            config.discovered_max,
        )));
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
            mac_owners: RefCell::new(HashMap::new()),
            dhcp_addrs: RefCell::new(HashMap::new()),
            dhcp_owners: RefCell::new(HashMap::new()),
            host_names,
            dhcp: RefCell::new(None),
            listening: RefCell::new(Vec::new()),
            webhooks,
            write_lock: async_lock::RwLock::new(()),
            template_permits: async_lock::Semaphore::new(Self::TEMPLATE_RENDERS),
            machine_locks: RefCell::new(HashMap::new()),
            discovered,
        }
    }

    /// Every record, read-only: changes go through the methods below,
    /// which make them durable first. Not held across an `.await`.
    pub fn records(&self) -> std::cell::Ref<'_, Store> {
        self.store.borrow()
    }

    /// The records to change in memory only, without making anything
    /// durable: for tests that set up a state.
    #[cfg(test)]
    pub(crate) fn records_for_test(&self) -> std::cell::RefMut<'_, Store> {
        self.store.borrow_mut()
    }

    /// Closes the store (its journal's committer finishes), leaving an
    /// empty one in memory: for shutting down in tests.
    pub fn close_store(&self) {
        drop(self.store.replace(Store::default()));
    }

    /// The DHCP lease state, when DHCP runs.
    pub fn dhcp_state(&self) -> Option<Rc<crate::dhcp::DhcpState>> {
        self.dhcp.borrow().clone()
    }

    /// Sets the DHCP lease state once DHCP runs.
    pub fn set_dhcp_state(&self, state: Rc<crate::dhcp::DhcpState>) {
        *self.dhcp.borrow_mut() = Some(state);
    }

    /// Notes a bound socket, `service address`, for the status page.
    pub fn note_listening(&self, what: String) {
        self.listening.borrow_mut().push(what);
    }

    /// The bound sockets noted so far.
    pub fn listening(&self) -> Vec<String> {
        self.listening.borrow().clone()
    }

    /// When machine `id` was last seen doing anything (its last event).
    pub fn last_event_at(&self, id: &MachineId) -> Option<u64> {
        self.events
            .borrow()
            .get(id)
            .and_then(|l| l.last())
            .map(|e| e.at_ms)
    }

    /// The last event of machine `id`, if any.
    pub fn last_event(&self, id: &MachineId) -> Option<Event> {
        self.events.borrow().get(id).and_then(|l| l.last().cloned())
    }

    /// Makes a record change durable: queued for the store journal's next
    /// batch (one fsync for every change queued meanwhile), answered when
    /// that batch is on disk. The caller changes memory after that.
    async fn persist(&self, change: Change) -> Result<(), AppError> {
        let durable = self.store.borrow().commit(vec![change]);
        durable.await.map_err(AppError::Store)
    }

    /// Admin templates rendered at once; more wait their turn.
    pub const TEMPLATE_RENDERS: usize = 2;

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
        let mut owners = self.mac_owners.borrow_mut();
        if m.len() >= Self::MAX_CLIENTS && !m.contains_key(&id) {
            m.clear();
            owners.clear();
        }
        if let Some(old) = m.insert(id, mac)
            && old != mac
        {
            owners.remove(&old);
        }
        owners.insert(mac, id);
    }

    /// The machine whose firmware was seen with `mac`, if it still exists.
    pub fn owner_of_mac(&self, mac: [u8; 6]) -> Option<MachineId> {
        let id = *self.mac_owners.borrow().get(&mac)?;
        self.store.borrow().machines.contains_key(&id).then_some(id)
    }

    pub fn learned_mac(&self, id: &MachineId) -> Option<[u8; 6]> {
        self.macs.borrow().get(id).copied()
    }

    /// Remembers the address DHCP gave a machine or saw it request.
    pub fn note_dhcp_address(&self, id: MachineId, ip: IpAddr) {
        let mut m = self.dhcp_addrs.borrow_mut();
        let mut owners = self.dhcp_owners.borrow_mut();
        if m.len() >= Self::MAX_CLIENTS && !m.contains_key(&id) {
            m.clear();
            owners.clear();
        }
        if let Some(old) = m.insert(id, ip)
            && old != ip
        {
            owners.remove(&old);
        }
        owners.insert(ip, id);
    }

    /// The machine a packet from `peer` comes from, in a few map look-ups
    /// and no scan of the records (a syslog line each): the machine last
    /// seen there (DHCP's answer, a boot file, its answer file), placed
    /// there by DHCP, or holding its bound lease. A machine is found at its
    /// recorded static address once it was seen there.
    pub fn machine_by_address(&self, peer: IpAddr) -> Option<MachineId> {
        let peer = peer.to_canonical();
        let exists = |id: MachineId| self.store.borrow().machines.contains_key(&id).then_some(id);
        if let Some(id) = self.clients.borrow().get(&peer).copied().and_then(exists) {
            return Some(id);
        }
        if let Some(id) = self
            .dhcp_owners
            .borrow()
            .get(&peer)
            .copied()
            .and_then(exists)
        {
            return Some(id);
        }
        let IpAddr::V4(v4) = peer else { return None };
        let dhcp = self.dhcp.borrow().clone()?;
        let mac = {
            let leases = dhcp.leases.borrow();
            let lease = leases.get(v4)?;
            (lease.state == crate::dhcp::lease::LeaseState::Bound).then_some(lease.mac.0)?
        };
        exists(MachineId::Mac(mac)).or_else(|| self.owner_of_mac(mac))
    }

    /// Whether a request from `peer` comes from the machine itself: from
    /// its recorded `ip`, or from the address DHCP last gave it or saw it
    /// request. An answer file fetched from there moves the machine to
    /// `installing` and carries its install key; fetched from anywhere
    /// else it is a preview that changes nothing.
    pub fn is_machine_address(&self, id: &MachineId, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        let recorded = self
            .store
            .borrow()
            .machines
            .get(id)
            .and_then(|m| m.ip)
            .is_some_and(|ip| IpAddr::V4(ip) == peer);
        recorded || self.dhcp_addrs.borrow().get(id) == Some(&peer) || self.holds_lease(id, peer)
    }

    /// Whether an HTTP read of machine `id`'s boot or answer file is a
    /// look that changes nothing and records nothing: `?preview=1` from
    /// anywhere, or the admin (API right) from an address that is not the
    /// machine's. Only the machine itself moves its state.
    pub fn is_a_look(&self, id: &MachineId, peer: IpAddr, api_right: bool, preview: bool) -> bool {
        preview || (api_right && !self.is_machine_address(id, peer))
    }

    /// Whether the durable lease table binds `peer` to this machine's
    /// MAC (its id, or the MAC its firmware was seen with): what keeps a
    /// machine's own fetches its own across a restart of the appliance,
    /// when the addresses learned from DHCP in memory are gone.
    fn holds_lease(&self, id: &MachineId, peer: IpAddr) -> bool {
        let IpAddr::V4(v4) = peer else {
            return false;
        };
        let Some(dhcp) = self.dhcp.borrow().clone() else {
            return false;
        };
        let leases = dhcp.leases.borrow();
        let Some(lease) = leases.get(v4) else {
            return false;
        };
        if lease.state != crate::dhcp::lease::LeaseState::Bound {
            return false;
        }
        let mac = lease.mac.0;
        *id == MachineId::Mac(mac) || self.owner_of_mac(mac) == Some(*id)
    }

    /// Where a machine is known to be, for messages: recorded, from DHCP.
    pub fn machine_addresses(&self, id: &MachineId) -> (Option<IpAddr>, Option<IpAddr>) {
        let recorded = self
            .store
            .borrow()
            .machines
            .get(id)
            .and_then(|m| m.ip)
            .map(IpAddr::V4);
        (recorded, self.dhcp_addrs.borrow().get(id).copied())
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

    /// A file generated for a boot loader asking over TFTP or HTTP
    /// (`over`): `pxelinux.cfg/<name>` or a GRUB config
    /// (`[dir/]grub/grub.cfg[-<name>]`, see [`crate::boot::grub`]), with an
    /// optional leading `/`. Remembers which machine asked from `client`,
    /// and records the event, unless the fetch is a look ([`App::is_a_look`]).
    pub fn boot_file(&self, name: &str, client: IpAddr, fetch: Fetch) -> Option<Vec<u8>> {
        let over = match fetch {
            Fetch::Tftp => crate::boot::grub::Over::Tftp,
            Fetch::Http { .. } => crate::boot::grub::Over::Http,
        };
        let name = name.strip_prefix('/').unwrap_or(name);
        let store = self.store.borrow();
        let (text, machine) = match name.strip_prefix("pxelinux.cfg/") {
            Some(cfg) => {
                crate::boot::config_with_machine(&store, &self.urls, self.default_boot(), cfg)?
            }
            None => {
                crate::boot::grub::config_for(&store, &self.urls, self.default_boot(), name, over)?
            }
        };
        drop(store);
        let machine = machine.filter(|id| match fetch {
            Fetch::Tftp => true,
            Fetch::Http { api_right, preview } => !self.is_a_look(id, client, api_right, preview),
        });
        match machine {
            Some(id) => {
                self.note_client(client, id);
                // The transfer's end is the boot line (tftp's report).
                self.event_at(
                    log::Level::Debug,
                    id,
                    EventKind::Tftp,
                    format!("config {name} sent to {client}"),
                );
            }
            None => log::debug!(
                "{client}: sending {name} for unknown machines ({:?})",
                self.default_boot()
            ),
        }
        Some(text.into_bytes())
    }

    /// A Raspberry Pi's file over TFTP ([`crate::boot::rpi`]): `None` for
    /// names outside the Pi tree. The Pi is the record of its serial or
    /// MAC prefix, else the machine whose firmware DHCP saw with that MAC,
    /// else the machine last seen at `client` when that is keyed the other
    /// way (a MAC-keyed Pi asking under its serial, or the reverse).
    pub fn pi_file(&self, name: &str, client: IpAddr) -> Option<crate::boot::rpi::Answer> {
        use crate::boot::rpi::{self, Prefix};
        let name = rpi::PiName::parse(name)?;
        let store = self.store.borrow();
        let id = match name.prefix() {
            None => None,
            Some(Prefix::Serial(n)) => Some(MachineId::PiSerial(n))
                .filter(|id| store.machines.contains_key(id))
                .or_else(|| {
                    self.machine_at(client)
                        .filter(|id| matches!(id, MachineId::Mac(_)))
                }),
            Some(Prefix::Mac(mac)) => Some(MachineId::Mac(mac))
                .filter(|id| store.machines.contains_key(id))
                .or_else(|| self.owner_of_mac(mac))
                .or_else(|| {
                    self.machine_at(client)
                        .filter(|id| matches!(id, MachineId::PiSerial(_)))
                }),
        };
        let m = id.and_then(|id| store.machines.get(&id));
        let boot = rpi::pi_boot(&store, &self.urls, self.default_boot(), m);
        let answer = rpi::answer(&name, boot.as_ref(), &self.config.rpi_firmware);
        drop(store);
        if let (Some(id), rpi::PiName::Config(_), rpi::Answer::Text(_)) = (id, name, &answer) {
            self.note_client(client, id);
            self.event_at(
                log::Level::Debug,
                id,
                EventKind::Tftp,
                format!("Raspberry Pi config.txt sent to {client}"),
            );
        }
        Some(answer)
    }

    pub fn default_boot(&self) -> &DefaultBoot {
        &self.config.unknown_boot
    }

    /// The boot-loader files the images tree lacks, for the loader
    /// families the boot actions use (see [`crate::loadercheck`]).
    pub fn loader_check(&self) -> crate::loadercheck::LoaderCheck {
        let store = self.store.borrow();
        let families =
            crate::loadercheck::families_in_use(store.bootactions.values().map(|a| a.loader));
        crate::loadercheck::check_tree(&self.config.images, &self.config.loaders(), &families)
    }

    /// Records an event on a machine's log and logs it at info, never held
    /// back: a state change or a record written, what an operator follows.
    pub fn event(&self, id: MachineId, kind: EventKind, detail: impl Into<String>) {
        let detail = detail.into();
        log::info!("machine {id}: {detail}");
        self.record_event(id, kind, detail);
    }

    /// Records an event seen on the wire, logging it at `level`: debug for
    /// each packet and for repeats that change nothing (such as a kickstart
    /// fetched again); info or warn for a boot step, a boot line that a
    /// storm may hold back ([`crate::boot_log`]). The event is kept either
    /// way: it is the machine's timeline.
    pub fn event_at(
        &self,
        level: log::Level,
        id: MachineId,
        kind: EventKind,
        detail: impl Into<String>,
    ) {
        let detail = detail.into();
        crate::boot_log!(level, "machine {id}: {detail}");
        self.record_event(id, kind, detail);
    }

    fn record_event(&self, id: MachineId, kind: EventKind, detail: String) {
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
        {
            let s = self.store.borrow();
            let users = s.machines.values().filter(|m| m.bootaction == a.name);
            crate::boot::check_kernel_line(&self.urls, &a, users)
                .map_err(|e| AppError::Invalid(FieldError::new("append", e.to_string())))?;
        }
        let body = store::encode(&a).map_err(AppError::Store)?;
        self.persist(Change::put(Kind::BootAction, a.name.clone(), body))
            .await?;
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
        {
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
        }
        self.persist(Change::remove(Kind::BootAction, name)).await?;
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

    /// The other machines whose record names `m`'s static address. Two
    /// records of one machine (by UUID and by MAC) may share it; two
    /// machines would both be handed it and fight over it on the wire.
    pub fn sharing_address(&self, m: &Machine) -> Vec<MachineId> {
        let Some(ip) = m.ip else {
            return Vec::new();
        };
        let store = self.store.borrow();
        store
            .machines
            .values()
            .filter(|o| o.ip == Some(ip) && o.id != m.id)
            .map(|o| o.id)
            .collect()
    }

    /// Creates or replaces a machine (a replaced record starts a new
    /// install). Returns true when it was created.
    pub async fn put_machine(&self, m: Machine) -> Result<bool, AppError> {
        self.write_machine(m, false).await
    }

    /// As [`App::put_machine`], but 409 when a machine with its id
    /// exists (adopting a discovered machine).
    pub async fn create_machine(&self, m: Machine) -> Result<(), AppError> {
        self.write_machine(m, true).await.map(|_| ())
    }

    async fn write_machine(&self, mut m: Machine, only_new: bool) -> Result<bool, AppError> {
        let _g = self.write_lock.write().await;
        if only_new && self.store.borrow().machines.contains_key(&m.id) {
            return Err(AppError::Conflict(format!("machine `{}` exists", m.id)));
        }
        self.check_references(&m)?;
        self.check_kernel_line(&m)?;
        m.updated_ms = now_ms();
        m.state = MachineState::Install;
        m.install_key = Some(new_install_key()?);
        let body = store::encode(&m).map_err(AppError::Store)?;
        self.persist(Change::put(Kind::Machine, m.id.canonical(), body))
            .await?;
        let id = m.id;
        let old = self
            .store
            .borrow_mut()
            .machines
            .insert(id, m.clone())
            .map(|o| o.state);
        let created = old.is_none();
        // A machine with a record is never `discovered`.
        self.discovered.borrow_mut().forget_machine(&id);
        let change = if created {
            crate::webhook::Change::Created
        } else {
            crate::webhook::Change::Updated
        };
        self.webhooks
            .notify(&self.metrics, now_ms(), change, &m, old, Some(m.state));
        self.event(
            id,
            if created {
                EventKind::Created
            } else {
                EventKind::Updated
            },
            if created {
                "record created through the API"
            } else {
                "record updated through the API"
            },
        );
        let sharing = self.sharing_address(&m);
        if let (Some(ip), false) = (m.ip, sharing.is_empty()) {
            let others: Vec<String> = sharing.iter().map(|o| o.to_string()).collect();
            log::warn!(
                "machine {id}: ip {ip} is also the static address of {} (fine for two records of one machine, a conflict for two machines)",
                others.join(", ")
            );
        }
        Ok(created)
    }

    pub async fn delete_machine(&self, id: &MachineId) -> Result<(), AppError> {
        let _g = self.write_lock.write().await;
        if !self.store.borrow().machines.contains_key(id) {
            return Err(AppError::NotFound(format!("no machine `{id}`")));
        }
        self.persist(Change::remove(Kind::Machine, id.canonical()))
            .await?;
        let old = self.store.borrow_mut().machines.remove(id);
        self.events.borrow_mut().remove(id);
        if let Some(m) = old {
            self.webhooks.notify(
                &self.metrics,
                now_ms(),
                crate::webhook::Change::Deleted,
                &m,
                Some(m.state),
                None,
            );
        }
        Ok(())
    }

    /// The installer fetched its answers (`kind`: the kickstart, preseed
    /// or autoinstall): `install` becomes `installing` (durably, with the
    /// event); in another state only the event is recorded (at debug: a
    /// repeat changes nothing).
    pub async fn answers_fetched(
        &self,
        id: &MachineId,
        kind: EventKind,
        detail: &str,
    ) -> Result<Machine, AppError> {
        self.transition(id, kind, detail, |m| {
            if m.state != MachineState::Install {
                return Ok(false);
            }
            m.state = MachineState::Installing;
            Ok(true)
        })
        .await
    }

    /// `reinstall`: back to `install` with a new install key, so a
    /// call-back of the install before cannot end the next one.
    pub async fn reinstall(&self, id: &MachineId, detail: &str) -> Result<Machine, AppError> {
        let key = new_install_key()?;
        self.transition(id, EventKind::Reinstall, detail, |m| {
            m.state = MachineState::Install;
            m.install_key = Some(key);
            Ok(true)
        })
        .await
    }

    /// The installer's `done` call-back: `installing` becomes `installed`
    /// when the call-back carries the install's key (or the caller holds
    /// the API right). The key stays with the record until the next
    /// install, so a retried call-back (its answer lost to a restart or a
    /// dropped connection) is answered 200 and changes nothing; only
    /// `reinstall` (or a rewrite of the record) makes a new one. 409 in
    /// another state, 403 without the proof.
    pub async fn done(&self, id: &MachineId, proof: DoneProof<'_>) -> Result<Machine, AppError> {
        self.transition(id, EventKind::Done, "installer reported done", |m| {
            let keyed = match (m.install_key, proof.key) {
                (Some(k), Some(given)) => k.matches(given),
                _ => false,
            };
            match m.state {
                // A failed install that still ends (its installer got past
                // the error, or the time-out was too short) is installed.
                MachineState::Installing | MachineState::Failed => {}
                MachineState::Installed if keyed => return Ok(false),
                _ => {
                    return Err(AppError::Conflict(format!(
                        "machine `{id}` is `{}`: `done` is taken only while it is installing (after its installer fetched its answers)",
                        m.state
                    )));
                }
            }
            if !keyed && !proof.api_right {
                return Err(AppError::Forbidden(format!(
                    "`done` for `{id}` needs the key gopxe wrote into its answer file (…/done?key=…), or the API token"
                )));
            }
            m.state = MachineState::Installed;
            Ok(true)
        })
        .await
    }

    /// The install failed (`detail` says why): `installing` becomes
    /// `failed`, durably, with the event and the webhooks told; in any
    /// other state nothing changes and nothing is recorded.
    pub async fn fail(&self, id: &MachineId, detail: &str) -> Result<Machine, AppError> {
        let installing = |app: &App| {
            app.store
                .borrow()
                .machines
                .get(id)
                .is_some_and(|m| m.state == MachineState::Installing)
        };
        if !installing(self) {
            return Err(AppError::Conflict(format!(
                "machine `{id}` is not installing"
            )));
        }
        self.transition(id, EventKind::Failed, detail, |m| {
            if m.state != MachineState::Installing {
                return Err(AppError::Conflict(format!(
                    "machine `{id}` is not installing"
                )));
            }
            m.state = MachineState::Failed;
            Ok(true)
        })
        .await
    }

    /// Turns every install that has been `installing` for `install_timeout`
    /// at `now_ms` `failed`; returns when to look again (`None`: the
    /// time-out is off). Driven by a timer ([`crate::syslog::spawn_timeout`]).
    pub async fn fail_overdue(&self, now_ms: u64) -> Option<u64> {
        let timeout_ms = self.config.install_timeout_ms;
        let overdue: Vec<MachineId> = self
            .store
            .borrow()
            .machines
            .values()
            .filter(|m| crate::model::install_overdue(m, now_ms, timeout_ms))
            .map(|m| m.id)
            .collect();
        for id in overdue {
            let why = format!(
                "install failed: still installing after {} s (install_timeout)",
                timeout_ms / 1000
            );
            if let Err(e) = self.fail(&id, &why).await {
                log::debug!("machine {id}: not failed: {e:?}");
            }
        }
        crate::model::next_install_deadline(
            self.store.borrow().machines.values(),
            now_ms,
            timeout_ms,
        )
    }

    /// Changes a machine under its locks: `change` edits a copy of the
    /// record and says whether it changed (or refuses); a changed record
    /// is made durable before memory changes and the answer goes out, a
    /// changed state is told to the webhooks, and `kind` is recorded as
    /// an event.
    async fn transition(
        &self,
        id: &MachineId,
        kind: EventKind,
        detail: &str,
        change: impl FnOnce(&mut Machine) -> Result<bool, AppError>,
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
            self.change_locked(id, kind, detail, change).await
        };
        // The map's reference and this one: nobody else waits for it.
        if Rc::strong_count(&lock) <= 2 {
            self.machine_locks.borrow_mut().remove(id);
        }
        result
    }

    /// [`App::transition`] under its locks.
    async fn change_locked(
        &self,
        id: &MachineId,
        kind: EventKind,
        detail: &str,
        change: impl FnOnce(&mut Machine) -> Result<bool, AppError>,
    ) -> Result<Machine, AppError> {
        let mut m = self
            .store
            .borrow()
            .machines
            .get(id)
            .cloned()
            .ok_or_else(|| AppError::NotFound(format!("no machine `{id}`")))?;
        let old = m.state;
        if !change(&mut m)? {
            self.event_at(
                log::Level::Debug,
                *id,
                kind,
                format!("{detail}; state {old}"),
            );
            return Ok(m);
        }
        m.updated_ms = now_ms();
        let body = store::encode(&m).map_err(AppError::Store)?;
        self.persist(Change::put(Kind::Machine, id.canonical(), body))
            .await?;
        self.store.borrow_mut().machines.insert(*id, m.clone());
        if m.state != old {
            self.webhooks.notify(
                &self.metrics,
                now_ms(),
                crate::webhook::Change::StateChanged,
                &m,
                Some(old),
                Some(m.state),
            );
        }
        self.event(*id, kind, format!("{detail}; state {}", m.state));
        Ok(m)
    }

    /// Stores an admin kickstart template (already checked). True if created.
    pub async fn put_template(&self, name: &str, text: String) -> Result<bool, AppError> {
        let _g = self.write_lock.write().await;
        self.persist(Change::put(Kind::Template, name, text.clone().into_bytes()))
            .await?;
        Ok(self
            .store
            .borrow_mut()
            .templates
            .insert(name.to_string(), text)
            .is_none())
    }

    pub async fn delete_template(&self, name: &str) -> Result<(), AppError> {
        let _g = self.write_lock.write().await;
        {
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
        }
        self.persist(Change::remove(Kind::Template, name)).await?;
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
pub(crate) mod tests {
    use super::*;
    use crate::model::{BootActionBody, MachineBody};
    use std::net::Ipv4Addr;

    /// An app whose store is a fresh folder (removed by the caller, once
    /// the app is dropped: its store writes journal files on threads).
    pub(crate) fn app_on_disk(tag: &str) -> (App, PathBuf) {
        let dir = std::env::temp_dir().join(format!("gopxe-app-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, _) = Store::open(&dir).unwrap();
        let config = Config {
            data_dir: dir.clone(),
            ..Config::default()
        };
        let app = App::new(config, Urls::new(Ipv4Addr::LOCALHOST, 9090), store);
        (app, dir)
    }

    /// Closes the app's store (its journal's committer finishes and the
    /// data dir is unlocked) and opens the data dir again, as a restart
    /// would: the machines that were in memory, the store read back, and
    /// its warnings.
    fn close_and_reopen(
        app: &App,
        dir: &std::path::Path,
    ) -> (
        std::collections::BTreeMap<MachineId, Machine>,
        Store,
        Vec<String>,
    ) {
        let closed = app.store.replace(Store::default());
        let mem = closed.machines.clone();
        drop(closed);
        let (disk, warnings) = Store::open(dir).unwrap();
        (mem, disk, warnings)
    }

    /// Boot action `a` (once) and a machine with this MAC using it.
    pub(crate) async fn add_machine(app: &App, mac: &str) -> MachineId {
        if !app.store.borrow().bootactions.contains_key("a") {
            let body = BootActionBody {
                kernel: Some("k".into()),
                ..Default::default()
            };
            let a = BootAction::from_body("a", body).unwrap();
            app.put_bootaction(a).await.unwrap();
        }
        let body = MachineBody {
            mac: Some(mac.into()),
            bootaction: Some("a".into()),
            ..Default::default()
        };
        let m = Machine::from_body(body, None).unwrap();
        let id = m.id;
        app.put_machine(m).await.unwrap();
        id
    }

    /// A static address named by two records is accepted (two records
    /// of one machine may share it) and said: [`App::sharing_address`]
    /// names the other record until one of them moves.
    #[test]
    fn a_shared_static_address_is_named() {
        let (app, dir) = app_on_disk("same-ip");
        smol::block_on(async {
            add_machine(&app, "52:54:00:00:00:01").await;
            let with_ip = |mac: &str, ip: &str| {
                let body = MachineBody {
                    mac: Some(mac.into()),
                    bootaction: Some("a".into()),
                    ip: Some(ip.into()),
                    mask: Some("255.255.255.0".into()),
                    gw: Some("10.0.0.1".into()),
                    ..Default::default()
                };
                Machine::from_body(body, None).unwrap()
            };
            let one = with_ip("52:54:00:00:00:01", "10.0.0.5");
            app.put_machine(one.clone()).await.unwrap();
            assert!(app.sharing_address(&one).is_empty(), "its own record");
            let two = with_ip("52:54:00:00:00:02", "10.0.0.5");
            let ((), lines) = crate::logging::capture::lines(|| {
                smol::block_on(app.put_machine(two.clone())).unwrap();
            });
            let warned = lines.iter().any(|l| {
                l.0 == log::Level::Warn
                    && l.2.contains("10.0.0.5")
                    && l.2.contains("01-52-54-00-00-00-01")
            });
            assert!(warned, "{lines:#?}");
            assert_eq!(app.sharing_address(&two), [one.id]);
            app.put_machine(with_ip("52:54:00:00:00:01", "10.0.0.6"))
                .await
                .unwrap();
            assert!(app.sharing_address(&two).is_empty());
        });
        drop(app);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A machine's own address is its recorded one, the one DHCP gave it
    /// (in memory), or a bound lease of its MAC in the durable table (all
    /// that is left of DHCP after a restart); no other address is.
    #[test]
    fn machine_addresses_include_its_lease() {
        use crate::dhcp::lease::{Lease, LeaseChange, LeaseState};
        use crate::dhcp::packet::Mac;
        let (app, dir) = app_on_disk("leased");
        smol::block_on(async {
            let id = add_machine(&app, "52:54:00:00:00:07").await;
            let other = add_machine(&app, "52:54:00:00:00:08").await;
            let at = |o: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, o));
            assert!(!app.is_machine_address(&id, at(7)), "no DHCP state yet");
            let dhcp = crate::dhcp::DhcpState::in_memory();
            *app.dhcp.borrow_mut() = Some(dhcp.clone());
            let bind = |o: u8, mac: [u8; 6], state: LeaseState| {
                LeaseChange::Bind(Lease {
                    ip: Ipv4Addr::new(10, 0, 0, o),
                    state,
                    client_id: [&[1u8][..], &mac].concat(),
                    mac: Mac(mac),
                    expires: u64::MAX,
                    hostname: None,
                })
            };
            let mut leases = dhcp.leases.borrow_mut();
            leases.apply(&bind(7, [0x52, 0x54, 0, 0, 0, 7], LeaseState::Bound));
            leases.apply(&bind(9, [0x52, 0x54, 0, 0, 0, 9], LeaseState::Bound));
            drop(leases);
            assert!(app.is_machine_address(&id, at(7)));
            let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped());
            assert!(app.is_machine_address(&id, mapped));
            assert!(
                !app.is_machine_address(&other, at(7)),
                "someone else's lease"
            );
            assert!(!app.is_machine_address(&id, at(9)), "another MAC's lease");
            assert!(!app.is_machine_address(&id, at(10)), "no lease");
            app.note_dhcp_address(other, at(8));
            assert!(app.is_machine_address(&other, at(8)));
        });
        drop(app);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Many state changes at once, several per machine, as in a boot
    /// storm: each lands on disk exactly as it is in memory, and no
    /// machine lock is left behind.
    #[test]
    fn concurrent_state_changes_are_durable_and_consistent() {
        let (app, dir) = app_on_disk("states");
        let app = Rc::new(app);
        let ex = smol::LocalExecutor::new();
        let ids: Vec<MachineId> = smol::block_on(ex.run(async {
            let mut ids = Vec::new();
            for i in 0..10u8 {
                ids.push(add_machine(&app, &format!("52:54:00:00:00:{i:02x}")).await);
            }
            ids
        }));
        smol::block_on(ex.run(async {
            let tasks: Vec<_> = (0..60)
                .map(|i| {
                    let app = app.clone();
                    let id = ids[i % ids.len()];
                    let step = (i / ids.len()) % 3;
                    ex.spawn(async move {
                        let proof = DoneProof {
                            key: None,
                            api_right: true,
                        };
                        match step {
                            0 => app.answers_fetched(&id, EventKind::Kickstart, "test").await,
                            1 => app.done(&id, proof).await,
                            _ => app.reinstall(&id, "test").await,
                        }
                        .map(|m| m.state)
                    })
                })
                .collect();
            for t in tasks {
                assert!(t.await.is_ok());
            }
        }));
        assert!(app.machine_locks.borrow().is_empty());
        let (mem, disk, warnings) = close_and_reopen(&app, &dir);
        assert!(warnings.is_empty(), "{warnings:?}");
        for id in &ids {
            let mem = mem.get(id).cloned();
            assert_eq!(disk.machines.get(id), mem.as_ref(), "{id}");
            let mem = mem.map(|m| m.state);
            // 60 changes over 10 machines: each saw the three states twice,
            // the last one `install`.
            assert_eq!(mem, Some(MachineState::Install), "{id}");
        }
        drop(disk);
        drop(app);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `failed`: from `installing` only, by a failure or the time-out
    /// (the clock passed in by hand); `reinstall` clears it, and a `done`
    /// with the key is still taken (the installer finished after all).
    /// Each change is durable and an event.
    #[test]
    fn failed_installs_and_the_timeout() {
        let (mut app, dir) = app_on_disk("failed");
        app.config.install_timeout_ms = 60_000;
        smol::block_on(async {
            let id = add_machine(&app, "52:54:00:00:00:01").await;
            let state = |app: &App| app.store.borrow().machines[&id].state;
            assert!(matches!(
                app.fail(&id, "x").await,
                Err(AppError::Conflict(_))
            ));
            assert_eq!(state(&app), MachineState::Install);
            app.answers_fetched(&id, EventKind::Kickstart, "ks")
                .await
                .unwrap();
            let since = app.store.borrow().machines[&id].updated_ms;
            // Not yet overdue; the next look is when it will be.
            assert_eq!(app.fail_overdue(since + 59_999).await, Some(since + 60_000));
            assert_eq!(state(&app), MachineState::Installing);
            let next = app.fail_overdue(since + 60_000).await;
            assert_eq!(state(&app), MachineState::Failed);
            assert_eq!(next, Some(since + 120_000), "nothing installing");
            let last = app.last_event(&id).unwrap();
            assert_eq!(last.kind, EventKind::Failed);
            assert!(last.detail.contains("install_timeout"), "{}", last.detail);
            // Failed stays failed: a time-out or a failure again changes nothing.
            app.fail_overdue(since + 600_000).await;
            assert!(app.fail(&id, "again").await.is_err());
            assert_eq!(state(&app), MachineState::Failed);
            // An answer file fetched again does not restart it either.
            app.answers_fetched(&id, EventKind::Kickstart, "ks")
                .await
                .unwrap();
            assert_eq!(state(&app), MachineState::Failed);
            // `done` with the key: installed.
            let hex = app.store.borrow().machines[&id].install_key.unwrap().hex();
            let proof = DoneProof {
                key: Some(&hex),
                api_right: false,
            };
            assert_eq!(
                app.done(&id, proof).await.unwrap().state,
                MachineState::Installed
            );
            // A failure from the log, then `reinstall` clears it.
            app.reinstall(&id, "again").await.unwrap();
            app.answers_fetched(&id, EventKind::Kickstart, "ks")
                .await
                .unwrap();
            let m = app
                .fail(&id, "install failed: the installer logged x")
                .await
                .unwrap();
            assert_eq!(m.state, MachineState::Failed);
            let m = app.reinstall(&id, "reinstall requested").await.unwrap();
            assert_eq!(m.state, MachineState::Install);
            // Durable: what is on disk is what is in memory.
            let (mem, disk, _) = close_and_reopen(&app, &dir);
            assert_eq!(disk.machines.get(&id), mem.get(&id));
        });
        // 0: no time-out at all.
        app.config.install_timeout_ms = 0;
        assert_eq!(smol::block_on(app.fail_overdue(u64::MAX)), None);
        drop(app);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A syslog sender is found by the address it was seen at (DHCP's
    /// answer, its answer-file fetch), placed at by DHCP, or its lease;
    /// a deleted machine is found nowhere.
    #[test]
    fn machines_are_found_by_address() {
        let (app, dir) = app_on_disk("by-address");
        smol::block_on(async {
            let id = add_machine(&app, "52:54:00:00:00:01").await;
            let other = add_machine(&app, "52:54:00:00:00:02").await;
            let at = |o: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, o));
            assert_eq!(app.machine_by_address(at(1)), None);
            app.note_client(at(1), id);
            assert_eq!(app.machine_by_address(at(1)), Some(id));
            let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
            assert_eq!(app.machine_by_address(mapped), Some(id));
            app.note_dhcp_address(other, at(2));
            assert_eq!(app.machine_by_address(at(2)), Some(other));
            app.note_dhcp_address(other, at(3));
            assert_eq!(app.machine_by_address(at(2)), None, "moved");
            assert_eq!(app.machine_by_address(at(3)), Some(other));
            app.delete_machine(&other).await.unwrap();
            assert_eq!(app.machine_by_address(at(3)), None, "deleted");
        });
        drop(app);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A machine keyed by UUID is found by the MAC its firmware used, the
    /// latest one, while the record exists.
    #[test]
    fn learned_macs_find_their_machine() {
        let app = App::new(
            Config::default(),
            Urls::new(Ipv4Addr::LOCALHOST, 9090),
            Store::default(),
        );
        let body = MachineBody {
            uuid: Some("8d6f2a1e-4b3c-4d2e-9f10-a1b2c3d4e5f6".into()),
            bootaction: Some("a".into()),
            ..Default::default()
        };
        let m = Machine::from_body(body, None).unwrap();
        let id = m.id;
        let (a, b) = ([2u8; 6], [3u8; 6]);
        app.learn_mac(id, a);
        assert_eq!(app.owner_of_mac(a), None, "no record yet");
        app.store.borrow_mut().machines.insert(id, m);
        assert_eq!(app.owner_of_mac(a), Some(id));
        app.learn_mac(id, b);
        assert_eq!((app.owner_of_mac(a), app.owner_of_mac(b)), (None, Some(id)));
        app.store.borrow_mut().machines.remove(&id);
        assert_eq!(app.owner_of_mac(b), None, "a deleted record");
    }

    /// The `done` call-back: only while installing, only with the key of
    /// the current install (or the API right); a retry is answered and
    /// changes nothing; a reinstall makes the old key useless.
    #[test]
    fn done_needs_the_current_key_once() {
        let (app, dir) = app_on_disk("done");
        smol::block_on(async {
            let id = add_machine(&app, "52:54:00:00:00:01").await;
            let key = |app: &App| app.store.borrow().machines[&id].install_key.unwrap();
            let first = key(&app);
            fn with(k: &str) -> DoneProof<'_> {
                DoneProof {
                    key: Some(k),
                    api_right: false,
                }
            }
            let hex = first.hex();
            // Not yet installing: 409 even with the key.
            assert!(matches!(
                app.done(&id, with(&hex)).await,
                Err(AppError::Conflict(_))
            ));
            app.answers_fetched(&id, EventKind::Kickstart, "ks")
                .await
                .unwrap();
            for bad in ["", "preview", &"0".repeat(32), &hex[..31]] {
                assert!(
                    matches!(app.done(&id, with(bad)).await, Err(AppError::Forbidden(_))),
                    "{bad:?}"
                );
            }
            let none = DoneProof {
                key: None,
                api_right: false,
            };
            assert!(matches!(
                app.done(&id, none).await,
                Err(AppError::Forbidden(_))
            ));
            assert_eq!(
                app.store.borrow().machines[&id].state,
                MachineState::Installing
            );
            let m = app.done(&id, with(&hex)).await.unwrap();
            assert_eq!(m.state, MachineState::Installed);
            // A retry of the same call-back (its answer lost) is answered
            // and changes nothing; any other key meets the new state.
            let updated = m.updated_ms;
            let again = app.done(&id, with(&hex)).await.unwrap();
            assert_eq!(
                (again.state, again.updated_ms),
                (MachineState::Installed, updated)
            );
            assert!(matches!(
                app.done(&id, with(&"0".repeat(32))).await,
                Err(AppError::Conflict(_))
            ));
            // A reinstall brings a new key; the old one no longer works.
            app.reinstall(&id, "again").await.unwrap();
            let second = key(&app);
            assert_ne!(second, first);
            app.answers_fetched(&id, EventKind::Kickstart, "ks")
                .await
                .unwrap();
            assert!(matches!(
                app.done(&id, with(&hex)).await,
                Err(AppError::Forbidden(_))
            ));
            // A reinstall of a machine already in `install` renews it too.
            app.reinstall(&id, "again").await.unwrap();
            assert_ne!(key(&app), second);
            // The API right ends an install without the key.
            app.answers_fetched(&id, EventKind::Kickstart, "ks")
                .await
                .unwrap();
            let admin = DoneProof {
                key: None,
                api_right: true,
            };
            assert!(app.done(&id, admin).await.is_ok());
            // What is on disk is what is in memory, key included.
            let (mem, disk, _) = close_and_reopen(&app, &dir);
            assert_eq!(disk.machines.get(&id), mem.get(&id));
        });
        drop(app);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
