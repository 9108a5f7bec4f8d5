// The live floor, patched in place. Snapshots arrive at most every broadcast interval
// (the server coalesces them); the page keeps only the newest and applies it on the next
// animation frame, touching only the nodes whose text or state changed: 200 officers and
// 1,000 waiting booths cost a few hundred comparisons, not a rebuilt page.
//
// Between snapshots a one-second tick runs the clocks: session timers, the longest wait
// and alerts move on even when nothing on the floor changes (the server then sends
// nothing).

import { QueueChart } from "./chart.js";
import { duration, setData, setText, stepName, worstQuality } from "./format.js";

const $ = (sel) => document.querySelector(sel);
const RENDERS_KEPT = 500;

export class Floor {
  // actions: {monitor(session), move(session, cso), end(session), pause(cso), resume(cso)}
  constructor(actions) {
    this.actions = actions;
    this.floor = null;
    this.offset = 0; // server clock - ours, seconds
    this.branch = "";
    this.cards = new Map(); // cso_id -> {el, rows: Map(session_id -> li), cso}
    this.queueRows = new Map(); // branch -> tr
    this.alerts = new Map(); // key -> li
    this.branches = new Set();
    this.pending = false;
    this.renders = []; // {at, waiting, csos, sessions}: for tests and benches
    this.renderCount = 0;
    this.chart = new QueueChart($("#chart"));
    this.lastChart = 0;
    this.monitoredSession = null;
    $("#branch-filter").addEventListener("change", (ev) => {
      this.branch = ev.target.value;
      this.render();
    });
    // A region's 200 officers: find one (or a booth), and see first who needs attention.
    for (const id of ["#cso-find", "#cso-sort"]) $(id).addEventListener("input", () => this.render());
    for (const id of ["#t-wait", "#t-connect", "#t-reconnects"]) $(id).addEventListener("change", () => this.tick());
    const params = new URLSearchParams(location.search);
    if (params.has("wait_alert")) $("#t-wait").value = params.get("wait_alert");
    if (params.has("connect_alert")) $("#t-connect").value = params.get("connect_alert");
    if (params.has("reconnect_alert")) $("#t-reconnects").value = params.get("reconnect_alert");
    setInterval(() => this.tick(), 1000);
  }

  now() {
    return Date.now() / 1000 + this.offset;
  }

  // welcome.floor: the whole floor, plus the last hour of queue samples.
  welcome(floor) {
    this.chart.setHistory(floor.history || []);
    this.update(floor);
  }

  // A snapshot: kept, and drawn on the next frame (several in one frame: the newest wins).
  update(floor) {
    if (floor.now) this.offset = floor.now - Date.now() / 1000;
    this.floor = floor;
    if (this.pending) return;
    this.pending = true;
    const run = () => {
      if (!this.pending) return;
      this.pending = false;
      this.render();
    };
    requestAnimationFrame(run);
    setTimeout(run, 100); // a hidden tab gets no animation frames
  }

  render() {
    const floor = this.floor;
    if (!floor) return;
    this.renderQueue(floor.queue);
    this.renderCsos(floor.csos);
    this.renderBranches(floor);
    this.renderAlerts();
    this.chart.add(floor.now || this.now(), floor.queue.waiting, floor.queue.oldest_wait_s);
    if (this.now() - this.lastChart > 2) this.drawChart();
    this.renderCount += 1;
    const sessions = floor.csos.reduce((n, c) => n + c.sessions.length, 0);
    this.renders.push({ at: Date.now(), waiting: floor.queue.waiting, csos: floor.csos.length, sessions });
    if (this.renders.length > RENDERS_KEPT) this.renders.splice(0, this.renders.length - RENDERS_KEPT);
    setData(document.body, "renders", this.renderCount);
  }

  drawChart() {
    this.lastChart = this.now();
    this.chart.draw(this.now());
  }

  // Seconds since the snapshot was taken: waits keep growing between snapshots.
  drift() {
    return this.floor && this.floor.now ? Math.max(0, this.now() - this.floor.now) : 0;
  }

  // --- queue ------------------------------------------------------------------------------

  renderQueue(queue) {
    const drift = this.drift();
    const tbody = $("#queue-rows");
    const seen = new Set();
    for (const b of queue.branches || []) {
      seen.add(b.branch);
      let tr = this.queueRows.get(b.branch);
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.branch = b.branch;
        tr.innerHTML = '<th></th><td class="waiting"></td><td class="oldest"></td><td class="eta"></td>';
        tr.querySelector("th").textContent = b.branch;
        this.queueRows.set(b.branch, tr);
        const after = [...this.queueRows.keys()].sort().filter((k) => k > b.branch && this.queueRows.get(k).isConnected);
        tbody.insertBefore(tr, after.length ? this.queueRows.get(after[0]) : null);
      }
      tr._q = b;
      this.queueCells(tr, b.waiting, b.oldest_wait_s + (b.waiting ? drift : 0), b.estimated_wait_s);
      tr.hidden = Boolean(this.branch) && this.branch !== b.branch;
    }
    for (const [branch, tr] of this.queueRows) {
      if (!seen.has(branch)) {
        tr.remove();
        this.queueRows.delete(branch);
      }
    }
    const total = $("#queue-total");
    this.queueCells(total, queue.waiting, queue.oldest_wait_s + (queue.waiting ? drift : 0), queue.estimated_wait_s);
  }

  queueCells(tr, waiting, oldest, eta) {
    const w = tr.querySelector(".waiting");
    setText(w, String(waiting));
    setData(w, "value", waiting);
    setText(tr.querySelector(".oldest"), waiting ? duration(oldest) : "—");
    setText(tr.querySelector(".eta"), eta === null || eta === undefined ? (waiting ? "no officer on duty" : "—") : `~${duration(eta)}`);
  }

  // --- officers ---------------------------------------------------------------------------

  renderCsos(csos) {
    const container = $("#csos");
    const seen = new Set();
    let ref = container.firstElementChild;
    let counts = { available: 0, paused: 0, lost: 0 };
    let load = 0;
    let capacity = 0;
    for (const cso of this.ordered(csos)) {
      seen.add(cso.cso_id);
      const card = this.cards.get(cso.cso_id) || this.newCard(cso);
      card.cso = cso;
      if (card.el !== ref) container.insertBefore(card.el, ref);
      else ref = ref.nextElementSibling;
      this.patchCard(card, cso);
      const visible = !card.el.hidden;
      if (visible) {
        counts[cso.state] += 1;
        load += cso.load;
        capacity += cso.capacity;
      }
    }
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) {
        card.el.remove();
        this.cards.delete(id);
      }
    }
    const n = counts.available + counts.paused + counts.lost;
    setText($("#cso-summary"), `${n} on the floor · ${counts.available} available · ${counts.paused} paused · ${counts.lost} lost · serving ${load}/${capacity}`);
  }

  // Who needs a supervisor first: lost officers, stuck or away sessions, poor lines, full
  // loads; then by name. Other orders: name, load (fullest first).
  attention(cso) {
    let score = cso.state === "lost" ? 100 : cso.state === "paused" ? 5 : 0;
    const now = this.now();
    for (const s of cso.sessions) {
      if (!s.booth_connected || s.state === "reconnecting") score += 20;
      if (s.state === "connecting" && now - (s.state_since || s.since) > this.threshold("#t-connect")) score += 20;
      if (worstQuality(s.booth_quality, s.cso_quality).band === "poor") score += 10;
      score += Math.min(5, s.reconnects || 0);
    }
    if (cso.load >= cso.capacity) score += 3;
    return score;
  }

  ordered(csos) {
    const by = $("#cso-sort").value;
    const name = (a, b) => a.name.localeCompare(b.name) || a.cso_id.localeCompare(b.cso_id);
    if (by === "name") return [...csos].sort(name);
    if (by === "load") return [...csos].sort((a, b) => b.load - a.load || name(a, b));
    const score = new Map(csos.map((c) => [c.cso_id, this.attention(c)]));
    return [...csos].sort((a, b) => score.get(b.cso_id) - score.get(a.cso_id) || name(a, b));
  }

  newCard(cso) {
    const el = $("#cso-template").content.firstElementChild.cloneNode(true);
    el.dataset.cso = cso.cso_id;
    const card = { el, rows: new Map(), cso };
    el.querySelector(".pause").onclick = () => {
      if (card.cso.state === "paused") this.actions.resume(card.cso);
      else this.actions.pause(card.cso);
    };
    this.cards.set(cso.cso_id, card);
    return card;
  }

  patchCard(card, cso) {
    const el = card.el;
    setData(el, "state", cso.state);
    setData(el, "load", cso.load);
    setData(el, "capacity", cso.capacity);
    setData(el, "branch", cso.branch || "");
    setText(el.querySelector(".name"), cso.name);
    setText(el.querySelector(".state"), cso.state);
    setText(el.querySelector(".load"), `${cso.load}/${cso.capacity}`);
    const pause = el.querySelector(".pause");
    setText(pause, cso.state === "paused" ? "Resume" : "Pause");
    pause.disabled = cso.state === "lost";
    const branch = this.branch;
    const find = $("#cso-find").value.trim().toLowerCase();
    const found = !find || cso.name.toLowerCase().includes(find) || cso.cso_id.toLowerCase().includes(find)
      || cso.sessions.some((s) => (s.booth_label || s.booth_id).toLowerCase().includes(find));
    el.hidden = !found || (Boolean(branch) && cso.branch !== branch && !cso.sessions.some((s) => s.branch === branch));
    const score = this.attention(cso);
    setData(el, "attention", score);
    setData(el, "needs", score >= 10); // a lost officer, a stuck or away booth, a poor line
    const ul = el.querySelector(".sessions");
    const seen = new Set();
    let ref = ul.firstElementChild;
    for (const s of cso.sessions) {
      seen.add(s.session_id);
      let li = card.rows.get(s.session_id);
      if (!li) li = this.newRow(card, s);
      if (li !== ref) ul.insertBefore(li, ref);
      else ref = ref.nextElementSibling;
      li._s = s;
      li._cso = cso;
      this.patchRow(li, s);
    }
    for (const [id, li] of card.rows) {
      if (!seen.has(id)) {
        li.remove();
        card.rows.delete(id);
      }
    }
  }

  newRow(card, s) {
    const li = $("#session-template").content.firstElementChild.cloneNode(true);
    li.dataset.session = s.session_id;
    li.dataset.booth = s.booth_id;
    li.querySelector(".monitor").onclick = () => this.actions.monitor(li._s, li._cso);
    li.querySelector(".move").onclick = () => this.actions.move(li._s, li._cso);
    li.querySelector(".end").onclick = () => this.actions.end(li._s, li._cso);
    card.rows.set(s.session_id, li);
    return li;
  }

  patchRow(li, s) {
    setData(li, "state", s.state);
    setData(li, "away", !s.booth_connected);
    setText(li.querySelector(".booth"), s.booth_label || s.booth_id);
    li.querySelector(".booth").title = `${s.booth_label || s.booth_id} · ${s.booth_id} · ${s.branch}`;
    setText(li.querySelector(".step"), s.booth_connected ? stepName(s.state) : "booth away");
    const q = worstQuality(s.booth_quality, s.cso_quality);
    const qn = li.querySelector(".quality");
    setText(qn, q.text);
    qn.title = q.text;
    setData(qn, "band", q.band);
    const flags = [];
    if (s.monitored) flags.push("monitored");
    if (s.reconnects) flags.push(`reconnected ${s.reconnects}×`);
    setText(li.querySelector(".flags"), flags.join(" · "));
    li.querySelector(".monitor").disabled = !["on_hold", "focused", "connecting"].includes(s.state)
      || this.monitoredSession === s.session_id;
    this.patchTimer(li);
  }

  patchTimer(li) {
    const s = li._s;
    const elapsed = this.now() - (s.state_since || s.since);
    setText(li.querySelector(".timer"), duration(elapsed));
    setData(li, "stuck", s.state === "connecting" && elapsed > this.threshold("#t-connect"));
  }

  threshold(id) {
    return Number($(id).value) || 0;
  }

  // --- branches ---------------------------------------------------------------------------

  renderBranches(floor) {
    const before = this.branches.size;
    for (const b of floor.queue.branches || []) this.branches.add(b.branch);
    for (const c of floor.csos) {
      if (c.branch) this.branches.add(c.branch);
      for (const s of c.sessions) if (s.branch) this.branches.add(s.branch);
    }
    if (this.branches.size === before) return;
    const select = $("#branch-filter");
    const have = new Set([...select.options].map((o) => o.value));
    for (const b of [...this.branches].sort()) {
      if (have.has(b)) continue;
      const opt = document.createElement("option");
      opt.value = b;
      opt.textContent = b;
      select.append(opt);
    }
  }

  // --- alerts -----------------------------------------------------------------------------

  computeAlerts() {
    const floor = this.floor;
    const out = [];
    if (!floor) return out;
    const now = this.now();
    const drift = this.drift();
    const branch = this.branch;
    const inBranch = (b) => !branch || b === branch;
    const waitLimit = this.threshold("#t-wait") * 60;
    const connectLimit = this.threshold("#t-connect");
    const reconnectLimit = Math.max(1, this.threshold("#t-reconnects"));
    for (const c of floor.lost_captures || []) {
      // A picture its booth can never deliver: somebody must ask the participant again.
      if (!inBranch(c.branch)) continue;
      const why = c.reason.replaceAll("_", " ");
      out.push({ key: `lost:${c.capture_id}`, kind: "lost_capture", text: `A ${c.kind} picture from ${c.booth_id} (${c.branch}) will not arrive: ${why}. Claim ${c.claim_id}: ask for it again.` });
    }
    for (const b of floor.queue.longest || []) {
      if (!inBranch(b.branch)) continue;
      const waited = b.waited_s + drift;
      if (waited > waitLimit) {
        out.push({ key: `wait:${b.booth_id}`, kind: "wait", text: `${b.label} (${b.branch}) has waited ${duration(waited)}` });
      }
      if (b.reconnects >= reconnectLimit) {
        out.push({ key: `reconnects:${b.booth_id}`, kind: "reconnects", text: `${b.label} (${b.branch}) reconnected ${b.reconnects} times while waiting` });
      }
    }
    for (const cso of floor.csos) {
      const mine = cso.sessions.filter((s) => inBranch(s.branch));
      if (cso.state === "lost" && cso.load > 0 && (inBranch(cso.branch) || mine.length)) {
        out.push({ key: `cso_lost:${cso.cso_id}`, kind: "cso_lost", text: `${cso.name} is lost: ${cso.load} booth${cso.load === 1 ? "" : "s"} waiting in grace` });
      }
      for (const s of mine) {
        const label = s.booth_label || s.booth_id;
        if (s.state === "connecting" && now - (s.state_since || s.since) > connectLimit) {
          out.push({ key: `stuck:${s.session_id}`, kind: "stuck", text: `${label} stuck connecting with ${cso.name} for ${duration(now - (s.state_since || s.since))}`, session: s, cso });
        }
        if (s.reconnects >= reconnectLimit) {
          out.push({ key: `reconnects:${s.booth_id}`, kind: "reconnects", text: `${label} reconnected ${s.reconnects} times (with ${cso.name})` });
        }
      }
    }
    return out;
  }

  renderAlerts() {
    const list = $("#alerts");
    const alerts = this.computeAlerts();
    const seen = new Set();
    let ref = list.firstElementChild;
    for (const a of alerts) {
      if (seen.has(a.key)) continue;
      seen.add(a.key);
      let li = this.alerts.get(a.key);
      if (!li) {
        li = document.createElement("li");
        li.dataset.key = a.key;
        li.dataset.kind = a.kind;
        li.append(document.createElement("span"));
        if (a.session) {
          const end = document.createElement("button");
          end.type = "button";
          end.textContent = "End session";
          end.onclick = () => this.actions.end(li._a.session, li._a.cso);
          li.append(end);
        }
        this.alerts.set(a.key, li);
      }
      li._a = a;
      setText(li.firstElementChild, a.text);
      if (li !== ref) list.insertBefore(li, ref);
      else ref = ref.nextElementSibling;
    }
    for (const [key, li] of this.alerts) {
      if (!seen.has(key)) {
        li.remove();
        this.alerts.delete(key);
      }
    }
    const count = $("#alert-count");
    setText(count, String(seen.size));
    setData(count, "value", seen.size);
    $("#no-alerts").hidden = seen.size > 0;
  }

  // --- the clock ----------------------------------------------------------------------------

  tick() {
    if (!this.floor) return;
    const drift = this.drift();
    const q = this.floor.queue;
    setText($("#queue-total .oldest"), q.waiting ? duration(q.oldest_wait_s + drift) : "—");
    for (const tr of this.queueRows.values()) {
      if (tr._q && tr._q.waiting) setText(tr.querySelector(".oldest"), duration(tr._q.oldest_wait_s + drift));
    }
    for (const card of this.cards.values()) {
      if (card.el.hidden) continue;
      for (const li of card.rows.values()) this.patchTimer(li);
    }
    this.renderAlerts();
    if (this.now() - this.lastChart > 5) this.drawChart();
  }

  setMonitored(sessionId) {
    this.monitoredSession = sessionId;
    if (this.floor) this.render();
  }

  // Officers a booth could move to: on the floor, not lost, with room, not its own.
  targetsFor(cso) {
    if (!this.floor) return [];
    return this.floor.csos.filter((c) => c.cso_id !== cso.cso_id && c.state !== "lost");
  }
}
