//! Pool providers.

#[cfg(feature = "container")]
pub mod container;
pub mod ephemeral;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod local;
pub(crate) mod machines;
pub mod reverse;
