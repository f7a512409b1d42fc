// Layered networks (issue 18) on the management page: the rules that say
// whether a list of layers chains (a mirror of pkg/deep/plan.go's Plan and
// Count, the same checks in the same order and the same messages; a Go
// test, test/browser/plan_test.go, compares the two on many lists), the
// compact description of a network's layers, the layer editor of the "New
// network" card and the first conv layer's kernels as images.
//
// An ES module, loaded by app.js only when needed (the editor is opened, or
// a listed network has layers): the first load stays small. Nothing here
// runs at import time, so Node can import it too.

export const CLASSES = 10;
export const MAX_DROPOUT = 0.9;
const MAX_DIM = 1 << 30;
const MAX_INT = (1n << 63n) - 1n; // Go's math.MaxInt on the server
const KINDS = ["conv", "pool", "dense", "softmax"];
const ACTIVATIONS = ["sigmoid", "tanh", "relu"];
const INPUT = { c: 1, h: 28, w: 28 };

// The server's defaults (docs/LIMITS.md); app.js replaces one when a 400
// names another ("more than the limit of N").
export const DEFAULT_LIMITS = { maxLayers: 10, maxParams: 5_000_000, maxMACs: 100_000_000, maxActivations: 1_000_000 };

// The chapter-6 network of the issue (Nielsen's network3.py).
export const CH6_LAYERS = [
  { type: "conv", filters: 20, size: 5, activation: "relu" },
  { type: "pool", size: 2 },
  { type: "conv", filters: 40, size: 5, activation: "relu" },
  { type: "pool", size: 2 },
  { type: "dense", size: 100, activation: "relu", dropout: 0.5 },
  { type: "softmax", size: 10 },
];

// ---------------------------------------------------------------- Go's formatting

// goFloat formats x as Go's %v does: the shortest decimal that reads back
// as x, with an exponent when it is below -4 or at least 6 (1e-05, 1e+06).
export function goFloat(x) {
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "+Inf" : "-Inf";
  if (x === 0) return Object.is(x, -0) ? "-0" : "0";
  const [mant, e] = x.toExponential().split("e");
  const exp = Number(e);
  if (exp < -4 || exp >= 6) return `${mant}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  const digits = mant.replace(/^-/, "").replace(".", "");
  const sign = x < 0 ? "-" : "";
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  return sign + (digits.length <= exp + 1 ? digits.padEnd(exp + 1, "0") : `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`);
}

// goQuote is Go's %q for the printable strings the page can send.
const goQuote = (s) => JSON.stringify(String(s));

const layerString = (l) => (l.type === "conv" || l.type === "pool" ? `${l.type} ${l.size}×${l.size}` : `${l.type} ${l.size}`);

// shapeText is deep.Shape's String: "24×24×20" (height×width×channels), or
// the number of neurons of a flat output.
export const shapeText = (s) => (s.h === 1 && s.w === 1 ? String(s.c) : `${s.h}×${s.w}×${s.c}`);

// ---------------------------------------------------------------- Plan and Count

const mulSat = (a, b) => (a < 0n || b < 0n || a * b > MAX_INT ? MAX_INT : a * b);
const addSat = (a, b) => (a < 0n || b < 0n || a + b > MAX_INT ? MAX_INT : a + b);
const big = (n) => BigInt(n);

// norm gives a layer the fields the server's decoder would: missing ones
// are 0 or "".
function norm(l) {
  return {
    type: typeof l.type === "string" ? l.type : "",
    filters: l.filters ?? 0, size: l.size ?? 0,
    activation: typeof l.activation === "string" ? l.activation : "",
    dropout: l.dropout ?? 0,
  };
}

// plan checks that layers chain from the 1×28×28 input and stay within
// lim, as deep.Plan does: {shapes, stats} or {error: {index, message}},
// message being the server's text (deep's LayerError), with the shapes of
// the layers before the one refused.
export function plan(input, lim = {}) {
  const layers = input.map(norm);
  if (layers.length === 0) return { error: { index: -1, message: "deep: a network needs at least one layer" } };
  const shapes = [];
  let inp = INPUT, flat = false;
  let params = 0n, macs = 0n, acts = 0n;
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i];
    const fail = (msg) => ({ error: { index: i, message: `layers[${i}] (${layerString(l)}) ${msg}` }, shapes });
    if (!KINDS.includes(l.type)) {
      return { error: { index: i, message: `layers[${i}] has unknown kind ${goQuote(l.type)} (want conv, pool, dense or softmax)` }, shapes };
    }
    if (l.size < 1) return fail(`needs a size of at least 1, got ${l.size}`);
    if (l.type === "conv") {
      if (l.filters < 1) return fail(`needs at least 1 filter, got ${l.filters}`);
    } else if (l.filters !== 0) return fail(`has ${l.filters} filters: only a conv layer has filters`);
    if (l.type === "conv" || l.type === "dense") {
      if (!ACTIVATIONS.includes(l.activation)) return fail(`has activation ${goQuote(l.activation)}, want sigmoid, tanh or relu`);
    } else if (l.activation !== "") return fail(`takes no activation, got ${goQuote(l.activation)}`);
    if (l.type === "dense" || l.type === "softmax") {
      if (!(l.dropout >= 0 && l.dropout <= MAX_DROPOUT)) return fail(`has dropout ${goFloat(l.dropout)}, want 0 to ${goFloat(MAX_DROPOUT)}`);
    } else if (l.dropout !== 0) return fail(`has dropout ${goFloat(l.dropout)}: only dense and softmax layers drop out`);
    let out, p = 0n, m = 0n;
    const len = (s) => s.c * s.h * s.w;
    if (l.type === "conv") {
      if (flat) return fail(`comes after a dense layer, whose output ${shapeText(inp)} has no planes to convolve`);
      if (l.size > inp.h || l.size > inp.w) return fail(`needs an input of at least ${l.size}×${l.size}, got ${shapeText(inp)}`);
      out = { c: l.filters, h: inp.h - l.size + 1, w: inp.w - l.size + 1 };
      const k = mulSat(big(inp.c), mulSat(big(l.size), big(l.size)));
      p = mulSat(big(l.filters), addSat(k, 1n));
      m = mulSat(k, mulSat(big(l.filters), mulSat(big(out.h), big(out.w))));
    } else if (l.type === "pool") {
      if (flat) return fail(`comes after a dense layer, whose output ${shapeText(inp)} has no planes to pool`);
      if (inp.h % l.size !== 0 || inp.w % l.size !== 0) return fail(`needs an input whose height and width ${l.size} divides, got ${shapeText(inp)}`);
      out = { c: inp.c, h: inp.h / l.size, w: inp.w / l.size };
    } else {
      if (l.type === "softmax" && i !== layers.length - 1) return fail("is not the last layer: softmax is the output layer only");
      flat = true;
      out = { c: l.size, h: 1, w: 1 };
      p = mulSat(big(l.size), addSat(big(len(inp)), 1n));
      m = mulSat(big(l.size), big(len(inp)));
    }
    if (out.c > MAX_DIM || out.h > MAX_DIM || len(out) > MAX_DIM) return fail(`has an output of ${shapeText(out)} values, too many`);
    params = addSat(params, p);
    macs = addSat(macs, m);
    acts = addSat(acts, big(len(out)));
    if (params === MAX_INT || macs === MAX_INT) return fail("has too many weights or multiply-adds to count");
    if (lim.maxParams > 0 && params > big(lim.maxParams)) return fail(`brings the weights and biases to ${params}, more than the limit of ${lim.maxParams}`);
    if (lim.maxMACs > 0 && macs > big(lim.maxMACs)) return fail(`brings the multiply-adds per image to ${macs}, more than the limit of ${lim.maxMACs}`);
    if (lim.maxActivations > 0 && acts > big(lim.maxActivations)) return fail(`brings the activations per image to ${acts}, more than the limit of ${lim.maxActivations}`);
    shapes.push(out);
    inp = out;
  }
  const last = layers[layers.length - 1], n = layers.length - 1;
  const ok = (last.type === "softmax" && last.size === CLASSES) ||
    (last.type === "dense" && last.size === CLASSES && last.activation === "sigmoid");
  if (!ok) {
    return { error: { index: n, message: `layers[${n}] (${layerString(last)}) is the last layer: it must be softmax ${CLASSES}, or dense ${CLASSES} with the sigmoid activation` }, shapes };
  }
  return { shapes, stats: count(layers, shapes) };
}

// count is deep.Count for planned layers: weights and biases, multiply-adds
// and activations per image, as BigInts (exact past 2⁵³ as Go's ints are),
// and each layer's weights and biases.
function count(layers, shapes) {
  let params = 0n, macs = 0n, acts = 0n, inp = INPUT;
  const perLayer = [];
  layers.forEach((l, i) => {
    const out = shapes[i], lenIn = big(inp.c * inp.h * inp.w), lenOut = big(out.c * out.h * out.w);
    let p = 0n;
    if (l.type === "conv") {
      const k = big(inp.c * l.size * l.size);
      p = mulSat(big(l.filters), k + 1n);
      macs = addSat(macs, mulSat(k, lenOut));
    } else if (l.type === "dense" || l.type === "softmax") {
      p = mulSat(big(l.size), lenIn + 1n);
      macs = addSat(macs, mulSat(big(l.size), lenIn));
    }
    params = addSat(params, p);
    acts = addSat(acts, lenOut);
    perLayer.push(Number(p));
    inp = out;
  });
  return { params, macs, activations: acts, perLayer };
}

// ---------------------------------------------------------------- descriptions

const dropText = (l) => (l.dropout ? ` (dropout ${l.dropout})` : "");

// layerText describes one layer: "conv 20×5×5 relu", "pool 2",
// "dense 100 relu (dropout 0.5)", "softmax 10".
export function layerText(l) {
  switch (l.type) {
    case "conv": return `conv ${l.filters}×${l.size}×${l.size} ${l.activation}`;
    case "pool": return `pool ${l.size}`;
    case "dense": return `dense ${l.size} ${l.activation}${dropText(l)}`;
    case "softmax": return `softmax ${l.size}${dropText(l)}`;
    default: return String(l.type);
  }
}

export const describe = (layers) => layers.map(layerText).join(" · ");

export const hasConv = (layers) => Array.isArray(layers) && layers.some((l) => l && l.type === "conv");
export const hasReLU = (layers) => Array.isArray(layers) && layers.some((l) => l && l.activation === "relu");
export const isSoftmax = (layers) => Array.isArray(layers) && layers.length > 0 && layers[layers.length - 1].type === "softmax";

// body is a layer as POST /api/networks takes it: only its kind's fields.
export function body(l) {
  switch (l.type) {
    case "conv": return { type: "conv", filters: l.filters, size: l.size, activation: l.activation };
    case "pool": return { type: "pool", size: l.size };
    case "dense": return { type: "dense", size: l.size, activation: l.activation, ...(l.dropout ? { dropout: l.dropout } : {}) };
    default: return { type: l.type, size: l.size, ...(l.dropout ? { dropout: l.dropout } : {}) };
  }
}

// ---------------------------------------------------------------- the editor

const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
};
const fmt = (n) => Number(n).toLocaleString("en-US");
const SIZE_NAME = { conv: "kernel", pool: "block", dense: "neurons", softmax: "outputs" };
const NEW_LAYER = {
  conv: { type: "conv", filters: 20, size: 5, activation: "relu" },
  pool: { type: "pool", size: 2 },
  dense: { type: "dense", size: 100, activation: "relu", dropout: 0 },
  softmax: { type: "softmax", size: 10, dropout: 0 },
};

// editor makes the layer editor in root: one row per layer (its kind and
// fields, its output shape and weights, buttons to move or remove it), a
// way to add one, the totals and the reason a list is refused. Every
// change is planned at once; onChange({valid, layers}) is told, layers
// being the request's list when valid. Its fields hold text, as typed.
export function editor(root, { limits = DEFAULT_LIMITS, onChange = () => {} } = {}) {
  let rows = []; // {type, filters, size, activation, dropout} as strings
  const list = el("ol", { class: "layer-list", id: "layer-list", "aria-label": "Layers, from the 28×28 input to the output" });
  const kind = el("select", { id: "add-kind" }, ...KINDS.map((k) => el("option", { value: k }, k)));
  kind.value = "dense";
  const add = el("button", { type: "button", class: "ghost small", id: "add-layer", onclick: () => {
    const l = { ...NEW_LAYER[kind.value] };
    // Before the output layer, unless it is the output layer itself.
    const at = rows.length && l.type !== "softmax" && ["softmax", "dense"].includes(rows[rows.length - 1].type) ? rows.length - 1 : rows.length;
    rows.splice(at, 0, text(l));
    render(at, "type");
  } }, "Add layer");
  const summary = el("p", { class: "layers-summary", id: "layers-summary", "aria-live": "polite" });
  const error = el("p", { class: "msg error", id: "layers-error", role: "alert", hidden: true });
  root.replaceChildren(
    el("p", { class: "layers-input" }, "Input: 28×28×1 (one image)"), list,
    el("div", { class: "layer-add" }, el("label", { class: "lf" }, el("span", {}, "New layer's kind"), kind), add),
    summary, error);

  const text = (l) => ({ type: l.type, filters: String(l.filters ?? 20), size: String(l.size ?? ""),
    activation: l.activation || "relu", dropout: String(l.dropout ?? 0) });

  // parse reads the rows as the request would carry them, or says which
  // field is not a number.
  function parse() {
    const layers = [];
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      const int = (name, raw) => (/^\s*-?\d{1,15}\s*$/.test(raw) ? Number(raw) : { index: i, message: `layers[${i}] (${r.type}): the ${name} must be a whole number` });
      const l = { type: r.type, size: int(SIZE_NAME[r.type], r.size) };
      if (r.type === "conv") l.filters = int("filters", r.filters);
      if (r.type === "conv" || r.type === "dense") l.activation = r.activation;
      if (r.type === "dense" || r.type === "softmax") {
        l.dropout = r.dropout.trim() === "" ? 0 : Number(r.dropout);
        if (!Number.isFinite(l.dropout)) return { error: { index: i, message: `layers[${i}] (${r.type}): the dropout must be a number from 0 to ${MAX_DROPOUT}` } };
      }
      for (const v of [l.size, l.filters]) if (v && typeof v === "object") return { error: v };
      layers.push(l);
    }
    if (rows.length > limits.maxLayers) return { error: { index: -1, message: `layers may list at most ${limits.maxLayers} layers, got ${rows.length}` } };
    return { layers };
  }

  function check() {
    const p = parse();
    const r = p.error ? p : plan(p.layers, limits);
    const bad = r.error ? r.error.index : null;
    [...list.children].forEach((li, i) => {
      const out = li.querySelector(".layer-out");
      const shape = r.shapes && r.shapes[i], w = r.stats ? r.stats.perLayer[i] : 0;
      out.textContent = i === bad ? "✕ refused" : shape ? `→ ${shapeText(shape)}${w ? ` · ${fmt(w)} weights` : ""}` : "→ ?";
      li.classList.toggle("invalid", i === bad);
      for (const f of li.querySelectorAll("input, select")) {
        if (i === bad) {
          f.setAttribute("aria-invalid", "true");
          f.setAttribute("aria-describedby", "layers-error");
        } else {
          f.removeAttribute("aria-invalid");
          f.removeAttribute("aria-describedby");
        }
      }
    });
    if (r.error) {
      error.hidden = false;
      error.textContent = r.error.message;
      summary.textContent = `${rows.length} ${rows.length === 1 ? "layer" : "layers"}: not a network the server takes.`;
    } else {
      error.hidden = true;
      error.textContent = "";
      const s = r.stats;
      summary.textContent = `${rows.length} layers · ${fmt(s.params)} weights and biases · ` +
        `${fmt(s.macs)} multiply-adds and ${fmt(s.activations)} activations per image`;
    }
    onChange({ valid: !r.error, layers: r.error ? null : p.layers.map(body), error: r.error || null });
    return r;
  }

  // render draws the rows again; focus: [row, field] to focus afterwards.
  function render(focusRow, focusField) {
    list.replaceChildren(...rows.map((r, i) => {
      const n = i + 1;
      const lab = (name, control) => el("label", { class: "lf" }, el("span", {}, el("span", { class: "sr-only" }, `Layer ${n} `), name), control);
      const field = (f, attrs) => {
        const input = el("input", { type: "number", "data-f": f, value: r[f], spellcheck: "false", ...attrs });
        input.addEventListener("input", () => { rows[i][f] = input.value; check(); });
        return input;
      };
      const type = el("select", { "data-f": "type" }, ...KINDS.map((k) => el("option", { value: k, selected: k === r.type }, k)));
      type.addEventListener("change", () => {
        const d = NEW_LAYER[type.value];
        rows[i] = text({ ...d, size: r.type === type.value ? r.size : d.size });
        render(i, "type");
      });
      const act = el("select", { "data-f": "activation" }, ...ACTIVATIONS.map((a) => el("option", { value: a, selected: a === r.activation }, a)));
      act.addEventListener("change", () => { rows[i].activation = act.value; check(); });
      const move = (to, act, label, sym, disabled) => el("button", { type: "button", class: "ghost icon", "aria-label": `${label} layer ${n}`, title: `${label} layer ${n}`, disabled,
        "data-act": act,
        onclick: () => {
          const [r0] = rows.splice(i, 1);
          if (to !== null) rows.splice(to, 0, r0);
          render(to ?? Math.min(i, rows.length - 1), to === null ? null : `button[data-act="${act}"]`);
        } }, sym);
      return el("li", { class: `layer-row kind-${r.type}` },
        el("span", { class: "layer-n", "aria-hidden": "true" }, String(n)),
        lab("kind", type),
        r.type === "conv" && lab("filters", field("filters", { min: 1, step: 1, inputmode: "numeric" })),
        lab(SIZE_NAME[r.type], field("size", { min: 1, step: 1, inputmode: "numeric" })),
        (r.type === "conv" || r.type === "dense") && lab("activation", act),
        (r.type === "dense" || r.type === "softmax") && lab("dropout", field("dropout", { min: 0, max: MAX_DROPOUT, step: 0.05, inputmode: "decimal" })),
        el("output", { class: "layer-out" }),
        el("span", { class: "layer-move" },
          move(i - 1, "up", "Move up", "↑", i === 0), move(i + 1, "down", "Move down", "↓", i === rows.length - 1),
          move(null, "remove", "Remove", "✕", false)));
    }));
    check();
    if (focusRow !== undefined && focusRow >= 0 && list.children[focusRow]) {
      const li = list.children[focusRow];
      const target = focusField && (focusField.startsWith("button") ? li.querySelector(focusField) : li.querySelector(`[data-f="${focusField}"]`));
      (target && !target.disabled ? target : li.querySelector("select")).focus();
    } else if (focusField === null) add.focus();
  }

  return {
    set(layers) { rows = layers.map(text); render(); },
    get layers() { const p = parse(); return p.layers ? p.layers.map(body) : null; },
    setLimits(l) { limits = { ...limits, ...l }; return check(); },
    check,
  };
}

// ---------------------------------------------------------------- kernels

// drawKernels shows GET /api/networks/{id}/kernels: one tile per filter
// (its channels side by side), on a diverging map normalised per layer:
// 0 is the card's grey, the largest |weight| of the whole layer full blue
// (negative) or full orange (positive), so that the filters compare.
export function drawKernels(root, data) {
  const k = Array.isArray(data.kernels) ? data.kernels : [];
  let max = 0;
  for (const f of k) for (const c of f) for (const row of c) for (const v of row) max = Math.max(max, Math.abs(v));
  const size = data.size, ch = data.channels || 1;
  const tiles = k.map((f, i) => {
    const cv = el("canvas", { width: size * ch, height: size, class: "kernel", title: `filter ${i + 1}` });
    const ctx = cv.getContext("2d");
    const img = ctx.createImageData(size * ch, size);
    f.forEach((c, ci) => c.forEach((row, y) => row.forEach((v, x) => {
      const t = max ? v / max : 0, a = Math.min(1, Math.abs(t));
      const to = t < 0 ? [33, 102, 172] : [230, 97, 1];
      const o = (y * size * ch + ci * size + x) * 4;
      for (let j = 0; j < 3; j++) img.data[o + j] = Math.round(128 + (to[j] - 128) * a);
      img.data[o + 3] = 255;
    })));
    ctx.putImageData(img, 0, 0);
    return cv;
  });
  root.replaceChildren(...tiles);
  root.dataset.epochs = String(data.epochs_trained ?? "");
  root.setAttribute("aria-label", `${k.length} kernels of ${size}×${size}${ch > 1 ? `×${ch}` : ""} of the first convolutional layer after ` +
    `${data.epochs_trained ?? "?"} epochs; weights from −${max.toPrecision(2)} (blue) through 0 (grey) to +${max.toPrecision(2)} (orange)`);
  return max;
}
