//! The bounded queue between the logger and the thread that writes stderr.
//!
//! Layer: service (logging). A `log` call must never wait for stderr: on
//! the appliance it is a serial console and a file on an SD card, and a
//! slow or stopped reader would stall the DHCP, TFTP and HTTP tasks that
//! log. [`LineQueue::push`] appends a formatted line under a lock that is
//! only ever held for a push or a swap, never across a write; when the
//! queue already holds its capacity the line is dropped and counted
//! ([`LineQueue::dropped`]). [`Writer::run`] is the other end, on a thread
//! of its own: it swaps the whole queue for an empty one and writes the
//! lines, in order and in batches, with the lock released (so up to
//! capacity lines wait in the queue while as many are being written).
//! [`LineQueue::flush`] waits, up to a bound, until every line queued
//! before it is written (clean exit, a panic).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct State {
    lines: VecDeque<String>,
    /// Lines accepted, ever.
    queued: u64,
    /// Lines written (or given up on: a write error is not retried).
    written: u64,
    /// The [`LineQueue`] is gone: the writer ends once the queue is empty.
    queue_gone: bool,
    /// The [`Writer`] is gone (or never ran): nothing more is written.
    writer_gone: bool,
}

struct Shared {
    state: Mutex<State>,
    capacity: usize,
    /// The queue is no longer empty, or the [`LineQueue`] went.
    ready: Condvar,
    /// `written` moved, or the writer went.
    progress: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What became of a pushed line.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The queue was full: the line is gone (and counted).
    Dropped,
    /// No writer takes lines (its thread could not start): the line is
    /// given back for the caller to write itself.
    NoWriter(String),
}

/// The logger's end: push lines, count the drops, wait for a flush.
pub struct LineQueue {
    shared: Arc<Shared>,
    dropped: AtomicU64,
}

/// The writer's end.
pub struct Writer {
    shared: Arc<Shared>,
}

impl LineQueue {
    /// A queue of at most `capacity` lines, and its writer's end.
    pub fn new(capacity: usize) -> (LineQueue, Writer) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                lines: VecDeque::new(),
                queued: 0,
                written: 0,
                queue_gone: false,
                writer_gone: false,
            }),
            capacity,
            ready: Condvar::new(),
            progress: Condvar::new(),
        });
        let queue = LineQueue {
            shared: shared.clone(),
            dropped: AtomicU64::new(0),
        };
        (queue, Writer { shared })
    }

    /// Hands `line` (ending in a newline) to the writer; never waits for it.
    pub fn push(&self, line: String) -> Pushed {
        let mut s = self.shared.lock();
        if s.writer_gone {
            return Pushed::NoWriter(line);
        }
        if s.lines.len() >= self.shared.capacity {
            drop(s);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Pushed::Dropped;
        }
        s.lines.push_back(line);
        s.queued += 1;
        // The writer sleeps only on an empty queue.
        let wake = s.lines.len() == 1;
        drop(s);
        if wake {
            self.shared.ready.notify_one();
        }
        Pushed::Queued
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every line queued so far is written, for at most
    /// `within`. False when time ran out first.
    pub fn flush(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut s = self.shared.lock();
        let target = s.queued;
        while s.written < target && !s.writer_gone {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = match self.shared.progress.wait_timeout(s, left) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

impl Drop for LineQueue {
    fn drop(&mut self) {
        self.shared.lock().queue_gone = true;
        self.shared.ready.notify_one();
    }
}

impl Writer {
    /// The longest wait for a line before `tick` runs again.
    pub const TICK: Duration = Duration::from_secs(1);
    /// Lines are handed to `out` in batches of about this many bytes.
    const BATCH_BYTES: usize = 16 * 1024;

    /// Takes lines in order and gives them to `out` in batches until the
    /// [`LineQueue`] is gone and its lines written; `tick` runs after each
    /// round and at least every [`Self::TICK`] (the storm limiter's
    /// summary comes from there).
    pub fn run(self, mut out: impl FnMut(&[u8]), mut tick: impl FnMut()) {
        let mut taken = VecDeque::new();
        let mut batch = Vec::with_capacity(Self::BATCH_BYTES);
        loop {
            {
                let mut s = self.shared.lock();
                if s.lines.is_empty() && !s.queue_gone {
                    s = match self.shared.ready.wait_timeout(s, Self::TICK) {
                        Ok((s, _)) => s,
                        Err(e) => e.into_inner().0,
                    };
                }
                if s.lines.is_empty() && s.queue_gone {
                    break;
                }
                std::mem::swap(&mut s.lines, &mut taken);
            }
            let n = taken.len() as u64;
            for line in taken.drain(..) {
                batch.extend_from_slice(line.as_bytes());
                if batch.len() >= Self::BATCH_BYTES {
                    out(&batch);
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                out(&batch);
                batch.clear();
            }
            if n > 0 {
                self.shared.lock().written += n;
                self.shared.progress.notify_all();
            }
            tick();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().writer_gone = true;
        self.shared.progress.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        // No writer runs yet: nothing leaves the queue.
        let (q, writer) = LineQueue::new(4);
        let pushed: Vec<Pushed> = (0..7).map(|i| q.push(format!("line {i}\n"))).collect();
        assert_eq!(
            &pushed[..4],
            &[
                Pushed::Queued,
                Pushed::Queued,
                Pushed::Queued,
                Pushed::Queued
            ]
        );
        assert_eq!(
            &pushed[4..],
            &[Pushed::Dropped, Pushed::Dropped, Pushed::Dropped]
        );
        assert_eq!(q.dropped(), 3);
        assert!(!q.flush(Duration::ZERO), "four lines wait for the writer");
        // The writer (run here, on this thread, until the queue is gone)
        // writes the kept lines, oldest first.
        drop(q);
        let mut out = Vec::new();
        let mut ticks = 0;
        writer.run(|b| out.extend_from_slice(b), || ticks += 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "line 0\nline 1\nline 2\nline 3\n"
        );
        assert!(ticks >= 1);
    }

    #[test]
    fn without_a_writer_lines_come_back() {
        let (q, writer) = LineQueue::new(4);
        drop(writer);
        assert_eq!(q.push("x\n".into()), Pushed::NoWriter("x\n".into()));
        assert_eq!(q.dropped(), 0);
        assert!(q.flush(Duration::ZERO), "nothing queued");
    }

    #[test]
    fn flush_waits_for_a_writer_held_on_a_channel() {
        let (q, writer) = LineQueue::new(16);
        let (gate, opened) = std::sync::mpsc::channel::<()>();
        let (out_tx, out_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let thread = std::thread::spawn(move || {
            writer.run(
                |b| {
                    // Held until the test lets it go: stderr stuck.
                    let _ = opened.recv();
                    let _ = out_tx.send(b.to_vec());
                },
                || {},
            )
        });
        assert_eq!(q.push("a\n".into()), Pushed::Queued);
        assert_eq!(q.push("b\n".into()), Pushed::Queued);
        assert!(!q.flush(Duration::ZERO), "the writer is held");
        assert!(out_rx.try_recv().is_err());
        // Pushing never waits for the held writer.
        for i in 0..100 {
            let _ = q.push(format!("{i}\n"));
        }
        assert!(q.dropped() >= 100 - 16);
        drop(gate); // every write goes through from now on
        assert!(q.flush(Duration::from_secs(30)));
        let written: Vec<u8> = out_rx.try_iter().flatten().collect();
        let text = String::from_utf8(written).unwrap();
        assert!(text.starts_with("a\nb\n"), "{text}");
        assert_eq!(
            text.lines().count() as u64,
            102 - q.dropped(),
            "every line not dropped is written: {text}"
        );
        drop(q);
        thread.join().unwrap();
    }
}
