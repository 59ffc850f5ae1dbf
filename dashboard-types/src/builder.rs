//! `BuildConfig`: one builder of the catalogue, and [`Builder`], a builder resolved
//! against its host with every derived method of upstream (spec §4).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::{BuildEnv, HostConfig};
use crate::names::{builder_goarch, builder_goos, go1_point_x, matches_slowbot_term};
use crate::policy::{DistTestPolicy, RepoBranch, RepoPolicy, should_run_dist_test};
use crate::wire::MajorMinor;

/// A builder as written in a catalogue. Field names are upstream's; the policies that
/// upstream writes as closures are data here (see [`crate::policy`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    /// Builder name (`GOOS-GOARCH[-suffix]`).
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Key into the hosts catalogue.
    #[serde(rename = "HostType", default)]
    pub host_type: String,
    /// Issues (go.dev/issue/N) explaining expected failures; cells show as "noise".
    #[serde(rename = "KnownIssues", default)]
    pub known_issues: Vec<u32>,
    /// Free text.
    #[serde(rename = "Notes", default)]
    pub notes: String,
    /// Trybot policy; absent = never a trybot.
    #[serde(rename = "tryBot", default, skip_serializing)]
    pub try_bot: Option<RepoPolicy>,
    /// Only used for trybots, never post-submit.
    #[serde(rename = "tryOnly", default, skip_serializing)]
    pub try_only: bool,
    /// Compile tests but do not run them.
    #[serde(rename = "CompileOnly", default)]
    pub compile_only: bool,
    /// Network tests are flaky (`GO_BUILDER_FLAKY_NET=1`).
    #[serde(rename = "FlakyNet", default)]
    pub flaky_net: bool,
    /// Repo policy; absent = the default policy.
    #[serde(rename = "buildsRepo", default, skip_serializing)]
    pub builds_repo: Option<RepoPolicy>,
    /// Run x/benchmarks toolchain benchmarks.
    #[serde(rename = "RunBench", default)]
    pub run_bench: bool,
    /// Release branches older than this are not built.
    #[serde(rename = "MinimumGoVersion", default)]
    pub minimum_go_version: MajorMinor,
    /// Do not upload a post-make.bash snapshot.
    #[serde(rename = "SkipSnapshot", default)]
    pub skip_snapshot: bool,
    /// Stop after make.bash.
    #[serde(rename = "StopAfterMake", default)]
    pub stop_after_make: bool,
    /// Has its own GOPROXY.
    #[serde(rename = "privateGoProxy", default, skip_serializing)]
    pub private_go_proxy: bool,
    /// Packages to `go install -race` after make; absent = `["std"]` for race builders.
    #[serde(rename = "InstallRacePackages", default)]
    pub install_race_packages: Option<Vec<String>>,
    /// Commits that must be ancestors of the tested commit.
    #[serde(rename = "GoDeps", default)]
    pub go_deps: Vec<String>,
    /// Dist-test adjuster.
    #[serde(rename = "distTestAdjust", default, skip_serializing)]
    pub dist_test_adjust: Option<DistTestPolicy>,
    /// Extra buildlets for sharded tests.
    #[serde(rename = "numTestHelpers", default, skip_serializing)]
    pub num_test_helpers: u32,
    /// Extra buildlets for try runs when non-zero.
    #[serde(rename = "numTryTestHelpers", default, skip_serializing)]
    pub num_try_test_helpers: u32,
    /// Extra `KEY=value` environment.
    #[serde(rename = "env", default, skip_serializing)]
    pub env: Vec<String>,
    /// Extra arguments to the make script.
    #[serde(rename = "makeScriptArgs", default, skip_serializing)]
    pub make_script_args: Vec<String>,
    /// Extra arguments to the all script.
    #[serde(rename = "allScriptArgs", default, skip_serializing)]
    pub all_script_args: Vec<String>,
    /// Restricted to a subset of users.
    #[serde(rename = "isRestricted", default, skip_serializing)]
    pub is_restricted: bool,
}

/// The default per-run timeout of `go tool dist test`, before scaling.
const DIST_TEST_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// A builder resolved against its host: every derived method of upstream's `BuildConfig`.
#[derive(Debug, Clone, Copy)]
pub struct Builder<'a> {
    /// The builder's own entry.
    pub config: &'a BuildConfig,
    /// Its host's entry.
    pub host: &'a HostConfig,
}

impl<'a> Builder<'a> {
    /// Builder name.
    pub fn name(&self) -> &'a str {
        &self.config.name
    }

    /// GOOS from the name (quirk: `misc` for misc-compile builders).
    pub fn goos(&self) -> &'a str {
        builder_goos(&self.config.name)
    }

    /// GOARCH from the name (quirk: `compile` for misc-compile builders).
    pub fn goarch(&self) -> &'a str {
        builder_goarch(&self.config.name)
    }

    /// Some name component equals `race`.
    pub fn is_race(&self) -> bool {
        self.config.name.split('-').any(|c| c == "race")
    }

    /// Some name component equals `longtest`.
    pub fn is_longtest(&self) -> bool {
        self.config.name.split('-').any(|c| c == "longtest")
    }

    /// Upstream's `Env()`: `GO_BUILDER_NAME`, then `GO_BUILDER_FLAKY_NET=1`, then
    /// `GO_TEST_SHORT=0` for longtest, then the host env, then the builder env, in this
    /// order and without removing duplicates.
    pub fn env(&self) -> Vec<String> {
        let mut env = vec![format!("GO_BUILDER_NAME={}", self.config.name)];
        if self.config.flaky_net {
            env.push("GO_BUILDER_FLAKY_NET=1".into());
        }
        if self.is_longtest() {
            env.push("GO_TEST_SHORT=0".into());
        }
        env.extend(self.host.env.iter().cloned());
        env.extend(self.config.env.iter().cloned());
        env
    }

    /// First `GO_TEST_TIMEOUT_SCALE=N` (N a positive integer) in the builder env, then the
    /// host env; 1 otherwise.
    pub fn go_test_timeout_scale(&self) -> u32 {
        go_test_timeout_scale([&self.config.env, &self.host.env].into_iter().flatten())
    }

    /// 20 minutes times the timeout scale. Upstream takes (and ignores) the test names.
    pub fn dist_tests_exec_timeout(&self) -> Duration {
        DIST_TEST_TIMEOUT * self.go_test_timeout_scale()
    }

    /// Upstream's `TargetArch()`: the host arch overridden by `GOOS=`, `GOARCH=`, `GOARM=`
    /// in [`env`](Self::env). **Quirk:** only GOARM is overridden when the host is not
    /// arm, so `windows-arm-zx2c4` on a `windows-arm64` host gives `windows-arm64-7`.
    pub fn target_arch(&self) -> String {
        let mut parts = self.host.host_arch.splitn(3, '-');
        let mut goos = parts.next().unwrap_or("").to_owned();
        let mut goarch = parts.next().unwrap_or("").to_owned();
        let mut goarm = parts.next().unwrap_or("").to_owned();
        for kv in self.env() {
            if let Some(v) = kv.strip_prefix("GOOS=") {
                goos = v.to_owned();
            }
            if let Some(v) = kv.strip_prefix("GOARCH=") {
                goarch = v.to_owned();
            }
            if let Some(v) = kv.strip_prefix("GOARM=") {
                goarm = v.to_owned();
            }
        }
        if goarch == "arm" && goarm.is_empty() {
            goarm = "7".into();
        }
        if goarm.is_empty() {
            format!("{goos}-{goarch}")
        } else {
            format!("{goos}-{goarch}-{goarm}")
        }
    }

    /// Compile-only for another arch than the host's.
    pub fn is_cross_compile_only(&self) -> bool {
        self.config.compile_only && self.target_arch() != self.host.host_arch
    }

    /// Only longtest builders may reach the network.
    pub fn outbound_network_allowed(&self) -> bool {
        self.is_longtest()
    }

    /// Packages to install with `-race` after make.
    pub fn go_install_race_packages(&self) -> Vec<String> {
        match &self.config.install_race_packages {
            Some(p) => p.clone(),
            None if self.is_race() => vec!["std".into()],
            None => Vec::new(),
        }
    }

    /// The script that builds and tests.
    pub fn all_script(&self) -> &'static str {
        let name = self.config.name.as_str();
        if self.is_race() {
            if name.starts_with("windows-") {
                "src/race.bat"
            } else {
                "src/race.bash"
            }
        } else if name.starts_with("windows-") {
            "src/all.bat"
        } else if name.starts_with("plan9-") {
            "src/all.rc"
        } else if self.is_cross_compile_only() {
            "src/make.bash"
        } else {
            "src/all.bash"
        }
    }

    /// The script that only builds.
    pub fn make_script(&self) -> &'static str {
        let name = self.config.name.as_str();
        if name.starts_with("windows-") {
            "src/make.bat"
        } else if name.starts_with("plan9-") {
            "src/make.rc"
        } else {
            "src/make.bash"
        }
    }

    /// Joins path elements with the builder's separator, without cleaning.
    pub fn file_path_join(&self, parts: &[&str]) -> String {
        parts.join(if self.goos() == "windows" { "\\" } else { "/" })
    }

    /// Where Go is installed on the builder.
    pub fn goroot_final(&self) -> &'static str {
        goroot_final(self.goos())
    }

    /// Extra buildlets for sharded tests (the try value when non-zero for try runs).
    pub fn num_test_helpers(&self, is_try: bool) -> u32 {
        if is_try && self.config.num_try_test_helpers != 0 {
            self.config.num_try_test_helpers
        } else {
            self.config.num_test_helpers
        }
    }

    /// Upstream's `GoBootstrapURL`.
    pub fn go_bootstrap_url(&self, env: &BuildEnv) -> String {
        let hc = self.host;
        if hc.go_bootstrap == "none" {
            return String::new();
        }
        let old = go1_point_x(&hc.go_bootstrap).is_some_and(|x| x < 21);
        if old || self.goos() == "windows" {
            return format!(
                "https://storage.googleapis.com/{}/gobootstrap-{}-{}.tar.gz",
                env.buildlet_bucket, hc.host_arch, hc.go_bootstrap
            );
        }
        // go.dev/dl names arm archives without the GOARM suffix (go.dev/issue/69038).
        let os_arch = hc.host_arch.strip_suffix("-7").unwrap_or(&hc.host_arch);
        format!("https://go.dev/dl/{}.{os_arch}.tar.gz", hc.go_bootstrap)
    }

    /// Whether `term` selects this builder as a SlowBot.
    pub fn matches_slowbot_term(&self, term: &str) -> bool {
        matches_slowbot_term(&self.config.name, term)
    }

    /// Reverse pool.
    pub fn is_reverse(&self) -> bool {
        self.host.is_reverse
    }

    /// Container host.
    pub fn is_container(&self) -> bool {
        self.host.is_container()
    }

    /// VM host.
    pub fn is_vm(&self) -> bool {
        self.host.is_vm()
    }

    /// GCE (neither reverse nor EC2).
    pub fn is_gce(&self) -> bool {
        !self.host.is_reverse && !self.host.is_ec2
    }

    /// Upstream's `buildsRepoAtAll`, shared by post-submit and trybot decisions.
    /// An empty `go_branch` means `branch` for repo `go`; for other repos, and for an
    /// empty repo or branch, upstream panics and this returns false.
    fn builds_repo_at_all(&self, repo: &str, branch: &str, go_branch: &str) -> bool {
        let go_branch = match (go_branch, repo) {
            ("", "go") => branch,
            ("", _) => return false,
            (b, _) => b,
        };
        if branch.is_empty() || repo.is_empty() {
            return false;
        }
        for b in [branch, go_branch] {
            if let Some((major, minor)) = crate::names::parse_release_branch(b) {
                let v = MajorMinor::new(i64::from(major), i64::from(minor));
                if major != 1 || minor < 11 || v.less(&self.config.minimum_go_version) {
                    return false;
                }
                if repo == "exp" || (repo == "pkgsite" && v.less(&MajorMinor::new(1, 23))) {
                    return false;
                }
            }
        }
        let boring = branch == "dev.boringcrypto" || branch.starts_with("dev.boringcrypto.");
        if repo == "go"
            && boring
            && self.config.name != "linux-amd64"
            && !self.config.name.starts_with("windows-386")
        {
            return false;
        }
        let t = RepoBranch {
            repo,
            branch,
            go_branch,
        };
        match &self.config.builds_repo {
            Some(p) => p.eval(t),
            None => RepoPolicy::Default.eval(t),
        }
    }

    /// Builds this (repo, branch, goBranch) after submit.
    pub fn builds_repo_post_submit(&self, repo: &str, branch: &str, go_branch: &str) -> bool {
        !self.config.try_only && self.builds_repo_at_all(repo, branch, go_branch)
    }

    /// Runs as a trybot for this (repo, branch, goBranch).
    pub fn builds_repo_try_bot(&self, repo: &str, branch: &str, go_branch: &str) -> bool {
        let t = RepoBranch {
            repo,
            branch,
            go_branch,
        };
        self.config.try_bot.as_ref().is_some_and(|p| p.eval(t))
            && self.builds_repo_at_all(repo, branch, go_branch)
    }

    /// Upstream's `ShouldRunDistTest`.
    pub fn should_run_dist_test(&self, dist_test: &str, is_normal_try: bool) -> bool {
        should_run_dist_test(
            &self.config.name,
            self.config.dist_test_adjust,
            dist_test,
            is_normal_try,
        )
    }
}

/// The first `GO_TEST_TIMEOUT_SCALE=N` (N a positive integer) of `env`; 1 if none.
pub fn go_test_timeout_scale<'a>(env: impl IntoIterator<Item = &'a String>) -> u32 {
    env.into_iter()
        .filter_map(|kv| kv.strip_prefix("GO_TEST_TIMEOUT_SCALE="))
        .find_map(|n| n.parse::<u32>().ok().filter(|&n| n > 0))
        .unwrap_or(1)
}

/// Upstream's `GorootFinal`: `c:\go` on windows, `/usr/local/go` elsewhere.
pub fn goroot_final(goos: &str) -> &'static str {
    if goos == "windows" {
        "c:\\go"
    } else {
        "/usr/local/go"
    }
}
