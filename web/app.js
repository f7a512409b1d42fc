// Management page for the MNIST training server.
//
// Uses only the public REST API (/api/...) and the Socket.IO events
// training_update, training_complete and training_error, which the server
// broadcasts to every client; we keep the events of the jobs this page started
// (filtered by job_id). Plain ES2020, no build step.
"use strict";

const API = "/api";
const STATUS_EVERY_MS = 5000;
const NETWORKS_EVERY_MS = 15000;
const JOB_POLL_MS = 2000;
const DEFAULT_LAYERS = [784, 30, 10];

// ---------------------------------------------------------------- state

const state = {
  networks: [],            // last GET /api/networks
  selected: null,          // network_id
  jobs: new Map(),         // job_id → job (see newJob)
  latestJob: new Map(),    // network_id → job_id of the last job started here
  early: new Map(),        // job_id → events that came before the POST answer
  examples: new Map(),     // "network_id/kind" → example response or {error}
  socketConnected: false,
};

// ---------------------------------------------------------------- helpers

const $ = (id) => document.getElementById(id);

// h("div", {class: "x", onclick: f}, child, "text", ...) builds an element.
// Text is always set as text, never parsed as HTML.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : String(c));
  return el;
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const pct = (acc, digits = 2) => (isNum(acc) ? `${(acc * 100).toFixed(digits)}%` : "—");
const shortId = (id) => (typeof id === "string" ? id.slice(0, 8) : "?");
const plural = (n, one, many = one + "s") => `${n} ${n === 1 ? one : many}`;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// api calls the REST API and returns the parsed JSON body. Any failure throws
// an ApiError whose message is the server's {"error": "..."} when there is one.
async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(API + path, init);
  } catch (e) {
    throw new ApiError(0, "Cannot reach the server.");
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = null;
    }
  }
  if (!res.ok) {
    let msg = data && typeof data.error === "string" ? data.error : `${res.status} ${res.statusText}`.trim();
    const retry = res.headers.get("Retry-After");
    if (retry) msg += ` (retry after ${retry} s)`;
    throw new ApiError(res.status, msg);
  }
  if (data === null) throw new ApiError(res.status, "The server sent an unexpected answer (not JSON).");
  return data;
}

// showMsg shows a message in a card's message line; kind: "error" | "ok" | "info".
// Success messages fade after a while; errors stay until replaced.
function showMsg(el, text, kind = "error") {
  clearTimeout(el._timer);
  if (kind === "ok" && text) el._timer = setTimeout(() => showMsg(el, ""), 6000);
  if (!text) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.hidden = false;
  el.className = `msg ${kind}`;
  el.textContent = text;
}

let toastTimer = 0;
function toast(text, kind = "error") {
  const el = $("toast");
  el.textContent = text;
  el.className = `toast ${kind}`;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), kind === "error" ? 8000 : 4000);
}

async function withBusy(button, fn) {
  button.disabled = true;
  button.classList.add("busy");
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.classList.remove("busy");
  }
}

// ---------------------------------------------------------------- status

async function refreshStatus() {
  const chip = $("api-status");
  const counts = $("api-counts");
  try {
    const st = await api("GET", "/status");
    const online = st.status === "online";
    chip.className = `chip ${online ? "ok" : "warn"}`;
    chip.querySelector(".label").textContent = `API: ${st.status}`;
    counts.hidden = false;
    counts.textContent =
      `${plural(st.active_networks, "network")} in memory · ${plural(st.training_jobs, "training job")}`;
  } catch (e) {
    chip.className = "chip bad";
    chip.querySelector(".label").textContent = `API: ${e.status === 0 ? "offline" : "error"}`;
    chip.title = e.message;
    counts.hidden = true;
  }
}

// ---------------------------------------------------------------- networks

async function refreshNetworks() {
  try {
    const data = await api("GET", "/networks");
    state.networks = Array.isArray(data.networks) ? data.networks : [];
    showMsg($("networks-msg"), "");
  } catch (e) {
    showMsg($("networks-msg"), `Could not load the networks: ${e.message}`);
  }
  if (state.selected && !state.networks.some((n) => n.network_id === state.selected)) {
    select(null);
  }
  renderNetworks();
}

function archText(n) {
  return Array.isArray(n.architecture) ? n.architecture.join(" → ") : "—";
}

function findNetwork(id) {
  return state.networks.find((n) => n.network_id === id);
}

function activeJobOf(networkId) {
  const job = state.jobs.get(state.latestJob.get(networkId));
  return job && (job.status === "pending" || job.status === "training") ? job : null;
}

function renderNetworks() {
  const tbody = $("network-rows");
  tbody.replaceChildren();
  $("network-count").textContent = state.networks.length ? `(${state.networks.length})` : "";
  $("networks-empty").hidden = state.networks.length > 0;
  $("delete-all").disabled = state.networks.length === 0;

  for (const n of state.networks) {
    const id = n.network_id;
    const job = activeJobOf(id);
    const statusCell = job
      ? h("span", { class: "badge training" }, `training ${Math.round(job.progress)}%`)
      : h("span", { class: `badge ${n.status === "saved" ? "saved" : "memory"}`,
                    title: n.status === "saved" ? "Saved on disk, loaded when used" : "Held in memory" },
          n.status === "in_memory" ? "in memory" : String(n.status ?? "—"));
    const trained = typeof n.trained === "boolean" ? (n.trained ? "yes" : "no") : "—";
    const row = h("tr", {
      class: id === state.selected ? "selected" : "",
      tabindex: 0,
      "aria-current": id === state.selected ? "true" : null,
      title: "Select this network",
      onclick: () => select(id),
      onkeydown: (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          select(id);
        }
      },
    },
      h("td", { class: "mono", title: id }, shortId(id)),
      h("td", { class: "arch" }, archText(n)),
      h("td", { class: n.trained ? "yes" : "muted" }, trained),
      h("td", { class: "num" }, n.accuracy === null || n.accuracy === undefined ? "—" : pct(n.accuracy)),
      h("td", {}, statusCell),
      h("td", { class: "row-actions" },
        h("button", {
          type: "button", class: "danger ghost icon", title: `Delete network ${id}`,
          "aria-label": `Delete network ${shortId(id)}`,
          onclick: (ev) => { ev.stopPropagation(); deleteNetwork(id, ev.currentTarget); },
        }, "✕")),
    );
    tbody.append(row);
  }
}

function parseLayers(text) {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  if (parts.length === 0) return DEFAULT_LAYERS;
  const sizes = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
  if (sizes.some((x) => !Number.isSafeInteger(x))) {
    throw new Error(`"${text}" is not a list of whole numbers such as 784,30,10.`);
  }
  return sizes;
}

async function createNetwork(ev) {
  ev.preventDefault();
  const msg = $("create-msg");
  let layers;
  try {
    layers = parseLayers($("layer-sizes").value);
  } catch (e) {
    showMsg(msg, e.message);
    return;
  }
  const button = ev.submitter || $("create-form").querySelector("button");
  await withBusy(button, async () => {
    try {
      const res = await api("POST", "/networks", { layer_sizes: layers });
      showMsg(msg, `Created network ${shortId(res.network_id)} (${(res.architecture || layers).join(" → ")}).`, "ok");
      await refreshNetworks();
      select(res.network_id);
      refreshStatus();
    } catch (e) {
      showMsg(msg, `Could not create the network: ${e.message}`);
    }
  });
}

async function deleteNetwork(id, button) {
  const n = findNetwork(id);
  const what = n ? `${shortId(id)} (${archText(n)})` : shortId(id);
  if (!confirm(`Delete network ${what}?\n\nIt is removed from memory and from disk. This cannot be undone.`)) return;
  await withBusy(button, async () => {
    try {
      await api("DELETE", `/networks/${encodeURIComponent(id)}`);
      toast(`Deleted network ${shortId(id)}.`, "ok");
    } catch (e) {
      toast(`Could not delete network ${shortId(id)}: ${e.message}`);
    }
    await refreshNetworks();
    refreshStatus();
  });
}

async function deleteAll(ev) {
  const count = state.networks.length;
  if (!confirm(`Delete all ${plural(count, "network")}?\n\nThey are removed from memory and from disk. This cannot be undone.`)) return;
  await withBusy(ev.currentTarget, async () => {
    try {
      const res = await api("DELETE", "/networks");
      toast(res.message || `Deleted ${plural(res.deleted_count, "network")}.`, "ok");
    } catch (e) {
      toast(`Could not delete the networks: ${e.message}`);
    }
    await refreshNetworks();
    refreshStatus();
  });
}

// select makes a network the subject of the training and examples cards.
function select(id) {
  if (state.selected === id) return;
  state.selected = id;
  showMsg($("train-msg"), "");
  renderNetworks();
  renderTraining();
  renderExamples();
}

// ---------------------------------------------------------------- training

function newJob(jobId, networkId, epochs) {
  return {
    id: jobId,
    networkId,
    totalEpochs: epochs,
    epoch: 0,
    progress: 0,
    status: "pending",   // pending | training | completed | failed
    points: [],          // {epoch, accuracy, elapsed, correct, total}
    accuracy: null,
    error: null,
  };
}

function readPositive(id, name, integer) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined; // the server's default
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new Error(`${name} must be a positive ${integer ? "whole number" : "number"}.`);
  }
  return v;
}

async function startTraining(ev) {
  ev.preventDefault();
  const id = state.selected;
  if (!id) return;
  const msg = $("train-msg");
  let body;
  try {
    body = {
      epochs: readPositive("epochs", "Epochs", true),
      mini_batch_size: readPositive("batch", "Mini-batch size", true),
      learning_rate: readPositive("eta", "Learning rate", false),
    };
  } catch (e) {
    showMsg(msg, e.message);
    return;
  }
  await withBusy($("train-button"), async () => {
    try {
      const res = await api("POST", `/networks/${encodeURIComponent(id)}/train`, body);
      const job = newJob(res.job_id, res.network_id || id, body.epochs ?? 5);
      state.jobs.set(job.id, job);
      state.latestJob.set(job.networkId, job.id);
      showMsg(msg, "");
      // Events may have overtaken the HTTP answer: replay them.
      const early = state.early.get(job.id) || [];
      state.early.delete(job.id);
      for (const { type, data } of early) applyEvent(type, data);
      renderTraining();
      renderNetworks();
      refreshStatus();
    } catch (e) {
      showMsg(msg, `Could not start training: ${e.message}`);
    }
  });
}

// onEvent receives a Socket.IO event for any job; keeps ours (by job_id).
function onEvent(type, data) {
  if (!data || typeof data.job_id !== "string") return;
  if (state.jobs.has(data.job_id)) {
    applyEvent(type, data);
    return;
  }
  // Possibly our job whose POST answer is still on its way: keep briefly.
  const list = state.early.get(data.job_id) || [];
  list.push({ type, data, at: Date.now() });
  state.early.set(data.job_id, list);
  pruneEarly();
}

function pruneEarly() {
  const cutoff = Date.now() - 60000;
  for (const [id, list] of state.early) {
    if (list[list.length - 1].at < cutoff || state.early.size > 200) state.early.delete(id);
  }
}

function applyEvent(type, data) {
  const job = state.jobs.get(data.job_id);
  if (!job) return;
  if (type === "training_update") {
    if (isNum(data.total_epochs)) job.totalEpochs = data.total_epochs;
    if (isNum(data.epoch)) {
      job.epoch = Math.max(job.epoch, data.epoch);
      const point = {
        epoch: data.epoch,
        accuracy: data.accuracy,
        elapsed: data.elapsed_time,
        correct: data.correct,
        total: data.total,
      };
      const i = job.points.findIndex((p) => p.epoch === data.epoch);
      if (i >= 0) job.points[i] = point;
      else job.points.push(point);
      job.points.sort((a, b) => a.epoch - b.epoch);
    }
    if (isNum(data.progress)) job.progress = data.progress;
    if (isNum(data.accuracy)) job.accuracy = data.accuracy;
    if (job.status === "pending") job.status = "training";
  } else if (type === "training_complete") {
    job.status = "completed";
    job.progress = 100;
    job.epoch = job.totalEpochs;
    if (isNum(data.accuracy)) job.accuracy = data.accuracy;
    toast(`Training of ${shortId(job.networkId)} finished: ${pct(job.accuracy)} test accuracy.`, "ok");
    // The network is now trained, with a new accuracy; examples are stale.
    dropExamples(job.networkId);
    refreshNetworks();
    refreshStatus();
  } else if (type === "training_error") {
    job.status = "failed";
    job.error = typeof data.error === "string" ? data.error : "unknown error";
    toast(`Training of ${shortId(job.networkId)} failed: ${job.error}`);
    refreshNetworks();
    refreshStatus();
  }
  if (job.networkId === state.selected) renderTraining();
  renderNetworks();
}

// pollJobs asks GET /api/training/{job_id} about unfinished jobs: the fallback
// while live updates are down, and a catch-up after reconnecting.
async function pollJobs() {
  for (const job of state.jobs.values()) {
    if (job.status !== "pending" && job.status !== "training") continue;
    try {
      const st = await api("GET", `/training/${encodeURIComponent(job.id)}`);
      if (isNum(st.epochs)) job.totalEpochs = st.epochs;
      if (isNum(st.progress)) job.progress = Math.max(job.progress, st.progress);
      if (isNum(st.accuracy)) job.accuracy = st.accuracy;
      // The job reports progress, not the epoch: derive it, and chart the
      // latest accuracy at that epoch when no event brought it.
      const epoch = Math.round((job.progress / 100) * job.totalEpochs);
      if (epoch > job.epoch) {
        job.epoch = epoch;
        if (isNum(st.accuracy) && !job.points.some((p) => p.epoch === epoch)) {
          job.points.push({ epoch, accuracy: st.accuracy });
          job.points.sort((a, b) => a.epoch - b.epoch);
        }
      }
      if (st.status === "completed") {
        applyEvent("training_complete", { job_id: job.id, accuracy: st.accuracy });
        continue;
      }
      if (st.status === "failed") {
        applyEvent("training_error", { job_id: job.id, error: st.error });
        continue;
      }
      if (st.status === "training") job.status = "training";
    } catch (e) {
      if (e.status === 404) {
        job.status = "failed";
        job.error = e.message;
      }
    }
    if (job.networkId === state.selected) renderTraining();
  }
  renderNetworks();
}

function renderTraining() {
  const id = state.selected;
  $("train-placeholder").hidden = !!id;
  $("train-body").hidden = !id;
  $("train-selected").textContent = id ? `network ${shortId(id)}` : "";
  $("train-selected").title = id || "";
  if (!id) return;

  const job = state.jobs.get(state.latestJob.get(id));
  const active = job && (job.status === "pending" || job.status === "training");
  $("train-button").textContent = active ? "Training…" : "Start training";
  $("train-button").disabled = !!active;
  $("job").hidden = !job;
  if (!job) return;

  const badge = $("job-status");
  badge.className = `badge ${job.status}`;
  badge.textContent = job.status;
  const last = job.points[job.points.length - 1];
  let text = `Epoch ${job.epoch} of ${job.totalEpochs}`;
  if (last && isNum(last.elapsed)) text += ` · last epoch ${last.elapsed.toFixed(1)} s`;
  if (isNum(job.accuracy)) text += ` · accuracy ${pct(job.accuracy)}`;
  if (job.status === "failed") text = `Failed: ${job.error || "unknown error"}`;
  $("job-text").textContent = text;
  $("job-text").title = `job ${job.id}`;

  const p = Math.max(0, Math.min(100, job.progress || 0));
  $("progress-bar").style.width = `${p}%`;
  $("progress-bar").className = `bar ${job.status}`;
  $("progress").setAttribute("aria-valuenow", p.toFixed(0));
  $("progress-label").textContent = `${p.toFixed(p % 1 ? 1 : 0)}%`;
  drawChart($("chart"), job);
}

// drawChart draws test accuracy per epoch as an SVG line chart.
function drawChart(svg, job) {
  const W = 600, H = 240, L = 52, R = 16, T = 14, B = 34;
  const pts = job.points.filter((p) => isNum(p.accuracy));
  const total = Math.max(job.totalEpochs || 1, pts.length ? pts[pts.length - 1].epoch : 1, 1);
  const accs = pts.map((p) => p.accuracy * 100);
  // y range: down to a multiple of 5 below the lowest point (0 when empty).
  const lo = accs.length ? Math.max(0, Math.floor((Math.min(...accs) - 1) / 5) * 5) : 0;
  const hi = 100;
  const x = (epoch) => L + (total === 1 ? (W - L - R) / 2 : ((epoch - 1) / (total - 1)) * (W - L - R));
  const y = (a) => T + (1 - (a - lo) / (hi - lo)) * (H - T - B);

  svg.replaceChildren();
  const grid = s("g", { class: "grid" });
  const ystep = hi - lo > 50 ? 20 : hi - lo > 20 ? 10 : hi - lo > 10 ? 5 : 2;
  for (let v = lo; v <= hi + 1e-9; v += ystep) {
    grid.append(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    grid.append(s("text", { x: L - 8, y: y(v) + 4, "text-anchor": "end" }, `${v}%`));
  }
  const xstep = Math.max(1, Math.ceil(total / 12));
  for (let e = 1; e <= total; e += xstep) {
    grid.append(s("text", { x: x(e), y: H - B + 18, "text-anchor": "middle" }, String(e)));
  }
  grid.append(s("text", { x: (L + W - R) / 2, y: H - 2, "text-anchor": "middle", class: "axis-title" }, "epoch"));
  svg.append(grid);

  if (!pts.length) {
    svg.append(s("text", { x: (L + W - R) / 2, y: (T + H - B) / 2, "text-anchor": "middle", class: "chart-empty" },
      job.status === "failed" ? "No epoch finished" : "Waiting for the first epoch…"));
    return;
  }
  const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.epoch).toFixed(1)},${y(p.accuracy * 100).toFixed(1)}`).join(" ");
  const area = `${d} L${x(pts[pts.length - 1].epoch).toFixed(1)},${y(lo)} L${x(pts[0].epoch).toFixed(1)},${y(lo)} Z`;
  svg.append(s("path", { d: area, class: "area" }));
  svg.append(s("path", { d, class: "line" }));
  for (const p of pts) {
    const c = s("circle", { cx: x(p.epoch), cy: y(p.accuracy * 100), r: 4, class: "point" });
    let tip = `Epoch ${p.epoch}: ${pct(p.accuracy)}`;
    if (isNum(p.correct) && isNum(p.total)) tip += ` (${p.correct} / ${p.total})`;
    if (isNum(p.elapsed)) tip += `, ${p.elapsed.toFixed(1)} s`;
    c.append(s("title", {}, tip));
    svg.append(c);
  }
  const lastP = pts[pts.length - 1];
  const lx = x(lastP.epoch), ly = y(lastP.accuracy * 100);
  svg.append(s("text", {
    x: lx > W - R - 60 ? lx - 8 : lx + 8, y: ly < T + 16 ? ly + 18 : ly - 10,
    "text-anchor": lx > W - R - 60 ? "end" : "start", class: "point-label",
  }, pct(lastP.accuracy)));
}

// ---------------------------------------------------------------- examples

function dropExamples(networkId) {
  for (const key of [...state.examples.keys()]) {
    if (key.startsWith(networkId + "/")) state.examples.delete(key);
  }
  if (networkId === state.selected) renderExamples();
}

async function loadExample(kind, button) {
  const id = state.selected;
  if (!id) return;
  await withBusy(button, async () => {
    let result;
    try {
      result = await api("GET", `/networks/${encodeURIComponent(id)}/${kind}_example`);
    } catch (e) {
      result = { error: e.message };
    }
    state.examples.set(`${id}/${kind}`, result);
  });
  if (state.selected === id) renderExamples();
}

function imageSrc(data) {
  if (typeof data !== "string" || !data) return "";
  return data.startsWith("data:image/") ? data : `data:image/png;base64,${data}`;
}

function renderExamples() {
  const id = state.selected;
  $("examples-placeholder").hidden = !!id;
  $("examples-body").hidden = !id;
  $("examples-selected").textContent = id ? `network ${shortId(id)}` : "";
  $("examples-selected").title = id || "";
  if (!id) return;
  for (const [box, kind] of [[$("example-good"), "successful"], [$("example-bad"), "unsuccessful"]]) {
    const ex = state.examples.get(`${id}/${kind}`);
    const content = box.querySelector(".example-content");
    box.querySelector("button").textContent = ex && !ex.error ? "Another" : "Show one";
    if (!ex) {
      content.replaceChildren(h("p", { class: "placeholder small" },
        kind === "successful" ? "A random test image the network gets right." : "A random test image the network gets wrong."));
    } else if (ex.error) {
      content.replaceChildren(h("p", { class: "msg error" }, ex.error));
    } else {
      content.replaceChildren(exampleView(ex));
    }
  }
}

function exampleView(ex) {
  const correct = ex.predicted_digit === ex.actual_digit;
  const out = Array.isArray(ex.network_output) ? ex.network_output.map(Number) : [];
  const bars = h("div", { class: "bars", role: "img",
    "aria-label": `Output activations: ${out.map((v, d) => `${d}: ${isNum(v) ? v.toFixed(3) : "?"}`).join(", ")}` });
  out.forEach((v, digit) => {
    const height = isNum(v) ? Math.max(0, Math.min(1, v)) * 100 : 0;
    const cls = ["bar-col"];
    if (digit === ex.predicted_digit) cls.push(correct ? "predicted ok" : "predicted wrong");
    if (digit === ex.actual_digit && !correct) cls.push("actual");
    bars.append(h("div", { class: cls.join(" "), title: `output ${digit}: ${isNum(v) ? v.toFixed(4) : "?"}` },
      h("div", { class: "bar-track" }, h("div", { class: "bar-fill", style: `height:${height.toFixed(1)}%` })),
      h("div", { class: "bar-digit" }, String(digit))));
  });
  return h("div", { class: "example-view" },
    h("img", { src: imageSrc(ex.image_data), width: 300, height: 300,
      alt: `Test image ${ex.example_index}: predicted ${ex.predicted_digit}, actually ${ex.actual_digit}` }),
    h("div", { class: "verdict" },
      h("span", { class: `big ${correct ? "ok" : "wrong"}` }, String(ex.predicted_digit)),
      h("span", {}, "predicted"),
      h("span", { class: "sep" }, "·"),
      h("span", { class: "big" }, String(ex.actual_digit)),
      h("span", {}, "actual")),
    h("p", { class: "meta" }, `Test image #${ex.example_index}`),
    h("p", { class: "bars-title" }, "Output layer activations (0–1)"),
    bars,
    h("p", { class: "legend" },
      h("span", { class: "item" }, h("span", { class: `key ${correct ? "ok" : "wrong"}` }), "predicted"),
      correct ? null : h("span", { class: "item" }, h("span", { class: "key actual" }), "actual")));
}

// ---------------------------------------------------------------- live updates

function setLive(state_, text) {
  const chip = $("live-status");
  chip.className = `chip ${state_}`;
  chip.querySelector(".label").textContent = `Live updates: ${text}`;
}

function connectSocket() {
  if (typeof io !== "function") {
    setLive("bad", "unavailable");
    return;
  }
  const socket = io({ path: "/socket.io/", transports: ["polling", "websocket"] });
  socket.on("connect", () => {
    state.socketConnected = true;
    setLive("ok", "connected");
    pollJobs(); // catch up on anything missed while disconnected
  });
  socket.on("disconnect", () => {
    state.socketConnected = false;
    setLive("warn", "reconnecting…");
  });
  socket.on("connect_error", () => {
    state.socketConnected = false;
    setLive("bad", "disconnected");
  });
  for (const type of ["training_update", "training_complete", "training_error"]) {
    socket.on(type, (data) => onEvent(type, data));
  }
}

// ---------------------------------------------------------------- start

function init() {
  $("create-form").addEventListener("submit", createNetwork);
  $("train-form").addEventListener("submit", startTraining);
  $("refresh-networks").addEventListener("click", (ev) => withBusy(ev.currentTarget, refreshNetworks));
  $("delete-all").addEventListener("click", deleteAll);
  for (const b of document.querySelectorAll(".example-head button")) {
    b.addEventListener("click", () => loadExample(b.dataset.kind, b));
  }

  connectSocket();
  refreshStatus();
  refreshNetworks();
  renderTraining();
  renderExamples();

  setInterval(() => { if (!document.hidden) refreshStatus(); }, STATUS_EVERY_MS);
  setInterval(() => { if (!document.hidden) refreshNetworks(); }, NETWORKS_EVERY_MS);
  setInterval(() => { if (!state.socketConnected) pollJobs(); }, JOB_POLL_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      refreshStatus();
      refreshNetworks();
    }
  });
}

init();
