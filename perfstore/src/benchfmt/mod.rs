//! The Go benchmark format: two readers and their writers.
//!
//! Two readers exist upstream and both are kept, because they answer different questions:
//!
//! - [`LegacyReader`] (**L**, golang.org/x/perf `storage/benchfmt`) is what the storage
//!   server indexes with: configuration lines become labels, benchmark lines are stored
//!   verbatim, names become *name labels*. [`LegacyPrinter`] prints results as label
//!   differences, the format of `/search`.
//! - [`Reader`] (**N**, golang.org/x/perf `benchfmt`) is what analysis uses: it parses
//!   iterations and values, tidies units, reads `Unit` metadata lines and reports malformed
//!   lines as [`SyntaxError`]s. [`Writer`] writes its results back.
//!
//! Both split lines as Go's `bufio.Scanner` does (at most [`MAX_LINE`] bytes) and never
//! assume UTF-8.
//!
//! ```
//! use perfstore::benchfmt::{Reader, Record};
//!
//! let input = b"goos: linux\nBenchmarkEncode-8 1000 1234 ns/op 16 B/op\n";
//! let mut reader = Reader::new(&input[..]);
//! while let Some(record) = reader.next_record() {
//!     if let Record::Result(r) = record.unwrap() {
//!         assert_eq!(r.base_name(), b"Encode");
//!         assert_eq!(r.get_config(b"goos"), Some(&b"linux"[..]));
//!         assert_eq!(&*r.values[0].unit, b"sec/op");
//!     }
//! }
//! ```

mod blanks;
mod current;
mod fast_line;
mod legacy;
mod lines;
mod number;
mod shape;
mod syntax;
mod units;

#[cfg(test)]
mod tests;

pub use current::{
    BenchResult, Config, Reader, Record, SyntaxError, Unit, UnitMetadata, Value, Writer,
};
pub(crate) use fast_line::assert_agrees as assert_fast_path_agrees;
pub use legacy::{Labels, LegacyPrinter, LegacyReader, LegacyResult, name_labels};
pub use lines::MAX_LINE;
pub use number::format_go_float;
pub use units::{Better, UnitClass, default_better, tidy_unit, unit_class};

/// A fatal error while reading benchmark text: reading stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input could not be read, or a line was longer than [`MAX_LINE`].
    #[error("{file}:{line}: {message}")]
    Read {
        /// The file name, or `<unknown>`.
        file: String,
        /// Number of the last line read successfully.
        line: usize,
        /// What went wrong (`bufio.Scanner: token too long` for a long line).
        message: String,
    },
}
