// The branch's desk (/desk/): issue tickets (walk-in data or a booking code, typed once and
// carried to the booth), and recall, transfer or cancel them. Supervisor and operator
// accounts, on the supervisor socket; the waiting room comes from the floor's pushes.

import { TokenStore, login } from "/console/auth.js";
import { Signaling } from "/console/signaling.js";

const $ = (sel) => document.querySelector(sel);
const tokenStore = new TokenStore("loket.desk.tokens");
let signaling = null;
let lobby = { branches: [], tickets: [], categories: {} };
let me = null;
const asked = new Set(); // ids of issue_ticket requests awaiting `ticket_issued`

function setStatus(text, kind = "info") {
  $("#status").textContent = text;
  $("#status").dataset.kind = kind;
}

function minutes(s) {
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m} min ${Math.floor(s % 60)} s`;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function button(label, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", action);
  return b;
}

function draw() {
  const now = Date.now() / 1000;
  $("#branches").replaceChildren(...lobby.branches.map((b) => {
    const div = document.createElement("div");
    div.className = "branch";
    const cats = Object.entries(b.waiting_by_category).map(([c, n]) => `${c} ${n}`).join(" · ") || "none";
    div.textContent = `${b.branch}: ${b.waiting} waiting (${cats}), oldest ${minutes(b.oldest_wait_s)}; booths ${b.booths_free} free, ${b.booths_called} called, ${b.booths_in_use} in use`;
    return div;
  }));
  $("#tickets tbody").replaceChildren(...lobby.tickets.map((t) => {
    const tr = document.createElement("tr");
    tr.dataset.state = t.state;
    tr.dataset.number = t.number;
    const claim = t.claim.booking_code || t.claim.nik_masked || "";
    const actions = document.createElement("td");
    if (t.state === "called") actions.append(button("Recall", () => act(t, "recall")));
    actions.append(button("Transfer", () => transfer(t)), button("Cancel", () => act(t, "cancel")));
    tr.append(cell(t.number), cell(t.state === "called" ? `called (${t.calls})` : t.recycles ? "waiting (recycled)" : "waiting"),
      cell(minutes(Math.max(0, now - t.arrived_at))), cell(t.booth_label || ""), cell(`${claim} ${t.claim.claim_type || ""}`, "claim"), actions);
    return tr;
  }));
  const branches = new Set([me?.branch, ...lobby.branches.map((b) => b.branch)].filter(Boolean));
  for (const select of [$("#issue [name=branch]"), $("#transfer [name=branch]")]) {
    const keep = select.value;
    select.replaceChildren(...[...branches].sort().map((b) => new Option(b, b)));
    if (keep && branches.has(keep)) select.value = keep;
  }
  $("#transfer [name=category]").replaceChildren(
    ...Object.entries(lobby.categories).map(([code, name]) => new Option(`${code} — ${name}`, code)));
}

async function act(ticket, action, extra = {}) {
  const reply = await signaling.request("ticket_action", { ticket_id: ticket.ticket_id, action, ...extra });
  if (reply.ok) setStatus(`${ticket.number}: ${action} done.`);
}

function transfer(ticket) {
  const dialog = $("#transfer");
  $("#transfer-text").textContent = `Transfer ${ticket.number} (it keeps its place by arrival):`;
  draw();
  dialog.querySelector("[name=category]").value = ticket.category;
  dialog.querySelector("[name=branch]").value = ticket.branch;
  dialog.returnValue = "";
  dialog.showModal();
  dialog.addEventListener("close", () => {
    if (dialog.returnValue !== "ok") return;
    const form = dialog.querySelector("form");
    act(ticket, "transfer", { category: form.category.value, branch: form.branch.value });
  }, { once: true });
}

$("#issue").addEventListener("change", (ev) => {
  if (ev.target.name !== "kind") return;
  for (const div of document.querySelectorAll("#issue [data-for]")) div.hidden = div.dataset.for !== ev.target.value;
});

$("#issue").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const claim = f.get("kind") === "booking"
    ? { kind: "booking", booking_code: String(f.get("booking_code")).trim().toUpperCase() }
    : { kind: "walk_in", nik: String(f.get("nik")).trim(), kpj: String(f.get("kpj")).trim(), claim_type: f.get("claim_type") };
  const id = signaling.send("issue_ticket", { claim, priority: f.get("priority") === "on", branch: f.get("branch") || null });
  if (id) { asked.add(id); setStatus("Looking up the claim…"); }
});

const handlers = {
  welcome(msg) {
    me = { name: msg.display_name };
    $("#who-name").textContent = msg.display_name;
    if (msg.floor) { lobby = msg.floor.lobby; draw(); }
    setStatus("Connected. Tickets are live.");
  },
  floor_snapshot(msg) { lobby = msg.lobby; draw(); },
  ticket_issued(msg) {
    asked.delete(msg.reply_to);
    signaling.sent.delete(msg.reply_to);
    const t = msg.ticket;
    const wait = msg.estimated_wait_s == null ? "no estimate yet" : `about ${Math.max(1, Math.round(msg.estimated_wait_s / 60))} min`;
    const box = document.createElement("div");
    box.className = "ticket";
    box.innerHTML = '<div>Nomor antrean</div><div class="number"></div><div class="wait"></div>';
    box.querySelector(".number").textContent = t.number;
    box.querySelector(".wait").textContent = `${msg.ahead} ahead in line; estimated wait ${wait}`;
    $("#issued").replaceChildren(box);
    $("#issue").reset();
    setStatus(`Ticket ${t.number} issued (${t.branch}).`);
  },
  floor_event() {},
  error(msg) { setStatus(`Server: ${msg.message}${msg.hint ? ` — ${msg.hint}` : ""}`, "refused"); },
};

function start(tokens) {
  $("#login").hidden = true;
  $("#desk").hidden = false;
  $("#who").hidden = false;
  tokenStore.save(tokens);
  signaling = new Signaling("/ws/supervisor", tokens, handlers, {
    onStatus: setStatus,
    onRefused: (request, error) => setStatus(`${request.type} refused (${error.code}): ${error.message}${error.hint ? ` — ${error.hint}` : ""}`, "refused"),
    onTokens: (t) => tokenStore.save(t),
    onStopped: (text) => { tokenStore.clear(); $("#login").hidden = false; $("#desk").hidden = true; $("#login-error").textContent = text; },
  });
  signaling.connect();
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  try {
    const tokens = await login(form.get("username"), form.get("password"));
    if (!["supervisor", "operator"].includes(tokens.role)) {
      $("#login-error").textContent = `The desk is for branch supervisors; a ${tokens.role} account cannot use it.`;
      return;
    }
    start({ ...tokens, obtained_at: Date.now() });
  } catch (e) { $("#login-error").textContent = e.message; }
});
$("#logout").addEventListener("click", async () => {
  const current = signaling;
  signaling = null;
  tokenStore.clear();
  if (current) await current.logout();
  location.reload();
});
setInterval(() => { if (signaling) draw(); }, 1000);
window.loketDesk = { lobby: () => lobby };
const saved = tokenStore.load();
if (saved && saved.refresh_token) start(saved);
