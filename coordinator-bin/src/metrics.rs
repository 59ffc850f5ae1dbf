//! `/metrics` in the Prometheus text format (the `prometheus-client` crate).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::model::State;

/// The `builder` and `result` labels of finished builds.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// The builder.
    pub builder: String,
    /// `succeeded`, `failed` or `canceled`.
    pub result: String,
}

/// A `builder` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuilderLabel {
    /// The builder.
    pub builder: String,
}

/// A host type and which machines are counted.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    /// The host type.
    pub host_type: String,
    /// `connected`, `idle`, `busy` or `waiting` (leases waiting for a machine).
    pub state: String,
}

/// A `host_type` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostTypeLabel {
    /// The host type.
    pub host_type: String,
}

/// Seconds, from a second to a day.
fn duration_buckets() -> impl Iterator<Item = f64> {
    [
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 86400.0,
    ]
    .into_iter()
}

/// The coordinator's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    started: Counter,
    finished: Family<ResultLabel, Counter>,
    queue_wait: Family<BuilderLabel, Histogram>,
    duration: Family<BuilderLabel, Histogram>,
    pools: Family<PoolLabel, Gauge>,
    lease_failures: Family<HostTypeLabel, Counter>,
    /// Builds waiting to start.
    pub queued: Gauge,
    /// Builds running now.
    pub running: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("coordinator");
        let started = Counter::default();
        let finished = Family::<ResultLabel, Counter>::default();
        let histograms = || {
            Family::<BuilderLabel, Histogram>::new_with_constructor(|| {
                Histogram::new(duration_buckets())
            })
        };
        let queue_wait = histograms();
        let duration = histograms();
        let pools = Family::<PoolLabel, Gauge>::default();
        let lease_failures = Family::<HostTypeLabel, Counter>::default();
        let queued = Gauge::default();
        let running = Gauge::default();
        registry.register("builds_started", "Builds started", started.clone());
        registry.register(
            "builds_finished",
            "Builds finished, by builder and result",
            finished.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "Time from queueing a build to its buildlet, by builder",
            queue_wait.clone(),
        );
        registry.register(
            "build_duration_seconds",
            "Time from a build's start to its result, by builder",
            duration.clone(),
        );
        registry.register(
            "pool_machines",
            "Buildlets by host type and state, and leases waiting",
            pools.clone(),
        );
        registry.register(
            "lease_failures",
            "Leases that failed (no machine, a failed wipe), by host type",
            lease_failures.clone(),
        );
        registry.register("builds_queued", "Builds waiting to start", queued.clone());
        registry.register("builds_running", "Builds running", running.clone());
        Metrics {
            registry,
            started,
            finished,
            queue_wait,
            duration,
            pools,
            lease_failures,
            queued,
            running,
        }
    }
}

impl Metrics {
    /// Counts a started build.
    pub fn started(&self) {
        self.started.inc();
    }

    /// Counts a finished build and observes its duration.
    pub fn finished(&self, builder: &str, state: State, took: Duration) {
        self.finished
            .get_or_create(&ResultLabel {
                builder: builder.to_string(),
                result: state.as_str().to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&BuilderLabel {
                builder: builder.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Observes how long a build waited for its buildlet.
    pub fn queue_wait(&self, builder: &str, waited: Duration) {
        self.queue_wait
            .get_or_create(&BuilderLabel {
                builder: builder.to_string(),
            })
            .observe(waited.as_secs_f64());
    }

    /// Counts a failed lease.
    pub fn lease_failed(&self, host_type: &str) {
        self.lease_failures
            .get_or_create(&HostTypeLabel {
                host_type: host_type.to_string(),
            })
            .inc();
    }

    /// Sets the pool gauges from a pool's status.
    pub fn set_pools(&self, status: &dashboard_types::ReverseBuilderStatus) {
        for (ht, s) in &status.host_types {
            for (state, n) in [
                ("connected", s.connected),
                ("idle", s.idle),
                ("busy", s.busy),
                ("waiting", s.waiters),
            ] {
                self.pools
                    .get_or_create(&PoolLabel {
                        host_type: ht.clone(),
                        state: state.to_string(),
                    })
                    .set(n);
            }
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
