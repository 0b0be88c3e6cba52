//! Writing a [`RawConfig`] back as TOML.
//!
//! Layer: console (pure). The config file is read with `basic_toml` into
//! [`RawConfig`]; the console and `gopxe firstboot` change fields and write
//! the whole file again with [`render`]. Keys come out in a fixed order, one
//! per line, strings as TOML basic strings with every character that needs
//! it escaped, so the result always parses back to the same values
//! ([`render_checked`] verifies that before anything is written).

use crate::config::RawConfig;
use std::fmt::Write as _;

/// A TOML basic string: `"..."` with `"`, `\` and control characters escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The file text for `raw`, after a header comment (each line prefixed `# `).
pub fn render(raw: &RawConfig, header: &str) -> String {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    if !header.is_empty() {
        out.push('\n');
    }
    let mut s = |key: &str, v: &Option<String>| {
        if let Some(v) = v {
            let _ = writeln!(out, "{key} = {}", quote(v));
        }
    };
    s("data_dir", &raw.data_dir);
    s("images", &raw.images);
    s("localrepo", &raw.localrepo);
    s("http_listen", &raw.http_listen);
    s("advertise_addr", &raw.advertise_addr);
    s("api_token", &raw.api_token);
    s("interface", &raw.interface);
    s("unknown_boot", &raw.unknown_boot);
    s("repo_url", &raw.repo_url);
    s("tftp_listen", &raw.tftp_listen);
    s("dhcp_mode", &raw.dhcp_mode);
    s("dhcp_listen", &raw.dhcp_listen);
    s("dhcp_router", &raw.dhcp_router);
    s("debian_mirror", &raw.debian_mirror);
    s("ubuntu_mirror", &raw.ubuntu_mirror);
    s("installer_user", &raw.installer_user);
    s("installer_password_hash", &raw.installer_password_hash);
    s("installer_ssh_key", &raw.installer_ssh_key);
    let mut list = |key: &str, v: &Option<Vec<String>>| {
        if let Some(v) = v {
            let items: Vec<String> = v.iter().map(|i| quote(i)).collect();
            let _ = writeln!(out, "{key} = [{}]", items.join(", "));
        }
    };
    list("dhcp_range", &raw.dhcp_range);
    list("dhcp_dns", &raw.dhcp_dns);
    list("webhook", &raw.webhook);
    list("server_names", &raw.server_names);
    let mut n = |key: &str, v: Option<u64>| {
        if let Some(v) = v {
            let _ = writeln!(out, "{key} = {v}");
        }
    };
    n("tftp_max_transfers", raw.tftp_max_transfers);
    n("tftp_max_per_client", raw.tftp_max_per_client);
    n("dhcp_relay_port", raw.dhcp_relay_port);
    n("max_body_bytes", raw.max_body_bytes);
    n("max_connections", raw.max_connections);
    n("template_fuel", raw.template_fuel);
    n("template_max_bytes", raw.template_max_bytes);
    out
}

/// [`render`], then parses the text back and checks every value survived.
pub fn render_checked(raw: &RawConfig, header: &str) -> Result<String, String> {
    let text = render(raw, header);
    let back: RawConfig = basic_toml::from_str(&text)
        .map_err(|e| format!("internal error: the written file would not parse: {e}"))?;
    if format!("{back:?}") != format!("{raw:?}") {
        return Err("internal error: the written file would not read back the same".into());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind_of_value() {
        let raw = RawConfig {
            data_dir: Some("/var/lib/gopxe/data".into()),
            api_token: Some("a\"b\\c".into()),
            interface: Some("eth0".into()),
            installer_password_hash: Some("$6$s$h".into()),
            dhcp_mode: Some("authoritative".into()),
            dhcp_range: Some(vec!["10.0.0.10,10.0.0.20".into(), "x\ny".into()]),
            dhcp_dns: Some(vec![]),
            max_connections: Some(12),
            webhook: Some(vec!["http://10.0.0.5:8080/hook".into()]),
            ..RawConfig::default()
        };
        let text = render_checked(&raw, "written by a test\nsecond line").unwrap();
        assert!(text.starts_with("# written by a test\n# second line\n\n"));
        assert!(text.contains("dhcp_mode = \"authoritative\"\n"));
        let back: RawConfig = basic_toml::from_str(&text).unwrap();
        assert_eq!(back.api_token.as_deref(), Some("a\"b\\c"));
        assert_eq!(back.dhcp_range.map(|r| r.len()), Some(2));
        assert_eq!(back.webhook, raw.webhook);
        assert_eq!(quote("\u{1}"), "\"\\u0001\"");
    }
}
