//! Which queued build goes first, in upstream's terms: a build is a scheduler item
//! ([`SchedItem`]: repo, branch, commit time, try or not) and post-submit work runs
//! release branches first, then the newest commit first, so the dashboard's top rows and
//! the branches about to ship fill before old history.

use std::cmp::Ordering;
use std::time::SystemTime;

use pool::SchedItem;

use crate::store::Build;

fn time(rfc3339: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// The scheduler item of `build` on `host_type`: its repo, branch, commit time and
/// request time (when it was queued, so two orderings of one queue agree) filled; this
/// coordinator has no try work yet, so `is_try` is false.
pub fn sched_item(build: &Build, host_type: &str) -> SchedItem {
    let mut item = SchedItem::new(host_type, &build.builder);
    item.repo = build.source.clone();
    item.branch = build.branch.clone();
    item.commit_time = time(&build.commit.date);
    item.request_time = time(&build.created).unwrap_or(SystemTime::UNIX_EPOCH);
    item.user = build.commit.author.clone();
    item
}

fn release_branch(b: &Build) -> bool {
    b.branch.starts_with("release-branch.")
}

/// Sorts builds into the order the dispatcher takes them: release branches first, then
/// the scheduler's order (newest commit first for post-submit work), then the order they
/// were queued in. Each build's scheduler item is made once, not per comparison: the
/// dispatcher sorts the whole queue every time a build ends.
pub fn sort(builds: &mut Vec<Build>) {
    let mut keyed: Vec<(SchedItem, Build)> =
        builds.drain(..).map(|b| (sched_item(&b, ""), b)).collect();
    keyed.sort_by(|(x, a), (y, b)| {
        release_branch(b)
            .cmp(&release_branch(a))
            .then_with(|| {
                if x.before(y) {
                    Ordering::Less
                } else if y.before(x) {
                    Ordering::Greater
                } else {
                    Ordering::Equal
                }
            })
            .then(a.seq.cmp(&b.seq))
    });
    builds.extend(keyed.into_iter().map(|(_, b)| b));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::State;
    use crate::store::Commit;

    fn build(seq: i64, branch: &str, date: &str) -> Build {
        Build {
            id: format!("B{seq}"),
            seq,
            source: "go".into(),
            branch: branch.into(),
            commit: Commit {
                hash: format!("{seq:040}"),
                author: "A <a@example.invalid>".into(),
                date: date.into(),
                desc: String::new(),
            },
            builder: "linux-amd64".into(),
            state: State::Queued,
            attempt: 0,
            created: "2026-06-01T00:00:00Z".into(),
            started: None,
            ended: None,
            buildlet: String::new(),
            go_rev: String::new(),
        }
    }

    #[test]
    fn release_branches_then_newest_commits_then_queue_order() {
        let mut q = vec![
            build(1, "master", "2026-01-01T00:00:00Z"),
            build(2, "master", "2026-03-01T00:00:00Z"),
            build(3, "release-branch.go1.25", "2025-12-01T00:00:00Z"),
            build(4, "master", "2026-02-01T00:00:00Z"),
            build(5, "master", "not a date"),
            build(6, "master", "2026-03-01T00:00:00Z"),
        ];
        sort(&mut q);
        let order: Vec<i64> = q.iter().map(|b| b.seq).collect();
        // A build with no usable commit time is ordered by when it was queued (June),
        // which is newer than any commit here.
        assert_eq!(order, [3, 5, 2, 6, 4, 1]);
        let item = sched_item(&q[2], "host-linux");
        assert_eq!(item.branch, "master");
        assert_eq!(item.repo, "go");
        assert!(item.commit_time.is_some());
        assert!(!item.is_try);
    }
}
