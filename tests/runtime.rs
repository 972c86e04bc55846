//! Behaviour of the runtime: tasks, objects, actors, resources, failures and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use ray::{InitOptions, RayError, Runtime};

fn runtime(cpus: f64) -> Runtime {
    ray::init(InitOptions::new().num_cpus(cpus).num_gpus(0.0)).unwrap()
}

/// Runs `f` on a thread and fails the test if it has not returned within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("the operation hung past its limit")
}

/// Counts how many bodies run at once; returns a body that records itself.
fn concurrency_probe() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)))
}

fn probe_body(now: &AtomicUsize, peak: &AtomicUsize) {
    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
    peak.fetch_max(n, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(40));
    now.fetch_sub(1, Ordering::SeqCst);
}

#[test]
fn tasks_return_values_through_object_refs() {
    let rt = runtime(2.0);
    let refs: Vec<_> = (0..10u64)
        .map(|x| rt.task(move || x * x).remote().unwrap())
        .collect();
    assert_eq!(
        ray::get_all(&refs).unwrap(),
        (0..10u64).map(|x| x * x).collect::<Vec<_>>()
    );
}

#[test]
fn put_then_get_shares_one_value() {
    let rt = runtime(1.0);
    let r = rt.put(vec![1.0f32; 1000]);
    let a = r.get_arc().unwrap();
    let b = r.clone().get_arc().unwrap();
    assert!(Arc::ptr_eq(&a, &b), "get must not copy a put object");
    assert_eq!(r.get().unwrap().len(), 1000);
}

#[test]
fn object_ref_arguments_chain_tasks() {
    let rt = runtime(2.0);
    let a = rt.task(|| 3u32).remote().unwrap();
    let b = rt.task_with(a.clone(), |x| x + 1).remote().unwrap();
    let c = rt.task_with((a, b), |(x, y)| x * 10 + y).remote().unwrap();
    assert_eq!(c.get().unwrap(), 34);
    let parts: Vec<_> = (1..=4u32)
        .map(|i| rt.task(move || i).remote().unwrap())
        .collect();
    let sum = rt
        .task_with(parts, |v: Vec<u32>| v.iter().sum::<u32>())
        .remote()
        .unwrap();
    assert_eq!(sum.get().unwrap(), 10);
}

#[test]
fn a_task_waits_for_an_unfinished_argument() {
    let rt = runtime(2.0);
    let slow = rt
        .task(|| {
            thread::sleep(Duration::from_millis(100));
            5u8
        })
        .remote()
        .unwrap();
    let after = rt.task_with(slow.clone(), |x| x * 2).remote().unwrap();
    assert!(!slow.is_ready());
    assert_eq!(after.get().unwrap(), 10);
    assert!(slow.is_ready());
}

#[test]
fn a_failed_argument_fails_the_dependent_task() {
    let rt = runtime(2.0);
    let bad = rt
        .task(|| -> u32 { panic!("upstream broke") })
        .max_retries(0)
        .remote()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = Arc::clone(&ran);
    let dependent = rt
        .task_with(bad, move |x| {
            ran2.fetch_add(1, Ordering::SeqCst);
            x
        })
        .remote()
        .unwrap();
    match dependent.get() {
        Err(RayError::TaskFailed { message, .. }) => assert!(message.contains("upstream broke")),
        other => panic!("expected the upstream failure, got {other:?}"),
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the dependent must not run");
}

#[test]
fn two_cpus_run_at_most_two_one_cpu_tasks_at_once() {
    let rt = runtime(2.0);
    let (now, peak) = concurrency_probe();
    let refs: Vec<_> = (0..8)
        .map(|_| {
            let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
            rt.task(move || probe_body(&now, &peak)).remote().unwrap()
        })
        .collect();
    ray::get_all(&refs).unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert_eq!(rt.available_resources().get(ray::CPU), 2.0);
}

#[test]
fn fractional_cpus_pack_tasks() {
    let rt = runtime(1.0);
    let (now, peak) = concurrency_probe();
    let refs: Vec<_> = (0..8)
        .map(|_| {
            let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
            rt.task(move || probe_body(&now, &peak))
                .num_cpus(0.25)
                .remote()
                .unwrap()
        })
        .collect();
    ray::get_all(&refs).unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 4);
}

#[test]
fn custom_resources_limit_concurrency() {
    let rt = ray::init(
        InitOptions::new()
            .num_cpus(4.0)
            .resource("accelerator", 1.0),
    )
    .unwrap();
    let (now, peak) = concurrency_probe();
    let refs: Vec<_> = (0..4)
        .map(|_| {
            let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
            rt.task(move || probe_body(&now, &peak))
                .resource("accelerator", 1.0)
                .remote()
                .unwrap()
        })
        .collect();
    ray::get_all(&refs).unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 1);
}

#[test]
fn a_request_that_can_never_fit_is_an_error_at_submit() {
    let rt = runtime(2.0);
    match rt.task(|| ()).num_cpus(3.0).remote() {
        Err(RayError::Infeasible { requested, total }) => {
            assert!(requested.contains("CPU: 3"), "{requested}");
            assert!(total.contains("CPU: 2"), "{total}");
        }
        other => panic!("expected Infeasible, got {other:?}"),
    }
    assert!(matches!(
        rt.task(|| ()).resource("TPU", 1.0).remote(),
        Err(RayError::Infeasible { .. })
    ));
    assert!(matches!(
        rt.task(|| ()).num_gpus(1.0).remote(),
        Err(RayError::Infeasible { .. })
    ));
    assert!(matches!(
        rt.task(|| ()).num_cpus(-1.0).remote(),
        Err(RayError::InvalidResources(_))
    ));
    assert!(matches!(
        rt.actor(|| 0u8).num_cpus(5.0).spawn(),
        Err(RayError::Infeasible { .. })
    ));
}

#[test]
fn resources_are_reported() {
    let rt = ray::init(
        InitOptions::new()
            .num_cpus(8.0)
            .num_gpus(0.0)
            .memory(1 << 30)
            .resource("custom", 2.0),
    )
    .unwrap();
    let total = rt.cluster_resources();
    assert_eq!(total.get(ray::CPU), 8.0);
    assert_eq!(total.get(ray::GPU), 0.0);
    assert_eq!(total.get(ray::MEMORY), (1u64 << 30) as f64);
    assert_eq!(total.get("custom"), 2.0);
    let detected = ray::init(InitOptions::new()).unwrap();
    assert_eq!(
        detected.cluster_resources().get(ray::CPU),
        ray::detect_cpus() as f64
    );
}

#[test]
fn a_panicking_task_is_an_error_carrying_its_message() {
    let rt = runtime(1.0);
    let r = rt
        .task(|| -> u32 { panic!("bad input 42") })
        .name("parse")
        .max_retries(0)
        .remote()
        .unwrap();
    match r.get() {
        Err(RayError::TaskFailed {
            task,
            message,
            attempts,
        }) => {
            assert_eq!(task, "parse");
            assert_eq!(message, "bad input 42");
            assert_eq!(attempts, 1);
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    // The runtime is still usable.
    assert_eq!(rt.task(|| 1).remote().unwrap().get().unwrap(), 1);
}

#[test]
fn failed_tasks_retry_up_to_max_retries() {
    let rt = runtime(1.0);
    let flaky = |fail_times: usize, retries: u32| {
        let runs = Arc::new(AtomicUsize::new(0));
        let r2 = Arc::clone(&runs);
        let r = rt
            .task(move || {
                if r2.fetch_add(1, Ordering::SeqCst) < fail_times {
                    panic!("worker lost");
                }
                "done"
            })
            .max_retries(retries)
            .remote()
            .unwrap();
        (r.get(), runs.load(Ordering::SeqCst))
    };
    assert_eq!(flaky(2, 2), (Ok("done"), 3));
    let (res, runs) = flaky(2, 1);
    assert_eq!(runs, 2);
    assert!(matches!(res, Err(RayError::TaskFailed { attempts: 2, .. })));
    // Ray's default is 3 retries.
    assert_eq!(flaky(3, ray::DEFAULT_MAX_RETRIES), (Ok("done"), 4));
}

#[test]
fn get_with_a_timeout_gives_up_and_can_be_retried() {
    let rt = runtime(1.0);
    let r = rt
        .task(|| {
            thread::sleep(Duration::from_millis(300));
            7
        })
        .remote()
        .unwrap();
    assert_eq!(
        r.get_timeout(Duration::from_millis(10)),
        Err(RayError::Timeout(Duration::from_millis(10)))
    );
    assert_eq!(r.get_timeout(Duration::from_secs(30)), Ok(7));
}

#[test]
fn wait_returns_the_ready_subset() {
    let rt = runtime(2.0);
    let fast = rt.task(|| 1).remote().unwrap();
    let slow = rt
        .task(|| {
            thread::sleep(Duration::from_secs(2));
            2
        })
        .remote()
        .unwrap();
    fast.get().unwrap();
    let (ready, not_ready) = ray::wait(
        &[slow.clone(), fast.clone()],
        1,
        Some(Duration::from_secs(10)),
    );
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].id(), fast.id());
    assert_eq!(not_ready[0].id(), slow.id());
    let (ready, not_ready) = ray::wait(
        std::slice::from_ref(&slow),
        1,
        Some(Duration::from_millis(10)),
    );
    assert!(ready.is_empty());
    assert_eq!(not_ready.len(), 1);
}

#[test]
fn get_async_resolves_in_an_async_context() {
    let rt = runtime(1.0);
    let r = rt
        .task(|| {
            thread::sleep(Duration::from_millis(50));
            "async"
        })
        .remote()
        .unwrap();
    let exec = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let v = exec.block_on(r.get_async()).unwrap();
    assert_eq!(*v, "async");
}

#[test]
fn compute_runs_on_worker_threads_not_the_executor() {
    let rt = runtime(1.0);
    let name = || thread::current().name().unwrap_or("").to_string();
    let t = rt.task(name).remote().unwrap().get().unwrap();
    assert!(t.starts_with("ray-worker-"), "{t}");
    let a = rt.actor(|| ()).name("probe").spawn().unwrap();
    let t = a.call(move |_| name()).get().unwrap();
    assert_eq!(t, "ray-actor-probe");
}

#[derive(Default)]
struct Counter {
    log: Vec<u32>,
}

#[test]
fn actor_calls_run_in_submission_order() {
    let rt = runtime(2.0);
    let a = rt.actor(Counter::default).spawn().unwrap();
    for i in 0..200 {
        let _ = a.call(move |c| c.log.push(i));
    }
    let log = a.call(|c| c.log.clone()).get().unwrap();
    assert_eq!(log, (0..200).collect::<Vec<_>>());
}

#[test]
fn actor_handles_travel_into_tasks_and_other_actors() {
    let rt = runtime(2.0);
    let counter = rt.actor(Counter::default).spawn().unwrap();
    let h = counter.clone();
    let from_task = rt
        .task(move || h.call(|c| c.log.push(1)).get())
        .remote()
        .unwrap();
    from_task.get().unwrap().unwrap();
    let h = counter.clone();
    let relay = rt.actor(move || h.clone()).spawn().unwrap();
    relay
        .call(|h| h.call(|c| c.log.push(2)).get())
        .get()
        .unwrap()
        .unwrap();
    assert_eq!(counter.call(|c| c.log.clone()).get().unwrap(), vec![1, 2]);
}

#[test]
fn a_panicking_method_restarts_the_actor_then_kills_it() {
    let rt = runtime(1.0);
    let builds = Arc::new(AtomicUsize::new(0));
    let b = Arc::clone(&builds);
    let a = rt
        .actor(move || {
            b.fetch_add(1, Ordering::SeqCst);
            Counter::default()
        })
        .max_restarts(1)
        .spawn()
        .unwrap();
    a.call(|c| c.log.push(1)).get().unwrap();
    match a.call(|_| -> u8 { panic!("boom") }).get() {
        Err(RayError::ActorTaskFailed { message, .. }) => assert_eq!(message, "boom"),
        other => panic!("expected ActorTaskFailed, got {other:?}"),
    }
    // Rebuilt from its constructor: the state is fresh.
    assert_eq!(a.call(|c| c.log.len()).get().unwrap(), 0);
    assert_eq!(a.num_restarts(), 1);
    assert_eq!(builds.load(Ordering::SeqCst), 2);
    assert!(a.call(|_| -> u8 { panic!("boom again") }).get().is_err());
    match a.call(|c| c.log.len()).get() {
        Err(RayError::ActorDied { cause, .. }) => assert!(cause.contains("boom again"), "{cause}"),
        other => panic!("expected ActorDied, got {other:?}"),
    }
    assert!(a.is_dead());
}

#[test]
fn an_actor_from_a_value_restarts_from_that_value() {
    let rt = runtime(1.0);
    let a = rt
        .actor_from(vec![1, 2, 3])
        .max_restarts(1)
        .spawn()
        .unwrap();
    a.call(|v| v.push(4)).get().unwrap();
    assert_eq!(a.call(|v| v.len()).get().unwrap(), 4);
    assert!(
        a.call(|v| -> () { panic!("corrupt {}", v.len()) })
            .get()
            .is_err()
    );
    assert_eq!(a.call(|v| v.clone()).get().unwrap(), vec![1, 2, 3]);
}

#[test]
fn a_failing_constructor_kills_the_actor() {
    let rt = runtime(1.0);
    let a = rt
        .actor(|| -> Counter { panic!("no config") })
        .spawn()
        .unwrap();
    match a.call(|c| c.log.len()).get() {
        Err(RayError::ActorDied { cause, .. }) => assert!(cause.contains("no config"), "{cause}"),
        other => panic!("expected ActorDied, got {other:?}"),
    }
}

#[test]
fn a_killed_actor_fails_later_calls_and_frees_its_resources() {
    let rt = runtime(2.0);
    let a = rt.actor(Counter::default).num_cpus(2.0).spawn().unwrap();
    a.call(|c| c.log.push(1)).get().unwrap();
    assert_eq!(rt.available_resources().get(ray::CPU), 0.0);
    // A task that needs a CPU waits for the actor's.
    let t = rt.task(|| 9).remote().unwrap();
    assert!(
        t.get_timeout(Duration::from_millis(100))
            .unwrap_err()
            .is_timeout()
    );
    a.kill();
    assert!(matches!(
        a.call(|c| c.log.len()).get(),
        Err(RayError::ActorDied { .. })
    ));
    assert_eq!(t.get_timeout(Duration::from_secs(10)), Ok(9));
}

/// Threads of this process whose name is `name` (Linux truncates names to 15 bytes).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|comm| comm.trim_end() == name)
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn an_actor_that_stops_ends_its_thread_while_handles_remain() {
    let rt = runtime(2.0);
    // Killed while its thread waits for calls.
    let killed = rt.actor(Counter::default).name("zk").spawn().unwrap();
    killed.call(|c| c.log.push(1)).get().unwrap();
    assert_eq!(threads_named("ray-actor-zk"), 1);
    killed.kill();
    // Dead after a panic with no restarts left.
    let broken = rt.actor(Counter::default).name("zp").spawn().unwrap();
    broken.call(|c| c.log.push(1)).get().unwrap();
    assert_eq!(threads_named("ray-actor-zp"), 1);
    assert!(broken.call(|_| panic!("boom")).get().is_err());
    within(Duration::from_secs(10), || {
        while threads_named("ray-actor-zk") + threads_named("ray-actor-zp") > 0 {
            thread::sleep(Duration::from_millis(10));
        }
    });
    // Both handles are still held, and calls on them fail.
    assert!(matches!(
        killed.call(|c| c.log.len()).get(),
        Err(RayError::ActorDied { .. })
    ));
    assert!(matches!(
        broken.call(|c| c.log.len()).get(),
        Err(RayError::ActorDied { .. })
    ));
}

#[test]
fn shutdown_with_work_in_flight_does_not_hang() {
    let rt = runtime(1.0);
    let running = rt
        .task(|| {
            thread::sleep(Duration::from_secs(30));
            1
        })
        .remote()
        .unwrap();
    let queued = rt.task(|| 2).remote().unwrap();
    let blocked = rt.task_with(running.clone(), |x| x + 1).remote().unwrap();
    let actor = rt.actor(Counter::default).spawn().unwrap();
    let call = actor.call(|_| thread::sleep(Duration::from_secs(30)));
    thread::sleep(Duration::from_millis(50));
    let rt2 = rt.clone();
    within(Duration::from_secs(5), move || rt2.shutdown());
    let gets = within(Duration::from_secs(5), move || {
        (running.get(), queued.get(), blocked.get(), call.get())
    });
    assert_eq!(gets.0, Err(RayError::Shutdown));
    assert_eq!(gets.1, Err(RayError::Shutdown));
    assert_eq!(gets.2, Err(RayError::Shutdown));
    assert!(matches!(gets.3, Err(RayError::ActorDied { .. })));
    assert!(matches!(rt.task(|| 1).remote(), Err(RayError::Shutdown)));
}

/// A registered actor type for the local remote-actor test: a counter that panics on `boom`.
struct Tally(i64);

impl ray::cluster::RemoteActor for Tally {
    fn call(&mut self, method: &str, args: &[u8]) -> Result<Vec<u8>, String> {
        match method {
            "add" => ray::cluster::method(args, |n: i64| {
                self.0 += n;
                self.0
            }),
            "boom" => ray::cluster::method(args, |()| -> i64 { panic!("boom") }),
            _ => Err(ray::cluster::unknown_method("test.Tally", method)),
        }
    }
}

#[test]
fn registered_work_runs_in_process_without_a_cluster() {
    ray::cluster::register_actor("test.Tally", |start: i64| {
        if start < 0 {
            Err(format!("start {start} is negative"))
        } else {
            Ok(Tally(start))
        }
    });
    let rt = runtime(2.0);
    assert!(!rt.is_cluster());
    // A registered function, by name.
    let n = rt
        .remote_task("ray.len")
        .arg(&serde_bytes::ByteBuf::from(vec![0u8; 10]))
        .remote::<u64>()
        .unwrap();
    assert_eq!(n.get().unwrap(), 10);
    // A registered actor type, by name: calls in order, on this process's scheduler.
    let a = rt
        .remote_actor("test.Tally")
        .args(&5i64)
        .num_cpus(1.0)
        .spawn()
        .unwrap();
    assert_eq!(a.node_id().as_deref(), Some("local"));
    let r: Vec<_> = (1..=3)
        .map(|i| a.call::<_, i64>("add", &i).unwrap())
        .collect();
    let got: Vec<i64> = r.iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(got, [6, 8, 11]);
    // Its CPU is held while it lives.
    assert_eq!(rt.available_resources().get(ray::CPU), 1.0);
    // An unknown method and a bad argument are error values; a panic rebuilds it fresh.
    let e = a.call::<_, i64>("nope", &()).unwrap().get().unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = a.call::<_, i64>("add", &()).unwrap().get().unwrap_err();
    assert!(matches!(e, RayError::ActorTaskFailed { .. }), "{e}");
    assert!(a.call::<_, i64>("boom", &()).unwrap().get().is_err());
    assert_eq!(a.call::<_, i64>("add", &1i64).unwrap().get().unwrap(), 6);
    // (As on a node, a method's panic rebuilds the state in place: not a restart.)
    assert_eq!(a.num_restarts(), 0);
    // A task taking another's result waits for it without holding a CPU: with one of the two
    // CPUs held by the actor, the producer (2 CPUs) waits for it, and the consumer must not
    // take the free CPU meanwhile.
    let producer = rt
        .remote_task("ray.zeros")
        .arg(&10u64)
        .num_cpus(2.0)
        .remote_ref::<serde_bytes::ByteBuf>()
        .unwrap();
    let consumer = rt
        .remote_task("ray.len")
        .arg_ref(&producer)
        .remote::<u64>()
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    a.kill();
    assert_eq!(consumer.get_timeout(Duration::from_secs(10)).unwrap(), 10);
    assert!(a.is_dead());
    assert!(a.call::<_, i64>("add", &1i64).unwrap().get().is_err());
    // Objects by reference work the same way in one process.
    let made = rt
        .remote_task("ray.zeros")
        .arg(&1000u64)
        .remote_ref::<serde_bytes::ByteBuf>()
        .unwrap();
    let n = rt
        .remote_task("ray.len")
        .arg_ref(&made)
        .remote::<u64>()
        .unwrap();
    assert_eq!(n.get().unwrap(), 1000);
    assert_eq!(made.get().unwrap().len(), 1000);
    let put = rt
        .put_remote(&serde_bytes::ByteBuf::from(vec![1u8; 7]))
        .unwrap();
    let n = rt
        .remote_task("ray.len")
        .arg_ref(&put)
        .remote::<u64>()
        .unwrap();
    assert_eq!(n.get().unwrap(), 7);
    // A constructor's error, an unknown type: errors from spawn.
    let e = rt
        .remote_actor("test.Tally")
        .args(&-1i64)
        .spawn()
        .unwrap_err();
    assert!(e.to_string().contains("negative"), "{e}");
    let e = rt.remote_actor("no.Such").spawn().unwrap_err();
    assert!(e.to_string().contains("no.Such"), "{e}");
}
