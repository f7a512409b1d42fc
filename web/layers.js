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
// message being the server's text (deep's LayerError).
export function plan(input, lim = {}) {
  const layers = input.map(norm);
  if (layers.length === 0) return { error: { index: -1, message: "deep: a network needs at least one layer" } };
  const shapes = [];
  let inp = INPUT, flat = false;
  let params = 0n, macs = 0n, acts = 0n;
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i];
    const fail = (msg) => ({ error: { index: i, message: `layers[${i}] (${layerString(l)}) ${msg}` } });
    if (!KINDS.includes(l.type)) {
      return { error: { index: i, message: `layers[${i}] has unknown kind ${goQuote(l.type)} (want conv, pool, dense or softmax)` } };
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
    return { error: { index: n, message: `layers[${n}] (${layerString(last)}) is the last layer: it must be softmax ${CLASSES}, or dense ${CLASSES} with the sigmoid activation` } };
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
