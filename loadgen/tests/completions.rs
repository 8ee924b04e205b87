//! `ringline-loadgen completions SHELL` and `ringline-loadgen man`: generated from the clap definitions, so
//! they name every subcommand and the flags scripts use.

mod support;

use support::*;

fn stdout_of(args: &[&str]) -> String {
    let output = run_loadgen(args);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn completions_name_every_subcommand_and_the_agent_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        // Flags without their dashes: fish writes `-l agent-token`.
        for word in ["run", "agent", "completions", "man", "agent-token", "agents", "agent-clock-offset-max-ms"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let output = run_loadgen(&["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("possible values"));
}

#[test]
fn man_pages_cover_every_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(page.starts_with(".ie") || page.contains(".TH ringline-loadgen"), "{page}");
    assert!(page.contains("agent"), "{page}");
    let dir = test_dir("man");
    let out_dir = dir.join("man1");
    stdout_of(&["man", "--out-dir", out_dir.to_str().expect("utf-8")]);
    for name in ["ringline-loadgen.1", "ringline-loadgen-run.1", "ringline-loadgen-agent.1"] {
        let text = std::fs::read_to_string(out_dir.join(name)).unwrap_or_else(|_| panic!("{name} written"));
        assert!(text.contains(".TH"), "{name}");
    }
    let agent = std::fs::read_to_string(out_dir.join("ringline-loadgen-agent.1")).expect("agent page");
    assert!(agent.contains("agent\\-token") || agent.contains("agent-token"), "{agent}");
    let _ = std::fs::remove_dir_all(&dir);
}
