//! Wire layer: untrusted bytes become a checked [`Request`]; replies are
//! encoded without any panicking path.
//!
//! dhcproto (RFC 2131 §2 header, RFC 2132 options) does the decoding; this
//! module adds the checks dhcproto leaves out (op code, magic cookie,
//! hardware address length — its `chaddr()` slices by the untrusted `hlen`)
//! and pulls out what the decision core needs: client identity (opt 61 or
//! chaddr), requested address (50), server identifier (54), PXE fields
//! (60, 77, 93, 97; RFC 4578) and the relay agent information (82; RFC 3046)
//! as raw bytes so it can be echoed verbatim.

use std::fmt;
use std::net::Ipv4Addr;

use dhcproto::v4::{Decodable, Decoder, Encodable, Encoder, Flags, Message, Opcode};

/// Offset of the options field (after the 4-byte magic cookie).
const OPTIONS_AT: usize = 240;
/// BOOTP's fixed header plus the magic cookie.
const MAGIC_AT: usize = 236;
/// Replies are padded to the BOOTP minimum; some PXE ROMs drop shorter ones.
const MIN_REPLY_LEN: usize = 300;
/// Longest request we look at; larger datagrams are not DHCP we answer.
pub const MAX_PACKET_LEN: usize = 1500;

/// Why a datagram is not a request we can answer. The driver logs it at
/// debug and drops the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    TooShort(usize),
    TooLong(usize),
    NotARequest,
    BadMagic,
    Decode(String),
    NoMessageType,
    UnexpectedMessageType(u8),
    /// Not Ethernet-sized: hardware type and address length.
    UnsupportedHardware {
        htype: u8,
        hlen: u8,
    },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::TooShort(n) => write!(f, "datagram of {n} bytes is too short"),
            PacketError::TooLong(n) => write!(f, "datagram of {n} bytes is too long"),
            PacketError::NotARequest => f.write_str("not a BOOTREQUEST"),
            PacketError::BadMagic => f.write_str("no DHCP magic cookie"),
            PacketError::Decode(e) => write!(f, "undecodable: {e}"),
            PacketError::NoMessageType => f.write_str("no DHCP message type (BOOTP)"),
            PacketError::UnexpectedMessageType(t) => {
                write!(f, "message type {t} is not one a server answers")
            }
            PacketError::UnsupportedHardware { htype, hlen } => {
                write!(f, "hardware type {htype} with address length {hlen}")
            }
        }
    }
}

impl std::error::Error for PacketError {}

/// The client messages a server acts on (RFC 2131 §3.1, table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Discover,
    Request,
    Decline,
    Release,
    Inform,
}

/// A MAC address (Ethernet only: htype 1, hlen 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Format 16 UUID bytes as text, in the byte order they came on the wire
/// (opt 97 carries SMBIOS order; pxelinux prints them the same way).
pub fn uuid_text(u: &[u8; 16]) -> String {
    crate::model::format_uuid(u)
}

/// A checked client request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The decoded message (for fields copied into the reply).
    pub msg: Message,
    pub kind: Kind,
    pub xid: u32,
    pub flags_broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub mac: Mac,
    /// Client identity: option 61 if present, else `0x01 + chaddr`
    /// (the form RFC 2132 §9.14 suggests for Ethernet).
    pub client_id: Vec<u8>,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    /// Option 60, raw.
    pub vendor_class: Option<Vec<u8>>,
    /// Option 77 (user class), raw.
    pub user_class: Option<Vec<u8>>,
    /// Option 93, the first architecture listed (RFC 4578 §2.1).
    pub arch: Option<u16>,
    /// Option 97 type 0: the 16 UUID bytes as sent.
    pub uuid: Option<[u8; 16]>,
    /// Option 43 as sent (PXE boot-server discovery carries sub-opt 71).
    pub vendor_opts: Option<Vec<u8>>,
    /// Option 82 exactly as the relay sent it (RFC 3046 §2.2: echo it).
    pub relay_info: Option<Vec<u8>>,
    /// Option 12.
    pub hostname: Option<String>,
}

impl Request {
    /// Does the vendor class start with `prefix`?
    pub fn vendor_class_starts_with(&self, prefix: &[u8]) -> bool {
        self.vendor_class
            .as_deref()
            .is_some_and(|v| v.starts_with(prefix))
    }

    /// PXE or UEFI HTTP-boot firmware (opt 60 `PXEClient...`/`HTTPClient...`).
    pub fn is_netboot_client(&self) -> bool {
        self.vendor_class_starts_with(b"PXEClient") || self.vendor_class_starts_with(b"HTTPClient")
    }

    /// iPXE announces itself with user class `iPXE` (opt 77).
    pub fn is_ipxe(&self) -> bool {
        self.user_class
            .as_deref()
            .is_some_and(|u| u.windows(4).any(|w| w == b"iPXE"))
    }
}

/// Decode and check a datagram received on a server port.
pub fn decode(bytes: &[u8]) -> Result<Request, PacketError> {
    if bytes.len() > MAX_PACKET_LEN {
        return Err(PacketError::TooLong(bytes.len()));
    }
    if bytes.len() < OPTIONS_AT {
        return Err(PacketError::TooShort(bytes.len()));
    }
    if bytes.get(MAGIC_AT..OPTIONS_AT) != Some(&dhcproto::v4::MAGIC[..]) {
        return Err(PacketError::BadMagic);
    }
    // dhcproto's option decoder trusts option lengths (debug assertions,
    // subtractions that underflow): it only ever sees the fixed header.
    // Options are read from the raw bytes below.
    let mut head = bytes.get(..OPTIONS_AT).unwrap_or_default().to_vec();
    head.push(255);
    let msg = Message::decode(&mut Decoder::new(&head))
        .map_err(|e| PacketError::Decode(e.to_string()))?;
    if msg.opcode() != Opcode::BootRequest {
        return Err(PacketError::NotARequest);
    }
    // Checked before any call to `chaddr()`, which slices by hlen.
    let htype = bytes.get(1).copied().unwrap_or(0);
    let hlen = msg.hlen();
    if htype != 1 || hlen != 6 {
        return Err(PacketError::UnsupportedHardware { htype, hlen });
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(msg.chaddr());
    let opts = RawOptions::parse(bytes);
    let kind = match opts.get(53).and_then(|v| v.first()) {
        None => return Err(PacketError::NoMessageType),
        Some(1) => Kind::Discover,
        Some(3) => Kind::Request,
        Some(4) => Kind::Decline,
        Some(7) => Kind::Release,
        Some(8) => Kind::Inform,
        Some(other) => return Err(PacketError::UnexpectedMessageType(*other)),
    };
    let client_id = match opts.get(61) {
        Some(id) if !id.is_empty() => id.to_vec(),
        _ => {
            let mut id = Vec::with_capacity(7);
            id.push(1);
            id.extend_from_slice(&mac);
            id
        }
    };
    let ipv4 = |code| {
        opts.get(code)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(Ipv4Addr::from)
    };
    // Option 93 is a list of 16-bit types; the first one counts. Matched as
    // raw numbers (named constants for 7 and 9 follow a swapped table).
    let arch = opts.get(93).and_then(|v| match v {
        [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
        _ => None,
    });
    let uuid = opts.get(97).and_then(|v| match v.split_first() {
        Some((0, rest)) => <[u8; 16]>::try_from(rest).ok(),
        _ => None,
    });
    let hostname = opts
        .get(12)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_string);
    Ok(Request {
        kind,
        xid: msg.xid(),
        flags_broadcast: msg.flags().broadcast(),
        ciaddr: msg.ciaddr(),
        giaddr: msg.giaddr(),
        mac: Mac(mac),
        client_id,
        requested_ip: ipv4(50),
        server_id: ipv4(54),
        vendor_class: opts.get(60).map(<[u8]>::to_vec),
        user_class: opts.get(77).map(<[u8]>::to_vec),
        arch,
        uuid,
        vendor_opts: opts.get(43).map(<[u8]>::to_vec),
        relay_info: opts.get(82).map(<[u8]>::to_vec),
        hostname,
        msg,
    })
}

/// The options of a datagram, straight from its bytes: repeated options
/// concatenated (RFC 3396); parsing stops at End or at a truncated option.
#[derive(Debug, Default)]
pub struct RawOptions(std::collections::BTreeMap<u8, Vec<u8>>);

impl RawOptions {
    pub fn parse(bytes: &[u8]) -> RawOptions {
        let mut map = std::collections::BTreeMap::<u8, Vec<u8>>::new();
        let mut i = OPTIONS_AT;
        while let Some(&c) = bytes.get(i) {
            match c {
                0 => i += 1,
                255 => break,
                _ => {
                    let Some(&len) = bytes.get(i + 1) else { break };
                    let len = usize::from(len);
                    let Some(val) = bytes.get(i + 2..i + 2 + len) else {
                        break;
                    };
                    map.entry(c).or_default().extend_from_slice(val);
                    i += 2 + len;
                }
            }
        }
        RawOptions(map)
    }

    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.0.get(&code).map(Vec::as_slice)
    }
}

/// The value of option `code` straight from the datagram.
pub fn raw_option(bytes: &[u8], code: u8) -> Option<Vec<u8>> {
    RawOptions::parse(bytes).get(code).map(<[u8]>::to_vec)
}

/// Find sub-option `code` in an encapsulated option (e.g. PXE's option 43).
pub fn sub_option(data: &[u8], code: u8) -> Option<&[u8]> {
    let mut i = 0;
    while let Some(&c) = data.get(i) {
        match c {
            0 => i += 1,
            255 => return None,
            _ => {
                let len = usize::from(*data.get(i + 1)?);
                let val = data.get(i + 2..i + 2 + len)?;
                if c == code {
                    return Some(val);
                }
                i += 2 + len;
            }
        }
    }
    None
}

/// Encode a reply. `relay_info` (opt 82) is appended last and verbatim,
/// as RFC 3046 §2.2 asks; BOOTP's 300-byte minimum is padded.
pub fn encode(msg: &Message, relay_info: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(576);
    msg.encode(&mut Encoder::new(&mut buf))
        .map_err(|e| e.to_string())?;
    if let Some(info) = relay_info {
        // dhcproto ends the options with End (255); put 82 before it.
        if buf.last() == Some(&255) {
            buf.pop();
        }
        for chunk in info.chunks(255) {
            buf.push(82);
            buf.push(chunk.len() as u8);
            buf.extend_from_slice(chunk);
        }
        buf.push(255);
    }
    if buf.len() < MIN_REPLY_LEN {
        buf.resize(MIN_REPLY_LEN, 0);
    }
    Ok(buf)
}

/// Start a reply to `req`: op BOOTREPLY, same xid, flags, giaddr and chaddr;
/// everything else cleared (RFC 2131 §4.3.1 table 3).
pub fn reply_skeleton(req: &Request) -> Message {
    let mut m = req.msg.clone();
    m.set_opcode(Opcode::BootReply)
        .set_hops(0)
        .set_secs(0)
        .set_ciaddr(Ipv4Addr::UNSPECIFIED)
        .set_yiaddr(Ipv4Addr::UNSPECIFIED)
        .set_siaddr(Ipv4Addr::UNSPECIFIED)
        .set_flags(if req.flags_broadcast {
            Flags::default().set_broadcast()
        } else {
            Flags::default()
        });
    m.clear_sname();
    m.clear_fname();
    m.opts_mut().clear();
    m
}

/// Put `name` in the sname field only if it fits (64 bytes with its NUL);
/// dhcproto's setter panics past that.
pub fn set_sname_checked(m: &mut Message, name: &str) {
    if name.len() < 64 {
        m.set_sname(name.as_bytes());
    }
}

/// Put `name` in the file field only if it fits (128 bytes with its NUL).
pub fn set_fname_checked(m: &mut Message, name: &str) {
    if name.len() < 128 {
        m.set_fname(name.as_bytes());
    }
}

/// A decoded sname/file field without dhcproto's trailing NULs.
pub fn trim_nul(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field.get(..end).unwrap_or(field)
}

/// Test support for this crate's tests and the gopxe crate's (feature
/// `testing`, a dev-dependency only).
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing {
    /// Build a client datagram the way firmware lays it out: header, magic,
    /// options as raw TLVs, End, padding to 300 bytes.
    pub fn client_packet(
        xid: u32,
        mac: [u8; 6],
        flags: u16,
        ciaddr: [u8; 4],
        giaddr: [u8; 4],
        opts: &[(u8, &[u8])],
    ) -> Vec<u8> {
        let mut b = vec![1u8, 1, 6, 0];
        b.extend_from_slice(&xid.to_be_bytes());
        b.extend_from_slice(&[0, 4]); // secs
        b.extend_from_slice(&flags.to_be_bytes());
        b.extend_from_slice(&ciaddr);
        b.extend_from_slice(&[0; 4]); // yiaddr
        b.extend_from_slice(&[0; 4]); // siaddr
        b.extend_from_slice(&giaddr);
        b.extend_from_slice(&mac);
        b.extend_from_slice(&[0; 10]);
        b.extend_from_slice(&[0; 64 + 128]);
        b.extend_from_slice(&dhcproto::v4::MAGIC);
        for (code, val) in opts {
            b.push(*code);
            b.push(val.len() as u8);
            b.extend_from_slice(val);
        }
        b.push(255);
        b.resize(b.len().max(300), 0);
        b
    }
}

#[cfg(test)]
pub(crate) mod tests {
    pub(crate) use super::testing::client_packet;
    use super::*;

    #[test]
    fn decodes_ipxe_bios_discover() {
        let uuid: Vec<u8> = std::iter::once(0).chain(1..=16).collect();
        let p = client_packet(
            0x1234,
            [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            0x8000,
            [0; 4],
            [0; 4],
            &[
                (53, &[1]),
                (57, &[0x05, 0xc0]),
                (93, &[0, 0]),
                (94, &[1, 2, 1]),
                (60, b"PXEClient:Arch:00000:UNDI:002001"),
                (77, b"iPXE"),
                (97, &uuid),
                (61, &[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                (55, &[1, 3, 6, 43, 60, 66, 67, 175]),
            ],
        );
        let r = decode(&p).unwrap();
        assert_eq!(r.kind, Kind::Discover);
        assert_eq!(r.arch, Some(0));
        assert!(r.is_ipxe());
        assert!(r.is_netboot_client());
        assert!(r.flags_broadcast);
        assert_eq!(r.mac.to_string(), "52:54:00:12:34:56");
        let mut want = [0u8; 16];
        for (i, b) in want.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        assert_eq!(r.uuid, Some(want));
        assert_eq!(uuid_text(&want), "01020304-0506-0708-090a-0b0c0d0e0f10");
    }

    #[test]
    fn rejects_non_requests() {
        assert_eq!(decode(&[0; 10]), Err(PacketError::TooShort(10)));
        let mut p = client_packet(1, [1; 6], 0, [0; 4], [0; 4], &[(53, &[1])]);
        p[236] = 0;
        assert_eq!(decode(&p), Err(PacketError::BadMagic));
        let mut p = client_packet(1, [1; 6], 0, [0; 4], [0; 4], &[(53, &[1])]);
        p[0] = 2;
        assert_eq!(decode(&p), Err(PacketError::NotARequest));
        let mut p = client_packet(1, [1; 6], 0, [0; 4], [0; 4], &[(53, &[1])]);
        p[2] = 200; // hlen past chaddr: dhcproto's chaddr() would panic
        assert!(matches!(
            decode(&p),
            Err(PacketError::UnsupportedHardware { hlen: 200, .. })
        ));
        let p = client_packet(1, [1; 6], 0, [0; 4], [0; 4], &[]);
        assert_eq!(decode(&p), Err(PacketError::NoMessageType));
        let p = client_packet(1, [1; 6], 0, [0; 4], [0; 4], &[(53, &[2])]);
        assert_eq!(decode(&p), Err(PacketError::UnexpectedMessageType(2)));
    }

    #[test]
    fn raw_options_concatenate_and_stop_on_truncation() {
        let mut p = client_packet(1, [1; 6], 0, [0; 4], [0; 4], &[(82, &[1, 2]), (82, &[3])]);
        assert_eq!(raw_option(&p, 82), Some(vec![1, 2, 3]));
        p.truncate(245);
        assert_eq!(raw_option(&p, 82), Some(vec![1, 2]));
        assert_eq!(raw_option(&p, 99), None);
    }

    #[test]
    fn long_names_never_panic() {
        let p = client_packet(1, [1; 6], 0, [0; 4], [0; 4], &[(53, &[1])]);
        let r = decode(&p).unwrap();
        let mut m = reply_skeleton(&r);
        set_fname_checked(&mut m, &"x".repeat(500));
        set_sname_checked(&mut m, &"y".repeat(200));
        assert_eq!(m.fname(), None);
        assert_eq!(m.sname(), None);
        set_fname_checked(&mut m, "pxelinux.0");
        let bytes = encode(&m, Some(&[1, 4, 0, 0, 0, 1])).unwrap();
        let back = Message::decode(&mut Decoder::new(&bytes)).unwrap();
        assert_eq!(trim_nul(back.fname().unwrap()), b"pxelinux.0");
        assert_eq!(raw_option(&bytes, 82), Some(vec![1, 4, 0, 0, 0, 1]));
        assert!(bytes.len() >= 300);
    }
}
