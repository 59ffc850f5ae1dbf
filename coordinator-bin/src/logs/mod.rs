//! Build logs.

pub mod live;
