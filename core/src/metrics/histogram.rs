//! A fixed-bucket latency histogram in microseconds: cheap to record on a core (no allocation, a search over
//! `BUCKET_BOUNDS_US`), cheap to copy into a snapshot, and encoded as a Prometheus histogram in seconds.

/// Upper bounds (inclusive) of the buckets, in microseconds: ×2 steps from 16 µs to about 8.4 s. Values above
/// the last bound land in the overflow bucket (`+Inf`).
pub const BUCKET_BOUNDS_US: [u64; 20] = [
    16, 32, 64, 128, 256, 512, 1_024, 2_048, 4_096, 8_192, 16_384, 32_768, 65_536, 131_072, 262_144, 524_288,
    1_048_576, 2_097_152, 4_194_304, 8_388_608,
];

/// Counts of observed latencies per bucket, plus their sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// `counts[i]` counts values in `(BUCKET_BOUNDS_US[i-1], BUCKET_BOUNDS_US[i]]`; the last one the overflow.
    counts: [u64; BUCKET_BOUNDS_US.len() + 1],
    sum_us: u64,
    count: u64,
}

impl LatencyHistogram {
    pub fn record(&mut self, latency_us: u64) {
        let index = BUCKET_BOUNDS_US.partition_point(|&bound| bound < latency_us);
        self.counts[index] += 1;
        self.sum_us = self.sum_us.saturating_add(latency_us);
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// `(upper bound in seconds, count in that bucket)`, not cumulative; the overflow bucket's bound is
    /// `f64::MAX` (what `prometheus-client` encodes as `+Inf`).
    pub fn buckets_seconds(&self) -> Vec<(f64, u64)> {
        BUCKET_BOUNDS_US
            .iter()
            .map(|&bound| bound as f64 / 1e6)
            .chain(std::iter::once(f64::MAX))
            .zip(self.counts.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_bucket_whose_bound_covers_them() {
        let mut histogram = LatencyHistogram::default();
        for value in [0, 16, 17, 8_388_608, 8_388_609, u64::MAX] {
            histogram.record(value);
        }
        let buckets = histogram.buckets_seconds();
        assert_eq!(buckets.len(), BUCKET_BOUNDS_US.len() + 1);
        assert_eq!(buckets[0].1, 2, "0 and 16 µs");
        assert_eq!(buckets[1].1, 1, "17 µs");
        assert_eq!(buckets[BUCKET_BOUNDS_US.len() - 1].1, 1, "exactly the last bound");
        assert_eq!(buckets[BUCKET_BOUNDS_US.len()], (f64::MAX, 2), "overflow");
        assert_eq!(histogram.count(), 6);
        assert_eq!(histogram.sum_us(), u64::MAX, "the sum saturates");
    }
}
