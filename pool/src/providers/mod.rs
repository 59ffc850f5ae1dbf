//! Pool providers.

pub mod local;
pub(crate) mod machines;
pub mod reverse;
