// Admin page: the token lives in sessionStorage and goes with every API call as a bearer token.
"use strict";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("hybridgan-token") || "";
let selected = null;
const COLORS = { "Loss/D": "#2563eb", "Loss/G": "#c2410c", "Loss/GP": "#7c3aed", "Loss/info": "#15803d", "W": "#0f766e" };

function say(text, kind) { const m = $("message"); m.textContent = text; m.className = `message ${kind || ""}`; }

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { ...(opts.headers || {}), Authorization: `Bearer ${token}`,
                                                    "Content-Type": "application/json" } });
  if (r.status === 401 || r.status === 403) { showLogin(); throw new Error((await r.json()).detail); }
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).detail || r.statusText);
  return r;
}

function showLogin() { $("login-panel").hidden = false; ["new-job", "jobs-panel", "detail"].forEach((id) => ($(id).hidden = true)); }

function fmtEta(s) {
  if (s == null) return "";
  s = Math.round(s);
  return s > 3600 ? `${Math.floor(s / 3600)}h ${Math.round((s % 3600) / 60)}m` : s > 60 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`;
}

async function refresh() {
  if (!token) return;
  try {
    const { jobs } = await (await api("/train-jobs")).json();
    $("login-panel").hidden = true; $("new-job").hidden = false; $("jobs-panel").hidden = false;
    const body = $("jobs").querySelector("tbody");
    body.innerHTML = "";
    for (const j of jobs) {
      const p = j.progress || {};
      const tr = document.createElement("tr");
      tr.className = `job ${j.id === selected ? "selected" : ""}`;
      tr.dataset.id = j.id;
      tr.tabIndex = 0;
      const frac = p.total_steps ? p.step / p.total_steps : (j.status === "succeeded" ? 1 : 0);
      tr.innerHTML = `<td>${j.id}</td><td class="st st-${j.status}">${j.status}</td><td>${j.preset || ""}</td>
        <td><progress max="1" value="${frac}"></progress> ${p.step ?? 0}/${p.total_steps ?? "?"}</td>
        <td>${p.img_per_s ? p.img_per_s.toFixed(1) : ""}</td><td>${j.status === "running" ? fmtEta(p.eta_s) : ""}</td>
        <td>${j.published ? "published" : ""}</td>`;
      tr.addEventListener("click", () => { selected = j.id; showDetail(); });
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") { selected = j.id; showDetail(); } });
      body.appendChild(tr);
    }
    if (selected) await showDetail();
  } catch (e) { say(e.message, "error"); }
}

async function authedImage(img, url) {
  const r = await api(url);
  const blob = await r.blob();
  if (img.dataset.url) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob); img.dataset.url = url;
}

async function showDetail() {
  const job = await (await api(`/train-jobs/${selected}`)).json();
  $("detail").hidden = false;
  $("detail-title").textContent = `${job.id} · ${job.status}`;
  $("detail-error").textContent = job.error || "";
  $("cancel-job").hidden = ["succeeded", "failed", "cancelled"].includes(job.status);
  if (job.latest_sample && $("latest-sample").dataset.url !== job.latest_sample) await authedImage($("latest-sample"), job.latest_sample);
  const list = $("checkpoints");
  list.innerHTML = "";
  for (const c of job.checkpoints.slice().reverse()) {
    const li = document.createElement("li");
    li.innerHTML = `<code>${c}</code> <button type="button" class="promote" data-ckpt="${c}">Promote to serving</button>`;
    li.querySelector("button").addEventListener("click", () => promote(c));
    list.appendChild(li);
  }
  showEvaluation(job.evaluation);
  const { rows } = await (await api(`/train-jobs/${selected}/metrics?max_points=400`)).json();
  drawCurves(rows);
}

function showEvaluation(r) {
  $("evaluation").hidden = !r;
  if (!r) return;
  const g = r.generated, f = r.floor, n = (v, d = 3) => (v == null ? "" : Number(v).toFixed(d));
  const rows = [["FD (own classifier features)", g.fd, f.fd, 2], ["KID", g.kid, f.kid, 4],
    ["class fidelity", g.class_fidelity.overall, f.class_fidelity.overall], ["precision", g.precision, f.precision],
    ["recall", g.recall, f.recall], ["coverage", g.coverage, f.coverage],
    ["memorisation ratio", g.memorisation.ratio, null, 2]];
  const dims = Object.entries(r.c_info.dims).map(([d, v]) => [`${d} steers ${v.steers} (Spearman)`, v.spearman[v.steers], null, 2]);
  $("eval-table").innerHTML = "<tr><th>metric</th><th>generated</th><th>real floor</th></tr>" +
    rows.concat(dims).map(([k, a, b, d]) => `<tr><td>${k}</td><td>${n(a, d)}</td><td>${n(b, d)}</td></tr>`).join("");
}

function drawCurves(rows) {
  const cv = $("curves"), ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  const legend = $("legend"); legend.innerHTML = "";
  if (rows.length < 2) { ctx.fillText("waiting for the first logged steps…", 20, 30); return; }
  const keys = Object.keys(COLORS).filter((k) => rows[0][k] !== undefined);
  const xs = rows.map((r) => r.step);
  const vals = keys.flatMap((k) => rows.map((r) => r[k]));
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (hi === lo) hi = lo + 1;
  const pad = 30, W = cv.width - 2 * pad, H = cv.height - 2 * pad;
  const X = (s) => pad + ((s - xs[0]) / (xs[xs.length - 1] - xs[0] || 1)) * W;
  const Y = (v) => pad + H - ((v - lo) / (hi - lo)) * H;
  ctx.strokeStyle = "#ddd"; ctx.beginPath(); ctx.moveTo(pad, Y(0)); ctx.lineTo(pad + W, Y(0)); ctx.stroke();
  ctx.fillStyle = "#666"; ctx.font = "11px system-ui";
  ctx.fillText(hi.toFixed(2), 2, pad); ctx.fillText(lo.toFixed(2), 2, pad + H);
  ctx.fillText(`step ${xs[xs.length - 1]}`, pad + W - 60, cv.height - 8);
  for (const k of keys) {
    ctx.strokeStyle = COLORS[k]; ctx.lineWidth = 1.5; ctx.beginPath();
    rows.forEach((r, i) => (i ? ctx.lineTo(X(r.step), Y(r[k])) : ctx.moveTo(X(r.step), Y(r[k]))));
    ctx.stroke();
    legend.insertAdjacentHTML("beforeend", `<span><i style="background:${COLORS[k]}"></i>${k}</span>`);
  }
}

async function promote(ckpt) {
  try {
    const r = await (await api(`/train-jobs/${selected}/promote`, { method: "POST", body: JSON.stringify({ checkpoint: ckpt }) })).json();
    say(`Now serving ${r.serving}`, "ok");
  } catch (e) { say(e.message, "error"); }
}

async function loadDatasets() {
  const { datasets } = await (await api("/datasets")).json();
  const sel = $("job-dataset"); sel.innerHTML = "";
  datasets.forEach((d) => sel.add(new Option(d, d)));
}

$("login").addEventListener("click", async () => {
  token = $("token").value.trim();
  sessionStorage.setItem("hybridgan-token", token);
  await refresh(); await loadDatasets().catch(() => {});
});
$("token").addEventListener("keydown", (e) => { if (e.key === "Enter") $("login").click(); });
$("submit-job").addEventListener("click", async () => {
  try {
    const body = { dataset: $("job-dataset").value, preset: $("job-preset").value,
                   epochs: Number($("job-epochs").value), publish: $("job-publish").checked,
                   evaluate: $("job-evaluate").checked };
    const r = await (await api("/train-jobs", { method: "POST", body: JSON.stringify(body) })).json();
    selected = r.id; say(`Queued ${r.id}`, "ok"); refresh();
  } catch (e) { say(e.message, "error"); }
});
$("cancel-job").addEventListener("click", async () => {
  try { await api(`/train-jobs/${selected}`, { method: "DELETE" }); say(`Cancelling ${selected}`, "busy"); refresh(); }
  catch (e) { say(e.message, "error"); }
});
if (token) { refresh(); loadDatasets().catch(() => {}); }
setInterval(refresh, 3000);
