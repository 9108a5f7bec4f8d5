// Supervisor links at the console: whisper (a supervisor speaks to this officer only) and
// the "monitored" mark on a tile.
//
// attachLinks(signaling, hooks) wraps the Signaling handlers it needs and leaves the
// others alone:
// - `link_opened` kind whisper (the supervisor offers): answer the `offer` whose
//   session_id is the link id, play the supervisor's voice on a hidden <audio>, and show
//   "supervisor is speaking"; `link_closed` ends it. Nothing is sent back: the answer is
//   receive-only, and the booth is never part of a whisper link.
// - `session_update.monitored` and `welcome.cso.sessions[].monitored` (sent only where the
//   agency shows it): a "monitored" badge on that booth's tile.
// hooks (optional): tile(sessionId) -> the tile element; status(text).

export function attachLinks(signaling, hooks = {}) {
  const tile = hooks.tile || ((id) => document.querySelector(`.tile[data-session="${CSS.escape(id)}"]`));
  const status = hooks.status || (() => {});
  const links = new Map(); // link_id -> {pc, audio, supervisor}
  const monitored = new Set();
  const handlers = signaling.handlers;
  const wrap = (type, fn) => {
    const before = handlers[type];
    handlers[type] = (msg) => fn(msg, before ? () => before(msg) : () => {});
  };

  const badge = document.createElement("div");
  badge.id = "whisper-badge";
  badge.hidden = true;
  badge.setAttribute("role", "status");
  badge.style.cssText = "background:#3b2a6b;color:#fff;padding:.2rem .8rem;border-radius:1rem;"
    + "font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;min-width:0;";
  // In the header's free middle (it lays out title | badge | officer's controls), so it
  // never covers the microphone state or a control; a page without one gets a corner.
  const header = document.querySelector("header");
  if (header && header.children.length >= 2) {
    header.insertBefore(badge, header.lastElementChild);
  } else {
    badge.style.cssText += "position:fixed;top:.5rem;left:50%;transform:translateX(-50%);z-index:10;";
    document.body.append(badge);
  }

  function showBadge() {
    const names = [...links.values()].filter((l) => l.live).map((l) => l.supervisor);
    badge.hidden = names.length === 0;
    badge.textContent = names.length ? `Supervisor ${names.join(", ")} is speaking to you` : "";
  }

  function markMonitored(sessionId, on) {
    if (on) monitored.add(sessionId);
    else monitored.delete(sessionId);
    const el = tile(sessionId);
    if (!el) return;
    el.dataset.monitored = String(on);
    let mark = el.querySelector(".monitored-badge");
    if (on && !mark) {
      mark = document.createElement("span");
      mark.className = "monitored-badge";
      mark.textContent = "monitored";
      mark.title = "A supervisor is watching this session";
      mark.style.cssText = "font-size:.75rem;background:#3b2a6b;color:#fff;border-radius:.6rem;padding:0 .4rem;";
      (el.querySelector(".caption") || el).append(mark);
    } else if (!on && mark) {
      mark.remove();
    }
  }

  function close(linkId) {
    const link = links.get(linkId);
    if (!link) return;
    links.delete(linkId);
    link.pc.close();
    link.audio.srcObject = null;
    link.audio.remove();
    showBadge();
  }

  wrap("link_opened", (msg, next) => {
    if (msg.kind !== "whisper") return next();
    const pc = new RTCPeerConnection({ iceServers: msg.ice_servers || [] });
    const audio = document.createElement("audio");
    audio.hidden = true;
    audio.autoplay = true;
    audio.className = "whisper-audio";
    document.body.append(audio);
    const link = { pc, audio, supervisor: msg.supervisor_name, live: false };
    links.set(msg.link_id, link);
    pc.ontrack = (ev) => {
      audio.srcObject = ev.streams[0] || new MediaStream([ev.track]);
      audio.play().catch(() => {});
      link.live = true;
      showBadge();
      status(`Supervisor ${msg.supervisor_name} is speaking to you (the participant does not hear it).`);
    };
    pc.onicecandidate = (ev) => {
      if (links.get(msg.link_id) !== link) return;
      signaling.send("candidate", { session_id: msg.link_id, candidate: ev.candidate ? ev.candidate.toJSON() : null });
    };
    status(`Supervisor ${msg.supervisor_name} is joining to speak to you.`);
  });

  wrap("offer", async (msg, next) => {
    const link = links.get(msg.session_id);
    if (!link) return next();
    await link.pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    await link.pc.setLocalDescription(await link.pc.createAnswer()); // receive-only
    if (links.get(msg.session_id) === link) {
      signaling.send("answer", { session_id: msg.session_id, sdp: link.pc.localDescription.sdp });
    }
  });

  wrap("candidate", async (msg, next) => {
    const link = links.get(msg.session_id);
    if (!link) return next();
    if (msg.candidate) await link.pc.addIceCandidate(msg.candidate).catch(() => {});
  });

  wrap("link_closed", (msg, next) => {
    if (!links.has(msg.link_id)) return next();
    close(msg.link_id);
    status("The supervisor stopped speaking.");
  });

  wrap("session_update", (msg, next) => {
    const result = next();
    markMonitored(msg.session_id, Boolean(msg.monitored));
    return result;
  });

  wrap("session_ended", (msg, next) => {
    monitored.delete(msg.session_id);
    return next();
  });

  wrap("welcome", (msg, next) => {
    // A new socket: the server closed this console's links with the old one.
    for (const id of [...links.keys()]) close(id);
    const result = next();
    for (const s of (msg.cso && msg.cso.sessions) || []) markMonitored(s.session_id, Boolean(s.monitored));
    return result;
  });

  return {
    whispering: () => [...links.values()].some((l) => l.live),
    monitored: () => [...monitored],
    // The supervisor's voice as played here, for tests: the whisper <audio> elements' streams.
    streams: () => [...links.values()].map((l) => l.audio.srcObject).filter(Boolean),
  };
}
