//! Remote functions and actor types, registered by name at start-up in every binary (the same
//! binary runs on every node, as Ray's C++ workers do). Arguments and results are serde values;
//! a payload that does not decode is an error value.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;
use serde::{Serialize, de::DeserializeOwned};

use super::wire::{decode, encode};

pub(crate) type Function = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;
type Constructor = Arc<dyn Fn(&[u8]) -> Result<Box<dyn RemoteActor>, String> + Send + Sync>;

#[derive(Default)]
struct Registry {
    functions: HashMap<String, Function>,
    actors: HashMap<String, Constructor>,
}

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(|| {
    let mut r = Registry::default();
    super::builtin::register(&mut |name, f| {
        r.functions.insert(name.to_string(), f);
    });
    r.actors.insert(
        super::builtin::PROBE.to_string(),
        Arc::new(|args: &[u8]| {
            let () = decode(args)?;
            Ok(Box::new(super::builtin::Probe::default()) as Box<dyn RemoteActor>)
        }),
    );
    RwLock::new(r)
});

/// An actor type that can live on another node: one method call at a time, by name, with
/// serialised arguments; [`method`] decodes them and encodes the result.
pub trait RemoteActor: Send + 'static {
    /// Runs method `method` on `args` (as encoded by the caller) and returns the encoded
    /// result, or an error message.
    fn call(&mut self, method: &str, args: &[u8]) -> Result<Vec<u8>, String>;
}

/// Decodes `args` as `A`, runs `f`, encodes what it returns: the body of one arm of a
/// [`RemoteActor::call`] `match`.
pub fn method<A: DeserializeOwned, R: Serialize>(
    args: &[u8],
    f: impl FnOnce(A) -> R,
) -> Result<Vec<u8>, String> {
    let a = decode(args)?;
    encode(&f(a))
}

/// The error for a method name an actor does not have.
pub fn unknown_method(actor: &str, method: &str) -> String {
    format!("actor type {actor} has no method {method:?}")
}

/// `f` over serde values as a function over bytes.
pub(crate) fn typed<A, R>(f: impl Fn(A) -> R + Send + Sync + 'static) -> Function
where
    A: DeserializeOwned,
    R: Serialize,
{
    Arc::new(move |bytes: &[u8]| encode(&f(decode(bytes)?)))
}

/// Registers function `name`: callable as a remote task on any node whose binary registered
/// it too. Registering a name again replaces it.
pub fn register_function<A, R, F>(name: &str, f: F)
where
    A: DeserializeOwned,
    R: Serialize,
    F: Fn(A) -> R + Send + Sync + 'static,
{
    REGISTRY
        .write()
        .functions
        .insert(name.to_string(), typed(f));
}

/// Registers actor type `type_name`, built on the node that hosts it by `constructor` from
/// the arguments the caller gave (again on each restart).
pub fn register_actor<A, Args, F>(type_name: &str, constructor: F)
where
    A: RemoteActor,
    Args: DeserializeOwned,
    F: Fn(Args) -> Result<A, String> + Send + Sync + 'static,
{
    let c: Constructor = Arc::new(move |bytes: &[u8]| {
        Ok(Box::new(constructor(decode(bytes)?)?) as Box<dyn RemoteActor>)
    });
    REGISTRY.write().actors.insert(type_name.to_string(), c);
}

pub(crate) fn function(name: &str) -> Result<Function, String> {
    REGISTRY.read().functions.get(name).cloned().ok_or_else(|| {
        format!("no function {name:?} is registered in this binary (register_function at start-up, on every node)")
    })
}

pub(crate) fn constructor(type_name: &str) -> Result<Constructor, String> {
    REGISTRY.read().actors.get(type_name).cloned().ok_or_else(|| {
        format!("no actor type {type_name:?} is registered in this binary (register_actor at start-up, on every node)")
    })
}

pub(crate) fn construct(type_name: &str, args: &[u8]) -> Result<Box<dyn RemoteActor>, String> {
    constructor(type_name)?(args)
}
