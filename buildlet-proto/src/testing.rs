//! Support for other crates' tests that run the real `buildlet` binary.

use std::path::PathBuf;

/// The `buildlet` binary of the workspace being tested, built first if it is missing.
///
/// Integration tests run from `target/<profile>/deps/`; the binary sits one level up. Cargo
/// only builds a package's own binaries for its tests, so tests of other packages (pool,
/// coordinator-bin) call this to get it.
pub fn buildlet_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps")
        .to_path_buf();
    let bin = target.join("buildlet");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", "buildlet-proto", "--bin", "buildlet"]);
        if target.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let ok = cmd.status().expect("cargo runs");
        assert!(ok.success(), "building the buildlet binary failed");
    }
    bin
}
