//! The bounded queue between the logger and the thread that writes stderr.
//!
//! Layer: service (logging). A `log` call must never wait for stderr: on
//! the appliance it is a serial console and a file on an SD card, and a
//! slow or stopped reader would stall the DHCP, TFTP and HTTP tasks that
//! log. [`LineQueue::push`] hands a formatted line over without waiting
//! (`std::sync::mpsc::sync_channel`'s `try_send`); when the queue is full
//! the line is dropped and counted ([`LineQueue::dropped`]). [`Writer::run`]
//! is the other end, on a thread of its own: it takes the lines in order
//! and writes them in batches. [`LineQueue::flush`] waits, up to a bound,
//! until every line queued before it is written (clean exit, a panic).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How far the writer got, shared by both ends.
#[derive(Default)]
struct Progress {
    /// Lines accepted into the queue.
    queued: AtomicU64,
    /// Lines written (or given up on: a write error is not retried).
    written: Mutex<u64>,
    /// The writer ended: nothing more will be written.
    closed: AtomicBool,
    changed: Condvar,
}

impl Progress {
    fn add_written(&self, n: u64) {
        let mut w = self.written.lock().unwrap_or_else(|e| e.into_inner());
        *w += n;
        self.changed.notify_all();
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
    tx: SyncSender<String>,
    progress: Arc<Progress>,
    dropped: AtomicU64,
}

/// The writer's end.
pub struct Writer {
    rx: Receiver<String>,
    progress: Arc<Progress>,
}

impl LineQueue {
    /// A queue of at most `capacity` lines, and its writer's end.
    pub fn new(capacity: usize) -> (LineQueue, Writer) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let progress = Arc::new(Progress::default());
        let queue = LineQueue {
            tx,
            progress: progress.clone(),
            dropped: AtomicU64::new(0),
        };
        (queue, Writer { rx, progress })
    }

    /// Hands `line` (ending in a newline) to the writer; never waits.
    pub fn push(&self, line: String) -> Pushed {
        match self.tx.try_send(line) {
            Ok(()) => {
                self.progress.queued.fetch_add(1, Ordering::SeqCst);
                Pushed::Queued
            }
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Pushed::Dropped
            }
            Err(TrySendError::Disconnected(line)) => Pushed::NoWriter(line),
        }
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every line queued so far is written, for at most
    /// `within`. False when time ran out first.
    pub fn flush(&self, within: Duration) -> bool {
        let target = self.progress.queued.load(Ordering::SeqCst);
        let deadline = Instant::now() + within;
        let mut written = self
            .progress
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while *written < target && !self.progress.closed.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            written = match self.progress.changed.wait_timeout(written, left) {
                Ok((w, _)) => w,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

impl Writer {
    /// The longest wait for a line before `tick` runs again.
    pub const TICK: Duration = Duration::from_secs(1);
    /// A batch is written once it holds this many bytes (or the queue is
    /// empty).
    const BATCH_BYTES: usize = 16 * 1024;

    /// Takes lines in order and gives them to `out` in batches until every
    /// [`LineQueue`] is gone; `tick` runs after each batch and at least
    /// every [`Self::TICK`] (the storm limiter's summary comes from there).
    pub fn run(self, mut out: impl FnMut(&[u8]), mut tick: impl FnMut()) {
        let mut batch = Vec::with_capacity(Self::BATCH_BYTES);
        loop {
            match self.rx.recv_timeout(Self::TICK) {
                Ok(line) => {
                    batch.extend_from_slice(line.as_bytes());
                    let mut n = 1;
                    while batch.len() < Self::BATCH_BYTES {
                        let Ok(line) = self.rx.try_recv() else { break };
                        batch.extend_from_slice(line.as_bytes());
                        n += 1;
                    }
                    out(&batch);
                    batch.clear();
                    self.progress.add_written(n);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            tick();
        }
        self.progress.closed.store(true, Ordering::SeqCst);
        self.progress.add_written(0);
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
