//! Line series with a legend on a plotters chart: what `--plot` (SVG file) and `--html` (inline SVG) draw
//! their labelled latency and resource lines with. Draws on a chart it is given; owns no backend or file.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// A line series: its label, colour and points.
pub type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

/// Draws each series in its colour, and the legend box naming them.
pub fn draw_labelled_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    series: &[Series],
) -> Result<(), String> {
    for (label, color, points) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), &color))
            .map_err(|error| error.to_string())?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|error| error.to_string())
}

/// A chart over `area` from 0 to the series' largest x and y (at least 1 and 0.001), with its caption and
/// axis descriptions, and the series drawn.
pub fn draw_line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), String> {
    let points = || series.iter().flat_map(|(_, _, points)| points.iter());
    let x_max = points().map(|(x, _)| *x).fold(1.0, f64::max);
    let y_max = points().map(|(_, y)| *y).fold(1e-3, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max * 1.1)
        .map_err(|error| error.to_string())?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(|error| error.to_string())?;
    draw_labelled_lines(&mut chart, series)
}
