//! Counters and gauges of the running daemon, exposed on `/metrics` in the OpenMetrics
//! text format by `prometheus-client` (no hand-formatted text). Every part of the daemon
//! counts here; the HTTP server only renders it, so nothing imports the server to count.
//!
//! Nothing secret is a label value: labels are fixed words (`result`, `sink`, `conn`).

use std::sync::LazyLock;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

use crate::daemon::sink::SinkKind;

type Labels = Vec<(String, String)>;

/// The daemon's metrics; handles into one registry.
pub struct Metrics {
    pub inputs_accepted: Counter,
    pub inputs_rejected: Counter,
    pub notices: Counter,
    pub mqtt_delivered: Counter,
    pub emails_sent: Counter,
    pub emails_failed: Counter,
    pub webhooks_sent: Counter,
    pub webhooks_failed: Counter,
    pub mqtt_in_up: Gauge,
    pub mqtt_out_up: Gauge,
    /// Recovered and past the echo drain: notices flow.
    pub live: Gauge,
    /// HTTP: connections being served, accept errors (EMFILE and the like), requests
    /// refused by a rate limit, acknowledgement-link clicks by outcome.
    pub http_connections: Gauge,
    pub http_accept_errors: Counter,
    pub http_rate_limited: Counter,
    pub ack_clicks: Family<Labels, Counter>,
    /// Console: logins by result, decisions and other actions by command.
    pub console_logins: Family<Labels, Counter>,
    pub console_actions: Family<Labels, Counter>,
    registry: Registry,
}

fn labeled(f: &Family<Labels, Counter>, k: &str, v: &str) -> Counter {
    f.get_or_create(&vec![(k.to_string(), v.to_string())])
        .clone()
}

/// A new metric registered under `name`; the handle to count with.
fn add<M: Metric + Clone + Default>(r: &mut Registry, name: &str, help: &str) -> M {
    let m = M::default();
    r.register(name, help, m.clone());
    m
}

/// The HTTP server's and the console's metrics.
struct Http {
    connections: Gauge,
    accept_errors: Counter,
    rate_limited: Counter,
    ack_clicks: Family<Labels, Counter>,
    console_logins: Family<Labels, Counter>,
    console_actions: Family<Labels, Counter>,
}

impl Http {
    fn register(r: &mut Registry) -> Http {
        Http {
            connections: add(r, "yingji_http_connections", "HTTP connections being served"),
            accept_errors: add(
                r,
                "yingji_http_accept_errors",
                "HTTP accept failures (e.g. out of file descriptors); the server pauses and goes on",
            ),
            rate_limited: add(
                r,
                "yingji_http_rate_limited",
                "HTTP requests refused by a rate limit",
            ),
            ack_clicks: add(
                r,
                "yingji_ack_link_clicks",
                "Acknowledgement-link POSTs, by outcome",
            ),
            console_logins: add(
                r,
                "yingji_console_logins",
                "Console login attempts, by result",
            ),
            console_actions: add(
                r,
                "yingji_console_actions",
                "Console actions journaled, by command",
            ),
        }
    }
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::default();
        let inputs: Family<Labels, Counter> =
            add(&mut r, "yingji_inputs", "MQTT inputs handled, by result");
        let notices = add(&mut r, "yingji_notices", "Notices made");
        let deliveries: Family<Labels, Counter> =
            add(&mut r, "yingji_deliveries", "Deliveries confirmed, by sink");
        let emails_failed = add(
            &mut r,
            "yingji_email_failures",
            "Failed email attempts (retried)",
        );
        let webhooks_failed = add(
            &mut r,
            "yingji_webhook_failures",
            "Failed webhook attempts (retried)",
        );
        let conn: Family<Labels, Gauge> =
            add(&mut r, "yingji_mqtt_connected", "MQTT connections up");
        let live = add(
            &mut r,
            "yingji_live",
            "Recovered and delivering (1) or still recovering (0)",
        );
        let http = Http::register(&mut r);
        r.register_collector(Box::new(Health));
        let gauge = |k: &str, v: &str| {
            conn.get_or_create(&vec![(k.to_string(), v.to_string())])
                .clone()
        };
        Metrics {
            inputs_accepted: labeled(&inputs, "result", "accepted"),
            inputs_rejected: labeled(&inputs, "result", "rejected"),
            notices,
            mqtt_delivered: labeled(&deliveries, "sink", SinkKind::Mqtt.as_str()),
            emails_sent: labeled(&deliveries, "sink", SinkKind::Email.as_str()),
            webhooks_sent: labeled(&deliveries, "sink", SinkKind::Webhook.as_str()),
            emails_failed,
            webhooks_failed,
            mqtt_in_up: gauge("conn", "in"),
            mqtt_out_up: gauge("conn", "out"),
            live,
            http_connections: http.connections,
            http_accept_errors: http.accept_errors,
            http_rate_limited: http.rate_limited,
            ack_clicks: http.ack_clicks,
            console_logins: http.console_logins,
            console_actions: http.console_actions,
            registry: r,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut s = String::new();
        encode(&mut s, &self.registry).expect("writing to a String cannot fail");
        s
    }
}

/// The sinks' health and the counted faults of daemon/health.rs, read at each scrape:
/// `yingji_sink_degraded{sink}`, `yingji_sink_failures_total{sink}`,
/// `yingji_faults_total{kind}`.
#[derive(Debug)]
struct Health;

impl Collector for Health {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (sinks, faults) = crate::daemon::health::state();
        let degraded = Family::<Labels, Gauge>::default();
        let failures = Family::<Labels, Counter>::default();
        for (sink, bad, n) in sinks {
            let l = vec![("sink".to_string(), sink)];
            degraded.get_or_create(&l).set(i64::from(bad));
            failures.get_or_create(&l).inc_by(n);
        }
        let counted = Family::<Labels, Counter>::default();
        for (kind, n) in faults {
            counted
                .get_or_create(&vec![("kind".to_string(), kind.to_string())])
                .inc_by(n);
        }
        degraded.encode(enc.encode_descriptor(
            "yingji_sink_degraded",
            "1 when the sink failed repeatedly and has not recovered",
            None,
            degraded.metric_type(),
        )?)?;
        failures.encode(enc.encode_descriptor(
            "yingji_sink_failures",
            "Failed attempts, by sink",
            None,
            failures.metric_type(),
        )?)?;
        counted.encode(enc.encode_descriptor(
            "yingji_faults",
            "Faults and ignored inputs, by kind",
            None,
            counted.metric_type(),
        )?)
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Adds `n` to a counter.
pub fn inc(c: &Counter, n: u64) {
    c.inc_by(n);
}

/// Sets a 0/1 gauge.
pub fn set(g: &Gauge, v: bool) {
    g.set(i64::from(v));
}

/// Reads a 0/1 gauge.
pub fn is_set(g: &Gauge) -> bool {
    g.get() != 0
}

/// Counts one event under `label` of a family (ack outcomes, console actions).
pub fn count(f: &Family<Labels, Counter>, key: &str, label: &str) {
    f.get_or_create(&vec![(key.to_string(), label.to_string())])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_their_labels_and_gauges() {
        let m = Metrics::new();
        inc(&m.inputs_accepted, 3);
        inc(&m.webhooks_sent, 2);
        set(&m.mqtt_in_up, true);
        count(&m.ack_clicks, "outcome", "recorded");
        let t = m.render();
        for want in [
            "yingji_inputs_total{result=\"accepted\"} 3\n",
            "yingji_inputs_total{result=\"rejected\"} 0\n",
            "yingji_deliveries_total{sink=\"webhook\"} 2\n",
            "yingji_mqtt_connected{conn=\"in\"} 1\n",
            "yingji_mqtt_connected{conn=\"out\"} 0\n",
            "yingji_ack_link_clicks_total{outcome=\"recorded\"} 1\n",
            "# TYPE yingji_notices counter\n",
            "# EOF\n",
        ] {
            assert!(t.contains(want), "{want:?} missing in:\n{t}");
        }
    }
}
