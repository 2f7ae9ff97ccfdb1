//! Exponential backoff with a cap and jitter, for reconnecting (to the broker, to PostgreSQL)
//! and retrying rows.

use std::time::Duration;

use rand::Rng;

/// The range of factors a delay is scaled by at random, so clients that failed together do
/// not all come back at the same instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    low: f64,
    high: f64,
}

impl Spread {
    /// Factors in [0.5, 1.0]: never longer than the base ("equal jitter"). The relay's
    /// publisher and the agent's feed.
    pub const UP_TO_BASE: Self = Self::new(0.5, 1.0);
    /// Factors in [0.5, 1.5]: around the base. The agent's sync.
    pub const AROUND_BASE: Self = Self::new(0.5, 1.5);
    /// No jitter: exactly the base.
    pub const NONE: Self = Self::new(1.0, 1.0);

    /// Factors in [`low`, `high`].
    ///
    /// # Panics
    /// Unless `0 <= low <= high` and both are finite: a mistake in a constant, which then
    /// fails to compile when it is a `const`.
    pub const fn new(low: f64, high: f64) -> Self {
        assert!(
            low >= 0.0 && low <= high && high.is_finite(),
            "a spread needs finite factors 0 <= low <= high"
        );
        Self { low, high }
    }

    pub const fn low(self) -> f64 {
        self.low
    }

    pub const fn high(self) -> f64 {
        self.high
    }
}

/// `initial`, doubled after each failure up to `max`, each delay jittered by a [`Spread`]
/// ([`Spread::UP_TO_BASE`] unless set with [`Backoff::with_spread`]).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    spread: Spread,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            spread: Spread::UP_TO_BASE,
            failures: 0,
        }
    }

    pub fn with_spread(self, spread: Spread) -> Self {
        Self { spread, ..self }
    }

    /// The delay before the next attempt; each call doubles the base up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.delay_after(self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// After a success: the next delay is `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The jittered delay after `failures` failures, for a caller that keeps the count
    /// elsewhere (a row's attempts in the database); leaves this backoff as it is.
    pub fn delay_after(&self, failures: u32) -> Duration {
        jitter(delay_for(self.initial, self.max, failures), self.spread)
    }
}

/// The un-jittered delay after `failures` failures: `initial × 2^failures`, at most `max`.
pub fn delay_for(initial: Duration, max: Duration, failures: u32) -> Duration {
    initial
        .saturating_mul(2u32.saturating_pow(failures.min(30)))
        .min(max)
}

/// Scales `base` by a random factor within `spread`, so reconnecting clients spread out.
/// Saturates at `Duration::MAX` instead of overflowing.
pub fn jitter(base: Duration, spread: Spread) -> Duration {
    let factor = rand::thread_rng().gen_range(spread.low..=spread.high);
    // What `Duration::mul_f64` computes, without its panic on overflow.
    Duration::try_from_secs_f64(factor * base.as_secs_f64()).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_base_doubles_up_to_the_cap() {
        let bases: Vec<u64> = (0..9)
            .map(|n| delay_for(SECOND, MINUTE, n).as_secs())
            .collect();
        assert_eq!(bases, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(delay_for(SECOND, MINUTE, u32::MAX), MINUTE);
        assert_eq!(delay_for(Duration::MAX, MINUTE, 3), MINUTE);
        let mut backoff = Backoff::new(SECOND, MINUTE).with_spread(Spread::NONE);
        let delays: Vec<u64> = (0..9).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), SECOND);
        assert_eq!(backoff.delay_after(4), Duration::from_secs(16));
        assert_eq!(backoff.next_delay(), Duration::from_secs(2));
    }

    #[test]
    fn delays_stay_within_their_spread() {
        let check = |spread: Spread, low: f64, high: f64| {
            let backoff = Backoff::new(SECOND, MINUTE).with_spread(spread);
            for (failures, base) in (0..).zip([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]) {
                for _ in 0..200 {
                    let delay = backoff.delay_after(failures).as_secs_f64();
                    assert!(
                        (base * low..=base * high).contains(&delay),
                        "{spread:?}: {delay} after {failures} failures"
                    );
                }
            }
        };
        check(Spread::UP_TO_BASE, 0.5, 1.0);
        check(Spread::AROUND_BASE, 0.5, 1.5);
        check(Spread::NONE, 1.0, 1.0);
        check(Spread::new(0.9, 1.1), 0.9, 1.1);
        // Without `with_spread`: the relay's spread, doubling with each call.
        let mut backoff = Backoff::new(SECOND, MINUTE);
        for base in [1.0, 2.0, 4.0] {
            let delay = backoff.next_delay().as_secs_f64();
            assert!((base * 0.5..=base).contains(&delay), "{delay}");
        }
    }

    #[test]
    fn jitter_spreads_and_saturates() {
        let delays: std::collections::BTreeSet<Duration> = (0..50)
            .map(|_| jitter(MINUTE, Spread::AROUND_BASE))
            .collect();
        assert!(delays.len() > 1, "{delays:?}");
        assert_eq!(jitter(Duration::MAX, Spread::new(1.5, 2.0)), Duration::MAX);
        assert_eq!(jitter(Duration::ZERO, Spread::AROUND_BASE), Duration::ZERO);
    }

    #[test]
    fn a_spread_needs_ordered_finite_factors() {
        for (low, high) in [
            (1.0, 0.5),
            (-0.1, 1.0),
            (0.5, f64::INFINITY),
            (f64::NAN, 1.0),
        ] {
            let made = std::panic::catch_unwind(|| Spread::new(low, high));
            assert!(made.is_err(), "{low}..{high}");
        }
        assert_eq!(
            (Spread::new(0.0, 2.0).low(), Spread::new(0.0, 2.0).high()),
            (0.0, 2.0)
        );
    }
}
