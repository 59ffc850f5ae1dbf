//! Replays the committed fuzz seeds (`fuzz/corpus/<target>/`) through the same entry
//! functions the fuzz targets call, so CI covers every seed on the stable toolchain.

use std::path::Path;

#[test]
fn every_seed_replays_without_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, entry) in [
        ("benchfmt", perfstore::fuzzing::benchfmt as fn(&[u8])),
        ("perf_query", perfstore::fuzzing::query),
        ("multipart", perfstore::fuzzing::multipart),
    ] {
        let dir = corpus.join(target);
        let mut n = 0;
        for seed in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            entry(&std::fs::read(seed.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n > 0, "no seeds for {target}");
    }
}
