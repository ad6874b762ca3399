//! The `nodeAssigned` Event, recorded on a Service when this node starts
//! announcing it, off the hot path: the main loop queues, a background task
//! publishes, so a slow events API never delays an announcement.
//!
//! A speaker starting on a cluster of 10,000 Services takes over all of
//! them at once. Its Events must not compete with its own lists and
//! announcements (nor those of the other speakers) for the API server, so
//! they are published at a bounded rate; what does not fit the queue is
//! dropped and counted in one log line per burst. They are written directly
//! (events.k8s.io/v1 create) rather than through kube-runtime's `Recorder`,
//! whose per-Event cache would keep one entry per Service for minutes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Resource;
use kube::api::PostParams;
use tokio::sync::mpsc;

use crate::announce::Protocol;

/// The Event's reason, as MetalLB records it.
pub const NODE_ASSIGNED: &str = "nodeAssigned";
/// How many Events may wait before new ones are dropped.
const QUEUE: usize = 1024;
/// Events published per second, on average.
const RATE_PER_SECOND: f64 = 20.0;
/// Events published back to back after a quiet spell.
const BURST: f64 = 50.0;

/// The Event's message.
pub fn node_assigned_message(node: &str, protocol: Protocol) -> String {
    format!("announcing from node \"{node}\" with protocol \"{protocol}\"")
}

/// The events.k8s.io/v1 `nodeAssigned` Event on `regarding`, reported by
/// `reporter` from `instance` (the node).
pub fn node_assigned_event(
    reporter: &str,
    instance: &str,
    regarding: ObjectReference,
    note: String,
) -> Event {
    let name = regarding.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            // A generateName must itself be a valid name prefix: a trailing
            // dot is refused by the real API server, a dash is not.
            generate_name: Some(format!("{name}-")),
            namespace: regarding.namespace.clone(),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        type_: Some("Normal".into()),
        reason: Some(NODE_ASSIGNED.into()),
        action: Some("Announce".into()),
        note: Some(note),
        reporting_controller: Some(reporter.into()),
        reporting_instance: Some(instance.into()),
        regarding: Some(regarding),
        ..Event::default()
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    /// Tokens left; below zero when callers were told to wait for them.
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token at `now`: how long to wait before using it.
    pub fn take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now.max(self.at);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// A handle that queues Events for publication.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<(ObjectReference, String)>,
    /// Events dropped since the last report.
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// Starts the publishing task; Events name `reporter` as their source
    /// and `instance` (the node) as the reporting instance.
    pub fn spawn(client: kube::Client, reporter: &str, instance: &str) -> Self {
        let (tx, mut rx) = mpsc::channel::<(ObjectReference, String)>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = dropped.clone();
        let (reporter, instance) = (reporter.to_owned(), instance.to_owned());
        tokio::spawn(async move {
            let mut bucket = TokenBucket::new(RATE_PER_SECOND, BURST, Instant::now());
            while let Some((regarding, note)) = rx.recv().await {
                let wait = bucket.take(Instant::now());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let event = node_assigned_event(&reporter, &instance, regarding, note);
                if let Err(e) = create(&client, &event).await {
                    tracing::warn!(error = %e, "could not record the nodeAssigned event");
                }
                if rx.is_empty() {
                    let n = counted.swap(0, Ordering::Relaxed);
                    if n > 0 {
                        tracing::warn!(
                            dropped = n,
                            "nodeAssigned events dropped: more takeovers at once than the event queue holds"
                        );
                    }
                }
            }
        });
        Self { tx, dropped }
    }

    /// Queues a `nodeAssigned` Event on the Service `reference` points to.
    pub fn node_assigned(&self, reference: ObjectReference, node: &str, protocol: Protocol) {
        if self
            .tx
            .try_send((reference, node_assigned_message(node, protocol)))
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Creates the Event without parsing the reply.
async fn create(client: &kube::Client, event: &Event) -> Result<(), kube::Error> {
    let url = Event::url_path(&(), event.metadata.namespace.as_deref());
    let body = serde_json::to_vec(event).map_err(kube::Error::SerdeError)?;
    let request = kube::core::Request::new(url)
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_node_and_protocol() {
        assert_eq!(
            node_assigned_message("node1", Protocol::Layer2),
            "announcing from node \"node1\" with protocol \"layer2\""
        );
    }

    #[test]
    fn the_event_names_the_service_reason_and_reporter() {
        let regarding = ObjectReference {
            kind: Some("Service".into()),
            namespace: Some("default".into()),
            name: Some("web".into()),
            ..ObjectReference::default()
        };
        let e = node_assigned_event("ferrolb-speaker", "node1", regarding, "note".into());
        assert_eq!(e.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.reason.as_deref(), Some(NODE_ASSIGNED));
        assert_eq!(e.note.as_deref(), Some("note"));
        assert_eq!(e.reporting_controller.as_deref(), Some("ferrolb-speaker"));
        assert_eq!(e.reporting_instance.as_deref(), Some("node1"));
        assert!(
            e.event_time.is_some(),
            "eventTime is required by events.k8s.io/v1"
        );
    }

    #[test]
    fn token_bucket_rules() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // (rule, rate, burst, take times after t0, the waits expected)
        type Case<'a> = (&'a str, f64, f64, Vec<Duration>, Vec<Duration>);
        let cases: Vec<Case> = vec![
            (
                "a_full_bucket_lets_a_burst_through_at_once",
                10.0,
                3.0,
                vec![ms(0), ms(0), ms(0)],
                vec![ms(0), ms(0), ms(0)],
            ),
            (
                "past_the_burst_each_token_waits_one_period_more",
                10.0,
                2.0,
                vec![ms(0), ms(0), ms(0), ms(0)],
                vec![ms(0), ms(0), ms(100), ms(200)],
            ),
            (
                "tokens_come_back_with_time",
                10.0,
                1.0,
                vec![ms(0), ms(100), ms(200)],
                vec![ms(0), ms(0), ms(0)],
            ),
            (
                "a_long_quiet_spell_saves_no_more_than_the_burst",
                10.0,
                2.0,
                vec![ms(60_000), ms(60_000), ms(60_000)],
                vec![ms(0), ms(0), ms(100)],
            ),
            (
                "time_going_backwards_adds_no_tokens",
                10.0,
                1.0,
                vec![ms(100), ms(50)],
                vec![ms(0), ms(100)],
            ),
        ];
        for (rule, rate, burst, at, want) in cases {
            let mut bucket = TokenBucket::new(rate, burst, t0);
            let got: Vec<Duration> = at.iter().map(|d| bucket.take(t0 + *d)).collect();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    g.abs_diff(*w) < Duration::from_micros(10),
                    "{rule}: got {got:?}, want {want:?}"
                );
            }
        }
    }
}
