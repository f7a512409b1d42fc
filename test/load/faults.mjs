// Misbehaving clients must not disturb well-behaved ones. While a normal
// socket.io-client listens, this script: sends garbage to the polling
// transport, aborts long-polls midway, sends garbage WebSocket frames and
// drops WebSocket connections without a close handshake. Then it trains a
// 2-epoch job and checks that the normal client receives every event, and
// that the server still answers.
//
//   SERVER_URL=http://127.0.0.1:8000 node faults.mjs
import { io } from 'socket.io-client';
import WebSocket from 'ws';

const url = process.env.SERVER_URL;
const wsURL = url.replace(/^http/, 'ws') + '/socket.io/?EIO=4&transport=websocket';
const pollURL = url + '/socket.io/?EIO=4&transport=polling';

function fail(msg) {
  console.error(msg);
  process.exit(1);
}
setTimeout(() => fail('timed out'), 90000).unref();

const good = io(url); // default transports: polling, then upgrade
const events = [];
for (const name of ['training_update', 'training_complete', 'training_error']) {
  good.on(name, (p) => events.push([name, p]));
}
await new Promise((resolve, reject) => {
  good.on('connect', resolve);
  good.on('connect_error', reject);
}).catch((err) => fail(`good client: ${err.message}`));

const done = [];

async function handshake() {
  const res = await fetch(pollURL);
  const text = await res.text();
  if (res.status !== 200 || !text.startsWith('0{')) fail(`handshake: ${res.status} ${text}`);
  return JSON.parse(text.slice(1)).sid;
}

// 1. Garbage over polling.
for (const body of ['garbage', '4{{{', '42["x"', '\u0000\u0001\u0002', 'x'.repeat(2 << 20)]) {
  const sid = await handshake();
  const res = await fetch(`${pollURL}&sid=${sid}`, { method: 'POST', body, headers: { 'Content-Type': 'text/plain' } });
  done.push(`polling garbage (${body.length} bytes): ${res.status}`);
  await res.text();
}
// An unknown sid and a bad transport.
for (const q of ['&sid=nope', '&transport=carrier-pigeon']) {
  const res = await fetch(pollURL + q);
  done.push(`polling ${q}: ${res.status}`);
  await res.text();
}

// 2. Long-polls aborted midway.
for (let i = 0; i < 10; i++) {
  const sid = await handshake();
  const ac = new AbortController();
  const pending = fetch(`${pollURL}&sid=${sid}`, { signal: ac.signal }).catch(() => 'aborted');
  setTimeout(() => ac.abort(), 50 + 10 * i);
  await pending;
}
done.push('10 long-polls aborted');

// 3. Garbage WebSocket frames, then connections dropped without a close.
for (const frames of [['hello'], ['42['], ['4{"a":'], [Buffer.from([0xff, 0x00, 0x13])], ['2probe', '5', 'garbage']]) {
  await new Promise((resolve) => {
    const ws = new WebSocket(wsURL);
    ws.on('open', () => {
      for (const f of frames) ws.send(f);
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 50);
    });
    ws.on('error', resolve);
  });
}
done.push('5 websockets sent garbage and were dropped');

// 4. The well-behaved client still gets a whole job.
async function post(path, body) {
  const res = await fetch(url + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) fail(`POST ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}
const { network_id: id } = await post('/api/networks', {});
const { job_id: job } = await post(`/api/networks/${id}/train`, { epochs: 2 });
await new Promise((resolve) => {
  const check = () => {
    if (events.some(([n, p]) => n !== 'training_update' && p.job_id === job)) resolve();
    else setTimeout(check, 20);
  };
  check();
});
const mine = events.filter(([, p]) => p.job_id === job).map(([n, p]) => (p.epoch ? `${n}/${p.epoch}` : n));
const want = ['training_update/1', 'training_update/2', 'training_complete'];
if (JSON.stringify(mine) !== JSON.stringify(want)) fail(`good client got ${mine.join(', ')}`);
const status = await fetch(url + '/api/status');
if (status.status !== 200) fail(`status ${status.status}`);
good.disconnect();
console.log(JSON.stringify({ ok: true, transport: good.io.engine?.transport?.name ?? 'closed', done }));
process.exit(0);
