//! RLlib's training as a Tune trainable, as in Ray (`Algorithm` is a `tune.Trainable`): Tune's
//! trial runner calls `step` (one `train()`), asks for checkpoints at the run's cadence and at
//! its end, applies the stop criteria, takes Ctrl-C and writes the result files through
//! [`RunLogger`] (RLlib's `progress.csv`, `result.json` and TensorBoard events).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::algorithm::{Algorithm, TrainResult};
use crate::results::ResultWriter;

/// A result as Tune's metrics: RLlib's metric names, NaN (undefined) as null.
pub fn metrics(r: &TrainResult) -> Value {
    let mut m = Map::new();
    for (k, v) in &r.metrics {
        m.insert(
            (*k).to_string(),
            if v.is_finite() {
                Value::from(*v)
            } else {
                Value::Null
            },
        );
    }
    Value::Object(m)
}

impl tune::Trainable for Algorithm {
    fn step(&mut self) -> Result<Value, String> {
        let r = self.train().map_err(|e| format!("training failed: {e}"))?;
        for w in self.take_warnings() {
            crate::console::warn(format_args!("warning: {w}"));
        }
        Ok(metrics(&r))
    }

    fn save_checkpoint(&mut self, dir: &Path) -> Result<bool, String> {
        let experiment = self.experiment().map(str::to_string);
        self.save_into(dir, experiment.as_deref())
            .map_err(|e| format!("cannot write a checkpoint: {e}"))?;
        Ok(true)
    }

    fn load_checkpoint(&mut self, dir: &Path) -> Result<(), String> {
        let mut ck = crate::checkpoint::load(dir).map_err(|e| e.to_string())?;
        ck.check_env(&self.config().env)
            .map_err(|e| e.to_string())?;
        if let Some(w) = self.restore(&ck)? {
            crate::console::warn(format_args!("warning: {}: {w}", dir.display()));
        }
        Ok(())
    }
}

/// The name RLlib's trainable is registered under, for Tune trials on a cluster's nodes.
pub const TRAINABLE: &str = "rllib.Algorithm";

/// What a trial on another node is built from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RemoteTrial {
    /// The trial's whole config.
    pub config: algorithms::AlgorithmConfig,
    /// Its seed.
    pub seed: u64,
    /// The experiment's name.
    pub experiment: String,
}

/// Registers RLlib's trainable with Tune (call at start-up in every binary, as
/// [`crate::remote_runner::register`]): a search on a cluster runs each trial's `Algorithm`
/// on a node, its env runners beside it.
pub fn register() {
    tune::register_trainable(TRAINABLE, |arg: &Value| {
        let t: RemoteTrial = serde_json::from_value(arg.clone()).map_err(|e| e.to_string())?;
        let mut algo = Algorithm::new(t.config, t.seed).map_err(|e| e.to_string())?;
        algo.set_experiment(&t.experiment);
        Ok(algo)
    });
}

/// Each trial's full config (known once its algorithm is built), by trial folder: what every
/// `result.json` line carries.
#[derive(Debug, Clone, Default)]
pub struct TrialConfigs(Arc<Mutex<HashMap<PathBuf, Value>>>);

impl TrialConfigs {
    /// Records the config of the trial in `dir`.
    pub fn set(&self, dir: &Path, config: Value) {
        self.0.lock().insert(dir.to_path_buf(), config);
    }

    fn get(&self, dir: &Path) -> Value {
        self.0.lock().get(dir).cloned().unwrap_or(Value::Null)
    }
}

/// Writes a trial's results as RLlib runs do: `progress.csv`, `result.json` (nested, with the
/// trial's config) and TensorBoard scalars. Tune's fields that are not numbers (`trial_id`)
/// are left out.
#[derive(Debug)]
pub struct RunLogger {
    writer: ResultWriter,
    dir: PathBuf,
    configs: TrialConfigs,
}

impl RunLogger {
    /// Opens (or continues) the result files in `dir`.
    pub fn open(dir: &Path, configs: TrialConfigs) -> std::io::Result<Self> {
        Ok(RunLogger {
            writer: ResultWriter::open(dir)?,
            dir: dir.to_path_buf(),
            configs,
        })
    }
}

impl tune::TrialLogger for RunLogger {
    fn result(&mut self, result: &tune::Metrics) -> std::io::Result<()> {
        let pairs: Vec<(&str, f64)> = result
            .iter()
            .filter_map(|(k, v)| match v {
                Value::Number(n) => n.as_f64().map(|x| (k.as_str(), x)),
                Value::Null => Some((k.as_str(), f64::NAN)),
                _ => None,
            })
            .collect();
        self.writer
            .write_pairs(&pairs, &self.configs.get(&self.dir))
    }
}
