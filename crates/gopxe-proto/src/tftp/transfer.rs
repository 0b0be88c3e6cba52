//! One read transfer as a sans-I/O state machine (the protocol layer).
//!
//! Follows RFC 1350 (octet and netascii, lock-step DATA/ACK), RFC 2347
//! (option negotiation: OACK, ACK 0, ERROR 8), RFC 2348 (blksize), RFC 2349
//! (timeout, tsize) and RFC 7440 (windowsize).
//!
//! No socket, clock or file inside. The driver:
//! - creates a [`Transfer`] from a checked request ([`Transfer::new`]);
//! - answers [`Transfer::poll_read`] with [`Transfer::supply`] (file bytes
//!   at an offset; a short answer means end of file);
//! - sends what [`Transfer::poll_transmit`] writes, to the client's TID;
//! - feeds packets from the client's TID to [`Transfer::handle`] and calls
//!   [`Transfer::handle_timeout`] at [`Transfer::poll_timeout`];
//! - stops when [`Transfer::outcome`] is `Some`.
//!
//! Rules kept here: retransmit only on timeout, with exponential backoff up
//! to a cap, never on a duplicate ACK (the sorcerer's apprentice bug); give
//! up after a bounded number of consecutive timeouts; an ACK for an earlier
//! block inside the window restarts the window after it (RFC 7440 §4); block
//! numbers roll over from 65535 to 0. Memory is bounded by the window:
//! `windowsize` block buffers plus one read buffer of the same size.
//!
//! Negotiation (RFC 2347): options the server does not accept are left out
//! of the OACK; if none is accepted, no OACK is sent and DATA 1 follows with
//! RFC 1350 defaults. The OACK is confirmed by ACK 0; an ERROR from the
//! client (code 8 or any other) ends the transfer; an OACK that is never
//! answered is retransmitted like DATA and the transfer ends on timeout.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::wire::{
    self, DEFAULT_BLKSIZE, ErrorCode, MAX_BLKSIZE, MIN_BLKSIZE, Mode, Options, Packet,
};

/// Limits and defaults of the transfer core.
#[derive(Debug, Clone)]
pub struct TransferConfig {
    /// Largest block size granted (clamped to 8..=65464). Set it from the
    /// path MTU (interface MTU - 20 IP - 8 UDP - 4 TFTP) where known.
    pub max_blksize: u16,
    /// Largest windowsize granted (RFC 7440), at least 1.
    pub max_windowsize: u16,
    /// Cap on `blksize * windowsize`, the per-transfer buffer size. It also
    /// keeps a window within what a receiver's default socket buffer holds
    /// (on Linux about 208 KiB of buffer, i.e. a dozen 8 KiB datagrams):
    /// a window that overflows it loses its tail every time, and each loss
    /// costs a timeout.
    pub max_window_bytes: usize,
    /// Retransmission timeout when the client asks for none.
    pub default_timeout: Duration,
    /// Backoff cap: a retransmission timeout never exceeds
    /// `max(base timeout, max_backoff)`.
    pub max_backoff: Duration,
    /// Consecutive timeouts tolerated; one more ends the transfer.
    pub max_retries: u32,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            max_blksize: MAX_BLKSIZE,
            max_windowsize: 64,
            max_window_bytes: 64 * 1024,
            default_timeout: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            max_retries: 5,
        }
    }
}

/// The values a transfer runs with after negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    /// Base retransmission timeout.
    pub timeout: Duration,
    /// The options acknowledged in the OACK; empty = no OACK.
    pub oack: Options,
}

/// RFC 2347-2349 and 7440 negotiation as a pure function. `tsize` is the
/// exact number of bytes the transfer will carry, if known.
pub fn negotiate(requested: &Options, tsize: Option<u64>, cfg: &TransferConfig) -> Negotiated {
    let max_blksize = cfg.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE);
    let mut oack = Options::default();
    let mut blksize = DEFAULT_BLKSIZE;
    if let Some(b) = requested.blksize
        && b >= u64::from(MIN_BLKSIZE)
    {
        // Values above 65464 are out of range, but answering with a smaller
        // value is always allowed (RFC 2348), so they are capped too.
        blksize = u16::try_from(b).unwrap_or(MAX_BLKSIZE).min(max_blksize);
        oack.blksize = Some(u64::from(blksize));
    }
    let mut timeout = cfg.default_timeout;
    if let Some(t) = requested.timeout
        && (1..=255).contains(&t)
    {
        timeout = Duration::from_secs(t);
        oack.timeout = Some(t);
    }
    if requested.tsize.is_some() {
        // A size of 0 is left out: curl refuses `tsize 0` in an OACK, and
        // not acknowledging an option is always allowed (RFC 2347).
        oack.tsize = tsize.filter(|&n| n > 0);
    }
    let mut windowsize = 1;
    if let Some(w) = requested.windowsize
        && w >= 1
    {
        let by_bytes = (cfg.max_window_bytes / usize::from(blksize)).max(1);
        let cap = u64::from(cfg.max_windowsize.max(1))
            .min(u64::try_from(by_bytes).unwrap_or(u64::MAX))
            .min(65535);
        windowsize = u16::try_from(w.min(cap)).unwrap_or(1);
        oack.windowsize = Some(u64::from(windowsize));
    }
    Negotiated {
        blksize,
        windowsize,
        timeout,
        oack,
    }
}

/// Bytes the driver must supply next: `len` bytes of the source at `offset`
/// (fewer only at end of file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    pub offset: u64,
    pub len: usize,
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The last block was acknowledged.
    Completed,
    /// The client sent an ERROR (e.g. 8 after an OACK, or it gave up).
    ClientError { code: u16, message: String },
    /// Too many consecutive timeouts.
    TimedOut,
    /// The driver aborted it (e.g. a read error); an ERROR was sent.
    Aborted(String),
    /// Set by the driver, never by the core: the request was answered with
    /// an ERROR before any transfer started (not found, refused name, busy).
    Refused { code: u16, message: String },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Completed => f.write_str("completed"),
            Outcome::ClientError { code, message } => {
                write!(f, "client sent error {code} ({message})")
            }
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::Aborted(why) => write!(f, "aborted: {why}"),
            Outcome::Refused { code, message } => {
                write!(f, "refused with error {code} ({message})")
            }
        }
    }
}

/// Counters for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Payload bytes acknowledged by the client.
    pub bytes: u64,
    /// Blocks acknowledged by the client.
    pub blocks: u64,
    /// Packets (DATA or OACK) sent again after a timeout or a rollback.
    pub retransmissions: u64,
    /// Duplicate ACKs seen (and ignored).
    pub duplicate_acks: u64,
    /// Timeouts that fired.
    pub timeouts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// OACK to (re)send or waiting for ACK 0.
    Oack {
        send: bool,
    },
    Data,
    /// An ERROR is queued; then done.
    Failing,
    Done,
}

/// One read transfer (server side).
#[derive(Debug)]
pub struct Transfer {
    mode: Mode,
    neg: Negotiated,
    cfg_backoff: Duration,
    max_retries: u32,
    phase: Phase,
    outcome: Option<Outcome>,
    stats: Stats,

    // Source input: `raw[raw_pos..]` not yet consumed; `raw_off` is the
    // source offset just past `raw`; `eof` once a read came back short.
    raw: Vec<u8>,
    raw_pos: usize,
    raw_off: u64,
    eof: bool,
    pending: Option<ReadRequest>,
    /// Second byte of a netascii expansion that did not fit the last block.
    carry: Option<u8>,

    // Window: `blocks[i]` is absolute block `acked + 1 + i`.
    blocks: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    building: Vec<u8>,
    /// Absolute number of the last block, once it has been built.
    last_block: Option<u64>,
    acked: u64,
    next_send: u64,
    highest_sent: u64,

    retries: u32,
    rto: Duration,
    deadline: Option<Instant>,
    error_out: Option<(ErrorCode, String)>,
}

impl Transfer {
    /// Start a read transfer. `tsize` is the exact size the client will
    /// receive (after netascii conversion), if known; it is only announced
    /// when the client asked for `tsize`. Fails for mode `mail`.
    pub fn new(
        mode: Mode,
        options: &Options,
        tsize: Option<u64>,
        cfg: &TransferConfig,
    ) -> Result<Transfer, (ErrorCode, &'static str)> {
        if mode == Mode::Mail {
            return Err((ErrorCode::IllegalOperation, "mail mode not supported"));
        }
        let neg = negotiate(options, tsize, cfg);
        let phase = if neg.oack.is_empty() {
            Phase::Data
        } else {
            Phase::Oack { send: true }
        };
        let mut t = Transfer {
            mode,
            neg,
            cfg_backoff: cfg.max_backoff.max(neg.timeout),
            max_retries: cfg.max_retries,
            phase,
            outcome: None,
            stats: Stats::default(),
            raw: Vec::new(),
            raw_pos: 0,
            raw_off: 0,
            eof: false,
            pending: None,
            carry: None,
            blocks: VecDeque::new(),
            spare: Vec::new(),
            building: Vec::new(),
            last_block: None,
            acked: 0,
            next_send: 1,
            highest_sent: 0,
            retries: 0,
            rto: neg.timeout,
            deadline: None,
            error_out: None,
        };
        t.produce();
        Ok(t)
    }

    /// The negotiated values.
    pub fn negotiated(&self) -> &Negotiated {
        &self.neg
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// `Some` once the transfer is over (after any final ERROR was sent).
    pub fn outcome(&self) -> Option<&Outcome> {
        match self.phase {
            Phase::Done => self.outcome.as_ref(),
            _ => None,
        }
    }

    /// Source bytes the core needs before it can send more.
    pub fn poll_read(&self) -> Option<ReadRequest> {
        match self.phase {
            Phase::Done | Phase::Failing => None,
            _ => self.pending,
        }
    }

    /// Answer to [`poll_read`](Self::poll_read): `data` is the source at
    /// `offset`; shorter than asked means end of file. Answers that do not
    /// match the outstanding request are ignored.
    pub fn supply(&mut self, offset: u64, data: &[u8]) {
        let Some(req) = self.pending else { return };
        if offset != req.offset || data.len() > req.len {
            return;
        }
        self.pending = None;
        self.raw.clear();
        self.raw.extend_from_slice(data);
        self.raw_pos = 0;
        self.raw_off = offset + data.len() as u64;
        if data.len() < req.len {
            self.eof = true;
        }
        self.produce();
    }

    /// Stop the transfer with an ERROR to the client (e.g. a read failed).
    pub fn abort(&mut self, code: ErrorCode, message: &str) {
        if matches!(self.phase, Phase::Done | Phase::Failing) {
            return;
        }
        self.error_out = Some((code, message.to_owned()));
        self.outcome = Some(Outcome::Aborted(message.to_owned()));
        self.phase = Phase::Failing;
        self.deadline = None;
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Done | Phase::Failing => None,
            _ => self.deadline,
        }
    }

    /// Write the next packet to send into `out` (cleared first). Returns
    /// false when there is nothing to send now.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        match self.phase {
            Phase::Done => false,
            Phase::Failing => {
                if let Some((code, msg)) = self.error_out.take() {
                    Packet::Error {
                        code,
                        message: msg.as_bytes(),
                    }
                    .encode(out);
                }
                self.phase = Phase::Done;
                !out.is_empty()
            }
            Phase::Oack { send: false } => false,
            Phase::Oack { send: true } => {
                Packet::Oack(self.neg.oack).encode(out);
                self.phase = Phase::Oack { send: false };
                self.deadline = Some(now + self.rto);
                true
            }
            Phase::Data => {
                let window_end = self.acked + u64::from(self.neg.windowsize);
                if self.next_send > window_end {
                    return false;
                }
                let idx = self.next_send - self.acked - 1;
                let Some(block) = usize::try_from(idx).ok().and_then(|i| self.blocks.get(i)) else {
                    return false;
                };
                // Block numbers are the absolute number mod 2^16 (rollover to 0).
                wire::encode_data_header(out, self.next_send as u16);
                out.extend_from_slice(block);
                if self.next_send <= self.highest_sent {
                    self.stats.retransmissions += 1;
                } else {
                    self.highest_sent = self.next_send;
                }
                self.next_send += 1;
                self.deadline = Some(now + self.rto);
                true
            }
        }
    }

    /// A packet from the client's TID.
    pub fn handle(&mut self, _now: Instant, packet: &Packet<'_>) {
        match (self.phase, packet) {
            (Phase::Done | Phase::Failing, _) => {}
            (_, Packet::Error { code, message }) => {
                self.outcome = Some(Outcome::ClientError {
                    code: code.to_u16(),
                    message: String::from_utf8_lossy(message).into_owned(),
                });
                self.phase = Phase::Done;
            }
            (Phase::Oack { .. }, Packet::Ack { block: 0 }) => {
                self.phase = Phase::Data;
                self.progress();
            }
            (Phase::Data, Packet::Ack { block }) => self.on_ack(*block),
            // Anything else (a stray DATA, a repeated request, an ACK that
            // does not confirm the OACK) is ignored.
            _ => {}
        }
    }

    /// Call at (or after) [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline || matches!(self.phase, Phase::Done | Phase::Failing) {
            return;
        }
        self.stats.timeouts += 1;
        self.retries += 1;
        self.deadline = None;
        if self.retries > self.max_retries {
            self.outcome = Some(Outcome::TimedOut);
            self.phase = Phase::Done;
            return;
        }
        let factor = 1u32 << self.retries.min(16);
        self.rto = self
            .neg
            .timeout
            .saturating_mul(factor)
            .min(self.cfg_backoff);
        match self.phase {
            Phase::Oack { .. } => {
                self.stats.retransmissions += 1;
                self.phase = Phase::Oack { send: true };
            }
            Phase::Data => self.next_send = self.acked + 1,
            Phase::Done | Phase::Failing => {}
        }
    }

    fn progress(&mut self) {
        self.retries = 0;
        self.rto = self.neg.timeout;
        self.deadline = None;
    }

    fn on_ack(&mut self, block: u16) {
        let diff = u64::from(block.wrapping_sub(self.acked as u16));
        let in_flight = self.highest_sent - self.acked;
        if diff == 0 {
            // Duplicate: never answered (sorcerer's apprentice); the timer
            // retransmits if the client really lost something.
            self.stats.duplicate_acks += 1;
            return;
        }
        if diff > in_flight {
            // Stale (from before the window) or never sent: ignore.
            return;
        }
        for _ in 0..diff {
            if let Some(b) = self.blocks.pop_front() {
                self.stats.bytes += b.len() as u64;
                self.stats.blocks += 1;
                self.spare.push(b);
            }
        }
        self.acked += diff;
        self.progress();
        if Some(self.acked) == self.last_block {
            self.outcome = Some(Outcome::Completed);
            self.phase = Phase::Done;
            return;
        }
        // An ACK inside the window: the client missed what follows it, so
        // the window restarts right after it (RFC 7440).
        self.next_send = self.acked + 1;
        self.produce();
    }

    /// Build blocks until the window is full, the last block is built, or
    /// more input is needed (then `pending` is set).
    fn produce(&mut self) {
        let blksize = usize::from(self.neg.blksize);
        let window = usize::from(self.neg.windowsize);
        while self.last_block.is_none() && self.blocks.len() < window {
            match self.mode {
                Mode::NetAscii => self.convert_netascii(blksize),
                _ => {
                    let avail = self.raw.get(self.raw_pos..).unwrap_or_default();
                    let take = avail.len().min(blksize - self.building.len());
                    self.building
                        .extend_from_slice(avail.get(..take).unwrap_or_default());
                    self.raw_pos += take;
                }
            }
            let input_done = self.eof && self.raw_pos >= self.raw.len() && self.carry.is_none();
            if self.building.len() < blksize && !input_done {
                if self.pending.is_none() {
                    let slots = window - self.blocks.len();
                    self.pending = Some(ReadRequest {
                        offset: self.raw_off,
                        len: (slots * blksize - self.building.len()).max(1),
                    });
                }
                return;
            }
            let short = self.building.len() < blksize;
            let next = self.spare.pop().unwrap_or_default();
            let block = std::mem::replace(&mut self.building, next);
            self.building.clear();
            self.blocks.push_back(block);
            if short {
                self.last_block = Some(self.acked + self.blocks.len() as u64);
                self.raw = Vec::new();
                self.spare.clear();
            }
        }
    }

    /// RFC 1350 netascii (Telnet NVT): LF -> CR LF, CR -> CR NUL, streamed.
    fn convert_netascii(&mut self, blksize: usize) {
        while self.building.len() < blksize {
            if let Some(c) = self.carry.take() {
                self.building.push(c);
                continue;
            }
            let Some(&b) = self.raw.get(self.raw_pos) else {
                return;
            };
            self.raw_pos += 1;
            match b {
                b'\n' => {
                    self.building.push(b'\r');
                    self.carry = Some(b'\n');
                }
                b'\r' => {
                    self.building.push(b'\r');
                    self.carry = Some(0);
                }
                b => self.building.push(b),
            }
        }
    }
}

/// Size of `data` after netascii conversion (for an exact `tsize`).
pub fn netascii_len(data: &[u8]) -> u64 {
    data.len() as u64 + data.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64
}

#[cfg(test)]
mod tests;
