// Chromium through playwright-core (no browser download: Debian's chromium
// package, or $CHROMIUM), and a watcher that turns console errors, page
// errors, failed requests and HTTP errors into test failures.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export function haveChromium() {
  return existsSync(CHROMIUM);
}

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    // Without the networking flags Chromium tries to reach Google's
    // services and logs failures; this machine has no such network.
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** The folder for screenshots and downloads: $ARTIFACTS_DIR or a new temp dir, printed. */
export async function artifactsDir() {
  let dir = process.env.ARTIFACTS_DIR;
  if (dir) await mkdir(dir, { recursive: true });
  else dir = await mkdtemp(path.join(os.tmpdir(), 'nnserver-browser-artifacts-'));
  console.log(`# screenshots and downloads: ${dir}`);
  return dir;
}

/**
 * Watches a page for problems: console errors, uncaught exceptions, failed
 * requests and responses with status >= 400. A test that causes one on
 * purpose says so first with allow(); problems() lists the rest.
 */
export function watch(page, name) {
  const seen = [];
  const allowed = [];
  let closing = false;
  let navigating = false;
  const isAllowed = (url, status) =>
    allowed.some((a) => a.url.test(url) && (a.status === undefined || a.status === status));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    // Chromium logs every HTTP error response as a console error too: those
    // are judged by their response below.
    if (/^Failed to load resource: the server responded with a status of \d+/.test(msg.text())) return;
    seen.push({ kind: 'console error', text: msg.text(), url: msg.location()?.url ?? '' });
  });
  page.on('pageerror', (err) => seen.push({ kind: 'page error', text: String(err.stack || err) }));
  page.on('requestfailed', (req) => {
    const failure = req.failure()?.errorText ?? '';
    // Long-polls cut by closing the page, and downloads (which Chromium
    // reports as aborted navigations), are not failures.
    if (closing || navigating || (failure === 'net::ERR_ABORTED' && /\/socket\.io\//.test(req.url()))) return;
    if (failure === 'net::ERR_ABORTED' && /\/download$/.test(req.url())) return;
    if (isAllowed(req.url())) return;
    seen.push({ kind: 'request failed', text: `${req.method()} ${req.url()}: ${failure}`, url: req.url() });
  });
  page.on('response', (res) => {
    if (res.status() < 400 || isAllowed(res.url(), res.status())) return;
    seen.push({ kind: `HTTP ${res.status()}`, text: `${res.request().method()} ${res.url()}`, url: res.url() });
  });
  return {
    name,
    /** Lets one kind of failure through: url a RegExp, status optional. */
    allow(url, status) {
      allowed.push({ url, status });
    },
    /** The problems seen since the last call. */
    problems() {
      return seen.splice(0).map((s) => `${name}: ${s.kind}: ${s.text}`);
    },
    closing() {
      closing = true;
    },
    /** Runs a navigation (reload), which may abort the old page's requests. */
    async navigate(fn) {
      navigating = true;
      try {
        return await fn();
      } finally {
        navigating = false;
      }
    },
  };
}
