// segkit studio: draws the class layers over the photo and sends corrections to the server.
// No framework and no build step, so the page works offline exactly as it is shipped.
"use strict";
const $ = (id) => document.getElementById(id);
const S = {meta: null, order: [], stem: null, w: 0, h: 0, pred: null, conf: null, label: null, layer: "pred",
           opacity: 0.5, hidden: new Set(), cls: 0, tool: "region", zoom: 1, tx: 0, ty: 0, cell: null,
           unsaved: new Set()};
let lut = new Uint32Array(256);

function status(text, error) { $("status").textContent = text; $("status").className = error ? "error" : ""; }
function busy(on) { document.body.dataset.state = on ? "busy" : "ready"; }

async function api(path, options) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    throw Object.assign(new Error(`${response.status}: ${detail}`), {status: response.status});
  }
  return response;
}

function buildLut() {  // RGBA packed little-endian: 0xAABBGGRR
  const a = Math.round(S.opacity * 255);
  lut = new Uint32Array(256);
  S.meta.palette.forEach(([r, g, b], i) => { if (!S.hidden.has(i)) lut[i] = (a << 24) | (b << 16) | (g << 8) | r; });
}

function render() {
  const canvas = $("overlay");
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(S.w, S.h);
  const out = new Uint32Array(image.data.buffer);
  if (S.layer === "errors" && S.label) {
    const red = (Math.round(S.opacity * 255) << 24) | 0x0000ff, ignore = S.meta.ignore_index;
    for (let i = 0; i < out.length; i++) {
      if (S.label[i] !== ignore && S.label[i] !== S.pred[i] && !S.hidden.has(S.label[i])) out[i] = red;
    }
  } else {
    const ids = S.layer === "label" && S.label ? S.label : S.pred;
    for (let i = 0; i < out.length; i++) out[i] = lut[ids[i]];
  }
  ctx.putImageData(image, 0, 0);
}

function place() { $("stage").style.transform = `translate(${S.tx}px, ${S.ty}px) scale(${S.zoom})`; }

function fit() {
  const view = $("viewport").getBoundingClientRect();
  S.zoom = Math.min(view.width / S.w, view.height / S.h, 4);
  S.tx = (view.width - S.w * S.zoom) / 2; S.ty = (view.height - S.h * S.zoom) / 2;
  place();
}

async function open(stem) {
  busy(true);
  try {
    const response = await api(`/api/layers/${encodeURIComponent(stem)}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const w = +response.headers.get("X-Width"), h = +response.headers.get("X-Height"), n = w * h;
    Object.assign(S, {stem, w, h, pred: bytes.subarray(0, n), conf: bytes.subarray(n, 2 * n),
                      label: response.headers.get("X-Labelled") === "1" ? bytes.slice(2 * n, 3 * n) : null});
    const photo = $("photo");
    photo.src = `/api/image/${encodeURIComponent(stem)}`;
    await photo.decode();
    const canvas = $("overlay");
    canvas.width = w; canvas.height = h;
    setLayer(!S.label ? "pred" : S.layer === "errors" ? "errors" : "label");  // a label, where there is one
    $("stem").textContent = stem;
    const at = S.order.indexOf(stem);
    $("progress").textContent = `${at + 1} / ${S.order.length}`;
    document.querySelectorAll("#order li").forEach((li) => li.classList.toggle("on", li.dataset.stem === stem));
    fit(); status("");
    history.replaceState(null, "", `#${encodeURIComponent(stem)}`);
  } catch (e) { status(e.message, true); }
  busy(false);
}

function go(delta) {
  const at = S.order.indexOf(S.stem);
  const next = S.order[Math.min(Math.max(at + delta, 0), S.order.length - 1)];
  if (next && next !== S.stem) open(next);
}

function setLayer(layer) {
  S.layer = layer;
  document.querySelector(`input[name=layer][value=${layer}]`).checked = true;
  render();
}

function setTool(tool) {
  S.tool = tool;
  document.querySelectorAll("#tools button").forEach((b) => b.classList.toggle("on", b.dataset.tool === tool));
  $("viewport").classList.toggle("pan", tool === "pan");
}

function selectClass(cls) {
  if (cls < 0 || cls >= S.meta.class_names.length) return;
  S.cls = cls;
  document.querySelectorAll("#legend li").forEach((li) => li.classList.toggle("on", +li.dataset.cls === cls));
}

function buildLegend() {
  const list = $("legend");
  S.meta.class_names.forEach((name, i) => {
    const li = document.createElement("li");
    li.dataset.cls = i;
    const [r, g, b] = S.meta.palette[i];
    li.innerHTML = `<input type="checkbox" checked><span class="swatch" style="background:rgb(${r},${g},${b})"></span>` +
                   `<span>${i < 10 ? i + " " : ""}</span><span class="name"></span>`;
    li.querySelector(".name").textContent = name;
    li.querySelector("input").addEventListener("change", (e) => {
      e.target.checked ? S.hidden.delete(i) : S.hidden.add(i);
      buildLut(); render();
    });
    li.addEventListener("click", (e) => { if (e.target.tagName !== "INPUT") selectClass(i); });
    list.appendChild(li);
  });
  selectClass(0);
}

// ---------------------------------------------------------------- edits
async function applyPatch(response) {
  const box = response.headers.get("X-Box");
  const corrected = response.headers.get("X-Corrected");
  if (corrected !== null) showCorrected(+corrected);
  if (!box) return false;
  const [y0, x0, h, w] = box.split(",").map(Number);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (!S.label) S.label = S.pred.slice();
  for (let y = 0; y < h; y++) S.label.set(bytes.subarray(y * w, (y + 1) * w), (y0 + y) * S.w + x0);
  if (S.layer === "pred") setLayer("label"); else render();
  return true;
}

// The server takes changes only as JSON from this page (a cross-site form or no-cors fetch cannot send that).
const change = (path, body) =>
  api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});

// A change the server could not write (a full disk): the image stays marked until a later save succeeds.
function markSaved(stem, ok) {
  ok ? S.unsaved.delete(stem) : S.unsaved.add(stem);
  $("unsaved").textContent = S.unsaved.size ? `not saved: ${[...S.unsaved].join(", ")}` : "";
  document.body.dataset.unsaved = [...S.unsaved].join(" ");
  document.querySelectorAll("#order li").forEach((li) => li.classList.toggle("unsaved", S.unsaved.has(li.dataset.stem)));
}

function failed(stem, e) {
  if (!e.status || e.status >= 500) markSaved(stem, false);  // not written; a 4xx refusal changed nothing
  status(e.message, true);
}

async function post(path, body) {
  busy(true);
  const t0 = performance.now(), stem = S.stem;
  try {
    const changed = await applyPatch(await change(path, body));
    markSaved(stem, true);
    status(changed ? `saved (${Math.round(performance.now() - t0)} ms)` : "nothing to change");
  } catch (e) { failed(stem, e); }
  busy(false);
}

const edit = (body) => post(`/api/edit/${encodeURIComponent(S.stem)}`, body);
const undo = () => post(`/api/undo/${encodeURIComponent(S.stem)}`);
const redo = () => post(`/api/redo/${encodeURIComponent(S.stem)}`);

async function save() {
  busy(true);
  const stem = S.stem;
  try {
    const result = await (await change(`/api/save/${encodeURIComponent(stem)}`)).json();
    if (!S.label) S.label = S.pred.slice();
    markSaved(stem, true);
    showCorrected(result.corrected);
    status(`saved ${result.saved}`);
  } catch (e) { failed(stem, e); }
  busy(false);
}

function showCorrected(count) {
  $("corrected").textContent = `${count} mask(s) saved since the checkpoint. Fine-tune on them:`;
}

// ---------------------------------------------------------------- pointer
function pixel(e) {
  const rect = $("overlay").getBoundingClientRect();
  const x = Math.floor((e.clientX - rect.left) / rect.width * S.w), y = Math.floor((e.clientY - rect.top) / rect.height * S.h);
  return x >= 0 && y >= 0 && x < S.w && y < S.h ? [x, y] : null;
}

function hover(e) {
  const p = pixel(e);
  if (!p || !S.pred) { $("hover").innerHTML = "&nbsp;"; return; }
  const i = p[1] * S.w + p[0], names = S.meta.class_names;
  const name = (v) => v < names.length ? names[v] : "ignore";
  let text = `(${p[0]}, ${p[1]}) model: ${names[S.pred[i]]} ${Math.round(S.conf[i] / 2.55)}%`;
  if (S.label) text += ` · label: ${name(S.label[i])}`;
  $("hover").textContent = text;
}

let stroke = null, drag = null;
function pointerDown(e) {
  if (!S.pred) return;
  if (S.tool === "pan" || e.button !== 0 || e.shiftKey) { drag = [e.clientX - S.tx, e.clientY - S.ty]; return; }
  const p = pixel(e);
  if (!p) return;
  if (S.tool === "region") { edit({op: "region", x: p[0], y: p[1], cls: S.cls}); return; }
  stroke = [p];
  previewDot(p);
}

function pointerMove(e) {
  hover(e);
  if (drag) { S.tx = e.clientX - drag[0]; S.ty = e.clientY - drag[1]; place(); return; }
  if (!stroke) return;
  const p = pixel(e);
  if (p) { stroke.push(p); previewDot(p); }
}

function pointerUp() {
  drag = null;
  if (!stroke) return;
  const points = stroke;
  stroke = null;
  const cls = S.tool === "eraser" ? S.meta.ignore_index : S.cls;
  edit({op: "brush", points, radius: +$("radius").value, cls});
}

function previewDot([x, y]) {  // shown until the server's answer redraws the layer
  const ctx = $("overlay").getContext("2d");
  ctx.fillStyle = S.tool === "eraser" ? "rgba(0,0,0,0.6)" : `rgb(${S.meta.palette[S.cls].join(",")})`;
  ctx.beginPath(); ctx.arc(x + 0.5, y + 0.5, +$("radius").value, 0, 2 * Math.PI); ctx.fill();
}

function wheel(e) {
  e.preventDefault();
  const rect = $("viewport").getBoundingClientRect();
  const mx = e.clientX - rect.left, my = e.clientY - rect.top, factor = e.deltaY < 0 ? 1.25 : 0.8;
  S.tx = mx - (mx - S.tx) * factor; S.ty = my - (my - S.ty) * factor; S.zoom *= factor;
  place();
}

function key(e) {
  if (e.target.tagName === "INPUT" && e.target.type !== "range" && e.target.type !== "radio" && e.target.type !== "checkbox") return;
  const k = e.key.toLowerCase();
  if ((e.ctrlKey || e.metaKey) && k === "z") { e.preventDefault(); e.shiftKey ? redo() : undo(); return; }
  if ((e.ctrlKey || e.metaKey) && k === "y") { e.preventDefault(); redo(); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (k === "arrowright" || k === "n") go(1);
  else if (k === "arrowleft" || k === "p") go(-1);
  else if (/^[0-9]$/.test(k)) selectClass(+k);
  else if (k === "r") setTool("region");
  else if (k === "b") setTool("brush");
  else if (k === "e") setTool("eraser");
  else if (k === "h") setTool("pan");
  else if (k === "s") save();
  else if (k === "f") fit();
}

// ---------------------------------------------------------------- review order
async function loadOrder() {
  const query = S.cell ? `?gt=${S.cell[0]}&pred=${S.cell[1]}` : "";
  const data = await (await api(`/api/images${query}`)).json();
  S.order = data.order;
  const names = S.meta.class_names;
  $("order-kind").textContent = S.cell ? `(label ${names[S.cell[0]]}, predicted ${names[S.cell[1]]})`
                                       : `(scored ${data.scored} / ${data.total}: worst mIoU, then most uncertain)`;
  $("all-images").hidden = !S.cell;
  const list = $("order");
  list.innerHTML = "";
  for (const stem of S.order) {
    const s = data.summaries[stem] || {};
    const li = document.createElement("li");
    li.dataset.stem = stem;
    li.textContent = stem + (s.mIoU != null ? ` · mIoU ${(100 * s.mIoU).toFixed(1)}`
                           : s.uncertainty != null ? ` · entropy ${s.uncertainty.toFixed(3)}` : "");
    li.classList.toggle("on", stem === S.stem);
    li.classList.toggle("unsaved", S.unsaved.has(stem));
    li.addEventListener("click", () => open(stem));
    list.appendChild(li);
  }
  if (S.stem) $("progress").textContent = `${S.order.indexOf(S.stem) + 1} / ${S.order.length}`;
  drawConfusion(data.confusion);
  return data;
}

function drawConfusion(matrix) {
  if (!matrix) return;
  const names = S.meta.class_names, table = document.createElement("table");
  table.innerHTML = `<tr><th></th>${names.map((n, j) => `<th title="${j}">${j}</th>`).join("")}</tr>`;
  matrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1, tr = document.createElement("tr");
    tr.innerHTML = `<th title="${i}">${i}</th>`;
    row.forEach((count, j) => {
      const td = document.createElement("td"), share = count / total;
      td.textContent = count ? (100 * share).toFixed(0) : "";
      td.title = `label ${names[i]}, predicted ${names[j]}: ${count} px`;
      td.style.background = `rgba(${i === j ? "0,120,0" : "200,0,0"},${share.toFixed(2)})`;
      td.addEventListener("click", () => { S.cell = [i, j]; loadOrder(); });
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  $("confusion").replaceChildren(table);
}

async function start() {
  S.meta = await (await api("/api/meta")).json();
  buildLegend(); buildLut(); showCorrected(S.meta.corrected);
  $("finetune").textContent = S.meta.finetune;
  const data = await loadOrder();
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (S.order.length) await open(S.order.includes(wanted) ? wanted : S.order[0]);
  if (data.scored < data.total) {  // the server scores images in the background: refresh the order as it does
    const timer = setInterval(async () => { if ((await loadOrder()).scored >= data.total) clearInterval(timer); }, 3000);
  }
}

$("prev").onclick = () => go(-1);
$("next").onclick = () => go(1);
$("undo").onclick = undo; $("redo").onclick = redo; $("save").onclick = save;
$("all-images").onclick = () => { S.cell = null; loadOrder(); };
document.querySelectorAll("input[name=layer]").forEach((r) => r.addEventListener("change", () => setLayer(r.value)));
document.querySelectorAll("#tools button").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
$("opacity").addEventListener("input", (e) => { S.opacity = e.target.value / 100; buildLut(); render(); });
const view = $("viewport");
view.addEventListener("pointerdown", pointerDown);
view.addEventListener("contextmenu", (e) => e.preventDefault());
window.addEventListener("pointermove", pointerMove);
window.addEventListener("pointerup", pointerUp);
view.addEventListener("wheel", wheel, {passive: false});
document.addEventListener("keydown", key);
start().catch((e) => { status(e.message, true); busy(false); });
