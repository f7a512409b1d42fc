// Connects CLIENTS socket.io-client sockets (websocket transport) to
// SERVER_URL, starts one EPOCHS-epoch job, and checks that every client
// receives every event of it, in order. Prints one JSON summary on stdout:
// the receive times (wall clock, ms since the epoch, sub-ms precision) of
// each event at the first and the last client, and the time from the
// create request to training_complete.
//
//   SERVER_URL=http://127.0.0.1:8000 CLIENTS=1000 EPOCHS=3 node sockets.mjs
import { io } from 'socket.io-client';

const url = process.env.SERVER_URL;
const clients = Number(process.env.CLIENTS ?? 100);
const epochs = Number(process.env.EPOCHS ?? 3);
const timeoutMs = Number(process.env.TIMEOUT_MS ?? 120000);

const now = () => performance.timeOrigin + performance.now();

function fail(msg) {
  console.error(msg);
  process.exit(1);
}
setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs).unref();

async function post(path, body) {
  const res = await fetch(url + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status !== 200) fail(`POST ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const started = now();
const sockets = [];
const received = []; // per client: [{key, t}]
let jobId = null;
const early = []; // events that came before the POST answered: [client, name, payload, t]

function record(i, name, payload, t) {
  if (jobId === null) {
    early.push([i, name, payload, t]);
    return;
  }
  if (payload.job_id !== jobId) return;
  const key = name === 'training_update' ? `${name}/${payload.epoch}` : name;
  received[i].push({ key, t });
}

await new Promise((resolve, reject) => {
  let connected = 0;
  for (let i = 0; i < clients; i++) {
    const s = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 60000 });
    received.push([]);
    for (const name of ['training_update', 'training_complete', 'training_error']) {
      s.on(name, (payload) => record(i, name, payload, now()));
    }
    s.on('connect', () => {
      if (++connected === clients) resolve();
    });
    s.on('connect_error', (err) => reject(new Error(`client ${i}: ${err.message}`)));
    sockets.push(s);
  }
}).catch((err) => fail(err.message));
const connectedMs = now() - started;

const createdAt = now();
const { network_id: networkId } = await post('/api/networks', { layer_sizes: [784, 30, 10] });
const job = await post(`/api/networks/${networkId}/train`, { epochs });
jobId = job.job_id;
for (const [i, name, payload, t] of early) record(i, name, payload, t);

const want = [...Array.from({ length: epochs }, (_, e) => `training_update/${e + 1}`), 'training_complete'];
await new Promise((resolve) => {
  const check = () => {
    if (received.every((r) => r.length >= want.length)) resolve();
    else setTimeout(check, 20);
  };
  check();
});
await new Promise((r) => setTimeout(r, 300)); // anything extra would arrive now

let inOrder = 0;
const problems = [];
received.forEach((r, i) => {
  const keys = r.map((e) => e.key);
  if (JSON.stringify(keys) === JSON.stringify(want)) inOrder++;
  else if (problems.length < 5) problems.push(`client ${i}: ${keys.join(', ')}`);
});
const events = want.map((key, k) => {
  const times = received.map((r) => r[k]?.t).filter((t) => t !== undefined);
  return { key, first: Math.min(...times), last: Math.max(...times) };
});
for (const s of sockets) s.disconnect();
const totalMs = events[events.length - 1].first - createdAt; // create → training_complete
console.log(JSON.stringify({ clients, connected_ms: connectedMs, total_ms: totalMs, in_order: inOrder, job_id: jobId, events, problems }));
process.exit(0);
