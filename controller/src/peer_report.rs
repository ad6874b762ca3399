//! What `ferrolb status peers` reports: the BGP sessions of every speaker
//! (state, uptime, prefixes sent), read from each speaker's `/metrics`.
//! Parsing and tabulating are pure; [`scrape`] is the one network call.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

/// The speaker Pods' labels (as MetalLB's manifests label them).
pub const SPEAKER_SELECTOR: &str = "app=metallb,component=speaker";
/// How long one speaker's metrics may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// `metallb_bgp_session_up{peer}`: 1 while Established.
const SESSION_UP: &str = "metallb_bgp_session_up";
/// `metallb_bgp_announced_prefixes_total{peer}`: prefixes the peer has from us.
const ANNOUNCED: &str = "metallb_bgp_announced_prefixes_total";
/// `ferrolb_bgp_session_established_timestamp_seconds{peer}`: when the
/// session last reached Established (Unix time).
const ESTABLISHED: &str = "ferrolb_bgp_session_established_timestamp_seconds";

/// One session of one node, or a node whose metrics could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerRow {
    /// The node.
    pub node: String,
    /// The peer (`address:port`), empty when the metrics were unreadable.
    pub peer: String,
    /// `Established`, `Down`, or `unknown: <why>`.
    pub state: String,
    /// Seconds since the session was established (when it is).
    pub uptime_seconds: Option<f64>,
    /// Prefixes announced on the session.
    pub prefixes_sent: Option<u64>,
}

impl PeerRow {
    /// Whether the session is Established.
    pub fn up(&self) -> bool {
        self.state == "Established"
    }
}

/// Each running speaker's node and the address its metrics listen on (a
/// host-network Pod's IP is its node's), by node.
pub fn speakers(pods: &[Pod]) -> BTreeMap<String, IpAddr> {
    pods.iter()
        .filter_map(|p| {
            let node = p.spec.as_ref()?.node_name.clone()?;
            let ip = p.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
            Some((node, ip))
        })
        .collect()
}

/// The plain-HTTP client [`scrape`] uses, one for every speaker.
pub type MetricsClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

/// A [`MetricsClient`].
pub fn metrics_client() -> MetricsClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// The text of `http://address:port/metrics`, or why it could not be read.
pub async fn scrape(client: &MetricsClient, address: IpAddr, port: u16) -> Result<String, String> {
    use http_body_util::BodyExt;

    let url = format!("http://{}/metrics", SocketAddr::new(address, port));
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let fetch = async {
        let response = client.get(uri).await.map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|e| format!("{url}: {e}"))
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err(format!("{url}: no answer in {SCRAPE_TIMEOUT:?}")))
}

/// The sessions in one node's metrics text (sorted by peer), or one row
/// saying why the node's metrics are unknown; `now` is the Unix time the
/// uptimes are counted to.
pub fn rows(node: &str, metrics: Result<&str, &str>, now: f64) -> Vec<PeerRow> {
    let text = match metrics {
        Ok(text) => text,
        Err(why) => {
            return vec![PeerRow {
                node: node.into(),
                peer: String::new(),
                state: format!("unknown: {why}"),
                uptime_seconds: None,
                prefixes_sent: None,
            }];
        }
    };
    let up = samples(text, SESSION_UP);
    let announced = samples(text, ANNOUNCED);
    let established_at = samples(text, ESTABLISHED);
    up.iter()
        .map(|(peer, value)| {
            let established = *value >= 1.0;
            PeerRow {
                node: node.into(),
                peer: peer.clone(),
                state: if established { "Established" } else { "Down" }.into(),
                uptime_seconds: established_at
                    .get(peer)
                    .filter(|_| established)
                    .map(|at| (now - at).max(0.0)),
                // Gauges of whole prefixes; anything else is not a count.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                prefixes_sent: announced
                    .get(peer)
                    .filter(|v| **v >= 0.0)
                    .map(|v| *v as u64),
            }
        })
        .collect()
}

/// The values of metric `name` by their `peer` label.
fn samples(text: &str, name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let Some(peer) = label(labels, "peer") else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            out.insert(peer, v);
        }
    }
    out
}

/// The value of label `key` in a Prometheus label list (`a="x",b="y"`).
fn label(labels: &str, key: &str) -> Option<String> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let end = labels[start..].find('"')? + start;
    Some(labels[start..end].to_string())
}

/// The rows as table lines, header first.
pub fn table(rows: &[PeerRow]) -> Vec<Vec<String>> {
    let header = ["NODE", "PEER", "STATE", "UPTIME", "PREFIXES SENT"]
        .map(str::to_string)
        .to_vec();
    std::iter::once(header)
        .chain(rows.iter().map(|r| {
            vec![
                r.node.clone(),
                if r.peer.is_empty() {
                    "-".into()
                } else {
                    r.peer.clone()
                },
                r.state.clone(),
                r.uptime_seconds.map_or_else(|| "-".into(), uptime_text),
                r.prefixes_sent
                    .map_or_else(|| "-".into(), |n| n.to_string()),
            ]
        }))
        .collect()
}

/// `3d4h`, `5h2m`, `7m3s`, `42s`, as kubectl shows ages.
fn uptime_text(seconds: f64) -> String {
    // Whole seconds are enough for an uptime.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "# HELP metallb_bgp_session_up BGP session state\n\
metallb_bgp_session_up{peer=\"10.0.0.1:179\"} 1\n\
metallb_bgp_session_up{peer=\"[fd00::1]:179\"} 0\n\
metallb_bgp_announced_prefixes_total{peer=\"10.0.0.1:179\"} 3\n\
metallb_bgp_announced_prefixes_total{peer=\"[fd00::1]:179\"} 0\n\
ferrolb_bgp_session_established_timestamp_seconds{peer=\"10.0.0.1:179\"} 1000\n\
metallb_bgp_updates_total{peer=\"10.0.0.1:179\"} 9\n";

    #[test]
    fn sessions_are_read_from_the_speakers_metrics() {
        let got = rows("node1", Ok(METRICS), 4725.5);
        assert_eq!(
            got,
            vec![
                PeerRow {
                    node: "node1".into(),
                    peer: "10.0.0.1:179".into(),
                    state: "Established".into(),
                    uptime_seconds: Some(3725.5),
                    prefixes_sent: Some(3),
                },
                PeerRow {
                    node: "node1".into(),
                    peer: "[fd00::1]:179".into(),
                    state: "Down".into(),
                    uptime_seconds: None,
                    prefixes_sent: Some(0),
                },
            ]
        );
        assert!(got[0].up() && !got[1].up());
    }

    #[test]
    fn an_unreadable_node_is_one_unknown_row() {
        let got = rows("node2", Err("connection refused"), 0.0);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].state, "unknown: connection refused");
        assert!(!got[0].up(), "an unknown node is not up");
    }

    #[test]
    fn uptimes_read_like_kubectl_ages() {
        let cases = [
            (42.0, "42s"),
            (423.0, "7m3s"),
            (18_120.0, "5h2m"),
            (273_600.0, "3d4h"),
            (-1.0, "0s"),
        ];
        for (seconds, want) in cases {
            assert_eq!(uptime_text(seconds), want, "{seconds} s");
        }
    }

    #[test]
    fn table_has_a_header_and_dashes_for_unknowns() {
        let t = table(&rows("node2", Err("refused"), 0.0));
        assert_eq!(t[0], ["NODE", "PEER", "STATE", "UPTIME", "PREFIXES SENT"]);
        assert_eq!(t[1], ["node2", "-", "unknown: refused", "-", "-"]);
    }
}
