// The browser end of Loket's signaling protocol: envelope, hello, heartbeats, reconnects,
// access-token refresh. Message shapes follow signaling/messages.py (/api/schema).

export const PROTOCOL_VERSION = 1;

function messageId() {
  if (crypto.randomUUID) return crypto.randomUUID().replaceAll("-", "");
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
}

export function envelope(type, body = {}) {
  return { v: PROTOCOL_VERSION, id: messageId(), ts: Date.now() / 1000, reply_to: null, type, ...body };
}

export class Signaling {
  constructor(path, tokens, handlers, onStatus) {
    this.path = path;
    this.tokens = tokens;
    this.handlers = handlers;
    this.onStatus = onStatus;
    this.ws = null;
    this.resume = null;
    this.backoff = 500;
    this.pingTimer = null;
    this.closedByUs = false;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}${this.path}`;
  }

  connect() {
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = async () => {
      await this.refreshIfNeeded();
      ws.send(JSON.stringify(envelope("hello", { token: this.tokens.access_token, resume: this.resume })));
    };
    ws.onmessage = (ev) => this.dispatch(JSON.parse(ev.data));
    ws.onclose = (ev) => {
      clearInterval(this.pingTimer);
      if (this.closedByUs) return;
      this.onStatus(`Disconnected (${ev.code}); reconnecting…`);
      setTimeout(() => this.connect(), this.backoff * (1 + Math.random()));
      this.backoff = Math.min(this.backoff * 2, 10000);
    };
  }

  async refreshIfNeeded() {
    // Access tokens live <= 15 minutes; refresh when less than a minute is left.
    const expiresAt = this.tokens.obtained_at + this.tokens.expires_in * 1000;
    if (Date.now() < expiresAt - 60000) return;
    const res = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: this.tokens.refresh_token }),
    });
    if (res.ok) this.tokens = { ...(await res.json()), obtained_at: Date.now() };
  }

  dispatch(msg) {
    if (msg.type === "ping") return this.send("pong", { reply_to: msg.id });
    if (msg.type === "welcome") {
      this.resume = msg.resume_token;
      this.backoff = 500;
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send("ping"), msg.heartbeat_interval * 1000);
    }
    const handler = this.handlers[msg.type];
    if (handler) Promise.resolve(handler(msg)).catch((e) => this.onStatus(String(e)));
  }

  send(type, body = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(envelope(type, body)));
    return true;
  }

  close() {
    this.closedByUs = true;
    if (this.ws) this.ws.close(1000);
  }
}
