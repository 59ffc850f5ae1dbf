//! Test units: what a builder's test lister printed, packed into the units a runner
//! runs (upstream packs `go_test:*` into groups of at most 10 s of recorded time), and
//! ordered longest first by the durations recorded for the builder.

use std::collections::HashMap;
use std::time::Duration;

/// A unit counts as this long when nothing is recorded for it.
pub const UNKNOWN_DURATION: Duration = Duration::from_secs(1);

/// Longest a listed unit name may be; longer lines are not units.
pub const MAX_NAME: usize = 256;

/// What the runner runs at once: one listed unit, or a group of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The listed names it runs (one, or a group's).
    pub members: Vec<String>,
    /// Its expected duration (recorded, or [`UNKNOWN_DURATION`] per member).
    pub expected: Duration,
    /// Its position in the lister's order (output is printed in that order).
    pub position: usize,
}

impl Unit {
    /// Its name: the members joined by spaces.
    pub fn name(&self) -> String {
        self.members.join(" ")
    }
}

/// The names a lister printed: one per line, trimmed; blank lines, duplicates and lines
/// that cannot be a unit name (too long, control characters) are dropped.
pub fn parse_list(output: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.len() <= MAX_NAME && !l.chars().any(char::is_control))
        .filter(|l| seen.insert(*l))
        .map(str::to_owned)
        .collect()
}

/// Recorded durations per listed name, from stored unit results `(name, millis)`,
/// newest first: a group's time is shared evenly by its members; the newest wins.
pub fn history(rows: &[(String, i64)]) -> HashMap<String, Duration> {
    let mut out = HashMap::new();
    for (name, millis) in rows {
        let members: Vec<&str> = name.split(' ').filter(|m| !m.is_empty()).collect();
        if members.is_empty() {
            continue;
        }
        let each = Duration::from_millis(millis.max(&0).unsigned_abs() / members.len() as u64);
        for m in members {
            out.entry(m.to_owned()).or_insert(each);
        }
    }
    out
}

/// Packs `names` into units and orders them longest first: names starting with
/// `group_prefix` (non-empty) are grouped in list order, non-`cmd/` before `cmd/` as
/// upstream sorts them, while the group's recorded time stays within `group_max`; a
/// longer one runs alone; every other name runs alone.
pub fn plan(
    names: &[String],
    history: &HashMap<String, Duration>,
    group_prefix: &str,
    group_max: Duration,
) -> Vec<Unit> {
    let expected = |n: &str| history.get(n).copied().unwrap_or(UNKNOWN_DURATION);
    let mut units = Vec::new();
    let mut grouped: Vec<(usize, &String)> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if !group_prefix.is_empty() && n.starts_with(group_prefix) {
            grouped.push((i, n));
        } else {
            units.push(Unit {
                members: vec![n.clone()],
                expected: expected(n),
                position: i,
            });
        }
    }
    let is_cmd = |n: &str| n[group_prefix.len()..].starts_with("cmd/");
    grouped.sort_by(|a, b| (is_cmd(a.1), a.1).cmp(&(is_cmd(b.1), b.1)));
    let mut current: Option<Unit> = None;
    for (i, n) in grouped {
        let d = expected(n);
        match &mut current {
            Some(u) if u.expected + d <= group_max => {
                u.members.push(n.clone());
                u.expected += d;
                u.position = u.position.min(i);
            }
            _ => {
                units.extend(current.take());
                current = Some(Unit {
                    members: vec![n.clone()],
                    expected: d,
                    position: i,
                });
            }
        }
    }
    units.extend(current);
    // Longest first; ties in list order, so the plan is the same every time.
    units.sort_by(|a, b| {
        b.expected
            .cmp(&a.expected)
            .then(a.position.cmp(&b.position))
    });
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_list_is_names_one_per_line() {
        let out = "go_test:fmt\n\n  go_test:os  \ngo_test:fmt\nruntime:cpu124\n\u{1b}[31mx\n";
        assert_eq!(
            parse_list(out),
            names(&["go_test:fmt", "go_test:os", "runtime:cpu124"])
        );
        assert!(parse_list(&"x".repeat(MAX_NAME + 1)).is_empty());
    }

    #[test]
    fn groups_stay_within_the_bound_and_run_longest_first() {
        let listed = names(&[
            "go_test:cmd/go",
            "go_test:os",
            "go_test:fmt",
            "api",
            "go_test:net",
        ]);
        let h = history(&[
            ("go_test:os go_test:fmt".into(), 8_000),
            ("go_test:net".into(), 3_000),
            ("api".into(), 30_000),
            ("go_test:cmd/go".into(), 60_000),
            ("go_test:net".into(), 99_000), // older: ignored
        ]);
        assert_eq!(h["go_test:os"], Duration::from_secs(4));
        let units = plan(&listed, &h, "go_test:", Duration::from_secs(10));
        let got: Vec<(String, u64)> = units
            .iter()
            .map(|u| (u.name(), u.expected.as_secs()))
            .collect();
        assert_eq!(
            got,
            [
                ("go_test:cmd/go".to_string(), 60),
                ("api".to_string(), 30),
                ("go_test:fmt go_test:net".to_string(), 7),
                ("go_test:os".to_string(), 4),
            ]
        );
        // Without a prefix every name runs alone.
        assert_eq!(plan(&listed, &h, "", Duration::from_secs(10)).len(), 5);
    }

    #[test]
    fn unknown_units_count_one_second() {
        let listed = names(&["a", "b", "c"]);
        let units = plan(&listed, &HashMap::new(), "", Duration::from_secs(10));
        assert!(units.iter().all(|u| u.expected == UNKNOWN_DURATION));
        assert_eq!(
            units.iter().map(|u| u.position).collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }
}
