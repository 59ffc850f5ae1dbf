//! Replays the committed fuzz seeds (`fuzz/corpus/<target>/`) through the same entry
//! functions the fuzz targets call, so CI covers every seed, crash regressions included,
//! on the stable toolchain.

use std::path::Path;

#[test]
fn every_seed_replays_without_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, entry) in [
        (
            "builder_name",
            dashboard_types::fuzzing::builder_name as fn(&[u8]),
        ),
        ("catalogue_toml", dashboard_types::fuzzing::catalogue_toml),
    ] {
        let dir = corpus.join(target);
        let mut n = 0;
        for seed in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = seed.unwrap().path();
            entry(&std::fs::read(&path).unwrap());
            n += 1;
        }
        assert!(n > 0, "no seeds for {target}");
    }
}
