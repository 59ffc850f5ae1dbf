//! Who runs which test unit next: the shared queue of a sharded test run, with no I/O.
//!
//! Idle buildlets take the next unit, longest first. A unit whose buildlet is lost goes
//! back to the front of the queue for another (three tries, as upstream); a failing or
//! timed-out unit fails the run and cancels the rest. Beyond upstream: when the queue is
//! empty and units are still running, an idle buildlet runs a second copy of the unit
//! that has been running longest, and the first result wins (stragglers do not hold the
//! build).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::units::Unit;

/// Tries a unit gets when its buildlets are lost (upstream: 3).
pub const MAX_TRIES: u32 = 3;

/// One copy of a unit handed to a buildlet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Run {
    /// Index of the unit in the plan.
    pub unit: usize,
    /// Which copy this is (unique within the run), for cancelling it.
    pub copy: u64,
}

/// What an idle buildlet does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run this.
    Run(Run),
    /// Nothing now; ask again when something changes.
    Wait,
    /// The run is over.
    Done,
}

/// How one copy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The runner succeeded.
    Passed,
    /// The runner failed (the message says how).
    Failed(String),
    /// The unit ran over its limit.
    TimedOut(Duration),
    /// The buildlet was lost (or the copy was cancelled): no verdict on the unit.
    Lost,
}

/// A unit's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It passed.
    Passed,
    /// It failed; why, in upstream's words where upstream has them.
    Failed(String),
}

#[derive(Debug, Default)]
struct UnitState {
    tries: u32,
    running: Vec<(u64, Instant)>,
    speculated: bool,
    verdict: Option<Verdict>,
}

/// The queue and every unit's state.
#[derive(Debug)]
pub struct Shard {
    units: Vec<Unit>,
    state: Vec<UnitState>,
    queue: VecDeque<usize>,
    next_copy: u64,
    failed: Option<usize>,
    speculate: bool,
}

/// What [`Shard::report`] asks the caller to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Copies to cancel (their results no longer matter).
    pub cancel: Vec<u64>,
    /// Whether this copy's result decided its unit (its output is the unit's).
    pub decided: bool,
}

impl Shard {
    /// A run of `units`, in the order given (longest first, from [`super::units::plan`]);
    /// `speculate` allows second copies of stragglers.
    pub fn new(units: Vec<Unit>, speculate: bool) -> Shard {
        let state = units.iter().map(|_| UnitState::default()).collect();
        let queue = (0..units.len()).collect();
        Shard {
            units,
            state,
            queue,
            next_copy: 0,
            failed: None,
            speculate,
        }
    }

    /// The units.
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// A unit's verdict, once it has one.
    pub fn verdict(&self, unit: usize) -> Option<&Verdict> {
        self.state[unit].verdict.as_ref()
    }

    /// The unit that failed the run, if one did.
    pub fn failed(&self) -> Option<usize> {
        self.failed
    }

    /// Whether every unit has a verdict or one failed.
    pub fn is_done(&self) -> bool {
        self.failed.is_some() || self.state.iter().all(|s| s.verdict.is_some())
    }

    /// Units without a verdict.
    pub fn remaining(&self) -> usize {
        self.state.iter().filter(|s| s.verdict.is_none()).count()
    }

    fn start(&mut self, unit: usize, now: Instant) -> Next {
        let copy = self.next_copy;
        self.next_copy += 1;
        self.state[unit].running.push((copy, now));
        Next::Run(Run { unit, copy })
    }

    /// The next thing for an idle buildlet to do.
    pub fn next(&mut self, now: Instant) -> Next {
        if self.is_done() {
            return Next::Done;
        }
        if let Some(unit) = self.queue.pop_front() {
            self.state[unit].tries += 1;
            return self.start(unit, now);
        }
        if self.speculate {
            // The straggler: running alone, longest so far, not copied before.
            let straggler = self
                .state
                .iter()
                .enumerate()
                .filter(|(_, s)| s.verdict.is_none() && !s.speculated && s.running.len() == 1)
                .min_by_key(|(_, s)| s.running[0].1)
                .map(|(i, _)| i);
            if let Some(unit) = straggler {
                self.state[unit].speculated = true;
                return self.start(unit, now);
            }
        }
        Next::Wait
    }

    /// Records how a copy ended.
    pub fn report(&mut self, run: Run, outcome: Outcome) -> Report {
        let unit = run.unit;
        let st = &mut self.state[unit];
        let was_running = st.running.iter().any(|(c, _)| *c == run.copy);
        st.running.retain(|(c, _)| *c != run.copy);
        if !was_running || st.verdict.is_some() || self.failed.is_some() {
            return Report::default(); // decided already: this copy's result is moot
        }
        let name = self.units[unit].name();
        let verdict = match outcome {
            Outcome::Passed => Verdict::Passed,
            Outcome::Failed(why) => Verdict::Failed(why),
            Outcome::TimedOut(limit) => {
                Verdict::Failed(format!("Test {name:?} ran over {} limit", humanize(limit)))
            }
            Outcome::Lost if !st.running.is_empty() => return Report::default(),
            Outcome::Lost if st.tries >= MAX_TRIES => Verdict::Failed(format!(
                "Failed to schedule {name:?} test after {MAX_TRIES} tries."
            )),
            Outcome::Lost => {
                // Another buildlet takes it next.
                self.queue.push_front(unit);
                return Report::default();
            }
        };
        let failed = matches!(verdict, Verdict::Failed(_));
        st.verdict = Some(verdict);
        let mut cancel: Vec<u64> = st.running.drain(..).map(|(c, _)| c).collect();
        if failed {
            self.failed = Some(unit);
            self.queue.clear();
            for s in &mut self.state {
                cancel.extend(s.running.drain(..).map(|(c, _)| c));
            }
        }
        Report {
            cancel,
            decided: true,
        }
    }
}

/// A duration as Go prints one (`20m0s`, `1.5s`), for upstream's timeout message.
pub fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    let ms = d.subsec_millis();
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) if ms == 0 => format!("{s}s"),
        (0, 0, s) => format!("{}s", format!("{s}.{ms:03}").trim_end_matches('0')),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(n: usize) -> Vec<Unit> {
        (0..n)
            .map(|i| Unit {
                members: vec![format!("u{i}")],
                expected: Duration::from_secs((n - i) as u64),
                position: i,
            })
            .collect()
    }

    fn run_of(n: Next) -> Run {
        match n {
            Next::Run(r) => r,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn units_go_out_in_order_and_the_run_ends_with_the_last_verdict() {
        let t = Instant::now();
        let mut s = Shard::new(units(2), false);
        let a = run_of(s.next(t));
        let b = run_of(s.next(t));
        assert_eq!((a.unit, b.unit), (0, 1));
        assert_eq!(s.next(t), Next::Wait);
        assert!(s.report(a, Outcome::Passed).decided);
        assert_eq!(s.next(t), Next::Wait);
        s.report(b, Outcome::Passed);
        assert_eq!(s.next(t), Next::Done);
        assert_eq!(s.failed(), None);
    }

    #[test]
    fn a_lost_unit_is_retried_three_times_then_fails() {
        let t = Instant::now();
        let mut s = Shard::new(units(2), false);
        let first = run_of(s.next(t));
        assert_eq!(s.report(first, Outcome::Lost), Report::default());
        // Back at the front of the queue, before unit 1.
        let second = run_of(s.next(t));
        assert_eq!(second.unit, 0);
        s.report(second, Outcome::Lost);
        let third = run_of(s.next(t));
        let r = s.report(third, Outcome::Lost);
        assert!(r.decided);
        assert_eq!(
            s.verdict(0),
            Some(&Verdict::Failed(
                "Failed to schedule \"u0\" test after 3 tries.".into()
            ))
        );
        assert_eq!(s.next(t), Next::Done, "the first failure ends the run");
    }

    #[test]
    fn a_failure_cancels_everything_running() {
        let t = Instant::now();
        let mut s = Shard::new(units(3), false);
        let a = run_of(s.next(t));
        let b = run_of(s.next(t));
        let r = s.report(b, Outcome::Failed("exit status 1".into()));
        assert_eq!(r.cancel, vec![a.copy]);
        assert_eq!(s.failed(), Some(1));
        assert_eq!(s.next(t), Next::Done);
        // The cancelled copy's report changes nothing.
        assert_eq!(s.report(a, Outcome::Lost), Report::default());
        assert_eq!(s.verdict(0), None);
    }

    #[test]
    fn a_timeout_fails_with_upstreams_message() {
        let t = Instant::now();
        let mut s = Shard::new(units(1), false);
        let a = run_of(s.next(t));
        s.report(a, Outcome::TimedOut(Duration::from_secs(1200)));
        assert_eq!(
            s.verdict(0),
            Some(&Verdict::Failed("Test \"u0\" ran over 20m0s limit".into()))
        );
    }

    #[test]
    fn stragglers_get_one_second_copy_and_the_first_result_wins() {
        let t = Instant::now();
        let mut s = Shard::new(units(2), true);
        let a = run_of(s.next(t));
        let b = run_of(s.next(t + Duration::from_secs(1)));
        // Queue empty: the longest-running unit (started first) gets a copy.
        let a2 = run_of(s.next(t + Duration::from_secs(2)));
        assert_eq!(a2.unit, a.unit);
        assert_ne!(a2.copy, a.copy);
        let b2 = run_of(s.next(t + Duration::from_secs(2)));
        assert_eq!(b2.unit, b.unit);
        assert_eq!(s.next(t), Next::Wait, "one copy per unit");
        let r = s.report(a2, Outcome::Passed);
        assert_eq!(
            r,
            Report {
                cancel: vec![a.copy],
                decided: true
            }
        );
        assert_eq!(s.report(a, Outcome::Lost), Report::default());
        // A lost copy while the other still runs: no retry, no verdict.
        assert_eq!(s.report(b, Outcome::Lost), Report::default());
        assert_eq!(s.verdict(b.unit), None);
        assert!(s.report(b2, Outcome::Passed).decided);
        assert_eq!(s.next(t), Next::Done);
    }

    #[test]
    fn go_durations() {
        assert_eq!(humanize(Duration::from_secs(1200)), "20m0s");
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
        assert_eq!(humanize(Duration::from_secs(3)), "3s");
        assert_eq!(humanize(Duration::from_secs(7260)), "2h1m0s");
    }
}
