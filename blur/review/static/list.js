// The file list: files to check first on top (failed, second-pass finds, kept faces, low-confidence
// masks, no face found), each with its face count and why it needs a look.

const LABELS = { failed: "failed", second: "second pass", kept: "kept visible", low: "low confidence", none: "no face" };

export function renderList(ol, files, currentId, edited, onOpen) {
  ol.replaceChildren();
  for (const file of files) {
    const li = document.createElement("li");
    li.dataset.fileId = file.id;
    if (file.id === currentId) li.classList.add("current");
    const button = document.createElement("button");
    button.type = "button";
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = file.source;
    const count = document.createElement("div");
    count.className = "count";
    const unit = file.kind === "video" ? `face detections in ${file.tracks ?? 0} track(s)` : "face(s)";
    count.textContent = file.status === "failed" ? "failed" : `${file.faces} ${unit}`;
    const flags = document.createElement("div");
    for (const flag of file.flags) {
      const badge = document.createElement("span");
      badge.className = `flag ${flag}`;
      badge.textContent = LABELS[flag] || flag;
      flags.append(badge);
    }
    if (edited.has(file.id)) {
      const badge = document.createElement("span");
      badge.className = "flag edited";
      badge.textContent = "edited, not applied";
      flags.append(badge);
    }
    button.append(name, count, flags);
    button.addEventListener("click", () => onOpen(file.id));
    li.append(button);
    ol.append(li);
  }
}

export function isSuspect(file) {
  return file.flags.some((flag) => flag !== "none") || file.flags.includes("none");
}
