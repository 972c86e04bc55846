//! `rllib`: train PPO from RLlib-format configs, run the tuned examples, evaluate checkpoints.
//!
//! A thin front end: configs are parsed by `rllib::config`, runs are Tune experiments
//! (`rllib::search::run`: one trial, or one per variant of a search), and everything printed
//! goes through `rllib::console`, so that a closed or full stdout never stops a run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use algorithms::Algo;
use rllib::checkpoint;
use rllib::config::{ConfigError, Experiment};
use rllib::console;
use rllib::evaluate::evaluate_episodes;
use rllib::examples;
use rllib::search::METRIC;
use rllib::signals::{self, StopRequest};
use rllib::trial::TrialError;

/// Prints a line to stdout for a run in progress (never fails the run).
macro_rules! say {
    ($($t:tt)*) => { console::line(format_args!($($t)*)) };
}

/// Prints a line to stderr.
macro_rules! warn {
    ($($t:tt)*) => { console::warn(format_args!($($t)*)) };
}

#[derive(Parser)]
#[command(
    name = "rllib",
    version,
    about = "Reinforcement learning in the spirit of Ray RLlib, in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an algorithm: `rllib train --algo PPO --env CartPole-v1`, or `rllib train file <yaml>`.
    #[command(args_conflicts_with_subcommands = true)]
    Train(Box<TrainCmd>),
    /// The tuned examples compiled into this binary.
    Example {
        #[command(subcommand)]
        command: ExampleCmd,
    },
    /// Run a checkpoint's policy for some episodes and report returns.
    Evaluate(EvaluateArgs),
    /// Serve a checkpoint's policy over HTTP (Ray Serve): POST {"observation": [...]} to `/`
    /// and get {"action": a}; GET `/` describes the policy.
    Serve(ServeArgs),
    /// Draw learning curves as a PNG: `rllib plot checkpoints/cartpole-ppo --out curves.png`
    /// (runs of one config with different seeds become a median line in a min-max band).
    Plot(PlotArgs),
    /// List the registered environment ids.
    Envs,
    /// Every config key: aliases, algorithms, values, default and what it does (Markdown).
    Keys,
    /// Start a cluster node (Ray's `ray start`): `--head`, or `--address <head>` to join one.
    Start(StartCmd),
    /// Stop the nodes started on this machine.
    Stop {
        /// Seconds to wait after SIGTERM before SIGKILL.
        #[arg(long, default_value_t = 10.0)]
        grace_period: f64,
    },
    /// The cluster's nodes and resources (used/total).
    Status {
        /// The head, host:port (default: the cluster started on this machine).
        #[arg(long)]
        address: Option<String>,
        /// The cluster secret (default: $RLLIB_CLUSTER_SECRET or the stored one).
        #[arg(long)]
        token: Option<String>,
    },
}

#[derive(Args)]
struct StartCmd {
    /// Start the head node.
    #[arg(long)]
    head: bool,
    /// Join the head at host:port.
    #[arg(long)]
    address: Option<String>,
    /// Port to listen on (head: 6379; other nodes: a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on and give to other nodes (default 127.0.0.1).
    #[arg(long)]
    node_ip_address: Option<String>,
    /// CPUs this node offers (default: detected).
    #[arg(long)]
    num_cpus: Option<f64>,
    /// GPUs this node offers (default: detected).
    #[arg(long)]
    num_gpus: Option<f64>,
    /// Custom resources, a JSON mapping: '{"custom": 2}'.
    #[arg(long)]
    resources: Option<String>,
    /// The cluster secret (default: $RLLIB_CLUSTER_SECRET; a new one for --head).
    #[arg(long)]
    token: Option<String>,
    /// Stay in the foreground until SIGTERM or Ctrl-C.
    #[arg(long)]
    block: bool,
    /// Seconds a node may miss heartbeats before it counts as dead (default 3).
    #[arg(long)]
    node_timeout_s: Option<f64>,
    /// TLS between nodes: this node's certificate, PEM (default: $RLLIB_TLS_CERT).
    #[arg(long)]
    tls_cert: Option<std::path::PathBuf>,
    /// This node's private key, PEM (default: $RLLIB_TLS_KEY).
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    /// The CA that signs every node's certificate (default: $RLLIB_TLS_CA, else the
    /// certificate itself).
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// Serve the dashboard from this node (at http://127.0.0.1:8265 unless the flags below
    /// say otherwise).
    #[arg(long)]
    include_dashboard: bool,
    /// The dashboard's address (default 127.0.0.1; another one needs the cluster secret).
    #[arg(long)]
    dashboard_host: Option<String>,
    /// The dashboard's port (default 8265; 0 picks a free one). Implies --include-dashboard.
    #[arg(long)]
    dashboard_port: Option<u16>,
    /// The output folder whose runs and Tune experiments the dashboard shows (default
    /// `checkpoints` in the folder `rllib start` runs in).
    #[arg(long)]
    dashboard_runs_dir: Option<PathBuf>,
}

#[derive(Args)]
struct PlotArgs {
    /// Run folders (with progress.csv) or experiment folders holding runs.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The column to draw (default env_runners/episode_return_mean).
    #[arg(long)]
    metric: Option<String>,
    /// The x axis: env_steps, time or iteration.
    #[arg(long, default_value = "env_steps")]
    x: String,
    /// The PNG to write.
    #[arg(long, default_value = "curves.png")]
    out: PathBuf,
    /// Width in pixels.
    #[arg(long, default_value_t = 1000)]
    width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = 600)]
    height: u32,
}

#[derive(Args)]
struct TrainCmd {
    #[command(subcommand)]
    file: Option<TrainFile>,
    /// The algorithm (default PPO, or the checkpoint's with --restore).
    #[arg(long)]
    algo: Option<String>,
    /// The env id (default CartPole-v1, or the checkpoint's with --restore).
    #[arg(long)]
    env: Option<String>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum TrainFile {
    /// Train from a tuned-example YAML file (`<experiment>: {env, run, stop, config}`).
    File {
        /// The YAML file.
        path: PathBuf,
        #[command(flatten)]
        run: RunArgs,
    },
}

#[derive(Subcommand)]
enum ExampleCmd {
    /// List the examples.
    List {
        /// Only ids or descriptions containing this text.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Print an example's YAML.
    Get {
        /// The example id.
        id: String,
    },
    /// Run an example (flags override its file, as with `train file`).
    Run {
        /// The example id.
        id: String,
        #[command(flatten)]
        run: Box<RunArgs>,
    },
}

/// Flags that override a config.
#[derive(Args, Clone, Default)]
struct RunArgs {
    /// Config overrides, a JSON or YAML mapping: '{"lr": 0.001, "num_env_runners": 2}'.
    #[arg(long)]
    config: Option<String>,
    /// Stop criteria, a JSON mapping; replaces the file's: '{"env_runners/episode_return_mean": 475}'.
    #[arg(long)]
    stop: Option<String>,
    /// Seed of everything random.
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Env-runner actors (0 samples in the driver).
    #[arg(long, allow_negative_numbers = true)]
    num_env_runners: Option<usize>,
    /// Run the env runners on the cluster whose head is at host:port (or `auto`: the one
    /// started on this machine with `rllib start`); the learner and checkpoints stay here.
    #[arg(long)]
    address: Option<String>,
    /// Serve the dashboard while training (this run, the others under --output-dir, the
    /// runtime), at http://127.0.0.1:8265 unless --dashboard-port/--dashboard-host say.
    #[arg(long)]
    dashboard: bool,
    /// The dashboard's address (default 127.0.0.1; another one needs the cluster secret).
    #[arg(long)]
    dashboard_host: Option<String>,
    /// The dashboard's port (default 8265; 0 picks a free one). Implies --dashboard.
    #[arg(long)]
    dashboard_port: Option<u16>,
    /// Root folder of runs.
    #[arg(long, default_value = "checkpoints")]
    output_dir: PathBuf,
    /// Checkpoint every N iterations.
    #[arg(long, allow_negative_numbers = true)]
    checkpoint_freq: Option<u64>,
    /// Checkpoint when the run ends (the default).
    #[arg(long)]
    checkpoint_at_end: bool,
    /// Continue from a checkpoint folder: its config, weights, optimizer, filter and
    /// counters; flags may change only the keys that can change mid-run.
    #[arg(long)]
    restore: Option<PathBuf>,
    /// Resume this experiment's interrupted search (`<output-dir>/<experiment>/`): trials
    /// that ended keep their results, the others go on from their last checkpoints.
    #[arg(long)]
    resume: bool,
    /// Where the learner computes: cpu or cuda.
    #[arg(long, value_parser = ["cpu", "cuda"])]
    device: Option<String>,
    /// Run the config's grid this many times, one Tune trial per variant (Tune's num_samples).
    #[arg(long, allow_negative_numbers = true)]
    num_samples: Option<usize>,
    /// Trials of a search at once at most (default: as many as the CPUs allow).
    #[arg(long, allow_negative_numbers = true)]
    max_concurrent_trials: Option<usize>,
    /// A search's trial scheduler: fifo (default), asha or pbt.
    #[arg(long)]
    scheduler: Option<String>,
    /// The scheduler's settings, a JSON mapping: '{"max_t": 50, "grace_period": 5}', or for pbt
    /// '{"perturbation_interval": 4, "hyperparam_mutations": {"lr": [0.001, 0.0005]}}'.
    #[arg(long)]
    scheduler_config: Option<String>,
}

#[derive(Args)]
struct EvaluateArgs {
    /// The checkpoint folder (checkpoint_NNNNNN).
    checkpoint: PathBuf,
    /// Episodes to run.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    episodes: usize,
    /// Seed of the first episode (episode i uses seed + i).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    seed: u64,
    /// Sample actions instead of taking the most likely one.
    #[arg(long)]
    explore: bool,
    /// Must match the checkpoint's algorithm, if given.
    #[arg(long)]
    algo: Option<String>,
    /// Must match the checkpoint's env, if given.
    #[arg(long)]
    env: Option<String>,
    /// Write an animation of the first episode to this GIF file.
    #[arg(long)]
    render: Option<PathBuf>,
    /// Record every episode into this folder as Parquet (RLlib's `output`), for BC and
    /// MARWIL's `input`.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// The checkpoint folder (checkpoint_NNNNNN).
    checkpoint: PathBuf,
    /// The address to listen on (this machine only unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port (0: any free one).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Replicas, each a runtime actor with its own copy of the policy.
    #[arg(long, default_value_t = 1)]
    num_replicas: usize,
    /// At most this many requests go through the policy in one forward pass.
    #[arg(long, default_value_t = 64)]
    max_batch_size: usize,
    /// How long the first request of a batch waits for more while a replica is free (0: a
    /// free replica takes what is queued at once; requests that arrive while it works form
    /// the next batch).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    batch_wait_timeout_s: f64,
    /// Seed of the replicas' sampling (for `"explore": true`).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// An error for the user: printed as one line, exit code 1.
struct Failure(String);

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure(e.to_string())
    }
}

impl From<checkpoint::CheckpointError> for Failure {
    fn from(e: checkpoint::CheckpointError) -> Self {
        Failure(e.to_string())
    }
}

impl From<TrialError> for Failure {
    fn from(e: TrialError) -> Self {
        Failure(e.0)
    }
}

/// The longest error line printed; a longer one keeps its start and end.
const MAX_ERROR_CHARS: usize = 2000;

fn one_line(msg: &str) -> String {
    let chars: Vec<char> = msg.chars().collect();
    if chars.len() <= MAX_ERROR_CHARS {
        return msg.to_string();
    }
    let head: String = chars[..MAX_ERROR_CHARS / 2].iter().collect();
    let tail: String = chars[chars.len() - MAX_ERROR_CHARS / 4..].iter().collect();
    format!("{head} … {tail}")
}

/// Large objects (cluster transfers, datasets) get transparent huge pages, and freed large
/// blocks are kept for the next one; see `ray::HugePageAlloc`.
#[global_allocator]
static ALLOC: ray::HugePageAlloc = ray::HugePageAlloc;

fn main() -> ExitCode {
    // One compute thread for candle's CPU kernels: parallelism comes from env-runner actors.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: no other thread exists yet this early in `main`, so nothing reads the
        // environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("RAYON_NUM_THREADS", "1");
        }
    }
    // Actor types other nodes may be asked to host (the same binary runs on every node).
    rllib::remote_runner::register();
    rllib::trainable::register();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(Failure(msg)) => {
            warn!("error: {}", one_line(&msg));
            ExitCode::FAILURE
        }
    }
}

/// Output of a listing command: a closed pipe (`| head`) ends it quietly, any other
/// failure (a full disk) is an error.
fn listing(lines: impl IntoIterator<Item = String>) -> Result<ExitCode, Failure> {
    for l in lines {
        if let Err(e) = console::try_line(format_args!("{l}")) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(Failure(format!("cannot write to stdout: {e}")));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Plot(a) => plot(&a),
        Command::Envs => listing(envs::ids()),
        Command::Keys => listing(std::iter::once(
            rllib::config::reference::markdown().trim_end().to_string(),
        )),
        Command::Train(t) => match t.file {
            Some(TrainFile::File { path, run }) => train(Source::File(path), &run),
            None => train(Source::Flags(t.algo, t.env), &t.run),
        },
        Command::Example { command } => match command {
            ExampleCmd::List { filter } => listing(
                examples::EXAMPLES
                    .iter()
                    .filter(|e| {
                        filter
                            .as_deref()
                            .is_none_or(|f| e.id.contains(f) || e.description.contains(f))
                    })
                    .map(|e| format!("{:<24} {}", e.id, e.description)),
            ),
            ExampleCmd::Get { id } => {
                let yaml = find_example(&id)?.yaml;
                listing(std::iter::once(yaml.trim_end_matches('\n').to_string()))
            }
            ExampleCmd::Run { id, run } => train(Source::Example(find_example(&id)?), &run),
        },
        Command::Evaluate(a) => evaluate(&a),
        Command::Serve(a) => serve_policy(&a),
        Command::Start(s) => {
            let a = rllib::cluster_cli::StartArgs {
                head: s.head,
                address: s.address,
                port: s.port,
                node_ip_address: s.node_ip_address,
                num_cpus: s.num_cpus,
                num_gpus: s.num_gpus,
                resources: s.resources,
                token: s.token,
                block: s.block,
                node_timeout_s: s.node_timeout_s,
                tls_cert: s.tls_cert,
                tls_key: s.tls_key,
                tls_ca: s.tls_ca,
                include_dashboard: s.include_dashboard,
                dashboard_host: s.dashboard_host,
                dashboard_port: s.dashboard_port,
                dashboard_runs_dir: s.dashboard_runs_dir,
            };
            rllib::cluster_cli::start(&a, &|l| say!("{l}")).map_err(Failure)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stop { grace_period } => {
            if !grace_period.is_finite() || !(0.0..=3600.0).contains(&grace_period) {
                return Err(Failure(format!(
                    "--grace-period {grace_period}: expected seconds in [0, 3600]"
                )));
            }
            rllib::cluster_cli::stop(std::time::Duration::from_secs_f64(grace_period), &|l| {
                say!("{l}")
            })
            .map_err(Failure)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { address, token } => {
            rllib::cluster_cli::status(address.as_deref(), token.as_deref(), &|l| say!("{l}"))
                .map_err(Failure)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn find_example(id: &str) -> Result<&'static examples::Example, Failure> {
    examples::find(id).ok_or_else(|| {
        let ids: Vec<_> = examples::EXAMPLES.iter().map(|e| e.id).collect();
        let hint = rllib::config::nearest(id, ids.iter().copied())
            .map(|n| format!(" (did you mean '{n}'?)"))
            .unwrap_or_default();
        Failure(format!(
            "unknown example '{}'{hint}; available: {}",
            rllib::config::short(id),
            ids.join(", ")
        ))
    })
}

/// Applies the flags that override a config; every one is recorded as an explicit setting,
/// so that a restored run checks it like a `--config` key.
fn apply_run_args(exp: &mut Experiment, run: &RunArgs) -> Result<(), Failure> {
    if let Some(text) = &run.config {
        exp.apply_config_text(text)?;
    }
    if let Some(text) = &run.stop {
        exp.set_stop_text(text)?;
    }
    exp.address = run.address.clone();
    if let Some(s) = run.seed {
        exp.set_flag("--seed", "seed", &s.to_string())?;
    }
    if let Some(n) = run.num_env_runners {
        exp.set_flag("--num-env-runners", "num_env_runners", &n.to_string())?;
    }
    if let Some(d) = run.device.as_deref() {
        let gpus = if d == "cuda" { "1" } else { "0" };
        exp.set_flag("--device", "num_gpus_per_learner", gpus)?;
    }
    if let Some(f) = run.checkpoint_freq {
        exp.checkpoint_frequency = f;
    }
    if run.checkpoint_at_end {
        exp.checkpoint_at_end = true;
    }
    Ok(())
}

fn fmt_metric(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.1}"),
        _ => "-".to_string(),
    }
}

/// The training table on stdout, with a progress bar on a terminal's stderr: a Tune callback
/// of the run's one trial.
struct Console {
    header: String,
    stop: Vec<rllib::config::StopCriterion>,
    state: parking_lot::Mutex<ConsoleState>,
}

#[derive(Default)]
struct ConsoleState {
    bar: Option<ProgressBar>,
    best: Option<f64>,
}

impl Console {
    fn line(&self, st: &ConsoleState, line: String) {
        match &st.bar {
            Some(b) => b.println(line),
            None => say!("{line}"),
        }
    }

    /// Ends the progress bar (cleared after a run that ended well).
    fn finish(&self, ok: bool) {
        if let Some(b) = self.state.lock().bar.take() {
            if ok {
                b.finish_and_clear();
            } else {
                b.abandon();
            }
        }
    }
}

impl tune::Callback for Console {
    fn on_trial_start(&self, trial: &tune::TrialInfo<'_>) {
        let mut st = self.state.lock();
        if st.bar.is_some() {
            // Restarted after a failure: the table goes on.
            return;
        }
        say!("{}", self.header);
        say!("Results: {}", trial.dir.display());
        if std::io::stderr().is_terminal() && !self.stop.is_empty() {
            let b = ProgressBar::new(1000);
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {percent:>3}% {elapsed_precise} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            st.bar = Some(b);
        }
        self.line(
            &st,
            format!(
                "{:>6} {:>12} {:>12} {:>10} {:>9} {:>11}",
                "iter", "env_steps", "return_mean", "len_mean", "time_s", "env_steps/s"
            ),
        );
    }

    fn on_trial_result(&self, _trial: &tune::TrialInfo<'_>, r: &tune::Metrics) {
        let get = |k: &str| r.get(k).and_then(serde_json::Value::as_f64);
        let ret = get(METRIC);
        let mut st = self.state.lock();
        if let Some(v) = ret.filter(|v| v.is_finite()) {
            st.best = Some(st.best.map_or(v, |b: f64| b.max(v)));
        }
        self.line(
            &st,
            format!(
                "{:>6} {:>12} {:>12} {:>10} {:>9.2} {:>11.0}",
                get("training_iteration").unwrap_or(0.0),
                fmt_metric(get("num_env_steps_sampled_lifetime")).trim_end_matches(".0"),
                fmt_metric(ret),
                fmt_metric(get("env_runners/episode_len_mean")),
                get("time_total_s").unwrap_or(0.0),
                get("num_env_steps_sampled_lifetime_throughput").unwrap_or(0.0),
            ),
        );
        if let Some(b) = &st.bar {
            b.set_position((rllib::trial::progress(&self.stop, r) * 1000.0) as u64);
            b.set_message(format!("return {}", fmt_metric(ret)));
        }
    }
}

/// Where a run's experiment comes from.
enum Source {
    /// A tuned-example file.
    File(PathBuf),
    /// An example compiled in.
    Example(&'static examples::Example),
    /// `--algo` and `--env`.
    Flags(Option<String>, Option<String>),
}

fn train(source: Source, run: &RunArgs) -> Result<ExitCode, Failure> {
    let restored = match &run.restore {
        Some(path) => Some(checkpoint::load(path)?),
        None => None,
    };
    let mut exp = match source {
        Source::File(path) => Experiment::from_file(&path)?,
        Source::Example(e) => {
            Experiment::from_yaml(e.yaml, &format!("example {} (configs/{}.yaml)", e.id, e.id))?
        }
        Source::Flags(algo, env) => {
            // A restored run is of its checkpoint's algorithm unless one is named.
            let default = restored
                .as_ref()
                .and_then(|ck| Algo::parse(&ck.algorithm))
                .unwrap_or(Algo::Ppo);
            Experiment::from_optional_flags(algo.as_deref(), env.as_deref(), default)?
        }
    };
    apply_run_args(&mut exp, run)?;
    if let (Some(ck), Some(path)) = (&restored, &run.restore) {
        exp.restore_from(
            &path.display().to_string(),
            &ck.algorithm,
            &ck.env,
            ck.experiment.as_deref(),
            &ck.config,
        )?;
    }
    exp.validate()?;
    if exp.config.device == algorithms::Device::Cuda && !cfg!(feature = "cuda") {
        return Err(Failure(
            "--device cuda (or num_gpus_per_learner > 0): this build has no CUDA support; rebuild with `--features cuda`".into(),
        ));
    }
    for w in &exp.warnings {
        warn!("warning: {w}");
    }
    if run.num_samples == Some(0) {
        return Err(Failure("--num-samples 0: expected at least 1".into()));
    }
    let samples = run
        .num_samples
        .or(exp.num_samples.map(|n| n as usize))
        .unwrap_or(1);
    let searching = !exp.grid.is_empty() || samples > 1;
    if !searching
        && (run.scheduler.is_some()
            || exp.scheduler.is_some()
            || run.scheduler_config.is_some()
            || run.max_concurrent_trials.is_some())
    {
        warn!(
            "warning: --scheduler, --scheduler-config and --max-concurrent-trials apply to searches (grid_search or --num-samples > 1); this run is one trial"
        );
    }
    let _dashboard = start_dashboard(run)?;
    if searching || run.resume {
        return search(exp, run);
    }
    let started = std::time::Instant::now();
    let (prepared, notes) = rllib::trial::prepare(&exp, &run.output_dir, restored)?;
    for n in notes {
        if n.starts_with("Restored") || n.starts_with("Env runners on the cluster") {
            say!("{n}");
        } else {
            warn!("warning: {n}");
        }
    }
    let console = std::sync::Arc::new(Console {
        header: format!(
            "Training {} on {} ({}), seed {}",
            exp.run,
            exp.config.env,
            exp.name,
            prepared.algo.seed()
        ),
        stop: exp.stop.clone(),
        state: parking_lot::Mutex::default(),
    });
    let stop = StopRequest::install().map_err(Failure)?;
    let args = rllib::search::SearchArgs::default();
    let stop_rules = exp.stop.clone();
    let grid = rllib::search::run(
        exp,
        &run.output_dir,
        &args,
        &stop,
        Some(prepared),
        vec![console.clone() as std::sync::Arc<dyn tune::Callback>],
    );
    let trial = grid.as_ref().ok().and_then(|g| g.results.first());
    console.finish(trial.is_some_and(|t| t.error.is_none()));
    let grid = grid.map_err(Failure)?;
    let Some(trial) = grid.results.first() else {
        return Err(Failure("the run made no trial".into()));
    };
    let kept = |ck: &Option<PathBuf>| {
        ck.as_ref()
            .map(|p| format!("; the last good checkpoint is {}", p.display()))
            .unwrap_or_default()
    };
    if let Some(e) = &trial.error {
        return Err(Failure(format!("{e}{}", kept(&trial.checkpoint))));
    }
    // One result is no curve.
    let curves = (trial.num_results >= 2)
        .then(|| draw_curves(&trial.path))
        .flatten();
    let last = trial.metrics.clone().unwrap_or_default();
    let count = |k: &str| {
        last.get(k)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    say!("");
    let signal = stop.signal();
    match (signal, rllib::trial::stop_reason(&stop_rules, &last)) {
        (Some(s), _) => say!("Stopped: interrupted ({})", signals::name(s)),
        (None, Some(why)) => say!("Stopped: {why}"),
        (None, None) => say!("Stopped: by Tune"),
    }
    say!(
        "Iterations: {}, env steps: {}, episodes: {}, wall time: {:.2} s",
        count("training_iteration"),
        count("num_env_steps_sampled_lifetime"),
        count("env_runners/num_episodes_lifetime"),
        started.elapsed().as_secs_f64()
    );
    say!(
        "Best episode_return_mean: {}",
        fmt_metric(console.state.lock().best)
    );
    match &trial.checkpoint {
        Some(p) => say!("Checkpoint: {}", p.display()),
        None => say!("Checkpoint: none written (use --checkpoint-at-end or --checkpoint-freq)"),
    }
    if let Some(c) = curves {
        say!("Curves: {}", c.display());
    }
    Ok(match signal {
        Some(s) => ExitCode::from((128 + s) as u8),
        None => ExitCode::SUCCESS,
    })
}

/// A config that searches: one Tune trial per variant, the best one reported.
fn search(exp: Experiment, run: &RunArgs) -> Result<ExitCode, Failure> {
    if run.restore.is_some() {
        return Err(Failure(
            "--restore with grid_search or --num-samples: restore one trial's checkpoint instead"
                .into(),
        ));
    }
    let args = rllib::search::SearchArgs {
        num_samples: run
            .num_samples
            .or(exp.num_samples.map(|n| n as usize))
            .unwrap_or(1),
        max_concurrent_trials: run.max_concurrent_trials.unwrap_or(0),
        scheduler: run.scheduler.clone(),
        scheduler_config: run.scheduler_config.clone(),
        resume: run.resume,
    };
    let variants = exp
        .grid
        .iter()
        .fold(args.num_samples, |n, g| n.saturating_mul(g.shown.len()));
    say!(
        "{} {} ({} on {}): {variants} trials",
        if run.resume { "Resuming" } else { "Searching" },
        exp.name,
        exp.run,
        exp.config.env
    );
    let stop = StopRequest::install().map_err(Failure)?;
    let experiment_dir = run.output_dir.join(&exp.name);
    let grid = rllib::search::run(exp, &run.output_dir, &args, &stop, None, Vec::new())
        .map_err(Failure)?;
    if grid.results.iter().any(|t| t.num_results >= 2)
        && let Some(c) = draw_curves(&experiment_dir)
    {
        say!("Curves of every trial: {}", c.display());
    }
    if let Some(s) = stop.signal() {
        say!(
            "Stopped: interrupted ({}); the running trials wrote a checkpoint, the others did not start. Resume with the same command and --resume",
            signals::name(s)
        );
        return Ok(ExitCode::from((128 + s) as u8));
    }
    let errors = grid.errors();
    if !errors.is_empty() {
        let list: Vec<String> = errors
            .iter()
            .map(|r| format!("{} ({})", r.trial_id, r.error.as_deref().unwrap_or("")))
            .collect();
        return Err(Failure(format!(
            "{} of {} trials failed: {}",
            errors.len(),
            grid.len(),
            list.join("; ")
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// `rllib plot`.
fn plot(a: &PlotArgs) -> Result<ExitCode, Failure> {
    let o = rllib::plot::PlotOptions {
        metric: a.metric.clone(),
        x: rllib::plot::XAxis::parse(&a.x).map_err(Failure)?,
        width: a.width,
        height: a.height,
        fast: false,
    };
    let summary = rllib::plot::plot(&a.paths, &o, &a.out).map_err(Failure)?;
    for s in &summary.skipped {
        warn!("warning: left out {s}");
    }
    for (label, n) in &summary.curves {
        say!(
            "  {label}{}",
            if *n > 1 {
                String::new()
            } else {
                " (one run)".into()
            }
        );
    }
    say!("Wrote {} ({})", a.out.display(), summary.metric);
    Ok(ExitCode::SUCCESS)
}

/// The curves of the runs under `dir` into `dir/curves.png` (800x480); a failure is a
/// warning, never the run's (its results are written already).
fn draw_curves(dir: &std::path::Path) -> Option<PathBuf> {
    let out = dir.join("curves.png");
    let o = rllib::plot::PlotOptions {
        width: 800,
        height: 480,
        fast: true,
        ..Default::default()
    };
    match rllib::plot::plot(&[dir.to_path_buf()], &o, &out) {
        Ok(_) => Some(out),
        Err(e) => {
            warn!("warning: no curves.png: {e}");
            None
        }
    }
}

/// The dashboard for `--dashboard`, serving until the command ends.
fn start_dashboard(run: &RunArgs) -> Result<Option<ray::dashboard::Dashboard>, Failure> {
    if !run.dashboard && run.dashboard_port.is_none() && run.dashboard_host.is_none() {
        return Ok(None);
    }
    let mut o = ray::dashboard::DashboardOptions {
        runs_dirs: vec![run.output_dir.clone()],
        ..Default::default()
    };
    if let Some(p) = run.dashboard_port {
        o.port = p;
    }
    if let Some(h) = &run.dashboard_host {
        o.host = h.parse().map_err(|_| {
            Failure(format!(
                "--dashboard-host {h:?} is not an IP address (expected e.g. 127.0.0.1 or 0.0.0.0)"
            ))
        })?;
        if !o.host.is_loopback() {
            o.secret = ray::cluster::session::load_secret().ok();
        }
    }
    let d = ray::dashboard::start(std::sync::Arc::new(ray::dashboard::ProcessSource), o)
        .map_err(|e| Failure(e.to_string()))?;
    say!("View the dashboard at {}", d.url());
    Ok(Some(d))
}

fn serve_policy(a: &ServeArgs) -> Result<ExitCode, Failure> {
    if a.num_replicas == 0 {
        return Err(Failure(
            "--num-replicas 0: expected at least 1 replica".into(),
        ));
    }
    if a.max_batch_size == 0 {
        return Err(Failure("--max-batch-size 0: expected at least 1".into()));
    }
    if !(a.batch_wait_timeout_s.is_finite() && a.batch_wait_timeout_s >= 0.0) {
        return Err(Failure(format!(
            "--batch-wait-timeout-s {}: expected seconds >= 0",
            a.batch_wait_timeout_s
        )));
    }
    let served = std::sync::Arc::new(
        rllib::serving::ServedPolicy::load(&a.checkpoint)
            .map_err(|e| Failure(format!("{}: {e}", a.checkpoint.display())))?,
    );
    let rt = ray::init(ray::InitOptions::new()).map_err(|e| Failure(e.to_string()))?;
    let cpus = rt.cluster_resources().get(ray::CPU);
    let server = serve::start_on(
        rt,
        serve::HttpOptions {
            host: a.host.clone(),
            port: a.port,
            ..serve::HttpOptions::default()
        },
    )
    .map_err(|e| Failure(e.to_string()))?;
    let deployment = served
        .deployment(a.seed)
        .num_replicas(a.num_replicas)
        .max_batch_size(a.max_batch_size)
        .batch_wait_timeout_s(a.batch_wait_timeout_s)
        .num_cpus((cpus / a.num_replicas as f64).min(1.0));
    server.run(deployment).map_err(|e| Failure(e.to_string()))?;
    let addr = server.address();
    say!(
        "Serving {} ({}) at http://{addr}/ with {} replica(s); Ctrl-C stops.",
        a.checkpoint.display(),
        served.experiment,
        a.num_replicas
    );
    say!("  curl http://{addr}/");
    say!("  curl -X POST http://{addr}/ -d '{{\"observation\": [...]}}'");
    let sig = server.wait_for_signal();
    say!("Stopped (signal {sig}); requests in flight were answered.");
    Ok(ExitCode::SUCCESS)
}

fn evaluate(a: &EvaluateArgs) -> Result<ExitCode, Failure> {
    if a.episodes == 0 {
        return Err(Failure("--episodes 0: expected at least 1 episode".into()));
    }
    let mut ck = checkpoint::load(&a.checkpoint)?;
    if let Some(algo) = &a.algo
        && !algo.eq_ignore_ascii_case(&ck.algorithm)
    {
        return Err(Failure(format!(
            "{}: --algo {} but the checkpoint is {}",
            a.checkpoint.display(),
            rllib::config::short(algo),
            ck.algorithm
        )));
    }
    if let Some(env) = &a.env
        && *env != ck.env
    {
        return Err(Failure(format!(
            "{}: --env {} but the checkpoint was trained on {}",
            a.checkpoint.display(),
            rllib::config::short(env),
            ck.env
        )));
    }
    let env = ck.env.clone();
    ck.check_env(&env)?;
    let mut gif = match &a.render {
        Some(path) => {
            let fps = envs::make(&env)
                .map_err(|e| Failure(e.to_string()))?
                .render_fps();
            let fps = u16::try_from(fps).unwrap_or(u16::MAX);
            Some(rllib::render::GifWriter::create(path, fps).map_err(Failure)?)
        }
        None => None,
    };
    let mut sink = |f: &envs::RgbFrame| match gif.as_mut() {
        Some(g) => g.push(f),
        None => Ok(()),
    };
    let cfg = rllib::config::checkpoint_config(
        &a.checkpoint.display().to_string(),
        &ck.algorithm,
        &ck.config,
    )?;
    let mut recorder = match &a.output {
        Some(dir) => Some(
            rllib::offline::EpisodeRecorder::new(
                dir,
                0,
                1,
                ck.spec.obs_dim(),
                ck.spec.action_dim(),
                matches!(
                    envs::make(&env).map(|e| e.action_space().clone()),
                    Ok(envs::Space::Discrete { .. })
                ),
            )
            .map_err(Failure)?,
        ),
        None => None,
    };
    let stats = evaluate_episodes(
        &cfg,
        &ck.spec,
        ck.weights(),
        ck.filter(),
        a.episodes,
        a.seed,
        a.explore,
        a.render
            .as_ref()
            .map(|_| &mut sink as &mut rllib::evaluate::FrameSink<'_>),
        recorder.as_mut(),
    )
    .map_err(|e| Failure(format!("{}: {e}", a.checkpoint.display())))?;
    if let (Some(dir), Some(mut rec)) = (&a.output, recorder) {
        rec.finish().map_err(Failure)?;
        say!("Recorded {} episodes into {}", a.episodes, dir.display());
    }
    if let (Some(path), Some(g)) = (&a.render, gif) {
        let n = g.finish().map_err(Failure)?;
        say!("Wrote {n} frames of episode 0 to {}", path.display());
    }
    say!(
        "Evaluated {} ({} on {}, iteration {}) for {} episodes, {} actions:",
        a.checkpoint.display(),
        ck.algorithm,
        ck.env,
        ck.counters().iteration,
        a.episodes,
        if a.explore { "sampled" } else { "greedy" }
    );
    say!(
        "episode_return_mean: {:.2}  min: {:.2}  max: {:.2}",
        stats.return_mean(),
        stats.return_min,
        stats.return_max
    );
    say!(
        "episode_len_mean: {:.2}  min: {}  max: {}",
        stats.len_mean(),
        stats.len_min,
        stats.len_max
    );
    Ok(ExitCode::SUCCESS)
}
