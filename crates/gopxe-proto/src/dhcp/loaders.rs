//! Boot loaders as data: per firmware class, the file each loader family
//! boots it with, the files that loader fetches next by a fixed name, and
//! the Debian package they come from; and the family each class boots
//! when a boot action says `auto` (or names a family the class has no
//! file for).
//!
//! Layer: DHCP configuration (pure data). This table is the one place a
//! loader's name is written: DHCP hands out [`Loaders::boot_file`], the
//! images-tree check lists [`Loaders::needed`], the README's table is
//! checked against [`BUILTIN`].
//!
//! Firmware classes follow RFC 4578 option 93 (0 BIOS, 7/9 x64 UEFI,
//! 11 arm64 UEFI) and the UEFI HTTP boot types (16 x64, 19 arm64). A
//! client already running iPXE gets its script (or pxelinux, for the
//! pxelinux family) and a Raspberry Pi fetches its own fixed names: they
//! have no row here.
//!
//! The chain each family starts: pxelinux and syslinux.efi load
//! `ldlinux.c32` / `ldlinux.e64` from their own folder, then
//! `pxelinux.cfg/`; shim loads `grubx64.efi` / `grubaa64.efi` from its
//! own folder (its built-in second stage), which is Debian's signed
//! network GRUB: its prefix is `/grub`, it reads `grub/grub.cfg`, which
//! gopxe renders per machine.

use super::config::ConfigError;
use crate::model::Loader;
use crate::model::validate::check_image_path;
use std::fmt;
use std::str::FromStr;

/// A firmware class with a loader table of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Legacy BIOS PXE (option 93 = 0).
    Bios,
    /// x64 UEFI PXE (7 or 9).
    EfiX64,
    /// arm64 UEFI PXE (11).
    EfiArm64,
    /// UEFI HTTP boot, x64 (16): the boot file is a URL.
    HttpX64,
    /// UEFI HTTP boot, arm64 (19).
    HttpArm64,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Bios,
        Class::EfiX64,
        Class::EfiArm64,
        Class::HttpX64,
        Class::HttpArm64,
    ];

    /// The name the config uses (`--loader efi-x64=grub`).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Bios => "bios",
            Class::EfiX64 => "efi-x64",
            Class::EfiArm64 => "efi-arm64",
            Class::HttpX64 => "http-x64",
            Class::HttpArm64 => "http-arm64",
        }
    }

    /// The clients of this class, for people.
    pub fn firmware(self) -> &'static str {
        match self {
            Class::Bios => "BIOS",
            Class::EfiX64 => "x64 UEFI",
            Class::EfiArm64 => "arm64 UEFI",
            Class::HttpX64 => "x64 UEFI HTTP boot",
            Class::HttpArm64 => "arm64 UEFI HTTP boot",
        }
    }

    /// Whether the boot file is handed out as an HTTP URL.
    pub fn is_http(self) -> bool {
        matches!(self, Class::HttpX64 | Class::HttpArm64)
    }
}

impl FromStr for Class {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Class::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                ConfigError(format!(
                    "`{}` is not a firmware class: bios, efi-x64, efi-arm64, http-x64 or http-arm64",
                    s.escape_debug()
                ))
            })
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the built-in table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    pub class: Class,
    pub family: Loader,
    /// The file DHCP names, in the images tree.
    pub file: &'static str,
    /// Files the loader then fetches from its own folder by fixed names.
    pub beside: &'static [&'static str],
    /// Where `file` and `beside` come from.
    pub source: &'static str,
}

const fn row(
    class: Class,
    family: Loader,
    file: &'static str,
    beside: &'static [&'static str],
    source: &'static str,
) -> Builtin {
    Builtin {
        class,
        family,
        file,
        beside,
        source,
    }
}

const IPXE_PKG: &str = "Debian package ipxe";
const NO_ARM64_IPXE: &str = "an arm64 iPXE build: no Debian 12 package ships one";

/// Every loader gopxe knows, per class and family.
pub const BUILTIN: &[Builtin] = &[
    row(
        Class::Bios,
        Loader::Pxelinux,
        "pxelinux.0",
        &["ldlinux.c32"],
        "Debian packages pxelinux and syslinux-common",
    ),
    row(Class::Bios, Loader::Ipxe, "undionly.kpxe", &[], IPXE_PKG),
    row(
        Class::EfiX64,
        Loader::Pxelinux,
        "syslinux.efi",
        &["ldlinux.e64"],
        "Debian package syslinux-efi",
    ),
    row(Class::EfiX64, Loader::Ipxe, "ipxe.efi", &[], IPXE_PKG),
    row(
        Class::EfiX64,
        Loader::Grub,
        "grubx64.efi",
        &[],
        "Debian package grub-efi-amd64-signed (grubnetx64.efi.signed)",
    ),
    row(
        Class::EfiX64,
        Loader::ShimGrub,
        "shimx64.efi",
        &["grubx64.efi"],
        "Debian packages shim-signed (shimx64.efi.signed) and grub-efi-amd64-signed (grubnetx64.efi.signed)",
    ),
    row(
        Class::EfiArm64,
        Loader::Ipxe,
        "ipxe-arm64.efi",
        &[],
        NO_ARM64_IPXE,
    ),
    row(
        Class::EfiArm64,
        Loader::Grub,
        "grubaa64.efi",
        &[],
        "Debian package grub-efi-arm64-signed (grubnetaa64.efi.signed)",
    ),
    row(
        Class::EfiArm64,
        Loader::ShimGrub,
        "shimaa64.efi",
        &["grubaa64.efi"],
        "Debian packages shim-signed arm64 (shimaa64.efi.signed) and grub-efi-arm64-signed (grubnetaa64.efi.signed)",
    ),
    row(Class::HttpX64, Loader::Ipxe, "ipxe.efi", &[], IPXE_PKG),
    row(
        Class::HttpArm64,
        Loader::Ipxe,
        "ipxe-arm64.efi",
        &[],
        NO_ARM64_IPXE,
    ),
];

/// The family each class boots by default.
pub const DEFAULT_FAMILY: [(Class, Loader); 5] = [
    (Class::Bios, Loader::Pxelinux),
    (Class::EfiX64, Loader::ShimGrub),
    (Class::EfiArm64, Loader::Grub),
    (Class::HttpX64, Loader::Ipxe),
    (Class::HttpArm64, Loader::Ipxe),
];

/// A file a loader needs in the images tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderFile {
    /// Its path in the images tree.
    pub path: String,
    /// The clients that load it.
    pub firmware: &'static str,
    /// Where it comes from.
    pub source: &'static str,
}

/// The loader table in force: the built-in rows with the config's file
/// names and default families.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaders {
    /// (class, family, file, built-in row).
    files: Vec<(Builtin, String)>,
    defaults: [(Class, Loader); 5],
}

impl Default for Loaders {
    fn default() -> Self {
        Loaders {
            files: BUILTIN.iter().map(|b| (*b, b.file.to_string())).collect(),
            defaults: DEFAULT_FAMILY,
        }
    }
}

impl Loaders {
    /// The file `family` boots `class` with, if it has one.
    pub fn file(&self, class: Class, family: Loader) -> Option<&str> {
        self.files
            .iter()
            .find(|(b, _)| b.class == class && b.family == family)
            .map(|(_, f)| f.as_str())
    }

    /// The family `class` boots when the boot action says `auto`.
    pub fn default_family(&self, class: Class) -> Loader {
        self.defaults
            .iter()
            .find(|(c, _)| *c == class)
            .map_or(Loader::Auto, |(_, l)| *l)
    }

    /// The family a client of `class` boots when its boot action asks for
    /// `wanted`: that one if the class has a file for it, else the class's
    /// default.
    pub fn effective(&self, class: Class, wanted: Loader) -> Loader {
        if wanted != Loader::Auto && self.file(class, wanted).is_some() {
            wanted
        } else {
            self.default_family(class)
        }
    }

    /// The family and file a client of `class` gets for `wanted`.
    pub fn boot_file(&self, class: Class, wanted: Loader) -> Option<(Loader, &str)> {
        let family = self.effective(class, wanted);
        self.file(class, family).map(|f| (family, f))
    }

    /// Sets the default family of a class (`CLASS=FAMILY`): a family the
    /// class has a file for.
    pub fn set_default(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (class, family) = spec.split_once('=').ok_or_else(|| {
            ConfigError(format!(
                "loader `{}`: expected CLASS=FAMILY, e.g. efi-x64=shim-grub",
                spec.escape_debug()
            ))
        })?;
        let within = |e: String| ConfigError(format!("loader `{}`: {e}", spec.escape_debug()));
        let class: Class = class.trim().parse().map_err(|e: ConfigError| within(e.0))?;
        let family: Loader = family.trim().parse().map_err(within)?;
        if family == Loader::Auto || self.file(class, family).is_none() {
            return Err(ConfigError(format!(
                "loader `{}`: {class} clients have no {} loader (they have: {})",
                spec.escape_debug(),
                family.as_str(),
                self.families_of(class).join(", ")
            )));
        }
        for (c, l) in &mut self.defaults {
            if *c == class {
                *l = family;
            }
        }
        Ok(())
    }

    /// Renames the file of a class's family (`CLASS.FAMILY=PATH`), a
    /// relative path in the images tree.
    pub fn set_file(&mut self, spec: &str) -> Result<(), ConfigError> {
        let bad = || {
            ConfigError(format!(
                "loader file `{}`: expected CLASS.FAMILY=PATH, e.g. efi-x64.grub=boot/grubx64.efi",
                spec.escape_debug()
            ))
        };
        let (key, path) = spec.split_once('=').ok_or_else(bad)?;
        let (class, family) = key.split_once('.').ok_or_else(bad)?;
        let within = |e: String| ConfigError(format!("loader file `{}`: {e}", spec.escape_debug()));
        let class: Class = class.trim().parse().map_err(|e: ConfigError| within(e.0))?;
        let family: Loader = family.trim().parse().map_err(within)?;
        let path = path.trim();
        check_image_path("loader file", path)
            .map_err(|e| ConfigError(format!("loader file `{}`: {e}", spec.escape_debug())))?;
        let known = self.families_of(class).join(", ");
        let slot = self
            .files
            .iter_mut()
            .find(|(b, _)| b.class == class && b.family == family)
            .ok_or_else(|| {
                ConfigError(format!(
                    "loader file `{}`: {class} clients have no {} loader (they have: {known})",
                    spec.escape_debug(),
                    family.as_str()
                ))
            })?;
        slot.1 = path.to_string();
        Ok(())
    }

    fn families_of(&self, class: Class) -> Vec<&'static str> {
        self.files
            .iter()
            .filter(|(b, _)| b.class == class)
            .map(|(b, _)| b.family.as_str())
            .collect()
    }

    /// The files clients need when boot actions ask for `families`
    /// (`auto` standing for each class's default): for every PXE class,
    /// the file of each family it ends up with, and what that loader
    /// fetches from beside itself; for HTTP boot, the families named.
    /// Each path once.
    pub fn needed(&self, families: &[Loader]) -> Vec<LoaderFile> {
        let mut out: Vec<LoaderFile> = Vec::new();
        let mut add = |path: String, firmware, source| {
            if !out.iter().any(|f| f.path == path) {
                out.push(LoaderFile {
                    path,
                    firmware,
                    source,
                });
            }
        };
        for class in Class::ALL {
            let mut seen: Vec<Loader> = Vec::new();
            for wanted in families {
                let family = self.effective(class, *wanted);
                // HTTP boot is checked only for a family asked for by
                // name: its defaults are the EFI files or an arm64 iPXE
                // no package ships, which would warn everyone.
                if class.is_http() && family != *wanted {
                    continue;
                }
                if seen.contains(&family) {
                    continue;
                }
                seen.push(family);
                let Some((row, file)) = self
                    .files
                    .iter()
                    .find(|(b, _)| b.class == class && b.family == family)
                else {
                    continue;
                };
                add(file.clone(), class.firmware(), row.source);
                for name in row.beside {
                    let path = match file.rsplit_once('/') {
                        Some((dir, _)) => format!("{dir}/{name}"),
                        None => (*name).to_string(),
                    };
                    add(path, class.firmware(), row.source);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_a_default_with_a_file() {
        let l = Loaders::default();
        for class in Class::ALL {
            let family = l.default_family(class);
            assert_ne!(family, Loader::Auto, "{class}");
            assert!(l.file(class, family).is_some(), "{class}");
            assert_eq!(class.as_str().parse::<Class>(), Ok(class));
        }
    }

    #[test]
    fn auto_and_missing_families_fall_back_to_the_class_default() {
        let l = Loaders::default();
        assert_eq!(
            l.boot_file(Class::EfiX64, Loader::Auto),
            Some((Loader::ShimGrub, "shimx64.efi"))
        );
        assert_eq!(
            l.boot_file(Class::Bios, Loader::Auto),
            Some((Loader::Pxelinux, "pxelinux.0"))
        );
        // No pxelinux for arm64, no GRUB for BIOS: the class default.
        assert_eq!(
            l.boot_file(Class::EfiArm64, Loader::Pxelinux),
            Some((Loader::Grub, "grubaa64.efi"))
        );
        assert_eq!(
            l.boot_file(Class::Bios, Loader::ShimGrub),
            Some((Loader::Pxelinux, "pxelinux.0"))
        );
        assert_eq!(
            l.boot_file(Class::EfiX64, Loader::Pxelinux),
            Some((Loader::Pxelinux, "syslinux.efi"))
        );
        assert_eq!(
            l.boot_file(Class::HttpX64, Loader::Grub),
            Some((Loader::Ipxe, "ipxe.efi"))
        );
    }

    #[test]
    fn config_sets_defaults_and_files() {
        let mut l = Loaders::default();
        l.set_default("efi-arm64=shim-grub").unwrap();
        l.set_default(" efi-x64 = pxelinux ").unwrap();
        assert_eq!(l.default_family(Class::EfiArm64), Loader::ShimGrub);
        assert_eq!(
            l.boot_file(Class::EfiX64, Loader::Auto),
            Some((Loader::Pxelinux, "syslinux.efi"))
        );
        l.set_file("efi-x64.grub=boot/grubnetx64.efi").unwrap();
        assert_eq!(
            l.file(Class::EfiX64, Loader::Grub),
            Some("boot/grubnetx64.efi")
        );
        for bad in [
            "efi-x64",
            "uefi=grub",
            "efi-x64=lilo",
            "efi-x64=auto",
            "bios=grub",
            "http-x64=pxelinux",
        ] {
            let e = l.set_default(bad).unwrap_err();
            assert!(e.0.contains(bad.split('=').next().unwrap()), "{e}");
        }
        for bad in [
            "efi-x64.grub",
            "efi-x64=grubx64.efi",
            "efi-x64.grub=../grubx64.efi",
            "efi-x64.grub=/etc/passwd",
            "bios.grub=grub.efi",
            "efi-x64.auto=x.efi",
            "efi-x64.grub=",
        ] {
            assert!(l.set_file(bad).is_err(), "{bad} accepted");
        }
        let e = l.set_default("bios=grub").unwrap_err();
        assert!(e.0.contains("pxelinux, ipxe"), "{e}");
    }

    #[test]
    fn needed_files_follow_the_families_with_what_loaders_fetch_beside_them() {
        let mut l = Loaders::default();
        let paths = |l: &Loaders, f: &[Loader]| -> Vec<String> {
            l.needed(f).into_iter().map(|f| f.path).collect()
        };
        assert_eq!(
            paths(&l, &[Loader::Auto]),
            [
                "pxelinux.0",
                "ldlinux.c32",
                "shimx64.efi",
                "grubx64.efi",
                "grubaa64.efi"
            ]
        );
        assert_eq!(
            paths(&l, &[Loader::Pxelinux]),
            [
                "pxelinux.0",
                "ldlinux.c32",
                "syslinux.efi",
                "ldlinux.e64",
                "grubaa64.efi"
            ]
        );
        assert_eq!(
            paths(&l, &[Loader::Ipxe]),
            ["undionly.kpxe", "ipxe.efi", "ipxe-arm64.efi"]
        );
        l.set_file("efi-x64.shim-grub=sb/shimx64.efi").unwrap();
        let shim = paths(&l, &[Loader::ShimGrub]);
        assert!(shim.contains(&"sb/shimx64.efi".to_string()), "{shim:?}");
        assert!(shim.contains(&"sb/grubx64.efi".to_string()), "{shim:?}");
        assert!(shim.contains(&"shimaa64.efi".to_string()), "{shim:?}");
    }
}
