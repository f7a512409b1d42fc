// Jobs survive a restart: a job running when the server stops (SIGTERM, or
// kill -9) resumes when it starts again on the same models directory (in
// single mode its jobs.db, JOBS_DB's default; in scaled mode Postgres), and
// completes with a gap-free history: epochs 1..N, each once, as its
// uninterrupted twin trained them. At SIGTERM its clients get a
// training_error with status "interrupted" (the job has not ended); after
// a kill they get nothing, and nothing is lost all the same.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  api,
  assertGapFree,
  checkUpdate,
  connectClient,
  expectJSON,
  getJob,
  startTraining,
  TEST_TIMEOUT_MS,
  WAIT_MS,
  waitJobEnd,
} from './helpers.mjs';
import { dumpingLogs, killAll, makeModelsDir, removeDir, Server } from './server.mjs';

const EPOCHS = 20;
const PARAMS = { epochs: EPOCHS, mini_batch_size: 10, learning_rate: 3.0, seed: 7 };
const FINAL_MS = WAIT_MS + EPOCHS * 10_000; // the longest wait for a job's end

/** A network with seeded weights: every one made so is the same. */
async function seededNetwork(client) {
  const body = expectJSON(await client.post('/api/networks', { layer_sizes: [784, 30, 10], seed: 42 }), 200, 'POST /api/networks');
  return body.network_id;
}

const waitEnded = (client, sock, jobId) => waitJobEnd(client, sock, jobId, FINAL_MS);

/**
 * Checks that a job completed with epochs 1..EPOCHS each once, as the
 * network's history has them (network epochs 1..EPOCHS, the job's id), and
 * epoch for epoch as its uninterrupted twin.
 */
async function checkGapFree(client, networkId, jobId, twin, what) {
  const job = await getJob(client, jobId);
  assert.equal(job.status, 'completed', `${what}: the resumed job: ${JSON.stringify(job)}`);
  assert.equal(job.epoch, EPOCHS, `${what}: epochs finished`);
  assertGapFree(job, what);
  const hist = expectJSON(await client.get(`/api/networks/${networkId}/history`), 200, `${what}: history`).epochs;
  assert.deepEqual(hist.map((e) => [e.epoch, e.job_id]), Array.from({ length: EPOCHS }, (_, i) => [i + 1, jobId]),
    `${what}: the network's history must be the job's ${EPOCHS} epochs, each once`);
  assert.deepEqual(job.history.map((e) => e.correct), twin.history.map((e) => e.correct),
    `${what}: the resumed job must train as its uninterrupted twin did`);
  return job;
}

describe('jobs survive a restart', () => {
  let modelsDir;
  const servers = [];
  const sockets = [];
  let twin; // the uninterrupted job, as GET /api/training/{id} has it

  before(async () => {
    modelsDir = await makeModelsDir();
  });

  after(async () => {
    for (const s of sockets) s.close();
    await killAll();
    await removeDir(modelsDir);
  });

  /**
   * Starts a server, trains the job on a network made as its twin's, stops
   * the server (stop: 'SIGTERM' or 'SIGKILL') after two epochs, restarts it
   * on the same models directory and follows the job to its end. Returns
   * the events each client saw of the job, before and after.
   */
  async function interrupt(t, stop, name) {
    let server = await Server.start({ modelsDir, name: `${name}#1` });
    servers.push(server);
    let client = api(server.url);
    const socks = [await connectClient(server.url, 'websocket', `${name}-ws`), await connectClient(server.url, 'polling', `${name}-polling`)];
    sockets.push(...socks);
    if (!twin) {
      const twinJob = await startTraining(client, await seededNetwork(client), PARAMS);
      twin = await waitEnded(client, socks[0], twinJob);
      assert.equal(twin.status, 'completed', `the twin: ${JSON.stringify(twin)}`);
    }
    const networkId = await seededNetwork(client);
    const jobId = await startTraining(client, networkId, PARAMS);
    await socks[0].waitForEvents(jobId, { updates: 2, final: false });

    const t0 = Date.now();
    if (stop === 'SIGTERM') {
      const stopped = await server.stop(5_000);
      t.diagnostic(`${name}: SIGTERM mid-job, exited in ${stopped.ms} ms: ${JSON.stringify(stopped)}`);
      assert.equal(stopped.timedOut, false, 'the server must exit within 5 s of SIGTERM');
      assert.equal(stopped.code, 0, `exit code after SIGTERM: ${JSON.stringify(stopped)}`);
    } else {
      const killed = await server.kill();
      assert.equal(killed.signal, 'SIGKILL', 'the server was still running when killed');
    }
    for (const s of socks) await s.waitUntil(() => s.disconnectReason, 'the disconnect');
    const beforeEvents = socks.map((s) => s.jobEvents(jobId));

    server = await Server.start({ modelsDir, name: `${name}#2` });
    servers.push(server);
    client = api(server.url);
    const sock = await connectClient(server.url, 'websocket', `${name}-after`);
    sockets.push(sock);
    // It resumed, or resumes: it is known, and not failed.
    const known = await getJob(client, jobId);
    assert.ok(['pending', 'training', 'completed'].includes(known.status), `${name}: the job after the restart: ${JSON.stringify(known)}`);
    await waitEnded(client, sock, jobId);
    t.diagnostic(`${name}: from the stop to the end of the remaining epochs, restart included: ${Date.now() - t0} ms`);
    const job = await checkGapFree(client, networkId, jobId, twin, name);
    // The next test's server takes the models directory (and its jobs.db).
    const stopped = await server.stop(5_000);
    assert.equal(stopped.code, 0, `${name}#2 exit code: ${JSON.stringify(stopped)}`);
    return { beforeEvents, afterEvents: sock.jobEvents(jobId), job, jobId, networkId };
  }

  /** The updates a client got after the restart: consecutive epochs up to EPOCHS, then training_complete. */
  function checkAfter(afterEvents, { jobId, networkId, job }, what) {
    const names = afterEvents.map((e) => e.name);
    assert.equal(names.at(-1), 'training_complete', `${what}: the last event after the restart: ${JSON.stringify(names)}`);
    assert.equal(names.filter((n) => n !== 'training_update').length, 1, `${what}: one final event, no training_error: ${JSON.stringify(names)}`);
    const updates = afterEvents.filter((e) => e.name === 'training_update').map((e) => e.data);
    updates.forEach((u, i) => {
      checkUpdate(u, { jobId, networkId, epoch: EPOCHS - updates.length + i + 1, totalEpochs: EPOCHS });
      assert.equal(u.network_epoch, u.epoch, `${what}: network_epoch of epoch ${u.epoch}`);
      assert.equal(u.correct, job.history[u.epoch - 1].correct, `${what}: epoch ${u.epoch} as the job's history has it`);
    });
  }

  test('SIGTERM mid-job: training_error "interrupted", then the job resumes and completes, gap-free', { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => servers, async (t) => {
    const r = await interrupt(t, 'SIGTERM', 'sigterm');
    for (const evs of r.beforeEvents) {
      const names = evs.map((e) => e.name);
      const errs = evs.filter((e) => e.name === 'training_error');
      assert.equal(errs.length, 1, `one training_error before the restart: ${JSON.stringify(names)}`);
      assert.equal(names.at(-1), 'training_error', `the training_error comes last: ${JSON.stringify(names)}`);
      assert.ok(!names.includes('training_complete'), 'no training_complete before the restart');
      assert.equal(errs[0].data.status, 'interrupted', `status: ${JSON.stringify(errs[0].data)}`);
      assert.match(errs[0].data.error, /resume/, `the message says it resumes: ${JSON.stringify(errs[0].data)}`);
      assert.equal(errs[0].data.network_id, r.networkId, 'network_id');
      const updates = evs.filter((e) => e.name === 'training_update').map((e) => e.data.epoch);
      assert.deepEqual(updates, Array.from({ length: updates.length }, (_, i) => i + 1), 'epochs 1..k before the stop');
    }
    checkAfter(r.afterEvents, r, 'after SIGTERM');
  }));

  test('kill -9 mid-job: no event, then the job resumes and completes, gap-free', { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => servers, async (t) => {
    const r = await interrupt(t, 'SIGKILL', 'kill9');
    for (const evs of r.beforeEvents) {
      assert.ok(evs.every((e) => e.name === 'training_update'), `only training_updates before the kill: ${JSON.stringify(evs.map((e) => e.name))}`);
    }
    checkAfter(r.afterEvents, r, 'after kill -9');
  }));
});
