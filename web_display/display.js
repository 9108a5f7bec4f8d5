// The waiting room's calling display (/display/): listens on /ws/display with its display
// key (from `loket display enrol`, given once as #key=... and kept in this browser), shows
// the call and its booth in large type, chimes and says it (a WAV the server made offline).
// Everything it shows is public: ticket numbers and booth names, never a name or NIK.

const KEY_STORE = "loket.display.key";
const $ = (id) => document.getElementById(id);
const timings = (window.__displayCalls = []); // for tests and the calling bench

// Message ids without crypto.randomUUID (only in secure contexts: a display on plain http
// inside a branch's network has none).
function messageId() {
  return Array.from({ length: 24 }, () => Math.floor(Math.random() * 36).toString(36)).join("");
}

function takeKey() {
  const found = new URLSearchParams(location.hash.slice(1)).get("key");
  if (found) {
    localStorage.setItem(KEY_STORE, found);
    history.replaceState(null, "", location.pathname); // not left in the address bar
  }
  return localStorage.getItem(KEY_STORE);
}

function minutes(seconds) {
  if (seconds == null) return "—";
  const m = Math.max(1, Math.round(seconds / 60));
  return m >= 90 ? `± ${Math.round(m / 60)} jam` : `± ${m} menit`;
}

function tick() {
  const now = new Date();
  $("clock").textContent = now.toLocaleTimeString("id-ID", { hour: "2-digit", minute: "2-digit" });
}

const audio = new Audio();
audio.preload = "auto";
const queue = [];
let speaking = false;

function speakNext() {
  if (speaking || !queue.length) return;
  const item = queue.shift();
  speaking = true;
  audio.src = item.url;
  audio.onplaying = () => { item.timing.playing = Date.now(); };
  audio.onended = audio.onerror = () => { item.timing.ended = Date.now(); speaking = false; speakNext(); };
  audio.play().catch(() => {
    $("unmute").hidden = false; // the browser wants a tap before sound
    speaking = false;
    queue.unshift(item);
  });
}

document.addEventListener("click", () => { $("unmute").hidden = true; speakNext(); });

function showNow(call) {
  $("now-number").textContent = call.number;
  $("now-booth").textContent = call.booth_label;
  $("now-recall").hidden = !call.recall;
  const box = $("now");
  box.classList.remove("flash");
  void box.offsetWidth;
  box.classList.add("flash");
}

function showState(state) {
  $("branch").textContent = `Ruang tunggu ${state.branch}`;
  $("waiting").textContent = state.waiting;
  $("estimate").textContent = `Perkiraan waktu tunggu: ${minutes(state.estimated_wait_s)}`;
  const list = $("calls");
  list.replaceChildren(...state.calls.slice(0, 8).map((c) => {
    const li = document.createElement("li");
    const n = document.createElement("span"); n.className = "number"; n.textContent = c.number;
    const b = document.createElement("span"); b.className = "booth"; b.textContent = c.booth_label;
    li.append(n, b);
    return li;
  }));
  if (state.calls.length && $("now-number").textContent === "—") showNow(state.calls[0]);
}

function onCall(message) {
  const timing = { number: message.call.number, at: message.call.at * 1000, shown: 0,
                   playing: 0, ended: 0, url: message.audio_url };
  showNow(message.call);
  timing.shown = Date.now();
  timings.push(timing);
  queue.push({ url: message.audio_url, timing });
  speakNext();
}

let backoff = 500;
function connect(key) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/display`);
  let ping = null;
  ws.onopen = () => {
    ws.send(JSON.stringify({ v: 1, type: "hello", id: messageId(),
                             ts: Date.now() / 1000, token: key, client: "loket-display" }));
    ping = setInterval(() => ws.send(JSON.stringify({ v: 1, type: "ping",
      id: messageId(), ts: Date.now() / 1000 })), 10000);
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "display_state") { backoff = 500; setStatus(true); showState(message); }
    else if (message.type === "display_call") onCall(message);
    else if (message.type === "error" && message.code === "auth_failed") {
      localStorage.removeItem(KEY_STORE);
      $("setup").hidden = false;
    }
  };
  ws.onclose = () => {
    clearInterval(ping);
    setStatus(false);
    if (!$("setup").hidden) return;
    setTimeout(() => connect(key), backoff);
    backoff = Math.min(backoff * 2, 15000);
  };
}

function setStatus(up) {
  const footer = $("status");
  footer.classList.toggle("down", !up);
  footer.textContent = up ? "Loket — panggilan antrean" : "Sambungan terputus, menyambung kembali…";
  window.__displayConnected = up;
}

tick();
setInterval(tick, 1000);
const key = takeKey();
if (!key) $("setup").hidden = false;
else connect(key);
