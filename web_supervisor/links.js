// Monitor and whisper, the supervisor's end.
//
// Monitor: `open_link {kind: monitor}`; the booth offers a send-only peer connection with
// the participant's voice, the officer's voice as the booth hears it (audio m-lines in that
// order) and the participant's video; this page answers receive-only, shows the video and plays both voices
// (never sending anything: the supervisor is not heard).
// Whisper: `open_link {kind: whisper}`; this page offers its microphone (audio only) to the
// officer's console, which answers. The participant never gets it: the server relays a
// whisper link's messages between the supervisor and the officer only.
//
// A link's offer, answer and candidates carry `session_id = link_id`.

const $ = (sel) => document.querySelector(sel);
const VOICES = ["participant", "cso"]; // audio m-lines, in the booth's order

export class SupervisorLinks {
  // ui: {status(text), monitoring(sessionId | null)}
  constructor(ui) {
    this.ui = ui;
    this.signaling = null;
    this.links = new Map(); // link_id -> {kind, sessionId, pc, ...}
    this.session = null; // the session being monitored: {session_id, label, cso}
    this.audio = null; // AudioContext
    this.meters = {}; // voice -> {analyser, el, energy, peak}
    this.videoFrames = 0;
    this.meterTimer = null;
    $("#monitor-stop").onclick = () => this.stopMonitor();
    $("#whisper-toggle").onclick = () => this.toggleWhisper();
  }

  attach(signaling) {
    this.signaling = signaling;
  }

  // Handlers for the Signaling dispatcher.
  handlers() {
    return {
      link_opened: (msg) => this.opened(msg),
      link_closed: (msg) => this.closed(msg.link_id, msg.reason),
      offer: (msg) => this.offer(msg),
      answer: (msg) => this.answer(msg),
      candidate: (msg) => this.candidate(msg),
    };
  }

  linkOf(kind) {
    for (const [id, link] of this.links) if (link.kind === kind) return [id, link];
    return [null, null];
  }

  // --- monitor --------------------------------------------------------------------------

  async monitor(session, cso) {
    if (this.session) await this.stopMonitor();
    // A click is a user gesture: the audio graph may start now.
    this.audio = this.audio || new AudioContext();
    this.audio.resume().catch(() => {});
    this.session = { session_id: session.session_id, label: session.booth_label || session.booth_id, cso };
    $("#monitor").hidden = false;
    $("#monitor").dataset.state = "opening";
    $("#monitor-what").textContent = `${this.session.label} with ${cso.name}`;
    $("#monitor-state").textContent = "Asking the booth…";
    this.ui.monitoring(session.session_id);
    const reply = await this.signaling.request("open_link", { kind: "monitor", session_id: session.session_id });
    if (!reply.ok) this.reset(reply.lost ? "Connection lost." : `Refused: ${reply.error.message}`);
  }

  async stopMonitor() {
    const [whisperId] = this.linkOf("whisper");
    if (whisperId) await this.signaling.request("close_link", { link_id: whisperId });
    const [id] = this.linkOf("monitor");
    if (id) await this.signaling.request("close_link", { link_id: id });
    this.reset("Stopped.");
  }

  reset(text) {
    for (const [id, link] of [...this.links]) this.drop(id, link);
    this.session = null;
    const mon = $("#monitor");
    mon.hidden = true;
    mon.dataset.state = "closed";
    mon.dataset.whisper = "off";
    $("#monitor-video").srcObject = null;
    for (const m of Object.values(this.meters)) m.audioEl.srcObject = null;
    this.meters = {};
    clearInterval(this.meterTimer);
    this.ui.monitoring(null);
    if (text) this.ui.status(`Monitoring: ${text}`);
  }

  drop(id, link) {
    this.links.delete(id);
    if (link.pc) link.pc.close();
    if (link.stream) for (const t of link.stream.getTracks()) t.stop();
  }

  opened(msg) {
    if (msg.kind === "monitor") {
      if (!this.session || this.session.session_id !== msg.session_id) return;
      const pc = new RTCPeerConnection({ iceServers: msg.ice_servers || [] });
      const link = { kind: "monitor", sessionId: msg.session_id, pc };
      this.links.set(msg.link_id, link);
      pc.ontrack = (ev) => this.track(pc, ev);
      this.trickle(pc, msg.link_id);
      pc.onconnectionstatechange = () => {
        if (this.links.get(msg.link_id) !== link) return;
        $("#monitor").dataset.state = pc.connectionState;
        $("#monitor-state").textContent = pc.connectionState === "connected"
          ? "Watching and listening. Nobody hears you." : `Connection: ${pc.connectionState}`;
      };
      $("#monitor-state").textContent = "Waiting for the booth's offer…";
    } else if (msg.kind === "whisper") {
      this.startWhisper(msg).catch((e) => {
        this.ui.status(`Whisper failed: ${e.message || e}`);
        this.signaling.request("close_link", { link_id: msg.link_id });
      });
    }
  }

  trickle(pc, linkId) {
    pc.onicecandidate = (ev) => {
      if (!this.links.has(linkId)) return;
      this.signaling.send("candidate", { session_id: linkId, candidate: ev.candidate ? ev.candidate.toJSON() : null });
    };
  }

  track(pc, ev) {
    if (ev.track.kind === "video") {
      const video = $("#monitor-video");
      video.srcObject = new MediaStream([ev.track]);
      video.play().catch(() => {});
      const count = () => {
        this.videoFrames += 1;
        if (video.srcObject) video.requestVideoFrameCallback(count);
      };
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(count);
      return;
    }
    const audios = pc.getTransceivers().filter((t) => t.receiver.track && t.receiver.track.kind === "audio");
    const index = audios.findIndex((t) => t.receiver.track === ev.track);
    const voice = VOICES[index] || `audio${index}`;
    const stream = new MediaStream([ev.track]);
    // Played through an <audio> element (Chromium pulls remote audio only for a sink)
    // and measured through WebAudio for the meters.
    const audioEl = new Audio();
    audioEl.srcObject = stream;
    audioEl.play().catch(() => {});
    const analyser = this.audio.createAnalyser();
    analyser.fftSize = 2048;
    this.audio.createMediaStreamSource(stream).connect(analyser);
    this.meters[voice] = { analyser, audioEl, el: $(`#meter-${voice}`), energy: 0, peak: 0, samples: 0 };
    clearInterval(this.meterTimer);
    this.meterTimer = setInterval(() => this.measure(), 200);
  }

  measure() {
    const buf = new Float32Array(2048);
    for (const m of Object.values(this.meters)) {
      m.analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const v of buf) sum += v * v;
      const rms = Math.sqrt(sum / buf.length);
      m.energy = rms;
      m.peak = Math.max(m.peak, rms);
      m.samples += 1;
      if (m.el) {
        m.el.value = rms;
        m.el.dataset.energy = rms.toFixed(4);
      }
    }
  }

  energy() {
    const out = {};
    for (const [voice, m] of Object.entries(this.meters)) out[voice] = { rms: m.energy, peak: m.peak, samples: m.samples };
    return out;
  }

  async offer(msg) {
    const link = this.links.get(msg.session_id);
    if (!link || link.kind !== "monitor") return;
    const pc = link.pc;
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    for (const t of pc.getTransceivers()) t.direction = "recvonly"; // heard by no one
    await pc.setLocalDescription(await pc.createAnswer());
    if (this.links.get(msg.session_id) === link) {
      this.signaling.send("answer", { session_id: msg.session_id, sdp: pc.localDescription.sdp });
    }
  }

  // --- whisper --------------------------------------------------------------------------

  async toggleWhisper() {
    const [id] = this.linkOf("whisper");
    if (id) {
      await this.signaling.request("close_link", { link_id: id });
      return this.whisperOff("Whisper ended.");
    }
    if (!this.session) return;
    $("#whisper-state").textContent = "Opening your microphone…";
    const reply = await this.signaling.request("open_link", { kind: "whisper", session_id: this.session.session_id });
    if (!reply.ok) $("#whisper-state").textContent = reply.lost ? "Connection lost." : `Refused: ${reply.error.message}`;
  }

  async startWhisper(msg) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    const pc = new RTCPeerConnection({ iceServers: msg.ice_servers || [] });
    const link = { kind: "whisper", sessionId: msg.session_id, pc, stream };
    this.links.set(msg.link_id, link);
    for (const track of stream.getAudioTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    this.trickle(pc, msg.link_id);
    pc.onconnectionstatechange = () => {
      if (this.links.get(msg.link_id) !== link) return;
      $("#monitor").dataset.whisperPc = pc.connectionState;
    };
    await pc.setLocalDescription(await pc.createOffer());
    if (this.links.get(msg.link_id) !== link) return;
    this.signaling.send("offer", { session_id: msg.link_id, sdp: pc.localDescription.sdp });
    $("#monitor").dataset.whisper = "on";
    $("#whisper-state").textContent = "Whispering: only the officer hears you.";
    $("#whisper-toggle").textContent = "Stop whispering";
  }

  async answer(msg) {
    const link = this.links.get(msg.session_id);
    if (!link || link.kind !== "whisper" || link.pc.signalingState !== "have-local-offer") return;
    await link.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
  }

  whisperOff(text) {
    const [id, link] = this.linkOf("whisper");
    if (id) this.drop(id, link);
    $("#monitor").dataset.whisper = "off";
    $("#whisper-state").textContent = text;
    $("#whisper-toggle").textContent = "Whisper to the officer";
  }

  async candidate(msg) {
    const link = this.links.get(msg.session_id);
    if (link && msg.candidate) await link.pc.addIceCandidate(msg.candidate).catch(() => {});
  }

  closed(linkId, reason) {
    const link = this.links.get(linkId);
    if (!link) return;
    const why = { closed: "closed", session_ended: "the session ended", peer_gone: "the other end went away" }[reason] || reason;
    if (link.kind === "whisper") return this.whisperOff(`Whisper ended: ${why}.`);
    this.reset(`ended: ${why}.`);
  }

  // The socket dropped: the server closed our links (they belong to that socket).
  lost() {
    if (this.session) this.reset("the connection dropped; start again.");
  }
}
