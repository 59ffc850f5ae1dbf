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

/// The Go 1.20 form of a Go 1.21+ `dist test` name (`fmt` → `go_test:fmt`), which
/// upstream's policies, groups and history use; names with no such form stay as they are.
pub fn go120_name(raw: &str) -> String {
    if raw.contains("go_test:") {
        return raw.to_owned(); // already the old form (Go 1.20 and before)
    }
    let (pkg, variant) = raw.split_once(':').unwrap_or((raw, ""));
    match (pkg, variant) {
        ("cmd/internal/testdir", "") => "test:0_1".into(),
        ("cmd/internal/testdir", v) => format!("test:{v}"),
        ("cmd/api", "check") => "api".into(),
        ("cmd/internal/bootstrap_test", _) => "reboot".into(),
        (_, "race") => "race".into(),
        (_, "moved_goroot") => "moved_goroot".into(),
        (p, "nolibgcc") => format!("nolibgcc:{p}"),
        (p, "racebench") => format!("go_test_bench:{p}"),
        (p, "") => format!("go_test:{p}"),
        _ => raw.to_owned(),
    }
}

/// Packs `names` into units and orders them longest first: names whose `key` starts
/// with `group_prefix` (non-empty) are grouped in key order, non-`cmd/` before `cmd/` as
/// upstream sorts them, while the group's recorded time stays within `group_max`; a
/// longer one runs alone; every other name runs alone. `key` is the name as policies
/// know it (the name itself, or [`go120_name`]).
pub fn plan(
    names: &[String],
    history: &HashMap<String, Duration>,
    group_prefix: &str,
    group_max: Duration,
    key: &dyn Fn(&str) -> String,
) -> Vec<Unit> {
    let expected = |n: &str| history.get(n).copied().unwrap_or(UNKNOWN_DURATION);
    let mut units = Vec::new();
    let mut grouped: Vec<(usize, &String, String)> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let k = key(n);
        if !group_prefix.is_empty() && k.starts_with(group_prefix) {
            grouped.push((i, n, k));
        } else {
            units.push(Unit {
                members: vec![n.clone()],
                expected: expected(n),
                position: i,
            });
        }
    }
    let is_cmd = |k: &str| k[group_prefix.len()..].starts_with("cmd/");
    grouped.sort_by(|a, b| (is_cmd(&a.2), &a.2).cmp(&(is_cmd(&b.2), &b.2)));
    let mut current: Option<Unit> = None;
    for (i, n, _) in grouped {
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
        let same = |n: &str| n.to_owned();
        let units = plan(&listed, &h, "go_test:", Duration::from_secs(10), &same);
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
        assert_eq!(
            plan(&listed, &h, "", Duration::from_secs(10), &same).len(),
            5
        );
        // Go 1.21+ names are grouped by their 1.20 form, and run by their own.
        let new: Vec<String> = names(&["cmd/go", "os", "fmt", "cmd/api:check", "net"]);
        let h: HashMap<String, Duration> = [("os", 4), ("fmt", 4), ("net", 3)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Duration::from_secs(v)))
            .collect();
        let units = plan(&new, &h, "go_test:", Duration::from_secs(10), &|n| {
            go120_name(n)
        });
        let got: Vec<String> = units.iter().map(Unit::name).collect();
        assert_eq!(got, ["fmt net", "os cmd/go", "cmd/api:check"]);
    }

    #[test]
    fn go_names_map_to_their_old_form() {
        for (new, old) in [
            ("fmt", "go_test:fmt"),
            ("go_test:fmt", "go_test:fmt"),
            ("cmd/api:check", "api"),
            ("cmd/internal/testdir:2_of_4", "test:2_of_4"),
            ("cmd/internal/testdir", "test:0_1"),
            ("cmd/internal/bootstrap_test", "reboot"),
            ("net:nolibgcc", "nolibgcc:net"),
            ("runtime:racebench", "go_test_bench:runtime"),
            ("os/user:osusergo", "os/user:osusergo"),
        ] {
            assert_eq!(go120_name(new), old, "{new}");
        }
    }

    #[test]
    fn unknown_units_count_one_second() {
        let listed = names(&["a", "b", "c"]);
        let units = plan(
            &listed,
            &HashMap::new(),
            "",
            Duration::from_secs(10),
            &|n| n.to_owned(),
        );
        assert!(units.iter().all(|u| u.expected == UNKNOWN_DURATION));
        assert_eq!(
            units.iter().map(|u| u.position).collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }
}
