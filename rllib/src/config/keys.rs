//! The config keys this build understands: each key's RLlib name, its old names, and whether
//! a restored run may change it. Suggestions, alias conflicts and restore checks read this
//! one table.

/// One config key.
#[derive(Debug, Clone, Copy)]
pub struct KeyInfo {
    /// RLlib's current name (the one `params.yaml` and checkpoints write).
    pub name: &'static str,
    /// Old names that mean the same.
    pub aliases: &'static [&'static str],
    /// Whether `--restore` may change it. Keys that shape learned state (the network, the
    /// observation filter, the env, the adapted KL coefficient) may not.
    pub restorable: bool,
}

const fn key(name: &'static str, aliases: &'static [&'static str], restorable: bool) -> KeyInfo {
    KeyInfo {
        name,
        aliases,
        restorable,
    }
}

/// Every key, by RLlib's name.
pub const KEYS: &[KeyInfo] = &[
    key("env", &[], false),
    key(
        "num_env_runners",
        &["num_workers", "num_rollout_workers"],
        true,
    ),
    key("num_envs_per_env_runner", &["num_envs_per_worker"], true),
    key("num_cpus_per_env_runner", &["num_cpus_per_worker"], true),
    key("rollout_fragment_length", &[], true),
    key("train_batch_size", &["train_batch_size_per_learner"], true),
    key("minibatch_size", &["sgd_minibatch_size"], true),
    key("num_epochs", &["num_sgd_iter"], true),
    key("lr", &[], true),
    key("lr_schedule", &[], true),
    key("gamma", &[], true),
    key("lambda", &["lambda_"], true),
    key("clip_param", &[], true),
    key("vf_clip_param", &[], true),
    key("vf_loss_coeff", &[], true),
    key("entropy_coeff", &[], true),
    key("kl_coeff", &[], false),
    key("kl_target", &[], true),
    key("use_kl_loss", &[], true),
    key("grad_clip", &[], true),
    key("observation_filter", &[], false),
    key("model", &[], false),
    key("seed", &[], true),
    key("num_gpus_per_learner", &["num_gpus"], true),
    key("num_cpus_per_learner", &[], true),
    key("learner_backend", &[], true),
    key("evaluation_interval", &[], true),
    key("evaluation_duration", &[], true),
    key(
        "restart_failed_env_runners",
        &["recreate_failed_env_runners", "recreate_failed_workers"],
        true,
    ),
    key(
        "max_num_env_runner_restarts",
        &["max_num_worker_restarts"],
        true,
    ),
    // Accepted for compatibility with RLlib's examples; they change nothing here.
    key("framework", &[], true),
    key("enable_connectors", &[], true),
    key("enable_rl_module_and_learner", &[], true),
    key("enable_env_runner_and_connector_v2", &[], true),
    key("log_level", &[], true),
];

/// The key that `name` (an RLlib name or an old alias) stands for.
pub fn lookup(name: &str) -> Option<&'static KeyInfo> {
    KEYS.iter()
        .find(|k| k.name == name || k.aliases.contains(&name))
}

/// Every accepted name, current and old, for suggestions.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .flat_map(|k| std::iter::once(k.name).chain(k.aliases.iter().copied()))
}

/// The keys a restored run may change.
pub fn restorable_names() -> Vec<&'static str> {
    KEYS.iter()
        .filter(|k| k.restorable && !IGNORED.contains(&k.name))
        .map(|k| k.name)
        .collect()
}

/// Keys that are accepted and have no effect here.
pub const IGNORED: &[&str] = &[
    "framework",
    "enable_connectors",
    "enable_rl_module_and_learner",
    "enable_env_runner_and_connector_v2",
    "log_level",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_name_is_claimed_twice() {
        let mut names: Vec<_> = all_names().collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
