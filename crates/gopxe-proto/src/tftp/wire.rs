//! TFTP wire format: the packet layer (RFC 1350 §5, RFC 2347 OACK).
//!
//! [`Packet::decode`] checks untrusted bytes into a [`Packet`] or a typed
//! [`DecodeError`]; it never panics and never indexes a slice unchecked.
//! [`Packet::encode`] appends to a `Vec` and never panics. Option names are
//! compared case-insensitively (RFC 2347); unknown options are ignored, and a
//! known option whose value is not a decimal number is treated as absent
//! (the server is free not to acknowledge an option). Options after the first
//! occurrence of the same name are ignored.

use std::fmt;

/// Largest block size RFC 2348 allows.
pub const MAX_BLKSIZE: u16 = 65464;
/// Smallest block size RFC 2348 allows.
pub const MIN_BLKSIZE: u16 = 8;
/// RFC 1350 block size.
pub const DEFAULT_BLKSIZE: u16 = 512;

/// Transfer mode of a request (RFC 1350 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    NetAscii,
    Octet,
    /// Obsolete; decoded so the server can refuse it with a clear error.
    Mail,
}

impl Mode {
    fn parse(s: &[u8]) -> Option<Mode> {
        if s.eq_ignore_ascii_case(b"octet") {
            Some(Mode::Octet)
        } else if s.eq_ignore_ascii_case(b"netascii") {
            Some(Mode::NetAscii)
        } else if s.eq_ignore_ascii_case(b"mail") {
            Some(Mode::Mail)
        } else {
            None
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Mode::NetAscii => "netascii",
            Mode::Octet => "octet",
            Mode::Mail => "mail",
        }
    }
}

/// The options this server understands, as numbers. `None` = not present
/// (or present with a value that is not a decimal number). Values too large
/// for `u64` saturate to `u64::MAX`, which every range check refuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// RFC 2348.
    pub blksize: Option<u64>,
    /// RFC 2349, seconds.
    pub timeout: Option<u64>,
    /// RFC 2349.
    pub tsize: Option<u64>,
    /// RFC 7440.
    pub windowsize: Option<u64>,
}

impl Options {
    pub fn is_empty(&self) -> bool {
        *self == Options::default()
    }

    fn set(&mut self, name: &[u8], value: &[u8]) {
        let slot = if name.eq_ignore_ascii_case(b"blksize") {
            &mut self.blksize
        } else if name.eq_ignore_ascii_case(b"timeout") {
            &mut self.timeout
        } else if name.eq_ignore_ascii_case(b"tsize") {
            &mut self.tsize
        } else if name.eq_ignore_ascii_case(b"windowsize") {
            &mut self.windowsize
        } else {
            return;
        };
        if slot.is_none() {
            *slot = parse_decimal(value);
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let pairs = [
            ("blksize", self.blksize),
            ("timeout", self.timeout),
            ("tsize", self.tsize),
            ("windowsize", self.windowsize),
        ];
        for (name, value) in pairs {
            if let Some(v) = value {
                out.extend_from_slice(name.as_bytes());
                out.push(0);
                out.extend_from_slice(v.to_string().as_bytes());
                out.push(0);
            }
        }
    }
}

/// Decimal digits only; saturates on overflow; `None` if empty or not digits.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// Raw file name bytes, without the terminating NUL. Not yet checked as a
    /// path: see [`super::path::sanitize`].
    pub filename: &'a [u8],
    pub mode: Mode,
    pub options: Options,
}

/// TFTP error codes (RFC 1350, RFC 2347 code 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotDefined,
    FileNotFound,
    AccessViolation,
    DiskFull,
    IllegalOperation,
    UnknownTid,
    FileExists,
    NoSuchUser,
    OptionRefused,
    Other(u16),
}

impl ErrorCode {
    pub fn from_u16(v: u16) -> ErrorCode {
        match v {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTid,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionRefused,
            n => ErrorCode::Other(n),
        }
    }

    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTid => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionRefused => 8,
            ErrorCode::Other(n) => n,
        }
    }
}

/// One decoded TFTP packet, borrowing from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Rrq(Request<'a>),
    Wrq(Request<'a>),
    Data { block: u16, data: &'a [u8] },
    Ack { block: u16 },
    Error { code: ErrorCode, message: &'a [u8] },
    Oack(Options),
}

/// Why a datagram is not a valid TFTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the opcode and fixed fields need.
    Truncated,
    /// Opcode outside 1..=6.
    UnknownOpcode(u16),
    /// A request string is missing its terminating NUL.
    Unterminated,
    /// A request's mode is not netascii, octet or mail.
    BadMode,
    /// An option name without a value, or an empty file name.
    Malformed,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated packet"),
            DecodeError::UnknownOpcode(op) => write!(f, "unknown opcode {op}"),
            DecodeError::Unterminated => f.write_str("unterminated string"),
            DecodeError::BadMode => f.write_str("unknown transfer mode"),
            DecodeError::Malformed => f.write_str("malformed request"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn split_u16(buf: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    match buf {
        [a, b, rest @ ..] => Ok((u16::from_be_bytes([*a, *b]), rest)),
        _ => Err(DecodeError::Truncated),
    }
}

/// Decode the NUL-terminated strings of a request body: file name, mode,
/// then option name/value pairs.
fn decode_request(body: &[u8]) -> Result<Request<'_>, DecodeError> {
    // The body must end in NUL; everything is NUL-terminated strings.
    let Some((&0, strings)) = body.split_last() else {
        return Err(DecodeError::Unterminated);
    };
    let mut parts = strings.split(|&b| b == 0);
    let filename = parts.next().ok_or(DecodeError::Unterminated)?;
    if filename.is_empty() {
        return Err(DecodeError::Malformed);
    }
    let mode = parts.next().ok_or(DecodeError::Unterminated)?;
    let mode = Mode::parse(mode).ok_or(DecodeError::BadMode)?;
    let options = decode_options(parts)?;
    Ok(Request {
        filename,
        mode,
        options,
    })
}

fn decode_options<'a>(mut parts: impl Iterator<Item = &'a [u8]>) -> Result<Options, DecodeError> {
    let mut options = Options::default();
    while let Some(name) = parts.next() {
        // Some firmware pads requests with NULs: an empty name ends the list.
        if name.is_empty() {
            break;
        }
        let value = parts.next().ok_or(DecodeError::Malformed)?;
        options.set(name, value);
    }
    Ok(options)
}

impl<'a> Packet<'a> {
    /// Check one datagram. Never panics.
    pub fn decode(buf: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        let (opcode, body) = split_u16(buf)?;
        match opcode {
            1 => decode_request(body).map(Packet::Rrq),
            2 => decode_request(body).map(Packet::Wrq),
            3 => {
                let (block, data) = split_u16(body)?;
                Ok(Packet::Data { block, data })
            }
            4 => {
                // Trailing bytes after the block number are tolerated.
                let (block, _) = split_u16(body)?;
                Ok(Packet::Ack { block })
            }
            5 => {
                let (code, rest) = split_u16(body)?;
                // The message should end in NUL; take up to the first NUL and
                // tolerate a missing one.
                let message = rest.split(|&b| b == 0).next().unwrap_or_default();
                Ok(Packet::Error {
                    code: ErrorCode::from_u16(code),
                    message,
                })
            }
            6 => {
                if body.is_empty() {
                    return Ok(Packet::Oack(Options::default()));
                }
                let Some((&0, strings)) = body.split_last() else {
                    return Err(DecodeError::Unterminated);
                };
                decode_options(strings.split(|&b| b == 0)).map(Packet::Oack)
            }
            op => Err(DecodeError::UnknownOpcode(op)),
        }
    }

    /// Append the packet's bytes to `out`. Never panics. Strings containing a
    /// NUL are cut at it (they could not be represented otherwise).
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn cstr(out: &mut Vec<u8>, s: &[u8]) {
            out.extend(s.iter().take_while(|&&b| b != 0));
            out.push(0);
        }
        match self {
            Packet::Rrq(r) | Packet::Wrq(r) => {
                let op: u16 = if matches!(self, Packet::Rrq(_)) { 1 } else { 2 };
                out.extend_from_slice(&op.to_be_bytes());
                cstr(out, r.filename);
                cstr(out, r.mode.as_str().as_bytes());
                r.options.encode(out);
            }
            Packet::Data { block, data } => {
                encode_data_header(out, *block);
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&5u16.to_be_bytes());
                out.extend_from_slice(&code.to_u16().to_be_bytes());
                cstr(out, message);
            }
            Packet::Oack(options) => {
                out.extend_from_slice(&6u16.to_be_bytes());
                options.encode(out);
            }
        }
    }
}

/// The 4-byte DATA header; the payload follows.
pub fn encode_data_header(out: &mut Vec<u8>, block: u16) {
    out.extend_from_slice(&3u16.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
}

/// An ERROR packet as bytes (for answers the driver sends outside a transfer,
/// e.g. error 5 to a packet from an unknown transfer ID).
pub fn error_packet(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    Packet::Error {
        code,
        message: message.as_bytes(),
    }
    .encode(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrq_with_options_case_insensitive() {
        let pkt = b"\x00\x01pxelinux.0\x00OcTeT\x00TSIZE\x000\x00BlkSize\x001408\x00foo\x00bar\x00";
        let Ok(Packet::Rrq(r)) = Packet::decode(pkt) else {
            panic!("not an RRQ");
        };
        assert_eq!(r.filename, b"pxelinux.0");
        assert_eq!(r.mode, Mode::Octet);
        assert_eq!(r.options.tsize, Some(0));
        assert_eq!(r.options.blksize, Some(1408));
        assert_eq!(r.options.timeout, None);
        assert_eq!(r.options.windowsize, None);
    }

    #[test]
    fn ovmf_rrq() {
        let pkt =
            b"\x00\x01grubx64.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00";
        let Ok(Packet::Rrq(r)) = Packet::decode(pkt) else {
            panic!("not an RRQ");
        };
        assert_eq!(r.options.windowsize, Some(4));
        assert_eq!(r.options.blksize, Some(1468));
    }

    #[test]
    fn wrq_netascii_and_padding() {
        let pkt = b"\x00\x02f\x00NETASCII\x00\x00\x00\x00";
        let Ok(Packet::Wrq(r)) = Packet::decode(pkt) else {
            panic!("not a WRQ");
        };
        assert_eq!(r.mode, Mode::NetAscii);
        assert!(r.options.is_empty());
    }

    #[test]
    fn bad_values_and_duplicates() {
        let pkt = b"\x00\x01f\x00octet\x00blksize\x00x12\x00timeout\x00\x00windowsize\x0099999999999999999999999\x00windowsize\x004\x00";
        let Ok(Packet::Rrq(r)) = Packet::decode(pkt) else {
            panic!("not an RRQ");
        };
        assert_eq!(r.options.blksize, None);
        assert_eq!(r.options.timeout, None);
        assert_eq!(r.options.windowsize, Some(u64::MAX));
    }

    #[test]
    fn malformed_requests() {
        let cases: &[(&[u8], DecodeError)] = &[
            (b"", DecodeError::Truncated),
            (b"\x00", DecodeError::Truncated),
            (b"\x00\x01", DecodeError::Unterminated),
            (b"\x00\x01f", DecodeError::Unterminated),
            (b"\x00\x01f\x00", DecodeError::Unterminated),
            (b"\x00\x01f\x00octet", DecodeError::Unterminated),
            (b"\x00\x01\x00octet\x00", DecodeError::Malformed),
            (b"\x00\x01f\x00binary\x00", DecodeError::BadMode),
            (b"\x00\x01f\x00octet\x00blksize\x00", DecodeError::Malformed),
            (b"\x00\x07", DecodeError::UnknownOpcode(7)),
            (b"\x00\x00", DecodeError::UnknownOpcode(0)),
            (b"\x00\x03\x00", DecodeError::Truncated),
            (b"\x00\x04\x01", DecodeError::Truncated),
            (b"\x00\x05\x00", DecodeError::Truncated),
            (b"\x00\x06blksize", DecodeError::Unterminated),
        ];
        for (bytes, want) in cases {
            assert_eq!(Packet::decode(bytes), Err(*want), "{bytes:?}");
        }
    }

    #[test]
    fn data_ack_error_oack() {
        assert_eq!(
            Packet::decode(b"\x00\x03\xff\xfeabc"),
            Ok(Packet::Data {
                block: 0xfffe,
                data: b"abc"
            })
        );
        assert_eq!(
            Packet::decode(b"\x00\x04\x01\x00"),
            Ok(Packet::Ack { block: 256 })
        );
        assert_eq!(
            Packet::decode(b"\x00\x05\x00\x08nope\x00"),
            Ok(Packet::Error {
                code: ErrorCode::OptionRefused,
                message: b"nope"
            })
        );
        assert_eq!(
            Packet::decode(b"\x00\x05\x00\x63no nul"),
            Ok(Packet::Error {
                code: ErrorCode::Other(99),
                message: b"no nul"
            })
        );
        let Ok(Packet::Oack(o)) = Packet::decode(b"\x00\x06blksize\x001432\x00tsize\x00123\x00")
        else {
            panic!("not an OACK");
        };
        assert_eq!(o.blksize, Some(1432));
        assert_eq!(o.tsize, Some(123));
    }

    #[test]
    fn encode_round_trip() {
        let options = Options {
            blksize: Some(1468),
            timeout: Some(3),
            tsize: Some(42),
            windowsize: Some(8),
        };
        let packets = [
            Packet::Rrq(Request {
                filename: b"a/b",
                mode: Mode::Octet,
                options,
            }),
            Packet::Wrq(Request {
                filename: b"x",
                mode: Mode::NetAscii,
                options: Options::default(),
            }),
            Packet::Data {
                block: 7,
                data: b"hello",
            },
            Packet::Ack { block: 65535 },
            Packet::Error {
                code: ErrorCode::UnknownTid,
                message: b"who?",
            },
            Packet::Oack(options),
        ];
        for p in packets {
            let mut out = Vec::new();
            p.encode(&mut out);
            assert_eq!(Packet::decode(&out), Ok(p.clone()));
        }
        let mut out = Vec::new();
        Packet::Oack(options).encode(&mut out);
        assert_eq!(
            out,
            b"\x00\x06blksize\x001468\x00timeout\x003\x00tsize\x0042\x00windowsize\x008\x00"
        );
        assert_eq!(
            error_packet(ErrorCode::UnknownTid, "x\0y"),
            b"\x00\x05\x00\x05x\x00"
        );
    }
}
