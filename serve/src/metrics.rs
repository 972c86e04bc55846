//! Per-deployment counters and the Prometheus text at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What one deployment has done.
#[derive(Debug)]
pub(crate) struct DeploymentStats {
    /// Requests answered, by status code (100-599).
    codes: [AtomicU64; 500],
    /// Latency histogram: counts per bucket (not cumulative), the last one past every bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    /// Requests waiting for a replica.
    pub queued: AtomicUsize,
    /// Requests held by replicas (running or in their mailboxes).
    pub ongoing: AtomicUsize,
    /// Live replicas.
    pub replicas: AtomicUsize,
    /// Replica restarts after a panic, over the deployment's life.
    pub restarts: AtomicU64,
    /// Calls made to replicas, and the requests they carried.
    pub batches: AtomicU64,
    pub batched_requests: AtomicU64,
}

impl Default for DeploymentStats {
    fn default() -> Self {
        DeploymentStats {
            codes: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: Default::default(),
            latency_sum_us: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            ongoing: AtomicUsize::new(0),
            replicas: AtomicUsize::new(0),
            restarts: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            batched_requests: AtomicU64::new(0),
        }
    }
}

impl DeploymentStats {
    /// One answered request.
    pub(crate) fn record(&self, status: u16, latency: Duration) {
        if let Some(c) = self.codes.get(usize::from(status).wrapping_sub(100)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let s = latency.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// The latency below which a fraction `q` of the answered requests fell, in milliseconds,
    /// interpolated within its histogram bucket (as Prometheus' `histogram_quantile`).
    pub(crate) fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, n) in counts.iter().enumerate() {
            if (below + n) as f64 >= rank && *n > 0 {
                let lo = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
                // The last bucket has no upper bound: report its lower one.
                let Some(hi) = BUCKETS.get(i).copied() else {
                    return Some(lo * 1e3);
                };
                let within = (rank - below as f64) / *n as f64;
                return Some((lo + (hi - lo) * within) * 1e3);
            }
            below += n;
        }
        None
    }

    /// The mean latency in milliseconds.
    pub(crate) fn latency_mean_ms(&self) -> Option<f64> {
        let n: u64 = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        (n > 0).then(|| self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e3 / n as f64)
    }

    /// Requests answered so far, by status code.
    pub(crate) fn codes(&self) -> BTreeMap<u16, u64> {
        self.codes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then(|| (i as u16 + 100, n))
            })
            .collect()
    }
}

/// A metric read from a deployment's statistics: name, kind, help, reader.
type Gauge = (
    &'static str,
    &'static str,
    &'static str,
    fn(&DeploymentStats) -> u64,
);

/// The Prometheus exposition of every deployment's statistics.
pub(crate) fn render(deployments: &[(String, Option<String>, &DeploymentStats)]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, body: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        body(&mut out);
    };
    family(
        "serve_requests_total",
        "counter",
        "Requests answered, by deployment and HTTP status code.",
        &mut |o| {
            for (d, _, s) in deployments {
                for (code, n) in s.codes() {
                    let _ = writeln!(
                        o,
                        "serve_requests_total{{deployment=\"{d}\",code=\"{code}\"}} {n}"
                    );
                }
            }
        },
    );
    family(
        "serve_request_latency_seconds",
        "histogram",
        "Time from a request's arrival at its deployment to its answer.",
        &mut |o| {
            for (d, _, s) in deployments {
                let mut cum = 0;
                for (i, b) in BUCKETS.iter().enumerate() {
                    cum += s.buckets[i].load(Ordering::Relaxed);
                    let _ = writeln!(
                        o,
                        "serve_request_latency_seconds_bucket{{deployment=\"{d}\",le=\"{b}\"}} {cum}"
                    );
                }
                cum += s.buckets[BUCKETS.len()].load(Ordering::Relaxed);
                let _ = writeln!(
                    o,
                    "serve_request_latency_seconds_bucket{{deployment=\"{d}\",le=\"+Inf\"}} {cum}"
                );
                let sum = s.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
                let _ = writeln!(
                    o,
                    "serve_request_latency_seconds_sum{{deployment=\"{d}\"}} {sum}"
                );
                let _ = writeln!(
                    o,
                    "serve_request_latency_seconds_count{{deployment=\"{d}\"}} {cum}"
                );
            }
        },
    );
    family(
        "serve_deployment_info",
        "gauge",
        "Each deployment's version label (\"\" when none was given).",
        &mut |o| {
            for (d, v, _) in deployments {
                let v = v.as_deref().unwrap_or("").replace(['"', '\\', '\n'], "_");
                let _ = writeln!(
                    o,
                    "serve_deployment_info{{deployment=\"{d}\",version=\"{v}\"}} 1"
                );
            }
        },
    );
    let gauges: [Gauge; 6] = [
        (
            "serve_queue_length",
            "gauge",
            "Requests waiting for a replica.",
            |s| s.queued.load(Ordering::Relaxed) as u64,
        ),
        (
            "serve_ongoing_requests",
            "gauge",
            "Requests held by replicas.",
            |s| s.ongoing.load(Ordering::Relaxed) as u64,
        ),
        ("serve_replicas", "gauge", "Live replicas.", |s| {
            s.replicas.load(Ordering::Relaxed) as u64
        }),
        (
            "serve_replica_restarts_total",
            "counter",
            "Replicas rebuilt after a panic.",
            |s| s.restarts.load(Ordering::Relaxed),
        ),
        (
            "serve_batches_total",
            "counter",
            "Calls made to replicas (one per batch).",
            |s| s.batches.load(Ordering::Relaxed),
        ),
        (
            "serve_batched_requests_total",
            "counter",
            "Requests those calls carried (divided by serve_batches_total: the mean batch size).",
            |s| s.batched_requests.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, get) in gauges {
        family(name, kind, help, &mut |o| {
            for (d, _, s) in deployments {
                let _ = writeln!(o, "{name}{{deployment=\"{d}\"}} {}", get(s));
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let s = DeploymentStats::default();
        assert_eq!(s.latency_quantile_ms(0.5), None);
        // 100 requests between 1 and 2.5 ms.
        for _ in 0..100 {
            s.record(200, Duration::from_micros(2000));
        }
        let p50 = s.latency_quantile_ms(0.5).unwrap();
        assert!((p50 - 1.75).abs() < 1e-9, "{p50}");
        assert!((s.latency_mean_ms().unwrap() - 2.0).abs() < 1e-9);
        s.record(500, Duration::from_secs(20));
        assert_eq!(s.latency_quantile_ms(1.0), Some(10_000.0));
    }
}
