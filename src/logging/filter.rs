//! `RUST_LOG` as gopxe reads it: env_logger's directive forms.
//!
//! Layer: service (logging), pure. A spec is a comma-separated list of
//! directives, each `level` (every target), `module=level` or `module`
//! (every level of that module); levels are `off`, `error`, `warn`, `info`,
//! `debug`, `trace` in any case. As in env_logger: the directive with the
//! longest module that starts the record's target decides (the later one
//! of two equal ones); a target no directive covers is off; a spec with
//! no valid directive logs errors only. env_logger's `/regex` suffix is not
//! supported: it is ignored with a warning, as are malformed directives.

use log::{Level, LevelFilter};

/// The levels each target logs at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Shortest module first; `None` (every target) sorts first.
    directives: Vec<(Option<String>, LevelFilter)>,
}

impl Filter {
    /// The filter for `spec`, and a message for each part of it ignored.
    pub fn parse(spec: &str) -> (Filter, Vec<String>) {
        let mut warnings = Vec::new();
        let mods = match spec.split_once('/') {
            Some((mods, _)) => {
                warnings.push(format!("RUST_LOG '{spec}': a '/' filter is not supported"));
                mods
            }
            None => spec,
        };
        let mut directives = Vec::new();
        for d in mods.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let mut parts = d.split('=');
            let parsed = match (parts.next(), parts.next().map(str::trim), parts.next()) {
                (Some(one), None, None) => match one.parse::<LevelFilter>() {
                    Ok(level) => Some((None, level)),
                    Err(_) => Some((Some(one.to_string()), LevelFilter::Trace)),
                },
                (Some(name), Some(""), None) => Some((Some(name.to_string()), LevelFilter::Trace)),
                (Some(name), Some(level), None) => level
                    .parse::<LevelFilter>()
                    .ok()
                    .map(|l| (Some(name.to_string()), l)),
                _ => None,
            };
            match parsed {
                // Kept ordered by module length as they come: of two equal
                // modules the later stays later, and wins.
                Some(d) => {
                    let len = |(name, _): &(Option<String>, LevelFilter)| {
                        name.as_ref().map_or(0, String::len)
                    };
                    let at = directives.partition_point(|x| len(x) <= len(&d));
                    directives.insert(at, d);
                }
                None => warnings.push(format!("invalid logging spec '{d}'")),
            }
        }
        if directives.is_empty() {
            directives.push((None, LevelFilter::Error));
        }
        (Filter { directives }, warnings)
    }

    /// Is a record at `level` from `target` written?
    pub fn enabled(&self, level: Level, target: &str) -> bool {
        self.directives
            .iter()
            .rev()
            .find(|(name, _)| name.as_deref().is_none_or(|n| target.starts_with(n)))
            .is_some_and(|(_, max)| level <= *max)
    }

    /// The most verbose level any target logs at (for `log::set_max_level`).
    pub fn max_level(&self) -> LevelFilter {
        self.directives
            .iter()
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(LevelFilter::Off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level::*;

    fn filter(spec: &str) -> Filter {
        let (f, warnings) = Filter::parse(spec);
        assert!(warnings.is_empty(), "{spec}: {warnings:?}");
        f
    }

    #[test]
    fn a_bare_level_covers_every_target() {
        let f = filter("info");
        assert!(f.enabled(Info, "gopxe::dhcp::core") && f.enabled(Error, "x"));
        assert!(!f.enabled(Debug, "gopxe::dhcp::core"));
        assert_eq!(f.max_level(), LevelFilter::Info);
        assert!(filter("WARN").enabled(Warn, "a") && !filter("Warn").enabled(Info, "a"));
        assert!(!filter("off").enabled(Error, "a"));
        assert_eq!(filter("off").max_level(), LevelFilter::Off);
    }

    #[test]
    fn the_longest_module_decides() {
        let f = filter("warn, gopxe::dhcp=debug,gopxe=info ,gopxe::dhcp::core=error");
        assert!(f.enabled(Debug, "gopxe::dhcp::server"));
        assert!(!f.enabled(Trace, "gopxe::dhcp::server"));
        assert!(!f.enabled(Warn, "gopxe::dhcp::core"));
        assert!(f.enabled(Info, "gopxe::tftp") && !f.enabled(Debug, "gopxe::tftp"));
        assert!(f.enabled(Warn, "async_io") && !f.enabled(Info, "async_io"));
        assert_eq!(f.max_level(), LevelFilter::Debug);
        // A bare module name is every level of it.
        let f = filter("info,gopxe::http");
        assert!(f.enabled(Trace, "gopxe::http::guard") && !f.enabled(Debug, "gopxe::app"));
        assert!(filter("gopxe::http=").enabled(Trace, "gopxe::http"));
        // Of two equal directives the later one wins, as in env_logger.
        assert!(filter("debug,info").enabled(Info, "a"));
        assert!(!filter("debug,info").enabled(Debug, "a"));
    }

    #[test]
    fn targets_no_directive_names_are_off() {
        // env_logger's reading: only gopxe::tftp logs.
        let f = filter("gopxe::tftp=debug");
        assert!(f.enabled(Debug, "gopxe::tftp::server"));
        assert!(!f.enabled(Error, "gopxe::dhcp"));
    }

    #[test]
    fn bad_parts_are_ignored_with_a_warning() {
        let (f, w) = Filter::parse("info,gopxe::dhcp=loud,a=b=c,gopxe::tftp=debug");
        assert_eq!(
            w,
            [
                "invalid logging spec 'gopxe::dhcp=loud'",
                "invalid logging spec 'a=b=c'"
            ]
        );
        assert!(f.enabled(Info, "gopxe::dhcp") && !f.enabled(Debug, "gopxe::dhcp"));
        assert!(f.enabled(Debug, "gopxe::tftp"));
        let (f, w) = Filter::parse("debug/DISCOVER");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(f.enabled(Debug, "gopxe"), "the filter part is dropped");
        // Nothing valid: errors only, as env_logger.
        let (f, w) = Filter::parse("x=y=z");
        assert_eq!(w.len(), 1);
        assert!(f.enabled(Error, "a") && !f.enabled(Warn, "a"));
        assert_eq!(filter(" , ").max_level(), LevelFilter::Error);
    }
}
