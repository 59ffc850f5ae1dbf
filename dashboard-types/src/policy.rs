//! Build policies: which (repo, branch, goBranch) tuples a builder builds or tries, and
//! which dist tests it runs (spec §5).
//!
//! Upstream writes each policy as a Go closure. A catalogue loaded from TOML cannot hold
//! closures, so a policy here is data: a small predicate language ([`RepoPolicy`]) with
//! upstream's named helpers as variants, and an enum of upstream's dist-test adjusters
//! ([`DistTestPolicy`]). Every closure of the upstream catalogue has an exact encoding.
//!
//! In TOML a unit variant is a string and the others are one-key tables:
//! ```toml
//! buildsRepo = "default"
//! buildsRepo = { repo = ["go", "crypto"] }
//! buildsRepo = { any_of = [{ repo = ["go"] }, "both_master"] }
//! buildsRepo = { by_repo = { cases = { perf = "never", exp = "always" }, otherwise = "default" } }
//! tryBot = { default_try_set = ["sys"] }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::parse_release_branch;

/// The (repo, branch, goBranch) a policy decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepoBranch<'a> {
    /// Gerrit project: `go`, `net`, `tools`, …
    pub repo: &'a str,
    /// Branch of `repo`.
    pub branch: &'a str,
    /// Go branch it is built against (equal to `branch` for repo `go`).
    pub go_branch: &'a str,
}

/// A predicate over [`RepoBranch`]: a builder's `buildsRepo` or `tryBot` policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepoPolicy {
    /// Upstream's `buildRepoByDefault`: `go` yes; build, exp, mobile, pkgsite-metrics,
    /// vulndb, website no (opt-in); anything else yes.
    Default,
    /// Always yes (upstream's `linuxAmd64Repos`).
    Always,
    /// Never (upstream's `disabledBuilder`).
    Never,
    /// The repo is one of these (also upstream's `explicitTrySet` and `onlyGo`).
    Repo(Vec<String>),
    /// The branch equals this.
    Branch(String),
    /// The branch starts with this prefix.
    BranchPrefix(String),
    /// The Go branch equals this.
    GoBranch(String),
    /// The Go branch starts with this prefix.
    GoBranchPrefix(String),
    /// Branch and Go branch are both `master`.
    BothMaster,
    /// Upstream's `atLeastGo1(goBranch, n)`: master, `dev.*`, or release branch 1.m, m ≥ n.
    GoAtLeast(u32),
    /// Upstream's `atMostGo1(goBranch, n)`: release branch 1.m with m ≤ n (master: no).
    GoAtMost(u32),
    /// Every sub-policy holds.
    AllOf(Vec<RepoPolicy>),
    /// Some sub-policy holds.
    AnyOf(Vec<RepoPolicy>),
    /// The sub-policy does not hold.
    Not(Box<RepoPolicy>),
    /// A `switch repo` with a fallback, as many upstream closures are written.
    ByRepo {
        /// Policy per repo.
        cases: BTreeMap<String, RepoPolicy>,
        /// Policy for every other repo.
        otherwise: Box<RepoPolicy>,
    },
    /// Upstream's `defaultPlus(repos...)`: listed repos yes, else the default.
    DefaultPlus(Vec<String>),
    /// Upstream's `onlyMasterDefault`: both branches master and the default.
    OnlyMasterDefault,
    /// Upstream's `plan9Default`.
    Plan9Default,
    /// Upstream's `wasip1Default`.
    Wasip1Default,
    /// Upstream's `mipsBuildsRepoPolicy`: go/net/sys with both branches master.
    MipsDefault,
    /// Upstream's `defaultTrySet(extra...)`: go yes, extras yes, grpc-review no, else yes.
    DefaultTrySet(Vec<String>),
    /// Upstream's `miscCompileBuildSet(goos, goarch)`.
    MiscCompile {
        /// Target GOOS.
        goos: String,
        /// Target GOARCH.
        goarch: String,
    },
}

/// Upstream's `buildRepoByDefault`.
pub fn build_repo_by_default(repo: &str) -> bool {
    !matches!(
        repo,
        "build" | "exp" | "mobile" | "pkgsite-metrics" | "vulndb" | "website"
    )
}

/// Upstream's `atLeastGo1(branch, min)`.
pub fn at_least_go1(branch: &str, min: u32) -> bool {
    if branch == "master" || branch.starts_with("dev.") {
        return true;
    }
    matches!(parse_release_branch(branch), Some((1, m)) if m >= min)
}

/// Upstream's `atMostGo1(branch, max)`.
pub fn at_most_go1(branch: &str, max: u32) -> bool {
    matches!(parse_release_branch(branch), Some((1, m)) if m <= max)
}

fn contains(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

impl RepoPolicy {
    /// Evaluates the policy.
    pub fn eval(&self, t: RepoBranch<'_>) -> bool {
        let both_master = t.branch == "master" && t.go_branch == "master";
        match self {
            RepoPolicy::Default => build_repo_by_default(t.repo),
            RepoPolicy::Always => true,
            RepoPolicy::Never => false,
            RepoPolicy::Repo(repos) => contains(repos, t.repo),
            RepoPolicy::Branch(b) => t.branch == b,
            RepoPolicy::BranchPrefix(p) => t.branch.starts_with(p.as_str()),
            RepoPolicy::GoBranch(b) => t.go_branch == b,
            RepoPolicy::GoBranchPrefix(p) => t.go_branch.starts_with(p.as_str()),
            RepoPolicy::BothMaster => both_master,
            RepoPolicy::GoAtLeast(n) => at_least_go1(t.go_branch, *n),
            RepoPolicy::GoAtMost(n) => at_most_go1(t.go_branch, *n),
            RepoPolicy::AllOf(ps) => ps.iter().all(|p| p.eval(t)),
            RepoPolicy::AnyOf(ps) => ps.iter().any(|p| p.eval(t)),
            RepoPolicy::Not(p) => !p.eval(t),
            RepoPolicy::ByRepo { cases, otherwise } => {
                cases.get(t.repo).unwrap_or(otherwise).eval(t)
            }
            RepoPolicy::DefaultPlus(repos) => {
                contains(repos, t.repo) || build_repo_by_default(t.repo)
            }
            RepoPolicy::OnlyMasterDefault => both_master && build_repo_by_default(t.repo),
            RepoPolicy::Plan9Default => match t.repo {
                "benchmarks" | "review" | "website" | "vulndb" | "vuln" | "pkgsite" => false,
                _ => both_master && build_repo_by_default(t.repo),
            },
            RepoPolicy::Wasip1Default => {
                let excluded = matches!(
                    t.repo,
                    "benchmarks"
                        | "debug"
                        | "perf"
                        | "pkgsite"
                        | "talks"
                        | "tools"
                        | "tour"
                        | "website"
                );
                build_repo_by_default(t.repo)
                    && at_least_go1(t.go_branch, 21)
                    && !excluded
                    && (t.repo == "go" || both_master)
            }
            RepoPolicy::MipsDefault => matches!(t.repo, "go" | "net" | "sys") && both_master,
            RepoPolicy::DefaultTrySet(extra) => {
                t.repo == "go" || contains(extra, t.repo) || t.repo != "grpc-review"
            }
            RepoPolicy::MiscCompile { goos, goarch } => {
                if t.repo != "go" && t.branch != "master" {
                    return false; // go.dev/issue/58311
                }
                match t.repo {
                    "benchmarks" => goos != "plan9" && goarch != "loong64",
                    "build" => goarch != "riscv64",
                    "exp" | "mobile" => false,
                    "pkgsite" => goos != "plan9" && goos != "wasip1",
                    "vuln" | "website" => goos != "plan9",
                    "vulndb" => goos != "aix",
                    _ => true,
                }
            }
        }
    }
}

/// A builder's dist-test adjuster (upstream's `distTestAdjust` closures), applied after
/// the default rule of [`should_run_dist_test`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistTestPolicy {
    /// `fasterTrybots`: in normal try runs skip `test:*` and `reboot`.
    FasterTrybots,
    /// `noTestDirAndNoReboot`: always skip `test:*` and `reboot`.
    NoTestDirAndNoReboot,
    /// `ppc64DistTestPolicy`: skip `reboot`.
    Ppc64,
    /// `mipsDistTestPolicy` (also riscv64 and loong64): skip `api` and `reboot`.
    Mips,
    /// `macTestPolicy`.
    Mac,
    /// js/wasip1 builders: in normal try runs skip names containing `/internal/` and `reboot`.
    Wasm,
    /// plan9 GCE builder: skip `api` and `go_test:cmd/go`.
    Plan9,
    /// plan9 0intro builders: `noTestDirAndNoReboot`, then skip `api` and `go_test:cmd/go`.
    Plan9NoTestDir,
}

impl DistTestPolicy {
    /// Upstream's adjuster: gets the run decision so far and returns the final one.
    pub fn adjust(self, run: bool, dist_test: &str, is_normal_try: bool) -> bool {
        let test_dir_or_reboot = dist_test.starts_with("test:") || dist_test == "reboot";
        let plan9_skip = matches!(dist_test, "api" | "go_test:cmd/go");
        match self {
            DistTestPolicy::FasterTrybots => run && !(is_normal_try && test_dir_or_reboot),
            DistTestPolicy::NoTestDirAndNoReboot => run && !test_dir_or_reboot,
            DistTestPolicy::Ppc64 => run && dist_test != "reboot",
            DistTestPolicy::Mips => run && !matches!(dist_test, "api" | "reboot"),
            DistTestPolicy::Mac => {
                let always_skip = dist_test.starts_with("test:")
                    || matches!(
                        dist_test,
                        "reboot" | "api" | "doc_progs" | "wiki" | "bench_go1" | "codewalk"
                    );
                let try_skip = is_normal_try
                    && matches!(dist_test, "runtime:cpu124" | "race" | "moved_goroot");
                run && !always_skip && !try_skip
            }
            DistTestPolicy::Wasm => {
                run && !(is_normal_try
                    && (dist_test.contains("/internal/") || dist_test == "reboot"))
            }
            DistTestPolicy::Plan9 => run && !plan9_skip,
            DistTestPolicy::Plan9NoTestDir => run && !test_dir_or_reboot && !plan9_skip,
        }
    }
}

/// Upstream's `ShouldRunDistTest`: run everything, except that in a normal (non-SlowBot)
/// try run the slow, portable `api` test runs only on the builder named `linux-amd64`;
/// then the builder's adjuster has the final say.
pub fn should_run_dist_test(
    builder: &str,
    adjust: Option<DistTestPolicy>,
    dist_test: &str,
    is_normal_try: bool,
) -> bool {
    let run = !(is_normal_try && dist_test == "api" && builder != "linux-amd64");
    match adjust {
        Some(p) => p.adjust(run, dist_test, is_normal_try),
        None => run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rb<'a>(repo: &'a str, branch: &'a str, go_branch: &'a str) -> RepoBranch<'a> {
        RepoBranch {
            repo,
            branch,
            go_branch,
        }
    }

    #[test]
    fn policies_read_from_toml() {
        #[derive(Deserialize)]
        struct W {
            p: RepoPolicy,
        }
        let w: W = toml::from_str(
            r#"p = { by_repo = { cases = { perf = "never", exp = "always" }, otherwise = "default" } }"#,
        )
        .unwrap();
        assert!(!w.p.eval(rb("perf", "master", "master")));
        assert!(w.p.eval(rb("exp", "master", "master")));
        assert!(w.p.eval(rb("net", "master", "master")));
        assert!(!w.p.eval(rb("website", "master", "master")));
        let w: W =
            toml::from_str(r#"p = { any_of = [{ repo = ["go"] }, "both_master"] }"#).unwrap();
        assert!(w.p.eval(rb("net", "master", "master")));
        assert!(!w.p.eval(rb("net", "master", "release-branch.go1.22")));
    }

    #[test]
    fn go_version_bounds() {
        assert!(at_least_go1("master", 99));
        assert!(at_least_go1("dev.foo", 99));
        assert!(at_least_go1("release-branch.go1.21", 21));
        assert!(!at_least_go1("release-branch.go1.20", 21));
        assert!(!at_most_go1("master", 22));
        assert!(at_most_go1("release-branch.go1.22", 22));
    }
}
