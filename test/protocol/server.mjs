// Runs the real server binary (env SERVER_BIN) as a child process for the
// protocol tests: a free port, a models directory, readiness by polling
// GET /api/status, and a graceful stop (SIGTERM) or a hard kill (SIGKILL).

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const READY_TIMEOUT_MS = 15_000;
export const STOP_TIMEOUT_MS = 5_000;

/** Returns a TCP port that was free a moment ago (listen on 0, then close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Makes a fresh, empty models directory. Remove it with removeDir. */
export function makeModelsDir() {
  return mkdtemp(path.join(os.tmpdir(), 'nnserver-models-'));
}

export async function removeDir(dir) {
  if (dir) await rm(dir, { recursive: true, force: true });
}

function serverBin() {
  const bin = process.env.SERVER_BIN;
  if (!bin) {
    throw new Error(
      'SERVER_BIN is not set: build the server (go build -o /tmp/server ./cmd/server) ' +
        'and run with SERVER_BIN=/tmp/server, or run `go test ./test/protocol`',
    );
  }
  return bin;
}

/** Every server started by this process, so a test file can dump all logs. */
const started = new Set();

/**
 * One running server process. Use `await Server.start({ modelsDir })`.
 * `logs()` returns everything it wrote to stderr/stdout so far.
 */
export class Server {
  constructor({ modelsDir, port, name }) {
    this.modelsDir = modelsDir;
    this.port = port;
    this.name = name;
    this.url = `http://127.0.0.1:${port}`;
    this.output = [];
    this.proc = null;
    this.exit = null; // {code, signal} once exited
    this.exited = null; // promise of {code, signal}
  }

  /**
   * Starts the binary on a free port (or `port`) with MODELS_DIR=modelsDir and
   * waits until GET /api/status answers 200.
   */
  static async start({ modelsDir, port, name = 'server', env = {} } = {}) {
    if (!modelsDir) throw new Error('Server.start: modelsDir is required');
    const srv = new Server({ modelsDir, port: port ?? (await freePort()), name });
    srv.spawn(env);
    try {
      await srv.waitReady();
    } catch (err) {
      srv.dumpLogs(`${name} did not become ready`);
      await srv.kill();
      throw err;
    }
    return srv;
  }

  spawn(env) {
    const proc = spawn(serverBin(), [], {
      env: {
        ...process.env,
        PORT: String(this.port),
        MODELS_DIR: this.modelsDir,
        LOG_LEVEL: 'debug',
        MAX_CONCURRENT_JOBS: '2',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    started.add(this);
    const keep = (chunk) => this.output.push(chunk.toString('utf8'));
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        started.delete(this);
        resolve(this.exit);
      });
      proc.on('error', (err) => {
        this.output.push(`[spawn error] ${err.stack ?? err}\n`);
        this.exit = { code: null, signal: null, error: err };
        started.delete(this);
        resolve(this.exit);
      });
    });
  }

  async waitReady(timeoutMs = READY_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    let lastErr = null;
    while (Date.now() < deadline) {
      if (this.exit) {
        throw new Error(`${this.name} exited before it was ready: ${JSON.stringify(this.exit)}`);
      }
      try {
        const res = await fetch(`${this.url}/api/status`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
        lastErr = new Error(`GET /api/status answered ${res.status}`);
      } catch (err) {
        lastErr = err;
      }
      await sleep(100);
    }
    throw new Error(`${this.name} not ready within ${timeoutMs} ms: ${lastErr?.message ?? lastErr}`);
  }

  get running() {
    return this.proc !== null && this.exit === null;
  }

  /**
   * Sends SIGTERM and waits for the exit; returns {code, signal, ms}.
   * Kills the process (SIGKILL) if it is still running after timeoutMs, and
   * then reports timedOut: true.
   */
  async stop(timeoutMs = STOP_TIMEOUT_MS) {
    if (!this.running) return { ...this.exit, ms: 0, timedOut: false };
    const t0 = Date.now();
    this.proc.kill('SIGTERM');
    const result = await Promise.race([this.exited, sleep(timeoutMs, null)]);
    if (result === null) {
      await this.kill();
      return { ...this.exit, ms: Date.now() - t0, timedOut: true };
    }
    return { ...result, ms: Date.now() - t0, timedOut: false };
  }

  /** SIGKILL (kill -9) and wait for the exit. */
  async kill() {
    if (this.running) this.proc.kill('SIGKILL');
    return this.exited;
  }

  logs() {
    return this.output.join('');
  }

  dumpLogs(reason) {
    const bar = '-'.repeat(20);
    process.stderr.write(
      `\n${bar} ${this.name} output (${reason}; port ${this.port}, MODELS_DIR ${this.modelsDir}) ${bar}\n` +
        `${this.logs() || '(no output)\n'}${bar} end of ${this.name} output ${bar}\n`,
    );
  }
}

/** Kills every server still running (for after() hooks). */
export async function killAll() {
  await Promise.all([...started].map((s) => s.kill()));
}

/**
 * Wraps a test function so that, if it fails, the output of the servers
 * returned by getServers() (default: every server started and not yet
 * exited, plus any given) is printed before the error propagates.
 */
export function dumpingLogs(getServers, fn) {
  return async (t) => {
    try {
      return await fn(t);
    } catch (err) {
      const servers = new Set([...(getServers?.() ?? []), ...started].filter(Boolean));
      for (const s of servers) s.dumpLogs(`test "${t.name}" failed`);
      throw err;
    }
  };
}
