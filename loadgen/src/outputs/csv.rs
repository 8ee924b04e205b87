//! `--csv FILE`: the run's per-second series, one row per progress line (the report's timeline), for
//! spreadsheets and plotting tools. Counts are per second (the difference between two rows' running totals);
//! latencies are the second's percentiles, µs; host columns are this (the controller's) host.

use std::fmt::Write;

use crate::report::TimelinePoint;

/// The header row: the columns' names are a contract with scripts that read the file.
pub const CSV_HEADER: &str = "t_s,connections_up,sent_per_s,acked_per_s,delivered_per_s,connect_errors_per_s,\
ack_p50_us,ack_p99_us,ack_p999_us,delivery_p50_us,delivery_p99_us,delivery_p999_us,host_cpu_busy,\
host_memory_headroom_bytes";

/// The timeline as CSV: the header, then one row per point.
pub fn per_second_series(timeline: &[TimelinePoint]) -> String {
    let mut out = String::with_capacity(64 + timeline.len() * 96);
    let _ = writeln!(out, "{CSV_HEADER}");
    let mut before = TimelinePoint::default();
    for point in timeline {
        let seconds = (point.t_s - before.t_s).max(1e-3);
        let per_s = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
        let _ = writeln!(
            out,
            "{:.3},{},{:.1},{:.1},{:.1},{:.1},{},{},{},{},{},{},{:.4},{}",
            point.t_s,
            point.connections_up,
            per_s(point.sent, before.sent),
            per_s(point.acked, before.acked),
            per_s(point.delivered, before.delivered),
            per_s(point.connect_errors, before.connect_errors),
            point.latency_ack_p50_us,
            point.latency_ack_p99_us,
            point.latency_ack_p999_us,
            point.latency_delivery_p50_us,
            point.latency_delivery_p99_us,
            point.latency_delivery_p999_us,
            point.host_cpu_busy,
            point.host_memory_headroom_bytes,
        );
        before = point.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_second_with_counts_per_second() {
        let timeline: Vec<TimelinePoint> = (1..=3)
            .map(|second| TimelinePoint {
                t_s: second as f64,
                connections_up: 10 * second,
                sent: 100 * second,
                acked: 90 * second,
                delivered: 80 * second,
                latency_ack_p99_us: 1_000 + second,
                host_cpu_busy: 0.5,
                ..Default::default()
            })
            .collect();
        let text = per_second_series(&timeline);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], CSV_HEADER);
        let columns = CSV_HEADER.split(',').count();
        assert!(lines.iter().all(|line| line.split(',').count() == columns));
        assert_eq!(lines[2], "2.000,20,100.0,90.0,80.0,0.0,0,1002,0,0,0,0,0.5000,0");
    }
}
