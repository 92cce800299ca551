// kstat dashboard: polls the daemon's JSON API once a second and updates
// the page in place (no rebuilt panels, so nothing flickers). Knob buttons
// and forms PUT /api/v1/knobs/{path}; the server's error text is shown in
// the panel. Any failed request is shown in the banner under the header.
"use strict";

const REFRESH_MS = 1000;
const TRACER_TOP = 10;
// The tracer's tree is about 12 kB a process: with many processes it is
// fetched every few refreshes only, at most TRACER_PROCS_PER_FETCH
// processes' worth a second on average.
const TRACER_PROCS_PER_FETCH = 50;
const TRACER_MAX_EVERY = 30;

const $ = (id) => document.getElementById(id);

// setText changes an element's text only when it differs.
function setText(el, text) {
  if (typeof el === "string") el = $(el);
  text = String(text);
  if (el.textContent !== text) el.textContent = text;
}

// api fetches path and returns its JSON body; a non-2xx answer throws
// an Error with the server's {"error": ...} text when it has one.
async function api(path, opts) {
  let resp;
  try {
    resp = await fetch(path, Object.assign({ cache: "no-store" }, opts));
  } catch (e) {
    throw new Error(`${path}: ${e.message} (is kstat serve running?)`);
  }
  const text = await resp.text();
  let body = null;
  if (text !== "") {
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path}: HTTP ${resp.status}: ${text.slice(0, 200)}`);
    }
  }
  if (!resp.ok) {
    const msg = body && body.error ? body.error : `HTTP ${resp.status}`;
    const err = new Error(msg);
    err.status = resp.status;
    throw err;
  }
  return body;
}

// putKnob sets a knob to value and returns the knob the server reports.
function putKnob(name, value) {
  return api(`/api/v1/knobs/${name}`, { method: "PUT", body: value, headers: { "Content-Type": "text/plain" } });
}

// values maps a tree source's value names to their value objects.
function values(src) {
  const m = {};
  for (const v of (src && src.values) || []) m[v.name] = v;
  return m;
}

function num(v) {
  return v === undefined || v === null ? NaN : Number(v.value);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

function fmtBytes(n) {
  if (!Number.isFinite(n)) return "–";
  let i = 0;
  while (Math.abs(n) >= 1000 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + " " + UNITS[i];
}

function fmtCount(n) {
  if (!Number.isFinite(n)) return "–";
  return Math.round(n).toLocaleString("en-US");
}

function fmtRate(n, unit) {
  if (!Number.isFinite(n)) return "–";
  if (unit === "B") return fmtBytes(n) + "/s";
  if (n >= 1e6) return (n / 1e6).toFixed(2) + " M/s";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + " k/s";
  return n.toFixed(n < 10 ? 1 : 0) + "/s";
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

// --- header, memory ---------------------------------------------------

function renderHeader(system, self) {
  const sys = values(system), me = values(self);
  setText("host-uptime", fmtDuration(num(sys.uptime_seconds)));
  setText("self-uptime", fmtDuration(num(me.uptime_seconds)));
  const load = ["load1", "load5", "load15"].map((k) => (sys[k] ? num(sys[k]).toFixed(2) : "–"));
  setText("load", load.join(" "));
}

function memText(v) {
  const n = num(v);
  if (!Number.isFinite(n)) return "–";
  return `${fmtBytes(n)} · ${Math.round(n / 1024)} kB`;
}

function renderMemory(memory, block) {
  const m = values(memory), b = values(block);
  setText("mem-buffers", memText(b.buffers));
  setText("mem-cached", memText(b.cached));
  setText("mem-dirty", memText(b.dirty));
  setText("mem-total", memText(m.total));
  setText("mem-free", memText(m.free));
  setText("mem-available", memText(m.available));
  const total = num(m.total), avail = num(m.available);
  if (total > 0 && Number.isFinite(avail)) {
    const used = (100 * (total - avail)) / total;
    $("mem-bar").style.width = used.toFixed(1) + "%";
    setText("mem-used", `${used.toFixed(1)}% in use (total − available)`);
  }
}

// --- network devices --------------------------------------------------

const NET_FIELDS = ["rx_bytes", "rx_packets", "tx_bytes", "tx_packets"];
let netPrev = null; // {time, devs: {name: {field: value}}}

function renderNet(dev, now) {
  const tbody = $("net-rows");
  const devs = {};
  for (const s of (dev && dev.sources) || []) {
    const v = values(s);
    devs[s.name] = {};
    for (const f of NET_FIELDS) devs[s.name][f] = num(v[f]);
  }
  const names = Object.keys(devs).sort();
  for (const row of Array.from(tbody.rows)) {
    if (!(row.dataset.dev in devs)) row.remove();
  }
  names.forEach((name, i) => {
    let row = tbody.querySelector(`tr[data-dev="${CSS.escape(name)}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.dev = name;
      row.id = "net-row-" + name;
      for (let c = 0; c < 9; c++) row.appendChild(document.createElement("td"));
      row.cells[0].textContent = name;
    }
    if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] || null);
    const cur = devs[name];
    const prev = netPrev && netPrev.devs[name];
    const dt = netPrev ? (now - netPrev.time) / 1000 : 0;
    NET_FIELDS.forEach((f, j) => {
      const bytes = f.endsWith("bytes");
      setText(row.cells[1 + 2 * j], bytes ? fmtBytes(cur[f]) : fmtCount(cur[f]));
      let rate = NaN;
      if (prev && dt > 0 && cur[f] >= prev[f]) rate = (cur[f] - prev[f]) / dt;
      setText(row.cells[2 + 2 * j], fmtRate(rate, bytes ? "B" : ""));
    });
  });
  netPrev = { time: now, devs };
}

// --- activity chart ---------------------------------------------------

function renderChart(snaps) {
  const canvas = $("chart");
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(canvas.clientWidth * dpr), h = Math.round(canvas.clientHeight * dpr);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const pts = (snaps || []).filter((s) => s.rates);
  const cs = pts.map((s) => s.rates.context_switches);
  const irq = pts.map((s) => s.rates.interrupts);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  const last = pts[pts.length - 1];
  setText("rate-cs", last ? fmtCount(last.rates.context_switches) : "–");
  setText("rate-irq", last ? fmtCount(last.rates.interrupts) : "–");
  if (pts.length < 2) {
    setText("chart-note", "waiting for telemetry snapshots (needs two; telemetry/enable must be 1)");
    return;
  }
  const max = Math.max(1, ...cs, ...irq);
  const pad = 4 * dpr, top = 18 * dpr; // room for the scale label above the lines
  const style = getComputedStyle(document.documentElement);
  ctx.strokeStyle = style.getPropertyValue("--line");
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (const f of [0.25, 0.5, 0.75]) {
    const y = Math.round(top + (h - top - pad) * f) + 0.5;
    ctx.moveTo(0, y);
    ctx.lineTo(w, y);
  }
  ctx.stroke();
  const line = (series, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2 * dpr;
    ctx.lineJoin = "round";
    ctx.beginPath();
    series.forEach((v, i) => {
      const x = pad + ((w - 2 * pad) * i) / (series.length - 1);
      const y = h - pad - ((h - top - pad) * v) / max;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  };
  line(irq, style.getPropertyValue("--irq"));
  line(cs, style.getPropertyValue("--cs"));
  ctx.fillStyle = style.getPropertyValue("--dim");
  ctx.font = `${11 * dpr}px sans-serif`;
  ctx.fillText(`max ${fmtCount(max)}/s`, pad + 2 * dpr, 13 * dpr);
  const span = (Date.parse(last.time) - Date.parse(pts[0].time)) / 1000;
  setText("chart-note", `last ${pts.length} snapshots over ${fmtDuration(span)}, every ${last.interval_seconds.toFixed(1)}s`);
}

// --- knob panels ------------------------------------------------------

let knobs = {}; // knob name -> value string, from the last refresh

function renderToggle(id, knob, onLabel, offLabel) {
  const btn = $(id);
  const on = knobs[knob] === "1";
  if (!btn.dataset.busy) btn.disabled = !(knob in knobs);
  setText(btn, on ? onLabel : offLabel);
  btn.classList.toggle("on", on);
  btn.setAttribute("aria-pressed", on ? "true" : "false");
  return on;
}

function renderKnobs(kstat, snaps) {
  setText("kstat-nout", fmtCount(num(values(kstat).nout)));
  setText("kstat-counter", knobs["kstat/counter"] ?? "–");
  setText("kstat-start", knobs["kstat/start"] === "1" ? "1 (counting)" : knobs["kstat/start"] === "0" ? "0 (stopped)" : "–");
  renderToggle("kstat-start-toggle", "kstat/start", "Stop counting", "Start counting");
  setText("telemetry-enable", knobs["telemetry/enable"] ?? "–");
  setText("telemetry-interval", knobs["telemetry/log_interval"] ?? "–");
  setText("telemetry-count", snaps ? String(snaps.length) : "–");
  renderToggle("telemetry-toggle", "telemetry/enable", "Stop sampling", "Start sampling");
  return renderToggle("tracer-toggle", "tracer/enable", "Disable tracer", "Enable tracer");
}

function renderTracer(tracer, every) {
  const table = $("tracer-table");
  if (!tracer) {
    table.hidden = true;
    setText("tracer-state", "(disabled)");
    return;
  }
  const procs = ((tracer && tracer.sources) || []).map((s) => {
    const v = values(s);
    const comm = ((s.controls || []).find((c) => c.name === "comm") || {}).text || "";
    return {
      pid: s.name, comm: comm.trim(),
      forks: num(v.forks), execs: num(v.execs), kmalloc: num(v.kmalloc_calls),
      allocated: num(v.allocated_bytes), freed: num(v.freed_bytes),
      outstanding: num(v.outstanding_bytes), locks: num(v.lock_contentions),
    };
  });
  procs.sort((a, b) => (b.allocated || 0) - (a.allocated || 0) || Number(a.pid) - Number(b.pid));
  const pace = every > 1 ? `, refreshed every ${every}s` : "";
  setText("tracer-state", `(enabled: ${procs.length} processes, top ${Math.min(TRACER_TOP, procs.length)} by bytes allocated${pace})`);
  table.hidden = false;
  const tbody = $("tracer-rows");
  const top = procs.slice(0, TRACER_TOP);
  while (tbody.rows.length > top.length) tbody.deleteRow(-1);
  while (tbody.rows.length < top.length) {
    const row = tbody.insertRow();
    for (let c = 0; c < 9; c++) row.insertCell();
  }
  top.forEach((p, i) => {
    const cells = tbody.rows[i].cells;
    const out = [p.pid, p.comm, fmtCount(p.forks), fmtCount(p.execs), fmtCount(p.kmalloc),
      fmtBytes(p.allocated), fmtBytes(p.freed), fmtBytes(p.outstanding), fmtCount(p.locks)];
    out.forEach((t, c) => setText(cells[c], t));
  });
}

// --- refresh loop -----------------------------------------------------

let timer = null;
let scriptError = ""; // the page's own last failure, kept in the banner
let tracerCache = null; // {age, every}: refreshes since the tracer's last fetch, and how many to wait
let running = false; // a refresh is in flight
let pending = false; // another was asked for meanwhile

// refresh updates the page now and schedules the next one; a call while
// one is in flight runs again right after it, so there is one loop.
function refresh() {
  if (running) {
    pending = true;
    return;
  }
  running = true;
  clearTimeout(timer);
  update().catch((e) => {
    scriptError = `dashboard script error: ${e.message}`;
    showError("api-error", scriptError);
  }).finally(() => {
    running = false;
    if (pending) {
      pending = false;
      refresh();
    } else {
      timer = setTimeout(refresh, REFRESH_MS);
    }
  });
}

async function update() {
  const errors = [];
  const get = (path) => api(path).catch((e) => {
    errors.push(`${path}: ${e.message}`);
    return null;
  });
  const [system, self, memory, block, dev, kstat, knobList, snaps] = await Promise.all([
    get("/api/v1/tree/system"), get("/api/v1/tree/self"), get("/api/v1/tree/memory"), get("/api/v1/tree/block"),
    get("/api/v1/tree/net/dev"), get("/api/v1/tree/kstat"), get("/api/v1/knobs"),
    get("/api/v1/snapshots"),
  ]);
  const now = performance.now();
  if (knobList) {
    knobs = {};
    for (const k of knobList) knobs[k.name] = String(k.value).trim();
  }
  if (system && self) renderHeader(system, self);
  if (memory) renderMemory(memory, block);
  if (dev) renderNet(dev, now);
  renderChart(snaps);
  const tracing = renderKnobs(kstat, snaps);
  if (!tracing) {
    tracerCache = null;
    renderTracer(null);
  } else if (!tracerCache || ++tracerCache.age >= tracerCache.every) {
    const tracer = await get("/api/v1/tree/tracer");
    if (tracer) {
      const n = (tracer.sources || []).length;
      tracerCache = { age: 0, every: Math.min(TRACER_MAX_EVERY, Math.max(1, Math.ceil(n / TRACER_PROCS_PER_FETCH))) };
      renderTracer(tracer, tracerCache.every);
    }
  }
  showError("api-error", errors.concat(scriptError || []).join("\n"));
  setText("updated", errors.length ? `update failed at ${new Date().toLocaleTimeString()}` : `updated ${new Date().toLocaleTimeString()}`);
}

// setKnob PUTs a knob from a control, shows the server's error in the
// panel's error element (or clears it) and refreshes the page at once.
async function setKnob(name, value, errorId, busy) {
  busy.dataset.busy = "1";
  busy.disabled = true;
  try {
    await putKnob(name, value);
    showError(errorId, "");
    return true;
  } catch (e) {
    const how = e.status === 400 ? "refused" : "failed";
    showError(errorId, `${name} = ${JSON.stringify(value)} ${how}: ${e.message}`);
    return false;
  } finally {
    delete busy.dataset.busy;
    busy.disabled = false;
    refresh();
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

window.addEventListener("error", (ev) => {
  scriptError = `dashboard script error: ${ev.message}`;
  showError("api-error", scriptError);
});
window.addEventListener("unhandledrejection", (ev) => {
  scriptError = `dashboard script error: ${ev.reason && ev.reason.message ? ev.reason.message : ev.reason}`;
  showError("api-error", scriptError);
});
wireToggle("kstat-start-toggle", "kstat/start", "kstat-error");
wireToggle("telemetry-toggle", "telemetry/enable", "telemetry-error");
wireToggle("tracer-toggle", "tracer/enable", "tracer-error");
wireForm("kstat-counter-form", "kstat-counter-input", "kstat/counter", "kstat-error");
wireForm("telemetry-interval-form", "telemetry-interval-input", "telemetry/log_interval", "telemetry-error");
refresh();
