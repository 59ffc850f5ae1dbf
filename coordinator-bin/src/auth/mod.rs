//! Who may do what: roles, identities, API tokens and the rule of each route.
//!
//! Every route of the router is declared with an [`Access`] (see
//! [`crate::api::http::routes`]); [`layer::authorize`], a middleware around the whole
//! router, resolves the caller's [`Identity`] from `Authorization: Bearer <token>` or a
//! browser session ([`session`]: the login form's cookie, whose writes must carry the
//! page's CSRF token) and answers `401` (no or bad credentials; a browser is sent to
//! `/login`) or `403` (a role missing) before any handler runs, naming what is missing.
//! Expensive writes are rate-limited per token ([`rate`]). Writes are recorded in the
//! audit log whatever their outcome, except those refused for lack of any credentials.
//!
//! Tokens are random (`xbt_` and 64 hex digits), shown once at creation and stored only
//! as their SHA-256 ([`token`]). Reverse buildlets keep upstream's builder key per host
//! type (the reverse listener checks it); the bootstrap files they fetch are reached with
//! URLs signed by the coordinator ([`signed`]).

pub mod layer;
pub mod rate;
pub mod session;
pub mod signed;
pub mod token;

use std::fmt;

/// A role a token can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Read pages and JSON.
    Viewer,
    /// Queue builds.
    Submitter,
    /// Interactive buildlets (gomote).
    Gomote,
    /// Upload benchmark results to `/perf/upload`.
    PerfUploader,
    /// Retry, cancel, poll, tokens, the audit log and configuration views; implies every
    /// other role.
    Admin,
}

impl Role {
    /// Every role, in the order listings show them.
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Submitter,
        Role::Gomote,
        Role::PerfUploader,
        Role::Admin,
    ];

    /// The role's name in tokens, the CLI and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Submitter => "submitter",
            Role::Gomote => "gomote",
            Role::PerfUploader => "perf-uploader",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name; the error lists the valid ones.
    pub fn parse(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role {s:?}; roles: {}", names.join(", "))
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling, once the credentials were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's name, or `anonymous`.
    pub name: String,
    /// Its roles (an anonymous reader has `viewer` only).
    pub roles: Vec<Role>,
}

impl Identity {
    /// The caller with no credentials where anonymous reading is on.
    pub fn anonymous_reader() -> Identity {
        Identity {
            name: "anonymous".into(),
            roles: vec![Role::Viewer],
        }
    }

    /// Whether the identity may act in `role`: it holds it or `admin`; and any identity
    /// with a role may read.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
            || self.roles.contains(&Role::Admin)
            || (role == Role::Viewer && !self.roles.is_empty())
    }

    /// The roles as the audit log shows them: `submitter,viewer`.
    pub fn roles_text(&self) -> String {
        let names: Vec<_> = self.roles.iter().map(|r| r.as_str()).collect();
        names.join(",")
    }
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: `/healthz`.
    Public,
    /// A reader: the `viewer` role, or anyone where anonymous reading is on.
    Read,
    /// A reader, or a URL the coordinator signed (what buildlets fetch).
    Fetch,
    /// A read that needs this role (the audit log: admins).
    Need(Role),
    /// A write needing this role; always recorded in the audit log.
    Write(Role),
}

impl Access {
    /// Whether the route changes anything (and so is audited).
    pub fn is_write(self) -> bool {
        matches!(self, Access::Write(_))
    }
}
