//! Machine identifiers: SMBIOS UUIDs and MAC addresses, normalised.
//!
//! Layer: model (pure). Firmware names a machine in several spellings:
//! pxelinux asks for `pxelinux.cfg/<uuid>` with the UUID in the byte order
//! of DHCP option 97 (the SMBIOS wire order, whose first three fields are
//! little-endian, RFC 4122 §4.1.2 vs SMBIOS 2.6 §7.2.1) and for
//! `pxelinux.cfg/01-<mac>` (ARP hardware type 1, dashes). An admin reads the
//! UUID off the BIOS screen or `dmidecode`, which print the big-endian form.
//! [`MachineId`] accepts any usual spelling and prints one canonical form;
//! [`MachineId::matches_uuid_bytes`] finds a machine by either byte order.
//! A Raspberry Pi's boot ROM / EEPROM names it by the low 32 bits of its
//! board serial, 8 lowercase hex digits (the TFTP prefix `1a2b3c4d/`,
//! Raspberry Pi documentation "Network booting" and `TFTP_PREFIX`); gopxe
//! spells that id `pi-1a2b3c4d`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A machine's identity: the UUID its firmware reports or its MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MachineId {
    /// SMBIOS system UUID, stored in the big-endian form an admin reads.
    Uuid([u8; 16]),
    /// Ethernet MAC address.
    Mac([u8; 6]),
    /// Raspberry Pi board serial (its low 32 bits, as the boot ROM and
    /// EEPROM use it). Last: postcard numbers variants in order, so stores
    /// written before it decode unchanged.
    PiSerial(u32),
}

/// Why a string is not a machine id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdError(pub String);

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IdError {}

fn hex_digits(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = (*pair.first()? as char).to_digit(16)?;
            let lo = (*pair.get(1)? as char).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Parses `aa:bb:cc:dd:ee:ff`, `aa-bb-..`, `aabb.ccdd.eeff` or `aabbccddeeff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let s = s.trim();
    let compact: String = if s.contains(':') || s.contains('-') {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
            return None;
        }
        parts.concat()
    } else if s.contains('.') {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.len() != 4) {
            return None;
        }
        parts.concat()
    } else {
        s.to_string()
    };
    if compact.len() != 12 {
        return None;
    }
    hex_digits(&compact)?.try_into().ok()
}

/// Parses a UUID in the 8-4-4-4-12 form or as 32 hex digits, optionally in braces.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let s = s.trim().trim_start_matches('{').trim_end_matches('}');
    let compact: String = if s.contains('-') {
        let parts: Vec<&str> = s.split('-').collect();
        let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        if lens != [8, 4, 4, 4, 12] {
            return None;
        }
        parts.concat()
    } else {
        s.to_string()
    };
    if compact.len() != 32 {
        return None;
    }
    hex_digits(&compact)?.try_into().ok()
}

/// Parses a Pi board serial: `pi-1a2b3c4d`, the 8 hex digits alone, or
/// the 16 digits `/proc/cpuinfo` prints on a Pi 4 (`100000001a2b3c4d`:
/// the boot ROM uses the low 8).
pub fn parse_pi_serial(s: &str) -> Option<u32> {
    let s = s.trim();
    let s = s
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("pi-"))
        .and_then(|_| s.get(3..))
        .unwrap_or(s);
    let low = match s.len() {
        8 => s,
        16 if matches!(s.get(..8), Some("10000000" | "00000000")) => s.get(8..)?,
        _ => return None,
    };
    if !low.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(low, 16).ok()
}

/// Swaps the first three UUID fields between big- and little-endian
/// (SMBIOS / option 97 order <-> RFC 4122 order). Its own inverse.
pub fn swap_uuid(u: [u8; 16]) -> [u8; 16] {
    let mut out = u;
    out[..4].copy_from_slice(&[u[3], u[2], u[1], u[0]]);
    out[4..6].copy_from_slice(&[u[5], u[4]]);
    out[6..8].copy_from_slice(&[u[7], u[6]]);
    out
}

/// Formats 16 bytes as a lowercase 8-4-4-4-12 UUID.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = Vec::with_capacity(36);
    for (i, &b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push(b'-');
        }
        push_hex(&mut s, b);
    }
    String::from_utf8(s).unwrap_or_default()
}

/// Formats a MAC with the given separator, lowercase.
pub fn format_mac(m: &[u8; 6], sep: &str) -> String {
    mac_after("", m, sep)
}

/// `prefix` followed by the MAC as [`format_mac`] writes it.
fn mac_after(prefix: &str, m: &[u8; 6], sep: &str) -> String {
    let mut s = Vec::with_capacity(prefix.len() + 12 + 5 * sep.len());
    s.extend_from_slice(prefix.as_bytes());
    for (i, &b) in m.iter().enumerate() {
        if i > 0 {
            s.extend_from_slice(sep.as_bytes());
        }
        push_hex(&mut s, b);
    }
    String::from_utf8(s).unwrap_or_default()
}

/// Two lowercase hex digits (these names are made for every boot config
/// and event, so without `format!` per byte).
pub(crate) fn push_hex(s: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for nibble in [b >> 4, b & 0x0f] {
        s.push(HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'));
    }
}

impl MachineId {
    /// The canonical spelling: lowercase dashed UUID, or `01-aa-bb-cc-dd-ee-ff`
    /// for a MAC (the pxelinux file name, as the original API used it).
    pub fn canonical(&self) -> String {
        match self {
            MachineId::Uuid(u) => format_uuid(u),
            MachineId::Mac(m) => mac_after("01-", m, "-"),
            MachineId::PiSerial(n) => format!("pi-{n:08x}"),
        }
    }

    /// True when `wire` (UUID bytes as a client sent them, in either order)
    /// names this machine.
    pub fn matches_uuid_bytes(&self, wire: &[u8; 16]) -> bool {
        match self {
            MachineId::Uuid(u) => u == wire || *u == swap_uuid(*wire),
            MachineId::Mac(_) | MachineId::PiSerial(_) => false,
        }
    }
}

impl FromStr for MachineId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        // `01-aa-bb-cc-dd-ee-ff`: ARP type 1 prefix as in pxelinux.cfg names.
        if let Some(rest) = lower
            .strip_prefix("01-")
            .or_else(|| lower.strip_prefix("01:"))
            && rest.len() == 17
            && let Some(m) = parse_mac(rest)
        {
            return Ok(MachineId::Mac(m));
        }
        if let Some(m) = parse_mac(&lower) {
            return Ok(MachineId::Mac(m));
        }
        if let Some(u) = parse_uuid(&lower) {
            return Ok(MachineId::Uuid(u));
        }
        // Only with its prefix: 8 hex digits alone are not a machine id.
        if lower.starts_with("pi-")
            && let Some(n) = parse_pi_serial(&lower)
        {
            return Ok(MachineId::PiSerial(n));
        }
        Err(IdError(format!(
            "`{}` is neither a UUID (8-4-4-4-12 hex), a MAC address (aa:bb:cc:dd:ee:ff, aa-bb-.., 01-aa-bb-..) nor a Raspberry Pi serial (pi-1a2b3c4d)",
            t.escape_debug()
        )))
    }
}

impl fmt::Display for MachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_spellings_normalise() {
        let a: MachineId = "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69".parse().unwrap();
        let b: MachineId = "42330D5A-0EAD-F7FA-4E3A-AE3BDCB08C69".parse().unwrap();
        let c: MachineId = "{42330d5a0eadf7fa4e3aae3bdcb08c69}".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.canonical(), "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69");
    }

    #[test]
    fn formats_every_nibble() {
        let u: [u8; 16] = std::array::from_fn(|i| (i as u8) * 0x11);
        assert_eq!(format_uuid(&u), "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(
            format_mac(&[0x00, 0x0f, 0xf0, 0xff, 0x5a, 0xa5], ":"),
            "00:0f:f0:ff:5a:a5"
        );
        assert_eq!(format_mac(&[1, 2, 3, 4, 5, 6], ""), "010203040506");
    }

    #[test]
    fn mac_spellings_normalise() {
        let want = MachineId::Mac([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f]);
        for s in [
            "aa:bb:cc:dd:ee:0f",
            "AA-BB-CC-DD-EE-0F",
            "01-aa-bb-cc-dd-ee-0f",
            "aabbccddee0f",
            "aabb.ccdd.ee0f",
        ] {
            assert_eq!(s.parse::<MachineId>().unwrap(), want, "{s}");
        }
        assert_eq!(want.canonical(), "01-aa-bb-cc-dd-ee-0f");
    }

    #[test]
    fn rejects_garbage_and_traversal() {
        for s in [
            "",
            "../../etc/x",
            "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c6",
            "zz:bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee",
            "01-aa-bb",
            "42330d5a-0ead-f7fa-4e3a-ae3bdcb08c69/..",
            "aa:bb:cc:dd:ee:ff\n",
        ] {
            if s.ends_with('\n') {
                // Surrounding whitespace is trimmed; embedded is not allowed.
                assert!(s.parse::<MachineId>().is_ok());
            } else {
                assert!(s.parse::<MachineId>().is_err(), "{s:?}");
            }
        }
        assert!("aa:bb\n:cc:dd:ee:ff".parse::<MachineId>().is_err());
    }

    #[test]
    fn pi_serial_spellings_normalise() {
        let want = MachineId::PiSerial(0x1a2b_3c4d);
        for s in [
            "pi-1a2b3c4d",
            "PI-1A2B3C4D",
            " pi-1a2b3c4d ",
            "pi-100000001a2b3c4d",
        ] {
            assert_eq!(s.parse::<MachineId>().unwrap(), want, "{s}");
        }
        assert_eq!(want.canonical(), "pi-1a2b3c4d");
        assert_eq!(MachineId::PiSerial(0xab).canonical(), "pi-000000ab");
        assert_eq!(parse_pi_serial("1a2b3c4d"), Some(0x1a2b_3c4d));
        assert_eq!(parse_pi_serial("100000001a2b3c4d"), Some(0x1a2b_3c4d));
        for s in [
            "1a2b3c4d",
            "pi-1a2b3c4",
            "pi-1a2b3c4d0",
            "pi-+a2b3c4d",
            "pi-../x/..",
            "pi-1a2b3c4g",
            "pi-200000001a2b3c4d",
            "pi-",
        ] {
            assert!(s.parse::<MachineId>().is_err(), "{s:?}");
        }
    }

    #[test]
    fn smbios_byte_order_matches() {
        // QEMU -smbios type=1,uuid=5a6e8f1c-2b3d-4e5f-8899-aabbccddeeff;
        // pxelinux then asks for 1c8f6e5a-3d2b-5f4e-8899-aabbccddeeff.
        let admin: MachineId = "5a6e8f1c-2b3d-4e5f-8899-aabbccddeeff".parse().unwrap();
        let wire = parse_uuid("1c8f6e5a-3d2b-5f4e-8899-aabbccddeeff").unwrap();
        assert!(admin.matches_uuid_bytes(&wire));
        assert!(admin.matches_uuid_bytes(&swap_uuid(wire)));
        let other = parse_uuid("1c8f6e5a-3d2b-5f4e-8899-aabbccddeef0").unwrap();
        assert!(!admin.matches_uuid_bytes(&other));
        assert_eq!(swap_uuid(swap_uuid(wire)), wire);
    }
}
