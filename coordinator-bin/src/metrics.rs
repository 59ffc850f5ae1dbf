//! `/metrics` in the Prometheus text format (the `prometheus-client` crate).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::db::State;

/// The `result` label of finished builds.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `succeeded`, `failed` or `canceled`.
    pub result: String,
}

/// The coordinator's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    started: Counter,
    finished: Family<ResultLabel, Counter>,
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
        let queued = Gauge::default();
        let running = Gauge::default();
        registry.register("builds_started", "Builds started", started.clone());
        registry.register(
            "builds_finished",
            "Builds finished, by result",
            finished.clone(),
        );
        registry.register("builds_queued", "Builds waiting to start", queued.clone());
        registry.register("builds_running", "Builds running", running.clone());
        Metrics {
            registry,
            started,
            finished,
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

    /// Counts a finished build.
    pub fn finished(&self, state: State) {
        self.finished
            .get_or_create(&ResultLabel {
                result: state.as_str().to_string(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
