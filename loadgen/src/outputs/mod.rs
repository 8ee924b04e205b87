//! The report files beside the JSON (`--report`) and the SVG (`--plot`): `--hlog` (HdrHistogram interval
//! log), `--hgrm` (percentile distribution as HdrHistogram prints it), `--csv` (the per-second series) and
//! `--html` (one self-contained page). Each renders to an `impl Write` or a `String` from the report, its
//! timeline and the run's histograms; the controller opens the files and decides when to write. No clock, no
//! sockets.

pub mod chart;
pub mod csv;
pub mod hgrm;
pub mod hlog;
pub mod html;

/// Why a report file could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    #[error("writing failed: {0}")]
    Io(#[from] std::io::Error),
    /// A histogram could not be encoded for the interval log.
    #[error("histogram could not be encoded: {0}")]
    Histogram(String),
    /// The SVG charts of the HTML report could not be drawn.
    #[error("chart could not be drawn: {0}")]
    Chart(String),
}
