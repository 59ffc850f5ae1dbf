//! The coordinator's pool: local buildlets and reverse buildlets behind one
//! [`BuildletPool`], chosen by host type.

use std::collections::BTreeSet;

use async_trait::async_trait;
use dashboard_types::ReverseBuilderStatus;
use pool::providers::local::LocalPool;
use pool::providers::reverse::ReversePool;
use pool::{BuildletPool, Lease, LeaseRequest};

/// Local and reverse buildlets, by host type.
#[derive(Debug)]
pub struct Pools {
    /// In-process buildlets.
    pub local: LocalPool,
    /// Machines that dial in, and the host types they serve.
    pub reverse: Option<(ReversePool, BTreeSet<String>)>,
}

#[async_trait]
impl BuildletPool for Pools {
    async fn lease(&self, req: LeaseRequest) -> pool::Result<Lease> {
        match &self.reverse {
            Some((pool, types)) if types.contains(&req.item.host_type) => pool.lease(req).await,
            _ => self.local.lease(req).await,
        }
    }

    fn status(&self) -> ReverseBuilderStatus {
        let mut all = self.local.status();
        if let Some((pool, _)) = &self.reverse {
            all.host_types.extend(pool.status().host_types);
        }
        all
    }
}
