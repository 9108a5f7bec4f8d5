// The browser end of Loket's signaling protocol: envelope, hello, heartbeats, reconnects,
// replies matched to requests, access-token refresh and `reauth`, close codes.
// Message shapes follow signaling/messages.py (/api/schema).
//
// Resume is by state sync: every `welcome` carries this console's whole state (sessions and
// pending offers); the app rebuilds from it and never waits for replayed messages.

export const PROTOCOL_VERSION = 1;

// Application close codes (server/api/connection.py).
export const CLOSE = {
  PROTOCOL: 4400,
  UNAUTHENTICATED: 4401, // no valid token, or it expired without `reauth`
  FORBIDDEN: 4403, // account disabled
  TIMEOUT: 4408,
  REPLACED: 4409, // another tab (or device) took over this account's console
  OVERLOADED: 4429,
};

const KEEP_SENT = 500; // relayed messages get no ack: remember the last few for errors
// A refresh that failed on the network is sent again at once: the server gives a token sent
// again within its reuse interval (LOKET_REFRESH_REUSE_INTERVAL, 5 s) the successor whose
// answer was lost; much later it would count as reuse and end the login. Three attempts of
// at most 2 s each, 0.25 s and 0.5 s apart, start within that interval.
const REFRESH_PAUSES_MS = [250, 500];
const REFRESH_ATTEMPT_MS = 2000;
const LOG_IN_AGAIN = "Your session has expired. Please log in again.";

// The server refused the refresh token (used, revoked, expired): only a new login helps.
// A network failure is a TypeError instead, and worth a retry.
export class RefreshRefused extends Error {}

function messageId() {
  if (crypto.randomUUID) return crypto.randomUUID().replaceAll("-", "");
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
}

export function envelope(type, body = {}) {
  return { v: PROTOCOL_VERSION, id: messageId(), ts: Date.now() / 1000, reply_to: null, type, ...body };
}

// Seconds before an access token's expiry to refresh it: a minute, or a third of a short life.
export function refreshMargin(lifetime) {
  return Math.max(0.5, Math.min(60, lifetime / 3));
}

export class Signaling {
  // handlers: message type -> function(msg). options:
  //   onStatus(text)               a line for the status bar
  //   onRefused(request, error)    the server refused a request of ours (request: {type, body})
  //   onTokens(tokens)             new tokens (the refresh token rotates: keep the newest)
  //   onStopped(text, next)        no more reconnecting; next: "login" | "replaced" | "disabled"
  constructor(path, tokens, handlers, options = {}) {
    this.path = path;
    this.tokens = tokens;
    this.handlers = handlers;
    this.onStatus = options.onStatus || (() => {});
    this.onRefused = options.onRefused || (() => {});
    this.onTokens = options.onTokens || (() => {});
    this.onStopped = options.onStopped || (() => {});
    this.ws = null;
    this.resume = null;
    this.backoff = 500;
    this.pingTimer = null;
    this.reauthTimer = null;
    this.stopped = false;
    this.authRetried = false; // one token refresh per 4401 until the next welcome
    this.sent = new Map(); // id -> {type, body, settle}: awaiting ack or error
    this.refreshing = null;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}${this.path}`;
  }

  connect() {
    this.stopped = false;
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = async () => {
      try {
        await this.refresh();
      } catch (e) {
        if (e instanceof RefreshRefused) this.stop(LOG_IN_AGAIN, "login");
        else ws.close(1000); // the network: reconnect and try again
        return;
      }
      if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify(envelope("hello", {
        token: this.tokens.access_token, resume: this.resume, client: "loket-console/0.2",
      })));
    };
    ws.onmessage = (ev) => this.dispatch(JSON.parse(ev.data));
    ws.onclose = (ev) => {
      if (ws !== this.ws) return; // an old socket we replaced
      this.clearTimers();
      this.dropPending();
      if (this.stopped) return;
      this.closed(ev.code);
    };
  }

  closed(code) {
    if (code === CLOSE.REPLACED) {
      return this.stop("Another tab took over this console. Close this one, or reload it to take the console back.", "replaced");
    }
    if (code === CLOSE.FORBIDDEN) {
      return this.stop("This account is disabled. Ask an operator.", "disabled");
    }
    if (code === CLOSE.UNAUTHENTICATED) {
      if (this.authRetried) return this.stop(LOG_IN_AGAIN, "login");
      this.authRetried = true;
      this.onStatus("Session expired; renewing it…");
      this.refresh({ force: true }).then(
        () => this.connect(),
        (e) => (e instanceof RefreshRefused ? this.stop(LOG_IN_AGAIN, "login") : this.retry(code)),
      );
      return;
    }
    this.retry(code);
  }

  retry(code) {
    const slow = code === CLOSE.OVERLOADED;
    this.onStatus(slow ? "The server is busy; reconnecting shortly…" : `Disconnected (${code}); reconnecting…`);
    const delay = slow ? 10000 : this.backoff * (1 + Math.random());
    setTimeout(() => { if (!this.stopped) this.connect(); }, delay);
    this.backoff = Math.min(this.backoff * 2, 10000);
  }

  // --- tokens --------------------------------------------------------------------------

  expiresAt() {
    // `exp` is whole seconds: the token may expire up to a second before expires_in says.
    return this.tokens.obtained_at + (this.tokens.expires_in - 1) * 1000;
  }

  setTokens(body) {
    this.tokens = { ...body, obtained_at: Date.now() };
    this.onTokens(this.tokens);
    return this.tokens;
  }

  // Fresh tokens when the access token is close to expiry (or `force`). One refresh at a
  // time: a refresh token works once, and presenting it twice revokes the whole login.
  refresh({ force = false } = {}) {
    const margin = refreshMargin(this.tokens.expires_in) * 1000;
    if (!force && Date.now() < this.expiresAt() - margin) return Promise.resolve(this.tokens);
    if (!this.refreshing) {
      this.refreshing = this.postRefresh(this.tokens.refresh_token)
        .then((body) => this.setTokens(body))
        .finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  // POST /api/auth/refresh; a network error, a timeout or a 5xx is retried at once (twice).
  async postRefresh(token) {
    for (const pause of [...REFRESH_PAUSES_MS, null]) {
      try {
        const res = await fetch("/api/auth/refresh", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ refresh_token: token }),
          signal: AbortSignal.timeout(REFRESH_ATTEMPT_MS),
        });
        if (res.ok) return await res.json();
        if (res.status < 500) throw new RefreshRefused(`token refresh refused (${res.status})`);
        throw new TypeError(`token refresh failed (${res.status})`);
      } catch (e) {
        if (e instanceof RefreshRefused || pause === null) throw e;
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  refreshIfNeeded() {
    return this.refresh();
  }

  scheduleReauth(tokenExpiresAt) {
    clearTimeout(this.reauthTimer);
    let deadline = this.expiresAt();
    // The server's word on this socket's token, unless the clocks disagree wildly.
    if (tokenExpiresAt && tokenExpiresAt * 1000 > Date.now()) deadline = Math.min(deadline, tokenExpiresAt * 1000);
    const wait = deadline - refreshMargin(this.tokens.expires_in) * 1000 - Date.now();
    this.reauthTimer = setTimeout(() => this.reauth(), Math.max(0, wait));
  }

  async reauth() {
    try {
      await this.refresh({ force: true });
    } catch (e) {
      if (e instanceof RefreshRefused) return this.stop(LOG_IN_AGAIN, "login");
      this.reauthTimer = setTimeout(() => this.reauth(), 2000); // the network: try again
      return;
    }
    const reply = await this.request("reauth", { token: this.tokens.access_token });
    if (reply.ok) this.scheduleReauth(null);
    else if (!reply.lost && this.ws) this.ws.close(1000); // reconnect with a fresh hello
  }

  // --- messages ---------------------------------------------------------------------------

  dispatch(msg) {
    if (msg.type === "ping") return this.send("pong", { reply_to: msg.id }, { track: false });
    if (msg.type === "ack" || msg.type === "error") {
      const ref = msg.reply_to || msg.ref;
      const request = ref ? this.sent.get(ref) : undefined;
      if (request) {
        this.sent.delete(ref);
        if (msg.type === "error") this.onRefused(request, msg);
        if (request.settle) request.settle(msg.type === "ack" ? { ok: true, reply: msg } : { ok: false, error: msg });
        return;
      }
      if (msg.type === "ack") return;
    }
    if (msg.type === "welcome") {
      this.resume = msg.resume_token;
      this.backoff = 500;
      this.authRetried = false;
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send("ping", {}, { track: false }), msg.heartbeat_interval * 1000);
      this.scheduleReauth(msg.token_expires_at);
    }
    const handler = this.handlers[msg.type];
    if (handler) Promise.resolve(handler(msg)).catch((e) => this.onStatus(String(e)));
  }

  // Send a message; its refusal (an `error` naming it) goes to onRefused. Returns its id,
  // or null when the socket is not open.
  send(type, body = {}, { track = true, settle = null } = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return null;
    const message = envelope(type, body);
    if (track) {
      this.sent.set(message.id, { type, body, settle });
      if (this.sent.size > KEEP_SENT) this.sent.delete(this.sent.keys().next().value);
    }
    this.ws.send(JSON.stringify(message));
    return message.id;
  }

  // A request the server answers with `ack` or `error`: resolves to {ok: true, reply},
  // {ok: false, error} (also shown through onRefused) or {ok: false, lost: true}.
  request(type, body = {}) {
    return new Promise((resolve) => {
      if (this.send(type, body, { settle: resolve }) === null) resolve({ ok: false, lost: true });
    });
  }

  dropPending() {
    const pending = [...this.sent.values()];
    this.sent.clear();
    for (const request of pending) if (request.settle) request.settle({ ok: false, lost: true });
  }

  clearTimers() {
    clearInterval(this.pingTimer);
    clearTimeout(this.reauthTimer);
  }

  // No more reconnecting. `next` tells the app what the user should do.
  stop(text = null, next = null) {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimers();
    this.dropPending();
    if (this.ws) this.ws.close(1000);
    if (text) this.onStopped(text, next);
  }

  // Log out: revoke this login's refresh tokens on the server, then stop.
  async logout() {
    this.stop();
    if (this.refreshing) await this.refreshing.catch(() => {});
    await fetch("/api/auth/logout", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: this.tokens.refresh_token }),
    }).catch(() => {}); // offline: the tokens are dropped here all the same
  }

  close() {
    this.stop();
  }
}
