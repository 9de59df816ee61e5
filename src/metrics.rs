//! Process metrics for `GET /metrics` (Prometheus text format 0.0.4): counters and fixed-bucket
//! histograms on relaxed atomics, written by hand. Recording is a branch and an atomic add, and
//! nothing at all when the deployment has no metrics listener. Other parts add their own
//! counters with [`Metrics::counter`] at start-up.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::vocabulary::Code;

/// The key API's endpoints, as the `endpoint` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Verify,
    Authorize,
}

impl Endpoint {
    const ALL: [Endpoint; 2] = [Endpoint::Verify, Endpoint::Authorize];

    fn label(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Authorize => "authorize",
        }
    }
}

/// Upper bounds of the latency buckets, in microseconds (100 µs to 2.5 s, then +Inf).
const BUCKETS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000,
];

/// A cumulative-on-render histogram: one atomic per bucket, a sum and a count.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe_us(&self, micros: u64) {
        let slot = BUCKETS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (slot, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let bound = BUCKETS_US
                .get(slot)
                .map_or_else(|| "+Inf".to_owned(), |&us| format!("{}", us as f64 / 1e6));
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// A counter another part registered, with its help line.
pub struct Counter {
    value: AtomicU64,
    enabled: bool,
}

impl Counter {
    pub fn add(&self, n: u64) {
        if self.enabled {
            self.value.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

pub struct Metrics {
    enabled: bool,
    verifications: [[AtomicU64; Code::ALL.len()]; Endpoint::ALL.len()],
    latency: [Histogram; Endpoint::ALL.len()],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    registered: Mutex<Vec<(&'static str, &'static str, Arc<Counter>)>>,
}

impl Metrics {
    /// `enabled: false` records nothing (no metrics listener configured).
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            verifications: Default::default(),
            latency: Default::default(),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            registered: Mutex::new(Vec::new()),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// When a request started, if anyone will read its latency.
    pub fn start(&self) -> Option<Instant> {
        self.enabled.then(Instant::now)
    }

    /// One key-API answer: its code and, when [`start`](Self::start) gave one, its latency.
    pub fn verified(&self, endpoint: Endpoint, code: Code, started: Option<Instant>) {
        if !self.enabled {
            return;
        }
        let endpoint = endpoint as usize;
        let code = Code::ALL.iter().position(|c| *c == code).unwrap_or(0);
        self.verifications[endpoint][code].fetch_add(1, Ordering::Relaxed);
        if let Some(started) = started {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.latency[endpoint].observe_us(micros);
        }
    }

    pub fn cache_hit(&self, hit: bool) {
        if self.enabled {
            let counter = if hit {
                &self.cache_hits
            } else {
                &self.cache_misses
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A counter of its own for another part (`name` in the `gatehouse_` namespace, ending in
    /// `_total`), rendered with the others.
    pub fn counter(&self, name: &'static str, help: &'static str) -> Arc<Counter> {
        let counter = Arc::new(Counter {
            value: AtomicU64::new(0),
            enabled: self.enabled,
        });
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, help, Arc::clone(&counter)));
        counter
    }

    /// Everything recorded in memory, in the text format.
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "gatehouse_verifications_total",
            "counter",
            "Key API answers by endpoint and code.",
        );
        for endpoint in Endpoint::ALL {
            for (slot, code) in Code::ALL.iter().enumerate() {
                let value = self.verifications[endpoint as usize][slot].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "gatehouse_verifications_total{{endpoint=\"{}\",code=\"{}\"}} {value}",
                    endpoint.label(),
                    code.as_str()
                );
            }
        }
        family(
            out,
            "gatehouse_verification_duration_seconds",
            "histogram",
            "Time from the key API handler's start to its answer.",
        );
        for endpoint in Endpoint::ALL {
            self.latency[endpoint as usize].render(
                out,
                "gatehouse_verification_duration_seconds",
                &format!("endpoint=\"{}\"", endpoint.label()),
            );
        }
        for (name, help, value) in [
            (
                "gatehouse_key_cache_hits_total",
                "Verifications answered from the key cache.",
                &self.cache_hits,
            ),
            (
                "gatehouse_key_cache_misses_total",
                "Verifications of well-formed keys that were not in the cache.",
                &self.cache_misses,
            ),
        ] {
            gauge_or_counter(out, name, "counter", help, value.load(Ordering::Relaxed));
        }
        for (name, help, counter) in self
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            gauge_or_counter(out, name, "counter", help, counter.get());
        }
    }
}

/// The `# HELP` and `# TYPE` lines of a family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A family of one unlabelled sample.
pub fn gauge_or_counter(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets_in_seconds() {
        let histogram = Histogram::default();
        histogram.observe_us(90);
        histogram.observe_us(300);
        histogram.observe_us(9_000_000);
        let mut out = String::new();
        histogram.render(&mut out, "h", "endpoint=\"verify\"");
        assert!(out.contains("h_bucket{endpoint=\"verify\",le=\"0.0001\"} 1\n"));
        assert!(out.contains("h_bucket{endpoint=\"verify\",le=\"0.0005\"} 2\n"));
        assert!(out.contains("h_bucket{endpoint=\"verify\",le=\"2.5\"} 2\n"));
        assert!(out.contains("h_bucket{endpoint=\"verify\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("h_count{endpoint=\"verify\"} 3\n"));
        assert!(out.contains("h_sum{endpoint=\"verify\"} 9.00039\n"));
    }

    #[test]
    fn disabled_metrics_record_nothing() {
        let metrics = Metrics::new(false);
        metrics.verified(Endpoint::Verify, Code::Valid, metrics.start());
        let drops = metrics.counter("gatehouse_drops_total", "Drops.");
        drops.add(3);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains("gatehouse_verifications_total{endpoint=\"verify\",code=\"VALID\"} 0\n")
        );
        assert!(out.contains("gatehouse_drops_total 0\n"));
    }
}
