//! The contract of a [`BuildStore`], as a suite any implementation runs against itself:
//! `conformance::run_all(&store).await` in the store's own tests.

use super::{
    AccessStore, AuditEntry, BuildStore, Commit, Detail, NewBuilds, Step, TokenRecord, UnitResult,
};
use crate::model::{Event, State};

fn commit(n: u8) -> Commit {
    Commit {
        hash: format!("{n:02x}").repeat(20),
        author: "A <a@example.invalid>".into(),
        date: "2026-01-01T00:00:00Z".into(),
        desc: format!("commit {n}"),
    }
}

/// Applies an event; panics if the store fails (a refusal is `false`, not a failure).
async fn applies(store: &dyn BuildStore, id: &str, event: Event, detail: Detail) -> bool {
    store.apply(id, event, detail).await.expect("apply")
}

/// Queues one build per builder for `commit` on `branch`.
async fn queue(
    store: &dyn BuildStore,
    c: &Commit,
    branch: &str,
    builders: &[&str],
) -> Vec<super::Build> {
    let builders: Vec<String> = builders.iter().map(|b| b.to_string()).collect();
    store
        .enqueue_commits(
            &[NewBuilds {
                source: "src",
                branch,
                commit: c,
                builders: &builders,
                go_rev: "",
            }],
            Some(("src", branch, &c.hash)),
        )
        .await
        .expect("enqueue")
}

/// Runs every check on an empty store; panics on the first broken rule.
pub async fn run_all(store: &dyn BuildStore) {
    enqueue_is_one_transaction_with_the_head(store).await;
    claims_are_exclusive_and_results_recorded_once(store).await;
    requeue_and_orphans(store).await;
    steps_and_grid_pages(store).await;
    units_and_their_history(store).await;
    search_matches_every_field_given(store).await;
}

async fn search_matches_every_field_given(store: &dyn BuildStore) {
    let c = commit(0xee);
    let out = queue(store, &c, "main", &["s1", "s2"]).await;
    assert!(applies(store, &out[0].id, Event::Claim, Detail::default()).await);
    let q = |builder: Option<&str>, rev: Option<&str>, state: Option<State>| super::BuildQuery {
        source: Some("src".into()),
        builder: builder.map(str::to_owned),
        rev: rev.map(str::to_owned),
        state,
        limit: 10,
    };
    let ids = |v: Vec<super::Build>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.search(&q(None, Some(&c.hash), None)).await.unwrap()),
        [out[1].id.clone(), out[0].id.clone()],
        "by revision, newest first"
    );
    assert_eq!(
        ids(store
            .search(&q(Some("s1"), Some("EEEE"), None))
            .await
            .unwrap()),
        [out[0].id.clone()],
        "a prefix in any case, and the builder"
    );
    assert_eq!(
        ids(store
            .search(&q(None, Some(&c.hash), Some(State::Queued)))
            .await
            .unwrap()),
        [out[1].id.clone()],
        "and the state"
    );
    assert!(
        store
            .search(&q(Some("nope"), None, None))
            .await
            .unwrap()
            .is_empty()
    );
    let limited = super::BuildQuery {
        limit: 1,
        ..Default::default()
    };
    assert_eq!(store.search(&limited).await.unwrap().len(), 1);
}

async fn enqueue_is_one_transaction_with_the_head(store: &dyn BuildStore) {
    let c = commit(1);
    let out = queue(store, &c, "main", &["b1", "b2"]).await;
    assert_eq!(out.len(), 2);
    assert!(
        out.iter()
            .all(|b| b.state == State::Queued && b.attempt == 0)
    );
    assert_ne!(out[0].id, out[1].id, "ids are unique");
    assert!(out[0].seq < out[1].seq, "seq grows");
    assert_eq!(
        store.head("src", "main").await.unwrap().as_deref(),
        Some(c.hash.as_str())
    );
    let got = store.get(&out[0].id).await.unwrap().expect("stored");
    assert_eq!(got.commit, c);
    assert_eq!(got.branch, "main");
    assert!(store.get("Bnope").await.unwrap().is_none());
    let queued = store.in_state(State::Queued).await.unwrap();
    assert_eq!(
        queued.iter().map(|b| &b.id).collect::<Vec<_>>(),
        out.iter().map(|b| &b.id).collect::<Vec<_>>(),
        "oldest first"
    );
}

async fn claims_are_exclusive_and_results_recorded_once(store: &dyn BuildStore) {
    let b = queue(store, &commit(2), "main", &["b1"]).await.remove(0);
    let id = &b.id;
    // Nothing happens to a queued build but a claim or a cancel.
    assert!(!applies(store, id, Event::Leased, Detail::buildlet("m")).await);
    assert!(!applies(store, id, Event::Finish(State::Failed), Detail::default()).await);
    assert!(applies(store, id, Event::Claim, Detail::default()).await);
    assert!(
        !applies(store, id, Event::Claim, Detail::default()).await,
        "a second claim of the same build must fail"
    );
    let waiting = store.get(id).await.unwrap().unwrap();
    assert_eq!((waiting.state, waiting.attempt), (State::Waiting, 1));
    assert!(waiting.started.is_none());
    assert!(applies(store, id, Event::Leased, Detail::buildlet("machine-1")).await);
    let running = store.get(id).await.unwrap().unwrap();
    assert_eq!(running.state, State::Running);
    assert_eq!(running.buildlet, "machine-1");
    assert!(running.started.is_some());
    // A lost buildlet: the build waits for another, as attempt 2.
    assert!(applies(store, id, Event::Retry, Detail::default()).await);
    let retried = store.get(id).await.unwrap().unwrap();
    assert_eq!((retried.state, retried.attempt), (State::Waiting, 2));
    assert!(applies(store, id, Event::Leased, Detail::buildlet("machine-2")).await);
    assert_eq!(store.get(id).await.unwrap().unwrap().buildlet, "machine-2");
    // A cancel and a result race: the first wins, the second records nothing.
    assert!(
        applies(
            store,
            id,
            Event::Cancel,
            Detail::log(b"canceled\n".to_vec())
        )
        .await
    );
    assert!(
        !applies(
            store,
            id,
            Event::Finish(State::Succeeded),
            Detail::log(b"late\n".to_vec())
        )
        .await
    );
    let ended = store.get(id).await.unwrap().unwrap();
    assert_eq!(ended.state, State::Canceled);
    assert!(ended.ended.is_some());
    assert_eq!(store.log(id).await.unwrap().unwrap(), b"canceled\n");
    // A result that is not one is refused outright.
    assert!(
        store
            .apply(id, Event::Finish(State::Queued), Detail::default())
            .await
            .is_err()
    );
}

async fn requeue_and_orphans(store: &dyn BuildStore) {
    let builds = queue(store, &commit(3), "dev", &["b1", "b2", "b3"]).await;
    let (a, b, d) = (&builds[0].id, &builds[1].id, &builds[2].id);
    for id in [a, b] {
        assert!(applies(store, id, Event::Claim, Detail::default()).await);
    }
    assert!(applies(store, b, Event::Leased, Detail::buildlet("m")).await);
    // A requeued build is queued again with nothing recorded.
    assert!(applies(store, a, Event::Requeue, Detail::default()).await);
    let again = store.get(a).await.unwrap().unwrap();
    assert_eq!(again.state, State::Queued);
    assert!(again.ended.is_none());
    // At start, what a previous process held goes back to the queue; queued builds stay.
    assert_eq!(store.requeue_orphans().await.unwrap(), 1);
    for id in [a, b, d] {
        assert_eq!(store.get(id).await.unwrap().unwrap().state, State::Queued);
    }
}

async fn steps_and_grid_pages(store: &dyn BuildStore) {
    let id = store.recent(1).await.unwrap().remove(0).id;
    for (i, name) in ["push source", "$ make", "$ make test"].iter().enumerate() {
        store
            .add_step(
                &id,
                &Step {
                    attempt: 1,
                    index: i as i64,
                    name: name.to_string(),
                    started: "2026-01-01T00:00:00Z".into(),
                    millis: 10 * i as i64,
                    result: if i == 2 {
                        "exit status 1".into()
                    } else {
                        "ok".into()
                    },
                },
            )
            .await
            .unwrap();
    }
    let steps = store.steps(&id).await.unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[2].name, "$ make test");
    assert_eq!(steps[2].result, "exit status 1");
    // Three commits so far; pages of two, newest first.
    let first = store.grid(0, 2).await.unwrap();
    assert_eq!(first.commits.len(), 2);
    assert!(first.more);
    assert_eq!(first.commits[0].2, commit(3));
    assert_eq!(first.commits[0].1, "dev");
    assert_eq!(first.commits[0].3.len(), 3, "every build of the commit");
    let second = store.grid(2, 2).await.unwrap();
    assert_eq!(second.commits.len(), 1);
    assert!(!second.more);
    assert_eq!(second.commits[0].2, commit(1));
    assert!(store.grid(10, 2).await.unwrap().commits.is_empty());
}

async fn units_and_their_history(store: &dyn BuildStore) {
    let builds = store.recent(2).await.unwrap();
    let (older, newer) = (&builds[1], &builds[0]);
    let unit = |name: &str, result: &str, millis: i64| UnitResult {
        attempt: 1,
        name: name.into(),
        result: result.into(),
        millis,
        buildlet: "helper-1".into(),
        output: format!("output of {name}\n").into_bytes(),
    };
    store
        .add_unit(&older.id, &unit("a", "ok", 50))
        .await
        .unwrap();
    store
        .add_unit(&newer.id, &unit("a", "ok", 70))
        .await
        .unwrap();
    store
        .add_unit(&newer.id, &unit("b c", "ok", 90))
        .await
        .unwrap();
    store
        .add_unit(&newer.id, &unit("d", "exit status 1", 10))
        .await
        .unwrap();
    // The newest build of a (source, revision, builder).
    let latest = store
        .latest(&newer.source, newer.rev(), &newer.builder)
        .await
        .unwrap()
        .expect("a build");
    assert_eq!(
        latest.seq,
        store
            .recent(100)
            .await
            .unwrap()
            .iter()
            .filter(|b| {
                b.source == newer.source && b.rev() == newer.rev() && b.builder == newer.builder
            })
            .map(|b| b.seq)
            .max()
            .unwrap()
    );
    assert!(
        store
            .latest("nope", newer.rev(), &newer.builder)
            .await
            .unwrap()
            .is_none()
    );
    let units = store.units(&newer.id).await.unwrap();
    let names: Vec<&str> = units.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["b c", "a", "d"], "slowest first");
    assert_eq!(units[2].output, b"output of d\n");
    // History: the builder's passing units, newest first; failures do not count.
    let builder = &newer.builder;
    let history = store.unit_history(builder, 10).await.unwrap();
    let mine: Vec<(String, i64)> = if older.builder == *builder {
        vec![("b c".into(), 90), ("a".into(), 70), ("a".into(), 50)]
    } else {
        vec![("b c".into(), 90), ("a".into(), 70)]
    };
    assert_eq!(history, mine);
    assert_eq!(store.unit_history(builder, 1).await.unwrap().len(), 1);
    assert!(store.unit_history("nobody", 10).await.unwrap().is_empty());
}

/// The contract of an [`AccessStore`]: token names are unique, lookups are by hash,
/// revocation is once and by name or id, and the audit log pages newest first.
pub async fn access(store: &dyn AccessStore) {
    let token = |id: &str, name: &str| TokenRecord {
        id: id.into(),
        name: name.into(),
        roles: vec!["submitter".into(), "viewer".into()],
        hash: format!("{name}-hash"),
        created: "2026-12-02T00:00:00Z".into(),
        revoked: None,
    };
    store.add_token(&token("01", "ci")).await.expect("add");
    store.add_token(&token("02", "alice")).await.expect("add");
    let clash = store.add_token(&token("03", "ci")).await.unwrap_err();
    assert!(
        clash.0.contains("\"ci\""),
        "the clash names the name: {clash}"
    );
    let got = store
        .token_by_hash("ci-hash")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(got, token("01", "ci"));
    assert!(store.token_by_hash("nope").await.unwrap().is_none());
    assert_eq!(
        store.token_by_id("02").await.unwrap().unwrap().name,
        "alice"
    );
    assert!(store.token_by_id("nope").await.unwrap().is_none());
    assert_eq!(store.tokens().await.unwrap().len(), 2);
    assert!(store.revoke_token("ci").await.unwrap(), "by name");
    assert!(!store.revoke_token("ci").await.unwrap(), "once");
    assert!(store.revoke_token("02").await.unwrap(), "by id");
    let revoked = store.token_by_hash("ci-hash").await.unwrap().unwrap();
    assert!(
        revoked.revoked.is_some(),
        "a revoked token is still found, marked"
    );

    for i in 0..5u16 {
        store
            .add_audit(&AuditEntry {
                seq: 0,
                time: format!("2026-12-02T00:00:0{i}Z"),
                who: "ci".into(),
                roles: "submitter".into(),
                route: "POST /api/builds".into(),
                target: format!("/api/builds#{i}"),
                status: 200 + i,
                client: "127.0.0.1:1".into(),
            })
            .await
            .expect("audit");
    }
    let first = store.audit(None, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.status).collect::<Vec<_>>(),
        [204, 203],
        "newest first"
    );
    let next = store.audit(Some(first[1].seq), 10).await.unwrap();
    assert_eq!(
        next.iter().map(|e| e.status).collect::<Vec<_>>(),
        [202, 201, 200]
    );
    assert_eq!(next[2].target, "/api/builds#0");
}
