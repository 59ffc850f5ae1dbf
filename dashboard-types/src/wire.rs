//! Wire and storage types of golang.org/x/build's `types` package, with serde names
//! byte-identical to upstream's JSON (spec `dashboard-types.md` §1).
//!
//! Go encodes untagged fields with their Go name, so several types here use
//! `PascalCase` keys while the grid types use upstream's lower-camel JSON tags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::go_json::{GoTime, go_float, nil_slice};

/// Body of `GET /?mode=json` on the build dashboard: the grid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildStatus {
    /// Every builder column in display order; `revisions[i].results[j]` is for `builders[j]`.
    pub builders: Vec<String>,
    /// Grid rows, newest first; an empty list is written as `null` like Go's nil slice.
    #[serde(with = "nil_slice")]
    pub revisions: Vec<BuildRevision>,
}

/// One row of the grid: a commit of one repo (against one Go commit for x/ repos).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildRevision {
    /// `"go"` for the main repo, otherwise the Gerrit project name (`"net"`).
    pub repo: String,
    /// Full git hash of `repo`.
    pub revision: String,
    /// Go commit an x/ repo commit is built against; empty (omitted) for `repo == "go"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub go_revision: String,
    /// Commit time, RFC 3339 in the server's zone (kept as text: upstream formats it).
    pub date: String,
    /// Branch of `repo`.
    pub branch: String,
    /// Go branch for x/ repo rows of the overview section; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub go_branch: String,
    /// `"Name <email>"`.
    pub author: String,
    /// Commit title.
    pub desc: String,
    /// One cell per builder: `""` (no result), `"ok"`, or a failure log URL.
    pub results: Vec<String>,
}

/// A build as stored by the coordinator (datastore kind `Build`), Go field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildRecord {
    /// Build id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Coordinator process id.
    #[serde(rename = "ProcessID")]
    pub process_id: String,
    /// When the build started.
    pub start_time: GoTime,
    /// A trybot run.
    pub is_try: bool,
    /// An explicitly requested SlowBot.
    pub is_slow_bot: bool,
    /// Go commit.
    pub go_rev: String,
    /// Commit of `repo` (same as `go_rev` for the main repo).
    pub rev: String,
    /// `"go"`, `"net"`, …
    pub repo: String,
    /// Builder name.
    pub builder: String,
    /// `""` (unspecified) or `"cos"`.
    pub container_host: String,
    /// GOOS from the builder name.
    #[serde(rename = "OS")]
    pub os: String,
    /// GOARCH from the builder name.
    pub arch: String,
    /// When the build ended; Go's zero time while it runs.
    pub end_time: GoTime,
    /// `EndTime - StartTime` in seconds.
    #[serde(with = "go_float")]
    pub seconds: f64,
    /// `""` while running, then `"ok"` or `"fail"`.
    pub result: String,
    /// Deprecated failure URL.
    #[serde(rename = "FailureURL")]
    pub failure_url: String,
    /// Log URL (upstream only fills it for trybots).
    #[serde(rename = "LogURL")]
    pub log_url: String,
}

/// One finished span of a build (datastore kind `Span`), Go field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpanRecord {
    /// Build id this span belongs to.
    #[serde(rename = "BuildID")]
    pub build_id: String,
    /// A trybot run.
    pub is_try: bool,
    /// Go commit.
    pub go_rev: String,
    /// Commit of `repo`.
    pub rev: String,
    /// Repo name.
    pub repo: String,
    /// Builder name.
    pub builder: String,
    /// GOOS.
    #[serde(rename = "OS")]
    pub os: String,
    /// GOARCH.
    pub arch: String,
    /// Span name.
    pub event: String,
    /// Empty on success, the error text otherwise.
    pub error: String,
    /// Optional free text.
    pub detail: String,
    /// Start of the span.
    pub start_time: GoTime,
    /// End of the span.
    pub end_time: GoTime,
    /// Duration in seconds.
    #[serde(with = "go_float")]
    pub seconds: f64,
}

impl SpanRecord {
    /// The datastore key name upstream uses: `<BuildID>-<StartTime Unix ns>-<Event>`.
    pub fn key_name(&self) -> String {
        let ns = self.start_time.0.timestamp_nanos_opt().unwrap_or(i64::MIN);
        format!("{}-{}-{}", self.build_id, ns, self.event)
    }
}

/// One connected reverse buildlet machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReverseBuilder {
    /// The machine's self-reported unique name.
    pub name: String,
    /// Its host type.
    pub host_type: String,
    /// Seconds since it connected.
    #[serde(with = "go_float")]
    pub connected_sec: f64,
    /// Seconds idle; omitted when zero.
    #[serde(default, with = "go_float", skip_serializing_if = "is_zero")]
    pub idle_sec: f64,
    /// Seconds busy; omitted when zero.
    #[serde(default, with = "go_float", skip_serializing_if = "is_zero")]
    pub busy_sec: f64,
    /// Buildlet version string.
    pub version: String,
    /// Whether it is running a build.
    pub busy: bool,
    /// How the coordinator reaches it over revdial: `v2` or `mux`. Ours: upstream has
    /// no such field, and it is omitted when empty (local machines).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revdial: String,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Reverse pool state for one host type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReverseHostStatus {
    /// Key of the hosts catalogue.
    pub host_type: String,
    /// Machines connected now.
    pub connected: i64,
    /// Machines expected (the host's `ExpectNum`).
    pub expect: i64,
    /// Connected and idle.
    pub idle: i64,
    /// Connected and busy.
    pub busy: i64,
    /// Builds waiting for this host type.
    pub waiters: i64,
    /// Machines by their unique name; Go's nil map encodes as `null`.
    #[serde(with = "nil_map")]
    pub machines: BTreeMap<String, ReverseBuilder>,
}

/// Reverse pool state for every host type (`/status/reverse.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReverseBuilderStatus {
    /// Per host type; Go's nil map encodes as `null`.
    #[serde(with = "nil_map")]
    pub host_types: BTreeMap<String, ReverseHostStatus>,
}

impl ReverseBuilderStatus {
    /// Upstream's `Host(hostType)`: the entry for `host_type`, created with only
    /// `HostType` set when missing.
    pub fn host(&mut self, host_type: &str) -> &mut ReverseHostStatus {
        self.host_types
            .entry(host_type.to_owned())
            .or_insert_with(|| ReverseHostStatus {
                host_type: host_type.to_owned(),
                ..Default::default()
            })
    }
}

/// A map that encodes as `null` when empty, like Go's nil map.
mod nil_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer, V: Serialize>(
        m: &BTreeMap<String, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        if m.is_empty() {
            s.serialize_none()
        } else {
            m.serialize(s)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, V>, D::Error> {
        Ok(Option::<BTreeMap<String, V>>::deserialize(d)?.unwrap_or_default())
    }
}

/// Go version `Major.Minor`; `{0, 0}` means "no minimum".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MajorMinor {
    /// Major version.
    pub major: i64,
    /// Minor version.
    pub minor: i64,
}

impl MajorMinor {
    /// Builds a version.
    pub const fn new(major: i64, minor: i64) -> Self {
        MajorMinor { major, minor }
    }

    /// Upstream's `Less`: compares Major, then Minor.
    pub fn less(&self, other: &MajorMinor) -> bool {
        (self.major, self.minor) < (other.major, other.minor)
    }
}

/// Position report for a waiter in a buildlet queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildletWaitStatus {
    /// If non-empty, every other field is to be ignored.
    pub message: String,
    /// Waiters of the same host type ordered before this one.
    pub ahead: i64,
}

/// One line of the newline-delimited JSON stream sent to `gomote create` clients.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitStreamItem {
    /// An error; ends the stream.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The buildlet handed out, once it is assigned (upstream's free-form object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildlet: Option<serde_json::Value>,
    /// The queue position while waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BuildletWaitStatus>,
}

/// A post-submit build that already holds a buildlet (`/status/post-submit-active.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivePostSubmitBuild {
    /// Builder name.
    pub builder: String,
    /// Commit under test (the x/ repo commit for subrepo builds).
    pub commit: String,
    /// Go commit for subrepo builds; omitted for the main repo.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub go_commit: String,
    /// Where the build's live status is shown.
    #[serde(rename = "statusURL")]
    pub status_url: String,
}

/// Reply of `GET /status` on a buildlet: `{"Version": N}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildletStatus {
    /// Buildlet protocol version; the current buildlet reports [`BuildletStatus::CURRENT`].
    #[serde(rename = "Version")]
    pub version: i64,
}

impl BuildletStatus {
    /// The version the current upstream buildlet reports.
    pub const CURRENT: i64 = 29;
    /// Reverse buildlets below this version are dropped by the coordinator.
    pub const MIN_REVERSE: i64 = 23;
}

/// Body of `POST /result?version=1&key=…&builder=…`: one build result (Go field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResultPost {
    /// Builder name.
    pub builder: String,
    /// `""` for the main repo, otherwise the x/ repo import path.
    pub package_path: String,
    /// Commit of the built repo.
    pub hash: String,
    /// Go commit for subrepo builds.
    pub go_hash: String,
    /// Whether the build passed.
    #[serde(rename = "OK")]
    pub ok: bool,
    /// Full log text.
    pub log: String,
    /// Run time in nanoseconds.
    pub run_time: i64,
    /// Hash of an already stored log (replaced when `log` is non-empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub log_hash: String,
    /// Ignored by the dashboard.
    #[serde(rename = "BuildingURL", skip_serializing_if = "String::is_empty")]
    pub building_url: String,
}

/// The dashboard's reply envelope: always HTTP 200, `{"Response":…,"Error":"…"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DashReply {
    /// Payload; `null` for result posts.
    #[serde(rename = "Response")]
    pub response: Option<serde_json::Value>,
    /// Empty on success, the error text otherwise.
    #[serde(rename = "Error")]
    pub error: String,
}

impl DashReply {
    /// A success with no payload.
    pub fn ok() -> Self {
        DashReply::default()
    }

    /// A failure with its message.
    pub fn error(msg: impl Into<String>) -> Self {
        DashReply {
            response: None,
            error: msg.into(),
        }
    }

    /// The exact body upstream writes: compact JSON and a newline.
    pub fn to_body(&self) -> String {
        let mut s = serde_json::to_string(self).expect("DashReply always serializes");
        s.push('\n');
        s
    }
}
