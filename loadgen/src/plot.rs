//! `--plot FILE.svg`: connections up and delivery-latency percentiles over the run, drawn with plotters' SVG
//! backend. Owns the drawing only; the controller's timeline is the data.

use std::path::Path;

use plotters::prelude::*;

use loadgen::report::TimelinePoint;

pub fn write_plot(path: &Path, timeline: &[TimelinePoint], title: &str) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    let (upper, lower) = root.split_vertically(350);
    let t_max = timeline.last().map_or(1.0, |point| point.t_s).max(1.0);
    let connections_max = timeline.iter().map(|point| point.connections_up).max().unwrap_or(0).max(1) as f64;
    let mut chart = ChartBuilder::on(&upper)
        .caption(format!("{title}: connections up"), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..connections_max * 1.1)
        .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("connections")
        .draw()
        .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    chart
        .draw_series(LineSeries::new(timeline.iter().map(|point| (point.t_s, point.connections_up as f64)), &BLUE))
        .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    let latency_ms_max =
        timeline.iter().map(|point| point.latency_delivery_p999_us).max().unwrap_or(0).max(1) as f64 / 1e3;
    let mut chart = ChartBuilder::on(&lower)
        .caption("delivery latency (ms) from the scheduled send time", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..latency_ms_max * 1.1)
        .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    chart.configure_mesh().x_desc("seconds").y_desc("ms").draw().map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    type Percentile = fn(&TimelinePoint) -> u64;
    let series: [(&str, RGBColor, Percentile); 3] = [
        ("p50", GREEN, |point| point.latency_delivery_p50_us),
        ("p99", MAGENTA, |point| point.latency_delivery_p99_us),
        ("p99.9", RED, |point| point.latency_delivery_p999_us),
    ];
    for (label, color, value) in series {
        chart
            .draw_series(LineSeries::new(
                timeline.iter().filter(|point| value(point) > 0).map(|point| (point.t_s, value(point) as f64 / 1e3)),
                &color,
            ))
            .map_err(|error| anyhow::anyhow!("plot: {error}"))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    root.present().map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    Ok(())
}
