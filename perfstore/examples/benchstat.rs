//! `benchstat OLD NEW…`: our comparison of benchmark files, printed as benchstat's text
//! tables. By default each file is a column (labelled with its name) and the first is the
//! baseline; `--col`, `--row` and `--ignore` take benchstat's projection keys.
//!
//! ```sh
//! cargo run -p perfstore --example benchstat -- old.txt new.txt
//! cargo run -p perfstore --example benchstat -- --col /poly --row /size crc.txt
//! ```

use clap::Parser;
use perfstore::compare::{Input, Options, Projection, benchstat};

/// Compares Go benchmark files as benchstat does.
///
/// Keys: `.file` (the input file), `.name` (the base name), `.fullname` (the whole name),
/// `/key` (a `key=value` part of the name; `/gomaxprocs` is the `-N` suffix) or a file
/// configuration key such as `commit` or `goos`. Lists are comma-separated.
#[derive(Parser)]
#[command(name = "benchstat")]
struct Args {
    /// Split columns by these keys (the first column of each table is the baseline).
    #[arg(long, default_value = ".file", value_parser = Projection::parse)]
    col: Projection,
    /// Split rows by these keys.
    #[arg(long, default_value = ".fullname", value_parser = Projection::parse)]
    row: Projection,
    /// Leave these keys out of the table key and of `.fullname`.
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,
    /// Significance level of the difference test.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Confidence level of the ranges.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// Benchmark files; the first is the baseline.
    #[arg(required = true)]
    files: Vec<String>,
}

fn main() {
    let args = Args::parse();
    let mut inputs = Vec::with_capacity(args.files.len());
    for path in args.files {
        match std::fs::read(&path) {
            Ok(data) => inputs.push(Input { label: path, data }),
            Err(e) => {
                eprintln!("benchstat: reading {path}: {e}");
                std::process::exit(1);
            }
        }
    }
    let opts = Options {
        alpha: args.alpha,
        confidence: args.confidence,
        ignore: args.ignore,
        row: args.row,
        col: args.col,
    };
    print!("{}", benchstat(&inputs, &opts));
}
