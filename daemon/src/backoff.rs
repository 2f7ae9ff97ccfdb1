//! Exponential backoff with a cap and jitter, for reconnecting to the broker and retrying rows.

use std::time::Duration;

/// 1 s, 2 s, 4 s, ... up to `max`, each scaled by a random factor in [0.5, 1.0].
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            failures: 0,
        }
    }

    /// The delay before the next attempt; each call doubles the base up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let base = delay_for(self.initial, self.max, self.failures);
        self.failures = self.failures.saturating_add(1);
        jitter(base)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The un-jittered delay after `failures` failures.
pub fn delay_for(initial: Duration, max: Duration, failures: u32) -> Duration {
    initial
        .saturating_mul(2u32.saturating_pow(failures.min(30)))
        .min(max)
}

/// Scales `delay` by a random factor in [0.5, 1.0], so reconnecting clients spread out.
pub fn jitter(delay: Duration) -> Duration {
    use rand::Rng;
    delay.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(60));
        let bases: Vec<u64> = (0..9)
            .map(|n| delay_for(initial, max, n).as_secs())
            .collect();
        assert_eq!(bases, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        let mut backoff = Backoff::new(initial, max);
        for expected_base in [1.0, 2.0, 4.0] {
            let delay = backoff.next_delay().as_secs_f64();
            assert!(
                (expected_base * 0.5..=expected_base).contains(&delay),
                "{delay}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= initial);
    }
}
