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
  // browser this page runs in) into its typed array; a deflated one
  // {dtype, len, z85} must have been through GG.inflatePacked first.
  GG.unpack = function (p) {
    let bytes = p.raw;
    if (!bytes) {
      if (p.b64 === undefined) throw new Error('a deflated array was read before it was inflated');
      const bin = atob(p.b64);
      bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    }
    const T = TYPES[p.dtype];
    if (!T) throw new Error(`unknown packed dtype ${p.dtype}`);
    return new T(bytes.buffer, 0, p.len);
  };

  // Base85 text back to bytes (docs/report.md): 5 characters per 4 bytes,
  // big-endian; a short last group is padded with the last digit.
  const B85 = '!#$%()*+,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|';
  const B85I = new Uint8Array(128).fill(255);
  for (let i = 0; i < 85; i++) B85I[B85.charCodeAt(i)] = i;
  GG.base85 = function (s) {
    const full = Math.floor(s.length / 5), rest = s.length % 5;
    const out = new Uint8Array(full * 4 + (rest ? rest - 1 : 0));
    let o = 0;
    for (let g = 0; g * 5 < s.length; g++) {
      let v = 0;
      const m = Math.min(5, s.length - g * 5);
      for (let k = 0; k < 5; k++) v = v * 85 + (k < m ? B85I[s.charCodeAt(g * 5 + k)] : 84);
      for (let k = 0; k < m - 1; k++) out[o++] = Math.floor(v / 2 ** (24 - 8 * k)) & 255;
    }
    return out;
  };

  // Base85 of raw-deflated byte planes (all first bytes of the `len`
  // values, then all second bytes, …) back to little-endian values' bytes,
  // with the browser's own DecompressionStream.
  GG.inflatePlanes = async function (text, len, width) {
    const stream = new Blob([GG.base85(text)]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
    const b = new Uint8Array(await new Response(stream).arrayBuffer());
    if (b.length < len * width) throw new Error(`a deflated array holds ${b.length} bytes, not ${len * width}`);
    if (width === 1) return b.subarray(0, len);
    const out = new Uint8Array(len * width);
    for (let p = 0; p < width; p++) {
      const plane = p * len;
      for (let i = 0; i < len; i++) out[i * width + p] = b[plane + i];
    }
    return out;
  };

  const PACKED_WIDTH = { u8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, f64: 8 };
  // Inflates every deflated packed array ({dtype, len, z85}) in `data`, in
  // place (as `raw` bytes), so GG.unpack can read it synchronously.
  GG.inflatePacked = async function (data) {
    const found = [];
    const walk = (x) => {
      if (Array.isArray(x)) { for (const y of x) if (y && typeof y === 'object') walk(y); return; }
      if (typeof x.z85 === 'string' && PACKED_WIDTH[x.dtype]) { found.push(x); return; }
      for (const k in x) { const y = x[k]; if (y && typeof y === 'object') walk(y); }
    };
    walk(data);
    await Promise.all(found.map(async (p) => {
      p.raw = await GG.inflatePlanes(p.z85, p.len, PACKED_WIDTH[p.dtype]);
    }));
    return data;
  };

  // True when keyboard input belongs to a form control, not to the page.
  GG.typing = function (ev) {
    const t = ev.target;
    return t instanceof HTMLInputElement && t.type !== 'range' && t.type !== 'checkbox' ||
      t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement;
  };
})(window.GG);
