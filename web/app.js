// reel dashboard: plain JavaScript over the HTTP API of `reel serve`
// (docs/API.md). Nothing is loaded from elsewhere; every request goes to
// the server that served this page. The page builds its DOM with
// textContent only (no innerHTML), so ids and titles cannot inject markup.
'use strict';

const POLL_USER_MS = 2000;
const POLL_METRICS_MS = 3000;
const POLL_EXPERIMENTS_MS = 5000;
const PAGE = 24;
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (sel) => document.querySelector(sel);

// el('li', {class: 'x', dataset: {video: 'v1'}}, 'text', child, ...)
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'onclick') e.addEventListener('click', v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// Replaces node's children, skipping null, undefined and false.
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

const fmt = (x, d = 3) => (x === null || x === undefined || !isFinite(x)) ? 'n/a' : Number(x).toFixed(d);
const fmtInt = (x) => (x === null || x === undefined || !isFinite(x)) ? 'n/a' : Math.round(x).toLocaleString('en-US');
const fmtTime = (ts) => new Date(ts * 1000).toISOString().replace('T', ' ').slice(0, 19);
const enc = encodeURIComponent;

// ------------------------------------------------------------- the API

let token = sessionStorage.getItem('reel.token') || '';

// fetch() that never throws: {status, ok, body} (status 0: no answer).
async function api(path, opts = {}) {
  const headers = {};
  if (opts.json !== undefined) headers['Content-Type'] = 'application/json';
  if (token && opts.method && opts.method !== 'GET') headers.Authorization = 'Bearer ' + token;
  try {
    const r = await fetch(path, {
      method: opts.method || 'GET', headers, cache: 'no-store',
      body: opts.json !== undefined ? JSON.stringify(opts.json) : undefined,
    });
    const type = r.headers.get('Content-Type') || '';
    const body = type.includes('json') ? await r.json().catch(() => null) : await r.text();
    setConnected(true);
    return { status: r.status, ok: r.ok, body };
  } catch (e) {
    setConnected(false);
    return { status: 0, ok: false, body: null };
  }
}

const errorOf = (r) => r.status === 0 ? 'the server does not answer'
  : (r.body && r.body.error) ? `${r.status}: ${r.body.error}` : `status ${r.status}`;

let connected = null;
function setConnected(up) {
  if (connected === up) return;
  connected = up;
  const c = $('#conn');
  c.textContent = up ? `Connected to ${location.host}` : `${location.host} does not answer: retrying`;
  c.classList.toggle('down', !up);
}

// -------------------------------------------------------------- token

function showToken() {
  $('#token-state').textContent = token ? 'token set (sent with writes)' : 'no token';
  $('#token').value = '';
}

$('#token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('#token').value.trim();
  if (token) sessionStorage.setItem('reel.token', token);
  else sessionStorage.removeItem('reel.token');
  showToken();
});
$('#token-clear').addEventListener('click', () => {
  token = '';
  sessionStorage.removeItem('reel.token');
  showToken();
});

// ---------------------------------------------------------- the user view

const user = {
  id: null,
  historyTotal: -1,
  recos: [],          // the items shown, as answered
  requestId: null,
  selected: 0,        // the item whose explanation is shown
};
const titles = new Map(); // video id -> title (null: none)

function userMessage(text, isError) {
  const m = $('#user-msg');
  m.textContent = text || '';
  m.classList.toggle('error', !!isError);
}

function recentUsers() {
  try { return JSON.parse(sessionStorage.getItem('reel.users') || '[]'); } catch (e) { return []; }
}

function remember(id) {
  const list = [id, ...recentUsers().filter((u) => u !== id)].slice(0, 6);
  sessionStorage.setItem('reel.users', JSON.stringify(list));
}

// A few users to start from: the ones picked before in this tab, and the
// first ids of the usual schemes (reel synth's u0, u1, ...; MovieLens's 1,
// 2, ...) that this server knows. Nothing lists users, so this is a guess.
async function suggestUsers() {
  const guesses = [...Array(10).keys()].map((i) => `u${i}`).concat(['1', '2', '3', '4', '5']);
  // The history route answers an unknown user too (total 0): no 404s.
  const known = await Promise.all(guesses.map(async (g) => {
    const r = await api(`/v1/users/${enc(g)}/history?limit=1`);
    return r.ok && r.body && r.body.total > 0 ? { id: g, events: r.body.total } : null;
  }));
  // The most active first: their lists are personalized.
  const found = [...recentUsers().map((id) => ({ id })),
    ...known.filter(Boolean).sort((a, b) => b.events - a.events)];
  const seen = new Set();
  const box = $('#suggestions');
  const list = $('#user-suggestions');
  box.replaceChildren();
  list.replaceChildren();
  for (const s of found) {
    if (seen.has(s.id) || seen.size >= 8) continue;
    seen.add(s.id);
    list.append(el('option', { value: s.id }));
    box.append(el('button', {
      type: 'button', class: 'chip',
      'aria-label': `Show user ${s.id}`,
      onclick: () => { $('#user-id').value = s.id; pickUser(s.id); },
    }, s.id, s.events !== undefined ? ` · ${s.events} events` : ''));
  }
}

async function pickUser(id) {
  id = id.trim();
  if (!id) return;
  user.id = id;
  user.historyTotal = -1;
  user.recos = [];
  user.selected = 0;
  remember(id);
  userMessage('');
  $('#recos').replaceChildren();
  await refreshUser(true);
}

// Reads the history; when it changed (or `force`), the recommendations too.
// Calls run one after another (a poll and a click never interleave).
let userChain = Promise.resolve();
function refreshUser(force) {
  userChain = userChain.then(() => refreshUserNow(force)).catch((e) => userMessage(String(e), true));
  return userChain;
}

async function refreshUserNow(force) {
  const id = user.id;
  if (!id) return;
  const h = await api(`/v1/users/${enc(id)}/history?limit=20`);
  if (id !== user.id) return;
  if (!h.ok || !h.body) {
    userMessage(`History: ${errorOf(h)}`, true);
    return;
  }
  if (h.body.total !== user.historyTotal || force) {
    user.historyTotal = h.body.total;
    await renderHistory(h.body);
    await loadRecos();
  }
}

async function lookupTitles(ids) {
  const missing = [...new Set(ids)].filter((v) => !titles.has(v));
  await Promise.all(missing.map(async (v) => {
    const r = await api(`/v1/videos/${enc(v)}`);
    titles.set(v, r.ok && r.body ? r.body.title : null);
  }));
}

async function renderHistory(h) {
  const events = h.events.slice().reverse(); // newest first
  await lookupTitles(events.map((e) => e.video));
  $('#history-total').textContent = `(${fmtInt(h.total)} events)`;
  const ol = $('#history');
  ol.replaceChildren(...events.map((e) => el('li', { dataset: { video: e.video } },
    el('span', { class: 'type' }, e.type), ' ',
    titles.get(e.video) || e.video, ' ',
    el('span', { class: 'muted' }, `${e.video} · ${fmtTime(e.ts)}`))));
  ol.setAttribute('start', String(h.total));
  if (!events.length) ol.append(el('li', { class: 'muted' }, 'No events yet.'));
}

async function loadRecos() {
  const id = user.id;
  const explain = $('#explain').checked;
  const r = await api(`/v1/users/${enc(id)}/recommendations?k=10&explain=${explain}`);
  if (id !== user.id) return;
  if (!r.ok) {
    userMessage(`Recommendations: ${errorOf(r)}`, true);
    return;
  }
  const before = new Set(user.recos.map((it) => it.video));
  const first = user.recos.length === 0;
  user.recos = r.body.items;
  user.requestId = r.body.request_id;
  if (user.selected >= user.recos.length) user.selected = 0;
  const exps = (r.body.experiments || []).map((x) => `${x.name}: ${x.arm}`);
  const meta = $('#reco-meta');
  fill(meta,
    el('span', { class: 'tag' }, r.body.source), ' ',
    r.body.degraded ? el('span', { class: 'tag error' }, 'degraded') : null,
    ` request ${r.body.request_id}`,
    exps.length ? ` · experiments ${exps.join(', ')}` : '');
  const scores = user.recos.map((it) => it.score);
  const lo = Math.min(...scores, 0), hi = Math.max(...scores, 0);
  $('#recos').replaceChildren(...user.recos.map((it, i) => {
    const isNew = !first && !before.has(it.video);
    const w = hi > lo ? (it.score - lo) / (hi - lo) : 1;
    const bar = el('span', { class: 'bar', 'aria-hidden': 'true' });
    bar.style.width = `${Math.max(2, Math.round(w * 100))}%`;
    return el('li', {
      class: [isNew ? 'new' : '', explain && i === user.selected ? 'selected' : ''].join(' ').trim() || null,
      dataset: { video: it.video },
    }, el('div', { class: 'reco' },
      el('span', { class: 'title' },
        explain
          ? el('button', { type: 'button', class: 'chip', 'aria-label': `Explain ${it.title || it.video}`,
              onclick: () => { user.selected = i; renderExplain(); markSelected(); } }, 'why')
          : null,
        ' ', it.title || it.video, isNew ? el('span', { class: 'badge' }, 'new') : null,
        el('br'), el('span', { class: 'vid muted' }, it.video)),
      el('span', { class: 'score', title: 'score' },
        el('span', { class: 'bar-wrap' }, bar), el('span', { class: 'value' }, fmt(it.score))),
      el('button', {
        type: 'button', class: 'watch',
        'aria-label': `Watch ${it.title || it.video}`,
        onclick: (e) => watch(it.video, e.currentTarget, true),
      }, 'Watch')));
  }));
  if (!user.recos.length) $('#recos').append(el('li', { class: 'muted' }, 'Nothing to recommend.'));
  renderExplain();
}

function markSelected() {
  [...$('#recos').children].forEach((li, i) => li.classList.toggle('selected', i === user.selected));
}

// The selected item's features: values and, for a tree ranker, each one's
// contribution to the margin (docs/API.md, explain=true).
function renderExplain() {
  const panel = $('#explain-panel');
  const it = user.recos[user.selected];
  if (!$('#explain').checked || !it) { panel.hidden = true; return; }
  panel.hidden = false;
  $('#explain-h').textContent = `Why “${it.title || it.video}” (#${user.selected + 1})`;
  const body = $('#explain-table tbody');
  const ex = it.explain;
  if (!ex) {
    $('#explain-note').textContent = 'A cold-start item: it comes from the popular and trending lists, not from the ranker.';
    body.replaceChildren();
    return;
  }
  const feats = ex.features.slice();
  const hasContrib = feats.some((f) => f.contribution !== undefined);
  $('#explain-note').textContent = hasContrib
    ? `Margin = bias ${fmt(ex.bias)} + the contributions; the 12 largest are shown.`
    : 'This ranker gives feature values without contributions.';
  if (hasContrib) feats.sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
  const shown = feats.slice(0, 12);
  const max = Math.max(1e-9, ...shown.map((f) => Math.abs(f.contribution || 0)));
  body.replaceChildren(...shown.map((f) => {
    let cell = 'n/a';
    if (f.contribution !== undefined) {
      const c = f.contribution;
      const bar = el('span', { class: 'bar' });
      bar.style.width = `${Math.max(1, Math.round(Math.abs(c) / max * 100))}%`;
      cell = el('span', { class: 'contrib' },
        el('span', { class: 'half neg' }, c < 0 ? bar : ''),
        el('span', { class: 'half pos' }, c >= 0 ? bar : ''),
        el('span', { class: 'value' }, ` ${c >= 0 ? '+' : ''}${fmt(c)}`));
    }
    return el('tr', {}, el('td', {}, f.name), el('td', { class: 'num' }, fmt(f.value)), el('td', {}, cell));
  }));
}

// Sends a watch event for the user; `fromList`: the video was in the last
// recommendations, so the event names that answer (experiment attribution).
async function watch(video, button, fromList) {
  if (!user.id) return;
  if (button) button.disabled = true;
  const ev = { user: user.id, video, type: 'watch', watch_s: 120 };
  if (fromList && user.requestId) ev.request_id = user.requestId;
  const r = await api('/v1/events', { method: 'POST', json: ev });
  if (r.status === 401) {
    userMessage('This server needs a bearer token for writes: paste it at the top.', true);
    $('#token').focus();
  } else if (r.status !== 202) {
    userMessage(`Event refused: ${errorOf(r)}`, true);
  } else if (r.body.accepted !== 1) {
    userMessage(`Event refused: ${(r.body.rejected[0] || {}).error || 'unknown reason'}`, true);
  } else {
    userMessage(`Sent: ${user.id} watched ${titles.get(video) || video}.`);
    await refreshUser(true);
  }
  if (button && button.isConnected) button.disabled = false;
}

$('#user-form').addEventListener('submit', (e) => {
  e.preventDefault();
  pickUser($('#user-id').value);
});
$('#explain').addEventListener('change', () => { if (user.id) loadRecos(); });

// ---------------------------------------------------------- the catalogue

const cat = { q: '', offset: 0, total: 0, seq: 0 };

const thumbUrl = (video, file) => `/thumbs/${enc(video)}/${enc(file)}`;

async function loadVideos() {
  const seq = ++cat.seq;
  const r = await api(`/v1/videos?offset=${cat.offset}&limit=${PAGE}&q=${enc(cat.q)}`);
  if (seq !== cat.seq) return; // a newer search answered first
  const ul = $('#videos');
  if (!r.ok) {
    $('#cat-count').textContent = `Catalogue: ${errorOf(r)}`;
    return;
  }
  cat.total = r.body.total;
  const n = r.body.items.length;
  $('#cat-count').textContent = n
    ? `${fmtInt(cat.offset + 1)}–${fmtInt(cat.offset + n)} of ${fmtInt(cat.total)} videos`
    : (cat.q ? `No title contains “${cat.q}”.` : 'The catalogue is empty.');
  ul.replaceChildren(...r.body.items.map((v) => {
    titles.set(v.video, v.title);
    const t = v.thumbs[0];
    const pic = t
      ? el('img', { class: 'thumb', src: thumbUrl(v.video, t.file), alt: '', loading: 'lazy' })
      : el('span', { class: 'thumb placeholder', 'aria-hidden': 'true' }, ([...(v.title || v.video)][0] || '?').toUpperCase());
    return el('li', { dataset: { video: v.video } },
      el('button', { type: 'button', class: 'video' + (v.deleted ? ' deleted' : ''), onclick: () => showVideo(v) },
        pic,
        el('span', { class: 'meta' },
          el('strong', {}, v.title || '(untitled)'),
          el('span', { class: 'muted' }, v.video, v.deleted ? ' · deleted' : '',
            v.thumbs.length ? ` · ${v.thumbs.length} frames` : ''),
          el('span', { class: 'chips' }, v.categories.slice(0, 3).map((c) => el('span', { class: 'tag' }, c))))));
  }));
  $('#prev').disabled = cat.offset === 0;
  $('#next').disabled = cat.offset + n >= cat.total;
}

async function showVideo(v) {
  const box = $('#video-detail');
  box.hidden = false;
  const sim = await api(`/v1/videos/${enc(v.video)}/similar?k=5`);
  const similar = sim.ok ? sim.body.items : [];
  fill(box,
    el('h3', {}, v.title || v.video, ' ', el('span', { class: 'muted' }, v.video)),
    el('p', { class: 'chips' }, v.categories.map((c) => el('span', { class: 'tag' }, c))),
    v.thumbs.length
      ? el('div', { class: 'frames', role: 'list', 'aria-label': 'Key frames' }, v.thumbs.map((t) =>
          el('figure', { role: 'listitem' },
            el('img', { src: thumbUrl(v.video, t.file), alt: `Key frame at ${fmt(t.ts, 1)} s`, loading: 'lazy' }),
            el('figcaption', {}, `${fmt(t.ts, 1)} s`))))
      : el('p', { class: 'muted' }, 'No key frames (reel embed --clip writes them).'),
    el('h3', {}, 'Similar videos'),
    similar.length
      ? el('ol', {}, similar.map((s) => el('li', {}, s.title || s.video, ' ',
          el('span', { class: 'muted' }, `${s.video} · ${fmt(s.score)}`))))
      : el('p', { class: 'muted' }, 'None (the video has no vector).'),
    user.id
      ? el('button', { type: 'button', onclick: (e) => watch(v.video, e.currentTarget, false) }, `Watch as ${user.id}`)
      : null);
}

let searchTimer = null;
$('#q').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { cat.q = $('#q').value.trim(); cat.offset = 0; loadVideos(); }, 200);
});
$('#search-form').addEventListener('submit', (e) => {
  e.preventDefault();
  clearTimeout(searchTimer);
  cat.q = $('#q').value.trim();
  cat.offset = 0;
  loadVideos();
});
$('#prev').addEventListener('click', () => { cat.offset = Math.max(0, cat.offset - PAGE); loadVideos(); });
$('#next').addEventListener('click', () => { cat.offset += PAGE; loadVideos(); });

// ------------------------------------------------------------ metrics

// The Prometheus text format: [{name, labels, value}].
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

const rates = []; // requests per second, one per poll
let lastTotal = null, lastAt = 0;

function sparkline(values) {
  const w = 120, h = 28, max = Math.max(1e-9, ...values);
  const pts = values.map((v, i) => `${(i / Math.max(1, values.length - 1) * w).toFixed(1)},${(h - 2 - v / max * (h - 4)).toFixed(1)}`);
  return svg('svg', { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': `Requests per second over the last ${values.length} readings, at most ${fmt(max, 1)}` },
  svg('polyline', { class: 'spark', points: pts.join(' ') }));
}

// The q-quantile of a cumulative histogram [{le, count}], interpolated.
function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (!total) return null;
  let prevLe = 0, prevCount = 0;
  for (const b of buckets) {
    if (b.count >= q * total) {
      if (!isFinite(b.le)) return prevLe;
      const inBucket = b.count - prevCount;
      return prevLe + (b.le - prevLe) * (inBucket ? (q * total - prevCount) / inBucket : 1);
    }
    prevLe = b.le; prevCount = b.count;
  }
  return prevLe;
}

async function loadMetrics() {
  const r = await api('/metrics');
  if (!r.ok || typeof r.body !== 'string') return;
  const ms = parseMetrics(r.body);
  const one = (name) => { const m = ms.find((x) => x.name === name); return m ? m.value : null; };
  const routes = new Map();
  const route = (name) => {
    if (!routes.has(name)) routes.set(name, { s2: 0, s4: 0, s5: 0, sum: 0, count: 0, buckets: [] });
    return routes.get(name);
  };
  let total = 0;
  for (const m of ms) {
    if (m.name === 'reel_http_requests_total') {
      const r2 = route(m.labels.route);
      const cls = (m.labels.status || '')[0];
      if (cls === '2') r2.s2 += m.value; else if (cls === '4') r2.s4 += m.value; else if (cls === '5') r2.s5 += m.value;
      total += m.value;
    } else if (m.name === 'reel_http_request_seconds_sum') route(m.labels.route).sum = m.value;
    else if (m.name === 'reel_http_request_seconds_count') route(m.labels.route).count = m.value;
    else if (m.name === 'reel_http_request_seconds_bucket')
      route(m.labels.route).buckets.push({ le: m.labels.le === '+Inf' ? Infinity : Number(m.labels.le), count: m.value });
  }
  const now = performance.now();
  if (lastTotal !== null && now > lastAt) rates.push(Math.max(0, (total - lastTotal) / ((now - lastAt) / 1000)));
  if (rates.length > 40) rates.shift();
  lastTotal = total; lastAt = now;

  const rec = [...routes.entries()].find(([k]) => k.endsWith('/recommendations'));
  const recStats = rec ? rec[1] : null;
  const kpis = [
    ['videos', 'Videos', fmtInt(one('reel_videos'))],
    ['users', 'Users', fmtInt(one('reel_users'))],
    ['index', 'In the index', fmtInt(one('reel_index_videos'))],
    ['events', 'Events ingested', fmtInt(one('reel_events_ingested_total'))],
    ['requests', 'Requests', fmtInt(total)],
    ['rate', 'Requests/s', rates.length ? fmt(rates[rates.length - 1], 1) : '…', rates.length > 1 ? sparkline(rates) : null],
    ['rec-mean', 'Recommendation mean', recStats && recStats.count ? `${fmt(recStats.sum / recStats.count * 1000, 2)} ms` : 'n/a'],
    ['rec-p95', 'Recommendation p95', recStats && recStats.count ? `${fmt(quantile(recStats.buckets, 0.95) * 1000, 2)} ms` : 'n/a'],
  ];
  $('#kpis').replaceChildren(...kpis.map(([key, label, value, extra]) =>
    el('div', {}, el('dt', {}, label), el('dd', { dataset: { metric: key } }, value), extra)));
  // The page's own files in one row.
  const files = { s2: 0, s4: 0, s5: 0, sum: 0, count: 0 };
  for (const [name, v] of [...routes.entries()]) {
    if (!/^GET \/[^/]*$/.test(name) || name === 'GET /metrics' || name === 'GET /healthz' || name === 'GET /readyz') continue;
    for (const k of Object.keys(files)) files[k] += v[k];
    routes.delete(name);
  }
  routes.set('GET / (the dashboard\'s files)', files);
  const rows = [...routes.entries()].filter(([, v]) => v.s2 + v.s4 + v.s5 > 0)
    .sort((a, b) => (b[1].s2 + b[1].s4 + b[1].s5) - (a[1].s2 + a[1].s4 + a[1].s5));
  $('#routes tbody').replaceChildren(...rows.map(([name, v]) => el('tr', {},
    el('td', {}, name), el('td', { class: 'num' }, fmtInt(v.s2)), el('td', { class: 'num' }, fmtInt(v.s4)),
    el('td', { class: 'num' }, fmtInt(v.s5)),
    el('td', { class: 'num' }, v.count ? fmt(v.sum / v.count * 1000, 2) : 'n/a'))));
}

// -------------------------------------------------------- experiments

// Horizontal bars with 95% error bars: rows [{label, value, ci, control}].
function barChart(title, unit, rows, digits) {
  const w = 420, left = 110, right = 16, rowH = 30, top = 24, h = top + rows.length * rowH + 22;
  const max = Math.max(1e-12, ...rows.flatMap((r) => [r.value, r.ci ? r.ci[1] : null].filter((x) => x !== null && isFinite(x)))) * 1.08;
  const x = (v) => left + (w - left - right) * v / max;
  const desc = rows.map((r) => `${r.label}: ${fmt(r.value, digits)}${r.ci ? ` (95% ${fmt(r.ci[0], digits)} to ${fmt(r.ci[1], digits)})` : ''}`).join('; ');
  const g = svg('svg', { viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': `${title}: ${desc}` },
    svg('title', {}, `${title}: ${desc}`),
    svg('text', { x: 0, y: 14, 'font-weight': 600 }, `${title} (${unit})`));
  for (const t of [0, 0.5, 1]) {
    const xv = x(max / 1.08 * t);
    g.append(svg('line', { class: 'grid-line', x1: xv, x2: xv, y1: top - 4, y2: h - 20 }),
      svg('text', { x: xv, y: h - 6, 'text-anchor': 'middle' }, fmt(max / 1.08 * t, digits)));
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    g.append(svg('text', { x: left - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end' }, r.label.length > 16 ? r.label.slice(0, 15) + '…' : r.label));
    if (r.value === null || !isFinite(r.value)) {
      g.append(svg('text', { x: left + 4, y: y + rowH / 2 + 4 }, 'no data'));
      return;
    }
    g.append(svg('rect', { class: 'bar' + (r.control ? ' control' : ''), x: left, y: y + 5, width: Math.max(1, x(r.value) - left), height: rowH - 10 }));
    if (r.ci && isFinite(r.ci[0]) && isFinite(r.ci[1])) {
      const [a, b] = [x(Math.max(0, r.ci[0])), x(r.ci[1])], ym = y + rowH / 2;
      g.append(svg('line', { class: 'err', x1: a, x2: b, y1: ym, y2: ym }),
        svg('line', { class: 'err', x1: a, x2: a, y1: ym - 6, y2: ym + 6 }),
        svg('line', { class: 'err', x1: b, x2: b, y1: ym - 6, y2: ym + 6 }));
    }
  });
  g.append(svg('line', { class: 'axis', x1: left, x2: left, y1: top - 4, y2: h - 20 }));
  return el('figure', { class: 'chart' }, g);
}

const metricOf = (m) => (m && typeof m === 'object') ? m : { value: null, ci95: null };
const pval = (p) => p === null || p === undefined ? 'n/a'
  : el('span', { class: p < 0.05 ? 'sig' : '' }, p < 0.001 ? '<0.001' : fmt(p, 3), p < 0.05 ? ' *' : '');

function renderExperiment(x) {
  const arms = x.arms || [];
  const ctr = arms.map((a) => ({ label: a.name, value: metricOf(a.ctr).value, ci: metricOf(a.ctr).ci95, control: a.name === x.control }));
  const wat = arms.map((a) => ({ label: a.name, value: metricOf(a.watch_s_per_impression).value,
    ci: metricOf(a.watch_s_per_impression).ci95, control: a.name === x.control }));
  const ci = (m) => m && m.ci95 ? ` [${fmt(m.ci95[0], 4)}, ${fmt(m.ci95[1], 4)}]` : '';
  return el('article', { class: 'experiment', dataset: { experiment: x.name } },
    el('h3', {}, x.name, ' ', el('span', { class: 'muted' },
      `control ${x.control || (arms[0] || {}).name || 'n/a'}`, x.started_at ? ` · since ${fmtTime(x.started_at)}` : '')),
    el('div', { class: 'charts' },
      barChart('Click-through rate', 'clicks / impression', ctr, 4),
      barChart('Watch time', 's / impression', wat, 2)),
    el('table', {},
      el('caption', { class: 'sr' }, `Arms of ${x.name}`),
      el('thead', {}, el('tr', {}, ['arm', 'share', 'users', 'requests', 'impressions', 'clicks', 'CTR [95%]',
        'watch s/imp. [95%]', 'p (CTR)', 'p (watch)'].map((t) => el('th', { scope: 'col' }, t)))),
      el('tbody', {}, arms.map((a) => {
        const vs = a.vs_control || {};
        return el('tr', {}, el('td', {}, a.name, a.name === x.control ? ' (control)' : ''),
          el('td', { class: 'num' }, fmt(a.share, 2)), el('td', { class: 'num' }, fmtInt(a.users)),
          el('td', { class: 'num' }, fmtInt(a.requests)), el('td', { class: 'num' }, fmtInt(a.impressions)),
          el('td', { class: 'num' }, fmtInt(a.clicks)),
          el('td', { class: 'num' }, fmt(metricOf(a.ctr).value, 4), ci(a.ctr)),
          el('td', { class: 'num' }, fmt(metricOf(a.watch_s_per_impression).value, 2), ci(a.watch_s_per_impression)),
          el('td', { class: 'num' }, a.name === x.control ? '—' : pval(vs.ctr_p)),
          el('td', { class: 'num' }, a.name === x.control ? '—' : pval(vs.watch_p)));
      }))),
    el('p', { class: 'muted' }, 'Bars: the value; whiskers: its 95% interval. * p < 0.05 against the control ',
      '(two-proportion z-test for CTR, Welch\'s t-test for watch time).'));
}

let lastExperiments = null;
async function loadExperiments() {
  const r = await api('/v1/experiments');
  const key = `${r.status} ${JSON.stringify(r.body)}`;
  if (key === lastExperiments) return; // unchanged: keep the DOM (and focus)
  lastExperiments = key;
  const box = $('#exp-body');
  if (r.status === 404 || r.status === 405) {
    box.replaceChildren(el('p', { class: 'muted empty' }, 'This server runs no experiments (it has no /v1/experiments).'));
    return;
  }
  if (!r.ok) {
    box.replaceChildren(el('p', { class: 'error' }, `Experiments: ${errorOf(r)}`));
    return;
  }
  const list = Array.isArray(r.body) ? r.body : (r.body && r.body.experiments) || [];
  if (!list.length) {
    box.replaceChildren(el('p', { class: 'muted empty' },
      'No experiment is running. Define one in the config file or with PUT /v1/experiments/{name} (docs/API.md).'));
    return;
  }
  box.replaceChildren(...list.map(renderExperiment));
}

// -------------------------------------------------------------- start

function every(ms, fn) {
  const tick = async () => {
    if (document.visibilityState === 'visible') await fn();
    setTimeout(tick, ms);
  };
  tick();
}

showToken();
suggestUsers();
loadVideos();
every(POLL_METRICS_MS, loadMetrics);
every(POLL_EXPERIMENTS_MS, loadExperiments);
every(POLL_USER_MS, () => refreshUser(false));
