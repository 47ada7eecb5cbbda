//! Sidekiq's run-time histogram: 26 buckets of milliseconds, stored in Redis as a `BITFIELD` of
//! 26 unsigned 16-bit counters (`h|<Class>-<day>-<hour>:<minute>`).

/// The upper bounds of the buckets in milliseconds, Sidekiq's `BUCKET_INTERVALS`: a run of `ms`
/// goes to the first bucket whose bound is greater than `ms`; the last bucket has no bound.
pub const BUCKET_BOUNDS_MS: [u64; BUCKETS - 1] = [
    20, 30, 45, 65, 100, 150, 225, 335, 500, 750, 1_100, 1_700, 2_500, 3_800, 5_750, 8_500, 13_000,
    20_000, 30_000, 45_000, 65_000, 100_000, 150_000, 225_000, 335_000,
];

/// How many buckets a histogram has.
pub const BUCKETS: usize = 26;

/// The buckets' labels, as Sidekiq's Web UI shows them.
pub const BUCKET_LABELS: [&str; BUCKETS] = [
    "20ms", "30ms", "45ms", "65ms", "100ms", "150ms", "225ms", "335ms", "500ms", "750ms", "1.1s",
    "1.7s", "2.5s", "3.8s", "5.75s", "8.5s", "13s", "20s", "30s", "45s", "65s", "100s", "150s",
    "225s", "335s", "Slow",
];

/// The bucket a run of `ms` milliseconds counts in (Sidekiq's rule: the first bound above it).
pub fn bucket_of(ms: u64) -> usize {
    BUCKET_BOUNDS_MS.partition_point(|&bound| bound <= ms)
}

/// Counts of runs per bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    /// The count of each bucket, fastest first.
    pub counts: [u64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
        }
    }
}

impl Histogram {
    /// Counts one run of `ms` milliseconds.
    pub fn record(&mut self, ms: u64) {
        self.counts[bucket_of(ms)] += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Self) {
        for (count, more) in self.counts.iter_mut().zip(other.counts) {
            *count += more;
        }
    }

    /// The histogram a Redis string holds as a `BITFIELD` of `u16` counters (`GET` of the key):
    /// counter `#i` is the big-endian `u16` at byte `2i`; bytes the string lacks are zeros.
    pub fn from_bitfield(bytes: &[u8]) -> Self {
        let mut histogram = Self::default();
        for (index, count) in histogram.counts.iter_mut().enumerate() {
            let high = bytes.get(2 * index).copied().unwrap_or(0);
            let low = bytes.get(2 * index + 1).copied().unwrap_or(0);
            *count = u64::from(u16::from_be_bytes([high, low]));
        }
        histogram
    }

    /// How many runs it counts.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// An estimate of the `quantile` (0 to 1) in milliseconds, interpolated within its bucket
    /// (whose lower bound is the previous bucket's upper bound); a quantile in the last,
    /// unbounded bucket is its lower bound, 335 s. `None` when it counts nothing.
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = (quantile.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut below = 0_u64;
        for (index, &count) in self.counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            if (below + count) as f64 >= rank {
                let lower = if index == 0 {
                    0.0
                } else {
                    BUCKET_BOUNDS_MS[index - 1] as f64
                };
                let Some(&upper) = BUCKET_BOUNDS_MS.get(index) else {
                    return Some(lower);
                };
                let within = (rank - below as f64) / count as f64;
                return Some(lower + within * (upper as f64 - lower));
            }
            below += count;
        }
        Some(BUCKET_BOUNDS_MS[BUCKETS - 2] as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_go_to_sidekiqs_buckets() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(19), 0);
        assert_eq!(bucket_of(20), 1, "a bound belongs to the next bucket");
        assert_eq!(
            bucket_of(280),
            7,
            "Sidekiq's own example: 280 ms is bucket[7]"
        );
        assert_eq!(bucket_of(334_999), 24);
        assert_eq!(bucket_of(335_000), 25);
        assert_eq!(bucket_of(u64::MAX), 25);
    }

    #[test]
    fn a_bitfield_string_reads_as_big_endian_u16_counters() {
        let histogram = Histogram::from_bitfield(&[0, 3, 1, 0, 0xff]);
        assert_eq!(histogram.counts[0], 3);
        assert_eq!(histogram.counts[1], 256);
        assert_eq!(histogram.counts[2], 0xff00, "a short string ends in zeros");
        assert_eq!(histogram.total(), 3 + 256 + 0xff00);
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let mut histogram = Histogram::default();
        assert_eq!(histogram.quantile_ms(0.5), None);
        for _ in 0..100 {
            histogram.record(10);
        }
        assert_eq!(histogram.quantile_ms(0.5), Some(10.0));
        assert_eq!(histogram.quantile_ms(1.0), Some(20.0));
        histogram.counts = [0; BUCKETS];
        histogram.counts[4] = 50; // 65–100 ms
        histogram.counts[25] = 50; // slower than 335 s
        assert_eq!(histogram.quantile_ms(0.5), Some(100.0));
        assert_eq!(histogram.quantile_ms(0.99), Some(335_000.0));
    }
}
