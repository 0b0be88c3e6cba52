//! Client-side link impairment for kernels without `sch_netem`: a random
//! delay of 0..=jitter before each UDP packet the client sends and after
//! each it receives (so the round trip varies by up to twice the jitter),
//! and a random drop of a share of both. Packets are delayed in the client
//! thread that handles them, so they are not reordered.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Clone, Copy, Debug, Default)]
pub struct Impair {
    /// Drop probability in 1/10000.
    pub loss_bp: u32,
    pub jitter: Duration,
}

static IMPAIR: OnceLock<Impair> = OnceLock::new();

pub fn set(i: Impair) {
    let _ = IMPAIR.set(i);
}

fn get() -> Impair {
    IMPAIR.get().copied().unwrap_or_default()
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// xorshift64*, seeded per thread.
fn rand() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        if x == 0 {
            x = u64::from(crate::next_nonce()) << 32 | 0x9e37_79b9;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

fn delay(i: &Impair) {
    if !i.jitter.is_zero() {
        let us = i.jitter.as_micros() as u64;
        std::thread::sleep(Duration::from_micros(rand() % (us + 1)));
    }
}

fn lose(i: &Impair) -> bool {
    i.loss_bp > 0 && (rand() % 10_000) < u64::from(i.loss_bp)
}

/// Before a send: wait the jitter; true if the packet is to be dropped.
pub fn on_send() -> bool {
    let i = get();
    delay(&i);
    lose(&i)
}

/// After a receive: wait the jitter; true if the packet is to be dropped.
pub fn on_recv() -> bool {
    let i = get();
    delay(&i);
    lose(&i)
}
