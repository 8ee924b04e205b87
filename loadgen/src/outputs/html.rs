//! `--html FILE`: the run as one self-contained HTML page, to attach to a ticket or open from a CI artifact:
//! the verdict and summary figures, the ledger (lost, duplicated, reordered), latency percentiles over time
//! and the whole run's percentile spectrum, connections over time, and the host's resources. No external
//! asset: the CSS is inline and the charts are inline SVG drawn with plotters. The page is well-formed XML
//! (XHTML syntax), so any XML parser reads it.

use std::fmt::Write;

use plotters::prelude::*;

use super::OutputError;
use super::chart::{Series, draw_line_chart};
use crate::latency::{LatencyHistogram, LatencySummary};
use crate::report::{Report, TimelinePoint};

const CHART_SIZE: (u32, u32) = (900, 320);
/// The spectrum's x axis ends at this many nines (99.999%).
const SPECTRUM_NINES_MAX: f64 = 5.0;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:960px;color:#222}\
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:0.2em 0.6em;text-align:right}\
th{text-align:left;background:#f4f4f4}.pass{color:#070;font-weight:bold}.fail{color:#b00;font-weight:bold}\
pre{background:#f8f8f8;padding:0.6em;overflow-x:auto}";

/// The page for `report`, with the whole run's ACK and delivery histograms for the spectrum.
pub fn render_report(
    report: &Report,
    latency_ack: &LatencyHistogram,
    latency_delivery: &LatencyHistogram,
) -> Result<String, OutputError> {
    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\" xmlns=\"http://www.w3.org/1999/xhtml\">\n<head>\n");
    page.push_str("<meta charset=\"utf-8\"/>\n<title>ringline-loadgen report</title>\n");
    let _ = writeln!(page, "<style>{STYLE}</style>\n</head>\n<body>\n<h1>ringline-loadgen report</h1>");
    let (class, verdict) = if report.is_clean() {
        ("pass", "PASS: nothing lost, duplicated or reordered")
    } else {
        ("fail", "FAIL: see the summary below")
    };
    let _ = writeln!(page, "<p class=\"{class}\" id=\"verdict\">{verdict}</p>");
    summary_table(&mut page, report);
    ledger_table(&mut page, report);
    let timeline = &report.timeline;
    let _ = writeln!(page, "<h2>Latency percentiles over time</h2>");
    page.push_str(&line_chart("ACK and delivery latency per second (ms)", "ms", &latency_series(timeline))?);
    let _ = writeln!(page, "\n<h2>Percentile spectrum</h2>");
    let spectrum = [("ack", BLUE, spectrum_points(latency_ack)), ("delivery", RED, spectrum_points(latency_delivery))];
    page.push_str(&line_chart("latency (ms) by percentile: x = nines (1 = 90%, 2 = 99%, 3 = 99.9%)", "ms", &spectrum)?);
    let _ = writeln!(page, "\n<h2>Connections over time</h2>");
    let connections = timeline.iter().map(|point| (point.t_s, point.connections_up as f64)).collect();
    page.push_str(&line_chart("connections up", "connections", &[("connections", BLUE, connections)])?);
    let _ = writeln!(page, "\n<h2>Host resources</h2>");
    let cpu = timeline.iter().map(|point| (point.t_s, point.host_cpu_busy * 100.0)).collect();
    page.push_str(&line_chart("this host's CPUs busy (%)", "%", &[("cpu busy", MAGENTA, cpu)])?);
    let headroom = timeline
        .iter()
        .map(|point| (point.t_s, point.host_memory_headroom_bytes as f64 / (1u64 << 20) as f64))
        .collect();
    page.push_str(&line_chart("free memory and page cache (MiB)", "MiB", &[("headroom", GREEN, headroom)])?);
    host_table(&mut page, report);
    let _ = writeln!(page, "\n<h2>Summary as printed</h2>\n<pre>{}</pre>", escape(&report.render_summary()));
    let _ = writeln!(page, "<h2>Command line</h2>\n<pre>{}</pre>", escape(&report.command_line.join(" ")));
    page.push_str("</body>\n</html>\n");
    Ok(page)
}

fn row(page: &mut String, name: &str, value: &str) {
    let _ = writeln!(page, "<tr><th>{}</th><td>{}</td></tr>", escape(name), escape(value));
}

fn latency_text(summary: &LatencySummary) -> String {
    let ms = |us: u64| us as f64 / 1e3;
    format!(
        "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} samples)",
        ms(summary.p50),
        ms(summary.p90),
        ms(summary.p99),
        ms(summary.p999),
        ms(summary.max),
        summary.count
    )
}

fn summary_table(page: &mut String, report: &Report) {
    let _ = writeln!(page, "<h2>Summary</h2>\n<table id=\"summary\">");
    if let Some(scenario) = report.scenario {
        row(page, "scenario", &format!("{scenario:?}"));
    }
    row(page, "agents", &report.agents.to_string());
    row(page, "connections target", &report.connections_target.to_string());
    row(page, "connections established", &report.connections_established.to_string());
    row(page, "connections peak", &report.connections_peak.to_string());
    row(page, "connect errors", &report.connect_errors.to_string());
    row(page, "ramp", &report.ramp_seconds.map_or("not reached".to_owned(), |seconds| format!("{seconds:.1} s")));
    row(page, "hold", &format!("{:.1} s", report.hold_seconds));
    row(page, "messages sent", &report.messages_sent.to_string());
    row(page, "messages acked", &report.messages_acked.to_string());
    row(page, "messages delivered", &report.messages_delivered.to_string());
    row(page, "messages rejected", &report.messages_rejected.to_string());
    row(page, "throughput", &format!("{:.0} msgs/s", report.throughput_msgs_per_s));
    row(page, "ACK latency", &latency_text(&report.latency_ack_us));
    row(page, "delivery latency", &latency_text(&report.latency_delivery_us));
    if report.latency_offline_delivery_us.count > 0 {
        row(page, "offline delivery latency", &latency_text(&report.latency_offline_delivery_us));
    }
    for (kind, count) in &report.errors {
        row(page, &format!("error {kind}"), &count.to_string());
    }
    if let Some(reason) = &report.stopped_early {
        row(page, "stopped early", reason);
    }
    page.push_str("</table>\n");
}

fn ledger_table(page: &mut String, report: &Report) {
    let _ = writeln!(page, "<h2>Ledger</h2>\n<table id=\"ledger\">");
    row(page, "lost", &report.lost.to_string());
    row(page, "duplicated", &report.duplicated.to_string());
    row(page, "reordered", &report.reordered.to_string());
    row(page, "redelivered (expected after a reconnect)", &report.redelivered.to_string());
    row(page, "unresolved", &report.unresolved.to_string());
    row(page, "receipts missing", &report.receipts_missing.to_string());
    page.push_str("</table>\n");
    if !report.problems.is_empty() {
        page.push_str("<pre>");
        for problem in &report.problems {
            let message = &problem.message;
            let line = format!(
                "{:?} message {}->{} #{} (server id {:?})\n",
                problem.kind, message.sender, message.recipient, message.pair_seq, problem.server_id
            );
            page.push_str(&escape(&line));
        }
        page.push_str("</pre>\n");
    }
}

fn host_table(page: &mut String, report: &Report) {
    page.push_str("<table id=\"host\">\n");
    let machine = &report.machine;
    row(
        page,
        "host",
        &format!(
            "{} ({}), {} cores, {} MiB",
            machine.hostname,
            machine.kernel,
            machine.cores,
            machine.memory_bytes >> 20
        ),
    );
    if !report.cpu_busy_per_core.is_empty() {
        let busy: Vec<String> = report.cpu_busy_per_core.iter().map(|share| format!("{:.0}%", share * 100.0)).collect();
        row(page, "cpu busy per core during the hold", &busy.join(" "));
    }
    if let Some(lowest) = report.host_memory_headroom_min_bytes {
        row(page, "lowest memory headroom", &format!("{} MiB", lowest >> 20));
    }
    if let Some(rss) = report.server_rss_bytes {
        row(page, "server RSS at the plateau", &format!("{} MiB", rss >> 20));
    }
    row(
        page,
        "load generator cost",
        &format!("{} MiB peak RSS, {:.1} CPU s", report.loadgen_rss_peak_bytes >> 20, report.loadgen_cpu_seconds),
    );
    page.push_str("</table>\n");
}

fn latency_series(timeline: &[TimelinePoint]) -> Vec<Series> {
    type Pick = fn(&TimelinePoint) -> u64;
    let picks: [(&'static str, RGBColor, Pick); 4] = [
        ("ack p50", GREEN, |point| point.latency_ack_p50_us),
        ("ack p99", BLUE, |point| point.latency_ack_p99_us),
        ("ack p99.9", CYAN, |point| point.latency_ack_p999_us),
        ("delivery p99", RED, |point| point.latency_delivery_p99_us),
    ];
    picks
        .into_iter()
        .map(|(label, color, pick)| {
            let points =
                timeline.iter().filter(|point| pick(point) > 0).map(|point| (point.t_s, pick(point) as f64 / 1e3));
            (label, color, points.collect())
        })
        .collect()
}

/// (nines, ms) along the histogram's percentiles: nines = -log10(1 - percentile), up to 99.999%.
fn spectrum_points(histogram: &LatencyHistogram) -> Vec<(f64, f64)> {
    let hdr = histogram.as_hdr();
    if hdr.is_empty() {
        return Vec::new();
    }
    hdr.iter_quantiles(5)
        .map(|step| (step.quantile_iterated_to(), step.value_iterated_to()))
        .filter(|(quantile, _)| *quantile < 1.0)
        .map(|(quantile, value)| ((-(1.0 - quantile).log10()).min(SPECTRUM_NINES_MAX), value as f64 / 1e3))
        .collect()
}

/// One chart as an inline `<svg>` element.
fn line_chart(caption: &str, y_desc: &str, series: &[Series]) -> Result<String, OutputError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|error| OutputError::Chart(error.to_string()))?;
        draw_line_chart(&root, caption, "seconds", y_desc, series).map_err(OutputError::Chart)?;
        root.present().map_err(|error| OutputError::Chart(error.to_string()))?;
    }
    Ok(svg)
}

/// Text for an HTML element or attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `page` as XML and returns the element names in document order; panics on a tag that does not
    /// balance.
    pub(crate) fn elements_of(page: &str) -> Vec<String> {
        let mut reader = quick_xml::Reader::from_str(page);
        let mut open: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        loop {
            match reader.read_event().expect("well-formed") {
                quick_xml::events::Event::Start(start) => {
                    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                    seen.push(name.clone());
                    open.push(name);
                }
                quick_xml::events::Event::Empty(empty) => {
                    seen.push(String::from_utf8_lossy(empty.name().as_ref()).into_owned());
                }
                quick_xml::events::Event::End(end) => {
                    let name = String::from_utf8_lossy(end.name().as_ref()).into_owned();
                    assert_eq!(open.pop().as_deref(), Some(name.as_str()), "tags balance");
                }
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert!(open.is_empty(), "unclosed: {open:?}");
        seen
    }

    #[test]
    fn the_page_is_well_formed_and_holds_the_figures() {
        let mut ack = LatencyHistogram::new();
        let mut delivery = LatencyHistogram::new();
        for value in 1..=1_000u64 {
            ack.record(value * 10);
            delivery.record(value * 20);
        }
        let timeline = (1..=5)
            .map(|second| TimelinePoint {
                t_s: second as f64,
                connections_up: 40,
                latency_ack_p99_us: 9_000,
                host_cpu_busy: 0.25,
                host_memory_headroom_bytes: 1 << 30,
                ..Default::default()
            })
            .collect();
        let report = Report {
            connections_target: 40,
            connections_peak: 40,
            messages_sent: 12_345,
            lost: 3,
            latency_ack_us: ack.summary(),
            command_line: vec!["ringline-loadgen".into(), "run".into(), "--stages".into(), "1s:1@1/s,<x>&".into()],
            timeline,
            ..Default::default()
        };
        let page = render_report(&report, &ack, &delivery).expect("renders");
        assert!(page.starts_with("<!DOCTYPE html>"));
        let elements = elements_of(&page);
        assert_eq!(elements.iter().filter(|name| *name == "svg").count(), 5, "five inline charts");
        assert!(elements.iter().any(|name| name == "table"));
        assert!(!page.contains("<link") && !page.contains("<script") && !page.contains("src="), "self-contained");
        assert!(page.contains("<tr><th>messages sent</th><td>12345</td></tr>"));
        assert!(page.contains("<tr><th>lost</th><td>3</td></tr>"));
        assert!(page.contains("FAIL"));
        assert!(page.contains("1s:1@1/s,&lt;x&gt;&amp;"));
    }
}
