// The page's state and the helpers every part uses: the current file, its corrections as edited here.

export const $ = (id) => document.getElementById(id);

export const state = {
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
  regions: [],
};

// Set by main.js: draw everything again after a change.
export const hooks = { redraw: () => {} };

export function setState(name) {
  document.body.dataset.state = name;
}

export function say(text, { error = false } = {}) {
  const box = $("message");
  box.textContent = text;
  box.classList.toggle("error", error);
  box.hidden = !text;
}

export function current() {
  return state.details.get(state.currentId) || null;
}

export function which() {
  return state.original ? "original" : "output";
}

// ---------- corrections of a file (its own sidecar's, as edited here) ----------

function clone(value) {
  return JSON.parse(JSON.stringify(value));
}

export function corrections(detail) {
  const edit = state.edits.get(detail.id);
  if (edit) return edit;
  const own = detail.corrections.own || { add: [], keep: [] };
  return { digest: detail.corrections.digest, add: own.add, keep: own.keep };
}

export function edit(detail) {
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

export function newId() {
  state.counter += 1;
  return `new${state.counter}`;
}


export function time() {
  return state.video ? state.video.info.times[state.video.index] ?? 0 : null;
}


export function selectedAdded() {
  const detail = current();
  if (!detail || !state.selected) return null;
  return corrections(detail).add.find((a) => a.id === state.selected) || null;
}
