// Boxes are [x1, y1, x2, y2] in the picture's pixels, as in the sidecars.

export const KEEP_INSIDE = 0.6; // as blur.corrections.KEEP_INSIDE: a face mostly inside a keep region stays visible

export function area(b) {
  return Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]);
}

export function insideShare(inner, outer) {
  const w = Math.min(inner[2], outer[2]) - Math.max(inner[0], outer[0]);
  const h = Math.min(inner[3], outer[3]) - Math.max(inner[1], outer[1]);
  return w > 0 && h > 0 ? (w * h) / Math.max(area(inner), 1e-6) : 0;
}

export function grow(b, factor) {
  const cx = (b[0] + b[2]) / 2, cy = (b[1] + b[3]) / 2;
  const hw = ((b[2] - b[0]) * factor) / 2, hh = ((b[3] - b[1]) * factor) / 2;
  return [cx - hw, cy - hh, cx + hw, cy + hh];
}

export function clampBox(b, width, height) {
  return [
    Math.max(0, Math.min(width, b[0])), Math.max(0, Math.min(height, b[1])),
    Math.max(0, Math.min(width, b[2])), Math.max(0, Math.min(height, b[3])),
  ];
}

export function round1(b) {
  return b.map((v) => Math.round(v * 10) / 10);
}

// A region's box at `time` seconds (null: a photo): interpolated between keyframes as blur.regions does.
export function boxAt(region, time) {
  const frames = region.keyframes;
  if (!frames || !frames.length || time === null) return region.box || (frames && frames[0].box);
  if (time <= frames[0].time) return frames[0].box;
  const last = frames[frames.length - 1];
  if (time >= last.time) return last.box;
  let i = 1;
  while (frames[i].time < time) i += 1;
  const a = frames[i - 1], b = frames[i];
  const w = (time - a.time) / (b.time - a.time);
  return a.box.map((v, k) => v + (b.box[k] - v) * w);
}

export function activeAt(region, time) {
  if (time === null) return true;
  return (region.start == null || time >= region.start - 1e-6) && (region.end == null || time <= region.end + 1e-6);
}

// Move a region on a video at `time`: it becomes (or stays) a region moving by keyframes, with one here.
export function withKeyframe(region, time, box) {
  const frames = region.keyframes
    ? region.keyframes.map((k) => ({ time: k.time, box: k.box }))
    : [{ time: region.start ?? 0, box: region.box }];
  const at = frames.findIndex((k) => Math.abs(k.time - time) < 1e-6);
  if (at >= 0) frames[at] = { time, box };
  else frames.push({ time, box });
  frames.sort((a, b) => a.time - b.time);
  const out = { ...region, keyframes: frames };
  delete out.box;
  return out;
}

export function translate(b, dx, dy) {
  return [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy];
}
