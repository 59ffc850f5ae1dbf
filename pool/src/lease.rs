//! [`Lease`]: one buildlet handed out by a pool, given back when dropped.

use std::fmt;
use std::sync::Arc;

use buildlet_proto::BuildletClient;

/// How a lease ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The buildlet is fine; the pool may hand it out again.
    Return,
    /// The buildlet must not be reused (broken, or its build tampered with it).
    Destroy,
}

type ReleaseFn = Box<dyn FnOnce(Release) + Send>;

/// One buildlet, owned by the holder until dropped. Dropping gives it back to its pool
/// ([`Release::Return`]); [`Lease::destroy`] retires it. No code path can leak it: the
/// release runs exactly once, whatever happens to the holder.
pub struct Lease {
    name: String,
    host_type: String,
    client: Arc<dyn BuildletClient>,
    release: Option<ReleaseFn>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("host_type", &self.host_type)
            .finish()
    }
}

impl Lease {
    /// A lease of machine `name`; `release` runs once when it ends.
    pub fn new(
        name: impl Into<String>,
        host_type: impl Into<String>,
        client: Arc<dyn BuildletClient>,
        release: impl FnOnce(Release) + Send + 'static,
    ) -> Lease {
        Lease {
            name: name.into(),
            host_type: host_type.into(),
            client,
            release: Some(Box::new(release)),
        }
    }

    /// The buildlet.
    pub fn client(&self) -> &dyn BuildletClient {
        &*self.client
    }

    /// A shared handle to the buildlet (valid only while the lease lives).
    pub fn client_arc(&self) -> Arc<dyn BuildletClient> {
        self.client.clone()
    }

    /// The machine's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its host type.
    pub fn host_type(&self) -> &str {
        &self.host_type
    }

    /// Ends the lease and retires the buildlet.
    pub fn destroy(mut self) {
        if let Some(r) = self.release.take() {
            r(Release::Destroy);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(r) = self.release.take() {
            r(Release::Return);
        }
    }
}
