//! Replays the committed fuzz seeds (`fuzz/corpus/<target>/`) through the same entry
//! functions the fuzz targets call, so CI covers every seed on the stable toolchain.

use std::path::Path;

#[test]
fn every_seed_replays_without_panic() {
    // The tar seeds are the archives the hostile-archive tests build, written once below.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, entry) in [
        (
            "rel_path",
            buildlet_proto::fuzzing::rel_path_check as fn(&[u8]),
        ),
        ("tar_extract", buildlet_proto::fuzzing::tar_extract),
        ("ls_line", buildlet_proto::fuzzing::ls_line),
        ("exec_form", buildlet_proto::fuzzing::exec_form),
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
