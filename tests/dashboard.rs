//! The dashboard and `rllib plot` end to end.
//!
//! - `rllib plot` draws five seeds of cartpole-ppo as a median in a min-max band, and says
//!   what is wrong with bad arguments; `rllib train` leaves `curves.png` in the run folder.
//! - A cluster of two nodes with a dashboard on the head; a Tune experiment and a Serve
//!   deployment on this machine; a live run on the cluster with `--dashboard`. The JSON
//!   routes show all of it, and headless Chromium (when this machine has it: `tests/browser.sh`
//!   installs it) renders every page, whose numbers must match the run's `progress.csv`.
//!   Screenshots go to `target/dashboard-screenshots/`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rllib");

fn rllib(args: &[&str], cwd: &Path, session: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("RLLIB_SESSION_DIR", session)
        .env_remove("RLLIB_CLUSTER_SECRET")
        .output()
        .expect("the rllib binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Width, height and RGB pixels of a PNG.
fn read_png(p: &Path) -> (u32, u32, Vec<u8>) {
    let d = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
    let mut r = d.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Pixels of exactly this colour.
fn count(rgb: &[u8], c: [u8; 3]) -> usize {
    rgb.chunks(3).filter(|p| *p == c).count()
}

#[test]
fn plot_draws_five_seeds_as_a_median_in_a_band() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session");
    for seed in 1..=5 {
        let s = seed.to_string();
        let out = rllib(
            &[
                "example",
                "run",
                "cartpole-ppo",
                "--seed",
                &s,
                "--output-dir",
                "runs",
                "--stop",
                r#"{"training_iteration": 4}"#,
            ],
            dir.path(),
            &session,
        );
        assert!(out.status.success(), "{}", text(&out));
        // Each run leaves its own curves in its folder.
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Curves: ").map(str::to_string))
            .unwrap_or_else(|| panic!("no curves line: {}", text(&out)));
        let (w, h, _) = read_png(&dir.path().join(line));
        assert_eq!((w, h), (800, 480));
    }
    let out = rllib(
        &["plot", "runs/cartpole-ppo", "--out", "five.png"],
        dir.path(),
        &session,
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("cartpole-ppo: median of 5 seeds, band min-max"),
        "{t}"
    );
    assert!(
        t.contains("Wrote five.png (env_runners/episode_return_mean)"),
        "{t}"
    );
    let (w, h, rgb) = read_png(&dir.path().join("five.png"));
    assert_eq!((w, h), (1000, 600));
    // The median line in the first colour, and the band's tint of it.
    assert!(count(&rgb, [47, 111, 222]) > 1000, "no median line drawn");
    let white = count(&rgb, [255, 255, 255]);
    assert!(white < (w * h) as usize * 97 / 100, "an empty picture");

    // Time on the x axis, another size, another metric.
    let out = rllib(
        &[
            "plot",
            "runs",
            "--x",
            "time",
            "--metric",
            "learners/default_policy/entropy",
            "--width",
            "640",
            "--height",
            "400",
            "--out",
            "sub/entropy.png",
        ],
        dir.path(),
        &session,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read_png(&dir.path().join("sub/entropy.png")).0, 640);

    // Bad arguments: one clear line and a failure, nothing written.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port().to_string();
    for (args, says) in [
        (
            vec!["plot", "runs", "--metric", "nope"],
            "no run has values of \"nope\"; columns they have: ",
        ),
        (
            vec!["plot", "runs", "--x", "epochs"],
            "--x \"epochs\": expected env_steps, time or iteration",
        ),
        (vec!["plot", "missing"], "missing: no such folder"),
        (vec!["plot", "session"], "no runs in it"),
        (
            vec!["plot", "runs", "--width", "5"],
            "expected a width in [200, 8000]",
        ),
        (
            vec![
                "train",
                "--dashboard-host",
                "bogus",
                "--stop",
                r#"{"training_iteration": 1}"#,
            ],
            "--dashboard-host \"bogus\" is not an IP address",
        ),
        (
            vec![
                "train",
                "--dashboard-host",
                "0.0.0.0",
                "--stop",
                r#"{"training_iteration": 1}"#,
            ],
            "beyond this machine, without a secret",
        ),
        (
            vec![
                "train",
                "--dashboard-port",
                &taken,
                "--stop",
                r#"{"training_iteration": 1}"#,
            ],
            "the dashboard cannot listen on 127.0.0.1:",
        ),
        (
            vec!["start", "--head", "--dashboard-host", "bogus"],
            "--dashboard-host \"bogus\" is not an IP address",
        ),
    ] {
        std::fs::create_dir_all(&session).unwrap();
        let out = rllib(&args, dir.path(), &session);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        assert!(t.contains(says), "{args:?}: {t}");
        assert!(!t.contains("panicked"), "{t}");
    }
    assert!(!dir.path().join("curves.png").exists());
}

/// A child that is killed when the test ends, whatever happens.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `rllib args` and returns it with the URL it prints after `prefix`.
fn spawn_with_url(args: &[&str], cwd: &Path, session: &Path, prefix: &str) -> (Proc, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("RLLIB_SESSION_DIR", session)
        .env_remove("RLLIB_CLUSTER_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let url = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(rest) = l.split(prefix).nth(1) {
                    break rest.trim().to_string();
                }
                seen += &l;
                seen.push('\n');
            }
            _ => panic!("`rllib {}` printed no {prefix:?}: {seen}", args.join(" ")),
        }
    };
    // Keep reading, so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (Proc(child), url)
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn get(addr: SocketAddr, path: &str) -> Value {
    let (code, body) = serve::http_request(addr, "GET", path, b"").unwrap();
    assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn wait_until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < within, "waited {within:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Chromium, if this machine has it.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RLLIB_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)))
    .find(|p| p.is_file())
}

/// The page's DOM once its scripts ran, and a screenshot of it.
fn browse(chrome: &Path, url: &str, shot: &Path, profile: &Path) -> String {
    let run = |extra: &[String]| {
        let out = Command::new(chrome)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--no-first-run",
                "--window-size=1400,1000",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .output()
            .expect("chromium runs");
        assert!(out.status.success(), "chromium: {}", text(&out));
        out
    };
    let dom = run(&["--dump-dom".to_string()]);
    run(&[format!("--screenshot={}", shot.display())]);
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

/// The `<tr ...>` element whose opening tag contains `marker`.
fn row<'a>(dom: &'a str, marker: &str) -> &'a str {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in the page"));
    let end = dom[start..].find("</tr>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

/// The exact value a cell holds (`data-col="col" data-value="..."`).
fn cell(row: &str, col: &str) -> String {
    let key = format!("data-col=\"{col}\" data-value=\"");
    let at = row
        .find(&key)
        .unwrap_or_else(|| panic!("no cell {col} in {row}"))
        + key.len();
    row[at..at + row[at..].find('"').unwrap()].to_string()
}

/// The value of `column` at `training_iteration == iteration` in the run's progress.csv.
fn csv_value(run_dir: &Path, iteration: &str, column: &str) -> String {
    let text = std::fs::read_to_string(run_dir.join("progress.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let it = header
        .iter()
        .position(|c| *c == "training_iteration")
        .unwrap();
    let col = header.iter().position(|c| *c == column).unwrap();
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r.get(it) == Some(&iteration))
        .unwrap_or_else(|| panic!("no iteration {iteration} in progress.csv"))[col]
        .to_string()
}

fn screenshots() -> PathBuf {
    // target/<profile>/deps/<this test>: screenshots beside the profiles.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let d = target.join("dashboard-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

const TUNE_YAML: &str = "tune-lr:
    env: CartPole-v1
    run: PPO
    stop:
        training_iteration: 3
    config:
        lr:
            grid_search: [0.001, 0.0003]
        num_env_runners: 0
        train_batch_size: 1000
        num_epochs: 3
        model:
            fcnet_hiddens: [32]
            vf_share_layers: true
";

#[test]
fn the_dashboard_shows_a_cluster_a_live_run_a_tune_experiment_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (cwd, session) = (dir.path(), dir.path().join("session"));
    let runs = cwd.join("runs");
    std::fs::create_dir_all(&runs).unwrap();

    // A head that serves the dashboard, and a second node.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let out = rllib(
        &[
            "start",
            "--head",
            "--port",
            &port,
            "--num-cpus",
            "2",
            "--dashboard-port",
            "0",
            "--dashboard-runs-dir",
            "runs",
        ],
        cwd,
        &session,
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let head_dashboard = addr_of(
        t.lines()
            .find_map(|l| l.strip_prefix("View the dashboard at "))
            .unwrap_or_else(|| panic!("no dashboard line: {t}")),
    );
    let head = format!("127.0.0.1:{port}");
    let secret = std::fs::read_to_string(session.join("secret")).unwrap();
    let out = Command::new(BIN)
        .args(["start", "--address", &head, "--num-cpus", "2"])
        .current_dir(cwd)
        .env("RLLIB_SESSION_DIR", &session)
        .env("RLLIB_CLUSTER_SECRET", &secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    struct Stop(PathBuf, PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = rllib(&["stop", "--grace-period", "2"], &self.0, &self.1);
        }
    }
    let _stop = Stop(cwd.to_path_buf(), session.clone());
    let nodes = wait_until(
        "two live nodes on the head's dashboard",
        Duration::from_secs(20),
        || {
            let c = get(head_dashboard, "/api/cluster");
            let alive = c["nodes"]
                .as_array()?
                .iter()
                .filter(|n| n["alive"] == true)
                .count();
            (alive == 2).then_some(c)
        },
    );
    assert_eq!(nodes["cluster_resources"]["CPU"], 4.0);

    // A Tune experiment, finished.
    std::fs::write(cwd.join("tune-lr.yaml"), TUNE_YAML).unwrap();
    let out = rllib(
        &["train", "file", "tune-lr.yaml", "--output-dir", "runs"],
        cwd,
        &session,
    );
    assert!(out.status.success(), "{}", text(&out));

    // A Serve deployment of one of its checkpoints, with some requests answered.
    let ck = std::fs::read_dir(runs.join("tune-lr"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|e| std::fs::read_dir(e.path()).unwrap().flatten())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("checkpoint_")
        })
        .expect("a trial checkpoint");
    let (_serve, serve_url) = spawn_with_url(
        &["serve", ck.to_str().unwrap(), "--port", "0"],
        cwd,
        &session,
        " at ",
    );
    let serve_addr = addr_of(&serve_url);
    for _ in 0..25 {
        let (code, _) = serve::http_request(
            serve_addr,
            "POST",
            "/",
            br#"{"observation": [0.01, 0.02, 0.03, 0.04]}"#,
        )
        .unwrap();
        assert_eq!(code, 200);
    }

    // A live run on the cluster, with its own dashboard.
    let (mut live, url) = spawn_with_url(
        &[
            "example",
            "run",
            "cartpole-ppo",
            "--address",
            &head,
            "--num-env-runners",
            "2",
            "--output-dir",
            "runs",
            "--stop",
            r#"{"training_iteration": 100000}"#,
            "--dashboard",
            "--dashboard-port",
            "0",
        ],
        cwd,
        &session,
        "View the dashboard at ",
    );
    let dash = addr_of(&url);
    let run = wait_until(
        "the live run's third iteration",
        Duration::from_secs(60),
        || {
            let r = get(dash, "/api/runs");
            r["runs"]
                .as_array()?
                .iter()
                .find(|x| {
                    x["experiment"] == "cartpole-ppo"
                        && x["status"] == "RUNNING"
                        && x["iterations"].as_u64() >= Some(3)
                })
                .cloned()
        },
    );
    let run_dir = PathBuf::from(run["path"].as_str().unwrap());
    let run_dir = if run_dir.is_absolute() {
        run_dir
    } else {
        cwd.join(run_dir)
    };

    // The JSON behind the pages.
    let c = get(dash, "/api/cluster");
    assert_eq!(c["nodes"].as_array().unwrap().len(), 2, "{c}");
    let a = get(dash, "/api/actors");
    let placed: Vec<&Value> = a["actors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["state"] == "ALIVE" && x["node_id"] != "local" && x["node_id"] != "")
        .collect();
    assert!(placed.len() >= 2, "the env runners on the cluster: {a}");
    let p = get(
        dash,
        &format!(
            "/api/runs/progress?run={}",
            run["id"].as_str().unwrap().replace('/', "%2F")
        ),
    );
    let returns = p["data"]["env_runners/episode_return_mean"]
        .as_array()
        .unwrap();
    assert_eq!(
        returns[0].as_f64().unwrap().to_string(),
        csv_value(&run_dir, "1", "env_runners/episode_return_mean")
            .parse::<f64>()
            .unwrap()
            .to_string()
    );
    let tune = get(dash, "/api/tune");
    let exp = tune["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "tune-lr")
        .unwrap_or_else(|| panic!("no tune-lr in {tune}"));
    assert_eq!(exp["varied"], serde_json::json!(["lr"]));
    assert_eq!(exp["trials"].as_array().unwrap().len(), 2);
    assert!(exp["best_trial"].is_string());
    let s = get(dash, "/api/serve");
    let inst = s["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["address"] == serve_addr.to_string().as_str())
        .unwrap_or_else(|| panic!("the serve instance is not listed: {s}"));
    let dep = &inst["status"]["deployments"][0];
    assert!(dep["requests_total"].as_u64() >= Some(25), "{inst}");
    assert!(dep["latency_ms"]["p99"].as_f64().is_some(), "{inst}");

    // Every page in a real browser, when there is one.
    let Some(chrome) = chromium() else {
        eprintln!(
            "SKIPPED the browser half: no Chromium here (tests/browser.sh installs it from Debian's packages)"
        );
        live.0.kill().unwrap();
        return;
    };
    let shots = screenshots();
    let profile = dir.path().join("chromium-profile");
    let page = |name: &str| {
        let dom = browse(
            &chrome,
            &format!("{url}/#/{name}"),
            &shots.join(format!("{name}.png")),
            &profile,
        );
        assert!(
            dom.contains(&format!("data-loaded=\"{name}\"")),
            "the {name} page did not load: {dom}"
        );
        assert!(!dom.contains("Could not load this page"), "{dom}");
        dom
    };
    let cluster = page("cluster");
    assert_eq!(cluster.matches("<tr data-node=").count(), 2, "{cluster}");
    assert_eq!(
        cluster.matches("class=\"state-ALIVE\"").count(),
        2,
        "{cluster}"
    );
    assert!(cluster.contains("id=\"nodes-alive\">2<"), "{cluster}");

    let actors = page("actors");
    assert!(actors.matches("<tr data-actor=").count() >= 2, "{actors}");

    let runs_page = page("runs");
    let live_row = row(
        runs_page.as_str(),
        &format!("data-run=\"{}\"", run["id"].as_str().unwrap()),
    );
    assert!(live_row.contains("RUNNING"), "{live_row}");
    let it = cell(live_row, "training_iteration");
    let shown = cell(live_row, "episode_return_mean");
    let in_csv = csv_value(&run_dir, &it, "env_runners/episode_return_mean");
    assert_eq!(
        shown.parse::<f64>().unwrap(),
        in_csv.parse::<f64>().unwrap(),
        "iteration {it}: the page shows {shown}, progress.csv has {in_csv}"
    );
    let steps = cell(live_row, "env_steps");
    assert_eq!(
        steps,
        csv_value(&run_dir, &it, "num_env_steps_sampled_lifetime")
            .parse::<f64>()
            .unwrap()
            .to_string()
    );
    assert!(
        runs_page.contains("data-chart=\"episode return mean\""),
        "no curve"
    );
    assert!(runs_page.contains("class=\"uplot"), "no chart drawn");

    let tune_page = page("tune");
    assert!(
        tune_page.contains("data-experiment=\"tune-lr\""),
        "{tune_page}"
    );
    assert_eq!(
        tune_page.matches("<tr class=\"best\"").count(),
        1,
        "{tune_page}"
    );
    let best = row(&tune_page, "<tr class=\"best\"");
    let best_value: f64 = cell(best, "metric").parse().unwrap();
    let expected = exp["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["metric"].as_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(best_value, expected);

    let serve_page = page("serve");
    let dep_row = row(&serve_page, "data-deployment=");
    assert!(
        cell(dep_row, "requests").parse::<u64>().unwrap() >= 25,
        "{dep_row}"
    );

    live.0.kill().unwrap();
}
