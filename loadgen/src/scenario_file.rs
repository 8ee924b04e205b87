//! `--scenario FILE.toml`: a load test written down as a small TOML file instead of flags, for runs that are
//! kept beside their results and rerun. Owns the file's keys, their checks and their errors (naming the key
//! or the stage); sans-IO: text in. The keys a file sets replace the flags' values (`RunArgs::with_scenario_file`);
//! the keys it leaves out keep them.
//!
//! ```toml
//! scenario = "chat"        # idle | chat | offline | reconnect-storm; or a workload mix, shares summing to 1:
//! # workload_mix = [{ workload = "chat", share = 0.8 }, { workload = "idle", share = 0.2 }]
//! rate = 1000              # messages/s from the end of the first ramp, until a stage sets another
//! arrivals = "poisson"     # poisson | fixed
//! contacts = 4
//! offline_share = 0.2
//! storm_share = 0.5
//! body_bytes = 64          # or a message size mix, shares summing to 1:
//! # body_bytes_mix = [{ bytes = 64, share = 0.9 }, { bytes = 1024, share = 0.1 }]
//! stages = "60s:100000@5000/s,120s:hold,30s:rate 20000"   # the --stages grammar, or [[stage]] tables:
//!
//! [[stage]]                # a ramp: connect users at connects_per_s until connections are up
//! duration = "60s"
//! connections = 100000
//! connects_per_s = 5000
//! [[stage]]                # a hold: only a duration
//! duration = "120s"
//! [[stage]]                # a rate change
//! duration = "30s"
//! rate = 20000
//! ```

use serde::Deserialize;

use crate::control::Scenario;
use crate::limits::BODY_BYTES_MAX;
use crate::schedule::Arrivals;
use crate::stages::{Stage, StageError, Stages, parse_duration_us};
use crate::workload_mix::{WorkloadMixError, WorkloadShare, check_workload_mix};

/// Smallest message body: the loadgen header.
pub const BODY_BYTES_MIN: u32 = 44;
/// Sizes in one message size mix.
pub const BODY_SIZES_MAX: usize = 16;

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioFileError {
    /// Not TOML, an unknown key or a value of the wrong type (the TOML parser's message names the line).
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A value out of its range.
    #[error("`{key}`: {expected}")]
    Value { key: &'static str, expected: String },
    /// The stages, as `--stages` would refuse them.
    #[error("stages: {0}")]
    Stages(#[from] StageError),
    /// A workload mix out of its ranges (the error names the entry).
    #[error("`workload_mix`: {0}")]
    WorkloadMix(#[from] WorkloadMixError),
    /// A `[[stage]]` table that is none of ramp, hold and rate.
    #[error(
        "stage {index}: expected `duration` with `connections` and `connects_per_s` (a ramp), with `rate` (a rate \
         change), or alone (a hold)"
    )]
    StageKind { index: usize },
    /// A `[[stage]]` table whose duration does not parse.
    #[error("stage {index}: `duration = \"{text}\"`: expected a duration above 0 such as 500ms, 60s, 2m or 1h")]
    StageDuration { index: usize, text: String },
}

/// One size of a message size mix.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BodySize {
    pub bytes: u32,
    /// Share of the users that send bodies of this size.
    pub share: f64,
}

/// A `[[stage]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageTable {
    duration: String,
    connections: Option<u64>,
    connects_per_s: Option<f64>,
    rate: Option<f64>,
}

/// The file as TOML has it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenarioFile {
    scenario: Option<Scenario>,
    workload_mix: Option<Vec<WorkloadShare>>,
    rate: Option<f64>,
    arrivals: Option<Arrivals>,
    contacts: Option<u64>,
    offline_share: Option<f64>,
    storm_share: Option<f64>,
    body_bytes: Option<u32>,
    body_bytes_mix: Option<Vec<BodySize>>,
    stages: Option<String>,
    stage: Option<Vec<StageTable>>,
}

/// A checked scenario file: `None` where the file leaves the flag's value.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioFile {
    pub scenario: Option<Scenario>,
    /// Workloads by share of the users (each user runs one); shares sum to 1. Excludes `scenario`.
    pub workload_mix: Option<Vec<WorkloadShare>>,
    pub rate: Option<f64>,
    pub arrivals: Option<Arrivals>,
    pub contacts: Option<u64>,
    pub offline_share: Option<f64>,
    pub storm_share: Option<f64>,
    pub body_bytes: Option<u32>,
    /// Message sizes by share of the users (each user sends one size); shares sum to 1.
    pub body_bytes_mix: Option<Vec<BodySize>>,
    pub stages: Option<Stages>,
}

impl ScenarioFile {
    /// Parses and checks a scenario file's text.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioFileError> {
        let raw: RawScenarioFile = toml::from_str(text)?;
        let value = |key: &'static str, expected: &str| ScenarioFileError::Value { key, expected: expected.to_owned() };
        if raw.rate.is_some_and(|rate| !(rate >= 0.0 && rate.is_finite())) {
            return Err(value("rate", "messages per second, 0 or more"));
        }
        if raw.contacts.is_some_and(|contacts| !(1..=64).contains(&contacts)) {
            return Err(value("contacts", "1 to 64"));
        }
        for (key, share) in [("offline_share", raw.offline_share), ("storm_share", raw.storm_share)] {
            if share.is_some_and(|share| !(0.0..=1.0).contains(&share)) {
                return Err(value(key, "a fraction between 0 and 1"));
            }
        }
        let body_range = BODY_BYTES_MIN..=BODY_BYTES_MAX as u32;
        if raw.body_bytes.is_some_and(|bytes| !body_range.contains(&bytes)) {
            return Err(value("body_bytes", &format!("{BODY_BYTES_MIN} to {BODY_BYTES_MAX} bytes")));
        }
        if let Some(mix) = &raw.body_bytes_mix {
            if raw.body_bytes.is_some() {
                return Err(value("body_bytes_mix", "either body_bytes or body_bytes_mix, not both"));
            }
            if mix.is_empty() || mix.len() > BODY_SIZES_MAX {
                return Err(value("body_bytes_mix", &format!("1 to {BODY_SIZES_MAX} sizes")));
            }
            if let Some(size) = mix.iter().find(|size| !body_range.contains(&size.bytes)) {
                let expected = format!("sizes of {BODY_BYTES_MIN} to {BODY_BYTES_MAX} bytes, not {}", size.bytes);
                return Err(value("body_bytes_mix", &expected));
            }
            let total: f64 = mix.iter().map(|size| size.share).sum();
            if mix.iter().any(|size| size.share.is_nan() || size.share <= 0.0) || (total - 1.0).abs() > 1e-6 {
                return Err(value("body_bytes_mix", &format!("shares above 0 that sum to 1, not {total}")));
            }
        }
        if let Some(mix) = &raw.workload_mix {
            if raw.scenario.is_some() {
                return Err(value("workload_mix", "either scenario or workload_mix, not both"));
            }
            check_workload_mix(mix)?;
        }
        let stages = match (raw.stages, raw.stage) {
            (Some(_), Some(_)) => {
                return Err(value("stages", "either `stages = \"...\"` or [[stage]] tables, not both"));
            }
            (Some(text), None) => Some(text.parse::<Stages>()?),
            (None, Some(tables)) => Some(stages_of_tables(tables)?),
            (None, None) => None,
        };
        Ok(Self {
            scenario: raw.scenario,
            workload_mix: raw.workload_mix,
            rate: raw.rate,
            arrivals: raw.arrivals,
            contacts: raw.contacts,
            offline_share: raw.offline_share,
            storm_share: raw.storm_share,
            body_bytes: raw.body_bytes,
            body_bytes_mix: raw.body_bytes_mix,
            stages,
        })
    }
}

fn stages_of_tables(tables: Vec<StageTable>) -> Result<Stages, ScenarioFileError> {
    let mut stages = Vec::with_capacity(tables.len());
    for (position, table) in tables.into_iter().enumerate() {
        let index = position + 1;
        let duration_us = parse_duration_us(table.duration.trim())
            .ok_or_else(|| ScenarioFileError::StageDuration { index, text: table.duration.clone() })?;
        let stage = match (table.connections, table.connects_per_s, table.rate) {
            (Some(connections), Some(connects_per_s), None) if connections > 0 && connects_per_s > 0.0 => {
                Stage::Ramp { duration_us, connections, connects_per_s }
            }
            (None, None, Some(msgs_per_s)) if msgs_per_s >= 0.0 && msgs_per_s.is_finite() => {
                Stage::Rate { duration_us, msgs_per_s }
            }
            (None, None, None) => Stage::Hold { duration_us },
            _ => return Err(ScenarioFileError::StageKind { index }),
        };
        stages.push(stage);
    }
    let texts: Vec<String> = stages.iter().map(Stage::to_string).collect();
    Ok(Stages::new(stages, &texts)?)
}

/// The body size of user `index` of `users` under a size mix: the first share of the users sends the first
/// size, and so on (the same rule on every agent and core, as `contacts::in_share` picks offline users).
pub fn body_bytes_of(mix: &[BodySize], index: usize, users: usize) -> Option<u32> {
    let position = index as f64 / users.max(1) as f64;
    let mut upto = 0.0;
    for size in mix {
        upto += size.share;
        if position < upto {
            return Some(size.bytes);
        }
    }
    mix.last().map(|size| size.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        scenario = "offline"
        rate = 500
        arrivals = "fixed"
        body_bytes_mix = [{ bytes = 64, share = 0.75 }, { bytes = 1024, share = 0.25 }]

        [[stage]]
        duration = "60s"
        connections = 100000
        connects_per_s = 5000
        [[stage]]
        duration = "120s"
        [[stage]]
        duration = "30s"
        rate = 20000
    "#;

    #[test]
    fn tables_and_the_stages_string_mean_the_same() {
        let file = ScenarioFile::from_toml(EXAMPLE).expect("valid");
        assert_eq!(file.scenario, Some(Scenario::Offline));
        assert_eq!(file.rate, Some(500.0));
        assert_eq!(file.arrivals, Some(Arrivals::Fixed));
        assert_eq!(file.contacts, None);
        let same = "60s:100000@5000/s,120s:hold,30s:rate 20000".parse::<Stages>().expect("valid");
        assert_eq!(file.stages, Some(same.clone()));
        let string = ScenarioFile::from_toml("stages = \"60s:100000@5000/s,120s:hold,30s:rate 20000\"").expect("valid");
        assert_eq!(string.stages, Some(same));
        let mix = file.body_bytes_mix.expect("a mix");
        let sizes: Vec<u32> = (0..8).filter_map(|index| body_bytes_of(&mix, index, 8)).collect();
        assert_eq!(sizes, [64, 64, 64, 64, 64, 64, 1024, 1024]);
    }

    /// The example in docs/LOADGEN.md is a file this parser takes, with the profile it says it is.
    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../docs/LOADGEN.md");
        let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("the block ends");
        let file = ScenarioFile::from_toml(&doc[start..end]).expect("the documented example is valid");
        let same = "60s:100000@5000/s,120s:hold,30s:rate 20000".parse::<Stages>().expect("valid");
        assert_eq!(file.stages, Some(same));
        assert_eq!(file.body_bytes_mix.map(|mix| mix.len()), Some(2));
    }

    #[test]
    fn a_workload_mix_gives_each_user_one_workload() {
        let file = ScenarioFile::from_toml(
            "[[workload_mix]]\nworkload = \"chat\"\nshare = 0.8\n[[workload_mix]]\nworkload = \"idle\"\nshare = 0.2\n",
        )
        .expect("valid");
        assert_eq!(file.scenario, None);
        let mix = file.workload_mix.expect("a mix");
        let workloads: Vec<Scenario> =
            (0..10).map(|index| crate::workload_mix::workload_of(&mix, Scenario::Offline, index, 10)).collect();
        assert_eq!(workloads.iter().filter(|&&workload| workload == Scenario::Chat).count(), 8);
        assert_eq!(workloads.iter().filter(|&&workload| workload == Scenario::Idle).count(), 2);
    }

    /// The workload mix in docs/LOADGEN.md is one this parser takes.
    #[test]
    fn the_documented_workload_mix_parses() {
        let doc = include_str!("../../docs/LOADGEN.md");
        let block =
            doc.split("```toml\n").find(|block| block.starts_with("[[workload_mix]]")).expect("the mix's block");
        let end = block.find("```").expect("the block ends");
        let file = ScenarioFile::from_toml(&block[..end]).expect("the documented mix is valid");
        let mix = file.workload_mix.expect("a mix");
        assert_eq!(mix.iter().map(|entry| entry.workload).collect::<Vec<_>>(), [Scenario::Chat, Scenario::Idle]);
    }

    fn error_of(text: &str) -> String {
        ScenarioFile::from_toml(text).expect_err("must be refused").to_string()
    }

    #[test]
    fn bad_files_say_which_key_or_stage() {
        assert!(error_of("rate = -1").starts_with("`rate`"));
        assert!(error_of("scenario = \"party\"").contains("unknown variant"));
        assert!(error_of("connections = 5").contains("unknown field"));
        assert!(error_of("contacts = 0").starts_with("`contacts`"));
        assert!(error_of("storm_share = 2.0").starts_with("`storm_share`"));
        assert!(error_of("body_bytes = 10").contains("44 to 4096"));
        assert!(error_of("body_bytes_mix = [{ bytes = 64, share = 0.5 }]").contains("sum to 1"));
        assert!(error_of("body_bytes = 64\nbody_bytes_mix = [{ bytes = 64, share = 1.0 }]").contains("not both"));
        assert!(error_of("stages = \"10s:10@5/s,60:hold\"").contains("stage 2 `60:hold`"));
        assert!(
            error_of("[[stage]]\nduration = \"10s\"\nconnections = 10\nconnects_per_s = 5\n[[stage]]\nduration = \"1s\"\nconnections = 5")
                .starts_with("stage 2: expected")
        );
        assert!(error_of("[[stage]]\nduration = \"ten\"").starts_with("stage 1: `duration = \"ten\"`"));
        assert!(error_of("[[stage]]\nduration = \"10s\"\nrate = 5").contains("opens with a ramp"));
        assert!(error_of("stages = \"1s:1@1/s,1s:hold\"\n[[stage]]\nduration = \"1s\"").contains("not both"));
        let half = "workload_mix = [{ workload = \"chat\", share = 0.5 }]";
        assert_eq!(error_of(half), "`workload_mix`: shares sum to 0.5, not 1");
        let zero =
            "[[workload_mix]]\nworkload = \"chat\"\nshare = 1.0\n[[workload_mix]]\nworkload = \"idle\"\nshare = 0";
        assert_eq!(error_of(zero), "`workload_mix`: entry 2 (Idle): share 0 is not in (0, 1]");
        assert!(error_of("workload_mix = [{ workload = \"party\", share = 1.0 }]").contains("unknown variant"));
        let both = "scenario = \"chat\"\nworkload_mix = [{ workload = \"chat\", share = 1.0 }]";
        assert!(error_of(both).contains("not both"));
    }
}
