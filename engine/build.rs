//! Build script: the commit the binary is built from, for `ringline --version` and `ringline_build_info`.
//!
//! `RINGLINE_COMMIT` in the build's environment wins (a container build without `.git` passes it); else
//! `git rev-parse --short=12 HEAD`; else `unknown`. Cargo reruns this when HEAD or the branch it names moves.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RINGLINE_COMMIT");
    let commit = match std::env::var("RINGLINE_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_owned(),
        _ => {
            watch_git_head();
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=RINGLINE_COMMIT={commit}");
}

/// `git ARGS` in the crate's directory, its trimmed stdout if it succeeded.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Reruns the script when HEAD moves: the HEAD file (a checkout), the branch's ref file (a commit) and
/// packed-refs (a ref packed by gc). In a worktree, HEAD is in its own git directory and refs in the common one.
fn watch_git_head() {
    let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from) else {
        return;
    };
    let common_dir = git(&["rev-parse", "--git-common-dir"])
        .map(PathBuf::from)
        .map(|dir| if dir.is_absolute() { dir } else { std::env::current_dir().unwrap_or_default().join(dir) })
        .unwrap_or_else(|| git_dir.clone());
    let mut watched = vec![git_dir.join("HEAD"), common_dir.join("packed-refs")];
    if let Some(reference) =
        git(&["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|name| name.starts_with("refs/"))
    {
        watched.push(common_dir.join(reference));
    }
    // A path that does not exist would make cargo rerun the script on every build.
    for path in watched.iter().filter(|path| Path::new(path).exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
