// Management page for the MNIST training server.
//
// Uses only the public REST API (/api/...) and the Socket.IO events
// training_update, training_progress, training_complete and training_error,
// which the server broadcasts to every client. The page follows every job of
// a listed network it hears of: the ones it started (their ids are kept in
// localStorage, so a reload finds them again) and any other whose events
// arrive (it then asks GET /api/training/{id} for the epochs it missed).
// Plain ES2020, no build step. Text from the server is always set as text.
"use strict";

const API = "/api";
const STATUS_EVERY_MS = 5000;
const NETWORKS_EVERY_MS = 15000;
const JOB_POLL_MS = 2000;
const PREDICT_EVERY_MS = 100; // at most 10 predictions a second while drawing
const HISTORY_EVERY_MS = 1000;
const DEFAULT_LAYERS = [784, 30, 10];
const STORE_JOBS = "nnserver.jobs";
const STORE_SELECTED = "nnserver.selected";
const STORE_ENDS = "nnserver.jobEnds";
const STORE_OWNERS = "nnserver.owners"; // network_id → the owner token create or import gave
const STORE_COMPARE = "nnserver.compare"; // network_ids ticked to compare
const KEEP_JOBS = 50;
const KEEP_ENDS = 500;     // job ends remembered across reloads
const LOOKUP_JOBS = 50;    // the history's most recent jobs whose end is asked for

// ---------------------------------------------------------------- state

const state = {
  networks: [],            // last GET /api/networks, updated by events
  selected: null,          // network_id
  jobs: new Map(),         // job_id → job (see newJob)
  latestJob: new Map(),    // network_id → job_id of its newest known job
  syncing: new Map(),      // job_id → promise of GET /api/training/{id}
  examples: new Map(),     // "network_id/kind" → example response or {error}
  history: null,           // {networkId, epochs} or {networkId, error}
  evaluation: null,        // {networkId, data, stale} or {networkId, error}
  cell: null,              // {networkId, actual, predicted, data|error|loading}
  socketConnected: false,
  listed: false,           // the list has been read once
  ends: new Map(),         // job_id → {status, error} as the server told it, or null: it no longer knows the job
  lookingUp: new Set(),    // job_ids whose end is being asked for (or could not be)
  ownership: false,        // the server says changing a network needs its owner token
  details: null,           // {networkId, data} (GET /api/networks/{id}) or {networkId, error}
  compare: new Set(),      // network_ids whose curves the Compare card overlays
  compareHist: new Map(),  // network_id → {at: epochs_trained read, epochs} or {error}
  jobList: [],             // the jobs panel: GET /api/training, queued and running, then recent
  kernels: null,           // {networkId, data} (GET /api/networks/{id}/kernels) or {networkId, error}
};

// ---------------------------------------------------------------- layers networks

// layers.js (the layer editor, the rules a list of layers must follow, the
// kernels' tiles) is loaded when first needed: the editor is opened, or a
// listed network has layers. The first load stays small.
let layersMod = null, layersLoading = null;
function loadLayers() {
  if (!layersLoading) {
    document.head.append(h("link", { rel: "stylesheet", href: "layers.css" }));
    layersLoading = import("./layers.js").then((m) => {
      layersMod = m;
      renderNetworks();
      renderDetails();
      return m;
    });
    layersLoading.catch(() => { layersLoading = null; }); // tried again when next needed
  }
  return layersLoading;
}
const layersOf = (n) => (n && Array.isArray(n.layers) && n.layers.length ? n.layers : null);
const hasConv = (n) => !!layersOf(n) && n.layers.some((l) => l && l.type === "conv");

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
    else if (k === "style") for (const [p, x] of Object.entries(v)) el.style.setProperty(p, x);
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
const enc = encodeURIComponent;
const ACTIVE = new Set(["pending", "training"]);
const isActive = (job) => !!job && ACTIVE.has(job.status);
// nameOf is how the page calls a network: its name, or its id's start.
const nameOf = (n, id) => (n && typeof n.name === "string" && n.name) || `network ${shortId(id || (n && n.network_id))}`;

class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

// api calls the REST API and returns the parsed JSON body. body is sent as
// JSON, or as it is when it is a Blob (with the Blob's type). A request
// that changes the network networkId carries its owner token, if this
// browser has it (X-Owner-Token). Any failure throws an ApiError whose
// message is the server's {"error": "..."} when there is one.
async function api(method, path, body, networkId) {
  const init = { method, headers: { Accept: "application/json" } };
  const token = networkId && ownerToken(networkId);
  if (token) init.headers["X-Owner-Token"] = token;
  if (body instanceof Blob) {
    init.headers["Content-Type"] = body.type || "application/octet-stream";
    init.body = body;
  } else if (body !== undefined) {
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
    throw new ApiError(res.status, msg, data);
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
  $("toast-text").textContent = text;
  el.className = `toast ${kind}`;
  el.setAttribute("role", kind === "error" ? "alert" : "status");
  el.hidden = false;
  placeToast();
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), kind === "error" ? 10000 : 5000);
}

// The toast must not hide what the user is watching: the output bars and
// the drawing pad. It sits at the bottom of the window, or at the top when
// at the bottom it would cover one of them (whichever covers less if both
// would). Placed again when the page scrolls or resizes, or bars appear.
const TOAST_AVOID = "#prediction-bars, .example-view .bars, #pad";
function placeToast() {
  const el = $("toast");
  if (el.hidden) return;
  const covered = () => {
    const t = el.getBoundingClientRect();
    let area = 0;
    for (const x of document.querySelectorAll(TOAST_AVOID)) {
      const r = x.getBoundingClientRect();
      const w = Math.min(t.right, r.right) - Math.max(t.left, r.left);
      const hh = Math.min(t.bottom, r.bottom) - Math.max(t.top, r.top);
      if (r.width && r.height && w > 0 && hh > 0) area += w * hh;
    }
    return area;
  };
  el.classList.remove("top");
  const atBottom = covered();
  if (!atBottom) return;
  el.classList.add("top");
  if (covered() > atBottom) el.classList.remove("top");
}
let toastFrame = 0;
const placeToastSoon = () => {
  if (!toastFrame && !$("toast").hidden) toastFrame = requestAnimationFrame(() => { toastFrame = 0; placeToast(); });
};

async function withBusy(button, fn) {
  button.disabled = true;
  button.classList.add("busy");
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.classList.remove("busy");
    updateControls();
  }
}

// updateControls sets the buttons whose state follows from the data.
function updateControls() {
  $("delete-all").disabled = state.networks.length === 0;
  // A list of layers that does not chain is not sent.
  $("create-button").disabled = $("build").value === "layers" && !(editorState && editorState.valid);
  const job = selectedJob();
  const active = isActive(job);
  $("train-button").disabled = active;
  $("train-button").textContent = active ? "Training…" : "Start training";
}

function readStore(key, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(key));
    return v ?? fallback;
  } catch (e) {
    return fallback;
  }
}

function writeStore(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch (e) {
    // private mode or full: the page works without it
  }
}

// The owner tokens of the networks this browser created, imported or
// claimed: the server shows each once and keeps only its hash. With
// OWNERSHIP=on, deleting or training a network needs it.
function ownerToken(networkId) {
  const t = readStore(STORE_OWNERS, {})[networkId];
  return typeof t === "string" ? t : null;
}

function keepOwner(networkId, token) {
  if (typeof networkId !== "string" || typeof token !== "string" || !token) return;
  writeStore(STORE_OWNERS, { ...readStore(STORE_OWNERS, {}), [networkId]: token });
}

function dropOwners(ids) {
  const owners = readStore(STORE_OWNERS, {});
  for (const id of ids) delete owners[id];
  writeStore(STORE_OWNERS, owners);
}

// rememberJob keeps a job id across reloads, so that the page can follow it
// again ("late joiner"): jobs are not listed anywhere else.
function rememberJob(jobId, networkId) {
  const list = readStore(STORE_JOBS, []).filter((j) => j && j.job_id !== jobId);
  list.push({ job_id: jobId, network_id: networkId });
  writeStore(STORE_JOBS, list.slice(-KEEP_JOBS));
}

function forgetJob(jobId) {
  writeStore(STORE_JOBS, readStore(STORE_JOBS, []).filter((j) => j && j.job_id !== jobId));
}

// throttle returns a function that runs fn at most once per ms, the last
// call of a burst always running.
function throttle(fn, ms) {
  let last = 0, timer = 0;
  return function run() {
    const wait = last + ms - Date.now();
    if (wait > 0) {
      if (!timer) timer = setTimeout(() => { timer = 0; run(); }, wait);
      return;
    }
    last = Date.now();
    fn();
  };
}

function imageSrc(data) {
  if (typeof data !== "string" || !data) return "";
  return data.startsWith("data:image/") ? data : `data:image/png;base64,${data}`;
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
    if (state.ownership !== (st.ownership === true)) {
      state.ownership = st.ownership === true;
      renderNetworks();
    }
    counts.textContent =
      `${plural(st.active_networks, "network")} in memory · ${plural(st.training_jobs, "training job")}`;
    // The list is read less often: when it no longer agrees, read it again.
    const listed = state.networks.filter((n) => n.status === "in_memory").length;
    if (state.listed && isNum(st.active_networks) && listed !== st.active_networks) refreshNetworksSoon();
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
    state.listed = true;
    // The list is read at one moment; an epoch heard since is newer.
    for (const n of state.networks) {
      const job = activeJobOf(n.network_id);
      const last = job && job.points[job.points.length - 1];
      if (last && isNum(last.accuracy)) {
        n.accuracy = last.accuracy;
        n.trained = true;
      }
    }
    showMsg($("networks-msg"), "");
  } catch (e) {
    showMsg($("networks-msg"), `Could not load the networks: ${e.message}`);
  }
  if (state.selected && !findNetwork(state.selected)) select(null);
  else if (state.selected) {
    syncTrainForm();
    if ($("kernels-card").hidden === hasConv(findNetwork(state.selected))) loadKernels();
  }
  for (const id of state.compare) {
    const n = findNetwork(id), had = state.compareHist.get(id);
    if (!n && state.listed) toggleCompare(id, false);
    else if (n && (!had || had.at !== n.epochs_trained)) loadCompare(id);
  }
  renderNetworks();
  renderCompare();
}

// usedNetwork is told of every answer that needed the network in memory
// (history, examples, predict, evaluation, training): the server loads a
// network listed "saved" on such a request, and may unload an idle one to
// make room. The list and the header's count are then read again, so that
// the row says what the header counts.
function usedNetwork(id) {
  const n = findNetwork(id);
  if (!n || n.status === "in_memory") return;
  refreshNetworksSoon();
  refreshStatus();
}

// archText is how the page shows a network's layers: "784 → 30 → 10", or
// for a layers network "conv 20×5×5 relu · pool 2 · … · softmax 10" (its
// flattened sizes, the architecture, in the title: archTitle).
function archText(n) {
  if (layersOf(n)) {
    if (layersMod) return layersMod.describe(n.layers);
    loadLayers();
    return n.layers.map((l) => l.type).join(" · ");
  }
  return Array.isArray(n.architecture) ? n.architecture.join(" → ") : "—";
}
const archTitle = (n) => (layersOf(n) && Array.isArray(n.architecture) ? `Flattened sizes: ${n.architecture.join(" → ")}` : null);

function findNetwork(id) {
  return state.networks.find((n) => n.network_id === id);
}

function activeJobOf(networkId) {
  const job = state.jobs.get(state.latestJob.get(networkId));
  return isActive(job) ? job : null;
}

function selectedJob() {
  return state.selected ? state.jobs.get(state.latestJob.get(state.selected)) : null;
}

function initText(n) {
  const parts = [];
  if (typeof n.init === "string") parts.push(`init ${n.init}`);
  if (isNum(n.seed)) parts.push(`seed ${n.seed}`);
  return parts.join(", ");
}

// progressText is how far a job is, as the list's row and the progress bar
// both show it: whole percents, rounded down (100% only once it is done).
function progressText(job) {
  return `${Math.floor(Math.max(0, Math.min(100, job.progress || 0)))}%`;
}

// renderNetworks brings the table up to date with state.networks. Rows are
// kept (keyed by network id) and updated in place (fillRow): the list
// changes several times a second while a job trains, and a click whose
// press and release landed on two different elements would be lost.
function renderNetworks() {
  const tbody = $("network-rows");
  $("network-count").textContent = state.networks.length ? `(${state.networks.length})` : "";
  $("networks-empty").hidden = state.networks.length > 0;
  const old = new Map([...tbody.rows].map((r) => [r.dataset.id, r]));
  let before = tbody.firstElementChild;
  for (const n of state.networks) {
    const row = old.get(n.network_id) || h("tr", { tabindex: 0, dataset: { id: n.network_id } });
    old.delete(n.network_id);
    fillRow(row, n);
    if (row === before) before = row.nextElementSibling;
    else tbody.insertBefore(row, before);
  }
  for (const r of old.values()) r.remove();
  updateControls();
}

// renderRow updates one network's row at once (a job's event), so that it
// shows what the training card shows.
function renderRow(networkId) {
  const n = findNetwork(networkId);
  const row = n && [...$("network-rows").rows].find((r) => r.dataset.id === networkId);
  if (row) fillRow(row, n);
}

// fillRow makes a row's cells once and afterwards changes only their text
// and classes: the elements under the pointer never change between a press
// and its release, so no click is lost while a job's figures change.
function fillRow(row, n) {
  const id = n.network_id;
  const job = activeJobOf(id);
  const selected = id === state.selected;
  row.className = selected ? "selected" : "";
  row.setAttribute("aria-selected", selected ? "true" : "false");
  row.title = [n.name, `Network ${id}`, initText(n)].filter(Boolean).join(" · ");
  let c = row._cells;
  if (!c) {
    c = row._cells = {
      cmp: h("input", { type: "checkbox", class: "compare", onchange: (ev) => toggleCompare(id, ev.currentTarget.checked) }),
      cmpLabel: h("span", { class: "sr-only" }),
      name: h("span", { class: "net-name" }),
      mine: h("span", { class: "badge mine", hidden: true }, "yours"),
      arch: h("span", { class: "arch-text" }),
      badges: [h("span", { class: "badge" }), h("span", { class: "badge" })],
      trained: h("td", { class: "col-trained" }),
      acc: h("td", { class: "num acc" }),
    };
    row.append(
      h("td", { class: "mono" }, c.name, h("label", { onclick: (ev) => ev.stopPropagation() }, c.cmp, c.cmpLabel), shortId(id), " ", c.mine),
      h("td", { class: "arch" }, c.arch, h("span", { class: "status-inline" }, c.badges[0])),
      c.trained, c.acc,
      h("td", { class: "col-status" }, c.badges[1]),
      h("td", { class: "row-actions" },
        h("a", {
          class: "icon-link", href: `${API}/networks/${enc(id)}/download`, download: `${id}.npz`,
          title: `Download network ${id} (.npz)`, "aria-label": `Download network ${shortId(id)}`,
          dataset: { action: "download" }, onclick: (ev) => ev.stopPropagation(),
        }, "⤓"),
        h("button", {
          type: "button", class: "danger ghost icon", title: `Delete network ${id}`,
          "aria-label": `Delete network ${shortId(id)}`, dataset: { action: "delete" },
          onclick: (ev) => { ev.stopPropagation(); deleteNetwork(id, ev.currentTarget); },
        }, "✕")));
    row.addEventListener("click", () => select(id));
    row.addEventListener("keydown", (ev) => {
      if (ev.target === ev.currentTarget && (ev.key === "Enter" || ev.key === " ")) {
        ev.preventDefault();
        select(id);
      }
    });
  }
  const setText = (el, text) => { if (el.textContent !== text) el.textContent = text; };
  setText(c.name, typeof n.name === "string" ? n.name : "");
  c.cmp.checked = state.compare.has(id);
  setText(c.cmpLabel, `Compare ${nameOf(n, id)}`);
  const mine = !!ownerToken(id);
  c.mine.hidden = !mine;
  c.mine.title = state.ownership
    ? "Yours: this browser has its owner token, which deleting and training it need"
    : "Yours: this browser has its owner token (the server does not ask for it now)";
  row.classList.toggle("not-mine", state.ownership && !mine);
  setText(c.arch, archText(n));
  const at = archTitle(n);
  if (at) c.arch.title = at;
  else c.arch.removeAttribute("title");
  const badge = job
    ? { cls: "badge training", title: job.status === "pending" ? "Waiting for a free training slot" : "Training now",
        text: job.status === "pending" ? "queued" : `training ${progressText(job)}` }
    : { cls: `badge ${n.status === "saved" ? "saved" : "memory"}`,
        title: n.status === "saved" ? "Saved on disk, loaded when used" : "Held in memory",
        text: n.status === "in_memory" ? "in memory" : String(n.status ?? "—") };
  for (const b of c.badges) {
    b.className = badge.cls;
    b.title = badge.title;
    setText(b, badge.text);
  }
  c.trained.className = `col-trained ${n.trained ? "yes" : "muted"}`;
  if (isNum(n.epochs_trained)) c.trained.title = `${plural(n.epochs_trained, "epoch")} when listed`;
  else c.trained.removeAttribute("title");
  setText(c.trained, typeof n.trained === "boolean" ? (n.trained ? "yes" : "no") : "—");
  setText(c.acc, n.accuracy === null || n.accuracy === undefined ? "—" : pct(n.accuracy));
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

// readNumber reads an optional number field: undefined when empty (the
// server's default), else checked against min (inclusive unless above).
function readNumber(id, name, { integer = false, min = 0, above = false, max = Infinity } = {}) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined;
  const v = Number(raw);
  const low = above ? v <= min : v < min;
  if (!Number.isFinite(v) || low || v > max || (integer && !Number.isInteger(v))) {
    const kind = integer ? "a whole number" : "a number";
    const range = max < Infinity ? ` from ${min} to ${max}` : above ? ` above ${min}` : ` of at least ${min}`;
    throw new Error(`${name} must be ${kind}${range}.`);
  }
  return v;
}

async function createNetwork(ev) {
  ev.preventDefault();
  const msg = $("create-msg");
  let body;
  const withLayers = $("build").value === "layers";
  try {
    const layers = withLayers && editorApi ? editorApi.layers : null;
    if (withLayers && !layers) throw new Error("The layers do not make a network yet: see the message above the Create button.");
    body = {
      ...(withLayers ? { layers } : { layer_sizes: parseLayers($("layer-sizes").value) }),
      init: $("init").value,
      seed: readNumber("create-seed", "The seed", { integer: true }),
      name: $("create-name").value.trim() || undefined,
    };
  } catch (e) {
    showMsg(msg, e.message);
    return;
  }
  const button = ev.submitter || $("create-form").querySelector("button");
  await withBusy(button, async () => {
    try {
      const res = await api("POST", "/networks", body);
      keepOwner(res.network_id, res.owner_token);
      showMsg(msg, `Created ${nameOf(res)} (${archText({ ...res, architecture: res.architecture || body.layer_sizes })}).`, "ok");
      $("create-name").value = "";
      await refreshNetworks();
      select(res.network_id);
      refreshStatus();
    } catch (e) {
      showMsg(msg, `Could not create the network: ${e.message}`);
      if (withLayers) learnLimit(e.message);
    }
  });
}

// learnLimit takes a bound the server names in a refusal ("more than the
// limit of N") into the editor's rules, so that it refuses the same lists.
function learnLimit(message) {
  const m = /the (weights and biases|multiply-adds per image|activations per image) to \d+, more than the limit of (\d+)/.exec(message);
  if (!m || !editorApi) return;
  const key = { "weights and biases": "maxParams", "multiply-adds per image": "maxMACs", "activations per image": "maxActivations" }[m[1]];
  editorApi.setLimits({ [key]: Number(m[2]) });
}

// The "New network" card builds with layer sizes (fully connected, the
// original networks) or with the layer editor.
let editorApi = null, editorState = null;
function setBuild(mode, layers) {
  $("build").value = mode;
  $("sizes-field").hidden = mode !== "sizes";
  $("create-hint").hidden = mode !== "sizes";
  $("layer-editor").hidden = mode !== "layers";
  updateControls();
  if (mode !== "layers") return;
  loadLayers().then((m) => {
    if (!editorApi) {
      editorApi = m.editor($("layer-editor"), {
        onChange: (st) => { editorState = st; updateControls(); },
      });
      editorApi.set(layers || m.CH6_LAYERS);
    } else if (layers) editorApi.set(layers);
  }).catch(() => showMsg($("create-msg"), "Could not load the layer editor."));
}

async function deleteNetwork(id, button) {
  const n = findNetwork(id);
  const what = n ? `${shortId(id)} (${archText(n)})` : shortId(id);
  if (!confirm(`Delete network ${what}?\n\nIt is removed from memory and from disk. This cannot be undone.`)) return;
  await withBusy(button, async () => {
    try {
      await api("DELETE", `/networks/${enc(id)}`, undefined, id);
      dropOwners([id]);
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
  if (!count) return;
  if (!confirm(`Delete all ${plural(count, "network")}?\n\nThey are removed from memory and from disk. This cannot be undone.`)) return;
  await withBusy(ev.currentTarget, async () => {
    try {
      const before = state.networks.map((n) => n.network_id);
      const res = await api("DELETE", "/networks");
      toast(res.message || `Deleted ${plural(res.deleted_count, "network")}.`, "ok");
      await refreshNetworks();
      dropOwners(before.filter((id) => !findNetwork(id)));
    } catch (e) {
      toast(`Could not delete the networks: ${e.message}`);
    }
    await refreshNetworks();
    refreshStatus();
  });
}

async function importNetwork() {
  const input = $("import-file");
  const file = input.files && input.files[0];
  input.value = "";
  if (!file) return;
  await withBusy($("import-button"), async () => {
    try {
      // Raw bytes; the server reads the .npz from the body.
      const res = await api("POST", "/networks/import", new Blob([file], { type: "application/octet-stream" }));
      keepOwner(res.network_id, res.owner_token);
      const arch = Array.isArray(res.architecture) ? ` (${res.architecture.join(" → ")})` : "";
      toast(`Imported ${file.name} as network ${shortId(res.network_id)}${arch}.`, "ok");
      await refreshNetworks();
      if (findNetwork(res.network_id)) select(res.network_id);
      refreshStatus();
    } catch (e) {
      toast(`Could not import ${file.name}: ${e.message}`);
    }
  });
}

// claimNetwork keeps a pasted owner token for the selected network, once
// the server says it is that network's (GET …/access): a network made in
// another browser becomes this browser's too.
async function claimNetwork(ev) {
  ev.preventDefault();
  const input = $("claim-token");
  const token = input.value.trim();
  const id = state.selected;
  const msg = $("claim-msg");
  if (!id) return showMsg(msg, "Select the network to claim first.");
  if (!token) return showMsg(msg, "Paste the network's owner token.");
  await withBusy(ev.submitter || $("claim-form").querySelector("button"), async () => {
    try {
      const res = await fetchAccess(id, token);
      if (res.role !== "owner") {
        showMsg(msg, `That is not the owner token of network ${shortId(id)}.`);
        return;
      }
      keepOwner(id, token);
      input.value = "";
      showMsg(msg, `Network ${shortId(id)} is yours in this browser now.`, "ok");
      renderNetworks();
    } catch (e) {
      showMsg(msg, `Could not check the token: ${e.message}`);
    }
  });
}

// fetchAccess asks what token may do to network id (it changes nothing).
async function fetchAccess(id, token) {
  const res = await fetch(`${API}/networks/${enc(id)}/access`, { headers: { Accept: "application/json", "X-Owner-Token": token } });
  const data = await res.json().catch(() => null);
  if (!res.ok || !data) throw new ApiError(res.status, (data && data.error) || `${res.status} ${res.statusText}`.trim(), data);
  return data;
}

// select makes a network the subject of the cards on the right.
function select(id) {
  if (state.selected === id) return;
  state.selected = id;
  writeStore(STORE_SELECTED, id);
  showMsg($("train-msg"), "");
  for (const name of ["train", "draw", "history", "details", "examples", "eval"]) {
    $(`${name}-selected`).textContent = id ? `network ${shortId(id)}` : "";
    $(`${name}-selected`).title = id || "";
  }
  renderNetworks();
  renderTraining();
  renderExamples();
  resetDraw();
  state.history = null;
  renderHistory();
  if (id) loadHistory();
  state.details = null;
  renderDetails();
  if (id) loadDetails();
  state.evaluation = null;
  state.cell = null;
  renderEvaluation();
  syncTrainForm();
  state.kernels = null;
  loadKernels();
}

// syncTrainForm fits the training form to the selected network: the
// expand option for layers networks only; the cost implied (log-likelihood)
// for a softmax output. When the selection moves between the two kinds of
// network and the fields hold the other kind's preset, they take this
// kind's defaults: for a layers network the server's default η, 0.03 with
// a ReLU layer (and ch. 6's λ 0.1), else 0.1 (λ 0), shown rather than left
// empty; for a layer_sizes network ch. 3's or ch. 1's settings, by its
// initial weights. Values typed by hand are never replaced.
let formFor = "sizes";
function syncTrainForm() {
  const n = findNetwork(state.selected);
  if (!n) return;
  const layers = layersOf(n);
  const softmax = !!layers && layers[layers.length - 1].type === "softmax";
  $("expand-field").hidden = !layers;
  // Which preset the fields hold is read before the cost changes.
  const kind = layers ? "layers" : "sizes";
  if (kind !== formFor) {
    formFor = kind;
    const preset = presetOf(false);
    if (kind === "layers" && (preset === "ch1" || preset === "ch3")) {
      if (layers.some((l) => l.activation === "relu")) applyPreset("ch6", false, true);
      else {
        $("eta").value = "0.1";
        $("lambda").value = "0";
      }
    } else if (kind === "sizes" && preset === "ch6") {
      $("cost").disabled = false;
      applyPreset(n.init === "scaled" ? "ch3" : "ch1", false);
    }
  }
  const cost = $("cost");
  if (!softmax) cost.disabled = false;
  for (const o of cost.options) o.hidden = softmax ? o.value !== "log_likelihood" : o.value === "log_likelihood";
  if (softmax && cost.value !== "log_likelihood") {
    cost.dataset.was = cost.value;
    cost.value = "log_likelihood";
  } else if (!softmax && cost.value === "log_likelihood") cost.value = cost.dataset.was || "quadratic";
  cost.disabled = softmax;
  cost.title = softmax ? "A softmax output layer trains with the log-likelihood cost" : "";
  syncPresets();
}

// ---------------------------------------------------------------- kernels

// loadKernels shows the selected conv network's first layer's kernels: when
// it is selected, after each epoch (throttled) and when its weights change.
let kernelsAsked = 0;
async function loadKernels() {
  const id = state.selected;
  const n = findNetwork(id);
  $("kernels-card").hidden = !hasConv(n);
  $("kernels-selected").textContent = id ? `network ${shortId(id)}` : "";
  if (!hasConv(n)) return;
  const seq = ++kernelsAsked;
  let result;
  try {
    const [m, data] = await Promise.all([loadLayers(), api("GET", `/networks/${enc(id)}/kernels`)]);
    usedNetwork(id);
    result = { networkId: id, data, m };
  } catch (e) {
    result = { networkId: id, error: e.message };
  }
  if (state.selected !== id || seq !== kernelsAsked) return;
  state.kernels = result;
  showMsg($("kernels-msg"), result.error ? `Could not load the kernels: ${result.error}` : "");
  if (result.error) return;
  const d = result.data;
  const max = result.m.drawKernels($("kernels-grid"), d);
  $("kernels-note").textContent = `${plural(d.filters, "filter")} of ${d.size}×${d.size}` +
    `${d.channels > 1 ? ` over ${d.channels} channels` : ""}, after ${plural(d.epochs_trained, "epoch")}: ` +
    `orange positive, blue negative, grey 0, on one scale for the layer (±${max.toPrecision(2)}).`;
}
const kernelsSoon = throttle(() => loadKernels(), HISTORY_EVERY_MS);

// ---------------------------------------------------------------- presets

// Two recipes: network.py's (Nielsen ch. 1: the API's defaults, which often
// stall at 75–87%) and network2.py's (ch. 3: scaled weights, cross-entropy,
// η 0.5, λ 5, which train reliably). The radios of the "New network" card
// set the initial weights and the training settings; the training card's
// select sets the training settings. Both show what the fields hold.
//
// A third, network3.py's (ch. 6), builds the chapter's conv net with the
// layer editor; its training settings (η 0.03, λ 0.1, 60 epochs) leave the
// cost alone: a softmax output implies the log-likelihood.
const PRESETS = {
  ch1: { init: "normal", cost: "quadratic", eta: "3.0", lambda: "0", build: "sizes" },
  ch3: { init: "scaled", cost: "cross_entropy", eta: "0.5", lambda: "5", build: "sizes" },
  ch6: { init: "scaled", eta: "0.03", lambda: "0.1", epochs: "60", build: "layers" },
};

// applyPreset fills the fields with a preset's values: withInit, the
// weights and the network too (the recipes); auto, the training settings
// only, not the epochs (when the selected network's kind asks for them).
function applyPreset(name, withInit, auto = false) {
  const p = PRESETS[name];
  if (!p) return;
  if (withInit) {
    $("init").value = p.init;
    if (p.build === "sizes") $("layer-sizes").value = DEFAULT_LAYERS.join(",");
    setBuild(p.build, p.build === "layers" && layersMod ? layersMod.CH6_LAYERS : undefined);
  }
  if (p.cost && $("cost").disabled) $("cost").dataset.was = p.cost; // a softmax network's: taken when another is selected
  else if (p.cost) $("cost").value = p.cost;
  $("eta").value = p.eta;
  $("lambda").value = p.lambda;
  if (p.epochs && !auto) $("epochs").value = p.epochs;
  syncPresets();
}

// presetOf names the preset the fields hold, or "" (custom). Empty number
// fields mean the server's defaults (η 3, λ 0).
function presetOf(withInit) {
  const num = (id, dflt) => ($(id).value.trim() === "" ? dflt : Number($(id).value));
  return Object.keys(PRESETS).find((k) => {
    const p = PRESETS[k];
    return (!withInit || ($("init").value === p.init && $("build").value === p.build)) && (!p.cost || $("cost").value === p.cost) &&
      num("eta", 3) === Number(p.eta) && num("lambda", 0) === Number(p.lambda);
  }) || "";
}

function syncPresets() {
  const full = presetOf(true);
  for (const r of document.querySelectorAll('input[name="preset"]')) r.checked = r.value === full;
  $("train-preset").value = presetOf(false);
}

function setupPresets() {
  for (const r of document.querySelectorAll('input[name="preset"]')) {
    r.addEventListener("change", () => { if (r.checked) applyPreset(r.value, true); });
  }
  $("train-preset").addEventListener("change", () => applyPreset($("train-preset").value, false));
  $("build").addEventListener("change", () => { setBuild($("build").value); syncPresets(); });
  for (const id of ["init", "cost", "eta", "lambda"]) {
    $(id).addEventListener("input", syncPresets);
    $(id).addEventListener("change", syncPresets);
  }
  syncPresets();
}

// ---------------------------------------------------------------- jobs

function newJob(jobId, networkId) {
  return {
    id: jobId,
    networkId,
    totalEpochs: 0,
    epoch: 0,            // epochs finished
    progress: 0,         // 0–100 over the whole job
    batch: null,         // {epoch, batch, batches} from training_progress
    status: "pending",   // pending | training | completed | failed | cancelled
    points: [],          // {epoch, accuracy, elapsed, correct}
    accuracy: null,
    error: null,
    interrupted: null,   // the server stopped it to resume it later: why (training_error "interrupted")
    params: null,        // from GET /api/training/{id}
    seen: Date.now(),
    fresh: true,         // nothing heard yet but its id
  };
}

// jobFor returns the job record for an id, making it (and asking the server
// for what it missed) the first time the page hears of it.
function jobFor(jobId, networkId, sync = true) {
  let job = state.jobs.get(jobId);
  if (!job) {
    job = newJob(jobId, networkId);
    state.jobs.set(jobId, job);
    if (sync) syncJob(jobId);
  }
  const latest = state.jobs.get(state.latestJob.get(job.networkId));
  if (!latest || latest === job || isActive(job) || (!isActive(latest) && job.seen > latest.seen)) {
    state.latestJob.set(job.networkId, jobId);
  }
  return job;
}

function setPoint(job, point) {
  const i = job.points.findIndex((p) => p.epoch === point.epoch);
  if (i >= 0) job.points[i] = { ...job.points[i], ...point };
  else {
    job.points.push(point);
    job.points.sort((a, b) => a.epoch - b.epoch);
  }
}

// syncJob merges GET /api/training/{id}: the parameters, every epoch so far
// and the status. Used for jobs heard of first through an event, for the
// jobs remembered from an earlier visit, and while live updates are down.
function syncJob(jobId) {
  if (state.syncing.has(jobId)) return state.syncing.get(jobId);
  const p = (async () => {
    try {
      const st = await api("GET", `/training/${enc(jobId)}`);
      const job = jobFor(jobId, st.network_id);
      mergeJob(job, st);
    } catch (e) {
      const job = state.jobs.get(jobId);
      if (e.status === 404) {
        forgetJob(jobId);
        if (job && isActive(job)) finishJob(job, "failed", { error: "The server no longer knows this job." }, false);
        noteEnd(jobId, null);
      }
    } finally {
      state.syncing.delete(jobId);
    }
  })();
  state.syncing.set(jobId, p);
  return p;
}

function mergeJob(job, st) {
  const fresh = job.fresh;
  job.fresh = false;
  const total = isNum(st.total_epochs) ? st.total_epochs : st.epochs;
  if (isNum(total)) job.totalEpochs = total;
  job.params = {
    epochs: total, mini_batch_size: st.mini_batch_size, learning_rate: st.learning_rate,
    cost: st.cost, lambda: st.lambda, seed: st.seed,
    stop_after_no_improvement: st.stop_after_no_improvement, restore_best: st.restore_best, expand: st.expand,
  };
  job.stoppedEarly = st.stopped_early === true;
  if (isNum(st.best_epoch)) job.bestEpoch = st.best_epoch;
  for (const e of Array.isArray(st.history) ? st.history : []) {
    if (isNum(e.epoch) && isNum(e.accuracy)) {
      setPoint(job, { epoch: e.epoch, accuracy: e.accuracy, correct: e.correct, elapsed: e.elapsed_time,
        validation: e.validation_accuracy, cost: e.training_cost });
    }
  }
  if (isNum(st.epoch)) job.epoch = Math.max(job.epoch, st.epoch);
  if (isNum(st.accuracy)) job.accuracy = st.accuracy;
  if (isActive(job)) {
    if (ACTIVE.has(st.status)) job.interrupted = null; // the server is back: the job goes on
    if (isNum(st.progress)) job.progress = Math.max(job.progress, st.progress);
    if (st.status === "training") job.status = "training";
    else if (st.status === "completed" || st.status === "failed" || st.status === "cancelled") {
      // Found finished: nothing to tell or refresh if the page never saw it run.
      if (fresh) {
        Object.assign(job, { status: st.status, error: st.error || null, progress: st.status === "completed" ? 100 : job.progress });
        noteEnd(job.id, st.status, st.error);
      } else finishJob(job, st.status, { accuracy: st.accuracy, error: st.error });
    }
  }
  if (!isActive(job)) forgetJob(job.id);
  refreshJobViews(job);
}

// finishJob ends a job once (completed, failed or cancelled). announce:
// whether to tell the user with a toast (not for jobs found finished).
function finishJob(job, status, { accuracy, error } = {}, announce = true) {
  if (!isActive(job)) return;
  job.status = status;
  forgetJob(job.id);
  noteEnd(job.id, status, error);
  job.batch = null;
  if (status === "completed") {
    job.progress = 100;
    // A job with early stopping may end before its last epoch: its record says.
    if (job.params && job.params.stop_after_no_improvement) syncJob(job.id);
    else if (job.totalEpochs) job.epoch = job.totalEpochs;
    if (isNum(accuracy)) job.accuracy = accuracy;
    if (announce) toast(`Training of ${shortId(job.networkId)} finished: ${pct(job.accuracy)} test accuracy.`, "ok");
  } else {
    job.error = typeof error === "string" && error ? error : status === "cancelled" ? "Training cancelled" : "unknown error";
    if (announce) {
      if (status === "cancelled") toast(`Training of ${shortId(job.networkId)} cancelled.`, "ok");
      else toast(`Training of ${shortId(job.networkId)} failed: ${job.error}`);
    }
  }
  // The network has changed: its listed figures, examples, evaluation.
  dropExamples(job.networkId);
  if (state.evaluation && state.evaluation.networkId === job.networkId && state.evaluation.data) {
    state.evaluation.stale = true;
    renderEvaluation();
  }
  if (job.networkId === state.selected) {
    loadHistory();
    loadDetails();
    kernelsSoon();
  }
  if (state.compare.has(job.networkId)) loadCompare(job.networkId);
  refreshNetworks();
  refreshStatus();
}

// onEvent receives a Socket.IO event of any job.
function onEvent(type, data) {
  if (!data || typeof data.job_id !== "string" || typeof data.network_id !== "string") return;
  const job = jobFor(data.job_id, data.network_id);
  job.fresh = false;
  if (!findNetwork(job.networkId)) refreshNetworksSoon(); // made elsewhere
  if (type === "training_update") {
    if (isNum(data.total_epochs)) job.totalEpochs = data.total_epochs;
    if (isNum(data.epoch)) {
      job.epoch = Math.max(job.epoch, data.epoch);
      setPoint(job, { epoch: data.epoch, accuracy: data.accuracy, elapsed: data.elapsed_time, correct: data.correct,
        validation: data.validation_accuracy, cost: data.training_cost });
    }
    if (isNum(data.accuracy)) job.accuracy = data.accuracy;
    if (isActive(job)) {
      if (isNum(data.progress)) job.progress = Math.max(job.progress, data.progress);
      job.status = "training";
      job.interrupted = null;
      job.batch = null; // until the next epoch reports its batches
    }
    listedJobEpoch(job);
    // The list's figures follow the epochs as they come.
    const n = findNetwork(job.networkId);
    if (n && isNum(data.accuracy)) {
      n.accuracy = data.accuracy;
      n.trained = true;
      n.status = "in_memory";
    }
    if (job.networkId === state.selected) {
      historySoon();
      detailsSoon();
      if (hasConv(findNetwork(job.networkId))) kernelsSoon();
      if (draw.hasInk) requestPrediction();
    }
  } else if (type === "training_progress") {
    if (isNum(data.total_epochs)) job.totalEpochs = data.total_epochs;
    if (isActive(job)) {
      job.status = "training";
      job.interrupted = null;
      if (isNum(data.progress)) job.progress = Math.max(job.progress, data.progress);
      if (isNum(data.batch) && isNum(data.batches)) job.batch = { epoch: data.epoch, batch: data.batch, batches: data.batches };
    }
  } else if (type === "training_complete") {
    finishJob(job, "completed", { accuracy: data.accuracy });
    refreshJobListSoon();
  } else if (type === "training_error" && data.status === "interrupted") {
    // The server is shutting down: the job has not ended, it resumes from
    // its last saved epoch when the server is back (its events then go on).
    if (isActive(job)) {
      job.interrupted = typeof data.error === "string" && data.error ? data.error : "interrupted";
      job.batch = null;
    }
  } else if (type === "training_error") {
    finishJob(job, data.status === "cancelled" ? "cancelled" : "failed", { error: data.error });
    refreshJobListSoon();
  }
  refreshJobViews(job);
}

const renderNetworksSoon = throttle(() => renderNetworks(), 250);
const refreshNetworksSoon = throttle(() => refreshNetworks(), 2000);

function refreshJobViews(job) {
  if (job.networkId === state.selected) renderTraining();
  renderRow(job.networkId); // at once: the row and the bar show the same figure
  renderNetworksSoon();
}

// pollJobs asks about unfinished jobs: the fallback while live updates are
// down, and a catch-up after reconnecting.
function pollJobs() {
  for (const job of state.jobs.values()) if (isActive(job)) syncJob(job.id);
}

async function startTraining(ev) {
  ev.preventDefault();
  const id = state.selected;
  if (!id) return;
  const msg = $("train-msg");
  let body;
  try {
    body = {
      epochs: readNumber("epochs", "Epochs", { integer: true, min: 1 }),
      mini_batch_size: readNumber("batch", "The mini-batch size", { integer: true, min: 1 }),
      learning_rate: readNumber("eta", "The learning rate", { min: 0, above: true }),
      cost: $("cost").value,
      lambda: readNumber("lambda", "λ", { min: 0, max: 1000 }),
      seed: readNumber("train-seed", "The seed", { integer: true }),
      stop_after_no_improvement: readNumber("stop-after", "Stop after", { integer: true, min: 1 }),
      restore_best: $("restore-best-opt").checked || undefined,
      expand: (layersOf(findNetwork(id)) && $("expand").checked) || undefined,
    };
    if ($("cost").value === "log_likelihood") delete body.cost; // implied by the softmax output
  } catch (e) {
    showMsg(msg, e.message);
    return;
  }
  await withBusy($("train-button"), async () => {
    try {
      const res = await api("POST", `/networks/${enc(id)}/train`, body, id);
      usedNetwork(id);
      // Its events may have come first; else it is new and has no past.
      const job = jobFor(res.job_id, res.network_id || id, false);
      job.fresh = false;
      if (!job.totalEpochs) job.totalEpochs = body.epochs ?? 5;
      const out = (layersOf(findNetwork(id)) || []).slice(-1)[0];
      if (!job.params) job.params = { cost: out && out.type === "softmax" ? "log_likelihood" : undefined, ...body, epochs: job.totalEpochs };
      if (body.seed === undefined) syncJob(job.id); // the seed the server chose
      state.latestJob.set(job.networkId, job.id);
      rememberJob(job.id, job.networkId);
      refreshJobListSoon();
      showMsg(msg, "");
      renderTraining();
      renderNetworks();
      refreshStatus();
    } catch (e) {
      showMsg(msg, `Could not start training: ${e.message}`);
    }
  });
}

async function cancelTraining() {
  const job = selectedJob();
  if (!isActive(job)) return;
  const button = $("cancel-button");
  await withBusy(button, async () => {
    try {
      const res = await api("POST", `/training/${enc(job.id)}/cancel`, undefined, job.networkId);
      finishJob(job, res.status === "cancelled" ? "cancelled" : "failed", { error: "Training cancelled" });
    } catch (e) {
      if (e.status === 409 && e.data && typeof e.data.status === "string") {
        syncJob(job.id); // it ended meanwhile: show how
      } else {
        toast(`Could not cancel the training: ${e.message}`);
      }
    }
  });
  renderTraining();
  refreshJobList();
}

// ---------------------------------------------------------------- job list

const RECENT_JOBS = 10; // finished jobs the panel shows

// refreshJobList reads the jobs panel: every queued and running job (the
// newest 100), then the most recent finished ones.
async function refreshJobList() {
  try {
    const [active, recent] = await Promise.all([
      api("GET", "/training?status=pending,training&limit=100"),
      api("GET", `/training?status=completed,failed,cancelled&limit=${RECENT_JOBS}`),
    ]);
    const jobs = (x) => (Array.isArray(x.jobs) ? x.jobs.filter((j) => j && typeof j.job_id === "string") : []);
    state.jobList = [...jobs(active), ...jobs(recent)];
    showMsg($("jobs-msg"), "");
  } catch (e) {
    showMsg($("jobs-msg"), `Could not load the jobs: ${e.message}`);
  }
  renderJobList();
}
const refreshJobListSoon = throttle(() => refreshJobList(), 1000);

// listedJobEpoch brings a listed job's figures up to a training_update, or
// reads the list again for a job it does not have yet.
function listedJobEpoch(job) {
  const j = state.jobList.find((x) => x.job_id === job.id);
  if (!j) {
    refreshJobListSoon();
    return;
  }
  if (j.status === "pending") refreshJobListSoon(); // it moved to running: reorder
  j.status = "training";
  j.epoch = Math.max(j.epoch || 0, job.epoch);
  if (isNum(job.accuracy)) j.accuracy = job.accuracy;
  renderJobList();
}

// renderJobList keeps a row per job, reused while the job is listed: only
// text and classes change, so that no click on a Cancel button is lost.
function renderJobList() {
  const tbody = $("job-rows");
  const jobs = state.jobList;
  const running = jobs.filter((j) => j.status === "training").length;
  const queued = jobs.filter((j) => j.status === "pending").length;
  $("jobs-count").textContent = running || queued ? `(${running} running · ${queued} queued)` : "";
  $("jobs-empty").hidden = jobs.length > 0;
  const old = new Map([...tbody.rows].map((r) => [r.dataset.id, r]));
  let before = tbody.firstElementChild;
  for (const j of jobs) {
    const row = old.get(j.job_id) || h("tr", { tabindex: 0, dataset: { id: j.job_id } });
    old.delete(j.job_id);
    fillJobRow(row, j);
    if (row === before) before = row.nextElementSibling;
    else tbody.insertBefore(row, before);
  }
  for (const r of old.values()) r.remove();
}

function fillJobRow(row, j) {
  let c = row._cells;
  if (!c) {
    c = row._cells = {
      net: h("td", { class: "mono col-net" }),
      badge: h("span", { class: "badge" }),
      epoch: h("td", { class: "num" }),
      acc: h("td", { class: "num" }),
      cancel: h("button", {
        type: "button", class: "danger ghost small", dataset: { action: "cancel-job" },
        onclick: (ev) => { ev.stopPropagation(); cancelListedJob(row.dataset.id, ev.currentTarget); },
      }, "Cancel"),
    };
    row.append(h("td", { class: "mono" }, shortId(j.job_id)), c.net, h("td", {}, c.badge), c.epoch, c.acc,
      h("td", { class: "row-actions" }, c.cancel));
    const open = () => { const n = row._networkId; if (findNetwork(n)) select(n); };
    row.addEventListener("click", open);
    row.addEventListener("keydown", (ev) => {
      if (ev.target === ev.currentTarget && (ev.key === "Enter" || ev.key === " ")) {
        ev.preventDefault();
        open();
      }
    });
  }
  const setText = (el, text) => { if (el.textContent !== text) el.textContent = text; };
  row._networkId = j.network_id;
  row.title = `Job ${j.job_id} of network ${j.network_id}`;
  setText(c.net, shortId(j.network_id));
  const status = String(j.status ?? "—");
  c.badge.className = `badge ${status}`;
  c.badge.title = j.error || "";
  setText(c.badge, status === "pending" ? "queued" : status);
  setText(c.epoch, `${isNum(j.epoch) ? j.epoch : "?"} / ${isNum(j.epochs) ? j.epochs : "?"}`);
  setText(c.acc, pct(j.accuracy));
  c.cancel.hidden = !ACTIVE.has(j.status);
  c.cancel.title = `Cancel job ${j.job_id}`;
  c.cancel.setAttribute("aria-label", `Cancel job ${shortId(j.job_id)}`);
}

// cancelListedJob cancels a job of the panel, with its network's owner
// token if this browser has it.
async function cancelListedJob(jobId, button) {
  const j = state.jobList.find((x) => x.job_id === jobId);
  if (!j) return;
  await withBusy(button, async () => {
    try {
      const res = await api("POST", `/training/${enc(jobId)}/cancel`, undefined, j.network_id);
      const job = state.jobs.get(jobId);
      if (job) finishJob(job, res.status === "cancelled" ? "cancelled" : "failed", { error: "Training cancelled" });
      else toast(`Job ${shortId(jobId)} cancelled.`, "ok");
    } catch (e) {
      if (!(e.status === 409 && e.data && typeof e.data.status === "string")) toast(`Could not cancel the job: ${e.message}`);
    }
  });
  renderTraining();
  refreshJobList();
}

// ---------------------------------------------------------------- training card

function renderTraining() {
  const id = state.selected;
  $("train-placeholder").hidden = !!id;
  $("train-body").hidden = !id;
  updateControls();
  if (!id) return;

  const job = selectedJob();
  $("job").hidden = !job;
  if (!job) return;
  const active = isActive(job);
  $("cancel-button").hidden = !active;

  const badge = $("job-status");
  badge.className = `badge ${job.interrupted && active ? "stopped" : job.status}`;
  badge.textContent = job.interrupted && active ? "interrupted" : job.status === "pending" ? "queued" : job.status;
  const last = job.points[job.points.length - 1];
  let text = `Epoch ${job.epoch} of ${job.totalEpochs || "?"}`;
  if (active && job.batch && job.batch.batches) {
    text = `Epoch ${job.batch.epoch} of ${job.totalEpochs || "?"} · batch ${job.batch.batch} of ${job.batch.batches}`;
  }
  if (last && isNum(last.elapsed)) text += ` · last epoch ${last.elapsed.toFixed(1)} s`;
  if (isNum(job.accuracy)) text += ` · accuracy ${pct(job.accuracy)}`;
  if (job.status === "failed" || job.status === "cancelled") text = `${job.error || job.status} · ${text}`;
  if (job.stoppedEarly) text = `Stopped early: no gain for ${job.params.stop_after_no_improvement} epochs` +
    `${isNum(job.bestEpoch) ? `, best was epoch ${job.bestEpoch}` : ""} · ${text}`;
  else if (job.interrupted && active) text = `${job.interrupted} · ${text}`;
  $("job-text").textContent = text;
  $("job-text").title = `job ${job.id}`;
  const pr = job.params;
  $("job-params").textContent = pr
    ? [isNum(pr.learning_rate) && `η ${pr.learning_rate}`, isNum(pr.mini_batch_size) && `mini-batch ${pr.mini_batch_size}`,
      pr.cost && `${pr.cost === "cross_entropy" ? "cross-entropy" : pr.cost === "log_likelihood" ? "log-likelihood" : pr.cost} cost`,
      pr.expand && "expanded ×5",
      isNum(pr.lambda) && `λ ${pr.lambda}`, isNum(pr.seed) && `seed ${pr.seed}`,
      pr.stop_after_no_improvement && `stop after ${pr.stop_after_no_improvement} without gain`,
      pr.restore_best && "restore best"].filter(Boolean).join(" · ")
    : "";

  const p = Math.max(0, Math.min(100, job.progress || 0));
  $("progress-bar").style.width = `${p}%`;
  $("progress-bar").className = `bar ${job.status}`;
  const shown = progressText(job);
  $("progress").setAttribute("aria-valuenow", String(parseInt(shown, 10)));
  $("progress").setAttribute("aria-valuetext", shown);
  $("progress-label").textContent = shown;

  const pts = job.points.filter((q) => isNum(q.accuracy));
  const val = job.points.filter((q) => isNum(q.validation));
  const costs = job.points.filter((q) => isNum(q.cost));
  const xMax = Math.max(job.totalEpochs || 1, pts.length ? pts[pts.length - 1].epoch : 1);
  const empty = job.status === "failed" || job.status === "cancelled" ? "No epoch finished" : "Waiting for the first epoch…";
  drawChart($("chart"), {
    xMax,
    series: [{ label: "test", color: 0, marker: 0, points: pts.map((q) => ({
      x: q.epoch, y: q.accuracy,
      tip: `Epoch ${q.epoch}: test ${pct(q.accuracy)}${isNum(q.correct) ? ` (${q.correct} / 10000)` : ""}${isNum(q.elapsed) ? `, ${q.elapsed.toFixed(1)} s` : ""}`,
    })) }, { label: "validation", color: 1, marker: 1, points: val.map((q) => ({
      x: q.epoch, y: q.validation, tip: `Epoch ${q.epoch}: validation ${pct(q.validation)}`,
    })) }],
    area: !val.length,
    empty,
    label: `Test accuracy after each epoch: ${pts.map((q) => `epoch ${q.epoch} ${pct(q.accuracy)}`).join(", ") || "none yet"}` +
      (val.length ? `; validation accuracy: ${val.map((q) => `epoch ${q.epoch} ${pct(q.validation)}`).join(", ")}` : ""),
  });
  $("cost-figure").hidden = !costs.length;
  if (costs.length) {
    drawChart($("cost-chart"), {
      xMax, yKind: "cost",
      series: [{ label: "training cost", color: 2, marker: 2, points: costs.map((q) => ({
        x: q.epoch, y: q.cost, tip: `Epoch ${q.epoch}: training cost ${fmtCost(q.cost)}`,
      })) }],
      empty,
      label: `Training cost of each epoch: ${costs.map((q) => `epoch ${q.epoch} ${fmtCost(q.cost)}`).join(", ")}`,
    });
  }
}

// fmtCost formats a training cost with 3 significant digits.
function fmtCost(v) { return v >= 1000 ? v.toExponential(2) : Number(v.toPrecision(3)).toString(); }

// ---------------------------------------------------------------- charts

const PALETTE = 6;   // colours: .c0 … .c5 in style.css
const MARKERS = 4;   // circle, square, triangle, diamond

function markerShape(kind, x, y, r) {
  switch (kind % MARKERS) {
    case 1: return s("rect", { x: x - r, y: y - r, width: 2 * r, height: 2 * r });
    case 2: return s("path", { d: `M${x},${y - r * 1.25} L${x + r * 1.2},${y + r * 0.85} L${x - r * 1.2},${y + r * 0.85} Z` });
    case 3: return s("path", { d: `M${x},${y - r * 1.3} L${x + r * 1.3},${y} L${x},${y + r * 1.3} L${x - r * 1.3},${y} Z` });
    default: return s("circle", { cx: x, cy: y, r });
  }
}

// drawChart draws accuracy (0–1) against epochs as an SVG line chart. The
// viewBox is the element's own width in CSS pixels, so text is as large on a
// phone as on a desktop; a ResizeObserver redraws it when the width changes.
// opts: {series: [{label, color, marker, points: [{x, y, tip}]}], xMin,
// xMax, area, empty, label}.
function drawChart(svg, opts) {
  svg._chart = opts;
  chartObserver.observe(svg);
  const W = Math.round(svg.getBoundingClientRect().width) || 600;
  svg._width = W;
  const narrow = W < 420;
  const H = narrow ? 200 : 240;
  const L = 46, R = narrow ? 12 : 18, T = 14, B = 36;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("aria-label", opts.label || "chart");
  const all = opts.series.flatMap((se) => se.points);
  const xMin = opts.xMin ?? 1;
  const xMax = Math.max(opts.xMax ?? 1, xMin, ...all.map((p) => p.x));
  // Accuracy charts plot percentages from a rounded floor to 100; a cost
  // chart (opts.yKind "cost") plots values from 0 to a rounded ceiling.
  const cost = opts.yKind === "cost";
  const yv = (p) => (cost ? p.y : p.y * 100);
  const vals = all.map(yv);
  let lo = 0, hi = 100, ystep;
  if (cost) {
    const top = Math.max(1e-9, ...vals);
    const mag = 10 ** Math.floor(Math.log10(top));
    ystep = [0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => top / st <= 5);
    hi = Math.ceil(top / ystep - 1e-9) * ystep;
  } else {
    lo = vals.length ? Math.max(0, Math.floor((Math.min(...vals) - 1) / 5) * 5) : 0;
    ystep = hi - lo > 50 ? 20 : hi - lo > 20 ? 10 : hi - lo > 10 ? 5 : 2;
  }
  const yLabel = (v) => (cost ? fmtCost(v) : `${v}%`);
  const x = (v) => L + (xMax === xMin ? (W - L - R) / 2 : ((v - xMin) / (xMax - xMin)) * (W - L - R));
  const y = (a) => T + (1 - (a - lo) / (hi - lo)) * (H - T - B);

  svg.replaceChildren();
  const grid = s("g", { class: "grid" });
  for (let i = 0, v = lo; v <= hi + ystep * 1e-6; v = lo + ++i * ystep) {
    grid.append(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    grid.append(s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, yLabel(v)));
  }
  const maxTicks = Math.max(2, Math.floor((W - L - R) / 44));
  const span = xMax - xMin + 1;
  const xstep = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000].find((st) => span / st <= maxTicks) || Math.ceil(span / maxTicks);
  const first = Math.ceil(xMin / xstep) * xstep;
  if (first !== xMin) grid.append(s("text", { x: x(xMin), y: H - B + 18, "text-anchor": "middle" }, String(xMin)));
  for (let e = first; e <= xMax; e += xstep) {
    if (e !== xMin && x(e) - x(xMin) < 24) continue;
    grid.append(s("text", { x: x(e), y: H - B + 18, "text-anchor": "middle" }, String(e)));
  }
  grid.append(s("text", { x: (L + W - R) / 2, y: H - 3, "text-anchor": "middle", class: "axis-title" }, "epoch"));
  svg.append(grid);

  if (!all.length) {
    svg.append(s("text", { x: (L + W - R) / 2, y: (T + H - B) / 2, "text-anchor": "middle", class: "chart-empty" },
      opts.empty || "No data"));
    return;
  }
  const r = narrow ? 3.5 : 4;
  for (const se of opts.series) {
    const pts = se.points;
    if (!pts.length) continue;
    const g = s("g", { class: `series c${se.color % PALETTE}` });
    const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.x).toFixed(1)},${y(yv(p)).toFixed(1)}`).join(" ");
    if (opts.area) {
      g.append(s("path", { d: `${d} L${x(pts[pts.length - 1].x).toFixed(1)},${y(lo)} L${x(pts[0].x).toFixed(1)},${y(lo)} Z`, class: "area" }));
    }
    g.append(s("path", { d, class: "line" }));
    // Markers only where they do not overlap into a smear.
    const dense = pts.length > 1 && (x(pts[pts.length - 1].x) - x(pts[0].x)) / (pts.length - 1) < 6;
    for (const p of pts) {
      const m = markerShape(se.marker, x(p.x), y(yv(p)), dense ? r * 0.6 : r);
      m.setAttribute("class", "point");
      m.append(s("title", {}, p.tip || `${se.label}: epoch ${p.x}, ${cost ? fmtCost(p.y) : pct(p.y)}`));
      g.append(m);
    }
    svg.append(g);
  }
  const lastP = all.reduce((a, b) => (b.x >= a.x ? b : a));
  const lx = x(lastP.x), ly = y(yv(lastP));
  svg.append(s("text", {
    x: lx > W - R - 70 ? lx - 9 : lx + 9, y: ly < T + 16 ? ly + 20 : ly - 10,
    "text-anchor": lx > W - R - 70 ? "end" : "start", class: "point-label",
  }, cost ? fmtCost(lastP.y) : pct(lastP.y)));
}

const chartObserver = new ResizeObserver((entries) => {
  for (const e of entries) {
    const svg = e.target;
    const w = Math.round(svg.getBoundingClientRect().width);
    if (w && w !== svg._width && svg._chart) drawChart(svg, svg._chart);
  }
});

// ---------------------------------------------------------------- job ends

// How each job of a history ended, for its legend: what the page heard
// (events, its own requests) or GET /api/training/{id} answers. The server
// keeps a finished job 24 hours; a job it no longer knows gets no label
// rather than a guess. Ends are kept in localStorage across reloads.
function loadEnds() {
  for (const e of readStore(STORE_ENDS, [])) {
    if (Array.isArray(e) && typeof e[0] === "string") state.ends.set(e[0], e[1] ? { status: e[1], error: e[2] || null } : null);
  }
}

// noteEnd records how a job ended; status null: the server does not know it.
function noteEnd(jobId, status, error) {
  if (status !== null && !(status === "completed" || status === "failed" || status === "cancelled")) return;
  if (status === null && state.ends.get(jobId)) return; // what the page heard stays
  state.ends.delete(jobId);
  state.ends.set(jobId, status ? { status, error: typeof error === "string" && error ? error : null } : null);
  const all = [...state.ends].slice(-KEEP_ENDS);
  writeStore(STORE_ENDS, all.map(([id, e]) => (e ? [id, e.status, e.error] : [id, null])));
}

// jobEnd is what the page knows of a job's state: {status, error}, null
// when the server no longer knows it, undefined when not known yet.
function jobEnd(jobId) {
  const job = state.jobs.get(jobId);
  if (job && isActive(job)) return { status: job.status };
  if (state.ends.has(jobId)) return state.ends.get(jobId);
  return undefined;
}

// lookUpEnds asks the server how the given jobs ended, three at a time,
// then draws the legend again.
async function lookUpEnds(jobIds) {
  const todo = jobIds.filter((id) => jobEnd(id) === undefined && !state.lookingUp.has(id));
  if (!todo.length) return;
  for (const id of todo) state.lookingUp.add(id);
  const next = async () => {
    for (let id = todo.shift(); id; id = todo.shift()) {
      try {
        const st = await api("GET", `/training/${enc(id)}`);
        if (ACTIVE.has(st.status)) mergeJob(jobFor(id, st.network_id, false), st); // running: followed from now on
        else noteEnd(id, st.status, st.error);
      } catch (e) {
        if (e.status === 404) noteEnd(id, null); // forgotten (24 h) or from another server: say nothing
      }
    }
  };
  await Promise.all([next(), next(), next()]);
  renderHistory();
}

// endLabel words a job's end for the legend: {text, kind, title}.
function endLabel(end) {
  if (!end) return null;
  const err = typeof end.error === "string" ? end.error : "";
  switch (end.status) {
    case "pending": return { text: "queued", kind: "pending" };
    case "training": return { text: "training now", kind: "training" };
    case "completed": return { text: "completed", kind: "completed", title: "Every epoch asked for was trained" };
    case "cancelled": return { text: !err || err === "Training cancelled" ? "cancelled" : `cancelled: ${err}`, kind: "cancelled",
      title: "Cancelled: the epochs before the cancel were kept" };
    case "failed":
      if (/shutting down/i.test(err)) return { text: "stopped: the server shut down", kind: "stopped", title: err };
      if (/^training diverged/i.test(err)) return { text: "failed: training diverged", kind: "failed", title: err };
      return { text: err ? `failed: ${err}` : "failed", kind: "failed", title: err || null };
    default: return null;
  }
}

// ---------------------------------------------------------------- history

// loadHistory reads the selected network's history. Several readings may be
// under way (one per epoch, one when a job ends): an answer older than the
// one shown is dropped, whatever order the answers come in.
let historyAsked = 0, historyShown = 0;
async function loadHistory() {
  const id = state.selected;
  if (!id) return;
  const seq = ++historyAsked;
  let result;
  try {
    // The history comes a page at a time (at most 10,000 records each).
    const epochs = [];
    let from = 1;
    for (;;) {
      const res = await api("GET", `/networks/${enc(id)}/history?from_epoch=${from}&limit=10000`);
      if (state.selected !== id) return;
      if (Array.isArray(res.epochs)) epochs.push(...res.epochs);
      if (res.next_from_epoch == null || res.next_from_epoch <= from) break;
      from = res.next_from_epoch;
    }
    result = { networkId: id, epochs };
    usedNetwork(id);
  } catch (e) {
    result = { networkId: id, error: e.message };
  }
  if (state.selected !== id || seq < historyShown) return;
  historyShown = seq;
  state.history = result;
  renderHistory();
}

const historySoon = throttle(() => loadHistory(), HISTORY_EVERY_MS);

function renderHistory() {
  const id = state.selected;
  $("history-placeholder").hidden = !!id;
  $("history-body").hidden = !id;
  if (!id) return;
  const hist = state.history && state.history.networkId === id ? state.history : null;
  showMsg($("history-msg"), hist && hist.error ? `Could not load the history: ${hist.error}` : "");
  const epochs = hist && hist.epochs ? hist.epochs.filter((e) => isNum(e.epoch) && isNum(e.accuracy)) : [];
  // One series per job, in the order the jobs ran.
  const byJob = new Map();
  for (const e of epochs) {
    const key = e.job_id || "?";
    if (!byJob.has(key)) byJob.set(key, []);
    byJob.get(key).push(e);
  }
  const series = [...byJob.entries()].map(([jobId, list], i) => {
    const first = list[0];
    const costName = first.cost === "cross_entropy" ? "cross-entropy" : first.cost === "log_likelihood" ? "log-likelihood" : first.cost || "quadratic";
    const params = [isNum(first.learning_rate) ? `η ${first.learning_rate}` : null,
      isNum(first.mini_batch_size) ? `batch ${first.mini_batch_size}` : null, costName,
      isNum(first.lambda) && first.lambda ? `λ ${first.lambda}` : null].filter(Boolean).join(", ");
    const range = list.length > 1 ? `epochs ${list[0].epoch}–${list[list.length - 1].epoch}` : `epoch ${list[0].epoch}`;
    return {
      label: `Job ${i + 1}`, jobId, color: i, marker: i, params, range,
      points: list.map((e) => ({
        x: e.epoch, y: e.accuracy,
        tip: `Job ${i + 1}, epoch ${e.epoch}: ${pct(e.accuracy)}${isNum(e.elapsed_time) ? `, ${e.elapsed_time.toFixed(1)} s` : ""}` +
          (e.finished_at ? `, ${new Date(e.finished_at).toLocaleString()}` : ""),
      })),
    };
  });
  const n = findNetwork(id);
  const origin = n && [typeof n.init === "string" && `${n.init === "scaled" ? "N(0, 1/√n)" : n.init === "normal" ? "N(0, 1)" : n.init} initial weights`,
    isNum(n.seed) && `seed ${n.seed}`].filter(Boolean).join(", ");
  $("history-origin").hidden = !origin;
  $("history-origin").textContent = origin ? `Created with ${origin}.` : "";
  drawChart($("history-chart"), {
    series,
    xMax: Math.max(1, ...epochs.map((e) => e.epoch)),
    empty: hist ? "Not trained yet" : "Loading…",
    label: `Test accuracy of ${plural(epochs.length, "epoch")} over ${plural(series.length, "job")}` +
      (epochs.length ? `; last ${pct(epochs[epochs.length - 1].accuracy)}` : ""),
  });
  $("history-legend").replaceChildren(...series.map((se) => {
    const sw = s("svg", { class: `swatch c${se.color % PALETTE}`, viewBox: "0 0 24 14", width: 24, height: 14, "aria-hidden": "true" },
      s("line", { x1: 0, x2: 24, y1: 7, y2: 7, class: "line" }));
    const m = markerShape(se.marker, 12, 7, 4);
    m.setAttribute("class", "point");
    sw.append(m);
    const end = endLabel(jobEnd(se.jobId));
    return h("li", { title: `job ${se.jobId}`, dataset: { job: se.jobId, end: end ? end.kind : "" } },
      sw, h("span", { class: "legend-name" }, se.label),
      h("span", { class: "legend-detail" }, `${se.range} · ${se.params}`),
      end && h("span", { class: `legend-end badge ${end.kind}`, title: end.title }, end.text));
  }));
  lookUpEnds(series.slice(-LOOKUP_JOBS).map((se) => se.jobId).filter((j) => j !== "?"));
}

// ---------------------------------------------------------------- name and snapshots

// loadDetails reads the selected network (GET /api/networks/{id}): its name
// and notes, its snapshots and a summary of its history. The newest answer
// asked for wins.
let detailsAsked = 0;
async function loadDetails() {
  const id = state.selected;
  if (!id) return;
  const seq = ++detailsAsked;
  let result;
  try {
    result = { networkId: id, data: await api("GET", `/networks/${enc(id)}`) };
    usedNetwork(id);
  } catch (e) {
    result = { networkId: id, error: e.message };
  }
  if (state.selected !== id || seq !== detailsAsked) return;
  state.details = result;
  renderDetails();
}

const detailsSoon = throttle(() => loadDetails(), HISTORY_EVERY_MS);

function renderDetails() {
  const id = state.selected;
  $("details-placeholder").hidden = !!id;
  $("details-body").hidden = !id;
  if (!id) return;
  const det = state.details && state.details.networkId === id ? state.details : null;
  const d = det && det.data;
  showMsg($("snapshot-msg"), det && det.error ? `Could not load the network: ${det.error}` : "");
  // The form follows the network, not the answers: what is being typed stays.
  const form = $("label-form");
  if (d && form.dataset.for !== id) {
    form.dataset.for = id;
    $("net-name").value = typeof d.name === "string" ? d.name : "";
    $("net-notes").value = typeof d.notes === "string" ? d.notes : "";
  }
  const sum = d && d.history_summary;
  const n = findNetwork(id);
  $("net-summary").textContent = sum
    ? [layersOf(n) && archText(n), plural(sum.epochs, "epoch"), isNum(sum.best_accuracy) && `best test ${pct(sum.best_accuracy)} (epoch ${sum.best_epoch})`,
      isNum(sum.best_validation_accuracy) && `best validation ${pct(sum.best_validation_accuracy)} (epoch ${sum.best_validation_epoch})`,
      sum.restores && plural(sum.restores, "restore"), Array.isArray(d.jobs) && plural(d.jobs.length, "job")].filter(Boolean).join(" · ")
    : "";
  const snaps = d && Array.isArray(d.snapshots) ? d.snapshots : [];
  $("snapshots-empty").hidden = !d || snaps.length > 0;
  $("restore-best").disabled = !snaps.some((x) => x.best);
  $("snapshot-rows").replaceChildren(...snaps.slice().reverse().map((x) => h("tr", { dataset: { epoch: x.epoch }, class: x.best ? "best" : "" },
    h("td", {}, `${x.epoch} `, x.best && h("span", { class: "badge completed", title: "The highest validation accuracy" }, "best")),
    h("td", { class: "num" }, pct(x.accuracy)),
    h("td", { class: "num" }, pct(x.validation_accuracy)),
    h("td", { class: "col-saved", title: `job ${x.job_id}` }, x.finished_at ? new Date(x.finished_at).toLocaleString() : ""),
    h("td", { class: "row-actions" },
      h("a", { class: "icon-link", href: `${API}/networks/${enc(id)}/download?epoch=${x.epoch}`, download: `${id}-epoch-${x.epoch}.npz`,
        title: `Download the snapshot of epoch ${x.epoch} (.npz)`, "aria-label": `Download epoch ${x.epoch}` }, "⤓"),
      h("button", { type: "button", class: "ghost small", "aria-label": `Restore epoch ${x.epoch}`,
        onclick: (ev) => restoreSnapshot({ epoch: x.epoch }, ev.currentTarget) }, "Restore")))));
}

async function saveLabel(ev) {
  ev.preventDefault();
  const id = state.selected;
  if (!id) return;
  const msg = $("label-msg");
  const body = { name: $("net-name").value.trim(), notes: $("net-notes").value };
  await withBusy($("label-save"), async () => {
    try {
      const res = await api("PATCH", `/networks/${enc(id)}`, body, id);
      const n = findNetwork(id);
      if (n) Object.assign(n, { name: res.name, notes: res.notes });
      showMsg(msg, `Saved: ${nameOf(res, id)}.`, "ok");
      renderNetworks();
      renderCompare();
      loadDetails();
    } catch (e) {
      showMsg(msg, `Could not save: ${e.message}`);
    }
  });
}

// restoreSnapshot gives the selected network the weights of a snapshot:
// body {epoch: N} or {best: true}.
async function restoreSnapshot(body, button) {
  const id = state.selected;
  if (!id) return;
  await withBusy(button, async () => {
    try {
      const res = await api("POST", `/networks/${enc(id)}/restore`, body, id);
      toast(`Restored epoch ${res.restored_from} of ${nameOf(findNetwork(id), id)}: ${pct(res.accuracy)} test accuracy.`, "ok");
      showMsg($("snapshot-msg"), "");
      dropExamples(id);
      if (state.evaluation && state.evaluation.networkId === id && state.evaluation.data) {
        state.evaluation.stale = true;
        renderEvaluation();
      }
      loadHistory();
      loadDetails();
      loadKernels();
      if (state.compare.has(id)) loadCompare(id);
      refreshNetworks();
    } catch (e) {
      showMsg($("snapshot-msg"), `Could not restore: ${e.message}`);
    }
  });
}

// ---------------------------------------------------------------- compare

function toggleCompare(id, on) {
  if (on) state.compare.add(id);
  else {
    state.compare.delete(id);
    state.compareHist.delete(id);
  }
  writeStore(STORE_COMPARE, [...state.compare]);
  if (on && !state.compareHist.has(id)) loadCompare(id);
  renderRow(id);
  renderCompare();
}

// loadCompare reads a compared network's whole history, a page at a time
// (one reading per network at once: the next list reads it again if it
// has changed meanwhile).
const comparing = new Set();
async function loadCompare(id) {
  if (comparing.has(id)) return;
  comparing.add(id);
  try {
    await readCompare(id);
  } finally {
    comparing.delete(id);
  }
}

async function readCompare(id) {
  const n = findNetwork(id);
  const at = n ? n.epochs_trained : null;
  let result;
  try {
    const epochs = [];
    for (let from = 1; ;) {
      const res = await api("GET", `/networks/${enc(id)}/history?from_epoch=${from}&limit=10000`);
      if (Array.isArray(res.epochs)) epochs.push(...res.epochs);
      if (res.next_from_epoch == null || res.next_from_epoch <= from) break;
      from = res.next_from_epoch;
    }
    result = { at, epochs };
  } catch (e) {
    result = { at, error: e.message };
  }
  if (!state.compare.has(id)) return;
  state.compareHist.set(id, result);
  renderCompare();
}

function renderCompare() {
  const ids = state.networks.map((n) => n.network_id).filter((id) => state.compare.has(id));
  $("compare-placeholder").hidden = ids.length > 0;
  $("compare-body").hidden = !ids.length;
  if (!ids.length) return;
  const errors = ids.filter((id) => (state.compareHist.get(id) || {}).error);
  showMsg($("compare-msg"), errors.length ? `Could not load ${errors.map((id) => nameOf(findNetwork(id), id)).join(", ")}.` : "");
  const series = ids.map((id, i) => {
    const epochs = ((state.compareHist.get(id) || {}).epochs || []).filter((e) => isNum(e.epoch) && isNum(e.accuracy));
    const name = nameOf(findNetwork(id), id);
    return {
      label: name, id, color: i, marker: i, epochs,
      points: epochs.map((e) => ({ x: e.epoch, y: e.accuracy,
        tip: `${name}, epoch ${e.epoch}: ${pct(e.accuracy)}${isNum(e.validation_accuracy) ? ` (validation ${pct(e.validation_accuracy)})` : ""}` +
          (e.restored_from ? `, restored from epoch ${e.restored_from}` : "") })),
    };
  });
  const all = series.flatMap((se) => se.epochs);
  drawChart($("compare-chart"), {
    series, xMax: Math.max(1, ...all.map((e) => e.epoch)),
    empty: ids.every((id) => state.compareHist.has(id)) ? "Not trained yet" : "Loading…",
    label: `Test accuracy of ${series.map((se) => `${se.label}: ${plural(se.epochs.length, "epoch")}` +
      (se.epochs.length ? `, last ${pct(se.epochs[se.epochs.length - 1].accuracy)}` : "")).join("; ")}`,
  });
  $("compare-legend").replaceChildren(...series.map((se) => {
    const sw = s("svg", { class: `swatch c${se.color % PALETTE}`, viewBox: "0 0 24 14", width: 24, height: 14, "aria-hidden": "true" },
      s("line", { x1: 0, x2: 24, y1: 7, y2: 7, class: "line" }));
    const m = markerShape(se.marker, 12, 7, 4);
    m.setAttribute("class", "point");
    sw.append(m);
    const best = se.epochs.reduce((a, e) => (!a || e.accuracy > a.accuracy ? e : a), null);
    return h("li", { title: `network ${se.id}`, dataset: { id: se.id } }, sw, h("span", { class: "legend-name" }, se.label),
      h("span", { class: "legend-detail" }, se.epochs.length ? `${plural(se.epochs.length, "epoch")} · best ${pct(best.accuracy)}` : "no epoch yet"));
  }));
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
      result = await api("GET", `/networks/${enc(id)}/${kind}_example`);
      usedNetwork(id);
    } catch (e) {
      result = { error: e.message };
    }
    state.examples.set(`${id}/${kind}`, result);
  });
  if (state.selected === id) renderExamples();
}

function renderExamples() {
  const id = state.selected;
  $("examples-placeholder").hidden = !!id;
  $("examples-body").hidden = !id;
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
  placeToastSoon();
}

// barsView shows ten output activations, one labelled row per digit (digit,
// bar, value), so that the values never run into each other however narrow
// the card: a row's label and value keep their width, the bar takes the rest.
// The rows are separated by spaces in the text too (copy, find, readers).
function barsView(outputs, predicted, actual) {
  const out = Array.isArray(outputs) ? outputs.map(Number) : [];
  const correct = actual === undefined || predicted === actual;
  const fmt = (v) => (isNum(v) ? v.toFixed(2) : "?");
  const label = `Output activations, 0 to 1: ${out.map((v, d) => `${d}: ${fmt(v)}`).join(", ")}` +
    (isNum(predicted) ? `; predicted ${predicted}` : "") + (actual !== undefined && !correct ? `, actually ${actual}` : "");
  const bars = h("ol", { class: "bars", role: "img", "aria-label": label });
  out.forEach((v, digit) => {
    const width = isNum(v) ? Math.max(0, Math.min(1, v)) * 100 : 0;
    const cls = ["bar-row"];
    if (digit === predicted) cls.push(correct ? "predicted ok" : "predicted wrong");
    if (actual !== undefined && digit === actual && !correct) cls.push("actual");
    if (digit) bars.append(" ");
    bars.append(h("li", { class: cls.join(" "), title: `output ${digit}: ${isNum(v) ? v.toFixed(4) : "?"}` },
      h("span", { class: "bar-digit" }, String(digit)),
      h("span", { class: "bar-track" }, h("span", { class: "bar-fill", style: { width: `${width.toFixed(1)}%` } })), " ",
      h("span", { class: "bar-value" }, fmt(v))));
  });
  return bars;
}

function exampleView(ex) {
  const correct = ex.predicted_digit === ex.actual_digit;
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
    h("p", { class: "bars-title" }, "Output activations (0–1)"),
    barsView(ex.network_output, ex.predicted_digit, ex.actual_digit),
    h("p", { class: "legend" },
      h("span", { class: "item" }, h("span", { class: `key ${correct ? "ok" : "wrong"}` }), "predicted"),
      correct ? null : h("span", { class: "item" }, h("span", { class: "key actual" }), "actual")));
}

// ---------------------------------------------------------------- drawing

const draw = {
  ctx: null,
  drawing: false,
  pointer: null,
  last: null,
  hasInk: false,
  seq: 0,            // bumped by every change of input; stale answers are dropped
  shown: 0,          // seq of the answer on screen
  pending: false,
  inFlight: false,
  lastSent: -Infinity,
  timer: 0,
};

function padPoint(ev) {
  const c = $("pad");
  const r = c.getBoundingClientRect();
  return { x: ((ev.clientX - r.left) / r.width) * c.width, y: ((ev.clientY - r.top) / r.height) * c.height };
}

function strokeTo(p) {
  const ctx = draw.ctx;
  ctx.beginPath();
  ctx.moveTo(draw.last.x, draw.last.y);
  ctx.lineTo(p.x, p.y);
  ctx.stroke();
  draw.last = p;
}

function setupPad() {
  const c = $("pad");
  draw.ctx = c.getContext("2d", { willReadFrequently: true });
  c.addEventListener("pointerdown", (ev) => {
    if (!state.selected || (ev.pointerType === "mouse" && ev.button !== 0)) return;
    ev.preventDefault();
    c.setPointerCapture(ev.pointerId);
    draw.drawing = true;
    draw.pointer = ev.pointerId;
    const ctx = draw.ctx;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = 20;
    ctx.strokeStyle = "#000";
    draw.last = padPoint(ev);
    strokeTo({ x: draw.last.x + 0.01, y: draw.last.y });
    inkChanged();
  });
  c.addEventListener("pointermove", (ev) => {
    if (!draw.drawing || ev.pointerId !== draw.pointer) return;
    const events = typeof ev.getCoalescedEvents === "function" ? ev.getCoalescedEvents() : [];
    for (const e of events.length ? events : [ev]) strokeTo(padPoint(e));
    inkChanged();
  });
  const end = (ev) => {
    if (!draw.drawing || ev.pointerId !== draw.pointer) return;
    draw.drawing = false;
    draw.pointer = null;
    inkChanged();
  };
  c.addEventListener("pointerup", end);
  c.addEventListener("pointercancel", end);

  // Image files: dropped on the pad or chosen.
  const wrap = $("pad-wrap");
  wrap.addEventListener("dragover", (ev) => {
    if (!state.selected) return;
    ev.preventDefault();
    wrap.classList.add("dragging");
  });
  wrap.addEventListener("dragleave", () => wrap.classList.remove("dragging"));
  wrap.addEventListener("drop", (ev) => {
    ev.preventDefault();
    wrap.classList.remove("dragging");
    const file = ev.dataTransfer && ev.dataTransfer.files[0];
    if (file) predictFile(file);
  });
  $("pad-file-button").addEventListener("click", () => $("pad-file").click());
  $("pad-file").addEventListener("change", () => {
    const file = $("pad-file").files[0];
    $("pad-file").value = "";
    if (file) predictFile(file);
  });
  $("pad-clear").addEventListener("click", () => resetDraw());
}

function inkChanged() {
  draw.hasInk = true;
  $("pad-hint").hidden = true;
  requestPrediction();
}

function resetDraw() {
  const id = state.selected;
  $("draw-placeholder").hidden = !!id;
  $("draw-body").hidden = !id;
  if (draw.ctx) draw.ctx.clearRect(0, 0, $("pad").width, $("pad").height);
  draw.hasInk = false;
  draw.pending = false;
  draw.seq++;
  draw.shown = draw.seq;
  $("pad-hint").hidden = false;
  $("prediction-body").hidden = true;
  $("prediction-empty").hidden = false;
  showMsg($("draw-msg"), "");
}

// padPixels turns the drawing into the network's input as MNIST's digits
// were made: the ink's bounding box scaled to fit 20×20, placed in 28×28 so
// that its centre of mass is in the middle. Returns null when blank.
function padPixels() {
  const c = $("pad");
  const { width: W, height: H } = c;
  const src = draw.ctx.getImageData(0, 0, W, H).data;
  let x0 = W, y0 = H, x1 = -1, y1 = -1;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (src[(y * W + x) * 4 + 3] > 16) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return null;
  const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  const scale = 20 / Math.max(bw, bh);
  const sw = bw * scale, sh = bh * scale;
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  const sctx = small.getContext("2d", { willReadFrequently: true });
  sctx.imageSmoothingEnabled = true;
  sctx.imageSmoothingQuality = "high";
  const place = (dx, dy) => {
    sctx.clearRect(0, 0, 28, 28);
    sctx.drawImage(c, x0, y0, bw, bh, (28 - sw) / 2 + dx, (28 - sh) / 2 + dy, sw, sh);
    return sctx.getImageData(0, 0, 28, 28).data;
  };
  let data = place(0, 0);
  let m = 0, mx = 0, my = 0;
  for (let i = 0; i < 784; i++) {
    const a = data[i * 4 + 3];
    m += a;
    mx += a * (i % 28);
    my += a * Math.floor(i / 28);
  }
  if (m > 0) {
    const dx = Math.round(13.5 - mx / m), dy = Math.round(13.5 - my / m);
    if (dx || dy) data = place(dx, dy);
  }
  const pixels = new Array(784);
  for (let i = 0; i < 784; i++) pixels[i] = Math.round((data[i * 4 + 3] / 255) * 1000) / 1000;
  return pixels.some((v) => v > 0) ? pixels : null;
}

// requestPrediction asks for a prediction of the drawing, at most one every
// PREDICT_EVERY_MS and one at a time; the last drawing is always sent.
function requestPrediction() {
  draw.seq++;
  draw.pending = true;
  pumpPrediction();
}

function pumpPrediction() {
  if (!draw.pending || draw.inFlight) return;
  const wait = draw.lastSent + PREDICT_EVERY_MS - performance.now();
  if (wait > 0) {
    if (!draw.timer) draw.timer = setTimeout(() => { draw.timer = 0; pumpPrediction(); }, wait);
    return;
  }
  draw.pending = false;
  const id = state.selected;
  const pixels = id && draw.hasInk ? padPixels() : null;
  if (!pixels) return;
  draw.inFlight = true;
  draw.lastSent = performance.now();
  const seq = draw.seq;
  predict(id, { pixels }, seq).finally(() => {
    draw.inFlight = false;
    pumpPrediction();
  });
}

async function predict(id, body, seq, fromFile) {
  try {
    const res = await api("POST", `/networks/${enc(id)}/predict`, body);
    usedNetwork(id);
    if (seq < draw.shown || state.selected !== id) return;
    draw.shown = seq;
    showPrediction(res, fromFile);
  } catch (e) {
    if (state.selected !== id || seq < draw.shown) return;
    showMsg($("draw-msg"), `Could not predict: ${e.message}`);
  }
}

async function predictFile(file) {
  const id = state.selected;
  if (!id) return;
  let blob = file;
  if (file.type !== "image/png" && file.type !== "image/jpeg") {
    // Other formats the browser reads are sent as PNG.
    try {
      const bmp = await createImageBitmap(file);
      const c = document.createElement("canvas");
      c.width = bmp.width;
      c.height = bmp.height;
      c.getContext("2d").drawImage(bmp, 0, 0);
      blob = await new Promise((resolve, reject) => c.toBlob((b) => (b ? resolve(b) : reject(new Error("no PNG"))), "image/png"));
    } catch (e) {
      showMsg($("draw-msg"), `${file.name} is not an image this browser can read.`);
      return;
    }
  }
  resetDraw();
  $("pad-hint").hidden = true;
  const seq = ++draw.seq;
  await predict(id, blob, seq, file.name);
}

// confidenceNote says what the confidence is: the top output's margin over
// the next one, e.g. "the margin of 7 (0.97) over the next digit, 2 (0.04)".
function confidenceNote(res) {
  const out = Array.isArray(res.network_output) ? res.network_output.map(Number) : [];
  if (out.length < 2 || !out.every(isNum)) return "Confidence: the margin of the top output over the next digit's.";
  const order = out.map((v, d) => [v, d]).sort((a, b) => b[0] - a[0]);
  const [[v1, d1], [v2, d2]] = order;
  return `Confidence: the margin of ${d1} (${v1.toFixed(2)}) over the next digit, ${d2} (${v2.toFixed(2)}).`;
}

function showPrediction(res, fromFile) {
  showMsg($("draw-msg"), "");
  $("prediction-empty").hidden = true;
  $("prediction-body").hidden = false;
  $("predicted-digit").textContent = String(res.predicted_digit);
  $("predicted-text").textContent = `predicted, ${pct(res.confidence, 1)} confidence`;
  $("confidence-note").textContent = confidenceNote(res);
  $("prediction-meta").textContent = fromFile
    ? `From ${fromFile}. Left: the 28×28 input as the network saw it.`
    : "Left: your drawing as the network saw it (28×28).";
  const img = $("prediction-input");
  img.src = imageSrc(res.image_data);
  img.alt = `The 28×28 input the network saw, read as ${res.predicted_digit}`;
  $("prediction-bars").replaceChildren(barsView(res.network_output, res.predicted_digit));
  placeToastSoon();
}

// ---------------------------------------------------------------- evaluation

async function loadEvaluation() {
  const id = state.selected;
  if (!id) return;
  await withBusy($("eval-button"), async () => {
    $("eval-button").textContent = "Evaluating…";
    try {
      const data = await api("GET", `/networks/${enc(id)}/evaluation`);
      usedNetwork(id);
      if (state.selected !== id) return;
      state.evaluation = { networkId: id, data };
    } catch (e) {
      if (state.selected !== id) return;
      state.evaluation = { networkId: id, error: e.message };
    }
  });
  state.cell = null;
  renderEvaluation();
}

function renderEvaluation() {
  const id = state.selected;
  $("eval-placeholder").hidden = !!id;
  $("eval-button").hidden = !id;
  const ev = state.evaluation && state.evaluation.networkId === id ? state.evaluation : null;
  $("eval-button").textContent = ev && ev.data ? "Evaluate again" : "Evaluate on the test set";
  showMsg($("eval-msg"), ev && ev.error ? `Could not evaluate: ${ev.error}` :
    ev && ev.stale ? "The network has been trained since: these figures are out of date." : "", ev && ev.stale ? "info" : "error");
  $("eval-body").hidden = !(ev && ev.data);
  if (!ev || !ev.data) return;
  const d = ev.data;
  $("eval-summary").textContent = `${pct(d.accuracy)} accuracy: ${d.correct} of ${d.total} test images classified correctly.`;
  renderMatrix(d);
  renderClasses(d);
  renderCell();
  $("mistakes").replaceChildren(...(Array.isArray(d.most_confident_mistakes) ? d.most_confident_mistakes : []).map((m) =>
    digitFigure(m.image_data, m.actual_digit, m.predicted_digit, m.confidence, m.example_index)));
  if (!$("mistakes").children.length) $("mistakes").append(h("li", { class: "placeholder small" }, "No mistakes."));
}

function renderMatrix(d) {
  const cm = Array.isArray(d.confusion_matrix) ? d.confusion_matrix : [];
  let maxOff = 0;
  cm.forEach((row, a) => row.forEach((v, p) => { if (a !== p && v > maxOff) maxOff = v; }));
  const table = $("cm");
  const head = h("tr", {}, h("th", { scope: "col", class: "corner" }, h("span", { class: "sr-only" }, "actual \\ predicted")),
    ...Array.from({ length: 10 }, (_, p) => h("th", { scope: "col", "aria-label": `predicted ${p}` }, String(p))));
  const rows = cm.map((row, a) => {
    const total = row.reduce((x, y) => x + y, 0);
    return h("tr", {}, h("th", { scope: "row", "aria-label": `actual ${a}` }, String(a)),
      ...row.map((v, p) => {
        const share = total ? v / total : 0;
        const level = a === p ? share : maxOff ? Math.sqrt(v / maxOff) : 0;
        const label = `Actual ${a}, predicted ${p}: ${v} test image${v === 1 ? "" : "s"}` +
          (total ? ` (${pct(share, 1)} of the ${total} ${a}s)` : "");
        const selected = state.cell && state.cell.actual === a && state.cell.predicted === p;
        return h("td", { role: "gridcell" }, h("button", {
          type: "button",
          class: `cm-cell ${a === p ? "diag" : "off"}${level > 0.55 ? " strong" : ""}${v === 0 ? " zero" : ""}${selected ? " selected" : ""}`,
          style: { "--level": `${Math.round(level * 100)}%` },
          title: label, "aria-label": label, "aria-pressed": selected ? "true" : "false",
          tabindex: (state.cell ? selected : a === 0 && p === 0) ? 0 : -1,
          dataset: { a, p },
          onclick: () => openCell(a, p, v),
          onkeydown: matrixKey,
        }, String(v)));
      }));
  });
  table.replaceChildren(h("thead", {}, head), h("tbody", {}, rows));
}

// matrixKey moves the focus with the arrow keys (one tab stop for the grid).
function matrixKey(ev) {
  const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1], Home: [0, -10], End: [0, 10] };
  const m = moves[ev.key];
  if (!m) return;
  ev.preventDefault();
  const a = Math.max(0, Math.min(9, Number(ev.currentTarget.dataset.a) + m[0]));
  const p = Math.max(0, Math.min(9, Number(ev.currentTarget.dataset.p) + m[1]));
  const next = $("cm").querySelector(`.cm-cell[data-a="${a}"][data-p="${p}"]`);
  if (!next) return;
  for (const b of $("cm").querySelectorAll(".cm-cell")) b.tabIndex = -1;
  next.tabIndex = 0;
  next.focus();
}

function renderClasses(d) {
  const f = (v) => (isNum(v) ? pct(v, 1) : "—");
  $("classes-rows").replaceChildren(...(Array.isArray(d.per_class) ? d.per_class : []).map((c) =>
    h("tr", {},
      h("th", { scope: "row" }, String(c.digit)),
      h("td", { class: "num" }, String(c.count)),
      h("td", { class: "num", title: isNum(c.precision) ? null : `${c.digit} is never predicted` },
        h("span", { class: "meter", style: { "--v": `${isNum(c.precision) ? c.precision * 100 : 0}%` } }), f(c.precision)),
      h("td", { class: "num" }, h("span", { class: "meter", style: { "--v": `${isNum(c.recall) ? c.recall * 100 : 0}%` } }), f(c.recall)))));
}

async function openCell(actual, predicted, count) {
  const id = state.selected;
  state.cell = { networkId: id, actual, predicted, count, loading: count > 0 };
  renderMatrix(state.evaluation.data);
  const btn = $("cm").querySelector(`.cm-cell[data-a="${actual}"][data-p="${predicted}"]`);
  if (btn) btn.focus();
  renderCell();
  if (!count) return;
  let result;
  try {
    result = { data: await api("GET", `/networks/${enc(id)}/evaluation/examples?actual=${actual}&predicted=${predicted}`) };
    usedNetwork(id);
  } catch (e) {
    result = { error: e.message };
  }
  const c = state.cell;
  if (!c || c.networkId !== id || c.actual !== actual || c.predicted !== predicted) return;
  Object.assign(c, { loading: false }, result);
  renderCell();
}

function renderCell() {
  const c = state.cell;
  $("cell-examples").hidden = !c;
  if (!c) return;
  const what = c.actual === c.predicted ? `${c.actual}s read correctly` : `${c.actual}s read as ${c.predicted}`;
  $("cell-title").textContent = `Test images: ${what} (${c.count})`;
  showMsg($("cell-msg"), c.error ? `Could not load the images: ${c.error}` : c.loading ? "Loading…" : c.count ? "" : "No test image in this cell.",
    c.error ? "error" : "info");
  const list = c.data && Array.isArray(c.data.examples) ? c.data.examples : [];
  $("cell-grid").replaceChildren(...list.map((x) => digitFigure(x.image_data, c.actual, c.predicted, x.confidence, x.example_index)));
}

function digitFigure(data, actual, predicted, confidence, index) {
  const wrong = actual !== predicted;
  const label = `Test image ${index}: actual ${actual}, predicted ${predicted}` +
    (isNum(confidence) ? `, ${pct(confidence, 1)} confidence (margin over the next digit)` : "");
  return h("li", { class: `digit ${wrong ? "wrong" : "ok"}`, title: label },
    h("img", { class: "digit-img", src: imageSrc(data), width: 56, height: 56, alt: label }),
    h("span", { class: "digit-labels", "aria-hidden": "true" },
      h("span", { class: "actual" }, String(actual)), " → ", h("span", { class: "predicted" }, String(predicted))),
    h("span", { class: "digit-conf", "aria-hidden": "true" }, isNum(confidence) ? pct(confidence, 0) : ""));
}

// ---------------------------------------------------------------- live updates

function setLive(kind, text) {
  const chip = $("live-status");
  chip.className = `chip ${kind}`;
  chip.querySelector(".label").textContent = `Live updates: ${text}`;
}

function connectSocket() {
  if (typeof io !== "function") {
    setLive("bad", "unavailable");
    return;
  }
  const socket = io({ path: "/socket.io/", transports: ["polling", "websocket"] });
  let connectedBefore = false;
  socket.on("connect", () => {
    state.socketConnected = true;
    setLive("ok", "connected");
    pollJobs(); // catch up on anything missed while disconnected
    refreshJobList();
    if (connectedBefore) {
      // Back after a disconnect (the server may have restarted): what was
      // read while it was away may have failed.
      refreshStatus();
      refreshNetworks();
      if (state.selected) loadHistory();
    }
    connectedBefore = true;
  });
  socket.on("disconnect", () => {
    state.socketConnected = false;
    setLive("warn", "reconnecting…");
  });
  socket.on("connect_error", () => {
    state.socketConnected = false;
    setLive("bad", "disconnected");
  });
  for (const type of ["training_update", "training_progress", "training_complete", "training_error"]) {
    socket.on(type, (data) => onEvent(type, data));
  }
}

// ---------------------------------------------------------------- start

async function init() {
  $("create-form").addEventListener("submit", createNetwork);
  $("train-form").addEventListener("submit", startTraining);
  $("cancel-button").addEventListener("click", cancelTraining);
  $("refresh-networks").addEventListener("click", (ev) => withBusy(ev.currentTarget, refreshNetworks));
  $("delete-all").addEventListener("click", deleteAll);
  $("claim-form").addEventListener("submit", claimNetwork);
  $("import-button").addEventListener("click", () => $("import-file").click());
  $("import-file").addEventListener("change", importNetwork);
  $("eval-button").addEventListener("click", loadEvaluation);
  $("label-form").addEventListener("submit", saveLabel);
  $("restore-best").addEventListener("click", (ev) => restoreSnapshot({ best: true }, ev.currentTarget));
  for (const id of readStore(STORE_COMPARE, [])) if (typeof id === "string") state.compare.add(id);
  $("toast-close").addEventListener("click", () => ($("toast").hidden = true));
  window.addEventListener("scroll", placeToastSoon, { passive: true });
  window.addEventListener("resize", placeToastSoon);
  for (const b of document.querySelectorAll(".example-head button")) {
    b.addEventListener("click", () => loadExample(b.dataset.kind, b));
  }
  setupPad();
  setupPresets();
  loadEnds();

  connectSocket();
  refreshStatus();
  renderTraining();
  renderExamples();
  resetDraw();
  renderHistory();
  renderDetails();
  renderEvaluation();

  await refreshNetworks();
  // Jobs started from this browser earlier: follow those still running.
  const remembered = readStore(STORE_JOBS, []).filter((j) => j && typeof j.job_id === "string");
  await Promise.all(remembered.filter((j) => findNetwork(j.network_id)).map((j) => syncJob(j.job_id)));
  const saved = readStore(STORE_SELECTED, null);
  const running = state.networks.find((n) => activeJobOf(n.network_id));
  const pick = findNetwork(saved) ? saved : running ? running.network_id : null;
  if (pick && !state.selected) select(pick);
  renderNetworks();
  document.body.dataset.ready = "true";

  setInterval(() => { if (!document.hidden) refreshStatus(); }, STATUS_EVERY_MS);
  setInterval(() => { if (!document.hidden) refreshNetworks(); }, NETWORKS_EVERY_MS);
  setInterval(() => { if (!document.hidden) refreshJobList(); }, NETWORKS_EVERY_MS);
  setInterval(() => { if (!state.socketConnected) pollJobs(); }, JOB_POLL_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      refreshStatus();
      refreshNetworks();
    }
  });
}

init();
