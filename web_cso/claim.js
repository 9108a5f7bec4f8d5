// The claim panel of one booth: the required documents (Indonesian names from the rule
// table), a Capture button per document, live pictures, verdicts and the outcome.
//
// A capture's line follows the booth's `capture_status`: capturing, retrying, uploading
// n % (the bytes sent), queued (kept at the booth, sent by itself when the server is back),
// received, or not delivered. A line with no news for STALE_MS, or whose booth dropped off,
// says so instead of promising progress that is not happening.
//
// Pictures arrive by push (`document_added`): the panel fetches that one picture and
// keeps every picture it has shown as an object URL until the session ends (destroy()
// releases them), so nothing is downloaded twice. Every change is a POST with an
// Idempotency-Key, kept across retries of the same click.
//
// The verification workbench (workbench.js) sits in the same panel: the member record,
// each identity document beside its fields, the machine's advice pushed as it is ready
// (`verification_updated`: the panel then fetches the workbench, an audited read).

import { VerifyView, documentSummary, el, memberBlock } from "./workbench.js";

let reasonsCache = null;
const PHOTO_KINDS = ["ktp", "kitas"];

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

async function reasonPicker(api, use, label) {
  const select = el("select", { class: "reason", "aria-label": label });
  for (const r of (await api.reasons()).filter((r) => r.for.includes(use))) {
    select.append(el("option", { value: r.code, title: r.id || "" }, r.en));
  }
  return select;
}

const STAGES = {
  capturing: "Capturing…", retrying: "Retrying", uploading: "Uploading…",
  queued: "Kept at the booth, waiting to send", done: "Received", failed: "Not received",
};
const STALE_MS = 40_000; // the kiosk retries a queued picture at least every 30 s
const FINAL = ["done", "failed"];
const ADVICE = {
  hold_still: "asked to hold still", avoid_glare: "asked to tilt away from glare",
  place_document: "asked to place the document", move_closer: "asked to move closer",
};
const CLAIM_TYPES = {
  resignation: "Resignation", termination: "Termination (PHK)", retirement: "Retirement",
  disability: "Disability", death: "Death",
};
const STATUS_NAMES = { missing: "missing", pending: "to check", uploaded: "to check", accepted: "accepted", rejected: "rejected" };

// A capture still under way whose booth dropped off, or that has had no news for a while.
function stale(s, away, now) {
  return !FINAL.includes(s.stage) && (away || now - (s.at || now) >= STALE_MS);
}

function captureText(s, { away = false, now = Date.now() } = {}) {
  const parts = [STAGES[s.stage] || s.stage];
  if (s.stage === "uploading" && s.bytes_total) {
    parts[0] = `Uploading ${Math.floor((100 * (s.bytes_sent || 0)) / s.bytes_total)} %`;
  }
  if (s.attempt > 1) parts.push(`attempt ${s.attempt}`);
  if (s.sharpness !== null && s.sharpness !== undefined) parts.push(`sharpness ${Math.round(s.sharpness)}`);
  if (s.glare !== null && s.glare !== undefined) parts.push(`glare ${(s.glare * 100).toFixed(1)}%`);
  if (s.advice) parts.push(ADVICE[s.advice] || s.advice);
  if (s.detail) parts.push(s.detail);
  if (stale(s, away, now)) {
    const quiet = Math.round((now - (s.at || now)) / 1000);
    const why = away ? "the booth is offline" : `no news from the booth for ${quiet} s`;
    parts.push(["uploading", "queued"].includes(s.stage)
      ? `${why}: the picture is kept there and sent when it is back`
      : `${why}: ask again if it does not come back`);
  }
  return parts.join(" · ");
}

function randomId() {
  return crypto.randomUUID().replaceAll("-", "");
}

// --- the viewer: one <dialog> for the page, zoom and rotate ------------------------------------

const viewer = { zoom: 1, turn: 0, opener: null };

function viewerApply() {
  const img = document.getElementById("viewer-img");
  img.style.transform = `scale(${viewer.zoom}) rotate(${viewer.turn}deg)`;
  document.getElementById("viewer-zoom").textContent = `${Math.round(viewer.zoom * 100)}%`;
}

function viewerAct(act) {
  if (act === "zoom-in") viewer.zoom = Math.min(8, viewer.zoom * 1.25);
  else if (act === "zoom-out") viewer.zoom = Math.max(0.25, viewer.zoom / 1.25);
  else if (act === "rotate") viewer.turn = (viewer.turn + 90) % 360;
  else if (act === "reset") { viewer.zoom = 1; viewer.turn = 0; }
  else if (act === "close") return document.getElementById("viewer").close();
  viewerApply();
}

function setUpViewer() {
  const dialog = document.getElementById("viewer");
  if (!dialog || dialog.dataset.ready) return;
  dialog.dataset.ready = "1";
  dialog.addEventListener("click", (ev) => {
    const act = ev.target.closest("[data-act]");
    if (act) viewerAct(act.dataset.act);
  });
  dialog.addEventListener("keydown", (ev) => {
    const act = { "+": "zoom-in", "=": "zoom-in", "-": "zoom-out", r: "rotate", R: "rotate", 0: "reset" }[ev.key];
    if (act) { viewerAct(act); ev.preventDefault(); }
  });
  dialog.addEventListener("close", () => { if (viewer.opener) viewer.opener.focus(); });
}

export function openViewer(url, title, opener) {
  setUpViewer();
  viewer.zoom = 1;
  viewer.turn = 0;
  viewer.opener = opener || null;
  const img = document.getElementById("viewer-img");
  img.src = url;
  img.alt = title;
  document.getElementById("viewer-title").textContent = title;
  viewerApply();
  document.getElementById("viewer").showModal();
}

// --- the panel ------------------------------------------------------------------------------------

export class ClaimPanel {
  constructor(api, { sessionId, claimId, boothLabel, onNotice, requestCapture, endSession, onClose, onWide }) {
    this.api = api;
    this.onWide = onWide || (() => {});
    this.bench = null; // GET /api/claims/{id}/verification
    this.verifying = null; // document_id shown side by side
    this.verifyAt = 0; // the field the keyboard is on there
    this.stillAsked = false; // a face still was requested from this panel
    this.sessionId = sessionId;
    this.claimId = claimId;
    this.boothLabel = boothLabel;
    this.onNotice = onNotice || (() => {});
    this.requestCapture = requestCapture;
    this.endSession = endSession;
    this.onClose = onClose;
    this.root = el("section", { class: "claim-panel", "aria-label": `Claim of ${boothLabel}` });
    this.pending = new Map(); // action -> idempotency key, until it succeeds
    this.pictures = new Map(); // document_id -> object URL (shown once, kept, released at the end)
    this.captures = new Map(); // kind -> latest capture_status (+ at: when it came)
    this.boothAway = false;
    this.staleTimer = null; // re-says the lines while a capture is under way
    this.receipt = null; // the outcome's answer, with its audit entry hash
    this.view = null;
    this.refreshing = null;
    this.again = false;
    // The booth's document camera, live (its second video track): the officer watches
    // the document being placed before pressing Capture. Kept across refreshes.
    this.docCam = el("video", { class: "doc-live", "aria-label": `Document camera of ${boothLabel}`,
      playsinline: true, hidden: true, style: "width: 100%; max-height: 12rem; background: #111; border-radius: .3rem" });
    this.docCam.muted = true;
    // A held booth pauses this track (its hold layer) unless a capture runs: say so, so a
    // still picture is not taken for a frozen camera.
    this.docCamNote = el("p", { class: "doc-live-note", hidden: true },
      "Document camera: live while you talk to this booth or a capture runs.");
  }

  // The live document camera (a MediaStream), or null when the booth sends none.
  showDocumentCamera(stream) {
    this.docCam.hidden = !stream;
    this.docCamNote.hidden = !stream;
    if (this.docCam.srcObject !== stream) this.docCam.srcObject = stream;
    if (stream) this.docCam.play().catch(() => {}); // paused while the panel was closed
  }

  key(action) {
    if (!this.pending.has(action)) this.pending.set(action, crypto.randomUUID());
    return this.pending.get(action);
  }

  async act(action, path, body) {
    try {
      const answer = await this.api.json(path, { method: "POST", body, key: this.key(action) });
      this.pending.delete(action);
      if (action === "outcome") this.receipt = answer;
      // By default the face still is taken once the KTP is accepted (officer's request too).
      if (action.startsWith("verdict:") && answer.verdict === "accepted" && PHOTO_KINDS.includes(answer.kind)
        && !this.stillAsked && !(this.bench && this.bench.face.still_document_id)) this.takeStill();
      await this.refresh();
      return answer;
    } catch (e) {
      this.onNotice(`${e.message}`);
      return null;
    }
  }

  show() {
    return this.refresh();
  }

  // One refresh at a time; a push during one asks for another after it.
  refresh() {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        do {
          this.again = false;
          await this.load();
        } while (this.again);
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  verificationUpdated() {
    return this.refresh().catch((e) => this.onNotice(e.message));
  }

  // Side by side: one identity document beside its fields (null: back to the panel).
  verify(documentId) {
    this.verifying = documentId;
    this.verifyAt = 0;
    this.onWide(Boolean(documentId));
    return this.refresh();
  }

  async setField(doc, field, state, reason) {
    const index = doc.fields.findIndex((f) => f.field === field);
    const body = { document_id: doc.document_id, field, state };
    if (reason) body.reason_code = reason;
    const done = await this.act(`field:${doc.document_id}:${field}`, `/api/claims/${this.claimId}/fields`, body);
    if (done) this.verifyAt = Math.min(index + 1, doc.fields.length - 1); // on to the next field
    const view = this.verifyView;
    if (view) view.focus(done ? this.verifyAt : index);
  }

  takeStill() {
    const sent = this.requestCapture && this.requestCapture("face_still", randomId());
    if (!sent) this.onNotice("Not connected: the face still was not asked for.");
    else this.stillAsked = true;
  }

  documentAdded(msg) {
    const status = this.captures.get(msg.kind);
    if (status && status.stage !== "done") this.captures.set(msg.kind, { ...status, stage: "done", document_id: msg.document_id });
    return this.refresh().catch((e) => this.onNotice(e.message));
  }

  captureStatus(msg) {
    const status = { ...msg, at: Date.now() };
    this.captures.set(msg.kind, status);
    this.sayCapture(status);
    this.watchCaptures();
  }

  sayCapture(status) {
    const line = this.root.querySelector(`.capture-progress[data-kind="${status.kind}"]`);
    if (!line) return;
    line.hidden = false;
    line.dataset.stage = status.stage;
    line.dataset.stale = String(stale(status, this.boothAway, Date.now()));
    line.textContent = captureText(status, { away: this.boothAway });
  }

  // The booth's socket dropped (true) or came back: the capture lines say so at once.
  boothPresence(away) {
    this.boothAway = away;
    for (const status of this.captures.values()) this.sayCapture(status);
  }

  watchCaptures() {
    const open = () => [...this.captures.values()].filter((s) => !FINAL.includes(s.stage));
    if (this.staleTimer || !open().length) return;
    this.staleTimer = setInterval(() => {
      const waiting = open();
      for (const status of waiting) this.sayCapture(status);
      if (!waiting.length) {
        clearInterval(this.staleTimer);
        this.staleTimer = null;
      }
    }, 5000);
  }

  async picture(doc) {
    let url = this.pictures.get(doc.document_id);
    if (!url) {
      const res = await this.api.request(`/api/documents/${doc.document_id}`);
      url = URL.createObjectURL(await res.blob());
      this.pictures.set(doc.document_id, url);
    }
    return url;
  }

  destroy() {
    if (this.staleTimer) clearInterval(this.staleTimer);
    for (const url of this.pictures.values()) URL.revokeObjectURL(url);
    this.pictures.clear();
    this.root.remove();
  }

  async load() {
    const [view, bench] = await Promise.all([
      this.api.json(`/api/claims/${this.claimId}`),
      this.api.json(`/api/claims/${this.claimId}/verification`),
    ]);
    this.view = view;
    this.bench = bench;
    const { claim, checklist, documents } = view;
    const live = documents.filter((d) => !d.purged);
    const decided = ["approved", "rejected"].includes(claim.state) || this.receipt;
    const items = el("ul", { class: "checklist", "aria-label": "Required documents" });
    for (const item of checklist.items) items.append(this.requirement(item, decided));
    const docs = el("div", { class: "documents", "aria-label": "Pictures received" });
    // Newest first: what the participant just showed is on top.
    for (const doc of [...live].reverse()) docs.append(await this.documentRow(doc, decided));
    const verify = await this.verifySection(decided);
    // Keys stay where the officer was: back into the fields only if they were in this panel.
    const active = document.activeElement;
    const ours = !active || active === document.body || this.root.contains(active);
    const head = verify ? null : el("p", { class: "claim-head" },
      `${claim.booking_code || "Walk-in"} · ${CLAIM_TYPES[claim.claim_type] || claim.claim_type} · `
      + `${String(claim.state).replaceAll("_", " ")}`);
    this.root.replaceChildren(...[
      el("h2", {}, `Claim · ${this.boothLabel}`,
        el("button", { type: "button", class: "close-claim", "aria-label": "Close the claim panel",
          onclick: () => this.onClose && this.onClose() }, "Close")),
      head,
      verify,
      memberBlock(bench, { onLookUp: () => this.act("lookup", `/api/claims/${this.claimId}/member/lookup`) }),
      this.docCam,
      this.docCamNote,
      el("h3", { class: "sr-only" }, "Required documents"),
      items,
      live.length ? el("h3", { class: "sub" }, "Pictures") : null,
      docs,
      decided ? this.decidedView(claim) : await this.outcomeForm(checklist),
    ].filter(Boolean));
    if (this.verifyView && ours) this.verifyView.focus(this.verifyAt);
  }

  // The document being verified, side by side with its fields (or null).
  async verifySection(decided) {
    this.verifyView = null;
    const doc = this.verifying && this.bench.documents.find((d) => d.document_id === this.verifying);
    if (!doc || decided) {
      if (this.verifying) this.onWide(false);
      this.verifying = null;
      return null;
    }
    const face = this.bench.face;
    const still = face.still_document_id ? await this.picture({ document_id: face.still_document_id }) : null;
    const reasons = (await this.api.reasons()).filter((r) => r.for.includes("field_mismatch"));
    const order = this.bench.documents.filter((d) => d.fields.length);
    this.verifyView = new VerifyView({
      doc, picture: await this.picture(doc), face, faceOn: this.bench.advice.faces, stillUrl: still, reasons,
      onSet: (d, field, state, reason) => this.setField(d, field, state, reason),
      onMove: (step) => {
        const at = order.findIndex((d) => d.document_id === doc.document_id);
        const next = order[(at + step + order.length) % order.length];
        if (next) this.verify(next.document_id);
      },
      onClose: () => this.verify(null),
      onStill: () => this.takeStill(),
    });
    this.verifyView.current = this.verifyAt;
    return this.verifyView.root;
  }

  requirement(item, decided) {
    const kinds = item.any_of;
    let chosen = kinds[0];
    const status = this.captures.get(chosen) || kinds.map((k) => this.captures.get(k)).find(Boolean);
    const pick = kinds.length > 1
      ? el("select", { class: "capture-kind", "aria-label": `Which document for ${item.names.join(" or ")}`,
        onchange: (ev) => { chosen = ev.target.value; } },
      ...kinds.map((k, i) => el("option", { value: k }, item.names[i] || k)))
      : null;
    const progress = el("div", { class: "capture-progress", "data-kind": status ? status.kind : chosen,
      "data-stage": status ? status.stage : "", hidden: !status, "aria-live": "polite",
      "data-stale": status ? String(stale(status, this.boothAway, Date.now())) : "false" },
    status ? captureText(status, { away: this.boothAway }) : "");
    const capture = decided ? null : el("button", {
      type: "button", class: "capture", "data-kind": chosen,
      "aria-label": `Capture ${item.names.join(" or ")}`,
      onclick: () => {
        const captureId = randomId();
        const sent = this.requestCapture && this.requestCapture(chosen, captureId);
        if (!sent) return this.onNotice("Not connected: the capture request was not sent.");
        const first = { kind: chosen, capture_id: captureId, stage: "capturing", attempt: 1 };
        this.captures.set(chosen, first);
        progress.dataset.kind = chosen;
        this.captureStatus(first);
      },
    }, "Capture");
    return el("li", { "data-status": item.status, "data-requirement": item.requirement },
      el("div", { class: "req" },
        el("span", { class: "name" }, item.names.join(" / ")),
        el("span", { class: "status-chip" }, STATUS_NAMES[item.status] || item.status),
        pick, capture),
      progress);
  }

  async documentRow(doc, decided) {
    const url = await this.picture(doc);
    const img = el("img", { alt: doc.name, class: "doc-thumb", src: url });
    const open = el("button", { type: "button", class: "doc-open", "aria-label": `View ${doc.name} larger`,
      onclick: (ev) => openViewer(url, doc.name, ev.currentTarget) }, img);
    const verdict = doc.verdict
      ? `${doc.verdict}${doc.verdict_reasons.length ? ` (${doc.verdict_reasons.join(", ")})` : ""}`
      : "not judged";
    const size = doc.width && doc.height ? ` · ${doc.width}×${doc.height}` : "";
    const late = doc.after_session ? " · arrived after its session ended" : "";
    const checked = this.bench && this.bench.documents.find((d) => d.document_id === doc.document_id && d.fields.length);
    const row = el("div", { class: "document", "data-kind": doc.kind, "data-verdict": doc.verdict || "",
      "data-document": doc.document_id },
    open, el("span", { class: "doc-info" }, el("strong", {}, doc.name), el("br"),
      doc.kind === "face_still" ? `for the face comparison${size}` : `${verdict}${size}${late}`,
      checked ? el("span", { class: "doc-fields" }, el("br"), documentSummary(checked)) : null));
    if (checked && !decided) {
      row.append(el("button", { type: "button", class: "doc-verify", "aria-label": `Verify ${doc.name} field by field`,
        onclick: () => this.verify(doc.document_id) }, "Verify"));
    }
    if (!doc.verdict && !decided && doc.kind !== "face_still") {
      const reason = await reasonPicker(this.api, "document_rejection", `Reason to reject ${doc.name}`);
      const path = `/api/documents/${doc.document_id}/verdict`;
      row.append(
        el("button", { type: "button", class: "doc-accept", "aria-label": `Accept ${doc.name}`,
          onclick: () => this.act(`verdict:${doc.document_id}`, path, { verdict: "accepted" }) }, "Accept"),
        reason,
        el("button", { type: "button", class: "doc-reject", "aria-label": `Reject ${doc.name}`,
          onclick: () => this.act(`verdict:${doc.document_id}`, path,
            { verdict: "rejected", reason_codes: [reason.value] }) }, "Reject"),
      );
    }
    return row;
  }

  decidedView(claim) {
    const r = this.receipt;
    const box = el("div", { class: "decided receipt", role: "status" },
      el("strong", {}, `Decision recorded: ${r ? r.decision : claim.state}`));
    if (r) {
      if (r.reason_codes && r.reason_codes.length) box.append(el("div", {}, `Reasons: ${r.reason_codes.join(", ")}`));
      box.append(el("div", {}, `Audit receipt #${r.audit_seq}: `,
        el("code", { class: "audit-hash", title: "SHA-256 of the audit entry" }, r.audit_hash || "(not given)")));
    }
    if (this.endSession) {
      box.append(el("div", {}, el("button", { type: "button", class: "end-after", onclick: () => this.endSession() },
        "End session (free the slot)")));
    }
    return box;
  }

  async outcomeForm(checklist) {
    const rejectReason = await reasonPicker(this.api, "claim_rejection", "Reason to reject the claim");
    const followReason = await reasonPicker(this.api, "follow_up", "Reason for follow-up");
    const outcome = (decision, reason) =>
      this.act("outcome", `/api/claims/${this.claimId}/outcome`,
        { decision, reason_codes: reason ? [reason.value] : [] });
    const approval = this.bench ? this.bench.approval : { ok: checklist.complete, problems: [] };
    const why = !checklist.complete ? "Accept every required document first"
      : approval.problems.map((p) => p.message).join("; ");
    return el("div", { class: "outcome", role: "group", "aria-label": "Decision" },
      approval.ok || !checklist.complete ? null : el("ul", { class: "approval-problems", "aria-label": "Why it cannot be approved yet" },
        ...approval.problems.map((p) => el("li", { "data-code": p.code }, p.message))),
      el("button", { type: "button", class: "approve", disabled: !approval.ok,
        title: approval.ok ? "Every required document is accepted and every identity field confirmed" : why,
        onclick: () => outcome("approved") }, "Approve claim"),
      rejectReason,
      el("button", { type: "button", class: "reject", onclick: () => outcome("rejected", rejectReason) }, "Reject claim"),
      followReason,
      el("button", { type: "button", class: "follow-up", onclick: () => outcome("needs_follow_up", followReason) },
        "Needs follow-up"),
    );
  }
}
