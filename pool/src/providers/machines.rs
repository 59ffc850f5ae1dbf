//! Bookkeeping shared by providers: per-host-type machines and quota, handing out the
//! machine idle longest, and the common lease procedure.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use buildlet_proto::BuildletClient;
use dashboard_types::{ReverseBuilder, ReverseBuilderStatus};
use tokio::time::Instant;

use crate::queue::Quota;
use crate::{Error, Lease, LeaseRequest, Release, Result};

/// One machine of a pool.
pub(crate) struct Machine {
    pub(crate) name: String,
    pub(crate) host_type: String,
    pub(crate) version: String,
    pub(crate) client: Arc<dyn BuildletClient>,
    pub(crate) connected: Instant,
    pub(crate) busy: bool,
    /// Busy only for a health check, not a lease.
    pub(crate) checking: bool,
    pub(crate) since: Instant,
    pub(crate) id: u64,
    /// `v2` or `mux` for a reverse machine; empty for a local one.
    pub(crate) revdial: &'static str,
}

/// Machines and quotas of a pool, keyed by host type.
#[derive(Default)]
pub(crate) struct Machines {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    machines: Vec<Machine>,
    quotas: BTreeMap<String, Quota>,
    expect: BTreeMap<String, i64>,
    next_id: u64,
}

impl Machines {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Declares a host type served (with its expected machine count), so leases for it wait
    /// instead of failing while no machine is connected.
    pub(crate) fn serve_type(&self, host_type: &str, expect: i64) {
        let mut s = self.lock();
        s.quotas
            .entry(host_type.to_owned())
            .or_insert_with(|| Quota::new(0));
        s.expect.insert(host_type.to_owned(), expect);
    }

    /// Adds an idle machine; returns its id.
    pub(crate) fn add(
        &self,
        name: &str,
        host_type: &str,
        version: &str,
        revdial: &'static str,
        client: Arc<dyn BuildletClient>,
    ) -> u64 {
        let mut s = self.lock();
        let id = s.next_id;
        s.next_id += 1;
        let now = Instant::now();
        s.machines.push(Machine {
            name: name.to_owned(),
            host_type: host_type.to_owned(),
            version: version.to_owned(),
            client,
            connected: now,
            busy: false,
            checking: false,
            since: now,
            id,
            revdial,
        });
        s.quotas
            .entry(host_type.to_owned())
            .or_insert_with(|| Quota::new(0));
        recompute(&mut s, host_type);
        id
    }

    /// Removes a machine (disconnected, failed a check, or destroyed).
    pub(crate) fn remove(&self, id: u64) -> Option<Arc<dyn BuildletClient>> {
        let mut s = self.lock();
        let i = s.machines.iter().position(|m| m.id == id)?;
        let m = s.machines.remove(i);
        recompute(&mut s, &m.host_type);
        Some(m.client)
    }

    /// Marks an idle machine busy for a health check; returns its client.
    pub(crate) fn begin_check(&self, id: u64) -> Option<Arc<dyn BuildletClient>> {
        let mut s = self.lock();
        let m = s.machines.iter_mut().find(|m| m.id == id && !m.busy)?;
        m.busy = true;
        m.checking = true;
        Some(m.client.clone())
    }

    /// Ends a health check or a lease: the machine is idle again.
    pub(crate) fn set_idle(&self, id: u64) {
        let mut s = self.lock();
        let Some(m) = s.machines.iter_mut().find(|m| m.id == id) else {
            return;
        };
        m.busy = false;
        m.checking = false;
        m.since = Instant::now();
        let ht = m.host_type.clone();
        recompute(&mut s, &ht);
    }

    /// Whether the machine is still in the pool.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.lock().machines.iter().any(|m| m.id == id)
    }

    fn quota(&self, host_type: &str) -> Option<Quota> {
        self.lock().quotas.get(host_type).cloned()
    }

    /// Takes the machine of `host_type` that has been idle longest.
    fn take_idle(&self, host_type: &str) -> Option<(u64, String, Arc<dyn BuildletClient>)> {
        let mut s = self.lock();
        let m = s
            .machines
            .iter_mut()
            .filter(|m| m.host_type == host_type && !m.busy)
            .min_by_key(|m| m.since)?;
        m.busy = true;
        m.since = Instant::now();
        let out = (m.id, m.name.clone(), m.client.clone());
        recompute(&mut s, host_type);
        Some(out)
    }

    /// The status in the dashboard's shape.
    pub(crate) fn status(&self) -> ReverseBuilderStatus {
        let s = self.lock();
        let mut st = ReverseBuilderStatus::default();
        let now = Instant::now();
        for (ht, q) in &s.quotas {
            let h = st.host(ht);
            h.expect = s.expect.get(ht).copied().unwrap_or(0);
            h.waiters = q.stats().waiting.len() as i64;
        }
        for m in &s.machines {
            let h = st.host(&m.host_type);
            h.connected += 1;
            let leased = m.busy && !m.checking;
            if leased {
                h.busy += 1;
            } else {
                h.idle += 1;
            }
            let since = now.duration_since(m.since).as_secs_f64();
            h.machines.insert(
                m.name.clone(),
                ReverseBuilder {
                    name: m.name.clone(),
                    host_type: m.host_type.clone(),
                    connected_sec: now.duration_since(m.connected).as_secs_f64(),
                    idle_sec: if leased { 0.0 } else { since },
                    busy_sec: if leased { since } else { 0.0 },
                    version: m.version.clone(),
                    busy: leased,
                    revdial: m.revdial.to_string(),
                },
            );
        }
        st
    }
}

/// Quota of a host type = machines connected; used = machines busy (leases and checks).
fn recompute(s: &mut State, host_type: &str) {
    let (total, busy) = s
        .machines
        .iter()
        .filter(|m| m.host_type == host_type)
        .fold((0, 0), |(t, b), m| (t + 1, b + u64::from(m.busy)));
    if let Some(q) = s.quotas.get(host_type) {
        q.set_used_and_limit(busy, total);
    }
}

/// The lease procedure every provider shares: queue for the host type's quota (reporting
/// the position), take the machine idle longest, wipe its work dir, hand it out.
pub(crate) async fn lease(machines: &Arc<Machines>, req: LeaseRequest) -> Result<Lease> {
    let host_type = req.item.host_type.clone();
    loop {
        let quota = machines
            .quota(&host_type)
            .ok_or_else(|| Error::UnknownHostType(host_type.clone()))?;
        let grant = quota
            .enqueue(1, req.item.clone())
            .granted_reporting(req.progress.as_ref())
            .await;
        // The quota mirrors machine states; the machine itself is the real reservation.
        grant.forget();
        let Some((id, name, client)) = machines.take_idle(&host_type) else {
            // A health check holds the machine for a moment; try again.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if let Err(source) = client.remove_all(vec![".".into()]).await {
            machines.remove(id);
            return Err(Error::Prepare { name, source });
        }
        let m = machines.clone();
        return Ok(Lease::new(name, host_type, client, move |how| match how {
            Release::Return if m.contains(id) => m.set_idle(id),
            _ => {
                if let Some(c) = m.remove(id) {
                    tokio::spawn(async move { c.close().await });
                }
            }
        }));
    }
}
