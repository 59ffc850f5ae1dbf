//! The tar codec in-process, each against a baseline in the same run:
//! - pack on every core (multi-member gzip) against the same code on one core;
//! - rooted, checked extraction against the `tar` crate's own unchecked `unpack`.
//!
//! Run with: cargo bench -p buildlet-proto --bench tgz
//! Input: the shared corpus (`BENCH_TREE`, default /tmp/xbuild-bench/tree, made by
//! shared/bench/prepare-tree.sh) or, if absent, a generated tree of 2,000 text files.
//! Whole-tree figures against GNU tar are produced by `benches/tree.sh`.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::path::PathBuf;
use std::time::{Duration, Instant};

use buildlet_proto::tgz::{PackOptions, extract, pack};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn input() -> (PathBuf, Option<tempfile::TempDir>) {
    let shared = PathBuf::from(
        std::env::var("BENCH_TREE").unwrap_or_else(|_| "/tmp/xbuild-bench/tree".into()),
    );
    if shared.is_dir() {
        return (shared, None);
    }
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..2000 {
        let d = tmp.path().join(format!("pkg{}", i % 50));
        std::fs::create_dir_all(&d).unwrap();
        let text: String = (0..200)
            .map(|l| format!("// line {l} of file {i}: func F{l}() int {{ return {l} }}\n"))
            .collect();
        std::fs::write(d.join(format!("f{i}.go")), text).unwrap();
    }
    (tmp.path().to_path_buf(), Some(tmp))
}

fn bytes_in(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            bytes_in(&e.path())
        } else {
            m.len()
        };
    }
    n
}

fn best<F: FnMut()>(mut f: F) -> Duration {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let (tree, _keep) = input();
    let size = bytes_in(&tree);
    let dir = Dir::open_ambient_dir(&tree, ambient_authority()).unwrap();
    let all = PackOptions::default();
    let one = PackOptions {
        threads: 1,
        ..PackOptions::default()
    };
    let archive = pack(&dir, Vec::new(), &all).unwrap();

    let mut g = c.benchmark_group("pack");
    g.throughput(Throughput::Bytes(size)).sample_size(10);
    g.bench_function("all_cores", |b| {
        b.iter(|| pack(&dir, Vec::new(), &all).unwrap())
    });
    g.bench_function("one_core_baseline", |b| {
        b.iter(|| pack(&dir, Vec::new(), &one).unwrap())
    });
    g.finish();

    // Extract next to the input (the shared corpus lives on a tmpfs), so the figures
    // measure the code rather than this machine's disk; removing each output tree happens
    // outside the measurement.
    let scratch = tree
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let fresh = || tempfile::tempdir_in(&scratch).unwrap();
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Bytes(size)).sample_size(10);
    g.bench_function("rooted_checked", |b| {
        b.iter_batched(
            fresh,
            |out| {
                let root = Dir::open_ambient_dir(out.path(), ambient_authority()).unwrap();
                extract(&archive[..], &root, std::time::SystemTime::now()).unwrap();
                out
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("tar_crate_unpack_baseline", |b| {
        b.iter_batched(
            fresh,
            |out| {
                let mut a = tar::Archive::new(flate2::read::MultiGzDecoder::new(&archive[..]));
                a.unpack(out.path()).unwrap();
                out
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let t_all = best(|| {
        pack(&dir, Vec::new(), &all).unwrap();
    });
    let t_one = best(|| {
        pack(&dir, Vec::new(), &one).unwrap();
    });
    let single = pack(&dir, Vec::new(), &one).unwrap();
    println!(
        "\n== tgz ratios ({size} bytes in) ==\npack: all cores {:.3}s, one core {:.3}s, speedup {:.2}x; {} vs {} bytes",
        t_all.as_secs_f64(),
        t_one.as_secs_f64(),
        t_one.as_secs_f64() / t_all.as_secs_f64(),
        archive.len(),
        single.len()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
