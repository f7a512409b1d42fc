// Scenario 4: a trained network survives a graceful restart, is listed once,
// and is usable afterwards (examples, more training) with its trained weights.
// A job running at the SIGTERM is told it is interrupted, and resumes after
// the restart (resume.test.mjs follows one in detail).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  api,
  assertGapFree,
  assertSavedEpochState,
  connectClient,
  createNetwork,
  findOnce,
  getExample,
  getJob,
  listNetworks,
  startTraining,
  TEST_TIMEOUT_MS,
  trainAndWait,
  WAIT_MS,
  waitJobEnd,
} from './helpers.mjs';
import { dumpingLogs, killAll, makeModelsDir, removeDir, Server } from './server.mjs';

/** Largest absolute difference between two equally shaped nested arrays. */
function maxAbsDiff(a, b) {
  assert.equal(a.length, b.length, 'shapes differ');
  let m = 0;
  a.forEach((row, i) => {
    assert.equal(row.length, b[i].length, 'shapes differ');
    row.forEach((v, j) => {
      m = Math.max(m, Math.abs(v - b[i][j]));
    });
  });
  return m;
}

describe('restart persistence', () => {
  let modelsDir;
  const servers = [];
  const sockets = [];

  before(async () => {
    modelsDir = await makeModelsDir();
  });

  after(async () => {
    for (const s of sockets) s.close();
    await killAll();
    await removeDir(modelsDir);
  });

  test('a trained network is listed, usable and trainable after a SIGTERM restart', { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => servers, async (t) => {
    // First life: create and train one epoch.
    const first = await Server.start({ modelsDir, name: 'server#1' });
    servers.push(first);
    let client = api(first.url);
    let sock = await connectClient(first.url, 'websocket', 'first');
    sockets.push(sock);
    const networkId = await createNetwork(client);
    const { complete } = await trainAndWait(client, sock, networkId, { epochs: 1 });
    const before = await getExample(client, networkId, 'successful');
    sock.close();

    // Graceful stop: exit code 0 within 5 s.
    const stopped = await first.stop(5_000);
    t.diagnostic(`server#1 stopped in ${stopped.ms} ms: ${JSON.stringify(stopped)}`);
    assert.equal(stopped.timedOut, false, 'the server must exit within 5 s of SIGTERM');
    assert.equal(stopped.code, 0, `exit code after SIGTERM must be 0, got ${JSON.stringify(stopped)}`);

    // Second life on the same models directory.
    const second = await Server.start({ modelsDir, name: 'server#2' });
    servers.push(second);
    client = api(second.url);
    const listed = findOnce(await listNetworks(client), networkId);
    assert.ok(['saved', 'in_memory'].includes(listed.status), `status after restart: ${JSON.stringify(listed)}`);
    assert.deepEqual(listed.architecture, [784, 30, 10], 'architecture after restart');
    if (listed.status === 'in_memory') {
      assert.equal(listed.trained, true, `trained after restart: ${JSON.stringify(listed)}`);
      assert.ok(Math.abs(listed.accuracy - complete.accuracy) < 1e-9, `accuracy after restart: ${JSON.stringify(listed)}`);
    }

    // Usable: examples come from the trained weights, not fresh random ones.
    const afterRestart = await getExample(client, networkId, 'successful');
    const diff = maxAbsDiff(afterRestart.output_weights, before.output_weights);
    assert.ok(diff < 1e-6, `output_weights after restart differ from before by ${diff}: the saved weights were not loaded`);

    // Trainable: one more epoch completes, with the events.
    sock = await connectClient(second.url, 'default', 'second');
    sockets.push(sock);
    const more = await trainAndWait(client, sock, networkId, { epochs: 1 });

    const entry = findOnce(await listNetworks(client), networkId);
    assert.equal(entry.status, 'in_memory', `status after more training: ${JSON.stringify(entry)}`);
    assert.equal(entry.trained, true, 'trained');
    assert.ok(Math.abs(entry.accuracy - more.complete.accuracy) < 1e-9, `accuracy after more training: ${JSON.stringify(entry)}`);
    assert.deepEqual(entry.architecture, [784, 30, 10], 'architecture');

    const stopped2 = await second.stop(5_000);
    assert.equal(stopped2.timedOut, false, 'server#2 must exit within 5 s of SIGTERM');
    assert.equal(stopped2.code, 0, `server#2 exit code: ${JSON.stringify(stopped2)}`);
  }));

  test('SIGTERM during a long training exits promptly, loses nothing saved, and the job resumes', { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => servers, async (t) => {
    const server = await Server.start({ modelsDir, name: 'server#3' });
    servers.push(server);
    let client = api(server.url);
    const sock = await connectClient(server.url, 'websocket', 'third');
    sockets.push(sock);
    const networkId = await createNetwork(client);
    const jobId = await startTraining(client, networkId, { epochs: 20, mini_batch_size: 10, learning_rate: 3.0 });
    await sock.waitForEvents(jobId, { updates: 1, final: false });

    const stopped = await server.stop(5_000);
    t.diagnostic(`server#3 stopped mid-training in ${stopped.ms} ms: ${JSON.stringify(stopped)}`);
    assert.equal(stopped.timedOut, false, 'the server must exit within 5 s of SIGTERM, even while training');
    assert.equal(stopped.code, 0, `exit code after SIGTERM must be 0, got ${JSON.stringify(stopped)}`);
    sock.close();
    const updates = sock.jobEvents(jobId).filter((e) => e.name === 'training_update').map((e) => e.data);

    const again = await Server.start({ modelsDir, name: 'server#4' });
    servers.push(again);
    client = api(again.url);
    // The job resumes from its last saved epoch and completes.
    const after = await connectClient(again.url, 'websocket', 'fourth');
    sockets.push(after);
    const job = await waitJobEnd(client, after, jobId, WAIT_MS + 20 * 10_000);
    assert.equal(job.status, 'completed', `the job after the restart: ${JSON.stringify(job)}`);
    assertGapFree(job, 'the job resumed after SIGTERM');
    const list = await listNetworks(client);
    // This network was saved after its first epoch at the latest; every listed network loads.
    for (const n of list) {
      assert.deepEqual(n.architecture, [784, 30, 10], `architecture of ${n.network_id}`);
      await getExample(client, n.network_id, 'successful');
    }
    findOnce(list, networkId);
    await assertSavedEpochState(client, networkId, updates, 'after SIGTERM mid-training');
    const stopped2 = await again.stop(5_000);
    assert.equal(stopped2.code, 0, `server#4 exit code: ${JSON.stringify(stopped2)}`);
  }));

  test('SIGTERM during one long mini-batch: exit 0, the job\'s training_error "interrupted" arrives, the server closes the sockets', { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => servers, async (t) => {
    const server = await Server.start({ modelsDir, name: 'server#5' });
    servers.push(server);
    const client = api(server.url);
    const socks = [await connectClient(server.url, 'websocket', 'ws'), await connectClient(server.url, 'polling', 'polling')];
    sockets.push(...socks);
    const networkId = await createNetwork(client, [784, 1000, 10]);
    // One mini-batch of all 50,000 images: about 10 s of work here, and
    // 1.4 GB of scratch if it were done at once. The trainer works through
    // it in chunks of its bounded scratch, and a shutdown acts within one.
    const jobId = await startTraining(client, networkId, { epochs: 50, mini_batch_size: 50000, learning_rate: 3.0 });
    const deadline = Date.now() + WAIT_MS;
    for (let job = await getJob(client, jobId); job.status !== 'training'; job = await getJob(client, jobId)) {
      assert.equal(job.status, 'pending', `job status: ${JSON.stringify(job)}`);
      assert.ok(Date.now() < deadline, 'the job never started');
    }

    const stopped = await server.stop(5_000);
    t.diagnostic(`server#5 stopped during a 50,000-image mini-batch in ${stopped.ms} ms: ${JSON.stringify(stopped)}`);
    assert.equal(stopped.timedOut, false, 'the server must exit within 5 s of SIGTERM, even inside a large mini-batch');
    assert.equal(stopped.code, 0, `exit code after SIGTERM must be 0, got ${JSON.stringify(stopped)}`);
    for (const sock of socks) {
      const errs = sock.jobEvents(jobId).filter((e) => e.name === 'training_error');
      assert.equal(errs.length, 1, `[${sock.label}] one training_error for the running job: ${sock.describeEvents(jobId)}`);
      // The job has not ended: it resumes when the server is back.
      assert.equal(errs[0].data.status, 'interrupted', `[${sock.label}] status`);
      assert.match(errs[0].data.error, /shutting down.*resume/, `[${sock.label}] error`);
      // A close from the transport (a WebSocket close frame, a polling close
      // packet), not a Socket.IO disconnect: that one would stop
      // socket.io-client from reconnecting once the server is back.
      await sock.waitUntil(() => sock.disconnectReason, 'the disconnect');
      assert.equal(sock.disconnectReason, 'transport close', `[${sock.label}] disconnect reason`);
    }
  }));
});
