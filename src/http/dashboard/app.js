// claude-gateway dashboard: polls /dashboard/data every 2 s and draws it (plain DOM + SVG, no
// library, nothing from another origin). The key table reads the usage ledger's /v1/usage and
// /v1/budgets with the same login cookie, and says so when the ledger is off (404).
"use strict";

const POLL_MS = 2000;
const HISTORY = 150; // 5 minutes of samples
const SVG = "http://www.w3.org/2000/svg";
const history = [];
let lastCompletions = null;

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function fmtInt(n) {
  if (n === null || n === undefined) return "–";
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "B";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n));
}

function fmtSecs(s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
  return (s / 60).toFixed(1) + " min";
}

function fmtBound(b) {
  return b < 1 ? Math.round(b * 1000) + "ms" : b + "s";
}

function fmtIn(seconds) {
  if (seconds <= 0) return "now";
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${Math.max(m, 1)}m`;
}

function fmtAgo(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function replace(node, ...children) {
  node.replaceChildren(...children);
}

function empty(text) {
  return el("div", "empty", text);
}

// ---- charts -----------------------------------------------------------------------------------

function areaChart(node, series) {
  const W = 720, H = 170, P = { l: 30, r: 8, t: 8, b: 18 };
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  const n = HISTORY;
  const top = Math.max(...series.flatMap((x) => x.values), 0);
  const max = top <= 4 ? 4 : Math.ceil(top / 4) * 4; // four whole steps

  const y = (v) => P.t + (H - P.t - P.b) * (1 - v / max);
  const x = (i) => P.l + ((W - P.l - P.r) * i) / (n - 1);
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const v = max * f;
    s.append(svg("line", { x1: P.l, x2: W - P.r, y1: y(v), y2: y(v), class: "grid-line" }));
    const t = svg("text", { x: P.l - 6, y: y(v) + 3, "text-anchor": "end" });
    t.textContent = fmtInt(v);
    s.append(t);
  }
  const label = svg("text", { x: W - P.r, y: H - 4, "text-anchor": "end" });
  label.textContent = "now";
  s.append(label);
  const label2 = svg("text", { x: P.l, y: H - 4 });
  label2.textContent = "5 min ago";
  s.append(label2);
  for (const { values, cls } of series) {
    const off = n - values.length;
    if (values.length < 2) continue;
    const pts = values.map((v, i) => `${x(i + off).toFixed(1)},${y(v).toFixed(1)}`);
    const base = `${x(off).toFixed(1)},${y(0)}`;
    const end = `${x(n - 1).toFixed(1)},${y(0)}`;
    s.append(svg("polygon", { points: [base, ...pts, end].join(" "), class: "area-" + cls }));
    s.append(svg("polyline", { points: pts.join(" "), class: "line-" + cls }));
  }
  replace(node, s);
}

function histogramChart(node, h, alt) {
  if (!h || !h.count) {
    replace(node, empty("No completions yet"));
    return;
  }
  const W = 360, H = 170, P = { l: 8, r: 8, t: 14, b: 22 };
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  // Trim empty buckets at both ends, keeping at least 6 for shape.
  let lo = h.counts.findIndex((c) => c > 0), hi = h.counts.length - 1;
  while (hi > lo && h.counts[hi] === 0) hi--;
  while (hi - lo < 5) { if (lo > 0) lo--; if (hi - lo < 5 && hi < h.counts.length - 1) hi++; if (lo === 0 && hi === h.counts.length - 1) break; }
  const counts = h.counts.slice(lo, hi + 1);
  const max = Math.max(1, ...counts);
  const bw = (W - P.l - P.r) / counts.length;
  counts.forEach((c, i) => {
    const bh = ((H - P.t - P.b) * c) / max;
    const x = P.l + i * bw + 2, y = H - P.b - bh;
    s.append(svg("rect", { x: x.toFixed(1), y: y.toFixed(1), width: Math.max(1, bw - 4).toFixed(1), height: Math.max(c ? 2 : 0, bh).toFixed(1), rx: 3, class: alt ? "bar alt" : "bar" }));
    if (c) {
      const t = svg("text", { x: (x + (bw - 4) / 2).toFixed(1), y: (y - 3).toFixed(1), "text-anchor": "middle" });
      t.textContent = fmtInt(c);
      s.append(t);
    }
    const b = lo + i;
    if (i % Math.ceil(counts.length / 6) !== 0) return;
    const lab = svg("text", { x: (x + (bw - 4) / 2).toFixed(1), y: H - 6, "text-anchor": "middle" });
    lab.textContent = b < h.bounds.length ? "≤" + fmtBound(h.bounds[b]) : ">" + fmtBound(h.bounds[h.bounds.length - 1]);
    s.append(lab);
  });
  replace(node, s);
}

// ---- panels -----------------------------------------------------------------------------------

const STATES = [
  ["serving", "Serving"], ["warm", "Warm"], ["session", "Live session"], ["idle", "Idle (recyclable)"], ["tools", "At tool calls"],
];

function drawProcesses(load) {
  const bar = $("procbar"), list = $("states");
  if (!load) {
    replace(bar);
    replace(list, el("li", "muted", "No local processes: this gateway serves through its workers."));
    $("capacity").textContent = "";
    return;
  }
  const total = STATES.reduce((a, [k]) => a + load[k], 0);
  const cap = Math.max(load.capacity || 0, total, 1);
  replace(bar, ...STATES.filter(([k]) => load[k] > 0).map(([k, name]) => {
    const d = el("div", "st-" + k);
    d.style.width = (100 * load[k] / cap).toFixed(2) + "%";
    d.title = `${name}: ${load[k]}`;
    return d;
  }));
  replace(list, ...STATES.map(([k, name]) => {
    const li = el("li");
    li.append(el("span", "dot st-" + k), el("span", "", name), el("span", "n", String(load[k])));
    return li;
  }));
  $("capacity").textContent = `${total} of ${load.capacity} slots`;
}

function quotaClass(w) {
  if (w.status === "rejected" || (w.utilization || 0) >= 0.95) return "bad";
  if (w.status === "allowed_warning" || (w.utilization || 0) >= 0.75) return "warn";
  return "";
}

const WINDOW_NAMES = {
  five_hour: "5-hour session", seven_day: "Weekly", seven_day_opus: "Weekly (Opus)",
  seven_day_sonnet: "Weekly (Sonnet)", seven_day_overage_included: "Weekly (overage incl.)", overage: "Overage",
};

function drawQuota(windows, nowS) {
  const node = $("quota");
  if (!windows.length) {
    replace(node, empty("Not reported: the CLI sends usage windows only on a subscription login"));
    return;
  }
  replace(node, ...windows.map((w) => {
    const m = el("div", "meter");
    const head = el("div", "meter-head");
    const pct = w.utilization === null ? "–" : Math.round(w.utilization * 100) + "%";
    head.append(el("span", "meter-name", WINDOW_NAMES[w.window] || w.window), el("span", "", pct));
    const track = el("div", "track");
    const fill = el("div", "fill " + quotaClass(w));
    fill.style.width = Math.min(100, (w.utilization || 0) * 100).toFixed(1) + "%";
    track.append(fill);
    const bits = [w.status.replace("_", " ")];
    if (w.resets_at) bits.push("resets in " + fmtIn(w.resets_at - nowS));
    if (w.overage) bits.push("overage " + (w.overage.in_use ? "in use" : (w.overage.status || "off")));
    m.append(head, track, el("div", "sub", bits.join(" · ")));
    return m;
  }));
}

function statusChip(status) {
  return el("span", "status s" + String(status)[0], String(status));
}

function table(headers, rows) {
  const t = el("table");
  const tr = el("tr");
  for (const h of headers) tr.append(el("th", h.num ? "num" : "", h.name));
  const thead = el("thead");
  thead.append(tr);
  const tbody = el("tbody");
  for (const row of rows) {
    const r = el("tr");
    row.forEach((cell, i) => {
      const td = el("td", headers[i].num ? "num" : "");
      if (cell instanceof Node) td.append(cell); else td.textContent = cell;
      r.append(td);
    });
    tbody.append(r);
  }
  t.append(thead, tbody);
  return t;
}

function drawRequests(node, items, nowMs, what) {
  if (!items.length) {
    replace(node, empty(what));
    return;
  }
  replace(node, table(
    [{ name: "When" }, { name: "Route" }, { name: "Model" }, { name: "Status" }, { name: "Code" }, { name: "Duration", num: true }],
    items.slice(0, 10).map((r) => [
      fmtAgo(nowMs - r.at_ms), el("span", "code", `${r.method} ${r.route}`), r.model === "-" ? "" : r.model,
      statusChip(r.status), r.code ? el("span", "code", r.code) : "", fmtSecs(r.duration_ms / 1000),
    ]),
  ));
}

// ---- the usage ledger (another part of the gateway; may be off) ---------------------------

async function fetchJson(url) {
  const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (r.status === 404) return null;
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}

function budgetMeter(b) {
  const wrap = el("span");
  const mini = el("span", "mini");
  const fill = el("div");
  const f = b.limit > 0 ? b.used / b.limit : 0;
  fill.className = f >= 0.95 ? "bad" : f >= 0.75 ? "warn" : "";
  fill.style.width = Math.min(100, f * 100).toFixed(1) + "%";
  mini.append(fill);
  const unit = b.metric === "usd" ? "$" : "";
  const used = b.metric === "usd" ? b.used.toFixed(2) : fmtInt(b.used);
  const limit = b.metric === "usd" ? b.limit.toFixed(2) : fmtInt(b.limit);
  wrap.append(mini, document.createTextNode(`${unit}${used} / ${unit}${limit} ${b.metric !== "usd" ? b.metric : ""} per ${b.window}`));
  return wrap;
}

async function drawKeys() {
  const node = $("keys");
  const start = new Date();
  start.setHours(0, 0, 0, 0);
  let usage, budgets;
  try {
    [usage, budgets] = await Promise.all([
      fetchJson(`/v1/usage?group_by=key&from=${Math.floor(start.getTime() / 1000)}`),
      fetchJson("/v1/budgets"),
    ]);
  } catch (e) {
    replace(node, empty("Usage could not be read: " + e.message));
    return;
  }
  if (!usage && !budgets) {
    $("keys-note").textContent = "";
    replace(node, empty("Usage ledger off: this gateway does not record per-key usage"));
    return;
  }
  const byKey = new Map();
  for (const u of (usage && usage.data) || []) byKey.set(u.key, { usage: u, budgets: [] });
  for (const b of (budgets && budgets.data) || []) {
    const entry = byKey.get(b.key) || { usage: null, budgets: [] };
    entry.budgets = b.budgets || [];
    byKey.set(b.key, entry);
  }
  $("keys-note").textContent = `${byKey.size} key${byKey.size === 1 ? "" : "s"} since midnight`;
  if (!byKey.size) {
    replace(node, empty("No usage today"));
    return;
  }
  const rows = [...byKey.entries()].sort((a, b) => ((b[1].usage || {}).cost_usd || 0) - ((a[1].usage || {}).cost_usd || 0));
  replace(node, table(
    [{ name: "Key" }, { name: "Requests", num: true }, { name: "Tokens in / out", num: true }, { name: "Cost", num: true }, { name: "TTFT", num: true }, { name: "Budget" }],
    rows.map(([key, { usage: u, budgets: bs }]) => {
      const cell = el("span");
      if (bs.length) bs.forEach((b, i) => { if (i) cell.append(el("br")); cell.append(budgetMeter(b)); });
      else cell.textContent = "no budget";
      return [
        el("span", "code", key), u ? fmtInt(u.requests) : "–",
        u ? `${fmtInt(u.input_tokens)} / ${fmtInt(u.output_tokens)}` : "–",
        u ? "$" + u.cost_usd.toFixed(4) : "–", u && u.ttft_ms_avg ? fmtSecs(u.ttft_ms_avg / 1000) : "–", cell,
      ];
    }),
  ));
}

// ---- the loop ---------------------------------------------------------------------------------

function draw(d) {
  const n = d.numbers, load = d.load;
  $("version").textContent = "v" + d.version;
  const pill = $("status");
  pill.textContent = d.status === "serving" ? "serving" : "draining";
  pill.className = "pill " + (d.status === "serving" ? "ok" : "warn");
  $("updated").textContent = "updated " + new Date(d.now_ms).toLocaleTimeString();
  const inflight = n.in_flight_http + n.in_flight_grpc;
  $("c-inflight").textContent = fmtInt(inflight);
  $("c-inflight-sub").textContent = `${n.in_flight_http} HTTP · ${n.in_flight_grpc} gRPC`;
  $("c-queued").textContent = load ? fmtInt(load.queued) : "–";
  const procs = load ? STATES.reduce((a, [k]) => a + load[k], 0) : null;
  $("c-procs").textContent = load ? fmtInt(procs) : "–";
  $("c-procs-sub").textContent = load ? `${load.serving} serving · ${load.capacity} max` : "through workers";
  $("c-sessions").textContent = load ? fmtInt(load.session) : "–";
  $("c-completions").textContent = fmtInt(n.completions);
  const rate = n.completions ? (100 * n.completion_errors / n.completions).toFixed(1) : "0.0";
  $("c-completions-sub").textContent = `${rate}% errors · $${n.cost_usd.toFixed(4)}`;
  $("c-tokens").textContent = fmtInt(n.input_tokens + n.output_tokens);
  $("c-tokens-sub").textContent = `${fmtInt(n.input_tokens)} in · ${fmtInt(n.output_tokens)} out`;

  const done = lastCompletions === null ? 0 : Math.max(0, n.completions - lastCompletions);
  lastCompletions = n.completions;
  history.push({ inflight, done });
  while (history.length > HISTORY) history.shift();
  areaChart($("activity"), [
    { values: history.map((h) => h.done), cls: "b" },
    { values: history.map((h) => h.inflight), cls: "a" },
  ]);
  drawProcesses(load);
  histogramChart($("ttft"), n.ttft, false);
  $("ttft-q").textContent = n.ttft.count ? `p50 ${fmtSecs(n.ttft.p50_seconds)} · p95 ${fmtSecs(n.ttft.p95_seconds)}` : "";
  histogramChart($("latency"), n.latency, true);
  $("lat-q").textContent = n.latency.count ? `p50 ${fmtSecs(n.latency.p50_seconds)} · p95 ${fmtSecs(n.latency.p95_seconds)}` : "";
  drawQuota(d.quota, Math.floor(d.now_ms / 1000));
  drawRequests($("recent"), d.recent, d.now_ms, "No requests yet");
  drawRequests($("errors"), d.errors, d.now_ms, "No errors — all good");
}

let keysTick = 0;

async function tick() {
  try {
    const r = await fetch("/dashboard/data", { credentials: "same-origin", cache: "no-store" });
    if (r.status === 401 || r.status === 403) {
      window.location.reload();
      return;
    }
    if (!r.ok) throw new Error(String(r.status));
    draw(await r.json());
    document.body.dataset.loaded = "true";
    // The ledger's numbers move slowly: every 5th poll (10 s), and at once on the first.
    if (keysTick++ % 5 === 0) drawKeys();
  } catch (e) {
    const pill = $("status");
    pill.textContent = "unreachable";
    pill.className = "pill bad";
  } finally {
    setTimeout(tick, POLL_MS);
  }
}

document.addEventListener("DOMContentLoaded", tick);
