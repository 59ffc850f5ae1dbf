//! Fuzz target: see the entry function's docs. The same function replays the committed
//! seeds in an ordinary `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| perfstore::fuzzing::benchfmt(data));
