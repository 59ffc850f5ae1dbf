//! What a failed attempt means, decided by the error's type, never its text: the buildlet
//! refused a request (a 4xx: a command it cannot run, a path it will not write) fails the
//! step and keeps the machine; a lost buildlet (the connection, the heartbeat, a 5xx)
//! or one that could not be leased or prepared is retried on another; a setup problem
//! (no such builder, no such revision) fails the build at once.

use async_trait::async_trait;

use crate::model::State;

/// How many attempts a build gets (upstream retries a lost buildlet; so do we, twice).
pub const MAX_ATTEMPTS: u32 = 3;

/// Why one attempt ended without a result.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// Nothing another buildlet would fix.
    #[error("{0}")]
    Setup(String),
    /// No buildlet could be leased or prepared.
    #[error("getting a buildlet: {0}")]
    Lease(#[source] pool::Error),
    /// Every buildlet of a sharded test run was lost with units left (upstream's words).
    #[error("runTests: dist test failed: {}", super::sharded::ALL_LOST)]
    AllLost,
    /// A buildlet call failed during `stage`.
    #[error("{stage}: {error}")]
    Buildlet {
        /// What was being done (`pushing the source`, `$ make`).
        stage: String,
        /// The failure.
        #[source]
        error: buildlet_proto::Error,
    },
}

/// What to do about an attempt's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The build fails with this error; the buildlet (if any) is fine.
    Fail,
    /// The buildlet is gone or unusable: retire it and try another.
    Retry,
}

/// Whether the buildlet answered and refused the request: the request was wrong, the
/// machine is fine.
pub fn refused(e: &buildlet_proto::Error) -> bool {
    use buildlet_proto::Error as E;
    match e {
        E::Status { status, .. } | E::Refused { status, .. } => {
            status.starts_with('4') && status.len() >= 3
        }
        E::InvalidArgument(_) => true,
        _ => false,
    }
}

/// The disposition of an attempt's error.
pub fn classify(e: &AttemptError) -> Disposition {
    match e {
        AttemptError::Setup(_) => Disposition::Fail,
        AttemptError::Lease(
            pool::Error::UnknownHostType(_) | pool::Error::Closed | pool::Error::Quota(_),
        ) => Disposition::Fail,
        AttemptError::Lease(_) | AttemptError::AllLost => Disposition::Retry,
        AttemptError::Buildlet { error, .. } if refused(error) => Disposition::Fail,
        AttemptError::Buildlet { .. } => Disposition::Retry,
    }
}

/// One attempt at a build, and what the retry loop tells the world.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Attempt: Send + Sync {
    /// Runs attempt `n` (1-based): `Ok` with the build's result, or why it had none.
    async fn run(&self, n: u32) -> Result<State, AttemptError>;
    /// Attempt `n` failed with a retryable error; attempt `n + 1` follows.
    async fn retrying(&self, n: u32, why: &str);
    /// A line for the build log.
    fn note(&self, line: &str);
}

/// Runs attempts until one gives a result, an error says stop, or [`MAX_ATTEMPTS`] are
/// spent; returns the build's result.
pub async fn run_attempts(a: &dyn Attempt) -> State {
    for n in 1..=MAX_ATTEMPTS {
        match a.run(n).await {
            Ok(state) => return state,
            Err(e) => match classify(&e) {
                Disposition::Fail => {
                    a.note(&e.to_string());
                    return State::Failed;
                }
                Disposition::Retry if n < MAX_ATTEMPTS => {
                    a.note(&format!(
                        "{e}; retrying on another buildlet (attempt {} of {MAX_ATTEMPTS})",
                        n + 1
                    ));
                    a.retrying(n, &e.to_string()).await;
                }
                Disposition::Retry => {
                    a.note(&format!("{e}; giving up after {MAX_ATTEMPTS} attempts"));
                }
            },
        }
    }
    State::Failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use mockall::Sequence;
    use mockall::predicate::eq;

    fn lost() -> AttemptError {
        AttemptError::Buildlet {
            stage: "$ make".into(),
            error: buildlet_proto::Error::Transport("connection reset".into()),
        }
    }

    fn not_found() -> AttemptError {
        AttemptError::Buildlet {
            stage: "$ no-such-command".into(),
            error: buildlet_proto::Error::Status {
                status: "404 Not Found".into(),
                body: "exec: no-such-command: not found".into(),
            },
        }
    }

    #[test]
    fn errors_are_classified_by_type() {
        assert_eq!(classify(&not_found()), Disposition::Fail);
        assert_eq!(classify(&lost()), Disposition::Retry);
        let server_error = AttemptError::Buildlet {
            stage: "x".into(),
            error: buildlet_proto::Error::Status {
                status: "500 Internal Server Error".into(),
                body: String::new(),
            },
        };
        assert_eq!(classify(&server_error), Disposition::Retry);
        assert_eq!(classify(&AttemptError::AllLost), Disposition::Retry);
        for e in [
            buildlet_proto::Error::Dead,
            buildlet_proto::Error::MissingTrailer,
            buildlet_proto::Error::HeaderTimeout(std::time::Duration::from_secs(1)),
        ] {
            let e = AttemptError::Buildlet {
                stage: "x".into(),
                error: e,
            };
            assert_eq!(classify(&e), Disposition::Retry, "{e}");
        }
        let invalid = AttemptError::Buildlet {
            stage: "x".into(),
            error: buildlet_proto::Error::InvalidArgument("line break".into()),
        };
        assert_eq!(classify(&invalid), Disposition::Fail);
        let wipe = AttemptError::Lease(pool::Error::Prepare {
            name: "m".into(),
            source: buildlet_proto::Error::Dead,
        });
        assert_eq!(classify(&wipe), Disposition::Retry);
        let unknown = AttemptError::Lease(pool::Error::UnknownHostType("h".into()));
        assert_eq!(classify(&unknown), Disposition::Fail);
        assert_eq!(
            classify(&AttemptError::Setup("no builder".into())),
            Disposition::Fail
        );
    }

    #[tokio::test]
    async fn a_refused_request_fails_the_build_without_a_retry() {
        let mut a = MockAttempt::new();
        a.expect_run().times(1).returning(|_| Err(not_found()));
        a.expect_retrying().never();
        a.expect_note()
            .withf(|l| l.contains("404 Not Found"))
            .times(1)
            .return_const(());
        assert_eq!(run_attempts(&a).await, State::Failed);
    }

    #[tokio::test]
    async fn a_lost_buildlet_is_retried_and_the_next_result_counts() {
        let mut a = MockAttempt::new();
        let mut seq = Sequence::new();
        a.expect_run()
            .with(eq(1))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Err(lost()));
        a.expect_note()
            .times(1)
            .in_sequence(&mut seq)
            .return_const(());
        a.expect_retrying()
            .with(eq(1), mockall::predicate::always())
            .times(1)
            .in_sequence(&mut seq)
            .return_const(());
        a.expect_run()
            .with(eq(2))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(State::Succeeded));
        assert_eq!(run_attempts(&a).await, State::Succeeded);
    }

    #[tokio::test]
    async fn a_failed_lease_or_wipe_tries_another_buildlet_then_gives_up() {
        let mut a = MockAttempt::new();
        a.expect_run().times(MAX_ATTEMPTS as usize).returning(|_| {
            Err(AttemptError::Lease(pool::Error::Prepare {
                name: "m".into(),
                source: buildlet_proto::Error::Dead,
            }))
        });
        a.expect_retrying()
            .times(MAX_ATTEMPTS as usize - 1)
            .return_const(());
        a.expect_note()
            .withf(|l| l.contains("giving up"))
            .times(1)
            .return_const(());
        a.expect_note()
            .withf(|l| l.contains("retrying on another buildlet"))
            .times(MAX_ATTEMPTS as usize - 1)
            .return_const(());
        assert_eq!(run_attempts(&a).await, State::Failed);
    }

    #[tokio::test]
    async fn a_failing_step_is_a_result_not_an_error() {
        let mut a = MockAttempt::new();
        a.expect_run().times(1).returning(|_| Ok(State::Failed));
        a.expect_retrying().never();
        a.expect_note().never();
        assert_eq!(run_attempts(&a).await, State::Failed);
    }
}
