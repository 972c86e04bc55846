//! An actor: a small key-value store whose calls run in the order they were submitted, and
//! whose handle is passed to tasks and to another actor.
//!
//!     cargo run --release --example actor_counter

use std::collections::BTreeMap;

use ray::ActorHandle;

/// A key-value store with a version that counts writes.
#[derive(Default)]
struct Store {
    data: BTreeMap<String, i64>,
    version: u64,
}

impl Store {
    fn put(&mut self, key: &str, value: i64) -> u64 {
        self.data.insert(key.to_string(), value);
        self.version += 1;
        self.version
    }

    fn add(&mut self, key: &str, delta: i64) -> i64 {
        let v = self.data.entry(key.to_string()).or_insert(0);
        *v += delta;
        self.version += 1;
        *v
    }

    fn get(&self, key: &str) -> Option<i64> {
        self.data.get(key).copied()
    }
}

/// An actor that writes into the store it was given a handle to.
struct Auditor {
    store: ActorHandle<Store>,
    writes: u32,
}

fn main() -> Result<(), ray::RayError> {
    let rt = ray::init(ray::InitOptions::new().num_cpus(4.0))?;
    let store = rt.actor(Store::default).name("store").spawn()?;

    // Calls from one caller run in order: the versions come back 1, 2, 3, ...
    let versions: Vec<_> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, k)| store.call(move |s| s.put(k, i as i64)))
        .collect();
    println!("versions: {:?}", ray::get_all(&versions)?);

    // The handle travels into tasks, which call the actor concurrently.
    let adds = (0..10)
        .map(|_| {
            let store = store.clone();
            rt.task(move || store.call(|s| s.add("counter", 1)).get())
                .num_cpus(0.5)
                .remote()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for r in &adds {
        r.get()??;
    }
    println!(
        "counter after 10 tasks: {:?}",
        store.call(|s| s.get("counter")).get()?
    );

    // And into another actor.
    let s2 = store.clone();
    let auditor = rt
        .actor(move || Auditor {
            store: s2.clone(),
            writes: 0,
        })
        .spawn()?;
    let total = auditor
        .call(|a| {
            a.writes += 1;
            a.store.call(|s| s.add("audited", 100)).get()
        })
        .get()??;
    println!("audited: {total}");
    println!(
        "store version: {} (3 puts + 10 adds + 1 audit)",
        store.call(|s| s.version).get()?
    );
    rt.shutdown();
    Ok(())
}
