/**
 * The report page's script (inlined into the page). Every text it shows goes in with textContent, never as
 * markup: URLs and headers are the origin's words. Plain ES2019, no template literals (this is one).
 * The table is paged, so a 100,000-entry netlock filters and sorts in memory and renders one page of rows.
 */
export const PAGE_SCRIPT = String.raw`(function () {
'use strict';
var PAGE_ROWS = 100;
var MAX_HOSTS = 50;
var data = JSON.parse(document.getElementById('fo-data').textContent);
var state = { view: data.live ? 'requests' : 'entries', kind: 'all', host: '', q: '', sort: 'i', dir: 1, page: 0 };
var rows = [];
var shown = [];

function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function byId(id) { return document.getElementById(id); }
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function bytes(n) {
  if (n < 1024) return n + ' B';
  var u = ['KiB', 'MiB', 'GiB', 'TiB'];
  var i = -1;
  do { n = n / 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(n < 10 ? 1 : 0) + ' ' + u[i];
}
function hostOf(u) { var m = /^[a-z][a-z0-9+.-]*:\/\/([^\/?#]+)/i.exec(u); return m ? m[1].toLowerCase() : ''; }

function entryKind(e) {
  if (e.x) return 'new-version';
  if (e.n) return 'negative';
  if (e.l) return 'redirect';
  return 'ok';
}
function buildRows() {
  var out = [];
  var i;
  if (state.view === 'requests' && data.requests) {
    var ev = data.requests.events;
    for (i = 0; i < ev.length; i++) {
      var r = ev[i];
      out.push({ i: r.i, m: r.m, u: r.u, h: hostOf(r.u), s: r.s, z: r.z, c: r.c, k: r.o, t: r.t, d: r.d, note: r.l ? 'redirect to ' + r.l : '' });
    }
    return out;
  }
  var n = 0;
  for (i = 0; i < data.misses.length; i++) {
    var m = data.misses[i];
    out.push({ i: n++, m: m.m, u: m.u, h: hostOf(m.u), s: 504, z: 0, c: '', k: 'miss', t: '', d: 0, note: m.nearest.length ? 'nearest: ' + m.nearest[0].u + ' (differs in ' + m.nearest[0].differs.join(', ') + ')' : 'no recorded request to this host' });
  }
  for (i = 0; i < data.entries.length; i++) {
    var e = data.entries[i];
    out.push({ i: n++, m: e.m, u: e.u, h: e.h, s: e.s, z: e.z, c: e.c, k: entryKind(e), t: e.t, d: 0, note: e.x ? 'new version (was ' + e.x + ')' : e.n ? e.n : e.l ? 'redirect to ' + e.l : '' });
  }
  return out;
}

function card(parent, key, value, id, raw) {
  var c = el('div', 'card');
  var v = el('div', 'v', value);
  if (id) v.id = id;
  if (raw !== undefined) v.setAttribute('data-value', String(raw));
  c.appendChild(v);
  c.appendChild(el('div', 'k', key));
  parent.appendChild(c);
}
function renderTotals() {
  var t = data.totals;
  var box = byId('totals');
  clear(box);
  card(box, 'entries', t.entries, 'total-entries');
  card(box, 'bytes', bytes(t.bytes), 'total-bytes', t.bytes);
  card(box, 'hosts', t.hosts, 'total-hosts');
  card(box, 'hits', t.hits, 'total-hits');
  card(box, 'misses', t.misses, 'total-misses');
  card(box, 'upstream fetches', t.upstreamFetches, 'total-fetches');
  card(box, 'errors', t.errors, 'total-errors');
  if (data.unused !== undefined) card(box, 'unused entries', data.unused, 'total-unused');
  byId('root').textContent = data.netlock ? data.netlock.root : '(no netlock yet)';
  byId('keys').textContent = data.netlock && data.netlock.keys.length ? data.netlock.keys.join(', ') : '-';
  byId('mode').textContent = data.live ? 'live ' + data.mode + ' oracle' : 'netlock report';
}

function renderMisses() {
  var box = byId('misses');
  clear(box);
  if (!data.misses.length) { box.hidden = true; return; }
  box.hidden = false;
  var head = data.misses.length + ' request(s) are not in the netlock';
  if (data.command) head += ': ' + data.command.argv.join(' ') + (data.command.exitCode !== undefined ? ' exited ' + data.command.exitCode : '');
  box.appendChild(el('h2', '', head));
  box.appendChild(el('div', 'muted', 'Each was answered 504 and nothing was fetched from the network.'));
  data.misses.forEach(function (m) {
    var d = el('div', 'miss');
    var line = el('div', 'mono');
    line.appendChild(el('span', 'tag k-miss', 'MISS'));
    line.appendChild(document.createTextNode(' ' + m.m + ' ' + m.u + (m.a ? '  [accept: ' + m.a + ']' : '') + (m.count > 1 ? '  (' + m.count + ' times)' : '')));
    d.appendChild(line);
    if (m.nearest.length) {
      m.nearest.slice(0, 3).forEach(function (n) {
        d.appendChild(el('div', 'near mono', 'nearest recorded: ' + n.m + ' ' + n.u + ' - differs in: ' + (n.differs.join(', ') || 'nothing')));
      });
    } else d.appendChild(el('div', 'near', 'nearest recorded: none'));
    var todo = el('ul', 'todo');
    m.advice.forEach(function (a) { todo.appendChild(el('li', '', a)); });
    d.appendChild(todo);
    box.appendChild(d);
  });
}

function renderHosts() {
  var per = {};
  var list = [];
  rows.forEach(function (r) {
    var h = per[r.h];
    if (!h) { h = per[r.h] = { h: r.h, n: 0, z: 0 }; list.push(h); }
    h.n++; h.z += r.z;
  });
  list.sort(function (a, b) { return b.z - a.z || b.n - a.n; });
  var max = list.length ? Math.max(1, list[0].z) : 1;
  var body = byId('hosts-body');
  clear(body);
  list.slice(0, MAX_HOSTS).forEach(function (h) {
    var tr = el('tr');
    tr.appendChild(el('td', 'mono', h.h));
    tr.appendChild(el('td', '', h.n));
    tr.appendChild(el('td', '', bytes(h.z)));
    var bar = el('div', 'bar');
    bar.style.width = (100 * h.z / max).toFixed(1) + '%';
    var td = el('td');
    td.appendChild(bar);
    tr.appendChild(td);
    tr.addEventListener('click', function () { state.host = state.host === h.h ? '' : h.h; state.page = 0; renderTable(); });
    body.appendChild(tr);
  });
  byId('hosts-note').textContent = list.length > MAX_HOSTS ? 'the ' + MAX_HOSTS + ' heaviest of ' + list.length + ' hosts' : list.length + ' host(s); click one to filter';
}

function renderKinds() {
  var kinds = ['all'];
  var seen = {};
  rows.forEach(function (r) { if (!seen[r.k]) { seen[r.k] = true; kinds.push(r.k); } });
  var box = byId('kinds');
  clear(box);
  kinds.forEach(function (k) {
    var b = el('button', 'f' + (state.kind === k ? ' on' : ''), k.replace('-', ' '));
    b.setAttribute('data-kind', k);
    b.addEventListener('click', function () { state.kind = k; state.page = 0; renderKinds(); renderTable(); });
    box.appendChild(b);
  });
}

function cmp(a, b) {
  var x = a[state.sort], y = b[state.sort];
  if (x === y) return a.i - b.i;
  return (x < y ? -1 : 1) * state.dir;
}
function renderTable() {
  var q = state.q.toLowerCase();
  shown = rows.filter(function (r) {
    if (state.kind !== 'all' && r.k !== state.kind) return false;
    if (state.host && r.h !== state.host) return false;
    if (q && r.u.toLowerCase().indexOf(q) < 0 && r.c.toLowerCase().indexOf(q) < 0 && r.m.toLowerCase() !== q) return false;
    return true;
  });
  shown.sort(cmp);
  var pages = Math.max(1, Math.ceil(shown.length / PAGE_ROWS));
  if (state.page >= pages) state.page = pages - 1;
  var from = state.page * PAGE_ROWS;
  var page = shown.slice(from, from + PAGE_ROWS);
  var max = 1;
  shown.forEach(function (r) { if (r.z > max) max = r.z; });
  var body = byId('rows');
  clear(body);
  page.forEach(function (r) {
    var tr = el('tr');
    tr.setAttribute('data-kind', r.k);
    tr.appendChild(el('td', '', r.m));
    var u = el('td', 'url mono', r.u);
    if (r.note) u.title = r.note;
    tr.appendChild(u);
    tr.appendChild(el('td', '', r.s));
    var sz = el('td');
    sz.appendChild(el('div', '', bytes(r.z)));
    var bar = el('div', 'bar');
    bar.style.width = (100 * r.z / max).toFixed(1) + '%';
    sz.appendChild(bar);
    tr.appendChild(sz);
    tr.appendChild(el('td', 'mono', r.c));
    var k = el('td');
    k.appendChild(el('span', 'tag k-' + r.k, r.k.replace('-', ' ')));
    tr.appendChild(k);
    tr.appendChild(el('td', 'mono', typeof r.t === 'number' ? (r.t / 1000).toFixed(2) + ' s +' + r.d + ' ms' : r.t));
    tr.appendChild(el('td', 'note', r.note));
    body.appendChild(tr);
  });
  byId('row-count').textContent = shown.length + ' of ' + rows.length + ' rows' + (state.host ? ' on ' + state.host : '');
  byId('page-info').textContent = 'page ' + (state.page + 1) + ' of ' + pages;
  Array.prototype.forEach.call(document.querySelectorAll('th[data-sort]'), function (th) {
    th.className = th.getAttribute('data-sort') === state.sort ? 'sorted' : '';
  });
}

var COLORS = { hit: '#2f9e44', miss: '#e03131', recorded: '#1c7ed6', error: '#c2255c', negative: '#e8590c', redirect: '#7048e8', 'new-version': '#f08c00', ok: '#868e96' };
function renderTimeline() {
  var c = byId('timeline');
  var w = c.clientWidth || 900, h = 140;
  c.width = w; c.height = h;
  var g = c.getContext('2d');
  if (!g) return;
  g.clearRect(0, 0, w, h);
  var live = state.view === 'requests' && data.requests;
  var pts = [];
  rows.forEach(function (r) {
    var t = live ? r.t : Date.parse(r.t);
    if (!isNaN(t)) pts.push({ t: t, e: live ? r.t + r.d : t, z: r.z, k: r.k });
  });
  if (!pts.length) { byId('timeline-note').textContent = 'no timed requests'; return; }
  var lo = Infinity, hi = -Infinity, zmax = 1;
  pts.forEach(function (p) { if (p.t < lo) lo = p.t; if (p.e > hi) hi = p.e; if (p.z > zmax) zmax = p.z; });
  var span = Math.max(1, hi - lo);
  var lanes = 12;
  pts.forEach(function (p, n) {
    var x = (p.t - lo) / span * (w - 4) + 2;
    var x2 = Math.max(x + 3, (p.e - lo) / span * (w - 4) + 2);
    var bh = 2 + Math.log(1 + p.z) / Math.log(1 + zmax) * (h / lanes - 3);
    var y = (n % lanes) * (h / lanes) + (h / lanes - bh);
    g.fillStyle = COLORS[p.k] || '#868e96';
    g.fillRect(x, y, x2 - x, bh);
  });
  byId('timeline-note').textContent = pts.length + ' request(s) over ' + (live ? (span / 1000).toFixed(1) + ' s (bar length: duration; height: size)' : 'the time the origins answered (height: size)');
}

function renderViews() {
  var box = byId('views');
  clear(box);
  if (!data.requests) { box.hidden = true; return; }
  box.hidden = false;
  [['requests', 'requests of this run'], ['entries', 'netlock entries']].forEach(function (v) {
    var b = el('button', 'f' + (state.view === v[0] ? ' on' : ''), v[1]);
    b.setAttribute('data-view', v[0]);
    b.addEventListener('click', function () { state.view = v[0]; state.kind = 'all'; state.page = 0; renderAll(); });
    box.appendChild(b);
  });
}

function renderAll() {
  rows = buildRows();
  renderTotals();
  renderMisses();
  renderViews();
  renderKinds();
  renderHosts();
  renderTable();
  renderTimeline();
}

var MAX_EVENTS = 100000;
/** The entry totals over every row held (a poll that sent only added rows leaves them to the page). */
function countEntries(t, entries) {
  var bytes = 0, hosts = Object.create(null), n = 0;
  for (var i = 0; i < entries.length; i++) {
    bytes += entries[i].z;
    if (!hosts[entries[i].h]) { hosts[entries[i].h] = true; n++; }
  }
  t.entries = entries.length;
  t.bytes = bytes;
  t.hosts = n;
}
/**
 * A poll carries only what changed: entries when their version moved (only those added since, after
 * entriesFrom of them, when nothing else changed), requests after the last one held.
 */
function merge(d) {
  var changed = !!d.entries;
  if (d.entries && d.entriesFrom !== undefined) {
    if (d.entriesFrom === data.entries.length) {
      var held = data.entries;
      for (var j = 0; j < d.entries.length; j++) held.push(d.entries[j]);
      d.entries = held;
      countEntries(d.totals, held);
    } else {
      // Not the rows this page holds: keep them, and ask for all of them on the next poll.
      d.entries = undefined;
      d.entriesVersion = '';
      changed = false;
    }
  }
  if (!d.entries) {
    d.entries = data.entries;
    d.totals.entries = data.totals.entries;
    d.totals.bytes = data.totals.bytes;
    d.totals.hosts = data.totals.hosts;
  }
  if (d.requests && data.requests) {
    if (d.requests.events.length) changed = true;
    var all = data.requests.events.concat(d.requests.events);
    d.requests.events = all.length > MAX_EVENTS ? all.slice(all.length - MAX_EVENTS) : all;
  }
  if (d.misses.length !== data.misses.length) changed = true;
  data = d;
  return changed;
}

var pending;
byId('q').addEventListener('input', function (ev) {
  clearTimeout(pending);
  pending = setTimeout(function () { state.q = ev.target.value; state.page = 0; renderTable(); }, 120);
});
byId('prev').addEventListener('click', function () { if (state.page > 0) { state.page--; renderTable(); } });
byId('next').addEventListener('click', function () { state.page++; renderTable(); });
Array.prototype.forEach.call(document.querySelectorAll('th[data-sort]'), function (th) {
  th.addEventListener('click', function () {
    var s = th.getAttribute('data-sort');
    state.dir = state.sort === s ? -state.dir : (s === 'z' || s === 's' ? -1 : 1);
    state.sort = s; state.page = 0; renderTable();
  });
});
renderAll();
document.body.setAttribute('data-ready', '1');

if (data.live) {
  var poll = function () {
    var ev = data.requests ? data.requests.events : [];
    var after = ev.length ? ev[ev.length - 1].i : -1;
    var url = 'report.json?have=' + encodeURIComponent(data.entriesVersion || '') + '&after=' + after;
    fetch(url, { cache: 'no-store', credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (d) {
      var changed = merge(d);
      if (changed || state.view === 'requests') renderAll();
      else { renderTotals(); renderMisses(); }
      byId('updated').textContent = 'updated ' + new Date().toLocaleTimeString() + ' (' + (data.requests ? data.requests.events.length : 0) + ' requests)';
      document.body.setAttribute('data-polls', String(Number(document.body.getAttribute('data-polls') || '0') + 1));
    }).catch(function (err) {
      byId('updated').textContent = 'not updating: ' + err.message;
    }).then(function () { setTimeout(poll, 1000); });
  };
  setTimeout(poll, 1000);
}
})();
`;
