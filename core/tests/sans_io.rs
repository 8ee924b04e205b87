//! The crate stays sans-IO, checked on every `cargo test --workspace` (so in CI): its dependency tree holds no
//! runtime crate, it names no runtime crate directly (not even libc), and its library code opens no file,
//! starts no thread or process and owns no socket. What does I/O is the engine's (`engine/src/rt`,
//! `engine/src/data_dir`, `engine/src/tls_files.rs`); a change that needs one of these belongs there, with the
//! core handing the runtime an output instead.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates that run or reach I/O: event loops, io_uring, raw sockets, signals, HTTP servers.
const RUNTIME_CRATES: &[&str] = &[
    "glommio",
    "io-uring",
    "socket2",
    "mio",
    "tokio",
    "async-std",
    "smol",
    "polling",
    "nix",
    "signal-hook",
    "tiny_http",
    "hyper",
];

/// Crates the core may not name itself even though some dependency uses them (std and `getrandom`,
/// `parking_lot` and `ring` reach the OS through libc; the core must not).
const NOT_DIRECT: &[&str] = &["libc"];

/// What the library's own code may not use (test files may: they exercise it with threads).
const FORBIDDEN_IN_SOURCE: &[&str] =
    &["std::fs", "std::thread", "std::process", "std::net::Tcp", "std::net::Udp", "std::os::unix::net", "File::"];

fn cargo_tree(depth: Option<u32>) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.args(["tree", "--offline", "-p", "ringline-core", "-e", "normal", "--prefix", "none", "--format", "{p}"]);
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(depth) = depth {
        command.args(["--depth", &depth.to_string()]);
    }
    let output = command.output().expect("cargo runs");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("cargo tree prints UTF-8");
    let mut names: Vec<String> =
        text.lines().filter_map(|line| line.split_whitespace().next()).map(str::to_owned).collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_dependency_tree_holds_no_runtime_crate() {
    let tree = cargo_tree(None);
    assert!(tree.iter().any(|name| name == "ringline-wire"), "the tree was read: {tree:?}");
    let runtime: Vec<_> = tree.iter().filter(|name| RUNTIME_CRATES.contains(&name.as_str())).collect();
    assert!(runtime.is_empty(), "ringline-core depends (maybe indirectly) on runtime crates {runtime:?}");
}

#[test]
fn no_os_crate_is_a_direct_dependency() {
    let direct = cargo_tree(Some(1));
    let named: Vec<_> = direct.iter().filter(|name| NOT_DIRECT.contains(&name.as_str())).collect();
    assert!(named.is_empty(), "ringline-core depends directly on {named:?}");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source directory lists") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            out.push(path);
        }
    }
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    name == "tests.rs" || name.ends_with("_tests.rs") || name == "test_frames.rs"
}

#[test]
fn library_code_does_no_io_of_its_own() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 20, "the sources were found: {files:?}");
    let mut found = Vec::new();
    for path in files.iter().filter(|path| !is_test_file(path)) {
        let text = std::fs::read_to_string(path).expect("a source file reads");
        // A module's inline tests (`#[cfg(test)] mod tests {`, at the end) may use threads and files.
        let library = text.split("#[cfg(test)]\nmod tests {").next().unwrap_or_default();
        for (number, line) in library.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if let Some(word) = FORBIDDEN_IN_SOURCE.iter().find(|word| code.contains(*word)) {
                found.push(format!("{}:{}: {word}", path.display(), number + 1));
            }
        }
    }
    assert!(found.is_empty(), "I/O in ringline-core's library code:\n{}", found.join("\n"));
}
