//! The embedded MQTT broker (rumqttd), started when the config has no `[mqtt]`.
//!
//! rumqttd traps (STACK-NOTES.md): `RouterConfig::default()` refuses every client and
//! panics on small segments, so every number is set; `start()` blocks forever, so it runs
//! on its own thread; a busy port is only logged, so the port is probed first and the
//! broker is checked with a real MQTT connect before anything relies on it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::daemon::mqtt::{self, Ev, Settings};

/// Where the embedded broker listens by default (CONTRACT.md).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1883";

/// Largest message the embedded broker takes (bigger ones than `max_payload_bytes`
/// still reach yingji, which rejects them with a reason).
const MAX_PAYLOAD: usize = 1024 * 1024;

fn config(listen: SocketAddr) -> rumqttd::Config {
    let router = rumqttd::RouterConfig {
        max_connections: 10_000,
        max_outgoing_packet_count: 200,
        max_segment_size: 4 * MAX_PAYLOAD,
        max_segment_count: 10,
        ..Default::default()
    };
    let server = rumqttd::ServerSettings {
        name: "yingji-embedded-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PAYLOAD,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    rumqttd::Config {
        id: 0,
        router,
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    }
}

/// Starts the broker on `listen` and waits until an MQTT client can connect to it.
/// Fails with a message an operator can act on when the port is taken or the broker
/// does not come up.
pub async fn start(listen: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| anyhow::anyhow!("embedded broker address {listen:?}: {e}"))?;
    if let Err(e) = std::net::TcpListener::bind(addr) {
        anyhow::bail!(
            "cannot start the embedded MQTT broker: {addr} is not free ({e}). Another broker \
             (mosquitto?) may be running there: point yingji at it with [mqtt] url = \
             \"mqtt://{addr}\" in the config, or stop it"
        );
    }
    let cfg = config(addr);
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(cfg);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })?;
    probe(addr, Duration::from_secs(10))
        .await
        .map_err(|e| anyhow::anyhow!("the embedded MQTT broker on {addr} did not come up: {e}"))?;
    Ok(addr)
}

/// Connects an MQTT client to `addr` and waits for its CONNACK.
pub async fn probe(addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let s = Settings::local(addr.port(), "yingji-probe");
    let (client, mut ev) = mqtt::client(&s, "yingji-probe", true, false);
    let deadline = tokio::time::sleep(within);
    tokio::pin!(deadline);
    let mut last = String::from("no answer");
    loop {
        tokio::select! {
            _ = &mut deadline => anyhow::bail!("{last}"),
            r = ev.poll() => match r {
                Ok(Ev::ConnAck { .. }) => break,
                Ok(_) => {}
                Err(e) => {
                    last = e.error;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while let Ok(e) = ev.poll().await {
            if matches!(e, Ev::OutDisconnect) {
                break;
            }
        }
    })
    .await;
    Ok(())
}
