// Scenario 8: Socket.IO transport edges, in raw HTTP and raw WebSocket (no
// client library): the cases the official Engine.IO / Socket.IO protocol
// test suites found, CORS on /socket.io/, and the bounds on what a client
// can make the server hold.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { request, show, TEST_TIMEOUT_MS, WAIT_MS } from './helpers.mjs';
import { dumpingLogs, makeModelsDir, removeDir, Server } from './server.mjs';

const ORIGIN = 'http://example.com';
const MAX_PAYLOAD = 4096; // live.DefaultMaxPayload
const MAX_QUEUED = 256; // live.DefaultMaxQueuedPackets
const PROMPT_MS = 2_000; // "at once": far below the 25 s ping interval

/** Resolves with the first `event` of emitter, or rejects after ms. */
function once(emitter, event, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** A raw Engine.IO WebSocket that records its messages and its close. */
class RawSocket {
  constructor(url) {
    this.ws = new WebSocket(`${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`);
    this.messages = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('error', () => {}); // the close event tells the outcome
    this.ws.on('message', (data, isBinary) => {
      const text = isBinary ? data : data.toString();
      if (text === '2') {
        this.ws.send('3'); // pong
        return;
      }
      this.messages.push(text);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Opens the session: resolves with the open packet's JSON. */
  async open() {
    const msg = await this.next();
    assert.ok(msg.startsWith('0{'), `open packet: ${msg}`);
    return JSON.parse(msg.slice(1));
  }

  /** Opens the session and joins namespace "/". */
  async join() {
    await this.open();
    this.ws.send('40');
    const ack = await this.next();
    assert.ok(ack.startsWith('40{"sid":'), `connect ack: ${ack}`);
  }

  /** The next message that is not a ping. */
  async next(ms = WAIT_MS) {
    const deadline = Date.now() + ms;
    while (this.messages.length === 0) {
      if (Date.now() > deadline) throw new Error(`no message within ${ms} ms`);
      await new Promise((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, Math.max(0, deadline - Date.now())).unref();
      });
    }
    return this.messages.shift();
  }

  /** Resolves with {code, reason} when the server closes, or rejects after ms. */
  async waitClosed(ms = WAIT_MS) {
    return Promise.race([
      this.closed,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`WebSocket not closed within ${ms} ms`)), ms).unref()),
    ]);
  }

  terminate() {
    this.ws.terminate();
  }
}

/** Opens a polling session; returns its sid and open packet. */
async function handshake(url, headers = {}) {
  const res = await request(url, 'GET', '/socket.io/?EIO=4&transport=polling', { headers });
  assert.equal(res.status, 200, show(res));
  assert.ok(res.text.startsWith('0{'), `handshake: ${show(res)}`);
  const open = JSON.parse(res.text.slice(1));
  return { sid: open.sid, open, res };
}

const pollPath = (sid) => `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
const post = (url, sid, body, opts = {}) =>
  request(url, 'POST', pollPath(sid), { ...opts, body, headers: { 'Content-Type': 'text/plain;charset=UTF-8', ...opts.headers } });
const poll = (url, sid, opts = {}) => request(url, 'GET', pollPath(sid), opts);

/** Asserts an Engine.IO error answer: status, JSON {code, message}. */
function expectEngineError(res, status, code, what) {
  assert.equal(res.status, status, `${what}: ${show(res)}`);
  assert.match(String(res.headers['content-type']), /^application\/json\b/, `${what}: ${show(res)}`);
  assert.equal(typeof res.json?.message, 'string', `${what}: ${show(res)}`);
  if (code !== undefined) assert.equal(res.json.code, code, `${what}: ${show(res)}`);
}

describe('Socket.IO transport edges (raw HTTP and WebSocket)', () => {
  let server;
  let modelsDir;
  const sockets = [];
  const it = (name, fn) => test(name, { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => [server], fn));
  const raw = () => {
    const s = new RawSocket(server.url);
    sockets.push(s);
    return s;
  };

  before(async () => {
    modelsDir = await makeModelsDir();
    server = await Server.start({ modelsDir });
  });

  after(async () => {
    for (const s of sockets) s.terminate();
    await server?.kill();
    await removeDir(modelsDir);
  });

  it('other methods on /socket.io/ get 400 and an Engine.IO error body, as a POST without sid does', async () => {
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      const res = await request(server.url, method, '/socket.io/?EIO=4&transport=polling', { body: 'x' });
      expectEngineError(res, 400, 2, `${method} without sid`);
    }
    const res = await request(server.url, 'POST', '/socket.io/?EIO=4&transport=polling', { body: '40' });
    expectEngineError(res, 400, 2, 'POST without sid');

    const { sid } = await handshake(server.url);
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      const res = await request(server.url, method, pollPath(sid), { body: 'x' });
      expectEngineError(res, 400, 3, `${method} with a sid`);
    }
  });

  it('a close packet over WebSocket closes the session and the connection at once', async () => {
    for (const joined of [false, true]) {
      const s = raw();
      if (joined) await s.join();
      else await s.open();
      s.ws.send('1');
      const { code } = await s.waitClosed(PROMPT_MS);
      assert.equal(code, 1000, `joined ${joined}: close code`);
    }
  });

  it('a close packet over long-polling ends the pending poll and the session', async () => {
    const { sid } = await handshake(server.url);
    const pending = poll(server.url, sid);
    const postRes = await post(server.url, sid, '1');
    assert.equal(postRes.status, 200, show(postRes));
    // The poll ends with a noop; or, if the POST overtook it, it finds the
    // session gone.
    const pollRes = await pending;
    if (pollRes.status === 200) assert.equal(pollRes.text, '6', show(pollRes));
    else expectEngineError(pollRes, 400, 1, 'a poll overtaken by the close packet');
    const after = await poll(server.url, sid, { timeoutMs: PROMPT_MS });
    expectEngineError(after, 400, 1, 'poll after the close packet');
  });

  it('an invalid packet over long-polling gets 400, and the next poll gets 400 at once', async () => {
    for (const body of ['abc', '40\x1eabc']) {
      const { sid } = await handshake(server.url);
      const res = await post(server.url, sid, body);
      expectEngineError(res, 400, 3, `POST ${JSON.stringify(body)}`);
      const t0 = Date.now();
      const next = await poll(server.url, sid, { timeoutMs: PROMPT_MS });
      expectEngineError(next, 400, 1, `poll after POST ${JSON.stringify(body)}`);
      assert.ok(Date.now() - t0 < PROMPT_MS, `the poll took ${Date.now() - t0} ms`);
    }
  });

  it('CORS on /socket.io/ is * without credentials, preflight included', async () => {
    const headers = { Origin: ORIGIN };
    const noCredentials = (res, what) => {
      assert.equal(res.headers['access-control-allow-origin'], '*', `${what}: ${show(res)}`);
      assert.equal(res.headers['access-control-allow-credentials'], undefined, `${what}: ${JSON.stringify(res.headers)}`);
    };
    const { sid, res } = await handshake(server.url, headers);
    noCredentials(res, 'handshake');
    noCredentials(await post(server.url, sid, '40', { headers }), 'POST');
    noCredentials(await poll(server.url, sid, { headers }), 'poll');
    const pre = await request(server.url, 'OPTIONS', pollPath(sid), {
      headers: { ...headers, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    assert.ok(pre.status >= 200 && pre.status < 300, `preflight: ${show(pre)}`);
    noCredentials(pre, 'preflight');
    noCredentials(await poll(server.url, 'nope', { headers }), 'unknown sid');
  });

  it('payloads are capped at maxPayload; a connect with auth fits', async () => {
    const { sid, open } = await handshake(server.url);
    assert.equal(open.maxPayload, MAX_PAYLOAD, `maxPayload: ${JSON.stringify(open)}`);
    const auth = `40${JSON.stringify({ token: 'x'.repeat(2000) })}`;
    const ok = await post(server.url, sid, auth);
    assert.equal(ok.status, 200, `connect with auth: ${show(ok)}`);
    const ack = await poll(server.url, sid);
    assert.ok(ack.text.startsWith('40{"sid":'), `connect ack: ${show(ack)}`);
    // 413 without reading the body: the server may close the connection
    // before the client has written it all.
    const big = await post(server.url, sid, `40/nope,${'x'.repeat((1 << 20) - 8)}`).catch((err) => err);
    if (big instanceof Error) assert.ok(['ECONNRESET', 'EPIPE'].includes(big.code), `1 MB POST: ${big.stack}`);
    else assert.equal(big.status, 413, `1 MB POST: ${show(big)}`);

    const s = raw();
    await s.join();
    s.ws.send(`42["x","${'x'.repeat(MAX_PAYLOAD)}"]`);
    const { code } = await s.waitClosed();
    assert.equal(code, 1009, 'WebSocket message over maxPayload: close code');
  });

  it('connects to a namespace that does not exist cannot pile up replies in a session', async () => {
    const { sid } = await handshake(server.url);
    const body = Array(Math.floor(MAX_PAYLOAD / 9)).fill('40/nope,').join('\x1e');
    const perPost = Math.floor(MAX_PAYLOAD / 9);
    let accepted = 0;
    for (let i = 0; i < 30; i++) {
      const res = await post(server.url, sid, body);
      if (res.status !== 200) {
        expectEngineError(res, 400, undefined, 'POST after the queue bound');
        break;
      }
      accepted++;
    }
    assert.ok(accepted <= Math.ceil(MAX_QUEUED / perPost) + 1, `${accepted} POSTs of ${perPost} connects accepted`);
    expectEngineError(await poll(server.url, sid, { timeoutMs: PROMPT_MS }), 400, 1, 'poll after the queue bound');
  });

  it('binary packets are refused: the session is closed, nothing is held', async () => {
    const s = raw();
    await s.join();
    s.ws.send('451-["x",{"_placeholder":true,"num":0}]');
    const { code } = await s.waitClosed(PROMPT_MS);
    assert.equal(code, 1008, 'binary header: close code');

    const t = raw();
    await t.join();
    t.ws.send(Buffer.from([4, 1, 2, 3]));
    assert.equal((await t.waitClosed(PROMPT_MS)).code, 1008, 'bare attachment: close code');
  });

  it('the server is still healthy, and a raw client can join and leave', async () => {
    const s = raw();
    await s.join();
    const res = await request(server.url, 'GET', '/api/status');
    assert.equal(res.status, 200, show(res));
    s.ws.send('1');
    assert.equal((await s.waitClosed(PROMPT_MS)).code, 1000);
  });
});

describe('shutdown', () => {
  let server;
  let modelsDir;

  before(async () => {
    modelsDir = await makeModelsDir();
    server = await Server.start({ modelsDir });
  });

  after(async () => {
    await server?.kill();
    await removeDir(modelsDir);
  });

  test('SIGTERM closes WebSockets with a close frame (1001), not a dropped connection', { timeout: TEST_TIMEOUT_MS }, dumpingLogs(() => [server], async () => {
    const s = new RawSocket(server.url);
    await s.join();
    const stopped = server.stop();
    const { code, reason } = await s.waitClosed();
    assert.equal(code, 1001, `close code (reason ${JSON.stringify(reason)})`);
    const { code: exit, timedOut } = await stopped;
    assert.equal(timedOut, false, 'the server stops in time');
    assert.equal(exit, 0, 'exit code');
  }));
});
