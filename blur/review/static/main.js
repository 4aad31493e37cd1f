// The review page: the file list, the picture with its masks, corrections by pointer, apply.
// State lives in state.js; regions.js says what to draw, pointer.js edits corrections; viewer.js,
// overlay.js, video.js and list.js draw what they are given.

import { getJSON, postJSON, urls } from "./api.js";
import { renderList } from "./list.js";
import { drawRegions } from "./overlay.js";
import { deleteSelected, pointerHandler, setRange } from "./pointer.js";
import { photoRegions, videoRegions } from "./regions.js";
import { $, corrections, current, hooks, say, selectedAdded, setState, state, which } from "./state.js";
import { Timeline } from "./video.js";
import { Viewer } from "./viewer.js";

const viewer = new Viewer({
  stage: $("stage"), canvas: $("canvas"), preview: $("preview"), detail: $("detail"), overlay: $("overlay"),
  onZoom: (scale, fit) => {
    $("zoom").textContent = Math.abs(scale - fit) < 1e-3 ? "fit" : `${Math.round(scale * 100)}%`;
  },
});
const timeline = new Timeline($("timeline"), (frame) => showFrame(frame));

function redraw() {
  const detail = current();
  if (!detail || !viewer.width) {
    $("overlay").replaceChildren();
    return;
  }
  const corr = corrections(detail);
  const regions = state.video ? videoRegions(detail, corr) : photoRegions(detail, corr);
  state.regions = regions;
  drawRegions($("overlay"), regions, state.selected);
  const selected = selectedAdded();
  $("delete").disabled = !selected;
  $("set-start").disabled = $("set-end").disabled = !(selected && state.video);
  if (state.video) {
    const keptTracks = new Set(corr.keep.filter((k) => k.track !== undefined).map((k) => k.track));
    timeline.draw(state.video.info, {
      keep: [...corr.keep.filter((k) => k.track === undefined), ...detail.corrections.folder.keep],
      add: [...corr.add, ...detail.corrections.folder.add],
      keptTracks, index: state.video.index, lowScore: state.batch.low_score,
    });
  }
  renderList($("file-list"), state.files, state.currentId, new Set(state.edits.keys()), openFile);
}


hooks.redraw = redraw;

// ---------- opening files and frames ----------

function facts(detail) {
  const box = $("facts");
  box.replaceChildren();
  const line = (text, cls) => {
    const p = document.createElement("div");
    if (cls) p.className = cls;
    p.textContent = text;
    box.append(p);
  };
  line(`${detail.source} → ${detail.output ?? "no output"}`);
  if (detail.status !== "ok") line(`FAILED: ${detail.reason}`, "reason");
  line(`corrections: ${detail.corrections.path}${detail.corrections.digest ? "" : " (none yet)"}`);
  if (detail.corrections.error) line(detail.corrections.error, "reason");
  for (const note of detail.notes) line(note);
}

async function openFile(id, { keepView = false } = {}) {
  state.currentId = id;
  state.selected = null;
  let detail = state.details.get(id);
  if (!detail) {
    detail = await getJSON(urls.file(id));
    state.details.set(id, detail);
  }
  $("stage").dataset.file = detail.source;
  facts(detail);
  const playable = detail.status === "ok" && detail.width;
  $("empty").hidden = Boolean(playable);
  $("canvas").hidden = !playable;
  if (!playable) {
    state.video = null;
    $("video-bar").hidden = true;
    viewer.width = 0;
    redraw();
    return;
  }
  if (detail.kind === "video") {
    const info = await getJSON(urls.video(id));
    const index = keepView && state.video ? Math.min(state.video.index, info.times.length - 1) : 0;
    state.video = { info, index, masks: null };
    $("video-bar").hidden = false;
    $("scrubber").max = String(Math.max(0, info.times.length - 1));
    await showFrame(index, { fitView: !keepView });
  } else {
    state.video = null;
    $("video-bar").hidden = true;
    const cropUrl = (x, y, w, h, out) => urls.crop(id, { which: which(), x, y, w, h, out, v: detail.version });
    viewer.show(detail.width, detail.height, urls.picture(id, which(), detail.version), cropUrl, { keepView });
  }
  redraw();
}

async function showFrame(index, { fitView = false } = {}) {
  const detail = current();
  if (!detail || !state.video) return;
  const frames = state.video.info.times.length;
  index = Math.max(0, Math.min(frames - 1, index));
  state.video.index = index;
  $("scrubber").value = String(index);
  $("frame-label").textContent = `frame ${index} / ${frames - 1} · ${(state.video.info.times[index] ?? 0).toFixed(2)} s`;
  const id = detail.id;
  const cropUrl = (x, y, w, h, out) => urls.crop(id, { which: which(), frame: index, x, y, w, h, out, v: detail.version });
  viewer.show(detail.width, detail.height, urls.frame(id, index, which(), detail.version), cropUrl, { keepView: !fitView });
  const token = ++state.frameToken;
  const masks = await getJSON(urls.frameMasks(id, index, detail.version));
  if (token !== state.frameToken) return;
  state.video.masks = masks;
  $("stage").dataset.frame = String(index);
  redraw();
}

// ---------- apply ----------

function strip(region) {
  const out = { ...region };
  delete out.id;
  return out;
}

async function apply() {
  if (!state.edits.size) return;
  const edits = [...state.edits.entries()].map(([id, e]) => ({
    id, digest: e.digest ?? "", add: e.add.map(strip), keep: e.keep.map(strip),
  }));
  setState("applying");
  $("apply").disabled = true;
  say(`applying corrections to ${edits.length} file(s): writing sidecars, re-rendering…`);
  let response;
  try {
    response = await postJSON(urls.apply(), { edits });
  } catch (error) {
    say(`apply failed: ${error.message}`, { error: true });
    $("apply").disabled = false;
    setState("error");
    return;
  }
  const failed = [];
  for (const outcome of response.outcomes) {
    if (outcome.ok) state.edits.delete(outcome.id);
    else failed.push(outcome.message);
  }
  for (const file of response.files) {
    if (!state.edits.has(file.id)) state.details.set(file.id, file);
  }
  const warnings = response.outcomes.flatMap((o) => o.warnings);
  state.batch = await getJSON(urls.batch());
  state.files = state.batch.files;
  await openFile(state.currentId, { keepView: true });
  $("apply").disabled = state.edits.size === 0;
  if (failed.length) {
    say(`not applied: ${failed.join(" · ")}`, { error: true });
    setState("error");
  } else {
    say(`applied: ${response.outcomes.length} file(s) re-rendered and checked${warnings.length ? `; ${warnings.join(" · ")}` : ""}`);
    setState("applied");
  }
}

// ---------- tools and keys ----------

function setTool(tool) {
  state.tool = tool;
  $("tool-add").setAttribute("aria-pressed", String(tool === "add"));
  $("stage").classList.toggle("adding", tool === "add");
}

function setShape(shape) {
  state.shape = shape;
  $("shape").textContent = `Shape: ${shape}`;
}

function setOriginal(on) {
  state.original = on;
  $("original").checked = on;
  $("original-label").hidden = !on;
  if (state.currentId) {
    if (state.video) showFrame(state.video.index);
    else openFile(state.currentId, { keepView: true });
  }
}

function step(delta, suspectsOnly = false) {
  const list = state.files;
  if (!list.length) return;
  let at = list.findIndex((f) => f.id === state.currentId);
  for (let i = 0; i < list.length; i += 1) {
    at = (at + delta + list.length) % list.length;
    if (!suspectsOnly || list[at].flags.length) {
      openFile(list[at].id);
      return;
    }
  }
}

function key(event) {
  if (event.target instanceof HTMLInputElement && event.target.type !== "checkbox" && event.key.startsWith("Arrow")) return;
  const pan = 0.1 * $("stage").clientWidth;
  const actions = {
    n: () => step(1), p: () => step(-1), s: () => step(1, true),
    a: () => setTool(state.tool === "add" ? "select" : "add"),
    e: () => setShape(state.shape === "box" ? "ellipse" : "box"),
    o: () => setOriginal(!state.original),
    "+": () => viewer.zoomBy(1.25), "=": () => viewer.zoomBy(1.25), "-": () => viewer.zoomBy(0.8),
    0: () => viewer.fit(), 1: () => viewer.zoomTo(1),
    ArrowLeft: () => viewer.panBy(pan, 0), ArrowRight: () => viewer.panBy(-pan, 0),
    ArrowUp: () => viewer.panBy(0, pan), ArrowDown: () => viewer.panBy(0, -pan),
    ",": () => state.video && showFrame(state.video.index - 1), ".": () => state.video && showFrame(state.video.index + 1),
    "[": () => setRange("start"), "]": () => setRange("end"),
    Delete: deleteSelected, Backspace: deleteSelected,
    Escape: () => { setTool("select"); state.selected = null; redraw(); },
  };
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    apply();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const action = actions[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
}

function wire() {
  $("stage").addEventListener("pointerdown", pointerHandler(viewer));
  $("tool-add").addEventListener("click", () => setTool(state.tool === "add" ? "select" : "add"));
  $("shape").addEventListener("click", () => setShape(state.shape === "box" ? "ellipse" : "box"));
  $("delete").addEventListener("click", deleteSelected);
  $("original").addEventListener("change", (e) => setOriginal(e.target.checked));
  $("zoom-in").addEventListener("click", () => viewer.zoomBy(1.25));
  $("zoom-out").addEventListener("click", () => viewer.zoomBy(0.8));
  $("fit").addEventListener("click", () => viewer.fit());
  $("actual").addEventListener("click", () => viewer.zoomTo(1));
  $("apply").addEventListener("click", apply);
  $("scrubber").addEventListener("input", (e) => showFrame(Number(e.target.value)));
  $("prev-frame").addEventListener("click", () => state.video && showFrame(state.video.index - 1));
  $("next-frame").addEventListener("click", () => state.video && showFrame(state.video.index + 1));
  $("set-start").addEventListener("click", () => setRange("start"));
  $("set-end").addEventListener("click", () => setRange("end"));
  document.addEventListener("keydown", key);
  window.addEventListener("beforeunload", (event) => {
    if (state.edits.size) event.preventDefault();
  });
}

async function main() {
  wire();
  try {
    state.batch = await getJSON(urls.batch());
  } catch (error) {
    say(`cannot load the batch: ${error.message}`, { error: true });
    setState("error");
    return;
  }
  state.files = state.batch.files;
  $("batch-info").textContent = `${state.files.length} file(s) written to ${state.batch.output}`;
  renderList($("file-list"), state.files, null, new Set(), openFile);
  if (state.files.length) await openFile(state.files[0].id);
  setState("ready");
}

main();
