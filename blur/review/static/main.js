// The review page: the file list, the picture with its masks, corrections by pointer, apply.
// State changes only here; viewer.js, overlay.js, video.js and list.js draw what they are given.

import { getJSON, postJSON, urls } from "./api.js";
import {
  KEEP_INSIDE, activeAt, boxAt, clampBox, grow, insideShare, round1, translate, withKeyframe,
} from "./geometry.js";
import { renderList } from "./list.js";
import { clearRubberBand, drawRegions, rubberBand } from "./overlay.js";
import { Timeline } from "./video.js";
import { Viewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const MIN_REGION = 3;

const state = {
  batch: null,
  files: [],
  details: new Map(),
  edits: new Map(),
  currentId: null,
  tool: "select",
  shape: "box",
  original: false,
  selected: null,
  video: null,
  counter: 0,
  frameToken: 0,
};

const viewer = new Viewer({
  stage: $("stage"), canvas: $("canvas"), preview: $("preview"), detail: $("detail"), overlay: $("overlay"),
  onZoom: (scale, fit) => {
    $("zoom").textContent = Math.abs(scale - fit) < 1e-3 ? "fit" : `${Math.round(scale * 100)}%`;
  },
});
const timeline = new Timeline($("timeline"), (frame) => showFrame(frame));

function setState(name) {
  document.body.dataset.state = name;
}

function say(text, { error = false } = {}) {
  const box = $("message");
  box.textContent = text;
  box.classList.toggle("error", error);
  box.hidden = !text;
}

function current() {
  return state.details.get(state.currentId) || null;
}

function which() {
  return state.original ? "original" : "output";
}

// ---------- corrections of a file (its own sidecar's, as edited here) ----------

function clone(value) {
  return JSON.parse(JSON.stringify(value));
}

function corrections(detail) {
  const edit = state.edits.get(detail.id);
  if (edit) return edit;
  const own = detail.corrections.own || { add: [], keep: [] };
  return { digest: detail.corrections.digest, add: own.add, keep: own.keep };
}

function edit(detail) {
  if (detail.corrections.error) {
    say(`${detail.corrections.error}: fix the sidecar by hand first`, { error: true });
    return null;
  }
  if (!state.edits.has(detail.id)) {
    const own = detail.corrections.own;
    state.edits.set(detail.id, { digest: detail.corrections.digest, add: clone(own.add), keep: clone(own.keep) });
  }
  setState("ready");
  $("apply").disabled = false;
  return state.edits.get(detail.id);
}

function newId() {
  state.counter += 1;
  return `new${state.counter}`;
}

// ---------- what is drawn ----------

function time() {
  return state.video ? state.video.info.times[state.video.index] ?? 0 : null;
}

function photoRegions(detail, corr) {
  const folder = detail.corrections.folder;
  const keeps = [...corr.keep, ...folder.keep];
  const low = state.batch.low_score;
  const regions = [];
  for (const mask of detail.masks) {
    const kept = keeps.some((k) => k.box && insideShare(mask.box, k.box) >= KEEP_INSIDE);
    const kind = kept ? "kept" : mask.second_pass ? "second-pass" : "detected";
    const classes = kind === "detected" && mask.score < low ? ["low"] : [];
    const label = kept ? "KEPT VISIBLE" : `${mask.second_pass ? "2nd " : ""}${mask.score.toFixed(2)}`;
    regions.push({ id: mask.id, kind, shape: detail.mask_shape, box: mask.outline, label, classes, mask });
  }
  const holds = (k) => detail.masks.some((m) => insideShare(m.box, k.box) >= KEEP_INSIDE);
  for (const [list, locked] of [[corr.keep, false], [folder.keep, true]]) {
    for (const k of list) {
      if (!holds(k)) regions.push({ id: k.id, kind: "kept", shape: "box", box: k.box, label: k.label || "keep", classes: locked ? ["locked"] : [], keep: k, locked });
    }
  }
  addedRegions(regions, corr.add, folder.add, null);
  return regions;
}

function addedRegions(regions, own, shared, at) {
  for (const [list, locked] of [[own, false], [shared, true]]) {
    for (const a of list) {
      if (!activeAt(a, at)) continue;
      regions.push({
        id: a.id, kind: "added", shape: a.shape || "box", box: boxAt(a, at), label: a.label || "added",
        classes: locked ? ["locked"] : [], added: a, locked,
      });
    }
  }
}

function videoRegions(detail, corr) {
  const at = time();
  const folder = detail.corrections.folder;
  const keptTracks = new Set(corr.keep.filter((k) => k.track !== undefined).map((k) => k.track));
  const regions = [];
  for (const t of state.video.masks ? state.video.masks.tracks : []) {
    const kept = keptTracks.has(t.track);
    regions.push({
      id: `t${t.track}`, kind: kept ? "kept" : "detected", shape: detail.mask_shape, box: t.outline, track: t.track,
      label: kept ? `track ${t.track} KEPT` : `track ${t.track} ${t.score.toFixed(2)}`,
      classes: !kept && t.score < state.batch.low_score ? ["low"] : [],
    });
  }
  for (const [list, locked] of [[corr.keep, false], [folder.keep, true]]) {
    for (const k of list) {
      if (k.track !== undefined || !activeAt(k, at)) continue;
      regions.push({ id: k.id, kind: "kept", shape: "box", box: boxAt(k, at), label: k.label || "keep", classes: locked ? ["locked"] : [], keep: k, locked });
    }
  }
  addedRegions(regions, corr.add, folder.add, at);
  return regions;
}

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

function selectedAdded() {
  const detail = current();
  if (!detail || !state.selected) return null;
  return corrections(detail).add.find((a) => a.id === state.selected) || null;
}

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

// ---------- corrections by pointer ----------

function toggleKeep(region) {
  const detail = current();
  if (region.locked) {
    say(`kept by the folder sidecar ${detail.corrections.folder_path}: change it there`, { error: true });
    return;
  }
  const corr = edit(detail);
  if (!corr) return;
  if (state.video) {
    if (region.track !== undefined) {
      const at = corr.keep.findIndex((k) => k.track === region.track);
      if (at >= 0) corr.keep.splice(at, 1);
      else corr.keep.push({ id: newId(), track: region.track, label: `track ${region.track}` });
    } else if (region.keep) {
      corr.keep = corr.keep.filter((k) => k !== region.keep && k.id !== region.keep.id);
    }
  } else if (region.mask) {
    const box = region.mask.box;
    if (region.kind === "kept") {
      const before = corr.keep.length;
      corr.keep = corr.keep.filter((k) => !(k.box && insideShare(box, k.box) >= KEEP_INSIDE));
      if (corr.keep.length === before) say(`kept by the folder sidecar ${detail.corrections.folder_path}: change it there`, { error: true });
    } else {
      corr.keep.push({ id: newId(), box: round1(clampBox(grow(box, 1.2), detail.width, detail.height)), label: "kept in review" });
    }
  } else if (region.keep) {
    corr.keep = corr.keep.filter((k) => k.id !== region.keep.id);
  }
  redraw();
}

function addRegion(box) {
  const detail = current();
  const corr = edit(detail);
  if (!corr) return;
  const region = { id: newId(), box: round1(box), shape: state.shape, label: "added in review" };
  if (state.video) {
    const times = state.video.info.times;
    region.start = times[state.video.index];
    region.end = times[times.length - 1];
  }
  corr.add.push(region);
  state.selected = region.id;
  redraw();
}

function moveAdded(region, dx, dy) {
  const detail = current();
  const corr = edit(detail);
  if (!corr) return;
  const at = corr.add.findIndex((a) => a.id === region.id);
  if (at < 0) return;
  const now = time();
  const moved = clampBox(translate(boxAt(region, now), dx, dy), detail.width, detail.height);
  corr.add[at] = state.video ? withKeyframe(region, now, round1(moved)) : { ...region, box: round1(moved) };
  redraw();
}

function deleteSelected() {
  const detail = current();
  const region = selectedAdded();
  if (!detail || !region) return;
  const corr = edit(detail);
  if (!corr) return;
  corr.add = corr.add.filter((a) => a.id !== region.id);
  state.selected = null;
  redraw();
}

function setRange(which) {
  const region = selectedAdded();
  if (!region || !state.video) return;
  const corr = edit(current());
  if (!corr) return;
  const now = time();
  const updated = { ...region };
  if (which === "start") {
    updated.start = now;
    if (updated.end != null && updated.end < now) updated.end = now;
  } else {
    updated.end = now;
    if (updated.start != null && updated.start > now) updated.start = now;
  }
  corr.add[corr.add.findIndex((a) => a.id === region.id)] = updated;
  redraw();
}

function pointerDown(event) {
  if (event.button !== 0 || !viewer.width) return;
  const stage = $("stage");
  const start = viewer.toPicture(event);
  const startScreen = [event.clientX, event.clientY];
  const target = event.target.closest ? event.target.closest("[data-region]") : null;
  const region = target && state.regions ? state.regions.find((r) => r.id === target.dataset.region) : null;
  stage.setPointerCapture(event.pointerId);
  let moved = false;
  let last = start;
  let box = null;
  const detail = current();
  const move = (e) => {
    const here = viewer.toPicture(e);
    moved = moved || Math.hypot(e.clientX - startScreen[0], e.clientY - startScreen[1]) > 3;
    if (state.tool === "add") {
      box = clampBox([Math.min(start[0], here[0]), Math.min(start[1], here[1]), Math.max(start[0], here[0]), Math.max(start[1], here[1])], detail.width, detail.height);
      rubberBand($("overlay"), box, state.shape);
    } else if (region && region.kind === "added" && !region.locked) {
      if (moved) {
        const live = corrections(detail).add.find((a) => a.id === region.id);
        if (live) moveAdded(live, here[0] - last[0], here[1] - last[1]);
        last = here;
      }
    } else if (!region) {
      stage.classList.add("panning");
      viewer.panBy(e.movementX, e.movementY);
    }
  };
  const up = () => {
    stage.removeEventListener("pointermove", move);
    stage.removeEventListener("pointerup", up);
    stage.removeEventListener("pointercancel", up);
    stage.classList.remove("panning");
    if (state.tool === "add") {
      clearRubberBand($("overlay"));
      if (box && box[2] - box[0] >= MIN_REGION && box[3] - box[1] >= MIN_REGION) addRegion(box);
      return;
    }
    if (!region || moved) return;
    if (region.kind === "added") {
      state.selected = region.locked ? null : region.id;
      if (region.locked) say(`added by the folder sidecar ${detail.corrections.folder_path}: change it there`, { error: true });
      redraw();
    } else {
      toggleKeep(region);
    }
  };
  stage.addEventListener("pointermove", move);
  stage.addEventListener("pointerup", up);
  stage.addEventListener("pointercancel", up);
  event.preventDefault();
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
  $("stage").addEventListener("pointerdown", pointerDown);
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
