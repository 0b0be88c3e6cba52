//! Core tests: byte-literal packets, time moved by hand.

use super::*;

const S: Duration = Duration::from_secs(1);

fn req(bytes: &[u8]) -> (Mode, Options) {
    match Packet::decode(bytes) {
        Ok(Packet::Rrq(r)) => (r.mode, r.options),
        other => panic!("not an RRQ: {other:?}"),
    }
}

fn start(rrq: &[u8], file: &[u8], cfg: &TransferConfig) -> Transfer {
    let (mode, options) = req(rrq);
    let tsize = match mode {
        Mode::NetAscii => Some(netascii_len(file)),
        _ => Some(file.len() as u64),
    };
    let mut t = Transfer::new(mode, &options, tsize, cfg).expect("transfer");
    feed(&mut t, file);
    t
}

/// Answer every read request from `file`.
fn feed(t: &mut Transfer, file: &[u8]) {
    let mut guard = 0;
    while let Some(r) = t.poll_read() {
        let from = usize::try_from(r.offset).unwrap().min(file.len());
        let to = (from + r.len).min(file.len());
        t.supply(r.offset, &file[from..to]);
        guard += 1;
        assert!(guard < 1000, "read loop");
    }
}

fn sends(t: &mut Transfer, now: Instant, file: &[u8]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let mut out = Vec::new();
    feed(t, file);
    while t.poll_transmit(now, &mut out) {
        v.push(out.clone());
        feed(t, file);
        assert!(v.len() <= 70, "send loop");
    }
    v
}

fn ack(t: &mut Transfer, now: Instant, block: u16) {
    let bytes = [0, 4, (block >> 8) as u8, block as u8];
    t.handle(now, &Packet::decode(&bytes).unwrap());
}

fn data(block: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 3, (block >> 8) as u8, block as u8];
    v.extend_from_slice(payload);
    v
}

fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

const PLAIN: &[u8] = b"\x00\x01f\x00octet\x00";

#[test]
fn rfc1350_lock_step() {
    let f = file(1000);
    let now = Instant::now();
    let mut t = start(PLAIN, &f, &TransferConfig::default());
    assert_eq!(sends(&mut t, now, &f), [data(1, &f[..512])]);
    assert_eq!(t.poll_timeout(), Some(now + S));
    ack(&mut t, now, 1);
    assert_eq!(sends(&mut t, now, &f), [data(2, &f[512..])]);
    ack(&mut t, now, 2);
    assert_eq!(t.outcome(), Some(&Outcome::Completed));
    assert_eq!(t.stats().bytes, 1000);
    assert_eq!(t.stats().blocks, 2);
    assert_eq!(t.stats().retransmissions, 0);
    assert!(sends(&mut t, now, &f).is_empty());
}

#[test]
fn exact_multiple_ends_with_empty_block() {
    let f = file(1024);
    let now = Instant::now();
    let mut t = start(PLAIN, &f, &TransferConfig::default());
    assert_eq!(sends(&mut t, now, &f), [data(1, &f[..512])]);
    ack(&mut t, now, 1);
    assert_eq!(sends(&mut t, now, &f), [data(2, &f[512..])]);
    ack(&mut t, now, 2);
    assert_eq!(sends(&mut t, now, &f), [data(3, b"")]);
    ack(&mut t, now, 3);
    assert_eq!(t.outcome(), Some(&Outcome::Completed));
}

#[test]
fn empty_file() {
    let now = Instant::now();
    let mut t = start(PLAIN, b"", &TransferConfig::default());
    assert_eq!(sends(&mut t, now, b""), [data(1, b"")]);
    ack(&mut t, now, 1);
    assert_eq!(t.outcome(), Some(&Outcome::Completed));
}

#[test]
fn negotiation_table() {
    let cfg = TransferConfig::default();
    let small = TransferConfig {
        max_blksize: 1400,
        max_windowsize: 16,
        ..TransferConfig::default()
    };
    let o = |b, t, s, w| Options {
        blksize: b,
        timeout: t,
        tsize: s,
        windowsize: w,
    };
    // (requested, config, tsize) -> (blksize, windowsize, timeout s, oack)
    let cases = [
        (
            o(None, None, None, None),
            &cfg,
            Some(5),
            (512, 1, 1, o(None, None, None, None)),
        ),
        (
            o(Some(1468), None, None, None),
            &cfg,
            None,
            (1468, 1, 1, o(Some(1468), None, None, None)),
        ),
        (
            o(Some(8), None, None, None),
            &cfg,
            None,
            (8, 1, 1, o(Some(8), None, None, None)),
        ),
        (
            o(Some(7), None, None, None),
            &cfg,
            None,
            (512, 1, 1, o(None, None, None, None)),
        ),
        (
            o(Some(0), None, None, None),
            &cfg,
            None,
            (512, 1, 1, o(None, None, None, None)),
        ),
        (
            o(Some(65464), None, None, None),
            &cfg,
            None,
            (65464, 1, 1, o(Some(65464), None, None, None)),
        ),
        (
            o(Some(70000), None, None, None),
            &cfg,
            None,
            (65464, 1, 1, o(Some(65464), None, None, None)),
        ),
        (
            o(Some(u64::MAX), None, None, None),
            &cfg,
            None,
            (65464, 1, 1, o(Some(65464), None, None, None)),
        ),
        (
            o(Some(1468), None, None, None),
            &small,
            None,
            (1400, 1, 1, o(Some(1400), None, None, None)),
        ),
        (
            o(None, Some(0), None, None),
            &cfg,
            None,
            (512, 1, 1, o(None, None, None, None)),
        ),
        (
            o(None, Some(1), None, None),
            &cfg,
            None,
            (512, 1, 1, o(None, Some(1), None, None)),
        ),
        (
            o(None, Some(255), None, None),
            &cfg,
            None,
            (512, 1, 255, o(None, Some(255), None, None)),
        ),
        (
            o(None, Some(256), None, None),
            &cfg,
            None,
            (512, 1, 1, o(None, None, None, None)),
        ),
        (
            o(None, None, Some(0), None),
            &cfg,
            Some(12345),
            (512, 1, 1, o(None, None, Some(12345), None)),
        ),
        (
            o(None, None, Some(0), None),
            &cfg,
            None,
            (512, 1, 1, o(None, None, None, None)),
        ),
        (
            o(None, None, None, Some(0)),
            &cfg,
            None,
            (512, 1, 1, o(None, None, None, None)),
        ),
        (
            o(None, None, None, Some(4)),
            &cfg,
            None,
            (512, 4, 1, o(None, None, None, Some(4))),
        ),
        (
            o(None, None, None, Some(1000)),
            &cfg,
            None,
            (512, 64, 1, o(None, None, None, Some(64))),
        ),
        (
            o(None, None, None, Some(1000)),
            &small,
            None,
            (512, 16, 1, o(None, None, None, Some(16))),
        ),
        // The 64 KiB window cap: windowsize 8 at blksize 8192, 1 at 65464.
        (
            o(Some(8192), None, None, Some(32)),
            &cfg,
            None,
            (8192, 8, 1, o(Some(8192), None, None, Some(8))),
        ),
        (
            o(Some(65464), None, None, Some(64)),
            &cfg,
            None,
            (65464, 1, 1, o(Some(65464), None, None, Some(1))),
        ),
    ];
    for (i, (requested, cfg, tsize, (b, w, t, oack))) in cases.into_iter().enumerate() {
        let n = negotiate(&requested, tsize, cfg);
        assert_eq!(
            (n.blksize, n.windowsize, n.timeout, n.oack),
            (b, w, Duration::from_secs(t), oack),
            "case {i}"
        );
    }
}

#[test]
fn oack_then_ack0_then_data() {
    let f = file(3000);
    let now = Instant::now();
    let mut t = start(
        b"\x00\x01f\x00octet\x00tsize\x000\x00blksize\x001468\x00",
        &f,
        &TransferConfig::default(),
    );
    assert_eq!(
        sends(&mut t, now, &f),
        [b"\x00\x06blksize\x001468\x00tsize\x003000\x00".to_vec()]
    );
    // An ACK other than 0 does not confirm the OACK.
    ack(&mut t, now, 1);
    assert!(sends(&mut t, now, &f).is_empty());
    ack(&mut t, now, 0);
    assert_eq!(sends(&mut t, now, &f), [data(1, &f[..1468])]);
    ack(&mut t, now, 1);
    ack(&mut t, now, 1); // duplicate
    assert_eq!(sends(&mut t, now, &f), [data(2, &f[1468..2936])]);
    ack(&mut t, now, 2);
    assert_eq!(sends(&mut t, now, &f), [data(3, &f[2936..])]);
    ack(&mut t, now, 3);
    assert_eq!(t.outcome(), Some(&Outcome::Completed));
}

#[test]
fn oack_refused_with_error_8() {
    let f = file(10);
    let now = Instant::now();
    let mut t = start(
        b"\x00\x01f\x00octet\x00tsize\x000\x00",
        &f,
        &TransferConfig::default(),
    );
    assert_eq!(
        sends(&mut t, now, &f),
        [b"\x00\x06tsize\x0010\x00".to_vec()]
    );
    t.handle(
        now,
        &Packet::decode(b"\x00\x05\x00\x08tsize probe\x00").unwrap(),
    );
    assert_eq!(
        t.outcome(),
        Some(&Outcome::ClientError {
            code: 8,
            message: "tsize probe".into()
        })
    );
    assert!(sends(&mut t, now, &f).is_empty());
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn oack_ignored_retransmits_with_backoff_then_gives_up() {
    let f = file(10);
    let t0 = Instant::now();
    let mut t = start(
        b"\x00\x01f\x00octet\x00blksize\x001024\x00",
        &f,
        &TransferConfig::default(),
    );
    let oack = b"\x00\x06blksize\x001024\x00".to_vec();
    assert_eq!(sends(&mut t, t0, &f), std::slice::from_ref(&oack));
    let mut now = t0;
    // Backoff: 1, 2, 4, 8, 8 s (cap), then the 6th timeout ends it.
    for (i, wait) in [1u64, 2, 4, 8, 8].into_iter().enumerate() {
        let deadline = t.poll_timeout().unwrap();
        assert_eq!(deadline, now + Duration::from_secs(wait), "retry {i}");
        // Early calls do nothing.
        t.handle_timeout(deadline - Duration::from_millis(1));
        assert!(sends(&mut t, deadline, &f).is_empty());
        now = deadline;
        t.handle_timeout(now);
        assert_eq!(
            sends(&mut t, now, &f),
            std::slice::from_ref(&oack),
            "retry {i}"
        );
    }
    let deadline = t.poll_timeout().unwrap();
    assert_eq!(deadline, now + 8 * S);
    t.handle_timeout(deadline);
    assert_eq!(t.outcome(), Some(&Outcome::TimedOut));
    assert_eq!(t.stats().retransmissions, 5);
    assert_eq!(t.stats().timeouts, 6);
}

#[test]
fn no_accepted_option_means_no_oack() {
    let f = file(600);
    let now = Instant::now();
    let mut t = start(
        b"\x00\x01f\x00octet\x00blksize\x004\x00utimeout\x001000\x00",
        &f,
        &TransferConfig::default(),
    );
    assert_eq!(sends(&mut t, now, &f), [data(1, &f[..512])]);
}

#[test]
fn data_retransmitted_on_timeout_only() {
    let f = file(1500);
    let t0 = Instant::now();
    let mut t = start(PLAIN, &f, &TransferConfig::default());
    assert_eq!(sends(&mut t, t0, &f), [data(1, &f[..512])]);
    // Nothing before the deadline, however often we ask.
    assert!(sends(&mut t, t0 + S / 2, &f).is_empty());
    t.handle_timeout(t0 + S);
    assert_eq!(sends(&mut t, t0 + S, &f), [data(1, &f[..512])]);
    assert_eq!(t.poll_timeout(), Some(t0 + 3 * S)); // doubled
    ack(&mut t, t0 + 2 * S, 1);
    assert_eq!(sends(&mut t, t0 + 2 * S, &f), [data(2, &f[512..1024])]);
    assert_eq!(t.poll_timeout(), Some(t0 + 3 * S)); // back to base
    // Duplicate ACK 1 (e.g. the delayed first ACK): no retransmission.
    ack(&mut t, t0 + 2 * S, 1);
    assert!(sends(&mut t, t0 + 2 * S, &f).is_empty());
    assert_eq!(t.stats().duplicate_acks, 1);
    assert_eq!(t.stats().retransmissions, 1);
    // A stale ACK 0 is ignored too.
    ack(&mut t, t0 + 2 * S, 0);
    assert!(sends(&mut t, t0 + 2 * S, &f).is_empty());
    ack(&mut t, t0 + 2 * S, 2);
    assert_eq!(sends(&mut t, t0 + 2 * S, &f), [data(3, &f[1024..])]);
    ack(&mut t, t0 + 2 * S, 3);
    assert_eq!(t.outcome(), Some(&Outcome::Completed));
}

#[test]
fn negotiated_timeout_is_the_base() {
    let f = file(10);
    let t0 = Instant::now();
    let mut t = start(
        b"\x00\x01f\x00octet\x00timeout\x003\x00",
        &f,
        &TransferConfig::default(),
    );
    assert_eq!(
        sends(&mut t, t0, &f),
        [b"\x00\x06timeout\x003\x00".to_vec()]
    );
    assert_eq!(t.poll_timeout(), Some(t0 + 3 * S));
    t.handle_timeout(t0 + 3 * S);
    sends(&mut t, t0 + 3 * S, &f);
    assert_eq!(t.poll_timeout(), Some(t0 + 9 * S)); // 6 s
    ack(&mut t, t0 + 4 * S, 0);
    assert_eq!(sends(&mut t, t0 + 4 * S, &f), [data(1, &f)]);
    assert_eq!(t.poll_timeout(), Some(t0 + 7 * S));
}

#[test]
fn gives_up_after_max_retries_in_data() {
    let f = file(100);
    let cfg = TransferConfig {
        max_retries: 2,
        ..TransferConfig::default()
    };
    let mut now = Instant::now();
    let mut t = start(PLAIN, &f, &cfg);
    assert_eq!(sends(&mut t, now, &f).len(), 1);
    for _ in 0..2 {
        now = t.poll_timeout().unwrap();
        t.handle_timeout(now);
        assert_eq!(sends(&mut t, now, &f), [data(1, &f)]);
    }
    now = t.poll_timeout().unwrap();
    t.handle_timeout(now);
    assert_eq!(t.outcome(), Some(&Outcome::TimedOut));
    assert!(sends(&mut t, now, &f).is_empty());
}

#[test]
fn client_error_mid_transfer() {
    let f = file(2000);
    let now = Instant::now();
    let mut t = start(PLAIN, &f, &TransferConfig::default());
    sends(&mut t, now, &f);
    t.handle(
        now,
        &Packet::decode(b"\x00\x05\x00\x00disk full\x00").unwrap(),
    );
    assert!(matches!(
        t.outcome(),
        Some(Outcome::ClientError { code: 0, .. })
    ));
}

#[test]
fn stray_packets_do_not_disturb() {
    let f = file(1000);
    let now = Instant::now();
    let mut t = start(PLAIN, &f, &TransferConfig::default());
    sends(&mut t, now, &f);
    for p in [
        &b"\x00\x01f\x00octet\x00"[..],
        b"\x00\x02f\x00octet\x00",
        b"\x00\x03\x00\x01abc",
        b"\x00\x06blksize\x00512\x00",
        b"\x00\x04\x00\x05",
    ] {
        t.handle(now, &Packet::decode(p).unwrap());
        assert!(sends(&mut t, now, &f).is_empty());
        assert!(t.outcome().is_none());
    }
    ack(&mut t, now, 1);
    assert_eq!(sends(&mut t, now, &f), [data(2, &f[512..])]);
}

#[test]
fn abort_sends_error_and_ends() {
    let f = file(2000);
    let now = Instant::now();
    let mut t = start(PLAIN, &f, &TransferConfig::default());
    sends(&mut t, now, &f);
    t.abort(ErrorCode::NotDefined, "read error");
    assert_eq!(
        sends(&mut t, now, &f),
        [b"\x00\x05\x00\x00read error\x00".to_vec()]
    );
    assert_eq!(t.outcome(), Some(&Outcome::Aborted("read error".into())));
}

#[test]
fn mail_mode_refused() {
    let (mode, options) = req(b"\x00\x01f\x00mail\x00");
    let err = Transfer::new(mode, &options, None, &TransferConfig::default()).unwrap_err();
    assert_eq!(err.0, ErrorCode::IllegalOperation);
}

#[test]
fn block_numbers_roll_over_past_65535() {
    // blksize 8, 70000 full blocks + a short one: wraps 65535 -> 0.
    let f = file(8 * 70000 + 3);
    let mut now = Instant::now();
    let mut t = start(
        b"\x00\x01f\x00octet\x00blksize\x008\x00",
        &f,
        &TransferConfig::default(),
    );
    assert_eq!(
        sends(&mut t, now, &f),
        [b"\x00\x06blksize\x008\x00".to_vec()]
    );
    ack(&mut t, now, 0);
    let mut got = Vec::with_capacity(f.len());
    let mut out = Vec::new();
    let mut blocks = 0u64;
    for n in 1..=70001u64 {
        feed(&mut t, &f);
        assert!(t.poll_transmit(now, &mut out), "block {n}");
        let Ok(Packet::Data { block, data }) = Packet::decode(&out) else {
            panic!("not DATA");
        };
        assert_eq!(u64::from(block), n % 65536);
        got.extend_from_slice(data);
        blocks += 1;
        // Every 10000 blocks, lose one and let the timer resend it.
        if n % 10000 == 0 {
            now = t.poll_timeout().unwrap();
            t.handle_timeout(now);
            assert!(t.poll_transmit(now, &mut out));
            assert_eq!(
                Packet::decode(&out).unwrap(),
                Packet::Data {
                    block,
                    data: &f[(n as usize - 1) * 8..n as usize * 8]
                }
            );
        }
        ack(&mut t, now, block);
    }
    assert_eq!(blocks, 70001);
    assert_eq!(got, f);
    assert_eq!(t.outcome(), Some(&Outcome::Completed));
    assert_eq!(t.stats().retransmissions, 7);
}

fn netascii(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for &b in data {
        match b {
            b'\n' => v.extend_from_slice(b"\r\n"),
            b'\r' => v.extend_from_slice(b"\r\0"),
            b => v.push(b),
        }
    }
    v
}

/// Run a whole transfer with no loss; returns the received bytes.
fn download(t: &mut Transfer, f: &[u8]) -> Vec<u8> {
    let now = Instant::now();
    let mut got = Vec::new();
    let mut last = 0u16;
    for _ in 0..100_000 {
        let pkts = sends(t, now, f);
        if pkts.is_empty() {
            break;
        }
        for p in &pkts {
            match Packet::decode(p).unwrap() {
                Packet::Oack(_) => last = 0,
                Packet::Data { block, data } => {
                    assert_eq!(block, last.wrapping_add(1));
                    last = block;
                    got.extend_from_slice(data);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        ack(t, now, last);
    }
    assert_eq!(t.outcome(), Some(&Outcome::Completed));
    got
}

#[test]
fn netascii_conversion_streams_across_blocks() {
    let cfg = TransferConfig::default();
    let inputs: [&[u8]; 5] = [
        b"line one\nline two\r\nbare cr\rend",
        b"\n\n\n\n\n\n\n\n\n\n",
        b"\r\r\r\r\r\r\r\r\r",
        b"1234567\n1234567\r",
        b"",
    ];
    for input in inputs {
        for blksize in [8u32, 9, 512] {
            let rrq = format!("\x00\x01f\x00netascii\x00blksize\x00{blksize}\x00tsize\x000\x00");
            let mut t = start(rrq.as_bytes(), input, &cfg);
            let got = download(&mut t, input);
            let want = netascii(input);
            assert_eq!(got, want, "{input:?} at {blksize}");
            assert_eq!(netascii_len(input), want.len() as u64);
            assert_eq!(
                t.negotiated().oack.tsize,
                Some(want.len() as u64).filter(|&n| n > 0)
            );
        }
    }
}

#[test]
fn octet_download_sizes() {
    for len in [0, 1, 511, 512, 513, 5000, 65464 * 3] {
        let f = file(len);
        for rrq in [
            &b"\x00\x01f\x00octet\x00"[..],
            b"\x00\x01f\x00octet\x00blksize\x001468\x00windowsize\x008\x00",
            b"\x00\x01f\x00octet\x00blksize\x0065464\x00windowsize\x0064\x00",
        ] {
            let mut t = start(rrq, &f, &TransferConfig::default());
            assert_eq!(download(&mut t, &f), f, "len {len}");
        }
    }
}

#[test]
fn window_sends_window_and_rolls_back_on_earlier_ack() {
    // blksize 8, windowsize 4, 100 bytes: 12 full blocks + 1 of 4 bytes.
    let f = file(100);
    let now = Instant::now();
    let mut t = start(
        b"\x00\x01f\x00octet\x00blksize\x008\x00windowsize\x004\x00",
        &f,
        &TransferConfig::default(),
    );
    let blk = |n: u16| data(n, &f[(n as usize - 1) * 8..(n as usize * 8).min(100)]);
    assert_eq!(
        sends(&mut t, now, &f),
        [b"\x00\x06blksize\x008\x00windowsize\x004\x00".to_vec()]
    );
    ack(&mut t, now, 0);
    assert_eq!(sends(&mut t, now, &f), [blk(1), blk(2), blk(3), blk(4)]);
    ack(&mut t, now, 4);
    assert_eq!(sends(&mut t, now, &f), [blk(5), blk(6), blk(7), blk(8)]);
    // Client got 5 and 6 only: window restarts at 7.
    ack(&mut t, now, 6);
    assert_eq!(sends(&mut t, now, &f), [blk(7), blk(8), blk(9), blk(10)]);
    assert_eq!(t.stats().retransmissions, 2);
    // The same ACK again (duplicated by the network): ignored.
    ack(&mut t, now, 6);
    assert!(sends(&mut t, now, &f).is_empty());
    // Stale ACK 4: ignored.
    ack(&mut t, now, 4);
    assert!(sends(&mut t, now, &f).is_empty());
    // Timeout: the whole unacknowledged window again.
    let d = t.poll_timeout().unwrap();
    t.handle_timeout(d);
    assert_eq!(sends(&mut t, d, &f), [blk(7), blk(8), blk(9), blk(10)]);
    ack(&mut t, d, 10);
    assert_eq!(sends(&mut t, d, &f), [blk(11), blk(12), blk(13)]);
    ack(&mut t, d, 12);
    assert_eq!(sends(&mut t, d, &f), [blk(13)]);
    ack(&mut t, d, 13);
    assert_eq!(t.outcome(), Some(&Outcome::Completed));
    assert_eq!(t.stats().bytes, 100);
    assert_eq!(t.stats().blocks, 13);
}

#[test]
fn memory_bounded_by_window() {
    let f = file(100_000);
    let mut t = start(
        b"\x00\x01f\x00octet\x00blksize\x00512\x00windowsize\x008\x00",
        &f,
        &TransferConfig::default(),
    );
    let now = Instant::now();
    sends(&mut t, now, &f);
    ack(&mut t, now, 0);
    sends(&mut t, now, &f);
    assert!(t.blocks.len() <= 8);
    assert!(t.raw.capacity() <= 8 * 512);
    // The first read asks for exactly one window.
    let (mode, options) = req(b"\x00\x01f\x00octet\x00blksize\x00512\x00windowsize\x008\x00");
    let t = Transfer::new(mode, &options, None, &TransferConfig::default()).unwrap();
    assert_eq!(
        t.poll_read(),
        Some(ReadRequest {
            offset: 0,
            len: 4096
        })
    );
}

/// xorshift64*: deterministic pseudo-random bytes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random datagrams through the decoder and into running transfers, with
/// random timeouts: nothing panics, the window bound holds, and every
/// transfer ends within a bounded number of steps.
#[test]
fn random_packets_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let f = file(5000);
    let cfg = TransferConfig::default();
    for round in 0..300 {
        let rrq: &[u8] = match round % 3 {
            0 => PLAIN,
            1 => b"\x00\x01f\x00netascii\x00blksize\x0064\x00windowsize\x004\x00tsize\x000\x00",
            _ => b"\x00\x01f\x00octet\x00blksize\x00100\x00windowsize\x0016\x00timeout\x002\x00",
        };
        let mut t = start(rrq, &f, &cfg);
        let mut now = Instant::now();
        for _ in 0..2000 {
            let _ = sends(&mut t, now, &f);
            if t.outcome().is_some() {
                break;
            }
            let window = usize::from(t.negotiated().windowsize);
            assert!(t.blocks.len() <= window);
            match rng.below(4) {
                0 => {
                    let len = rng.below(40) as usize;
                    let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    if let Some(op) = bytes.get_mut(1) {
                        *op %= 8;
                    }
                    if let Some(z) = bytes.first_mut() {
                        *z = 0;
                    }
                    if let Ok(p) = Packet::decode(&bytes) {
                        let mut out = Vec::new();
                        p.encode(&mut out);
                        t.handle(now, &p);
                    }
                }
                1 => {
                    if let Some(d) = t.poll_timeout() {
                        now = d;
                        t.handle_timeout(now);
                    }
                }
                _ => {
                    // A plausible ACK near the current window.
                    let block = (t.acked as u16).wrapping_add(rng.below(20) as u16);
                    ack(&mut t, now, block);
                }
            }
        }
    }
}
