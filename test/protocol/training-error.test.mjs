// Scenario 7: a job whose network is deleted mid-training fails with exactly
// one training_error, and the job's status says so.

import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import {
  api,
  assertString,
  connectClient,
  createNetwork,
  expectError,
  expectJSON,
  getJob,
  QUIET_MS,
  sleep,
  startTraining,
  TEST_TIMEOUT_MS,
} from './helpers.mjs';
import { dumpingLogs, makeModelsDir, removeDir, Server } from './server.mjs';

describe('training errors', () => {
  let server;
  let modelsDir;
  let sock;

  before(async () => {
    modelsDir = await makeModelsDir();
    server = await Server.start({ modelsDir });
  });

  after(async () => {
    sock?.close();
    await server?.kill();
    await removeDir(modelsDir);
  });

  test('deleting a network while it trains fails its job once', { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => [server], async () => {
    const client = api(server.url);
    sock = await connectClient(server.url, 'default');
    const networkId = await createNetwork(client);
    const jobId = await startTraining(client, networkId, { epochs: 20, mini_batch_size: 10, learning_rate: 3.0 });
    await sock.waitForEvents(jobId, { updates: 1, final: false });

    // While it trains, requests are answered at once and the job shows as running.
    const t0 = Date.now();
    const st = expectJSON(await client.status(), 200, 'status during training');
    const ms = Date.now() - t0;
    assert.ok(ms < 2000, `GET /api/status took ${ms} ms during training`);
    assert.ok(st.training_jobs >= 1, `training_jobs during training: ${JSON.stringify(st)}`);
    const running = await getJob(client, jobId);
    assert.ok(['pending', 'training'].includes(running.status), `job status during training: ${JSON.stringify(running)}`);
    assert.ok(running.progress > 0 && running.progress < 100, `job progress during training: ${JSON.stringify(running)}`);

    const del = expectJSON(await client.deleteNetwork(networkId), 200, 'DELETE during training');
    assert.equal(del.network_id, networkId);
    assert.equal(del.deleted_from_memory, true, `deleted_from_memory: ${JSON.stringify(del)}`);

    await sock.waitUntil(() => sock.jobEvents(jobId).some((e) => e.name !== 'training_update'), `the end of job ${jobId}`);
    await sleep(QUIET_MS);
    const events = sock.jobEvents(jobId);
    const finals = events.filter((e) => e.name !== 'training_update');
    assert.deepEqual(finals.map((e) => e.name), ['training_error'], `exactly one training_error and no training_complete: ${sock.describeEvents(jobId)}`);
    assert.equal(events.at(-1).name, 'training_error', `training_error is the last event: ${sock.describeEvents(jobId)}`);
    const err = finals[0].data;
    assert.equal(err.job_id, jobId, 'training_error.job_id');
    assert.equal(err.network_id, networkId, 'training_error.network_id');
    assert.equal(err.status, 'failed', 'training_error.status');
    assertString(err.error, 'training_error.error');
    const nUpdates = events.length - 1;
    assert.ok(nUpdates < 20, `the job stopped early (${nUpdates} updates)`);

    const job = await getJob(client, jobId);
    assert.equal(job.status, 'failed', `job status: ${JSON.stringify(job)}`);
    assertString(job.error, 'job.error');
    assert.equal(job.network_id, networkId, 'job.network_id');
    assert.equal(job.epochs, 20, 'job.epochs');

    // The deleted network stays deleted: not resurrected by a late save.
    await sleep(500);
    expectError(await client.example(networkId, 'successful'), 404, 'Network not found');
    const list = expectJSON(await client.listNetworks(), 200).networks;
    assert.ok(!list.some((n) => n.network_id === networkId), `deleted network is listed again: ${JSON.stringify(list)}`);
    const files = await readdir(modelsDir);
    assert.ok(!files.some((f) => f.startsWith(networkId)), `a file of the deleted network is back in MODELS_DIR: ${JSON.stringify(files)}`);
    const idle = expectJSON(await client.status(), 200);
    assert.equal(idle.training_jobs, 0, `training_jobs after the failure: ${JSON.stringify(idle)}`);
  }));
});
