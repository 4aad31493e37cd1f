// What is drawn over the picture: masks, kept and added regions, as descriptors for overlay.js.

import { KEEP_INSIDE, activeAt, boxAt, insideShare } from "./geometry.js";
import { state, time } from "./state.js";

export function photoRegions(detail, corr) {
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

export function videoRegions(detail, corr) {
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

