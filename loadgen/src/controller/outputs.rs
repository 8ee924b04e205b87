//! The report files beside the JSON and the SVG, on disk: the interval log (`--hlog`) opened when the run
//! starts and fed a second at a time by the watch, and, once the verdict is in, the percentile distribution
//! (`--hgrm`), the per-second CSV (`--csv`) and the HTML page (`--html`). What goes into each file is
//! `loadgen::outputs`'s business; this file only opens, writes and names paths in errors.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;

use loadgen::cli::RunArgs;
use loadgen::latency::LatencyHistogram;
use loadgen::outputs::hlog::IntervalLog;
use loadgen::outputs::{OutputError, csv, hgrm, html};
use loadgen::report::Report;

/// The whole run's histograms, merged from the agents' verdicts, for the files that need more than the
/// report's percentiles.
pub(super) struct RunHistograms {
    pub(super) latency_ack: LatencyHistogram,
    pub(super) latency_delivery: LatencyHistogram,
}

/// `--hlog FILE` while the run lasts. A write that fails is kept and reported at the end: the run itself
/// goes on.
pub(super) struct IntervalLogFile {
    path: PathBuf,
    log: Option<IntervalLog<BufWriter<File>>>,
    /// The end of the last interval written, seconds from the run's start.
    last_t_s: f64,
    error: Option<OutputError>,
}

impl IntervalLogFile {
    /// Creates the file and writes the headers, with the run's planned start as StartTime and BaseTime.
    pub(super) fn create(path: &Path, run_start_us: u64) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("creating --hlog {}", path.display()))?;
        let run_start = SystemTime::UNIX_EPOCH + Duration::from_micros(run_start_us);
        let log = IntervalLog::begin(BufWriter::new(file), run_start)
            .with_context(|| format!("writing --hlog {}", path.display()))?;
        Ok(Self { path: path.to_owned(), log: Some(log), last_t_s: 0.0, error: None })
    }

    /// The second that ends `t_s` seconds after the run's start.
    pub(super) fn write_second(&mut self, t_s: f64, ack: &LatencyHistogram, delivery: &LatencyHistogram) {
        let start = self.last_t_s.min(t_s);
        self.last_t_s = t_s;
        let Some(log) = self.log.as_mut() else { return };
        let length = Duration::from_secs_f64(t_s - start);
        if let Err(error) = log.write_interval(Duration::from_secs_f64(start), length, ack, delivery) {
            self.error = Some(error);
            self.log = None;
        }
    }

    /// Flushes the file; an earlier write error comes out here.
    pub(super) fn finish(self) -> anyhow::Result<()> {
        let path = self.path.display();
        if let Some(error) = self.error {
            return Err(error).with_context(|| format!("writing --hlog {path}"));
        }
        if let Some(log) = self.log {
            log.finish().with_context(|| format!("writing --hlog {path}"))?;
        }
        Ok(())
    }
}

/// `--hgrm`, `--csv`, `--html`: whichever were asked for.
pub(super) fn write_files(args: &RunArgs, report: &Report, histograms: &RunHistograms) -> anyhow::Result<()> {
    if let Some(path) = &args.hgrm {
        write(path, "--hgrm", hgrm::percentile_distribution(&histograms.latency_ack))?;
    }
    if let Some(path) = &args.csv {
        write(path, "--csv", csv::per_second_series(&report.timeline))?;
    }
    if let Some(path) = &args.html {
        let page = html::render_report(report, &histograms.latency_ack, &histograms.latency_delivery)
            .context("rendering --html")?;
        write(path, "--html", page)?;
    }
    Ok(())
}

fn write(path: &Path, flag: &str, text: String) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {flag} {}", path.display()))
}
