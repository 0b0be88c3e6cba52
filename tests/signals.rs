//! Stopping: SIGTERM and SIGINT end gopxe at once with status 0, and the
//! records written before are there after a restart.
// Test code may unwrap, panic and index (the restriction lints).
#![allow(unreachable_pub, clippy::restriction)]

mod common;

use common::{Gopxe, tempdir, wait_until};
use std::process::Command;
use std::time::{Duration, Instant};

fn stops_cleanly_on(signal: &str) {
    let dir = tempdir(&format!("signal-{signal}"));
    let mut g = Gopxe::start(&dir, &[]);
    let r = g.post("/bootaction/kept", r#"{"kernel": "k"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let sent = Command::new("kill")
        .args([format!("-{signal}"), g.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let t0 = Instant::now();
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            status = g.child.try_wait().unwrap();
            status.is_some()
        }),
        "gopxe still runs 10 s after SIG{signal}"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit status");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(
        g.log_text()
            .contains(&format!("stopping on {}", signal_name(signal))),
        "{}",
        g.log_text()
    );
    let args = g.args.clone();
    let g2 = Gopxe::start_args(&dir, args);
    assert_eq!(g2.get("/bootaction/kept").status, 200);
}

fn signal_name(s: &str) -> &'static str {
    match s {
        "TERM" => "Term",
        _ => "Int",
    }
}

#[test]
fn sigterm_exits_zero_and_keeps_records() {
    stops_cleanly_on("TERM");
}

#[test]
fn sigint_exits_zero() {
    stops_cleanly_on("INT");
}
