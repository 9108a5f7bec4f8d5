// The lobby (front of house) on the supervisor dashboard: per branch, the tickets waiting
// by category, the oldest wait, booths free / called / in use (from the floor's pushes), and
// today's no-shows and service level (from GET /api/reports, the recorded visit events,
// refreshed every minute: the same figures as the reports page, never a live counter).

import { duration, setText } from "./format.js";

const $ = (sel) => document.querySelector(sel);
const TODAY_EVERY = 60_000;

export class Lobby {
  constructor(api) {
    this.api = api; // the console's Api: refreshes the token, retries the network
    this.lobby = { branches: [], categories: {} };
    this.today = new Map(); // branch -> {no_show, service_level, sl_met, sl_base}
    this.branch = "";
    this.fetched = 0;
  }

  update(lobby, branch) {
    this.lobby = lobby || this.lobby;
    this.branch = branch;
    this.render();
    if (Date.now() - this.fetched > TODAY_EVERY) this.loadToday();
  }

  async loadToday() {
    this.fetched = Date.now();
    const day = new Date(Date.now() + 7 * 3600e3).toISOString().slice(0, 10); // WIB
    for (const b of this.lobby.branches) {
      try {
        const res = await this.api.request(`/api/reports?branch=${encodeURIComponent(b.branch)}&from=${day}&to=${day}`);
        const r = await res.json();
        this.today.set(b.branch, r.totals);
      } catch (e) { /* out of scope or offline: the live part still shows */ }
    }
    this.render();
  }

  render() {
    const rows = this.lobby.branches.filter((b) => !this.branch || b.branch === this.branch);
    $("#lobby-section").hidden = rows.length === 0;
    const codes = Object.keys(this.lobby.categories || {});
    const head = $("#lobby thead tr");
    head.replaceChildren(...["Branch", ...codes.map((c) => `${c} waiting`), "Oldest wait", "Booths free / called / in use", "Est. wait", "No-shows today", "Service level today"]
      .map((t) => { const th = document.createElement("th"); th.textContent = t; return th; }));
    $("#lobby tbody").replaceChildren(...rows.map((b) => {
      const tr = document.createElement("tr");
      tr.dataset.branch = b.branch;
      const today = this.today.get(b.branch);
      const cells = [
        b.branch,
        ...codes.map((c) => String(b.waiting_by_category[c] || 0)),
        b.waiting ? duration(b.oldest_wait_s) : "—",
        `${b.booths_free} / ${b.booths_called} / ${b.booths_in_use}`,
        b.estimated_wait_s == null ? "—" : `~${duration(b.estimated_wait_s)}`,
        today ? String(today.no_show) : "…",
        today && today.service_level != null ? `${Math.round(100 * today.service_level)} % (${today.sl_met}/${today.sl_base})` : "—",
      ];
      for (const [i, text] of cells.entries()) {
        const td = document.createElement(i === 0 ? "th" : "td");
        setText(td, text);
        tr.append(td);
      }
      return tr;
    }));
  }
}
