// Shared helpers for the protocol tests: raw HTTP, contract-type assertions,
// Socket.IO clients and event collection, PNG and MNIST-label checks.

import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import { io } from 'socket.io-client';

export const WAIT_MS = 30_000; // any single wait for the server
export const QUIET_MS = 300; // how long to listen for unexpected extra events
export const TEST_TIMEOUT_MS = 180_000;

// Test-set accuracy every epoch must beat. Nielsen's network reaches ~0.9
// after one epoch, but its N(0, 1) initialisation now and then saturates an
// output neuron, and a run sits at ~0.73-0.8 for an epoch or two (about 1 run
// in 20 with [784, 30, 10], measured with cmd/nntrain). 0.5 still tells
// learning (~0.9) from none (~0.1) without making the suite flaky.
export const MIN_ACCURACY = 0.5;

// ---------------------------------------------------------------- HTTP

/**
 * One HTTP request with node:http (no connection reuse, any header allowed).
 * `body`: an object (sent as JSON with Content-Type: application/json), or a
 * string/Buffer sent as is. Resolves to {status, headers, text, json} where
 * json is the parsed body or undefined if it is not JSON.
 */
export function request(baseUrl, method, urlPath, { body, headers = {}, timeoutMs = WAIT_MS } = {}) {
  const url = new URL(urlPath, baseUrl);
  let payload = null;
  const hdrs = { ...headers };
  if (body !== undefined) {
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      payload = Buffer.from(body);
    } else {
      payload = Buffer.from(JSON.stringify(body));
      hdrs['Content-Type'] ??= 'application/json';
    }
    hdrs['Content-Length'] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: hdrs, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${urlPath}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/** A small REST client bound to one server URL. */
export function api(baseUrl) {
  const r = (method, p, opts) => request(baseUrl, method, p, opts);
  return {
    request: r,
    get: (p, opts) => r('GET', p, opts),
    post: (p, body, opts) => r('POST', p, { ...opts, body }),
    del: (p, opts) => r('DELETE', p, opts),
    status: () => r('GET', '/api/status'),
    createNetwork: (layerSizes = [784, 30, 10]) => r('POST', '/api/networks', { body: { layer_sizes: layerSizes } }),
    listNetworks: () => r('GET', '/api/networks'),
    train: (id, params) => r('POST', `/api/networks/${id}/train`, { body: params }),
    job: (jobId) => r('GET', `/api/training/${jobId}`),
    example: (id, kind) => r('GET', `/api/networks/${id}/${kind}_example`),
    deleteNetwork: (id) => r('DELETE', `/api/networks/${id}`),
    deleteAll: () => r('DELETE', '/api/networks'),
  };
}

/** Describes a response for assertion messages. */
export function show(res) {
  const body = res.text.length > 600 ? `${res.text.slice(0, 600)}…` : res.text;
  return `HTTP ${res.status} content-type=${res.headers['content-type']} body=${body}`;
}

/** Asserts the status code and a JSON object body; returns the body. */
export function expectJSON(res, status, what = '') {
  assert.equal(res.status, status, `${what} expected HTTP ${status}, got ${show(res)}`);
  assert.match(String(res.headers['content-type']), /^application\/json\b/i, `${what} content-type: ${show(res)}`);
  assert.ok(isObject(res.json), `${what} body is not a JSON object: ${show(res)}`);
  return res.json;
}

/** Asserts a JSON error body {"error": "<non-empty string>"}; returns the message. */
export function expectError(res, status, exactMessage, what = '') {
  const body = expectJSON(res, status, what);
  assert.equal(typeof body.error, 'string', `${what} "error" must be a string: ${show(res)}`);
  assert.ok(body.error.length > 0, `${what} "error" must not be empty: ${show(res)}`);
  if (exactMessage !== undefined) assert.equal(body.error, exactMessage, `${what} error message: ${show(res)}`);
  return body.error;
}

// ---------------------------------------------------------------- types

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export function isObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function assertUUIDv4(v, name) {
  assert.equal(typeof v, 'string', `${name} must be a string, got ${JSON.stringify(v)}`);
  assert.match(v, UUID_V4, `${name} must be a lowercase UUIDv4, got ${JSON.stringify(v)}`);
}

export function assertInt(v, name, min = -Infinity, max = Infinity) {
  assert.ok(Number.isInteger(v), `${name} must be a JSON integer, got ${JSON.stringify(v)}`);
  assert.ok(v >= min && v <= max, `${name} must be in [${min}, ${max}], got ${v}`);
}

export function assertNumber(v, name, min = -Infinity, max = Infinity) {
  assert.equal(typeof v, 'number', `${name} must be a JSON number, got ${JSON.stringify(v)}`);
  assert.ok(Number.isFinite(v), `${name} must be finite, got ${v}`);
  assert.ok(v >= min && v <= max, `${name} must be in [${min}, ${max}], got ${v}`);
}

export function assertString(v, name) {
  assert.equal(typeof v, 'string', `${name} must be a string, got ${JSON.stringify(v)}`);
  assert.ok(v.length > 0, `${name} must not be empty`);
}

export function assertBool(v, name) {
  assert.equal(typeof v, 'boolean', `${name} must be a boolean, got ${JSON.stringify(v)}`);
}

export function assertArchitecture(v, expected, name = 'architecture') {
  assert.ok(Array.isArray(v), `${name} must be an array, got ${JSON.stringify(v)}`);
  v.forEach((n, i) => assertInt(n, `${name}[${i}]`, 1));
  assert.deepEqual(v, expected, `${name}`);
}

// ---------------------------------------------------------------- contract bodies

/** POST /api/networks → 200 {network_id, architecture, status: "created"}. Returns the id. */
export async function createNetwork(client, layerSizes = [784, 30, 10]) {
  const body = expectJSON(await client.createNetwork(layerSizes), 200, 'POST /api/networks');
  assertUUIDv4(body.network_id, 'network_id');
  assertArchitecture(body.architecture, layerSizes);
  assert.equal(body.status, 'created', 'status');
  return body.network_id;
}

/** POST /api/networks/{id}/train → 200 {job_id, network_id, status: "training_started"}. Returns the job id. */
export async function startTraining(client, networkId, params) {
  const res = await client.train(networkId, params);
  const body = expectJSON(res, 200, `POST /api/networks/${networkId}/train`);
  assertUUIDv4(body.job_id, 'job_id');
  assert.equal(body.network_id, networkId, 'network_id');
  assert.equal(body.status, 'training_started', 'status');
  return body.job_id;
}

/** GET /api/status → {"status":"online", active_networks, training_jobs}. Returns the body. */
export async function checkStatus(client, { minActive = 0 } = {}) {
  const body = expectJSON(await client.status(), 200, 'GET /api/status');
  assert.equal(body.status, 'online', 'status');
  assertInt(body.active_networks, 'active_networks', minActive);
  assertInt(body.training_jobs, 'training_jobs', 0);
  return body;
}

/** GET /api/networks → {"networks": [...]}; checks every entry's types. Returns the list. */
export async function listNetworks(client) {
  const body = expectJSON(await client.listNetworks(), 200, 'GET /api/networks');
  assert.ok(Array.isArray(body.networks), `"networks" must be an array: ${JSON.stringify(body)}`);
  let seenSaved = false;
  for (const [i, n] of body.networks.entries()) {
    const name = `networks[${i}]`;
    assert.ok(isObject(n), `${name} must be an object`);
    assertUUIDv4(n.network_id, `${name}.network_id`);
    assert.ok(Array.isArray(n.architecture), `${name}.architecture must be an array`);
    n.architecture.forEach((s, j) => assertInt(s, `${name}.architecture[${j}]`, 1));
    assert.ok(['in_memory', 'saved'].includes(n.status), `${name}.status: ${JSON.stringify(n.status)}`);
    if (n.status === 'in_memory') {
      assert.ok(!seenSaved, `in-memory networks must be listed first: ${JSON.stringify(body.networks)}`);
      assertBool(n.trained, `${name}.trained`);
      assert.ok(n.accuracy === null || typeof n.accuracy === 'number', `${name}.accuracy must be a number or null`);
      if (n.trained) assertNumber(n.accuracy, `${name}.accuracy (trained)`, 0, 1);
    } else {
      seenSaved = true;
      for (const key of ['weights_shape', 'biases_shape']) {
        if (n[key] === undefined) continue;
        assert.deepEqual(n[key], expectedShapes(n.architecture)[key], `${name}.${key}`);
      }
    }
  }
  const ids = body.networks.map((n) => n.network_id);
  assert.equal(new Set(ids).size, ids.length, `a network is listed twice: ${JSON.stringify(ids)}`);
  return body.networks;
}

/** Nielsen's shapes: weights[l] is (sizes[l+1], sizes[l]), biases[l] is (sizes[l+1], 1). */
function expectedShapes(sizes) {
  const weights_shape = [];
  const biases_shape = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    weights_shape.push([sizes[l + 1], sizes[l]]);
    biases_shape.push([sizes[l + 1], 1]);
  }
  return { weights_shape, biases_shape };
}

/** Returns the single entry of list for id (fails if it is missing or listed twice). */
export function findOnce(list, id) {
  const hits = list.filter((n) => n.network_id === id);
  assert.equal(hits.length, 1, `network ${id} must be listed exactly once: ${JSON.stringify(list)}`);
  return hits[0];
}

/**
 * Asserts that a listed network, after a restart, holds a saved state that
 * loses nothing a client was told: every epoch whose training_update was
 * seen is in the network's history with the same accuracy (epochs are saved
 * before their update is sent), and the listed accuracy is that of the last
 * epoch saved. A kill may land after an epoch was saved and before its
 * update arrived, and in scaled mode another replica may have resumed the
 * job since: the history can go further than what was seen, never less.
 */
export async function assertSavedEpochState(client, networkId, updates, what) {
  const entry = findOnce(await listNetworks(client), networkId);
  assert.equal(entry.trained, true, `${what}: trained after restart: ${JSON.stringify(entry)}`);
  const history = expectJSON(await client.get(`/api/networks/${networkId}/history`), 200, `${what}: history`).epochs;
  for (const u of updates) {
    const saved = history.find((h) => h.epoch === u.network_epoch);
    assert.ok(saved && saved.accuracy === u.accuracy,
      `${what}: epoch ${u.network_epoch} was reported (accuracy ${u.accuracy}) but the saved history has ${JSON.stringify(saved)}: ` +
        'epochs are saved as they end, so the trained state must not be lost');
  }
  const last = history[history.length - 1];
  assert.ok(last && entry.accuracy === last.accuracy,
    `${what}: listed accuracy ${entry.accuracy} is not that of the last saved epoch ${JSON.stringify(last)}`);
}

/** GET /api/training/{job_id} → 200; checks types. Returns the body. */
export async function getJob(client, jobId) {
  const body = expectJSON(await client.job(jobId), 200, `GET /api/training/${jobId}`);
  assertUUIDv4(body.network_id, 'network_id');
  assert.ok(['pending', 'training', 'completed', 'failed'].includes(body.status), `status: ${JSON.stringify(body.status)}`);
  assertNumber(body.progress, 'progress', 0, 100);
  assertInt(body.epochs, 'epochs', 1);
  if (body.accuracy !== undefined && body.accuracy !== null) assertNumber(body.accuracy, 'accuracy', 0, 1);
  if (body.status === 'failed') assertString(body.error, 'error');
  return body;
}

/**
 * Waits for a job's end and returns the job (GET /api/training/{id}).
 * sock must have connected before the call: an end that comes later
 * reaches it, one that came before shows in the job's status.
 */
export async function waitJobEnd(client, sock, jobId, timeoutMs = WAIT_MS) {
  const job = await getJob(client, jobId);
  if (job.status !== 'pending' && job.status !== 'training') return job;
  await sock.waitForEvents(jobId, { final: true, timeoutMs });
  return getJob(client, jobId);
}

/** Asserts that a job's history is its epochs 1..n, each once. */
export function assertGapFree(job, what) {
  assert.deepEqual(job.history.map((e) => e.epoch), Array.from({ length: job.epoch }, (_, i) => i + 1),
    `${what}: the job's history must be epochs 1..${job.epoch}, each once: ${JSON.stringify(job.history)}`);
}

const MNIST_TEST_LABELS = loadTestLabels();

/** The 10k MNIST test labels from the repository's data/, or null if absent. */
function loadTestLabels() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const file = path.join(here, '..', '..', 'data', 't10k-labels-idx1-ubyte.gz');
  if (!existsSync(file)) return null;
  const raw = zlib.gunzipSync(readFileSync(file));
  if (raw.readUInt32BE(0) !== 0x801 || raw.readUInt32BE(4) !== 10000) return null;
  return raw.subarray(8, 8 + 10000);
}

/**
 * GET /api/networks/{id}/{kind}_example, kind "successful"|"unsuccessful".
 * Returns the body on 200 after checking every field; returns null on the
 * contract's "none found" 404 when allowNone is true.
 */
export async function getExample(client, networkId, kind, { allowNone = false, hidden = 30, outputs = 10 } = {}) {
  const res = await client.example(networkId, kind);
  const what = `GET /api/networks/${networkId}/${kind}_example`;
  if (allowNone && res.status === 404) {
    const msg = kind === 'successful' ? 'No successful example found after multiple attempts' : 'No unsuccessful example found after multiple attempts';
    expectError(res, 404, msg, what);
    return null;
  }
  const ex = expectJSON(res, 200, what);
  assert.equal(ex.network_id, networkId, 'network_id');
  assertInt(ex.example_index, 'example_index', 0, 9999);
  assertInt(ex.predicted_digit, 'predicted_digit', 0, 9);
  assertInt(ex.actual_digit, 'actual_digit', 0, 9);
  if (kind === 'successful') assert.equal(ex.predicted_digit, ex.actual_digit, 'successful: predicted == actual');
  else assert.notEqual(ex.predicted_digit, ex.actual_digit, 'unsuccessful: predicted != actual');
  if (MNIST_TEST_LABELS) {
    assert.equal(ex.actual_digit, MNIST_TEST_LABELS[ex.example_index], `actual_digit must be test label #${ex.example_index}`);
  }

  assert.ok(Array.isArray(ex.network_output), 'network_output must be an array');
  assert.equal(ex.network_output.length, outputs, 'network_output must have one number per output neuron');
  ex.network_output.forEach((v, i) => assertNumber(v, `network_output[${i}]`, 0, 1));
  const argmax = ex.network_output.indexOf(Math.max(...ex.network_output));
  assert.equal(ex.predicted_digit, argmax, `predicted_digit must be argmax(network_output) ${JSON.stringify(ex.network_output)}`);

  assert.ok(Array.isArray(ex.output_weights), 'output_weights must be an array');
  assert.equal(ex.output_weights.length, outputs, 'output_weights: one row per output neuron');
  ex.output_weights.forEach((row, i) => {
    assert.ok(Array.isArray(row), `output_weights[${i}] must be an array`);
    assert.equal(row.length, hidden, `output_weights[${i}]: one weight per neuron of the previous layer`);
    row.forEach((w, j) => assertNumber(w, `output_weights[${i}][${j}]`));
  });

  assert.equal(typeof ex.image_data, 'string', 'image_data must be a string');
  assert.ok(!ex.image_data.startsWith('data:'), 'image_data must be bare base64 (no data: prefix)');
  assert.match(ex.image_data, /^[A-Za-z0-9+/]+={0,2}$/, 'image_data must be standard base64');
  const png = checkPNG(Buffer.from(ex.image_data, 'base64'));
  assert.ok(png.width >= 200 && png.height >= 200, `image must be at least 200×200, got ${png.width}×${png.height}`);
  return ex;
}

// ---------------------------------------------------------------- PNG

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }; // by colour type

/**
 * Parses a PNG by hand: signature, IHDR first, IEND last, and the inflated
 * IDAT stream has exactly height × (1 + rowbytes) bytes. Returns {width, height}.
 */
export function checkPNG(buf) {
  assert.ok(buf.length > 8 + 25 + 12, `PNG too short (${buf.length} bytes)`);
  assert.deepEqual(buf.subarray(0, 8), PNG_SIGNATURE, 'PNG signature');
  const chunks = [];
  for (let off = 8; off < buf.length; ) {
    assert.ok(off + 12 <= buf.length, 'truncated PNG chunk');
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    assert.ok(off + 12 + len <= buf.length, `truncated PNG chunk ${type}`);
    chunks.push({ type, data: buf.subarray(off + 8, off + 8 + len) });
    off += 12 + len;
  }
  assert.equal(chunks[0].type, 'IHDR', 'first PNG chunk must be IHDR');
  assert.equal(chunks.at(-1).type, 'IEND', 'last PNG chunk must be IEND');
  const ihdr = chunks[0].data;
  assert.equal(ihdr.length, 13, 'IHDR length');
  const width = ihdr.readUInt32BE(0);
  const height = ihdr.readUInt32BE(4);
  const bitDepth = ihdr[8];
  const colorType = ihdr[9];
  const interlace = ihdr[12];
  assert.ok(colorType in CHANNELS, `PNG colour type ${colorType}`);
  const idat = Buffer.concat(chunks.filter((c) => c.type === 'IDAT').map((c) => c.data));
  assert.ok(idat.length > 0, 'PNG has no IDAT');
  const raw = zlib.inflateSync(idat);
  if (interlace === 0) {
    const rowBytes = Math.ceil((width * CHANNELS[colorType] * bitDepth) / 8);
    assert.equal(raw.length, height * (1 + rowBytes), 'inflated PNG image data size');
  }
  return { width, height, bitDepth, colorType };
}

// ---------------------------------------------------------------- Socket.IO

export const CLIENT_CONFIGS = {
  // What io(url) does by default (and what the Angular app asks for):
  // HTTP long-polling first, then the upgrade to WebSocket.
  default: {},
  websocket: { transports: ['websocket'] },
  // Long-polling only, never upgraded.
  polling: { transports: ['polling'] },
};

const EVENT_NAMES = ['training_update', 'training_complete', 'training_error'];

/**
 * A socket.io-client socket plus a log of every training event it received,
 * in arrival order. Events are recorded from the moment of creation, so none
 * are lost even if they arrive before the HTTP response that names the job.
 */
export class Client {
  constructor(url, config = 'default', label = config) {
    this.label = label;
    this.config = config;
    this.events = []; // {name, data, at}
    this.waiters = new Set();
    this.upgraded = false;
    this.socket = io(url, { forceNew: true, reconnection: false, timeout: WAIT_MS, ...CLIENT_CONFIGS[config] });
    // The manager opens its engine synchronously in io(), so no upgrade can be missed.
    this.socket.io.engine.on('upgrade', () => {
      this.upgraded = true;
      this.notify();
    });
    for (const name of EVENT_NAMES) {
      this.socket.on(name, (data) => {
        this.events.push({ name, data, at: Date.now() });
        this.notify();
      });
    }
    this.socket.on('connect', () => this.notify());
    this.socket.on('disconnect', (reason) => {
      this.disconnectReason = reason;
      this.notify();
    });
    this.socket.on('connect_error', (err) => {
      this.connectError = err;
      this.notify();
    });
  }

  notify() {
    for (const w of this.waiters) w();
  }

  /** Resolves when pred() is true; rejects after timeoutMs with describe(). */
  waitUntil(pred, what, timeoutMs = WAIT_MS) {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v;
        try {
          v = pred();
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (v) {
          done();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`[${this.label}] timed out after ${timeoutMs} ms waiting for ${what}; events so far: ${this.describeEvents()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  async connect() {
    await this.waitUntil(() => {
      if (this.connectError) throw new Error(`[${this.label}] connect_error: ${this.connectError.message}`);
      return this.socket.connected;
    }, 'connect');
    return this;
  }

  /** For the default configuration: waits for the polling → websocket upgrade. */
  async waitUpgrade() {
    await this.waitUntil(() => this.upgraded, 'the transport upgrade');
    assert.equal(this.socket.io.engine.transport.name, 'websocket', `[${this.label}] transport after upgrade`);
  }

  /** Events of one job, in arrival order. */
  jobEvents(jobId) {
    return this.events.filter((e) => e.data?.job_id === jobId);
  }

  /**
   * Waits until the job has `updates` training_update events and one final
   * event (training_complete or training_error), or only for `updates` when
   * final is false. Returns the job's events.
   */
  waitForEvents(jobId, { updates = 0, final = true, timeoutMs = WAIT_MS } = {}) {
    const what = `${updates} training_update${final ? ' and a final event' : ''} for job ${jobId}`;
    return this.waitUntil(() => {
      const evs = this.jobEvents(jobId);
      const nUpdates = evs.filter((e) => e.name === 'training_update').length;
      const nFinal = evs.filter((e) => e.name !== 'training_update').length;
      if (final ? nFinal >= 1 && nUpdates >= updates : nUpdates >= updates) return evs;
      if (nFinal >= 1 && nUpdates < updates) {
        throw new Error(`[${this.label}] job ${jobId} ended early: ${this.describeEvents(jobId)}`);
      }
      return null;
    }, what, timeoutMs);
  }

  describeEvents(jobId) {
    const evs = jobId ? this.jobEvents(jobId) : this.events;
    return JSON.stringify(evs.map((e) => ({ [e.name]: e.data })));
  }

  close() {
    this.socket.io.reconnection(false);
    this.socket.disconnect();
    // Make sure the engine is gone, even if the socket never connected.
    this.socket.io.engine?.close();
  }
}

/** Opens a client and waits for it to connect (and, for "default", to upgrade). */
export async function connectClient(url, config = 'default', label) {
  const c = new Client(url, config, label);
  try {
    await c.connect();
    if (config === 'default') await c.waitUpgrade();
    else assert.equal(c.socket.io.engine.transport.name, config, `[${c.label}] transport`);
  } catch (err) {
    c.close();
    throw err;
  }
  return c;
}

// ---------------------------------------------------------------- events

/** Checks one training_update payload against the contract. */
export function checkUpdate(u, { jobId, networkId, epoch, totalEpochs, minAccuracy = MIN_ACCURACY }) {
  assert.ok(isObject(u), 'training_update payload must be an object');
  assert.equal(u.job_id, jobId, 'training_update.job_id');
  assert.equal(u.network_id, networkId, 'training_update.network_id');
  assertInt(u.epoch, 'training_update.epoch', 1);
  assert.equal(u.epoch, epoch, 'training_update.epoch');
  assertInt(u.total_epochs, 'training_update.total_epochs', 1);
  assert.equal(u.total_epochs, totalEpochs, 'training_update.total_epochs');
  assertNumber(u.accuracy, 'training_update.accuracy', 0, 1);
  assert.ok(u.accuracy > minAccuracy, `training_update.accuracy after epoch ${epoch} should be > ${minAccuracy} (Nielsen: ~0.9), got ${u.accuracy}`);
  assertNumber(u.elapsed_time, 'training_update.elapsed_time', 0);
  assert.ok(u.elapsed_time > 0, `training_update.elapsed_time must be > 0, got ${u.elapsed_time}`);
  assertNumber(u.progress, 'training_update.progress', 0, 100);
  assert.ok(Math.abs(u.progress - (epoch / totalEpochs) * 100) < 1e-6, `training_update.progress must be epoch/total*100, got ${u.progress}`);
  assertInt(u.correct, 'training_update.correct', 0, 10000);
  assertInt(u.total, 'training_update.total');
  assert.equal(u.total, 10000, 'training_update.total');
  assert.ok(Math.abs(u.accuracy - u.correct / u.total) < 1e-9, `accuracy (${u.accuracy}) must be correct/total (${u.correct}/${u.total})`);
}

/** Checks one training_complete payload against the contract. */
export function checkComplete(c, { jobId, networkId }) {
  assert.ok(isObject(c), 'training_complete payload must be an object');
  assert.equal(c.job_id, jobId, 'training_complete.job_id');
  assert.equal(c.network_id, networkId, 'training_complete.network_id');
  assert.equal(c.status, 'completed', 'training_complete.status');
  assertNumber(c.accuracy, 'training_complete.accuracy', 0, 1);
  assertNumber(c.progress, 'training_complete.progress');
  assert.equal(c.progress, 100, 'training_complete.progress');
}

/**
 * Asserts that a job produced exactly `epochs` updates (epochs 1..n, in
 * order) and then exactly one training_complete, and no training_error.
 * Returns {updates, complete}.
 */
export function checkSuccessfulJob(events, { jobId, networkId, epochs, minAccuracy }) {
  const names = events.map((e) => e.name);
  const expected = [...Array(epochs).fill('training_update'), 'training_complete'];
  assert.deepEqual(names, expected, `event sequence for job ${jobId}: ${JSON.stringify(events.map((e) => ({ [e.name]: e.data })))}`);
  const updates = events.slice(0, epochs).map((e) => e.data);
  updates.forEach((u, i) => checkUpdate(u, { jobId, networkId, epoch: i + 1, totalEpochs: epochs, minAccuracy }));
  const complete = events.at(-1).data;
  checkComplete(complete, { jobId, networkId });
  assert.ok(Math.abs(complete.accuracy - updates.at(-1).accuracy) < 1e-9, 'training_complete.accuracy must be the last epoch accuracy');
  return { updates, complete };
}

/**
 * Trains networkId for `epochs` and waits for all its events on client;
 * then listens QUIET_MS more and checks the exact sequence. Returns
 * {jobId, updates, complete}.
 */
export async function trainAndWait(client, sock, networkId, { epochs, mini_batch_size = 10, learning_rate = 3.0, minAccuracy } = {}) {
  const jobId = await startTraining(client, networkId, { epochs, mini_batch_size, learning_rate });
  await sock.waitForEvents(jobId, { updates: epochs, timeoutMs: WAIT_MS + epochs * 10_000 });
  await sleep(QUIET_MS);
  const res = checkSuccessfulJob(sock.jobEvents(jobId), { jobId, networkId, epochs, minAccuracy });
  return { jobId, ...res };
}

export { sleep };
