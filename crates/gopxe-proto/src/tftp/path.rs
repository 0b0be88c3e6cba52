//! Request file names to safe relative paths: a pure check (no file system).
//!
//! RFC 1350 leaves file names to the server. Here a name is split into
//! components on `/` and `\` (both are separators, so a backslash can never
//! smuggle a `..` past the check) and every component is compared, never the
//! string as a whole. One leading separator is stripped (many firmware
//! clients send `/pxelinux.0`), so such a name is relative to the images
//! root. Refused: non-UTF-8, NUL and other control characters, empty
//! components (`a//b`, a trailing `/`), `.` and `..`, names over
//! [`MAX_NAME_LEN`] bytes and components over [`MAX_COMPONENT_LEN`] bytes.
//! Percent signs are not decoded: `%2e%2e` is an ordinary file name.
//!
//! Symlinks and file types are the resolver's job (see `gopxe::fsroot`).

use std::fmt;

/// Longest accepted request name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest accepted path component, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_LEN: usize = 255;

/// A checked path relative to a root: non-empty components separated by `/`,
/// none of them `.`, `..` or containing a control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelativePath(String);

/// Why a request name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotUtf8,
    TooLong,
    Empty,
    ControlChar,
    EmptyComponent,
    DotComponent,
    ParentComponent,
    ComponentTooLong,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotUtf8 => "file name is not UTF-8",
            PathError::TooLong => "file name too long",
            PathError::Empty => "empty file name",
            PathError::ControlChar => "control character in file name",
            PathError::EmptyComponent => "empty path component",
            PathError::DotComponent => "'.' path component",
            PathError::ParentComponent => "'..' path component",
            PathError::ComponentTooLong => "path component too long",
        })
    }
}

impl std::error::Error for PathError {}

/// Check a request's file name (raw bytes from the wire).
pub fn sanitize(name: &[u8]) -> Result<RelativePath, PathError> {
    if name.len() > MAX_NAME_LEN {
        return Err(PathError::TooLong);
    }
    let name = std::str::from_utf8(name).map_err(|_| PathError::NotUtf8)?;
    if name.chars().any(char::is_control) {
        return Err(PathError::ControlChar);
    }
    let is_sep = |c: char| c == '/' || c == '\\';
    let name = name.strip_prefix(is_sep).unwrap_or(name);
    if name.is_empty() {
        return Err(PathError::Empty);
    }
    let mut out = String::with_capacity(name.len());
    for component in name.split(is_sep) {
        match component {
            "" => return Err(PathError::EmptyComponent),
            "." => return Err(PathError::DotComponent),
            ".." => return Err(PathError::ParentComponent),
            c if c.len() > MAX_COMPONENT_LEN => return Err(PathError::ComponentTooLong),
            c => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(c);
            }
        }
    }
    Ok(RelativePath(out))
}

impl RelativePath {
    /// The normalised name, components joined by `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        let cases: &[(&[u8], &str)] = &[
            (b"pxelinux.0", "pxelinux.0"),
            (b"/pxelinux.0", "pxelinux.0"),
            (b"\\boot\\x86\\wdsnbp.com", "boot/x86/wdsnbp.com"),
            (
                b"pxelinux.cfg/01-aa-bb-cc-dd-ee-ff",
                "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff",
            ),
            (b"%2e%2e/etc/passwd", "%2e%2e/etc/passwd"),
            (b"...", "..."),
            (b"..foo/.bar", "..foo/.bar"),
            (b"/etc/passwd", "etc/passwd"),
        ];
        for (name, want) in cases {
            assert_eq!(sanitize(name).as_ref().map(RelativePath::as_str), Ok(*want));
        }
    }

    #[test]
    fn refused() {
        let long = vec![b'a'; MAX_NAME_LEN + 1];
        let long_comp = vec![b'a'; MAX_COMPONENT_LEN + 1];
        let cases: &[(&[u8], PathError)] = &[
            (b"", PathError::Empty),
            (b"/", PathError::Empty),
            (b"..", PathError::ParentComponent),
            (b"../etc/passwd", PathError::ParentComponent),
            (b"/../etc/passwd", PathError::ParentComponent),
            (b"foo/../../x", PathError::ParentComponent),
            (b"..\\..\\etc\\passwd", PathError::ParentComponent),
            (b"foo\\..\\..\\x", PathError::ParentComponent),
            (b"//etc/passwd", PathError::EmptyComponent),
            (b"a//b", PathError::EmptyComponent),
            (b"dir/", PathError::EmptyComponent),
            (b"./x", PathError::DotComponent),
            (b"a/./b", PathError::DotComponent),
            (b"a\0b", PathError::ControlChar),
            (b"a\nb", PathError::ControlChar),
            (b"a\x7fb", PathError::ControlChar),
            (b"a\xffb", PathError::NotUtf8),
            (b"\xc0\xae\xc0\xae/x", PathError::NotUtf8),
            (&long, PathError::TooLong),
            (&long_comp, PathError::ComponentTooLong),
        ];
        for (name, want) in cases {
            assert_eq!(
                sanitize(name),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn components() {
        let p = sanitize(b"a\\b/c").unwrap();
        assert_eq!(p.components().collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
