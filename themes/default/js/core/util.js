// Shared helpers: DOM building, number formatting, packed-array decoding.
// Every file of the page hangs off the one global `GG`; there is no build
// step and no module loader, so load order is the template's order.
'use strict';
window.GG = window.GG || {};
(function (GG) {
  // Builds an element. Text always goes through textContent, never HTML,
  // because model strings (names, templates) are untrusted.
  GG.el = function (tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'style') Object.assign(e.style, v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  };

  GG.clear = function (e) {
    while (e.firstChild) e.removeChild(e.firstChild);
    return e;
  };

  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  GG.fmtBytes = function (n) {
    let v = Number(n), u = 0;
    while (v >= 1024 && u < UNITS.length - 1) { v /= 1024; u++; }
    return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${UNITS[u]}`;
  };
  GG.fmtCount = function (n) {
    const v = Number(n);
    if (v >= 1e9) return (v / 1e9).toFixed(2) + 'B';
    if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (v >= 1e3) return (v / 1e3).toFixed(1) + 'K';
    return String(v);
  };
  GG.fmtInt = (n) => Number(n).toLocaleString('en-US');
  GG.fmtPct = (x, digits = 1) => (x * 100).toFixed(digits) + '%';
  // Bits per weight are exact rationals (4.5, 6.5625): show them whole.
  GG.fmtBpw = (x) => (Number.isFinite(x) ? String(+x.toFixed(4)) : '–');
  GG.fmtNum = function (x) {
    if (!Number.isFinite(x)) return '–';
    if (x === 0) return '0';
    const a = Math.abs(x);
    if (a >= 1000 || a < 0.001) return x.toExponential(2);
    return String(+x.toPrecision(3));
  };
  GG.clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

  const TYPES = {
    u8: Uint8Array, u16: Uint16Array, i16: Int16Array, u32: Uint32Array,
    i32: Int32Array, f32: Float32Array, f64: Float64Array,
  };
  // Decodes a packed array {dtype, len, b64} (little-endian, like every
  // browser this page runs in) into its typed array.
  GG.unpack = function (p) {
    const bin = atob(p.b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const T = TYPES[p.dtype];
    if (!T) throw new Error(`unknown packed dtype ${p.dtype}`);
    return new T(bytes.buffer, 0, p.len);
  };

  // True when keyboard input belongs to a form control, not to the page.
  GG.typing = function (ev) {
    const t = ev.target;
    return t instanceof HTMLInputElement && t.type !== 'range' && t.type !== 'checkbox' ||
      t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement;
  };
})(window.GG);
