// Scenario 2: Engine.IO handshake details seen on the wire, CORS for the
// REST API and the polling transport, and the management page.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { api, assertString, expectError, show, TEST_TIMEOUT_MS } from './helpers.mjs';
import { dumpingLogs, makeModelsDir, removeDir, Server } from './server.mjs';

const ORIGIN = 'http://example.com';

/** Asserts the response lets a page from ORIGIN read it. */
function assertAllowsOrigin(res, what) {
  const acao = res.headers['access-control-allow-origin'];
  assert.ok(acao === '*' || acao === ORIGIN, `${what}: Access-Control-Allow-Origin must be * or ${ORIGIN}, got ${JSON.stringify(acao)} (${show(res)})`);
}

/** Splits a header value like "GET, POST" into lower-case tokens. */
function tokens(value) {
  return String(value ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

describe('Engine.IO, CORS and the management page', () => {
  let server;
  let modelsDir;
  let client;
  const it = (name, fn) => test(name, { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => [server], fn));

  before(async () => {
    modelsDir = await makeModelsDir();
    server = await Server.start({ modelsDir });
    client = api(server.url);
  });

  after(async () => {
    await server?.kill();
    await removeDir(modelsDir);
  });

  it('polling handshake (EIO=4) opens a session with the old server settings', async () => {
    const res = await client.get(`/socket.io/?EIO=4&transport=polling&t=${Date.now()}`);
    assert.equal(res.status, 200, show(res));
    assert.ok(res.text.startsWith('0{'), `handshake packet must start with 0{: ${show(res)}`);
    const open = JSON.parse(res.text.slice(1).split('\x1e')[0]);
    assertString(open.sid, 'sid');
    assert.ok(Array.isArray(open.upgrades), `upgrades must be an array: ${res.text}`);
    assert.ok(open.upgrades.includes('websocket'), `upgrades must offer websocket: ${res.text}`);
    assert.equal(open.pingInterval, 25000, 'pingInterval');
    assert.equal(open.pingTimeout, 60000, 'pingTimeout');
  });

  it('EIO=3 clients are refused with 400', async () => {
    const res = await client.get(`/socket.io/?EIO=3&transport=polling&t=${Date.now()}`);
    assert.equal(res.status, 400, show(res));
  });

  it('polling handshake with an Origin carries Access-Control-Allow-Origin', async () => {
    const res = await client.get(`/socket.io/?EIO=4&transport=polling&t=${Date.now()}`, { headers: { Origin: ORIGIN } });
    assert.equal(res.status, 200, show(res));
    assertAllowsOrigin(res, 'polling handshake');
  });

  it('CORS preflight for a JSON POST passes', async () => {
    const res = await client.request('OPTIONS', '/api/networks', {
      headers: {
        Origin: ORIGIN,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type',
      },
    });
    assert.ok(res.status >= 200 && res.status < 300, `preflight must answer 2xx: ${show(res)}`);
    assertAllowsOrigin(res, 'preflight');
    const allowHeaders = tokens(res.headers['access-control-allow-headers']);
    assert.ok(
      allowHeaders.includes('content-type') || allowHeaders.includes('*'),
      `Access-Control-Allow-Headers must allow content-type, got ${JSON.stringify(res.headers['access-control-allow-headers'])}`,
    );
    const allowMethods = tokens(res.headers['access-control-allow-methods']);
    if (allowMethods.length > 0) {
      assert.ok(allowMethods.includes('post') || allowMethods.includes('*'), `Access-Control-Allow-Methods must allow POST: ${allowMethods}`);
    }
  });

  it('CORS preflight for a DELETE passes', async () => {
    const res = await client.request('OPTIONS', `/api/networks/${randomUUID()}`, {
      headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'DELETE' },
    });
    assert.ok(res.status >= 200 && res.status < 300, `preflight must answer 2xx: ${show(res)}`);
    assertAllowsOrigin(res, 'preflight');
    const allowMethods = tokens(res.headers['access-control-allow-methods']);
    assert.ok(allowMethods.includes('delete') || allowMethods.includes('*'), `Access-Control-Allow-Methods must allow DELETE, got ${JSON.stringify(res.headers['access-control-allow-methods'])}`);
  });

  it('REST answers carry Access-Control-Allow-Origin, errors included', async () => {
    const status = await client.get('/api/status', { headers: { Origin: ORIGIN } });
    assert.equal(status.status, 200, show(status));
    assertAllowsOrigin(status, 'GET /api/status');

    const created = await client.post('/api/networks', { layer_sizes: [784, 30, 10] }, { headers: { Origin: ORIGIN } });
    assert.equal(created.status, 200, show(created));
    assertAllowsOrigin(created, 'POST /api/networks');

    const missing = await client.get(`/api/networks/${randomUUID()}/successful_example`, { headers: { Origin: ORIGIN } });
    expectError(missing, 404, 'Network not found');
    assertAllowsOrigin(missing, 'a 404 error');
  });

  it('GET / serves the management page', async () => {
    const res = await client.get('/');
    assert.equal(res.status, 200, show(res));
    assert.match(String(res.headers['content-type']), /^text\/html\b/i, show(res));
    assert.match(res.text, /<html/i, 'an HTML page');
  });
});
