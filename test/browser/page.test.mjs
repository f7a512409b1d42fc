// The management page in a real Chromium against the real server binary.
// The tests run in order and build on each other (one server, one models
// directory): first load, create and train, draw, evaluation, history,
// download and import, a long job (progress, late joiners, cancel), a
// phone-sized screen, delete all. Every page is watched: a console error,
// an uncaught exception, a failed request or an HTTP error that a test did
// not cause on purpose fails that test.
//
// Run: go test ./test/browser (builds the server), or by hand:
//   go build -o /tmp/server ./cmd/server && cd test/browser && npm ci &&
//   SERVER_BIN=/tmp/server node --test --test-reporter=spec page.test.mjs

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { artifactsDir, CHROMIUM, haveChromium, launch, watch } from './browser.mjs';
import { Server } from './server.mjs';

const FIRST_LOAD_LIMIT = 200_000; // bytes transferred by the first load
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const TIMEOUT = 20_000; // for any one wait on the page

if (!haveChromium()) {
  throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM)`);
}

let srv;
let browser;
let dir;
let desk; // {context, page, w} at desktop size, used by most tests
const extra = []; // other contexts, closed at the end
const servers = []; // other servers, stopped at the end

before(async () => {
  dir = await artifactsDir();
  srv = await Server.start();
  browser = await launch();
});

after(async () => {
  for (const c of [desk?.context, ...extra]) await c?.close().catch(() => {});
  await browser?.close();
  for (const other of servers) await other.stop();
  if (srv) {
    await srv.stop();
    const log = path.join(dir, 'server.log');
    await writeFile(log, srv.logs());
    console.log(`# server log ${log}`);
  }
});

/** A new context and page of a size, watched. */
async function open(name, viewport, opts = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true, ...opts });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const w = watch(page, name);
  page.on('dialog', (d) => d.accept()); // "Delete …?" confirmations
  return { context, page, w };
}

async function loaded(page) {
  await page.waitForSelector('body[data-ready]');
  await page.waitForSelector('#live-status.ok');
}

function clean(w) {
  assert.deepEqual(w.problems(), [], 'no console errors, page errors, failed requests or HTTP errors');
}

async function shot(page, name, fullPage = true) {
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  console.log(`# screenshot ${file}`);
}

const pct = (acc) => `${(acc * 100).toFixed(2)}%`;
const rows = (page) => page.locator('#network-rows tr');
const row = (page, id) => page.locator(`#network-rows tr[data-id="${id}"]`);
const points = (page, chart) => page.locator(`${chart} .point`).count();

/** Waits until fn (run in the page) returns truthy, and returns its value. */
async function until(page, fn, arg) {
  return (await page.waitForFunction(fn, arg, { timeout: TIMEOUT })).jsonValue();
}

/** Draws a 7 on the drawing pad with the mouse. */
async function drawSeven(page) {
  await page.locator('#pad').scrollIntoViewIfNeeded();
  const box = await page.locator('#pad').boundingBox();
  const at = (fx, fy) => [box.x + box.width * fx, box.y + box.height * fy];
  await page.mouse.move(...at(0.25, 0.22));
  await page.mouse.down();
  await page.mouse.move(...at(0.75, 0.22), { steps: 12 });
  await page.mouse.move(...at(0.45, 0.85), { steps: 16 });
  await page.mouse.up();
}

/**
 * The ten output activations under selector, as shown: the text must name
 * each digit and its value apart ("0 0.01 1 0.97 …", never "0.010.97…"),
 * and on screen no value may overlap another value or a digit, or be cut.
 */
async function outputsApart(page, selector) {
  const m = await page.$eval(selector, (bars) => {
    const box = (e) => e.getBoundingClientRect();
    const values = [...bars.querySelectorAll('.bar-value')];
    const labels = [...values, ...bars.querySelectorAll('.bar-digit')].map(box);
    const overlaps = [];
    values.forEach((v, i) => {
      const a = box(v);
      labels.forEach((b, j) => {
        if (j === i) return;
        const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (x > 0.5 && y > 0.5) overlaps.push(`value ${i} overlaps ${j < 10 ? `value ${j}` : `digit ${j - 10}`}`);
      });
    });
    return {
      text: bars.textContent.trim().replace(/\s+/g, ' '),
      cut: values.filter((v) => v.scrollWidth > v.clientWidth + 0.5 || box(v).right > box(bars).right + 0.5).map((v) => v.textContent),
      overlaps, width: box(bars).width,
    };
  });
  assert.match(m.text, /^0 \d\.\d\d 1 \d\.\d\d 2 \d\.\d\d 3 \d\.\d\d 4 \d\.\d\d 5 \d\.\d\d 6 \d\.\d\d 7 \d\.\d\d 8 \d\.\d\d 9 \d\.\d\d$/,
    `${selector}: the ten outputs read apart`);
  assert.deepEqual(m.overlaps, [], `${selector} (${m.width} px wide): values overlap`);
  assert.deepEqual(m.cut, [], `${selector} (${m.width} px wide): values cut off`);
  return m.text.split(' ').filter((_, i) => i % 2).map(Number);
}

/** The history legend's entries: how each job ended ("" when the page does not say). */
function legendEnds(page) {
  return page.$$eval('#history-legend li', (lis) => lis.map((li) => li.querySelector('.legend-end')?.textContent ?? ''));
}

/** Waits for the selected network's job to show a status. */
async function jobStatus(page, status) {
  await page.waitForSelector(`#job-status.badge.${status}`);
}

describe('management page', { concurrency: false }, () => {
  let first; // the network created and trained with seeds
  let imported;
  let presetNet; // made and trained once with network2's preset

  test('first load: small, accessible, nothing listed', async () => {
    desk = await open('desktop', DESKTOP);
    const { page, w } = desk;
    const sizes = [];
    page.on('requestfinished', (req) => sizes.push(req.sizes().then((s) => s.responseHeadersSize + s.responseBodySize)));
    let wsBytes = 0;
    page.on('websocket', (ws) => ws.on('framereceived', (f) => (wsBytes += Buffer.byteLength(f.payload))));
    await page.goto(srv.url + '/');
    await loaded(page);
    await page.waitForSelector('#api-status.ok');
    const bytes = (await Promise.all(sizes)).reduce((a, b) => a + b, 0) + wsBytes;
    console.log(`# first load: ${bytes} bytes transferred in ${sizes.length} responses (+${wsBytes} WebSocket)`);
    assert.ok(bytes <= FIRST_LOAD_LIMIT, `first load transferred ${bytes} bytes, more than ${FIRST_LOAD_LIMIT}`);

    assert.equal(await rows(page).count(), 0);
    assert.ok(await page.isVisible('#networks-empty'));
    assert.ok(await page.isDisabled('#delete-all'), '"Delete all" is disabled with no networks');

    // Every control has a name: inputs and selects a label, buttons text or aria-label.
    const unnamed = await page.evaluate(() => [
      ...[...document.querySelectorAll('input:not([type=file]), select')].filter((el) => !el.labels.length).map((el) => el.id),
      ...[...document.querySelectorAll('button, a[href]')].filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim())).map((el) => el.outerHTML),
    ]);
    assert.deepEqual(unnamed, []);
    clean(w);
  });

  test('create with a seed, train 2 epochs, follow the live chart', async () => {
    const { page, w } = desk;
    await page.fill('#layer-sizes', '784,30,10');
    await page.selectOption('#init', 'scaled');
    await page.fill('#create-seed', '7');
    const created = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/api/networks'));
    await page.click('#create-form button[type=submit]');
    assert.deepEqual((await created).postDataJSON(), { layer_sizes: [784, 30, 10], init: 'scaled', seed: 7 });
    await page.waitForSelector('#network-rows tr.selected');
    first = await page.getAttribute('#network-rows tr.selected', 'data-id');
    assert.equal(await rows(page).count(), 1);
    assert.ok(!(await page.isDisabled('#delete-all')));

    await page.fill('#epochs', '2');
    await page.fill('#batch', '10');
    await page.fill('#eta', '3');
    await page.selectOption('#cost', 'quadratic');
    await page.fill('#lambda', '0');
    await page.fill('#train-seed', '7');
    const started = page.waitForRequest((r) => r.url().endsWith(`/api/networks/${first}/train`));
    await page.click('#train-button');
    assert.deepEqual((await started).postDataJSON(),
      { epochs: 2, mini_batch_size: 10, learning_rate: 3, cost: 'quadratic', lambda: 0, seed: 7 });
    await jobStatus(page, 'completed');
    assert.equal(await points(page, '#chart .series.c0'), 2, 'the live chart has a point per epoch');
    // Issue 19's curves: validation accuracy beside the test accuracy, and
    // the training cost in a chart of its own, a point per epoch each.
    assert.equal(await points(page, '#chart .series.c1'), 2, 'the live chart has a validation point per epoch');
    assert.ok(await page.isVisible('#cost-figure'), 'the cost chart is shown');
    assert.equal(await points(page, '#cost-chart'), 2, 'the cost chart has a point per epoch');
    const job1 = (await srv.api('GET', `/api/training?network_id=${first}`)).jobs[0];
    const hist1 = (await srv.api('GET', `/api/training/${job1.job_id}`)).history;
    const costTip = await page.$eval('#cost-chart .point title', (t) => t.textContent);
    assert.ok(costTip.includes(String(Number(hist1[0].training_cost.toPrecision(3)))),
      `the cost chart's first point (${costTip}) shows the epoch's training_cost ${hist1[0].training_cost}`);
    assert.equal(await page.getAttribute('#progress', 'aria-valuenow'), '100');

    // What the page shows is what the server has.
    const listed = (await srv.api('GET', '/api/networks')).networks.find((n) => n.network_id === first);
    assert.equal(listed.epochs_trained, 2);
    assert.ok(listed.accuracy > 0.8, `seeded training reaches > 80%, got ${listed.accuracy}`);
    await page.waitForFunction(([id, text]) =>
      document.querySelector(`#network-rows tr[data-id="${id}"] .acc`)?.textContent === text, [first, pct(listed.accuracy)]);
    assert.match(await page.textContent('#job-text'), new RegExp(`Epoch 2 of 2 .*accuracy ${pct(listed.accuracy).replace('.', '\\.')}`));
    assert.match(await page.textContent('#job-params'), /η 3 · mini-batch 10 · quadratic cost · λ 0 · seed 7/);
    clean(w);
  });

  test('draw a digit: throttled predictions, bars with numbers, the 28×28 input', async () => {
    const { page, w } = desk;
    const predicted = page.waitForResponse((r) => r.url().endsWith(`/api/networks/${first}/predict`));
    await drawSeven(page);
    const res = await predicted;
    assert.equal(res.status(), 200);
    const sent = res.request().postDataJSON();
    assert.equal(sent.pixels.length, 784);
    assert.ok(sent.pixels.every((v) => typeof v === 'number' && v >= 0 && v <= 1), 'pixels in [0, 1]');
    assert.ok(sent.pixels.some((v) => v > 0.5), 'the stroke is in the pixels');
    const answer = await res.json();
    assert.equal(answer.network_output.length, 10);

    await page.waitForSelector('#prediction-body:not([hidden])');
    const view = await until(page, () => {
      const values = [...document.querySelectorAll('#prediction-bars .bar-value')].map((e) => e.textContent);
      const digit = document.querySelector('#predicted-digit').textContent;
      const src = document.querySelector('#prediction-input').getAttribute('src') || '';
      return values.length === 10 && /^\d$/.test(digit) && src && { values, digit, src };
    });
    assert.ok(view.values.every((v) => /^\d\.\d\d$/.test(v)), `every bar has its number: ${view.values}`);
    await outputsApart(page, '#prediction-bars .bars'); // (a later prediction of the drawing may have come meanwhile)
    const shown = view.values.map(Number);
    assert.equal(shown[Number(view.digit)], Math.max(...shown), 'the predicted digit has the highest output shown');
    assert.match(view.src, /^data:image\/png;base64,iVBOR/);
    assert.match(await page.textContent('#predicted-text'), /confidence/);
    // Confidence is the margin of the top output over the next: said, with the two outputs.
    const now = await page.evaluate(() => ({ // one reading: a later prediction may come
      note: document.querySelector('#confidence-note').textContent,
      digit: document.querySelector('#predicted-digit').textContent,
      values: [...document.querySelectorAll('#prediction-bars .bar-value')].map((e) => e.textContent),
    }));
    const [, top, topValue, next, nextValue] = now.note.match(/margin of (\d) \((\d\.\d\d)\) over the next digit, (\d) \((\d\.\d\d)\)/) ?? [];
    assert.ok(top, `the note says what confidence is: ${now.note}`);
    assert.deepEqual([top, now.values[Number(top)], now.values[Number(next)]], [now.digit, topValue, nextValue]);
    assert.match(await page.getAttribute('#predicted-text', 'title'), /how much more the top output fires than the next/);

    // At most 10 predictions a second: requests at least 100 ms apart.
    const starts = await page.evaluate(() => performance.getEntriesByType('resource')
      .filter((e) => e.name.endsWith('/predict')).map((e) => e.startTime));
    for (let i = 1; i < starts.length; i++) {
      assert.ok(starts[i] - starts[i - 1] >= 95, `predictions ${starts[i] - starts[i - 1]} ms apart`);
    }

    // An image file, sent as raw PNG bytes: the drawing itself.
    const png = Buffer.from((await page.evaluate(() => document.querySelector('#pad').toDataURL('image/png'))).split(',')[1], 'base64');
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#pad-file-button')]);
    // The file's request, not a late one of the drawing (throttled, JSON).
    const fromFile = page.waitForResponse((r) => r.url().endsWith('/predict') && r.request().headers()['content-type'] === 'image/png');
    await chooser.setFiles({ name: 'seven.png', mimeType: 'image/png', buffer: png });
    const fileRes = await fromFile;
    assert.equal(fileRes.status(), 200);
    assert.equal(await fileRes.request().headerValue('content-type'), 'image/png');
    await page.waitForFunction(() => document.querySelector('#prediction-meta').textContent.includes('seven.png'));

    await page.click('#pad-clear');
    assert.ok(await page.isHidden('#prediction-body'));
    assert.ok(await page.isVisible('#pad-hint'));
    const blank = await page.evaluate(() => {
      const c = document.querySelector('#pad');
      return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.every((v) => v === 0);
    });
    assert.ok(blank, 'Clear empties the pad');

    // Again, for the screenshot.
    const again = page.waitForResponse((r) => r.url().endsWith('/predict'));
    await drawSeven(page);
    await again;
    await page.waitForSelector('#prediction-body:not([hidden])');
    clean(w);
  });

  test('evaluation: confusion matrix, per-class figures, confident mistakes, a cell\'s digits', async () => {
    const { page, w } = desk;
    const evaluated = page.waitForResponse((r) => r.url().endsWith(`/api/networks/${first}/evaluation`));
    await page.click('#eval-button');
    const ev = await (await evaluated).json();
    await page.waitForFunction(() => document.querySelectorAll('#cm .cm-cell').length === 100);
    const cells = await page.$$eval('#cm .cm-cell', (els) => els.map((e) => ({
      n: Number(e.textContent), a: Number(e.dataset.a), p: Number(e.dataset.p), label: e.getAttribute('aria-label'),
    })));
    assert.equal(cells.reduce((s, c) => s + c.n, 0), 10000, 'the 100 cells add up to the 10,000 test images');
    for (const c of cells) {
      assert.equal(c.n, ev.confusion_matrix[c.a][c.p]);
      assert.ok(c.label.startsWith(`Actual ${c.a}, predicted ${c.p}: ${c.n} test image`), c.label);
    }
    assert.match(await page.textContent('#eval-summary'), new RegExp(`${pct(ev.accuracy).replace('.', '\\.')} accuracy: ${ev.correct} of 10000`));
    assert.equal(await page.locator('#classes-rows tr').count(), 10);

    const mistakes = await page.$$eval('#mistakes li', (els) => els.map((e) => ({
      labels: e.querySelector('.digit-labels')?.textContent, conf: e.querySelector('.digit-conf')?.textContent,
      src: e.querySelector('img')?.getAttribute('src'),
    })));
    assert.equal(mistakes.length, 12);
    assert.match(await page.textContent('#confidence-hint'), /margin of the top output over the next/);
    mistakes.forEach((m, i) => {
      const want = ev.most_confident_mistakes[i];
      assert.equal(m.labels, `${want.actual_digit} → ${want.predicted_digit}`);
      assert.notEqual(want.actual_digit, want.predicted_digit);
      assert.match(m.conf, /^\d+%$/);
      assert.match(m.src, /^data:image\/png;base64,/);
    });

    // The most common confusion: its test digits.
    const worst = cells.filter((c) => c.a !== c.p).reduce((x, y) => (y.n > x.n ? y : x));
    const examples = page.waitForResponse((r) => r.url().includes(`/evaluation/examples?actual=${worst.a}&predicted=${worst.p}`));
    await page.click(`#cm .cm-cell[data-a="${worst.a}"][data-p="${worst.p}"]`);
    assert.equal((await examples).status(), 200);
    await page.waitForFunction((n) => document.querySelectorAll('#cell-grid li img').length === n, Math.min(12, worst.n));
    assert.match(await page.textContent('#cell-title'), new RegExp(`${worst.a}s read as ${worst.p} \\(${worst.n}\\)`));

    // Keyboard: arrows move within the matrix, Enter opens a cell.
    await page.focus(`#cm .cm-cell[data-a="${worst.a}"][data-p="${worst.p}"]`);
    await page.keyboard.press(worst.p < 9 ? 'ArrowRight' : 'ArrowLeft');
    const moved = await page.evaluate(() => [document.activeElement.dataset.a, document.activeElement.dataset.p].map(Number));
    assert.deepEqual(moved, [worst.a, worst.p < 9 ? worst.p + 1 : worst.p - 1]);
    clean(w);
  });

  test('history: every epoch of every job in one chart, jobs told apart', async () => {
    const { page, w } = desk;
    await page.waitForFunction(() => document.querySelectorAll('#history-chart .point').length === 2);
    assert.equal(await page.locator('#history-legend li').count(), 1);

    // A second job with other settings.
    await page.fill('#epochs', '2');
    await page.fill('#eta', '0.5');
    await page.selectOption('#cost', 'cross_entropy');
    await page.fill('#lambda', '1');
    await page.fill('#train-seed', '8');
    await page.click('#train-button');
    await jobStatus(page, 'completed');
    await page.waitForFunction(() => document.querySelectorAll('#history-chart .point').length === 4 &&
      document.querySelectorAll('#history-legend li').length === 2);
    const hist = await srv.api('GET', `/api/networks/${first}/history`);
    assert.deepEqual(hist.epochs.map((e) => e.epoch), [1, 2, 3, 4]);
    const series = await page.$$eval('#history-chart .series', (gs) => gs.map((g) => ({
      cls: g.getAttribute('class'), marker: g.querySelector('.point').tagName, n: g.querySelectorAll('.point').length,
    })));
    assert.deepEqual(series, [{ cls: 'series c0', marker: 'circle', n: 2 }, { cls: 'series c1', marker: 'rect', n: 2 }]);
    assert.match(await page.textContent('#history-legend'), /Job 1.*epochs 1–2.*Job 2.*epochs 3–4.*cross-entropy, λ 1/);
    // How each job ended.
    assert.deepEqual(await legendEnds(page), ['completed', 'completed']);
    // Re-evaluating was offered: the network changed.
    assert.match(await page.textContent('#eval-msg'), /out of date/);
    const evaluated = page.waitForResponse((r) => r.url().endsWith('/evaluation'));
    await page.click('#eval-button');
    await evaluated;
    await page.waitForFunction(() => document.querySelector('#eval-msg').hidden);
    // For the screenshot: the digits of the most common confusion.
    const worst = await page.$$eval('#cm .cm-cell.off', (els) => els.reduce((a, b) => (Number(b.textContent) > Number(a.textContent) ? b : a)).dataset);
    const examples = page.waitForResponse((r) => r.url().includes('/evaluation/examples?'));
    await page.click(`#cm .cm-cell[data-a="${worst.a}"][data-p="${worst.p}"]`);
    await examples;
    await page.waitForSelector('#cell-grid li img');
    if (await page.isVisible('#toast')) { // "Training … finished": dismissed by its button
      await page.click('#toast-close');
      assert.ok(await page.isHidden('#toast'));
    }
    await shot(page, 'desktop');
    clean(w);
  });

  test('examples: a correct and a misclassified test image, their ten outputs apart', async () => {
    const { page, w } = desk;
    for (const [box, kind] of [['#example-good', 'successful'], ['#example-bad', 'unsuccessful']]) {
      const res = page.waitForResponse((r) => r.url().endsWith(`/api/networks/${first}/${kind}_example`));
      await page.click(`${box} .example-head button`);
      const ex = await (await res).json();
      await page.waitForSelector(`${box} .bars`);
      const shown = await outputsApart(page, `${box} .bars`);
      assert.deepEqual(shown, ex.network_output.map((v) => Number(v.toFixed(2))), 'the values are the answer\'s');
      assert.equal(await page.locator(`${box} .bar-row.predicted`).count(), 1);
      const predicted = await page.$eval(`${box} .bar-row.predicted .bar-digit`, (e) => Number(e.textContent));
      assert.equal(predicted, ex.predicted_digit);
      assert.equal(await page.locator(`${box} .bar-row.actual`).count(), kind === 'successful' ? 0 : 1);
    }
    clean(w);
  });

  test('download the model and import it back', async () => {
    const { page, w } = desk;
    const before = await rows(page).count();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click(`#network-rows tr[data-id="${first}"] a[data-action=download]`),
    ]);
    assert.equal(download.suggestedFilename(), `${first}.npz`);
    const file = path.join(dir, 'downloaded.npz');
    await download.saveAs(file);
    const bytes = await readFile(file);
    assert.equal(bytes.subarray(0, 2).toString('latin1'), 'PK', 'a zip (.npz) file');

    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#import-button')]);
    const posted = page.waitForResponse((r) => r.url().endsWith('/api/networks/import'));
    await chooser.setFiles(file);
    const res = await posted;
    assert.equal(res.status(), 200);
    imported = (await res.json()).network_id;
    await page.waitForFunction((n) => document.querySelectorAll('#network-rows tr').length === n, before + 1);
    await page.waitForSelector(`#network-rows tr.selected[data-id="${imported}"]`);
    assert.match(await page.textContent('#toast'), /Imported downloaded\.npz/);
    assert.equal(await row(page, imported).locator('.arch-text').textContent(), '784 → 30 → 10');
    assert.equal(await row(page, imported).locator('.acc').textContent(), await row(page, first).locator('.acc').textContent());

    // A file that is not a model: the server's 400, shown to the user.
    w.allow(/\/api\/networks\/import$/, 400);
    const [bad] = await Promise.all([page.waitForEvent('filechooser'), page.click('#import-button')]);
    const refused = page.waitForResponse((r) => r.url().endsWith('/api/networks/import'));
    await bad.setFiles({ name: 'notes.npz', mimeType: 'application/octet-stream', buffer: Buffer.from('not a model') });
    assert.equal((await refused).status(), 400);
    await page.waitForSelector('#toast.error');
    assert.match(await page.textContent('#toast'), /Could not import notes\.npz: ./);
    assert.equal(await rows(page).count(), before + 1);

    // Keyboard: a row is selected with Enter.
    await row(page, first).focus();
    await page.keyboard.press('Enter');
    await page.waitForSelector(`#network-rows tr.selected[data-id="${first}"]`);
    clean(w);
  });

  test('presets: Nielsen ch. 3 (network2) fills the forms, and the requests carry it', async () => {
    const { page, w } = desk;
    const fields = () => page.evaluate(() => Object.fromEntries(['init', 'cost', 'eta', 'lambda', 'train-preset']
      .map((id) => [id, document.getElementById(id).value])
      .concat([['recipe', document.querySelector('input[name=preset]:checked')?.value ?? '']])));
    assert.match(await page.textContent('.presets'), /Nielsen ch\. 1 \(network\.py\).*Nielsen ch\. 3 \(network2\): scaled init, cross-entropy, η 0\.5, λ 5 — trains reliably.*Why: /s);

    await page.check('input[name=preset][value=ch3]');
    assert.deepEqual(await fields(),
      { init: 'scaled', cost: 'cross_entropy', eta: '0.5', lambda: '5', 'train-preset': 'ch3', recipe: 'ch3' });
    await page.fill('#layer-sizes', '784,30,10');
    await page.fill('#create-seed', '11');
    const created = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/api/networks'));
    await page.click('#create-form button[type=submit]');
    const res = await created;
    assert.deepEqual(res.request().postDataJSON(), { layer_sizes: [784, 30, 10], init: 'scaled', seed: 11 });
    const id = (presetNet = (await res.json()).network_id);
    await page.waitForSelector(`#network-rows tr.selected[data-id="${id}"]`);

    await page.fill('#epochs', '1');
    await page.fill('#batch', '10');
    await page.fill('#train-seed', '11');
    const started = page.waitForRequest((r) => r.url().endsWith(`/api/networks/${id}/train`));
    await page.click('#train-button');
    assert.deepEqual((await started).postDataJSON(),
      { epochs: 1, mini_batch_size: 10, learning_rate: 0.5, cost: 'cross_entropy', lambda: 5, seed: 11 });
    await jobStatus(page, 'completed');
    assert.match(await page.textContent('#job-params'), /η 0\.5 · mini-batch 10 · cross-entropy cost · λ 5 · seed 11/);

    // The training card's preset: ch. 1's training settings, the weights' choice left alone.
    await page.selectOption('#train-preset', 'ch1');
    assert.deepEqual(await fields(),
      { init: 'scaled', cost: 'quadratic', eta: '3.0', lambda: '0', 'train-preset': 'ch1', recipe: '' });
    // Any other value is "custom".
    await page.fill('#eta', '0.25');
    assert.equal(await page.inputValue('#train-preset'), '');
    assert.equal(await page.$eval('#train-preset', (s) => s.selectedOptions[0].textContent), 'custom');
    await page.selectOption('#init', 'normal');
    await page.fill('#eta', '3');
    assert.equal((await fields()).recipe, 'ch1', 'ch. 1\'s values are ch. 1 again');

    await row(page, first).click(); // as the next test expects
    await page.waitForSelector(`#network-rows tr.selected[data-id="${first}"]`);
    clean(w);
  });

  test('layers: the ch. 6 preset, shapes and weights as you edit, what does not chain refused before it is sent, a conv network trained an epoch, its kernels, a drawn digit, an expanded job', async () => {
    const { page, w } = desk;
    const outs = () => page.$$eval('#layer-list .layer-out', (o) => o.map((x) => x.textContent));
    const layerRow = (n) => `#layer-list > li:nth-child(${n})`;
    let posted = 0;
    const count = (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/networks')) posted++; };
    page.on('request', count);
    try {
      await layersNetwork();
    } finally {
      // The next tests build with layer sizes, as before.
      page.off('request', count);
      await page.selectOption('#build', 'sizes');
    }
    clean(w);

    async function layersNetwork() {
      await page.check('input[name=preset][value=ch6]');
      await page.waitForSelector(`${layerRow(6)} .layer-out`);
      assert.deepEqual(await outs(), ['→ 24×24×20 · 520 weights', '→ 12×12×20', '→ 8×8×40 · 20,040 weights', '→ 4×4×40',
        '→ 100 · 64,100 weights', '→ 10 · 1,010 weights']);
      assert.equal(await page.textContent('#layers-summary'),
        '6 layers · 85,670 weights and biases · 1,633,000 multiply-adds and 17,710 activations per image');
      assert.deepEqual(await page.evaluate(() => ['init', 'eta', 'lambda', 'epochs', 'train-preset', 'build'].map((id) => document.getElementById(id).value)),
        ['scaled', '0.03', '0.1', '60', 'ch6', 'layers']);
      assert.ok(await page.isHidden('#layer-sizes'));
      assert.ok(await page.isEnabled('#create-button'));

      // A kernel larger than its input: refused at once, with the server's words, and not sent.
      await page.fill(`${layerRow(3)} [data-f=size]`, '13');
      assert.equal(await page.textContent('#layers-error'), 'layers[2] (conv 13×13) needs an input of at least 13×13, got 12×12×20');
      assert.equal(await page.getAttribute('#layers-error', 'role'), 'alert');
      assert.ok(await page.isDisabled('#create-button'));
      assert.equal(await page.getAttribute(`${layerRow(3)} [data-f=size]`, 'aria-invalid'), 'true');
      assert.deepEqual((await outs()).slice(1), ['→ 12×12×20', '✕ refused', '→ ?', '→ ?', '→ ?']);
      await page.press(`${layerRow(3)} [data-f=size]`, 'Enter'); // no implicit submission either
      // Pooling that does not divide, then the last layer's rule.
      await page.fill(`${layerRow(3)} [data-f=size]`, '5');
      await page.fill(`${layerRow(4)} [data-f=size]`, '3');
      assert.equal(await page.textContent('#layers-error'), 'layers[3] (pool 3×3) needs an input whose height and width 3 divides, got 8×8×40');
      await page.fill(`${layerRow(4)} [data-f=size]`, '2');
      assert.ok(await page.isHidden('#layers-error'));
      await page.click(`${layerRow(6)} button[data-act=remove]`);
      assert.equal(await page.textContent('#layers-error'),
        'layers[4] (dense 100) is the last layer: it must be softmax 10, or dense 10 with the sigmoid activation');
      assert.ok(await page.isDisabled('#create-button'));
      await page.selectOption('#add-kind', 'softmax');
      await page.click('#add-layer');
      assert.ok(await page.isHidden('#layers-error'));
      assert.equal(posted, 0, 'nothing was sent while the layers did not chain');

      // A smaller conv net for a short epoch: the second conv and pool removed,
      // fewer filters and neurons; the pool moved up and back.
      await page.click(`${layerRow(3)} button[data-act=remove]`);
      await page.click(`${layerRow(3)} button[data-act=remove]`);
      await page.fill(`${layerRow(1)} [data-f=filters]`, '8');
      await page.fill(`${layerRow(3)} [data-f=size]`, '30');
      await page.click(`${layerRow(2)} button[data-act=up]`);
      assert.deepEqual(await outs(), ['→ 14×14×1', '→ 10×10×8 · 208 weights', '→ 30 · 24,030 weights', '→ 10 · 310 weights']);
      await page.click(`${layerRow(1)} button[data-act=down]`); // and back
      assert.deepEqual(await outs(), ['→ 24×24×8 · 208 weights', '→ 12×12×8', '→ 30 · 34,590 weights', '→ 10 · 310 weights']);
      assert.match(await page.textContent('#layers-summary'), /^4 layers · 35,108 weights and biases/);

      await page.fill('#create-name', 'small conv');
      await page.fill('#create-seed', '5');
      const created = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/api/networks'));
      await page.click('#create-button');
      const res = await created;
      assert.deepEqual(res.request().postDataJSON(), {
        layers: [{ type: 'conv', filters: 8, size: 5, activation: 'relu' }, { type: 'pool', size: 2 },
          { type: 'dense', size: 30, activation: 'relu', dropout: 0.5 }, { type: 'softmax', size: 10 }],
        init: 'scaled', seed: 5, name: 'small conv',
      });
      const made = await res.json();
      assert.equal(res.status(), 200, JSON.stringify(made));
      const id = made.network_id;
      assert.deepEqual(made.architecture, [784, 4608, 1152, 30, 10]);
      await page.waitForSelector(`#network-rows tr.selected[data-id="${id}"]`);
      await page.waitForFunction((i) => document.querySelector(`#network-rows tr[data-id="${i}"] .arch-text`).textContent ===
        'conv 8×5×5 relu · pool 2 · dense 30 relu (dropout 0.5) · softmax 10', id);
      assert.equal(await page.getAttribute(`#network-rows tr[data-id="${id}"] .arch-text`, 'title'), 'Flattened sizes: 784 → 4608 → 1152 → 30 → 10');

      // The training form fits a softmax relu network; its kernels show.
      assert.ok(await page.isVisible('#expand'));
      assert.ok(await page.isDisabled('#cost'));
      assert.equal(await page.inputValue('#cost'), 'log_likelihood');
      await page.waitForFunction(() => document.querySelectorAll('#kernels-grid canvas').length === 8 &&
        document.querySelector('#kernels-grid').dataset.epochs === '0');
      const tiles = () => page.$$eval('#kernels-grid canvas', (cs) => cs.map((c) => c.toDataURL()));
      const before = await tiles();
      assert.equal(new Set(before).size, 8, 'eight different kernels');
      assert.match(await page.getAttribute('#kernels-grid', 'aria-label'), /^8 kernels of 5×5 of the first convolutional layer after 0 epochs/);
      assert.match(await page.textContent('#kernels-note'), /^8 filters of 5×5, after 0 epochs: orange positive, blue negative, grey 0/);

      await page.fill('#epochs', '1');
      await page.fill('#batch', '10');
      await page.fill('#train-seed', '5');
      const started = page.waitForRequest((r) => r.url().endsWith(`/api/networks/${id}/train`));
      await page.click('#train-button');
      assert.deepEqual((await started).postDataJSON(), { epochs: 1, mini_batch_size: 10, learning_rate: 0.03, lambda: 0.1, seed: 5 });
      await jobStatus(page, 'completed');
      await page.waitForFunction(() => document.querySelector('#kernels-grid').dataset.epochs === '1');
      const after = await tiles();
      assert.equal(after.length, 8);
      assert.ok(after.some((u, i) => u !== before[i]), 'the kernels changed with the epoch');
      assert.match(await page.textContent('#job-params'), /η 0\.03 · mini-batch 10 · log-likelihood cost · λ 0\.1 · seed 5/);
      await shot(page, 'desktop-layers');

      // It reads a drawn digit, as every network does.
      const predicted = page.waitForResponse((r) => r.url().endsWith(`/api/networks/${id}/predict`));
      await drawSeven(page);
      const pr = await predicted;
      assert.equal(pr.status(), 200);
      const out = (await pr.json()).network_output;
      assert.equal(out.length, 10);
      assert.ok(Math.abs(out.flat().reduce((a, b) => a + b, 0) - 1) < 1e-6, `a softmax's outputs sum to 1: ${out}`);
      await page.waitForFunction(() => /^\d$/.test(document.querySelector('#predicted-digit').textContent));

      // Expanded training (250,000 images an epoch): the request carries it
      // and the job says so; three epochs, cancelled at once.
      await page.check('#expand');
      await page.fill('#epochs', '3');
      const expanded = page.waitForRequest((r) => r.url().endsWith(`/api/networks/${id}/train`));
      await page.click('#train-button');
      assert.deepEqual((await expanded).postDataJSON(), { epochs: 3, mini_batch_size: 10, learning_rate: 0.03, lambda: 0.1, seed: 5, expand: true });
      await page.waitForFunction(() => /η 0\.03 · mini-batch 10 · log-likelihood cost · expanded ×5 · λ 0\.1 · seed 5/.test(document.querySelector('#job-params').textContent));
      const stopped = page.waitForResponse((r) => /\/api\/training\/[^/]+\/cancel$/.test(r.url()));
      await page.click('#cancel-button');
      assert.equal((await stopped).status(), 200);
      await jobStatus(page, 'cancelled');
      await page.uncheck('#expand');

      // Back to a layer_sizes network: no expand, no kernels, the cost to choose.
      await row(page, first).click();
      await page.waitForSelector(`#network-rows tr.selected[data-id="${first}"]`);
      assert.ok(await page.isHidden('#expand-field'));
      assert.ok(await page.isHidden('#kernels-card'));
      assert.ok(await page.isEnabled('#cost'));
    }
  });

  test('history: an older answer that comes late does not replace a newer one', async () => {
    const { page, w } = desk;
    await row(page, presetNet).click();
    await page.waitForFunction(() => document.querySelectorAll('#history-chart .point').length === 1);
    // The first reading after the next epoch is held back until a newer one is shown.
    let release, delivered;
    const gate = new Promise((r) => (release = r));
    const heldDone = new Promise((r) => (delivered = r));
    let held = 0;
    const pattern = `**/api/networks/${presetNet}/history?**`;
    await page.route(pattern, async (route) => {
      const res = await route.fetch();
      const first = !held++;
      if (first) await gate;
      await route.fulfill({ response: res });
      if (first) delivered();
    });
    await srv.api('POST', `/api/networks/${presetNet}/train`, { epochs: 2, learning_rate: 0.5, cost: 'cross_entropy', lambda: 5, seed: 12 });
    await jobStatus(page, 'completed');
    await page.waitForFunction(() => document.querySelectorAll('#history-chart .point').length === 3);
    assert.ok(held >= 2, `a newer reading came after the held one (${held})`);
    release();
    await heldDone; // the held answer (2 epochs) is delivered; the page has a moment to take it
    await page.evaluate(() => new Promise((r) => setTimeout(r, 300)));
    assert.equal(await points(page, '#history-chart'), 3, 'the newest history stays');
    await page.unroute(pattern);
    await row(page, first).click(); // as the next test expects
    await page.waitForSelector(`#network-rows tr.selected[data-id="${first}"]`);
    clean(w);
  });

  test('a long job: progress inside epochs, the list follows, late joiners, cancel', async () => {
    const { page, w } = desk;
    await page.fill('#layer-sizes', '784,600,10'); // epochs of about 2 s: training_progress is sent after 1 s
    await page.selectOption('#init', 'scaled');
    await page.fill('#create-seed', '3');
    await page.click('#create-form button[type=submit]');
    await page.waitForFunction((id) => {
      const sel = document.querySelector('#network-rows tr.selected');
      return sel && sel.dataset.id !== id;
    }, first);
    const long = await page.getAttribute('#network-rows tr.selected', 'data-id');
    assert.equal(await row(page, long).locator('.acc').textContent(), '—');

    await page.fill('#epochs', '20');
    await page.fill('#eta', '0.5');
    await page.selectOption('#cost', 'cross_entropy');
    await page.fill('#lambda', '0');
    await page.fill('#train-seed', '3');
    const started = page.waitForResponse((r) => r.url().endsWith(`/api/networks/${long}/train`));
    await page.click('#train-button');
    const job = (await (await started).json()).job_id;

    // training_progress: the batch within the first epoch, before it ends.
    // Inside epoch 1 (no point yet) the bar has moved: only training_progress says so.
    await page.waitForFunction(() => {
      const now = Number(document.querySelector('#progress').getAttribute('aria-valuenow'));
      return /Epoch 1 of 20 · batch \d+ of 5000/.test(document.querySelector('#job-text').textContent) &&
        document.querySelectorAll('#chart .series.c0 .point').length === 0 && now > 0 && now < 5;
    });
    assert.ok(await page.isVisible('#cancel-button'));

    // One figure, one rounding: after every change of the bar's label or of
    // the list, the row says "training N%" for the N% of the label.
    await page.evaluate((id) => {
      const seen = (window.progressSeen = []);
      const read = () => {
        const r = document.querySelector(`#network-rows tr[data-id="${id}"]`);
        seen.push({
          label: document.querySelector('#progress-label').textContent,
          now: document.querySelector('#progress').getAttribute('aria-valuenow'),
          row: r?.querySelector('.col-status')?.textContent, inline: r?.querySelector('.status-inline')?.textContent,
        });
      };
      const o = (window.progressObserver = new MutationObserver(read));
      for (const el of [document.querySelector('#progress-label'), document.querySelector('#network-rows')]) {
        o.observe(el, { childList: true, characterData: true, subtree: true });
      }
    }, long);
    await page.waitForFunction(() => new Set(window.progressSeen.map((x) => x.label)).size >= 4);
    const seen = await page.evaluate(() => {
      window.progressObserver.disconnect();
      return window.progressSeen;
    });
    for (const x of seen) {
      assert.match(x.label, /^\d+%$/, 'whole percents');
      assert.equal(x.now, x.label.slice(0, -1), 'aria-valuenow is the number shown');
      assert.equal(x.row, `training ${x.label}`, 'the row shows the bar\'s figure');
      assert.equal(x.inline, x.row);
    }

    // Two epochs: the table row shows the accuracy while the job runs.
    await page.waitForFunction(() => document.querySelectorAll('#chart .series.c0 .point').length >= 2);
    await page.waitForFunction((id) => {
      const r = document.querySelector(`#network-rows tr[data-id="${id}"]`);
      return r && /^\d+\.\d\d%$/.test(r.querySelector('.acc').textContent) && /training/.test(r.textContent);
    }, long);

    // A reload finds the job again (localStorage) and draws its epochs at once.
    await w.navigate(() => page.reload());
    await page.waitForSelector('body[data-ready]');
    assert.equal(await page.getAttribute('#network-rows tr.selected', 'data-id'), long);
    const atOnce = await points(page, '#chart .series.c0');
    assert.ok(atOnce >= 2, `after a reload the chart has ${atOnce} points at once`);
    await page.waitForSelector('#live-status.ok');
    await page.waitForFunction((n) => document.querySelectorAll('#chart .series.c0 .point').length > n, atOnce);

    // Another browser, without this one's memory, picks the job up from its events.
    const other = await open('other', DESKTOP);
    extra.push(other.context);
    await other.page.goto(srv.url + '/');
    await loaded(other.page);
    await other.page.waitForFunction((id) =>
      /training \d+%/.test(document.querySelector(`#network-rows tr[data-id="${id}"]`)?.textContent ?? ''), long);
    await row(other.page, long).click();
    await other.page.waitForFunction(() => document.querySelectorAll('#chart .series.c0 .point').length >= 2);
    assert.ok(await other.page.isVisible('#cancel-button'));

    const cancelled = page.waitForResponse((r) => r.url().endsWith(`/api/training/${job}/cancel`));
    await page.click('#cancel-button');
    assert.equal((await cancelled).status(), 200);
    await jobStatus(page, 'cancelled');
    await jobStatus(other.page, 'cancelled'); // from the training_error event
    assert.ok(await page.isHidden('#cancel-button'));
    assert.match(await other.page.textContent('#job-text'), /Training cancelled/);
    assert.equal((await srv.api('GET', `/api/training/${job}`)).status, 'cancelled');
    // The history says the job was cancelled, in both browsers.
    for (const p of [page, other.page]) {
      await p.waitForFunction(() => document.querySelector('#history-legend li .legend-end')?.textContent === 'cancelled');
      assert.deepEqual(await legendEnds(p), ['cancelled']);
    }
    await shot(other.page, 'desktop-cancelled');
    clean(w);
    other.w.closing();
    clean(other.w);
  });

  test('a phone: no sideways scrolling, the table and a toast fit, readable charts', async () => {
    const phone = await open('phone', PHONE, { isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    extra.push(phone.context);
    const { page, w } = phone;
    await page.goto(srv.url + '/');
    await loaded(page);
    assert.ok(await rows(page).count() >= 3);
    await row(page, first).click();
    await page.waitForFunction(() => document.querySelectorAll('#history-chart .point').length === 4);
    // This browser never saw the jobs run: it asks the server how they ended.
    await page.waitForFunction(() => [...document.querySelectorAll('#history-legend .legend-end')].map((e) => e.textContent).join() === 'completed,completed');

    // Drawing with a finger: touch events become pointer events, and the
    // pad keeps the page from scrolling under the finger (touch-action: none).
    await page.locator('#pad').scrollIntoViewIfNeeded();
    const box = await page.locator('#pad').boundingBox();
    const scrollY = await page.evaluate(() => window.scrollY);
    const at = (fx, fy) => ({ x: box.x + box.width * fx, y: box.y + box.height * fy });
    const cdp = await page.context().newCDPSession(page);
    const predicted = page.waitForResponse((r) => r.url().endsWith(`/api/networks/${first}/predict`));
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [at(0.5, 0.15)] });
    for (let i = 1; i <= 10; i++) {
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [at(0.5, 0.15 + 0.07 * i)] });
    }
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    assert.equal((await predicted).status(), 200);
    await page.waitForSelector('#prediction-body:not([hidden])');
    assert.equal(await page.evaluate(() => window.scrollY), scrollY, 'drawing does not scroll the page');

    // A long error toast.
    w.allow(/\/api\/networks\/import$/, 400);
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#import-button')]);
    const refused = page.waitForResponse((r) => r.url().endsWith('/api/networks/import'));
    await chooser.setFiles({ name: 'a-file-with-a-rather-long-name-that-is-not-a-model.npz', mimeType: 'application/octet-stream', buffer: Buffer.from('nope') });
    await refused;
    await page.waitForSelector('#toast.error');

    const m = await page.evaluate(() => {
      const se = document.scrollingElement;
      const wrap = document.querySelector('.table-wrap');
      const toast = document.querySelector('#toast').getBoundingClientRect();
      const tick = document.querySelector('#history-chart .grid text').getBoundingClientRect();
      const lastButtons = [...document.querySelectorAll('#network-rows .row-actions button')].map((b) => b.getBoundingClientRect().right);
      return {
        scrollWidth: se.scrollWidth, clientWidth: se.clientWidth,
        wrapScroll: wrap.scrollWidth, wrapClient: wrap.clientWidth,
        toast: [toast.left, toast.right], tickHeight: tick.height, lastButtons,
      };
    });
    assert.ok(m.scrollWidth <= m.clientWidth, `the page scrolls sideways: ${m.scrollWidth} > ${m.clientWidth}`);
    assert.ok(m.wrapScroll <= m.wrapClient, `the table is clipped: ${m.wrapScroll} > ${m.wrapClient}`);
    assert.ok(m.toast[0] >= 0 && m.toast[1] <= PHONE.width, `the toast is cut off: ${m.toast}`);
    assert.ok(m.lastButtons.every((r) => r <= PHONE.width), `row buttons off screen: ${m.lastButtons}`);
    assert.ok(m.tickHeight >= 11, `chart labels are ${m.tickHeight} px high`);
    await shot(page, 'phone');
    await page.click('#toast-close');

    // The example cards' outputs, at a phone's width.
    await page.click('#example-bad .example-head button');
    await page.waitForSelector('#example-bad .bars');
    await outputsApart(page, '#example-bad .bars');

    // "Training … finished" comes while the user watches the output bars:
    // wherever the bars are on the screen, the toast does not cover them.
    const boxes = () => page.evaluate(() => {
      const t = document.querySelector('#toast').getBoundingClientRect();
      const b = document.querySelector('#prediction-bars').getBoundingClientRect();
      const x = Math.min(t.right, b.right) - Math.max(t.left, b.left);
      const y = Math.min(t.bottom, b.bottom) - Math.max(t.top, b.top);
      return { overlap: x > 0 && y > 0, toast: [t.left, t.top, t.right, t.bottom].map(Math.round),
        bars: [b.left, b.top, b.right, b.bottom].map(Math.round), height: innerHeight, width: innerWidth };
    });
    const barsAt = (block) => page.$eval('#prediction-bars', (e, block) => e.scrollIntoView({ block }), block);
    const settled = () => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await barsAt('end');
    await srv.api('POST', `/api/networks/${first}/train`, { epochs: 1, learning_rate: 0.5, cost: 'cross_entropy', seed: 9 });
    await page.waitForSelector('#toast.ok:not([hidden])');
    assert.match(await page.textContent('#toast-text'), /^Training of \w+ finished/);
    for (const [i, block] of ['end', 'start', 'center', 'end'].entries()) {
      await barsAt(block);
      await settled();
      const o = await boxes();
      assert.ok(!o.overlap, `bars scrolled to the ${block}: the toast ${o.toast} covers the output bars ${o.bars}`);
      assert.ok(o.toast[0] >= 0 && o.toast[1] >= 0 && o.toast[2] <= o.width && o.toast[3] <= o.height, `the toast ${o.toast} is off screen`);
      if (i === 0) await shot(page, 'phone-toast', false); // the window as it is, the toast where it shows
    }

    // The layer editor at a phone's width: the ch. 6 preset's six layers,
    // every field and button of them on screen, nothing scrolling sideways.
    await page.check('input[name=preset][value=ch6]');
    await page.waitForSelector('#layer-list > li:nth-child(6) .layer-out');
    await page.locator('#layer-list').scrollIntoViewIfNeeded();
    const ed = await page.evaluate(() => {
      const se = document.scrollingElement;
      const parts = [...document.querySelectorAll('#layer-list input, #layer-list select, #layer-list button, #layer-list .layer-out, #add-kind, #add-layer, #layers-summary')];
      return {
        scrollWidth: se.scrollWidth, clientWidth: se.clientWidth, n: parts.length,
        off: parts.filter((e) => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > innerWidth; })
          .map((e) => `${e.tagName.toLowerCase()}${e.dataset.f ? '[' + e.dataset.f + ']' : ''}${e.id ? '#' + e.id : ''}`),
      };
    });
    assert.ok(ed.n >= 6 * 3, `only ${ed.n} parts of the editor found`);
    assert.ok(ed.scrollWidth <= ed.clientWidth, `with the layer editor the page scrolls sideways: ${ed.scrollWidth} > ${ed.clientWidth}`);
    assert.deepEqual(ed.off, [], 'parts of the layer editor off screen');
    await shot(page, 'phone-layers', false); // the editor, as the phone shows it
    clean(w);
  });

  test('a network the server had unloaded: its row says "in memory" once used, as the header counts', async () => {
    // A server that holds one [784, 30, 10] at a time: making b unloads a.
    const small = await Server.start({ env: { MAX_PARAMS_IN_MEMORY: '30000' } });
    servers.push(small);
    const a = (await small.api('POST', '/api/networks', { seed: 1 })).network_id;
    const b = (await small.api('POST', '/api/networks', { seed: 2 })).network_id;
    const listed = async () => Object.fromEntries((await small.api('GET', '/api/networks')).networks.map((n) => [n.network_id, n.status]));
    assert.deepEqual(await listed(), { [a]: 'saved', [b]: 'in_memory' });

    const tab = await open('unloaded', DESKTOP);
    extra.push(tab.context);
    const { page, w } = tab;
    await page.goto(small.url + '/');
    await loaded(page);
    const view = () => page.evaluate(([a, b]) => {
      const badge = (id) => document.querySelector(`#network-rows tr[data-id="${id}"] .col-status .badge`)?.textContent;
      return { a: badge(a), b: badge(b), header: document.querySelector('#api-counts').textContent };
    }, [a, b]);
    await page.waitForFunction(() => /network/.test(document.querySelector('#api-counts').textContent));
    assert.deepEqual(await view(), { a: 'saved', b: 'in memory', header: '1 network in memory · 0 training jobs' });

    // Using a: the server loads it (and unloads b); the rows follow the header.
    await row(page, a).click();
    const predicted = page.waitForResponse((r) => r.url().endsWith(`/api/networks/${a}/predict`));
    await drawSeven(page);
    assert.equal((await predicted).status(), 200);
    await page.waitForSelector('#prediction-body:not([hidden])');
    assert.deepEqual(await listed(), { [a]: 'in_memory', [b]: 'saved' });
    // Soon after the answer, not at the list's next periodic reading (every 15 s).
    await page.waitForFunction(([a, b]) => {
      const badge = (id) => document.querySelector(`#network-rows tr[data-id="${id}"] .col-status .badge`)?.textContent;
      return badge(a) === 'in memory' && badge(b) === 'saved';
    }, [a, b], { timeout: 5000 });
    assert.deepEqual(await view(), { a: 'in memory', b: 'saved', header: '1 network in memory · 0 training jobs' });
    clean(w);
    w.closing();
  });

  test('history legend, jobs in memory (JOBS_DB=off): a job stopped by a server shutdown says so; a job the server forgot says nothing', async () => {
    let rs = await Server.start({ env: { JOBS_DB: 'off' } });
    servers.push(rs);
    const net = (await rs.api('POST', '/api/networks', { seed: 5 })).network_id;
    const tab = await open('restart', DESKTOP);
    extra.push(tab.context);
    const { page, w } = tab;
    w.allow(/\/(api|socket\.io)\//); // the server goes away for a moment: requests fail meanwhile
    await page.goto(rs.url + '/');
    await loaded(page);
    await row(page, net).click();
    await page.fill('#epochs', '500');
    await page.fill('#eta', '0.5');
    await page.selectOption('#cost', 'cross_entropy');
    await page.fill('#lambda', '0');
    await page.fill('#train-seed', '5');
    await page.click('#train-button');
    await page.waitForFunction(() => document.querySelectorAll('#chart .series.c0 .point').length >= 1);

    const before = rs;
    rs = await rs.restart(); // SIGTERM: running jobs end, "the server is shutting down"
    servers[servers.indexOf(before)] = rs;
    await jobStatus(page, 'failed');
    assert.match(await page.textContent('#job-text'), /the server is shutting down/);
    // Back: the page reads the history again; the legend says how the job ended.
    const stopped = () => page.waitForFunction(() =>
      document.querySelector('#history-legend li .legend-end')?.textContent === 'stopped: the server shut down');
    await stopped();
    // The server forgot the job (a restart): the page remembers what it heard.
    await w.navigate(() => page.reload());
    await loaded(page);
    await stopped();

    // A browser that never heard of the job: the server no longer knows it
    // (404), so the legend says nothing rather than guess.
    const late = await open('late', DESKTOP);
    extra.push(late.context);
    late.w.allow(/\/api\/training\//, 404);
    await late.page.goto(rs.url + '/');
    await loaded(late.page);
    const asked = late.page.waitForResponse((r) => /\/api\/training\//.test(r.url()));
    await row(late.page, net).click();
    assert.equal((await asked).status(), 404);
    await late.page.waitForFunction(() => document.querySelectorAll('#history-legend li').length === 1);
    assert.deepEqual(await legendEnds(late.page), ['']);
    clean(late.w);
    late.w.closing();
    w.closing();
  });

  test('a job interrupted by a restart: the page says so, follows it when it resumes, and the jobs panel cancels it', async () => {
    let rs = await Server.start(); // jobs in MODELS_DIR/jobs.db: they survive the restart
    servers.push(rs);
    const net = (await rs.api('POST', '/api/networks', { seed: 6 })).network_id;
    const tab = await open('resume', DESKTOP);
    extra.push(tab.context);
    const { page, w } = tab;
    w.allow(/\/(api|socket\.io)\//); // the server goes away for a moment: requests fail meanwhile
    await page.goto(rs.url + '/');
    await loaded(page);
    await row(page, net).click();
    await page.fill('#epochs', '500');
    await page.fill('#train-seed', '6');
    await page.click('#train-button');
    await page.waitForFunction(() => document.querySelectorAll('#chart .series.c0 .point').length >= 1);
    const job = await page.getAttribute('#job-rows tr', 'data-id');
    await page.waitForSelector(`#job-rows tr[data-id="${job}"] .badge.training`);
    // What the training card's badge says, every change of it.
    await page.evaluate(() => {
      window.badges = [];
      const b = document.getElementById('job-status');
      new MutationObserver(() => window.badges.push(b.textContent)).observe(b, { childList: true, characterData: true, subtree: true });
    });

    const before = rs;
    rs = await rs.restart(); // SIGTERM: the job is interrupted, then resumes
    servers[servers.indexOf(before)] = rs;
    await page.waitForFunction(() => window.badges.includes('interrupted'));
    // Back: the job trains on, from where it was; the page follows it.
    const seen = await points(page, '#chart .series.c0');
    await page.waitForFunction((n) => document.querySelectorAll('#chart .series.c0 .point').length > n, seen);
    await jobStatus(page, 'training');
    assert.doesNotMatch(await page.textContent('#job-text'), /shutting down/);
    const resumed = await rs.api('GET', `/api/training/${job}`);
    assert.equal(resumed.status, 'training');
    assert.deepEqual(resumed.history.map((e) => e.epoch), resumed.history.map((_, i) => i + 1), 'epochs once each');

    // The jobs panel lists it running, and cancels it.
    const listed = page.locator(`#job-rows tr[data-id="${job}"]`);
    await listed.locator('.badge.training').waitFor();
    await listed.locator('button[data-action=cancel-job]').click();
    await listed.locator('.badge.cancelled').waitFor();
    await jobStatus(page, 'cancelled');
    assert.ok(await listed.locator('button[data-action=cancel-job]').isHidden(), 'no Cancel for an ended job');
    assert.equal((await rs.api('GET', `/api/training/${job}`)).status, 'cancelled');
    w.closing();
  });

  test('ownership on: the page keeps and sends the owner token; another browser cannot delete, and claims with the token', async () => {
    const owned = await Server.start({ env: { OWNERSHIP: 'on', ADMIN_TOKEN: 'the-admin-token-of-the-browser-test' } });
    servers.push(owned);
    const tab = await open('owner', DESKTOP);
    extra.push(tab.context);
    const { page, w } = tab;
    await page.goto(owned.url + '/');
    await loaded(page);

    // Create: the answer's owner token is kept, and the row says "yours".
    await page.fill('#layer-sizes', '784,10');
    await page.fill('#create-seed', '3');
    const created = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/api/networks'));
    await page.click('#create-form button[type=submit]');
    const { network_id: id, owner_token: token } = await (await created).json();
    assert.equal(typeof token, 'string');
    assert.equal(token.length, 43);
    assert.equal(await page.evaluate((id) => JSON.parse(localStorage.getItem('nnserver.owners'))[id], id), token);
    await page.waitForSelector(`#network-rows tr[data-id="${id}"].selected .badge.mine:not([hidden])`);

    // Training sends it, and the server lets it through.
    await page.fill('#epochs', '1');
    await page.fill('#train-seed', '3');
    const started = page.waitForResponse((r) => r.url().endsWith(`/api/networks/${id}/train`));
    await page.click('#train-button');
    const answer = await started;
    assert.equal(answer.request().headers()['x-owner-token'], token, 'the train request carries the owner token');
    assert.equal(answer.status(), 200);
    await jobStatus(page, 'completed');
    clean(w);

    // Another browser (its own localStorage): not yours, and deleting is refused.
    const other = await open('not-owner', DESKTOP);
    extra.push(other.context);
    other.w.allow(new RegExp(`/api/networks/${id}$`), 401);
    const p2 = other.page;
    await p2.goto(owned.url + '/');
    await loaded(p2);
    await row(p2, id).waitFor();
    assert.ok(await p2.isHidden(`#network-rows tr[data-id="${id}"] .badge.mine`), 'another browser does not call it yours');
    const refused = p2.waitForResponse((r) => r.request().method() === 'DELETE');
    await row(p2, id).locator('[data-action=delete]').click();
    assert.equal((await refused).status(), 401);
    await p2.waitForFunction(() => /owner token/.test(document.querySelector('#toast')?.textContent ?? ''));
    assert.equal((await owned.api('GET', '/api/networks')).networks.length, 1, 'the network is still there');

    // Claim: a wrong token is refused; the right one makes it yours here too.
    await row(p2, id).click();
    await p2.click('#claim summary');
    await p2.fill('#claim-token', 'not-the-owner-token');
    await p2.click('#claim-form button[type=submit]');
    await p2.waitForFunction(() => /not the owner token/.test(document.querySelector('#claim-msg').textContent));
    await p2.fill('#claim-token', token);
    await p2.click('#claim-form button[type=submit]');
    await p2.waitForFunction(() => /is yours/.test(document.querySelector('#claim-msg').textContent));
    await p2.waitForSelector(`#network-rows tr[data-id="${id}"] .badge.mine:not([hidden])`);
    await shot(p2, 'ownership-claimed', false);

    const deleted = p2.waitForResponse((r) => r.request().method() === 'DELETE');
    await row(p2, id).locator('[data-action=delete]').click();
    const del = await deleted;
    assert.equal(del.request().headers()['x-owner-token'], token);
    assert.equal(del.status(), 200);
    await p2.waitForSelector('#networks-empty:not([hidden])');
    assert.deepEqual((await owned.api('GET', '/api/networks')).networks, []);
    clean(other.w);
    other.w.closing();
    w.closing();
  });

  test('names, snapshots and restore best, two networks\' curves overlaid', async () => {
    const { page, w } = desk;
    // A network with a name, trained with early stopping's options.
    await page.fill('#create-name', 'ch. 3 run');
    await page.fill('#layer-sizes', '784,30,10');
    await page.fill('#create-seed', '21');
    const created = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/api/networks'));
    await page.click('#create-form button[type=submit]');
    const made = await created;
    assert.equal(made.request().postDataJSON().name, 'ch. 3 run');
    // The row selected before may still be: wait for the new one's.
    const second = (await made.json()).network_id;
    await page.waitForSelector(`#network-rows tr.selected[data-id="${second}"]`);
    assert.equal(await row(page, second).locator('.net-name').textContent(), 'ch. 3 run');
    await page.fill('#epochs', '4');
    await page.fill('#eta', '3');
    await page.selectOption('#cost', 'quadratic');
    await page.fill('#lambda', '0');
    await page.fill('#train-seed', '21');
    await page.fill('#stop-after', '3');
    const started = page.waitForRequest((r) => r.url().endsWith(`/api/networks/${second}/train`));
    await page.click('#train-button');
    assert.equal((await started).postDataJSON().stop_after_no_improvement, 3);
    await jobStatus(page, 'completed');
    assert.match(await page.textContent('#job-params'), /stop after 3 without gain/);
    await page.fill('#stop-after', '');

    // A snapshot after every epoch; restore the best one.
    await page.waitForFunction(() => document.querySelectorAll('#snapshot-rows tr').length === 4);
    const snaps = await srv.api('GET', `/api/networks/${second}/snapshots`);
    assert.deepEqual(snaps.snapshots.map((x) => x.epoch), [1, 2, 3, 4]);
    assert.equal(await page.textContent('#snapshot-rows tr.best td'), `${snaps.best_epoch} best`);
    const restored = page.waitForResponse((r) => r.url().endsWith(`/api/networks/${second}/restore`));
    await page.click('#restore-best');
    const res = await restored;
    assert.deepEqual(res.request().postDataJSON(), { best: true });
    assert.equal(res.status(), 200);
    assert.equal((await res.json()).restored_from, snaps.best_epoch);
    await page.waitForFunction((n) => /^Restored epoch \d+/.test(document.querySelector('#toast-text').textContent) &&
      document.querySelectorAll('#history-chart .point').length === n, 5);
    const hist = await srv.api('GET', `/api/networks/${second}/history`);
    assert.deepEqual(hist.epochs.map((e) => e.restored_from ?? 0), [0, 0, 0, 0, snaps.best_epoch]);
    await page.waitForFunction(() => /1 restore/.test(document.querySelector('#net-summary').textContent));

    // Rename the first network, with notes.
    await row(page, first).click();
    await page.waitForFunction((id) => document.querySelector('#label-form').dataset.for === id, first);
    await page.fill('#net-name', 'Nielsen ch. 1');
    await page.fill('#net-notes', 'two jobs\nthen one more');
    const patched = page.waitForResponse((r) => r.request().method() === 'PATCH');
    await page.click('#label-save');
    const patch = await patched;
    assert.equal(patch.status(), 200);
    assert.deepEqual(patch.request().postDataJSON(), { name: 'Nielsen ch. 1', notes: 'two jobs\nthen one more' });
    await page.waitForFunction((id) => document.querySelector(`#network-rows tr[data-id="${id}"] .net-name`)?.textContent === 'Nielsen ch. 1', first);
    const listed = (await srv.api('GET', '/api/networks')).networks.find((n) => n.network_id === first);
    assert.deepEqual([listed.name, listed.notes], ['Nielsen ch. 1', 'two jobs\nthen one more']);

    // Tick both: their curves overlaid, a legend by name.
    for (const id of [first, second]) await row(page, id).locator('input.compare').check();
    const lengths = await Promise.all([first, second].map(async (id) => (await srv.api('GET', `/api/networks/${id}/history`)).epochs.length));
    await page.waitForFunction((n) => {
      const series = [...document.querySelectorAll('#compare-chart .series')];
      return series.length === 2 && series.map((g) => g.querySelectorAll('.point').length).join() === n.join();
    }, lengths);
    assert.deepEqual(await page.$$eval('#compare-legend .legend-name', (els) => els.map((e) => e.textContent)),
      ['Nielsen ch. 1', 'ch. 3 run']);
    await page.locator('#compare-chart').scrollIntoViewIfNeeded();
    await shot(page, 'desktop-compare');
    // Unticked: gone from the chart.
    await row(page, first).locator('input.compare').uncheck();
    await page.waitForFunction(() => document.querySelectorAll('#compare-chart .series').length === 1);
    clean(w);
  });

  test('delete all', async () => {
    const { page, w } = desk;
    await page.click('#delete-all');
    await page.waitForSelector('#networks-empty:not([hidden])');
    assert.equal(await rows(page).count(), 0);
    assert.ok(await page.isDisabled('#delete-all'), '"Delete all" is disabled again');
    assert.deepEqual((await srv.api('GET', '/api/networks')).networks, []);
    desk.w.closing();
    clean(w);
  });
});
