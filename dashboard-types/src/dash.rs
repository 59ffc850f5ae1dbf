//! The build dashboard's data model and result-post rules (spec §6): `ResultData`
//! entries, grid cells, and the decision logic of `POST /result`, as pure functions that
//! a server (the coordinator) wraps with storage and HTTP.

use crate::keys::{secrets_equal, verify_builder_key};
use crate::wire::{DashReply, ResultPost};

/// A commit keeps at most this many `ResultData` entries (the newest).
pub const MAX_RESULT_DATA: usize = 1000;

/// Builders whose derived keys are revoked (the master key still works for them).
pub const REVOKED_BUILDERS: &[&str] = &["plan9-amd64-mischief", "linux-arm-onlinenet"];

/// Outcome of one cell as `ResultData` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `true`.
    Ok,
    /// `false`.
    Fail,
    /// `infra_failure`: failed for infrastructure reasons, shown as noise.
    InfraFailure,
}

/// One `builder|OK|LogHash|GoHash` entry of a commit's `ResultData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultEntry {
    /// Builder name.
    pub builder: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Log hash, or a full `https://` URL for LUCI results.
    pub log_hash: String,
    /// Go commit; empty for the main repo.
    pub go_hash: String,
}

impl ResultEntry {
    /// Parses an entry; entries with fewer than four `|` fields are ignored (`None`), as is
    /// an unknown outcome.
    pub fn parse(s: &str) -> Option<ResultEntry> {
        let mut f = s.split('|');
        let (builder, ok, log_hash, go_hash) = (f.next()?, f.next()?, f.next()?, f.next()?);
        let outcome = match ok {
            "true" => Outcome::Ok,
            "false" => Outcome::Fail,
            "infra_failure" => Outcome::InfraFailure,
            _ => return None,
        };
        Some(ResultEntry {
            builder: builder.to_owned(),
            outcome,
            log_hash: log_hash.to_owned(),
            go_hash: go_hash.to_owned(),
        })
    }

    /// Whether the build passed.
    pub fn ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// The stored form.
    pub fn encode(&self) -> String {
        let ok = match self.outcome {
            Outcome::Ok => "true",
            Outcome::Fail => "false",
            Outcome::InfraFailure => "infra_failure",
        };
        format!("{}|{}|{}|{}", self.builder, ok, self.log_hash, self.go_hash)
    }

    /// Where the grid links a failed cell: the log hash itself if it is an `https://` URL,
    /// else `/log/<hash>`.
    pub fn html_log_link(&self) -> String {
        if self.log_hash.starts_with("https://") {
            self.log_hash.clone()
        } else {
            format!("/log/{}", self.log_hash)
        }
    }
}

/// The first entry for (builder, go hash), as upstream looks results up.
pub fn find_result(data: &[String], builder: &str, go_hash: &str) -> Option<ResultEntry> {
    data.iter()
        .filter_map(|s| ResultEntry::parse(s))
        .find(|e| e.builder == builder && e.go_hash == go_hash)
}

/// Adds a result to a commit's `ResultData`: an entry with the same builder prefix and Go
/// hash suffix is replaced in place; otherwise the entry is appended and the list trimmed
/// to the newest [`MAX_RESULT_DATA`].
pub fn add_result(data: &mut Vec<String>, entry: &ResultEntry) {
    let encoded = entry.encode();
    let prefix = format!("{}|", entry.builder);
    let suffix = format!("|{}", entry.go_hash);
    let mut replaced = false;
    for s in data.iter_mut() {
        if s.starts_with(&prefix) && s.ends_with(&suffix) {
            s.clone_from(&encoded);
            replaced = true;
        }
    }
    if !replaced {
        data.push(encoded);
        if data.len() > MAX_RESULT_DATA {
            let excess = data.len() - MAX_RESULT_DATA;
            data.drain(..excess);
        }
    }
}

/// The JSON grid cell for a result on dashboard host `host`: `""`, `"ok"`, or
/// `https://<host>/log/<LogHash>`. **Quirk:** an empty LogHash still gives the URL
/// ending in `/log/`.
pub fn json_cell(result: Option<&ResultEntry>, host: &str) -> String {
    match result {
        None => String::new(),
        Some(e) if e.ok() => "ok".into(),
        Some(e) => format!("https://{host}/log/{}", e.log_hash),
    }
}

/// Whether `key` authorises posts for `builder`: the master key itself, or the builder's
/// derived key unless that builder is revoked. Compared in constant time.
pub fn result_key_valid(master: &[u8], builder: &str, key: &str) -> bool {
    if secrets_equal(master, key.as_bytes()) {
        return true;
    }
    !REVOKED_BUILDERS.contains(&builder) && verify_builder_key(master, builder, key)
}

/// What a valid result post asks the store to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedResult {
    /// The decoded body.
    pub post: ResultPost,
}

/// Upstream's checks of `POST /result?version=…&key=…&builder=…`, in upstream's order.
/// `query` holds the URL query parameters (the form is taken from the query only).
/// On success returns the decoded post for the store; on failure the reply to send
/// (always HTTP 200 with `Error` set).
pub fn check_result_post(
    method: &str,
    query: &[(String, String)],
    body: &[u8],
    master: &[u8],
) -> Result<AcceptedResult, DashReply> {
    let param = |k: &str| {
        query
            .iter()
            .find(|(name, _)| name == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let (key, builder) = (param("key"), param("builder"));
    if method == "POST" && !result_key_valid(master, builder, key) {
        return Err(DashReply::error(format!(
            "invalid key {key:?} for builder {builder:?}"
        )));
    }
    if method != "POST" {
        return Err(DashReply::error(format!("bad method: {method}")));
    }
    let version = param("version");
    if version != "1" {
        // Go parses with Atoi and treats a parse failure as 0.
        let v = version.parse::<i64>().unwrap_or(0);
        return Err(DashReply::error(format!(
            "rejecting POST from builder; need version 1 instead of {v}"
        )));
    }
    let post: ResultPost = serde_json::from_slice(body)
        .map_err(|e| DashReply::error(format!("decoding Body: {e}")))?;
    if post.hash.is_empty() {
        return Err(DashReply::error("validating Result: invalid Hash"));
    }
    if !post.package_path.is_empty() && post.go_hash.is_empty() {
        return Err(DashReply::error("validating Result: invalid GoHash"));
    }
    Ok(AcceptedResult { post })
}
