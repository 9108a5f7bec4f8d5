// Loket CSO console (minimal): log in, accept booths, play up to six booth videos.
// Plain ES module, no build step. Speaks the protocol in signaling/ (see /api/schema).
//
// The tiles follow the server's account of this console: every `welcome` (first login, a
// page reload, a network loss) lists the sessions and pending offers, and the tiles are
// rebuilt from it. A booth whose kiosk is reconnecting shows "reconnecting"; a call whose
// negotiation did not finish is offered again once the booth is back.

import { Api, ClaimPanel } from "./claim.js";
import { Signaling } from "./signaling.js";

const $ = (sel) => document.querySelector(sel);
const TOKENS_KEY = "loket.console.tokens"; // per tab: a reload keeps the login
const tiles = new Map(); // session_id -> {el, pc, booth, claim, iceServers, ...}
let signaling = null;
let focused = null;

const ACTION_NAMES = {
  accept: "Accept", decline: "Decline", focus_booth: "Talk", end_session: "End",
  set_availability: "Availability", offer: "Call", candidate: "ICE candidate",
  peer_state: "Connection state", reauth: "Session renewal",
};

function setStatus(text) {
  $("#status").textContent = text;
}

function saveTokens(tokens) {
  try { sessionStorage.setItem(TOKENS_KEY, JSON.stringify(tokens)); } catch (e) { /* private mode */ }
}

function loadTokens() {
  try { return JSON.parse(sessionStorage.getItem(TOKENS_KEY) || "null"); } catch (e) { return null; }
}

function clearTokens() {
  try { sessionStorage.removeItem(TOKENS_KEY); } catch (e) { /* private mode */ }
}

async function login(username, password) {
  const res = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = body.error || {};
    throw new Error(`${err.message || res.statusText}${err.hint ? ` — ${err.hint}` : ""}`);
  }
  return body;
}

// --- tiles --------------------------------------------------------------------------------

function tileFor(sessionId, booth, claim) {
  let tile = tiles.get(sessionId);
  if (tile) {
    tile.claim = claim || tile.claim;
    return tile;
  }
  const el = $("#tile-template").content.firstElementChild.cloneNode(true);
  el.dataset.session = sessionId;
  el.querySelector(".booth").textContent = booth.label || booth.booth_id;
  el.querySelector(".claim").textContent = claimText(claim);
  el.querySelector(".accept").onclick = () => signaling.request("accept", { session_id: sessionId });
  el.querySelector(".decline").onclick = () => signaling.request("decline", { session_id: sessionId });
  el.querySelector(".focus").onclick = () => focus(focused === sessionId ? null : sessionId);
  el.querySelector(".end").onclick = () => signaling.request("end_session", { session_id: sessionId });
  el.querySelector(".claim-toggle").onclick = () => toggleClaim(sessionId);
  $("#tiles").append(el);
  tile = {
    el, pc: null, booth, claim, panel: null, iceServers: [], pcState: "connecting",
    offerDeadline: null, boothAway: false, needsOffer: false,
  };
  tiles.set(sessionId, tile);
  return tile;
}

async function toggleClaim(sessionId) {
  const tile = tiles.get(sessionId);
  if (!tile || !tile.claim || !tile.claim.claim_id) return setStatus("This booth has no claim yet.");
  const section = tile.el.querySelector(".claim-panel");
  if (!section.hidden) return (section.hidden = true);
  section.hidden = false;
  tile.panel = tile.panel || new ClaimPanel(new Api(signaling), tile.claim.claim_id, section, setStatus);
  await tile.panel.refresh().catch((e) => setStatus(e.message));
}

function claimText(claim) {
  if (!claim) return "";
  if (claim.kind === "booking") return `Booking ${claim.booking_code}`;
  return `Walk-in · ${claim.claim_type || ""} · NIK ${claim.nik_masked || ""}`;
}

function render(tile) {
  const offered = tile.offerDeadline !== null;
  tile.el.dataset.state = offered ? "offered" : tile.pcState;
  tile.el.dataset.booth = tile.boothAway ? "away" : "here";
  let text = tile.pcState;
  if (offered) text = `offered · ${Math.max(0, Math.ceil((tile.offerDeadline - Date.now()) / 1000))}s`;
  else if (tile.boothAway) text = "reconnecting";
  tile.el.querySelector(".state").textContent = text;
}

function removeTile(sessionId) {
  const tile = tiles.get(sessionId);
  if (!tile) return;
  const pc = tile.pc;
  tile.pc = null;
  if (pc) pc.close();
  tile.el.remove();
  tiles.delete(sessionId);
  if (focused === sessionId) focused = null;
}

function removeAllTiles() {
  for (const id of [...tiles.keys()]) removeTile(id);
}

function setFocused(sessionId) {
  focused = sessionId && tiles.has(sessionId) ? sessionId : null;
  for (const [id, tile] of tiles) tile.el.dataset.focused = String(id === focused);
}

async function focus(sessionId) {
  const before = focused;
  setFocused(sessionId);
  const reply = await signaling.request("focus_booth", { session_id: sessionId });
  if (!reply.ok && !reply.lost) setFocused(before); // refused: shown in the status line
}

// An offer the server says is still open, with what is left of its countdown.
function showOffer(offer) {
  const tile = tileFor(offer.session_id, offer.booth, offer.claim);
  if (tile.pc) return; // already accepted: a late duplicate
  tile.offerDeadline = Date.now() + offer.expires_in * 1000;
  render(tile);
  if ($("#auto-accept").checked) signaling.request("accept", { session_id: offer.session_id });
}

setInterval(() => {
  for (const tile of tiles.values()) if (tile.offerDeadline !== null) render(tile);
}, 1000);

// --- calls --------------------------------------------------------------------------------

// An answer came back and the connection is not dead: media flows peer to peer, so a
// signaling drop on either side leaves it alone.
function negotiated(tile) {
  return Boolean(tile.pc) && tile.pc.signalingState === "stable"
    && !["failed", "closed"].includes(tile.pc.connectionState);
}

// A fresh recvonly peer connection and its offer (the booth answers each offer afresh).
async function startCall(sessionId) {
  const tile = tiles.get(sessionId);
  if (!tile) return;
  tile.offerDeadline = null;
  if (tile.boothAway) {
    tile.needsOffer = true; // offered when the booth is back
    return render(tile);
  }
  const old = tile.pc;
  tile.pc = null;
  if (old) old.close();
  tile.needsOffer = false;
  const pc = new RTCPeerConnection({ iceServers: tile.iceServers });
  tile.pc = pc;
  tile.pcState = "connecting";
  render(tile);
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (ev) => {
    if (ev.track.kind !== "video" || tile.pc !== pc) return;
    const video = tile.el.querySelector("video");
    video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    video.play().catch(() => {});
  };
  pc.onicecandidate = (ev) => {
    if (tile.pc !== pc || !signaling) return;
    signaling.send("candidate", {
      session_id: sessionId,
      candidate: ev.candidate ? ev.candidate.toJSON() : null,
    });
  };
  pc.onconnectionstatechange = () => {
    if (tile.pc !== pc || !signaling) return;
    tile.pcState = pc.connectionState;
    render(tile);
    signaling.send("peer_state", { session_id: sessionId, state: pc.connectionState });
  };
  await pc.setLocalDescription(await pc.createOffer());
  if (tile.pc === pc && signaling) signaling.send("offer", { session_id: sessionId, sdp: pc.localDescription.sdp });
}

function call(sessionId) {
  startCall(sessionId).catch((e) => setStatus(`Could not start the call: ${e}`));
}

// --- the server's messages ----------------------------------------------------------------

const handlers = {
  welcome(msg) {
    $("#who-name").textContent = msg.display_name;
    const cso = msg.cso || { available: true, focused: null, sessions: [], offers: [] };
    $("#available").checked = cso.available;
    const listed = new Set([...cso.sessions, ...cso.offers].map((s) => s.session_id));
    for (const id of [...tiles.keys()]) if (!listed.has(id)) removeTile(id); // ended meanwhile
    for (const session of cso.sessions) {
      const tile = tileFor(session.session_id, session.booth, session.claim);
      tile.offerDeadline = null;
      tile.iceServers = session.ice_servers;
      tile.boothAway = !session.booth_connected || session.state === "reconnecting";
      if (!negotiated(tile)) call(session.session_id);
      else render(tile);
    }
    for (const offer of cso.offers) showOffer(offer);
    setFocused(cso.focused);
    const n = cso.sessions.length;
    setStatus(n ? `Connected. Serving ${n} booth${n === 1 ? "" : "s"}.` : "Connected. Waiting for booths…");
  },
  booth_offered(msg) {
    showOffer(msg);
  },
  offer_withdrawn(msg) {
    removeTile(msg.session_id);
  },
  booth_assigned(msg) {
    const tile = tileFor(msg.session_id, msg.booth, msg.claim);
    tile.offerDeadline = null;
    tile.iceServers = msg.ice_servers;
    if (!negotiated(tile)) call(msg.session_id);
  },
  async answer(msg) {
    const tile = tiles.get(msg.session_id);
    if (!tile || !tile.pc || tile.pc.signalingState !== "have-local-offer") return; // stale
    await tile.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
  },
  async candidate(msg) {
    const tile = tiles.get(msg.session_id);
    if (tile && tile.pc && msg.candidate) await tile.pc.addIceCandidate(msg.candidate).catch(() => {});
  },
  peer_state(msg) {
    const tile = tiles.get(msg.session_id);
    if (tile) tile.el.dataset.boothPeer = msg.state;
  },
  session_update(msg) {
    const tile = tiles.get(msg.session_id);
    if (!tile) return;
    const wasAway = tile.boothAway;
    tile.boothAway = !msg.booth_connected || msg.state === "reconnecting";
    render(tile);
    // Back from a signaling drop: offer again only if the negotiation did not finish.
    if (!tile.boothAway && (tile.needsOffer || (wasAway && !negotiated(tile)))) call(msg.session_id);
  },
  session_ended(msg) {
    removeTile(msg.session_id);
  },
  error(msg) {
    setStatus(`Server: ${msg.message}${msg.hint ? ` — ${msg.hint}` : ""}`);
  },
};

// A request of ours the server refused: say so, and undo what depended on it.
function refused(request, error) {
  const what = ACTION_NAMES[request.type] || request.type;
  setStatus(`Server: ${what} refused — ${error.message}${error.hint ? ` (${error.hint})` : ""}`);
  const tile = request.body && tiles.get(request.body.session_id);
  if (tile && ["offer", "candidate"].includes(request.type) && error.code === "peer_unavailable") {
    tile.boothAway = true; // the kiosk is reconnecting: offer again once it is back
    tile.needsOffer = true;
    render(tile);
  }
  if (request.type === "set_availability") $("#available").checked = !request.body.available;
}

function stopped(text, next) {
  removeAllTiles();
  focused = null;
  signaling = null;
  if (next === "login") {
    clearTokens();
    showLogin(text);
    return;
  }
  if (next === "disabled") clearTokens();
  setStatus(text);
}

// --- login and logout ------------------------------------------------------------------------

function showLogin(message = "") {
  $("#floor").hidden = true;
  $("#who").hidden = true;
  $("#login").hidden = false;
  $("#login").reset();
  $("#login-error").textContent = message;
}

function start(tokens) {
  $("#login").hidden = true;
  $("#floor").hidden = false;
  $("#who").hidden = false;
  setStatus("Connecting…");
  saveTokens(tokens);
  signaling = new Signaling("/ws/cso", tokens, handlers, {
    onStatus: setStatus,
    onRefused: refused,
    onTokens: saveTokens,
    onStopped: stopped,
  });
  signaling.connect();
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  $("#login-error").textContent = "";
  try {
    const tokens = await login(form.get("username"), form.get("password"));
    start({ ...tokens, obtained_at: Date.now() });
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
});
$("#available").addEventListener("change", (ev) => {
  if (signaling) signaling.request("set_availability", { available: ev.target.checked });
});
$("#logout").addEventListener("click", async () => {
  const current = signaling;
  signaling = null;
  removeAllTiles();
  clearTokens();
  if (current) await current.logout();
  showLogin();
});

// A reload keeps this tab's login: the console comes back from the server's `welcome`.
const saved = loadTokens();
if (saved && saved.refresh_token) start(saved);
