// Scenario 5: kill -9 while a job trains (and saves after every epoch), at a
// few different moments; after each restart the job resumes and completes
// with every epoch once, every network is listed once and loads, and nothing
// left in MODELS_DIR breaks anything.

import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import {
  api,
  assertGapFree,
  assertSavedEpochState,
  connectClient,
  createNetwork,
  findOnce,
  getExample,
  listNetworks,
  sleep,
  startTraining,
  trainAndWait,
  WAIT_MS,
  waitJobEnd,
} from './helpers.mjs';
import { dumpingLogs, killAll, makeModelsDir, removeDir, Server } from './server.mjs';

const NPZ = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.npz$/;
// When to kill, after the 2nd training_update, as a fraction of the time
// between the 1st and 2nd updates (one epoch: train, evaluate, save). The
// server may still be saving epoch 2 at 0; later moments land in epoch 3,
// the last near its save.
const KILL_AT = [0, 0.02, 0.5, 0.97];

describe('crash safety', () => {
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

  /**
   * Checks the models directory against the listing: every <uuid>.npz is a
   * listed network, no other file is listed, and every listed network loads.
   */
  async function checkModels(t, client, created) {
    const list = await listNetworks(client);
    for (const id of created) findOnce(list, id);
    const files = await readdir(modelsDir);
    const npz = files.filter((f) => NPZ.test(f)).map((f) => f.slice(0, -4));
    const others = files.filter((f) => !NPZ.test(f));
    if (others.length > 0) t.diagnostic(`other files in MODELS_DIR: ${JSON.stringify(others)}`);
    assert.deepEqual(
      list.map((n) => n.network_id).sort(),
      [...npz].sort(),
      `the listing must be exactly the <uuid>.npz files (files: ${JSON.stringify(files)}, listed: ${JSON.stringify(list)})`,
    );
    for (const n of list) {
      assert.deepEqual(n.architecture, [784, 30, 10], `architecture of ${n.network_id}`);
      await getExample(client, n.network_id, 'successful');
    }
    return list;
  }

  test(`kill -9 during training, ${KILL_AT.length} times, loses nothing`, { timeout: 300_000 }, dumpingLogs(() => servers, async (t) => {
    const created = [];
    let server = await Server.start({ modelsDir, name: 'server#1' });
    servers.push(server);

    for (const [cycle, fraction] of KILL_AT.entries()) {
      let client = api(server.url);
      let sock = await connectClient(server.url, 'websocket', `cycle${cycle + 1}`);
      sockets.push(sock);
      const networkId = await createNetwork(client);
      created.push(networkId);
      const jobId = await startTraining(client, networkId, { epochs: 20, mini_batch_size: 10, learning_rate: 3.0 });
      const [first, second] = await sock.waitForEvents(jobId, { updates: 2, final: false });
      const delay = Math.round(fraction * (second.at - first.at));
      if (delay > 0) await sleep(delay);
      const killed = await server.kill();
      await sleep(200); // let events already sent arrive
      sock.close();
      const updates = sock.jobEvents(jobId).map((e) => e.data);
      t.diagnostic(`cycle ${cycle + 1}: killed ${delay} ms after the 2nd update (${updates.length} updates seen): ${JSON.stringify(killed)}`);
      assert.equal(killed.signal, 'SIGKILL', 'the server was still running when killed');

      server = await Server.start({ modelsDir, name: `server#${cycle + 2}` });
      servers.push(server);
      client = api(server.url);
      // The job resumes from its last saved epoch, and completes.
      sock = await connectClient(server.url, 'websocket', `cycle${cycle + 1}-after`);
      sockets.push(sock);
      const job = await waitJobEnd(client, sock, jobId, WAIT_MS + 20 * 10_000);
      assert.equal(job.status, 'completed', `cycle ${cycle + 1}: the job after the restart: ${JSON.stringify(job)}`);
      assert.equal(job.epoch, 20, `cycle ${cycle + 1}: epochs of the resumed job`);
      assertGapFree(job, `cycle ${cycle + 1}`);
      await checkModels(t, client, created);
      await assertSavedEpochState(client, networkId, updates, `cycle ${cycle + 1}`);

      // The crashed network trains on from where it was saved.
      await trainAndWait(client, sock, networkId, { epochs: 1 });
      const entry = findOnce(await listNetworks(client), networkId);
      assert.equal(entry.status, 'in_memory', 'status after training');
      assert.equal(entry.trained, true, 'trained after training');
      sock.close();
    }

    // A last graceful restart: still exactly the created networks, all loadable.
    const stopped = await server.stop(5_000);
    assert.equal(stopped.code, 0, `exit after SIGTERM: ${JSON.stringify(stopped)}`);
    server = await Server.start({ modelsDir, name: 'server#final' });
    servers.push(server);
    const list = await checkModels(t, api(server.url), created);
    assert.equal(list.length, created.length, `exactly the ${created.length} created networks are listed`);
    await server.stop(5_000);
  }));
});
