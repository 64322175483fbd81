//! Pure arithmetic of a run: the poll schedule (and so the bound on calls) and the lag statistics.

use serde::Serialize;
use std::time::Duration;

/// When reads of the destination start: the first together with the canary write, then after
/// gaps of `initial`, doubling, capped at `max`, until `timeout` has passed since the write was
/// sent. A read that sees the canary ends the sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSchedule {
    pub initial: Duration,
    pub max: Duration,
    pub timeout: Duration,
}

impl PollSchedule {
    /// The gap before read number `n` (0-based; read 0 starts with the write).
    pub fn gap_before(&self, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The most reads one sample can make: every read starts before `timeout` (reads themselves
    /// take time, so fewer happen in practice). This is what bounds a run's calls.
    pub fn max_reads(&self) -> u32 {
        let mut elapsed = Duration::ZERO;
        let mut n = 0;
        loop {
            let next = elapsed + self.gap_before(n);
            if next >= self.timeout && n > 0 {
                return n;
            }
            elapsed = next;
            n += 1;
            if n == u32::MAX {
                return n;
            }
        }
    }
}

/// p50, p99 and max of a set of lags (nearest-rank percentiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LagStats {
    pub samples: usize,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
    pub min_ms: u64,
}

impl LagStats {
    /// `None` for an empty set.
    pub fn of(lags_ms: &[u64]) -> Option<Self> {
        let mut sorted = lags_ms.to_vec();
        sorted.sort_unstable();
        let (&min_ms, &max_ms) = (sorted.first()?, sorted.last()?);
        Some(Self {
            samples: sorted.len(),
            p50_ms: nearest_rank(&sorted, 50),
            p99_ms: nearest_rank(&sorted, 99),
            max_ms,
            min_ms,
        })
    }
}

/// The nearest-rank percentile of a sorted, non-empty slice.
fn nearest_rank(sorted: &[u64], percent: usize) -> u64 {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn gaps_double_from_initial_up_to_the_cap() {
        let s = PollSchedule { initial: ms(10), max: ms(25), timeout: ms(4000) };
        let gaps: Vec<u64> = (0..6).map(|n| s.gap_before(n).as_millis() as u64).collect();
        assert_eq!(gaps, [0, 10, 20, 25, 25, 25]);
        assert_eq!(s.gap_before(200), ms(25), "no overflow far down the schedule");
    }

    #[test]
    fn max_reads_bounds_the_calls_of_a_sample() {
        // Reads at 0, 10, 30, then every 25 ms while before 4000: 2 + ceil((4000 - 30) / 25) = 2 + 159.
        let s = PollSchedule { initial: ms(10), max: ms(25), timeout: ms(4000) };
        assert_eq!(s.max_reads(), 161);
        let s = PollSchedule { initial: ms(10), max: ms(25), timeout: ms(1000) };
        assert_eq!(s.max_reads(), 41);
        let s = PollSchedule { initial: ms(100), max: ms(100), timeout: ms(100) };
        assert_eq!(s.max_reads(), 1, "at least the read right after the write");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(LagStats::of(&[]), None);
        let one = LagStats::of(&[42]).expect("one");
        assert_eq!((one.p50_ms, one.p99_ms, one.max_ms, one.min_ms), (42, 42, 42, 42));
        let s = LagStats::of(&[300, 100, 200]).expect("three");
        assert_eq!((s.p50_ms, s.p99_ms, s.max_ms, s.min_ms, s.samples), (200, 300, 300, 100, 3));
        let hundred: Vec<u64> = (1..=100).collect();
        let s = LagStats::of(&hundred).expect("hundred");
        assert_eq!((s.p50_ms, s.p99_ms, s.max_ms), (50, 99, 100));
        let s = LagStats::of(&[10, 20, 30, 40]).expect("four");
        assert_eq!(s.p50_ms, 20);
    }
}
