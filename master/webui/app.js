// Strata's operator web UI: hash-routed pages over the master's /state, /roles and
// /master/utilization, and the agents' /state, /monitor/statistics and /files endpoints (read
// straight from the browser). Every page refreshes by polling, without reloading.
'use strict';

const POLL_MS = 1500;
const SCALARS = ['cpus', 'mem', 'disk', 'gpus'];
const view = document.getElementById('view');
const statusEl = document.getElementById('status');

// ---- helpers ---------------------------------------------------------------------------------

function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}
function num(v, digits = 2) {
  const n = Number(v || 0);
  return String(Number.isInteger(n) ? n : parseFloat(n.toFixed(digits)));
}
function bytes(n) {
  n = Number(n || 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
function mb(n) { return bytes(Number(n || 0) * 1024 * 1024); }
function fmtScalar(name, v) { return name === 'mem' || name === 'disk' ? mb(v) : num(v); }
function time(ts) { return ts ? new Date(ts * 1000).toLocaleTimeString() : ''; }
function pill(text, cls) { return `<span class="pill ${esc(cls || '')}">${esc(text)}</span>`; }
function statePill(state) { return `<span class="pill state-${esc(state)}" data-state="${esc(state)}">${esc(state)}</span>`; }
function link(hash, text) { return `<a href="#${esc(hash)}">${esc(text)}</a>`; }
function attrs(a) {
  if (!a || typeof a !== 'object') return '';
  return Object.entries(a).map(([k, v]) => `${esc(k)}:${esc(typeof v === 'object' ? JSON.stringify(v) : v)}`).join('; ');
}
function resText(r) {
  return SCALARS.filter(n => r && r[n]).map(n => `${n}: ${fmtScalar(n, r[n])}`).join(', ') || '—';
}
function bar(used, total) {
  const pct = total > 0 ? Math.min(100, 100 * used / total) : 0;
  return `<div class="bar" title="${pct.toFixed(1)}%"><div style="width:${pct.toFixed(1)}%"></div></div>`;
}
// http://host:port of an agent, from its `pid` (slave(1)@host:port) or hostname and port.
function agentUrl(slave) {
  const m = /@(.+)$/.exec(slave.pid || '');
  return `http://${m ? m[1] : `${slave.hostname}:${slave.port}`}`;
}
function agentState(s) {
  if (s.state === 'unreachable' || s.state === 'UNREACHABLE') return 'unreachable';
  if (s.drain_info || s.deactivated) return 'draining';
  return s.active ? 'active' : (s.state || 'inactive');
}
function allTasks(state) {
  const out = [];
  for (const fw of [...state.frameworks, ...state.completed_frameworks]) {
    for (const t of [...(fw.tasks || []), ...(fw.completed_tasks || [])]) out.push({ ...t, framework_name: fw.name });
  }
  return out;
}
function dominantShare(used, total) {
  let best = 0;
  for (const n of SCALARS) if (total[n] > 0) best = Math.max(best, (used[n] || 0) / total[n]);
  return best;
}

// ---- routing ---------------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = hash.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query), page: parts[0] || 'overview' };
}

const pages = {};
let current = null; // { key, page }
let timer = null;
let generation = 0;

async function tick() {
  clearTimeout(timer);
  const gen = generation;
  const r = route();
  try {
    await current.page.update(r);
    if (gen !== generation) return;
    statusEl.textContent = `updated ${new Date().toLocaleTimeString()}`;
    statusEl.className = '';
  } catch (err) {
    if (gen !== generation) return;
    statusEl.textContent = `error: ${err.message}`;
    statusEl.className = 'error';
  }
  if (gen === generation) timer = setTimeout(tick, POLL_MS);
}

function navigate() {
  const r = route();
  const page = pages[r.page] || pages.overview;
  // Pages whose path (not query) is unchanged keep their state (a followed log, form inputs).
  const key = r.parts.join('/');
  generation++;
  if (!current || current.key !== key) {
    current = { key, page: page() };
    view.innerHTML = '';
    current.page.mount(view, r);
  } else if (current.page.sync) {
    current.page.sync(r);
  }
  for (const a of document.querySelectorAll('header nav a')) {
    a.classList.toggle('active', a.dataset.page === (pages[r.page] ? r.page : 'overview'));
  }
  tick();
}
window.addEventListener('hashchange', navigate);

// A page whose whole view is rebuilt from `render(route)` on each poll.
function simplePage(render) {
  return () => {
    let el;
    return {
      mount(root) { el = root; },
      async update(r) { el.innerHTML = await render(r); },
    };
  };
}

// ---- overview --------------------------------------------------------------------------------

// The utilisation now, from /state, drawn after the master's samples (taken every 10 s).
function liveSample(state) {
  const s = { time: Date.now() / 1000 };
  for (const n of SCALARS) { s[`${n}_total`] = state.total_resources[n] || 0; s[`${n}_used`] = state.used_resources[n] || 0; }
  return s;
}

function chart(recorded, live) {
  const samples = [...recorded, live];
  const W = 760, H = 200, P = 30;
  const now = Date.now() / 1000, from = now - 3600;
  const x = t => P + (W - 2 * P) * Math.max(0, (t - from) / 3600);
  const y = f => H - P - (H - 2 * P) * Math.min(1, Math.max(0, f));
  const series = [
    ['cpus', '#2f6fde'], ['mem', '#2e9d5b'], ['disk', '#d98c1f'], ['gpus', '#9b4fd1'],
  ].filter(([n]) => samples.some(s => s[`${n}_total`] > 0));
  const lines = series.map(([n, color]) => {
    const pts = samples.map(s => `${x(s.time).toFixed(1)},${y(s[`${n}_total`] > 0 ? s[`${n}_used`] / s[`${n}_total`] : 0).toFixed(1)}`);
    return `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}"/>` +
      (samples.length === 1 ? `<circle cx="${pts[0].split(',')[0]}" cy="${pts[0].split(',')[1]}" r="3" fill="${color}"/>` : '');
  }).join('');
  const grid = [0, 0.25, 0.5, 0.75, 1].map(f =>
    `<line x1="${P}" x2="${W - P}" y1="${y(f)}" y2="${y(f)}" stroke="#e4e7ed"/><text x="2" y="${y(f) + 4}" font-size="10" fill="#6b7385">${f * 100}%</text>`).join('');
  const ticks = [60, 45, 30, 15, 0].map(m =>
    `<text x="${x(now - m * 60) - 12}" y="${H - 8}" font-size="10" fill="#6b7385">${m ? `-${m}m` : 'now'}</text>`).join('');
  const legend = series.map(([n, c]) => `<span><i style="background:${c}"></i>${n}</span>`).join('');
  return `<div class="chart"><svg id="utilization-chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" data-samples="${recorded.length}">${grid}${ticks}${lines}</svg>
    <div class="legend">${legend || '<span class="muted">no resources yet</span>'} <span class="muted">${recorded.length} samples from the master (one every 10 s), and now</span></div></div>`;
}

pages.overview = simplePage(async () => {
  const [state, util] = await Promise.all([getJSON('/state'), getJSON('/master/utilization').catch(() => ({ samples: [] }))]);
  const tasks = allTasks(state);
  const byState = {};
  for (const t of tasks) byState[t.state] = (byState[t.state] || 0) + 1;
  const agents = state.slaves;
  const counts = { active: 0, draining: 0, unreachable: 0 };
  for (const s of agents) { const k = agentState(s); counts[k] = (counts[k] || 0) + 1; }
  const card = (id, n, label, href) => `<div class="card"><div class="num" id="${id}">${n}</div><div class="label">${href ? link(href, label) : esc(label)}</div></div>`;
  const stateCards = Object.keys(byState).sort().map(s =>
    card(`count-${s}`, byState[s], s, `/tasks?state=${s}`)).join('');
  const bars = SCALARS.map(n => {
    const used = state.used_resources[n] || 0, total = state.total_resources[n] || 0;
    return `<div>${n}</div>${bar(used, total)}<div class="muted" id="alloc-${n}">${fmtScalar(n, used)} / ${fmtScalar(n, total)} allocated</div>`;
  }).join('');
  return `<h1>Overview</h1>
    <div class="cards">
      ${card('count-agents', agents.length, 'agents', '/agents')}
      ${card('count-agents-active', counts.active, 'active')}
      ${card('count-agents-draining', counts.draining, 'draining')}
      ${card('count-agents-unreachable', counts.unreachable, 'unreachable')}
      ${counts.disconnected ? card('count-agents-disconnected', counts.disconnected, 'disconnected') : ''}
      ${card('count-frameworks', state.frameworks.length, 'frameworks', '/frameworks')}
      ${card('count-tasks', tasks.length, 'tasks', '/tasks')}
    </div>
    <h2>Tasks by state</h2><div class="cards">${stateCards || '<span class="muted">no tasks</span>'}</div>
    <h2>Allocated vs total</h2><div class="bars">${bars}</div>
    <h2>Utilisation, last hour</h2>${chart(util.samples || [], liveSample(state))}
    <p class="muted">Master ${esc(state.hostname)} (${esc(state.id)}), version ${esc(state.version)}, elected ${esc(new Date(state.elected_time * 1000).toLocaleString())}</p>`;
});

// ---- agents ----------------------------------------------------------------------------------

pages.agents = () => {
  const list = simplePage(async () => {
    const state = await getJSON('/state');
    const rows = state.slaves.map(s => {
      const reserved = {};
      for (const r of Object.values(s.reserved_resources || {})) for (const n of SCALARS) reserved[n] = (reserved[n] || 0) + (r[n] || 0);
      const cell = n => `<td class="num">${fmtScalar(n, s.used_resources[n])} / ${fmtScalar(n, reserved[n])} / ${fmtScalar(n, s.free_resources[n])} / ${fmtScalar(n, s.resources[n])}</td>`;
      const st = agentState(s);
      return `<tr data-agent="${esc(s.id)}"><td>${link(`/agents/${encodeURIComponent(s.id)}`, s.id)}</td><td>${esc(s.hostname)}:${esc(s.port)}</td>
        <td>${pill(st, st)}</td>${['cpus', 'mem', 'disk', 'gpus'].map(cell).join('')}<td>${attrs(s.attributes)}</td></tr>`;
    }).join('');
    return `<h1>Agents</h1><table id="agents"><thead><tr><th>ID</th><th>Address</th><th>State</th>
      <th class="num">CPUs used / reserved / free / total</th><th class="num">Mem</th><th class="num">Disk</th><th class="num">GPUs</th><th>Attributes</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="8" class="muted">no agents</td></tr>'}</tbody></table>`;
  });
  const one = agentPage();
  let page = null;
  return {
    mount(root, r) { page = r.parts[1] ? one : list(); page.mount(root, r); },
    update(r) { return page.update(r); },
  };
};

function agentPage() {
  let el;
  let previous = new Map(); // executor id → statistics of the last poll (for CPU rates)
  return {
    mount(root) { el = root; },
    async update(r) {
      const id = r.parts[1];
      const state = await getJSON('/state');
      const s = state.slaves.find(a => a.id === id);
      if (!s) { el.innerHTML = `<h1>Agent ${esc(id)}</h1><div class="error-box">no such agent</div>`; return; }
      const base = agentUrl(s);
      let stats = [], agentState_ = null, err = '';
      try {
        [stats, agentState_] = await Promise.all([getJSON(`${base}/monitor/statistics`), getJSON(`${base}/state`)]);
      } catch (e) { err = `cannot reach the agent at ${base}: ${e.message}`; }
      const names = {};
      for (const fw of (agentState_ && agentState_.frameworks) || []) for (const e of fw.executors || []) names[e.id] = e;
      const next = new Map();
      const rows = stats.map(c => {
        const st = c.statistics || {};
        const cpuTime = (st.cpus_user_time_secs || 0) + (st.cpus_system_time_secs || 0);
        const prev = previous.get(c.executor_id);
        next.set(c.executor_id, { cpuTime, ts: st.timestamp });
        const rate = prev && st.timestamp > prev.ts ? (cpuTime - prev.cpuTime) / (st.timestamp - prev.ts) : null;
        const fw = c.framework_id;
        return `<tr data-container="${esc(c.executor_id)}"><td>${link(`/tasks/${encodeURIComponent(fw)}/${encodeURIComponent(c.executor_id)}`, c.executor_id)}</td>
          <td>${esc(fw)}</td><td class="num">${rate === null ? '…' : rate.toFixed(3)} / ${num(st.cpus_limit)}</td>
          <td class="num">${bytes(st.mem_rss_bytes || st.mem_total_bytes)} / ${st.mem_limit_bytes ? bytes(st.mem_limit_bytes) : '—'}</td>
          <td class="num">${st.net_rx_bytes == null ? '—' : bytes(st.net_rx_bytes)} / ${st.net_tx_bytes == null ? '—' : bytes(st.net_tx_bytes)}</td>
          <td class="num">${st.processes ?? '—'}</td><td class="muted">${esc(names[c.executor_id] ? names[c.executor_id].directory : '')}</td></tr>`;
      }).join('');
      previous = next;
      const st = agentState(s);
      el.innerHTML = `<h1>Agent <span id="agent-id">${esc(s.id)}</span></h1>
        <dl class="kv"><dt>Address</dt><dd><a href="${esc(base)}/state">${esc(base)}</a></dd><dt>State</dt><dd>${pill(st, st)}</dd>
        <dt>Registered</dt><dd>${esc(new Date(s.registered_time * 1000).toLocaleString())}</dd>
        <dt>Total</dt><dd>${esc(resText(s.resources))}</dd><dt>Used</dt><dd>${esc(resText(s.used_resources))}</dd>
        <dt>Free</dt><dd>${esc(resText(s.free_resources))}</dd><dt>Reserved</dt><dd>${Object.entries(s.reserved_resources || {}).map(([role, res]) => `${esc(role)}: ${esc(resText(res))}`).join('<br>') || '—'}</dd>
        <dt>Attributes</dt><dd>${attrs(s.attributes) || '—'}</dd></dl>
        <h2>Containers (live usage)</h2>${err ? `<div class="error-box">${esc(err)}</div>` : ''}
        <table id="containers"><thead><tr><th>Task</th><th>Framework</th><th class="num">CPU (cores used / limit)</th><th class="num">Memory (RSS / limit)</th>
        <th class="num">Network rx / tx</th><th class="num">Processes</th><th>Sandbox</th></tr></thead>
        <tbody>${rows || '<tr><td colspan="7" class="muted">no running containers</td></tr>'}</tbody></table>`;
    },
  };
}

// ---- frameworks and roles --------------------------------------------------------------------

pages.frameworks = simplePage(async () => {
  const state = await getJSON('/state');
  const row = (f, done) => `<tr data-framework="${esc(f.id)}"><td>${esc(f.id)}</td><td>${esc(f.name)}</td><td>${esc((f.roles || []).join(', ') || f.role)}</td>
    <td>${done ? pill('completed') : f.active ? pill('active', 'active') : pill('inactive', 'draining')}</td>
    <td class="num">${link(`/tasks?framework=${encodeURIComponent(f.id)}`, (f.tasks || []).length)}</td>
    <td class="num">${esc(resText(f.used_resources))}</td><td class="num">${(100 * dominantShare(f.used_resources, state.total_resources)).toFixed(1)}%</td>
    <td class="num">${(f.offers || []).length} (${esc(resText(f.offered_resources))})</td><td>${esc(time(f.registered_time))}</td></tr>`;
  const rows = state.frameworks.map(f => row(f, false)).join('') + state.completed_frameworks.map(f => row(f, true)).join('');
  return `<h1>Frameworks</h1><table id="frameworks"><thead><tr><th>ID</th><th>Name</th><th>Roles</th><th>State</th><th class="num">Active tasks</th>
    <th class="num">Allocated</th><th class="num">Dominant share</th><th class="num">Offers outstanding</th><th>Registered</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="9" class="muted">no frameworks</td></tr>'}</tbody></table>`;
});

pages.roles = simplePage(async () => {
  const [roles, state] = await Promise.all([getJSON('/roles'), getJSON('/state')]);
  const scal = o => resText(o || {});
  const rows = (roles.roles || []).map(r => `<tr data-role="${esc(r.name)}"><td>${esc(r.name)}</td><td class="num">${num(r.weight)}</td>
    <td>${(r.frameworks || []).map(esc).join('<br>')}</td><td class="num">${esc(scal(r.allocated))}</td>
    <td class="num">${(100 * dominantShare(r.allocated || {}, state.total_resources)).toFixed(1)}%</td><td class="num">${esc(scal(r.offered))}</td>
    <td class="num">${esc(scal(r.reserved))}</td><td class="num">${r.quota ? esc(`guarantee ${scal(r.quota.guarantee)}; limit ${scal(r.quota.limit)}; consumed ${scal(r.quota.consumed)}`) : '—'}</td></tr>`).join('');
  return `<h1>Roles</h1><table id="roles"><thead><tr><th>Role</th><th class="num">Weight</th><th>Frameworks</th><th class="num">Allocated</th>
    <th class="num">Dominant share</th><th class="num">Offered</th><th class="num">Reserved</th><th class="num">Quota</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="8" class="muted">no roles</td></tr>'}</tbody></table>`;
});

// ---- tasks -----------------------------------------------------------------------------------

const TASK_STATES = ['TASK_STAGING', 'TASK_STARTING', 'TASK_RUNNING', 'TASK_KILLING', 'TASK_FINISHED', 'TASK_FAILED',
  'TASK_KILLED', 'TASK_ERROR', 'TASK_LOST', 'TASK_DROPPED', 'TASK_UNREACHABLE', 'TASK_GONE', 'TASK_GONE_BY_OPERATOR', 'TASK_UNKNOWN'];
const FILTERS = ['state', 'framework', 'agent', 'name'];

pages.tasks = () => {
  const one = taskPage();
  let page = null;
  return {
    mount(root, r) { page = r.parts[1] ? one : taskList(); page.mount(root, r); },
    update(r) { return page.update(r); },
    sync(r) { if (page.sync) page.sync(r); },
  };
};

function taskList() {
  let table, form;
  const fill = r => {
    for (const f of FILTERS) {
      const v = r.query.get(f) || '';
      if (form.elements[f].value !== v) form.elements[f].value = v;
    }
  };
  return {
    sync: fill,
    mount(root, r) {
      root.innerHTML = `<h1>Tasks</h1><form class="filters" id="task-filters">
        <label>State<select name="state"><option value="">any</option>${TASK_STATES.map(s => `<option>${s}</option>`).join('')}</select></label>
        <label>Framework<input name="framework" placeholder="id or name"></label>
        <label>Agent<input name="agent" placeholder="agent id"></label>
        <label>Name<input name="name" placeholder="task id or name contains"></label></form><div id="task-table"></div>`;
      table = root.querySelector('#task-table');
      form = root.querySelector('#task-filters');
      fill(r);
      const sync = () => {
        const q = new URLSearchParams();
        for (const f of FILTERS) if (form.elements[f].value) q.set(f, form.elements[f].value);
        const qs = q.toString();
        location.hash = `/tasks${qs ? `?${qs}` : ''}`;
      };
      form.addEventListener('input', sync);
      form.addEventListener('submit', e => { e.preventDefault(); sync(); });
    },
    async update(r) {
      const state = await getJSON('/state');
      const q = Object.fromEntries(FILTERS.map(f => [f, (r.query.get(f) || '').toLowerCase()]));
      const tasks = allTasks(state).filter(t => (!q.state || t.state.toLowerCase() === q.state)
        && (!q.framework || t.framework_id.toLowerCase().includes(q.framework) || (t.framework_name || '').toLowerCase().includes(q.framework))
        && (!q.agent || t.slave_id.toLowerCase().includes(q.agent))
        && (!q.name || t.id.toLowerCase().includes(q.name) || (t.name || '').toLowerCase().includes(q.name)));
      const rows = tasks.map(t => `<tr data-task="${esc(t.id)}"><td>${link(`/tasks/${encodeURIComponent(t.framework_id)}/${encodeURIComponent(t.id)}`, t.id)}</td>
        <td>${esc(t.name)}</td><td>${esc(t.framework_name)} <span class="muted">${esc(t.framework_id)}</span></td>
        <td>${link(`/agents/${encodeURIComponent(t.slave_id)}`, t.slave_id)}</td><td>${statePill(t.state)}</td><td class="num">${esc(resText(t.resources))}</td>
        <td>${esc(time(t.statuses.length ? t.statuses[t.statuses.length - 1].timestamp : 0))}</td></tr>`).join('');
      table.innerHTML = `<p class="muted" id="task-count">${tasks.length} tasks</p><table id="tasks"><thead><tr><th>ID</th><th>Name</th><th>Framework</th><th>Agent</th>
        <th>State</th><th class="num">Resources</th><th>Updated</th></tr></thead><tbody>${rows || '<tr><td colspan="7" class="muted">no tasks match</td></tr>'}</tbody></table>`;
    },
  };
}

function taskPage() {
  let info, files, log, follow, fileSel;
  let sandbox = null, agentBase = null;
  let file = 'stdout', offset = 0, reading = false, opened = 0;
  const readMore = async () => {
    if (!sandbox || reading) return;
    reading = true;
    const epoch = opened;
    try {
      const path = `${sandbox}/${file}`;
      for (let i = 0; i < 16; i++) {
        const chunk = await getJSON(`${agentBase}/files/read?path=${encodeURIComponent(path)}&offset=${offset}&length=65536`);
        // Another file was opened meanwhile: this one's data is not wanted any more.
        if (epoch !== opened || !chunk.data) break;
        // Count bytes, not UTF-16 units: the agent's offsets are byte offsets.
        offset = chunk.offset + new TextEncoder().encode(chunk.data).length;
        log.append(document.createTextNode(chunk.data));
        if (follow.checked) log.scrollTop = log.scrollHeight;
      }
    } finally { reading = false; }
    if (epoch !== opened) await readMore();
  };
  const open = name => { opened++; file = name; offset = 0; log.textContent = ''; fileSel.value = name; };
  return {
    mount(root) {
      root.innerHTML = `<div id="task-info"></div><h2>Sandbox</h2><div id="task-files"></div>
        <div class="toolbar"><label>File <select id="log-file"><option>stdout</option><option>stderr</option></select></label>
        <label><input type="checkbox" id="log-follow" checked> follow</label></div><pre class="log" id="log"></pre>`;
      info = root.querySelector('#task-info');
      files = root.querySelector('#task-files');
      log = root.querySelector('#log');
      follow = root.querySelector('#log-follow');
      fileSel = root.querySelector('#log-file');
      fileSel.addEventListener('change', () => { open(fileSel.value); readMore(); });
      files.addEventListener('click', e => {
        const a = e.target.closest('a[data-file]');
        if (!a) return;
        e.preventDefault();
        if (![...fileSel.options].some(o => o.value === a.dataset.file)) fileSel.append(new Option(a.dataset.file));
        open(a.dataset.file);
        readMore();
      });
    },
    async update(r) {
      const [fwId, taskId] = [r.parts[1], r.parts[2]];
      const state = await getJSON('/state');
      const t = allTasks(state).find(x => x.id === taskId && x.framework_id === fwId);
      if (!t) { info.innerHTML = `<h1>Task ${esc(taskId)}</h1><div class="error-box">no such task of framework ${esc(fwId)}</div>`; return; }
      const slave = state.slaves.find(s => s.id === t.slave_id);
      const image = t.container && t.container.image ? `${t.container.image.name} (${t.container.image.type})` : null;
      const history = t.statuses.map(s => `<tr><td>${esc(new Date(s.timestamp * 1000).toLocaleString())}</td><td>${statePill(s.state)}</td><td>${esc(s.message)}</td></tr>`).join('');
      info.innerHTML = `<h1>Task ${esc(t.id)} ${statePill(t.state).replace('class="pill', 'id="task-state" class="pill')}</h1>
        <dl class="kv"><dt>Name</dt><dd>${esc(t.name)}</dd><dt>Framework</dt><dd>${esc(t.framework_name)} (${esc(t.framework_id)})</dd>
        <dt>Agent</dt><dd>${link(`/agents/${encodeURIComponent(t.slave_id)}`, t.slave_id)}</dd><dt>Container</dt><dd>${esc(t.container_id || '—')}</dd>
        <dt>Image</dt><dd id="task-image">${esc(image || '— (no image: the host\'s filesystem)')}</dd>
        <dt>Resources</dt><dd>${esc(resText(t.resources))}${t.resources.ports ? `, ports: ${esc(t.resources.ports)}` : ''}</dd><dt>Sandbox</dt><dd id="sandbox-path">${esc(sandbox || '…')}</dd></dl>
        <h2>Status history</h2><table id="status-history"><thead><tr><th>Time</th><th>State</th><th>Message</th></tr></thead><tbody>${history}</tbody></table>`;
      if (!slave) return;
      agentBase = agentUrl(slave);
      if (!sandbox) {
        const ast = await getJSON(`${agentBase}/state`);
        for (const fw of ast.frameworks || []) {
          if (fw.id !== fwId) continue;
          for (const e of [...(fw.executors || []), ...(fw.completed_executors || [])]) if (e.id === taskId) sandbox = e.directory;
        }
        if (!sandbox) { files.innerHTML = '<span class="muted">the agent has no sandbox for this task</span>'; return; }
        info.querySelector('#sandbox-path').textContent = sandbox;
      }
      try {
        const entries = await getJSON(`${agentBase}/files/browse?path=${encodeURIComponent(sandbox)}`);
        files.innerHTML = `<table id="file-list"><thead><tr><th>Path</th><th>Mode</th><th class="num">Size</th><th>Modified</th></tr></thead><tbody>${entries.map(f => {
          const name = f.path.split('/').pop();
          const isDir = String(f.mode).startsWith('d');
          return `<tr data-file="${esc(name)}"><td>${isDir ? esc(name) + '/' : `<a href="#" data-file="${esc(name)}">${esc(name)}</a>`}</td><td>${esc(f.mode)}</td><td class="num">${bytes(f.size)}</td><td>${esc(time(f.mtime))}</td></tr>`;
        }).join('')}</tbody></table>`;
      } catch (e) {
        files.innerHTML = `<span class="muted">no file list (the agent's /files/browse: ${esc(e.message.replace(/^.*: /, ''))}); stdout and stderr below</span>`;
      }
      await readMore();
    },
  };
}

navigate();
