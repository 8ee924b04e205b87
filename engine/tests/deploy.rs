//! The files in deploy/ and the commands that describe the binary: the example configuration holds every
//! setting `serve` accepts, each at its default; `ringline config print` shows the effective configuration;
//! completions and man pages name every subcommand; the Containerfile is a multi-stage, non-root image
//! (and builds, where a container daemon answers).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use engine::config::{ServeArgs, ServeConfig, setting_names};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example_path() -> PathBuf {
    repository().join("deploy/ringline.example.toml")
}

fn ringline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringline")).args(args).output().expect("the binary runs")
}

fn stdout_of(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every setting `ServeArgs` accepts, as `name` or `table.name`, from its serde definition.
fn serve_setting_names() -> BTreeSet<String> {
    let serde_json::Value::Object(table) = serde_json::to_value(ServeArgs::default()).expect("serializes") else {
        panic!("ServeArgs is a table");
    };
    setting_names(&table, "").into_iter().map(|(name, _)| name).collect()
}

/// The settings a TOML text names, set or commented out (`# key = ...`), as `name` or `table.name`.
fn names_in_example(text: &str) -> BTreeSet<String> {
    let mut table = String::new();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            table = format!("{name}.");
            continue;
        }
        let setting = line.strip_prefix("# ").unwrap_or(line);
        if let Some((key, _)) = setting.split_once(" = ")
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            names.insert(format!("{table}{key}"));
        }
    }
    names
}

#[test]
fn the_example_configuration_is_every_default() {
    let example = ServeArgs { config: Some(example_path()), ..ServeArgs::default() };
    let loaded = ServeConfig::resolve(&example).expect("the example loads");
    let defaults = ServeConfig::resolve(&ServeArgs { listen: Some(loaded.listen), ..ServeArgs::default() })
        .expect("defaults resolve");
    assert_eq!(loaded.effective_args(), defaults.effective_args(), "the example sets each default, nothing else");
}

#[test]
fn the_example_configuration_names_every_setting() {
    let text = std::fs::read_to_string(example_path()).expect("the example");
    let named = names_in_example(&text);
    let accepted = serve_setting_names();
    let missing: Vec<_> = accepted.difference(&named).collect();
    let unknown: Vec<_> = named.difference(&accepted).collect();
    assert!(missing.is_empty(), "deploy/ringline.example.toml lacks {missing:?}");
    assert!(unknown.is_empty(), "deploy/ringline.example.toml names settings serve does not have: {unknown:?}");
}

#[test]
fn config_print_shows_the_file_under_the_flags_over_the_defaults() {
    let dir = std::env::temp_dir().join(format!("ringline-config-print-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("key.pem");
    let key_contents = "-----BEGIN PRIVATE KEY-----\nTHISMUSTNOTBEPRINTED\n-----END PRIVATE KEY-----\n";
    std::fs::write(&key, key_contents).expect("key");
    let file = dir.join("ringline.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:7000\"\ncores = 3\nidle_timeout = \"2m\"\n[tls]\nlisten = \"127.0.0.1:7443\"\ncert = \"c.pem\"\n")
        .expect("config");
    let key_arg = key.to_str().expect("utf-8 path");
    let file_arg = file.to_str().expect("utf-8 path");
    let printed =
        stdout_of(&ringline(&["config", "print", "--config", file_arg, "--cores", "2", "--tls-key", key_arg]));
    assert!(printed.contains("\ncores = 2\n"), "the flag wins:\n{printed}");
    assert!(printed.contains("\nidle_timeout = \"2m\"\n"), "the file's value:\n{printed}");
    assert!(printed.contains("\nbacklog = 65535\n"), "a default:\n{printed}");
    assert!(printed.contains(&format!("\nkey = \"{key_arg}\"\n")), "the key's path stays:\n{printed}");
    assert!(!printed.contains("THISMUSTNOTBEPRINTED"), "the key's contents never:\n{printed}");
    assert!(printed.contains("# not set: metrics\n"), "{printed}");
    // What it prints is a configuration file that gives the same configuration.
    let reprinted_file = dir.join("printed.toml");
    std::fs::write(&reprinted_file, &printed).expect("write");
    let reprinted = stdout_of(&ringline(&["config", "print", "--config", reprinted_file.to_str().expect("utf-8")]));
    assert_eq!(reprinted, printed);

    let refused = ringline(&["config", "print", "--config", file_arg, "--tls-key", key_arg, "--frame-size-max", "10"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("frame-size-max = 10"), "{refused:?}");
    let _ = std::fs::remove_dir_all(dir);
}

const SUBCOMMANDS: [&str; 8] = ["serve", "top", "users", "provision", "tls", "dev-cert", "config", "print"];

#[test]
fn completions_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&ringline(&["completions", shell]));
        for subcommand in SUBCOMMANDS.iter().chain(&["completions", "man"]) {
            assert!(script.contains(subcommand), "{shell} completions lack {subcommand}");
        }
        assert!(script.contains("--listen"), "{shell} completions lack serve's flags");
    }
    assert!(!ringline(&["completions", "tcsh"]).status.success());
}

#[test]
fn man_writes_a_page_per_subcommand() {
    let page = stdout_of(&ringline(&["man"]));
    assert!(page.starts_with(".ie") || page.contains(".TH ringline"), "a roff page:\n{page}");
    let dir = std::env::temp_dir().join(format!("ringline-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    stdout_of(&ringline(&["man", "--out-dir", dir.to_str().expect("utf-8")]));
    for page in ["ringline", "ringline-serve", "ringline-top", "ringline-users-provision", "ringline-tls-dev-cert"]
        .into_iter()
        .chain(["ringline-config-print", "ringline-completions", "ringline-man"])
    {
        let text = std::fs::read_to_string(dir.join(format!("{page}.1"))).unwrap_or_else(|_| panic!("{page}.1"));
        assert!(text.contains(".TH"), "{page}.1 is a man page");
    }
    let serve = std::fs::read_to_string(dir.join("ringline-serve.1")).expect("serve page");
    assert!(serve.contains("shutdown\\-grace"), "the serve page lists its flags");
    let _ = std::fs::remove_dir_all(dir);
}

/// One instruction of a Containerfile: its keyword (upper case) and the rest, continuation lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .map(|line| {
            let (keyword, rest) = line.split_once(' ').unwrap_or((&line, ""));
            (keyword.to_ascii_uppercase(), rest.trim().to_owned())
        })
        .collect()
}

#[test]
fn the_containerfile_is_a_small_non_root_two_stage_image() {
    let text = std::fs::read_to_string(repository().join("deploy/Containerfile")).expect("Containerfile");
    let all = instructions(&text);
    let froms: Vec<&String> = all.iter().filter(|(keyword, _)| keyword == "FROM").map(|(_, rest)| rest).collect();
    assert_eq!(froms, ["rust:bookworm AS build", "debian:bookworm-slim AS runtime"], "build, then runtime");
    let runtime_at = all.iter().rposition(|(keyword, _)| keyword == "FROM").expect("a FROM");
    let runtime = &all[runtime_at..];
    let last = |keyword: &str| runtime.iter().rev().find(|(have, _)| have == keyword).map(|(_, rest)| rest.as_str());
    let user = last("USER").expect("the runtime stage sets USER");
    let user_name = user.split(':').next().unwrap_or(user);
    assert!(!["root", "0", ""].contains(&user_name), "runs as {user}");
    for (keyword, rest) in &all {
        assert!(keyword != "ADD", "COPY, not ADD (no URLs, no archives unpacked): ADD {rest}");
        assert!(!rest.contains("curl ") && !rest.contains("wget "), "nothing fetched in a RUN: {rest}");
    }
    let copied: Vec<&str> = runtime
        .iter()
        .filter(|(keyword, rest)| keyword == "COPY" && rest.starts_with("--from=build"))
        .flat_map(|(_, rest)| rest.split_whitespace().skip(1).collect::<Vec<_>>())
        .collect();
    let (destination, sources) = copied.split_last().expect("binaries copied from the build stage");
    assert_eq!(*destination, "/usr/bin/");
    assert_eq!(sources, ["/src/target/release/ringline", "/src/target/release/ringline-tune"]);
    let exposed = last("EXPOSE").expect("EXPOSE");
    for port in ["7000", "9100"] {
        assert!(exposed.split_whitespace().any(|have| have == port), "EXPOSE {exposed} lacks {port}");
    }
    assert!(last("VOLUME").is_some_and(|volume| volume.contains("/var/lib/ringline")), "the data dir is a volume");
    let health = last("HEALTHCHECK").expect("HEALTHCHECK");
    assert!(health.contains("/healthz") && health.contains("9100"), "{health}");
    let cmd = last("CMD").expect("CMD");
    assert!(cmd.contains("\"--metrics\", \"0.0.0.0:9100\""), "the health check's port is served: {cmd}");
    let ignore = std::fs::read_to_string(repository().join("deploy/Containerfile.dockerignore")).expect("ignore file");
    assert!(ignore.lines().any(|line| line == "target"), "target/ stays out of the build context");
}

/// Builds the image where a container daemon answers; elsewhere says why it is skipped.
#[test]
fn the_containerfile_builds_where_a_daemon_answers() {
    // A whole release build inside the image: minutes, so only on request (CI's budget is 15 minutes).
    if std::env::var_os("RINGLINE_TEST_IMAGE_BUILD").is_none() {
        println!("skipped: set RINGLINE_TEST_IMAGE_BUILD=1 to build deploy/Containerfile (needs a container daemon)");
        return;
    }
    let daemon = Command::new("docker").arg("info").output();
    if !daemon.as_ref().is_ok_and(|output| output.status.success()) {
        let reason = match daemon {
            Err(error) => format!("no docker client ({error})"),
            Ok(output) => format!("`docker info` failed: {}", String::from_utf8_lossy(&output.stderr).trim()),
        };
        println!("skipped: building deploy/Containerfile needs a container daemon; {reason}");
        return;
    }
    let output = Command::new("docker")
        .args(["build", "--file", "deploy/Containerfile", "--tag", "ringline:test", "."])
        .current_dir(repository())
        .output()
        .expect("docker build runs");
    assert!(output.status.success(), "docker build: {}", String::from_utf8_lossy(&output.stderr));
}
