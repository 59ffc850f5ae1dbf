//! Who may do what, and what they did: API tokens (kept only as hashes) and the audit
//! log of every write. [`AccessStore`] is the seam; SQLite implements it in the same
//! database as the builds, and [`super::conformance::access`] is its contract.

use async_trait::async_trait;

use super::Result;

/// One API token, as stored: never the token itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// A short random id (16 hex), shown in listings and the audit log.
    pub id: String,
    /// The name given at creation (unique).
    pub name: String,
    /// Role names (see [`crate::auth::Role`]).
    pub roles: Vec<String>,
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// When it was revoked, if it was.
    pub revoked: Option<String>,
}

/// One write, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Insertion order (set by the store).
    pub seq: i64,
    /// When (RFC 3339).
    pub time: String,
    /// The token's name, or `anonymous`.
    pub who: String,
    /// The roles the caller had.
    pub roles: String,
    /// `POST /api/builds/{id}/retry`: method and route pattern.
    pub route: String,
    /// What it acted on: the request path.
    pub target: String,
    /// The response status.
    pub status: u16,
    /// The client's address.
    pub client: String,
}

/// Tokens and the audit log.
#[async_trait]
pub trait AccessStore: Send + Sync + std::fmt::Debug {
    /// Adds a token; fails with a message naming the clash if the name is taken.
    async fn add_token(&self, token: &TokenRecord) -> Result<()>;
    /// Every token, revoked ones too, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// The token whose hash this is, revoked or not.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;
    /// The token with this id, revoked or not (a browser session names its token so).
    async fn token_by_id(&self, id: &str) -> Result<Option<TokenRecord>>;
    /// Revokes the token with this name or id; false if there is none not yet revoked.
    async fn revoke_token(&self, name_or_id: &str) -> Result<bool>;
    /// Appends to the audit log.
    async fn add_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Up to `limit` entries older than `before` (a `seq`; `None`: the newest), newest
    /// first.
    async fn audit(&self, before: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>>;
}
