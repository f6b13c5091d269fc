// app.js — cellsched's dashboard: the cell at a glance from the HTTP API
// under /v1/ (docs/http.md), kept live by its blocking queries.
//
// One loop: a blocking query on /v1/stats (?index=N&wait=2s, N the last
// X-Cell-Index) returns as soon as the cell changes, then machines, jobs
// and the selected job's tasks are read and the page is drawn again. Why
// the wait is short: the schedulers' reports (their Omega metrics) are not
// writes and move no version (protocol.md §5.17), so the wait running out
// is what samples them in a quiet cell; a busy cell is read at most twice a
// second (MIN_GAP_MS), however often it changes.
//
// Names come from clients (job, machine and scheduler names, notes,
// warnings): every string reaches the page as a text node or an attribute
// value (el() below), never as HTML.
'use strict';

(function () {
  const API = '../v1/'; // from /ui/: the same server, whatever its address
  const WAIT = '2s';
  const MIN_GAP_MS = 500;
  const RETRY_MAX_MS = 10000;
  const POINTS = 180; // per scheduler: 6 minutes at one report per 2 s
  const EVENTS = 40;
  const ROWS = 500; // rows per table: a large cell is summed up, not listed
  const TASK_STATES = ['pending', 'assigned', 'running', 'finished', 'failed', 'killed', 'lost',
    'preempted'];

  const page = {
    stats: null,
    machines: [],
    jobs: [],
    selected: selectedFromHash(),
    tasks: null, // {job, list} or {job, error}
    series: new Map(), // scheduler name -> {arrival, points, prev}
    events: [], // newest first: {t, text, kind}
    version: null,
    updated: null,
    error: null,
    retryMs: 0,
  };

  // ---- DOM, escaped by construction -----------------------------------------------

  // el('td', {class: 'num'}, 'text', child, ...): strings become text nodes.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    for (const k of kids.flat()) {
      if (k == null || k === false) continue;
      e.append(k instanceof Node ? k : String(k));
    }
    return e;
  }

  function fill(id, ...kids) {
    document.getElementById(id).replaceChildren(...kids.flat().filter((k) => k != null));
  }

  // A state's colour, from a fixed list: a value the page does not know
  // gets the plain badge (it is still shown, as text).
  const TONE = {
    up: 'ok', active: 'ok', running: 'ok', healthy: 'ok', finished: 'info', assigned: 'info',
    pending: 'warn', draining: 'warn', cordoned: 'warn', preempted: 'warn', unknown: '',
    down: 'bad', failed: 'bad', killed: 'bad', lost: 'bad', unhealthy: 'bad',
  };
  function badge(text, title, state) {
    const key = state == null ? text : state;
    const tone = Object.prototype.hasOwnProperty.call(TONE, key) ? TONE[key] : '';
    return el('span', {class: tone ? 'badge ' + tone : 'badge', title}, text);
  }

  // ---- numbers --------------------------------------------------------------------

  function num(v, digits) {
    // Up to `digits` decimals, without trailing zeros: 2, 0.5, 1.25.
    if (typeof v !== 'number' || !isFinite(v)) return '–';
    return v.toFixed(digits).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
  }
  function mib(v) {
    if (typeof v !== 'number') return '–';
    return v >= 1024 ? num(v / 1024, 1) + ' GiB' : num(v, 0) + ' MiB';
  }
  function pct(v) {
    return typeof v === 'number' && isFinite(v) ? (v * 100).toFixed(1) + '%' : '–';
  }
  function ms(v) {
    if (typeof v !== 'number' || !isFinite(v)) return '–';
    return v >= 1000 ? num(v / 1000, 2) + ' s' : num(v, 0) + ' ms';
  }
  function clock(t) {
    return new Date(t).toLocaleTimeString([], {hour12: false});
  }

  // ---- the API --------------------------------------------------------------------

  // GET API + path: {body, index}; throws an Error naming the path and the
  // API's own message when the reply is not a 200 of JSON.
  async function get(path) {
    let r;
    try {
      r = await fetch(API + path, {cache: 'no-store'});
    } catch (e) {
      throw new Error('cannot reach the API (' + e.message + ')');
    }
    let body = null;
    try {
      body = await r.json();
    } catch (e) {
      throw new Error('/v1/' + path + ': HTTP ' + r.status + ', not JSON');
    }
    if (!r.ok)
      throw new Error('/v1/' + path + ': ' + r.status + ' ' + (body && body.message || ''));
    return {body, index: Number(r.headers.get('X-Cell-Index')) || 0};
  }

  function jobPath(name) {
    return 'jobs/' + encodeURIComponent(name) + '/tasks';
  }

  async function readTasks(name) {
    if (name == null) return null;
    try {
      return {job: name, list: (await get(jobPath(name))).body};
    } catch (e) {
      return {job: name, error: e.message};
    }
  }

  function sleep(t) {
    return new Promise((resolve) => setTimeout(resolve, t));
  }

  async function loop() {
    let index = null;
    for (;;) {
      const started = Date.now();
      try {
        const st = await get(index == null ? 'stats' : 'stats?index=' + index + '&wait=' + WAIT);
        const [m, j, t] = await Promise.all([get('machines'), get('jobs'),
          readTasks(page.selected)]);
        index = Math.max(st.index, m.index, j.index);
        page.stats = st.body;
        page.machines = m.body;
        page.jobs = j.body;
        if (t == null || t.job === page.selected) page.tasks = t;
        page.version = index;
        page.updated = Date.now();
        page.error = null;
        page.retryMs = 0;
        sample(st.body, page.updated);
        draw();
      } catch (e) {
        // Keep what was shown, say why it is not live, and try again
        // later and later (the server may be restarting).
        page.retryMs = Math.min(page.retryMs ? page.retryMs * 2 : 1000, RETRY_MAX_MS);
        page.error = e.message;
        index = null;
        drawStatus();
        await sleep(page.retryMs);
        continue;
      }
      const gap = Date.now() - started;
      if (gap < MIN_GAP_MS) await sleep(MIN_GAP_MS - gap);
    }
  }

  // ---- the schedulers' series and the conflicts -------------------------------------

  function event(t, text, kind) {
    page.events.unshift({t, text, kind});
    page.events.length = Math.min(page.events.length, EVENTS);
  }

  // One point per new report: a report read again (the same arrival,
  // within the jitter of two requests) adds nothing.
  function sample(stats, now) {
    // A scheduler the server forgot (silent for 10 minutes) leaves the page too.
    const names = new Set((stats.schedulers || []).map((s) => s.name));
    for (const name of page.series.keys()) if (!names.has(name)) page.series.delete(name);
    for (const s of stats.schedulers || []) {
      let ser = page.series.get(s.name);
      if (!ser) {
        ser = {arrival: -Infinity, points: [], prev: null};
        page.series.set(s.name, ser);
      }
      const arrival = now - (s.age_ms || 0);
      if (arrival - ser.arrival < 250) continue;
      ser.arrival = arrival;
      const m = s.metrics || {};
      ser.points.push({t: arrival, m});
      if (ser.points.length > POINTS) ser.points.shift();
      const p = ser.prev;
      if (p && m.claims_conflicted > p.claims_conflicted) {
        const claims = m.claims_conflicted - p.claims_conflicted;
        const txns = (m.txn_conflicted || 0) - (p.txn_conflicted || 0);
        event(arrival, s.name + ': ' + claims + ' claim' + (claims === 1 ? '' : 's') +
          ' conflicted in ' + txns + ' transaction' + (txns === 1 ? '' : 's') +
          ' (conflict fraction ' + pct(m.conflict_fraction) + ')', 'conflict');
      }
      ser.prev = m;
    }
  }

  // ---- drawing --------------------------------------------------------------------

  function drawStatus() {
    const s = document.getElementById('status');
    if (page.error) {
      s.className = 'status down';
      s.textContent = 'API unreachable: ' + page.error + ' — retrying in ' +
        Math.round(page.retryMs / 1000) + ' s' +
        (page.updated ? '; showing the cell as of ' + clock(page.updated) : '');
    } else {
      s.className = 'status live';
      s.textContent = 'live · version ' + page.version + ' · ' + clock(page.updated);
    }
  }

  function drawSummary() {
    const st = page.stats;
    const tasks = st.tasks || {};
    const running = tasks.running || 0;
    const pending = tasks.pending || 0;
    const cap = st.capacity || {};
    const alloc = st.allocated || {};
    fill('summary',
      el('span', null, 'machines ', el('b', null, st.machines_up + ' up'), ' of ' + st.machines),
      el('span', null, 'jobs ', el('b', null, st.jobs_active + ' active'), ' of ' + st.jobs),
      el('span', null, 'tasks ', el('b', null, running + ' running'), ', ' + pending + ' pending'),
      el('span', null, 'cpu ', el('b', null, num(alloc.cpu, 2)), ' / ' + num(cap.cpu, 2)),
      el('span', null, 'mem ', el('b', null, mib(alloc.mem)), ' / ' + mib(cap.mem)));
  }

  function bar(used, cap, text) {
    const f = cap > 0 ? Math.min(used / cap, 1) : 0;
    const b = el('span', {class: f >= 1 ? 'bar full' : f >= 0.85 ? 'bar high' : 'bar',
      title: text});
    const s = el('span');
    s.style.width = (f * 100).toFixed(1) + '%';
    b.append(s);
    return el('td', null, b, el('span', {class: 'res'}, text));
  }

  function more(n) {
    return n > ROWS ? el('p', {class: 'more'}, (n - ROWS) + ' more not shown') : null;
  }

  function drawMachines() {
    const ms_ = page.machines;
    if (!ms_.length) return fill('machines', el('p', {class: 'empty'}, 'no machine registered'));
    const rows = ms_.slice(0, ROWS).map((m) => {
      const a = m.allocated || {};
      const c = m.capacity || {};
      const admin = m.admin === 'draining' && m.drained ? 'drained' : m.admin;
      return el('tr', {'data-machine': m.name},
        el('td', null, m.name),
        el('td', null, badge(m.state)),
        el('td', null, admin === 'active' ? '' : badge(admin === 'drained' ? 'draining' : admin,
          admin === 'drained' ? 'drained: no task left' : null)),
        bar(a.cpu, c.cpu, num(a.cpu, 2) + ' / ' + num(c.cpu, 2) + ' cores'),
        bar(a.mem, c.mem, mib(a.mem) + ' / ' + mib(c.mem)),
        bar(a.disk, c.disk, mib(a.disk) + ' / ' + mib(c.disk)),
        el('td', {class: 'num'}, m.tasks));
    });
    fill('machines', el('table', null,
      el('thead', null, el('tr', null, el('th', null, 'machine'), el('th', null, 'state'),
        el('th', null, 'admin'), el('th', null, 'cpu'), el('th', null, 'mem'),
        el('th', null, 'disk'), el('th', {class: 'num'}, 'tasks'))),
      el('tbody', null, rows)), more(ms_.length));
  }

  function counts(c) {
    const shown = TASK_STATES.filter((s) => c && c[s] > 0);
    if (!shown.length) return el('td', {class: 'counts empty'}, 'no task');
    return el('td', {class: 'counts'}, shown.map((s) => badge(s + ' ' + c[s], null, s)));
  }

  function select(name) {
    page.selected = name;
    page.tasks = null;
    history.replaceState(null, '', name == null ? '#' : '#job=' + encodeURIComponent(name));
    drawJobs();
    drawTasks();
    readTasks(name).then((t) => {
      if (page.selected === name) {
        page.tasks = t;
        drawTasks();
      }
    });
  }

  function drawJobs() {
    const js = page.jobs;
    if (!js.length) return fill('jobs', el('p', {class: 'empty'}, 'no job'));
    const rows = js.slice(0, ROWS).map((j) => el('tr',
      {'data-job': j.name, class: j.name === page.selected ? 'selected' : null},
      el('td', null, el('button', {class: 'job', type: 'button',
        onclick: () => select(j.name === page.selected ? null : j.name)}, j.name)),
      el('td', null, j.kind),
      el('td', null, badge(j.state)),
      el('td', {class: 'num'}, j.priority),
      el('td', {class: 'num'}, j.count),
      counts(j.tasks)));
    fill('jobs', el('table', null,
      el('thead', null, el('tr', null, el('th', null, 'job'), el('th', null, 'kind'),
        el('th', null, 'state'), el('th', {class: 'num'}, 'priority'),
        el('th', {class: 'num'}, 'count'), el('th', null, 'tasks by state'))),
      el('tbody', null, rows)), more(js.length));
  }

  function drawTasks() {
    const box = document.getElementById('tasks-box');
    box.hidden = page.selected == null;
    if (page.selected == null) return;
    document.getElementById('tasks-title').replaceChildren('Tasks of ',
      el('b', null, page.selected));
    const t = page.tasks;
    if (t == null || t.job !== page.selected) return fill('tasks', el('p', {class: 'empty'},
      'reading…'));
    if (t.error) return fill('tasks', el('p', {class: 'error'}, t.error));
    if (!t.list.length) return fill('tasks', el('p', {class: 'empty'}, 'no task'));
    const rows = t.list.slice(0, ROWS).map((k) => el('tr', null,
      el('td', {class: 'num'}, k.index),
      el('td', {class: 'num'}, k.id),
      el('td', null, badge(k.state)),
      el('td', null, k.machine == null ? '–' : k.machine),
      el('td', null, badge(k.health)),
      el('td', {class: 'num'}, k.attempts),
      el('td', null, (k.ports || []).join(', ') || '–'),
      el('td', null, k.last_end === 'pending' && !k.reason ? '' :
        k.last_end + (k.exit_code ? ' (exit ' + k.exit_code + ')' : '') +
        (k.reason ? ': ' + k.reason : ''))));
    fill('tasks', el('table', null,
      el('thead', null, el('tr', null, el('th', {class: 'num'}, 'index'),
        el('th', {class: 'num'}, 'id'), el('th', null, 'state'), el('th', null, 'machine'),
        el('th', null, 'health'), el('th', {class: 'num'}, 'attempts'),
        el('th', null, 'ports'), el('th', null, 'last end'))),
      el('tbody', null, rows)), more(t.list.length));
  }

  // An inline SVG line of values (one or two series, the second dashed in
  // its own colour), scaled from 0 to the largest value shown, at least
  // `floor` so that a flat small series stays low.
  const SVGNS = 'http://www.w3.org/2000/svg';
  function spark(series, floor) {
    const w = 120, h = 26;
    const svg = document.createElementNS(SVGNS, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('width', w);
    svg.setAttribute('height', h);
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    let max = floor;
    for (const s of series) for (const v of s) if (isFinite(v) && v > max) max = v;
    series.forEach((s, i) => {
      if (s.length < 1) return;
      const n = Math.max(s.length - 1, 1);
      const pts = s.map((v, k) => (k / n * (w - 2) + 1).toFixed(1) + ',' +
        (h - 3 - (isFinite(v) ? v : 0) / max * (h - 6)).toFixed(1));
      if (s.length === 1) pts.push((w - 1) + ',' + pts[0].split(',')[1]);
      const line = document.createElementNS(SVGNS, 'polyline');
      line.setAttribute('points', pts.join(' '));
      if (i) line.setAttribute('class', 'second');
      svg.append(line);
    });
    return svg;
  }

  const METRICS = [
    {key: 'busyness', label: 'busyness', fmt: pct, floor: 0.05,
      series: (m) => [m.busyness]},
    {key: 'conflict_fraction', label: 'conflict fraction', fmt: pct, floor: 0.05,
      series: (m) => [m.conflict_fraction]},
    {key: 'wait', label: 'wait p50 / p99', floor: 10,
      fmt: (m) => ms(m.wait_first_p50_ms) + ' / ' + ms(m.wait_first_p99_ms),
      series: (m) => [m.wait_first_p50_ms, m.wait_first_p99_ms]},
    {key: 'placements_per_s', label: 'placements/s', fmt: (v) => num(v, 1), floor: 1,
      series: (m) => [m.placements_per_s]},
  ];

  function drawSchedulers() {
    const ss = (page.stats && page.stats.schedulers) || [];
    if (!ss.length) return fill('schedulers', el('p', {class: 'empty'},
      'no scheduler reported in the last 10 minutes'));
    fill('schedulers', el('div', {class: 'scheds'}, ss.map((s) => {
      const m = s.metrics || {};
      const pts = (page.series.get(s.name) || {points: []}).points;
      return el('div', {class: 'sched', 'data-scheduler': s.name},
        el('h3', null, s.name, el('small', null, s.kind + ' · report ' + ms(s.age_ms) + ' ago')),
        s.warning ? el('p', {class: 'warning'}, s.warning) : null,
        METRICS.map((d) => {
          const cur = d.key === 'wait' ? d.fmt(m) : d.fmt(m[d.key]);
          const series = d.series(m).map((_, i) => pts.map((p) => d.series(p.m)[i]));
          return el('div', {class: 'metric', 'data-metric': d.key},
            el('span', null, d.label), spark(series, d.floor),
            el('span', {class: 'value'}, cur));
        }),
        el('div', {class: 'metric'}, el('span', null, 'pending tasks'), el('span'),
          el('span', {class: 'value'}, m.pending_tasks == null ? '–' : m.pending_tasks)));
    })));
  }

  function drawEvents() {
    const noted = page.jobs.filter((j) => j.note);
    const warned = ((page.stats && page.stats.schedulers) || []).filter((s) => s.warning);
    const parts = [];
    parts.push(el('h4', null, 'conflicts (since this page opened)'));
    parts.push(page.events.length ? el('ul', {class: 'events'}, page.events.map((e) =>
      el('li', null, el('time', null, clock(e.t)), e.text)))
      : el('p', {class: 'empty'}, 'none seen'));
    parts.push(el('h4', null, 'job notes (why tasks wait)'));
    parts.push(noted.length ? el('ul', {class: 'events'}, noted.slice(0, ROWS).map((j) =>
      el('li', null, el('b', null, j.name), ': ' + j.note)))
      : el('p', {class: 'empty'}, 'none'));
    if (warned.length) {
      parts.push(el('h4', null, 'scheduler warnings'));
      parts.push(el('ul', {class: 'events'}, warned.map((s) =>
        el('li', null, el('b', null, s.name), ': ' + s.warning))));
    }
    fill('events', parts);
  }

  function draw() {
    drawStatus();
    drawSummary();
    drawMachines();
    drawJobs();
    drawTasks();
    drawSchedulers();
    drawEvents();
  }

  function selectedFromHash() {
    const m = /^#job=(.+)$/.exec(location.hash);
    if (!m) return null;
    try {
      return decodeURIComponent(m[1]);
    } catch (e) {
      return null;
    }
  }

  // Back, forward or an edited URL move the selection too.
  window.addEventListener('hashchange', () => {
    const name = selectedFromHash();
    if (name !== page.selected) select(name);
  });
  loop();
})();
