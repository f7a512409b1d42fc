// A recording Socket.IO client for the Go tests of this folder: it connects
// with the npm socket.io-client 4.8 and writes one JSON line to stdout for
// everything that happens to it, with the wall-clock time in milliseconds
// (fractional) at which it happened:
//
//	{"type":"connect","id":"<socket id>","transport":"polling","at":…}
//	{"type":"upgrade","transport":"websocket","at":…}
//	{"type":"event","name":"training_update","data":{…},"at":…}
//	{"type":"disconnect","reason":"transport close","at":…}
//	{"type":"connect_error","message":"…","at":…}
//
// It runs until its standard input closes (or it is killed).
//
//	node client.mjs <url> '<options as JSON>'
//
// options (all optional):
//
//	transports    e.g. ["websocket"]; default: io(url)'s, polling then upgraded
//	localAddress  the loopback address to connect from (127.0.0.N): both
//	              balancers hash the client's address to pick its replica
//	reconnection  default false
//
// Like a Node client by default, it sends no cookies (no withCredentials):
// the balancers' stickiness must not need them.

import http from 'node:http';
import { io } from 'socket.io-client';

const [url, optsJSON = '{}'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node client.mjs <url> [options as JSON]');
  process.exit(2);
}
const opts = JSON.parse(optsJSON);

const now = () => performance.timeOrigin + performance.now();
const out = (obj) => process.stdout.write(`${JSON.stringify({ ...obj, at: now() })}\n`);

const ioOpts = { forceNew: true, reconnection: opts.reconnection ?? false, timeout: 30_000 };
if (opts.transports) ioOpts.transports = opts.transports;
if (opts.localAddress) {
  // Both transports take an agent: polling's XMLHttpRequest and the
  // WebSocket's handshake connect through it.
  ioOpts.agent = new http.Agent({ localAddress: opts.localAddress });
}

const socket = io(url, ioOpts);
socket.io.on('open', () => {
  socket.io.engine.on('upgrade', (t) => out({ type: 'upgrade', transport: t.name }));
});
socket.on('connect', () => out({ type: 'connect', id: socket.id, transport: socket.io.engine.transport.name }));
socket.on('disconnect', (reason) => out({ type: 'disconnect', reason }));
socket.on('connect_error', (err) => out({ type: 'connect_error', message: err.message }));
socket.onAny((name, data) => out({ type: 'event', name, data }));

// Standard input closed: leave as a browser tab closed by its user does,
// with the close packet sent (over polling it is a request of its own, so
// the process must not exit before it is done: it ends by itself once
// nothing is left to do, or after 2 s). A client that must vanish without
// a word is killed instead.
process.stdin.resume();
process.stdin.on('end', () => {
  socket.disconnect();
  process.stdin.destroy();
  setTimeout(() => process.exit(0), 2000).unref();
});
