//! The Event writer both daemons use: Events (events.k8s.io/v1) on the
//! objects they act on, published off the hot path. The daemon queues, a
//! background task publishes, so a slow or failing events API never delays
//! what the daemon is there for (status writes, announcements).
//!
//! Events are written directly (a create whose reply is not parsed) rather
//! than through kube-runtime's `Recorder`: the daemons already record an
//! Event only when something changes, so the Recorder's per-Event cache
//! (thousands of entries kept minutes) would only cost memory, and parsing
//! each created Event back costs CPU. There is no deduplication here for
//! the same reason; what a daemon may need instead is a bound: a queue
//! (what does not fit is dropped and counted in one log line per burst), a
//! rate ([`TokenBucket`]) and a number in flight ([`Limits`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Resource;
use kube::api::PostParams;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Who records the Events (`reportingController`, `reportingInstance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// The component, e.g. `ferrolb-controller`.
    pub controller: String,
    /// This instance of it (a Pod or node name).
    pub instance: String,
}

/// What one Event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// The reason (`kubectl get events` REASON), a fixed word.
    pub reason: &'static str,
    /// The action taken or failed, a fixed word.
    pub action: &'static str,
    /// The human-readable message.
    pub message: String,
}

/// The events.k8s.io/v1 Event saying `note` about `regarding`.
pub fn event(reporter: &Reporter, regarding: ObjectReference, note: Note) -> Event {
    let name = regarding.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            // A generateName must itself be a valid name prefix: a trailing
            // dot is refused by the real API server, a dash is not.
            generate_name: Some(format!("{name}-")),
            // A cluster-scoped object's Events (a Node's) live in `default`,
            // where kubectl looks for them.
            namespace: regarding
                .namespace
                .clone()
                .or_else(|| Some("default".into())),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        type_: Some(if note.warning { "Warning" } else { "Normal" }.into()),
        reason: Some(note.reason.into()),
        action: Some(note.action.into()),
        note: Some(note.message),
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(reporter.instance.clone()),
        regarding: Some(regarding),
        ..Event::default()
    }
}

/// Creates the Event without parsing the reply.
pub async fn create(client: &kube::Client, event: &Event) -> Result<(), kube::Error> {
    let url = Event::url_path(&(), event.metadata.namespace.as_deref());
    let body = serde_json::to_vec(event).map_err(kube::Error::SerdeError)?;
    let request = kube::core::Request::new(url)
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await.map(|_| ())
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

/// How a daemon's Events are bounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Events that may wait for publication; more are dropped.
    pub queue: usize,
    /// Events published concurrently.
    pub in_flight: usize,
    /// At most this many Events a second on average, and this many back to
    /// back after a quiet spell (a [`TokenBucket`]); `None`: no rate limit.
    pub rate: Option<(f64, f64)>,
}

/// How long an Event waits before looking again for a gap in the daemon's
/// own writes (see [`EventSink::spawn`]).
const YIELD_TO_WRITES: Duration = Duration::from_millis(20);
/// At most this many waits (5 s) before an Event is published anyway.
const MAX_YIELDS: u32 = 250;

/// A handle that queues Events for publication.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<(ObjectReference, Note)>,
    /// Events dropped since the last report.
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// Starts the publishing task. `busy` tells whether the daemon's own
    /// writes are in flight: Events wait for a gap (5 s at most), so that a
    /// burst of work gets the API server's attention first.
    pub fn spawn(
        client: kube::Client,
        reporter: Reporter,
        limits: Limits,
        busy: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<(ObjectReference, Note)>(limits.queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = dropped.clone();
        let queued = tx.downgrade();
        let busy = Arc::new(busy);
        let mut bucket = limits
            .rate
            .map(|(rate, burst)| TokenBucket::new(rate, burst, Instant::now()));
        tokio::spawn(async move {
            futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
                // Tokens are taken in queue order, before an Event may start.
                .then(move |item| {
                    let wait = bucket.as_mut().map(|b| b.take(Instant::now()));
                    async move {
                        if let Some(wait) = wait.filter(|w| !w.is_zero()) {
                            tokio::time::sleep(wait).await;
                        }
                        item
                    }
                })
                .for_each_concurrent(limits.in_flight.max(1), |(regarding, note)| {
                    let (client, busy, counted) = (client.clone(), busy.clone(), counted.clone());
                    let reason = note.reason;
                    let event = event(&reporter, regarding, note);
                    let queued = queued.clone();
                    async move {
                        // Bounded, so that a steady stream of writes cannot starve Events.
                        for _ in 0..MAX_YIELDS {
                            if !busy() {
                                break;
                            }
                            tokio::time::sleep(YIELD_TO_WRITES).await;
                        }
                        if let Err(e) = create(&client, &event).await {
                            tracing::warn!(reason, error = %e, "could not record event");
                        }
                        // The burst is over once the queue is empty (or gone).
                        if queued
                            .upgrade()
                            .is_none_or(|tx| tx.capacity() == tx.max_capacity())
                        {
                            report_dropped(&counted);
                        }
                    }
                })
                .await;
        });
        Self { tx, dropped }
    }

    /// Queues an Event saying `note` about `regarding`; when the queue is
    /// full it is dropped and counted.
    pub fn record(&self, regarding: ObjectReference, note: Note) {
        if self.tx.try_send((regarding, note)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One log line for the Events dropped since the last one, if any.
fn report_dropped(dropped: &AtomicU64) {
    let n = dropped.swap(0, Ordering::Relaxed);
    if n > 0 {
        tracing::warn!(
            dropped = n,
            "events dropped: more at once than the event queue holds"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_names_the_object_reason_and_reporter() {
        let regarding = ObjectReference {
            kind: Some("Service".into()),
            namespace: Some("default".into()),
            name: Some("web".into()),
            ..ObjectReference::default()
        };
        let reporter = Reporter {
            controller: "ferrolb-speaker".into(),
            instance: "node1".into(),
        };
        // (warning, the Event's type)
        for (warning, type_) in [(false, "Normal"), (true, "Warning")] {
            let note = Note {
                warning,
                reason: "nodeAssigned",
                action: "Announce",
                message: "note".into(),
            };
            let e = event(&reporter, regarding.clone(), note);
            assert_eq!(e.metadata.generate_name.as_deref(), Some("web-"));
            assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
            assert_eq!(e.type_.as_deref(), Some(type_));
            assert_eq!(e.reason.as_deref(), Some("nodeAssigned"));
            assert_eq!(e.action.as_deref(), Some("Announce"));
            assert_eq!(e.note.as_deref(), Some("note"));
            assert_eq!(e.reporting_controller.as_deref(), Some("ferrolb-speaker"));
            assert_eq!(e.reporting_instance.as_deref(), Some("node1"));
            assert_eq!(e.regarding, Some(regarding.clone()));
            assert!(
                e.event_time.is_some(),
                "eventTime is required by events.k8s.io/v1"
            );
        }
    }

    #[test]
    fn an_event_lives_in_its_objects_namespace_or_default_for_a_cluster_scoped_one() {
        let reporter = Reporter {
            controller: "ferrolb-speaker".into(),
            instance: "node1".into(),
        };
        let note = || Note {
            warning: true,
            reason: "bfdSessionDown",
            action: "DetectFailure",
            message: "down".into(),
        };
        // (rule, the object's namespace, the Event's)
        for (rule, object_ns, want) in [
            ("a namespaced object: its namespace", Some("shop"), "shop"),
            (
                "a Node: default, the object's namespace left empty",
                None,
                "default",
            ),
        ] {
            let regarding = ObjectReference {
                kind: Some("Node".into()),
                name: Some("node1".into()),
                namespace: object_ns.map(String::from),
                ..ObjectReference::default()
            };
            let e = event(&reporter, regarding, note());
            assert_eq!(e.metadata.namespace.as_deref(), Some(want), "{rule}");
            assert_eq!(
                e.regarding.and_then(|r| r.namespace).as_deref(),
                object_ns,
                "{rule}: the reference is not changed"
            );
        }
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
