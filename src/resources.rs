//! Resources: named quantities (`CPU`, `GPU`, `memory`, custom ones) that tasks and actors
//! request and the scheduler hands out. Amounts are kept in fixed point (1/10,000 of a unit,
//! as Ray does) so that fractional requests add and subtract without drift.

use std::collections::BTreeMap;
use std::fmt;

use crate::RayError;

/// The name of the CPU resource.
pub const CPU: &str = "CPU";
/// The name of the GPU resource.
pub const GPU: &str = "GPU";
/// The name of the memory resource, in bytes.
pub const MEMORY: &str = "memory";

const SCALE: f64 = 10_000.0;

/// A set of named resource amounts, such as `{CPU: 2, GPU: 0.5}`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Resources {
    amounts: BTreeMap<String, u64>,
}

impl Resources {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one amount; zero removes it. Errors on a negative or non-finite amount.
    pub fn set(&mut self, name: &str, amount: f64) -> Result<(), RayError> {
        if !amount.is_finite() || amount < 0.0 {
            return Err(RayError::InvalidResources(format!(
                "{name} = {amount}: amounts must be finite and >= 0"
            )));
        }
        let units = (amount * SCALE).round() as u64;
        if units == 0 {
            self.amounts.remove(name);
        } else {
            self.amounts.insert(name.to_string(), units);
        }
        Ok(())
    }

    /// The amount of one resource (0 when absent).
    pub fn get(&self, name: &str) -> f64 {
        self.amounts.get(name).map_or(0.0, |&u| u as f64 / SCALE)
    }

    /// Each resource and its amount, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.amounts
            .iter()
            .map(|(k, &u)| (k.as_str(), u as f64 / SCALE))
    }

    /// Whether nothing is requested.
    pub fn is_empty(&self) -> bool {
        self.amounts.is_empty()
    }

    /// Whether `request` fits in these resources.
    pub fn contains(&self, request: &Resources) -> bool {
        request
            .amounts
            .iter()
            .all(|(k, &need)| self.amounts.get(k).copied().unwrap_or(0) >= need)
    }

    /// Takes `request` out of these resources; the caller checked `contains` first.
    pub(crate) fn subtract(&mut self, request: &Resources) {
        for (k, &need) in &request.amounts {
            if let Some(have) = self.amounts.get_mut(k) {
                *have = have.saturating_sub(need);
            }
        }
    }

    /// Gives `request` back.
    pub(crate) fn add(&mut self, request: &Resources) {
        for (k, &need) in &request.amounts {
            *self.amounts.entry(k.clone()).or_insert(0) += need;
        }
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}: {v}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Logical CPUs this process may use.
pub fn detect_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A cgroup's memory limit and use (v2, else v1), where the process runs in a limited one.
fn cgroup_memory() -> Option<(u64, u64)> {
    let read = |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let v2 = read("/sys/fs/cgroup/memory.max").zip(read("/sys/fs/cgroup/memory.current"));
    v2.or_else(|| {
        read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
            .zip(read("/sys/fs/cgroup/memory/memory.usage_in_bytes"))
    })
    // v1 reports "no limit" as a huge number.
    .filter(|&(limit, _)| limit < 1 << 60)
}

/// Physical memory in bytes, from `/proc/meminfo`, capped by the cgroup's limit where there
/// is one (a container); None where neither can be read.
pub fn detect_memory() -> Option<u64> {
    let total = meminfo("MemTotal:");
    match (total, cgroup_memory()) {
        (Some(t), Some((limit, _))) => Some(t.min(limit)),
        (t, c) => t.or(c.map(|(limit, _)| limit)),
    }
}

/// Memory a new allocation could still get: `MemAvailable`, capped by what the cgroup's
/// limit leaves; None where neither can be read.
pub fn available_memory() -> Option<u64> {
    let avail = meminfo("MemAvailable:");
    let cg = cgroup_memory().map(|(limit, used)| limit.saturating_sub(used));
    match (avail, cg) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// NVIDIA GPUs the driver exposes (`/proc/driver/nvidia/gpus/*`), 0 where there is none.
pub fn detect_gpus() -> usize {
    std::fs::read_dir("/proc/driver/nvidia/gpus").map_or(0, |d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_amounts_do_not_drift() {
        let mut total = Resources::new();
        total.set(CPU, 1.0).unwrap();
        let mut tenth = Resources::new();
        tenth.set(CPU, 0.1).unwrap();
        for _ in 0..10 {
            assert!(total.contains(&tenth));
            total.subtract(&tenth);
        }
        assert_eq!(total.get(CPU), 0.0);
        assert!(!total.contains(&tenth));
    }

    #[test]
    fn negative_and_nan_amounts_are_rejected() {
        let mut r = Resources::new();
        assert!(r.set(CPU, -1.0).is_err());
        assert!(r.set(GPU, f64::NAN).is_err());
        assert!(r.set("custom", f64::INFINITY).is_err());
    }

    #[test]
    fn memory_is_detected_where_proc_exists() {
        if std::path::Path::new("/proc/meminfo").exists() {
            let (total, avail) = (detect_memory().unwrap(), available_memory().unwrap());
            assert!(avail <= total && avail > 0, "{avail} of {total}");
        }
    }

    #[test]
    fn display_lists_every_resource() {
        let mut r = Resources::new();
        r.set(CPU, 2.0).unwrap();
        r.set(GPU, 0.5).unwrap();
        assert_eq!(r.to_string(), "{CPU: 2, GPU: 0.5}");
    }
}
