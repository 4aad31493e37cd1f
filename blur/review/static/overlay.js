// Masks and regions drawn over the picture as SVG, each an element carrying the automation hooks:
// data-region="ID" and data-kind="detected" | "kept" | "added" | "second-pass".

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

function outline(shape, b) {
  if (shape === "ellipse") {
    return el("ellipse", {
      class: "shape", cx: (b[0] + b[2]) / 2, cy: (b[1] + b[3]) / 2,
      rx: Math.max(0.5, (b[2] - b[0]) / 2), ry: Math.max(0.5, (b[3] - b[1]) / 2),
    });
  }
  return el("rect", {
    class: "shape", x: b[0], y: b[1], width: Math.max(1, b[2] - b[0]), height: Math.max(1, b[3] - b[1]),
  });
}

// Draw `regions` ({id, kind, shape, box, label, classes, track}) into `svg`, replacing what was there.
export function drawRegions(svg, regions, selected) {
  const rubber = svg.querySelector(".rubber");
  svg.replaceChildren();
  for (const region of regions) {
    const group = el("g", { "data-region": region.id, "data-kind": region.kind });
    if (region.track !== undefined) group.setAttribute("data-track", String(region.track));
    for (const name of region.classes || []) group.classList.add(name);
    if (region.id === selected) group.classList.add("selected");
    group.append(outline(region.shape, region.box));
    if (region.label) {
      const text = el("text", { x: region.box[0], y: region.box[1] });
      text.setAttribute("dy", "-0.35em");
      text.textContent = region.label;
      group.append(text);
    }
    svg.append(group);
  }
  if (rubber) svg.append(rubber);
}

// The dashed box shown while dragging out a new region.
export function rubberBand(svg, box, shape) {
  let node = svg.querySelector(".rubber");
  if (node && node.tagName !== (shape === "ellipse" ? "ellipse" : "rect")) {
    node.remove();
    node = null;
  }
  const fresh = outline(shape, box);
  fresh.setAttribute("class", "rubber");
  if (node) node.replaceWith(fresh);
  else svg.append(fresh);
}

export function clearRubberBand(svg) {
  const node = svg.querySelector(".rubber");
  if (node) node.remove();
}
