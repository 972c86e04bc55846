//! Offline RL's data: env runners (and `rllib evaluate --output`) record every finished
//! episode as Parquet through the `data` library (RLlib's `output`), and BC and MARWIL read
//! recorded episodes back as train batches (RLlib's `input`).
//!
//! One row per env step, columns:
//! `eps_id` (u64, unique per episode), `t` (u32, step in the episode), `obs` (the raw,
//! unfiltered observation, `FixedSizeList<f32>`), `actions` (a discrete action as `Int64`;
//! a `Box` action as the module produced it, before it is mapped to the env's bounds, as
//! `FixedSizeList<f32>`), `rewards` (f32), `terminateds`, `truncateds` (bool, true on an
//! episode's last row), `action_logp` (f32; 0 for greedy actions). A file holds whole
//! episodes, rows in step order; files are written atomically, named
//! `episodes-<run>-r<runner>-<n>.parquet`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use algorithms::marwil::OfflineBatch;
use algorithms::{Fragment, SampleBatch};
use data::arrow_array::cast::AsArray;
use data::arrow_array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, GenericListArray, Int64Array,
    OffsetSizeTrait, RecordBatch, UInt32Array, UInt64Array,
};
use data::arrow_schema::{DataType, Field, Schema};

/// Finished rows a recorder gathers before it writes a file.
const ROWS_PER_FILE: usize = 50_000;

/// Columns of recorded steps.
#[derive(Debug, Default, Clone)]
struct Steps {
    eps_id: Vec<u64>,
    t: Vec<u32>,
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    logp: Vec<f32>,
}

impl Steps {
    fn len(&self) -> usize {
        self.rewards.len()
    }

    fn clear(&mut self) {
        self.t.clear();
        self.obs.clear();
        self.actions.clear();
        self.rewards.clear();
        self.terminated.clear();
        self.truncated.clear();
        self.logp.clear();
    }

    /// Appends episode `o` as episode `id`, and empties `o` (keeping its capacity).
    fn take_episode(&mut self, o: &mut Steps, id: u64) {
        self.eps_id.extend(std::iter::repeat_n(id, o.rewards.len()));
        self.t.append(&mut o.t);
        self.obs.append(&mut o.obs);
        self.actions.append(&mut o.actions);
        self.rewards.append(&mut o.rewards);
        self.terminated.append(&mut o.terminated);
        self.truncated.append(&mut o.truncated);
        self.logp.append(&mut o.logp);
    }
}

/// What the writer thread is sent: a sample call's rows (env by env, as in a
/// [`SampleBatch`]) and where its episode pieces are, or one step of one env.
enum Record {
    Batch {
        obs: Vec<f32>,
        actions: Vec<f32>,
        rewards: Vec<f32>,
        logp: Vec<f32>,
        fragments: Vec<Fragment>,
    },
    Step {
        env: usize,
        obs: Vec<f32>,
        action: Vec<f32>,
        logp: f32,
        reward: f32,
        terminated: bool,
        truncated: bool,
    },
}

/// Gathers rows into episodes per env and whole episodes into files.
struct Assembler {
    dir: PathBuf,
    prefix: String,
    obs_dim: usize,
    action_dim: usize,
    discrete: bool,
    /// Each env's episode in progress.
    running: Vec<Steps>,
    /// Finished episodes not yet written.
    done: Steps,
    next_episode: u64,
    /// The high bits of every episode id of this recorder.
    id_base: u64,
    files: u64,
}

impl Assembler {
    /// One step of env `env`.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        env: usize,
        obs: &[f32],
        action: &[f32],
        logp: f32,
        reward: f32,
        terminated: bool,
        truncated: bool,
    ) -> Result<(), String> {
        if env >= self.running.len() {
            self.running.resize_with(env + 1, Steps::default);
        }
        let s = &mut self.running[env];
        s.t.push(s.rewards.len() as u32);
        s.obs.extend_from_slice(&obs[..self.obs_dim]);
        s.actions.extend_from_slice(&action[..self.action_dim]);
        s.logp.push(logp);
        s.rewards.push(reward);
        s.terminated.push(terminated);
        s.truncated.push(truncated && !terminated);
        if terminated || truncated {
            self.finish_episode(env)?;
        }
        Ok(())
    }

    /// A sample call's rows: each fragment's rows continue its env's episode (or start one).
    fn batch(
        &mut self,
        obs: &[f32],
        actions: &[f32],
        rewards: &[f32],
        logp: &[f32],
        fragments: &[Fragment],
    ) -> Result<(), String> {
        let (d, ad) = (self.obs_dim, self.action_dim);
        for f in fragments {
            if f.env >= self.running.len() {
                self.running.resize_with(f.env + 1, Steps::default);
            }
            let s = &mut self.running[f.env];
            if f.starts_episode {
                // The runner started this env afresh (a restore): drop what it had.
                s.clear();
            } else if s.rewards.is_empty() && f.first_step > 0 {
                // The rest of an episode whose start this recorder did not see (a restored
                // runner): not a whole episode, so not written.
                continue;
            }
            let first = s.rewards.len() as u32;
            s.t.extend(first..first + (f.end - f.start) as u32);
            s.obs.extend_from_slice(&obs[f.start * d..f.end * d]);
            s.actions
                .extend_from_slice(&actions[f.start * ad..f.end * ad]);
            s.logp.extend_from_slice(&logp[f.start..f.end]);
            s.rewards.extend_from_slice(&rewards[f.start..f.end]);
            let n = f.end - f.start;
            s.terminated.extend(std::iter::repeat_n(false, n));
            s.truncated.extend(std::iter::repeat_n(false, n));
            if f.terminated || f.truncated {
                if let Some(last) = s.terminated.last_mut() {
                    *last = f.terminated;
                }
                if let Some(last) = s.truncated.last_mut() {
                    *last = f.truncated && !f.terminated;
                }
                self.finish_episode(f.env)?;
            }
        }
        Ok(())
    }

    fn finish_episode(&mut self, env: usize) -> Result<(), String> {
        let id = self.id_base | self.next_episode;
        self.next_episode += 1;
        self.done.take_episode(&mut self.running[env], id);
        if self.done.len() >= ROWS_PER_FILE {
            self.write()?;
        }
        Ok(())
    }

    /// Writes the finished episodes gathered so far as one file.
    fn write(&mut self) -> Result<(), String> {
        if self.done.len() == 0 {
            return Ok(());
        }
        let steps = std::mem::take(&mut self.done);
        let batch = to_batch(steps, self.obs_dim, self.action_dim, self.discrete)?;
        let name = format!("{}-{:05}.parquet", self.prefix, self.files);
        self.files += 1;
        data::write_parquet_file(&self.dir, &name, &[batch])
            .map(|_| ())
            .map_err(|e| format!("output: {e}"))
    }
}

/// Records every finished episode of some envs into Parquet files in a folder. Sample
/// calls hand their rows over whole; a thread of the recorder's own sorts them into episodes
/// and writes the files, so sampling does not wait for encoding or the disk. An episode still
/// running when the recorder finishes is not written.
pub struct EpisodeRecorder {
    dir: PathBuf,
    tx: Option<crossbeam_channel::Sender<Record>>,
    writer: Option<JoinHandle<Result<(), String>>>,
}

impl std::fmt::Debug for EpisodeRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpisodeRecorder")
            .field("dir", &self.dir)
            .finish()
    }
}

impl EpisodeRecorder {
    /// A recorder for `num_envs` envs writing into `dir` (made if missing); `runner` names
    /// its files.
    pub fn new(
        dir: &Path,
        runner: usize,
        num_envs: usize,
        obs_dim: usize,
        action_dim: usize,
        discrete: bool,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("output {}: cannot make the folder: {e}", dir.display()))?;
        // Unique across processes and runs writing into one folder: the time and the pid.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let run = (now.as_millis() as u64) ^ (u64::from(std::process::id()) << 40);
        let assembler = Assembler {
            dir: dir.to_path_buf(),
            prefix: format!("episodes-{run:x}-r{runner:03}"),
            obs_dim,
            action_dim,
            discrete,
            running: vec![Steps::default(); num_envs],
            done: Steps::default(),
            next_episode: 0,
            id_base: splitmix(run ^ (runner as u64).wrapping_mul(0x9e37_79b9)) << 24,
            files: 0,
        };
        let (tx, rx) = crossbeam_channel::bounded::<Record>(8);
        let mut on_thread = assembler;
        let writer = std::thread::Builder::new()
            .name(format!("episode-writer-{runner}"))
            .spawn(move || {
                let mut first_error: Option<String> = None;
                for r in rx {
                    let done = match r {
                        Record::Batch {
                            obs,
                            actions,
                            rewards,
                            logp,
                            fragments,
                        } => on_thread.batch(&obs, &actions, &rewards, &logp, &fragments),
                        Record::Step {
                            env,
                            obs,
                            action,
                            logp,
                            reward,
                            terminated,
                            truncated,
                        } => {
                            on_thread.step(env, &obs, &action, logp, reward, terminated, truncated)
                        }
                    };
                    if let Err(e) = done {
                        first_error.get_or_insert(e);
                    }
                }
                if let Err(e) = on_thread.write() {
                    first_error.get_or_insert(e);
                }
                first_error.map_or(Ok(()), Err)
            })
            .map_err(|e| format!("output: cannot start the writer thread: {e}"))?;
        Ok(EpisodeRecorder {
            dir: dir.to_path_buf(),
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    /// A sample call's rows (`obs` and `rewards`: the env's own, in the batch's row order).
    pub fn record(&mut self, batch: &SampleBatch, obs: &[f32], rewards: &[f32]) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Record::Batch {
                obs: obs.to_vec(),
                actions: batch.actions.clone(),
                rewards: rewards.to_vec(),
                logp: batch.action_logp.clone(),
                fragments: batch.fragments.clone(),
            });
        }
    }

    /// One step of env `env` (evaluation): its raw observation, the action, its
    /// log-probability and the outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        env: usize,
        obs: &[f32],
        action: &[f32],
        logp: f32,
        reward: f32,
        terminated: bool,
        truncated: bool,
    ) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Record::Step {
                env,
                obs: obs.to_vec(),
                action: action.to_vec(),
                logp,
                reward,
                terminated,
                truncated,
            });
        }
    }

    /// Writes what is left and waits for the writer; the first write error, if any.
    pub fn finish(&mut self) -> Result<(), String> {
        self.tx = None;
        match self.writer.take() {
            Some(w) => w
                .join()
                .map_err(|_| "output: the writer thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for EpisodeRecorder {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            eprintln!("{e}");
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `values` as a fixed-size list column of `dim` floats per row.
fn float_lists(values: Vec<f32>, dim: usize) -> Result<ArrayRef, String> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let values: ArrayRef = Arc::new(Float32Array::from(values));
    FixedSizeListArray::try_new(item, dim as i32, values, None)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| e.to_string())
}

fn to_batch(
    s: Steps,
    obs_dim: usize,
    action_dim: usize,
    discrete: bool,
) -> Result<RecordBatch, String> {
    let actions: ArrayRef = if discrete {
        Arc::new(Int64Array::from_iter_values(
            s.actions.iter().map(|&a| a as i64),
        ))
    } else {
        float_lists(s.actions, action_dim)?
    };
    let obs = float_lists(s.obs, obs_dim)?;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("eps_id", Arc::new(UInt64Array::from(s.eps_id))),
        ("t", Arc::new(UInt32Array::from(s.t))),
        ("obs", obs),
        ("actions", actions),
        ("rewards", Arc::new(Float32Array::from(s.rewards))),
        ("terminateds", Arc::new(BooleanArray::from(s.terminated))),
        ("truncateds", Arc::new(BooleanArray::from(s.truncated))),
        ("action_logp", Arc::new(Float32Array::from(s.logp))),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), false))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(|e| e.to_string())
}

/// The columns `input` needs, for messages.
const NEEDED: &str = "eps_id, t, obs, actions, rewards (as `output` writes them)";

/// Recorded episodes as train batches: the discounted return of every row computed per
/// episode, then the rows shuffled (seeded, anew each pass) and handed out in batches
/// through `iter_batches`. Which rows come next is a function of the rows handed out so far
/// ([`OfflineInput::seek`]), so a restored run continues with the batches it would have had.
pub struct OfflineInput {
    /// Every recorded row: `obs`, `actions` and `returns` columns.
    rows: data::Table,
    num_rows: usize,
    obs_dim: usize,
    action_dim: usize,
    seed: u64,
    /// Rows handed out so far.
    pos: u64,
    /// The current pass's batches, and the rest of the last one taken from it.
    batches: Option<Box<dyn Iterator<Item = Result<RecordBatch, data::DataError>> + Send>>,
    pending: Option<RecordBatch>,
}

impl std::fmt::Debug for OfflineInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineInput")
            .field("rows", &self.num_rows)
            .field("pos", &self.pos)
            .finish()
    }
}

/// Rows each pull from a pass's `iter_batches` asks for.
const READ_ROWS: usize = 4096;

impl OfflineInput {
    /// Reads the Parquet files `input` names (a folder, file or `*` pattern) for a module of
    /// these sizes; `gamma` discounts the returns.
    pub fn open(
        input: &str,
        obs_dim: usize,
        action_dim: usize,
        gamma: f64,
        seed: u64,
    ) -> Result<Self, String> {
        let fail = |e: &dyn std::fmt::Display| format!("input {input}: {e}");
        let table = data::read_parquet(input)
            .map_batches(usize::MAX, move |b| {
                with_returns(&b, gamma)
                    .map_err(data::arrow_schema::ArrowError::InvalidArgumentError)
            })
            .select_columns(&["obs", "actions", "returns"])
            .materialize()
            .map_err(|e| fail(&e))?;
        let num_rows = table.count().map_err(|e| fail(&e))?;
        if num_rows == 0 {
            return Err(fail(&"no recorded rows"));
        }
        // Check the shapes once, on the first rows.
        let head = table.take(1).map_err(|e| fail(&e))?;
        to_offline(&head, obs_dim, action_dim).map_err(|e| fail(&e))?;
        Ok(OfflineInput {
            rows: table,
            num_rows,
            obs_dim,
            action_dim,
            seed,
            pos: 0,
            batches: None,
            pending: None,
        })
    }

    /// Recorded rows.
    pub fn len(&self) -> usize {
        self.num_rows
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.num_rows == 0
    }

    /// Continues as if `rows` rows had been handed out (a restored run's position).
    pub fn seek(&mut self, rows: u64) -> Result<(), String> {
        self.pos = rows - rows % self.num_rows as u64;
        self.batches = None;
        self.pending = None;
        let skip = (rows % self.num_rows as u64) as usize;
        let mut left = skip;
        while left > 0 {
            let b = self.pull(left)?;
            left -= b.num_rows();
        }
        Ok(())
    }

    /// Up to `max` rows of the current pass (starting the next pass when one ends).
    fn pull(&mut self, max: usize) -> Result<RecordBatch, String> {
        loop {
            if let Some(p) = self.pending.take() {
                let k = max.min(p.num_rows());
                if k < p.num_rows() {
                    self.pending = Some(p.slice(k, p.num_rows() - k));
                }
                self.pos += k as u64;
                return Ok(p.slice(0, k));
            }
            if self.batches.is_none() {
                let pass = self.pos / self.num_rows as u64;
                let shuffled = self.rows.random_shuffle(self.seed ^ splitmix(pass));
                self.batches = Some(Box::new(
                    shuffled
                        .iter_batches(READ_ROWS)
                        .map_err(|e| e.to_string())?,
                ));
            }
            match self.batches.as_mut().and_then(Iterator::next) {
                Some(b) => self.pending = Some(b.map_err(|e| e.to_string())?),
                None => self.batches = None,
            }
        }
    }

    /// The next `size` rows (a pass over the shuffled rows runs on into the next pass, so
    /// every batch has `size` rows).
    pub fn next_batch(&mut self, size: usize) -> Result<OfflineBatch, String> {
        let mut out = OfflineBatch {
            obs_dim: self.obs_dim,
            ..OfflineBatch::default()
        };
        while out.len() < size {
            let b = self.pull(size - out.len())?;
            let part = to_offline(&b, self.obs_dim, self.action_dim)?;
            out.obs.extend(part.obs);
            out.actions.extend(part.actions);
            out.returns.extend(part.returns);
        }
        Ok(out)
    }
}

/// A numeric column's values as f64 (integers and floats).
fn numbers(a: &dyn Array, column: &str) -> Result<Vec<f64>, String> {
    if a.null_count() > 0 {
        return Err(format!("column {column:?} has nulls"));
    }
    data::column_f64(a, column).map_err(|e| e.to_string())
}

/// A list column's values flattened, and the values per row (every row must have as many).
fn lists(a: &dyn Array, column: &str) -> Result<(Vec<f32>, usize), String> {
    let rows = a.len();
    if rows == 0 {
        return Ok((Vec::new(), 0));
    }
    let values: ArrayRef = match a.data_type() {
        DataType::FixedSizeList(..) => {
            let l = a.as_fixed_size_list();
            l.values()
                .slice(l.value_offset_at(0), rows * l.value_length() as usize)
        }
        DataType::List(_) => list_values(a.as_list::<i32>(), column)?,
        DataType::LargeList(_) => list_values(a.as_list::<i64>(), column)?,
        other => {
            return Err(format!(
                "column {column:?} is {other}; expected lists of numbers"
            ));
        }
    };
    let flat = numbers(&values, column)?;
    let per_row = flat.len().checked_div(rows).unwrap_or(0);
    Ok((flat.into_iter().map(|v| v as f32).collect(), per_row))
}

/// The values of a list column whose rows all have one length.
fn list_values<O: OffsetSizeTrait>(
    l: &GenericListArray<O>,
    column: &str,
) -> Result<ArrayRef, String> {
    let rows = l.len();
    let offsets = l.value_offsets();
    let (lo, hi) = (offsets[0].as_usize(), offsets[rows].as_usize());
    if (0..rows).any(|i| l.value_length(i).as_usize() * rows != hi - lo) {
        return Err(format!("column {column:?}: rows of different lengths"));
    }
    Ok(l.values().slice(lo, hi - lo))
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, String> {
    b.column_by_name(name).ok_or_else(|| {
        let have: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        format!(
            "no column {name:?}; expected the columns {NEEDED}; the files have: {}",
            have.join(", ")
        )
    })
}

/// `b` with a `returns` column: each row's discounted return to its episode's end, computed
/// per `eps_id` in `t` order.
fn with_returns(b: &RecordBatch, gamma: f64) -> Result<RecordBatch, String> {
    let ids = numbers(column(b, "eps_id")?, "eps_id")?;
    let t = numbers(column(b, "t")?, "t")?;
    let rewards = numbers(column(b, "rewards")?, "rewards")?;
    let mut episodes: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        episodes.entry(id.to_bits()).or_default().push(i);
    }
    let mut returns = vec![0f32; b.num_rows()];
    for rows in episodes.values_mut() {
        rows.sort_by(|&a, &c| t[a].total_cmp(&t[c]));
        let mut g = 0.0;
        for &i in rows.iter().rev() {
            g = rewards[i] + gamma * g;
            returns[i] = g as f32;
        }
    }
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("returns", DataType::Float32, false));
    let mut cols = b.columns().to_vec();
    cols.push(Arc::new(Float32Array::from(returns)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| e.to_string())
}

/// Rows of `obs`, `actions` and `returns` as a learner's batch, checking their sizes.
fn to_offline(b: &RecordBatch, obs_dim: usize, action_dim: usize) -> Result<OfflineBatch, String> {
    let (obs, d) = lists(column(b, "obs")?, "obs")?;
    if b.num_rows() > 0 && d != obs_dim {
        return Err(format!(
            "column \"obs\" has {d} values per row; the env's observations have {obs_dim}"
        ));
    }
    let a = column(b, "actions")?;
    let actions = if matches!(
        a.data_type(),
        DataType::FixedSizeList(..) | DataType::List(_) | DataType::LargeList(_)
    ) {
        let (v, k) = lists(a, "actions")?;
        if b.num_rows() > 0 && k != action_dim {
            return Err(format!(
                "column \"actions\" has {k} values per row; the env's actions have {action_dim}"
            ));
        }
        v
    } else {
        if action_dim != 1 {
            return Err(format!(
                "column \"actions\" has one value per row; the env's actions have {action_dim}"
            ));
        }
        numbers(a, "actions")?
            .into_iter()
            .map(|v| v as f32)
            .collect()
    };
    let returns = numbers(column(b, "returns")?, "returns")?
        .into_iter()
        .map(|v| v as f32)
        .collect();
    Ok(OfflineBatch {
        obs_dim,
        obs,
        actions,
        returns,
    })
}
