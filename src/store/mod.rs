//! The durable store: postcard records in flat files under the data dir.
//!
//! Layer: storage (blocking file I/O; callers run writes off the executor
//! with `smol::unblock`). Layout under the data dir:
//!
//! ```text
//! bootactions/<name>.rec     one boot action per file
//! machines/<id>.rec          one machine per file (id in canonical form)
//! templates/<name>.ks        admin-supplied kickstart templates (text)
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
//! upgrade calls back with the token or is reinstalled). Every write is a temp file in
//! the same folder, `fsync`, `rename` over the old name, `fsync` of the
//! folder: after a crash a record is either the old or the new version,
//! never a mix, and a write that returned is on disk. A file that fails to
//! decode at start-up is reported with its path, moved into `corrupt/`, and
//! the rest is served.

use crate::model::{BootAction, Installer, Loader, Machine, MachineId, MachineState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"GPXR";
const HEADER: usize = 10;

/// The kinds of record the store holds, each in its own folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// A record type with its schema version.
pub trait Record: Serialize + DeserializeOwned {
    /// The version written into new records of this kind.
    const VERSION: u16;

    /// Decodes the payload of an older version (`version < VERSION`).
    fn decode_old(version: u16, _payload: &[u8]) -> Result<Self, String> {
        Err(format!(
            "schema version {version}, this gopxe reads {}",
            Self::VERSION
        ))
    }
}

impl Record for Machine {
    const VERSION: u16 = 2;

    fn decode_old(version: u16, payload: &[u8]) -> Result<Self, String> {
        match version {
            1 => postcard_exact::<MachineV1>(payload).map(Machine::from),
            v => Err(format!("schema version {v}, this gopxe reads 1 and 2")),
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

    fn decode_old(version: u16, payload: &[u8]) -> Result<Self, String> {
        match version {
            1 => postcard_exact::<BootActionV1>(payload).map(BootAction::from),
            v => Err(format!("schema version {v}, this gopxe reads 1 and 2")),
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

fn postcard_exact<T: DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    let (v, rest) =
        postcard::take_from_bytes(payload).map_err(|e| format!("cannot decode: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
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
pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, String> {
    let (head, payload) = bytes
        .split_at_checked(HEADER)
        .ok_or_else(|| format!("truncated: {} bytes, shorter than the header", bytes.len()))?;
    let (magic, rest) = head.split_at(4);
    if magic != MAGIC {
        return Err("not a gopxe record (bad magic)".into());
    }
    let (ver, crc) = rest.split_at(2);
    let ver = u16::from_le_bytes([ver[0], ver[1]]);
    if ver == 0 || ver > T::VERSION {
        return Err(format!(
            "schema version {ver}, this gopxe reads up to {}",
            T::VERSION
        ));
    }
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch (truncated or damaged)".into());
    }
    if ver < T::VERSION {
        return T::decode_old(ver, payload);
    }
    postcard_exact(payload)
}

/// Writes `bytes` to `path` atomically and durably (temp, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("record path has no folder"))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other("record path has no file name"))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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

/// All records, loaded at start-up and kept in memory; the files are the truth.
#[derive(Debug, Default)]
pub struct Store {
    root: PathBuf,
    pub bootactions: BTreeMap<String, BootAction>,
    pub machines: BTreeMap<MachineId, Machine>,
    pub templates: BTreeMap<String, String>,
}

impl Store {
    /// Opens (creating if needed) the store under `root` and loads every
    /// record. Returns the store and one warning per file moved aside.
    pub fn open(root: &Path) -> io::Result<(Store, Vec<String>)> {
        let mut store = Store {
            root: root.to_path_buf(),
            ..Default::default()
        };
        let mut warnings = Vec::new();
        for kind in [Kind::BootAction, Kind::Machine, Kind::Template] {
            fs::create_dir_all(root.join(kind.dir()))?;
        }
        for (path, bytes) in
            read_dir_files(&root.join(Kind::BootAction.dir()), "rec", &mut warnings)?
        {
            match decode::<BootAction>(&bytes) {
                Ok(a) if path_key(&path) == Some(a.name.as_str()) => {
                    store.bootactions.insert(a.name.clone(), a);
                }
                Ok(_) => {
                    store.quarantine(&path, "file name does not match the record", &mut warnings)
                }
                Err(e) => store.quarantine(&path, &e, &mut warnings),
            }
        }
        for (path, bytes) in read_dir_files(&root.join(Kind::Machine.dir()), "rec", &mut warnings)?
        {
            match decode::<Machine>(&bytes) {
                Ok(m) if path_key(&path) == Some(m.id.canonical().as_str()) => {
                    store.machines.insert(m.id, m);
                }
                Ok(_) => {
                    store.quarantine(&path, "file name does not match the record", &mut warnings)
                }
                Err(e) => store.quarantine(&path, &e, &mut warnings),
            }
        }
        for (path, bytes) in read_dir_files(&root.join(Kind::Template.dir()), "ks", &mut warnings)?
        {
            match (path_key(&path), String::from_utf8(bytes)) {
                (Some(k), Ok(text)) => {
                    store.templates.insert(k.to_string(), text);
                }
                _ => store.quarantine(&path, "not UTF-8 text", &mut warnings),
            }
        }
        Ok((store, warnings))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds record `key` of `kind`. Keys are checked tokens
    /// or canonical ids, so the path never leaves the data dir.
    pub fn path(&self, kind: Kind, key: &str) -> PathBuf {
        self.root
            .join(kind.dir())
            .join(format!("{key}.{}", kind.ext()))
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
    out.sort_by(|a, b| a.0.cmp(&b.0));
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
        assert!(
            decode::<BootAction>(&flipped)
                .unwrap_err()
                .contains("checksum")
        );
        let mut newer = bytes;
        newer[4] = 9;
        assert!(
            decode::<BootAction>(&newer)
                .unwrap_err()
                .contains("schema version 9")
        );
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
        let (store, w) = Store::open(&root).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(store.bootactions.len(), 2);
        assert_eq!(
            store.bootactions.get("deb").map(|a| a.installer),
            Some(Installer::Kickstart)
        );
        assert_eq!(store.bootactions.get("new"), Some(&b));
        assert_eq!(store.machines.len(), 1);
        let _ = fs::remove_dir_all(&root);
    }
}
