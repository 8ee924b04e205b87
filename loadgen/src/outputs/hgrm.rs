//! `--hgrm FILE`: a latency histogram's percentile distribution as HdrHistogram's
//! `outputPercentileDistribution` prints it (and wrk2 after it), which HdrHistogram's plotter
//! (`plotFiles.html`) draws: value, percentile, total count, 1/(1-percentile), five ticks per half distance,
//! then the mean, deviation, max and count. Values are milliseconds (the histograms hold µs).

use std::fmt::Write;

use crate::latency::LatencyHistogram;

/// Reporting ticks per half distance to 100%, as HdrHistogram's default output uses.
const TICKS_PER_HALF_DISTANCE: u32 = 5;
/// µs per millisecond: the printed unit.
const VALUE_UNIT_RATIO: f64 = 1_000.0;

/// The percentile distribution of `histogram`, µs in, ms out.
pub fn percentile_distribution(histogram: &LatencyHistogram) -> String {
    let hdr = histogram.as_hdr();
    let mut out = String::new();
    let _ = write!(out, "{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    let mut total = 0u64;
    if !hdr.is_empty() {
        for step in hdr.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += step.count_since_last_iteration();
            let value = step.value_iterated_to() as f64 / VALUE_UNIT_RATIO;
            let quantile = step.quantile_iterated_to();
            if quantile < 1.0 {
                let _ = writeln!(out, "{value:12.3} {quantile:2.12} {total:10} {:14.2}", 1.0 / (1.0 - quantile));
            } else {
                let _ = writeln!(out, "{value:12.3} {quantile:2.12} {total:10}");
            }
        }
    }
    let mean = if hdr.is_empty() { 0.0 } else { hdr.mean() / VALUE_UNIT_RATIO };
    let deviation = if hdr.is_empty() { 0.0 } else { hdr.stdev() / VALUE_UNIT_RATIO };
    let _ = writeln!(out, "#[Mean    = {mean:12.3}, StdDeviation   = {deviation:12.3}]");
    let _ =
        writeln!(out, "#[Max     = {:12.3}, Total count    = {:12}]", hdr.max() as f64 / VALUE_UNIT_RATIO, hdr.len());
    let _ = writeln!(out, "#[Buckets = {:12}, SubBuckets     = {:12}]", hdr.buckets(), hdr.distinct_values());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_rise_to_the_whole_count_and_the_footer_matches() {
        let mut histogram = LatencyHistogram::new();
        for value in 1..=10_000u64 {
            histogram.record(value);
        }
        let text = percentile_distribution(&histogram);
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
        assert_eq!(header, ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]);
        assert_eq!(lines.next(), Some(""));
        let rows: Vec<Vec<f64>> = lines
            .clone()
            .take_while(|line| !line.starts_with('#'))
            .map(|line| line.split_whitespace().map(|field| field.parse().expect("a number")).collect())
            .collect();
        assert!(rows.len() > 20, "{text}");
        assert!(rows[..rows.len() - 1].iter().all(|row| row.len() == 4), "{text}");
        assert_eq!(rows.last().expect("rows").len(), 3, "the 100% row has no 1/(1-p)");
        assert!(rows.windows(2).all(|pair| pair[0][0] <= pair[1][0] && pair[0][1] <= pair[1][1]));
        assert_eq!(rows.last().expect("rows")[2], 10_000.0);
        let median = rows.iter().find(|row| row[1] >= 0.5).expect("a median row");
        assert!((median[0] - 5.0).abs() < 0.01, "median 5 ms: {median:?}");
        assert!(text.contains("Total count    =        10000]"), "{text}");
        assert!(text.contains("#[Max     =       10.007"), "{text}");
    }

    #[test]
    fn an_empty_histogram_still_has_header_and_footer() {
        let text = percentile_distribution(&LatencyHistogram::new());
        assert!(text.starts_with("       Value"));
        assert!(text.contains("Total count    =            0]"));
    }
}
