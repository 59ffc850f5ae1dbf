//! Names and their parsers: builder names, host types, release branches, SlowBot terms,
//! LUCI display names and the grid's header helpers (spec §2, §5.4).
//!
//! Every parser here is total: it returns `Option`/`Result` on any input, never panics,
//! because builder names arrive from the network (enqueue API, result posts).

use std::fmt;

use crate::error::{Error, Result};

/// Longest builder or host name we accept; upstream's longest is under 40 bytes.
pub const MAX_NAME_LEN: usize = 128;

/// A validated builder name: `GOOS-GOARCH` or `GOOS-GOARCH-suffix`.
///
/// Validation is stricter than upstream (which panics on a name without `-`): the name
/// must be ASCII letters, digits, `-`, `_` or `.`, at most [`MAX_NAME_LEN`] bytes, with
/// non-empty first and second fields.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuilderName(String);

impl BuilderName {
    /// Parses and validates a builder name.
    pub fn parse(name: &str) -> Result<BuilderName> {
        let bad = |reason: &str| Error::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if name.is_empty() {
            return Err(bad("empty name"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(bad("longer than 128 bytes"));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(bad(&format!("character {c:?} is not allowed")));
        }
        let Some((goos, rest)) = name.split_once('-') else {
            return Err(bad("must be GOOS-GOARCH[-suffix]"));
        };
        let goarch = rest.split('-').next().unwrap_or("");
        if goos.is_empty() || goarch.is_empty() {
            return Err(bad("GOOS and GOARCH fields must be non-empty"));
        }
        Ok(BuilderName(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Text before the first `-`. **Quirk:** `misc-compile-*` builders give `misc`.
    pub fn goos(&self) -> &str {
        builder_goos(&self.0)
    }

    /// Text between the first and second `-`. **Quirk:** `misc-compile-*` gives `compile`.
    pub fn goarch(&self) -> &str {
        builder_goarch(&self.0)
    }

    /// Some dash-separated component equals `race` (`racecompile` does not count).
    pub fn is_race(&self) -> bool {
        has_component(&self.0, "race")
    }

    /// Some dash-separated component equals `longtest`.
    pub fn is_longtest(&self) -> bool {
        has_component(&self.0, "longtest")
    }
}

impl fmt::Display for BuilderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BuilderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuilderName({:?})", self.0)
    }
}

/// GOOS of a builder name: the text before the first `-` (the whole name if none).
pub fn builder_goos(name: &str) -> &str {
    name.split_once('-').map_or(name, |(os, _)| os)
}

/// GOARCH of a builder name: the text between the first and second `-`.
pub fn builder_goarch(name: &str) -> &str {
    let rest = name.split_once('-').map_or("", |(_, rest)| rest);
    rest.split_once('-').map_or(rest, |(arch, _)| arch)
}

fn has_component(name: &str, component: &str) -> bool {
    name.split('-').any(|c| c == component)
}

/// Derives a host's `HostArch` from its host type `host-<os>-<arch>-<suffix>` (spec §2.1):
/// `<os>-<arch>`, with `-7` appended for `arm`. `None` if the name has fewer than three
/// dash-separated fields.
pub fn derive_host_arch(host_type: &str) -> Option<String> {
    let f: Vec<&str> = host_type.split('-').collect();
    if f.len() < 3 {
        return None;
    }
    let mut arch = format!("{}-{}", f[1], f[2]);
    if f[2] == "arm" {
        arch.push_str("-7"); // upstream assumes newer ARM
    }
    Some(arch)
}

/// Parses a canonical decimal 0..=999 (no sign, no leading zero, 1–3 digits).
fn parse_0_to_999(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 3 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.bytes().try_fold(0u32, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// Upstream's `ParseReleaseBranch`: `release-branch.goMAJOR[.MINOR]` → `(major, minor)`.
///
/// **Quirk:** a name ending in `.0` is rejected, so `release-branch.go1.0` is not a release
/// branch while `release-branch.go1` is (1, 0).
pub fn parse_release_branch(branch: &str) -> Option<(u32, u32)> {
    let dotted = branch.strip_prefix("release-branch.go")?;
    if branch.ends_with(".0") || dotted.matches('.').count() > 1 {
        return None;
    }
    let (major, minor) = match dotted.split_once('.') {
        Some((major, minor)) => (major, Some(minor)),
        None => (dotted, None),
    };
    let major = parse_0_to_999(major).filter(|&m| m != 0)?;
    let minor = match minor {
        Some(m) => parse_0_to_999(m)?,
        None => 0,
    };
    Some((major, minor))
}

/// Upstream's `Go1PointX`: X for a version string starting `go1.X` (X canonical, possibly
/// followed by anything, as in `go1.24.6` or `go1.22rc1`).
pub fn go1_point_x(version: &str) -> Option<u32> {
    let rest = version.strip_prefix("go1.")?;
    let end = rest.bytes().take_while(u8::is_ascii_digit).count();
    parse_0_to_999(&rest[..end])
}

/// Upstream's SlowBot alias table: short terms to builder names; `""` marks a term whose
/// port has no coordinator builder ("known missing"). Sorted by term.
pub const SLOWBOT_ALIASES: &[(&str, &str)] = &[
    ("386", "linux-386"),
    ("aix", "aix-ppc64"),
    ("amd64", "linux-amd64"),
    ("android", "android-amd64-emu"),
    ("android-386", "android-386-emu"),
    ("android-amd64", "android-amd64-emu"),
    ("android-arm", "android-arm-corellium"),
    ("android-arm64", "android-arm64-corellium"),
    ("arm", "linux-arm-aws"),
    ("arm64", "linux-arm64"),
    ("boringcrypto", "linux-amd64-boringcrypto"),
    ("darwin", "darwin-amd64-13"),
    ("darwin-amd64", "darwin-amd64-13"),
    ("darwin-arm64", "darwin-arm64-12"),
    ("dragonfly", "dragonfly-amd64-622"),
    ("dragonfly-amd64", "dragonfly-amd64-622"),
    ("freebsd", "freebsd-amd64-13_0"),
    ("freebsd-386", "freebsd-386-13_0"),
    ("freebsd-amd64", "freebsd-amd64-13_0"),
    ("freebsd-arm", "freebsd-arm-paulzhol"),
    ("freebsd-arm64", "freebsd-arm64-dmgk"),
    ("freebsd-riscv64", "freebsd-riscv64-unmatched"),
    ("illumos", "illumos-amd64"),
    ("ios", "ios-arm64-corellium"),
    ("ios-amd64", ""),
    ("ios-arm64", "ios-arm64-corellium"),
    ("js", ""),
    ("js-wasm", ""),
    ("linux", "linux-amd64"),
    ("linux-arm", "linux-arm-aws"),
    ("linux-loong64", ""),
    ("linux-mips", "linux-mips-rtrk"),
    ("linux-mips64", "linux-mips64-rtrk"),
    ("linux-mips64le", "linux-mips64le-rtrk"),
    ("linux-mipsle", "linux-mipsle-rtrk"),
    ("linux-ppc64", ""),
    ("linux-ppc64-power10", ""),
    ("linux-ppc64le", ""),
    ("linux-ppc64le-power10", ""),
    ("linux-ppc64le-power9", ""),
    ("linux-riscv64", "linux-riscv64-unmatched"),
    ("linux-s390x", "linux-s390x-ibm"),
    ("longtest", "linux-amd64-longtest"),
    ("loong64", ""),
    ("mips", "linux-mips-rtrk"),
    ("mips64", "linux-mips64-rtrk"),
    ("mips64le", "linux-mips64le-rtrk"),
    ("mipsle", "linux-mipsle-rtrk"),
    ("netbsd", "netbsd-amd64-9_3"),
    ("netbsd-386", "netbsd-386-9_3"),
    ("netbsd-amd64", "netbsd-amd64-9_3"),
    ("netbsd-arm", "netbsd-arm-bsiegert"),
    ("netbsd-arm64", "netbsd-arm64-bsiegert"),
    ("nocgo", "linux-amd64-nocgo"),
    ("openbsd", "openbsd-amd64-72"),
    ("openbsd-386", "openbsd-386-72"),
    ("openbsd-amd64", "openbsd-amd64-72"),
    ("openbsd-arm", "openbsd-arm-jsing"),
    ("openbsd-arm64", "openbsd-arm64-jsing"),
    ("openbsd-mips64", "openbsd-mips64-jsing"),
    ("openbsd-ppc64", "openbsd-ppc64-n2vi"),
    ("openbsd-riscv64", "openbsd-riscv64-jsing"),
    ("plan9", "plan9-arm"),
    ("plan9-386", "plan9-386-0intro"),
    ("plan9-amd64", "plan9-amd64-0intro"),
    ("ppc64", ""),
    ("ppc64le", ""),
    ("ppc64lep10", ""),
    ("ppc64lep9", ""),
    ("ppc64p10", ""),
    ("riscv64", "linux-riscv64-unmatched"),
    ("s390x", "linux-s390x-ibm"),
    ("solaris", "solaris-amd64-oraclerel"),
    ("solaris-amd64", "solaris-amd64-oraclerel"),
    ("wasip1", ""),
    ("wasip1-wasm", ""),
    ("wasm", ""),
    ("windows", "windows-amd64-2016"),
    ("windows-386", "windows-386-2016"),
    ("windows-amd64", "windows-amd64-2016"),
    ("windows-arm", "windows-arm-zx2c4"),
    ("windows-arm64", "windows-arm64-11"),
];

/// The builder a SlowBot alias names: `Some("")` for a known-missing port, `None` if the
/// term is no alias.
pub fn slowbot_alias(term: &str) -> Option<&'static str> {
    SLOWBOT_ALIASES
        .binary_search_by(|(t, _)| (*t).cmp(term))
        .ok()
        .map(|i| SLOWBOT_ALIASES[i].1)
}

/// Upstream's `MatchesSlowBotTerm`: `term` is non-empty and names `builder` directly or
/// through the alias table.
pub fn matches_slowbot_term(builder: &str, term: &str) -> bool {
    !term.is_empty() && (term == builder || slowbot_alias(term) == Some(builder))
}

/// The rabbit suffix the grid appends to LUCI builder columns (U+1F407).
pub const LUCI_SUFFIX: &str = "-🐇";

/// Short Go branch as LUCI names it: `tip` for master, else what follows `release-branch.go`.
pub fn luci_short_go_branch(go_branch: &str) -> &str {
    go_branch.strip_prefix("release-branch.go").unwrap_or("tip")
}

/// Grid column name of a main-repo LUCI builder (`gotip-<goos>-<goarch>_<rest>` becomes
/// `<goos>-<goarch>-<rest>-🐇`; otherwise `gotip-` is dropped and `-🐇` appended).
pub fn luci_display_name(luci_name: &str, goos: &str, goarch: &str) -> String {
    let underscore = format!("gotip-{goos}-{goarch}_");
    let friendly = match luci_name.strip_prefix(&underscore) {
        Some(rest) => format!("gotip-{goos}-{goarch}-{rest}"),
        None => luci_name.to_owned(),
    };
    let base = friendly.strip_prefix("gotip-").unwrap_or(&friendly);
    format!("{base}{LUCI_SUFFIX}")
}

/// Grid column name of an x/ repo LUCI builder (`x_<repo>-go<short>-` prefix removed).
pub fn luci_xrepo_display_name(
    luci_name: &str,
    repo: &str,
    go_branch: &str,
    goos: &str,
    goarch: &str,
) -> String {
    let short = luci_short_go_branch(go_branch);
    let underscore = format!("x_{repo}-go{short}-{goos}-{goarch}_");
    let friendly = match luci_name.strip_prefix(&underscore) {
        Some(rest) => format!("x_{repo}-go{short}-{goos}-{goarch}-{rest}"),
        None => luci_name.to_owned(),
    };
    let prefix = format!("x_{repo}-go{short}-");
    let base = friendly.strip_prefix(&prefix).unwrap_or(&friendly);
    format!("{base}{LUCI_SUFFIX}")
}

/// Header helpers of the build grid (upstream legacydash); they work on any column name.
pub mod grid {
    /// First-class ports (Go's release targets policy): cells of other ports show as
    /// "unsupported".
    pub const FIRST_CLASS_PORTS: &[(&str, &str)] = &[
        ("darwin", "amd64"),
        ("darwin", "arm64"),
        ("linux", "386"),
        ("linux", "amd64"),
        ("linux", "arm"),
        ("linux", "arm64"),
        ("windows", "386"),
        ("windows", "amd64"),
    ];

    fn split_dash(s: &str) -> (&str, &str) {
        s.split_once('-').unwrap_or((s, ""))
    }

    /// A race column: the name contains `-race-` or ends in `-race` (unlike
    /// [`BuilderName::is_race`](super::BuilderName::is_race), which splits on dashes).
    pub fn is_race(s: &str) -> bool {
        s.contains("-race-") || s.ends_with("-race")
    }

    /// The OS field.
    pub fn os(s: &str) -> &str {
        split_dash(s).0
    }

    /// The arch field.
    pub fn arch(s: &str) -> &str {
        split_dash(split_dash(s).1).0
    }

    /// Top header: `race` for race columns, else the OS.
    pub fn os_or_race(s: &str) -> &str {
        if is_race(s) { "race" } else { os(s) }
    }

    /// Second header: the OS for race columns, else the arch.
    pub fn subheading(s: &str) -> &str {
        if is_race(s) { os(s) } else { arch(s) }
    }

    /// Third header: everything after the second dash, with a `race` field removed first.
    pub fn subheading2(s: &str) -> String {
        let s = if is_race(s) {
            s.split('-')
                .filter(|c| *c != "race")
                .collect::<Vec<_>>()
                .join("-")
        } else {
            s.to_owned()
        };
        split_dash(split_dash(&s).1).1.to_owned()
    }

    /// Column ordering priority: race 2; else by OS (`all` 0; darwin, linux, windows 1;
    /// BSDs 3; android, ios 4; others 10).
    pub fn priority(s: &str) -> u32 {
        if is_race(s) {
            return 2;
        }
        match os(s) {
            "all" => 0,
            "darwin" | "linux" | "windows" => 1,
            "freebsd" | "openbsd" | "netbsd" => 3,
            "android" | "ios" => 4,
            _ => 10,
        }
    }

    /// Sorts columns as the grid does: priority, then name.
    pub fn sort_columns(cols: &mut [String]) {
        cols.sort_by(|a, b| priority(a).cmp(&priority(b)).then_with(|| a.cmp(b)));
    }

    /// The column's os/arch is not a first-class port.
    pub fn unsupported(s: &str) -> bool {
        !FIRST_CLASS_PORTS.contains(&(os(s), arch(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_table_is_sorted_for_binary_search() {
        assert!(SLOWBOT_ALIASES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn builder_names_are_validated() {
        for bad in [
            "",
            "linux",
            "-amd64",
            "linux-",
            "linux-amd64 x",
            "linux-\0",
            "a--b",
        ] {
            assert!(BuilderName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(BuilderName::parse(&"a-".repeat(70)).is_err());
        let n = BuilderName::parse("freebsd-amd64-13_0").unwrap();
        assert_eq!((n.goos(), n.goarch()), ("freebsd", "amd64"));
    }

    #[test]
    fn go1_point_x_reads_the_minor() {
        assert_eq!(go1_point_x("go1.24.6"), Some(24));
        assert_eq!(go1_point_x("go1.20"), Some(20));
        assert_eq!(go1_point_x("go1.022"), None);
        assert_eq!(go1_point_x("go2.1"), None);
        assert_eq!(go1_point_x("go1."), None);
    }
}
