// Service-level reports (/reports/): what GET /api/reports computes from the recorded visit
// events, as a headline (the service level and its formula), figures, plain-SVG plots
// (arrivals and waits by hour; service level by day) and tables; CSV for spreadsheets.

import { TokenStore, login } from "/console/auth.js";

const $ = (sel) => document.querySelector(sel);
const store = new TokenStore("loket.reports.tokens");
let tokens = null;
const SVG = "http://www.w3.org/2000/svg";

function setStatus(text, kind = "info") { $("#status").textContent = text; $("#status").dataset.kind = kind; }
const pct = (x) => (x == null ? "—" : `${(100 * x).toFixed(1)} %`);
const mins = (s) => (s == null ? "—" : s < 90 ? `${Math.round(s)} s` : `${(s / 60).toFixed(1)} min`);

async function refresh() {
  if (Date.now() < tokens.obtained_at + (tokens.expires_in - 60) * 1000) return;
  const res = await fetch("/api/auth/refresh", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: tokens.refresh_token }) });
  if (!res.ok) { store.clear(); location.reload(); return; }
  tokens = { ...(await res.json()), obtained_at: Date.now() };
  store.save(tokens);
}

async function get(path) {
  await refresh();
  const res = await fetch(path, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  if (!res.ok) {
    const err = (await res.json().catch(() => ({}))).error || {};
    throw new Error(err.message || res.statusText);
  }
  return res;
}

function query() {
  const f = new FormData($("#filter"));
  const q = new URLSearchParams();
  for (const k of ["branch", "from", "to"]) if (f.get(k)) q.set(k, f.get(k));
  return q.toString();
}

function el(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

// Bars (arrivals, left axis) and lines (average total wait and p90, right axis) by hour.
function hoursPlot(hours) {
  const W = 640, H = 260, L = 40, R = 50, T = 14, B = 28;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "arrivals and waits by hour" });
  const from = Math.min(8, ...hours.map((h) => h.hour)), to = Math.max(16, ...hours.map((h) => h.hour));
  const n = to - from + 1, bw = (W - L - R) / n;
  const maxA = Math.max(1, ...hours.map((h) => h.arrivals));
  const maxW = Math.max(60, ...hours.map((h) => h.p90_total_wait || 0));
  const y = (v, max) => T + (H - T - B) * (1 - v / max);
  svg.append(el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#9bb" }));
  for (const v of [0, maxA / 2, maxA]) svg.append(el("text", { x: L - 6, y: y(v, maxA) + 4, "text-anchor": "end" }, Math.round(v)));
  for (const v of [0, maxW / 2, maxW]) svg.append(el("text", { x: W - R + 6, y: y(v, maxW) + 4 }, `${Math.round(v / 60)}m`));
  const byHour = new Map(hours.map((h) => [h.hour, h]));
  const avgPts = [], p90Pts = [];
  for (let i = 0; i < n; i++) {
    const hour = from + i, x = L + i * bw, h = byHour.get(hour);
    svg.append(el("text", { x: x + bw / 2, y: H - 10, "text-anchor": "middle" }, String(hour).padStart(2, "0")));
    if (!h) continue;
    const bar = el("rect", { x: x + bw * 0.15, y: y(h.arrivals, maxA), width: bw * 0.7, height: H - B - y(h.arrivals, maxA), fill: "#8fb8de", "data-hour": hour });
    bar.append(el("title", {}, `${hour}:00 — ${h.arrivals} arrivals, avg wait ${mins(h.avg_total_wait)}, p90 ${mins(h.p90_total_wait)}`));
    svg.append(bar);
    if (h.avg_total_wait != null) avgPts.push(`${x + bw / 2},${y(h.avg_total_wait, maxW)}`);
    if (h.p90_total_wait != null) p90Pts.push(`${x + bw / 2},${y(h.p90_total_wait, maxW)}`);
  }
  svg.append(el("polyline", { points: avgPts.join(" "), fill: "none", stroke: "#0f3a63", "stroke-width": 2.5 }));
  svg.append(el("polyline", { points: p90Pts.join(" "), fill: "none", stroke: "#b3261e", "stroke-width": 2, "stroke-dasharray": "5 3" }));
  const legend = [["#8fb8de", "arrivals"], ["#0f3a63", "average wait"], ["#b3261e", "90th percentile wait"]];
  legend.forEach(([c, t], i) => { svg.append(el("rect", { x: L + 8 + i * 150, y: 2, width: 12, height: 8, fill: c })); svg.append(el("text", { x: L + 24 + i * 150, y: 10 }, t)); });
  return svg;
}

// Service level by day against the target line (what "good" is for this branch: 80 %).
function daysPlot(days) {
  const W = 640, H = 260, L = 40, R = 14, T = 14, B = 30;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "service level by day" });
  const n = Math.max(1, days.length), bw = (W - L - R) / n;
  const y = (v) => T + (H - T - B) * (1 - v);
  for (const v of [0, 0.5, 0.8, 1]) {
    svg.append(el("line", { x1: L, y1: y(v), x2: W - R, y2: y(v), stroke: v === 0.8 ? "#f5a623" : "#e3e9ef", "stroke-dasharray": v === 0.8 ? "4 3" : "" }));
    svg.append(el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, `${v * 100}%`));
  }
  days.forEach((d, i) => {
    const x = L + i * bw;
    if (n <= 31 || i % Math.ceil(n / 15) === 0) svg.append(el("text", { x: x + bw / 2, y: H - 12, "text-anchor": "middle" }, d.day.slice(5)));
    if (d.service_level == null) return;
    const bar = el("rect", { x: x + bw * 0.15, y: y(d.service_level), width: Math.max(1, bw * 0.7), height: H - B - y(d.service_level),
      fill: d.service_level >= 0.8 ? "#3c8d5a" : "#c0504d", "data-day": d.day });
    bar.append(el("title", {}, `${d.day}: ${pct(d.service_level)} (${d.sl_met} of ${d.sl_base})`));
    svg.append(bar);
  });
  return svg;
}

function table(node, head, rows) {
  node.replaceChildren();
  const tr = document.createElement("tr");
  for (const h of head) { const th = document.createElement("th"); th.textContent = h; tr.append(th); }
  node.append(tr);
  for (const r of rows) {
    const row = document.createElement("tr");
    for (const v of r) { const td = document.createElement("td"); td.textContent = v; row.append(td); }
    node.append(row);
  }
}

function show(r) {
  const t = r.totals;
  $("#sl").textContent = pct(t.service_level);
  const span = r.from === r.to ? r.from : `${r.from} – ${r.to}`;
  $("#sl-detail").textContent = `${span}, ${r.branches ? r.branches.join(", ") : "all branches"}: ${t.sl_met} of ${t.sl_base} tickets served within ${r.target_wait_s / 60} minutes (${t.excluded} short abandons left out).`;
  $("#formula").textContent = r.formula;
  $("#definition").textContent = `Defined ${r.definition}.`;
  const kpis = [["Arrivals", t.arrivals], ["Served", t.served], ["No-shows", `${t.no_show} (${pct(t.no_show_pct)})`],
    ["Avg wait, total", mins(t.avg_total_wait)], ["p90 wait, total", mins(t.p90_total_wait)],
    ["Avg wait, lobby", mins(t.avg_lobby_wait)], ["p90 wait, lobby", mins(t.p90_lobby_wait)],
    ["Avg wait, floor", mins(t.avg_floor_wait)], ["p90 wait, floor", mins(t.p90_floor_wait)], ["Avg handling", mins(t.avg_handle)]];
  $("#kpis").replaceChildren(...kpis.map(([k, v]) => { const d = document.createElement("div"); d.className = "kpi"; d.innerHTML = "<span></span><b></b>"; d.firstChild.textContent = k; d.lastChild.textContent = v; return d; }));
  $("#plot-hours").hidden = !r.hours;
  if (r.hours) $("#plot-hours .svg").replaceChildren(hoursPlot(r.hours));
  $("#plot-days .svg").replaceChildren(daysPlot(r.days));
  const row = (label, f) => [label, f.arrivals, f.served, `${f.no_show} (${pct(f.no_show_pct)})`, mins(f.avg_lobby_wait), mins(f.p90_lobby_wait), mins(f.avg_floor_wait), mins(f.p90_floor_wait), mins(f.avg_total_wait), mins(f.p90_total_wait), pct(f.service_level)];
  const head = ["", "Arrivals", "Served", "No-shows", "Lobby avg", "Lobby p90", "Floor avg", "Floor p90", "Total avg", "Total p90", "Service level"];
  table($("#days"), head, [...(r.hours || []).map((h) => row(`${String(h.hour).padStart(2, "0")}:00`, h)), ...r.days.map((d) => row(d.day, d))]);
  table($("#officers"), ["Officer", "Visits", "Avg handling"], r.officers.map((o) => [o.cso_id, o.visits, mins(o.avg_handle_s)]));
  table($("#outcomes"), ["Claim type", "Reason", "Visits"], r.outcomes.map((o) => [o.claim_type, o.reason, o.visits]));
  $("#branch-block").hidden = r.per_branch.length < 2;
  table($("#per-branch"), head, r.per_branch.map((b) => row(b.branch, b)));
  const select = $("#filter [name=branch]");
  const keep = select.value;
  select.replaceChildren(new Option("All my branches", ""), ...r.known_branches.map((b) => new Option(b, b)));
  select.value = keep;
  window.loketReport = r; // tests
}

async function load() {
  const started = performance.now();
  setStatus("Loading…");
  try {
    const r = await (await get(`/api/reports?${query()}`)).json();
    if (!$("#filter [name=from]").value) { $("#filter [name=from]").value = r.from; $("#filter [name=to]").value = r.to; }
    show(r);
    window.loketReportMs = performance.now() - started;
    setStatus(`Computed from the recorded visit events in ${Math.round(window.loketReportMs)} ms.`);
  } catch (e) { setStatus(`Report refused: ${e.message}`, "refused"); }
}

function dayOffset(days) {
  const d = new Date(Date.now() + 7 * 3600e3 - days * 86400e3); // the branches' local day (WIB)
  return d.toISOString().slice(0, 10);
}

$("#filter").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
$("#yesterday").addEventListener("click", () => { $("#filter [name=from]").value = $("#filter [name=to]").value = dayOffset(1); load(); });
$("#last30").addEventListener("click", () => { $("#filter [name=from]").value = dayOffset(30); $("#filter [name=to]").value = dayOffset(1); load(); });
$("#csv").addEventListener("click", async () => {
  const blob = await (await get(`/api/reports.csv?${query()}`)).blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `loket-report-${$("#filter [name=from]").value || "yesterday"}.csv`;
  a.click();
});

function start(t) {
  tokens = t;
  store.save(t);
  $("#login").hidden = true;
  $("#reports").hidden = false;
  $("#who").hidden = false;
  load();
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const t = await login(f.get("username"), f.get("password"));
    if (!["supervisor", "auditor"].includes(t.role)) { $("#login-error").textContent = `Reports are for supervisors and auditors, not ${t.role} accounts.`; return; }
    start({ ...t, obtained_at: Date.now() });
  } catch (e) { $("#login-error").textContent = e.message; }
});
$("#logout").addEventListener("click", () => { store.clear(); location.reload(); });
const saved = store.load();
if (saved && saved.refresh_token) start(saved);
