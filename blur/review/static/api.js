// Talking to the review server. Every request is same-origin: the session cookie goes along, and
// the browser adds the Origin header the server checks on apply.

async function failure(response) {
  const text = await response.text();
  try {
    const data = JSON.parse(text);
    if (data && data.error) return data.error;
  } catch (_) { /* plain text */ }
  return `${response.status} ${text.trim()}`;
}

export async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(await failure(response));
  return response.json();
}

export async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    cache: "no-store",
  });
  if (!response.ok) throw new Error(await failure(response));
  return response.json();
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) search.set(key, String(value));
  }
  return search.toString();
}

export const urls = {
  batch: () => "/api/batch",
  file: (id) => `/api/files/${encodeURIComponent(id)}`,
  video: (id) => `/api/files/${encodeURIComponent(id)}/video`,
  picture: (id, which, version) => `/api/files/${encodeURIComponent(id)}/picture?${query({ which, v: version })}`,
  frame: (id, index, which, version) =>
    `/api/files/${encodeURIComponent(id)}/frames/${index}?${query({ which, v: version })}`,
  frameMasks: (id, index, version) => `/api/files/${encodeURIComponent(id)}/frames/${index}/masks?${query({ v: version })}`,
  crop: (id, params) => `/api/files/${encodeURIComponent(id)}/crop?${query(params)}`,
  apply: () => "/api/apply",
};
