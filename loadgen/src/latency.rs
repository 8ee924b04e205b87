//! Latency histograms: HdrHistogram in µs, from 1 µs to one hour at 3 significant digits, and their lossless
//! transport between processes (V2 serialisation, base64 in JSON). Histograms from cores and agents are merged
//! bucket by bucket, never averaged, so merged percentiles equal those of one histogram fed every value.
//! Owns no clock: callers pass latencies already measured.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

/// Largest latency recorded as itself; longer ones are clamped to it (and still counted).
pub const LATENCY_US_MAX: u64 = 3_600_000_000;

/// Why a histogram could not travel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistogramError {
    #[error("histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram bytes are not a V2 HdrHistogram: {0}")]
    Deserialize(String),
    #[error("histogram could not be serialised: {0}")]
    Serialize(String),
    #[error("histograms could not be merged: {0}")]
    Merge(String),
}

/// Percentiles of one latency histogram, µs. This is the report's shape for `latency_*_us`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// A latency histogram in µs.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    inner: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        let inner = Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("constant bounds are valid");
        Self { inner }
    }

    /// Records one latency; 0 counts as 1 µs and values past the bound as the bound.
    pub fn record(&mut self, latency_us: u64) {
        let value = latency_us.clamp(1, LATENCY_US_MAX);
        // In range by the clamp above, so this cannot fail.
        let _ = self.inner.record(value);
    }

    pub fn count(&self) -> u64 {
        self.inner.len()
    }

    pub fn reset(&mut self) {
        self.inner.reset();
    }

    /// Adds every count of `other` to this histogram.
    pub fn merge(&mut self, other: &LatencyHistogram) -> Result<(), HistogramError> {
        self.inner.add(&other.inner).map_err(|error| HistogramError::Merge(format!("{error:?}")))
    }

    /// The HdrHistogram underneath, for the report files that print or log it (`outputs`).
    pub fn as_hdr(&self) -> &Histogram<u64> {
        &self.inner
    }

    pub fn summary(&self) -> LatencySummary {
        if self.inner.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.inner.len(),
            p50: self.inner.value_at_quantile(0.50),
            p90: self.inner.value_at_quantile(0.90),
            p99: self.inner.value_at_quantile(0.99),
            p999: self.inner.value_at_quantile(0.999),
            max: self.inner.max(),
        }
    }

    /// V2 serialisation, base64-encoded for a JSON string.
    pub fn to_base64(&self) -> Result<String, HistogramError> {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.inner, &mut bytes)
            .map_err(|error| HistogramError::Serialize(format!("{error:?}")))?;
        Ok(BASE64.encode(bytes))
    }

    /// Reads what [`Self::to_base64`] wrote.
    pub fn from_base64(text: &str) -> Result<Self, HistogramError> {
        let bytes = BASE64.decode(text)?;
        let inner: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|error| HistogramError::Deserialize(format!("{error:?}")))?;
        let mut histogram = Self::new();
        histogram.inner.add(&inner).map_err(|error| HistogramError::Merge(format!("{error:?}")))?;
        Ok(histogram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_serialised_histograms_equal_one_fed_everything() {
        let mut single = LatencyHistogram::new();
        let mut parts = vec![LatencyHistogram::new(), LatencyHistogram::new(), LatencyHistogram::new()];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for index in 0..30_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = 1 + state % 2_000_000;
            single.record(value);
            parts[(index % 3) as usize].record(value);
        }
        let mut merged = LatencyHistogram::new();
        for part in &parts {
            let travelled = LatencyHistogram::from_base64(&part.to_base64().expect("serialises")).expect("parses");
            assert_eq!(travelled.count(), part.count());
            merged.merge(&travelled).expect("same bounds");
        }
        assert_eq!(merged.count(), 30_000);
        assert_eq!(merged.summary(), single.summary());
    }

    #[test]
    fn empty_and_out_of_range_values() {
        let mut histogram = LatencyHistogram::new();
        assert_eq!(histogram.summary(), LatencySummary::default());
        histogram.record(0);
        histogram.record(u64::MAX);
        assert_eq!(histogram.count(), 2);
        assert!(histogram.summary().max >= LATENCY_US_MAX);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(LatencyHistogram::from_base64("!!"), Err(HistogramError::Base64(_))));
        assert!(matches!(LatencyHistogram::from_base64("AAAA"), Err(HistogramError::Deserialize(_))));
    }
}
