//! `--hlog FILE`: the HdrHistogram interval log, one compressed histogram per second of the run, the format
//! HdrHistogram's `HistogramLogProcessor`, HistogramLogAnalyzer and the `hdrhistogram` crate's
//! `IntervalLogIterator` read. Values are µs. Each second has two lines: the ACK latency (untagged, the main
//! series) and the delivery latency (`Tag=delivery`). Interval timestamps are seconds since the run's start,
//! which the `StartTime` and `BaseTime` headers give (seconds since the epoch).
//!
//! Written as the run goes (a line pair a second), so the log costs no memory however long the run.

use std::io::Write;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::OutputError;
use crate::latency::LatencyHistogram;

/// The tag of the delivery latency lines.
pub const DELIVERY_TAG: &str = "delivery";

/// An interval log being written.
pub struct IntervalLog<W: Write> {
    out: W,
    serializer: V2DeflateSerializer,
}

impl<W: Write> IntervalLog<W> {
    /// Writes the headers: a comment naming the tool and the unit, `StartTime` and `BaseTime` (the run's
    /// start), and the column legend.
    pub fn begin(mut out: W, run_start: SystemTime) -> Result<Self, OutputError> {
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment("ringline-loadgen: latency in µs; untagged = ACK latency, Tag=delivery = delivery latency")
            .with_start_time(run_start)
            .with_base_time(run_start)
            .begin_log_with(&mut out, &mut serializer)?;
        writeln!(out, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")?;
        Ok(Self { out, serializer })
    }

    /// One second (or other interval) of the run: `start` from the run's start, its `length`, and the ACK
    /// and delivery latencies recorded in it.
    pub fn write_interval(
        &mut self,
        start: Duration,
        length: Duration,
        ack: &LatencyHistogram,
        delivery: &LatencyHistogram,
    ) -> Result<(), OutputError> {
        let mut writer = IntervalLogWriterBuilder::new().begin_log_with(&mut self.out, &mut self.serializer)?;
        writer
            .write_histogram(ack.as_hdr(), start, length, None)
            .map_err(|error| OutputError::Histogram(error.to_string()))?;
        writer
            .write_histogram(delivery.as_hdr(), start, length, Tag::new(DELIVERY_TAG))
            .map_err(|error| OutputError::Histogram(error.to_string()))?;
        Ok(())
    }

    /// Flushes and hands back the writer.
    pub fn finish(mut self) -> Result<W, OutputError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    use super::*;

    #[test]
    fn the_log_reads_back_with_hdrhistograms_own_reader() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut log = IntervalLog::begin(Vec::new(), start).expect("headers");
        for second in 0..3u64 {
            let mut ack = LatencyHistogram::new();
            let mut delivery = LatencyHistogram::new();
            for value in 1..=100 {
                ack.record(value * (second + 1));
                delivery.record(value * 10);
            }
            log.write_interval(Duration::from_secs(second), Duration::from_secs(1), &ack, &delivery).expect("interval");
        }
        let bytes = log.finish().expect("flush");
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(text.contains("#[StartTime: 1700000000.000 (seconds since epoch)]"), "{text}");
        assert!(text.contains("\"StartTimestamp\",\"Interval_Length\""), "{text}");
        let mut intervals = Vec::new();
        let mut start_times = 0;
        for entry in IntervalLogIterator::new(&bytes) {
            match entry.expect("every line parses") {
                LogEntry::Interval(interval) => intervals.push((
                    interval.start_timestamp(),
                    interval.tag().map(|tag| tag.as_str().to_owned()),
                    interval.max(),
                    interval.encoded_histogram().to_owned(),
                )),
                LogEntry::StartTime(time) => {
                    start_times += 1;
                    assert_eq!(time, Duration::from_secs(1_700_000_000));
                }
                LogEntry::BaseTime(_) => {}
            }
        }
        assert_eq!(start_times, 1);
        assert_eq!(intervals.len(), 6);
        assert_eq!(intervals[2].0, Duration::from_secs(1));
        assert_eq!(intervals[2].1, None);
        assert_eq!(intervals[3].1.as_deref(), Some(DELIVERY_TAG));
        assert!((intervals[4].2 - 300.0).abs() < 1.0, "third second's ACK max is 300 µs: {}", intervals[4].2);
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(&intervals[4].3).expect("base64");
        let histogram: hdrhistogram::Histogram<u64> =
            Deserializer::new().deserialize(&mut bytes.as_slice()).expect("a compressed V2 histogram");
        assert_eq!(histogram.len(), 100);
    }
}
