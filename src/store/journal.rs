//! The store's journal: record changes appended to `journal.<n>` in the
//! data dir by one committer thread, one write and one fsync per batch
//! (group commit), and checkpointed into the record files later.
//!
//! Layer: storage (blocking file I/O, on threads of its own: the
//! committer and, while one runs, a checkpoint). The executor only queues
//! a change ([`Committer::commit`], which never blocks) and awaits the
//! answer for its batch.
//!
//! A journal file is a header, `GPXJ` and the journal version (u16 LE,
//! 1), then entries, then zeros (the file is written full of zeros when it
//! is created, see `prepare`; a length of 0 where an entry would start,
//! with only zeros after it, is the end):
//!
//! ```text
//! len   u32 LE   length of the body
//! crc   u32 LE   CRC-32 of the body
//! body  op (u8: 1 put, 2 remove), kind (u8: 1 boot action, 2 machine,
//!       3 template), key length (u8), key (a checked token or a
//!       canonical machine id), and for a put the record file's new body
//!       (a `GPXR` record, or a template's text)
//! ```
//!
//! The committer takes every change queued since its last fsync, appends
//! them with one write, makes them durable with one `fdatasync`, and only
//! then answers each waiter: a change is acknowledged once its batch is on
//! disk. While it syncs, the next changes queue; they make the next batch.
//! A batch that cannot be written or synced is answered with the error and
//! wiped again (its bytes overwritten with zeros and synced), so that no
//! later, shorter batch can be followed by its entries; if even that
//! fails, the journal refuses every later change until gopxe restarts, so
//! nothing is acknowledged after a tail it could not clean up.
//!
//! The first journal file is created with the first batch (header and
//! zeros written, file and folder synced before the batch is written into
//! it), so a store that is only read writes nothing; each next one is
//! prepared in the background while the one before is in use. Appends
//! overwrite the zeros in place, so an append's `fdatasync` changes no
//! file size and needs no commit of the file system's own journal.
//!
//! Checkpoint: once the journal passes
//! [`Options::checkpoint_bytes`], the committer moves on to
//! `journal.<n+1>` and hands the old file, with the latest body of every
//! record it changed, to a checkpoint thread (one at a time; a failed one
//! is logged and retried with the next). That thread writes each record file
//! (temp, fsync, rename), syncs the folders, and only then deletes the old
//! journal (oldest first, folder synced after each). Start-up replays the
//! record files and then every journal file in order and checkpoints what
//! it replayed the same way, in the background, while new changes go to a
//! new journal. Journal entries hold whole records, so replaying an entry
//! twice, or over a record file a checkpoint already wrote, changes
//! nothing; deleting the oldest journal first keeps every record's last
//! entry in a file that is still replayed.

use super::Kind;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

const MAGIC: &[u8; 4] = b"GPXJ";
const VERSION: u16 = 1;
const FILE_HEADER: usize = 6;
const ENTRY_HEADER: usize = 8;
const PUT: u8 = 1;
const REMOVE: u8 = 2;
/// The journal files' name, before the `.<n>` generation.
const PREFIX: &str = "journal.";

/// A record's new file body, or its removal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    /// The record's key: its file name without the extension.
    pub key: String,
    /// The record file's new body; `None` removes the record.
    pub body: Option<Vec<u8>>,
}

impl Change {
    pub fn put(kind: Kind, key: impl Into<String>, body: Vec<u8>) -> Change {
        Change {
            kind,
            key: key.into(),
            body: Some(body),
        }
    }

    pub fn remove(kind: Kind, key: impl Into<String>) -> Change {
        Change {
            kind,
            key: key.into(),
            body: None,
        }
    }
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::BootAction => 1,
            Kind::Machine => 2,
            Kind::Template => 3,
        }
    }

    fn from_code(c: u8) -> Option<Kind> {
        match c {
            1 => Some(Kind::BootAction),
            2 => Some(Kind::Machine),
            3 => Some(Kind::Template),
            _ => None,
        }
    }
}

/// Appends one entry for `c` to `out`.
pub(super) fn encode_entry(c: &Change, out: &mut Vec<u8>) -> io::Result<()> {
    let key = c.key.as_bytes();
    let key_len = u8::try_from(key.len())
        .map_err(|_| io::Error::other(format!("record key of {} bytes", key.len())))?;
    let data = c.body.as_deref().unwrap_or_default();
    let mut body = Vec::with_capacity(3 + key.len() + data.len());
    body.push(if c.body.is_some() { PUT } else { REMOVE });
    body.push(c.kind.code());
    body.push(key_len);
    body.extend_from_slice(key);
    body.extend_from_slice(data);
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::other(format!("record of {} bytes", body.len())))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// Decodes an entry's body (its checksum already matched).
fn decode_body(body: &[u8]) -> Result<Change, String> {
    let [op, kind, key_len, rest @ ..] = body else {
        return Err("entry shorter than its fields".into());
    };
    let kind = Kind::from_code(*kind).ok_or_else(|| format!("unknown record kind {kind}"))?;
    let (key, data) = rest
        .split_at_checked(usize::from(*key_len))
        .ok_or("entry shorter than its key")?;
    let key = std::str::from_utf8(key).map_err(|_| "key is not UTF-8")?;
    crate::model::validate::check_token("key", key).map_err(|e| e.to_string())?;
    match *op {
        PUT => Ok(Change::put(kind, key, data.to_vec())),
        REMOVE if data.is_empty() => Ok(Change::remove(kind, key)),
        REMOVE => Err("a removal with a body".into()),
        op => Err(format!("unknown operation {op}")),
    }
}

/// What one journal file holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The entries in order, each with its byte offset.
    pub changes: Vec<(u64, Change)>,
    /// Entries whose checksum matched but which do not decode (written by
    /// another gopxe?): offset and reason. Skipped.
    pub skipped: Vec<(u64, String)>,
    /// Where the readable entries end, if bytes follow: offset and reason.
    /// A crash during an append leaves such a tail; its entries were never
    /// acknowledged.
    pub torn: Option<(u64, String)>,
}

/// The little-endian number in the first bytes of `b`; 0 when `b` is
/// shorter (callers split off exactly the width first).
pub(super) fn le_u16(b: &[u8]) -> u16 {
    b.first_chunk::<2>().map_or(0, |a| u16::from_le_bytes(*a))
}

/// See [`le_u16`].
pub(super) fn le_u32(b: &[u8]) -> u32 {
    b.first_chunk::<4>().map_or(0, |a| u32::from_le_bytes(*a))
}

/// Reads a journal file's bytes. An error is a file that is not a journal
/// this gopxe can read (it is left alone, never wiped); a file shorter
/// than the header, or whose header is still zeros, was being created
/// when gopxe stopped and holds nothing.
pub fn parse(bytes: &[u8]) -> io::Result<Parsed> {
    let mut parsed = Parsed::default();
    let Some((head, mut rest)) = bytes.split_at_checked(FILE_HEADER) else {
        return Ok(parsed);
    };
    if head.iter().all(|&b| b == 0) {
        return Ok(parsed);
    }
    let (magic, version) = head.split_at(4);
    if magic != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a gopxe journal (bad magic)",
        ));
    }
    let version = le_u16(version);
    if version != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("journal version {version}, this gopxe reads {VERSION}"),
        ));
    }
    let mut offset = FILE_HEADER as u64;
    while !rest.is_empty() {
        // The file's prepared zeros: the end of its entries.
        let at_end = |rest: &[u8]| rest.iter().all(|&b| b == 0);
        let Some((header, after)) = rest.split_at_checked(ENTRY_HEADER) else {
            if !at_end(rest) {
                parsed.torn = Some((offset, "torn entry header".into()));
            }
            break;
        };
        let (len, crc) = header.split_at(4);
        let len = le_u32(len) as usize;
        let crc = le_u32(crc);
        if len == 0 {
            if !at_end(rest) {
                parsed.torn = Some((offset, "zeros before more bytes".into()));
            }
            break;
        }
        let Some((body, next)) = after.split_at_checked(len) else {
            parsed.torn = Some((offset, "torn entry".into()));
            break;
        };
        if crc32fast::hash(body) != crc {
            parsed.torn = Some((offset, "checksum mismatch".into()));
            break;
        }
        match decode_body(body) {
            Ok(c) => parsed.changes.push((offset, c)),
            Err(e) => parsed.skipped.push((offset, e)),
        }
        offset += (ENTRY_HEADER + len) as u64;
        rest = next;
    }
    Ok(parsed)
}

/// The journal files under `root`, oldest first, with their generation.
pub fn list(root: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(generation) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .filter(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|g| g.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.file_type()?.is_file() {
            out.push((generation, entry.path()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn journal_path(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("{PREFIX}{generation}"))
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How an append is made durable: `fdatasync` in service; tests count
/// the calls, hold one, or fail one.
pub type SyncFn = Arc<dyn Fn(&File) -> io::Result<()> + Send + Sync>;

/// How the store's journal runs.
#[derive(Clone)]
pub struct Options {
    /// Journal size (bytes) past which it is checkpointed.
    pub checkpoint_bytes: u64,
    /// Makes a batch durable; called once per batch.
    pub sync: SyncFn,
}

/// Checkpoint past 1 MiB of journal: a few thousand record changes, read
/// back in milliseconds at start-up.
pub const CHECKPOINT_BYTES: u64 = 1 << 20;

impl Default for Options {
    fn default() -> Options {
        Options {
            checkpoint_bytes: CHECKPOINT_BYTES,
            sync: Arc::new(|f: &File| f.sync_data()),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("checkpoint_bytes", &self.checkpoint_bytes)
            .finish_non_exhaustive()
    }
}

/// What the committer has done, for tests and diagnostics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Batches appended and synced (one fsync each).
    pub batches: AtomicU64,
    /// Changes in those batches.
    pub changes: AtomicU64,
    /// Checkpoints finished (journal files folded into record files).
    pub checkpoints: AtomicU64,
    /// Checkpoints started (finished, failed or running).
    pub checkpoints_started: AtomicU64,
}

/// The latest body of each record a journal changed (`None`: removed).
pub type Dirty = BTreeMap<(Kind, String), Option<Vec<u8>>>;

/// Work for a checkpoint: record files to write, then journal files
/// (oldest first) to delete.
#[derive(Debug, Default)]
pub struct Job {
    pub dirty: Dirty,
    pub files: Vec<PathBuf>,
}

impl Job {
    /// This job, followed by a later one: the later bodies win.
    fn then(mut self, later: Job) -> Job {
        self.dirty.extend(later.dirty);
        self.files.extend(later.files);
        self
    }
}

/// Writes `bytes` to `path` through a temp file in the same folder
/// (write, fsync, rename). The folder is synced by the caller.
pub(super) fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
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
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Folds a job into the record files under `root`: every record file
/// written (or removed) and its folder synced, then the journal files
/// deleted, oldest first.
pub fn checkpoint(root: &Path, job: &Job) -> io::Result<()> {
    let mut dirs = Vec::new();
    for ((kind, key), body) in &job.dirty {
        let path = super::record_path(root, *kind, key);
        match body {
            Some(b) => replace_file(&path, b)?,
            None => match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
        }
        if !dirs.contains(kind) {
            dirs.push(*kind);
        }
    }
    for kind in dirs {
        sync_dir(&root.join(kind.dir()))?;
    }
    for file in &job.files {
        match fs::remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        sync_dir(root)?;
    }
    Ok(())
}

/// Creates `journal.<generation>`: the header, then zeros up to `size`
/// bytes, written and synced (file and folder) before it is used. Its
/// blocks are then allocated and written, so an append overwrites them in
/// place and its `fdatasync` writes only the data: the file's size does
/// not change, so no file-system journal commit is needed (on ext4 such a
/// commit also waits for other files' pending data, which made single
/// syncs take seconds in a busy boot storm). (No other file of this
/// generation is in use: the store's lock keeps other gopxe processes out,
/// and start-up chose a generation past every file there.)
fn prepare(root: &Path, generation: u64, size: u64) -> io::Result<File> {
    let path = journal_path(root, generation);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    let size = usize::try_from(size)
        .map_err(|_| io::Error::other("journal size"))?
        .max(FILE_HEADER);
    let mut bytes = vec![0u8; size];
    for (b, h) in bytes
        .iter_mut()
        .zip(MAGIC.iter().chain(&VERSION.to_le_bytes()))
    {
        *b = *h;
    }
    file.write_all(&bytes)?;
    file.sync_all()?;
    sync_dir(root)?;
    Ok(file)
}

/// A journal file being made ready in the background.
type Spare = JoinHandle<io::Result<File>>;

/// The journal file being appended to. The first is created with the first
/// batch, so a store that is only read writes nothing; from then on the
/// next one is prepared in the background (a spare), so moving on to it
/// costs the committer nothing.
struct Journal {
    root: PathBuf,
    generation: u64,
    file: Option<File>,
    /// Where the acknowledged entries end; zeros follow.
    len: u64,
    /// Bytes a new journal file is made of.
    size: u64,
    /// `journal.<generation + 1>`, being prepared.
    spare: Option<Spare>,
    /// What this file changed, for its checkpoint.
    dirty: Dirty,
    sync: SyncFn,
    /// Set when a failed batch could not be wiped again.
    broken: Option<String>,
}

impl Journal {
    fn new(root: &Path, generation: u64, size: u64, sync: SyncFn) -> Journal {
        Journal {
            root: root.to_path_buf(),
            generation,
            file: None,
            len: 0,
            size,
            spare: None,
            dirty: Dirty::new(),
            sync,
            broken: None,
        }
    }

    /// Starts preparing `journal.<generation + 1>` (logged if it fails:
    /// the next file is then created when it is needed).
    fn prepare_spare(&mut self) {
        let (root, generation, size) = (self.root.clone(), self.generation + 1, self.size);
        match std::thread::Builder::new()
            .name("gopxe-journal".into())
            .spawn(move || prepare(&root, generation, size))
        {
            Ok(t) => self.spare = Some(t),
            Err(e) => log::warn!("store: cannot prepare the next journal file: {e}"),
        }
    }

    /// Waits for the spare, if any (shutting down).
    fn finish_spare(&mut self) {
        if let Some(t) = self.spare.take() {
            let _ = t.join();
        }
    }

    /// Appends a batch with one write and makes it durable with one sync.
    /// On failure the batch's bytes are overwritten with zeros again.
    fn append<'a>(&mut self, changes: impl Iterator<Item = &'a Change>) -> io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(io::Error::other(format!(
                "the store's journal is unusable since an earlier failure ({why}); restart gopxe"
            )));
        }
        let mut bytes = Vec::new();
        let mut batch = Vec::new();
        for c in changes {
            encode_entry(c, &mut bytes)?;
            batch.push(c);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(prepare(&self.root, self.generation, self.size)?);
            self.len = FILE_HEADER as u64;
            self.prepare_spare();
        }
        let Some(file) = self.file.as_ref() else {
            return Err(io::Error::other("the journal file is not open"));
        };
        // Past the prepared zeros (a batch larger than the room left), the
        // file grows: correct, only slower to sync.
        let written = file
            .write_all_at(&bytes, self.len)
            .and_then(|()| (self.sync)(file));
        if let Err(e) = written {
            // Replay must not find a failed batch's entries after those
            // of a later batch that is shorter: zeros again.
            let wiped = file
                .write_all_at(&vec![0; bytes.len()], self.len)
                .and_then(|()| file.sync_data());
            if let Err(wipe) = wiped {
                self.broken = Some(format!("{e}; then wiping it: {wipe}"));
            }
            return Err(e);
        }
        self.len += bytes.len() as u64;
        for c in batch {
            self.dirty.insert((c.kind, c.key.clone()), c.body.clone());
        }
        Ok(())
    }

    /// Moves on to the next journal file (the spare, or one created with
    /// the next batch); returns the checkpoint job for this one.
    fn rotate(&mut self) -> Job {
        let spare = self.spare.take().and_then(|t| match t.join() {
            Ok(Ok(file)) => Some(file),
            Ok(Err(e)) => {
                log::warn!("store: the next journal file could not be prepared: {e}");
                None
            }
            Err(_) => None,
        });
        let job = Job {
            dirty: std::mem::take(&mut self.dirty),
            files: vec![journal_path(&self.root, self.generation)],
        };
        self.generation += 1;
        self.len = FILE_HEADER as u64;
        self.file = spare;
        if self.file.is_some() {
            self.prepare_spare();
        }
        job
    }
}

/// A batch member: its changes and where its answer goes.
struct Request {
    changes: Vec<Change>,
    reply: smol::channel::Sender<Result<(), (io::ErrorKind, String)>>,
}

/// The committer thread's handle. Dropping it lets the thread finish the
/// queued batches and any running checkpoint, and waits for it.
pub struct Committer {
    tx: Option<smol::channel::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
}

impl fmt::Debug for Committer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Committer")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts the thread that appends to `journal.<generation>` (created
    /// with the first batch); `first` is a checkpoint to run at once (what
    /// start-up replayed).
    pub fn start(
        root: &Path,
        generation: u64,
        first: Option<Job>,
        options: &Options,
    ) -> io::Result<Committer> {
        let size = options.checkpoint_bytes + options.checkpoint_bytes / 4 + 4096;
        let journal = Journal::new(root, generation, size, options.sync.clone());
        let (tx, rx) = smol::channel::unbounded();
        let stats = Arc::new(Stats::default());
        let thread = {
            let stats = stats.clone();
            let limit = options.checkpoint_bytes;
            std::thread::Builder::new()
                .name("gopxe-store".into())
                .spawn(move || run(journal, rx, first, limit, &stats))?
        };
        Ok(Committer {
            tx: Some(tx),
            thread: Some(thread),
            stats,
        })
    }

    /// Queues `changes` for the next batch (at once, in call order) and
    /// returns the future of their answer: `Ok` once the batch is durable.
    pub fn commit(&self, changes: Vec<Change>) -> impl Future<Output = io::Result<()>> + use<> {
        let (reply, answer) = smol::channel::bounded(1);
        let queued = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.try_send(Request { changes, reply }).is_ok());
        async move {
            let stopped = || io::Error::other("the store's committer has stopped");
            if !queued {
                return Err(stopped());
            }
            match answer.recv().await {
                Ok(Ok(())) => Ok(()),
                Ok(Err((kind, msg))) => Err(io::Error::new(kind, msg)),
                Err(_) => Err(stopped()),
            }
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            log::error!("store: the committer thread panicked");
        }
    }
}

/// A running checkpoint: its thread gives the job back if it failed.
type Running = JoinHandle<Result<(), (Job, io::Error)>>;

fn spawn_checkpoint(root: PathBuf, job: Job, stats: Arc<Stats>) -> io::Result<Running> {
    std::thread::Builder::new()
        .name("gopxe-checkpoint".into())
        .spawn(move || match checkpoint(&root, &job) {
            Ok(()) => {
                stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                log::debug!(
                    "store: checkpoint: {} records written, {} journal files folded",
                    job.dirty.len(),
                    job.files.len()
                );
                Ok(())
            }
            Err(e) => Err((job, e)),
        })
}

/// The committer: batches, appends, answers; checkpoints when due.
fn run(
    mut journal: Journal,
    rx: smol::channel::Receiver<Request>,
    first: Option<Job>,
    limit: u64,
    stats: &Arc<Stats>,
) {
    let mut cp = Checkpoints {
        running: None,
        leftover: None,
        stuck: false,
    };
    if let Some(job) = first {
        cp.start(&journal.root, job, stats);
    }
    while let Ok(head) = rx.recv_blocking() {
        let mut batch = vec![head];
        batch.extend(std::iter::from_fn(|| rx.try_recv().ok()));
        let result = journal.append(batch.iter().flat_map(|r| r.changes.iter()));
        if result.is_ok() {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            let n: usize = batch.iter().map(|r| r.changes.len()).sum();
            stats.changes.fetch_add(n as u64, Ordering::Relaxed);
        }
        let answer = result.map_err(|e| (e.kind(), e.to_string()));
        for r in batch {
            // A waiter that went away no longer needs its answer.
            let _ = r.reply.try_send(answer.clone());
        }
        if journal.len >= limit && cp.idle(false) {
            let job = journal.rotate();
            cp.start(&journal.root, job, stats);
        }
    }
    // Shutting down: let a running checkpoint and a spare finish.
    cp.idle(true);
    journal.finish_spare();
}

/// At most one checkpoint at a time; a failed one is retried with the next.
struct Checkpoints {
    running: Option<Running>,
    /// A failed job, to run before the next one (its files are older).
    leftover: Option<Job>,
    /// A checkpoint thread died without giving its job back: no journal
    /// file may be deleted any more (an older one might outlive a newer
    /// one) until start-up replays them all.
    stuck: bool,
}

impl Checkpoints {
    /// Whether a new checkpoint may start: none is running (a finished
    /// one is collected). With `wait`, waits for a running one.
    fn idle(&mut self, wait: bool) -> bool {
        if self.stuck {
            return false;
        }
        let Some(running) = self.running.take() else {
            return true;
        };
        if !wait && !running.is_finished() {
            self.running = Some(running);
            return false;
        }
        match running.join() {
            Ok(Ok(())) => true,
            Ok(Err((job, e))) => {
                log::error!(
                    "store: checkpoint failed: {e}; the journal is kept and the checkpoint retried"
                );
                self.leftover = Some(match self.leftover.take() {
                    Some(older) => older.then(job),
                    None => job,
                });
                true
            }
            Err(_) => {
                log::error!("store: the checkpoint thread panicked; journal files are kept");
                self.stuck = true;
                false
            }
        }
    }

    fn start(&mut self, root: &Path, job: Job, stats: &Arc<Stats>) {
        let job = match self.leftover.take() {
            Some(older) => older.then(job),
            None => job,
        };
        stats.checkpoints_started.fetch_add(1, Ordering::Relaxed);
        match spawn_checkpoint(root.to_path_buf(), job, stats.clone()) {
            Ok(t) => self.running = Some(t),
            Err(e) => {
                log::error!("store: cannot start a checkpoint thread: {e}");
                self.stuck = true;
            }
        }
    }
}
