//! Go's pipeline as upstream's coordinator runs it (§9.3–9.4 of the pool and coordinator
//! spec), written in the builder model: a builder with `pipeline = "go"` and a catalogue
//! `policy` gets, for what it leaves out, the catalogue builder's make script and
//! environment, a snapshot, and `go tool dist test` listed and sharded over its helpers.
//!
//! ```toml
//! [[builders]]
//! name = "linux-amd64"
//! host_type = "host-linux-amd64"
//! policy = "linux-amd64"     # the catalogue builder: env, helpers, timeouts, test policy
//! pipeline = "go"
//! env = ["GOROOT_BOOTSTRAP=/usr/local/go"]
//! ```

use dashboard_types::catalogue::Catalogue;

use super::{BuilderConfig, TestsConfig, UNITS};

/// The `pipeline` value that asks for Go's.
pub const GO: &str = "go";

/// The banner `dist test` prints before each test, which the build log shows as `##### `.
pub const BANNER: &str = "XXXBANNERXXX:";

/// Fills what `b` leaves out with Go's pipeline for its catalogue builder; does nothing
/// when `b` asks for no pipeline or its policy is unknown (the check reports that).
pub fn fill(b: &mut BuilderConfig, catalogue: &Catalogue) {
    if b.pipeline.as_deref() != Some(GO) {
        return;
    }
    let Some(cb) = b.policy.as_deref().and_then(|p| catalogue.builder(p)) else {
        return;
    };
    if b.steps.is_empty() {
        // Upstream runs `go/src/make.bash` with no directory: the buildlet runs it in
        // its own directory, `src`, as make.bash requires.
        b.steps = vec![vec![cb.make_script().to_owned()]];
        b.dir = String::new();
    }
    // The catalogue's environment and `GOBIN=` first, so the file's own entries win;
    // entries already there are not repeated (a printed configuration loads back as is).
    let mut env = cb.env();
    env.push("GOBIN=".into());
    env.retain(|e| !b.env.contains(e));
    env.append(&mut b.env);
    b.env = env;
    b.snapshot = true;
    if b.subrepo_steps.is_empty() {
        // Upstream tests a sub-repo with `go test ./...`, short unless longtest.
        let mut step: Vec<String> = vec!["bin/go".into(), "test".into()];
        if !cb.is_longtest() {
            step.push("-short".into());
        }
        if cb.is_race() {
            step.push("-race".into());
        }
        step.push("./...".into());
        b.subrepo_steps = vec![step];
    }
    if b.tests.is_none() && !b.make_only {
        let mut flags: Vec<String> = Vec::new();
        if cb.is_race() {
            flags.push("--race".into());
        }
        if cb.is_cross_compile_only() {
            flags.push("--compile-only".into());
        }
        let dist_test = ["bin/go", "tool", "dist", "test", "--no-rebuild"].map(String::from);
        let mut list = dist_test.to_vec();
        list.push("--list".into());
        list.extend(flags.iter().cloned());
        let mut run = dist_test.to_vec();
        run.push(format!("--banner={BANNER}"));
        run.extend(flags);
        run.push(UNITS.into());
        b.tests = Some(TestsConfig {
            list,
            run,
            helpers: cb.num_test_helpers(false) as usize,
            // The builder's GO_TEST_TIMEOUT_SCALE multiplies it, as upstream's does.
            unit_timeout_secs: 20 * 60,
            group_prefix: "go_test:".into(),
            group_secs: 10,
            banner: BANNER.into(),
            // Post-submit builds of release branches keep going past a failure.
            branch_args: [("release-branch.go".to_owned(), vec!["-k".to_owned()])]
                .into_iter()
                .collect(),
            policy_filter: true,
            go_names: true,
            only: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_builder(policy: &str) -> BuilderConfig {
        let mut b = super::super::quick_builder();
        b.name = policy.into();
        b.steps.clear();
        b.policy = Some(policy.into());
        b.pipeline = Some(GO.into());
        b.env = vec!["GOROOT_BOOTSTRAP=/opt/go".into()];
        b
    }

    #[test]
    fn a_go_builder_runs_make_then_sharded_dist_tests() {
        let catalogue = Catalogue::builtin();
        let mut b = go_builder("linux-amd64-race");
        fill(&mut b, &catalogue);
        assert_eq!(b.steps, [["src/make.bash"]]);
        assert_eq!(b.dir, "", "make.bash runs in its own directory");
        assert_eq!(b.env[0], "GO_BUILDER_NAME=linux-amd64-race");
        assert!(b.env.contains(&"GOBIN=".to_string()));
        assert_eq!(b.env.last().unwrap(), "GOROOT_BOOTSTRAP=/opt/go");
        assert!(b.snapshot);
        let mut again = b.clone();
        fill(&mut again, &catalogue);
        assert_eq!(again, b, "filling twice changes nothing");
        let t = b.tests.unwrap();
        assert_eq!(
            t.list.join(" "),
            "bin/go tool dist test --no-rebuild --list --race"
        );
        assert_eq!(
            t.run.join(" "),
            "bin/go tool dist test --no-rebuild --banner=XXXBANNERXXX: --race {units}"
        );
        assert_eq!(t.group_prefix, "go_test:");
        assert_eq!(t.unit_timeout_secs, 1200);
        assert_eq!(t.branch_args["release-branch.go"], ["-k"]);
        assert!(t.policy_filter);
    }

    #[test]
    fn what_the_file_says_stays() {
        let catalogue = Catalogue::builtin();
        let mut b = go_builder("windows-amd64-2016");
        b.steps = vec![vec!["custom".into()]];
        b.make_only = true;
        fill(&mut b, &catalogue);
        assert_eq!(b.steps, [["custom"]]);
        assert_eq!(b.dir, ".");
        assert!(b.tests.is_none(), "make only");
        let mut plain = super::super::quick_builder();
        let before = plain.clone();
        fill(&mut plain, &catalogue);
        assert_eq!(plain, before);
    }
}
