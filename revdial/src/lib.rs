//! Reverse dialing (in progress).
