// kstat dashboard. One Server-Sent Events stream (/api/v1/history/events)
// brings the server's history window once, then an update per sample:
// every rate is the server's, the page only draws. The charts are uPlot
// (vendored under /static/vendor/uplot). Knobs are set with PUT
// /api/v1/knobs/{path}; GET /api/v1/access says whether this viewer may,
// and without the right the controls are replaced by a hint. A broken
// stream shows in the banner and reconnects by itself; a script error
// shows in the banner until the next update renders cleanly.
"use strict";

const EVENTS = "/api/v1/history/events";
const ACCESS = "/api/v1/access";
const RECONNECT_MS = 2000;

const $ = (id) => document.getElementById(id);

// setText changes an element's text only when it differs.
function setText(el, text) {
  if (typeof el === "string") el = $(el);
  text = String(text);
  if (el.textContent !== text) el.textContent = text;
}

// --- formatting -------------------------------------------------------

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

function fmtBytes(n, digits) {
  if (!Number.isFinite(n)) return "–";
  let i = 0;
  while (Math.abs(n) >= 1000 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  if (digits === undefined) digits = n < 10 ? 2 : 1;
  return (i === 0 ? n.toFixed(0) : n.toFixed(digits)) + " " + UNITS[i];
}

function fmtCount(n) {
  if (!Number.isFinite(n)) return "–";
  return Math.round(n).toLocaleString("en-US");
}

// fmtSI is a short number: 950, 12.5k, 3.20M.
function fmtSI(n) {
  if (!Number.isFinite(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
  if (a >= 100 || n === 0) return n.toFixed(0);
  return n.toFixed(a < 10 ? 2 : 1);
}

function fmtRate(n, unit) {
  if (!Number.isFinite(n)) return "–";
  if (unit === "bytes/s") return fmtBytes(n) + "/s";
  return fmtSI(n) + "/s";
}

// fmtUnit formats a chart's value by its unit ("bytes", "bytes/s", "/s").
function fmtUnit(n, unit) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  return unit === "bytes" ? fmtBytes(n) : fmtRate(n, unit);
}

// fmtAxis is a short axis label: the unit is in the chart's title.
function fmtAxis(n, unit) {
  if (!Number.isFinite(n)) return "";
  if (!unit.startsWith("bytes")) return fmtSI(n);
  let i = 0;
  while (Math.abs(n) >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return (Number.isInteger(n) || Math.abs(n) >= 10 ? n.toFixed(0) : n.toFixed(1)) + " " + UNITS[i];
}

function fmtDuration(s) {
  if (!Number.isFinite(s)) return "–";
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m ${sec}s`;
  if (m > 0) return `${m}m ${sec}s`;
  return `${sec}s`;
}

// showError fills (or, with msg empty, hides) an error element.
function showError(id, msg) {
  const el = $(id);
  setText(el, msg || "");
  el.hidden = !msg;
}

// --- the banner: the stream's state and the script's errors ------------

const problems = { stream: "", script: "" };

function showProblems() {
  showError("api-error", [problems.stream, problems.script].filter(Boolean).join("\n"));
}

function scriptError(msg) {
  problems.script = `dashboard script error: ${msg} (${new Date().toLocaleTimeString()})`;
  showProblems();
}

window.addEventListener("error", (ev) => scriptError(ev.message));
window.addEventListener("unhandledrejection", (ev) =>
  scriptError(ev.reason && ev.reason.message ? ev.reason.message : String(ev.reason)));

// --- the history: columns as uPlot takes them ---------------------------

// store holds the window: times in seconds and a column per series key,
// all of one length.
const store = { times: [], cols: new Map(), windowMs: 0, stepMs: 0 };

function loadHistory(h) {
  store.windowMs = h.window_ms;
  store.stepMs = h.step_ms;
  store.times = h.times.map((t) => t / 1000);
  // A series comes as the span of samples where it has values.
  store.cols = new Map();
  for (const [k, s] of Object.entries(h.series)) {
    const col = new Array(store.times.length).fill(null);
    s.values.forEach((v, i) => { col[s.start + i] = v; });
    store.cols.set(k, col);
  }
}

// addSample appends one sample and drops what fell out of the window.
function addSample(s) {
  const n = store.times.length;
  store.times.push(s.t / 1000);
  for (const [k, col] of store.cols) col.push(k in s.v ? s.v[k] : null);
  for (const k of Object.keys(s.v)) {
    if (!store.cols.has(k)) {
      const col = new Array(n).fill(null);
      col.push(s.v[k]);
      store.cols.set(k, col);
    }
  }
  const cut = s.t / 1000 - store.windowMs / 1000;
  let drop = 0;
  while (drop < store.times.length && store.times[drop] < cut) drop++;
  if (drop > 0) {
    store.times.splice(0, drop);
    for (const [k, col] of store.cols) {
      col.splice(0, drop);
      if (col.every((v) => v === null)) store.cols.delete(k);
    }
  }
}

// --- charts -------------------------------------------------------------

const COLORS = ["#7fb4ff", "#f0a35e", "#7ccf8a", "#e58fd0", "#f2d36b", "#6fd6d6", "#ff8080", "#b0a4ff", "#c8c8c8", "#9fd36b"];
const plots = {}; // chart id -> {plot, sig, def, el}

function chartCard(def) {
  let card = $("chart-" + def.id);
  if (!card) {
    card = document.createElement("div");
    card.className = "chart";
    card.id = "chart-" + def.id;
    card.innerHTML = `<h3></h3><div class="plot"></div><p class="note"></p>`;
    $("chart-grid").appendChild(card);
  }
  setText(card.querySelector("h3"), `${def.title} (${def.unit === "bytes" ? "bytes" : def.unit})`);
  return card;
}

function chartData(def) {
  const empty = () => store.times.map(() => null);
  return [store.times, ...def.series.map((s) => store.cols.get(s.key) || empty())];
}

function makePlot(def, el) {
  const style = getComputedStyle(document.documentElement);
  const dim = style.getPropertyValue("--dim").trim(), line = style.getPropertyValue("--line").trim();
  const axis = { stroke: dim, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
  return new uPlot({
    width: Math.max(300, el.clientWidth),
    height: 190,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.05 : 1] } },
    axes: [
      Object.assign({}, axis),
      Object.assign({}, axis, { size: 64, values: (u, splits) => splits.map((v) => fmtAxis(v, def.unit)) }),
    ],
    series: [
      { value: (u, t) => (t === null ? "–" : new Date(t * 1000).toLocaleTimeString()) },
      ...def.series.map((s, i) => ({
        label: s.label.length > 36 ? s.label.slice(0, 35) + "…" : s.label,
        stroke: COLORS[i % COLORS.length],
        width: 1.5,
        spanGaps: false,
        points: { show: false },
        value: (u, v) => fmtUnit(v, def.unit),
      })),
    ],
  }, chartData(def), el);
}

// renderCharts draws every chart the server chose, rebuilding a chart
// whose series changed.
function renderCharts(defs, traced) {
  const span = store.times.length > 1 ? store.times[store.times.length - 1] - store.times[0] : 0;
  setText("history-note", `last ${fmtDuration(span)} of ${fmtDuration(store.windowMs / 1000)} kept by the server, a sample every ${store.stepMs / 1000}s`);
  for (const def of defs) {
    const card = chartCard(def);
    const el = card.querySelector(".plot");
    const sig = JSON.stringify(def.series);
    let p = plots[def.id];
    if (p && p.sig !== sig) {
      p.plot.destroy();
      p = null;
    }
    if (def.series.length === 0) {
      if (p) p.plot.destroy();
      delete plots[def.id];
      el.hidden = true;
      let why = "nothing above 0 in the window";
      if (def.id === "tracer" && !traced) why = "the tracer is off: enable it in the Tracer panel";
      if (def.id === "kstat" && knobs["kstat/start"] !== "1") why = "KSTAT is not counting: start it in the KSTAT panel";
      setText(card.querySelector(".note"), why);
      continue;
    }
    el.hidden = false;
    setText(card.querySelector(".note"), def.id === "tracer" || def.id === "irq" || def.id === "net-rx" || def.id === "net-tx" || def.id === "kstat" || def.id === "softirq"
      ? `the ${def.series.length} busiest over the window, chosen by the server` : "");
    if (!p) {
      p = { plot: makePlot(def, el), sig, def };
      plots[def.id] = p;
    } else {
      p.plot.setData(chartData(def));
    }
    // With no pointer over the chart the legend shows the latest values.
    if (p.plot.cursor.left < 0 || p.plot.cursor.left === undefined) p.plot.setLegend({ idx: store.times.length - 1 });
  }
}

window.addEventListener("resize", () => {
  for (const id in plots) {
    const el = $("chart-" + id).querySelector(".plot");
    plots[id].plot.setSize({ width: Math.max(300, el.clientWidth), height: 190 });
  }
});

// --- tables -------------------------------------------------------------

let knobs = {}; // knob path -> setting, from the latest event

function val(status, path, name) {
  const src = status.values[path];
  return src && name in src ? src[name] : NaN;
}

function memText(n) {
  if (!Number.isFinite(n)) return "–";
  return `${fmtBytes(n)} · ${Math.round(n / 1024)} kB`;
}

function renderHeader(status) {
  setText("host-uptime", fmtDuration(val(status, "system", "uptime_seconds")));
  setText("self-uptime", fmtDuration(val(status, "self", "uptime_seconds")));
  setText("load", ["load1", "load5", "load15"].map((k) => {
    const v = val(status, "system", k);
    return Number.isFinite(v) ? v.toFixed(2) : "–";
  }).join(" "));
}

function renderMemory(status) {
  setText("mem-total", memText(val(status, "memory", "total")));
  setText("mem-free", memText(val(status, "memory", "free")));
  setText("mem-available", memText(val(status, "memory", "available")));
  setText("mem-buffers", memText(val(status, "block", "buffers")));
  setText("mem-cached", memText(val(status, "block", "cached")));
  setText("mem-dirty", memText(val(status, "block", "dirty")));
  setText("mem-slab", memText(val(status, "mm", "slab")));
  setText("mem-page-tables", memText(val(status, "mm", "page_tables")));
  const total = val(status, "memory", "total"), avail = val(status, "memory", "available");
  if (total > 0 && Number.isFinite(avail)) {
    const used = (100 * (total - avail)) / total;
    $("mem-bar").style.width = used.toFixed(1) + "%";
    setText("mem-used", `${used.toFixed(1)}% in use (total − available)`);
  }
}

// rows keeps tbody's rows in step with items, keyed by name, each with
// cells cells; fill writes one row.
function rows(tbodyId, items, cells, fill) {
  const tbody = $(tbodyId);
  const names = new Set(items.map((it) => it.name));
  for (const row of Array.from(tbody.rows)) if (!names.has(row.dataset.name)) row.remove();
  items.forEach((it, i) => {
    let row = tbody.querySelector(`tr[data-name="${CSS.escape(it.name)}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.name = it.name;
      for (let c = 0; c < cells; c++) row.appendChild(document.createElement("td"));
    }
    if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] || null);
    fill(row, it);
  });
}

function renderNet(status, sample) {
  const devs = status.lists["net/dev"] || [];
  const rate = (dev, f) => sample.v[`net/${dev}/${f}`];
  rows("net-rows", devs, 11, (row, d) => {
    row.dataset.dev = d.name;
    row.id = "net-row-" + d.name;
    const v = d.values;
    const out = [d.name,
      fmtBytes(v.rx_bytes), fmtRate(rate(d.name, "rx_bytes"), "bytes/s"),
      fmtCount(v.rx_packets), fmtRate(rate(d.name, "rx_packets"), "/s"),
      fmtBytes(v.tx_bytes), fmtRate(rate(d.name, "tx_bytes"), "bytes/s"),
      fmtCount(v.tx_packets), fmtRate(rate(d.name, "tx_packets"), "/s"),
      `${fmtCount(v.rx_errors)} / ${fmtCount(v.tx_errors)}`, `${fmtCount(v.rx_dropped)} / ${fmtCount(v.tx_dropped)}`];
    out.forEach((t, c) => setText(row.cells[c], t));
  });
}

function renderSlab(status) {
  const caches = status.lists["mm/slabinfo"] || [];
  const n = val(status, "mm/slabinfo", "caches");
  setText("slab-note", Number.isFinite(n) ? `(largest of ${fmtCount(n)} caches, ${fmtBytes(val(status, "mm/slabinfo", "total_bytes"))} in all)`
    : "(the slabinfo collector is off: kstat serve --collector.slabinfo turns it on)");
  rows("slab-rows", caches, 5, (row, c) => {
    const v = c.values;
    [c.name, fmtCount(v.active_objects), fmtCount(v.objects), fmtBytes(v.object_size), fmtBytes(v.total_bytes)]
      .forEach((t, i) => setText(row.cells[i], t));
  });
}

function renderIRQ(status, sample) {
  // Lines that ever fired, the busiest now first; the server's rates.
  const byRate = (kind) => (status.lists[kind] || [])
    .filter((l) => l.values.count > 0)
    .map((l) => Object.assign({ rate: sample.v[`${kind}/${l.name}`] }, l))
    .sort((a, b) => (b.rate || 0) - (a.rate || 0) || b.values.count - a.values.count);
  const lines = byRate("irq");
  setText("irq-note", `(${lines.length} lines that fired, busiest first)`);
  rows("irq-rows", lines, 5, (row, l) => {
    row.cells[1].className = "desc";
    const d = (l.text && l.text.description) || "";
    row.cells[1].title = d;
    [l.name, d, fmtCount(l.values.count), fmtRate(l.rate, "/s"), fmtCount(l.values.bpf_entries)]
      .forEach((t, i) => setText(row.cells[i], t));
  });
  rows("softirq-rows", byRate("softirq"), 4, (row, l) => {
    [l.name, fmtCount(l.values.count), fmtRate(l.rate, "/s"), fmtCount(l.values.bpf_entries)]
      .forEach((t, i) => setText(row.cells[i], t));
  });
}

function renderTracer(update) {
  const on = knobs["tracer/enable"] === "1";
  const table = $("tracer-table");
  if (!on) {
    table.hidden = true;
    setText("tracer-state", knobs["tracer/enable"] === undefined ? "(not available)" : "(disabled)");
    return;
  }
  const procs = update.procs || [];
  setText("tracer-state", `(enabled: ${update.traced} processes; top ${procs.length} by bytes allocated in the last ${store.stepMs / 1000}s, chosen by the server)`);
  table.hidden = false;
  rows("tracer-rows", procs.map((p) => Object.assign({ name: p.pid }, p)), 10, (row, p) => {
    [p.pid, p.comm, fmtRate(p.allocated_bytes, "bytes/s"), fmtRate(p.freed_bytes, "bytes/s"), fmtRate(p.kmalloc_calls, "/s"),
      fmtBytes(p.outstanding_bytes), fmtRate(p.forks, "/s"), fmtRate(p.execs, "/s"), fmtRate(p.lock_contentions, "/s"),
      `${(p.lock_wait_seconds * 1000).toFixed(2)} ms/s`].forEach((t, i) => setText(row.cells[i], t));
  });
}

function renderToggle(id, knob, onLabel, offLabel) {
  const btn = $(id);
  const on = knobs[knob] === "1";
  if (!btn.dataset.busy) btn.disabled = !(knob in knobs) || !access.write;
  setText(btn, on ? onLabel : offLabel);
  btn.classList.toggle("on", on);
  btn.setAttribute("aria-pressed", on ? "true" : "false");
}

function renderKstat(status) {
  setText("kstat-nout", fmtCount(val(status, "kstat", "nout")));
  setText("kstat-ipv4-tcp", fmtCount(val(status, "kstat/ipv4", "tcp_packets")));
  setText("kstat-ipv6-tcp", fmtCount(val(status, "kstat/ipv6", "tcp_packets")));
}

// renderKnobs shows the knobs' settings and their controls' state.
function renderKnobs() {
  setText("kstat-counter", knobs["kstat/counter"] ?? "–");
  setText("kstat-start", knobs["kstat/start"] === "1" ? "1 (counting)" : knobs["kstat/start"] === "0" ? "0 (stopped)" : "–");
  renderToggle("kstat-start-toggle", "kstat/start", "Stop counting", "Start counting");
  setText("telemetry-enable", knobs["telemetry/enable"] ?? "–");
  setText("telemetry-interval", knobs["telemetry/log_interval"] ?? "–");
  renderToggle("telemetry-toggle", "telemetry/enable", "Stop sampling", "Start sampling");
  renderToggle("tracer-toggle", "tracer/enable", "Disable tracer", "Enable tracer");
}

// --- access: may this viewer write? --------------------------------------

// access.write is false until GET /api/v1/access says otherwise; a daemon
// without that endpoint takes writes from anyone.
let access = { write: false, hint: "" };

async function loadAccess() {
  let write = false, hint = "";
  try {
    const resp = await fetch(ACCESS, { cache: "no-store" });
    if (resp.status === 404) {
      write = true;
    } else if (resp.ok) {
      const body = await resp.json();
      write = Boolean(body.write ?? body.writable ?? body.can_write);
      hint = body.hint || body.reason || "";
    } else {
      hint = `${ACCESS}: HTTP ${resp.status}`;
    }
  } catch (e) {
    hint = `${ACCESS}: ${e.message}`;
  }
  access = { write, hint };
  renderAccess();
}

function renderAccess() {
  const el = $("access");
  setText(el, access.write ? "read-write" : "read-only");
  el.classList.toggle("ro", !access.write);
  const hint = access.hint || "read-only: this viewer may not change settings";
  for (const c of document.querySelectorAll(".controls")) c.hidden = !access.write;
  for (const h of document.querySelectorAll(".ro-hint")) {
    h.hidden = access.write;
    setText(h, hint);
  }
  // Forms come back when access does (a status event may render before
  // GET /api/v1/access answers); toggles follow the knobs in renderKnobs.
  for (const b of document.querySelectorAll(".controls button, .controls input")) {
    if (!access.write) b.disabled = true;
    else if ((b.tagName === "INPUT" || b.type === "submit") && !b.dataset.busy) b.disabled = false;
  }
}

// --- the stream -----------------------------------------------------------

let source = null;
let lastUpdate = null;

function render(status, update) {
  knobs = status.knobs || {};
  renderHeader(status);
  renderMemory(status);
  renderKstat(status);
  renderKnobs();
  if (update) {
    renderNet(status, update.sample);
    renderIRQ(status, update.sample);
    renderTracer(update);
    renderCharts(update.charts, update.traced);
  }
  renderSlab(status);
  setText("bufstat", status.bufstat || "unavailable: the tree has no bufstat report");
  renderAccess();
  setText("updated", `updated ${new Date(status.t).toLocaleTimeString()}`);
}

// handle runs one event's rendering; an error it throws stays in the
// banner until an event renders without one.
function handle(fn) {
  return (ev) => {
    try {
      fn(JSON.parse(ev.data));
      problems.stream = "";
      problems.script = "";
    } catch (e) {
      problems.script = `dashboard script error: ${e.message} (${new Date().toLocaleTimeString()})`;
    }
    showProblems();
  };
}

function connect() {
  if (source) source.close();
  setText("updated", "connecting…");
  loadAccess();
  source = new EventSource(EVENTS);
  source.addEventListener("history", handle((m) => {
    loadHistory(m.history);
    const h = m.history;
    lastUpdate = { sample: { t: h.times.length ? h.times[h.times.length - 1] : m.status.t, v: {} }, charts: h.charts, procs: h.procs, traced: h.traced };
    for (const [k, col] of store.cols) if (col.length) lastUpdate.sample.v[k] = col[col.length - 1];
    render(m.status, lastUpdate);
  }));
  source.addEventListener("update", handle((m) => {
    addSample(m.update.sample);
    lastUpdate = m.update;
    render(m.status, m.update);
  }));
  source.addEventListener("open", () => loadAccess());
  source.addEventListener("error", () => {
    problems.stream = `lost the stream from kstat serve (${EVENTS}) at ${new Date().toLocaleTimeString()}; reconnecting…`;
    showProblems();
    setText("updated", "reconnecting…");
    // The browser retries by itself unless the answer was not a stream.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, RECONNECT_MS);
  });
}

// --- knob controls ----------------------------------------------------------

// setKnob PUTs a knob from a control and shows the server's error in the
// panel (or clears it); the stream brings the new setting.
async function setKnob(name, value, errorId, busy) {
  busy.dataset.busy = "1";
  busy.disabled = true;
  try {
    const resp = await fetch(`/api/v1/knobs/${name}`, {
      method: "PUT", body: value, headers: { "Content-Type": "text/plain" }, cache: "no-store",
    });
    const text = await resp.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      body = { error: text.slice(0, 200) };
    }
    if (!resp.ok) {
      const how = resp.status === 400 ? "refused" : resp.status === 401 || resp.status === 403 ? "not allowed" : "failed";
      showError(errorId, `${name} = ${JSON.stringify(value)} ${how}: ${(body && body.error) || "HTTP " + resp.status}`);
      if (resp.status === 401 || resp.status === 403) loadAccess();
      return false;
    }
    showError(errorId, "");
    if (body && body.name) knobs[body.name] = String(body.value).trim();
    renderKnobs();
    return true;
  } catch (e) {
    showError(errorId, `${name} = ${JSON.stringify(value)} failed: ${e.message} (is kstat serve running?)`);
    return false;
  } finally {
    delete busy.dataset.busy;
    busy.disabled = !access.write;
  }
}

function wireToggle(id, knob, errorId) {
  const btn = $(id);
  btn.addEventListener("click", () => setKnob(knob, knobs[knob] === "1" ? "0" : "1", errorId, btn));
}

function wireForm(formId, inputId, knob, errorId) {
  $(formId).addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $(inputId);
    if (await setKnob(knob, input.value.trim(), errorId, ev.submitter || input)) input.value = "";
  });
}

wireToggle("kstat-start-toggle", "kstat/start", "kstat-error");
wireToggle("telemetry-toggle", "telemetry/enable", "telemetry-error");
wireToggle("tracer-toggle", "tracer/enable", "tracer-error");
wireForm("kstat-counter-form", "kstat-counter-input", "kstat/counter", "kstat-error");
wireForm("telemetry-interval-form", "telemetry-interval-input", "telemetry/log_interval", "telemetry-error");

// For tests and the curious: the charts and the data they draw.
window.kstat = { plots, store, last: () => lastUpdate };
connect();
