// The captioning page: sends the chosen images to POST /caption?attention=1 and shows, for each,
// the image the model read, the caption, the class and findings with their confidences, the
// out-of-scope notice or the error; hovering or clicking a word of the caption overlays where
// the model looked.
"use strict";

const SIDE = 256; // canvas pixels per image side
const $ = (id) => document.getElementById(id);
let tokenRequired = false;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

const percent = (p) => (p === null || p === undefined ? "not stated" : `${(100 * p).toFixed(2)}%`);

async function loadHealth() {
  try {
    const health = await (await fetch("health")).json();
    const model = health.model;
    const name = model.model_card ? model.model_card.name : `run ${model.run} (${model.decoder} decoder)`;
    $("model").textContent =
      `Model: ${name}, commit ${(model.commit || "unknown").slice(0, 10)}. ` +
      `Up to ${health.limits.max_files} files of ${health.limits.max_upload_mb} MB each.`;
    tokenRequired = health.token_required;
    $("token-row").hidden = !tokenRequired;
  } catch (err) {
    $("model").textContent = "The server did not say which model it serves.";
  }
}

// A jet-like colour for a weight in 0..1, with more opacity where the model looked more.
function colour(v) {
  const r = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 3)));
  const g = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 2)));
  const b = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 1)));
  return [255 * r, 255 * g, 255 * b, 170 * v]; // no attention: the image shows through
}

function drawImage(canvas, picture, map, grid) {
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.clearRect(0, 0, SIDE, SIDE);
  ctx.drawImage(picture, 0, 0, SIDE, SIDE);
  if (!map) return;
  const small = document.createElement("canvas");
  small.width = small.height = grid;
  const sctx = small.getContext("2d");
  const pixels = sctx.createImageData(grid, grid);
  const top = Math.max(...map) || 1;
  map.forEach((value, i) => pixels.data.set(colour(value / top), 4 * i));
  sctx.putImageData(pixels, 0, 0);
  ctx.drawImage(small, 0, 0, SIDE, SIDE); // upsampled, smoothed: the S x S grid over the image
}

// The caption as a sentence, each word that matches a decoded token able to show its map.
function captionLine(entry, show) {
  const line = el("p", { className: "caption" });
  const tokens = entry.attention ? entry.attention.words : [];
  let next = 0;
  for (const part of entry.caption.split(/(\s+)/)) {
    const plain = part.toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, "");
    while (next < tokens.length && !/[\p{L}\p{N}]/u.test(tokens[next])) next += 1;
    if (plain && next < tokens.length && plain === tokens[next]) {
      const index = next;
      const word = el("span", { className: "word", textContent: part, title: "where the model looked" });
      word.addEventListener("mouseenter", () => show(index, false));
      word.addEventListener("mouseleave", () => show(null, false));
      word.addEventListener("click", () => show(index, true));
      line.append(word);
      next += 1;
    } else {
      line.append(part);
    }
  }
  return line;
}

// The class and each finding the caption states (entry.findings: field -> value, null where the
// caption states none), beside its calibrated confidence where the run has one.
function findingsTable(entry) {
  const row = (tag, ...cells) => el("tr", {}, ...cells.map((text) => el(tag, { textContent: text })));
  const table = el("table", { className: "confidence findings" });
  table.append(row("th", "the caption states", "confidence"));
  table.append(row("td", `class: ${entry.class}`, percent(entry.prob)));
  for (const [name, value] of Object.entries(entry.findings || {})) {
    const p = entry.confidence ? percent(entry.confidence[name]) : "not calibrated";
    table.append(value === null ? row("td", `${name}: not stated`, "") : row("td", `${name}: ${value}`, p));
  }
  return table;
}

function showEntry(entry) {
  const card = el("article", { className: "result" }, el("h2", { textContent: entry.path }));
  if (entry.error) {
    card.dataset.state = "error";
    card.append(el("p", { className: "error", textContent: `Could not caption ${entry.path}: ${entry.error}` }));
    return card;
  }
  const canvas = el("canvas", { width: SIDE, height: SIDE });
  const details = el("div", { className: "details" });
  const seen = el("figure", {}, canvas, el("figcaption", { className: "muted", textContent: "what the model read (64x64)" }));
  card.append(el("div", { className: "body" }, seen, details));
  const picture = new Image();
  const att = entry.attention;
  let pinned = null;
  const words = [];
  const show = (index, pin) => {
    if (pin) pinned = pinned === index ? null : index;
    const current = index === null ? pinned : index;
    words.forEach((w, i) => w.classList.toggle("on", i === pinned));
    drawImage(canvas, picture, current === null || !att ? null : att.maps[current], att && att.grid);
  };
  picture.onload = () => {
    show(null, false);
    canvas.dataset.ready = "1";
  };
  if (entry.input_png) picture.src = entry.input_png;
  if (entry.caption === undefined) {
    card.dataset.state = "out-of-scope";
    details.append(el("p", {
      className: "notice out-of-scope",
      textContent: `Out of scope: ${entry.out_of_scope_reason}, so it gets no caption.`,
    }));
    return card;
  }
  card.dataset.state = "captioned";
  const line = captionLine(entry, show);
  words.push(...line.querySelectorAll(".word"));
  details.append(line);
  if (att) details.append(el("p", { className: "muted", textContent: "Hover over or click a word to see where the model looked." }));
  if (entry.in_scope === false) details.append(el("p", { className: "notice", textContent: `Flagged out of scope: ${entry.out_of_scope_reason}.` }));
  details.append(findingsTable(entry));
  return card;
}

async function send(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("file", file, file.name);
  const headers = {};
  if (tokenRequired) headers.Authorization = `Bearer ${$("token").value}`;
  $("error").hidden = true;
  $("status").textContent = `Captioning ${files.length} file${files.length > 1 ? "s" : ""}…`;
  $("results").replaceChildren();
  try {
    const response = await fetch("caption?attention=1", { method: "POST", body: form, headers });
    const body = await response.json();
    if (body.results) $("results").replaceChildren(...body.results.map(showEntry));
    if (response.status === 401) {
      tokenRequired = true;
      $("token-row").hidden = false;
    }
    if (!response.ok) {
      $("error").textContent = body.error;
      $("error").hidden = false;
    }
    $("status").textContent = response.ok ? "Done." : "";
  } catch (err) {
    $("status").textContent = "";
    $("error").textContent = `The server could not be reached (${err.message}).`;
    $("error").hidden = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  loadHealth();
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { send([...e.target.files]); e.target.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    send([...e.dataTransfer.files]);
  });
});
