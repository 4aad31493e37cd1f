// Corrections by pointer: click a mask to keep it (again to undo), drag to add a region, drag an added
// region to move it (on a video: a keyframe), delete it, set its start and end.

import { KEEP_INSIDE, boxAt, clampBox, grow, insideShare, round1, translate, withKeyframe } from "./geometry.js";
import { clearRubberBand, rubberBand } from "./overlay.js";
import { $, corrections, current, edit, hooks, newId, say, selectedAdded, state, time } from "./state.js";

const MIN_REGION = 3;
const redraw = () => hooks.redraw();

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

export function deleteSelected() {
  const detail = current();
  const region = selectedAdded();
  if (!detail || !region) return;
  const corr = edit(detail);
  if (!corr) return;
  corr.add = corr.add.filter((a) => a.id !== region.id);
  state.selected = null;
  redraw();
}

export function setRange(which) {
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

// The stage's pointerdown handler for `viewer`.
export function pointerHandler(viewer) {
  return (event) => pointerDown(viewer, event);
}

function pointerDown(viewer, event) {
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

