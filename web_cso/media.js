// The officer's own camera and microphone, where they go, and what the console hears.
//
// Every booth's peer connection has sendrecv transceivers from its first offer; the
// officer's tracks are attached only to the focused booth's senders, with
// RTCRtpSender.replaceTrack(track | null): no renegotiation, so a switch takes effect as
// soon as the next packets leave. A booth on hold gets no packet from the microphone.
//
// Every remote booth's audio level (measured at the kiosk, carried in each RTP packet)
// drives a level meter per tile and a voice-activity detector (threshold + hangover) that
// flags a waiting participant who speaks.

export const VOICE = {
  threshold: 0.02, // level (RMS, full scale 1.0) above which a packet counts as voice
  attackMs: 200, // this much voice in a row raises the flag...
  hangoverMs: 1500, // ...which stays up this long after the voice stops
  intervalMs: 100,
};

export class LocalMedia {
  constructor() {
    this.stream = null;
    this.audio = null;
    this.video = null;
    this.error = null;
    this.ready = null;
  }

  // Ask once for the camera and microphone. Resolves either way; `error` says why not.
  open() {
    if (!this.ready) {
      this.ready = navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
        video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15, max: 30 } },
      }).then((stream) => {
        this.stream = stream;
        this.audio = stream.getAudioTracks()[0] || null;
        this.video = stream.getVideoTracks()[0] || null;
        return this;
      }, (e) => {
        this.error = e;
        return this;
      });
    }
    return this.ready;
  }

  stop() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = this.audio = this.video = null;
    this.ready = null;
  }
}

// The participant's voice as this console wants to hear it (RFC 7587, in the offer's
// Opus a=fmtp): mono speech at 28 kbit/s with in-band FEC, which Chromium's decoder uses
// to rebuild a lost packet. The kiosk encodes to this; its answer asks the same of us.
export const VOICE_FMTP = { stereo: 0, "sprop-stereo": 0, maxaveragebitrate: 28000, useinbandfec: 1 };

export function speechOffer(sdp) {
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const lines = sdp.split(eol);
  const rtpmap = lines.findIndex((l) => /^a=rtpmap:\d+ opus\/48000\/2$/i.test(l));
  if (rtpmap < 0) return sdp;
  const pt = lines[rtpmap].slice("a=rtpmap:".length).split(" ")[0];
  const prefix = `a=fmtp:${pt} `;
  const at = lines.findIndex((l) => l.startsWith(prefix));
  const given = at < 0 ? [] : lines[at].slice(prefix.length).split(";");
  const params = new Map(given.filter((kv) => kv.includes("=")).map((kv) => kv.trim().split("=")));
  for (const [k, v] of Object.entries(VOICE_FMTP)) params.set(k, String(v));
  const fmtp = prefix + [...params].map(([k, v]) => `${k}=${v}`).join(";");
  if (at < 0) lines.splice(rtpmap + 1, 0, fmtp);
  else lines[at] = fmtp;
  return lines.join(eol);
}

// Point one booth's senders at the officer's tracks (focused) or at nothing (on hold).
// Returns a promise that settles when both senders have switched.
export function route(senders, local, focused) {
  if (!senders) return Promise.resolve();
  const want = { audio: focused ? local.audio : null, video: focused ? local.video : null };
  const jobs = [];
  for (const kind of ["audio", "video"]) {
    const sender = senders[kind];
    if (sender && sender.track !== want[kind]) jobs.push(sender.replaceTrack(want[kind]));
  }
  return Promise.all(jobs);
}

// A booth's voice level without decoding or analysing anything here: the kiosk measures
// each audio packet's level before sending it (the RTP audio-level header extension,
// RFC 6464) and the browser keeps the newest one per source for
// RTCRtpReceiver.getSynchronizationSources(). This replaced a Web Audio analyser per
// tile, whose AudioContext a browser starts suspended after a reload (no user gesture
// yet): the meters read silence until the officer clicked. A level older than STALE_MS
// counts as silence (the booth stopped sending).
const STALE_MS = 300;

export class VoiceMeter {
  constructor(receiver) {
    // A browser without it (none current) leaves the meter at rest rather than throwing
    // in the meter loop every 100 ms.
    this.receiver = typeof receiver.getSynchronizationSources === "function" ? receiver : null;
    this.level = 0;
    this.voicedMs = 0;
    this.speakingUntil = 0;
  }

  // Called every VOICE.intervalMs: the current level, and whether the participant speaks.
  sample(now = performance.now()) {
    const wallNow = performance.timeOrigin + now;
    let level = 0;
    for (const source of this.receiver ? this.receiver.getSynchronizationSources() : []) {
      if (source.audioLevel !== undefined && wallNow - source.timestamp < STALE_MS) {
        level = Math.max(level, source.audioLevel);
      }
    }
    this.level = level;
    if (this.level > VOICE.threshold) {
      this.voicedMs += VOICE.intervalMs;
      if (this.voicedMs >= VOICE.attackMs) this.speakingUntil = now + VOICE.hangoverMs;
    } else {
      this.voicedMs = 0;
    }
    return { level: this.level, speaking: now < this.speakingUntil };
  }
}

// Connection quality from getStats: round-trip time, loss and frame rate of the booth's
// video as this browser decodes it. `prev` is the last result (for rates). `faceMid`: the
// face camera's m-line; the booth's document camera (another video m-line, 2 fps while
// idle) must not pass for the participant's frame rate.
export async function quality(pc, prev, faceMid = null) {
  const report = await pc.getStats();
  const q = { at: performance.now(), framesDecoded: 0, packetsLost: 0, packetsReceived: 0, rtt: null, fps: null };
  let pairId = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video" && faceMid !== null && s.mid !== undefined && s.mid !== faceMid) {
      q.packetsLost += s.packetsLost || 0;
      q.packetsReceived += s.packetsReceived || 0;
    } else if (s.type === "inbound-rtp" && s.kind === "video") {
      q.framesDecoded = s.framesDecoded || 0;
      q.packetsLost += s.packetsLost || 0;
      q.packetsReceived += s.packetsReceived || 0;
      if (s.framesPerSecond !== undefined) q.fps = s.framesPerSecond;
    } else if (s.type === "inbound-rtp" && s.kind === "audio") {
      q.packetsLost += s.packetsLost || 0;
      q.packetsReceived += s.packetsReceived || 0;
    } else if (s.type === "transport" && s.selectedCandidatePairId) {
      pairId = s.selectedCandidatePairId;
    }
  });
  const pair = pairId ? report.get(pairId) : null;
  if (pair && pair.currentRoundTripTime !== undefined) q.rtt = pair.currentRoundTripTime * 1000;
  if (q.rtt === null) {
    report.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) q.rtt = s.currentRoundTripTime * 1000;
    });
  }
  if (prev) {
    const dt = (q.at - prev.at) / 1000;
    if (q.fps === null && dt > 0) q.fps = (q.framesDecoded - prev.framesDecoded) / dt;
    const lost = q.packetsLost - prev.packetsLost;
    const got = q.packetsReceived - prev.packetsReceived;
    q.loss = lost + got > 0 ? Math.max(0, lost) / (Math.max(0, lost) + got) : 0;
  } else {
    q.loss = q.packetsLost + q.packetsReceived > 0 ? q.packetsLost / (q.packetsLost + q.packetsReceived) : 0;
  }
  return q;
}

export function qualityText(q) {
  if (!q) return "";
  const parts = [];
  if (q.rtt !== null) parts.push(`RTT ${Math.round(q.rtt)} ms`);
  const loss = q.loss * 100;
  parts.push(`${loss > 0 && loss < 1 ? loss.toFixed(1) : Math.round(loss)}% loss`);
  if (q.fps !== null) parts.push(`${Math.round(q.fps)} fps`);
  return parts.join(" · ");
}
