//! The binary's answers to bad command lines: clap errors with exit code 2 and a message naming the problem,
//! and clean one-line errors (no panic) for problems found after parsing.

mod support;

use support::*;

fn stderr_of(args: &[&str]) -> (i32, String) {
    let output = run_loadgen(args);
    (output.status.code().expect("exited"), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn bad_flags_are_clear_errors_not_panics() {
    let cases: [(&[&str], &str); 5] = [
        (&["run", "--connections", "5"], "--target"),
        (&["run", "--target", "127.0.0.1:9", "--connections", "5"], "--users"),
        (&["run", "--spawn-engine", "--offline-share", "2"], "between 0 and 1"),
        (&["run", "--spawn-engine", "--scenario", "nope"], "possible values"),
        (&["run", "--spawn-engine", "--connections", "many"], "invalid value"),
    ];
    for (args, expected) in cases {
        let (code, stderr) = stderr_of(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn problems_found_after_parsing_are_one_line_errors() {
    let dir = test_dir("cli");
    let (code, stderr) = stderr_of(&[
        "run",
        "--spawn-engine",
        "--engine-bin",
        dir.join("no-such-engine").to_str().expect("utf-8"),
        "--connections",
        "5",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--engine-bin"), "{stderr}");
    let (code, stderr) = stderr_of(&[
        "run",
        "--target",
        "127.0.0.1:9",
        "--users",
        dir.join("missing-keys.txt").to_str().expect("utf-8"),
        "--connections",
        "5",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("keys file"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `--stages` and `--scenario FILE.toml` that do not check out are clap errors naming the stage or the key.
#[test]
fn bad_stages_and_scenario_files_name_what_is_wrong() {
    let dir = test_dir("cli-scenario-file");
    let bad_stage = dir.join("bad-stage.toml");
    std::fs::write(
        &bad_stage,
        "[[stage]]\nduration = \"10s\"\nconnections = 10\nconnects_per_s = 0.5\n[[stage]]\nduration = \"5s\"\n",
    )
    .expect("write");
    let bad_key = dir.join("bad-key.toml");
    std::fs::write(&bad_key, "rate = 10\nconections = 5\n").expect("write");
    let bad_stage = bad_stage.to_str().expect("utf-8");
    let bad_key = bad_key.to_str().expect("utf-8");
    let missing = dir.join("missing.toml");
    let missing = missing.to_str().expect("utf-8");
    let cases: [(&[&str], &str); 4] = [
        (&["run", "--spawn-engine", "--stages", "60s:100000@5000/s,120s:hodl"], "stage 2 `120s:hodl`: expected"),
        (
            &["run", "--spawn-engine", "--scenario", bad_stage],
            "stage 1: ramping from 0 to 10 connections at 0.5/s takes 20.0 s",
        ),
        (&["run", "--spawn-engine", "--scenario", bad_key], "unknown field `conections`"),
        (&["run", "--spawn-engine", "--scenario", missing], "reading the scenario file"),
    ];
    for (args, expected) in cases {
        let (code, stderr) = stderr_of(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
