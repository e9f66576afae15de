// The explorer: state lives in the URL (class, c_info, seed, grid settings), images are permalinks
// pinned to the model version on screen, and /models is polled to follow hot-loaded models.
"use strict";

const $ = (id) => document.getElementById(id);
let model = JSON.parse($("initial-model").textContent);
const state = { cls: 0, cinfo: [], seed: 0, steps: 7, range: 1, interpKind: "seed" };
let debounceTimer = null;

function fmt(v) { return Number(v).toFixed(2); }
// Values go into URLs with at most 4 decimals, so a shared link names exactly the image on screen.
function round4(v) { return Math.round(Number(v) * 10000) / 10000; }

function q(params) {
  return Object.entries(params).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
}

function imageUrl() {
  return `/image.png?${q({ class: model.class_names[state.cls], seed: state.seed,
                           c_info: state.cinfo.map(String).join(","), model: model.version })}`;
}

function gridUrl() {
  return `/grid.png?${q({ class: model.class_names[state.cls], seed: state.seed, steps: state.steps,
                          range: state.range, model: model.version })}`;
}

function interpUrl(ext) {
  const base = { class: model.class_names[state.cls], seed: state.seed, steps: 8,
                 c_info: state.cinfo.map(String).join(","), model: model.version, kind: state.interpKind };
  if (state.interpKind === "seed") base.seed_b = $("interp-seed").value || 0;
  else base.class_b = $("interp-class").value;
  return `/interpolate.${ext}?${q(base)}`;
}

function readUrl() {
  const p = new URLSearchParams(location.search);
  const names = model.class_names.map((n) => n.toLowerCase());
  const c = (p.get("class") || "").toLowerCase();
  state.cls = names.includes(c) ? names.indexOf(c) : 0;
  const ci = p.get("c") ? p.get("c").split(",").map(Number) : [];
  state.cinfo = Array.from({ length: model.info_dim }, (_, i) =>
    Number.isFinite(ci[i]) ? round4(Math.max(-1, Math.min(1, ci[i]))) : 0);
  const s = parseInt(p.get("seed") || "0", 10);
  state.seed = Number.isFinite(s) && s >= 0 ? s : 0;
  const steps = parseInt(p.get("steps") || "7", 10);
  state.steps = [5, 7, 9].includes(steps) ? steps : 7;
  const range = parseFloat(p.get("range") || "1");
  state.range = [1, 1.5, 2].includes(range) ? range : 1;
}

function writeUrl() {
  const params = q({ class: model.class_names[state.cls], c: state.cinfo.map(String).join(","),
                     seed: state.seed, steps: state.steps, range: state.range });
  history.replaceState(null, "", `?${params}`);
}

function buildControls() {
  const sel = $("class"), target = $("interp-class");
  sel.innerHTML = ""; target.innerHTML = "";
  model.class_names.forEach((n, i) => {
    sel.add(new Option(n, i));
    target.add(new Option(n, n));
  });
  target.selectedIndex = model.class_names.length > 1 ? 1 : 0;
  const box = $("sliders");
  box.innerHTML = "";
  for (let i = 0; i < model.info_dim; i++) {
    const id = `cinfo-${i}`;
    box.insertAdjacentHTML("beforeend",
      `<label for="${id}">c_info[${i}] <output id="${id}-value"></output></label>
       <input id="${id}" class="cinfo" type="range" min="-1" max="1" step="any" data-dim="${i}">`);
    $(id).addEventListener("input", (e) => {
      state.cinfo[i] = Math.round(Number(e.target.value) * 100) / 100;
      $(`${id}-value`).textContent = fmt(state.cinfo[i]);
      schedule();
    });
  }
}

function syncControls() {
  $("class").value = state.cls;
  $("seed").value = state.seed;
  $("grid-steps").value = String(state.steps);
  $("grid-range").value = String(state.range);
  state.cinfo.forEach((v, i) => {
    $(`cinfo-${i}`).value = v;
    $(`cinfo-${i}-value`).textContent = fmt(v);
  });
}

function schedule() {  // sliders move continuously: redraw once they rest for a moment
  clearTimeout(debounceTimer);
  debounceTimer = setTimeout(render, 150);
}

function render() {
  writeUrl();
  const url = imageUrl();
  $("image").src = url;
  $("download-image").href = url;
  $("params").textContent = `${model.class_names[state.cls]} · seed ${state.seed} · c_info [${state.cinfo.map(fmt).join(", ")}] · ${model.version}`;
  renderGrid();
}

let lastGrid = "";
function renderGrid() {
  const url = gridUrl();
  if (url === lastGrid) return;
  lastGrid = url;
  $("grid").src = url;
  $("download-grid").href = url;
  const cells = $("grid-cells");
  cells.innerHTML = "";
  cells.style.gridTemplateColumns = `repeat(${state.steps}, 1fr)`;
  for (let r = 0; r < state.steps; r++) {
    for (let c = 0; c < state.steps; c++) {
      const a = -state.range + (2 * state.range * r) / (state.steps - 1);
      const b = -state.range + (2 * state.range * c) / (state.steps - 1);
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "cell";
      btn.dataset.row = r; btn.dataset.col = c;
      btn.title = `c_info [${fmt(a)}, ${fmt(b)}]`;
      btn.setAttribute("aria-label", btn.title);
      btn.addEventListener("click", () => {
        // Values past ±1 are extrapolation: the sliders (and POST /generate) stay within ±1.
        state.cinfo[0] = round4(Math.max(-1, Math.min(1, a)));
        if (model.info_dim > 1) state.cinfo[1] = round4(Math.max(-1, Math.min(1, b)));
        syncControls();
        render();
      });
      cells.appendChild(btn);
    }
  }
}

function playInterp() {
  $("interp-strip").src = interpUrl("png");
  const gif = $("interp-gif");
  gif.src = interpUrl("gif");
  gif.hidden = false;
}

function showMessage(text, kind) {
  const m = $("message");
  m.textContent = text;
  m.className = `message ${kind || ""}`;
}

async function poll() {
  try {
    const r = await fetch("/models", { cache: "no-store" });
    const info = await r.json();
    if (info.loading) showMessage(`Loading model ${info.loading}… still showing ${model ? model.version : "nothing"}`, "busy");
    else if (info.last_error) showMessage(info.last_error, "error");
    const cur = info.current;
    if (cur && (!model || cur.version !== model.version)) {
      // a model with other classes or c_info dimensions needs new controls
      const rebuild = !model || JSON.stringify(cur.class_names) !== JSON.stringify(model.class_names) ||
                      cur.info_dim !== model.info_dim;
      model = cur;
      $("model-version").textContent = model.version;
      $("no-model").hidden = true;
      $("explorer").hidden = false;
      if (rebuild) { readUrl(); buildControls(); }
      syncControls();
      lastGrid = "";
      render();
      showMessage(`Now showing model ${model.version}`, "ok");
    } else if (!info.loading && !info.last_error && model) {
      if ($("message").classList.contains("busy")) showMessage("", "");
    }
  } catch (e) {
    showMessage("The service is not answering; retrying…", "error");
  }
}

function wire() {
  $("class").addEventListener("change", (e) => { state.cls = Number(e.target.value); render(); });
  $("seed").addEventListener("change", (e) => {
    const s = parseInt(e.target.value, 10);
    state.seed = Number.isFinite(s) && s >= 0 ? s : 0;
    render();
  });
  $("reroll").addEventListener("click", () => {
    state.seed = Math.floor(Math.random() * 2147483647);
    syncControls(); render();
  });
  $("grid-steps").addEventListener("change", (e) => { state.steps = Number(e.target.value); render(); });
  $("grid-range").addEventListener("change", (e) => { state.range = Number(e.target.value); render(); });
  $("copy-link").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(location.href); showMessage("Link copied", "ok"); }
    catch (e) { showMessage(location.href, ""); }
  });
  document.querySelectorAll('input[name="interp-kind"]').forEach((el) => el.addEventListener("change", (e) => {
    state.interpKind = e.target.value;
    $("to-seed-label").hidden = state.interpKind !== "seed";
    $("to-class-label").hidden = state.interpKind !== "class";
  }));
  $("play").addEventListener("click", playInterp);
  $("image").addEventListener("error", () => showMessage("That image could not be generated; retrying shortly", "error"));
  document.addEventListener("keydown", (e) => {
    if ((e.key === "r" || e.key === "R") && !["INPUT", "SELECT"].includes(document.activeElement.tagName)) {
      $("reroll").click();
    }
  });
}

wire();
if (model) { readUrl(); buildControls(); syncControls(); render(); }
setInterval(poll, 2000);
