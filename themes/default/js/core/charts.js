// Canvas chart helpers: sharp canvases on high-DPI screens, stacked bars,
// squarified treemaps, and hit testing on the rectangles they drew.
'use strict';
(function (GG) {
  const charts = {};

  // Sizes `canvas` to `w`×`h` CSS pixels at the device's pixel ratio and
  // returns a context that draws in CSS pixels.
  charts.setup = function (canvas, w, h) {
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(w * dpr));
    canvas.height = Math.max(1, Math.round(h * dpr));
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  };

  // Bars of stacked parts. bars: [{label, parts: [{value, color, data}]}].
  // Returns hit rectangles {x, y, w, h, bar, part}.
  charts.stackedBars = function (ctx, box, bars, opts = {}) {
    const hits = [];
    const max = opts.max || Math.max(1, ...bars.map((b) => b.parts.reduce((s, p) => s + p.value, 0)));
    const n = bars.length;
    const slot = box.w / Math.max(1, n);
    const gap = slot > 6 ? Math.min(4, slot * 0.2) : 0;
    bars.forEach((bar, bi) => {
      let y = box.y + box.h;
      const x = box.x + bi * slot + gap / 2;
      const w = Math.max(1, slot - gap);
      bar.parts.forEach((part, pi) => {
        const h = (part.value / max) * box.h;
        y -= h;
        ctx.fillStyle = part.color;
        ctx.fillRect(x, y, w, h);
        hits.push({ x, y, w, h, bar: bi, part: pi });
      });
      if (opts.selected === bi) {
        ctx.strokeStyle = opts.selectedColor || '#f5a524';
        ctx.lineWidth = 2;
        ctx.strokeRect(x - 1, y - 1, w + 2, box.y + box.h - y + 2);
      }
    });
    return hits;
  };

  // Squarified treemap (Bruls, Huizing, van Wijk 2000) of `values` in the
  // rectangle; returns [{i, x, y, w, h}] in input order of placement.
  charts.squarify = function (values, x, y, w, h) {
    const items = values.map((v, i) => ({ v, i })).filter((d) => d.v > 0).sort((a, b) => b.v - a.v);
    const total = items.reduce((s, d) => s + d.v, 0);
    const out = [];
    if (total <= 0 || w <= 0 || h <= 0) return out;
    const scale = (w * h) / total;
    let rect = { x, y, w, h };
    let row = [];
    const worst = (r, side) => {
      const s = r.reduce((a, d) => a + d.v * scale, 0);
      let mx = 0, mn = Infinity;
      for (const d of r) { mx = Math.max(mx, d.v * scale); mn = Math.min(mn, d.v * scale); }
      return Math.max((side * side * mx) / (s * s), (s * s) / (side * side * mn));
    };
    const layoutRow = (r) => {
      const area = r.reduce((a, d) => a + d.v * scale, 0);
      if (rect.w >= rect.h) {
        const colW = area / rect.h;
        let yy = rect.y;
        for (const d of r) {
          const hh = (d.v * scale) / colW;
          out.push({ i: d.i, x: rect.x, y: yy, w: colW, h: hh });
          yy += hh;
        }
        rect = { x: rect.x + colW, y: rect.y, w: rect.w - colW, h: rect.h };
      } else {
        const rowH = area / rect.w;
        let xx = rect.x;
        for (const d of r) {
          const ww = (d.v * scale) / rowH;
          out.push({ i: d.i, x: xx, y: rect.y, w: ww, h: rowH });
          xx += ww;
        }
        rect = { x: rect.x, y: rect.y + rowH, w: rect.w, h: rect.h - rowH };
      }
    };
    for (const d of items) {
      const side = Math.min(rect.w, rect.h);
      if (row.length === 0 || worst(row.concat([d]), side) <= worst(row, side)) row.push(d);
      else { layoutRow(row); row = [d]; }
    }
    if (row.length) layoutRow(row);
    return out;
  };

  // The last rectangle containing (x, y), or null.
  charts.hit = function (rects, x, y) {
    for (let i = rects.length - 1; i >= 0; i--) {
      const r = rects[i];
      if (x >= r.x && x <= r.x + r.w && y >= r.y && y <= r.y + r.h) return r;
    }
    return null;
  };

  // Mouse position in CSS pixels relative to an element.
  charts.pointer = function (ev, elem) {
    const b = elem.getBoundingClientRect();
    return { x: ev.clientX - b.left, y: ev.clientY - b.top };
  };

  GG.charts = charts;
})(window.GG);
