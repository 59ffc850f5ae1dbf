//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their seed
//! corpus; each takes arbitrary bytes and must never panic.

use crate::Catalogue;
use crate::names::{BuilderName, parse_release_branch};

/// Builder-name parsing and every name helper on whatever parses.
pub fn builder_name(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = BuilderName::parse(s) {
        assert!(!n.goos().is_empty() && !n.goarch().is_empty());
        let _ = (n.is_race(), n.is_longtest());
    }
    let _ = parse_release_branch(s);
    let _ = crate::names::grid::subheading2(s);
    let _ = crate::names::derive_host_arch(s);
}

/// The catalogue TOML loader, and every derived method of each builder it accepts.
pub fn catalogue_toml(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cat) = Catalogue::from_toml_str(s, "fuzz") {
        for b in cat.builders() {
            let _ = (b.env(), b.target_arch(), b.all_script(), b.make_script());
            let _ = b.builds_repo_post_submit("go", "master", "master");
            let _ = b.builds_repo_try_bot("net", "master", "release-branch.go1.22");
            let _ = b.go_bootstrap_url(&crate::BuildEnv::production());
            let _ = b.host.machine_type();
        }
    }
}
