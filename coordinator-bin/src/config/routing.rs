//! The one answer to "does builder B build branch X of source S": the poller, the API
//! and the grid all ask here.

use dashboard_types::catalogue::Catalogue;

use super::{BuilderConfig, Source};

/// Whether `builder` builds `branch` of `source`: its `sources` list first, then its
/// catalogue policy (upstream's post-submit rules, with the source name as the project).
pub fn builds(
    builder: &BuilderConfig,
    source: &Source,
    branch: &str,
    catalogue: &Catalogue,
) -> bool {
    if !builder.sources.is_empty() && !builder.sources.contains(&source.name) {
        return false;
    }
    match &builder.policy {
        None => true,
        Some(p) => catalogue
            .builder(p)
            .is_some_and(|b| b.builds_repo_post_submit(&source.name, branch, branch)),
    }
}
