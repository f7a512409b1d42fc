// Issue 18: a layers network (Nielsen's chapter 6 convolutional network)
// through the real server: created from a layers list, trained one epoch
// with live events (validation accuracy in every training_update), its job,
// its kernels, its download (format_version 3), a prediction and an example.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  api,
  assertNumber,
  connectClient,
  expectError,
  expectJSON,
  getExample,
  getJob,
  startTraining,
  TEST_TIMEOUT_MS,
  WAIT_MS,
} from './helpers.mjs';
import { dumpingLogs, makeModelsDir, removeDir, Server } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

export const CHAPTER6 = [
  { type: 'conv', filters: 20, size: 5, activation: 'relu' },
  { type: 'pool', size: 2 },
  { type: 'conv', filters: 40, size: 5, activation: 'relu' },
  { type: 'pool', size: 2 },
  { type: 'dense', size: 100, activation: 'relu', dropout: 0.5 },
  { type: 'softmax', size: 10 },
];

describe('a layers network', () => {
  let server;
  let modelsDir;
  const clients = [];

  before(async () => {
    modelsDir = await makeModelsDir();
    server = await Server.start({ modelsDir });
  });

  after(async () => {
    for (const c of clients) c.close();
    await server?.kill();
    await removeDir(modelsDir);
  });

  test('chapter 6 network: create, train 1 epoch, kernels, download, predict', { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => [server], async () => {
    const client = api(server.url);
    const sock = await connectClient(server.url, 'websocket');
    clients.push(sock);

    const created = expectJSON(await client.post('/api/networks', { layers: CHAPTER6, init: 'scaled', seed: 7 }), 200, 'POST /api/networks');
    assert.deepEqual(created.architecture, [784, 11520, 2880, 2560, 640, 100, 10], 'architecture');
    assert.deepEqual(created.layers.map((l) => l.output_shape), [[20, 24, 24], [20, 12, 12], [40, 8, 8], [40, 4, 4], [100], [10]], 'output shapes');
    assert.equal(created.layers[5].dropout, 0, 'softmax dropout');
    const id = created.network_id;

    const bad = await client.post('/api/networks', { layers: [{ type: 'conv', filters: 2, size: 29, activation: 'relu' }, { type: 'softmax', size: 10 }] });
    expectError(bad, 400, 'layers[0] (conv 29×29) needs an input of at least 29×29, got 28×28×1', 'a kernel larger than the image');

    const jobId = await startTraining(client, id, { epochs: 1, lambda: 0.1, seed: 1 });
    await sock.waitForEvents(jobId, { updates: 1, timeoutMs: WAIT_MS + 120_000 });
    const events = sock.jobEvents(jobId);
    assert.deepEqual(events.map((e) => e.name), ['training_update', 'training_complete'], JSON.stringify(events));
    const u = events[0].data;
    assertNumber(u.validation_accuracy, 'training_update.validation_accuracy', 0, 1);
    assert.ok(u.validation_accuracy > 0.9, `validation accuracy after one epoch ${u.validation_accuracy}`);
    assert.ok(u.accuracy > 0.9, `accuracy after one epoch ${u.accuracy}`);
    assertNumber(u.training_cost, 'training_update.training_cost', 0);

    const job = await getJob(client, jobId);
    assert.equal(job.cost, 'log_likelihood', 'job.cost');
    assert.equal(job.learning_rate, 0.03, 'job.learning_rate: the default of a ReLU network');
    assert.equal(job.expand, false, 'job.expand');

    const k = expectJSON(await client.get(`/api/networks/${id}/kernels`), 200, 'kernels');
    assert.equal(k.epochs_trained, 1);
    assert.deepEqual([k.layer, k.filters, k.channels, k.size], [0, 20, 1, 5]);
    assert.equal(k.kernels.length, 20);
    assert.equal(k.kernels[0][0].length, 5);

    const dl = await client.request('GET', `/api/networks/${id}/download`);
    assert.equal(dl.status, 200, 'download');
    assert.ok(dl.text.startsWith('PK'), 'download is a zip (.npz)');
    assert.ok(dl.text.includes('"format_version": 3'), 'format_version 3');

    const seven = await readFile(path.join(here, '..', '..', 'docs', 'examples', 'seven.png'));
    const pred = expectJSON(await client.request('POST', `/api/networks/${id}/predict`, { body: seven, headers: { 'Content-Type': 'image/png' } }), 200, 'predict');
    assert.equal(pred.predicted_digit, 7, `predict: ${JSON.stringify(pred)}`);

    // output_weights: the softmax layer's, one row per digit, one weight per input (the dense layer's 100).
    await getExample(client, id, 'successful', { hidden: 100 });
  }));
});
