//! Kickstart rendering: the built-in compiled template and admin templates.
//!
//! Layer: boot logic (pure). The built-in `default` kickstart (CentOS/RHEL/
//! Rocky/Alma family) is a sailfish template compiled into the binary from
//! `templates/default.ks.stpl`; it is plain text, so values are inserted
//! raw (`<%- %>`), which is safe because every value is validated first
//! ([`KsParams::from_query`]). Admin templates (the original's `ksTempl/`)
//! are minijinja templates checked on upload ([`check_template`]) by
//! compiling them and rendering them against the longest values a
//! request can carry ([`KsContext::longest`]) with strict undefined
//! variables, so a broken template is refused at upload and does not fail
//! at boot time.
//!
//! Admin templates are bounded ([`Limits`]): minijinja's fuel caps the
//! work of one render (about one unit per instruction, so nested loops
//! over a long `fqdn` run out instead of running for seconds), and the
//! output is cut off at `max_bytes` (the render fails; nothing is sent).
//! A template over either limit on the longest values is refused at
//! upload. One value inside a render can still be large before it is
//! written (minijinja caps a repeated string at 100 MB); the HTTP layer
//! renders off the executor, a few at a time, so such a template costs
//! its own requests time, never the appliance's other clients.

use crate::model::validate::{FieldError, check_hostname, check_netmask, check_token, parse_ipv4};
use sailfish::TemplateSimple;
use serde::Serialize;
use std::borrow::Cow;
use std::net::Ipv4Addr;

/// The kickstart parameters of the original query form
/// `?name=default&os=..&version=..&fqdn=..[&ip&mask&gw&ns1&ns2]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KsParams {
    pub name: String,
    pub os: Option<String>,
    pub version: Option<String>,
    pub fqdn: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub mask: Option<Ipv4Addr>,
    pub gw: Option<Ipv4Addr>,
    pub ns1: Option<Ipv4Addr>,
    pub ns2: Option<Ipv4Addr>,
}

/// The `key=value` pairs of a URL query, decoded as
/// `application/x-www-form-urlencoded`. A pair with nothing to decode (no
/// `%` or `+`, the usual case for these parameters) is borrowed as it is;
/// any other is decoded by `form_urlencoded`.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        if pair.bytes().any(|b| b == b'%' || b == b'+') {
            let mut decoded = form_urlencoded::parse(pair.as_bytes());
            let (k, v) = decoded.next().unwrap_or_default();
            (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned()))
        } else {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (Cow::Borrowed(k), Cow::Borrowed(v))
        }
    })
}

/// `a.b.c.d`, as `Ipv4Addr`'s `Display` writes it, on the stack and
/// without the formatting machinery (a kickstart carries up to six
/// addresses).
#[derive(Clone, Copy)]
pub struct Ipv4Text {
    bytes: [u8; 15],
    len: usize,
}

impl Ipv4Text {
    pub fn new(a: Ipv4Addr) -> Self {
        let mut t = Ipv4Text {
            bytes: [0; 15],
            len: 0,
        };
        for (i, o) in a.octets().into_iter().enumerate() {
            if i > 0 {
                t.push(b'.');
            }
            if o >= 100 {
                t.push(b'0' + o / 100);
            }
            if o >= 10 {
                t.push(b'0' + o / 10 % 10);
            }
            t.push(b'0' + o % 10);
        }
        t
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.bytes.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl KsParams {
    /// Parses and validates a URL query; unknown keys are refused.
    pub fn from_query(query: &str) -> Result<Self, FieldError> {
        let mut p = KsParams {
            name: "default".into(),
            ..Default::default()
        };
        for (k, v) in query_pairs(query) {
            let v = &*v;
            if v.is_empty() {
                continue;
            }
            match &*k {
                "name" => p.name = check_token("name", v)?,
                "os" => p.os = Some(check_token("os", v)?),
                "version" => p.version = Some(check_token("version", v)?),
                "fqdn" => p.fqdn = Some(check_hostname("fqdn", v)?),
                "ip" => p.ip = Some(parse_ipv4("ip", v)?),
                "mask" => p.mask = Some(check_netmask("mask", v)?),
                "gw" => p.gw = Some(parse_ipv4("gw", v)?),
                "ns1" => p.ns1 = Some(parse_ipv4("ns1", v)?),
                "ns2" => p.ns2 = Some(parse_ipv4("ns2", v)?),
                // Read by the HTTP layer: a look that changes nothing.
                "preview" => {}
                other => {
                    return Err(FieldError::new(
                        other
                            .chars()
                            .filter(|c| !c.is_control())
                            .take(32)
                            .collect::<String>(),
                        "is not a kickstart parameter (name, os, version, fqdn, ip, mask, gw, ns1, ns2)",
                    ));
                }
            }
        }
        Ok(p)
    }
}

/// Everything a kickstart template can use. Field names are the variable
/// names of admin templates.
#[derive(Clone, Debug, Serialize)]
pub struct KsContext {
    pub name: String,
    pub fqdn: String,
    pub hostname: String,
    pub os: String,
    pub version: String,
    pub ip: Option<String>,
    pub mask: Option<String>,
    pub gw: Option<String>,
    pub ns1: Option<String>,
    pub ns2: Option<String>,
    /// `ns1,ns2` for kickstart's `--nameserver`.
    pub nameservers: String,
    pub repo_url: String,
    /// `http://<advertise>:<port>`.
    pub server: String,
    /// The call-back URL when gopxe knows the machine.
    pub done_url: Option<String>,
}

/// Default repository URL of a distribution, overridable by the config's
/// `repo_url` with `{os}`, `{version}` and `{server}` placeholders.
pub fn repo_url(template: Option<&str>, os: &str, version: &str, server: &str) -> String {
    if let Some(t) = template {
        return t
            .replace("{os}", os)
            .replace("{version}", version)
            .replace("{server}", server);
    }
    let os_l = os.to_ascii_lowercase();
    if os_l.starts_with("rocky") {
        format!("https://download.rockylinux.org/pub/rocky/{version}/BaseOS/x86_64/os/")
    } else if os_l.starts_with("alma") {
        format!("https://repo.almalinux.org/almalinux/{version}/BaseOS/x86_64/os/")
    } else if os_l.starts_with("fedora") {
        format!(
            "https://download.fedoraproject.org/pub/fedora/linux/releases/{version}/Everything/x86_64/os/"
        )
    } else if os_l.contains("stream") || version.ends_with("-stream") {
        format!("https://mirror.stream.centos.org/{version}/BaseOS/x86_64/os/")
    } else if version.starts_with('8') {
        // CentOS Linux 8 and 7 (and older) live on in the vault;
        // mirror.centos.org was retired with them.
        format!("https://vault.centos.org/{version}/BaseOS/x86_64/os/")
    } else {
        format!("https://vault.centos.org/{version}/os/x86_64/")
    }
}

/// What every template sees of the parameters: defaults filled in and
/// addresses as text (on the stack). The built-in template borrows these;
/// [`KsContext`] owns copies for admin templates.
struct Values<'a> {
    os: &'a str,
    version: &'a str,
    fqdn: &'a str,
    ip: Option<Ipv4Text>,
    mask: Option<Ipv4Text>,
    gw: Option<Ipv4Text>,
    ns1: Option<Ipv4Text>,
    ns2: Option<Ipv4Text>,
    /// `ns1,ns2` (those that are set) for kickstart's `--nameserver`.
    nameservers: heapless::String<31>,
}

impl<'a> Values<'a> {
    fn of(p: &'a KsParams) -> Self {
        let text = |a: Option<Ipv4Addr>| a.map(Ipv4Text::new);
        let (ns1, ns2) = (text(p.ns1), text(p.ns2));
        let mut nameservers = heapless::String::new();
        for ns in [&ns1, &ns2].into_iter().flatten() {
            if !nameservers.is_empty() {
                let _ = nameservers.push(',');
            }
            let _ = nameservers.push_str(ns.as_str());
        }
        Values {
            os: p.os.as_deref().unwrap_or("centos-7"),
            version: p.version.as_deref().unwrap_or("7"),
            fqdn: p.fqdn.as_deref().unwrap_or("localhost.localdomain"),
            ip: text(p.ip),
            mask: text(p.mask),
            gw: text(p.gw),
            ns1,
            ns2,
            nameservers,
        }
    }
}

fn text_of(a: &Option<Ipv4Text>) -> Option<&str> {
    a.as_ref().map(Ipv4Text::as_str)
}

impl KsContext {
    pub fn new(
        p: KsParams,
        repo_template: Option<&str>,
        server: &str,
        done_url: Option<String>,
    ) -> Self {
        let v = Values::of(&p);
        let owned = |a: &Option<Ipv4Text>| text_of(a).map(str::to_string);
        KsContext {
            name: p.name.clone(),
            hostname: v.fqdn.split('.').next().unwrap_or_default().to_string(),
            repo_url: repo_url(repo_template, v.os, v.version, server),
            fqdn: v.fqdn.to_string(),
            os: v.os.to_string(),
            version: v.version.to_string(),
            ip: owned(&v.ip),
            mask: owned(&v.mask),
            gw: owned(&v.gw),
            ns1: owned(&v.ns1),
            ns2: owned(&v.ns2),
            nameservers: v.nameservers.to_string(),
            server: server.to_string(),
            done_url,
        }
    }

    /// A context with every variable set to the longest value a request
    /// can carry (253-character FQDN, 64-character tokens, the longest
    /// addresses and URLs), for checking uploaded templates.
    pub fn longest() -> Self {
        let label = |c: char, n: usize| c.to_string().repeat(n);
        let fqdn = [
            label('a', 63),
            label('b', 63),
            label('c', 63),
            label('d', 61),
        ]
        .join(".");
        let top = Ipv4Addr::new(255, 255, 255, 255);
        let p = KsParams {
            name: label('n', 64),
            os: Some(label('o', 64)),
            version: Some(label('9', 64)),
            fqdn: Some(fqdn),
            ip: Some(top),
            mask: Some(top),
            gw: Some(top),
            ns1: Some(top),
            ns2: Some(top),
        };
        let server = "http://255.255.255.255:65535";
        let done = format!(
            "{server}/pxeboot/{}/done?key={}",
            label('f', 36),
            label('f', 32)
        );
        KsContext::new(p, None, server, Some(done))
    }

    /// A context with every variable set, for examples and tests.
    pub fn sample() -> Self {
        let p = KsParams {
            name: "sample".into(),
            os: Some("rocky".into()),
            version: Some("9".into()),
            fqdn: Some("host.example.org".into()),
            ip: Some(Ipv4Addr::new(192, 0, 2, 10)),
            mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            gw: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ns1: Some(Ipv4Addr::new(192, 0, 2, 53)),
            ns2: Some(Ipv4Addr::new(192, 0, 2, 54)),
        };
        KsContext::new(
            p,
            None,
            "http://192.0.2.1:9090",
            Some("http://192.0.2.1:9090/pxeboot/x/done".into()),
        )
    }
}

#[derive(TemplateSimple)]
#[template(path = "default.ks.stpl")]
struct DefaultKs<'a> {
    fqdn: &'a str,
    os: &'a str,
    version: &'a str,
    repo_url: &'a str,
    ip: Option<&'a str>,
    mask: Option<&'a str>,
    gw: Option<&'a str>,
    nameservers: &'a str,
    done_url: Option<&'a str>,
}

/// Renders the built-in `default` kickstart from the same [`Values`] as
/// [`KsContext::new`], borrowed (no allocation but the repository URL and
/// the text itself).
pub fn render_default(
    p: &KsParams,
    repo_template: Option<&str>,
    server: &str,
    done_url: Option<&str>,
) -> String {
    let v = Values::of(p);
    let repo_url = repo_url(repo_template, v.os, v.version, server);
    let t = DefaultKs {
        fqdn: v.fqdn,
        os: v.os,
        version: v.version,
        repo_url: &repo_url,
        ip: text_of(&v.ip),
        mask: text_of(&v.mask),
        gw: text_of(&v.gw),
        nameservers: &v.nameservers,
        done_url,
    };
    t.render_once()
        .unwrap_or_else(|e| format!("# gopxe: template error: {e}\n"))
}

/// Bounds on rendering one admin template (config `template_fuel`,
/// `template_max_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// minijinja fuel: about one unit per template instruction.
    pub fuel: u64,
    /// Most bytes of output.
    pub max_bytes: usize,
}

impl Default for Limits {
    /// A kickstart of a few hundred lines with loops over its values needs
    /// a few thousand units and some KiB; these leave room for far larger
    /// ones and still stop a runaway template within milliseconds.
    fn default() -> Self {
        Limits {
            fuel: 1_000_000,
            max_bytes: 1024 * 1024,
        }
    }
}

/// Why an admin template did not render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderError {
    /// minijinja's own error (syntax, undefined variable, bad operation).
    Template(String),
    /// The render used up its fuel.
    OutOfFuel(u64),
    /// The output grew past the limit.
    TooLarge(usize),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Template(e) => f.write_str(e),
            RenderError::OutOfFuel(n) => write!(
                f,
                "the template needs more than {n} steps (template_fuel) to render"
            ),
            RenderError::TooLarge(n) => write!(
                f,
                "the template renders more than {n} bytes (template_max_bytes)"
            ),
        }
    }
}

/// Output that refuses to grow past its limit.
struct Capped {
    out: Vec<u8>,
    max: usize,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len().saturating_add(buf.len()) > self.max {
            self.over = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn render_bounded(
    source: &str,
    c: &KsContext,
    limits: Limits,
    undefined: minijinja::UndefinedBehavior,
) -> Result<String, RenderError> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_fuel(Some(limits.fuel));
    let t = env
        .template_from_str(source)
        .map_err(|e| RenderError::Template(e.to_string()))?;
    let mut out = Capped {
        out: Vec::new(),
        max: limits.max_bytes,
        over: false,
    };
    match t.render_captured_to(c, &mut out) {
        Ok(_) => String::from_utf8(out.out)
            .map_err(|_| RenderError::Template("the output is not UTF-8".into())),
        Err(_) if out.over => Err(RenderError::TooLarge(limits.max_bytes)),
        Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => {
            Err(RenderError::OutOfFuel(limits.fuel))
        }
        Err(e) => Err(RenderError::Template(e.to_string())),
    }
}

/// Renders an admin template at boot time, within `limits`.
pub fn render_user(source: &str, c: &KsContext, limits: Limits) -> Result<String, RenderError> {
    render_bounded(source, c, limits, minijinja::UndefinedBehavior::Chainable)
}

/// Checks an uploaded template: it must compile and render against
/// [`KsContext::longest`] using only known variables, within `limits`.
pub fn check_template(source: &str, limits: Limits) -> Result<(), RenderError> {
    render_bounded(
        source,
        &KsContext::longest(),
        limits,
        minijinja::UndefinedBehavior::Strict,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_repositories_are_live_ones() {
        let url = |os, v| repo_url(None, os, v, "http://10.0.0.1:9090");
        assert_eq!(
            url("centos-7", "7.9.2009"),
            "https://vault.centos.org/7.9.2009/os/x86_64/"
        );
        assert_eq!(
            url("centos", "8.5.2111"),
            "https://vault.centos.org/8.5.2111/BaseOS/x86_64/os/"
        );
        assert_eq!(
            url("centos-stream", "9-stream"),
            "https://mirror.stream.centos.org/9-stream/BaseOS/x86_64/os/"
        );
        assert!(url("rocky", "9").starts_with("https://download.rockylinux.org/"));
        assert!(!url("", "7").contains("mirror.centos.org"));
        assert_eq!(
            repo_url(
                Some("{server}/localrepo/{os}-{version}/"),
                "alma",
                "9",
                "http://s"
            ),
            "http://s/localrepo/alma-9/"
        );
    }

    #[test]
    fn ipv4_text_is_display() {
        for a in [
            0u32,
            1,
            9,
            10,
            99,
            100,
            199,
            200,
            255,
            256,
            0x0a01_1432,
            0xffff_ffff,
        ] {
            let a = Ipv4Addr::from(a);
            assert_eq!(Ipv4Text::new(a).as_str(), a.to_string());
        }
        for o in 0..=255u8 {
            let a = Ipv4Addr::new(o, 255 - o, o / 3, o.wrapping_mul(7));
            assert_eq!(Ipv4Text::new(a).as_str(), a.to_string());
        }
    }

    #[test]
    fn query_pairs_decode_like_form_urlencoded() {
        for q in [
            "name=default&os=centos-7&fqdn=a.b",
            "a=1&&b=&c&=d&e=f=g",
            "fqdn=a%2Eb&os=cent+os&x%3D=%zz&y=%E2%82%AC&z=%ff",
            "",
            "&&",
            "k=v%",
        ] {
            let ours: Vec<(String, String)> = query_pairs(q)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let reference: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(ours, reference, "{q}");
        }
    }

    #[test]
    fn default_template_static_and_dhcp() {
        let p = KsParams::from_query(
            "name=default&os=centos-7&version=7.5.1804&fqdn=test-myvm1.local&ip=10.1.20.50&mask=255.255.255.0&gw=10.1.20.1&ns1=8.8.8.8&ns2=8.8.4.4",
        )
        .unwrap();
        let ks = render_default(&p, None, "http://10.1.20.2:9090", Some("http://d/done"));
        assert!(ks.contains(
            "network --device=link --bootproto=static --ip=10.1.20.50 --netmask=255.255.255.0 --gateway=10.1.20.1 --nameserver=8.8.8.8,8.8.4.4 --hostname=test-myvm1.local --activate\n"
        ), "{ks}");
        assert!(ks.contains("url --url=\"https://vault.centos.org/7.5.1804/os/x86_64/\""));
        assert!(ks.contains("curl -fsS -X POST \"http://d/done\""));
        let p = KsParams::from_query("name=default&os=rocky&version=9&fqdn=a.b").unwrap();
        let ks = render_default(&p, Some("{server}/localrepo/"), "http://s:1", None);
        assert!(
            ks.contains("network --device=link --bootproto=dhcp --hostname=a.b --activate\n"),
            "{ks}"
        );
        assert!(ks.contains("url --url=\"http://s:1/localrepo/\""));
        assert!(!ks.contains("curl"));
        let p = KsParams::from_query("ip=10.0.0.9&ns2=192.0.2.53").unwrap();
        let ks = render_default(&p, None, "http://s:1", None);
        assert!(
            ks.contains(
                "--bootproto=static --ip=10.0.0.9 --nameserver=192.0.2.53 --hostname=localhost.localdomain --activate\n"
            ),
            "{ks}"
        );
    }

    /// The built-in template and admin templates see the same values.
    #[test]
    fn default_and_context_agree() {
        let q = "name=default&os=rocky&version=9&fqdn=h.lab&ip=10.1.2.3&mask=255.255.0.0&gw=10.1.0.1&ns1=1.1.1.1&ns2=9.9.9.9";
        let p = KsParams::from_query(q).unwrap();
        let builtin = render_default(&p, None, "http://s:1", Some("http://s:1/d"));
        let c = KsContext::new(p, None, "http://s:1", Some("http://s:1/d".into()));
        for value in [
            &c.fqdn,
            &c.repo_url,
            c.ip.as_ref().unwrap(),
            c.mask.as_ref().unwrap(),
            c.gw.as_ref().unwrap(),
            &c.nameservers,
            c.done_url.as_ref().unwrap(),
        ] {
            assert!(builtin.contains(value.as_str()), "{value} not in {builtin}");
        }
    }

    #[test]
    fn query_injection_refused() {
        for (q, field) in [
            ("fqdn=a%0a%25post", "fqdn"),
            ("os=centos%207", "os"),
            ("ip=1.2.3.4%0a", "ip"),
            ("name=../../etc/passwd", "name"),
            ("evil=1", "evil"),
        ] {
            assert_eq!(KsParams::from_query(q).unwrap_err().field, field, "{q}");
        }
    }

    #[test]
    fn user_templates_checked_on_upload() {
        let l = Limits::default();
        assert!(
            check_template(
                "network --hostname={{ fqdn }}\n{% if ip %}--ip={{ ip }}{% endif %}",
                l
            )
            .is_ok()
        );
        assert!(
            check_template("{% if %}", l)
                .unwrap_err()
                .to_string()
                .contains("syntax")
        );
        assert!(check_template("{{ no_such_var }}", l).is_err());
        let out = render_user(
            "host={{ hostname }} repo={{ repo_url }}",
            &KsContext::sample(),
            l,
        )
        .unwrap();
        assert_eq!(
            out,
            "host=host repo=https://download.rockylinux.org/pub/rocky/9/BaseOS/x86_64/os/"
        );
    }

    /// The attacks of an admin template on the appliance: work that grows
    /// with a request's values, and output that grows without bound.
    #[test]
    fn templates_are_bounded_in_work_and_output() {
        let l = Limits::default();
        // Four nested loops over the FQDN: 253^4 steps for the longest one.
        let loops = "{% for a in fqdn %}{% for b in fqdn %}{% for c in fqdn %}{% for d in fqdn %}x{% endfor %}{% endfor %}{% endfor %}{% endfor %}";
        assert_eq!(
            check_template(loops, l),
            Err(RenderError::OutOfFuel(l.fuel))
        );
        // At boot time with a request's own long FQDN: the same.
        let mut c = KsContext::sample();
        c.fqdn = "a".repeat(100);
        assert_eq!(
            render_user(loops, &c, l),
            Err(RenderError::OutOfFuel(l.fuel))
        );
        // 100 MB from three lines: refused at upload, cut off at boot time.
        let big = r#"{% set a="x"*1000 %}{% set b=a*1000 %}{{ b*100 }}"#;
        assert_eq!(
            check_template(big, l),
            Err(RenderError::TooLarge(l.max_bytes))
        );
        assert_eq!(
            render_user(big, &KsContext::sample(), l),
            Err(RenderError::TooLarge(l.max_bytes))
        );
        // Output grown a little at a time is cut off too.
        let many = "{% for i in range(100000) %}{{ fqdn }}{% endfor %}";
        assert!(check_template(many, l).is_err());
        // Small limits are honoured exactly.
        let tight = Limits {
            fuel: 1_000_000,
            max_bytes: 10,
        };
        assert_eq!(
            render_user("0123456789", &KsContext::sample(), tight)
                .unwrap()
                .len(),
            10
        );
        assert_eq!(
            render_user("0123456789a", &KsContext::sample(), tight),
            Err(RenderError::TooLarge(10))
        );
        // The error says what to change.
        let msg = RenderError::OutOfFuel(5).to_string();
        assert!(msg.contains("template_fuel"), "{msg}");
        let msg = RenderError::TooLarge(5).to_string();
        assert!(msg.contains("template_max_bytes"), "{msg}");
    }
}
