// Recent outcomes with filters, from GET /api/outcomes (the supervisor's branches only),
// and the CSV export of the same filter (fetched with the bearer token, then saved).

const $ = (sel) => document.querySelector(sel);

const BANDS = { likely_same: "face likely same", uncertain: "face uncertain", likely_different: "face likely different" };

// What the officer compared (GET /api/outcomes: the summary, no personal values):
// mismatches and overrides stand out, each with its document, field and reason.
function checksCell(v) {
  const td = document.createElement("td");
  td.className = "checks";
  if (!v) {
    td.textContent = "—";
    return td;
  }
  const parts = [`${v.matches}/${v.fields} match`];
  if (v.member_source && v.member_source !== "import") parts.push(`record: ${v.member_source.replaceAll("_", " ")}`);
  if (v.face_band) parts.push(`${BANDS[v.face_band]} (${Number(v.face_similarity).toFixed(2)})`);
  td.append(parts.join(" · "));
  const flag = (cls, text) => {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    td.append(document.createElement("br"), span);
  };
  if (v.mismatches && v.mismatches.length) flag("mismatch", `differs: ${v.mismatches.join(", ").replaceAll("_", " ")}`);
  if (v.overridden && v.overridden.length) flag("override", `overrides: ${v.overridden.join(", ").replaceAll("_", " ")}`);
  if (v.unchecked) flag("unchecked", `${v.unchecked} not checked`);
  td.dataset.mismatches = String((v.mismatches || []).length);
  td.dataset.overrides = String(v.overrides || 0);
  return td;
}

export class Outcomes {
  constructor(api, status) {
    this.api = api; // /console/claim.js Api: bearer token, refresh, typed errors
    this.status = status;
    $("#outcome-filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.load();
    });
    $("#export-csv").addEventListener("click", (ev) => {
      ev.preventDefault();
      this.exportCsv();
    });
  }

  query(format) {
    const form = new FormData($("#outcome-filters"));
    const params = new URLSearchParams();
    for (const key of ["branch", "cso", "decision"]) if (form.get(key)) params.set(key, form.get(key));
    if (form.get("since")) params.set("since", `${form.get("since")}T00:00:00Z`);
    if (form.get("until")) params.set("until", `${form.get("until")}T23:59:59Z`);
    params.set("format", format);
    if (format === "json") params.set("limit", "50");
    return `/api/outcomes?${params}`;
  }

  async load() {
    const body = $("#outcomes tbody");
    try {
      const rows = await this.api.json(this.query("json"));
      rows.sort((a, b) => (a.decided_at < b.decided_at ? 1 : -1));
      body.replaceChildren(...rows.map((o) => {
        const tr = document.createElement("tr");
        tr.dataset.decision = o.decision;
        for (const text of [
          new Date(o.decided_at).toLocaleString(), o.branch, o.decided_by, o.claim_id,
          o.decision.replaceAll("_", " "), o.reason_codes.join(", "),
        ]) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.append(td);
        }
        tr.append(checksCell(o.verification));
        return tr;
      }));
      $("#outcomes-note").textContent = rows.length ? `${rows.length} shown (newest first, at most 50).` : "No outcome matches.";
    } catch (e) {
      $("#outcomes-note").textContent = `Could not load outcomes: ${e.message}`;
    }
  }

  async exportCsv() {
    try {
      const res = await this.api.request(this.query("csv"));
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = "outcomes.csv";
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      this.status("Outcomes exported (CSV, NIKs masked).");
    } catch (e) {
      this.status(`Export refused: ${e.message}`);
    }
  }
}
