// The picture: zoom and pan from fit-to-window to 4x actual pixels over a downscaled preview, with a
// full-resolution crop of the part in view fetched once the view settles. The overlay (masks and
// regions) lives in the picture's own pixel coordinates, so it moves and scales with it.

const MAX_ZOOM = 4;
const WHEEL_STEP = 1.0015;
const SETTLE_MS = 180;

export class Viewer {
  constructor({ stage, canvas, preview, detail, overlay, onZoom }) {
    Object.assign(this, { stage, canvas, preview, detail, overlay, onZoom });
    this.width = 0;
    this.height = 0;
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.cropUrl = null; // (x, y, w, h, out) -> URL of a full-resolution crop, or null
    this.settle = null;
    this.cropToken = 0;
    this.stage.addEventListener("wheel", (event) => this.wheel(event), { passive: false });
    // Once the preview is in, its resolution is known: fetch a crop if the view already needs one.
    this.preview.addEventListener("load", () => {
      this.stage.dataset.picture = "ready";
      this.apply();
    });
    new ResizeObserver(() => this.keepInView()).observe(this.stage);
  }

  // Show a picture of `width` x `height` pixels: `previewUrl` at once, crops from `cropUrl` on zoom.
  show(width, height, previewUrl, cropUrl, { keepView = false } = {}) {
    const sameSize = width === this.width && height === this.height;
    this.width = width;
    this.height = height;
    this.cropUrl = cropUrl;
    for (const el of [this.canvas, this.preview, this.overlay]) {
      el.style.width = `${width}px`;
      el.style.height = `${height}px`;
    }
    this.overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.overlay.setAttribute("width", String(width));
    this.overlay.setAttribute("height", String(height));
    this.detail.hidden = true;
    this.cropToken += 1;
    if (this.preview.getAttribute("src") !== previewUrl) {
      this.stage.dataset.picture = "loading";
      this.preview.src = previewUrl;
    }
    if (!(keepView && sameSize)) this.fit();
    else this.apply();
  }

  fitScale() {
    const r = this.stage.getBoundingClientRect();
    if (!this.width || !this.height || !r.width || !r.height) return 1;
    return Math.min(r.width / this.width, r.height / this.height);
  }

  fit() {
    const r = this.stage.getBoundingClientRect();
    this.scale = this.fitScale();
    this.tx = (r.width - this.width * this.scale) / 2;
    this.ty = (r.height - this.height * this.scale) / 2;
    this.apply();
  }

  // Zoom to `scale`, keeping the picture point under (sx, sy) (stage pixels; default: the centre) still.
  zoomTo(scale, sx, sy) {
    const r = this.stage.getBoundingClientRect();
    const low = Math.min(this.fitScale(), 1);
    const high = Math.max(MAX_ZOOM, this.fitScale());
    const next = Math.min(high, Math.max(low, scale));
    const cx = sx ?? r.width / 2, cy = sy ?? r.height / 2;
    const px = (cx - this.tx) / this.scale, py = (cy - this.ty) / this.scale;
    this.scale = next;
    this.tx = cx - px * next;
    this.ty = cy - py * next;
    this.apply();
  }

  zoomBy(factor, sx, sy) {
    this.zoomTo(this.scale * factor, sx, sy);
  }

  panBy(dx, dy) {
    this.tx += dx;
    this.ty += dy;
    this.apply();
  }

  wheel(event) {
    if (!this.width) return;
    event.preventDefault();
    const r = this.stage.getBoundingClientRect();
    this.zoomBy(Math.pow(WHEEL_STEP, -event.deltaY), event.clientX - r.left, event.clientY - r.top);
  }

  keepInView() {
    if (this.width) this.apply();
  }

  // Picture pixels under a pointer event.
  toPicture(event) {
    const r = this.stage.getBoundingClientRect();
    return [(event.clientX - r.left - this.tx) / this.scale, (event.clientY - r.top - this.ty) / this.scale];
  }

  apply() {
    // Keep some of the picture in view whatever the pan.
    const r = this.stage.getBoundingClientRect();
    const w = this.width * this.scale, h = this.height * this.scale;
    const margin = 40;
    this.tx = Math.min(r.width - margin, Math.max(margin - w, this.tx));
    this.ty = Math.min(r.height - margin, Math.max(margin - h, this.ty));
    this.canvas.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
    this.overlay.style.fontSize = `${13 / this.scale}px`;
    this.stage.dataset.scale = this.scale.toFixed(4);
    if (this.onZoom) this.onZoom(this.scale, this.fitScale());
    clearTimeout(this.settle);
    this.settle = setTimeout(() => this.loadCrop(), SETTLE_MS);
  }

  // The preview holds this many preview pixels per picture pixel.
  previewDensity() {
    const natural = this.preview.naturalWidth;
    return natural && this.width ? natural / this.width : 1;
  }

  loadCrop() {
    if (!this.cropUrl || !this.width) return;
    const ratio = window.devicePixelRatio || 1;
    const density = this.previewDensity();
    // A preview at full resolution already holds every pixel: no crop can show more.
    if (density >= 0.999 || this.scale * ratio <= density * 1.05) {
      this.detail.hidden = true;
      return;
    }
    const r = this.stage.getBoundingClientRect();
    const x0 = Math.max(0, Math.floor(-this.tx / this.scale));
    const y0 = Math.max(0, Math.floor(-this.ty / this.scale));
    const x1 = Math.min(this.width, Math.ceil((r.width - this.tx) / this.scale));
    const y1 = Math.min(this.height, Math.ceil((r.height - this.ty) / this.scale));
    if (x1 <= x0 || y1 <= y0) return;
    const out = Math.max(1, Math.round((x1 - x0) * this.scale * ratio));
    const url = this.cropUrl(x0, y0, x1 - x0, y1 - y0, out);
    const token = ++this.cropToken;
    const img = new Image();
    img.onload = () => {
      if (token !== this.cropToken) return;
      this.detail.src = img.src;
      Object.assign(this.detail.style, {
        left: `${x0}px`, top: `${y0}px`, width: `${x1 - x0}px`, height: `${y1 - y0}px`,
      });
      this.detail.hidden = false;
    };
    img.src = url;
  }
}
