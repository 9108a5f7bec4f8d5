// The verification workbench inside a claim panel: the member record in full (the serving
// officer sees the whole NIK; every fetch of it is an audited read on the server), and a
// side-by-side view per identity document: its picture (zoom, rotate; a KTP the face
// analysis found turned is shown upright) next to the fields it must match, each with the
// record's value, the machine's reading and confidence, and the state the officer sets.
//
// Machine readings and the face score are advice: a field the officer has not set shows
// the suggestion dashed; Enter confirms it, M / D / U set matches / differs / unreadable
// (differs asks for a reason first). ↑/↓ move between fields, [ and ] between documents,
// + − R 0 zoom and turn the picture, Esc closes the view. Approval stays refused (by the
// server) until every identity field of every required document is confirmed.

export const STATES = { matches: "Matches", differs: "Differs", unreadable: "Unreadable" };
const KEYS = { m: "matches", d: "differs", u: "unreadable" };
const SOURCES = {
  import: "imported with the booking",
  directory: "from the membership directory",
  walk_in_typed: "typed at the booth",
};
const BANDS = {
  likely_same: "likely the same person",
  uncertain: "uncertain",
  likely_different: "likely different people",
};

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function pct(confidence) {
  return confidence === null || confidence === undefined ? "" : `${Math.round(confidence * 100)} %`;
}

// --- the member record -----------------------------------------------------------------------

export function memberBlock(view, { onLookUp }) {
  const m = view.member;
  const rows = [["NIK", m.nik], ["KPJ", m.kpj]];
  for (const f of m.fields || []) rows.push([f.label, f.value || "—"]);
  const table = el("dl", { class: "member-fields" },
    ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-field": k }, v)]));
  const source = m.known
    ? `${SOURCES[m.source] || m.source}, ${when(m.recorded_at)}`
    : "no member record yet";
  const unconfirmed = !m.known || !m.confirmed;
  const box = el("section", { class: "member", "data-confirmed": String(!unconfirmed), "aria-label": "Member record" },
    el("h3", { class: "sub" }, "Member record"),
    table,
    el("p", { class: "member-source" }, `Source: ${source}`),
    unconfirmed ? el("p", { class: "warn member-note", role: "note" },
      m.note ? `Not confirmed by the directory: ${m.note.replace(/^not confirmed by the directory: /, "")}`
        : "Not confirmed by the directory.") : null,
    m.waiting ? el("p", { class: "warn" }, `Waiting period: payable from ${m.payable_from}.`) : null,
    unconfirmed ? el("button", { type: "button", class: "look-up", onclick: onLookUp }, "Look up in the directory again") : null,
  );
  return box;
}

// --- one identity document, side by side -------------------------------------------------------

export class VerifyView {
  // doc: the workbench's document; picture: object URL; face: the workbench's face block;
  // stillUrl: the face still's object URL (or null); reasons: field-mismatch reasons.
  constructor({ doc, picture, face, faceOn, stillUrl, reasons, onSet, onMove, onClose, onStill }) {
    Object.assign(this, { doc, picture, face, faceOn, stillUrl, reasons, onSet, onMove, onClose, onStill });
    this.zoom = 1;
    // A KTP the face analysis read turned: shown upright from the start.
    const turned = face && face.ktp_document_id === doc.document_id && face.document ? face.document.turned_deg || 0 : 0;
    this.turn = turned;
    this.turnedBy = turned;
    this.current = 0;
    this.root = el("section", { class: "verify", "data-document": doc.document_id, "data-kind": doc.kind,
      "aria-label": `Verify ${doc.name}` });
    this.render();
  }

  render() {
    const doc = this.doc;
    const img = el("img", { class: "verify-img", src: this.picture, alt: doc.name });
    this.img = img;
    const stage = el("div", { class: "verify-stage" }, img);
    const tools = el("div", { class: "verify-tools" },
      el("button", { type: "button", "aria-label": "Zoom out", onclick: () => this.act("-") }, "−"),
      el("button", { type: "button", "aria-label": "Zoom in", onclick: () => this.act("+") }, "+"),
      el("button", { type: "button", "aria-label": "Rotate 90 degrees", onclick: () => this.act("r") }, "⟳"),
      el("button", { type: "button", "aria-label": "Fit", onclick: () => this.act("0") }, "Fit"),
      this.turnedBy ? el("span", { class: "quiet" }, `shown turned ${this.turnedBy}° (as the face was found)`) : null);
    const left = el("div", { class: "verify-left" }, stage, tools, this.faceStrip());
    const rows = doc.fields.map((f, i) => this.fieldRow(f, i));
    this.table = el("div", { class: "fields", role: "grid", "aria-label": `Fields of ${doc.name}`,
      onkeydown: (ev) => this.key(ev) }, ...rows);
    const reading = doc.reading;
    const readLine = !reading ? "Not read by machine (compare by eye)."
      : reading.status === "pending" ? "Reading by machine…"
        : reading.status === "done" ? `Read by machine in ${(reading.ms / 1000).toFixed(1)} s: advice only.`
          : `Reading unavailable (${reading.reason || reading.status}): compare by eye.`;
    const right = el("div", { class: "verify-right" },
      el("h3", {}, doc.name, el("button", { type: "button", class: "verify-close", "aria-label": "Close the side-by-side view",
        onclick: () => this.onClose() }, "Done")),
      el("p", { class: "reading-line", "data-status": reading ? reading.status : "none" }, readLine),
      this.table,
      el("p", { class: "keys" }, el("kbd", {}, "Enter"), " confirm advice · ", el("kbd", {}, "M"), el("kbd", {}, "D"),
        el("kbd", {}, "U"), " set · ", el("kbd", {}, "↑"), el("kbd", {}, "↓"), " field · ", el("kbd", {}, "["),
        el("kbd", {}, "]"), " document · ", el("kbd", {}, "Esc"), " close"));
    this.root.replaceChildren(left, right);
    this.apply();
  }

  faceStrip() {
    if (!["ktp", "kitas"].includes(this.doc.kind)) return null;
    const face = this.face || {};
    const mine = face.ktp_document_id === this.doc.document_id;
    let verdict;
    if (!face.still_document_id) verdict = "No face still yet.";
    else if (!this.faceOn) verdict = "Face comparison is off on this server: compare by eye.";
    else if (!face.status || face.status === "pending") verdict = "Comparing the faces…";
    else if (!mine) verdict = "The face still was compared with another KTP picture.";
    else if (face.status !== "done") verdict = `Face comparison unavailable (${face.reason || face.status}).`;
    else if (face.band) verdict = `Advisory: ${BANDS[face.band]} (similarity ${face.similarity.toFixed(2)}).`;
    else verdict = face.message || "Not compared."; // no face / several / too small: said, never a score
    const still = this.stillUrl ? el("img", { class: "face-still", src: this.stillUrl, alt: "Face still (live)" })
      : el("div", { class: "face-still empty" }, "no still");
    const photo = el("canvas", { class: "face-photo", width: 120, height: 144, "aria-label": "Photo on the document" });
    if (mine && face.document && face.document.faces && face.document.faces.length) this.cropFace(photo, face.document);
    return el("div", { class: "face-strip", "data-band": mine && face.band ? face.band : "" },
      el("figure", {}, still, el("figcaption", {}, "Live still")),
      el("figure", {}, photo, el("figcaption", {}, "Photo on the document")),
      el("div", { class: "face-verdict" }, el("p", {}, verdict),
        el("button", { type: "button", class: "take-still", onclick: () => this.onStill() }, face.still_document_id ? "Take a new still" : "Take face still")));
  }

  // The document's face, cropped from the picture as the analysis turned it.
  cropFace(canvas, found) {
    const source = new Image();
    source.onload = () => {
      const [x, y, w, h] = found.faces[0].box;
      const turn = found.turned_deg || 0;
      const turnedW = turn % 180 ? source.height : source.width;
      const turnedH = turn % 180 ? source.width : source.height;
      const full = document.createElement("canvas");
      full.width = turnedW;
      full.height = turnedH;
      const g = full.getContext("2d");
      g.translate(turnedW / 2, turnedH / 2);
      g.rotate((turn * Math.PI) / 180);
      g.drawImage(source, -source.width / 2, -source.height / 2);
      const pad = 0.35;
      const cx = x - w * pad, cy = y - h * pad, cw = w * (1 + 2 * pad), ch = h * (1 + 2 * pad);
      canvas.getContext("2d").drawImage(full, cx, cy, cw, ch, 0, 0, canvas.width, canvas.height);
    };
    source.src = this.picture;
  }

  fieldRow(f, i) {
    const set = f.state;
    const advice = !set && f.suggested ? f.suggested : null;
    const read = f.read === null || f.read === undefined
      ? (f.field === "photo" ? "compare the still and the photo by eye" : "—") : f.read;
    const buttons = Object.entries(STATES).map(([state, label]) => el("button", {
      type: "button", class: `state state-${state}`, "aria-pressed": String(set === state),
      "data-advised": String(advice === state), tabindex: -1,
      onclick: () => this.choose(i, state),
    }, label));
    const reason = el("select", { class: "field-reason", "aria-label": `Why ${f.label} differs`, hidden: true,
      onkeydown: (ev) => {
        if (ev.key === "Enter") { ev.preventDefault(); ev.stopPropagation(); this.send(i, "differs", reason.value); }
        if (ev.key === "Escape") { ev.preventDefault(); ev.stopPropagation(); reason.hidden = true; this.focus(i); }
      } },
    el("option", { value: "" }, "Why does it differ?"),
    ...this.reasons.map((r) => el("option", { value: r.code, title: r.id }, r.en)));
    reason.addEventListener("change", () => { if (reason.value) this.send(i, "differs", reason.value); });
    const row = el("div", { class: "field", role: "row", tabindex: i === this.current ? 0 : -1,
      "data-field": f.field, "data-state": set || "", "data-suggested": f.suggested || "",
      onfocus: () => { this.current = i; }, onclick: () => this.focus(i) },
    el("div", { class: "field-head" }, el("strong", {}, f.label), el("span", { class: "states" }, ...buttons)),
    el("div", { class: "field-values" },
      el("span", { class: "record" }, el("small", {}, "Record "), f.record || "— (not in the record)"),
      el("span", { class: "read" }, el("small", {}, f.field === "photo" ? "Face " : "Read "), read,
        f.confidence !== null && f.confidence !== undefined ? el("small", { class: "conf" }, ` ${pct(f.confidence)}`) : null)),
    set === "differs" && f.reason_code ? el("div", { class: "field-why" }, `Differs: ${this.reasonText(f.reason_code)}`) : null,
    f.override ? el("div", { class: "override" }, `Override of the machine's “${STATES[f.suggested] || f.suggested}”`) : null,
    reason);
    row.reason = reason;
    return row;
  }

  reasonText(code) {
    const r = this.reasons.find((x) => x.code === code);
    return r ? r.en : code;
  }

  rows() {
    return [...this.table.querySelectorAll(".field")];
  }

  focus(i) {
    const rows = this.rows();
    if (!rows.length) return;
    this.current = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach((r, j) => r.setAttribute("tabindex", j === this.current ? "0" : "-1"));
    rows[this.current].focus();
  }

  choose(i, state) {
    if (state === "differs") {
      const row = this.rows()[i];
      row.reason.hidden = false;
      row.reason.focus();
      return;
    }
    this.send(i, state, null);
  }

  send(i, state, reason) {
    this.current = i;
    this.onSet(this.doc, this.doc.fields[i].field, state, reason);
  }

  act(key) {
    if (key === "+" || key === "=") this.zoom = Math.min(8, this.zoom * 1.25);
    else if (key === "-") this.zoom = Math.max(0.25, this.zoom / 1.25);
    else if (key === "r" || key === "R") this.turn = (this.turn + 90) % 360;
    else if (key === "0") { this.zoom = 1; this.turn = this.turnedBy; }
    this.apply();
  }

  apply() {
    if (this.img) this.img.style.transform = `scale(${this.zoom}) rotate(${this.turn}deg)`;
  }

  key(ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey || ev.target.tagName === "SELECT") return;
    const k = ev.key;
    const f = this.doc.fields[this.current];
    if (k === "ArrowDown" || k === "j") this.focus(this.current + 1);
    else if (k === "ArrowUp" || k === "k") this.focus(this.current - 1);
    else if (KEYS[k.toLowerCase()]) this.choose(this.current, KEYS[k.toLowerCase()]);
    else if (k === "Enter" || k === " ") {
      if (f && !f.state && f.suggested) this.choose(this.current, f.suggested);
    } else if (["+", "=", "-", "r", "R", "0"].includes(k)) this.act(k);
    else if (k === "[" || k === "]") this.onMove(k === "]" ? 1 : -1);
    else if (k === "Escape") this.onClose();
    else return;
    ev.preventDefault();
    ev.stopPropagation(); // the console's own keys (1–6, A, C, W) stay off while verifying
  }
}

// One line per identity document in the panel: how far its fields are, and "Verify".
export function documentSummary(doc) {
  if (doc.kind === "face_still") return "Face still";
  const states = doc.fields.map((f) => f.state);
  const matched = states.filter((s) => s === "matches").length;
  const differs = states.filter((s) => s === "differs").length;
  const parts = [`${matched}/${doc.fields.length} match`];
  if (differs) parts.push(`${differs} differ${differs === 1 ? "s" : ""}`);
  const r = doc.reading;
  if (r && r.status === "done") parts.push("read by machine");
  else if (r && r.status === "pending") parts.push("reading…");
  else if (r && r.status === "unavailable") parts.push("reading unavailable");
  return parts.join(" · ");
}
