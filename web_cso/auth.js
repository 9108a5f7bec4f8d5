// Logging in and keeping the tokens for this tab: shared by the console and the
// supervisor dashboard (which imports it from /console/auth.js).

// Per tab (sessionStorage): a reload keeps the login, another tab logs in on its own.
export class TokenStore {
  constructor(key) {
    this.key = key;
  }

  save(tokens) {
    try { sessionStorage.setItem(this.key, JSON.stringify(tokens)); } catch (e) { /* private mode */ }
  }

  load() {
    try { return JSON.parse(sessionStorage.getItem(this.key) || "null"); } catch (e) { return null; }
  }

  clear() {
    try { sessionStorage.removeItem(this.key); } catch (e) { /* private mode */ }
  }
}

export async function login(username, password) {
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
