// A video's timeline: every track as a bar from its first to its last masked frame, kept and added
// regions as bars over their time range, scene cuts, and the current frame. Clicking a bar jumps to it.

const SVG = "http://www.w3.org/2000/svg";
const LANE = 7;

function el(name, attrs) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

// The frame shown at `time` seconds: the last frame starting at or before it.
export function frameAt(times, time) {
  let lo = 0, hi = times.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (times[mid] <= time + 1e-6) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export class Timeline {
  constructor(svg, onSeek) {
    this.svg = svg;
    this.onSeek = onSeek;
  }

  draw(info, { keep, add, keptTracks, index, lowScore }) {
    const svg = this.svg;
    const width = svg.clientWidth || 800;
    const height = svg.clientHeight || 90;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    const frames = Math.max(1, info.times.length);
    const x = (frame) => (frame / Math.max(1, frames - 1)) * (width - 4) + 2;
    const xt = (time) => x(frameAt(info.times, time));
    const lastTime = info.times[info.times.length - 1] ?? 0;
    let row = 0;
    for (const [list, cls] of [[keep, "keep"], [add, "add"]]) {
      for (const region of list) {
        const start = region.start ?? 0, end = region.end ?? lastTime;
        const bar = el("rect", { class: cls, x: xt(start), y: 2 + row * LANE, width: Math.max(2, xt(end) - xt(start)), height: LANE - 2 });
        bar.addEventListener("click", () => this.onSeek(frameAt(info.times, start)));
        svg.append(bar);
        row = (row + 1) % 3;
      }
    }
    const top = 2 + 3 * LANE + 4;
    const lanes = Math.max(1, Math.floor((height - top) / LANE));
    const ends = [];
    for (const span of info.spans) {
      let lane = ends.findIndex((end) => end < span.first);
      if (lane < 0) lane = ends.length < lanes ? ends.length : span.id % lanes;
      ends[lane] = span.last;
      const bar = el("rect", {
        class: `track${span.score < lowScore ? " low" : ""}${keptTracks.has(span.id) ? " keep" : ""}`,
        x: x(span.first), y: top + lane * LANE, width: Math.max(2, x(span.last) - x(span.first)), height: LANE - 2,
        "data-track": span.id,
      });
      const title = el("title", {});
      title.textContent = `track ${span.id}: frames ${span.first}–${span.last}, best score ${span.score}`;
      bar.append(title);
      bar.addEventListener("click", () => this.onSeek(span.first));
      svg.append(bar);
    }
    for (const cut of info.cuts) svg.append(el("line", { class: "cut", x1: x(cut), x2: x(cut), y1: 0, y2: height }));
    svg.append(el("line", { class: "cursor", x1: x(index), x2: x(index), y1: 0, y2: height }));
  }
}
