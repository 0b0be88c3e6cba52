//! The pure routing layer: every HTTP route gopxe answers, written once.
//!
//! Layer: service (pure: no sockets, no store, no I/O). RFC 9110 §9.1
//! (methods; a known path asked with another method is 405 with `Allow`,
//! §15.5.6) and RFC 3986 §3.3 (path segments; the driver has already
//! split and percent-decoded them, see `super::Service::respond`).
//!
//! A [`Route`] variant is one path pattern of `api/openapi.json`, with the
//! methods it answers; one line of the [`routes!`] table below declares
//! it, and everything else derives from that line:
//!
//! - [`Route::parse`] matches decoded path segments against the patterns
//!   (a pattern is the matcher; nothing else spells a path);
//! - [`Route::ALL`], [`Route::pattern`] and [`Route::methods`] are the
//!   table that `tests/openapi.rs` compares with the document;
//! - [`Route::label`] (the pattern) is the `route` label of
//!   `gopxe_http_requests_total`, and [`label`] gives [`OTHER`] for a path
//!   no route knows, so the label set is bounded;
//! - [`Route::allow`] is the `Allow` header of a 405;
//! - the router (`super::api`) matches on the variant, so the compiler
//!   asks for a handler of every route.
//!
//! Patterns: `{name}` stands for one segment (any text, even empty), a
//! final `{path}` for one or more (a file tree). A trailing `/` is
//! optional on a collection (a route without parameters whose path is the
//! parent of other routes: `/`, `/bootaction`, `/pxeboot`, `/pxelinux/`,
//! `/pxelinux.cfg/`, `/kickstart/`, `/kstemplate`); every other route
//! matches only as written, and a `{path}` keeps a trailing empty segment
//! (the file tree refuses it).

/// Declares the routes: `Variant = "pattern" [METHODS]`, one line each.
macro_rules! routes {
    ($($(#[$doc:meta])* $variant:ident = $pattern:literal [$($method:ident),+];)+) => {
        /// One route: a path pattern of `api/openapi.json` and its methods.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Route {
            $($(#[$doc])* $variant,)+
        }

        impl Route {
            /// Every route, in table order (the first match wins; no two
            /// patterns match the same path).
            pub const ALL: &'static [Route] = &[$(Route::$variant,)+];

            /// The path pattern, as `api/openapi.json` writes it.
            pub const fn pattern(self) -> &'static str {
                match self {
                    $(Route::$variant => $pattern,)+
                }
            }

            /// The methods this route answers, in the order `Allow` lists them.
            pub const fn methods(self) -> &'static [&'static str] {
                match self {
                    $(Route::$variant => &[$(stringify!($method)),+],)+
                }
            }
        }
    };
}

routes! {
    /// The status page (HTML), or a JSON summary with `Accept: application/json`.
    Root = "/" [GET];
    Health = "/health" [GET];
    /// Prometheus text exposition.
    Metrics = "/metrics" [GET];
    /// This table, described (OpenAPI 3.1).
    OpenApi = "/openapi.json" [GET];
    BootActions = "/bootaction" [GET];
    BootAction = "/bootaction/{name}" [GET, POST, PUT, DELETE];
    Machines = "/pxeboot" [GET, POST];
    Machine = "/pxeboot/{id}" [GET, PUT, DELETE];
    /// The installer's call-back (`?key=`).
    MachineDone = "/pxeboot/{id}/done" [POST];
    MachineReinstall = "/pxeboot/{id}/reinstall" [POST];
    MachineEvents = "/pxeboot/{id}/events" [GET];
    PxelinuxNames = "/pxelinux/" [GET];
    /// A generated pxelinux config (text).
    Pxelinux = "/pxelinux/{file}" [GET];
    PxelinuxCfgNames = "/pxelinux.cfg/" [GET];
    /// As [`Route::Pxelinux`] (text).
    PxelinuxCfg = "/pxelinux.cfg/{file}" [GET];
    /// The original GoPXE kickstart, from `?name=..&os=..` (text).
    KickstartQuery = "/kickstart/" [GET];
    /// A machine's kickstart (text).
    Kickstart = "/kickstart/{id}" [GET];
    /// A machine's debian-installer preseed (text).
    Preseed = "/preseed/{id}" [GET];
    /// Ubuntu autoinstall (text), as the three cloud-init files.
    CloudInitUserData = "/cloud-init/{id}/user-data" [GET];
    CloudInitMetaData = "/cloud-init/{id}/meta-data" [GET];
    CloudInitVendorData = "/cloud-init/{id}/vendor-data" [GET];
    Templates = "/kstemplate" [GET];
    /// A kickstart template (text; reading one needs the API right).
    Template = "/kstemplate/{name}" [GET, PUT, POST, DELETE];
    /// The iPXE script, `?mac=..&uuid=..` (text).
    BootIpxe = "/boot.ipxe" [GET];
    Leases = "/leases" [GET];
    /// The discovery inbox: unknown netboot clients DHCP has seen.
    Discovered = "/discovered" [GET];
    DiscoveredOne = "/discovered/{mac}" [GET, DELETE];
    /// Creates the machine record of a discovered machine.
    DiscoveredAdopt = "/discovered/{mac}/adopt" [POST];
    /// A file of the images tree (streamed).
    Images = "/images/{path}" [GET];
    /// A file of the local repository (streamed).
    LocalRepo = "/localrepo/{path}" [GET];
    /// A status-page form (HTML answers, like everything under `/ui/`).
    UiReinstall = "/ui/pxeboot/{id}/reinstall" [POST];
    /// A status-page form (HTML answers).
    UiDelete = "/ui/pxeboot/{id}/delete" [POST];
    /// A status-page form (HTML answers).
    UiAdopt = "/ui/discovered/{mac}/adopt" [POST];
}

/// The first segment of the status page's form paths.
const UI: &str = "ui";

/// The metrics label of a request no route knows.
pub const OTHER: &str = "other";

/// What a pattern's parameters matched.
#[derive(Debug, PartialEq, Eq)]
pub struct Captures<'s, S> {
    /// The one-segment parameter (`{id}`, `{name}`, `{file}`); empty when
    /// the pattern has none.
    pub param: &'s str,
    /// The segments a final `{path}` matched (one or more); empty otherwise.
    pub tail: &'s [S],
}

fn is_param(p: &str) -> bool {
    p.starts_with('{') && p.ends_with('}')
}

impl Route {
    /// The route of decoded path `segments` (as the driver splits them:
    /// `/a/b/` is `["a", "b", ""]`, `/` is `[""]`) and what its parameters
    /// matched; `None` for a path no route knows. Methods are not looked
    /// at: see [`Route::allows`].
    pub fn parse<S: AsRef<str>>(segments: &[S]) -> Option<(Route, Captures<'_, S>)> {
        Route::ALL
            .iter()
            .find_map(|r| r.matches(segments).map(|c| (*r, c)))
    }

    /// Every (method, pattern) pair the router answers: the operations
    /// of `api/openapi.json`.
    pub fn operations() -> impl Iterator<Item = (&'static str, &'static str)> {
        Route::ALL
            .iter()
            .flat_map(|r| r.methods().iter().map(move |m| (*m, r.pattern())))
    }

    /// The metrics label: the pattern (a bounded set).
    pub const fn label(self) -> &'static str {
        self.pattern()
    }

    /// Whether this route answers `method`.
    pub fn allows(self, method: &str) -> bool {
        self.methods().contains(&method)
    }

    /// The `Allow` header of a 405 here: [`Route::methods`], comma-separated.
    pub fn allow(self) -> String {
        self.methods().join(", ")
    }

    /// A status-page form, which answers HTML.
    pub fn is_form(self) -> bool {
        self.segments().next() == Some(UI)
    }

    /// The pattern's segments, without the final `/` of a collection
    /// pattern (`/` has none, `/pxelinux/` is `["pxelinux"]`).
    fn segments(self) -> std::str::Split<'static, char> {
        let p = self.pattern();
        let p = p.strip_suffix('/').unwrap_or(p);
        let mut split = p.split('/');
        // The empty text before the leading `/`.
        split.next();
        split
    }

    /// A route without parameters whose path is the parent of another
    /// route's: its trailing `/` is optional.
    #[cfg(test)]
    fn is_collection(self) -> bool {
        self.shape().is_some_and(|s| s.collection)
    }

    /// The pattern's shape, worked out once for every route: matching a
    /// request then splits no pattern text (a request is matched against
    /// the routes in turn, on every request).
    fn shape(self) -> Option<&'static Shape> {
        static SHAPES: std::sync::OnceLock<Vec<Shape>> = std::sync::OnceLock::new();
        let shapes = SHAPES.get_or_init(|| {
            Route::ALL
                .iter()
                .map(|r| {
                    let segments: Vec<&'static str> = r.segments().collect();
                    let collection = !segments.iter().any(|p| is_param(p))
                        && Route::ALL.iter().any(|other| {
                            other.segments().count() > segments.len()
                                && segments.iter().zip(other.segments()).all(|(a, b)| *a == b)
                        });
                    Shape {
                        route: *r,
                        segments,
                        collection,
                    }
                })
                .collect()
        });
        // `ALL` lists the variants in declaration order.
        shapes.get(self as usize).filter(|s| s.route == self)
    }

    fn matches<'s, S: AsRef<str>>(self, segments: &'s [S]) -> Option<Captures<'s, S>> {
        let shape = self.shape()?;
        let pattern = shape.segments.as_slice();
        let mut param = "";
        let mut capture = |p: &str, s: &'s S| {
            if is_param(p) {
                param = s.as_ref();
                true
            } else {
                p == s.as_ref()
            }
        };
        if let [head @ .., "{path}"] = pattern {
            if segments.len() <= head.len() {
                return None;
            }
            let (h, tail) = segments.split_at(head.len());
            let ok = head.iter().zip(h).all(|(p, s)| capture(p, s));
            return ok.then_some(Captures { param, tail });
        }
        let segments = match segments {
            [rest @ .., last] if last.as_ref().is_empty() => {
                if !shape.collection {
                    return None;
                }
                rest
            }
            _ => segments,
        };
        let ok = segments.len() == pattern.len()
            && pattern.iter().zip(segments).all(|(p, s)| capture(p, s));
        ok.then_some(Captures { param, tail: &[] })
    }
}

/// A route's pattern, split once (see [`Route::shape`]).
struct Shape {
    route: Route,
    segments: Vec<&'static str>,
    /// Without parameters, and the parent of another route's path: its
    /// trailing `/` is optional.
    collection: bool,
}

/// The metrics label of a request for decoded path `segments`: its
/// route's pattern, or [`OTHER`].
pub fn label<S: AsRef<str>>(segments: &[S]) -> &'static str {
    Route::parse(segments).map_or(OTHER, |(r, _)| r.label())
}

/// Whether decoded path `segments` are under `/ui/`, the status page's
/// forms: their refusals and unknown pages are HTML, not JSON.
pub fn is_form_path<S: AsRef<str>>(segments: &[S]) -> bool {
    segments.first().is_some_and(|s| s.as_ref() == UI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_the_variants_in_declaration_order() {
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
            assert!(r.shape().is_some(), "{r:?}");
        }
    }
    use std::collections::BTreeSet;

    fn segments(path: &str) -> Vec<&str> {
        path.split('/').skip(1).collect()
    }

    fn parse(path: &str) -> Option<(Route, String, Vec<String>)> {
        let segs = segments(path);
        Route::parse(&segs).map(|(r, c)| {
            let tail = c.tail.iter().map(|s| s.to_string()).collect();
            (r, c.param.to_string(), tail)
        })
    }

    fn route(path: &str) -> Option<Route> {
        parse(path).map(|(r, _, _)| r)
    }

    /// A concrete path for a pattern.
    fn sample(pattern: &str) -> String {
        pattern
            .replace("{name}", "n")
            .replace("{id}", "i")
            .replace("{mac}", "m")
            .replace("{file}", "f")
            .replace("{path}", "a/b")
    }

    #[test]
    fn every_pattern_parses_to_its_route() {
        for r in Route::ALL {
            let path = sample(r.pattern());
            assert_eq!(route(&path), Some(*r), "{path}");
        }
    }

    #[test]
    fn patterns_are_unique_and_documented_shapes() {
        let patterns: BTreeSet<&str> = Route::ALL.iter().map(|r| r.pattern()).collect();
        assert_eq!(patterns.len(), Route::ALL.len());
        for r in Route::ALL {
            let p = r.pattern();
            assert!(p.starts_with('/'), "{p}");
            assert!(!r.methods().is_empty(), "{p}");
            let params = r.segments().filter(|s| is_param(s)).count();
            assert!(params <= 1, "{p}: one parameter at most");
            if p.contains("{path}") {
                assert!(p.ends_with("/{path}"), "{p}: {{path}} comes last");
            }
        }
    }

    #[test]
    fn parameters_are_captured() {
        let bootaction = parse("/bootaction/centos7");
        assert_eq!(
            bootaction,
            Some((Route::BootAction, "centos7".into(), vec![]))
        );
        let done = parse("/pxeboot/42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69/done");
        assert_eq!(
            done,
            Some((
                Route::MachineDone,
                "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69".into(),
                vec![]
            ))
        );
        let ci = parse("/cloud-init/x/meta-data");
        assert_eq!(ci, Some((Route::CloudInitMetaData, "x".into(), vec![])));
        let ui = parse("/ui/pxeboot/x/delete");
        assert_eq!(ui, Some((Route::UiDelete, "x".into(), vec![])));
        let cfg = parse("/pxelinux.cfg/01-aa-bb-cc-dd-ee-ff");
        assert_eq!(
            cfg,
            Some((Route::PxelinuxCfg, "01-aa-bb-cc-dd-ee-ff".into(), vec![]))
        );
        let file = parse("/images/centos7/vmlinuz");
        let tail = vec!["centos7".to_string(), "vmlinuz".to_string()];
        assert_eq!(file, Some((Route::Images, String::new(), tail)));
        let one = parse("/localrepo/repomd.xml");
        let tail = vec!["repomd.xml".to_string()];
        assert_eq!(one, Some((Route::LocalRepo, String::new(), tail)));
    }

    #[test]
    fn decoded_segments_are_taken_as_they_are() {
        // The driver percent-decodes; a decoded `/` stays inside its segment.
        let segs = ["bootaction", "a/b"];
        let (r, c) = Route::parse(&segs).unwrap();
        assert_eq!((r, c.param), (Route::BootAction, "a/b"));
        let segs = ["images", "dir", "../x"];
        let (r, c) = Route::parse(&segs).unwrap();
        assert_eq!((r, c.tail), (Route::Images, &segs[1..]));
        assert_eq!(
            route("/pxeboot/%41"),
            Some(Route::Machine),
            "not decoded here"
        );
    }

    #[test]
    fn trailing_slash_is_optional_on_collections_only() {
        for (with, without, r) in [
            ("/", "", Route::Root),
            ("/bootaction/", "/bootaction", Route::BootActions),
            ("/pxeboot/", "/pxeboot", Route::Machines),
            ("/pxelinux/", "/pxelinux", Route::PxelinuxNames),
            ("/pxelinux.cfg/", "/pxelinux.cfg", Route::PxelinuxCfgNames),
            ("/kickstart/", "/kickstart", Route::KickstartQuery),
            ("/kstemplate/", "/kstemplate", Route::Templates),
        ] {
            assert_eq!(route(with), Some(r), "{with}");
            assert_eq!(Route::parse(&segments(without)).map(|x| x.0), Some(r));
        }
        for path in [
            "/health/",
            "/metrics/",
            "/openapi.json/",
            "/boot.ipxe/",
            "/leases/",
            "/bootaction/x/",
            "/pxeboot/x/",
            "/pxeboot/x/done/",
            "/kickstart/x/",
            "/cloud-init/x/user-data/",
            "/ui/pxeboot/x/delete/",
            "//",
            "/bootaction//",
        ] {
            assert_eq!(route(path), None, "{path}");
        }
        // A file tree keeps the empty segment; the tree refuses it.
        let dir = parse("/images/dir/");
        let tail = vec!["dir".to_string(), String::new()];
        assert_eq!(dir, Some((Route::Images, String::new(), tail)));
        assert_eq!(route("/images/"), Some(Route::Images));
    }

    #[test]
    fn unknown_paths_have_no_route() {
        for path in [
            "/nope",
            "/health/x",
            "/bootaction/a/b",
            "/pxeboot/x/nope",
            "/pxeboot/x/done/more",
            "/kickstart/a/b",
            "/cloud-init/x/other-data",
            "/cloud-init/x",
            "/openapi.json/x",
            "/images",
            "/localrepo",
            "/ui",
            "/ui/pxeboot/x/frobnicate",
            "/HEALTH",
            "/ pxeboot",
        ] {
            assert_eq!(route(path), None, "{path}");
            assert_eq!(label(&segments(path)), OTHER, "{path}");
        }
        assert_eq!(Route::parse::<&str>(&[]).map(|x| x.0), Some(Route::Root));
    }

    #[test]
    fn labels_are_the_patterns() {
        let label_of = |p: &str| label(&segments(p));
        assert_eq!(label_of("/kickstart/abc"), "/kickstart/{id}");
        assert_eq!(label_of("/kickstart/"), "/kickstart/");
        assert_eq!(label_of("/kickstart"), "/kickstart/");
        assert_eq!(label_of("/pxelinux/01-aa-bb"), "/pxelinux/{file}");
        assert_eq!(label_of("/pxelinux.cfg/default"), "/pxelinux.cfg/{file}");
        assert_eq!(
            label_of("/cloud-init/x/user-data"),
            "/cloud-init/{id}/user-data"
        );
        assert_eq!(label_of("/images/a/b/c"), "/images/{path}");
        assert_eq!(
            label_of("/ui/pxeboot/x/reinstall"),
            "/ui/pxeboot/{id}/reinstall"
        );
        assert_eq!(label_of("/"), "/");
        for r in Route::ALL {
            assert_eq!(r.label(), r.pattern());
            assert!(
                !r.label().contains(['"', '\\', '\n']),
                "a valid label value"
            );
        }
    }

    #[test]
    fn methods_and_allow() {
        assert_eq!(Route::BootAction.allow(), "GET, POST, PUT, DELETE");
        assert_eq!(Route::Machines.allow(), "GET, POST");
        assert_eq!(Route::Machine.allow(), "GET, PUT, DELETE");
        assert_eq!(Route::Template.allow(), "GET, PUT, POST, DELETE");
        assert_eq!(Route::Health.allow(), "GET");
        assert_eq!(Route::UiDelete.allow(), "POST");
        assert!(Route::Machines.allows("POST"));
        assert!(!Route::Machines.allows("PATCH"));
        assert!(!Route::Health.allows("HEAD"), "HEAD is not answered");
        assert!(!Route::Health.allows("get"), "methods are case-sensitive");
        for r in Route::ALL {
            let set: BTreeSet<&str> = r.methods().iter().copied().collect();
            assert_eq!(set.len(), r.methods().len(), "{}", r.pattern());
        }
    }

    #[test]
    fn forms_are_the_ui_routes() {
        let forms: Vec<Route> = Route::ALL.iter().copied().filter(|r| r.is_form()).collect();
        assert_eq!(forms, [Route::UiReinstall, Route::UiDelete, Route::UiAdopt]);
        assert!(is_form_path(&["ui", "anything"]));
        assert!(!is_form_path(&["pxeboot", "ui"]));
        assert!(!is_form_path::<&str>(&[]));
    }

    #[test]
    fn collections_are_the_parents_without_parameters() {
        let c: Vec<&str> = Route::ALL
            .iter()
            .filter(|r| r.is_collection())
            .map(|r| r.pattern())
            .collect();
        assert_eq!(
            c,
            [
                "/",
                "/bootaction",
                "/pxeboot",
                "/pxelinux/",
                "/pxelinux.cfg/",
                "/kickstart/",
                "/kstemplate",
                "/discovered"
            ]
        );
    }
}
