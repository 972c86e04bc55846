//! What an experiment leaves: each trial's folder (`params.json`, `progress.csv`,
//! `result.json`, checkpoints, `error.txt`), and the [`ResultGrid`] with every trial's last
//! result (also written as `results.csv`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::trainable::Metrics;
use crate::{Mode, TuneError};

/// Where a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TrialStatus {
    /// Not started, or stopped by an interrupt to be resumed.
    Pending,
    /// Running now.
    Running,
    /// Ran to its end, or was stopped by a scheduler or a stop criterion.
    Terminated,
    /// Failed (more often than `max_failures` allows).
    Error,
}

impl std::fmt::Display for TrialStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrialStatus::Pending => "PENDING",
            TrialStatus::Running => "RUNNING",
            TrialStatus::Terminated => "TERMINATED",
            TrialStatus::Error => "ERROR",
        })
    }
}

/// One trial as it ended (Ray's `Result`).
#[derive(Debug, Clone)]
pub struct TrialResult {
    /// The trial's id.
    pub trial_id: String,
    /// Its resolved config.
    pub config: Value,
    /// Its last result, if it reported one.
    pub metrics: Option<Metrics>,
    /// Its folder.
    pub path: PathBuf,
    /// How it ended.
    pub status: TrialStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// Its latest checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// How many results it reported.
    pub num_results: usize,
    /// Whether a scheduler or the experiment stopped it before it ended by itself.
    pub stopped_early: bool,
}

impl TrialResult {
    /// Its last value of `metric`, as a number.
    pub fn metric(&self, metric: &str) -> Option<f64> {
        self.metrics.as_ref()?.get(metric)?.as_f64()
    }
}

/// Every trial of an experiment (Ray's `ResultGrid`).
#[derive(Debug, Clone)]
pub struct ResultGrid {
    /// The trials, in the order they were made.
    pub results: Vec<TrialResult>,
    /// The experiment's folder.
    pub experiment_path: PathBuf,
    pub(crate) metric: Option<String>,
    pub(crate) mode: Option<Mode>,
    /// Whether an interrupt ended the experiment early (resume it with `Tuner::restore`).
    pub interrupted: bool,
}

impl ResultGrid {
    /// How many trials.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether there were none.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// The trials that failed.
    pub fn errors(&self) -> Vec<&TrialResult> {
        self.results
            .iter()
            .filter(|r| r.status == TrialStatus::Error)
            .collect()
    }

    /// The trial whose last `metric` is best (defaults: the experiment's metric and mode).
    pub fn get_best_result(
        &self,
        metric: Option<&str>,
        mode: Option<Mode>,
    ) -> Result<&TrialResult, TuneError> {
        let metric = metric.or(self.metric.as_deref()).ok_or_else(|| {
            TuneError::Config("get_best_result needs a metric (or TuneConfig::metric)".into())
        })?;
        let mode = mode.or(self.mode).ok_or_else(|| {
            TuneError::Config("get_best_result needs a mode (or TuneConfig::mode)".into())
        })?;
        let better = |a: f64, b: f64| match mode {
            Mode::Max => a > b,
            Mode::Min => a < b,
        };
        let mut best: Option<(&TrialResult, f64)> = None;
        for r in &self.results {
            if let Some(v) = r.metric(metric).filter(|v| !v.is_nan())
                && best.is_none_or(|(_, b)| better(v, b))
            {
                best = Some((r, v));
            }
        }
        best.map(|(r, _)| r).ok_or_else(|| {
            let reported: Vec<String> = self
                .results
                .iter()
                .filter_map(|r| r.metrics.as_ref())
                .flat_map(|m| m.keys().cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            TuneError::Config(format!(
                "no trial reported the metric {metric:?} (reported: {})",
                reported.join(", ")
            ))
        })
    }

    /// The config of the best trial (Ray's `ExperimentAnalysis.get_best_config`).
    pub fn get_best_config(&self, metric: &str, mode: Mode) -> Result<&Value, TuneError> {
        self.get_best_result(Some(metric), Some(mode))
            .map(|r| &r.config)
    }

    /// Every trial's last result as CSV rows: trial id, status, its config (flattened as
    /// `config/...`), then its metrics (Ray's `get_dataframe()`).
    pub fn write_csv(&self, path: &Path) -> std::io::Result<()> {
        let mut cols: Vec<String> = Vec::new();
        let mut rows: Vec<Vec<(String, String)>> = Vec::new();
        for r in &self.results {
            let mut row = vec![
                ("trial_id".to_string(), r.trial_id.clone()),
                ("status".to_string(), r.status.to_string()),
            ];
            flatten("config", &r.config, &mut row);
            if let Some(m) = &r.metrics {
                for (k, v) in m {
                    flatten(k, v, &mut row);
                }
            }
            for (k, _) in &row {
                if !cols.contains(k) {
                    cols.push(k.clone());
                }
            }
            rows.push(row);
        }
        let mut w = BufWriter::new(File::create(path)?);
        writeln!(w, "{}", csv_header(&cols))?;
        for row in rows {
            writeln!(w, "{}", csv_row(&cols, &row))?;
        }
        w.flush()
    }
}

/// `a/b/c` keys for nested objects, as Tune flattens results for its CSV files.
pub(crate) fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten(&format!("{prefix}/{k}"), x, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Null => out.push((prefix.to_string(), String::new())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn csv_header(cols: &[String]) -> String {
    cols.iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",")
}

/// One CSV line: `flat`'s value under each column, empty where it has none.
fn csv_row(cols: &[String], flat: &[(String, String)]) -> String {
    cols.iter()
        .map(|c| {
            flat.iter()
                .find(|(k, _)| k == c)
                .map_or(String::new(), |(_, v)| csv_field(v))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The fields of one CSV line written by [`csv_field`].
fn split_csv_line(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One trial's result files: `progress.csv` (columns fixed by the first result, as Tune's
/// CSV logger) and `result.json` (one JSON object per line). Opened for each result, so that
/// thousands of trials at once hold no files open.
#[derive(Debug)]
pub(crate) struct TrialWriter {
    dir: PathBuf,
    columns: Option<Vec<String>>,
}

impl TrialWriter {
    pub(crate) fn open(dir: &Path, config: &Value) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("params.json"),
            serde_json::to_string_pretty(config).unwrap_or_default(),
        )?;
        // A resumed trial appends under the columns it began with.
        let columns = std::fs::read_to_string(dir.join("progress.csv"))
            .ok()
            .and_then(|text| text.lines().next().map(split_csv_line));
        Ok(TrialWriter {
            dir: dir.to_path_buf(),
            columns,
        })
    }
}

impl crate::tuner::TrialLogger for TrialWriter {
    fn result(&mut self, m: &Metrics) -> std::io::Result<()> {
        let append = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .map(BufWriter::new)
        };
        let (mut csv, mut json) = (append("progress.csv")?, append("result.json")?);
        let mut flat = Vec::new();
        for (k, v) in m {
            flatten(k, v, &mut flat);
        }
        if self.columns.is_none() {
            let cols: Vec<String> = flat.iter().map(|(k, _)| k.clone()).collect();
            writeln!(csv, "{}", csv_header(&cols))?;
            self.columns = Some(cols);
        }
        let cols = self.columns.as_deref().unwrap_or_default();
        writeln!(csv, "{}", csv_row(cols, &flat))?;
        writeln!(json, "{}", serde_json::to_string(m).unwrap_or_default())?;
        csv.flush()?;
        json.flush()
    }
}
