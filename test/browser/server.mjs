// Runs the real server binary (env SERVER_BIN) as a child process for the
// browser tests: a free port, a fresh models directory, readiness by polling
// GET /api/status, and a graceful stop. Copied from test/protocol/server.mjs
// (the suites do not import across folders), trimmed to what is used here.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

/** Returns a TCP port that was free a moment ago (listen on 0, then close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function serverBin() {
  const bin = process.env.SERVER_BIN;
  if (!bin) {
    throw new Error(
      'SERVER_BIN is not set: build the server (go build -o /tmp/server ./cmd/server) ' +
        'and run with SERVER_BIN=/tmp/server, or run `go test ./test/browser`',
    );
  }
  return bin;
}

/** One running server process with its own models directory. */
export class Server {
  /**
   * Starts the binary on a free port with a temp MODELS_DIR; waits until it
   * answers. port and modelsDir: those of a stopped server, to restart it.
   */
  static async start({ env = {}, port, modelsDir } = {}) {
    const srv = new Server();
    srv.modelsDir = modelsDir ?? (await mkdtemp(path.join(os.tmpdir(), 'nnserver-browser-models-')));
    srv.port = port ?? (await freePort());
    srv.url = `http://127.0.0.1:${srv.port}`;
    srv.output = [];
    srv.exit = null;
    srv.env = env;
    srv.proc = spawn(serverBin(), [], {
      env: {
        ...process.env,
        PORT: String(srv.port),
        MODELS_DIR: srv.modelsDir,
        LOG_LEVEL: 'info',
        MAX_CONCURRENT_JOBS: '2',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk) => srv.output.push(chunk.toString('utf8'));
    srv.proc.stdout.on('data', keep);
    srv.proc.stderr.on('data', keep);
    srv.exited = new Promise((resolve) => {
      srv.proc.on('exit', (code, signal) => resolve((srv.exit = { code, signal })));
      srv.proc.on('error', (err) => resolve((srv.exit = { code: null, signal: null, error: String(err) })));
    });
    try {
      await srv.waitReady();
    } catch (err) {
      srv.dumpLogs('did not become ready');
      await srv.stop();
      throw err;
    }
    return srv;
  }

  async waitReady() {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastErr = null;
    while (Date.now() < deadline) {
      if (this.exit) throw new Error(`server exited before it was ready: ${JSON.stringify(this.exit)}`);
      try {
        const res = await fetch(`${this.url}/api/status`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
        lastErr = new Error(`GET /api/status answered ${res.status}`);
      } catch (err) {
        lastErr = err;
      }
      await sleep(100); // polling a child process's readiness, not the page
    }
    throw new Error(`server not ready within ${READY_TIMEOUT_MS} ms: ${lastErr?.message ?? lastErr}`);
  }

  /** SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT_MS; removes MODELS_DIR unless keepModels. */
  async stop({ keepModels = false } = {}) {
    if (!this.exit) {
      this.proc.kill('SIGTERM');
      const done = await Promise.race([this.exited, sleep(STOP_TIMEOUT_MS, null)]);
      if (done === null) {
        this.proc.kill('SIGKILL');
        await this.exited;
      }
    }
    if (!keepModels) await rm(this.modelsDir, { recursive: true, force: true });
  }

  /** Stops the server (SIGTERM: a graceful shutdown) and starts it again on its port and models. */
  async restart() {
    await this.stop({ keepModels: true });
    this.output.push(`\n---------- restarted ----------\n`);
    const next = await Server.start({ env: this.env, port: this.port, modelsDir: this.modelsDir });
    next.output = [...this.output, ...next.output];
    return next;
  }

  logs() {
    return this.output.join('');
  }

  dumpLogs(reason) {
    const bar = '-'.repeat(20);
    process.stderr.write(`\n${bar} server output (${reason}; ${this.url}) ${bar}\n${this.logs() || '(no output)\n'}${bar} end ${bar}\n`);
  }

  /** Calls the REST API directly (for setting up and checking what the page shows). */
  async api(method, p, body) {
    const res = await fetch(this.url + p, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await res.json();
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(data)}`);
    return data;
  }
}
