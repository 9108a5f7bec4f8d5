// Loket CSO console (minimal): log in, accept booths, play up to six booth videos.
// Plain ES module, no build step. Speaks the protocol in signaling/ (see /api/schema).

import { Api, ClaimPanel } from "./claim.js";
import { Signaling } from "./signaling.js";

const $ = (sel) => document.querySelector(sel);
const tiles = new Map(); // session_id -> {el, pc, booth}
let signaling = null;
let focused = null;

function setStatus(text) {
  $("#status").textContent = text;
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

function tileFor(sessionId, booth, claim) {
  let tile = tiles.get(sessionId);
  if (tile) return tile;
  const el = $("#tile-template").content.firstElementChild.cloneNode(true);
  el.dataset.session = sessionId;
  el.querySelector(".booth").textContent = booth.label || booth.booth_id;
  el.querySelector(".claim").textContent = claimText(claim);
  el.querySelector(".accept").onclick = () => signaling.send("accept", { session_id: sessionId });
  el.querySelector(".decline").onclick = () => signaling.send("decline", { session_id: sessionId });
  el.querySelector(".focus").onclick = () => focus(focused === sessionId ? null : sessionId);
  el.querySelector(".end").onclick = () => signaling.send("end_session", { session_id: sessionId });
  el.querySelector(".claim-toggle").onclick = () => toggleClaim(sessionId);
  $("#tiles").append(el);
  tile = { el, pc: null, booth, claim, panel: null };
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

function setTileState(sessionId, state) {
  const tile = tiles.get(sessionId);
  if (!tile) return;
  tile.el.dataset.state = state;
  tile.el.querySelector(".state").textContent = state;
}

function removeTile(sessionId) {
  const tile = tiles.get(sessionId);
  if (!tile) return;
  if (tile.pc) tile.pc.close();
  tile.el.remove();
  tiles.delete(sessionId);
  if (focused === sessionId) focused = null;
}

function focus(sessionId) {
  focused = sessionId;
  for (const [id, tile] of tiles) tile.el.dataset.focused = String(id === sessionId);
  signaling.send("focus_booth", { session_id: sessionId });
}

async function startCall(msg) {
  const tile = tileFor(msg.session_id, msg.booth, msg.claim);
  if (tile.pc) return; // a replay after reconnect: the call is still up
  setTileState(msg.session_id, "connecting");
  const pc = new RTCPeerConnection({ iceServers: msg.ice_servers });
  tile.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (ev) => {
    if (ev.track.kind !== "video") return;
    const video = tile.el.querySelector("video");
    video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    video.play().catch(() => {});
  };
  pc.onicecandidate = (ev) => {
    signaling.send("candidate", {
      session_id: msg.session_id,
      candidate: ev.candidate ? ev.candidate.toJSON() : null,
    });
  };
  pc.onconnectionstatechange = () => {
    setTileState(msg.session_id, pc.connectionState);
    signaling.send("peer_state", { session_id: msg.session_id, state: pc.connectionState });
  };
  await pc.setLocalDescription(await pc.createOffer());
  signaling.send("offer", { session_id: msg.session_id, sdp: pc.localDescription.sdp });
}

const handlers = {
  welcome(msg) {
    $("#who-name").textContent = msg.display_name;
    setStatus("Connected. Waiting for booths…");
  },
  booth_offered(msg) {
    tileFor(msg.session_id, msg.booth, msg.claim);
    setTileState(msg.session_id, "offered");
    if ($("#auto-accept").checked) signaling.send("accept", { session_id: msg.session_id });
  },
  offer_withdrawn(msg) {
    removeTile(msg.session_id);
  },
  booth_assigned(msg) {
    startCall(msg).catch((e) => setStatus(`Could not start the call: ${e}`));
  },
  async answer(msg) {
    const tile = tiles.get(msg.session_id);
    if (tile && tile.pc) await tile.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
  },
  async candidate(msg) {
    const tile = tiles.get(msg.session_id);
    if (tile && tile.pc && msg.candidate) await tile.pc.addIceCandidate(msg.candidate);
  },
  peer_state(msg) {
    const tile = tiles.get(msg.session_id);
    if (tile) tile.el.dataset.boothPeer = msg.state;
  },
  session_ended(msg) {
    removeTile(msg.session_id);
  },
  error(msg) {
    setStatus(`Server: ${msg.message}${msg.hint ? ` — ${msg.hint}` : ""}`);
  },
};

function start(tokens) {
  $("#login").hidden = true;
  $("#floor").hidden = false;
  $("#who").hidden = false;
  signaling = new Signaling("/ws/cso", tokens, handlers, setStatus);
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
$("#available").addEventListener("change", (ev) =>
  signaling.send("set_availability", { available: ev.target.checked }),
);
$("#logout").addEventListener("click", () => location.reload());
