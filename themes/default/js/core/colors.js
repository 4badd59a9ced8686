// Colour scales shared by every view: node kinds, categories, a sequential
// ramp for metrics. ggml type colours come from the report, so the site
// index (made without JavaScript) and the page agree.
'use strict';
(function (GG) {
  const hex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
  GG.hexToRgb = hex;

  GG.kindColors = {
    input: '#9aa7b8',
    embedding: '#f28e2b',
    layer: '#5b6b82',
    norm: '#8f9bb3',
    attn_projection: '#4e9be6',
    kv_head: '#59c2c9',
    head: '#7cc6ff',
    residual_add: '#e6e9ef',
    ffn_projection: '#9d7ce8',
    activation: '#c59bf5',
    router: '#e8b04e',
    experts: '#d0783f',
    shared_expert: '#b86b3c',
    output_head: '#e15759',
    unrecognised: '#7d7d7d',
    tensor: '#6f7c91',
  };

  // Tableau-like categories that stay apart on a dark background.
  GG.categorical = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948',
    '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac', '#86bcb6', '#d37295'];
  GG.categoryColor = (i) => GG.categorical[((i % 12) + 12) % 12];

  // A perceptual ramp close to viridis, sampled at 9 stops.
  const STOPS = ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80',
    '#5ec962', '#addc30', '#fde725'].map(hex);
  GG.ramp = function (t) {
    if (!Number.isFinite(t)) return [90, 96, 110];
    const x = GG.clamp(t, 0, 1) * (STOPS.length - 1);
    const i = Math.min(STOPS.length - 2, Math.floor(x));
    const f = x - i;
    return [0, 1, 2].map((c) => Math.round(STOPS[i][c] * (1 - f) + STOPS[i + 1][c] * f));
  };
  GG.rgbCss = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;

  // A ramp close to inferno for probabilities: black for nothing, so a
  // pattern reads as light on the dark page. `heatLut` holds it for every
  // byte value, rgb triples, for filling image data fast.
  const HEAT = ['#000004', '#1b0c41', '#4a0c6b', '#781c6d', '#a52c60', '#cf4446',
    '#ed6925', '#fb9b06', '#f7d13d', '#fcffa4'].map(hex);
  GG.heat = function (t) {
    const x = GG.clamp(Number.isFinite(t) ? t : 0, 0, 1) * (HEAT.length - 1);
    const i = Math.min(HEAT.length - 2, Math.floor(x));
    const f = x - i;
    return [0, 1, 2].map((c) => Math.round(HEAT[i][c] * (1 - f) + HEAT[i + 1][c] * f));
  };
  GG.heatLut = new Uint8Array(256 * 3);
  for (let b = 0; b < 256; b++) GG.heatLut.set(GG.heat(b / 255), 3 * b);
  GG.heatGradient = `linear-gradient(90deg, ${HEAT.map((c) => GG.rgbCss(c)).join(', ')})`;
  // Attention a token cannot pay (later tokens, masked out).
  GG.maskedRgb = [27, 32, 48];
  // Text that stays readable on a ramp colour.
  GG.inkOn = (rgb) => (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 ? '#0e1015' : '#f2f4f8');

  // Min and max of the finite values of `values` at `indices` (all if none).
  GG.extent = function (values, indices) {
    let lo = Infinity, hi = -Infinity;
    const visit = (v) => { if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } };
    if (indices) for (const i of indices) visit(values[i]);
    else for (const v of values) visit(v);
    return lo <= hi ? [lo, hi] : [0, 1];
  };
  GG.normalize = (v, [lo, hi]) => (hi > lo ? (v - lo) / (hi - lo) : 0.5);
})(window.GG);
