//! The discovery inbox: unknown netboot clients DHCP has seen, waiting
//! for the admin to adopt them (`POST /discovered/{mac}/adopt`).
//!
//! Layer: service (single-threaded state) with one small file; below
//! `app` (which holds the inbox) and above `boot`, `dhcp`, `model` and
//! `store`.
//! The DHCP core hands the details of an unknown PXE / HTTP-boot / iPXE /
//! Pi client's DISCOVER or REQUEST to the service layer
//! ([`crate::dhcp::ClientInfo`], RFC 4578 options 93/60/97, RFC 3046
//! option 82); `services::on_dhcp_event` files them here ([`Inbox::seen`]).
//! Adoption is `http::discovery`'s. Discovery changes no DHCP answer: an
//! unknown machine boots `unknown_boot` until adopted.
//!
//! Bounds: at most `discovered_max` machines; a new one past that drops
//! the one seen longest ago, counted in `gopxe_discovered_dropped_total`.
//! Each keeps its last [`EVENTS_KEPT`] DHCP events. An update is a hash
//! look-up plus a move in an ordered map (O(log n)); no text is formatted
//! and nothing is written on the packet path.
//!
//! Persistence: `discovered.rec` in the data dir, a store record
//! ([`crate::store::encode`]: magic, schema version, CRC-32, postcard),
//! written whole and atomically (temp file, fsync, rename) off the
//! executor, at most every [`SAVE_EVERY`] when something changed, and at
//! shutdown. A missing file is an empty inbox; an unreadable or corrupt
//! one is a warning and an empty inbox, never a refusal to start. The
//! inbox is a convenience, not a record: a crash loses at most the last
//! few seconds of sightings, which the next DHCP packet brings back.

use crate::dhcp::{ClientInfo, Event};
use crate::model::{MachineId, format_mac, format_uuid, swap_uuid};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Events kept per discovered machine.
pub const EVENTS_KEPT: usize = 16;
/// The inbox file, under the data dir.
pub const FILE: &str = "discovered.rec";
/// Longest a change waits before it is written.
pub const SAVE_EVERY: Duration = Duration::from_secs(3);

/// One DHCP event of a discovered machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub at_ms: u64,
    /// `DISCOVER`, `OFFER`, `PROXY`, ...
    pub msg: Cow<'static, str>,
    /// `received`, `sent`, ...
    pub outcome: Cow<'static, str>,
    pub ip: Option<Ipv4Addr>,
    pub boot_file: Option<String>,
}

/// A discovered machine, raw as its requests carried it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub mac: [u8; 6],
    /// Option 97 as sent (SMBIOS wire order).
    pub uuid: Option<[u8; 16]>,
    /// The firmware class name (`bios`, `efi-x64`, `ipxe`, ...).
    pub firmware: Cow<'static, str>,
    /// Option 93.
    pub arch: Option<u16>,
    /// Option 60.
    pub vendor_class: Option<Vec<u8>>,
    /// Option 82 sub-options 1 and 2.
    pub circuit_id: Option<Vec<u8>>,
    pub remote_id: Option<Vec<u8>>,
    /// giaddr, when relayed.
    pub relay: Option<Ipv4Addr>,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// DISCOVERs and REQUESTs seen.
    pub times_seen: u64,
    /// Oldest first, at most [`EVENTS_KEPT`].
    pub events: VecDeque<Seen>,
}

impl Entry {
    fn push(&mut self, s: Seen) {
        if self.events.len() >= EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(s);
    }
}

/// The inbox file's content: the entries, seen longest ago first.
#[derive(Serialize, Deserialize)]
pub struct Snapshot {
    pub entries: Vec<Entry>,
}

impl crate::store::Record for Snapshot {
    const VERSION: u16 = 1;
}

/// The bounded inbox. Entries by MAC, and their order of last sighting
/// (a sequence number, so a clock step cannot reorder them).
#[derive(Debug, Default)]
pub struct Inbox {
    max: usize,
    entries: HashMap<[u8; 6], (u64, Entry)>,
    order: BTreeMap<u64, [u8; 6]>,
    next: u64,
    /// Machines dropped to make room since start.
    pub dropped: u64,
    /// Changed since the last [`Inbox::take_dirty`].
    dirty: bool,
}

impl Inbox {
    pub fn new(max: usize) -> Inbox {
        Inbox {
            max: max.max(1),
            ..Inbox::default()
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, mac: &[u8; 6]) -> Option<&Entry> {
        self.entries.get(mac).map(|(_, e)| e)
    }

    /// Most recently seen first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Entry> {
        self.order.values().rev().filter_map(|m| self.get(m))
    }

    fn touch(&mut self, mac: [u8; 6]) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, mac);
        seq
    }

    /// A DISCOVER or REQUEST of an unknown netboot client: a new entry
    /// (dropping the one seen longest ago when full) or an update of its
    /// own. Returns how many were dropped.
    pub fn seen(&mut self, now: u64, e: &Event, c: &ClientInfo, what: Seen) -> u64 {
        let mac = e.mac.0;
        let mut dropped = 0;
        if !self.entries.contains_key(&mac) {
            while self.entries.len() >= self.max {
                let Some((_, old)) = self.order.pop_first() else {
                    break;
                };
                self.entries.remove(&old);
                dropped += 1;
            }
        }
        let seq = self.touch(mac);
        let (old_seq, entry) = self.entries.entry(mac).or_insert_with(|| {
            (
                seq,
                Entry {
                    mac,
                    uuid: None,
                    firmware: Cow::Borrowed(""),
                    arch: None,
                    vendor_class: None,
                    circuit_id: None,
                    remote_id: None,
                    relay: None,
                    first_seen_ms: now,
                    last_seen_ms: now,
                    times_seen: 0,
                    events: VecDeque::new(),
                },
            )
        });
        if *old_seq != seq {
            self.order.remove(old_seq);
            *old_seq = seq;
        }
        if e.uuid.is_some() {
            entry.uuid = e.uuid;
        }
        entry.firmware = Cow::Borrowed(c.firmware.name());
        entry.arch = c.arch;
        set_if_changed(&mut entry.vendor_class, &c.vendor_class);
        set_if_changed(&mut entry.circuit_id, &c.circuit_id);
        set_if_changed(&mut entry.remote_id, &c.remote_id);
        entry.relay = c.relay;
        entry.last_seen_ms = now;
        entry.times_seen += 1;
        entry.push(what);
        self.dropped += dropped;
        self.dirty = true;
        dropped
    }

    /// Another event of a client already in the inbox (gopxe's answer);
    /// nothing for any other client.
    pub fn note(&mut self, mac: &[u8; 6], what: impl FnOnce() -> Seen) {
        if let Some((_, e)) = self.entries.get_mut(mac) {
            e.push(what());
            self.dirty = true;
        }
    }

    pub fn remove(&mut self, mac: &[u8; 6]) -> Option<Entry> {
        let (seq, e) = self.entries.remove(mac)?;
        self.order.remove(&seq);
        self.dirty = true;
        Some(e)
    }

    /// Drops what a machine record now covers: the entry of its MAC, or
    /// those whose option 97 names it (a UUID in either byte order, a
    /// Raspberry Pi's serial), as the DHCP lookup finds them.
    pub fn forget_machine(&mut self, id: &MachineId) {
        let covers = |u: &[u8; 16]| match id {
            MachineId::PiSerial(n) => {
                crate::boot::rpi::serials_in_guid(u).is_some_and(|s| s.contains(n))
            }
            _ => id.matches_uuid_bytes(u),
        };
        let macs: Vec<[u8; 6]> = match id {
            MachineId::Mac(m) => vec![*m],
            _ => self
                .entries
                .values()
                .filter(|(_, e)| e.uuid.as_ref().is_some_and(covers))
                .map(|(_, e)| e.mac)
                .collect(),
        };
        for m in macs {
            self.remove(&m);
        }
    }

    /// Whether it changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn snapshot(&self) -> Snapshot {
        let entries = self
            .order
            .values()
            .filter_map(|m| self.get(m).cloned())
            .collect();
        Snapshot { entries }
    }

    /// An inbox holding `s` (the newest `max` of it).
    pub fn from_snapshot(max: usize, s: Snapshot) -> Inbox {
        let mut inbox = Inbox::new(max);
        let skip = s.entries.len().saturating_sub(inbox.max);
        for e in s.entries.into_iter().skip(skip) {
            let seq = inbox.touch(e.mac);
            if let Some((old, _)) = inbox.entries.insert(e.mac, (seq, e)) {
                inbox.order.remove(&old);
            }
        }
        inbox
    }
}

fn set_if_changed(slot: &mut Option<Vec<u8>>, new: &Option<Vec<u8>>) {
    if slot != new {
        slot.clone_from(new);
    }
}

/// Bytes as text: printable ASCII as it is, anything else `\xNN`.
pub fn text(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// An option 82 id: printable ASCII as it is, else `0x` and hex digits.
pub fn id_text(b: &[u8]) -> String {
    if !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        String::from_utf8_lossy(b).into_owned()
    } else {
        let mut s = String::with_capacity(2 + 2 * b.len());
        s.push_str("0x");
        for c in b {
            s.push_str(&format!("{c:02x}"));
        }
        s
    }
}

/// An entry as the API shows it.
pub fn json(e: &Entry) -> serde_json::Value {
    let mac = format_mac(&e.mac, ":");
    serde_json::json!({
        "mac": mac,
        "uuid_wire": e.uuid.map(|u| format_uuid(&u)),
        "uuid_dmidecode": e.uuid.map(|u| format_uuid(&swap_uuid(u))),
        "firmware": e.firmware,
        "arch": e.arch,
        "vendor_class": e.vendor_class.as_deref().map(text),
        "circuit_id": e.circuit_id.as_deref().map(id_text),
        "remote_id": e.remote_id.as_deref().map(id_text),
        "relay": e.relay.map(|r| r.to_string()),
        "first_seen_ms": e.first_seen_ms,
        "last_seen_ms": e.last_seen_ms,
        "times_seen": e.times_seen,
        "events": e.events.iter().map(|s| serde_json::json!({
            "at_ms": s.at_ms,
            "kind": format!("{} {}", s.msg, s.outcome),
            "ip": s.ip.map(|i| i.to_string()),
            "boot_file": s.boot_file,
        })).collect::<Vec<_>>(),
        "adopt": format!("/discovered/{mac}/adopt"),
    })
}

/// The metrics of the inbox (appended to `GET /metrics`).
pub fn metrics_text(inbox: &Inbox) -> String {
    format!(
        "# HELP gopxe_discovered Unknown netboot clients in the discovery inbox.\n\
         # TYPE gopxe_discovered gauge\ngopxe_discovered {}\n\
         # HELP gopxe_discovered_dropped_total Discovered machines dropped to keep the inbox within discovered_max.\n\
         # TYPE gopxe_discovered_dropped_total counter\ngopxe_discovered_dropped_total {}\n",
        inbox.len(),
        inbox.dropped
    )
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The inbox saved in `data_dir`; empty, with a warning, when it cannot
/// be read.
pub fn load(data_dir: &Path, max: usize) -> Inbox {
    let p = path(data_dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Inbox::new(max),
        Err(e) => {
            log::warn!("discovery inbox {}: {e}; starting empty", p.display());
            return Inbox::new(max);
        }
    };
    match crate::store::decode::<Snapshot>(&bytes) {
        Ok(s) => Inbox::from_snapshot(max, s),
        Err(e) => {
            log::warn!("discovery inbox {}: {e}; starting empty", p.display());
            Inbox::new(max)
        }
    }
}

/// A periodic save is being written (off the executor): the one at
/// shutdown waits for it, so the two never share the temp file.
static SAVING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes the inbox now (blocking), if it changed: at shutdown.
pub fn save_now(inbox: &RefCell<Inbox>, data_dir: &Path) {
    let t0 = std::time::Instant::now();
    while SAVING.load(std::sync::atomic::Ordering::Acquire) && t0.elapsed() < SAVE_EVERY {
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Some(bytes) = encode_if_dirty(inbox)
        && let Err(e) = crate::store::write_atomic(&path(data_dir), &bytes)
    {
        log::warn!("discovery inbox: cannot save: {e}");
    }
}

fn encode_if_dirty(inbox: &RefCell<Inbox>) -> Option<Vec<u8>> {
    let mut inbox = inbox.borrow_mut();
    if !inbox.take_dirty() {
        return None;
    }
    match crate::store::encode(&inbox.snapshot()) {
        Ok(b) => Some(b),
        Err(e) => {
            log::warn!("discovery inbox: cannot encode: {e}");
            None
        }
    }
}

/// Loads the inbox saved in `data_dir` into `inbox` and keeps saving it
/// while gopxe runs.
pub fn start(
    ex: &smol::LocalExecutor<'static>,
    inbox: std::rc::Rc<RefCell<Inbox>>,
    data_dir: PathBuf,
    max: usize,
) {
    let loaded = load(&data_dir, max);
    if !loaded.is_empty() {
        log::info!("discovery inbox: {} machine(s)", loaded.len());
    }
    *inbox.borrow_mut() = loaded;
    ex.spawn(async move {
        loop {
            async_io::Timer::after(SAVE_EVERY).await;
            if let Some(bytes) = encode_if_dirty(&inbox) {
                let p = path(&data_dir);
                SAVING.store(true, std::sync::atomic::Ordering::Release);
                let written = smol::unblock(move || {
                    let r = crate::store::write_atomic(&p, &bytes);
                    SAVING.store(false, std::sync::atomic::Ordering::Release);
                    r
                })
                .await;
                if let Err(e) = written {
                    log::warn!("discovery inbox: cannot save: {e}");
                }
            }
        }
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::boot::Firmware;
    use crate::dhcp::packet::Mac;

    fn mac(n: u32) -> [u8; 6] {
        let b = n.to_be_bytes();
        [0x52, 0x54, b[0], b[1], b[2], b[3]]
    }

    fn event(m: [u8; 6], uuid: Option<[u8; 16]>) -> Event {
        Event {
            kind: crate::dhcp::EventKind::DiscoverSeen,
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
            firmware: Firmware::EfiX64,
            arch: Some(7),
            vendor_class: Some(b"PXEClient:Arch:00007:UNDI:003000".to_vec()),
            circuit_id: Some(b"ge-0/0/1".to_vec()),
            remote_id: Some(vec![0, 0x1b, 0xff]),
            relay: Some(Ipv4Addr::new(10, 0, 0, 254)),
        }
    }

    fn what(at: u64) -> Seen {
        Seen {
            at_ms: at,
            msg: "DISCOVER".into(),
            outcome: "received".into(),
            ip: None,
            boot_file: None,
        }
    }

    fn see(inbox: &mut Inbox, n: u32, now: u64) -> u64 {
        inbox.seen(now, &event(mac(n), None), &info(), what(now))
    }

    fn macs(inbox: &Inbox) -> Vec<[u8; 6]> {
        inbox.newest_first().map(|e| e.mac).collect()
    }

    #[test]
    fn the_oldest_sighting_is_dropped_and_counted() {
        let mut inbox = Inbox::new(3);
        for n in 1..=3 {
            assert_eq!(see(&mut inbox, n, 1000 * u64::from(n)), 0);
        }
        // 1 comes back: now the newest; 2 is the oldest.
        assert_eq!(see(&mut inbox, 1, 4000), 0);
        assert_eq!(macs(&inbox), [mac(1), mac(3), mac(2)]);
        assert_eq!(see(&mut inbox, 4, 5000), 1);
        assert_eq!(macs(&inbox), [mac(4), mac(1), mac(3)]);
        assert_eq!((inbox.len(), inbox.dropped), (3, 1));
        let one = inbox.get(&mac(1)).unwrap();
        assert_eq!(
            (one.first_seen_ms, one.last_seen_ms, one.times_seen),
            (1000, 4000, 2)
        );
        assert_eq!(one.firmware, "efi-x64");
        assert_eq!(one.relay, Some(Ipv4Addr::new(10, 0, 0, 254)));
        // A flood of new MACs keeps it at its bound.
        for n in 100..1100 {
            see(&mut inbox, n, 10_000 + u64::from(n));
        }
        assert_eq!((inbox.len(), inbox.dropped), (3, 1001));
        assert_eq!(macs(&inbox), [mac(1099), mac(1098), mac(1097)]);
        assert_eq!(inbox.order.len(), 3, "no stale order entries");
    }

    #[test]
    fn events_are_bounded_and_answers_go_to_known_entries_only() {
        let mut inbox = Inbox::new(10);
        for t in 0..40 {
            see(&mut inbox, 1, t);
        }
        inbox.note(&mac(1), || Seen {
            msg: "OFFER".into(),
            outcome: "sent".into(),
            ..what(41)
        });
        inbox.note(&mac(2), || unreachable!("no entry, nothing built"));
        let e = inbox.get(&mac(1)).unwrap();
        assert_eq!(e.events.len(), EVENTS_KEPT);
        assert_eq!(e.events.back().map(|s| s.msg.as_ref()), Some("OFFER"));
        assert_eq!(e.events.front().map(|s| s.at_ms), Some(25));
        assert_eq!(e.times_seen, 40);
        assert!(inbox.get(&mac(2)).is_none());
    }

    #[test]
    fn a_uuid_is_kept_and_a_record_forgets_its_entries() {
        let mut inbox = Inbox::new(10);
        let wire = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        inbox.seen(1, &event(mac(1), Some(wire)), &info(), what(1));
        // A later request without option 97 keeps the UUID.
        inbox.seen(2, &event(mac(1), None), &info(), what(2));
        see(&mut inbox, 2, 3);
        let j = json(inbox.get(&mac(1)).unwrap());
        assert_eq!(j["uuid_wire"], "01020304-0506-0708-090a-0b0c0d0e0f10");
        assert_eq!(j["uuid_dmidecode"], "04030201-0605-0807-090a-0b0c0d0e0f10");
        assert_eq!(j["circuit_id"], "ge-0/0/1");
        assert_eq!(j["remote_id"], "0x001bff");
        assert_eq!(j["vendor_class"], "PXEClient:Arch:00007:UNDI:003000");
        assert_eq!(j["mac"], "52:54:00:00:00:01");
        // A record by the dmidecode form of the UUID covers it.
        inbox.take_dirty();
        inbox.forget_machine(&MachineId::Uuid(swap_uuid(wire)));
        assert_eq!(macs(&inbox), [mac(2)]);
        assert!(inbox.take_dirty());
        inbox.forget_machine(&MachineId::Mac(mac(2)));
        assert!(inbox.is_empty() && inbox.order.is_empty());
        // A Raspberry Pi record by its serial covers the Pi whose option
        // 97 carries it (a Pi 3B+: the serial four times).
        let pi = [0x1a, 0x2b, 0x3c, 0x4d].repeat(4).try_into().unwrap();
        inbox.seen(4, &event(mac(3), Some(pi)), &info(), what(4));
        inbox.forget_machine(&MachineId::PiSerial(0x1234_5678));
        assert_eq!(inbox.len(), 1);
        inbox.forget_machine(&MachineId::PiSerial(0x1a2b_3c4d));
        assert!(inbox.is_empty());
    }

    #[test]
    fn sanitised_text() {
        assert_eq!(text(b"PXEClient\n\x00<b>"), "PXEClient\\n\\x00<b>");
        assert_eq!(id_text(b"port 1"), "port 1");
        assert_eq!(id_text(b"p1\0"), "0x703100");
        assert_eq!(id_text(b""), "0x");
    }

    /// Per-update cost: 200,000 sightings of random MACs into a full
    /// inbox of 1000 stay well under a second even unoptimised, and
    /// the maps never grow past the bound.
    #[test]
    fn updates_are_cheap() {
        let mut inbox = Inbox::new(1000);
        let mut x: u32 = 0x9e37_79b9;
        let start = std::time::Instant::now();
        for t in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            see(&mut inbox, x % 5000, t);
            assert!(inbox.entries.len() <= 1000 && inbox.order.len() <= 1000);
        }
        assert_eq!(inbox.len(), 1000);
        assert!(inbox.dropped > 0);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn saved_and_loaded_corrupt_is_empty() {
        let dir = std::env::temp_dir().join(format!("gopxe-discovered-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut inbox = Inbox::new(5);
        for n in 1..=4 {
            see(&mut inbox, n, u64::from(n));
        }
        let bytes = crate::store::encode(&inbox.snapshot()).unwrap();
        crate::store::write_atomic(&path(&dir), &bytes).unwrap();
        let back = load(&dir, 5);
        assert_eq!(macs(&back), macs(&inbox));
        assert_eq!(back.get(&mac(2)), inbox.get(&mac(2)));
        // A smaller bound keeps the newest.
        assert_eq!(macs(&load(&dir, 2)), [mac(4), mac(3)]);
        // Corrupt, truncated, or not a file: empty, no panic.
        let mut bad = bytes.clone();
        if let Some(b) = bad.last_mut() {
            *b ^= 0xff;
        }
        std::fs::write(path(&dir), &bad).unwrap();
        assert!(load(&dir, 5).is_empty());
        std::fs::write(path(&dir), &bytes[..5]).unwrap();
        assert!(load(&dir, 5).is_empty());
        std::fs::remove_file(path(&dir)).unwrap();
        std::fs::create_dir(path(&dir)).unwrap();
        assert!(load(&dir, 5).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
