//! `rllib`: train PPO from RLlib-format configs, run the tuned examples, evaluate checkpoints.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use algorithms::Device;
use rllib::algorithm::{Algorithm, TrainResult};
use rllib::checkpoint;
use rllib::config::export::{config_json, to_yaml};
use rllib::config::{ConfigError, Experiment, StopCriterion};
use rllib::evaluate::evaluate_episodes;
use rllib::examples;
use rllib::results::{ResultWriter, new_trial_dir};

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
    /// List the registered environment ids.
    Envs,
}

#[derive(Args)]
struct TrainCmd {
    #[command(subcommand)]
    file: Option<TrainFile>,
    /// The algorithm.
    #[arg(long, default_value = "PPO")]
    algo: String,
    /// The env id.
    #[arg(long, default_value = "CartPole-v1")]
    env: String,
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
        run: RunArgs,
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
    /// Root folder of runs.
    #[arg(long, default_value = "checkpoints")]
    output_dir: PathBuf,
    /// Checkpoint every N iterations.
    #[arg(long, allow_negative_numbers = true)]
    checkpoint_freq: Option<u64>,
    /// Checkpoint when the run ends (the default).
    #[arg(long)]
    checkpoint_at_end: bool,
    /// Continue from a checkpoint folder.
    #[arg(long)]
    restore: Option<PathBuf>,
    /// Where the learner computes: cpu or cuda.
    #[arg(long, value_parser = ["cpu", "cuda"])]
    device: Option<String>,
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
}

/// An error for the user: printed as one line, exit code 1 (2 for usage).
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
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Envs => {
            for id in envs::ids() {
                println!("{id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Train(t) => match t.file {
            Some(TrainFile::File { path, run }) => {
                let exp = Experiment::from_file(&path)?;
                train(exp, &run)
            }
            None => {
                let exp = Experiment::from_flags(&t.algo, &t.env)?;
                train(exp, &t.run)
            }
        },
        Command::Example { command } => match command {
            ExampleCmd::List { filter } => {
                for e in examples::EXAMPLES {
                    let shown = filter
                        .as_deref()
                        .is_none_or(|f| e.id.contains(f) || e.description.contains(f));
                    if shown {
                        println!("{:<24} {}", e.id, e.description);
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            ExampleCmd::Get { id } => {
                print!("{}", find_example(&id)?.yaml);
                Ok(ExitCode::SUCCESS)
            }
            ExampleCmd::Run { id, run } => {
                let e = find_example(&id)?;
                let exp =
                    Experiment::from_yaml(e.yaml, &format!("example {id} (configs/{id}.yaml)"))?;
                train(exp, &run)
            }
        },
        Command::Evaluate(a) => evaluate(&a),
    }
}

fn find_example(id: &str) -> Result<&'static examples::Example, Failure> {
    examples::find(id).ok_or_else(|| {
        let ids: Vec<_> = examples::EXAMPLES.iter().map(|e| e.id).collect();
        let hint = rllib::config::nearest(id, ids.iter().copied())
            .map(|n| format!(" (did you mean '{n}'?)"))
            .unwrap_or_default();
        Failure(format!(
            "unknown example '{id}'{hint}; available: {}",
            ids.join(", ")
        ))
    })
}

/// Why a run stopped.
fn stop_reason(stop: &[StopCriterion], r: &TrainResult) -> Option<String> {
    stop.iter().find_map(|c| {
        let v = r.get(c.metric())?;
        (v.is_finite() && v >= c.threshold())
            .then(|| format!("{} = {v} >= {}", c.metric(), c.threshold()))
    })
}

/// Progress towards the nearest stop criterion, from 0 to 1.
fn progress(stop: &[StopCriterion], r: &TrainResult) -> f64 {
    stop.iter()
        .filter_map(|c| {
            let v = r.get(c.metric())?;
            (v.is_finite() && c.threshold() > 0.0).then(|| (v / c.threshold()).clamp(0.0, 1.0))
        })
        .fold(0.0, f64::max)
}

fn apply_run_args(exp: &mut Experiment, run: &RunArgs) -> Result<(), Failure> {
    if let Some(text) = &run.config {
        exp.apply_config_text(text)?;
    }
    if let Some(text) = &run.stop {
        exp.set_stop_text(text)?;
    }
    if let Some(s) = run.seed {
        exp.config.seed = Some(s);
    }
    if let Some(n) = run.num_env_runners {
        exp.config.num_env_runners = n;
    }
    if let Some(f) = run.checkpoint_freq {
        exp.checkpoint_frequency = f;
    }
    if run.checkpoint_at_end {
        exp.checkpoint_at_end = true;
    }
    match run.device.as_deref() {
        Some("cuda") => exp.config.device = Device::Cuda,
        Some(_) => exp.config.device = Device::Cpu,
        None => {}
    }
    if exp.config.device == Device::Cuda && !cfg!(feature = "cuda") {
        return Err(Failure(
            "--device cuda (or num_gpus_per_learner > 0): this build has no CUDA support; rebuild with `--features cuda`".into(),
        ));
    }
    Ok(())
}

fn fmt_metric(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.1}"),
        _ => "-".to_string(),
    }
}

fn train(mut exp: Experiment, run: &RunArgs) -> Result<ExitCode, Failure> {
    apply_run_args(&mut exp, run)?;
    for w in &exp.warnings {
        eprintln!("warning: {w}");
    }
    let started = Instant::now();
    let restored = match &run.restore {
        Some(path) => Some((path, checkpoint::load(path)?)),
        None => None,
    };
    // A restored run keeps its seed (it seeds replacement env runners) unless one is given.
    let seed = exp
        .config
        .seed
        .or(restored.as_ref().map(|(_, ck)| ck.seed))
        .unwrap_or_else(|| envs::NpRandom::from_entropy().next_u64() >> 1);
    let mut algo = Algorithm::new(exp.config.clone(), seed).map_err(|e| Failure(e.to_string()))?;
    if let Some((path, ck)) = &restored {
        if ck.algorithm != exp.run {
            return Err(Failure(format!(
                "{}: the checkpoint is {}, this run is {}",
                path.display(),
                ck.algorithm,
                exp.run
            )));
        }
        if ck.env != exp.config.env {
            return Err(Failure(format!(
                "{}: the checkpoint is for {}, this run is for {}",
                path.display(),
                ck.env,
                exp.config.env
            )));
        }
        ck.check_env(&exp.config.env)?;
        if ck.spec != *algo.spec() {
            return Err(Failure(format!(
                "{}: the checkpoint's module ({:?}) differs from this config's ({:?})",
                path.display(),
                ck.spec.model,
                algo.spec().model
            )));
        }
        if let Some(w) = algo
            .restore(ck)
            .map_err(|e| Failure(format!("{}: {e}", path.display())))?
        {
            eprintln!("warning: {}: {w}", path.display());
        }
        println!(
            "Restored {} (iteration {}, {} env steps)",
            path.display(),
            ck.counters.iteration,
            ck.counters.env_steps
        );
    }
    let trial_dir =
        new_trial_dir(&run.output_dir, &exp.name, &exp.run, &exp.config.env).map_err(|e| {
            Failure(format!(
                "{}: cannot create the run folder: {e}",
                run.output_dir.display()
            ))
        })?;
    let cfg_json = config_json(algo.config(), seed);
    let params = trial_dir.join("params.yaml");
    std::fs::write(&params, to_yaml(&cfg_json))
        .map_err(|e| Failure(format!("{}: {e}", params.display())))?;
    let mut writer = ResultWriter::open(&trial_dir)
        .map_err(|e| Failure(format!("{}: {e}", trial_dir.display())))?;

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        let presses = AtomicUsize::new(0);
        let _ = ctrlc::set_handler(move || {
            if presses.fetch_add(1, Ordering::SeqCst) > 0 {
                eprintln!("\ninterrupted twice: exiting now");
                std::process::exit(130);
            }
            eprintln!(
                "\ninterrupted: finishing this iteration and writing a checkpoint (Ctrl-C again to quit now)"
            );
            flag.store(true, Ordering::SeqCst);
        });
    }

    println!(
        "Training {} on {} ({}), seed {seed}",
        exp.run, exp.config.env, exp.name
    );
    println!("Results: {}", trial_dir.display());
    let bar = if std::io::stderr().is_terminal() && !exp.stop.is_empty() {
        let b = ProgressBar::new(1000);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:40.cyan/blue} {percent:>3}% {elapsed_precise} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let say = |line: String| match &bar {
        Some(b) => b.println(line),
        None => println!("{line}"),
    };
    say(format!(
        "{:>6} {:>12} {:>12} {:>10} {:>9} {:>11}",
        "iter", "env_steps", "return_mean", "len_mean", "time_s", "env_steps/s"
    ));

    let mut best = f64::NEG_INFINITY;
    let mut last_ckpt: Option<PathBuf> = None;
    let mut last_saved_iter = None;
    let reason;
    loop {
        let r = match algo.train() {
            Ok(r) => r,
            Err(e) => {
                if let Some(b) = &bar {
                    b.abandon();
                }
                let kept = last_ckpt
                    .as_ref()
                    .map(|p| format!("; the last good checkpoint is {}", p.display()))
                    .unwrap_or_default();
                return Err(Failure(format!("training failed: {e}{kept}")));
            }
        };
        for w in algo.take_warnings() {
            say(format!("warning: {w}"));
        }
        writer.write(&r, &cfg_json).map_err(|e| {
            Failure(format!(
                "{}: cannot write results: {e}",
                trial_dir.display()
            ))
        })?;
        let ret = r.get("env_runners/episode_return_mean").unwrap_or(f64::NAN);
        if ret.is_finite() {
            best = best.max(ret);
        }
        let iter = r.get("training_iteration").unwrap_or(0.0) as u64;
        say(format!(
            "{:>6} {:>12} {:>12} {:>10} {:>9.2} {:>11.0}",
            iter,
            fmt_metric(r.get("num_env_steps_sampled_lifetime")).trim_end_matches(".0"),
            fmt_metric(Some(ret)),
            fmt_metric(r.get("env_runners/episode_len_mean")),
            r.get("time_total_s").unwrap_or(0.0),
            r.get("num_env_steps_sampled_lifetime_throughput")
                .unwrap_or(0.0),
        ));
        if let Some(b) = &bar {
            b.set_position((progress(&exp.stop, &r) * 1000.0) as u64);
            b.set_message(format!("return {}", fmt_metric(Some(ret))));
        }
        if exp.checkpoint_frequency > 0 && iter.is_multiple_of(exp.checkpoint_frequency) {
            let p = checkpoint::save(&algo, &trial_dir)?;
            last_ckpt = Some(p);
            last_saved_iter = Some(iter);
        }
        if let Some(why) = stop_reason(&exp.stop, &r) {
            reason = why;
            break;
        }
        if interrupted.load(Ordering::SeqCst) {
            reason = "interrupted (Ctrl-C)".to_string();
            break;
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let at_end = exp.checkpoint_at_end || interrupted.load(Ordering::SeqCst);
    if at_end && last_saved_iter != Some(algo.counters().iteration) {
        last_ckpt = Some(checkpoint::save(&algo, &trial_dir)?);
    }
    let c = algo.counters();
    println!();
    println!("Stopped: {reason}");
    println!(
        "Iterations: {}, env steps: {}, episodes: {}, wall time: {:.2} s",
        c.iteration,
        c.env_steps,
        c.episodes,
        started.elapsed().as_secs_f64()
    );
    println!("Best episode_return_mean: {}", fmt_metric(Some(best)));
    match &last_ckpt {
        Some(p) => println!("Checkpoint: {}", p.display()),
        None => println!("Checkpoint: none written (use --checkpoint-at-end or --checkpoint-freq)"),
    }
    Ok(if interrupted.load(Ordering::SeqCst) {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn evaluate(a: &EvaluateArgs) -> Result<ExitCode, Failure> {
    if a.episodes == 0 {
        return Err(Failure("--episodes 0: expected at least 1 episode".into()));
    }
    let ck = checkpoint::load(&a.checkpoint)?;
    if let Some(algo) = &a.algo
        && *algo != ck.algorithm
    {
        return Err(Failure(format!(
            "{}: --algo {algo} but the checkpoint is {}",
            a.checkpoint.display(),
            ck.algorithm
        )));
    }
    if let Some(env) = &a.env
        && *env != ck.env
    {
        return Err(Failure(format!(
            "{}: --env {env} but the checkpoint was trained on {}",
            a.checkpoint.display(),
            ck.env
        )));
    }
    ck.check_env(&ck.env)?;
    let mut frames = Vec::new();
    let eps = evaluate_episodes(
        &ck.env,
        ck.spec.clone(),
        &ck.weights,
        ck.filter.as_ref(),
        a.episodes,
        a.seed,
        a.explore,
        a.render.as_ref().map(|_| &mut frames),
    )
    .map_err(|e| Failure(format!("{}: {e}", a.checkpoint.display())))?;
    if let Some(path) = &a.render {
        // CartPole's metadata says 50 frames per second (tau = 0.02 s).
        rllib::render::write_gif(path, &frames, 50).map_err(Failure)?;
        println!(
            "Wrote {} frames of episode 0 to {}",
            frames.len(),
            path.display()
        );
    }
    let rets: Vec<f64> = eps.iter().map(|e| e.ret).collect();
    let lens: Vec<f64> = eps.iter().map(|e| f64::from(e.len)).collect();
    let stats = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (mean, min, max)
    };
    let (rm, rmin, rmax) = stats(&rets);
    let (lm, lmin, lmax) = stats(&lens);
    println!(
        "Evaluated {} ({} on {}, iteration {}) for {} episodes, {} actions:",
        a.checkpoint.display(),
        ck.algorithm,
        ck.env,
        ck.counters.iteration,
        a.episodes,
        if a.explore { "sampled" } else { "greedy" }
    );
    println!("episode_return_mean: {rm:.2}  min: {rmin:.2}  max: {rmax:.2}");
    println!("episode_len_mean: {lm:.2}  min: {lmin}  max: {lmax}");
    Ok(ExitCode::SUCCESS)
}
