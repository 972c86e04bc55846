//! `replay_buffer/`: DQN's and SAC's replay buffer, its columns in `buffer.safetensors` and its
//! scalars in `state.json`.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use algorithms::ModuleSpec;
use algorithms::replay::ReplayState;
use safetensors::tensor::Dtype;

use super::io::{Raw, TensorFile, read_struct, write_json, write_safetensors};
use super::json::ReplayJson;
use super::{CheckpointError, cerr, check_count};

const DIR: &str = "replay_buffer";
const COLUMNS: &str = "replay_buffer/buffer.safetensors";
const STATE: &str = "replay_buffer/state.json";

/// Writes the buffer into the checkpoint folder `tmp`.
pub(super) fn write(b: &ReplayState, tmp: &Path) -> Result<(), CheckpointError> {
    let dir = tmp.join(DIR);
    fs::create_dir_all(&dir).map_err(|e| cerr(&dir, e.to_string()))?;
    let cap = b.capacity;
    let columns = [
        Raw::f32("obs", vec![cap, b.obs_dim], &b.obs),
        Raw::f32("actions", vec![cap, b.action_dim], &b.actions),
        Raw::f32("rewards", vec![cap], &b.rewards),
        Raw::f32("next_obs", vec![cap, b.obs_dim], &b.next_obs),
        Raw::u8("ends", &b.ends),
        Raw::u64("episode", &b.episode),
        Raw::u32("step", &b.step),
        Raw::u32("next_slot", &b.next_slot),
        Raw::f64("priorities", &b.priorities),
    ];
    write_safetensors(&tmp.join(COLUMNS), &columns, HashMap::new())?;
    write_json(
        &tmp.join(STATE),
        &ReplayJson {
            obs_dim: b.obs_dim,
            action_dim: b.action_dim,
            capacity: cap,
            next: b.next,
            size: b.size,
            max_priority: b.max_priority,
            open: b.open.clone(),
            next_episode: b.next_episode,
            rng: b.rng.into(),
        },
    )
}

/// Reads the buffer of checkpoint `dir`, if it has one; its shape must fit `spec`.
pub(super) fn read(dir: &Path, spec: &ModuleSpec) -> Result<Option<ReplayState>, CheckpointError> {
    let state_path = dir.join(STATE);
    if fs::symlink_metadata(&state_path).is_err() {
        return Ok(None);
    }
    let j: ReplayJson = read_struct(&state_path)?;
    if j.obs_dim != spec.obs_dim() || j.action_dim != spec.action_dim() {
        return Err(cerr(
            &state_path,
            format!(
                "the buffer holds observations of {} and actions of {} values; the module takes {} and {}",
                j.obs_dim,
                j.action_dim,
                spec.obs_dim(),
                spec.action_dim()
            ),
        ));
    }
    if j.capacity == 0 || j.size > j.capacity || j.next >= j.capacity {
        return Err(cerr(
            &state_path,
            format!(
                "'capacity' {}, 'size' {} and 'next' {} do not fit together (size <= capacity, next < capacity)",
                j.capacity, j.size, j.next
            ),
        ));
    }
    check_count(&state_path, "next_episode", j.next_episode)?;
    if !(j.max_priority.is_finite() && j.max_priority > 0.0) {
        return Err(cerr(
            &state_path,
            format!(
                "'max_priority' is {}; expected a finite number > 0",
                j.max_priority
            ),
        ));
    }
    let cap = j.capacity;
    // Per slot: 2 observations and an action of f32, a reward, an end byte, an episode id,
    // step, next slot and a priority.
    let per_slot = (2 * j.obs_dim as u64 + j.action_dim as u64 + 1) * 4 + 1 + 8 + 4 + 4 + 8;
    let limit = (cap as u64)
        .saturating_mul(per_slot)
        .saturating_add(1 << 20);
    let path = dir.join(COLUMNS);
    let f = TensorFile::read(&path, limit)?;
    let u32s = |key: &str| {
        f.words(key, Dtype::U32, cap, 4, |c| {
            u32::from_le_bytes([c[0], c[1], c[2], c[3]])
        })
    };
    let state = ReplayState {
        obs_dim: j.obs_dim,
        action_dim: j.action_dim,
        capacity: cap,
        next: j.next,
        size: j.size,
        obs: f.f32("obs", &[cap, j.obs_dim])?,
        actions: f.f32("actions", &[cap, j.action_dim])?,
        rewards: f.f32("rewards", &[cap])?,
        next_obs: f.f32("next_obs", &[cap, j.obs_dim])?,
        ends: f.words("ends", Dtype::U8, cap, 1, |c| c[0])?,
        episode: f.words("episode", Dtype::U64, cap, 8, |c| {
            u64::from_le_bytes(c.try_into().unwrap_or_default())
        })?,
        step: u32s("step")?,
        next_slot: u32s("next_slot")?,
        priorities: f.words("priorities", Dtype::F64, cap, 8, |c| {
            f64::from_le_bytes(c.try_into().unwrap_or_default())
        })?,
        max_priority: j.max_priority,
        open: j.open,
        next_episode: j.next_episode,
        rng: j.rng.pair(),
    };
    if let Some(i) = state
        .priorities
        .iter()
        .position(|p| !p.is_finite() || *p < 0.0)
    {
        return Err(cerr(
            &path,
            format!(
                "tensor 'priorities' holds {} at index {i}; expected a finite number >= 0",
                state.priorities[i]
            ),
        ));
    }
    if let Some(i) = state.ends.iter().position(|&e| e > 2) {
        return Err(cerr(
            &path,
            format!(
                "tensor 'ends' holds {} at index {i}; expected 0 (running), 1 (terminated) or 2 (truncated)",
                state.ends[i]
            ),
        ));
    }
    let bad_slot = |n: u32| n != u32::MAX && n as usize >= cap;
    if let Some(i) = state.next_slot.iter().position(|&n| bad_slot(n)) {
        return Err(cerr(
            &path,
            format!(
                "tensor 'next_slot' holds {} at index {i}; expected a slot below {cap}",
                state.next_slot[i]
            ),
        ));
    }
    if let Some(i) = state.open.iter().position(|&(_, n)| bad_slot(n)) {
        return Err(cerr(
            &state_path,
            format!(
                "'open[{i}]' names slot {}; expected a slot below {cap}",
                state.open[i].1
            ),
        ));
    }
    Ok(Some(state))
}
