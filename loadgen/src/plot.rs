//! `--plot FILE.svg`: connections up and delivery-latency percentiles over the run, drawn with plotters' SVG
//! backend. Owns the drawing only; the controller's timeline is the data.

use std::path::Path;

use plotters::prelude::*;

use loadgen::outputs::chart::{Series, draw_line_chart};
use loadgen::report::TimelinePoint;

pub fn write_plot(path: &Path, timeline: &[TimelinePoint], title: &str) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    let (upper, lower) = root.split_vertically(350);
    let connections = timeline.iter().map(|point| (point.t_s, point.connections_up as f64)).collect();
    draw_line_chart(
        &upper,
        &format!("{title}: connections up"),
        "seconds",
        "connections",
        &[("connections", BLUE, connections)],
    )
    .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    type Percentile = fn(&TimelinePoint) -> u64;
    let percentiles: [(&'static str, RGBColor, Percentile); 3] = [
        ("p50", GREEN, |point| point.latency_delivery_p50_us),
        ("p99", MAGENTA, |point| point.latency_delivery_p99_us),
        ("p99.9", RED, |point| point.latency_delivery_p999_us),
    ];
    let series: Vec<Series> = percentiles
        .into_iter()
        .map(|(label, color, value)| {
            let points =
                timeline.iter().filter(|point| value(point) > 0).map(|point| (point.t_s, value(point) as f64 / 1e3));
            (label, color, points.collect())
        })
        .collect();
    draw_line_chart(&lower, "delivery latency (ms) from the scheduled send time", "seconds", "ms", &series)
        .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    root.present().map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    Ok(())
}
