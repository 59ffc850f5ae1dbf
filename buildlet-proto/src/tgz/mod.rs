//! Secure tar.gz streaming: [`extract()`] writes an archive into a directory without ever
//! writing outside it, and [`pack()`] streams a directory out as multi-member gzip, the way
//! upstream's `/writetgz` and `/tgz` do (spec §3.4, §3.5).
//!
//! Both are blocking and streaming (memory stays bounded whatever the archive size); the
//! server runs them on blocking threads bridged to async bodies by bounded channels.

pub mod extract;
pub mod pack;

pub use extract::{ExtractError, ExtractLimits, extract, extract_limited};
pub use pack::{PackOptions, pack};
