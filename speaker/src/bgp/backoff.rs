//! Reconnect delays: 1 s doubling up to 2 minutes, each with random jitter
//! so that many speakers do not hit a restarted router in step.

use std::time::Duration;

/// The first delay.
pub const INITIAL: Duration = Duration::from_secs(1);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(120);

/// Jitter: each delay is drawn from `[base * (1 - J), base * (1 + J)]`.
const JITTER: f64 = 0.2;

/// The reconnect delay schedule of one session.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A schedule whose jitter comes from `seed` (fixed in tests).
    pub fn new(seed: u64) -> Self {
        Self {
            attempt: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The delay before the next attempt; each call doubles the base.
    pub fn next_delay(&mut self) -> Duration {
        let base = INITIAL
            .checked_mul(1u32 << self.attempt.min(16))
            .unwrap_or(MAX)
            .min(MAX);
        self.attempt = self.attempt.saturating_add(1);
        let factor = 1.0 - JITTER + 2.0 * JITTER * self.rng.f64();
        base.mul_f64(factor).min(MAX)
    }

    /// Back to the first delay (after a session got established).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_one_second_to_two_minutes_with_jitter() {
        let mut backoff = Backoff::new(7);
        let bases = [1u64, 2, 4, 8, 16, 32, 64, 120, 120, 120];
        let mut exact = 0;
        for base in bases {
            let d = backoff.next_delay().as_secs_f64();
            let b = base as f64;
            assert!(
                d >= b * (1.0 - JITTER) - 1e-9 && d <= (b * (1.0 + JITTER)).min(120.0) + 1e-9,
                "{d} outside the jitter band of {b}"
            );
            if (d - b).abs() < 1e-6 {
                exact += 1;
            }
        }
        assert!(exact < bases.len(), "jitter moves the delays");
        backoff.reset();
        assert!(backoff.next_delay() <= INITIAL.mul_f64(1.0 + JITTER));
    }

    #[test]
    fn two_speakers_do_not_retry_in_step() {
        let mut a = Backoff::new(1);
        let mut b = Backoff::new(2);
        let same = (0..5).filter(|_| a.next_delay() == b.next_delay()).count();
        assert!(same < 5);
    }
}
