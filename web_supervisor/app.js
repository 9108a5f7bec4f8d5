// Loket supervisor dashboard: log in, watch the live floor, steer, monitor, whisper.
// Plain ES modules, no build step. Speaks the protocol in signaling/ (see /api/schema)
// through the console's own Signaling module (same envelope, hello, heartbeats, token
// refresh and reauth, close codes), on /ws/supervisor.
//
// The floor comes only from the server's pushes: `welcome.floor` (with an hour of queue
// samples) and the coalesced `floor_snapshot`s; the page never polls. After a reconnect
// the floor is rebuilt from the new welcome.

import { TokenStore, login } from "/console/auth.js";
import { Api } from "/console/claim.js";
import { Signaling } from "/console/signaling.js";
import { Floor } from "./floor.js";
import { Lobby } from "./lobby.js";
import { SupervisorLinks } from "./links.js";
import { Outcomes } from "./outcomes.js";

const $ = (sel) => document.querySelector(sel);
const tokenStore = new TokenStore("loket.supervisor.tokens");
const ROLES = ["supervisor", "operator"];
const ACTION_NAMES = {
  move_booth: "Move", set_cso_availability: "Pause/resume", end_session: "End session",
  open_link: "Monitor/whisper", close_link: "Stop", subscribe: "Refresh", reauth: "Session renewal",
  offer: "Whisper offer", answer: "Monitor answer", candidate: "ICE candidate",
};

let signaling = null;
let outcomes = null;
let lobby = null;

function setStatus(text, kind = "info") {
  const el = $("#status");
  el.textContent = text;
  el.dataset.kind = kind;
}

// --- confirmation -----------------------------------------------------------------------

// Resolves to the value of `extra` (e.g. a picked officer) or true; null when cancelled.
function confirmAction(text, okLabel, extra = null) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  $("#confirm-extra").replaceChildren(...(extra ? [extra] : []));
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "ok") return resolve(null);
      const select = extra && extra.querySelector("select");
      resolve(select ? select.value : true);
    }, { once: true });
  });
}

async function steer(type, body, done) {
  const reply = await signaling.request(type, body);
  if (reply.ok) setStatus(done);
  // A refusal is shown by `refused` (typed code and message).
}

// --- the floor's actions ------------------------------------------------------------------

const links = new SupervisorLinks({
  status: setStatus,
  monitoring: (sessionId) => floor.setMonitored(sessionId),
});

const floor = new Floor({
  monitor: (session, cso) => links.monitor(session, cso).catch((e) => setStatus(`Monitoring failed: ${e}`, "refused")),
  async move(session, cso) {
    const targets = floor.targetsFor(cso);
    if (!targets.length) return setStatus("No other officer is on the floor to move this booth to.", "refused");
    const label = document.createElement("label");
    label.textContent = "Move to ";
    const select = document.createElement("select");
    select.name = "to_cso_id";
    for (const t of targets) {
      const opt = document.createElement("option");
      opt.value = t.cso_id;
      opt.textContent = `${t.name} (${t.state}, ${t.load}/${t.capacity})`;
      select.append(opt);
    }
    label.append(select);
    const who = session.booth_label || session.booth_id;
    const to = await confirmAction(`Move ${who} away from ${cso.name}? The call ends and the booth goes to the officer you pick, first in line, with its claim.`, "Move booth", label);
    if (to) await steer("move_booth", { session_id: session.session_id, to_cso_id: to }, `${who} moved.`);
  },
  async end(session, cso) {
    const who = session.booth_label || session.booth_id;
    if (await confirmAction(`End ${who}'s session with ${cso.name}? The participant's call ends now.`, "End session")) {
      await steer("end_session", { session_id: session.session_id }, `${who}'s session ended.`);
    }
  },
  async pause(cso) {
    if (await confirmAction(`Pause ${cso.name}? They get no new booths; the booths they serve stay with them.`, "Pause officer")) {
      await steer("set_cso_availability", { cso_id: cso.cso_id, available: false }, `${cso.name} paused.`);
    }
  },
  async resume(cso) {
    if (await confirmAction(`Resume ${cso.name}? They take booths again.`, "Resume officer")) {
      await steer("set_cso_availability", { cso_id: cso.cso_id, available: true }, `${cso.name} resumed.`);
    }
  },
});

// For tests and benches: what the page shows, and when it was drawn.
window.loketDashboard = {
  floor: () => floor.floor,
  renders: floor.renders,
  alerts: () => floor.computeAlerts().map((a) => a.key),
  monitorEnergy: () => links.energy(),
  monitorFrames: () => links.videoFrames,
  // Draw a given floor as if pushed (layout checks and screenshots at a region's size).
  draw: (f) => { floor.update(f); if (lobby) lobby.update(f.lobby, floor.branch); },
};

// --- the server's messages ----------------------------------------------------------------

const handlers = {
  welcome(msg) {
    $("#who-name").textContent = msg.display_name;
    links.lost(); // a new socket: links of the old one are gone
    if (msg.floor) floor.welcome(msg.floor);
    if (msg.floor && lobby) lobby.update(msg.floor.lobby, floor.branch);
    setStatus(msg.resumed ? "Reconnected." : "Connected. The floor is live.");
  },
  floor_snapshot(msg) {
    floor.update(msg);
    if (lobby) lobby.update(msg.lobby, floor.branch);
  },
  floor_event() {
    // Every event is followed by a snapshot within the broadcast interval: the page draws
    // from snapshots only, so a burst of events costs one redraw.
  },
  ...links.handlers(),
  error(msg) {
    setStatus(`Server: ${msg.message}${msg.hint ? ` — ${msg.hint}` : ""}`, "refused");
  },
};

function refused(request, error) {
  const what = ACTION_NAMES[request.type] || request.type;
  setStatus(`${what} refused (${error.code}): ${error.message}${error.hint ? ` — ${error.hint}` : ""}`, "refused");
}

function stopped(text, next) {
  links.lost();
  signaling = null;
  if (next === "login") {
    tokenStore.clear();
    return showLogin(text);
  }
  if (next === "disabled") {
    tokenStore.clear();
    return showLogin("The server refused this account the supervisor view (not a supervisor, or disabled).");
  }
  setStatus(text, "refused");
}

// --- login and logout ------------------------------------------------------------------------

function showLogin(message = "") {
  $("#dash").hidden = true;
  $("#who").hidden = true;
  $("#login").hidden = false;
  $("#login").reset();
  $("#login-error").textContent = message;
}

function start(tokens) {
  $("#login").hidden = true;
  $("#dash").hidden = false;
  $("#who").hidden = false;
  setStatus("Connecting…");
  tokenStore.save(tokens);
  signaling = new Signaling("/ws/supervisor", tokens, handlers, {
    onStatus: setStatus,
    onRefused: refused,
    onTokens: (tokens) => tokenStore.save(tokens),
    onStopped: stopped,
  });
  links.attach(signaling);
  lobby = new Lobby(new Api(signaling));
  if (outcomes) outcomes.api = new Api(signaling);
  else outcomes = new Outcomes(new Api(signaling), setStatus);
  signaling.connect();
  outcomes.load();
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  $("#login-error").textContent = "";
  try {
    const tokens = await login(form.get("username"), form.get("password"));
    if (!ROLES.includes(tokens.role)) {
      // The server would refuse the socket (4403) and every steering action anyway.
      $("#login-error").textContent = `This dashboard is for supervisors; a ${tokens.role} account cannot use it.`;
      return;
    }
    start({ ...tokens, obtained_at: Date.now() });
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
});
$("#logout").addEventListener("click", async () => {
  const current = signaling;
  signaling = null;
  links.lost();
  tokenStore.clear();
  if (current) await current.logout();
  showLogin();
});

const saved = tokenStore.load();
if (saved && saved.refresh_token) start(saved);
