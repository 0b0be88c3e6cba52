//! Counters and the Prometheus text exposition at `GET /metrics`.
//!
//! Layer: service (single-threaded, `Cell`/`RefCell`). Labelled counters
//! are kept in small ordered maps keyed by `&'static str` labels chosen by
//! gopxe (route patterns, message types, outcomes), never by client input,
//! so their number is bounded. Format: Prometheus text exposition 0.0.4.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A counter with up to two fixed labels.
type Labelled = RefCell<BTreeMap<(&'static str, &'static str), u64>>;

fn bump(map: &Labelled, a: &'static str, b: &'static str, by: u64) {
    *map.borrow_mut().entry((a, b)).or_default() += by;
}

/// The logger's counters, kept process-wide by [`crate::logging`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCounts {
    /// Lines not written to stderr: its writer's queue was full.
    pub dropped: u64,
    /// Boot lines the storm limiter logged at debug instead.
    pub suppressed: u64,
}

impl LogCounts {
    /// The counts so far.
    pub fn now() -> LogCounts {
        LogCounts {
            dropped: crate::logging::dropped_lines(),
            suppressed: crate::logging::suppressed_lines(),
        }
    }
}

/// Every counter gopxe exports.
#[derive(Default)]
pub struct Metrics {
    /// (route, status class as "2xx".."5xx")
    http_requests: Labelled,
    /// (message type, outcome)
    dhcp_packets: Labelled,
    /// (outcome, "")
    tftp_transfers: Labelled,
    /// ("sent", "")
    tftp_bytes: Labelled,
    /// (error code name, "")
    tftp_errors: Labelled,
    /// (outcome: delivered, retried, failed, dropped, "")
    webhooks: Labelled,
    /// (outcome: filed, unknown_source, "")
    syslog_lines: Labelled,
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl Metrics {
    pub fn http_request(&self, route: &'static str, status: u16) {
        bump(&self.http_requests, route, status_class(status), 1);
    }

    pub fn dhcp_packet(&self, message: &'static str, outcome: &'static str) {
        bump(&self.dhcp_packets, message, outcome, 1);
    }

    pub fn tftp_transfer(&self, outcome: &'static str, bytes: u64) {
        bump(&self.tftp_transfers, outcome, "", 1);
        bump(&self.tftp_bytes, "sent", "", bytes);
    }

    pub fn tftp_error(&self, code: &'static str) {
        bump(&self.tftp_errors, code, "", 1);
    }

    pub fn webhook(&self, outcome: &'static str) {
        bump(&self.webhooks, outcome, "", 1);
    }

    /// A syslog line: filed on a machine, or dropped (`unknown_source`).
    pub fn syslog_line(&self, outcome: &'static str) {
        bump(&self.syslog_lines, outcome, "", 1);
    }

    /// Renders the exposition. `machines_by_state`, the uptime and the
    /// logger's counts come from the caller, which owns the store.
    pub fn render(
        &self,
        machines_by_state: &[(&str, usize)],
        uptime_s: u64,
        log: LogCounts,
    ) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(
            out,
            "# HELP gopxe_build_info gopxe version.\n# TYPE gopxe_build_info gauge"
        );
        let _ = writeln!(
            out,
            "gopxe_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            out,
            "# HELP gopxe_uptime_seconds Seconds since start.\n# TYPE gopxe_uptime_seconds gauge"
        );
        let _ = writeln!(out, "gopxe_uptime_seconds {uptime_s}");
        let _ = writeln!(
            out,
            "# HELP gopxe_machines Machines by life-cycle state.\n# TYPE gopxe_machines gauge"
        );
        for (state, n) in machines_by_state {
            let _ = writeln!(out, "gopxe_machines{{state=\"{state}\"}} {n}");
        }
        let families: [(&str, &str, &Labelled, [&str; 2]); 7] = [
            (
                "gopxe_http_requests_total",
                "HTTP requests by route and status class.",
                &self.http_requests,
                ["route", "status"],
            ),
            (
                "gopxe_dhcp_packets_total",
                "DHCP packets by message type and outcome.",
                &self.dhcp_packets,
                ["type", "outcome"],
            ),
            (
                "gopxe_tftp_transfers_total",
                "TFTP transfers by outcome.",
                &self.tftp_transfers,
                ["outcome", ""],
            ),
            (
                "gopxe_tftp_bytes_total",
                "TFTP payload bytes sent.",
                &self.tftp_bytes,
                ["", ""],
            ),
            (
                "gopxe_tftp_errors_total",
                "TFTP requests refused, by error.",
                &self.tftp_errors,
                ["error", ""],
            ),
            (
                "gopxe_webhooks_total",
                "Webhook deliveries delivered, failed (given up) or dropped (queue full), and tries retried.",
                &self.webhooks,
                ["outcome", ""],
            ),
            (
                "gopxe_syslog_lines_total",
                "Installer syslog lines filed on a machine, or dropped from an unknown source.",
                &self.syslog_lines,
                ["outcome", ""],
            ),
        ];
        for (name, help, map, labels) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let map = map.borrow();
            if map.is_empty() && labels[0].is_empty() {
                let _ = writeln!(out, "{name} 0");
            }
            for ((a, b), v) in map.iter() {
                let mut l = Vec::new();
                if !labels[0].is_empty() {
                    l.push(format!("{}=\"{a}\"", labels[0]));
                }
                if !labels[1].is_empty() {
                    l.push(format!("{}=\"{b}\"", labels[1]));
                }
                if l.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{}}} {v}", l.join(","));
                }
            }
        }
        let log_counters = [
            (
                "gopxe_log_lines_dropped_total",
                "Log lines not written to stderr because its writer was behind (queue full).",
                log.dropped,
            ),
            (
                "gopxe_log_boot_lines_suppressed_total",
                "Boot lines held back in a storm (logged at debug instead).",
                log.suppressed,
            ),
        ];
        for (name, help, v) in log_counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_parseable_families() {
        let m = Metrics::default();
        m.http_request("/pxeboot", 201);
        m.http_request("/pxeboot", 201);
        m.http_request("/pxeboot/{id}", 404);
        m.dhcp_packet("DISCOVER", "offer");
        m.tftp_transfer("ok", 1000);
        m.tftp_transfer("timeout", 24);
        let log = LogCounts {
            dropped: 7,
            suppressed: 0,
        };
        let text = m.render(&[("install", 2), ("installed", 1)], 5, log);
        assert!(text.contains("gopxe_log_lines_dropped_total 7\n"));
        assert!(text.contains("gopxe_log_boot_lines_suppressed_total 0\n"));
        assert!(text.contains("gopxe_http_requests_total{route=\"/pxeboot\",status=\"2xx\"} 2\n"));
        assert!(
            text.contains("gopxe_http_requests_total{route=\"/pxeboot/{id}\",status=\"4xx\"} 1\n")
        );
        assert!(text.contains("gopxe_dhcp_packets_total{type=\"DISCOVER\",outcome=\"offer\"} 1\n"));
        assert!(text.contains("gopxe_tftp_bytes_total 1024\n"));
        assert!(text.contains("gopxe_machines{state=\"installed\"} 1\n"));
        // Every sample line is `name{labels} value` with a numeric value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    /// The metrics table of docs/webhooks-and-metrics.md names every
    /// family gopxe exports.
    #[test]
    fn the_docs_list_every_family() {
        let readme = include_str!("../docs/webhooks-and-metrics.md");
        let text = Metrics::default().render(&[("install", 0)], 0, LogCounts::default());
        for name in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = name.split(' ').next().unwrap_or(name);
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{name} is not in docs/webhooks-and-metrics.md"
            );
        }
    }
}
