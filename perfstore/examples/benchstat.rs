//! `benchstat OLD NEW…`: our comparison of benchmark files, printed as benchstat's text
//! tables (the first file is the baseline; columns are labelled with the file names).
//!
//! ```sh
//! cargo run -p perfstore --example benchstat -- old.txt new.txt
//! ```

use perfstore::compare::{Input, Options, benchstat};

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() || paths.iter().any(|p| p == "-h" || p == "--help") {
        eprintln!(
            "usage: benchstat OLD.txt [NEW.txt …]\n\ncompares Go benchmark files as benchstat does; the first file is the baseline"
        );
        std::process::exit(2);
    }
    let mut inputs = Vec::with_capacity(paths.len());
    for path in paths {
        match std::fs::read(&path) {
            Ok(data) => inputs.push(Input { label: path, data }),
            Err(e) => {
                eprintln!("benchstat: reading {path}: {e}");
                std::process::exit(1);
            }
        }
    }
    print!("{}", benchstat(&inputs, &Options::default()));
}
