// impasto studio: the page. Plain ES module, no framework; talks only to the documented REST API (/api/...).
import { LossChart } from "./chart.js";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const FINAL = new Set(["done", "failed", "cancelled"]);
const ACTIVE = new Set(["queued", "running", "interrupted"]);
const TAB_OF = { stylize: "stylize", paint: "paint", video: "video", generate: "generate", interpolate: "generate", compare: "compare" };
const ICON = { stylize: "✦", paint: "✎", video: "▶", generate: "✸", interpolate: "⇄", compare: "≋" };

// ------------------------------------------------------------------------------------------------------------
// token and API
// ------------------------------------------------------------------------------------------------------------

const TOKEN_KEY = "impasto-token";
{
  const url = new URL(location.href);
  const t = url.searchParams.get("token");
  if (t) {
    sessionStorage.setItem(TOKEN_KEY, t);
    url.searchParams.delete("token"); // keep it out of the address bar (and out of bookmarks and screenshots)
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}
const token = () => sessionStorage.getItem(TOKEN_KEY);

/** A same-origin URL with ?token= added when there is a token (for <img>, <video>, <a download>, EventSource). */
function withToken(url) {
  if (!url) return url;
  const u = new URL(url, location.href);
  const t = token();
  if (t) u.searchParams.set("token", t);
  return u.pathname + u.search;
}

/** One clear sentence: first letter up, a full stop at the end. */
function sentence(text) {
  let s = String(text ?? "").trim().replace(/\s+/g, " ");
  if (!s) return "Something went wrong.";
  s = s[0].toUpperCase() + s.slice(1);
  return /[.!?]$/.test(s) ? s : s + ".";
}

class ApiError extends Error {}

async function api(path, { method = "GET", json, body } = {}) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body });
  } catch {
    throw new ApiError("The impasto server cannot be reached; is impasto serve still running?");
  }
  if (res.status === 204) return null;
  let data = null;
  if ((res.headers.get("content-type") || "").includes("json")) {
    try { data = await res.json(); } catch { data = null; }
  }
  if (!res.ok) {
    let msg = data && typeof data.error === "string" ? data.error : null;
    if (!msg && data && typeof data.detail === "string") msg = data.detail;
    if (!msg && res.status === 401) msg = "this studio needs its access token: open the address impasto serve printed (it ends in ?token=…)";
    if (!msg && res.status === 413) msg = "the file is too large for this server";
    if (!msg) msg = `the server answered ${res.status} ${res.statusText || ""}`.trim();
    throw new ApiError(sentence(msg));
  }
  return data;
}

// ------------------------------------------------------------------------------------------------------------
// errors and small helpers
// ------------------------------------------------------------------------------------------------------------

function showError(message) {
  $("#error-text").textContent = sentence(message);
  $("#error").hidden = false;
}
function clearError() { $("#error").hidden = true; }
$("#error-close").addEventListener("click", clearError);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function fmt(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-2)) return v.toExponential(2);
  return a >= 100 ? v.toFixed(0) : String(Number(v.toPrecision(3)));
}
function seconds(s) {
  if (!Number.isFinite(s)) return "";
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 90) return `${s.toFixed(0)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
function ago(iso) {
  if (!iso) return "";
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return "";
  const s = (Date.now() - t) / 1000;
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}
function duration(job) {
  const a = Date.parse(job.started), b = Date.parse(job.finished);
  return Number.isFinite(a) && Number.isFinite(b) ? (b - a) / 1000 : NaN;
}
/** The params without null/undefined/"" values: the server fills its defaults for what is left out. */
function clean(params) {
  return Object.fromEntries(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ""));
}
function numberOf(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}
function setStatus(id, text, cls = "") {
  const s = $(id);
  s.textContent = text;
  s.className = `status ${cls}`;
}
function setProgress(id, fraction) {
  const p = $(id);
  p.hidden = fraction === null;
  if (fraction === null) return;
  p.classList.toggle("indeterminate", fraction === undefined);
  p.querySelector(".bar").style.width = fraction === undefined ? "" : `${Math.max(0, Math.min(1, fraction)) * 100}%`;
}
function fileName(job) {
  const main = (job.outputs || [])[0];
  const ext = main && main.name.includes(".") ? main.name.split(".").pop() : "png";
  return `impasto-${job.kind}-${job.id}.${ext}`;
}
function setDownload(id, job) {
  const a = $(id);
  if (job && job.result_url) {
    a.href = withToken(job.result_url);
    a.download = fileName(job);
    a.hidden = false;
  } else {
    a.hidden = true;
    a.removeAttribute("href");
  }
}
/** Put an image into a stage; it replaces what is there only once loaded (no flash between previews). */
function showImage(stage, url, alt) {
  return new Promise((resolve) => {
    const img = new Image();
    img.alt = alt;
    img.onload = () => {
      let cur = stage.querySelector("img.shown");
      if (!cur) {
        stage.replaceChildren();
        cur = el("img", { class: "shown", alt });
        stage.append(cur);
      }
      cur.src = img.src;
      cur.alt = alt;
      cur.classList.toggle("small", img.naturalWidth < 128 && img.naturalHeight < 128);
      resolve(true);
    };
    img.onerror = () => resolve(false);
    img.src = withToken(url);
  });
}
function showVideo(stage, url) {
  stage.replaceChildren(el("video", { src: withToken(url), controls: true, loop: true, autoplay: true, muted: true, playsinline: true }));
}
function showPlaceholder(stage, text) {
  stage.replaceChildren(el("div", { class: "placeholder", text }));
}
function isVideo(name) { return /\.(mp4|webm|mov|m4v)$/i.test(name || ""); }

// ------------------------------------------------------------------------------------------------------------
// tabs
// ------------------------------------------------------------------------------------------------------------

const tabs = $$(".tabs [role=tab]");
function selectTab(name, focus = false) {
  if (!tabs.some((t) => t.dataset.tab === name)) name = "stylize";
  for (const t of tabs) {
    const on = t.dataset.tab === name;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    if (on && focus) t.focus();
    $(`#panel-${t.dataset.tab}`).hidden = !on;
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (name === "paint") chart.schedule();
}
for (const t of tabs) {
  t.addEventListener("click", () => selectTab(t.dataset.tab));
  t.addEventListener("keydown", (e) => {
    const i = tabs.indexOf(t);
    const j = e.key === "ArrowRight" ? i + 1 : e.key === "ArrowLeft" ? i - 1 : null;
    if (j !== null) selectTab(tabs[(j + tabs.length) % tabs.length].dataset.tab, true);
  });
}
window.addEventListener("hashchange", () => selectTab(location.hash.slice(1)));

// ------------------------------------------------------------------------------------------------------------
// uploads: single slots and style lists with weights
// ------------------------------------------------------------------------------------------------------------

async function upload(file, want) {
  const fd = new FormData();
  fd.append("file", file, file.name || "upload");
  const up = await api("/api/uploads", { method: "POST", body: fd });
  if (want && up.kind !== want) {
    throw new ApiError(`${file.name || "That file"} is a${up.kind === "image" ? "n" : ""} ${up.kind}; this slot takes a${want === "image" ? "n" : ""} ${want}.`);
  }
  return up;
}
function thumbUrl(up) { return withToken(`/api/uploads/${up.id}/thumbnail`); }

/** A drop zone holding one upload: slot.value is the upload record (or null). */
function singleSlot(inputId, want, onChange) {
  const input = $(`#${inputId}`);
  const drop = input.closest(".drop");
  const slot = { value: null, name: "" };
  dragStyle(drop);
  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    clearError();
    drop.classList.add("busy");
    try {
      const up = await upload(file, want);
      slot.value = up;
      slot.name = file.name;
      drop.classList.add("filled");
      drop.querySelector(".drop-empty").hidden = true;
      drop.querySelector(".picked")?.remove();
      const size = up.width && up.height ? `${up.width} × ${up.height}` : "";
      drop.append(el("div", { class: "picked" },
        el("img", { src: thumbUrl(up), alt: "" }),
        el("div", { class: "meta" }, el("b", { text: file.name }), el("br"), `${up.kind}${size ? " · " + size : ""}`)));
      drop.title = "Click or drop a file to replace it";
      onChange?.(slot);
    } catch (err) {
      showError(err.message);
    } finally {
      drop.classList.remove("busy");
      input.value = "";
    }
  });
  return slot;
}

/** A drop zone adding style images to a list, each with a weight slider. list.items: [{up, name, weight}]. */
function styleList(inputId, listId) {
  const input = $(`#${inputId}`);
  const drop = input.closest(".drop");
  const box = $(`#${listId}`);
  const list = { items: [] };
  dragStyle(drop);
  const render = () => {
    box.replaceChildren(...list.items.map((item, i) => {
      const out = el("output", { text: item.weight.toFixed(2) });
      const range = el("input", {
        type: "range", min: "0", max: "1", step: "0.05", value: String(item.weight), "aria-label": `weight of ${item.name}`,
        oninput: (e) => { item.weight = Number(e.target.value); out.textContent = item.weight.toFixed(2); },
      });
      return el("div", { class: "weight" },
        el("img", { src: thumbUrl(item.up), alt: "" }),
        el("span", { class: "label", title: item.name, text: item.name }),
        range, out,
        el("button", { type: "button", title: "Remove", "aria-label": `remove ${item.name}`, text: "×", onclick: () => { list.items.splice(i, 1); render(); } }));
    }));
  };
  input.addEventListener("change", async () => {
    const files = [...input.files];
    input.value = "";
    if (!files.length) return;
    clearError();
    drop.classList.add("busy");
    try {
      for (const f of files) list.items.push({ up: await upload(f, "image"), name: f.name, weight: 1 });
    } catch (err) {
      showError(err.message);
    } finally {
      drop.classList.remove("busy");
      render();
    }
  });
  list.ids = () => list.items.map((i) => i.up.id);
  list.weights = () => (list.items.length > 1 ? list.items.map((i) => i.weight) : null);
  return list;
}
function dragStyle(drop) {
  drop.addEventListener("dragenter", () => drop.classList.add("over"));
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", () => drop.classList.remove("over"));
}
for (const out of $$("output[for]")) {
  const input = $(`#${out.htmlFor}`);
  const show = () => { out.textContent = Number(input.value).toFixed(2); };
  input.addEventListener("input", show);
  show();
}

// ------------------------------------------------------------------------------------------------------------
// job watching: Server-Sent Events for the job a tab shows
// ------------------------------------------------------------------------------------------------------------

/** Follow one job's events; handlers: progress(data), preview(data), state(job), error(message). */
function watch(id, h) {
  const es = new EventSource(withToken(`/api/jobs/${id}/events`));
  let closed = false, failures = 0;
  const close = () => { closed = true; es.close(); };
  const parse = (e) => { try { return JSON.parse(e.data); } catch { return null; } };
  es.addEventListener("progress", (e) => { const d = parse(e); if (d) h.progress?.(d); });
  es.addEventListener("preview", (e) => { const d = parse(e); if (d) h.preview?.(d); });
  es.addEventListener("state", (e) => {
    const job = parse(e);
    if (!job) return;
    failures = 0;
    h.state?.(job);
    jobs.upsert(job);
    if (FINAL.has(job.state)) close();
  });
  es.onerror = async () => {
    if (closed) return;
    // the stream ended or broke: the record says whether the job is over (else EventSource reconnects)
    try {
      const job = await api(`/api/jobs/${id}`);
      jobs.upsert(job);
      if (FINAL.has(job.state) || ++failures > 5) { close(); h.state?.(job); }
    } catch (err) {
      close();
      h.error?.(err.message);
    }
  };
  return { id, close };
}

/** One tab's view of "its" job: shows a job, follows it while it runs. */
class JobView {
  constructor(handlers) { this.h = handlers; this.job = null; this.watcher = null; }
  open(job) {
    this.watcher?.close();
    this.watcher = null;
    this.job = job;
    this.h.reset?.(job);
    this.h.state(job);
    if (!FINAL.has(job.state)) {
      this.watcher = watch(job.id, {
        progress: (d) => this.job?.id === job.id && this.h.progress?.(d, this.job),
        preview: (d) => this.job?.id === job.id && this.h.preview?.(d, this.job),
        state: (j) => { if (this.job?.id === j.id) { this.job = j; this.h.state(j); } },
        error: (m) => { showError(m); },
      });
    }
  }
  get active() { return this.job && !FINAL.has(this.job.state); }
}

async function submit(kind, params, view, button) {
  clearError();
  button.disabled = true;
  try {
    const job = await api("/api/jobs", { method: "POST", json: { kind, params: clean(params) } });
    jobs.upsert(job);
    view.open(job);
    return job;
  } catch (err) {
    showError(err.message);
    return null;
  } finally {
    button.disabled = false;
  }
}
async function cancel(view) {
  if (!view.job) return;
  try {
    const job = await api(`/api/jobs/${view.job.id}`, { method: "DELETE" });
    if (job) { jobs.upsert(job); if (view.job?.id === job.id) { view.job = job; view.h.state(job); } }
  } catch (err) {
    showError(err.message);
  }
}
/** The common part of showing a job's state in a tab's status line; returns true when it failed. */
function stateLine(statusId, job, what) {
  if (job.state === "failed") {
    setStatus(statusId, "failed", "bad");
    showError(job.error || `the ${what} failed`);
    return true;
  }
  if (job.state === "queued") setStatus(statusId, "queued…");
  if (job.state === "interrupted") setStatus(statusId, "interrupted; resumes when the server restarts");
  return false;
}

// ------------------------------------------------------------------------------------------------------------
// models: what is installed, shown honestly
// ------------------------------------------------------------------------------------------------------------

let models = { capabilities: [], presets: [], weight_sets: [] };
const cap = (kind) => models.capabilities.find((c) => c.kind === kind) || { kind, available: true };

function installBlock(command) {
  const copy = el("button", { type: "button", text: "copy" });
  copy.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(command); copy.textContent = "copied"; } catch { copy.textContent = "select it"; }
  });
  return el("span", { class: "cmd" }, el("code", { text: command }), copy);
}

function applyCapabilities() {
  for (const panel of $$(".panel[data-cap]")) {
    const c = cap(panel.dataset.cap);
    const off = panel.querySelector(".cap-off");
    const tab = $(`#tab-${panel.dataset.cap}`);
    tab.classList.toggle("off", !c.available);
    if (!c.available) {
      off.replaceChildren(
        el("strong", { text: sentence(c.note || `${tab.textContent} is not installed`) }),
        c.install ? el("span", { text: "Install it with " }) : null, c.install ? installBlock(c.install) : null,
        el("span", { text: c.install ? " then reload this page." : "" }));
      off.hidden = false;
      for (const f of $$(".cols input, .cols select, .cols button, .cols fieldset", panel)) f.disabled = true;
    }
  }
  // the linear method, in Stylise and Video
  const st = cap("stylize");
  const lin = methodInfo(st, "linear");
  for (const id of ["st", "vd"]) {
    const radio = $(`#${id}-linear-label input`);
    radio.disabled = !lin.available;
    $(`#${id}-linear-label`).title = lin.available ? "Li et al.'s learned linear transform" : `not installed: ${lin.install}`;
  }
  const note = $("#st-linear-install");
  if (!lin.available && lin.install) {
    note.replaceChildren(el("span", { text: "Linear is not installed: " }), installBlock(lin.install));
    note.hidden = false;
  }
  // paint: the network in use and the ones that can be chosen
  const pc = cap("paint");
  if (pc.note) { $("#pt-note").hidden = false; $("#pt-note").replaceChildren(sentence(pc.note), pc.install ? el("br") : null, pc.install ? installBlock(pc.install) : null); }
  const sel = $("#pt-model");
  if (pc.default_network) sel.options[0].textContent = `automatic (${pc.default_network})`;
  const usable = new Set(pc.networks || []);
  const names = [...usable];
  for (const ws of models.weight_sets || []) {
    if (/^(vgg|nin)/.test(ws.name) && !names.includes(ws.name)) names.push(ws.name);
  }
  for (const n of names) {
    if (n === pc.default_network) continue;
    const ws = (models.weight_sets || []).find((w) => w.name === n);
    const ok = usable.size ? usable.has(n) : !!ws?.installed;
    sel.append(el("option", { value: n, disabled: !ok, text: ok ? n : `${n} (not installed)` }));
  }
  const vc = cap("video");
  if (vc.stabilize === false) {
    $("#vd-stabilize").disabled = true;
    $("#vd-stabilize").parentElement.title = vc.note || "needs OpenCV";
  }
}
function methodInfo(c, name) {
  const m = c.methods && c.methods[name];
  if (m === undefined) {
    const ws = (models.weight_sets || []).find((w) => w.name === "linear.r41");
    return { available: !!ws?.installed, install: "impasto models download linear.r41" };
  }
  if (typeof m === "boolean") return { available: m, install: "impasto models download linear.r41" };
  return { available: !!m.available, install: m.install || "impasto models download linear.r41" };
}

// ------------------------------------------------------------------------------------------------------------
// Stylise
// ------------------------------------------------------------------------------------------------------------

const stContent = singleSlot("st-content", "image");
const stStyles = styleList("st-styles", "st-style-list");
const stPresets = new Map(); // index -> weight

function buildGallery() {
  const presets = models.presets?.length ? models.presets : Array.from({ length: 26 }, (_, i) => ({ index: i }));
  const gallery = $("#st-gallery");
  gallery.replaceChildren(...presets.map((p) => {
    const n = p.index;
    const img = el("img", { src: withToken(p.thumbnail_url || `/api/presets/${n}/thumbnail`), alt: "", loading: "lazy" });
    img.onerror = () => img.remove();
    const b = el("button", { type: "button", "aria-pressed": "false", "data-preset": String(n), title: p.name ? `${n}: ${p.name}` : `preset ${n}`, "aria-label": `preset ${n}` }, img, el("span", { text: String(n) }));
    b.addEventListener("click", () => {
      if (stPresets.has(n)) stPresets.delete(n); else stPresets.set(n, 1);
      b.setAttribute("aria-pressed", String(stPresets.has(n)));
      renderPresetWeights();
    });
    return b;
  }));
  // video: the same presets in a select
  const vsel = $("#vd-preset");
  for (const p of presets) vsel.append(el("option", { value: String(p.index), text: p.name ? `${p.index}: ${p.name}` : `preset ${p.index}` }));
}
function renderPresetWeights() {
  const box = $("#st-preset-weights");
  if (stPresets.size < 2) { box.replaceChildren(); return; }
  box.replaceChildren(...[...stPresets].map(([n, w]) => {
    const out = el("output", { text: w.toFixed(2) });
    return el("div", { class: "weight" },
      el("img", { src: withToken(`/api/presets/${n}/thumbnail`), alt: "" }),
      el("span", { class: "label", text: `preset ${n}` }),
      el("input", { type: "range", min: "0", max: "1", step: "0.05", value: String(w), "aria-label": `weight of preset ${n}`,
        oninput: (e) => { stPresets.set(n, Number(e.target.value)); out.textContent = Number(e.target.value).toFixed(2); } }),
      out);
  }));
}
function presetString() {
  if (!stPresets.size) return null;
  if (stPresets.size === 1) return String([...stPresets.keys()][0]);
  return [...stPresets].map(([n, w]) => `${n}:${w}`).join(",");
}
const stSource = () => $("input[name=st-source]:checked").value;
function syncStSource() {
  const linear = $("input[name=st-method]:checked").value === "linear";
  const presetRadio = $("input[name=st-source][value=preset]");
  presetRadio.disabled = linear; // presets belong to Magenta's multi-style network
  if (linear && stSource() === "preset") $("input[name=st-source][value=images]").checked = true;
  $("#st-presets-box").hidden = stSource() !== "preset";
  $("#st-images-box").hidden = stSource() !== "images";
}
$$("input[name=st-source], input[name=st-method]").forEach((r) => r.addEventListener("change", syncStSource));

let stSubmitted = 0;
const stView = new JobView({
  reset: () => setDownload("#st-download", null),
  state: async (job) => {
    if (stateLine("#st-status", job, "stylisation")) return;
    if (job.state === "running") setStatus("#st-status", "stylising…");
    if (job.state === "done" || (job.state === "cancelled" && job.result_url)) {
      const url = `${job.result_url}${job.result_url.includes("?") ? "&" : "?"}v=${job.id}`;
      if (await showImage($("#st-stage"), url, "stylised photo")) {
        const took = stSubmitted ? (performance.now() - stSubmitted) / 1000 : NaN;
        const server = duration(job);
        stSubmitted = 0;
        setStatus("#st-status", `done${Number.isFinite(server) ? ` in ${seconds(server)}` : ""}${Number.isFinite(took) ? ` · on screen after ${seconds(took)}` : ""}`, "ok");
      }
      setDownload("#st-download", job);
    }
    if (job.state === "cancelled" && !job.result_url) setStatus("#st-status", "cancelled");
  },
});
$("#st-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearError();
  if (!stContent.value) return showError("Choose a photo to stylise first.");
  const method = $("input[name=st-method]:checked").value;
  let styles = [], style_weights = null, preset = null;
  if (stSource() === "preset") {
    preset = presetString();
    if (!preset) return showError("Pick a preset from the gallery, or switch to your own style images.");
    if ([...stPresets.values()].every((w) => w === 0)) return showError("At least one preset needs a weight above zero.");
  } else {
    styles = stStyles.ids();
    style_weights = stStyles.weights();
    if (!styles.length) return showError("Add a style image, or switch to the presets.");
    if (style_weights && style_weights.every((w) => w === 0)) return showError("At least one style image needs a weight above zero.");
  }
  const size = $("#st-size").value;
  setStatus("#st-status", "sending…");
  stSubmitted = performance.now();
  await submit("stylize", {
    content: stContent.value.id, styles, style_weights, preset, method,
    strength: Number($("#st-strength").value), preserve_color: $("#st-preserve").checked, size: size ? Number(size) : null,
  }, stView, $("#st-go"));
});

// ------------------------------------------------------------------------------------------------------------
// Paint
// ------------------------------------------------------------------------------------------------------------

const ptContent = singleSlot("pt-content", "image");
const ptStyles = styleList("pt-styles", "pt-style-list");
const chart = new LossChart($("#pt-chart"));
$("#pt-opt").addEventListener("change", () => { $("#pt-lr").disabled = $("#pt-opt").value !== "adam"; });
let ptLastPreview = null;

function paintProgress(d) {
  if (!d || !d.total) return;
  setProgress("#pt-progress", d.step / d.total);
  chart.add(d.step, d.losses, d.total);
  const rate = d.elapsed > 0 ? d.step / d.elapsed : NaN;
  const total = d.losses && (d.losses.total ?? Object.values(d.losses).reduce((a, b) => a + b, 0));
  setStatus("#pt-status", `iteration ${d.step} / ${d.total}${Number.isFinite(rate) && d.step ? ` · ${rate.toFixed(1)} it/s` : ""}${total ? ` · loss ${fmt(total)}` : ""}`);
}
const ptView = new JobView({
  reset: (job) => {
    chart.reset(job.params?.num_iterations || 0);
    ptLastPreview = null;
    setDownload("#pt-download", null);
    showPlaceholder($("#pt-stage"), "Waiting for the first preview…");
  },
  progress: (d) => paintProgress(d),
  preview: async (d) => {
    ptLastPreview = d.url;
    await showImage($("#pt-stage"), d.url, `preview at iteration ${d.step}`);
  },
  state: async (job) => {
    const active = !FINAL.has(job.state);
    $("#pt-cancel").disabled = !active;
    if (job.progress) paintProgress(job.progress);
    if (stateLine("#pt-status", job, "painting")) { setProgress("#pt-progress", null); return; }
    if (job.state === "running" && !job.progress) { setStatus("#pt-status", "loading the network…"); setProgress("#pt-progress", undefined); }
    if (job.state === "running" && !ptLastPreview && (job.preview_url || job.progress?.preview_step !== undefined)) {
      ptLastPreview = job.preview_url || `/api/jobs/${job.id}/preview?step=${job.progress.preview_step}`;
      showImage($("#pt-stage"), ptLastPreview, "latest preview");
    }
    if (FINAL.has(job.state)) {
      setProgress("#pt-progress", null);
      if (job.result_url) {
        await showImage($("#pt-stage"), `${job.result_url}?v=${job.id}-${job.state}`, job.state === "done" ? "painting" : "painting so far");
        setDownload("#pt-download", job);
      }
      const step = job.progress?.step;
      if (job.state === "done") setStatus("#pt-status", `done${Number.isFinite(duration(job)) ? ` in ${seconds(duration(job))}` : ""}`, "ok");
      if (job.state === "cancelled") {
        setStatus("#pt-status", `cancelled${step !== undefined ? ` at iteration ${step}` : ""}${job.result_url ? "; the latest image is kept" : ""}`);
      }
    }
  },
});
$("#pt-cancel").addEventListener("click", () => cancel(ptView));
$("#pt-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearError();
  if (!ptContent.value) return showError("Choose a content photo to paint first.");
  if (!ptStyles.items.length) return showError("Add at least one style image to paint with.");
  const opt = $("#pt-opt").value;
  await submit("paint", {
    content: ptContent.value.id, styles: ptStyles.ids(), style_blend_weights: ptStyles.weights(),
    image_size: numberOf("#pt-size"), num_iterations: numberOf("#pt-iters"),
    content_weight: numberOf("#pt-cw"), style_weight: numberOf("#pt-sw"), tv_weight: numberOf("#pt-tv"),
    optimizer: opt, learning_rate: opt === "adam" ? numberOf("#pt-lr") : null,
    model: $("#pt-model").value || null, scales: $("#pt-scales").checked ? "auto" : null, fast: $("#pt-fast").checked,
    seed: numberOf("#pt-seed"), preview_every: numberOf("#pt-every"),
  }, ptView, $("#pt-go"));
});

// ------------------------------------------------------------------------------------------------------------
// Video
// ------------------------------------------------------------------------------------------------------------

const vdContent = singleSlot("vd-content", "video");
const vdStyles = styleList("vd-styles", "vd-style-list");
const vdView = new JobView({
  reset: () => { setDownload("#vd-download", null); showPlaceholder($("#vd-stage"), "Starting…"); },
  progress: (d) => {
    if (!d.total) return;
    setProgress("#vd-progress", d.step / d.total);
    const fps = d.fps ?? (d.elapsed > 0 ? d.step / d.elapsed : NaN);
    const left = Number.isFinite(fps) && fps > 0 ? (d.total - d.step) / fps : NaN;
    setStatus("#vd-status", `frame ${d.step} / ${d.total}${Number.isFinite(fps) ? ` · ${fps.toFixed(1)} frames/s` : ""}${Number.isFinite(left) && d.step < d.total ? ` · about ${seconds(left)} left` : ""}`);
  },
  preview: (d) => showImage($("#vd-stage"), d.url, `frame ${d.step}`),
  state: (job) => {
    $("#vd-cancel").disabled = FINAL.has(job.state);
    if (stateLine("#vd-status", job, "video")) { setProgress("#vd-progress", null); return; }
    if (job.state === "running" && !job.progress) { setStatus("#vd-status", "reading the video…"); setProgress("#vd-progress", undefined); }
    if (FINAL.has(job.state)) {
      setProgress("#vd-progress", null);
      const main = (job.outputs || [])[0];
      if (job.result_url) {
        if (isVideo(main?.name)) showVideo($("#vd-stage"), job.result_url);
        else showImage($("#vd-stage"), job.result_url, "stylised video");
        setDownload("#vd-download", job);
      }
      const pr = job.progress || {};
      const fps = pr.fps ?? (pr.elapsed > 0 ? pr.step / pr.elapsed : NaN);
      const frames = pr.total ? ` · ${pr.total} frames${Number.isFinite(fps) ? `, ${fps.toFixed(1)} frames/s` : ""}` : "";
      if (job.state === "done") setStatus("#vd-status", `done${Number.isFinite(duration(job)) ? ` in ${seconds(duration(job))}` : ""}${frames}`, "ok");
      if (job.state === "cancelled") setStatus("#vd-status", job.result_url ? "cancelled; the frames made so far are kept" : "cancelled");
    }
  },
});
$("#vd-cancel").addEventListener("click", () => cancel(vdView));
$("#vd-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearError();
  if (!vdContent.value) return showError("Choose a video to stylise first.");
  const preset = $("#vd-preset").value || null;
  const method = $("input[name=vd-method]:checked").value;
  if (!preset && !vdStyles.items.length) return showError("Pick a preset or add a style image for the video.");
  if (preset && method === "linear") return showError("Presets belong to Magenta's multi-style network; choose Magenta or use a style image.");
  const size = $("#vd-size").value;
  await submit("video", {
    content: vdContent.value.id, styles: preset ? [] : vdStyles.ids(), style_weights: preset ? null : vdStyles.weights(),
    preset, method, size: size ? Number(size) : null, stabilize: $("#vd-stabilize").checked,
  }, vdView, $("#vd-go"));
});

// ------------------------------------------------------------------------------------------------------------
// Generate: BigGAN class search with suggestions
// ------------------------------------------------------------------------------------------------------------

let classSearch = null; // (query) => Promise<[{index, name, other}]>

async function setupClassSearch(paths) {
  if (paths && paths["/api/classes"]) {
    classSearch = async (q) => normaliseClasses(await api(`/api/classes?q=${encodeURIComponent(q)}`));
    return;
  }
  let list = null; // the static list, loaded on first use
  classSearch = async (q) => {
    if (!list) list = (await import("./classes.js")).CLASSES;
    const s = q.trim().toLowerCase();
    if (!s) return [];
    if (/^\d+$/.test(s)) return list.filter((c) => String(c[0]) === s).map(toClass);
    const starts = [], inside = [];
    for (const c of list) {
      const name = c[1].toLowerCase(), other = (c[2] || "").toLowerCase();
      if (name.startsWith(s) || name.includes(" " + s)) starts.push(c);
      else if (name.includes(s) || other.includes(s)) inside.push(c);
    }
    return [...starts, ...inside].slice(0, 10).map(toClass);
  };
}
const toClass = (c) => ({ index: c[0], name: c[1], other: c[2] || "" });
function normaliseClasses(data) {
  const arr = Array.isArray(data) ? data : data?.classes || data?.matches || data?.results || [];
  return arr.slice(0, 10).map((c) => (typeof c === "string" ? { index: null, name: c, other: "" }
    : Array.isArray(c) ? { index: c[0], name: c[1], other: c[2] || "" }
    : { index: c.index ?? c.id ?? null, name: c.name ?? (c.names || [])[0] ?? String(c.index), other: (c.names || []).slice(1, 3).join(", ") }));
}

/** A text input with a suggestion list; onPick(name) when a suggestion (or, with allowFree, free text) is chosen. */
function suggestInput(inputId, listId, onPick) {
  const input = $(`#${inputId}`);
  const ul = $(`#${listId}`);
  let items = [], active = -1, seq = 0;
  const close = () => { ul.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; };
  const render = () => {
    ul.replaceChildren(...items.map((c, i) => el("li", {
      role: "option", "aria-selected": String(i === active), id: `${listId}-${i}`,
      onmousedown: (e) => { e.preventDefault(); pick(i); },
    }, c.name, c.index !== null && c.index !== undefined ? el("small", { text: `#${c.index}${c.other ? " · " + c.other : ""}` }) : null)));
    ul.hidden = !items.length;
    input.setAttribute("aria-expanded", String(!!items.length));
    if (active >= 0) input.setAttribute("aria-activedescendant", `${listId}-${active}`);
  };
  const pick = (i) => {
    const c = items[i];
    if (!c) return;
    close();
    onPick(c.name, input);
  };
  input.addEventListener("input", async () => {
    const mine = ++seq;
    let found = [];
    try { found = await classSearch(input.value); } catch (err) { showError(err.message); }
    if (mine !== seq) return;
    items = found;
    active = items.length ? 0 : -1;
    render();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      if (!items.length) return;
      e.preventDefault();
      active = (active + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
      render();
    } else if (e.key === "Enter") {
      if (!ul.hidden && active >= 0) { e.preventDefault(); pick(active); }
      else if (inputId === "gn-class" && input.value.trim()) { e.preventDefault(); onPick(input.value.trim(), input); }
    } else if (e.key === "Escape") close();
  });
  input.addEventListener("blur", () => setTimeout(close, 100));
}
const gnClasses = [];
function renderChips() {
  $("#gn-chips").replaceChildren(...gnClasses.map((name, i) => el("span", { class: "chip" }, name,
    el("button", { type: "button", "aria-label": `remove ${name}`, text: "×", onclick: () => { gnClasses.splice(i, 1); renderChips(); } }))));
}
suggestInput("gn-class", "gn-class-list", (name, input) => {
  if (!gnClasses.includes(name)) gnClasses.push(name);
  input.value = "";
  renderChips();
});
suggestInput("ip-from", "ip-from-list", (name, input) => { input.value = name; });
suggestInput("ip-to", "ip-to-list", (name, input) => { input.value = name; });

const gnView = new JobView({
  reset: () => { setDownload("#gn-download", null); showPlaceholder($("#gn-stage"), "Loading BigGAN…"); },
  progress: (d) => {
    if (!d.total) return;
    setProgress("#gn-progress", d.step / d.total);
    setStatus("#gn-status", `${d.step} / ${d.total}`);
  },
  preview: (d) => showImage($("#gn-stage"), d.url, `step ${d.step}`),
  state: (job) => {
    if (stateLine("#gn-status", job, job.kind === "interpolate" ? "interpolation" : "generation")) { setProgress("#gn-progress", null); return; }
    if (job.state === "running" && !job.progress) setProgress("#gn-progress", undefined);
    if (FINAL.has(job.state)) {
      setProgress("#gn-progress", null);
      const main = (job.outputs || [])[0];
      if (job.result_url) {
        if (isVideo(main?.name)) showVideo($("#gn-stage"), job.result_url);
        else showImage($("#gn-stage"), job.result_url, job.kind === "interpolate" ? "interpolation" : "samples");
        setDownload("#gn-download", job);
      }
      setStatus("#gn-status", job.state === "done" ? `done${Number.isFinite(duration(job)) ? ` in ${seconds(duration(job))}` : ""}` : "cancelled", job.state === "done" ? "ok" : "");
    }
  },
});
$("#gn-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearError();
  const typed = $("#gn-class").value.trim();
  if (typed && !gnClasses.includes(typed)) { gnClasses.push(typed); $("#gn-class").value = ""; renderChips(); }
  if (!gnClasses.length) return showError("Choose at least one ImageNet class, e.g. golden retriever.");
  await submit("generate", {
    classes: [...gnClasses], samples: numberOf("#gn-samples"), truncation: Number($("#gn-trunc").value), seed: numberOf("#gn-seed"),
  }, gnView, $("#gn-go"));
});
$("#ip-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearError();
  const from = $("#ip-from").value.trim(), to = $("#ip-to").value.trim();
  if (!from || !to) return showError("Name the class to start from and the class to end at.");
  await submit("interpolate", {
    from, to, steps: numberOf("#ip-steps"), samples: numberOf("#ip-samples"), truncation: Number($("#ip-trunc").value),
    seed: numberOf("#ip-seed"), format: $("#ip-format").value,
  }, gnView, $("#ip-go"));
});

// ------------------------------------------------------------------------------------------------------------
// Optimisers
// ------------------------------------------------------------------------------------------------------------

const cpContent = singleSlot("cp-content", "image");
const cpStyle = singleSlot("cp-style", "image");
const cpView = new JobView({
  reset: () => { $("#cp-files").replaceChildren(); showPlaceholder($("#cp-stage"), "Running the study…"); },
  progress: (d) => {
    if (!d.total) return;
    setProgress("#cp-progress", d.step / d.total);
    const total = d.losses && (d.losses.total ?? Object.values(d.losses)[0]);
    setStatus("#cp-status", `iteration ${d.step} / ${d.total}${total ? ` · loss ${fmt(total)}` : ""}`);
  },
  preview: (d) => showImage($("#cp-stage"), d.url, `iteration ${d.step}`),
  state: (job) => {
    $("#cp-cancel").disabled = FINAL.has(job.state);
    if (stateLine("#cp-status", job, "study")) { setProgress("#cp-progress", null); return; }
    if (job.state === "running" && !job.progress) setProgress("#cp-progress", undefined);
    if (FINAL.has(job.state)) {
      setProgress("#cp-progress", null);
      const outs = job.outputs || [];
      const images = outs.filter((o) => o.kind === "image" || /\.(png|jpe?g|gif)$/i.test(o.name));
      const order = (o) => (/results|grid/.test(o.name) ? 2 : /loss/.test(o.name) ? 0 : 1);
      images.sort((a, b) => order(a) - order(b));
      const stage = $("#cp-stage");
      if (images.length) {
        stage.replaceChildren(...images.map((o) => el("figure", { class: order(o) === 2 ? "wide" : "" },
          el("a", { href: withToken(o.url), target: "_blank", rel: "noopener" }, el("img", { src: withToken(o.url), alt: o.name })),
          el("figcaption", { text: o.name }))));
      } else showPlaceholder(stage, "The study wrote no plots.");
      $("#cp-files").replaceChildren(...outs.map((o) => el("a", { class: "button small", href: withToken(o.url), download: o.name, text: o.name })));
      setStatus("#cp-status", job.state === "done" ? `done${Number.isFinite(duration(job)) ? ` in ${seconds(duration(job))}` : ""}` : "cancelled; what ran is shown", job.state === "done" ? "ok" : "");
    }
  },
});
$("#cp-cancel").addEventListener("click", () => cancel(cpView));
$("#cp-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearError();
  if (!cpContent.value || !cpStyle.value) return showError("Choose a content photo and a style image for the study.");
  const optimizers = $$("#cp-opts input:checked").map((i) => i.value);
  if (!optimizers.length) return showError("Tick at least one optimiser to study.");
  await submit("compare", {
    content: cpContent.value.id, style: cpStyle.value.id, optimizers, iterations: numberOf("#cp-iters"), size: numberOf("#cp-size"),
  }, cpView, $("#cp-go"));
});

const VIEWS = { stylize: stView, paint: ptView, video: vdView, generate: gnView, interpolate: gnView, compare: cpView };

// ------------------------------------------------------------------------------------------------------------
// the job list, updated live
// ------------------------------------------------------------------------------------------------------------

function summary(job) {
  const p = job.params || {};
  const bits = [];
  switch (job.kind) {
    case "stylize":
      bits.push(p.preset != null ? `preset ${p.preset}` : `${(p.styles || []).length} style${(p.styles || []).length === 1 ? "" : "s"}`);
      if (p.method) bits.push(p.method);
      if (p.size) bits.push(`${p.size} px`);
      if (p.strength != null && p.strength !== 1) bits.push(`strength ${p.strength}`);
      if (p.preserve_color) bits.push("colours kept");
      break;
    case "paint":
      bits.push(`${p.image_size ?? 384} px`, `${p.num_iterations ?? 300} it`, p.optimizer || "lbfgs");
      if (p.model) bits.push(p.model);
      if (p.fast) bits.push("fast");
      break;
    case "video":
      bits.push(p.preset != null ? `preset ${p.preset}` : `${(p.styles || []).length} style(s)`);
      if (p.size) bits.push(`${p.size} px`);
      if (p.stabilize) bits.push("stabilised");
      break;
    case "generate":
      bits.push((p.classes || []).join(", "), `${p.samples ?? 4} samples`, `trunc ${p.truncation ?? 0.4}`);
      break;
    case "interpolate":
      bits.push(`${p.from} → ${p.to}`, `${p.steps ?? 10} steps`, p.format || "gif");
      break;
    case "compare":
      bits.push((p.optimizers || []).join(", "), `${p.iterations ?? 100} it`);
      break;
  }
  return bits.filter(Boolean).join(" · ");
}

const jobs = {
  map: new Map(), // id -> job
  items: new Map(), // id -> li
  timer: null,
  upsert(job) {
    if (!job || !job.id) return;
    const before = this.map.get(job.id)?.state;
    this.map.set(job.id, job);
    this.render();
    if (before !== job.state) health.poll();
  },
  async refresh() {
    try {
      const data = await api("/api/jobs");
      const seen = new Set();
      for (const j of data.jobs || []) { this.map.set(j.id, j); seen.add(j.id); }
      for (const id of [...this.map.keys()]) if (!seen.has(id)) this.map.delete(id);
      this.render();
      health.ok = true;
    } catch (err) {
      health.down(err.message);
    }
    clearTimeout(this.timer);
    const busy = [...this.map.values()].some((j) => ACTIVE.has(j.state));
    this.timer = setTimeout(() => this.refresh(), busy ? 1500 : 5000);
  },
  render() {
    const list = $("#jobs-list");
    const ordered = [...this.map.values()].sort((a, b) => String(b.created).localeCompare(String(a.created)) || b.id.localeCompare(a.id));
    $("#jobs-count").textContent = ordered.length ? `${ordered.length} · ${ordered.filter((j) => ACTIVE.has(j.state)).length} active` : "";
    if (!ordered.length) { list.replaceChildren(el("li", { class: "jobs-empty", text: "No jobs yet. Start one on the left." })); this.items.clear(); return; }
    list.querySelector(".jobs-empty")?.remove();
    for (const [id, li] of this.items) if (!this.map.has(id)) { li.remove(); this.items.delete(id); }
    let prev = null;
    for (const job of ordered) {
      let li = this.items.get(job.id);
      if (!li) { li = this.item(job); this.items.set(job.id, li); }
      this.update(li, job);
      const want = prev ? prev.nextSibling : list.firstChild;
      if (want !== li) list.insertBefore(li, want);
      prev = li;
    }
  },
  item(job) {
    const li = el("li", { class: "job", "data-job": job.id, "data-kind": job.kind });
    li.innerHTML = `<div class="thumb"></div><div class="top"><span class="kind"></span><span class="badge"></span><span class="when"></span></div>
      <div class="params"></div><div class="jactions"></div>`;
    return li;
  },
  update(li, job) {
    const thumb = li.querySelector(".thumb");
    // the thumbnail URL stays the same while the picture behind it changes (preview, then result)
    const version = `${job.state}.${job.progress?.preview_step ?? ""}`;
    const turl = job.thumbnail_url ? withToken(`${job.thumbnail_url}${job.thumbnail_url.includes("?") ? "&" : "?"}v=${version}`) : null;
    if (turl && thumb.dataset.src !== turl) {
      thumb.dataset.src = turl;
      const img = el("img", { src: turl, alt: "" });
      img.onerror = () => { thumb.textContent = ICON[job.kind] || "•"; };
      thumb.replaceChildren(img);
    } else if (!turl && thumb.dataset.src !== "icon") {
      thumb.dataset.src = "icon";
      thumb.textContent = ICON[job.kind] || "•";
    }
    li.querySelector(".kind").textContent = job.kind === "compare" ? "optimisers" : job.kind === "stylize" ? "stylise" : job.kind;
    const badge = li.querySelector(".badge");
    badge.textContent = job.state;
    badge.className = `badge ${job.state}`;
    li.dataset.state = job.state;
    li.querySelector(".when").textContent = ago(job.created);
    const params = li.querySelector(".params");
    params.textContent = summary(job);
    params.title = JSON.stringify(job.params, null, 1);
    // progress bar and error line
    li.querySelector(".jprog")?.remove();
    li.querySelector(".err")?.remove();
    if (job.state === "running" && job.progress?.total) {
      const bar = el("div", { class: "jprog" }, el("div"));
      bar.firstChild.style.width = `${(100 * (job.progress.step || 0)) / job.progress.total}%`;
      li.querySelector(".params").after(bar);
    }
    if (job.state === "failed" && job.error) li.querySelector(".params").after(el("div", { class: "err", text: sentence(job.error) }));
    // actions (rebuilt only when the state changes)
    const actions = li.querySelector(".jactions");
    const key = `${job.state}|${job.result_url || ""}`;
    if (actions.dataset.key !== key) {
      actions.dataset.key = key;
      const btns = [el("button", { type: "button", text: "Open", "data-action": "open", onclick: () => openJob(job.id) })];
      btns.push(el("button", { type: "button", text: "Re-run", "data-action": "rerun", onclick: () => rerun(job.id) }));
      if (ACTIVE.has(job.state)) btns.push(el("button", { type: "button", class: "danger", text: "Cancel", "data-action": "cancel", onclick: () => cancelJob(job.id) }));
      else btns.push(el("button", { type: "button", class: "danger", text: "Delete", "data-action": "delete", onclick: () => deleteJob(job.id) }));
      actions.replaceChildren(...btns);
    }
  },
};

function openJob(id) {
  const job = jobs.map.get(id);
  if (!job) return;
  clearError();
  selectTab(TAB_OF[job.kind] || "stylize");
  VIEWS[job.kind]?.open(job);
}
async function rerun(id) {
  clearError();
  try {
    const job = await api(`/api/jobs/${id}/rerun`, { method: "POST" });
    jobs.upsert(job);
    selectTab(TAB_OF[job.kind] || "stylize");
    VIEWS[job.kind]?.open(job);
  } catch (err) { showError(err.message); }
}
async function cancelJob(id) {
  const view = Object.values(VIEWS).find((v) => v.job?.id === id);
  if (view) return cancel(view);
  try { jobs.upsert(await api(`/api/jobs/${id}`, { method: "DELETE" })); } catch (err) { showError(err.message); }
}
async function deleteJob(id) {
  clearError();
  try {
    await api(`/api/jobs/${id}`, { method: "DELETE" });
    jobs.map.delete(id);
    jobs.render();
  } catch (err) { showError(err.message); }
}

// ------------------------------------------------------------------------------------------------------------
// health
// ------------------------------------------------------------------------------------------------------------

const health = {
  ok: false,
  timer: null,
  async poll() {
    try {
      const h = await api("/api/health");
      const box = $("#health");
      box.classList.remove("down");
      box.replaceChildren(el("span", { class: "dot" }),
        `${h.device || "cpu"} · ${h.workers ?? 1} worker${h.workers === 1 ? "" : "s"} · ${h.running ?? 0} running · ${h.queued ?? 0} queued`);
      box.title = `impasto ${h.version || ""}`;
      if (!this.ok && !$("#error").hidden && /cannot be reached/.test($("#error-text").textContent)) clearError();
      this.ok = true;
    } catch (err) {
      this.down(err.message);
    }
    clearTimeout(this.timer);
    const busy = [...jobs.map.values()].some((j) => ACTIVE.has(j.state));
    this.timer = setTimeout(() => this.poll(), busy ? 1500 : 5000);
  },
  down(message) {
    const box = $("#health");
    box.classList.add("down");
    box.replaceChildren(el("span", { class: "dot" }), "server unreachable");
    if (this.ok) showError(message);
    this.ok = false;
  },
};

// ------------------------------------------------------------------------------------------------------------
// start
// ------------------------------------------------------------------------------------------------------------

async function start() {
  selectTab(location.hash.slice(1) || "stylize");
  syncStSource();
  // what the page needs to be usable, in parallel; the gallery's 26 thumbnails load after (they may be made on
  // the server's first start, and would hold the browser's few connections)
  const [m, spec] = await Promise.all([
    api("/api/models").catch((err) => { showError(err.message); return null; }),
    api("/openapi.json").catch(() => null),
    jobs.refresh(),
    health.poll(),
  ]);
  if (m) models = m;
  applyCapabilities();
  await setupClassSearch(spec?.paths);
  buildGallery();
  document.documentElement.dataset.ready = "true";
  window.impastoReadyAt = performance.now();
}
start();
