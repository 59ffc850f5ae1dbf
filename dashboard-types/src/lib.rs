//! Shared vocabulary of the xbuild-rs workspace: the build dashboard's wire types and the
//! builder/host catalogue with its policies, compatible with golang.org/x/build.
//!
//! Every other crate imports this one, and upstream Go peers read the JSON it writes, so
//! serde names and encodings here are byte-identical to upstream's (Go field names, nil
//! slices as `null`, RFC 3339 times with trimmed nanoseconds, integral floats without
//! `.0`). Upstream quirks are kept and each is named in a doc comment marked **Quirk**.
//!
//! # Layout
//! - [`wire`]: `BuildStatus`, `BuildRecord`, `ReverseBuilderStatus`, result posts, …
//! - [`catalogue`]: hosts and builders loaded from TOML (a built-in default is compiled in),
//!   validated with errors that name the offending entry.
//! - [`host`], [`builder`]: one host or builder and every derived method
//!   (`env`, `target_arch`, `all_script`, `builds_repo_post_submit`, …).
//! - [`policy`]: repo/branch and dist-test policies, as data instead of Go closures.
//! - [`names`]: builder-name, host-type and release-branch parsing, SlowBot aliases, grid headers.
//! - [`dash`]: the dashboard's `ResultData` rules and result-post checks.
//! - [`keys`]: HMAC-MD5 builder keys and constant-time comparison.
//! - [`go_json`]: serde helpers for Go's JSON encoding.
//!
//! # Example
//! ```
//! use dashboard_types::Catalogue;
//!
//! let cat = Catalogue::builtin();
//! let b = cat.builder("linux-amd64-longtest").unwrap();
//! assert!(b.builds_repo_post_submit("go", "master", "master"));
//! assert!(!b.builds_repo_try_bot("go", "master", "master"));
//! assert_eq!(b.env()[1], "GO_TEST_SHORT=0");
//! assert_eq!(b.dist_tests_exec_timeout().as_secs(), 100 * 60);
//! ```
//!
//! This crate has no cargo features and no async code.

pub mod builder;
pub mod catalogue;
pub mod dash;
mod error;
pub mod go_json;
pub mod host;
pub mod keys;
pub mod names;
pub mod policy;
pub mod wire;

#[doc(hidden)]
pub mod fuzzing;

pub use builder::{BuildConfig, Builder};
pub use catalogue::{Catalogue, Migration};
pub use error::{Error, Result};
pub use host::{BuildEnv, HostConfig, PoolKind};
pub use names::BuilderName;
pub use wire::*;
