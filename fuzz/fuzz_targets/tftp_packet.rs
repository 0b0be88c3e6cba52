//! TFTP decoder and transfer core under arbitrary bytes.
//!
//! Input: the first byte picks the request options and file size; the rest
//! is a sequence of datagrams, each `len` (one byte) + bytes, where a `len`
//! of 255 means "the retransmission timer fires" instead. Every datagram is
//! decoded; a decoded packet must survive an encode/decode round trip, a
//! request name goes through `sanitize`, and everything is fed to a running
//! read transfer whose reads are answered from a synthetic file.
#![no_main]

use std::time::{Duration, Instant};

use gopxe::tftp::sanitize;
use gopxe::tftp::transfer::{Transfer, TransferConfig};
use gopxe::tftp::wire::{Mode, Packet};
use libfuzzer_sys::fuzz_target;

const REQUESTS: [&[u8]; 4] = [
    b"\x00\x01f\x00octet\x00",
    b"\x00\x01f\x00octet\x00blksize\x008\x00windowsize\x004\x00tsize\x000\x00",
    b"\x00\x01f\x00netascii\x00blksize\x009\x00windowsize\x003\x00timeout\x001\x00",
    b"\x00\x01f\x00octet\x00blksize\x0064\x00windowsize\x0064\x00",
];

fn file_byte(i: u64) -> u8 {
    // Include CR and LF so netascii conversion is exercised.
    match i % 13 {
        3 => b'\n',
        7 => b'\r',
        _ => (i * 31) as u8,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&head, mut rest)) = input.split_first() else {
        return;
    };
    let request = REQUESTS[usize::from(head & 3)];
    let file_len = u64::from(head >> 2) * 37;
    let Ok(Packet::Rrq(rrq)) = Packet::decode(request) else {
        return;
    };
    let cfg = TransferConfig::default();
    let tsize = (rrq.mode == Mode::Octet).then_some(file_len);
    let Ok(mut t) = Transfer::new(rrq.mode, &rrq.options, tsize, &cfg) else {
        return;
    };
    let mut now = Instant::now();
    let mut out = Vec::new();
    let mut steps = 0;
    loop {
        // Answer reads from the synthetic file.
        while let Some(r) = t.poll_read() {
            let end = (r.offset + r.len as u64).min(file_len);
            let data: Vec<u8> = (r.offset.min(end)..end).map(file_byte).collect();
            t.supply(r.offset, &data);
            steps += 1;
            assert!(steps < 100_000);
        }
        while t.poll_transmit(now, &mut out) {
            assert!(Packet::decode(&out).is_ok(), "core sent an undecodable packet");
            steps += 1;
            assert!(steps < 100_000);
        }
        if t.outcome().is_some() {
            return;
        }
        let Some((&len, tail)) = rest.split_first() else {
            return;
        };
        if len == 255 {
            rest = tail;
            if let Some(d) = t.poll_timeout() {
                now = d.max(now);
                t.handle_timeout(now);
            }
            continue;
        }
        let n = usize::from(len).min(tail.len());
        let (datagram, tail) = tail.split_at(n);
        rest = tail;
        now += Duration::from_millis(1);
        if let Ok(p) = Packet::decode(datagram) {
            let mut bytes = Vec::new();
            p.encode(&mut bytes);
            assert_eq!(Packet::decode(&bytes).as_ref(), Ok(&p), "round trip");
            if let Packet::Rrq(r) | Packet::Wrq(r) = &p
                && let Ok(path) = sanitize(r.filename)
            {
                for c in path.components() {
                    assert!(!c.is_empty() && c != "." && c != "..");
                    assert!(!c.contains(['/', '\\', '\0']));
                }
            }
            t.handle(now, &p);
        }
    }
});
