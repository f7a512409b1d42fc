// Scenario 6: every error is JSON {"error": "..."} with a fitting status,
// and the delete endpoints answer the contract.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  api,
  assertArchitecture,
  assertBool,
  assertInt,
  assertUUIDv4,
  connectClient,
  createNetwork,
  expectError,
  expectJSON,
  listNetworks,
  show,
  TEST_TIMEOUT_MS,
  trainAndWait,
} from './helpers.mjs';
import { dumpingLogs, makeModelsDir, removeDir, Server } from './server.mjs';

describe('errors and deletes', () => {
  let server;
  let modelsDir;
  let client;
  let sock;
  const it = (name, fn) => test(name, { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => [server], fn));

  before(async () => {
    modelsDir = await makeModelsDir();
    server = await Server.start({ modelsDir });
    client = api(server.url);
  });

  after(async () => {
    sock?.close();
    await server?.kill();
    await removeDir(modelsDir);
  });

  it('unknown ids answer 404 with the exact messages', async () => {
    const id = randomUUID();
    expectError(await client.example(id, 'successful'), 404, 'Network not found', 'successful_example');
    expectError(await client.example(id, 'unsuccessful'), 404, 'Network not found', 'unsuccessful_example');
    expectError(await client.train(id, { epochs: 1 }), 404, 'Network not found', 'train');
    expectError(await client.job(randomUUID()), 404, 'Training job not found', 'training job');
    expectError(await client.deleteNetwork(id), 404, 'Network not found', 'delete');
  });

  it('ids that are not UUIDs are refused with a JSON 400 or 404', async () => {
    for (const bad of ['not-a-uuid', '..%2F..%2Fetc%2Fpasswd', '%2e%2e%2fmodels', 'A0B1C2D3-E4F5-4A6B-8C7D-E8F9A0B1C2D3x']) {
      for (const [method, p] of [
        ['GET', `/api/networks/${bad}/successful_example`],
        ['POST', `/api/networks/${bad}/train`],
        ['DELETE', `/api/networks/${bad}`],
        ['GET', `/api/training/${bad}`],
      ]) {
        const res = await client.request(method, p, method === 'POST' ? { body: { epochs: 1 } } : {});
        assert.ok([400, 404].includes(res.status), `${method} ${p}: ${show(res)}`);
        expectError(res, res.status, undefined, `${method} ${p}`);
      }
    }
  });

  it('a body that is not JSON is a 400 with an error', async () => {
    const res = await client.request('POST', '/api/networks', { body: 'not json', headers: { 'Content-Type': 'application/json' } });
    expectError(res, 400, undefined, 'POST /api/networks "not json"');
  });

  it('a bad architecture is a 400 with an error', async () => {
    for (const layer_sizes of [[100, 10], [784], [784, 30, 9], [784, 0, 10], [784, -3, 10], [784, 2.5, 10], '784,30,10', [784, '30', 10]]) {
      const res = await client.post('/api/networks', { layer_sizes });
      expectError(res, 400, undefined, `layer_sizes ${JSON.stringify(layer_sizes)}`);
    }
  });

  it('bad training parameters are a 400 with an error', async () => {
    const id = await createNetwork(client);
    for (const params of [{ epochs: 0 }, { epochs: -1 }, { epochs: 1.5 }, { epochs: '2' }, { mini_batch_size: 0 }, { learning_rate: -1 }, { learning_rate: 0 }, { learning_rate: 'fast' }]) {
      const res = await client.train(id, params);
      expectError(res, 400, undefined, `train ${JSON.stringify(params)}`);
    }
    const notJson = await client.request('POST', `/api/networks/${id}/train`, { body: '{epochs: 2', headers: { 'Content-Type': 'application/json' } });
    expectError(notJson, 400, undefined, 'train with a broken body');
  });

  it('a missing or empty body on POST /api/networks means the defaults', async () => {
    for (const [what, opts] of [
      ['no body', {}],
      ['{}', { body: {} }],
    ]) {
      const body = expectJSON(await client.request('POST', '/api/networks', opts), 200, what);
      assertUUIDv4(body.network_id, 'network_id');
      assertArchitecture(body.architecture, [784, 30, 10]);
      assert.equal(body.status, 'created');
    }
  });

  it('an unknown API path is a JSON 404', async () => {
    for (const [method, p] of [
      ['GET', '/api/nope'],
      ['POST', '/api/nope'],
      ['GET', '/api/networks/x/y/z'],
    ]) {
      expectError(await client.request(method, p), 404, undefined, `${method} ${p}`);
    }
  });

  it('DELETE of an existing network answers what was deleted', async () => {
    sock = await connectClient(server.url, 'websocket');
    const trained = await createNetwork(client);
    await trainAndWait(client, sock, trained, { epochs: 1 });
    const fresh = await createNetwork(client);

    for (const id of [trained, fresh]) {
      const body = expectJSON(await client.deleteNetwork(id), 200, `DELETE /api/networks/${id}`);
      assert.equal(body.network_id, id, 'network_id');
      assert.equal(body.deleted_from_memory, true, `deleted_from_memory: ${JSON.stringify(body)}`);
      assertBool(body.deleted_from_disk, 'deleted_from_disk');
      if (id === trained) assert.equal(body.deleted_from_disk, true, `a trained network was saved, so it is deleted from disk: ${JSON.stringify(body)}`);
      expectError(await client.example(id, 'successful'), 404, 'Network not found', 'example after delete');
      expectError(await client.deleteNetwork(id), 404, 'Network not found', 'second delete');
      assert.ok(!(await listNetworks(client)).some((n) => n.network_id === id), 'not listed after delete');
    }
  });

  it('DELETE /api/networks deletes them all', async () => {
    const trained = await createNetwork(client);
    await trainAndWait(client, sock ?? (sock = await connectClient(server.url, 'websocket')), trained, { epochs: 1 });
    await createNetwork(client);
    const before = await listNetworks(client);
    const inMemory = before.filter((n) => n.status === 'in_memory').length;
    assert.ok(before.length >= 2, 'at least two networks exist');

    const body = expectJSON(await client.deleteAll(), 200, 'DELETE /api/networks');
    assertInt(body.deleted_count, 'deleted_count', 0);
    assertInt(body.deleted_from_memory, 'deleted_from_memory', 0);
    assertInt(body.deleted_from_disk, 'deleted_from_disk', 0);
    assert.equal(body.deleted_from_memory, inMemory, `deleted_from_memory: ${JSON.stringify(body)} (listed before: ${JSON.stringify(before)})`);
    assert.ok(body.deleted_from_disk >= 1, `the trained network was on disk: ${JSON.stringify(body)}`);
    assert.equal(body.deleted_count, before.length, `deleted_count is the number of networks: ${JSON.stringify(body)}`);
    assert.equal(body.message, `Successfully deleted ${body.deleted_count} network(s)`, 'message');

    assert.deepEqual(await listNetworks(client), [], 'nothing is listed afterwards');
    expectError(await client.example(trained, 'successful'), 404, 'Network not found');
    const again = expectJSON(await client.deleteAll(), 200, 'second DELETE /api/networks');
    assert.deepEqual(
      { count: again.deleted_count, memory: again.deleted_from_memory, disk: again.deleted_from_disk, message: again.message },
      { count: 0, memory: 0, disk: 0, message: 'Successfully deleted 0 network(s)' },
    );
  });
});
