// infnet report viewer: decodes the embedded slice images, applies the window and draws the overlay.
(function () {
  const D = JSON.parse(document.getElementById("viewer-data").textContent);
  const n = D.slices.length;
  const cv = document.getElementById("view");
  const ctx = cv.getContext("2d");
  const sl = document.getElementById("slice");
  const ov = document.getElementById("overlay");
  const op = document.getElementById("opacity");
  const win = document.getElementById("window");
  const info = document.getElementById("sliceinfo");
  const cache = new Map();
  let cur = 0, token = 0, shown = -1, checksum = 0;
  D.presets.forEach((p, i) => {
    const o = document.createElement("option");
    o.value = i;
    o.textContent = p.name;
    win.appendChild(o);
  });

  // One channel of an embedded image as a Uint8Array (grey values, or label codes).
  function decode(url, w, h) {
    return new Promise((resolve, reject) => {
      const im = new Image();
      im.onload = () => {
        const c = document.createElement("canvas");
        c.width = w;
        c.height = h;
        const x = c.getContext("2d");
        x.drawImage(im, 0, 0, w, h);
        const d = x.getImageData(0, 0, w, h).data;
        const a = new Uint8Array(w * h);
        for (let i = 0; i < a.length; i++) a[i] = d[4 * i];
        resolve(a);
      };
      im.onerror = () => reject(new Error("cannot decode slice image"));
      im.src = url;
    });
  }

  function load(i) {
    if (!cache.has(i)) {
      const s = D.slices[i];
      cache.set(i, Promise.all([decode(s.g, s.w, s.h), decode(s.m, s.w, s.h)]));
    }
    return cache.get(i);
  }

  // Stored grey -> displayed grey for the chosen window preset.
  function lut() {
    const p = D.presets[+win.value || 0], st = D.store, t = new Uint8Array(256), lo = p.level - p.width / 2;
    for (let g = 0; g < 256; g++) {
      const hu = st.level - st.width / 2 + (g * st.width) / 255;
      t[g] = Math.max(0, Math.min(255, Math.round(((hu - lo) * 255) / p.width)));
    }
    return t;
  }

  async function render() {
    const i = cur, my = ++token, s = D.slices[i];
    const [g, m] = await load(i);
    if (my !== token) return; // a newer slice was asked for meanwhile
    cv.width = s.w;
    cv.height = s.h;
    const scale = Math.min(512 / s.mm[0], 512 / s.mm[1]); // physical aspect ratio, at most 512 px
    cv.style.width = Math.round(s.mm[0] * scale) + "px";
    cv.style.height = Math.round(s.mm[1] * scale) + "px";
    const img = ctx.createImageData(s.w, s.h), d = img.data, t = lut(), on = ov.checked, a = +op.value / 100;
    let sum = 0;
    for (let k = 0; k < g.length; k++) {
      let r = t[g[k]], gg = r, b = r;
      const L = m[k];
      if (on && L & 128) {
        r = 0; gg = 220; b = 255;
      } else if (on && L & 127) {
        const c = D.classes[(L & 127) - 1];
        if (c) {
          r = r * (1 - a) + c.rgb[0] * a;
          gg = gg * (1 - a) + c.rgb[1] * a;
          b = b * (1 - a) + c.rgb[2] * a;
        }
      }
      d[4 * k] = r; d[4 * k + 1] = gg; d[4 * k + 2] = b; d[4 * k + 3] = 255;
      sum += r + gg + b;
    }
    ctx.putImageData(img, 0, 0);
    shown = i;
    checksum = sum;
    const z = D.z_mm ? ", z " + D.z_mm[i].toFixed(1) + " mm" : "";
    const name = D.names ? " " + D.names[i] : "";
    info.textContent = "slice " + i + " / " + (n - 1) + name + z;
    const mark = document.getElementById("plotmark");
    if (mark) mark.style.left = (100 * (64 + ((i + 0.5) * (720 - 76)) / n)) / 720 + "%";
    document.body.dataset.slice = i;
    if (i + 1 < n) load(i + 1); // decode the neighbours ahead of scrolling
    if (i > 0) load(i - 1);
  }

  function show(i) {
    cur = Math.max(0, Math.min(n - 1, i | 0));
    sl.value = cur;
    return render();
  }

  sl.max = n - 1;
  sl.addEventListener("input", () => show(+sl.value));
  ov.addEventListener("change", render);
  op.addEventListener("input", render);
  win.addEventListener("change", render);
  cv.addEventListener("wheel", (e) => { e.preventDefault(); show(cur + (e.deltaY > 0 ? 1 : -1)); }, { passive: false });
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "SELECT") return;
    const k = e.key;
    const steps = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1, PageUp: 10, PageDown: -10 };
    if (k in steps) { show(cur + steps[k]); e.preventDefault(); }
    else if (k === "Home") show(0);
    else if (k === "End") show(n - 1);
    else if (k === "o") { ov.checked = !ov.checked; render(); }
    else if (k >= "1" && k <= String(D.presets.length)) { win.value = +k - 1; render(); }
  });
  const plot = document.getElementById("plot");
  if (plot) plot.addEventListener("click", (e) => {
    const r = plot.getBoundingClientRect();
    const x = ((e.clientX - r.left) / r.width) * 720;
    show(Math.floor(((x - 64) / (720 - 76)) * n));
  });
  window.infnetViewer = { show, state: () => ({ slice: shown, checksum: checksum, slices: n }) };
  show(+(D.start || 0));
})();
