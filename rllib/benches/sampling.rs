//! Sampling throughput: env runners stepping CartPole-v1 with a 64×64 tanh policy's batched
//! inference and action sampling, no learning. One runner in this thread, then 1 and 2 runner
//! actors on the runtime in parallel.
//!
//!     cargo bench -p rllib --bench sampling
//!
//! Prints the median of 5 runs, in env steps per second.

use std::time::Instant;

use algorithms::{ActionSpec, Activation, AlgorithmConfig, ModelConfig, ModuleSpec, PpoModuleSpec};
use rllib::env_runner::EnvRunner;

const RUNS: usize = 11;
const STEPS_PER_ENV: usize = 2048;

fn config() -> (AlgorithmConfig, ModuleSpec) {
    let model = ModelConfig {
        fcnet_hiddens: vec![64, 64],
        fcnet_activation: Activation::Tanh,
        vf_share_layers: false,
        ..Default::default()
    };
    let cfg = AlgorithmConfig {
        num_envs_per_env_runner: 32,
        model: model.clone(),
        ..Default::default()
    };
    let spec = PpoModuleSpec {
        obs_dim: 4,
        action: ActionSpec::Discrete(2),
        model,
    };
    (cfg, ModuleSpec::Ppo(spec))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (cfg, spec) = config();
    let w = spec.init(1);
    let per_call = (STEPS_PER_ENV * cfg.num_envs_per_env_runner) as f64;

    let mut local = EnvRunner::new(&cfg, &spec, &w, 1, 1).expect("CartPole-v1 exists");
    local.sample(64);
    // The same runner recording every finished episode to Parquet (RLlib's `output`),
    // measured alternately with the plain one.
    let out = tempfile::tempdir().expect("a temporary folder");
    let rec_cfg = AlgorithmConfig {
        output: Some(out.path().display().to_string()),
        ..cfg.clone()
    };
    let mut recording = EnvRunner::new(&rec_cfg, &spec, &w, 1, 1).expect("CartPole-v1 exists");
    recording.sample(64);
    let (mut plain, mut recorded) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        for (runner, rates) in [(&mut local, &mut plain), (&mut recording, &mut recorded)] {
            let t = Instant::now();
            std::hint::black_box(runner.sample(STEPS_PER_ENV));
            rates.push(per_call / t.elapsed().as_secs_f64());
        }
    }
    let (single, single_recording) = (median(plain), median(recorded));
    drop(recording);
    let files = std::fs::read_dir(out.path()).map_or(0, Iterator::count);

    let rt = ray::init(ray::InitOptions::new().num_cpus(2.0)).expect("the runtime starts");
    // Three actors: one alone, then two together; measured alternately so that a change in
    // the machine's load affects both cases alike.
    let actors: Vec<_> = (1..=3)
        .map(|i| {
            let (c, s, w) = (cfg.clone(), spec.clone(), w.clone());
            rt.actor(move || EnvRunner::new(&c, &s, &w, 1, i).expect("CartPole-v1 exists"))
                .spawn()
                .expect("the actor starts")
        })
        .collect();
    for a in &actors {
        a.call(|r: &mut EnvRunner| r.sample(64).batch.len())
            .get()
            .expect("warm-up");
    }
    let rate = |group: &[ray::ActorHandle<EnvRunner>]| {
        let t = Instant::now();
        let refs: Vec<_> = group
            .iter()
            .map(|a| a.call(|r: &mut EnvRunner| r.sample(STEPS_PER_ENV).batch.len()))
            .collect();
        let steps: usize = refs.iter().map(|r| r.get().expect("sampled")).sum();
        steps as f64 / t.elapsed().as_secs_f64()
    };
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        one.push(rate(&actors[..1]));
        two.push(rate(&actors[1..]));
    }
    let rates = [median(one), median(two)];
    println!(
        "Sampling CartPole-v1 with a 64x64 tanh policy, 32 envs per runner (median of {RUNS})"
    );
    println!("{:<40} {:>14}", "case", "env steps/s");
    println!("{:<40} {:>14.0}", "1 runner, in this thread", single);
    println!(
        "{:<40} {:>14.0}",
        "1 runner, in this thread, with output", single_recording
    );
    println!(
        "{:<40} {:>14.2}",
        "output's sampling rate / plain",
        single_recording / single
    );
    eprintln!("(output wrote {files} Parquet files)");
    println!("{:<40} {:>14.0}", "1 runner actor", rates[0]);
    println!("{:<40} {:>14.0}", "2 runner actors in parallel", rates[1]);
    println!(
        "{:<40} {:>14.2}",
        "speed-up from 1 to 2 runners",
        rates[1] / rates[0]
    );
}
