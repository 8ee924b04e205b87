//! Kill -9 torture of a real `ringline serve` (`--durability sync`, small log segments) with the test's own
//! ledger: sender/receiver pairs, a share of receivers offline at any moment, every unanswered SEND retried
//! with the same `client_msg_id` after a reconnect, SIGKILL at seeded moments (steady load, bursts that rotate
//! segments, offline drains, and the final drain) and a restart on the same data directory each time. The
//! verdict counts what the clients saw: no ACKed message lost, none delivered under two ids, each sender's
//! order kept, every DELIVERED answered by its receipt; re-deliveries after a crash are allowed and counted.
//!
//! The short form runs in `cargo test`; the long form (ignored; results/crash/README.md) is
//! `cargo test --release -p ringline --test crash_torture -- --ignored --nocapture long_form`, sized by
//! `RINGLINE_TORTURE_*` variables. `RINGLINE_TORTURE_SEED=n` replays a seed's schedule. Each run prints one
//! JSON line. No test asserts on time.

#[path = "../support/mod.rs"]
mod support;

mod clients;
mod ledger;
mod plan;
mod run;

use plan::Config;

/// `RINGLINE_TORTURE_<name>` parsed, or `default`.
fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    let variable = format!("RINGLINE_TORTURE_{name}");
    match std::env::var(&variable) {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("{variable}={text:?} does not parse")),
        Err(_) => default,
    }
}

/// The seed: `RINGLINE_TORTURE_SEED`, else `default`.
fn seed_or(default: u64) -> u64 {
    setting("SEED", default)
}

/// Runs `config`, prints its summary line and fails the test on a broken promise.
fn run_and_check(config: &Config, name: &str) {
    eprintln!("crash_torture: seed {} (replay with RINGLINE_TORTURE_SEED={})", config.seed, config.seed);
    let summary = run::run(config, name, setting("KEEP", false));
    println!("{}", serde_json::to_string(&summary).expect("a summary serializes"));
    assert!(
        summary.passed,
        "seed {}: a promise was broken: {}",
        config.seed,
        serde_json::to_string_pretty(&summary).expect("a summary serializes")
    );
}

/// The short form for `cargo test`: a few kills and some tens of thousands of ACKed messages on a debug build
/// (the ACK count spaces the kills; bursts and drains add more).
///
/// `segment_bytes`: small for one seed (rotation and compaction all the time), larger for the other (many
/// groups per segment for replay to read).
fn short_form(seed: u64, segment_bytes: u64, name: &str) {
    let config = Config {
        seed,
        pairs: 16,
        kills: 4,
        acked_min: 20_000,
        load_seconds_max: 60,
        offline_share: 0.3,
        cores: 2,
        segment_bytes,
    };
    run_and_check(&config, name);
}

#[test]
fn short_torture_first_seed() {
    short_form(seed_or(0x5EED_0001), 16 * 1024, "torture-short-1");
}

#[test]
fn short_torture_second_seed() {
    short_form(seed_or(0x5EED_0001).wrapping_add(1), 1024 * 1024, "torture-short-2");
}

/// The long form: `RINGLINE_TORTURE_RUNS` runs (seeds `SEED`, `SEED + 1`, …), each with `KILLS` kills and at
/// least `ACKED` messages ACKed, `PAIRS` pairs, `OFFLINE_PERCENT` of receivers offline, `SEGMENT_BYTES`
/// segments (0, the default: drawn by the seed from 16 KiB to 8 MiB), at most `LOAD_SECONDS` of load each (`UNTIL_LOST=true`: stop after the first run that loses an
/// ACKed message). Prints each run's line, then a line with the totals.
#[test]
#[ignore = "the long form: minutes on a release build (results/crash/README.md)"]
fn long_form() {
    let seed = setting("SEED", std::process::id() as u64 ^ 0x9E37_79B9);
    let runs: u64 = setting("RUNS", 8);
    let mut summaries = Vec::new();
    for run in 0..runs {
        let config = Config {
            seed: seed.wrapping_add(run),
            pairs: setting("PAIRS", 200),
            kills: setting("KILLS", 15),
            acked_min: setting("ACKED", 140_000),
            load_seconds_max: setting("LOAD_SECONDS", 900),
            offline_share: setting("OFFLINE_PERCENT", 30.0) / 100.0,
            cores: setting("CORES", 2),
            segment_bytes: match setting("SEGMENT_BYTES", 0) {
                0 => plan::segment_bytes_for(seed.wrapping_add(run)),
                bytes => bytes,
            },
        };
        eprintln!("crash_torture: run {run} of {runs}, seed {}", config.seed);
        let summary = run::run(&config, &format!("torture-long-{run}"), setting("KEEP", false));
        println!("{}", serde_json::to_string(&summary).expect("a summary serializes"));
        let lost = summary.counts.lost;
        summaries.push(summary);
        if setting("UNTIL_LOST", false) && lost > 0 {
            eprintln!("crash_torture: stopping after the first run that lost ACKed messages (UNTIL_LOST)");
            break;
        }
    }
    let failed: Vec<u64> =
        summaries.iter().filter(|summary| !summary.passed).map(|summary| summary.config.seed).collect();
    let total = |count: fn(&run::Summary) -> u64| summaries.iter().map(count).sum::<u64>();
    println!(
        "{}",
        serde_json::json!({ "totals": {
            "runs": summaries.len(),
            "first_seed": seed,
            "kills": total(|summary| u64::from(summary.kills)),
            "acked": total(|summary| summary.counts.acked),
            "delivered": total(|summary| summary.counts.delivered),
            "redelivered": total(|summary| summary.counts.redelivered),
            "lost": total(|summary| summary.counts.lost),
            "delivered_under_two_ids": total(|summary| summary.counts.delivered_under_two_ids),
            "ack_delivery_mismatch": total(|summary| summary.counts.ack_delivery_mismatch),
            "order_violations": total(|summary| summary.counts.order_violations),
            "delivered_sent": total(|summary| summary.counts.delivered_sent),
            "receipts": total(|summary| summary.counts.receipts),
            "receipts_missing": total(|summary| summary.counts.receipts_missing),
            "receipts_repeated": total(|summary| summary.counts.receipts_repeated),
            "failed_seeds": failed,
        }})
    );
    assert!(failed.is_empty(), "runs with a broken promise, by seed: {failed:?}");
}
