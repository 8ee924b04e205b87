//! Staged load profiles, `--stages` (and the `stages` of a scenario file): the grammar, its parser and the
//! checks a profile must pass before anything starts. Sans-IO: text in, [`Stage`]s or a [`StageError`] out
//! that names the stage (1-based) and what was expected there. Turning stages into times and shares is
//! `load_profile.rs`'s job.
//!
//! Grammar (comma-separated stages, spaces around tokens allowed):
//!
//! ```text
//! stages   = stage ("," stage)*
//! stage    = DURATION ":" ( ramp | "hold" | rate )
//! ramp     = CONNECTIONS "@" RATE ["/s"]     connect new users at RATE connects/s until CONNECTIONS are up
//! rate     = "rate" N ["/s"]                 from here on send N messages/s in total (held connections)
//! DURATION = NUMBER ("ms" | "s" | "m" | "h")  e.g. 500ms, 60s, 2m, 1.5h
//! ```
//!
//! Invariants of a valid profile: 1 to `STAGES_MAX` stages; it opens with a ramp; each ramp raises the
//! connections (they never go down) and fits in its stage at its rate; at least one `hold` or `rate` stage
//! (the time messages flow); the whole profile lasts at most `STAGES_DURATION_US_MAX`.

use std::fmt;
use std::str::FromStr;

use crate::limits::{STAGES_DURATION_US_MAX, STAGES_MAX};

/// One stage of a load profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stage {
    /// Connect new users at `connects_per_s` until `connections` are up, then hold them for the rest of the
    /// stage.
    Ramp { duration_us: u64, connections: u64, connects_per_s: f64 },
    /// Hold the connections, sending at the current message rate.
    Hold { duration_us: u64 },
    /// Hold the connections and send `msgs_per_s` in total from the stage's start on.
    Rate { duration_us: u64, msgs_per_s: f64 },
}

impl Stage {
    pub fn duration_us(&self) -> u64 {
        match *self {
            Stage::Ramp { duration_us, .. } | Stage::Hold { duration_us } | Stage::Rate { duration_us, .. } => {
                duration_us
            }
        }
    }
}

/// Why a load profile was refused. Stage numbers count from 1, as the user wrote them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StageError {
    /// No stage at all.
    #[error("no stages: expected DURATION:CONNECTIONS@RATE/s, DURATION:hold or DURATION:rate N, comma-separated")]
    Empty,
    /// More stages than `STAGES_MAX`.
    #[error("{count} stages, more than the {STAGES_MAX} allowed")]
    TooMany { count: usize },
    /// A stage that does not follow the grammar.
    #[error("stage {index} `{text}`: expected {expected}")]
    Syntax { index: usize, text: String, expected: &'static str },
    /// The first stage is not a ramp: nothing would be connected.
    #[error("stage 1 `{text}`: a profile opens with a ramp (DURATION:CONNECTIONS@RATE/s), nothing is connected yet")]
    NoRampFirst { text: String },
    /// A ramp to as many or fewer connections than are up already.
    #[error("stage {index}: ramps to {to} connections, but {from} are up already; connections only grow")]
    RampDown { index: usize, from: u64, to: u64 },
    /// A ramp that its stage is too short for.
    #[error(
        "stage {index}: ramping from {from} to {to} connections at {connects_per_s}/s takes {needed_s:.1} s, more \
         than the stage's {stage_s:.1} s"
    )]
    RampTooLong { index: usize, from: u64, to: u64, connects_per_s: f64, needed_s: f64, stage_s: f64 },
    /// Only ramps: no time to send in.
    #[error("no `hold` or `rate` stage: add one (e.g. `60s:hold`) so that messages flow with the connections up")]
    NothingHeld,
    /// The stages add up to more than `STAGES_DURATION_US_MAX`.
    #[error("the stages last {total_s:.0} s in all, more than the {} s allowed", STAGES_DURATION_US_MAX / 1_000_000)]
    TooLong { total_s: f64 },
}

/// A checked list of stages (what `--stages` parses into).
#[derive(Debug, Clone, PartialEq)]
pub struct Stages(Vec<Stage>);

impl Stages {
    /// Checks stages built elsewhere (a scenario file's tables); `texts` name them in errors.
    pub fn new(stages: Vec<Stage>, texts: &[String]) -> Result<Self, StageError> {
        if stages.is_empty() {
            return Err(StageError::Empty);
        }
        if stages.len() > STAGES_MAX {
            return Err(StageError::TooMany { count: stages.len() });
        }
        let text_of = |index: usize| texts.get(index).cloned().unwrap_or_default();
        if !matches!(stages[0], Stage::Ramp { .. }) {
            return Err(StageError::NoRampFirst { text: text_of(0) });
        }
        let mut connections = 0;
        let mut total_us: u64 = 0;
        for (position, stage) in stages.iter().enumerate() {
            let index = position + 1;
            total_us = total_us.saturating_add(stage.duration_us());
            if let Stage::Ramp { duration_us, connections: to, connects_per_s } = *stage {
                if to <= connections {
                    return Err(StageError::RampDown { index, from: connections, to });
                }
                let needed_s = (to - connections) as f64 / connects_per_s;
                let stage_s = duration_us as f64 / 1e6;
                if needed_s > stage_s {
                    return Err(StageError::RampTooLong {
                        index,
                        from: connections,
                        to,
                        connects_per_s,
                        needed_s,
                        stage_s,
                    });
                }
                connections = to;
            }
        }
        if stages.iter().all(|stage| matches!(stage, Stage::Ramp { .. })) {
            return Err(StageError::NothingHeld);
        }
        if total_us > STAGES_DURATION_US_MAX {
            return Err(StageError::TooLong { total_s: total_us as f64 / 1e6 });
        }
        Ok(Self(stages))
    }

    pub fn as_slice(&self) -> &[Stage] {
        &self.0
    }

    /// The most connections up at once: the last ramp's target.
    pub fn connections_max(&self) -> u64 {
        self.0
            .iter()
            .filter_map(|stage| match stage {
                Stage::Ramp { connections, .. } => Some(*connections),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }
}

impl FromStr for Stages {
    type Err = StageError;

    fn from_str(text: &str) -> Result<Self, StageError> {
        let texts: Vec<String> = text.split(',').map(|part| part.trim().to_owned()).collect();
        if texts.len() > STAGES_MAX {
            return Err(StageError::TooMany { count: texts.len() });
        }
        if texts.len() == 1 && texts[0].is_empty() {
            return Err(StageError::Empty);
        }
        let stages = texts
            .iter()
            .enumerate()
            .map(|(position, part)| parse_stage(position + 1, part))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(stages, &texts)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = |us: u64| us as f64 / 1e6;
        match *self {
            Stage::Ramp { duration_us, connections, connects_per_s } => {
                write!(out, "{}s:{connections}@{connects_per_s}/s", seconds(duration_us))
            }
            Stage::Hold { duration_us } => write!(out, "{}s:hold", seconds(duration_us)),
            Stage::Rate { duration_us, msgs_per_s } => write!(out, "{}s:rate {msgs_per_s}", seconds(duration_us)),
        }
    }
}

const EXPECTED_STAGE: &str = "DURATION:CONNECTIONS@RATE/s, DURATION:hold or DURATION:rate N (e.g. 60s:1000@100/s)";
const EXPECTED_DURATION: &str = "a duration above 0 such as 500ms, 60s, 2m or 1h before the `:`";
const EXPECTED_RAMP: &str = "CONNECTIONS@RATE/s after the `:`, a whole number above 0 and a rate above 0 (100@10/s)";
const EXPECTED_RATE: &str = "`rate N` with N messages per second, 0 or more (rate 5000)";

/// One stage's text; `index` counts from 1.
fn parse_stage(index: usize, text: &str) -> Result<Stage, StageError> {
    let syntax = |expected| StageError::Syntax { index, text: text.to_owned(), expected };
    let (duration, action) = text.split_once(':').ok_or_else(|| syntax(EXPECTED_STAGE))?;
    let duration_us = parse_duration_us(duration.trim()).ok_or_else(|| syntax(EXPECTED_DURATION))?;
    let action = action.trim();
    if action == "hold" {
        return Ok(Stage::Hold { duration_us });
    }
    if let Some(rate) = action.strip_prefix("rate") {
        let msgs_per_s = parse_per_s(rate.trim()).filter(|rate| *rate >= 0.0).ok_or_else(|| syntax(EXPECTED_RATE))?;
        return Ok(Stage::Rate { duration_us, msgs_per_s });
    }
    let (connections, rate) = action.split_once('@').ok_or_else(|| syntax(EXPECTED_STAGE))?;
    let connections: u64 =
        connections.trim().parse().ok().filter(|count| *count > 0).ok_or_else(|| syntax(EXPECTED_RAMP))?;
    let connects_per_s = parse_per_s(rate.trim()).filter(|rate| *rate > 0.0).ok_or_else(|| syntax(EXPECTED_RAMP))?;
    Ok(Stage::Ramp { duration_us, connections, connects_per_s })
}

/// `5000`, `5000/s`: a finite number, optionally per second.
fn parse_per_s(text: &str) -> Option<f64> {
    let number = text.strip_suffix("/s").unwrap_or(text).trim();
    number.parse::<f64>().ok().filter(|value| value.is_finite())
}

/// `500ms`, `60s`, `2m`, `1.5h`: above 0, whole µs.
pub fn parse_duration_us(text: &str) -> Option<u64> {
    let (number, unit_us) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1e3)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1e6)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60e6)
    } else if let Some(number) = text.strip_suffix('h') {
        (number, 3600e6)
    } else {
        return None;
    };
    let value: f64 = number.trim().parse().ok()?;
    let us = value * unit_us;
    (us.is_finite() && us >= 1.0 && us <= STAGES_DURATION_US_MAX as f64).then_some(us as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issues_example_parses() {
        let stages: Stages = "60s:100000@5000/s,120s:hold,30s:rate 20000".parse().expect("valid");
        assert_eq!(
            stages.as_slice(),
            &[
                Stage::Ramp { duration_us: 60_000_000, connections: 100_000, connects_per_s: 5000.0 },
                Stage::Hold { duration_us: 120_000_000 },
                Stage::Rate { duration_us: 30_000_000, msgs_per_s: 20_000.0 },
            ]
        );
        assert_eq!(stages.connections_max(), 100_000);
    }

    #[test]
    fn units_spaces_and_optional_per_second() {
        let stages: Stages = " 500ms : 10@20 , 2m:rate 5/s, 1.5h:hold ,1s:20@10/s".parse().expect("valid");
        assert_eq!(
            stages.as_slice(),
            &[
                Stage::Ramp { duration_us: 500_000, connections: 10, connects_per_s: 20.0 },
                Stage::Rate { duration_us: 120_000_000, msgs_per_s: 5.0 },
                Stage::Hold { duration_us: 5_400_000_000 },
                Stage::Ramp { duration_us: 1_000_000, connections: 20, connects_per_s: 10.0 },
            ]
        );
        assert_eq!(stages.connections_max(), 20);
    }

    #[test]
    fn displayed_stages_parse_back_to_themselves() {
        let stages: Stages = "60s:100000@5000/s,120s:hold,30s:rate 20000".parse().expect("valid");
        let text: Vec<String> = stages.as_slice().iter().map(Stage::to_string).collect();
        assert_eq!(text.join(",").parse::<Stages>().expect("valid"), stages);
    }

    fn error_of(text: &str) -> String {
        text.parse::<Stages>().expect_err("must be refused").to_string()
    }

    #[test]
    fn bad_profiles_name_the_stage_and_what_was_expected() {
        assert!(error_of("").contains("no stages"));
        assert_eq!(error_of("10s:10@5/s,60:hold"), format!("stage 2 `60:hold`: expected {EXPECTED_DURATION}"),);
        assert!(error_of("10s:10@5/s,0s:hold").starts_with("stage 2 `0s:hold`"));
        assert!(error_of("10s:10@5/s,60s:hodl").contains(EXPECTED_STAGE));
        assert!(error_of("10s:10@5/s,60s").contains("stage 2 `60s`"));
        assert!(error_of("10s:ten@5/s,60s:hold").contains(EXPECTED_RAMP));
        assert!(error_of("10s:10@0/s,60s:hold").contains(EXPECTED_RAMP));
        assert!(error_of("10s:10@5/s,60s:rate -1").contains(EXPECTED_RATE));
        assert!(error_of("10s:10@5/s,60s:rate lots").contains("stage 2"));
        assert!(error_of("60s:hold,10s:10@5/s").contains("opens with a ramp"));
        assert_eq!(
            error_of("10s:10@5/s,10s:10@5/s,60s:hold"),
            "stage 2: ramps to 10 connections, but 10 are up already; connections only grow"
        );
        assert!(error_of("10s:100@5/s,60s:hold").starts_with("stage 1: ramping from 0 to 100 connections at 5/s"));
        assert!(error_of("10s:10@5/s").contains("no `hold` or `rate` stage"));
        assert!(error_of("10s:10@5/s,1000h:hold").contains("stage 2"));
        assert!(error_of("10s:10@5/s,20h:hold,20h:hold").contains("in all"));
        let many = vec!["1s:hold"; STAGES_MAX + 1].join(",");
        assert!(error_of(&many).contains("more than the"));
    }

    /// Fuzz-like: any text either parses into a profile that keeps every invariant, or is refused with an
    /// error; never a panic.
    #[test]
    fn arbitrary_text_parses_to_a_valid_profile_or_an_error() {
        let pieces = ["1", "10", "0", "-3", "1.5", "s", "ms", "m", "h", ":", "@", "/s", ",", "hold", "rate ", " ", "x"];
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..20_000 {
            let mut text = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for step in 0..(state % 24) {
                let draw = (state.rotate_left(step as u32 * 5) % pieces.len() as u64) as usize;
                text.push_str(pieces[draw]);
            }
            if let Ok(stages) = text.parse::<Stages>() {
                let stages = stages.as_slice();
                assert!(matches!(stages[0], Stage::Ramp { .. }), "{text}");
                assert!(stages.iter().all(|stage| stage.duration_us() > 0), "{text}");
            }
        }
    }
}
