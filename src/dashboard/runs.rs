//! Training runs as Tune lays them out on disk: `<root>/<experiment>/<trial>/progress.csv`
//! (beside `params.json`/`params.yaml` and `checkpoint_*` folders), and Tune experiments with
//! their `experiment_state.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value, json};

/// How deep under a root a run's folder may be (`<experiment>/<trial>`, and a run folder given
/// as the root itself).
const MAX_DEPTH: usize = 3;
/// A run whose process is alive but whose results have not moved for this long counts as
/// ended (its process id may belong to another program by now).
const STALE: Duration = Duration::from_secs(600);
/// The metric a run's summary leads with, by the names RLlib has used for it.
pub const RETURN_COLUMNS: [&str; 3] = [
    "env_runners/episode_return_mean",
    "episode_return_mean",
    "episode_reward_mean",
];
const STEPS_COLUMNS: [&str; 3] = [
    "num_env_steps_sampled_lifetime",
    "env_runners/num_env_steps_sampled_lifetime",
    "timesteps_total",
];
/// Tune's experiment file.
const STATE_FILE: &str = "experiment_state.json";

/// One run (a trial folder with a `progress.csv`).
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// `<root index>/<path under the root>`: what `?run=` takes.
    pub id: String,
    /// The folder above the trial (empty when the root is the run itself).
    pub experiment: String,
    /// The trial folder's name.
    pub trial: String,
    /// The folder, as given under its root.
    pub path: String,
    /// `RUNNING` or `TERMINATED` (a Tune trial's own status when its experiment says).
    pub status: String,
    /// Rows of `progress.csv`.
    pub iterations: usize,
    /// The last row's headline metrics, by column name.
    pub last: BTreeMap<String, Value>,
    /// When `progress.csv` last changed (seconds since the Unix epoch).
    pub modified: f64,
    /// The run's folder.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// A run's `progress.csv` as columns in header order, each cell a number or `None`.
pub fn read_progress(dir: &Path) -> Option<Vec<(String, Vec<Option<f64>>)>> {
    let t = read_csv(&dir.join("progress.csv"))?;
    Some(
        t.columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let col = t
                    .rows
                    .iter()
                    .map(|r| r[j].parse::<f64>().ok().filter(|x| x.is_finite()))
                    .collect();
                (c.clone(), col)
            })
            .collect(),
    )
}

/// Every run under `roots`, newest first.
pub fn scan_runs(roots: &[PathBuf]) -> Vec<RunInfo> {
    let mut out = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let statuses = trial_statuses(root);
        out.extend(
            run_dirs(i, root)
                .into_iter()
                .filter_map(|(id, dir)| run_info(id, root, dir, &statuses)),
        );
    }
    out.sort_by(|a, b| b.modified.total_cmp(&a.modified).then(a.id.cmp(&b.id)));
    out
}

/// The folder of the run whose id is `id` (the folders are walked; no file is read).
pub(crate) fn find_run(roots: &[PathBuf], id: &str) -> Option<PathBuf> {
    let (i, root) = roots
        .iter()
        .enumerate()
        .find(|(i, _)| id.starts_with(&format!("{i}/")))?;
    run_dirs(i, root)
        .into_iter()
        .find(|(r, _)| r == id)
        .map(|(_, dir)| dir)
}

/// The run folders under `root` (those holding a `progress.csv`, at most three levels down),
/// found without reading them.
pub fn run_folders(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    walk(root, 0, &mut dirs);
    dirs
}

/// The run folders under the `i`th root, with their ids (`<i>/<path under the root>`).
fn run_dirs(i: usize, root: &Path) -> Vec<(String, PathBuf)> {
    run_folders(root)
        .into_iter()
        .map(|dir| {
            let rel = dir.strip_prefix(root).unwrap_or(&dir);
            let rel_s = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            (format!("{i}/{rel_s}"), dir)
        })
        .collect()
}

/// A run's summary from its `progress.csv` (`None` when that cannot be read).
fn run_info(
    id: String,
    root: &Path,
    dir: PathBuf,
    statuses: &BTreeMap<PathBuf, String>,
) -> Option<RunInfo> {
    let rel = dir.strip_prefix(root).unwrap_or(&dir);
    let trial = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let experiment = rel
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let table = read_csv(&dir.join("progress.csv"))?;
    let modified = modified(&dir.join("progress.csv"));
    let last_row = table.rows.last();
    let mut last = BTreeMap::new();
    if let Some(row) = last_row {
        for key in ["training_iteration", "time_total_s"]
            .into_iter()
            .chain(first_present(&table.columns, &RETURN_COLUMNS))
            .chain(first_present(&table.columns, &STEPS_COLUMNS))
        {
            if let Some(j) = table.columns.iter().position(|c| c == key) {
                last.insert(key.to_string(), cell_value(&row[j]));
            }
        }
    }
    let status = statuses.get(&dir).cloned().unwrap_or_else(|| {
        let pid = last_row.and_then(|row| {
            let j = table.columns.iter().position(|c| c == "pid")?;
            row[j].parse::<u32>().ok()
        });
        if is_live(pid, modified) {
            "RUNNING".to_string()
        } else {
            "TERMINATED".to_string()
        }
    });
    Some(RunInfo {
        id,
        experiment,
        trial,
        path: dir.display().to_string(),
        status,
        iterations: table.rows.len(),
        last,
        modified,
        dir,
    })
}

/// Folders holding a `progress.csv`, not descending into checkpoints or hidden folders.
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if dir.join("progress.csv").is_file() {
        out.push(dir.to_path_buf());
    }
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            !n.starts_with('.') && !n.starts_with("checkpoint_")
        })
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    for d in subdirs {
        walk(&d, depth + 1, out);
    }
}

fn first_present<'a>(columns: &[String], names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .copied()
        .find(|n| columns.iter().any(|c| c == n))
}

fn modified(p: &Path) -> f64 {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Whether the run's process still runs and its results moved lately.
fn is_live(pid: Option<u32>, modified: f64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let recent = now - modified < STALE.as_secs_f64();
    recent
        && pid.is_some_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists())
}

/// A CSV file: header and rows of raw cells.
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Reads a CSV with a header (quoted cells as Tune writes them); rows shorter than the
/// header, as a file being written may end, are padded with empty cells.
fn read_csv(p: &Path) -> Option<Table> {
    let text = std::fs::read_to_string(p).ok()?;
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let columns: Vec<String> = r.headers().ok()?.iter().map(str::to_string).collect();
    let mut rows: Vec<Vec<String>> = r
        .records()
        .map_while(Result::ok)
        .map(|rec| rec.iter().map(str::to_string).collect())
        .collect();
    // A line cut short by a writer in the middle of it.
    if !text.ends_with('\n') {
        rows.pop();
    }
    for r in &mut rows {
        r.resize(columns.len(), String::new());
    }
    Some(Table { columns, rows })
}

/// A cell as JSON: a number where it is one, else the text (empty is null).
fn cell_value(s: &str) -> Value {
    if s.is_empty() {
        return Value::Null;
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => json!(x),
        _ => json!(s),
    }
}

/// The run's `progress.csv` by column: numbers (null where a cell is not one).
pub(crate) fn progress(id: &str, dir: &Path) -> Result<Value, String> {
    let cols = read_progress(dir)
        .ok_or_else(|| format!("cannot read {}", dir.join("progress.csv").display()))?;
    let mut data = Map::new();
    for (c, col) in &cols {
        data.insert(c.clone(), json!(col));
    }
    Ok(json!({
        "run": id,
        "columns": cols.iter().map(|(c, _)| c).collect::<Vec<_>>(),
        "data": data,
    }))
}

/// The run's config and checkpoints.
pub(crate) fn detail(id: &str, dir: &Path) -> Value {
    let mut config = Value::Null;
    let mut config_file = Value::Null;
    for name in ["params.json", "params.yaml"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
            config = json!(text);
            config_file = json!(name);
            break;
        }
    }
    let mut checkpoints: Vec<Value> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("checkpoint_")?.parse::<u64>().ok()?;
            e.file_type().ok()?.is_dir().then(|| {
                json!({
                    "name": name,
                    "iteration": n,
                    "path": e.path().display().to_string(),
                    "modified": modified(&e.path()),
                })
            })
        })
        .collect();
    checkpoints.sort_by_key(|c| c["iteration"].as_u64());
    json!({
        "run": id,
        "path": dir.display().to_string(),
        "config_file": config_file,
        "config": config,
        "checkpoints": checkpoints,
    })
}

/// `experiment_state.json` of every experiment folder under `roots` (at most two levels down).
fn state_files(roots: &[PathBuf]) -> Vec<(usize, PathBuf)> {
    let mut out = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let mut level = vec![root.clone()];
        for _ in 0..2 {
            let mut next = Vec::new();
            for d in &level {
                if d.join(STATE_FILE).is_file() {
                    out.push((i, d.clone()));
                }
                for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir())
                        && !e.file_name().to_string_lossy().starts_with('.')
                    {
                        next.push(e.path());
                    }
                }
            }
            level = next;
        }
    }
    out.sort();
    out.dedup();
    out
}

fn read_state(dir: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join(STATE_FILE)).ok()?).ok()
}

/// Trial folders' statuses by the experiments under `root`.
fn trial_statuses(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for (_, exp) in state_files(std::slice::from_ref(&root.to_path_buf())) {
        let Some(state) = read_state(&exp) else {
            continue;
        };
        for t in state["trials"].as_array().into_iter().flatten() {
            if let (Some(path), Some(status)) = (t["path"].as_str(), t["status"].as_str()) {
                out.insert(exp.join(path), status.to_string());
            }
        }
    }
    out
}

/// Tune experiments: trials with the parameters that vary between them, their status and
/// metric, and the best trial by the experiment's metric and mode.
pub(crate) fn experiments(roots: &[PathBuf]) -> Vec<Value> {
    let runs: Vec<(String, PathBuf)> = roots
        .iter()
        .enumerate()
        .flat_map(|(i, root)| run_dirs(i, root))
        .collect();
    let mut out = Vec::new();
    for (i, dir) in state_files(roots) {
        let Some(state) = read_state(&dir) else {
            continue;
        };
        let root = &roots[i];
        let metric = state["settings"]["metric"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                // Without a metric of its own, the experiment is judged by the return.
                let any = state["trials"][0]["last_result"].as_object()?;
                first_present(&any.keys().cloned().collect::<Vec<_>>(), &RETURN_COLUMNS)
                    .map(str::to_string)
            });
        let max = state["settings"]["mode"].as_str() != Some("min");
        let trials: Vec<&Value> = state["trials"].as_array().into_iter().flatten().collect();
        let flat: Vec<BTreeMap<String, Value>> = trials
            .iter()
            .map(|t| {
                let mut m = BTreeMap::new();
                flatten("", &t["config"], &mut m);
                m
            })
            .collect();
        // Parameters whose values differ between trials (all of them for a single trial).
        let mut varied: Vec<String> = flat
            .iter()
            .flat_map(|m| m.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| {
                let first = flat[0].get(k);
                flat.len() > 1 && flat.iter().any(|m| m.get(k) != first)
            })
            .collect();
        // Trials draw their own seeds: show the seed only when it is all that varies.
        if varied.iter().any(|k| k != "seed") {
            varied.retain(|k| k != "seed");
        }
        let mut best: Option<(usize, f64)> = None;
        let mut rows = Vec::new();
        for (j, t) in trials.iter().enumerate() {
            let value = metric.as_deref().and_then(|m| t["last_result"][m].as_f64());
            if let Some(v) = value
                && best.is_none_or(|(_, b)| if max { v > b } else { v < b })
            {
                best = Some((j, v));
            }
            let trial_dir = t["path"].as_str().map(|p| dir.join(p));
            let run_id = trial_dir
                .as_ref()
                .and_then(|d| runs.iter().find(|(_, r)| r == d))
                .map(|(id, _)| id.clone());
            let params: BTreeMap<&str, &Value> = varied
                .iter()
                .filter_map(|k| flat[j].get(k).map(|v| (k.as_str(), v)))
                .collect();
            rows.push(json!({
                "trial_id": t["trial_id"],
                "status": t["status"],
                "params": params,
                "metric": value,
                "iterations": t["num_results"],
                "time_total_s": t["time_total_s"],
                "error": t["error"],
                "run": run_id,
            }));
        }
        let rel = dir.strip_prefix(root).unwrap_or(&dir);
        out.push(json!({
            "name": dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            "path": dir.display().to_string(),
            "id": format!("{i}/{}", rel.display()),
            "metric": metric,
            "mode": if max { "max" } else { "min" },
            "finished": state["finished"],
            "varied": varied,
            "trials": rows,
            "best_trial": best.map(|(j, _)| trials[j]["trial_id"].clone()),
        }));
    }
    out
}

/// `{"a": {"b": 1}}` as `a/b = 1`, as Tune names nested parameters.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}/{k}")
                };
                flatten(&key, x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_quote_and_pad() {
        let p = std::env::temp_dir().join(format!("ray-dash-csv-{}", std::process::id()));
        std::fs::write(&p, "a,b,c\n1,\"x,\"\"y\"\"\",3\n4\n5,6").unwrap();
        let t = read_csv(&p).unwrap();
        assert_eq!(t.columns, vec!["a", "b", "c"]);
        assert_eq!(t.rows[0], vec!["1", "x,\"y\"", "3"]);
        // A short row is padded; a last line without its newline is being written: left out.
        assert_eq!(t.rows[1], vec!["4", "", ""]);
        assert_eq!(t.rows.len(), 2);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_run_is_found_and_read() {
        let root = std::env::temp_dir().join(format!("ray-dash-runs-{}", std::process::id()));
        let trial = root.join("exp").join("PPO_CartPole-v1_x");
        std::fs::create_dir_all(trial.join("checkpoint_000002")).unwrap();
        std::fs::write(
            trial.join("progress.csv"),
            "training_iteration,env_runners/episode_return_mean,num_env_steps_sampled_lifetime,time_total_s,pid\n\
             1,20.5,4000,0.1,4000000000\n2,31.25,8000,0.2,4000000000\n3,4",
        )
        .unwrap();
        std::fs::write(trial.join("params.json"), "{\"lr\": 0.001}").unwrap();
        let runs = scan_runs(std::slice::from_ref(&root));
        assert_eq!(runs.len(), 1);
        let r = &runs[0];
        assert_eq!(r.id, "0/exp/PPO_CartPole-v1_x");
        assert_eq!(
            (r.experiment.as_str(), r.trial.as_str()),
            ("exp", "PPO_CartPole-v1_x")
        );
        // The unfinished last line is left out; no process has the run's pid.
        assert_eq!(r.iterations, 2);
        assert_eq!(r.status, "TERMINATED");
        assert_eq!(r.last["env_runners/episode_return_mean"], json!(31.25));
        assert_eq!(r.last["num_env_steps_sampled_lifetime"], json!(8000.0));
        let p = progress(&r.id, &r.dir).unwrap();
        assert_eq!(p["data"]["training_iteration"], json!([1.0, 2.0]));
        assert_eq!(
            find_run(std::slice::from_ref(&root), &r.id),
            Some(r.dir.clone())
        );
        assert_eq!(find_run(std::slice::from_ref(&root), "0/exp"), None);
        assert_eq!(
            find_run(std::slice::from_ref(&root), "1/exp/PPO_CartPole-v1_x"),
            None
        );
        let d = detail(&r.id, &r.dir);
        assert_eq!(d["config_file"], json!("params.json"));
        assert_eq!(d["checkpoints"][0]["iteration"], json!(2));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn experiments_show_varied_parameters_and_the_best_trial() {
        let root = std::env::temp_dir().join(format!("ray-dash-tune-{}", std::process::id()));
        let exp = root.join("search");
        for t in ["t0", "t1"] {
            std::fs::create_dir_all(exp.join(t)).unwrap();
            std::fs::write(exp.join(t).join("progress.csv"), "training_iteration\n1\n").unwrap();
        }
        let state = json!({
            "settings": {"metric": "score", "mode": "max"},
            "finished": true,
            "trials": [
                {"trial_id": "a", "status": "TERMINATED", "path": "t0",
                 "config": {"lr": 0.1, "model": {"h": 32}}, "last_result": {"score": 3.0}},
                {"trial_id": "b", "status": "ERROR", "path": "t1",
                 "config": {"lr": 0.2, "model": {"h": 32}}, "last_result": {"score": 5.0}},
            ]
        });
        std::fs::write(exp.join(STATE_FILE), state.to_string()).unwrap();
        let e = experiments(std::slice::from_ref(&root));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0]["varied"], json!(["lr"]));
        assert_eq!(e[0]["best_trial"], json!("b"));
        assert_eq!(e[0]["trials"][0]["params"], json!({"lr": 0.1}));
        assert_eq!(e[0]["trials"][1]["run"], json!("0/search/t1"));
        // The runs take their status from the experiment.
        let runs = scan_runs(std::slice::from_ref(&root));
        let t1 = runs.iter().find(|r| r.trial == "t1").unwrap();
        assert_eq!(t1.status, "ERROR");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
