// Small formatting helpers shared by the dashboard's modules.

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function setData(node, key, value) {
  const v = String(value);
  if (node.dataset[key] !== v) node.dataset[key] = v;
}

const STEP_NAMES = {
  reserved: "offered", connecting: "connecting", on_hold: "on hold", focused: "talking",
  reconnecting: "reconnecting", queued: "queued",
};

export function stepName(state) {
  return STEP_NAMES[state] || state;
}

// One end's report: "rtt 40 ms · 0% loss · 15 fps", and a band for colour.
export function quality(q) {
  if (!q) return { text: "", band: "" };
  const parts = [];
  if (q.rtt_ms !== null && q.rtt_ms !== undefined) parts.push(`${Math.round(q.rtt_ms)} ms`);
  if (q.loss !== null && q.loss !== undefined) parts.push(`${(q.loss * 100).toFixed(q.loss < 0.1 ? 1 : 0)}% loss`);
  if (q.fps !== null && q.fps !== undefined) parts.push(`${Math.round(q.fps)} fps`);
  let band = "good";
  if ((q.rtt_ms ?? 0) > 300 || (q.loss ?? 0) > 0.05 || (q.fps ?? 15) < 8) band = "fair";
  if ((q.rtt_ms ?? 0) > 800 || (q.loss ?? 0) > 0.15 || (q.fps ?? 15) < 3) band = "poor";
  return { text: parts.join(" · "), band };
}

// The worse of the two ends' reports.
export function worstQuality(a, b) {
  const qa = quality(a);
  const qb = quality(b);
  const rank = { "": 0, good: 1, fair: 2, poor: 3 };
  const worse = rank[qb.band] > rank[qa.band] ? qb : qa;
  const who = worse === qb ? "officer" : "booth";
  return worse.text ? { text: `${who}: ${worse.text}`, band: worse.band } : worse;
}
