//! Writing a config back out: as JSON (checkpoint metadata, result.json) and as YAML
//! (`params.yaml`), with RLlib's current key names.

use algorithms::{AlgorithmConfig, Device};
use serde_json::{Value, json};

/// The config with RLlib's key names.
pub fn config_json(c: &AlgorithmConfig, seed: u64) -> Value {
    json!({
        "env": c.env,
        "num_env_runners": c.num_env_runners,
        "num_envs_per_env_runner": c.num_envs_per_env_runner,
        "num_cpus_per_env_runner": c.num_cpus_per_env_runner,
        "rollout_fragment_length": match c.rollout_fragment_length {
            None => json!("auto"),
            Some(n) => json!(n),
        },
        "train_batch_size": c.train_batch_size,
        "minibatch_size": c.minibatch_size,
        "num_epochs": c.num_epochs,
        "lr": c.lr,
        "lr_schedule": c.lr_schedule.as_ref().map(|s| s.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>()),
        "gamma": c.gamma,
        "lambda": c.lambda,
        "clip_param": c.clip_param,
        "vf_clip_param": c.vf_clip_param,
        "vf_loss_coeff": c.vf_loss_coeff,
        "entropy_coeff": c.entropy_coeff,
        "kl_coeff": c.kl_coeff,
        "kl_target": c.kl_target,
        "use_kl_loss": c.use_kl_loss,
        "grad_clip": c.grad_clip,
        "observation_filter": c.observation_filter.name(),
        "model": {
            "fcnet_hiddens": c.model.fcnet_hiddens,
            "fcnet_activation": c.model.fcnet_activation.name(),
            "vf_share_layers": c.model.vf_share_layers,
        },
        "seed": seed,
        "num_gpus_per_learner": if c.device == Device::Cuda { 1 } else { 0 },
        "num_cpus_per_learner": match c.num_cpus_per_learner {
            Some(n) => json!(n),
            None => json!("auto"),
        },
        "learner_backend": c.learner_backend.name(),
        "evaluation_interval": c.evaluation_interval,
        "evaluation_duration": c.evaluation_duration,
        "restart_failed_env_runners": c.restart_failed_env_runners,
        "max_num_env_runner_restarts": c.max_num_env_runner_restarts,
    })
}

/// Renders a JSON value as block-style YAML (the subset `params.yaml` needs).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    write_yaml(v, 0, &mut out);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                && s.parse::<f64>().is_err()
                && !matches!(s.as_str(), "true" | "false" | "null" | "True" | "False");
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        other => other.to_string(),
    }
}

fn write_yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        write_yaml(v, indent + 2, out);
                    }
                    Value::Array(a) if a.iter().any(|x| x.is_array() || x.is_object()) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        for item in a {
                            out.push_str(&format!("{pad}- {}\n", flow(item)));
                        }
                    }
                    other => out.push_str(&format!("{pad}{k}: {}\n", flow(other))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", flow(other))),
    }
}

fn flow(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}: {}", flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => scalar(other),
    }
}
