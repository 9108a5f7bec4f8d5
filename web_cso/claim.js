// The claim panel of one booth tile: checklist, document pictures, verdicts, outcome.
// Every change is a POST with an Idempotency-Key, kept across retries of the same click.

let reasonsCache = null;

export class Api {
  constructor(signaling) {
    this.signaling = signaling; // holds and refreshes the tokens
  }

  async request(path, { method = "GET", body, key } = {}) {
    await this.signaling.refreshIfNeeded();
    const headers = { authorization: `Bearer ${this.signaling.tokens.access_token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (key) headers["idempotency-key"] = key;
    // A network failure is retried with the same key: the server stores the change once.
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fetch(path, {
          method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        });
        if (!res.ok) {
          const err = (await res.json().catch(() => ({}))).error || {};
          throw new Error(`${err.message || res.statusText}${err.hint ? ` — ${err.hint}` : ""}`);
        }
        return res;
      } catch (e) {
        if (!(e instanceof TypeError) || attempt >= 3) throw e; // TypeError: network
        await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
      }
    }
  }

  async json(path, options) {
    return (await this.request(path, options)).json();
  }

  async reasons() {
    reasonsCache = reasonsCache || (await this.json("/api/reasons"));
    return reasonsCache;
  }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

async function reasonPicker(api, use) {
  const select = el("select", { class: "reason", "aria-label": "Reason" });
  for (const r of (await api.reasons()).filter((r) => r.for.includes(use))) {
    select.append(el("option", { value: r.code }, r.en));
  }
  return select;
}

export class ClaimPanel {
  constructor(api, claimId, root, onStatus) {
    this.api = api;
    this.claimId = claimId;
    this.root = root;
    this.onStatus = onStatus;
    this.pending = new Map(); // action -> idempotency key, until it succeeds
  }

  key(action) {
    if (!this.pending.has(action)) this.pending.set(action, crypto.randomUUID());
    return this.pending.get(action);
  }

  async act(action, path, body) {
    try {
      await this.api.json(path, { method: "POST", body, key: this.key(action) });
      this.pending.delete(action);
      await this.refresh();
    } catch (e) {
      this.onStatus(`${e.message}`);
    }
  }

  async refresh() {
    const view = await this.api.json(`/api/claims/${this.claimId}`);
    const { claim, checklist, documents } = view;
    const items = el("ul", { class: "checklist" });
    for (const item of checklist.items) {
      items.append(el("li", { "data-status": item.status }, `${item.names.join(" / ")}: ${item.status}`));
    }
    const docs = el("div", { class: "documents" });
    for (const doc of documents.filter((d) => !d.purged)) docs.append(await this.documentRow(doc));
    const decided = ["approved", "rejected"].includes(claim.state);
    this.root.replaceChildren(
      el("p", { class: "claim-head" },
        `${claim.booking_code || "Walk-in"} · ${claim.claim_type} · NIK ${claim.nik} · ${claim.state}`),
      items,
      docs,
      decided ? el("p", { class: "decided" }, `Decision recorded: ${claim.state}`) : await this.outcomeForm(checklist),
    );
  }

  async documentRow(doc) {
    const img = el("img", { alt: doc.name, class: "doc-thumb" });
    const res = await this.api.request(`/api/documents/${doc.document_id}`);
    img.src = URL.createObjectURL(await res.blob());
    const row = el("div", { class: "document", "data-kind": doc.kind, "data-verdict": doc.verdict || "" },
      img, el("span", {}, `${doc.name}: ${doc.verdict || "not judged"}`));
    if (!doc.verdict) {
      const reason = await reasonPicker(this.api, "document_rejection");
      row.append(
        el("button", { type: "button", class: "doc-accept",
          onclick: () => this.act(`verdict:${doc.document_id}`, `/api/documents/${doc.document_id}/verdict`,
            { verdict: "accepted" }) }, "Accept"),
        reason,
        el("button", { type: "button", class: "doc-reject",
          onclick: () => this.act(`verdict:${doc.document_id}`, `/api/documents/${doc.document_id}/verdict`,
            { verdict: "rejected", reason_codes: [reason.value] }) }, "Reject"),
      );
    }
    return row;
  }

  async outcomeForm(checklist) {
    const rejectReason = await reasonPicker(this.api, "claim_rejection");
    const followReason = await reasonPicker(this.api, "follow_up");
    const outcome = (decision, reason) =>
      this.act(`outcome`, `/api/claims/${this.claimId}/outcome`,
        { decision, reason_codes: reason ? [reason.value] : [] });
    return el("div", { class: "outcome" },
      el("button", { type: "button", class: "approve", ...(checklist.complete ? {} : { disabled: "" }),
        onclick: () => outcome("approved") }, "Approve claim"),
      rejectReason,
      el("button", { type: "button", class: "reject", onclick: () => outcome("rejected", rejectReason) }, "Reject claim"),
      followReason,
      el("button", { type: "button", class: "follow-up", onclick: () => outcome("needs_follow_up", followReason) },
        "Needs follow-up"),
    );
  }
}
