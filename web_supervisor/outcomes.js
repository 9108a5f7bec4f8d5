// Recent outcomes with filters, from GET /api/outcomes (the supervisor's branches only),
// and the CSV export of the same filter (fetched with the bearer token, then saved).

const $ = (sel) => document.querySelector(sel);

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
