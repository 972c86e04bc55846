//! Trials on a cluster's nodes: a class trainable registered by name in every binary (as the
//! runtime's actor types are) runs inside a runtime actor that holds the trial's resources on
//! whichever node has them, as Ray's trials are actors. The controller's side of each trial is
//! a proxy that steps the actor and moves checkpoints between its node and the trial's folder.
//!
//! On a runtime without a cluster the same actor runs in this process, so a remote trainable
//! behaves as a local one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::trainable::{Session, Trainable, TrialFn, class};

/// The runtime actor type a registered trainable runs in.
pub const TRIAL_ACTOR: &str = "tune.Trial";

type Build = Arc<dyn Fn(&Value) -> Result<Box<dyn Trainable>, String> + Send + Sync>;

static TRAINABLES: LazyLock<RwLock<HashMap<String, Build>>> = LazyLock::new(Default::default);

/// Registers class trainable `name`, built on the node that runs the trial by `setup` from
/// its constructor argument (a JSON value, see [`remote_class`]). Call it at start-up in every
/// binary of the cluster, before a node or driver starts.
pub fn register_trainable<T, F>(name: &str, setup: F)
where
    T: Trainable + 'static,
    F: Fn(&Value) -> Result<T, String> + Send + Sync + 'static,
{
    let build: Build = Arc::new(move |v| Ok(Box::new(setup(v)?) as Box<dyn Trainable>));
    TRAINABLES.write().insert(name.to_string(), build);
    ray::register_actor(TRIAL_ACTOR, |(name, arg): (String, String)| {
        let build = TRAINABLES
            .read()
            .get(&name)
            .cloned()
            .ok_or_else(|| format!("no trainable registered as {name:?} in this binary"))?;
        let arg: Value = serde_json::from_str(&arg).map_err(|e| e.to_string())?;
        Ok(Hosted(build(&arg)?))
    });
}

/// A checkpoint folder as (relative path, bytes) per file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Files(Vec<(String, Vec<u8>)>);

impl Files {
    fn read(root: &Path) -> std::io::Result<Files> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)? {
                let p = e?.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p
                        .strip_prefix(root)
                        .map_err(std::io::Error::other)?
                        .to_string_lossy()
                        .replace('\\', "/");
                    out.push((rel, std::fs::read(&p)?));
                }
            }
        }
        Ok(Files(out))
    }

    /// Writes the files under `root`, refusing paths that would leave it.
    fn write(&self, root: &Path) -> Result<(), String> {
        for (rel, bytes) in &self.0 {
            let safe = Path::new(rel)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !safe {
                return Err(format!(
                    "checkpoint file {rel:?}: not a path inside the checkpoint"
                ));
            }
            let p = root.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(())
    }
}

/// A scratch folder on the actor's node, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "tune-trial-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        Ok(Scratch(d))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The trainable inside its actor.
struct Hosted(Box<dyn Trainable>);

impl ray::RemoteActor for Hosted {
    fn call(&mut self, method: &str, args: &[u8]) -> Result<Vec<u8>, String> {
        let t = &mut self.0;
        match method {
            "step" => ray::cluster::method(args, |()| -> Result<String, String> {
                let mut m = t.step()?;
                // Where it ran, as Tune's `pid` field says (the node's process).
                if let Value::Object(o) = &mut m {
                    o.entry("pid").or_insert(Value::from(std::process::id()));
                }
                Ok(m.to_string())
            }),
            "save" => ray::cluster::method(args, |()| -> Result<Option<Files>, String> {
                let dir = Scratch::new()?;
                if !t.save_checkpoint(&dir.0)? {
                    return Ok(None);
                }
                Files::read(&dir.0)
                    .map(Some)
                    .map_err(|e| format!("reading the checkpoint: {e}"))
            }),
            "load" => ray::cluster::method(args, |files: Files| -> Result<(), String> {
                let dir = Scratch::new()?;
                files.write(&dir.0)?;
                t.load_checkpoint(&dir.0)
            }),
            _ => Err(ray::cluster::unknown_method(TRIAL_ACTOR, method)),
        }
    }
}

/// The controller's side of a trial whose trainable runs in an actor.
struct Proxy(ray::RemoteActorHandle);

/// The value of an actor call that returns `Result<R, String>`.
fn wait<R: Clone + Send + Sync + 'static>(
    r: Result<ray::ObjectRef<Result<R, String>>, ray::RayError>,
) -> Result<R, String> {
    r.map_err(|e| e.to_string())?
        .get()
        .map_err(|e| e.to_string())?
}

impl Trainable for Proxy {
    fn step(&mut self) -> Result<Value, String> {
        let text: String = wait(self.0.call("step", &()))?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }

    fn save_checkpoint(&mut self, dir: &Path) -> Result<bool, String> {
        let files: Option<Files> = wait(self.0.call("save", &()))?;
        match files {
            None => Ok(false),
            Some(f) => f.write(dir).map(|()| true),
        }
    }

    fn load_checkpoint(&mut self, dir: &Path) -> Result<(), String> {
        let files = Files::read(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        wait(self.0.call("load", &files))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.0.kill();
    }
}

/// A trainable that runs in a runtime actor holding the trial's resources, on a cluster node
/// when the runtime has a cluster: `prepare(config, session)` turns the trial's config into
/// the argument of the trainable registered as `name` (it runs here, where the trial's folder
/// is: write files there), and Tune steps and checkpoints the actor as a class trainable. Give
/// the tuner [`Tuner::remote_trials`](crate::Tuner::remote_trials) so that the trial's
/// resources go to the actor.
pub fn remote_class<P>(name: &str, prepare: P) -> TrialFn
where
    P: Fn(&Value, &Session) -> Result<Value, String> + Send + Sync + 'static,
{
    let name = name.to_string();
    class(move |config: &Value, session: &Session| {
        let arg = prepare(config, session)?;
        let rt = session
            .runtime
            .clone()
            .ok_or("a remote trainable needs the tuner's runtime")?;
        let mut b = rt
            .remote_actor(TRIAL_ACTOR)
            .args(&(name.clone(), arg.to_string()));
        for (k, v) in &session.resources {
            b = b.resource(k, *v);
        }
        let actor = b
            .spawn()
            .map_err(|e| format!("cannot start the trial's actor: {e}"))?;
        Ok(Proxy(actor))
    })
}
