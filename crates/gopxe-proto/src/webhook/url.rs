//! Webhook URLs: `http://host[:port][/path][?query]`, checked at start-up.
//!
//! Layer: core (pure). Follows the `http` scheme of RFC 9110 §4.2.1 with
//! the authority syntax of RFC 3986 §3.2, restricted to what gopxe sends
//! to: plain `http` (no TLS in the binary), a host that is an IPv4
//! address, a bracketed IPv6 address or a DNS name (RFC 1123 §2.1), an
//! optional port (default 80), and a path and query passed through as
//! written. User info, fragments, spaces, control and non-ASCII characters
//! are refused with a message saying what to change.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where the receiver is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// A DNS name, lower-case; resolved at each delivery.
    Name(String),
}

/// A checked webhook URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookUrl {
    pub host: Host,
    pub port: u16,
    /// Path and query for the request line; starts with `/`.
    pub target: String,
    text: String,
}

impl fmt::Display for HookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

fn dns_name(s: &str) -> Option<String> {
    let labels_ok = s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    // An all-digit last label is a mistyped address, not a name.
    let last_numeric = s
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    (labels_ok && !last_numeric).then(|| s.to_ascii_lowercase())
}

impl HookUrl {
    /// The `Host` header value (RFC 9110 §7.2): host, and port unless 80.
    pub fn host_header(&self) -> String {
        let host = match &self.host {
            Host::Ip(IpAddr::V6(a)) => format!("[{a}]"),
            Host::Ip(IpAddr::V4(a)) => a.to_string(),
            Host::Name(n) => n.clone(),
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    pub fn parse(s: &str) -> Result<HookUrl, String> {
        if s.len() > MAX_URL_LEN {
            return Err(format!("longer than {MAX_URL_LEN} characters"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "`{}` has spaces, control or non-ASCII characters (percent-encode them)",
                s.escape_debug()
            ));
        }
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            s.get(7..).unwrap_or_default()
        } else if lower.starts_with("https://") {
            return Err(format!(
                "`{s}`: https is not supported (gopxe carries no TLS to stay small); \
                 use http:// on a trusted network or a local relay that forwards over https"
            ));
        } else {
            return Err(format!("`{s}` is not an http:// URL"));
        };
        if s.contains('#') {
            return Err(format!("`{s}`: a fragment (#...) is never sent; remove it"));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err(format!(
                "`{s}`: user info (user@host) is not supported; put a secret in the path instead"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: `[` without `]` around an IPv6 address"))?;
            let addr: Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("`{s}`: `{addr}` is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{s}`: expected `:port` after the IPv6 address"))?,
                ),
            };
            (Host::Ip(IpAddr::V6(addr)), port)
        } else {
            let (name, port) = match authority.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (authority, None),
            };
            if name.is_empty() {
                return Err(format!("`{s}` has no host"));
            }
            let host = match name.parse::<Ipv4Addr>() {
                Ok(a) => Host::Ip(IpAddr::V4(a)),
                Err(_) => Host::Name(dns_name(name).ok_or_else(|| {
                    format!("`{s}`: `{name}` is neither an IPv4 address nor a host name")
                })?),
            };
            (host, port)
        };
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{s}`: `{p}` is not a TCP port (1-65535)"))?,
        };
        let target = match target.strip_prefix('?') {
            Some(_) => format!("/{target}"),
            None if target.is_empty() => "/".to_string(),
            None => target.to_string(),
        };
        Ok(HookUrl {
            host,
            port,
            target,
            text: s.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> HookUrl {
        HookUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        HookUrl::parse(s).expect_err(s)
    }

    #[test]
    fn accepts_addresses_names_ports_paths_and_queries() {
        let u = ok("http://10.0.0.5:8080/hook");
        assert_eq!(u.host, Host::Ip("10.0.0.5".parse().unwrap()));
        assert_eq!((u.port, u.target.as_str()), (8080, "/hook"));
        assert_eq!(u.host_header(), "10.0.0.5:8080");
        assert_eq!(u.to_string(), "http://10.0.0.5:8080/hook");

        let u = ok("HTTP://Hooks.Lab.example");
        assert_eq!(u.host, Host::Name("hooks.lab.example".into()));
        assert_eq!((u.port, u.target.as_str()), (80, "/"));
        assert_eq!(u.host_header(), "hooks.lab.example");

        let u = ok("http://[fd00::5]:9000?token=a%20b");
        assert_eq!(u.host, Host::Ip("fd00::5".parse().unwrap()));
        assert_eq!(u.target, "/?token=a%20b");
        assert_eq!(u.host_header(), "[fd00::5]:9000");
        assert_eq!(ok("http://[::1]/x/y?z").target, "/x/y?z");
        assert_eq!(ok("http://localhost:1/").port, 1);
    }

    #[test]
    fn refuses_what_it_cannot_send_saying_why() {
        assert!(err("https://h/hook").contains("https is not supported"));
        assert!(err("ftp://h/").contains("not an http:// URL"));
        assert!(err("10.0.0.5:8080/hook").contains("not an http:// URL"));
        assert!(err("http://").contains("no host"));
        assert!(err("http://:80/").contains("no host"));
        assert!(err("http://u:p@h/").contains("user info"));
        assert!(err("http://h/#frag").contains("fragment"));
        assert!(err("http://h:0/").contains("not a TCP port"));
        assert!(err("http://h:65536/").contains("not a TCP port"));
        assert!(err("http://h:/").contains("not a TCP port"));
        assert!(err("http://h:8x/").contains("not a TCP port"));
        assert!(err("http://a b/").contains("spaces"));
        assert!(err("http://h/\nX-Injected: 1").contains("control"));
        assert!(err("http://hé/").contains("non-ASCII"));
        assert!(err("http://999.1.1.1/").contains("neither"));
        assert!(err("http://-bad.example/").contains("neither"));
        assert!(err("http://a..b/").contains("neither"));
        assert!(err("http://[fd00::5/").contains("without `]`"));
        assert!(err("http://[zz::1]/").contains("not an IPv6"));
        assert!(err("http://[::1]x/").contains("`:port`"));
        assert!(err("http://a:1:2/").contains("not a TCP port"));
        let long = format!("http://h/{}", "a".repeat(MAX_URL_LEN));
        assert!(err(&long).contains("longer"));
    }
}
