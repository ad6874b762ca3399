//! The watcher loop both daemons run, one per kind they read: it keeps a
//! store (or the daemon's own sink) current, retries failures with
//! [`WatchBackoff`], and sends the daemon's loop a small note of what
//! happened. What the note says is the daemon's choice ([`Seen`] in, its own
//! note type out); the watcher decides nothing.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

/// What a watcher saw, handed to the daemon's note function.
#[derive(Debug, Clone, Copy)]
pub enum Seen<'a, K> {
    /// An object was added, changed or deleted (after the store was complete).
    Changed(&'a K),
    /// An object of a (re)list; the store is swapped in at [`Seen::Synced`].
    Listed(&'a K),
    /// A full (re)list finished: the store is complete.
    Synced,
    /// The kind is not served (a CRD not installed): told once per outage; it
    /// counts as synced and empty, and is retried in the background.
    Absent,
}

/// Starts a reflector over `api` with `config`, returning its store. `trim`
/// drops what the daemon never reads before an object is stored (managed
/// fields, ...); `note` turns what was seen into the daemon's note, sent on
/// `tx` once the store has it. `source` names the watch in log lines.
pub fn spawn<K, S, N>(
    api: Api<K>,
    config: watcher::Config,
    source: S,
    tx: UnboundedSender<N>,
    trim: impl Fn(&mut K) + Send + 'static,
    note: impl FnMut(Seen<'_, K>) -> Option<N> + Send + 'static,
) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    S: Debug + Send + 'static,
    N: Send + 'static,
{
    let (store, mut writer) = reflector::store();
    spawn_with(api, config, source, tx, note, move |event: Event<K>| {
        writer.apply_watcher_event(&event.modify(&trim));
    });
    store
}

/// Runs a watcher over `api` with `config`, handing every event to `sink`
/// (the daemon's own store) and then the note `note` makes of it to `tx`.
/// Failures are retried with [`WatchBackoff`]; a 404 is reported once per
/// outage as [`Seen::Absent`], other failures are logged.
pub fn spawn_with<K, S, N>(
    api: Api<K>,
    config: watcher::Config,
    source: S,
    tx: UnboundedSender<N>,
    mut note: impl FnMut(Seen<'_, K>) -> Option<N> + Send + 'static,
    mut sink: impl FnMut(Event<K>) + Send + 'static,
) where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
    S: Debug + Send + 'static,
    N: Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config)
            .backoff(WatchBackoff::new())
            .boxed();
        let mut absent = false;
        while let Some(item) = stream.next().await {
            let change = match item {
                Ok(event) => {
                    let change = match &event {
                        Event::Apply(o) | Event::Delete(o) => note(Seen::Changed(o)),
                        Event::InitApply(o) => note(Seen::Listed(o)),
                        Event::Init => None,
                        Event::InitDone => {
                            absent = false;
                            note(Seen::Synced)
                        }
                    };
                    sink(event);
                    change
                }
                // Report absence once per outage, not on every backoff retry.
                Err(e) if is_not_found(&e) => {
                    if std::mem::replace(&mut absent, true) {
                        None
                    } else {
                        tracing::info!(
                            ?source,
                            "resource not served by the API server; treated as empty"
                        );
                        note(Seen::Absent)
                    }
                }
                Err(e) => {
                    tracing::warn!(?source, error = %e, "watch failed; retrying with backoff");
                    None
                }
            };
            // The loop is gone: the daemon is stopping.
            if let Some(change) = change
                && tx.send(change).is_err()
            {
                break;
            }
        }
    });
}

/// A 404 on list or watch: the kind (a CRD) is not installed.
fn is_not_found(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 404,
        watcher::Error::WatchError(s) => s.code == 404,
        _ => false,
    }
}

/// The first retry's delay.
pub const INITIAL: Duration = Duration::from_millis(800);
/// The longest delay before jitter.
pub const MAX: Duration = Duration::from_secs(30);
/// A failure this long after the previous retry starts again from
/// [`INITIAL`]: the API server has been fine meanwhile.
pub const RESET_AFTER: Duration = Duration::from_secs(120);

/// The retry delays of one watcher: 0.8 s doubling up to 30 s, each
/// stretched by a random 0-100 % so that every watcher of every daemon does
/// not hit a recovering API server in step; back to the start after any
/// success (the stream resets it) or a quiet [`RESET_AFTER`]. The figures are
/// client-go's reflector's, which kube-runtime's default also uses.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    /// Retries in a row so far.
    attempt: u32,
    /// When the previous retry was scheduled.
    last: Option<Instant>,
    rng: fastrand::Rng,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchBackoff {
    /// A schedule with random jitter.
    pub fn new() -> Self {
        Self::with_rng(fastrand::Rng::new())
    }

    /// A schedule whose jitter comes from `rng` (seeded in tests).
    pub fn with_rng(rng: fastrand::Rng) -> Self {
        Self {
            attempt: 0,
            last: None,
            rng,
        }
    }

    /// The delay of the `attempt`-th retry in a row (from 0), before jitter.
    pub fn base(attempt: u32) -> Duration {
        INITIAL
            .checked_mul(1u32 << attempt.min(16))
            .map_or(MAX, |d| d.min(MAX))
    }

    /// The delay before the next retry, asked at `now`.
    pub fn next_at(&mut self, now: Instant) -> Duration {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) > RESET_AFTER)
        {
            self.attempt = 0;
        }
        self.last = Some(now);
        let base = Self::base(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        base.mul_f64(1.0 + self.rng.f64())
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    /// Never ends: a watcher retries for as long as the daemon runs.
    fn next(&mut self) -> Option<Duration> {
        Some(self.next_at(Instant::now()))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn backoff_doubles_from_800_ms_up_to_30_s() {
        // (attempt in a row, base delay)
        let cases = [
            (0, 0.8),
            (1, 1.6),
            (2, 3.2),
            (3, 6.4),
            (4, 12.8),
            (5, 25.6),
            (6, 30.0),
            (7, 30.0),
            (40, 30.0),
            (u32::MAX, 30.0),
        ];
        for (attempt, want) in cases {
            let got = WatchBackoff::base(attempt);
            assert!(
                got.abs_diff(secs(want)) < Duration::from_micros(1),
                "attempt {attempt}: got {got:?}, want {want} s"
            );
        }
    }

    #[test]
    fn backoff_jitter_stretches_each_delay_by_up_to_its_length() {
        let mut backoff = WatchBackoff::with_rng(fastrand::Rng::with_seed(7));
        let t0 = Instant::now();
        let mut stretched = 0;
        for attempt in 0..10 {
            let base = WatchBackoff::base(attempt);
            let got = backoff.next_at(t0 + secs(f64::from(attempt)));
            assert!(got >= base && got < base * 2, "{attempt}: {got:?}");
            if got > base {
                stretched += 1;
            }
        }
        assert!(stretched > 0, "jitter moves the delays");
    }

    #[test]
    fn backoff_starts_again_after_success_or_a_quiet_spell() {
        // (rule, seconds after t0 at which retries are asked, resets before
        // each retry, the base delays expected)
        type Case<'a> = (&'a str, Vec<f64>, Vec<bool>, Vec<f64>);
        let cases: Vec<Case> = vec![
            (
                "failures_in_a_row_double",
                vec![0.0, 1.0, 3.0],
                vec![false, false, false],
                vec![0.8, 1.6, 3.2],
            ),
            (
                "a_success_resets_the_schedule",
                vec![0.0, 1.0, 3.0, 4.0],
                vec![false, false, true, false],
                vec![0.8, 1.6, 0.8, 1.6],
            ),
            (
                "a_failure_long_after_the_last_retry_starts_again",
                vec![0.0, 1.0, 200.0],
                vec![false, false, false],
                vec![0.8, 1.6, 0.8],
            ),
            (
                "a_failure_within_the_reset_time_keeps_doubling",
                vec![0.0, 1.0, 100.0],
                vec![false, false, false],
                vec![0.8, 1.6, 3.2],
            ),
        ];
        let t0 = Instant::now();
        for (rule, at, resets, want) in cases {
            let mut backoff = WatchBackoff::with_rng(fastrand::Rng::with_seed(1));
            let got: Vec<Duration> = at
                .iter()
                .zip(&resets)
                .map(|(s, reset)| {
                    if *reset {
                        backoff.reset();
                    }
                    backoff.next_at(t0 + secs(*s))
                })
                .collect();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    *g >= secs(*w) && *g < secs(*w) * 2,
                    "{rule}: got {got:?}, want bases {want:?}"
                );
            }
        }
    }

    #[test]
    fn backoff_never_gives_up() {
        let mut backoff = WatchBackoff::new();
        assert!((0..100).all(|_| backoff.next().is_some()));
    }
}
