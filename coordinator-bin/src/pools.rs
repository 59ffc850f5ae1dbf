//! The coordinator's pool: local and reverse buildlets behind one [`BuildletPool`], each
//! host type served by exactly the pool the configuration names. A host type no pool
//! serves is an error, never a silent local buildlet.

use std::collections::BTreeSet;

use async_trait::async_trait;
use dashboard_types::ReverseBuilderStatus;
use pool::providers::local::LocalPool;
use pool::providers::reverse::ReversePool;
use pool::{BuildletPool, Lease, LeaseRequest};

/// Local and reverse buildlets, by host type.
#[derive(Debug)]
pub struct Pools {
    local: LocalPool,
    local_types: BTreeSet<String>,
    reverse: Option<ReversePool>,
    reverse_types: BTreeSet<String>,
}

impl Pools {
    /// The pools, serving the host types `config` assigns them.
    pub fn new(
        local: LocalPool,
        reverse: Option<ReversePool>,
        config: &crate::config::Pools,
    ) -> Pools {
        Pools {
            local,
            local_types: config.local.keys().cloned().collect(),
            reverse,
            reverse_types: config.reverse.keys().cloned().collect(),
        }
    }
}

#[async_trait]
impl BuildletPool for Pools {
    async fn lease(&self, req: LeaseRequest) -> pool::Result<Lease> {
        let ht = &req.item.host_type;
        if self.local_types.contains(ht) {
            return self.local.lease(req).await;
        }
        match &self.reverse {
            Some(pool) if self.reverse_types.contains(ht) => pool.lease(req).await,
            _ => Err(pool::Error::UnknownHostType(ht.clone())),
        }
    }

    fn status(&self) -> ReverseBuilderStatus {
        let mut all = self.local.status();
        if let Some(pool) = &self.reverse {
            all.host_types.extend(pool.status().host_types);
        }
        all
    }
}
