//! The fixture project of the pipeline tests and benches, shaped like Go: `make.sh`
//! builds a tool, `bin/tool list` prints the test units and `bin/tool run U…` runs them,
//! each unit passing after a delay, failing or hanging as `units.txt` says.
//! Self-contained (benches include it by path).

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;

/// Runs `git` in `dir`, panicking with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Tester")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "Tester")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The tool `make.sh` installs: `list`, and `run` of units as `units.txt` describes them
/// (`NAME pass MILLIS`, `NAME fail`, `NAME hang`).
pub const TOOL: &str = r#"#!/bin/sh
cmd=$1; shift
case "$cmd" in
list) cut -d' ' -f1 units.txt ;;
run)
  for u in "$@"; do
    echo "XXXBANNERXXX:$u"
    action=$(awk -v u="$u" '$1 == u { print $2 }' units.txt)
    arg=$(awk -v u="$u" '$1 == u { print $3 }' units.txt)
    case "$action" in
    pass) sleep "$(awk -v ms="$arg" 'BEGIN { printf "%.3f", ms / 1000 }')"; echo "ok $u" ;;
    fail) echo "unit $u is broken"; exit 1 ;;
    hang) sleep 600 ;;
    victim)
      # The first run names its buildlet (this script's parent) and waits to be killed
      # with it; any other run (the retry, or a straggler's second copy) passes once
      # that has happened.
      if mkdir "$VICTIM_DIR/claim" 2>/dev/null; then
        echo "$PPID" > "$VICTIM_DIR/pid.tmp"; mv "$VICTIM_DIR/pid.tmp" "$VICTIM_DIR/pid"; sleep 60
      else
        while [ ! -e "$VICTIM_DIR/killed" ]; do sleep 0.1; done
        echo "ok $u on a second buildlet"
      fi ;;
    *) echo "unknown unit $u"; exit 2 ;;
    esac
  done ;;
*) echo "usage: tool list | tool run UNIT..."; exit 2 ;;
esac
"#;

/// `make.sh`: records that it ran (the file named by `MAKE_LOG`), then installs the tool.
pub const MAKE: &str = r#"#!/bin/sh
set -e
echo "$BUILDER_TAG $(cat .xbuild-rev)" >> "$MAKE_LOG"
mkdir -p bin
cp tool.sh bin/tool
chmod +x bin/tool
echo "built the tool"
"#;

/// Commits a fixture with these units; returns the revision.
pub fn commit_units(repo: &Path, units: &str, message: &str) -> String {
    if !repo.join(".git").exists() {
        std::fs::create_dir_all(repo).unwrap();
        git(repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("make.sh"), MAKE).unwrap();
        std::fs::write(repo.join("tool.sh"), TOOL).unwrap();
        git(repo, &["add", "make.sh", "tool.sh"]);
        git(repo, &["update-index", "--chmod=+x", "make.sh"]);
    }
    std::fs::write(repo.join("units.txt"), units).unwrap();
    git(repo, &["add", "units.txt"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}
