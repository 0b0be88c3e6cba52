//! Which boot-loader files are missing from the images tree.
//!
//! Layer: service (reads the images tree; no protocol logic). An empty
//! images tree is the first thing a new appliance meets: DHCP then hands
//! out `pxelinux.0` and the client's TFTP request fails, which the admin
//! sees only as a TFTP error in the log. This check names the missing
//! files, the firmware that needs each and the Debian package it comes
//! from, for start-up, `/health`, the status page and `check-config`.
//!
//! The files a loader family needs come from [`Loaders::needed`] (the one
//! table, beside the names DHCP hands out); the families in use are those
//! of the boot actions (`unknown_boot`'s among them), or `auto` (each
//! firmware class's default) while there are none.

use crate::dhcp::{LoaderFile, Loaders};
use crate::model::Loader;
use std::path::Path;

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoaderCheck {
    /// The images tree is missing, unreadable or holds nothing.
    pub images_empty: bool,
    /// Loader files the families in use need and the tree does not hold.
    pub missing: Vec<LoaderFile>,
}

impl LoaderCheck {
    /// One line per problem, for the log, `/health` and the status page;
    /// empty when nothing is missing.
    pub fn warnings(&self, images: &Path) -> Vec<String> {
        if self.images_empty {
            let names: Vec<&str> = self.missing.iter().map(|f| f.path.as_str()).collect();
            return vec![format!(
                "the images tree {} is empty or missing: no client can boot until the \
                 boot loaders are there ({}); scripts/fetch-images.sh fetches them \
                 from Debian packages",
                images.display(),
                names.join(", ")
            )];
        }
        let mut out = Vec::new();
        for f in &self.missing {
            out.push(format!(
                "missing boot loader {} ({} clients cannot boot; {})",
                f.path, f.firmware, f.source
            ));
        }
        out
    }
}

/// The loader families in use: each boot action's, and the one unknown
/// machines boot; pxelinux while no boot action exists.
pub fn families_in_use(actions: impl IntoIterator<Item = Loader>) -> Vec<Loader> {
    let mut used: Vec<Loader> = Vec::new();
    for l in actions {
        if !used.contains(&l) {
            used.push(l);
        }
    }
    if used.is_empty() {
        used.push(Loader::default());
    }
    used
}

/// Checks the images tree at `images` for the files `families` need.
/// `exists` says whether a relative path names a regular file there
/// (tests pass a set; the service asks the file system).
pub fn check(
    loaders: &Loaders,
    families: &[Loader],
    images_empty: bool,
    exists: impl Fn(&str) -> bool,
) -> LoaderCheck {
    LoaderCheck {
        images_empty,
        missing: loaders
            .needed(families)
            .into_iter()
            .filter(|f| !exists(&f.path))
            .collect(),
    }
}

/// [`check`] against the file system: a loader path is a regular file
/// under `images` (the paths are fixed names from the config, never from
/// a client). A tree that cannot be read counts as empty.
pub fn check_tree(images: &Path, loaders: &Loaders, families: &[Loader]) -> LoaderCheck {
    let images_empty = std::fs::read_dir(images).map_or(true, |mut d| d.next().is_none());
    check(loaders, families, images_empty, |p| {
        images.join(p).metadata().is_ok_and(|m| m.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(c: &LoaderCheck) -> Vec<&str> {
        c.missing.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn pxelinux_needs_its_ldlinux_beside_it_for_bios_and_uefi() {
        let l = Loaders::default();
        let c = check(&l, &[Loader::Pxelinux], true, |_| false);
        assert!(c.images_empty);
        let w = c.warnings(Path::new("/srv/images"));
        assert_eq!(w.len(), 1, "an empty tree is one line: {w:?}");
        assert!(w[0].contains("/srv/images") && w[0].contains("pxelinux.0, ldlinux.c32"));
        assert_eq!(
            paths(&c),
            [
                "pxelinux.0",
                "ldlinux.c32",
                "syslinux.efi",
                "ldlinux.e64",
                "grubaa64.efi"
            ]
        );
        let have = ["pxelinux.0", "ldlinux.c32", "syslinux.efi", "ldlinux.e64"];
        let c = check(&l, &[Loader::Pxelinux], false, |p| have.contains(&p));
        // arm64 has no pxelinux: its default, signed GRUB.
        assert_eq!(paths(&c), ["grubaa64.efi"]);
        let w = c.warnings(Path::new("/srv/images"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("grubaa64.efi")
                && w[0].contains("arm64 UEFI")
                && w[0].contains("grub-efi-arm64-signed"),
            "{w:?}"
        );
    }

    #[test]
    fn each_family_in_use_is_checked_once() {
        let l = Loaders::default();
        let used = families_in_use([Loader::Ipxe, Loader::Ipxe]);
        assert_eq!(used, [Loader::Ipxe]);
        let c = check(&l, &used, false, |p| p == "ipxe.efi");
        assert_eq!(paths(&c), ["undionly.kpxe", "ipxe-arm64.efi"]);
        let both = families_in_use([Loader::Ipxe, Loader::Pxelinux]);
        let c = check(&l, &both, false, |_| false);
        let p = paths(&c);
        assert_eq!(p.iter().filter(|x| **x == "ipxe-arm64.efi").count(), 1);
        assert!(p.contains(&"pxelinux.0") && p.contains(&"undionly.kpxe"));
        // No boot action yet: each class's default family.
        assert_eq!(families_in_use([]), [Loader::Auto]);
        let c = check(&l, &[Loader::Auto], false, |_| false);
        assert_eq!(
            paths(&c),
            [
                "pxelinux.0",
                "ldlinux.c32",
                "shimx64.efi",
                "grubx64.efi",
                "grubaa64.efi"
            ]
        );
    }

    /// The README's boot-file table and docs/boot-loaders.md name every
    /// loader of the table, in its class's row, with the class's default.
    #[test]
    fn the_readme_and_the_docs_list_every_loader() {
        use crate::dhcp::loaders::{BUILTIN, DEFAULT_FAMILY};
        let row_of = |doc: &'static str, class: &str| -> &'static str {
            let tag = format!("| `{class}` |");
            doc.lines()
                .find(|l| l.contains(&tag))
                .unwrap_or_else(|| panic!("no row for {class}"))
        };
        let readme = include_str!("../README.md");
        let docs = include_str!("../docs/boot-loaders.md");
        for b in BUILTIN {
            let class = b.class.as_str();
            for doc in [readme, docs] {
                let row = row_of(doc, class);
                assert!(
                    row.contains(&format!("`{}`", b.file))
                        || row.contains(&format!("/images/{}`", b.file)),
                    "{class} {}: {row}",
                    b.file
                );
            }
            let row = row_of(readme, class);
            assert!(
                row.contains(&format!("`{}` → ", b.family.as_str())),
                "{class}: {row}"
            );
        }
        for (class, family) in DEFAULT_FAMILY {
            let row = row_of(readme, class.as_str());
            let default = row.split(" | ").nth(2).unwrap_or_default();
            assert!(
                default.starts_with(&format!("`{}` → ", family.as_str())),
                "{class}: {row}"
            );
            assert!(
                row_of(docs, class.as_str()).ends_with(&format!("| `{}` |", family.as_str())),
                "{class}"
            );
        }
    }

    #[test]
    fn the_tree_is_read_from_disk() {
        let dir = std::env::temp_dir().join(format!("gopxe-loadercheck-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let l = Loaders::default();
        let c = check_tree(&dir, &l, &[Loader::Ipxe]);
        assert!(c.images_empty, "a missing tree is empty");
        std::fs::create_dir_all(dir.join("ipxe.efi")).unwrap();
        std::fs::write(dir.join("undionly.kpxe"), b"x").unwrap();
        let c = check_tree(&dir, &l, &[Loader::Ipxe]);
        assert!(!c.images_empty);
        // A folder is not a loader.
        assert_eq!(paths(&c), ["ipxe.efi", "ipxe-arm64.efi"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
