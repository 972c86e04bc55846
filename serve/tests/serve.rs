//! Serve over real HTTP: routes, request parts, class state, batching, 503 past the queue,
//! 413, a panicking replica (500, then restarted), composition, autoscaling, a redeploy under
//! load without a dropped request, metrics and a graceful drain.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serve::{
    AutoscalingConfig, BatchHandler, Deployment, Handler, HttpOptions, Request, Response, Serve,
};

/// One HTTP/1.1 request on a fresh connection: the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let (code, body) =
        serve::http_request_with_headers(addr, method, path, &[("X-Test", "yes")], body)
            .expect("an answer");
    (code, String::from_utf8_lossy(&body).into_owned())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path, b"")
}

fn server() -> Serve {
    let rt = ray::init(ray::InitOptions::new().num_cpus(16.0)).unwrap();
    let opts = HttpOptions {
        port: 0,
        max_body_bytes: 4096,
        ..HttpOptions::default()
    };
    serve::start_on(rt, opts).unwrap()
}

struct Counter {
    n: u64,
}

impl Handler for Counter {
    fn call(&mut self, req: Request) -> Response {
        self.n += 1;
        if req.query_param("panic").is_some() {
            panic!("asked to panic");
        }
        if let Some(ms) = req.query_param("sleep_ms") {
            thread::sleep(Duration::from_millis(ms.parse().unwrap()));
        }
        Response::json(&serde_json::json!({ "n": self.n }))
    }
}

#[test]
fn deployments_answer_over_http_with_every_part_of_the_request() {
    let s = server();
    let addr = s.address();
    assert!(addr.ip().is_loopback());
    s.run(Deployment::function("model", |req: Request| {
        let body: serde_json::Value = req.json().unwrap_or(serde_json::Value::Null);
        Response::json(&serde_json::json!({
            "method": req.method,
            "path": req.path,
            "query": req.query_param("query"),
            "header": req.header("x-test"),
            "body": body,
        }))
    }))
    .unwrap();
    s.run(Deployment::new("counter", || Counter { n: 0 }).route_prefix("/api/count"))
        .unwrap();
    s.run(
        Deployment::function("text", |_req: Request| {
            Response::text("teapot").with_status(418)
        })
        .route_prefix("/"),
    )
    .unwrap();

    let (code, body) = get(addr, "/model?query=What%27s+the+meaning+of+life%3F");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/model");
    assert_eq!(v["query"], "What's the meaning of life?");
    assert_eq!(v["header"], "yes");
    let (code, body) = http(addr, "POST", "/model/sub", br#"{"x": [1, 2]}"#);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["method"].as_str(), v["path"].as_str()),
        (Some("POST"), Some("/model/sub"))
    );
    assert_eq!(v["body"]["x"][1], 2);

    // One replica: its state carries from call to call.
    for i in 1..=3 {
        let (code, body) = get(addr, "/api/count");
        assert_eq!(code, 200);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["n"],
            i
        );
    }
    // "/" takes what no longer prefix takes; "/modelx" is not under "/model".
    assert_eq!(get(addr, "/modelx"), (418, "teapot".into()));
    assert_eq!(get(addr, "/-/healthz"), (200, "success".into()));
    let (code, routes) = get(addr, "/-/routes");
    assert_eq!(code, 200);
    let routes: serde_json::Value = serde_json::from_str(&routes).unwrap();
    assert_eq!(
        routes,
        serde_json::json!({"/": "text", "/api/count": "counter", "/model": "model"})
    );

    // 413 past the body limit, before any replica sees it.
    let (code, body) = http(addr, "POST", "/model", &vec![b' '; 5000]);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("4096"), "{body}");

    // A taken prefix and bad options are errors naming the problem.
    let e = s
        .run(Deployment::function("other", |_r: Request| Response::text("")).route_prefix("/model"))
        .unwrap_err();
    assert!(
        e.to_string().contains("taken by deployment \"model\""),
        "{e}"
    );
    let e = s
        .run(Deployment::function("bad", |_r: Request| Response::text("")).route_prefix("/x/"))
        .unwrap_err();
    assert!(e.to_string().contains("route_prefix"), "{e}");
    let e = s
        .run(Deployment::function("zero", |_r: Request| Response::text("")).num_replicas(0))
        .unwrap_err();
    assert!(e.to_string().contains("num_replicas"), "{e}");

    let metrics = get(addr, "/metrics").1;
    assert!(
        metrics.contains("serve_requests_total{deployment=\"model\",code=\"200\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("serve_requests_total{deployment=\"counter\",code=\"200\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("serve_replicas{deployment=\"counter\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("serve_request_latency_seconds_count{deployment=\"counter\"} 3"),
        "{metrics}"
    );
    s.shutdown(Duration::from_secs(5));
}

#[test]
fn a_replica_that_panics_fails_that_request_with_500_and_is_restarted() {
    let s = server();
    let addr = s.address();
    s.run(Deployment::new("counter", || Counter { n: 0 }))
        .unwrap();
    assert_eq!(get(addr, "/counter").0, 200);
    assert_eq!(get(addr, "/counter").0, 200);
    let (code, body) = get(addr, "/counter?panic=1");
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("asked to panic"), "{body}");
    // Rebuilt from its constructor: the count starts again.
    let (code, body) = get(addr, "/counter");
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["n"],
        1
    );
    let metrics = s.metrics();
    assert!(
        metrics.contains("serve_replica_restarts_total{deployment=\"counter\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("serve_requests_total{deployment=\"counter\",code=\"500\"} 1"),
        "{metrics}"
    );
    s.shutdown(Duration::from_secs(5));
}

/// Echoes the size of the batch each request came in.
struct BatchSizes;

impl BatchHandler for BatchSizes {
    fn call_batch(&mut self, requests: Vec<Request>) -> Vec<Response> {
        let n = requests.len();
        requests
            .iter()
            .map(|r| Response::json(&serde_json::json!({"batch": n, "i": r.query_param("i")})))
            .collect()
    }
}

#[test]
fn batching_really_batches() {
    let s = server();
    let addr = s.address();
    s.run(
        Deployment::batched("b", || BatchSizes)
            .max_batch_size(8)
            .batch_wait_timeout_s(2.0),
    )
    .unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let t = Instant::now();
                let (code, body) = get(addr, &format!("/b?i={i}"));
                assert_eq!(code, 200, "{body}");
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["i"], i.to_string(), "each request gets its own answer");
                (v["batch"].as_u64().unwrap(), t.elapsed())
            })
        })
        .collect();
    let got: Vec<(u64, Duration)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    // All 8 arrive within the 2 s window: one full batch, sent as soon as it is full.
    assert!(got.iter().all(|(b, _)| *b == 8), "{got:?}");
    assert!(
        got.iter().all(|(_, t)| *t < Duration::from_millis(1500)),
        "a full batch waits for no timeout: {got:?}"
    );
    let metrics = s.metrics();
    assert!(
        metrics.contains("serve_batches_total{deployment=\"b\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("serve_batched_requests_total{deployment=\"b\"} 8"),
        "{metrics}"
    );
    // A lone request goes after the timeout, alone.
    let t = Instant::now();
    let (code, body) = get(addr, "/b?i=9");
    assert_eq!(code, 200);
    assert!(body.contains("\"batch\":1"), "{body}");
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
    s.shutdown(Duration::from_secs(5));
}

#[test]
fn past_max_ongoing_requests_requests_queue_then_get_503() {
    let s = server();
    let addr = s.address();
    s.run(
        Deployment::new("slow", || Counter { n: 0 })
            .max_ongoing_requests(1)
            .max_queued_requests(2),
    )
    .unwrap();
    // The first takes the replica for a while; two wait; the other three get 503 at once.
    let first = thread::spawn(move || get(addr, "/slow?sleep_ms=1500"));
    thread::sleep(Duration::from_millis(300));
    let rest: Vec<_> = (0..5)
        .map(|_| thread::spawn(move || get(addr, "/slow")))
        .collect();
    let mut codes: Vec<u16> = rest.into_iter().map(|t| t.join().unwrap().0).collect();
    codes.push(first.join().unwrap().0);
    codes.sort_unstable();
    assert_eq!(codes, vec![200, 200, 200, 503, 503, 503]);
    s.shutdown(Duration::from_secs(5));
}

/// Holds a handle to another deployment and calls it without HTTP.
struct Shout {
    upper: serve::DeploymentHandle,
}

impl Handler for Shout {
    fn call(&mut self, req: Request) -> Response {
        let text = req.query_param("text").unwrap_or("").to_string();
        match self.upper.call(Request::post_json("/", &text)) {
            Ok(r) => Response::text(format!("{}!", r.json_body::<String>().unwrap())),
            Err(e) => Response::error(e.status(), &e.to_string()),
        }
    }
}

#[test]
fn a_deployment_calls_another_through_its_handle() {
    let s = server();
    let addr = s.address();
    let upper = s
        .run(Deployment::function("upper", |r: Request| {
            Response::json(&r.json::<String>().unwrap().to_uppercase())
        }))
        .unwrap();
    s.run(Deployment::new("shout", move || Shout {
        upper: upper.clone(),
    }))
    .unwrap();
    assert_eq!(get(addr, "/shout?text=hello"), (200, "HELLO!".into()));
    // The handle from outside any replica, too.
    let h = s.get_handle("upper").unwrap();
    assert_eq!(
        h.call(Request::post_json("/", &"x"))
            .unwrap()
            .json_body::<String>()
            .unwrap(),
        "X"
    );
    assert!(s.get_handle("nope").is_err());
    // A handle outliving its deployment is refused at once, never left waiting.
    s.delete("upper").unwrap();
    let refused = h.call(Request::post_json("/", &"x")).unwrap_err();
    assert!(
        matches!(refused, serve::ServeError::Stopped(ref name) if name == "upper"),
        "{refused:?}"
    );
    assert_eq!(refused.status(), 503);
    s.shutdown(Duration::from_secs(5));
}

#[test]
fn autoscaling_follows_the_load_between_its_bounds() {
    let s = server();
    let addr = s.address();
    s.run(
        Deployment::new("auto", || Counter { n: 0 })
            .max_ongoing_requests(1)
            .autoscaling(AutoscalingConfig {
                min_replicas: 1,
                max_replicas: 3,
                target_ongoing_requests: 1.0,
                upscale_delay: Duration::ZERO,
                downscale_delay: Duration::from_millis(300),
            }),
    )
    .unwrap();
    assert_eq!(s.num_replicas("auto").unwrap(), 1);
    let load: Vec<_> = (0..6)
        .map(|_| thread::spawn(move || get(addr, "/auto?sleep_ms=600").0))
        .collect();
    let t = Instant::now();
    let mut most = 1;
    while t.elapsed() < Duration::from_secs(3) {
        most = most.max(s.num_replicas("auto").unwrap());
        thread::sleep(Duration::from_millis(20));
    }
    assert!(load.into_iter().all(|h| h.join().unwrap() == 200));
    assert_eq!(
        most, 3,
        "six slow requests at one each should bring three replicas"
    );
    let t = Instant::now();
    while s.num_replicas("auto").unwrap() > 1 && t.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        s.num_replicas("auto").unwrap(),
        1,
        "back to min_replicas when idle"
    );
    s.shutdown(Duration::from_secs(5));
}

#[test]
fn a_redeploy_under_load_drops_no_request() {
    let s = server();
    let addr = s.address();
    let version = |v: &'static str| {
        Deployment::function("m", move |_r: Request| {
            thread::sleep(Duration::from_millis(5));
            Response::text(v)
        })
        .num_replicas(2)
        .version(v)
    };
    s.run(version("v1")).unwrap();
    let stop = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut seen = Vec::new();
                while stop.load(Ordering::Relaxed) == 0 {
                    seen.push(get(addr, "/m"));
                }
                seen
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    s.run(version("v2")).unwrap();
    thread::sleep(Duration::from_millis(300));
    stop.store(1, Ordering::Relaxed);
    let seen: Vec<(u16, String)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        seen.iter().all(|(c, _)| *c == 200),
        "{:?}",
        seen.iter().filter(|(c, _)| *c != 200).collect::<Vec<_>>()
    );
    assert!(seen.iter().any(|(_, b)| b == "v1") && seen.iter().any(|(_, b)| b == "v2"));
    assert_eq!(get(addr, "/m").1, "v2");
    let metrics = s.metrics();
    assert!(
        metrics.contains("serve_deployment_info{deployment=\"m\",version=\"v2\"} 1"),
        "{metrics}"
    );
    assert_eq!(s.num_replicas("m").unwrap(), 2);
    s.shutdown(Duration::from_secs(5));
}

#[test]
fn shutdown_drains_requests_in_flight_then_refuses_connections() {
    let s = server();
    let addr = s.address();
    s.run(Deployment::new("slow", || Counter { n: 0 })).unwrap();
    let in_flight = thread::spawn(move || get(addr, "/slow?sleep_ms=700"));
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    s.shutdown(Duration::from_secs(10));
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "shutdown waited for the request"
    );
    let (code, body) = in_flight.join().unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}
