//! The durable store: postcard records in flat files under the data dir,
//! changed through an append-only journal that group-commits.
//!
//! Layer: storage (blocking file I/O, never on the executor: start-up
//! reads before the executor runs, and writes go to the journal's own
//! thread, [`journal`]; the executor only queues a change and awaits its
//! answer). Layout under the data dir:
//!
//! ```text
//! bootactions/<name>.rec     one boot action per file
//! machines/<id>.rec          one machine per file (id in canonical form)
//! templates/<name>.ks        admin-supplied kickstart templates (text)
//! journal.<n>                record changes since the record files were
//!                            last written (n counts up; the one in use and
//!                            the next, prepared ahead, full of zeros)
//! lock                       held (flock) by the gopxe using the data dir
//! corrupt/                   records that failed to decode, moved aside
//! ```
//!
//! A record file is `GPXR`, the schema version (u16 LE), a CRC-32 of the
//! payload (u32 LE) and the postcard payload. postcard is not
//! self-describing (fields are read in order, with no names or lengths), so
//! a changed record shape needs a new schema version of its kind
//! ([`Record::VERSION`]) and a decoder for each older one
//! ([`Record::decode_old`]). Older records are converted when read and
//! written in the new version at their next change; a record newer than
//! this gopxe is reported and moved aside, never misread.
//!
//! Versions: boot actions 1 (the original's fields, `append`, `loader`),
//! 2 (+ `installer`, `storage`); machines 1, 2 (+ `install_key`; a
//! version-1 machine reads with no key, so an install running across the
//! upgrade calls back with the token or is reinstalled).
//!
//! Writes ([`Store::commit`]): a change (a record's new file body, or its
//! removal) is an entry of the journal, with its own length and CRC-32
//! (format in [`journal`]). One committer thread appends every change
//! queued since its last fsync with one write, makes the batch durable
//! with one `fdatasync`, and only then answers each change of the batch:
//! in a boot storm, the kickstart fetches and `done` call-backs arriving
//! while one batch syncs share the next sync. A change is acknowledged
//! (and memory changed, by the caller) only after its batch is on disk.
//! Journal files are written full of zeros (and synced) before they are
//! used, the next one ahead of time, and entries overwrite the zeros: an
//! append's `fdatasync` then writes only data, with no commit of the file
//! system's own journal. Past 1 MiB the journal moves on to
//! `journal.<n+1>` and a background checkpoint writes the old journal's
//! records into their files (temp file, fsync, rename; each folder synced
//! once), then deletes it.
//!
//! Start-up reads the record files (the last checkpoint), then replays
//! every journal file in order over them, and checkpoints what it
//! replayed in the background while new changes go to a new journal. A
//! data dir with only record files (from a gopxe before the journal) opens
//! as it is; one is written only when something changes.
//!
//! Crash rules (SIGKILL or power loss at any point):
//! - every acknowledged change is in a journal file or in its record
//!   file: journal entries are replayed in order, each a whole record, so
//!   the last entry of a record wins over its file and over earlier
//!   entries, and a checkpoint deletes a journal only after the record
//!   files it updated are synced, oldest journal first;
//! - a record is never half-written: an entry whose length or CRC does not
//!   hold ends the replay of its file there (a torn tail, from a crash
//!   during an append: never acknowledged; logged and dropped), and record
//!   files are replaced by `rename`, so each is the old or the new version;
//! - a batch that fails to write or sync is answered with the error and
//!   overwritten with zeros again before anything else is written, so
//!   its entries can never be replayed after those of a later batch.
//!
//! A record file that fails to decode at start-up is reported with its
//! path, moved into `corrupt/`, and the rest is served; a whole journal
//! entry that does not decode as its record is reported and saved in
//! `corrupt/`, and the record keeps its earlier value. A journal of an
//! unknown version stops the start-up and is left as it is.

use crate::model::{BootAction, Installer, Loader, Machine, MachineId, MachineState, Records};
use serde::Serialize;
use serde::de::DeserializeOwned;
pub mod journal;

pub use journal::{Change, Options, Stats};
use journal::{Committer, Job};
use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"GPXR";
const HEADER: usize = 10;

/// The kinds of record the store holds, each in its own folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    BootAction,
    Machine,
    Template,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::BootAction => "bootactions",
            Kind::Machine => "machines",
            Kind::Template => "templates",
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Kind::Template => "ks",
            _ => "rec",
        }
    }
}

/// Why a record file body cannot be read: what start-up logs when it
/// moves the file aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Shorter than the header.
    Truncated { len: usize },
    /// Not `GPXR`.
    BadMagic,
    /// A version this gopxe does not read (it reads 1 to `max`).
    Version { found: u16, max: u16 },
    /// The CRC-32 of the payload does not match.
    Checksum,
    /// The payload does not decode as this kind's record.
    Payload(String),
    /// Bytes after the record.
    Trailing { bytes: usize },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Truncated { len } => {
                write!(f, "truncated: {len} bytes, shorter than the header")
            }
            RecordError::BadMagic => f.write_str("not a gopxe record (bad magic)"),
            RecordError::Version { found, max } => {
                write!(f, "schema version {found}, this gopxe reads 1 to {max}")
            }
            RecordError::Checksum => f.write_str("checksum mismatch (truncated or damaged)"),
            RecordError::Payload(e) => write!(f, "cannot decode: {e}"),
            RecordError::Trailing { bytes } => write!(f, "{bytes} trailing bytes"),
        }
    }
}

impl std::error::Error for RecordError {}

/// A record type with its schema version.
pub trait Record: Serialize + DeserializeOwned {
    /// The version written into new records of this kind.
    const VERSION: u16;

    /// Decodes the payload of an older version (`version < VERSION`).
    fn decode_old(version: u16, _payload: &[u8]) -> Result<Self, RecordError> {
        Err(RecordError::Version {
            found: version,
            max: Self::VERSION,
        })
    }
}

impl Record for Machine {
    const VERSION: u16 = 2;

    fn decode_old(version: u16, payload: &[u8]) -> Result<Self, RecordError> {
        match version {
            1 => postcard_exact::<MachineV1>(payload).map(Machine::from),
            v => Err(RecordError::Version {
                found: v,
                max: Self::VERSION,
            }),
        }
    }
}

/// A machine as schema version 1 stored it (before `install_key`).
/// Never written any more; kept to read old stores.
#[derive(Serialize, serde::Deserialize)]
pub struct MachineV1 {
    pub id: MachineId,
    pub bootaction: String,
    pub ksfile: String,
    pub os: Option<String>,
    pub version: Option<String>,
    pub hostname: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub mask: Option<Ipv4Addr>,
    pub gw: Option<Ipv4Addr>,
    pub ns1: Option<Ipv4Addr>,
    pub ns2: Option<Ipv4Addr>,
    pub state: MachineState,
    pub updated_ms: u64,
}

impl From<MachineV1> for Machine {
    fn from(m: MachineV1) -> Self {
        Machine {
            id: m.id,
            bootaction: m.bootaction,
            ksfile: m.ksfile,
            os: m.os,
            version: m.version,
            hostname: m.hostname,
            ip: m.ip,
            mask: m.mask,
            gw: m.gw,
            ns1: m.ns1,
            ns2: m.ns2,
            state: m.state,
            updated_ms: m.updated_ms,
            install_key: None,
        }
    }
}

impl Record for BootAction {
    const VERSION: u16 = 2;

    fn decode_old(version: u16, payload: &[u8]) -> Result<Self, RecordError> {
        match version {
            1 => postcard_exact::<BootActionV1>(payload).map(BootAction::from),
            v => Err(RecordError::Version {
                found: v,
                max: Self::VERSION,
            }),
        }
    }
}

/// A boot action as schema version 1 stored it (before `installer` and
/// `storage`). Never written any more; kept to read old stores.
#[derive(Serialize, serde::Deserialize)]
pub struct BootActionV1 {
    pub name: String,
    pub default: String,
    pub label: String,
    pub menu: String,
    pub kernel: String,
    pub initrd: Option<String>,
    pub ksdevice: Option<String>,
    pub ip: Option<String>,
    pub load_ramdisk: Option<String>,
    pub append: Option<String>,
    pub loader: Loader,
}

impl From<BootActionV1> for BootAction {
    fn from(a: BootActionV1) -> Self {
        BootAction {
            name: a.name,
            default: a.default,
            label: a.label,
            menu: a.menu,
            kernel: a.kernel,
            initrd: a.initrd,
            ksdevice: a.ksdevice,
            ip: a.ip,
            load_ramdisk: a.load_ramdisk,
            append: a.append,
            loader: a.loader,
            // Every version-1 action was a kickstart one.
            installer: Installer::Kickstart,
            storage: None,
        }
    }
}

fn postcard_exact<T: DeserializeOwned>(payload: &[u8]) -> Result<T, RecordError> {
    let (v, rest) =
        postcard::take_from_bytes(payload).map_err(|e| RecordError::Payload(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RecordError::Trailing { bytes: rest.len() });
    }
    Ok(v)
}

/// Encodes a value as a record file body of its kind's current version.
pub fn encode<T: Record>(v: &T) -> io::Result<Vec<u8>> {
    encode_version(v, T::VERSION)
}

/// Encodes `v` under an explicit schema version (tests write old records).
pub fn encode_version<T: Serialize>(v: &T, version: u16) -> io::Result<Vec<u8>> {
    let payload = postcard::to_stdvec(v).map_err(|e| io::Error::other(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes a record file body, checking magic, version and checksum;
/// older versions go through [`Record::decode_old`].
pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, RecordError> {
    let (head, payload) = bytes
        .split_at_checked(HEADER)
        .ok_or(RecordError::Truncated { len: bytes.len() })?;
    let (magic, rest) = head.split_at(4);
    if magic != MAGIC {
        return Err(RecordError::BadMagic);
    }
    let (ver, crc) = rest.split_at(2);
    let ver = journal::le_u16(ver);
    if ver == 0 || ver > T::VERSION {
        return Err(RecordError::Version {
            found: ver,
            max: T::VERSION,
        });
    }
    let crc = journal::le_u32(crc);
    if crc32fast::hash(payload) != crc {
        return Err(RecordError::Checksum);
    }
    if ver < T::VERSION {
        return T::decode_old(ver, payload);
    }
    postcard_exact(payload)
}

/// Writes `bytes` to `path` atomically and durably (temp, fsync, rename,
/// fsync dir). For files outside the journal (the console's configuration
/// files); store records are written through [`Store::commit`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    journal::replace_file(path, bytes)?;
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("record path has no folder"))?;
    journal::sync_dir(dir)
}

/// Removes `path` durably; a missing file is not an error.
pub fn remove_durable(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The file that holds record `key` of `kind` under the data dir `root`.
fn record_path(root: &Path, kind: Kind, key: &str) -> PathBuf {
    root.join(kind.dir()).join(format!("{key}.{}", kind.ext()))
}

/// All records, loaded at start-up and kept in memory; the record files
/// and the journal are the truth. Reads go through [`Records`] (the store
/// derefs to them), which is all the boot-config rendering sees.
#[derive(Debug, Default)]
pub struct Store {
    root: PathBuf,
    records: Records,
    /// Appends changes to the journal; none for a store in memory only.
    committer: Option<Committer>,
    /// `lock` in the data dir, locked while this store is open. Dropped
    /// after the committer (fields drop in order).
    _lock: Option<File>,
}

impl std::ops::Deref for Store {
    type Target = Records;
    fn deref(&self) -> &Records {
        &self.records
    }
}

impl std::ops::DerefMut for Store {
    fn deref_mut(&mut self) -> &mut Records {
        &mut self.records
    }
}

impl Store {
    /// Opens (creating if needed) the store under `root` and loads every
    /// record. Returns the store and one warning per file moved aside.
    pub fn open(root: &Path) -> io::Result<(Store, Vec<String>)> {
        Store::open_with(root, &Options::default())
    }

    /// [`Store::open`] with the journal's options (tests count and hold
    /// its syncs, or checkpoint early).
    pub fn open_with(root: &Path, options: &Options) -> io::Result<(Store, Vec<String>)> {
        for kind in [Kind::BootAction, Kind::Machine, Kind::Template] {
            fs::create_dir_all(root.join(kind.dir()))?;
        }
        let lock = lock(root)?;
        let mut store = Store {
            root: root.to_path_buf(),
            ..Default::default()
        };
        let mut warnings = Vec::new();
        store.load_files(&mut warnings)?;
        let journals = journal::list(root)?;
        let mut touched = BTreeSet::new();
        let mut replayed = 0;
        for (generation, path) in &journals {
            let parsed = journal::parse(&fs::read(path)?)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            if let Some((at, why)) = &parsed.torn {
                log::warn!(
                    "journal {}: entries end at byte {at} ({why}); the rest, a write cut short and never acknowledged, is dropped",
                    path.display()
                );
            }
            for (at, why) in &parsed.skipped {
                warnings.push(format!(
                    "{} at byte {at}: an entry this gopxe cannot read ({why}); skipped",
                    path.display()
                ));
            }
            for (at, change) in parsed.changes {
                match store.apply(&change) {
                    Ok(()) => {
                        replayed += 1;
                        touched.insert((change.kind, change.key));
                    }
                    Err(why) => store.set_aside(&change, *generation, at, &why, &mut warnings),
                }
            }
        }
        if !journals.is_empty() {
            log::info!(
                "{replayed} record changes replayed from {} journal file(s)",
                journals.len()
            );
        }
        // What the journals changed goes into the record files in the
        // background; new changes go to a new journal meanwhile.
        let first = if journals.is_empty() {
            None
        } else {
            let mut dirty = journal::Dirty::new();
            for (kind, key) in touched {
                let body = store.body(kind, &key)?;
                dirty.insert((kind, key), body);
            }
            Some(Job {
                dirty,
                files: journals.iter().map(|(_, p)| p.clone()).collect(),
            })
        };
        let next = journals.last().map_or(1, |(g, _)| g + 1);
        store.committer = Some(Committer::start(root, next, first, options)?);
        store._lock = Some(lock);
        Ok((store, warnings))
    }

    /// Loads every record file (the state of the last checkpoint).
    fn load_files(&mut self, warnings: &mut Vec<String>) -> io::Result<()> {
        let root = self.root.clone();
        for (path, bytes) in read_dir_files(&root.join(Kind::BootAction.dir()), "rec", warnings)? {
            match decode::<BootAction>(&bytes) {
                Ok(a) if path_key(&path) == Some(a.name.as_str()) => {
                    self.bootactions.insert(a.name.clone(), a);
                }
                Ok(_) => self.quarantine(&path, "file name does not match the record", warnings),
                Err(e) => self.quarantine(&path, &e.to_string(), warnings),
            }
        }
        for (path, bytes) in read_dir_files(&root.join(Kind::Machine.dir()), "rec", warnings)? {
            match decode::<Machine>(&bytes) {
                Ok(m) if path_key(&path) == Some(m.id.canonical().as_str()) => {
                    self.machines.insert(m.id, m);
                }
                Ok(_) => self.quarantine(&path, "file name does not match the record", warnings),
                Err(e) => self.quarantine(&path, &e.to_string(), warnings),
            }
        }
        for (path, bytes) in read_dir_files(&root.join(Kind::Template.dir()), "ks", warnings)? {
            match (path_key(&path), String::from_utf8(bytes)) {
                (Some(k), Ok(text)) => {
                    self.templates.insert(k.to_string(), text);
                }
                _ => self.quarantine(&path, "not UTF-8 text", warnings),
            }
        }
        Ok(())
    }

    /// Applies a replayed change to memory, checking it as a record file
    /// is checked.
    fn apply(&mut self, c: &Change) -> Result<(), String> {
        let mismatch = || "the key does not match the record".to_string();
        match (c.kind, &c.body) {
            (Kind::BootAction, Some(b)) => {
                let a: BootAction = decode(b).map_err(|e| e.to_string())?;
                if a.name != c.key {
                    return Err(mismatch());
                }
                self.bootactions.insert(a.name.clone(), a);
            }
            (Kind::Machine, Some(b)) => {
                let m: Machine = decode(b).map_err(|e| e.to_string())?;
                if m.id.canonical() != c.key {
                    return Err(mismatch());
                }
                self.machines.insert(m.id, m);
            }
            (Kind::Template, Some(b)) => {
                let text = String::from_utf8(b.clone()).map_err(|_| "not UTF-8 text")?;
                self.templates.insert(c.key.clone(), text);
            }
            (Kind::BootAction, None) => {
                self.bootactions.remove(&c.key);
            }
            (Kind::Machine, None) => {
                if let Some(id) = machine_id(&c.key) {
                    self.machines.remove(&id);
                }
            }
            (Kind::Template, None) => {
                self.templates.remove(&c.key);
            }
        }
        Ok(())
    }

    /// A journal entry that does not decode: its body goes to `corrupt/`
    /// and the record keeps its earlier value.
    fn set_aside(
        &self,
        c: &Change,
        generation: u64,
        at: u64,
        why: &str,
        warnings: &mut Vec<String>,
    ) {
        let aside = self.root.join("corrupt");
        let target = aside.join(format!(
            "journal.{generation}-{at}-{}.{}",
            c.key,
            c.kind.ext()
        ));
        let body = c.body.as_deref().unwrap_or_default();
        let saved = fs::create_dir_all(&aside).and_then(|()| fs::write(&target, body));
        warnings.push(match saved {
            Ok(()) => format!(
                "journal.{generation} at byte {at}: {} `{}`: {why}; saved to {}",
                c.kind.dir(),
                c.key,
                target.display()
            ),
            Err(e) => format!(
                "journal.{generation} at byte {at}: {} `{}`: {why}; could not save it: {e}",
                c.kind.dir(),
                c.key
            ),
        });
    }

    /// A record's file body as it is in memory (`None`: there is none).
    fn body(&self, kind: Kind, key: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(match kind {
            Kind::BootAction => self.bootactions.get(key).map(encode).transpose()?,
            Kind::Machine => machine_id(key)
                .and_then(|id| self.machines.get(&id))
                .map(encode)
                .transpose()?,
            Kind::Template => self.templates.get(key).map(|t| t.clone().into_bytes()),
        })
    }

    /// Makes `changes` durable: queued at once (in call order) for the
    /// journal's next batch; the future resolves when that batch is on
    /// disk. Memory is the caller's to change, after that.
    pub fn commit(&self, changes: Vec<Change>) -> impl Future<Output = io::Result<()>> + use<> {
        let queued = self.committer.as_ref().map(|c| c.commit(changes));
        async move {
            match queued {
                Some(answer) => answer.await,
                None => Err(io::Error::other("the store is in memory only")),
            }
        }
    }

    /// What the journal's committer has done (none in memory only).
    pub fn journal_stats(&self) -> Option<&Stats> {
        self.committer.as_ref().map(|c| c.stats())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds record `key` of `kind`. Keys are checked tokens
    /// or canonical ids, so the path never leaves the data dir.
    pub fn path(&self, kind: Kind, key: &str) -> PathBuf {
        record_path(&self.root, kind, key)
    }

    fn quarantine(&self, path: &Path, why: &str, warnings: &mut Vec<String>) {
        let aside = self.root.join("corrupt");
        let name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let target = aside.join(name);
        let moved = fs::create_dir_all(&aside).and_then(|_| fs::rename(path, &target));
        warnings.push(match moved {
            Ok(()) => format!("{}: {why}; moved to {}", path.display(), target.display()),
            Err(e) => format!("{}: {why}; could not move it aside: {e}", path.display()),
        });
    }
}

/// The machine a record key names: its id in canonical form, and only that.
fn machine_id(key: &str) -> Option<MachineId> {
    key.parse::<MachineId>()
        .ok()
        .filter(|id| id.canonical() == key)
}

/// Locks `root/lock` for this process: a second gopxe on the same data
/// dir would replay and delete the first one's journal.
fn lock(root: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(root.join("lock"))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |e| {
            if e == rustix::io::Errno::WOULDBLOCK {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the data dir is in use by another gopxe (its `lock` is held)",
                )
            } else {
                io::Error::new(
                    io::Error::from(e).kind(),
                    format!("cannot lock the data dir: {e}"),
                )
            }
        },
    )?;
    Ok(file)
}

fn path_key(path: &Path) -> Option<&str> {
    path.file_stem().and_then(|s| s.to_str())
}

/// Reads every `*.ext` file of a folder; removes stale temp files.
fn read_dir_files(
    dir: &Path,
    ext: &str,
    warnings: &mut Vec<String>,
) -> io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            // An interrupted write: the old record (if any) is intact.
            let _ = fs::remove_file(&path);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some(ext) || !entry.file_type()?.is_file() {
            continue;
        }
        match fs::read(&path) {
            Ok(bytes) => out.push((path, bytes)),
            Err(e) => warnings.push(format!("{}: cannot read: {e}", path.display())),
        }
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BootActionBody, Storage};

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gopxe-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn action(name: &str) -> BootAction {
        BootAction::from_body(
            name,
            BootActionBody {
                kernel: Some("k/vmlinuz".into()),
                loader: Some(Loader::Ipxe),
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn record_round_trip_and_damage() {
        let a = action("a");
        let bytes = encode(&a).unwrap();
        assert_eq!(decode::<BootAction>(&bytes).unwrap(), a);
        for cut in 0..bytes.len() {
            assert!(decode::<BootAction>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(decode::<BootAction>(&flipped), Err(RecordError::Checksum));
        let mut newer = bytes;
        newer[4] = 9;
        let err = decode::<BootAction>(&newer).unwrap_err();
        assert!(
            matches!(err, RecordError::Version { found: 9, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("schema version 9"), "{err}");
    }

    #[test]
    fn open_loads_and_moves_corrupt_aside() {
        let root = tmpdir("open");
        let (store, w) = Store::open(&root).unwrap();
        assert!(w.is_empty());
        let a = action("good");
        write_atomic(&store.path(Kind::BootAction, "good"), &encode(&a).unwrap()).unwrap();
        fs::write(store.path(Kind::BootAction, "bad"), b"GPXR\x01\x00junk").unwrap();
        fs::write(root.join("bootactions/.x.rec.tmp"), b"partial").unwrap();
        let m = Machine {
            id: "aa:bb:cc:dd:ee:ff".parse().unwrap(),
            bootaction: "good".into(),
            ksfile: "default".into(),
            os: None,
            version: None,
            hostname: Some("h".into()),
            ip: None,
            mask: None,
            gw: None,
            ns1: None,
            ns2: None,
            state: MachineState::Installed,
            updated_ms: 5,
            install_key: None,
        };
        // A record under the wrong name is not trusted either.
        write_atomic(
            &store.path(Kind::Machine, "01-00-00-00-00-00-00"),
            &encode(&m).unwrap(),
        )
        .unwrap();
        write_atomic(
            &store.path(Kind::Machine, &m.id.canonical()),
            &encode(&m).unwrap(),
        )
        .unwrap();
        drop(store);
        let (store, w) = Store::open(&root).unwrap();
        assert_eq!(store.bootactions.get("good"), Some(&a));
        assert_eq!(store.machines.get(&m.id), Some(&m));
        assert_eq!(store.machines.len(), 1);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|x| x.contains("bad.rec")));
        assert!(root.join("corrupt/bad.rec").exists());
        assert!(!root.join("bootactions/.x.rec.tmp").exists());
        remove_durable(&store.path(Kind::BootAction, "good")).unwrap();
        remove_durable(&store.path(Kind::BootAction, "good")).unwrap();
        drop(store);
        let (store, _) = Store::open(&root).unwrap();
        assert!(store.bootactions.is_empty());
        let _ = fs::remove_dir_all(&root);
    }
    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Files written by gopxe before boot actions had `installer` (schema
    /// 1): `POST /bootaction/deb` with menu, kernel, initrd, `append:
    /// "console=ttyS0"`, `loader: "ipxe"`, and a machine using it.
    const V1_BOOTACTION: &str = "475058520100d092cbfe03646562056c696e7578056c696e75780864656269616e31320c64656269616e2f6c696e7578011064656269616e2f696e697472642e677a000000010d636f6e736f6c653d747479533001";
    const V1_MACHINE: &str = "475058520100c79c423801525400123456036465620764656661756c74000001066e312e6c6162010a00000501ffffff00010a000001010a000035000098aec6aca134";

    /// `failed` is the fourth state, stored as variant index 3 (appended,
    /// so every record written before it reads the same), and round-trips.
    #[test]
    fn the_failed_state_is_appended_and_round_trips() {
        let m: Machine = decode(&unhex(V1_MACHINE)).unwrap();
        for (i, st) in MachineState::ALL.into_iter().enumerate() {
            assert_eq!(postcard::to_stdvec(&st).unwrap(), [i as u8], "{st}");
            let mut m = m.clone();
            m.state = st;
            assert_eq!(decode::<Machine>(&encode(&m).unwrap()).unwrap(), m);
        }
        assert_eq!(MachineState::ALL[3], MachineState::Failed);
    }

    #[test]
    fn version_1_records_still_load() {
        let a: BootAction = decode(&unhex(V1_BOOTACTION)).unwrap();
        assert_eq!(a.name, "deb");
        assert_eq!(a.menu, "debian12");
        assert_eq!(a.kernel, "debian/linux");
        assert_eq!(a.initrd.as_deref(), Some("debian/initrd.gz"));
        assert_eq!(a.append.as_deref(), Some("console=ttyS0"));
        assert_eq!(a.loader, Loader::Ipxe);
        assert_eq!(a.installer, Installer::Kickstart);
        assert_eq!(a.storage, None);
        // A version-1 machine reads with no install key and is written
        // back as version 2: its fields, then the key.
        let m: Machine = decode(&unhex(V1_MACHINE)).unwrap();
        assert_eq!(m.hostname.as_deref(), Some("n1.lab"));
        assert_eq!(m.install_key, None);
        let m2 = encode(&m).unwrap();
        assert_eq!(&m2[4..6], &[2, 0]);
        assert_eq!(&m2[HEADER..m2.len() - 1], &unhex(V1_MACHINE)[HEADER..]);
        assert_eq!(m2.last(), Some(&0), "no key");
        assert_eq!(decode::<Machine>(&m2).unwrap(), m);
        let keyed = Machine {
            install_key: Some(crate::model::InstallKey([7; 16])),
            ..m
        };
        assert_eq!(decode::<Machine>(&encode(&keyed).unwrap()).unwrap(), keyed);
        // A converted action is written back as version 2 and reads back equal.
        let v2 = encode(&a).unwrap();
        assert_eq!(&v2[4..6], &[2, 0]);
        assert_eq!(decode::<BootAction>(&v2).unwrap(), a);
        // A version-2 payload is not mistaken for version 1 or the reverse.
        let mut relabelled = v2.clone();
        relabelled[4] = 1;
        assert!(decode::<BootAction>(&relabelled).is_err());
        // A future version is refused, not misread.
        let mut future = unhex(V1_BOOTACTION);
        future[4] = 3;
        assert!(
            decode::<BootAction>(&future)
                .unwrap_err()
                .to_string()
                .contains("schema version 3")
        );
        let mut zero = unhex(V1_BOOTACTION);
        zero[4] = 0;
        assert!(decode::<BootAction>(&zero).is_err());
    }

    #[test]
    fn open_reads_a_version_1_store() {
        let root = tmpdir("v1");
        let (store, _) = Store::open(&root).unwrap();
        fs::write(store.path(Kind::BootAction, "deb"), unhex(V1_BOOTACTION)).unwrap();
        fs::write(
            store.path(Kind::Machine, "01-52-54-00-12-34-56"),
            unhex(V1_MACHINE),
        )
        .unwrap();
        let mut b = action("new");
        b.installer = Installer::Autoinstall;
        b.storage = Some(Storage::Direct);
        write_atomic(&store.path(Kind::BootAction, "new"), &encode(&b).unwrap()).unwrap();
        drop(store);
        let (store, w) = Store::open(&root).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(store.bootactions.len(), 2);
        assert_eq!(
            store.bootactions.get("deb").map(|a| a.installer),
            Some(Installer::Kickstart)
        );
        assert_eq!(store.bootactions.get("new"), Some(&b));
        assert_eq!(store.machines.len(), 1);
        drop(store);
        let _ = fs::remove_dir_all(&root);
    }

    /// Machine ids gained a variant (`PiSerial`, last) without a new
    /// schema version: the stored ids before it keep their postcard bytes,
    /// so stores written before it load unchanged; a Pi record has its own
    /// file name and reads back.
    #[test]
    fn pi_serial_ids_leave_older_records_as_they_were() {
        let m: Machine = decode(&unhex(V1_MACHINE)).unwrap();
        assert_eq!(m.id, MachineId::Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        // Version 2 as a gopxe before Pi serials wrote it: the id's variant
        // 1 and its bytes, first in the payload.
        let v2 = encode(&m).unwrap();
        assert_eq!(
            &v2[HEADER..HEADER + 7],
            &[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]
        );
        let pi = Machine {
            id: MachineId::PiSerial(0x1a2b_3c4d),
            ..m
        };
        let bytes = encode(&pi).unwrap();
        assert_eq!(&bytes[4..6], &[2, 0]);
        assert_eq!(bytes[HEADER], 2, "the new variant is numbered last");
        assert_eq!(decode::<Machine>(&bytes).unwrap(), pi);

        let root = tmpdir("pi");
        let (store, _) = Store::open(&root).unwrap();
        fs::write(
            store.path(Kind::Machine, "01-52-54-00-12-34-56"),
            unhex(V1_MACHINE),
        )
        .unwrap();
        write_atomic(&store.path(Kind::Machine, "pi-1a2b3c4d"), &bytes).unwrap();
        drop(store);
        let (store, w) = Store::open(&root).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(store.machines.len(), 2);
        assert_eq!(store.machines.get(&pi.id), Some(&pi));
        drop(store);
        let _ = fs::remove_dir_all(&root);
    }

    // The journal: group commit, replay, checkpoints.

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};

    /// An injected sync: counts the journal's fsyncs, can hold the
    /// committer inside one (so that changes queue behind it) or fail one.
    #[derive(Default)]
    struct Hook {
        syncs: AtomicUsize,
        fail_next: AtomicBool,
        held: Mutex<bool>,
        changed: Condvar,
    }

    impl Hook {
        fn options(self: &Arc<Hook>, checkpoint_bytes: u64) -> Options {
            let hook = self.clone();
            Options {
                checkpoint_bytes,
                sync: Arc::new(move |f: &File| {
                    hook.syncs.fetch_add(1, Ordering::SeqCst);
                    let mut held = hook.held.lock().unwrap();
                    hook.changed.notify_all();
                    while *held {
                        held = hook.changed.wait(held).unwrap();
                    }
                    drop(held);
                    if hook.fail_next.swap(false, Ordering::SeqCst) {
                        return Err(io::Error::other("injected sync failure"));
                    }
                    f.sync_data()
                }),
            }
        }

        fn hold(&self, on: bool) {
            *self.held.lock().unwrap() = on;
            self.changed.notify_all();
        }

        /// Waits until `n` syncs have started.
        fn wait_for(&self, n: usize) {
            let mut held = self.held.lock().unwrap();
            while self.syncs.load(Ordering::SeqCst) < n {
                held = self.changed.wait(held).unwrap();
            }
        }

        fn syncs(&self) -> usize {
            self.syncs.load(Ordering::SeqCst)
        }
    }

    fn machine(i: u8, state: MachineState) -> Machine {
        Machine {
            id: MachineId::Mac([0x52, 0x54, 0, 0, 0, i]),
            bootaction: "good".into(),
            ksfile: "default".into(),
            os: None,
            version: None,
            hostname: Some(format!("h{i}")),
            ip: None,
            mask: None,
            gw: None,
            ns1: None,
            ns2: None,
            state,
            updated_ms: u64::from(i),
            install_key: None,
        }
    }

    fn put_machine(m: &Machine) -> Change {
        Change::put(Kind::Machine, m.id.canonical(), encode(m).unwrap())
    }

    fn journals(root: &Path) -> Vec<(u64, PathBuf)> {
        journal::list(root).unwrap()
    }

    /// Changes queued while a batch is being synced are written together
    /// and made durable with one fsync, and each is answered only then.
    #[test]
    fn changes_queued_during_a_sync_share_the_next_one() {
        let root = tmpdir("batch");
        let hook = Arc::new(Hook::default());
        let (store, _) = Store::open_with(&root, &hook.options(journal::CHECKPOINT_BYTES)).unwrap();
        hook.hold(true);
        let first = store.commit(vec![put_machine(&machine(0, MachineState::Install))]);
        hook.wait_for(1);
        const N: u8 = 100;
        let rest: Vec<_> = (1..=N)
            .map(|i| store.commit(vec![put_machine(&machine(i, MachineState::Installing))]))
            .collect();
        // Nothing is answered while its batch is not on disk.
        let mut first = std::pin::pin!(first);
        assert!(
            smol::future::block_on(smol::future::poll_once(first.as_mut())).is_none(),
            "answered before its sync returned"
        );
        hook.hold(false);
        smol::block_on(async {
            first.await.unwrap();
            for r in rest {
                r.await.unwrap();
            }
        });
        assert_eq!(
            hook.syncs(),
            2,
            "one fsync for the first change, one for the {N} queued"
        );
        let stats = store.journal_stats().unwrap();
        assert_eq!(stats.batches.load(Ordering::SeqCst), 2);
        assert_eq!(stats.changes.load(Ordering::SeqCst), u64::from(N) + 1);
        drop(store);
        let (store, w) = Store::open(&root).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(store.machines.len(), usize::from(N) + 1);
        let _ = fs::remove_dir_all(&root);
    }

    /// A batch whose write or sync fails is answered with the error and
    /// wiped (zeros again); the next batch is written after the last
    /// acknowledged one, and replay finds exactly the acknowledged ones.
    #[test]
    fn a_failed_sync_is_wiped_and_the_journal_goes_on() {
        let root = tmpdir("failed");
        let hook = Arc::new(Hook::default());
        let (store, _) = Store::open_with(&root, &hook.options(journal::CHECKPOINT_BYTES)).unwrap();
        let (a, b, c) = (
            machine(1, MachineState::Install),
            machine(2, MachineState::Install),
            machine(3, MachineState::Install),
        );
        smol::block_on(store.commit(vec![put_machine(&a)])).unwrap();
        hook.fail_next.store(true, Ordering::SeqCst);
        assert!(smol::block_on(store.commit(vec![put_machine(&b)])).is_err());
        smol::block_on(store.commit(vec![put_machine(&c)])).unwrap();
        drop(store);
        // The journal in use, and the next one prepared (empty).
        let files = journals(&root);
        assert_eq!(files.len(), 2);
        let parsed = journal::parse(&fs::read(&files[0].1).unwrap()).unwrap();
        assert_eq!(parsed.torn, None, "the failed batch is zeros again");
        assert_eq!(parsed.changes.len(), 2);
        let spare = journal::parse(&fs::read(&files[1].1).unwrap()).unwrap();
        assert_eq!(spare, journal::Parsed::default());
        let (store, w) = Store::open(&root).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(store.machines.get(&a.id), Some(&a));
        assert_eq!(store.machines.get(&b.id), None, "never acknowledged");
        assert_eq!(store.machines.get(&c.id), Some(&c));
        drop(store);
        let _ = fs::remove_dir_all(&root);
    }

    /// A crash during an append leaves a torn last entry: at every cut
    /// of the entries (followed by the file's zeros, or by nothing),
    /// replay reads the whole entries before it and drops the rest (never
    /// acknowledged); start-up folds what it read into the record files
    /// and deletes the journal.
    #[test]
    fn replay_drops_a_torn_tail() {
        let root = tmpdir("torn");
        let ms: Vec<Machine> = (1..=3)
            .map(|i| machine(i, MachineState::Installing))
            .collect();
        let (store, _) = Store::open(&root).unwrap();
        for m in &ms {
            smol::block_on(store.commit(vec![put_machine(m)])).unwrap();
        }
        drop(store);
        let files = journals(&root);
        let path = files[0].1.clone();
        let file = fs::read(&path).unwrap();
        let whole = journal::parse(&file).unwrap();
        assert_eq!(whole.torn, None);
        assert_eq!(whole.changes.len(), 3);
        let mut entries = Vec::new();
        for (_, c) in &whole.changes {
            journal::encode_entry(c, &mut entries).unwrap();
        }
        let end = 6 + entries.len();
        assert_eq!(file.get(6..end), Some(&entries[..]));
        let bytes = &file[..end];
        let ends: Vec<usize> = whole
            .changes
            .iter()
            .skip(1)
            .map(|(at, _)| *at as usize)
            .chain([end])
            .collect();
        for cut in 0..end {
            let at_boundary = cut <= 6 || ends.contains(&cut) || cut == whole.changes[0].0 as usize;
            let n = ends.iter().filter(|&&e| e <= cut).count();
            let mut padded = bytes[..cut].to_vec();
            padded.resize(end + 64, 0);
            // The header is written with the zeros, before any entry:
            // a cut inside it is followed by nothing.
            let padded = if cut < 6 { &bytes[..cut] } else { &padded[..] };
            let p = journal::parse(&bytes[..cut]).unwrap();
            assert_eq!(p.changes.len(), n, "cut at {cut}");
            assert_eq!(p.torn.is_some(), !at_boundary, "cut at {cut}");
            assert!(p.skipped.is_empty());
            // Followed by zeros, the entry cut short reads as whole only
            // when the bytes it lost were zeros: then it is whole.
            let p = journal::parse(padded).unwrap();
            assert!(p.skipped.is_empty());
            if p.changes.len() == n + 1 {
                assert_eq!(p.changes.get(n), whole.changes.get(n), "cut at {cut}");
                assert_eq!(p.torn, None, "cut at {cut}");
            } else {
                assert_eq!(p.changes.len(), n, "cut at {cut}");
                assert_eq!(p.torn.is_some(), !at_boundary, "cut at {cut}");
            }
        }
        // Torn inside the last entry: the first two machines come back.
        let mut torn = file.clone();
        torn[end - 20..end].fill(0);
        fs::write(&path, &torn).unwrap();
        let (store, w) = Store::open(&root).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(store.machines.len(), 2);
        assert_eq!(store.machines.get(&ms[0].id), Some(&ms[0]));
        assert_eq!(store.machines.get(&ms[1].id), Some(&ms[1]));
        drop(store);
        // Checkpointed at start-up: record files, no journal left.
        assert!(journals(&root).is_empty());
        for m in &ms[..2] {
            let rec = fs::read(root.join(format!("machines/{}.rec", m.id.canonical()))).unwrap();
            assert_eq!(decode::<Machine>(&rec).unwrap(), *m);
        }
        let (store, _) = Store::open(&root).unwrap();
        assert_eq!(store.machines.len(), 2);
        drop(store);
        let _ = fs::remove_dir_all(&root);
    }

    /// Random puts and removes of every kind, some queued together, over
    /// several sessions with tiny journals (checkpoints all the time):
    /// what each start-up reads back is what was in memory.
    #[test]
    fn replay_equals_memory() {
        let root = tmpdir("model");
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut model = Store::default();
        for session in 0..4 {
            let hook = Arc::new(Hook::default());
            let limit = if session % 2 == 0 {
                700
            } else {
                journal::CHECKPOINT_BYTES
            };
            let (mut store, w) = Store::open_with(&root, &hook.options(limit)).unwrap();
            assert!(w.is_empty(), "{w:?}");
            assert_eq!(store.bootactions, model.bootactions, "session {session}");
            assert_eq!(store.machines, model.machines, "session {session}");
            assert_eq!(store.templates, model.templates, "session {session}");
            for _ in 0..40 {
                let mut pending = Vec::new();
                for _ in 0..(1 + next() % 4) {
                    let r = next();
                    let remove = r % 5 == 0;
                    let i = (r >> 8) as u8 % 6;
                    let change = match (r >> 16) % 3 {
                        0 => {
                            let name = format!("a{i}");
                            if remove {
                                model.bootactions.remove(&name);
                                Change::remove(Kind::BootAction, name)
                            } else {
                                let mut a = action(&name);
                                a.label = format!("{r}");
                                let c = Change::put(Kind::BootAction, &name, encode(&a).unwrap());
                                model.bootactions.insert(name, a);
                                c
                            }
                        }
                        1 => {
                            let mut m = machine(i, MachineState::Install);
                            if remove {
                                model.machines.remove(&m.id);
                                Change::remove(Kind::Machine, m.id.canonical())
                            } else {
                                m.updated_ms = r;
                                let c = put_machine(&m);
                                model.machines.insert(m.id, m);
                                c
                            }
                        }
                        _ => {
                            let name = format!("t{i}");
                            if remove {
                                model.templates.remove(&name);
                                Change::remove(Kind::Template, name)
                            } else {
                                let text = format!("# {r}\n");
                                let c =
                                    Change::put(Kind::Template, &name, text.clone().into_bytes());
                                model.templates.insert(name, text);
                                c
                            }
                        }
                    };
                    pending.push(store.commit(vec![change]));
                }
                smol::block_on(async {
                    for p in pending {
                        p.await.unwrap();
                    }
                });
            }
            store.bootactions = model.bootactions.clone();
            store.machines = model.machines.clone();
            store.templates = model.templates.clone();
        }
        let _ = fs::remove_dir_all(&root);
    }

    /// Past its size limit the journal moves on to a new file and the old
    /// one is folded into the record files in the background and deleted:
    /// the journal stays small, and the record files hold the changes.
    #[test]
    fn checkpoints_keep_the_journal_small() {
        let root = tmpdir("checkpoint");
        let hook = Arc::new(Hook::default());
        let (store, _) = Store::open_with(&root, &hook.options(2048)).unwrap();
        let mut last = std::collections::BTreeMap::new();
        // Each commit waits for a running checkpoint to end, so what is
        // left below does not depend on how fast this machine writes
        // files (a journal keeps growing while the checkpoint before it
        // runs).
        let settled = || {
            let s = store.journal_stats().unwrap();
            let started = s.checkpoints_started.load(Ordering::SeqCst);
            s.checkpoints.load(Ordering::SeqCst) == started
        };
        for round in 0..60u64 {
            for i in 0..10 {
                let mut m = machine(i, MachineState::Installing);
                m.updated_ms = round;
                smol::block_on(store.commit(vec![put_machine(&m)])).unwrap();
                last.insert(m.id, m);
                let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
                while !settled() && std::time::Instant::now() < until {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                assert!(settled(), "a checkpoint did not finish within 30 s");
            }
        }
        let checkpoints = store
            .journal_stats()
            .unwrap()
            .checkpoints
            .load(Ordering::SeqCst);
        drop(store);
        assert!(checkpoints >= 1, "no checkpoint ran");
        // The journal in use and the next one prepared; the 600 changes
        // are in the record files but for the last ones (a journal keeps
        // growing while the checkpoint before it runs).
        let files = journals(&root);
        assert!(files.len() <= 2, "{files:?}");
        let left: usize = files
            .iter()
            .map(|(_, p)| journal::parse(&fs::read(p).unwrap()).unwrap().changes.len())
            .sum();
        assert!(left < 150, "{left} of 600 changes left in the journal");
        let (store, w) = Store::open(&root).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(store.machines, last);
        drop(store);
        // Start-up folded the rest in: the record files alone hold it all.
        assert!(journals(&root).is_empty());
        for m in last.values() {
            let rec = fs::read(root.join(format!("machines/{}.rec", m.id.canonical()))).unwrap();
            assert_eq!(decode::<Machine>(&rec).unwrap(), *m);
        }
        let _ = fs::remove_dir_all(&root);
    }

    /// A journal entry that is whole but does not read as its record is
    /// saved in `corrupt/` and reported; a journal of an unknown version
    /// stops the start, untouched; a second open of a data dir in use is
    /// refused.
    #[test]
    fn journal_damage_and_a_second_open() {
        let root = tmpdir("damage");
        drop(Store::open(&root).unwrap());
        let good = machine(1, MachineState::Installed);
        let mut bytes = b"GPXJ\x01\x00".to_vec();
        journal::encode_entry(&put_machine(&good), &mut bytes).unwrap();
        let wrong = Change::put(Kind::Machine, "01-52-54-00-00-00-09", b"GPXRjunk".to_vec());
        journal::encode_entry(&wrong, &mut bytes).unwrap();
        fs::write(root.join("journal.4"), &bytes).unwrap();
        let (store, w) = Store::open(&root).unwrap();
        assert_eq!(store.machines.get(&good.id), Some(&good));
        assert_eq!(store.machines.len(), 1);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("01-52-54-00-00-00-09"), "{w:?}");
        assert!(fs::read_dir(root.join("corrupt")).unwrap().count() == 1);
        // In use: refused, and nothing is touched.
        let e = Store::open(&root).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(store);
        fs::write(root.join("journal.9"), b"GPXJ\x07\x00").unwrap();
        let e = Store::open(&root).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(fs::read(root.join("journal.9")).unwrap(), b"GPXJ\x07\x00");
        let _ = fs::remove_dir_all(&root);
    }
}
