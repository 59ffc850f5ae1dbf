//! Where work comes from: git mirrors of the watched repositories and their poller.

pub mod git;
pub mod poller;

pub use git::{Archive, ArchiveExit, GitError, Mirror};
