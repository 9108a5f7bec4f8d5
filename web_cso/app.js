// Loket CSO console: log in, take up to six booths, talk to one while the others wait,
// check each claim's documents and record the outcome. Plain ES modules, no build step;
// speaks the protocol in signaling/ (see /api/schema).
//
// The tiles follow the server's account of this console: every `welcome` (first login, a
// page reload, a network loss) lists the sessions and pending offers, and the tiles are
// rebuilt from it. A booth whose kiosk is reconnecting shows "reconnecting"; a call whose
// negotiation did not finish is offered again once the booth is back.
//
// Focus (click, keys 1–6, Esc for none) sends the officer's camera and microphone to the
// focused booth only (media.js: replaceTrack, never renegotiation), unmutes that booth's
// sound, and leaves the others muted but metered: a waiting participant who speaks is
// flagged on the tile ("wants to talk"), and W switches to them.

import { TokenStore, login } from "./auth.js";
import { Api, ClaimPanel } from "./claim.js";
import { attachLinks } from "./links.js";
import { LocalMedia, VOICE, VoiceMeter, quality, qualityText, route, speechOffer } from "./media.js";
import { Signaling } from "./signaling.js";

const $ = (sel) => document.querySelector(sel);
const tokenStore = new TokenStore("loket.console.tokens"); // per tab: a reload keeps the login
const MAX_TILES = 6;
const tiles = new Map(); // session_id -> tile (see tileFor)
const panels = new Map(); // session_id -> ClaimPanel (kept while the session lasts)
const local = new LocalMedia();
let signaling = null;
let focused = null;
let me = null; // this officer's id, from welcome (the key of remembered choices)
let connected = false;
let connectionText = "Connecting…";
let claimOpen = null; // session whose claim panel is shown
const focusLog = []; // {session, key_ms, routed_ms}: how fast focus switches (tests, bench)

const ACTION_NAMES = {
  accept: "Accept", decline: "Decline", focus_booth: "Talk", end_session: "End",
  set_availability: "Availability", offer: "Call", candidate: "ICE candidate",
  peer_state: "Connection state", reauth: "Session renewal", request_capture: "Capture",
};
const STEP_NAMES = {
  reserved: "offered", connecting: "connecting", on_hold: "on hold", focused: "talking",
  reconnecting: "reconnecting",
};
const CLAIM_TYPES = {
  resignation: "Resignation", termination: "Termination (PHK)", retirement: "Retirement",
  disability: "Disability", death: "Death",
};

// --- what the officer reads -----------------------------------------------------------------

function setStatus(text) {
  connectionText = text;
  renderStatus();
}

function notice(text) {
  const el = $("#notice");
  el.textContent = text;
  el.hidden = !text;
}

// The status line says what is true now: connection, booths served, who is talking.
function renderStatus() {
  const el = $("#status");
  if (!connected) {
    el.textContent = connectionText;
    return;
  }
  const all = [...tiles.values()];
  const offers = all.filter((t) => t.offerDeadline !== null).length;
  const sessions = all.filter((t) => t.offerDeadline === null);
  const away = sessions.filter((t) => t.boothAway).length;
  const talking = focused && tiles.get(focused);
  const parts = [];
  if (!sessions.length) {
    parts.push($("#available").checked ? "no booths yet; new ones are offered as they check in" : "paused: no booths are offered");
  } else {
    parts.push(`serving ${sessions.length} booth${sessions.length === 1 ? "" : "s"}`);
    parts.push(talking ? `talking to ${talking.label}` : "everyone on hold");
    if (away) parts.push(`${away} reconnecting`);
    if (sessions.length && !$("#available").checked) parts.push("paused");
  }
  if (offers) parts.push(`${offers} offer${offers === 1 ? "" : "s"} waiting`);
  if (local.error) parts.push("no camera/microphone");
  el.textContent = `Connected · ${parts.join(" · ")}`;
}

function say(text) {
  // Spoken by screen readers (polite), shown nowhere else.
  $("#announce").textContent = text;
}

// --- remembered choices (per officer, in this browser) -----------------------------------------

function remembered(name) {
  try { return localStorage.getItem(`loket.console.${name}.${me}`); } catch (e) { return null; }
}

function remember(name, value) {
  try { localStorage.setItem(`loket.console.${name}.${me}`, value); } catch (e) { /* private mode */ }
}

// --- tiles --------------------------------------------------------------------------------

function claimText(claim) {
  if (!claim) return "";
  const type = CLAIM_TYPES[claim.claim_type] || claim.claim_type || "";
  const who = claim.kind === "booking" ? `Booking ${claim.booking_code}` : "Walk-in";
  return [who, type, claim.nik_masked ? `NIK ${claim.nik_masked}` : ""].filter(Boolean).join(" · ");
}

function tileFor(sessionId, booth, claim, checkedInAt) {
  let tile = tiles.get(sessionId);
  if (tile) {
    tile.claim = claim || tile.claim;
    if (checkedInAt) tile.since = checkedInAt * 1000;
    tile.el.querySelector(".claim").textContent = claimText(tile.claim);
    return tile;
  }
  const el = $("#tile-template").content.firstElementChild.cloneNode(true);
  const label = booth.label || booth.booth_id;
  el.dataset.session = sessionId;
  el.querySelector(".booth").textContent = label;
  el.querySelector(".claim").textContent = claimText(claim);
  el.querySelector(".accept").onclick = () => accept(sessionId);
  el.querySelector(".decline").onclick = () => signaling && signaling.request("decline", { session_id: sessionId });
  el.querySelector(".focus").onclick = () => focus(focused === sessionId ? null : sessionId);
  el.querySelector(".end").onclick = () => endSession(sessionId);
  el.querySelector(".claim-toggle").onclick = () => toggleClaim(sessionId);
  el.querySelector(".media").onclick = () => { if (tile.offerDeadline === null) focus(sessionId); };
  $("#tiles").append(el);
  tile = {
    el, label, pc: null, prepared: null, senders: null, booth, claim, iceServers: [], pcState: "connecting",
    offerDeadline: null, offerTotal: null, boothAway: false, needsOffer: false,
    since: checkedInAt ? checkedInAt * 1000 : Date.now(), step: "connecting",
    meter: null, speaking: false, stats: null, newDocs: 0, captures: new Map(),
    acceptedAt: null, firstFrameAt: null, // performance.now(): accept -> first picture
    marks: {}, // performance.now() of each step of the call's set-up (bench breakdown)
  };
  tiles.set(sessionId, tile);
  layout();
  return tile;
}

const RECORDING_NAMES = { recording: "● Recording", paused: "Recording paused", refused: "Not recorded" };

function render(tile) {
  const offered = tile.offerDeadline !== null;
  const el = tile.el;
  el.dataset.state = offered ? "offered" : tile.pcState;
  el.dataset.booth = tile.boothAway ? "away" : "here";
  let text;
  if (offered) {
    const left = Math.max(0, Math.ceil((tile.offerDeadline - Date.now()) / 1000));
    text = `offered · ${left}s`;
    const bar = el.querySelector(".countdown");
    bar.max = tile.offerTotal || 1;
    bar.value = Math.max(0, (tile.offerDeadline - Date.now()) / 1000);
    bar.setAttribute("aria-valuetext", `${left} seconds left to accept`);
  } else if (tile.boothAway) {
    text = "reconnecting";
  } else if (tile.pcState !== "connected") {
    text = tile.pcState;
  } else {
    text = focused === el.dataset.session ? "talking" : (STEP_NAMES[tile.step] || "on hold");
    if (text === "connecting") text = "on hold";
  }
  el.querySelector(".state").textContent = text;
  const rec = el.querySelector(".rec"); // the booth's recording_status (issue 23)
  rec.textContent = RECORDING_NAMES[tile.recording] || "";
  rec.dataset.state = tile.recording || "off";
  rec.hidden = !rec.textContent;
  el.querySelector(".docs-badge").hidden = !tile.newDocs;
  el.querySelector(".docs-badge").textContent = tile.newDocs ? `${tile.newDocs} new` : "";
  el.setAttribute("aria-label", `${tile.label}: ${text}${tile.speaking ? ", wants to talk" : ""}`);
}

function renderClock() {
  const now = Date.now();
  for (const tile of tiles.values()) {
    if (tile.offerDeadline !== null) { render(tile); continue; }
    const s = Math.max(0, Math.floor((now - tile.since) / 1000));
    tile.el.querySelector(".timer").textContent =
      `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }
  renderStatus();
}

// Tiles in a grid that always fits the screen: three columns; the focused tile takes two
// by two, the others flow around it.
function layout() {
  const box = $("#tiles");
  const order = [...box.children];
  order.forEach((el, i) => {
    el.querySelector(".key").textContent = String(i + 1);
    el.querySelector(".key").title = `Press ${i + 1} to talk to this booth`;
  });
  const n = order.length;
  const big = focused !== null && tiles.has(focused) && n > 1;
  const rows = big ? (n > 3 ? 3 : 2) : Math.max(1, Math.ceil(n / 3));
  box.dataset.count = String(n);
  box.dataset.big = String(big);
  box.style.gridTemplateRows = `repeat(${rows}, minmax(0, 1fr))`;
  box.style.gridTemplateColumns = n === 1 ? "minmax(0, 1fr)" : `repeat(${n === 2 && !big ? 2 : 3}, minmax(0, 1fr))`;
  $("#floor").dataset.empty = String(n === 0);
  renderStatus();
}

function removeTile(sessionId) {
  const tile = tiles.get(sessionId);
  if (!tile) return;
  const pc = tile.pc;
  tile.pc = null;
  if (pc) pc.close();
  dropPrepared(tile);
  tile.el.remove();
  tiles.delete(sessionId);
  const panel = panels.get(sessionId);
  if (panel) panel.destroy(); // releases its pictures' object URLs
  panels.delete(sessionId);
  if (claimOpen === sessionId) closeClaim();
  if (focused === sessionId) focused = null;
  layout();
}

function removeAllTiles() {
  for (const id of [...tiles.keys()]) removeTile(id);
}

function tileAt(index) {
  const el = $("#tiles").children[index];
  return el ? el.dataset.session : null;
}

// --- focus: who hears the officer ---------------------------------------------------------------

function setFocused(sessionId) {
  focused = sessionId && tiles.has(sessionId) ? sessionId : null;
  const started = performance.now();
  const jobs = [];
  for (const [id, tile] of tiles) {
    const on = id === focused;
    tile.el.dataset.focused = String(on);
    if (on && tile.speaking) {
      // Talking to them now: the flag goes at once, not at the next meter tick.
      tile.speaking = false;
      tile.wantsSince = null;
      tile.el.dataset.wants = "false";
      tile.el.querySelector(".flag").hidden = true;
    }
    tile.el.querySelector(".focus").textContent = on ? "Hold" : "Talk";
    tile.el.querySelector(".focus").setAttribute("aria-pressed", String(on));
    const video = tile.el.querySelector("video");
    video.muted = !on; // the officer hears the focused booth only
    if (on && video.paused) video.play().catch(() => {});
    jobs.push(route(tile.senders, local, on));
    render(tile);
  }
  const entry = { session: focused, started, routed_ms: null };
  focusLog.push(entry);
  if (focusLog.length > 200) focusLog.shift();
  Promise.all(jobs).then(() => { entry.routed_ms = performance.now() - started; }, (e) => notice(`Could not switch the microphone: ${e}`));
  layout();
}

async function focus(sessionId) {
  if (sessionId && !tiles.has(sessionId)) return;
  if (sessionId && tiles.get(sessionId).offerDeadline !== null) return; // accept first
  const before = focused;
  setFocused(sessionId); // at once: the switch must not wait for the server
  if (sessionId) say(`Talking to ${tiles.get(sessionId).label}`);
  if (!signaling) return;
  const reply = await signaling.request("focus_booth", { session_id: sessionId });
  if (!reply.ok && !reply.lost && focused === sessionId) setFocused(before); // refused: notice says why
}

function accept(sessionId) {
  const tile = tiles.get(sessionId);
  if (tile && tile.acceptedAt === null) tile.acceptedAt = performance.now();
  if (signaling) signaling.request("accept", { session_id: sessionId });
}

function endSession(sessionId) {
  if (signaling) signaling.request("end_session", { session_id: sessionId });
}

// Every 100 ms: each tile's voice level, and who wants to talk.
setInterval(() => {
  const now = performance.now();
  for (const [id, tile] of tiles) {
    if (!tile.meter) continue;
    const { level, speaking } = tile.meter.sample(now);
    const pct = Math.min(100, Math.round(Math.sqrt(level) * 250));
    const meter = tile.el.querySelector(".meter");
    meter.firstElementChild.style.width = `${pct}%`;
    meter.setAttribute("aria-valuenow", String(pct));
    const wants = speaking && id !== focused && tile.offerDeadline === null;
    if (wants !== tile.speaking) {
      tile.speaking = wants;
      tile.wantsSince = wants ? now : null;
      tile.el.dataset.wants = String(wants);
      tile.el.querySelector(".flag").hidden = !wants;
      render(tile);
      if (wants) say(`${tile.label} wants to talk. Press W to talk to them.`);
    }
  }
}, VOICE.intervalMs);

// Every 2 s: connection quality per tile, from getStats; every third pass it is also
// reported to the server (`peer_stats`) for the supervisors' floor view.
let qualityPass = 0;
setInterval(async () => {
  const report = ++qualityPass % 3 === 0;
  for (const [sessionId, tile] of tiles) {
    const pc = tile.pc;
    if (!pc || pc.connectionState !== "connected") continue;
    try {
      tile.stats = await quality(pc, tile.stats, tile.faceMid);
      tile.el.querySelector(".quality").textContent = qualityText(tile.stats);
      if (report && signaling) signaling.send("peer_stats", peerStats(sessionId, tile.stats));
    } catch (e) { /* closed meanwhile */ }
  }
}, 2000);

function peerStats(sessionId, q) {
  const clamp = (v, hi) => (v === null || v === undefined || !Number.isFinite(v) ? null : Math.min(hi, Math.max(0, v)));
  const rtt = clamp(q.rtt, 600000);
  const fps = clamp(q.fps, 240);
  return {
    session_id: sessionId,
    rtt_ms: rtt === null ? null : Math.round(rtt * 10) / 10,
    loss: clamp(q.loss, 1),
    fps: fps === null ? null : Math.round(fps * 10) / 10,
  };
}

setInterval(renderClock, 1000);

// An offer the server says is still open, with what is left of its countdown.
function showOffer(offer) {
  const tile = tileFor(offer.session_id, offer.booth, offer.claim);
  if (tile.pc) return; // already accepted: a late duplicate
  tile.offerDeadline = Date.now() + offer.expires_in * 1000;
  tile.offerTotal = Math.max(offer.expires_in, tile.offerTotal || 0);
  prepareCall(tile, offer.ice_servers);
  render(tile);
  renderStatus();
  if ($("#auto-accept").checked) accept(offer.session_id);
  else say(`${tile.label} is offered: press A to accept.`);
}

// --- calls --------------------------------------------------------------------------------

// An answer came back and the connection is not dead: media flows peer to peer, so a
// signaling drop on either side leaves it alone.
function negotiated(tile) {
  return Boolean(tile.pc) && tile.pc.signalingState === "stable"
    && !["failed", "closed"].includes(tile.pc.connectionState);
}

// The call's peer connection and offer, made while the booth is only offered: accepting
// then sends the offer at once (six accepted together no longer queue up behind six
// createOffer calls). Nothing leaves this page until the booth is assigned: candidates
// gathered meanwhile are in the offer's SDP by then. Dropped with the offer.
// One DTLS certificate for every call this tab makes: the server records each end's
// fingerprints as evidence and caps how many new ones a session may add, so a call that
// is set up again (a kiosk restarted, a failed connection) keeps this tab's fingerprint.
let tabCertificate = null;
RTCPeerConnection.generateCertificate({ name: "ECDSA", namedCurve: "P-256" })
  .then((certificate) => { tabCertificate = certificate; })
  .catch(() => {}); // each connection then makes its own, as before

function newCallPeer(iceServers) {
  const pc = new RTCPeerConnection(
    tabCertificate ? { iceServers, certificates: [tabCertificate] } : { iceServers },
  );
  // m-line order is the convention the booth answers by: face video, audio, then the
  // document camera (receive only; a booth without one leaves it inactive).
  const video = pc.addTransceiver("video", { direction: "sendrecv" });
  const audio = pc.addTransceiver("audio", { direction: "sendrecv" });
  const documentCamera = pc.addTransceiver("video", { direction: "recvonly" });
  return { pc, video, audio, documentCamera };
}

const iceUrls = (servers) => JSON.stringify((servers || []).map((s) => s.urls));

// An offer that asks for the participant's voice as speech (media.js speechOffer).
async function offerFor(pc) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription({ type: "offer", sdp: speechOffer(offer.sdp) });
}

function prepareCall(tile, iceServers) {
  if (!iceServers || tile.pc || tile.prepared) return;
  const call = newCallPeer(iceServers);
  call.urls = iceUrls(iceServers);
  call.ready = offerFor(call.pc).then(() => true, () => false);
  tile.prepared = call;
}

function dropPrepared(tile) {
  if (tile.prepared) tile.prepared.pc.close();
  tile.prepared = null;
}

// The prepared call if it is usable with these ICE servers (TURN credentials are renewed
// with each message; the servers themselves must be the same), else null.
async function takePrepared(tile, iceServers) {
  const call = tile.prepared;
  tile.prepared = null;
  if (!call) return null;
  if (call.urls === iceUrls(iceServers) && (await call.ready)
      && call.pc.signalingState === "have-local-offer") return call;
  call.pc.close();
  return null;
}

// A sendrecv peer connection and its offer (the booth answers each offer afresh; a
// prepared one is used for the first). The officer's tracks are attached now if this
// booth is focused, later by focus.
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
  tile.marks.call = tile.marks.call || performance.now();
  const prepared = await takePrepared(tile, tile.iceServers);
  if (tile.pc !== null || !tiles.has(sessionId)) {
    if (prepared) prepared.pc.close(); // another call started meanwhile, or the tile went
    return;
  }
  const { pc, video, audio, documentCamera } = prepared || newCallPeer(tile.iceServers);
  tile.pc = pc;
  tile.stats = null;
  tile.pcState = "connecting";
  render(tile);
  tile.senders = { video: video.sender, audio: audio.sender };
  tile.docStream = null;
  // The officer's tracks if focused (and once the camera is open: start() re-routes).
  await route(tile.senders, local, focused === sessionId);
  if (tile.pc !== pc) return;
  const remote = new MediaStream();
  pc.ontrack = (ev) => {
    if (tile.pc !== pc) return;
    if (ev.transceiver === documentCamera) {
      tile.docStream = new MediaStream([ev.track]);
      const panel = panels.get(sessionId);
      if (panel) panel.showDocumentCamera(tile.docStream);
      return;
    }
    remote.addTrack(ev.track);
    const el = tile.el.querySelector("video");
    if (el.srcObject !== remote) {
      el.srcObject = remote;
      el.addEventListener("loadeddata", () => {
        if (tile.firstFrameAt === null) tile.firstFrameAt = performance.now();
      }, { once: true });
    }
    el.muted = focused !== sessionId;
    el.play().catch(() => {});
    if (ev.track.kind === "audio") {
      tile.meter = new VoiceMeter(ev.receiver); // holds nothing to release
    }
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
    if (pc.connectionState === "connected") tile.marks.connected = tile.marks.connected || performance.now();
    render(tile);
    // "new" is no news to the server (a prepared connection can report it once its
    // transports are set up by the answer); it knows connecting..closed.
    if (pc.connectionState !== "new") signaling.send("peer_state", { session_id: sessionId, state: pc.connectionState });
  };
  if (!prepared) await offerFor(pc);
  tile.faceMid = video.mid;
  if (tile.pc === pc && signaling) signaling.send("offer", { session_id: sessionId, sdp: pc.localDescription.sdp });
  tile.marks.offerSent = tile.marks.offerSent || performance.now();
}

function call(sessionId) {
  startCall(sessionId).catch((e) => notice(`Could not start the call: ${e}`));
}

// --- the claim panel ------------------------------------------------------------------------------

async function toggleClaim(sessionId) {
  if (claimOpen === sessionId) return closeClaim();
  const tile = tiles.get(sessionId);
  if (!tile || !tile.claim || !tile.claim.claim_id) return notice("This booth has no claim yet.");
  let panel = panels.get(sessionId);
  if (!panel) {
    panel = new ClaimPanel(new Api(signaling), {
      sessionId, claimId: tile.claim.claim_id, boothLabel: tile.label,
      onNotice: notice,
      requestCapture: (kind, captureId) => signaling && signaling.send("request_capture", {
        session_id: sessionId, capture_id: captureId, kind,
      }),
      endSession: () => endSession(sessionId),
      onClose: closeClaim,
      onWide: (wide) => { $("#claim").dataset.wide = String(wide); },
    });
    panels.set(sessionId, panel);
  }
  panel.showDocumentCamera(tile.docStream);
  claimOpen = sessionId;
  for (const t of tiles.values()) t.el.querySelector(".claim-toggle").setAttribute("aria-expanded", String(t === tile));
  tile.newDocs = 0;
  render(tile);
  const aside = $("#claim");
  aside.hidden = false;
  aside.replaceChildren(panel.root);
  aside.dataset.wide = String(Boolean(panel.verifying)); // side by side needs the room
  $("#floor").dataset.claim = "open";
  await panel.show().catch((e) => notice(e.message));
}

function closeClaim() {
  const tile = claimOpen && tiles.get(claimOpen);
  claimOpen = null;
  $("#claim").hidden = true;
  $("#claim").dataset.wide = "false";
  $("#claim").replaceChildren();
  $("#floor").dataset.claim = "closed";
  for (const t of tiles.values()) t.el.querySelector(".claim-toggle").setAttribute("aria-expanded", "false");
  if (tile) tile.el.querySelector(".claim-toggle").focus();
}

// --- the server's messages ----------------------------------------------------------------

function applyWelcomePreferences(cso, resumed) {
  const autoAccept = $("#auto-accept");
  autoAccept.checked = remembered("autoAccept") === "1"; // off unless this officer chose it
  $("#available").checked = cso.available;
  if (!cso.available) remember("available", "0");
  else if (!resumed && remembered("available") === "0" && signaling) {
    $("#available").checked = false; // a break the officer chose, kept across logins
    signaling.request("set_availability", { available: false });
  }
}

const handlers = {
  welcome(msg) {
    me = msg.peer_id;
    connected = true;
    $("#who-name").textContent = msg.display_name;
    const cso = msg.cso || { available: true, focused: null, sessions: [], offers: [] };
    applyWelcomePreferences(cso, msg.resumed);
    const listed = new Set([...cso.sessions, ...cso.offers].map((s) => s.session_id));
    for (const id of [...tiles.keys()]) if (!listed.has(id)) removeTile(id); // ended meanwhile
    for (const session of cso.sessions) {
      const tile = tileFor(session.session_id, session.booth, session.claim, session.checked_in_at);
      tile.offerDeadline = null;
      tile.iceServers = session.ice_servers;
      tile.step = session.state;
      tile.boothAway = !session.booth_connected || session.state === "reconnecting";
      if (!negotiated(tile)) call(session.session_id);
      else render(tile);
    }
    for (const offer of cso.offers) showOffer(offer);
    setFocused(cso.focused);
    notice("");
    renderStatus();
  },
  booth_offered(msg) {
    showOffer(msg);
  },
  offer_withdrawn(msg) {
    const tile = tiles.get(msg.session_id);
    if (tile && msg.reason === "expired") notice(`The offer of ${tile.label} expired; it goes to the next officer.`);
    removeTile(msg.session_id);
  },
  booth_assigned(msg) {
    const tile = tileFor(msg.session_id, msg.booth, msg.claim, msg.checked_in_at);
    tile.offerDeadline = null;
    tile.iceServers = msg.ice_servers;
    if (!negotiated(tile)) call(msg.session_id);
    render(tile);
    renderStatus();
  },
  async answer(msg) {
    const tile = tiles.get(msg.session_id);
    if (!tile || !tile.pc || tile.pc.signalingState !== "have-local-offer") return; // stale
    tile.marks.answer = tile.marks.answer || performance.now();
    await tile.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
  },
  async candidate(msg) {
    const tile = tiles.get(msg.session_id);
    if (tile && tile.pc && msg.candidate) await tile.pc.addIceCandidate(msg.candidate).catch(() => {});
  },
  peer_state(msg) {
    const tile = tiles.get(msg.session_id);
    if (!tile) return;
    tile.el.dataset.boothPeer = msg.state;
    // The kiosk has no call any more (it restarted and resumed its visit): offer afresh.
    if (["closed", "failed"].includes(msg.state) && !tile.boothAway && negotiated(tile)) call(msg.session_id);
  },
  session_update(msg) {
    const tile = tiles.get(msg.session_id);
    if (!tile) return;
    const wasAway = tile.boothAway;
    tile.step = msg.state;
    tile.boothAway = !msg.booth_connected || msg.state === "reconnecting";
    tile.el.dataset.monitored = String(Boolean(msg.monitored));
    const panel = panels.get(msg.session_id);
    if (panel) panel.boothPresence(tile.boothAway); // its captures say the booth is offline
    render(tile);
    renderStatus();
    // Back from a signaling drop: offer again only if the negotiation did not finish.
    if (!tile.boothAway && (tile.needsOffer || (wasAway && !negotiated(tile)))) call(msg.session_id);
  },
  session_ended(msg) {
    const tile = tiles.get(msg.session_id);
    if (tile) say(`${tile.label}: session ended`);
    removeTile(msg.session_id);
  },
  document_added(msg) {
    const tile = tiles.get(msg.session_id);
    const panel = panels.get(msg.session_id);
    if (panel) panel.documentAdded(msg); // fetches that one picture, nothing else
    if (tile && claimOpen !== msg.session_id) {
      tile.newDocs += 1;
      render(tile);
    }
  },
  capture_status(msg) {
    const panel = panels.get(msg.session_id);
    if (panel) panel.captureStatus(msg);
  },
  recording_status(msg) {
    // The booth records the session as evidence (or says why not): shown on its tile.
    const tile = tiles.get(msg.session_id);
    if (!tile) return;
    tile.recording = msg.state;
    tile.el.querySelector(".rec").title = msg.reason ? `Recording ${msg.state}: ${msg.reason}` : "";
    render(tile);
  },
  verification_updated(msg) {
    // Machine advice is ready: the open panel fetches the workbench (an audited read).
    const panel = panels.get(msg.session_id);
    if (panel && claimOpen === msg.session_id) panel.verificationUpdated(msg);
  },
  error(msg) {
    notice(`Server: ${msg.message}${msg.hint ? ` — ${msg.hint}` : ""}`);
  },
};

// A request of ours the server refused: say so, and undo what depended on it.
function refused(request, error) {
  const what = ACTION_NAMES[request.type] || request.type;
  notice(`Server: ${what} refused — ${error.message}${error.hint ? ` (${error.hint})` : ""}`);
  const tile = request.body && tiles.get(request.body.session_id);
  if (tile && ["offer", "candidate"].includes(request.type) && error.code === "peer_unavailable") {
    tile.boothAway = true; // the kiosk is reconnecting: offer again once it is back
    tile.needsOffer = true;
    render(tile);
  }
  if (request.type === "set_availability") $("#available").checked = !request.body.available;
  renderStatus();
}

function stopped(text, next) {
  removeAllTiles();
  focused = null;
  signaling = null;
  connected = false;
  local.stop();
  if (next === "login") {
    tokenStore.clear();
    showLogin(text);
    return;
  }
  if (next === "disabled") tokenStore.clear();
  $("#floor").dataset.stopped = next || "stopped";
  setStatus(text);
}

// --- keys ---------------------------------------------------------------------------------------

// Keys go to the console unless the officer is typing or choosing from a list.
function typing(target) {
  if (!target) return false;
  if (target.tagName === "INPUT") return !["checkbox", "radio", "button", "submit"].includes(target.type);
  return target.isContentEditable || ["SELECT", "TEXTAREA"].includes(target.tagName);
}

document.addEventListener("keydown", (ev) => {
  if (!signaling || ev.altKey || ev.ctrlKey || ev.metaKey || typing(ev.target)) return;
  if ($("#viewer").open) return; // the viewer has its own keys
  const key = ev.key.toLowerCase();
  if (key >= "1" && key <= String(MAX_TILES)) {
    const id = tileAt(Number(key) - 1);
    if (!id) return;
    const tile = tiles.get(id);
    if (tile.offerDeadline !== null) accept(id);
    else focus(id);
  } else if (key === "escape") {
    if (claimOpen) closeClaim();
    else focus(null);
  } else if (key === "w") {
    const waiting = [...tiles.entries()].filter(([, t]) => t.speaking).sort((a, b) => a[1].wantsSince - b[1].wantsSince);
    if (waiting.length) focus(waiting[0][0]);
  } else if (key === "a") {
    const offered = [...tiles.entries()].find(([, t]) => t.offerDeadline !== null);
    if (offered) accept(offered[0]);
  } else if (key === "c") {
    const id = focused || (document.activeElement && document.activeElement.closest(".tile")?.dataset.session);
    if (id) toggleClaim(id);
  } else {
    return;
  }
  ev.preventDefault();
});

// --- login and logout ------------------------------------------------------------------------

function showLogin(message = "") {
  $("#floor").hidden = true;
  $("#who").hidden = true;
  $("#login").hidden = false;
  $("#login").reset();
  $("#login-error").textContent = message;
  $("#login input[name=username]").focus();
}

function start(tokens) {
  $("#login").hidden = true;
  $("#floor").hidden = false;
  $("#who").hidden = false;
  delete $("#floor").dataset.stopped;
  connected = false;
  setStatus("Connecting…");
  notice("");
  tokenStore.save(tokens);
  local.open().then(() => {
    $("#mic").textContent = local.error ? "No camera/microphone" : "Camera and microphone ready";
    $("#mic").dataset.ok = String(!local.error);
    if (local.error) notice(`Camera/microphone unavailable (${local.error.name || local.error}): booths see and hear nothing from you.`);
    setFocused(focused); // attach the tracks to a booth focused meanwhile
  });
  // A copy of the handlers per connection: supervisor links (links.js) wrap their own.
  signaling = new Signaling("/ws/cso", tokens, { ...handlers }, {
    onStatus: (text) => { connected = false; setStatus(text); },
    onRefused: refused,
    onTokens: (tokens) => tokenStore.save(tokens),
    onStopped: stopped,
  });
  attachLinks(signaling, { status: notice }); // supervisor whisper and "monitored" mark
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
  remember("available", ev.target.checked ? "1" : "0");
  if (signaling) signaling.request("set_availability", { available: ev.target.checked });
  renderStatus();
});
$("#auto-accept").addEventListener("change", (ev) => {
  remember("autoAccept", ev.target.checked ? "1" : "0");
  if (!ev.target.checked) return;
  for (const [id, tile] of tiles) if (tile.offerDeadline !== null) accept(id);
});
$("#logout").addEventListener("click", async () => {
  const current = signaling;
  signaling = null;
  connected = false;
  removeAllTiles();
  tokenStore.clear();
  local.stop();
  if (current) await current.logout();
  showLogin();
});

// For tests and benchmarks: what the console shows, read without scraping the page.
window.loketConsole = {
  tiles: () => [...$("#tiles").children].map((el) => {
    const t = tiles.get(el.dataset.session);
    return {
      session: el.dataset.session, label: t.label, state: el.dataset.state, focused: el.dataset.session === focused,
      away: t.boothAway, wants: t.speaking, level: t.meter ? t.meter.level : null,
      framesDecoded: t.stats ? t.stats.framesDecoded : null, claimId: t.claim ? t.claim.claim_id : null,
      sending: Boolean(t.senders && t.senders.audio && t.senders.audio.track),
      prepared: Boolean(t.prepared),
    };
  }),
  framesDecoded: async () => {
    const out = {};
    for (const [id, t] of tiles) {
      if (!t.pc) continue;
      const q = await quality(t.pc, null, t.faceMid).catch(() => null);
      out[id] = q ? q.framesDecoded : 0;
    }
    return out;
  },
  // Audio packets each booth's connection has sent (outbound-rtp): who gets the microphone.
  audioPacketsSent: async () => {
    const out = {};
    for (const [id, t] of tiles) {
      if (!t.pc) continue;
      out[id] = 0;
      const report = await t.pc.getStats().catch(() => new Map());
      report.forEach((s) => { if (s.type === "outbound-rtp" && s.kind === "audio") out[id] += s.packetsSent || 0; });
    }
    return out;
  },
  focusLog: () => focusLog.slice(),
  // Accept -> first decoded picture per tile (ms), for tiles accepted in this page.
  firstFrames: () => [...tiles.values()].filter((t) => t.acceptedAt !== null && t.firstFrameAt !== null)
    .map((t) => {
      const since = (mark) => (t.marks[mark] ? t.marks[mark] - t.acceptedAt : null);
      return {
        label: t.label, ms: t.firstFrameAt - t.acceptedAt, call: since("call"),
        offer_sent: since("offerSent"), answer: since("answer"), connected: since("connected"),
      };
    }),
  media: () => ({ audio: Boolean(local.audio), video: Boolean(local.video), error: local.error ? String(local.error) : null }),
};

// A reload keeps this tab's login: the console comes back from the server's `welcome`.
const saved = tokenStore.load();
if (saved && saved.refresh_token) start(saved);
