// The dashboard end to end: a real `reel serve` (started by run.sh) and
// Debian's Chromium driven by playwright-core. Opens the page, checks the
// metrics, catalogue (thumbnails, search) and experiment panels, picks a
// user, sends a watch event from the page and waits for the
// recommendations to change, then saves a screenshot.
//   node dashboard.js URL TOKEN SCREENSHOT.png
// Every wait polls a condition (no fixed sleeps); the whole run is bounded
// by TIMEOUT_MS per wait and by ctest's timeout.
'use strict';

const { chromium } = require('playwright-core');

const [url, token, shot] = process.argv.slice(2);
if (!url || !token || !shot) {
  console.error('usage: node dashboard.js URL TOKEN SCREENSHOT.png');
  process.exit(2);
}
const CHROMIUM = process.env.REEL_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = 20000;

let passed = 0;
let failed = 0;
function check(ok, what) {
  if (ok) {
    passed++;
    console.log(`ok: ${what}`);
  } else {
    failed++;
    console.log(`FAIL: ${what}`);
  }
}

// The API from here (Node's fetch), to set up and to cross-check the page.
async function api(path, method = 'GET', body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(url + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
  return { status: r.status, json, text };
}

// Polls fn() in the page's world until it returns a truthy value.
async function until(page, what, fn, arg) {
  try {
    const h = await page.waitForFunction(fn, arg, { timeout: TIMEOUT_MS, polling: 50 });
    const v = await h.jsonValue();
    check(true, what);
    return v;
  } catch (e) {
    check(false, `${what} (${e.message.split('\n')[0]})`);
    return null;
  }
}

// Set-up through the API: an experiment when the server has them (the
// panel then draws its charts), and a user with a personalized list.
async function setUp(withExperiment) {
  let experiment = null;
  if (withExperiment) {
    const put = await api('/v1/experiments/e2e-ranker', 'PUT', {
      arms: [{ name: 'control', share: 0.5 },
        { name: 'retrieval', share: 0.5, params: { ranker: 'none' } }],
      control: 'control',
    });
    check(put.status === 200 || put.status === 201, `PUT /v1/experiments/e2e-ranker: ${put.status} ${put.text.slice(0, 200)}`);
    experiment = 'e2e-ranker';
  }
  let who = null;
  for (let i = 0; i < 300 && (!who || (experiment && i < 60)); i++) {
    const r = await api(`/v1/users/u${i}/recommendations?k=10`);
    if (!who && r.json && r.json.source === 'personalized' && r.json.items.length >= 5) who = `u${i}`;
    // Impressions and a click with the answer's request_id, so the
    // experiment's arms have numbers to chart.
    if (experiment && r.json && i < 60) {
      const ev = r.json.items.slice(0, 5).map((it) => ({
        user: `u${i}`, video: it.video, type: 'impression', request_id: r.json.request_id,
      }));
      ev.push({ user: `u${i}`, video: r.json.items[i % 5].video, type: 'click', request_id: r.json.request_id });
      ev.push({ user: `u${i}`, video: r.json.items[i % 5].video, type: 'play', watch_s: 10 + i, request_id: r.json.request_id });
      await api('/v1/events', 'POST', ev);
    }
  }
  check(who !== null, `a user with a personalized list: ${who}`);
  return { experiment, who };
}

async function main() {
  const exps = await api('/v1/experiments');
  const first = await api('/v1/videos?limit=1');
  const title = first.json.items[0].title;
  const word = title.split(' ').find((w) => w.length >= 4) || title.split(' ')[0];
  const search = await api(`/v1/videos?limit=500&q=${encodeURIComponent(word.toLowerCase())}`);

  const args = ['--headless=new', '--disable-gpu', '--disable-dev-shm-usage'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox'); // root in CI
  const browser = await chromium.launch({ executablePath: CHROMIUM, args, headless: true });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  const posts = []; // the page's POST /v1/events: headers and body
  page.on('request', (req) => {
    if (req.method() === 'POST' && req.url().endsWith('/v1/events'))
      posts.push({ auth: req.headers().authorization, body: JSON.parse(req.postData() || 'null') });
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  try {
    await page.goto(url + '/', { waitUntil: 'load' });
    check((await page.title()) === 'reel dashboard', 'the page loads from /');
    await until(page, 'suggested users show', () => document.querySelectorAll('#suggestions button').length >= 1);

    // Experiments: none yet (the empty state); charts come after the PUT.
    if (exps.status === 200) {
      await until(page, 'experiments: the empty state (none running)', () => document.querySelector('#exp-body .empty') !== null);
    }
    const { experiment, who } = await setUp(exps.status === 200);

    // Live metrics: the catalogue's size, then a request count that grows.
    await until(page, `metrics: the videos count shows ${first.json.total}`,
      (n) => document.querySelector('#kpis dd[data-metric=videos]')?.textContent === n, String(first.json.total));
    await until(page, 'metrics: the per-route table fills',
      () => document.querySelectorAll('#routes tbody tr').length >= 3);

    // Catalogue: the first page, with the key frames of v0 as pictures.
    await until(page, 'catalogue: the first page of 24 videos',
      () => document.querySelectorAll('#videos li').length === 24);
    await until(page, 'catalogue: v0 shows its thumbnail (a decoded JPEG)', () => {
      const img = document.querySelector('#videos li[data-video="v0"] img.thumb');
      return img && img.complete && img.naturalWidth === 160;
    });
    await page.click('#videos li[data-video="v0"] button');
    await until(page, 'catalogue: v0 detail shows its 2 key frames',
      () => [...document.querySelectorAll('#video-detail .frames img')].filter((i) => i.naturalWidth > 0).length === 2);

    // Search: the listing's q=, the same count as the API gives.
    await page.fill('#q', word.toLowerCase());
    const want = `of ${search.json.total} videos`;
    await until(page, `search "${word.toLowerCase()}": ${search.json.total} videos`,
      (w) => document.querySelector('#cat-count').textContent.endsWith(w), want);
    const shown = await page.$$eval('#videos li strong', (s) => s.map((x) => x.textContent));
    check(shown.length > 0 && shown.every((t) => t.toLowerCase().includes(word.toLowerCase())),
      `every title shown contains "${word.toLowerCase()}" (${shown.length})`);

    // The token, for the writes the page makes.
    await page.fill('#token', token);
    await page.click('#token-form button[type=submit]');
    await until(page, 'the token is taken',
      () => document.querySelector('#token-state').textContent.startsWith('token set'));

    // The user view: history and recommendations with scores.
    await page.fill('#user-id', who);
    await page.click('#user-form button[type=submit]');
    const before = await until(page, `user ${who}: 10 recommendations`, () => {
      const li = [...document.querySelectorAll('#recos li[data-video]')];
      return li.length === 10 ? li.map((x) => x.dataset.video) : null;
    });
    await until(page, 'the list is personalized, with scores', () =>
      document.querySelector('#reco-meta').textContent.includes('personalized') &&
      [...document.querySelectorAll('#recos .score .value')].every((s) => /^-?\d+\.\d{3}$/.test(s.textContent)));
    const hist0 = (await api(`/v1/users/${who}/history?limit=1`)).json.total;
    await until(page, `history shows ${hist0} events`,
      (n) => document.querySelector('#history-total').textContent === `(${n} events)`, hist0.toLocaleString('en-US'));

    // Explanations: one row per feature of the selected item.
    await page.check('#explain');
    await until(page, 'explain: the top item\'s feature contributions',
      () => !document.querySelector('#explain-panel').hidden &&
        document.querySelectorAll('#explain-table tbody tr').length >= 5);

    // Watch the top item: a POST /v1/events from the page (with the
    // answer's request_id and the token), then the list changes.
    const watched = before ? before[0] : null;
    const rid = await page.$eval('#reco-meta', (m) => (/request (\S+)/.exec(m.textContent) || [])[1]);
    await page.click(`#recos li[data-video="${watched}"] button.watch`);
    await until(page, 'the watch is sent', () => document.querySelector('#user-msg').textContent.startsWith('Sent:'));
    const p = posts[0] || {};
    check(posts.length === 1 && p.auth === `Bearer ${token}` && p.body.user === who && p.body.video === watched &&
      p.body.type === 'watch' && p.body.request_id === rid,
      `the POST carries the token and the list's request_id ${rid}: ${JSON.stringify(p.body)}`);
    const after = await until(page, 'the recommendations change (the watched video leaves the list)', (w) => {
      const li = [...document.querySelectorAll('#recos li[data-video]')].map((x) => x.dataset.video);
      return li.length > 0 && !li.includes(w) ? li : null;
    }, watched);
    check(after && JSON.stringify(after) !== JSON.stringify(before), 'the list differs from before');
    await until(page, 'the history shows the watch first',
      (w) => document.querySelector('#history li')?.dataset.video === w, watched);
    await until(page, 'new items are marked', () => document.querySelectorAll('#recos li.new').length >= 1);
    const hist1 = (await api(`/v1/users/${who}/history?limit=1`)).json;
    check(hist1.total === hist0 + 1 && hist1.events[0].video === watched && hist1.events[0].type === 'watch',
      'the server has the watch event');

    // An event from elsewhere: the page notices within its 2 s poll.
    const other = after[after.length - 1];
    const ev = await api('/v1/events', 'POST', { user: who, video: other, type: 'like' });
    check(ev.status === 202, `POST /v1/events from outside: ${ev.status}`);
    await until(page, 'the page refreshes after an outside event', (v) => {
      const li = [...document.querySelectorAll('#recos li[data-video]')].map((x) => x.dataset.video);
      return document.querySelector('#history li')?.dataset.video === v && !li.includes(v);
    }, other);

    await until(page, 'metrics: the events ingested count', () =>
      Number(document.querySelector('#kpis dd[data-metric=events]').textContent.replace(/,/g, '')) >= 2);
    await until(page, 'metrics: POST /v1/events in the route table', () =>
      [...document.querySelectorAll('#routes tbody td:first-child')].some((td) => td.textContent === 'POST /v1/events'));

    // Experiments: the charts, or the empty state on a server without them.
    if (experiment) {
      await until(page, 'experiments: two charts with error bars for e2e-ranker', (name) => {
        const a = document.querySelector(`article.experiment[data-experiment="${name}"]`);
        return a && a.querySelectorAll('svg').length === 2 && a.querySelectorAll('svg line.err').length >= 3 &&
          a.querySelectorAll('tbody tr').length === 2;
      }, experiment);
    } else {
      await until(page, 'experiments: the empty state',
        () => document.querySelector('#exp-body .empty') !== null);
    }
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: shot, fullPage: true });
    check(true, `screenshot: ${shot}`);
    check(errors.length === 0, `no errors in the page${errors.length ? ': ' + errors.join(' | ') : ''}`);
  } finally {
    await browser.close();
  }
}

main().then(() => {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}, (e) => {
  console.error(e);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
