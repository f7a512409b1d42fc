// Scenario 3: events are broadcast to every connected client, whatever its
// transport, in order.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  api,
  checkSuccessfulJob,
  connectClient,
  createNetwork,
  QUIET_MS,
  sleep,
  startTraining,
  TEST_TIMEOUT_MS,
  WAIT_MS,
} from './helpers.mjs';
import { dumpingLogs, makeModelsDir, removeDir, Server } from './server.mjs';

describe('several clients', () => {
  let server;
  let modelsDir;
  let clients = [];

  before(async () => {
    modelsDir = await makeModelsDir();
    server = await Server.start({ modelsDir });
  });

  after(async () => {
    for (const c of clients) c.close();
    await server?.kill();
    await removeDir(modelsDir);
  });

  test('5 clients (mixed transports) each receive every event of a job, in order', { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => [server], async () => {
    const configs = ['default', 'websocket', 'default', 'websocket', 'default'];
    clients = await Promise.all(configs.map((cfg, i) => connectClient(server.url, cfg, `client${i + 1}/${cfg}`)));
    const ids = new Set(clients.map((c) => c.socket.id));
    assert.equal(ids.size, 5, 'five distinct Socket.IO sessions');

    const client = api(server.url);
    const networkId = await createNetwork(client);
    const jobId = await startTraining(client, networkId, { epochs: 2, mini_batch_size: 10, learning_rate: 3.0 });

    await Promise.all(clients.map((c) => c.waitForEvents(jobId, { updates: 2, timeoutMs: WAIT_MS * 2 })));
    await sleep(QUIET_MS);

    const payloads = clients.map((c) => {
      const events = c.jobEvents(jobId);
      checkSuccessfulJob(events, { jobId, networkId, epochs: 2 });
      return events.map((e) => ({ [e.name]: e.data }));
    });
    for (let i = 1; i < payloads.length; i++) {
      assert.deepEqual(payloads[i], payloads[0], `${clients[i].label} got other payloads than ${clients[0].label}`);
    }
    for (const c of clients) {
      assert.ok(c.socket.connected, `${c.label} is still connected`);
    }
  }));
});
