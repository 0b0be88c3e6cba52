//! Webhooks: a JSON POST to each configured URL for every machine change.
//!
//! Layer: service (single-threaded, on the `LocalExecutor`). The write
//! path ([`Webhooks::notify`], called by `App` after a change is durable)
//! only builds the body once and queues it: it never waits on the network.
//! Each URL has its own bounded [`outbox::Outbox`] and its own sender task
//! ([`spawn`]) that tries the head of the queue with the [`client`] (one
//! HTTP/1.1 POST, bounded by [`TIMEOUT`]) and retries with backoff; a 2xx
//! answer is a delivery, anything else (another status, a refused or reset
//! connection, a timeout) a failed try. So a slow or dead receiver delays
//! only its own queue; DHCP, TFTP and the API go on. Events reach a
//! receiver in the order they happened; `seq` numbers them (the same
//! number on every retry and to every receiver), so a receiver can drop
//! duplicates (a lost answer makes gopxe send again) and see gaps (a
//! delivery given up or dropped from a full queue).
//!
//! Plain `http://` only (see [`url`]): TLS would cost more binary than all
//! of gopxe's protocols. No signature: put a secret in the URL's path or
//! query on a network you trust.

pub mod client;

/// The sans-I/O modules live in `gopxe_proto::webhook`; these paths keep
/// `crate::webhook::outbox::...` and the like working.
pub use gopxe_proto::webhook::{outbox, url};

use crate::metrics::Metrics;
use crate::model::{Machine, MachineState};
use outbox::{Next, Outbox, Outcome, Policy};
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::{Duration, Instant};
pub use url::HookUrl;

/// Bound on one try: lookup, connect, send and the answer's status line.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Most webhook URLs.
pub const MAX_URLS: usize = 16;

/// What happened to a machine record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new record (`POST /pxeboot`, or `PUT` of an unknown id).
    Created,
    /// A record replaced through the API (it starts a new install).
    Updated,
    /// The life cycle moved: kickstart fetched, installer done, reinstall.
    StateChanged,
    /// The record was deleted.
    Deleted,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::StateChanged => "state_changed",
            Change::Deleted => "deleted",
        }
    }
}

/// The JSON body of every webhook POST.
#[derive(Serialize)]
struct Body<'a> {
    event: &'static str,
    seq: u64,
    id: String,
    old_state: Option<MachineState>,
    new_state: Option<MachineState>,
    hostname: Option<&'a str>,
    ip: Option<Ipv4Addr>,
    bootaction: &'a str,
    timestamp_ms: u64,
    timestamp: String,
    gopxe_version: &'static str,
}

/// RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.123Z`.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let ms = i64::try_from(unix_ms).unwrap_or(i64::MAX);
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => format!("{t:.3}"),
        Err(_) => String::new(),
    }
}

/// One queued POST: the event name (for the header) and the body.
#[derive(Debug)]
struct Delivery {
    event: &'static str,
    request: Vec<u8>,
}

struct Target {
    url: HookUrl,
    outbox: RefCell<Outbox<Rc<Delivery>>>,
    bell: smol::channel::Sender<()>,
    woken: smol::channel::Receiver<()>,
}

/// The configured receivers and their queues.
pub struct Webhooks {
    targets: Vec<Rc<Target>>,
    seq: Cell<u64>,
}

impl Webhooks {
    pub fn new(urls: &[HookUrl], policy: Policy) -> Webhooks {
        let targets = urls
            .iter()
            .map(|url| {
                let (bell, woken) = smol::channel::bounded(1);
                Rc::new(Target {
                    url: url.clone(),
                    outbox: RefCell::new(Outbox::new(policy)),
                    bell,
                    woken,
                })
            })
            .collect();
        Webhooks {
            targets,
            seq: Cell::new(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Queues the POST for a change of `m` from `old` to `new` (a state is
    /// `None` before creation and after deletion), made at `at_ms` (Unix
    /// milliseconds). Never waits.
    pub fn notify(
        &self,
        metrics: &Metrics,
        at_ms: u64,
        change: Change,
        m: &Machine,
        old: Option<MachineState>,
        new: Option<MachineState>,
    ) {
        if self.targets.is_empty() {
            return;
        }
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        let now = at_ms;
        let body = Body {
            event: change.as_str(),
            seq,
            id: m.id.canonical(),
            old_state: old,
            new_state: new,
            hostname: m.hostname.as_deref(),
            ip: m.ip,
            bootaction: &m.bootaction,
            timestamp_ms: now,
            timestamp: rfc3339_ms(now),
            gopxe_version: env!("CARGO_PKG_VERSION"),
        };
        let Ok(body) = serde_json::to_vec(&body) else {
            return;
        };
        for t in &self.targets {
            let delivery = Rc::new(Delivery {
                event: change.as_str(),
                request: client::request(&t.url, change.as_str(), &body),
            });
            if let Some(lost) = t.outbox.borrow_mut().push(seq, delivery) {
                metrics.webhook("dropped");
                log::warn!(
                    "webhook {}: queue full, dropped event {lost} (the oldest)",
                    t.url
                );
            }
            // A full bell means the sender is already due to look.
            let _ = t.bell.try_send(());
        }
    }
}

/// Starts one sender task per URL on `ex`, counting deliveries in
/// `metrics`.
pub fn spawn(ex: &smol::LocalExecutor<'static>, webhooks: &Webhooks, metrics: &Rc<Metrics>) {
    for t in &webhooks.targets {
        log::info!("webhook: POSTing machine changes to {}", t.url);
        ex.spawn(run(t.clone(), metrics.clone())).detach();
    }
}

/// Waits until `deadline` or until rung, whichever comes first.
async fn wait(t: &Target, deadline: Option<Instant>) {
    let rung = async {
        let _ = t.woken.recv().await;
    };
    match deadline {
        Some(d) => {
            futures_lite::future::or(rung, async {
                async_io::Timer::at(d).await;
            })
            .await
        }
        None => rung.await,
    }
}

async fn run(t: Rc<Target>, metrics: Rc<Metrics>) {
    loop {
        let next = t.outbox.borrow_mut().next(Instant::now());
        let (seq, attempt, d) = match next {
            Next::Send { seq, attempt, item } => (seq, attempt, item),
            Next::WaitUntil(at) => {
                wait(&t, Some(at)).await;
                continue;
            }
            Next::Idle | Next::Busy => {
                wait(&t, None).await;
                continue;
            }
        };
        let result = client::post(&t.url, &d.request, TIMEOUT).await;
        let ok = matches!(result, Ok(200..=299));
        let outcome = t.outbox.borrow_mut().finish(seq, ok, Instant::now());
        let why = match &result {
            Ok(code) => format!("answered {code}"),
            Err(e) => e.to_string(),
        };
        match outcome {
            Outcome::Delivered { attempts } => {
                metrics.webhook("delivered");
                let level = if attempts > 1 {
                    log::Level::Info
                } else {
                    log::Level::Debug
                };
                log::log!(
                    level,
                    "webhook {}: event {seq} ({}) delivered on try {attempts}",
                    t.url,
                    d.event
                );
            }
            Outcome::Retry { delay, .. } => {
                metrics.webhook("retried");
                log::warn!(
                    "webhook {}: event {seq} try {attempt} failed ({why}); again in {} ms",
                    t.url,
                    delay.as_millis()
                );
            }
            Outcome::GaveUp { attempts } => {
                metrics.webhook("failed");
                log::error!(
                    "webhook {}: event {seq} ({}) given up after {attempts} tries ({why})",
                    t.url,
                    d.event
                );
            }
            Outcome::Stale => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_millis() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_714_564_800_123), "2024-05-01T12:00:00.123Z");
        assert_eq!(rfc3339_ms(u64::MAX), "");
    }

    #[test]
    fn notify_builds_one_body_per_change_for_every_url() {
        let urls = [
            HookUrl::parse("http://127.0.0.1:9/a").unwrap(),
            HookUrl::parse("http://127.0.0.1:9/b").unwrap(),
        ];
        let w = Webhooks::new(&urls, Policy::default());
        let m = Machine {
            id: "52:54:00:00:00:01".parse().unwrap(),
            bootaction: "centos".into(),
            ksfile: "default".into(),
            os: None,
            version: None,
            hostname: Some("node1.lab".into()),
            ip: Some(Ipv4Addr::new(10, 0, 0, 9)),
            mask: None,
            gw: None,
            ns1: None,
            ns2: None,
            state: MachineState::Installed,
            updated_ms: 0,
            install_key: None,
        };
        let metrics = Metrics::default();
        w.notify(
            &metrics,
            1_700_000_000_000,
            Change::StateChanged,
            &m,
            Some(MachineState::Installing),
            Some(MachineState::Installed),
        );
        w.notify(
            &metrics,
            1_700_000_000_000,
            Change::Deleted,
            &m,
            Some(MachineState::Installed),
            None,
        );
        let now = Instant::now();
        for (t, path) in w.targets.iter().zip(["/a", "/b"]) {
            let mut o = t.outbox.borrow_mut();
            assert_eq!(o.len(), 2);
            let Next::Send { seq, item, .. } = o.next(now) else {
                panic!("nothing to send")
            };
            assert_eq!((seq, item.event), (1, "state_changed"));
            let text = String::from_utf8(item.request.clone()).unwrap();
            assert!(text.starts_with(&format!("POST {path} HTTP/1.1\r\n")));
            let body = text.split_once("\r\n\r\n").unwrap().1;
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["event"], "state_changed");
            assert_eq!(v["seq"], 1);
            assert_eq!(v["id"], "01-52-54-00-00-00-01");
            assert_eq!(v["old_state"], "installing");
            assert_eq!(v["new_state"], "installed");
            assert_eq!(v["hostname"], "node1.lab");
            assert_eq!(v["ip"], "10.0.0.9");
            assert_eq!(v["bootaction"], "centos");
            assert_eq!(v["gopxe_version"], env!("CARGO_PKG_VERSION"));
            assert!(v["timestamp_ms"].as_u64().unwrap() > 1_600_000_000_000);
            assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
            o.finish(seq, true, now);
            let Next::Send { seq, item, .. } = o.next(now) else {
                panic!("nothing to send")
            };
            assert_eq!((seq, item.event), (2, "deleted"));
            let text = String::from_utf8(item.request.clone()).unwrap();
            assert!(text.contains("\"new_state\":null"), "{text}");
        }
        // The bell was rung (once is enough).
        assert!(w.targets.iter().all(|t| t.woken.try_recv().is_ok()));
    }
}
