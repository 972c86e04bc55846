// The dashboard's pages: each one reads its JSON route under /api and redraws every 2 s.
"use strict";

const REFRESH_MS = 2000;
const COLORS = ["#2f6fde", "#d93025", "#188038", "#f29900", "#9334e6", "#12b5cb", "#e8710a", "#5f6368"];
let timer = null;
let page = null;

// Which runs the Runs page overlays, and against what.
const runsState = { selected: null, x: "env_steps", custom: "", detail: null, cache: {} };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

async function api(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function fmt(v, digits) {
  if (v === null || v === undefined || v === "") return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  const d = digits === undefined ? (Math.abs(v) >= 100 ? 2 : 4) : digits;
  return Number(v.toFixed(d)).toString();
}

// A number cell; `data-value` keeps the exact value (the browser test compares it), `data-col`
// names it.
function num(v, digits, col) {
  return el("td", { class: "num", "data-col": col, "data-value": v === null || v === undefined ? "" : String(v) }, fmt(v, digits));
}

function ago(t) {
  const s = Date.now() / 1000 - t;
  if (s < 60) return Math.max(0, Math.round(s)) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ");
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map(h => el("th", { class: h.num ? "num" : null }, h.label || h)))),
    el("tbody", {}, rows));
}

function stateCell(s, col) {
  return el("td", { class: "state-" + s, "data-col": col || "state" }, s);
}

function usage(total, avail, key) {
  const t = total[key] || 0;
  if (!t) return "–";
  const used = t - (avail[key] || 0);
  const scale = key === "memory" ? 1 / (1 << 30) : 1;
  const unit = key === "memory" ? " GiB" : "";
  return fmt(used * scale, 1) + " / " + fmt(t * scale, 1) + unit;
}

function usageCell(total, avail, key) {
  const t = total[key] || 0;
  const used = t ? t - (avail[key] || 0) : 0;
  const frac = t ? Math.min(1, Math.max(0, used / t)) : 0;
  return el("td", { "data-col": key.toLowerCase() },
    el("span", { class: "barbg" }, el("span", { class: "bar", style: "width:" + Math.round(frac * 80) + "px" })),
    usage(total, avail, key));
}

// ---- Cluster ---------------------------------------------------------------------------

async function cluster(main) {
  const c = await api("/api/cluster");
  const alive = c.nodes.filter(n => n.alive).length;
  const res = Object.keys(c.cluster_resources).filter(k => k !== "memory");
  main.replaceChildren(
    el("h2", {}, "Cluster"),
    el("div", { class: "cards" },
      el("div", { class: "card" }, el("div", { class: "v", id: "nodes-alive" }, String(alive)), el("div", { class: "k" }, "nodes alive")),
      el("div", { class: "card" }, el("div", { class: "v", id: "nodes-dead" }, String(c.nodes.length - alive)), el("div", { class: "k" }, "nodes dead")),
      res.map(k => el("div", { class: "card" },
        el("div", { class: "v", "data-resource": k }, usage(c.cluster_resources, c.available_resources, k)),
        el("div", { class: "k" }, k + " used / total")))),
    table(["Node", "Address", "Role", "State", "CPU", "GPU", "Memory", { label: "Objects", num: true }, { label: "PID", num: true }],
      c.nodes.map(n => el("tr", { "data-node": n.node_id },
        el("td", {}, n.node_id),
        el("td", {}, n.address || "(in process)"),
        el("td", {}, n.is_head ? "head" : "worker"),
        stateCell(n.alive ? "ALIVE" : "DEAD"),
        usageCell(n.total, n.available, "CPU"),
        usageCell(n.total, n.available, "GPU"),
        usageCell(n.total, n.available, "memory"),
        num(n.objects), num(n.pid)))));
}

// ---- Actors and tasks -------------------------------------------------------------------

async function actors(main) {
  const a = await api("/api/actors");
  const t = a.tasks;
  const res = r => Object.entries(r).map(([k, v]) => k + ": " + fmt(k === "memory" ? v / (1 << 30) : v, 2) + (k === "memory" ? " GiB" : "")).join(", ");
  main.replaceChildren(
    el("h2", {}, "Tasks"),
    el("div", { class: "cards" }, ["pending", "running", "finished", "failed"].map(k =>
      el("div", { class: "card" }, el("div", { class: "v", "data-task-state": k }, fmt(t[k])), el("div", { class: "k" }, k)))),
    el("h2", {}, "Actors (" + a.actors.length + ")"),
    a.actors.length === 0 ? el("p", { class: "muted" }, "No actors.") :
      table(["Actor ID", "Class", "Name", "State", "Node", { label: "Restarts", num: true }, "Resources", "Death cause"],
        a.actors.map(x => el("tr", { "data-actor": x.actor_id },
          el("td", {}, x.actor_id), el("td", {}, x.class_name), el("td", {}, x.name), stateCell(x.state),
          el("td", {}, x.node_id || "–"), num(x.num_restarts), el("td", {}, res(x.resources)),
          el("td", { class: "wrap" }, x.death_cause || "")))),
    el("h2", {}, "Recent failures"),
    a.failures.length === 0 ? el("p", { class: "muted" }, "None.") :
      table(["When", "Kind", "Name", "Message"], a.failures.map(f => el("tr", {},
        el("td", {}, ago(f.time)), el("td", {}, f.kind), el("td", {}, f.name), el("td", { class: "wrap" }, f.message)))));
}

// ---- Charts ------------------------------------------------------------------------------

const X_AXES = {
  env_steps: { label: "env steps", cols: ["num_env_steps_sampled_lifetime", "env_runners/num_env_steps_sampled_lifetime", "timesteps_total"] },
  time: { label: "time (s)", cols: ["time_total_s"] },
  iteration: { label: "training iteration", cols: ["training_iteration"] },
};

// The first column of `progress` named `name` or ending in `/name`.
function column(progress, names) {
  for (const n of names) {
    if (progress.data[n]) return progress.data[n];
    const hit = progress.columns.find(c => c.endsWith("/" + n));
    if (hit) return progress.data[hit];
  }
  return null;
}

// A line chart of one metric for several series: [{label, x: [...], y: [...]}].
function lineChart(container, title, xLabel, series) {
  const box = el("div", { class: "chart", "data-chart": title }, el("div", { class: "title" }, title));
  container.appendChild(box);
  const usable = series.filter(s => s.x && s.y && s.x.some(v => v !== null));
  if (usable.length === 0) {
    box.appendChild(el("p", { class: "muted" }, "No data."));
    return;
  }
  const tables = usable.map(s => {
    const pts = s.x.map((x, i) => [x, s.y[i]]).filter(p => p[0] !== null).sort((a, b) => a[0] - b[0]);
    return [pts.map(p => p[0]), pts.map(p => p[1])];
  });
  const data = uPlot.join(tables);
  const width = Math.max(360, box.clientWidth - 16);
  new uPlot({
    width, height: 220,
    legend: { show: usable.length <= 8, live: false },
    scales: { x: { time: false } },
    axes: [{ label: xLabel, size: 40 }, { size: 60 }],
    series: [{ label: xLabel }].concat(usable.map((s, i) => ({
      label: s.label, stroke: COLORS[i % COLORS.length], width: 1.6, spanGaps: true, points: { show: false },
    }))),
  }, data, box);
}

// ---- Runs --------------------------------------------------------------------------------

async function progressOf(run) {
  const hit = runsState.cache[run.id];
  if (hit && hit.iterations === run.iterations && run.status !== "RUNNING") return hit.progress;
  const p = await api("/api/runs/progress?run=" + encodeURIComponent(run.id));
  runsState.cache[run.id] = { iterations: run.iterations, progress: p };
  return p;
}

async function runs(main) {
  const r = await api("/api/runs");
  if (runsState.selected === null) {
    // At first: the live runs, else the latest few.
    const live = r.runs.filter(x => x.status === "RUNNING").map(x => x.id);
    runsState.selected = new Set(live.length ? live : r.runs.slice(0, 5).map(x => x.id));
  }
  const chosen = r.runs.filter(x => runsState.selected.has(x.id));
  const progress = await Promise.all(chosen.map(progressOf));
  const retCol = x => x.last["env_runners/episode_return_mean"] ?? x.last["episode_return_mean"] ?? x.last["episode_reward_mean"];
  const stepsCol = x => x.last["num_env_steps_sampled_lifetime"] ?? x.last["env_runners/num_env_steps_sampled_lifetime"] ?? x.last["timesteps_total"];
  const rows = r.runs.map(x => el("tr", { "data-run": x.id },
    el("td", {}, el("input", {
      type: "checkbox", ...(runsState.selected.has(x.id) ? { checked: "" } : {}),
      onchange: e => { e.target.checked ? runsState.selected.add(x.id) : runsState.selected.delete(x.id); refresh(); },
    })),
    el("td", {}, x.experiment || "–"),
    el("td", {}, el("a", { href: "#/runs", onclick: () => { runsState.detail = x.id; refresh(); } }, x.trial)),
    stateCell(x.status, "status"),
    num(x.last.training_iteration, 0, "training_iteration"),
    num(retCol(x), 2, "episode_return_mean"),
    num(stepsCol(x), 0, "env_steps"),
    num(x.last.time_total_s, 2, "time_total_s"),
    el("td", {}, ago(x.modified))));
  const xsel = el("select", { onchange: e => { runsState.x = e.target.value; refresh(); } },
    Object.entries(X_AXES).map(([k, v]) => el("option", { value: k, ...(runsState.x === k ? { selected: "" } : {}) }, v.label)));
  const allCols = [...new Set(progress.flatMap(p => p.columns))].sort();
  const msel = el("select", { onchange: e => { runsState.custom = e.target.value; refresh(); } },
    el("option", { value: "" }, "(another metric…)"),
    allCols.map(c => el("option", { value: c, ...(runsState.custom === c ? { selected: "" } : {}) }, c)));
  const charts = el("div", { class: "charts" });
  main.replaceChildren(
    el("h2", {}, "Runs"),
    el("p", { class: "muted" }, "Under " + r.roots.join(", ") + ". Tick runs to overlay their curves."),
    r.runs.length === 0 ? el("p", { class: "muted" }, "No runs yet: start one with `rllib train`.") :
      table(["", "Experiment", "Trial", "Status", { label: "Iter", num: true }, { label: "Return mean", num: true },
        { label: "Env steps", num: true }, { label: "Time (s)", num: true }, "Updated"], rows),
    el("div", { class: "controls" }, el("label", {}, "x axis ", xsel), el("label", {}, msel)),
    charts);
  const xa = X_AXES[runsState.x];
  const metrics = [
    ["episode return mean", ["env_runners/episode_return_mean", "episode_return_mean", "episode_reward_mean"]],
    ["total loss", ["total_loss"]],
    ["policy loss", ["policy_loss"]],
    ["value loss", ["vf_loss"]],
    ["entropy", ["entropy"]],
    ["KL", ["mean_kl_loss", "kl"]],
    ["throughput (env steps/s)", ["num_env_steps_sampled_lifetime_throughput"]],
  ];
  if (runsState.custom) metrics.push([runsState.custom, [runsState.custom]]);
  for (const [title, names] of metrics) {
    lineChart(charts, title, xa.label, chosen.map((x, i) => ({
      label: (x.experiment ? x.experiment + "/" : "") + x.trial,
      x: column(progress[i], xa.cols),
      y: column(progress[i], names),
    })));
  }
  if (runsState.detail) {
    const run = r.runs.find(x => x.id === runsState.detail);
    if (run) {
      const d = await api("/api/runs/detail?run=" + encodeURIComponent(run.id));
      main.appendChild(el("div", { id: "run-detail" },
        el("h2", {}, "Run " + run.trial),
        el("p", { class: "muted" }, run.path),
        el("h3", {}, "Checkpoints (" + d.checkpoints.length + ")"),
        d.checkpoints.length === 0 ? el("p", { class: "muted" }, "None.") :
          table(["Checkpoint", { label: "Iteration", num: true }, "Written", "Path"], d.checkpoints.map(c =>
            el("tr", {}, el("td", {}, c.name), num(c.iteration), el("td", {}, ago(c.modified)), el("td", {}, c.path)))),
        el("h3", {}, "Config" + (d.config_file ? " (" + d.config_file + ")" : "")),
        el("pre", {}, d.config || "(none written)")));
    }
  }
}

// ---- Tune --------------------------------------------------------------------------------

async function tune(main) {
  const t = await api("/api/tune");
  main.replaceChildren(el("h2", {}, "Tune experiments"));
  if (t.experiments.length === 0) {
    main.appendChild(el("p", { class: "muted" }, "No Tune experiments yet (a search: `rllib train file <yaml> --num-samples N`, or a grid)."));
    return;
  }
  for (const e of t.experiments) {
    const counts = {};
    e.trials.forEach(x => { counts[x.status] = (counts[x.status] || 0) + 1; });
    main.appendChild(el("h3", { "data-experiment": e.name }, e.name));
    main.appendChild(el("p", { class: "muted" },
      e.trials.length + " trials (" + Object.entries(counts).map(([k, v]) => v + " " + k).join(", ") + "); metric " +
      (e.metric || "–") + " (" + e.mode + ")" + (e.finished ? "; finished" : "; running")));
    main.appendChild(table(
      ["Trial", "Status"].concat(e.varied).concat([{ label: e.metric || "metric", num: true }, { label: "Iter", num: true }, { label: "Time (s)", num: true }, "Error"]),
      e.trials.map(x => el("tr", { class: x.trial_id === e.best_trial ? "best" : null, "data-trial": x.trial_id },
        el("td", {}, (x.trial_id === e.best_trial ? "★ " : "") + x.trial_id),
        stateCell(x.status, "status"),
        e.varied.map(k => el("td", { "data-param": k }, fmt(x.params[k]))),
        num(x.metric, 2, "metric"),
        num(x.iterations), num(x.time_total_s, 2),
        el("td", { class: "wrap error" }, x.error || "")))));
    const withRuns = e.trials.filter(x => x.run);
    if (withRuns.length && e.metric) {
      const progress = await Promise.all(withRuns.map(x =>
        api("/api/runs/progress?run=" + encodeURIComponent(x.run)).catch(() => null)));
      const charts = el("div", { class: "charts" });
      main.appendChild(charts);
      lineChart(charts, e.metric + " per trial", "training iteration", withRuns.map((x, i) => ({
        label: x.trial_id + (x.trial_id === e.best_trial ? " ★" : ""),
        x: progress[i] ? column(progress[i], ["training_iteration"]) : null,
        y: progress[i] ? column(progress[i], [e.metric]) : null,
      })));
    }
  }
}

// ---- Serve -------------------------------------------------------------------------------

async function serve(main) {
  const s = await api("/api/serve");
  main.replaceChildren(el("h2", {}, "Serve"));
  if (s.instances.length === 0) {
    main.appendChild(el("p", { class: "muted" }, "No Serve instance runs on this machine (start one with `rllib serve <checkpoint>`)."));
    return;
  }
  for (const i of s.instances) {
    main.appendChild(el("h3", {}, "http://" + i.address + (i.pid ? "  (pid " + i.pid + ")" : "")));
    if (i.error) {
      main.appendChild(el("p", { class: "error" }, i.error));
      continue;
    }
    const ds = i.status.deployments || [];
    main.appendChild(table(["Deployment", "Route", "Version", { label: "Replicas", num: true }, { label: "Requests", num: true },
      { label: "Requests/s", num: true }, { label: "p50 ms", num: true }, { label: "p90 ms", num: true }, { label: "p99 ms", num: true },
      { label: "4xx", num: true }, { label: "5xx", num: true }, { label: "Queued", num: true }, { label: "Ongoing", num: true }, { label: "Restarts", num: true }],
      ds.map(d => el("tr", { "data-deployment": d.name },
        el("td", {}, d.name), el("td", {}, d.route_prefix), el("td", {}, d.version || "–"),
        num(d.replicas, 0, "replicas"), num(d.requests_total, 0, "requests"), num(d.requests_per_s, 1, "requests_per_s"),
        num(d.latency_ms.p50, 3, "p50"), num(d.latency_ms.p90, 3, "p90"), num(d.latency_ms.p99, 3, "p99"),
        num(d.errors_4xx, 0, "errors_4xx"), num(d.errors_5xx, 0, "errors_5xx"), num(d.queued, 0, "queued"),
        num(d.ongoing, 0, "ongoing"), num(d.restarts, 0, "restarts")))));
  }
}

// ---- Router ------------------------------------------------------------------------------

const PAGES = { cluster, actors, runs, tune, serve };

async function refresh() {
  const main = document.getElementById("main");
  try {
    await PAGES[page](main);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    main.setAttribute("data-loaded", page);
  } catch (e) {
    main.replaceChildren(el("p", { class: "error" }, "Could not load this page: " + e.message));
  }
}

function route() {
  const want = (location.hash || "#/cluster").slice(2);
  page = PAGES[want] ? want : "cluster";
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.page === page));
  clearInterval(timer);
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

window.addEventListener("hashchange", route);
route();
