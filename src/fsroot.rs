//! One confined file root, shared by the TFTP and HTTP file servers.
//!
//! Layer: driver (file system). [`open_regular`] is the only place where a
//! name from the network becomes an open file; both `tftp::ImagesRoot` and
//! the HTTP `/images/` and `/localrepo/` routes call it. The rules, in the
//! order they are applied:
//!
//! 1. Components are checked as strings: none empty, `.` or `..`, none
//!    holding NUL, `/` or `\`, none over [`MAX_COMPONENT_LEN`] bytes, and at
//!    least one of them ([`Refusal::BadName`]).
//! 2. The joined path is canonicalised (every symlink resolved) and must
//!    stay under the canonical root. A symlink inside the tree is followed;
//!    one that leads out of it is refused with its target in the reason
//!    ([`Refusal::OutsideRoot`]), so the log tells an admin why a symlinked
//!    loader is not served.
//! 3. The canonical path is `lstat`ed and only a regular file goes on: a
//!    FIFO, socket, device or directory is refused without ever being
//!    opened ([`Refusal::NotRegular`]). Opening a FIFO blocks until a writer
//!    appears, and opening a device can have side effects.
//! 4. It is opened read-only with `O_NONBLOCK | O_NOFOLLOW | O_NOCTTY |
//!    O_CLOEXEC` by `openat2(2)` relative to the root, with
//!    `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, and the open descriptor is
//!    `fstat`ed and refused unless it is a regular file. Between steps 2
//!    and 4 a component can be replaced (a folder by a symlink to `/etc`);
//!    the kernel then refuses the open itself, since the canonical path
//!    holds no symlink and may not leave the root ([`open_beneath`]), so
//!    the check of step 2 cannot be raced. The flags keep the open from
//!    blocking (a FIFO) or from taking a terminal as the controlling one,
//!    and the `fstat` refuses whatever was opened instead of a regular file.
//!    Kernels before 5.6 (and qemu-user) have no `openat2`: there the path
//!    is opened one folder at a time from the root with `O_NOFOLLOW`
//!    ([`open_walking`]), which refuses a swapped-in symlink the same way.
//!
//! `O_NONBLOCK` stays set on the returned file: it has no effect on a
//! regular file, whose reads never return `EAGAIN`.
//!
//! The caller passes the root already canonicalised (both servers do it
//! once at start): a root that is not canonical makes every file look
//! outside it.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

/// Longest accepted path component, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_LEN: usize = 255;

/// Why a name under a root was not opened.
#[derive(Debug)]
pub enum Refusal {
    /// A component is empty, `.` or `..`, holds NUL, `/` or `\`, or is too
    /// long; or there are no components.
    BadName(&'static str),
    /// Nothing by that name (or a component is not a directory).
    NotFound,
    /// The name resolves, through a symlink, to `target` outside the root.
    OutsideRoot { target: PathBuf },
    /// Not a regular file: "FIFO", "socket", "character device", "block
    /// device", "directory" or "symlink".
    NotRegular { kind: &'static str },
    /// The file system said no (mode bits).
    PermissionDenied,
    /// Any other error from the file system.
    Io(io::Error),
}

impl Refusal {
    /// A short reason to show a client: no paths, no system error text.
    pub fn public_reason(&self) -> &'static str {
        match self {
            Refusal::BadName(_) => "bad path",
            Refusal::NotFound => "no such file",
            Refusal::OutsideRoot { .. } => "outside the root",
            Refusal::NotRegular { .. } => "not a regular file",
            Refusal::PermissionDenied => "permission denied",
            Refusal::Io(_) => "cannot open file",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BadName(why) => write!(f, "bad path: {why}"),
            Refusal::NotFound => f.write_str("no such file"),
            Refusal::OutsideRoot { target } => {
                write!(f, "symlink leaves the images root -> {}", target.display())
            }
            Refusal::NotRegular { kind } => write!(f, "not a regular file: {kind}"),
            Refusal::PermissionDenied => f.write_str("permission denied"),
            Refusal::Io(e) => write!(f, "cannot open: {e}"),
        }
    }
}

impl std::error::Error for Refusal {}

impl From<io::Error> for Refusal {
    fn from(e: io::Error) -> Refusal {
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Refusal::NotFound,
            io::ErrorKind::PermissionDenied => Refusal::PermissionDenied,
            _ => Refusal::Io(e),
        }
    }
}

impl From<rustix::io::Errno> for Refusal {
    fn from(e: rustix::io::Errno) -> Refusal {
        if e == rustix::io::Errno::LOOP {
            // O_NOFOLLOW met a symlink: the name changed after step 3.
            return Refusal::NotRegular { kind: "symlink" };
        }
        Refusal::from(io::Error::from(e))
    }
}

/// Opens the regular file `components` names under the canonical `root`
/// (see the module doc for the rules); returns it with its length.
pub fn open_regular<I, S>(root: &Path, components: I) -> Result<(File, u64), Refusal>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut path = root.to_path_buf();
    let mut any = false;
    for c in components {
        let c = c.as_ref();
        check_component(c)?;
        path.push(c);
        any = true;
    }
    if !any {
        return Err(Refusal::BadName("empty path"));
    }
    let canonical = path.canonicalize()?;
    if !canonical.starts_with(root) {
        return Err(Refusal::OutsideRoot { target: canonical });
    }
    if let Some(kind) = not_regular(std::fs::symlink_metadata(&canonical)?.file_type()) {
        return Err(Refusal::NotRegular { kind });
    }
    let file = match canonical.strip_prefix(root) {
        Ok(inside) => open_beneath(root, inside)?,
        Err(_) => return Err(Refusal::OutsideRoot { target: canonical }),
    };
    let meta = file.metadata()?;
    if let Some(kind) = not_regular(meta.file_type()) {
        return Err(Refusal::NotRegular { kind });
    }
    Ok((file, meta.len()))
}

/// How a file under the root is opened for reading.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// Opens `inside` (relative, symlink-free) under `root` for reading, the
/// kernel refusing any symlink on the way and any step out of `root`
/// (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`); where the
/// kernel (or an emulator) has no `openat2`, through [`open_walking`].
pub fn open_beneath(root: &Path, inside: &Path) -> Result<File, Refusal> {
    use rustix::fs::ResolveFlags;
    use rustix::io::Errno;
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
    match rustix::fs::openat2(&dir, inside, READ_FLAGS, Mode::empty(), resolve) {
        Ok(fd) => Ok(File::from(fd)),
        Err(Errno::NOSYS) => open_walking(root, inside),
        Err(Errno::XDEV) => Err(Refusal::OutsideRoot {
            target: root.join(inside),
        }),
        Err(e) => Err(e.into()),
    }
}

/// [`open_beneath`] without `openat2`: one folder at a time from `root`,
/// each opened relative to the one before with `O_NOFOLLOW` and checked to
/// be a folder, so a symlink anywhere on the way is refused, as is the
/// last component if it is one.
pub fn open_walking(root: &Path, inside: &Path) -> Result<File, Refusal> {
    let mut dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let parts: Vec<&std::ffi::OsStr> = inside.iter().collect();
    let Some((last, folders)) = parts.split_last() else {
        return Err(Refusal::BadName("empty path"));
    };
    for part in folders {
        let next = rustix::fs::openat(
            &dir,
            *part,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&next)?.st_mode);
        match kind {
            rustix::fs::FileType::Directory => dir = next,
            rustix::fs::FileType::Symlink => return Err(Refusal::NotRegular { kind: "symlink" }),
            _ => return Err(Refusal::NotFound),
        }
    }
    Ok(File::from(rustix::fs::openat(
        &dir,
        *last,
        READ_FLAGS,
        Mode::empty(),
    )?))
}

fn check_component(c: &str) -> Result<(), Refusal> {
    let why = match c {
        "" => "empty path component",
        "." => "'.' path component",
        ".." => "'..' path component",
        c if c.len() > MAX_COMPONENT_LEN => "path component too long",
        c if c.contains(['\0', '/', '\\']) => "NUL, '/' or '\\' in a path component",
        _ => return Ok(()),
    };
    Err(Refusal::BadName(why))
}

/// `None` for a regular file, else what it is.
fn not_regular(t: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    Some(if t.is_file() {
        return None;
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_symlink() {
        "symlink"
    } else {
        "unknown file type"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A fresh canonical directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::SeqCst);
            let d =
                std::env::temp_dir().join(format!("gopxe-fsroot-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            TempDir(d.canonicalize().unwrap())
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A tree: `outside.txt` next to `root/`, which holds `a/b.bin`.
    fn tree(tag: &str) -> (TempDir, PathBuf) {
        let t = TempDir::new(tag);
        let root = t.0.join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/b.bin"), b"twelve bytes").unwrap();
        std::fs::write(t.0.join("outside.txt"), b"secret").unwrap();
        (t, root)
    }

    /// [`open_regular`] on another thread; fails instead of hanging when it
    /// blocks.
    fn open_bounded(root: &Path, components: &[&str]) -> Result<(File, u64), Refusal> {
        let (tx, rx) = std::sync::mpsc::channel();
        let root = root.to_path_buf();
        let components: Vec<String> = components.iter().map(|c| c.to_string()).collect();
        std::thread::spawn(move || {
            let _ = tx.send(open_regular(&root, &components));
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("open_regular blocked")
    }

    /// The race step 4 closes: a component checked as a folder and then
    /// swapped for a symlink out of the root. [`open_beneath`] is given
    /// the path as checked and must refuse what it resolves to now.
    #[test]
    fn a_component_swapped_for_a_symlink_after_the_check_is_refused() {
        swapped_component_refused_by(open_beneath, "swap-beneath");
        swapped_component_refused_by(open_walking, "swap-walking");
    }

    fn swapped_component_refused_by(
        open_beneath: fn(&Path, &Path) -> Result<File, Refusal>,
        tag: &str,
    ) {
        let (t, root) = tree(tag);
        assert_eq!(
            std::fs::read(root.join("a/b.bin")).unwrap(),
            b"twelve bytes",
            "the checked path"
        );
        let mut ok = String::new();
        std::io::Read::read_to_string(
            &mut open_beneath(&root, Path::new("a/b.bin")).unwrap(),
            &mut ok,
        )
        .unwrap();
        assert_eq!(ok, "twelve bytes");
        // `a` becomes a symlink to a folder outside the root that holds
        // a `b.bin` of its own.
        std::fs::create_dir_all(t.0.join("elsewhere")).unwrap();
        std::fs::write(t.0.join("elsewhere/b.bin"), b"secret").unwrap();
        std::fs::remove_dir_all(root.join("a")).unwrap();
        std::os::unix::fs::symlink(t.0.join("elsewhere"), root.join("a")).unwrap();
        match open_beneath(&root, Path::new("a/b.bin")) {
            Err(Refusal::OutsideRoot { .. } | Refusal::NotRegular { kind: "symlink" }) => {}
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("opened a file outside the root"),
        }
        // A symlink that stays inside the root is refused too: the path
        // was canonical when it was checked, so any symlink is a change.
        std::fs::remove_file(root.join("a")).unwrap();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/b.bin"), b"x").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("a")).unwrap();
        assert!(open_beneath(&root, Path::new("a/b.bin")).is_err());
    }

    #[test]
    fn a_regular_file_opens_with_its_length() {
        let (_t, root) = tree("regular");
        let (file, len) = open_regular(&root, ["a", "b.bin"]).unwrap();
        assert_eq!(len, 12);
        assert_eq!(file.metadata().unwrap().len(), 12);
    }

    #[test]
    fn missing_names_are_not_found() {
        let (_t, root) = tree("missing");
        assert!(matches!(
            open_regular(&root, ["nope"]),
            Err(Refusal::NotFound)
        ));
        // A component below a regular file.
        assert!(matches!(
            open_regular(&root, ["a", "b.bin", "c"]),
            Err(Refusal::NotFound)
        ));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let (_t, root) = tree("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, root.join("fifo"), Mode::RUSR | Mode::WUSR).unwrap();
        let r = open_bounded(&root, &["fifo"]);
        assert!(
            matches!(r, Err(Refusal::NotRegular { kind: "FIFO" })),
            "{r:?}"
        );
        // Through a symlink inside the root, too.
        std::os::unix::fs::symlink("fifo", root.join("to-fifo")).unwrap();
        let r = open_bounded(&root, &["to-fifo"]);
        assert!(
            matches!(r, Err(Refusal::NotRegular { kind: "FIFO" })),
            "{r:?}"
        );
    }

    #[test]
    fn a_socket_is_refused() {
        let (_t, root) = tree("socket");
        let _listener = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        let r = open_bounded(&root, &["sock"]);
        assert!(
            matches!(r, Err(Refusal::NotRegular { kind: "socket" })),
            "{r:?}"
        );
    }

    #[test]
    fn a_directory_is_refused() {
        let (_t, root) = tree("dir");
        let r = open_regular(&root, ["a"]);
        assert!(
            matches!(r, Err(Refusal::NotRegular { kind: "directory" })),
            "{r:?}"
        );
        assert!(matches!(
            open_regular(&root, Vec::<&str>::new()),
            Err(Refusal::BadName(_))
        ));
    }

    #[test]
    fn a_symlink_inside_the_root_is_followed() {
        let (_t, root) = tree("inside");
        std::os::unix::fs::symlink("a/b.bin", root.join("loader")).unwrap();
        std::os::unix::fs::symlink("../a", root.join("a/again")).unwrap();
        assert_eq!(open_regular(&root, ["loader"]).unwrap().1, 12);
        assert_eq!(open_regular(&root, ["a", "again", "b.bin"]).unwrap().1, 12);
    }

    #[test]
    fn a_symlink_out_of_the_root_is_refused_with_its_target() {
        let (t, root) = tree("outside");
        let target = t.0.join("outside.txt");
        std::os::unix::fs::symlink(&target, root.join("loader")).unwrap();
        std::os::unix::fs::symlink("..", root.join("up")).unwrap();
        let r = open_regular(&root, ["loader"]);
        match &r {
            Err(Refusal::OutsideRoot { target: t }) => assert_eq!(t, &target),
            other => panic!("{other:?}"),
        }
        let reason = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            reason,
            format!("symlink leaves the images root -> {}", target.display())
        );
        assert!(matches!(
            open_regular(&root, ["up", "outside.txt"]),
            Err(Refusal::OutsideRoot { .. })
        ));
        // A root that shares a prefix is not the root.
        std::fs::write(t.0.join("rootx"), b"x").unwrap();
        std::os::unix::fs::symlink("../rootx", root.join("sibling")).unwrap();
        assert!(matches!(
            open_regular(&root, ["sibling"]),
            Err(Refusal::OutsideRoot { .. })
        ));
    }

    #[test]
    fn bad_components_are_refused_before_the_file_system() {
        let (_t, root) = tree("names");
        let long = "x".repeat(MAX_COMPONENT_LEN + 1);
        for c in ["..", ".", "", "a/b.bin", "a\\b", "a\0b", long.as_str()] {
            let r = open_regular(&root, ["a", c]);
            assert!(matches!(r, Err(Refusal::BadName(_))), "{c:?}: {r:?}");
        }
        assert!(matches!(
            open_regular(&root, ["..", "outside.txt"]),
            Err(Refusal::BadName(_))
        ));
    }

    #[test]
    fn public_reasons_name_no_path() {
        let r = Refusal::OutsideRoot {
            target: PathBuf::from("/etc/shadow"),
        };
        assert_eq!(r.public_reason(), "outside the root");
        assert!(r.to_string().contains("/etc/shadow"));
        assert_eq!(
            Refusal::NotRegular { kind: "FIFO" }.public_reason(),
            "not a regular file"
        );
    }
}
