//! A build's identity and lifecycle, with no I/O: the one place that says which state
//! follows which. Stores apply these rules in their own language (SQL `WHERE state IN …`)
//! from [`Event::from_states`], so a store cannot disagree with the model.

use std::fmt;

/// A build's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// In the queue; no dispatcher has taken it.
    Queued,
    /// Taken by a dispatcher, waiting for a buildlet (upstream's `waiting_for_machine`).
    Waiting,
    /// Holding a buildlet.
    Running,
    /// Every step passed.
    Succeeded,
    /// A step failed, or the infrastructure failed on every attempt.
    Failed,
    /// Canceled by a user.
    Canceled,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 6] = [
        State::Queued,
        State::Waiting,
        State::Running,
        State::Succeeded,
        State::Failed,
        State::Canceled,
    ];

    /// The stored and displayed name (upstream's for the waiting state).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Waiting => "waiting_for_machine",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Canceled => "canceled",
        }
    }

    /// The state named `s` (as [`State::as_str`] spells it).
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the build has ended.
    pub fn is_final(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Canceled)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A dispatcher takes it from the queue.
    Claim,
    /// It got a buildlet.
    Leased,
    /// Its buildlet was lost: it waits for another (a new attempt).
    Retry,
    /// Its attempt was cut off (coordinator shutdown): back to the queue, nothing recorded.
    Requeue,
    /// It ended with a result (`Succeeded` or `Failed`).
    Finish(State),
    /// A user canceled it.
    Cancel,
}

impl Event {
    /// The states in which this event may happen.
    pub fn from_states(self) -> &'static [State] {
        match self {
            Event::Claim => &[State::Queued],
            Event::Leased => &[State::Waiting],
            Event::Retry => &[State::Waiting, State::Running],
            Event::Requeue => &[State::Waiting, State::Running],
            Event::Finish(_) => &[State::Waiting, State::Running],
            Event::Cancel => &[State::Queued, State::Waiting, State::Running],
        }
    }

    /// The state after the event.
    pub fn to_state(self) -> State {
        match self {
            Event::Claim => State::Waiting,
            Event::Leased => State::Running,
            Event::Retry => State::Waiting,
            Event::Requeue => State::Queued,
            Event::Finish(s) => s,
            Event::Cancel => State::Canceled,
        }
    }
}

/// An event that cannot happen in a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a build that is {state} cannot take {event:?}")]
pub struct Invalid {
    /// The state.
    pub state: State,
    /// The refused event.
    pub event: Event,
}

/// The state after `event` in `state`, or why it cannot happen.
pub fn transition(state: State, event: Event) -> Result<State, Invalid> {
    let valid_result = match event {
        Event::Finish(s) => matches!(s, State::Succeeded | State::Failed),
        _ => true,
    };
    if valid_result && event.from_states().contains(&state) {
        Ok(event.to_state())
    } else {
        Err(Invalid { state, event })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_state() -> impl Strategy<Value = State> {
        proptest::sample::select(State::ALL.to_vec())
    }

    fn any_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Claim),
            Just(Event::Leased),
            Just(Event::Retry),
            Just(Event::Requeue),
            Just(Event::Cancel),
            any_state().prop_map(Event::Finish),
        ]
    }

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("bogus"), None);
    }

    #[test]
    fn the_happy_path_and_a_requeue() {
        let s = transition(State::Queued, Event::Claim).unwrap();
        let s = transition(s, Event::Leased).unwrap();
        assert_eq!(transition(s, Event::Requeue), Ok(State::Queued));
        assert_eq!(
            transition(s, Event::Finish(State::Succeeded)),
            Ok(State::Succeeded)
        );
        assert!(transition(State::Queued, Event::Finish(State::Failed)).is_err());
        assert!(transition(State::Running, Event::Finish(State::Canceled)).is_err());
    }

    proptest! {
        /// A build records one result: nothing leaves a final state.
        #[test]
        fn final_states_are_final(state in any_state(), event in any_event()) {
            if state.is_final() {
                prop_assert!(transition(state, event).is_err());
            }
        }

        /// Walks of any events end in at most one final state and never skip the queue:
        /// a build runs only after a claim.
        #[test]
        fn walks_respect_the_lifecycle(events in proptest::collection::vec(any_event(), 0..20)) {
            let mut state = State::Queued;
            let mut claimed = false;
            for e in events {
                if let Ok(next) = transition(state, e) {
                    if next == State::Running {
                        prop_assert!(claimed);
                    }
                    claimed = match next {
                        State::Waiting | State::Running => true,
                        State::Queued => false,
                        _ => claimed,
                    };
                    state = next;
                }
            }
        }
    }
}
