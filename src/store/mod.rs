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
//! payload (u32 LE) and the postcard payload. Every write is a temp file in
//! the same folder, `fsync`, `rename` over the old name, `fsync` of the
//! folder: after a crash a record is either the old or the new version,
//! never a mix, and a write that returned is on disk. A file that fails to
//! decode at start-up is reported with its path, moved into `corrupt/`, and
//! the rest is served.

use crate::model::{BootAction, Machine, MachineId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The schema version written into every record.
pub const SCHEMA_VERSION: u16 = 1;
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

/// Encodes a value as a record file body.
pub fn encode<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    let payload = postcard::to_stdvec(v).map_err(|e| io::Error::other(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SCHEMA_VERSION.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes a record file body, checking magic, version and checksum.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (head, payload) = bytes
        .split_at_checked(HEADER)
        .ok_or_else(|| format!("truncated: {} bytes, shorter than the header", bytes.len()))?;
    let (magic, rest) = head.split_at(4);
    if magic != MAGIC {
        return Err("not a gopxe record (bad magic)".into());
    }
    let (ver, crc) = rest.split_at(2);
    let ver = u16::from_le_bytes([ver[0], ver[1]]);
    if ver != SCHEMA_VERSION {
        return Err(format!(
            "schema version {ver}, this gopxe reads {SCHEMA_VERSION}"
        ));
    }
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch (truncated or damaged)".into());
    }
    let (v, rest) =
        postcard::take_from_bytes(payload).map_err(|e| format!("cannot decode: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(v)
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
    use crate::model::{BootActionBody, Loader, MachineState};

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
}
