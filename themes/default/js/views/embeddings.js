// View 6, Embeddings: the model's own token-embedding matrix for the whole
// vocabulary, as a WebGL2 point cloud (UMAP or PCA, 3D orbit or 2D), with each
// token's nearest neighbours, clusters, under-trained candidates and word
// analogies. The big arrays arrive raw-deflated in base85 (docs/report.md) and are
// inflated once with the browser's DecompressionStream.
//
// The cloud is one static buffer and one GL_POINTS draw call; a frame only
// sets uniforms, so orbiting costs no CPU work per point. Colour and size
// live in a second buffer rewritten only when the colour mode changes.
'use strict';
(function (GG) {
  const VS = `#version 300 es
layout(location=0) in vec3 a_pos;
layout(location=1) in vec4 a_color;
layout(location=2) in float a_size;
uniform mat4 u_mvp;
uniform float u_scale;
uniform float u_dpr;
out vec4 v_color;
void main() {
  gl_Position = u_mvp * vec4(a_pos, 1.0);
  gl_PointSize = max(1.0, a_size * u_scale) * u_dpr;
  v_color = a_color;
}`;
  const FS = `#version 300 es
precision mediump float;
in vec4 v_color;
out vec4 o;
void main() {
  vec2 d = gl_PointCoord - 0.5;
  if (dot(d, d) > 0.25) discard;
  o = v_color;
}`;
  const TYPE_NAMES = ['undefined', 'normal', 'unknown', 'control', 'user-defined', 'unused', 'byte'];
  const MODES = [['cluster', 'cluster'], ['script', 'script'], ['type', 'token type'], ['norm', 'row norm'], ['id', 'id'], ['under', 'under-trained indicator']];

  let R, E, root, canvas, gl, prog, U = {}, vao, posBuf, colBuf, hiBuf, hiCount = 0, lineBuf, lineCount = 0;
  let D = null;          // decoded arrays
  let M = 0;             // the matrix shown (0 input, 1 output)
  let mode = 'cluster';
  let dims = 3;
  let proj = 'umap';     // 'umap' (when the page has it) or 'pca'
  const cam = { yaw: 0.6, pitch: 0.35, dist: 2.6, x: 0, y: 0 };
  let shown = false, frame = 0, mvp = null;
  let info, listBox, searchBox, results, modeSel, legend, side, status, promptSet = null;

  const WIDTH = { u8: 1, u16: 2, u32: 4 };
  const TYPED = { u8: Uint8Array, u16: Uint16Array, u32: Uint32Array };
  // A Deflated array (docs/report.md) as its typed array.
  async function inflate(d) {
    const w = WIDTH[d.dtype];
    if (!w) throw new Error(`unknown deflated dtype ${d.dtype}`);
    const b = await GG.inflatePlanes(d.deflate, d.len, w);
    return new TYPED[d.dtype](b.buffer, 0, d.len);
  }
  // Similarity rows arrive as the first byte then drops (docs/report.md).
  function undelta(q, k) {
    for (let r = 0; r < q.length; r += k) for (let j = 1; j < k; j++) q[r + j] = q[r + j - 1] - q[r + j];
    return q;
  }
  const top = (q) => 2 ** (q.bits ?? 16) - 1;
  const dequant = (q, x) => q.min + (x / top(q)) * (q.max - q.min);
  // Neighbours arrive coded by reference to the rows before them
  // (src/report/neighbour_code.rs, docs/report.md): a code c > 0 is the
  // (c - 1)-th token of a candidate list both sides build the same way; 0
  // takes the next escape, a rank in the table of ids.
  const CAP = 255;
  async function neighbourIds(m) {
    const [codes, esc, table] = await Promise.all(
      [inflate(m.neighbours), inflate(m.neighbour_escapes), inflate(m.neighbour_ids)]);
    const k = m.k, n = codes.length / k;
    const ids = new Uint32Array(n * k);
    const head = new Int32Array(n).fill(-1), next = new Int32Array(n * k).fill(-1);
    const mark = new Uint32Array(n), cand = new Uint32Array(CAP);
    let len = 0, e = 0;
    for (let i = 0; i < n; i++) {
      const stamp = i + 1;
      len = 0;
      const add = (x) => {
        if (x < n && x !== i && mark[x] !== stamp && len < CAP) { mark[x] = stamp; cand[len++] = x; }
      };
      const addRow = (r) => { for (let s = 0; s < k && len < CAP; s++) add(ids[r * k + s]); };
      for (let f = head[i]; f >= 0 && len < CAP; f = next[f]) add(Math.floor(f / k));
      for (let f = head[i]; f >= 0 && len < CAP; f = next[f]) addRow(Math.floor(f / k));
      for (let s = 0; s < k; s++) {
        const c = codes[i * k + s];
        const x = c === 0 ? table[esc[e++]] : cand[c - 1];
        ids[i * k + s] = x;
        if (x < i) { add(x); addRow(x); }
      }
      for (let s = 0; s < k; s++) {
        const x = ids[i * k + s], f = i * k + s;
        if (x < n) { next[f] = head[x]; head[x] = f; }
      }
    }
    return ids;
  }
  const axes = (qs) => Promise.all(qs.map((q) => inflate(q.q)));

  async function decode() {
    const pieces = JSON.parse(new TextDecoder().decode(await inflate(E.pieces)));
    const out = { pieces, types: await inflate(E.types), scripts: await inflate(E.scripts), mats: [] };
    for (const m of E.matrices) {
      out.mats.push({
        m,
        nb: await neighbourIds(m), sims: undelta(await inflate(m.sims), m.k),
        c: await axes(m.coords),
        u3: m.umap ? await axes(m.umap.coords3) : null,
        u2: m.umap ? await axes(m.umap.coords2) : null,
        norms: await inflate(m.norms.q), cluster: await inflate(m.cluster),
      });
    }
    out.under = await inflate(E.undertrained.values.q);
    const sub = E.analogies.subset;
    out.subIds = await inflate(sub.ids);
    out.subVals = await inflate(sub.values);
    out.lower = pieces.map((p) => p.toLowerCase());
    return out;
  }

  const sim = (b) => (b / 255) * 2 - 1;
  const piece = (i) => GG.showPiece(D.pieces[i] ?? '');
  const n = () => E.n_vocab;

  // The layout shown: PCA (its 2D is the first two axes of the 3D one) or
  // UMAP (a 3D and a separate 2D layout).
  const useUmap = () => proj === 'umap' && !!D.mats[M].u3;
  function layoutAxes() {
    const X = D.mats[M];
    if (!useUmap()) return [X.m.coords, X.c];
    return dims === 3 ? [X.m.umap.coords3, X.u3] : [X.m.umap.coords2, X.u2];
  }
  // Positions in [-1, 1], each axis scaled by its share of the widest
  // range so the layout keeps its proportions (z = 0 for a 2D layout).
  function positions() {
    const [qs, cs] = layoutAxes();
    const span = qs.map((q) => q.max - q.min);
    const w = Math.max(...span, 1e-9);
    const out = new Float32Array(n() * 3);
    qs.forEach((q, a) => {
      const f = (2 * span[a]) / w, c = cs[a], t = top(q);
      for (let i = 0; i < n(); i++) out[i * 3 + a] = (c[i] / t - 0.5) * f;
    });
    return out;
  }
  // New positions after a switch of matrix, projection or dimensions.
  function relayout() {
    positions.cache = positions();
    gl.bindBuffer(gl.ARRAY_BUFFER, posBuf);
    gl.bufferData(gl.ARRAY_BUFFER, positions.cache, gl.STATIC_DRAW);
  }

  function colorOf(i) {
    const X = D.mats[M];
    switch (mode) {
      case 'cluster': return GG.hexToRgb(GG.categoryColor(X.cluster[i]));
      case 'script': return GG.hexToRgb(GG.categoryColor(D.scripts[i]));
      case 'type': return GG.hexToRgb(GG.categoryColor(D.types[i]));
      case 'norm': return GG.ramp(X.norms[i] / top(X.m.norms));
      case 'id': return GG.ramp(i / Math.max(1, n() - 1));
      default: return GG.ramp(1 - D.under[i] / top(E.undertrained.values));
    }
  }

  function colours() {
    const X = D.mats[M];
    const out = new Uint8Array(n() * 5);
    for (let i = 0; i < n(); i++) {
      const c = colorOf(i);
      out[i * 5] = c[0]; out[i * 5 + 1] = c[1]; out[i * 5 + 2] = c[2];
      out[i * 5 + 3] = promptSet ? (promptSet.has(i) ? 255 : 50) : 200;
      out[i * 5 + 4] = 1 + Math.round((X.norms[i] / top(X.m.norms)) * 5);
    }
    return out;
  }

  function setupGL() {
    gl = canvas.getContext('webgl2', { antialias: false, alpha: false });
    if (!gl) throw new Error('WebGL2 is not available');
    const sh = (type, src) => {
      const s = gl.createShader(type);
      gl.shaderSource(s, src); gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
      return s;
    };
    prog = gl.createProgram();
    gl.attachShader(prog, sh(gl.VERTEX_SHADER, VS));
    gl.attachShader(prog, sh(gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(prog);
    for (const u of ['u_mvp', 'u_scale', 'u_dpr']) U[u] = gl.getUniformLocation(prog, u);
    posBuf = gl.createBuffer(); colBuf = gl.createBuffer(); hiBuf = gl.createBuffer(); lineBuf = gl.createBuffer();
    vao = gl.createVertexArray();
  }

  function upload() {
    gl.bindVertexArray(vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, posBuf);
    gl.bufferData(gl.ARRAY_BUFFER, positions.cache, gl.STATIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 3, gl.FLOAT, false, 0, 0);
    uploadColours();
  }

  function uploadColours() {
    gl.bindVertexArray(vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, colBuf);
    gl.bufferData(gl.ARRAY_BUFFER, colours(), gl.STATIC_DRAW);
    gl.enableVertexAttribArray(1);
    gl.vertexAttribPointer(1, 4, gl.UNSIGNED_BYTE, true, 5, 0);
    gl.enableVertexAttribArray(2);
    gl.vertexAttribPointer(2, 1, gl.UNSIGNED_BYTE, false, 5, 4);
  }

  function matrix() {
    const w = canvas.width, h = canvas.height, asp = w / Math.max(1, h);
    if (dims === 2) {
      const s = 1 / cam.dist * 2.2;
      return new Float32Array([s / asp, 0, 0, 0, 0, s, 0, 0, 0, 0, 0, 0, -cam.x * s / asp, -cam.y * s, 0, 1]);
    }
    const cy = Math.cos(cam.yaw), sy = Math.sin(cam.yaw), cp = Math.cos(cam.pitch), sp = Math.sin(cam.pitch);
    // view = translate(0,0,-dist) · rotX(pitch) · rotY(yaw); then perspective.
    const f = 1 / Math.tan(0.45), near = 0.05, far = 20;
    const V = [cy, sp * sy, -cp * sy, 0, 0, cp, sp, 0, sy, -sp * cy, cp * cy, 0, 0, 0, -cam.dist, 1];
    const P = [f / asp, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) / (near - far), -1, 0, 0, (2 * far * near) / (near - far), 0];
    const out = new Float32Array(16);
    for (let c = 0; c < 4; c++) for (let r = 0; r < 4; r++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += P[k * 4 + r] * V[c * 4 + k];
      out[c * 4 + r] = s;
    }
    return out;
  }

  function draw() {
    frame = 0;
    if (!gl || !D) return;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.floor(canvas.clientWidth * dpr)), h = Math.max(1, Math.floor(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    gl.viewport(0, 0, w, h);
    gl.clearColor(0.055, 0.063, 0.082, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    gl.useProgram(prog);
    mvp = matrix();
    gl.uniformMatrix4fv(U.u_mvp, false, mvp);
    gl.uniform1f(U.u_dpr, dpr);
    gl.uniform1f(U.u_scale, n() > 100000 ? 0.6 : 1);
    gl.bindVertexArray(vao);
    gl.drawArrays(gl.POINTS, 0, n());
    if (hiCount) {
      gl.bindVertexArray(null);
      gl.bindBuffer(gl.ARRAY_BUFFER, lineBuf);
      gl.enableVertexAttribArray(0); gl.vertexAttribPointer(0, 3, gl.FLOAT, false, 0, 0);
      gl.disableVertexAttribArray(1); gl.vertexAttrib4f(1, 0.96, 0.65, 0.14, 0.8);
      gl.disableVertexAttribArray(2); gl.vertexAttrib1f(2, 1);
      gl.drawArrays(gl.LINES, 0, lineCount);
      gl.bindBuffer(gl.ARRAY_BUFFER, hiBuf);
      gl.vertexAttribPointer(0, 3, gl.FLOAT, false, 0, 0);
      gl.vertexAttrib1f(2, 9);
      gl.vertexAttrib4f(1, 1, 1, 1, 1);
      gl.drawArrays(gl.POINTS, 1, hiCount - 1);
      gl.vertexAttrib4f(1, 0.96, 0.65, 0.14, 1);
      gl.vertexAttrib1f(2, 14);
      gl.drawArrays(gl.POINTS, 0, 1);
    }
    root.dataset.frames = String(Number(root.dataset.frames || 0) + 1);
  }
  const redraw = () => { if (!frame) frame = requestAnimationFrame(draw); };

  // The selected token and its neighbours as a few highlighted points and
  // lines (built on selection, not per frame).
  function highlight(t) {
    hiCount = 0; lineCount = 0;
    if (t === null) return;
    const X = D.mats[M], k = X.m.k, pos = positions.cache;
    const pts = [t, ...X.nb.subarray(t * k, (t + 1) * k)];
    const hp = new Float32Array(pts.length * 3), lp = new Float32Array(k * 6);
    pts.forEach((i, j) => hp.set(pos.subarray(i * 3, i * 3 + 3), j * 3));
    for (let j = 0; j < k; j++) { lp.set(hp.subarray(0, 3), j * 6); lp.set(hp.subarray((j + 1) * 3, (j + 2) * 3), j * 6 + 3); }
    gl.bindBuffer(gl.ARRAY_BUFFER, hiBuf); gl.bufferData(gl.ARRAY_BUFFER, hp, gl.DYNAMIC_DRAW);
    gl.bindBuffer(gl.ARRAY_BUFFER, lineBuf); gl.bufferData(gl.ARRAY_BUFFER, lp, gl.DYNAMIC_DRAW);
    hiCount = pts.length; lineCount = k * 2;
  }

  // The token under a pointer: the nearest projected point within 8 px
  // (only on pointer events, never per frame).
  function pick(ev) {
    if (!mvp || !D) return null;
    const r = canvas.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * 2 - 1, py = 1 - ((ev.clientY - r.top) / r.height) * 2;
    const pos = positions.cache, m = mvp;
    let best = null, bd = (8 / r.width * 2) ** 2;
    for (let i = 0; i < n(); i++) {
      const x = pos[i * 3], y = pos[i * 3 + 1], z = pos[i * 3 + 2];
      const w = m[3] * x + m[7] * y + m[11] * z + m[15];
      if (w <= 0) continue;
      const dx = (m[0] * x + m[4] * y + m[8] * z + m[12]) / w - px;
      const dy = ((m[1] * x + m[5] * y + m[9] * z + m[13]) / w - py) * (r.height / r.width);
      const d = dx * dx + dy * dy;
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  }

  function tokenRows(i) {
    const X = D.mats[M];
    return [
      ['id', String(i)],
      ['type', TYPE_NAMES[D.types[i]] || String(D.types[i])],
      ['script', E.script_names[D.scripts[i]]],
      ['norm', GG.fmtNum(dequant(X.m.norms, X.norms[i]))],
      ['cluster', String(X.cluster[i])],
    ];
  }

  const tokenChip = (i, extra) => GG.el('button', { class: 'emb-tok', type: 'button', dataset: { tok: String(i) }, onclick: () => GG.select({ tok: i }) },
    GG.el('code', { text: `‘${piece(i)}’` }), extra ? GG.el('span', { class: 'hint', text: ` ${extra}` }) : null);

  // Where token i occurs in the prompts, for the links to the other views.
  function occurrences(i) {
    const B = GG.behaviour && GG.behaviour(R);
    if (!B) return [];
    const out = [];
    B.prompts.forEach((p, k) => {
      const at = (p.tokens || []).findIndex((t) => t.id === i);
      if (at >= 0) out.push([k, at, p.name]);
    });
    return out;
  }

  function renderInfo(t) {
    GG.clear(info);
    if (t === null) {
      info.append(GG.el('p', { class: 'hint', text: 'Hover a point to see its token; click to select it and list its neighbours. Press / to search.' }));
      return;
    }
    const X = D.mats[M], k = X.m.k;
    info.append(GG.el('h3', { class: 'section-title', id: 'emb-selected' }, `‘${piece(t)}’`, GG.el('span', { class: 'hint', text: ` #${t}` })));
    const dl = GG.el('dl', { class: 'emb-props' });
    for (const [a, b] of tokenRows(t)) dl.append(GG.el('dt', { text: a }), GG.el('dd', { text: b }));
    info.append(dl);
    const ol = GG.el('ol', { class: 'emb-neighbours', id: 'emb-neighbours' });
    for (let j = 0; j < k; j++) {
      const id = X.nb[t * k + j];
      ol.append(GG.el('li', {}, tokenChip(id, sim(X.sims[t * k + j]).toFixed(3))));
    }
    info.append(GG.el('h4', { text: `${k} nearest by cosine (${X.m.method === 'exact' ? 'exact' : `${X.m.method}: recall@${k} ${GG.fmtPct(X.m.recall)} against an exact search on ${X.m.recall_sample} sampled tokens`})` }), ol);
    const occ = occurrences(t);
    if (occ.length) {
      info.append(GG.el('h4', { text: 'In the prompts' }), ...occ.slice(0, 6).map(([p, at, name]) =>
        GG.el('button', { class: 'emb-open', type: 'button', onclick: () => GG.select({ view: 'attention', prompt: p, token: at }) }, `${name}, position ${at} → Attention`)));
    }
  }

  function renderSide() {
    GG.clear(side);
    const X = D.mats[M], q = X.m.quality;
    const kept = (a, b) => `${GG.fmtPct(a)} in 3D, ${GG.fmtPct(b)} in 2D`;
    side.append(GG.el('h4', { text: 'Projection quality' }),
      GG.el('p', { id: 'emb-quality', text: `Of each token’s ${X.m.k} nearest neighbours, the share among its ${X.m.k} nearest points in the layout (mean over ${GG.fmtInt(q.sample)} tokens): ` +
        (q.umap3 != null ? `UMAP ${kept(q.umap3, q.umap2)}; ` : '') +
        `PCA ${kept(q.pca3, q.pca2)}. PCA’s three axes explain ${X.m.explained.map((v) => GG.fmtPct(v)).join(' + ')} of the variance.` +
        (X.m.umap ? ` UMAP: ${X.m.umap.epochs} epochs over the ${X.m.k}-neighbour graph.` : ' This page has no UMAP layout.') }));
    const cl = GG.el('ol', { class: 'emb-clusters', id: 'emb-clusters' });
    X.m.clusters.forEach((c, k) => cl.append(GG.el('li', {},
      GG.el('i', { class: 'sw', style: { background: GG.categoryColor(k) } }), `${GG.fmtInt(c.size)} · `,
      ...c.central.slice(0, 5).map((i) => tokenChip(i)))));
    side.append(GG.el('h4', { text: 'Clusters (k-means), labelled by the tokens nearest each centre' }), cl);
    const U = E.undertrained;
    const tbl = GG.el('table', { class: 'emb-under', id: 'emb-under' },
      GG.el('tr', {}, GG.el('th', { text: 'token' }), GG.el('th', { text: U.indicator === 'row_norm' ? 'row norm' : 'distance to unused' }), GG.el('th', { text: 'p(repeat)' })));
    const rows = U.candidates.slice().sort((a, b) => (a.probability ?? 1) - (b.probability ?? 1));
    for (const c of rows.slice(0, 60)) {
      const confirmed = c.probability !== null && c.probability !== undefined && c.probability < U.confirm_below;
      tbl.append(GG.el('tr', { class: confirmed ? 'confirmed' : '' }, GG.el('td', {}, tokenChip(c.id)), GG.el('td', { text: GG.fmtNum(c.value) }),
        GG.el('td', { text: c.probability === null || c.probability === undefined ? 'not run' : `${GG.fmtNum(c.probability)}${confirmed ? ' ✓' : ''}` })));
    }
    const nConf = U.candidates.filter((c) => c.probability !== null && c.probability !== undefined && c.probability < U.confirm_below).length;
    side.append(GG.el('h4', { text: 'Under-trained candidates' }),
      GG.el('p', { class: 'hint', text: U.verified ? `${U.candidates.length} candidates (at or below the 2nd percentile, threshold ${(U.threshold == null ? "none" : GG.fmtNum(U.threshold))}); the ${U.candidates.filter((c) => c.probability !== null && c.probability !== undefined).length} lowest verified, ${nConf} confirmed: asked to repeat them, the model gives them p < ${U.confirm_below}. Confirmed first.` : `${U.candidates.length} candidates (threshold ${(U.threshold == null ? "none" : GG.fmtNum(U.threshold))}). Not verified: this page was built without inference (--no-inference), and verification asks llama.cpp to repeat each token.` }),
      ...U.notes.map((t) => GG.el('p', { class: 'hint', text: t })), tbl);
    const A = E.analogies;
    const at = GG.el('table', { class: 'emb-analogies', id: 'emb-analogies' });
    for (const r of A.results) {
      const q = r.quad;
      const ok = r.ids && r.top[0] === r.ids[3];
      at.append(GG.el('tr', { class: ok ? 'ok' : '' }, GG.el('td', { text: `${q.a} − ${q.b} + ${q.c}` }),
        GG.el('td', { text: r.ids ? r.top.slice(0, 3).map((i) => `‘${piece(i)}’`).join(' ') : 'not all words are tokens' }), GG.el('td', { text: `(${q.d})` })));
    }
    side.append(GG.el('h4', { text: `Analogies: top-1 ${GG.fmtPct(A.top1)}, top-5 ${GG.fmtPct(A.top5)} of ${A.scored}` }), at, freeAnalogy());
  }

  // a − b + c over the shipped subset (reduced, 8-bit): the page has not
  // the whole matrix, and says which tokens it has.
  function freeAnalogy() {
    const A = E.analogies.subset, d = A.dims;
    const ids = D.subIds, vals = D.subVals;
    const index = new Map();
    ids.forEach((id, r) => index.set(id, r));
    const find = (w) => {
      for (const p of [` ${w}`, w]) {
        const i = D.pieces.indexOf(p);
        if (i >= 0 && index.has(i)) return i;
      }
      return -1;
    };
    const inputs = ['a', 'b', 'c'].map((k) => GG.el('input', { type: 'text', id: `emb-an-${k}`, size: 8, placeholder: { a: 'king', b: 'man', c: 'woman' }[k] }));
    const out = GG.el('span', { id: 'emb-an-out', class: 'hint' });
    const solve = () => {
      const t = inputs.map((x) => find((x.value || x.placeholder).trim()));
      if (t.some((x) => x < 0)) { out.textContent = 'each word must be in the subset below'; return; }
      const v = new Float32Array(d);
      const row = (i) => index.get(i) * d;
      for (let j = 0; j < d; j++) {
        const g = (i) => (vals[row(i) + j] - 128) * A.scale[j];
        v[j] = g(t[0]) - g(t[1]) + g(t[2]);
      }
      const best = [];
      for (let r = 0; r < ids.length; r++) {
        if (t.includes(ids[r])) continue;
        let s = 0, nn = 0;
        for (let j = 0; j < d; j++) { const x = (vals[r * d + j] - 128) * A.scale[j]; s += x * v[j]; nn += x * x; }
        best.push([s / Math.sqrt(nn || 1), ids[r]]);
      }
      best.sort((x, y) => y[0] - x[0]);
      out.textContent = best.slice(0, 5).map(([s, i]) => `‘${piece(i)}’ ${s.toFixed(2)}`).join('  ');
    };
    return GG.el('div', { class: 'emb-free' }, GG.el('h4', { text: 'Try one' }), inputs[0], ' − ', inputs[1], ' + ', inputs[2], ' ',
      GG.el('button', { type: 'button', id: 'emb-an-go', onclick: solve, text: '=' }), ' ', out,
      GG.el('p', { class: 'hint', text: `Over a subset: ${A.description}.` }));
  }

  function search() {
    const q = searchBox.value.toLowerCase();
    GG.clear(results);
    if (!q) { results.hidden = true; return; }
    const found = [];
    for (let i = 0; i < n() && found.length < 30; i++) if (D.lower[i].includes(q)) found.push(i);
    for (const i of found) results.append(GG.el('li', {}, tokenChip(i, `#${i}`)));
    if (!found.length) results.append(GG.el('li', { class: 'hint', text: 'no token contains this' }));
    results.hidden = false;
  }

  function legendFor() {
    GG.clear(legend);
    const names = mode === 'script' ? E.script_names : mode === 'type' ? TYPE_NAMES : null;
    if (names) names.forEach((nm, k) => legend.append(GG.el('span', { class: 'chip' }, GG.el('i', { style: { background: GG.categoryColor(k) } }), nm, ' ')));
    else if (mode !== 'cluster') legend.append(GG.el('span', { class: 'hint', text: mode === 'under' ? 'bright: most suspicious (lowest indicator)' : 'dark → bright: low → high' }));
  }

  // The selected prompt's tokens, when the reader asked to see them.
  function promptTokens() {
    const B = GG.behaviour && GG.behaviour(R);
    if (!B || !showPrompt.checked) return null;
    const P = B.prompts[GG.clamp(GG.state.prompt ?? 0, 0, B.prompts.length - 1)];
    return P ? new Set(P.tokens.map((t) => t.id)) : null;
  }
  let promptKey = null;

  function render() {
    if (!D || !shown) return;
    const s = GG.state;
    // A token picked in Attention or Layers over tokens is this view's
    // selection too, unless a vocabulary token was chosen here.
    let t = s.tok;
    if (t === undefined && s.token !== undefined && GG.behaviour && GG.behaviour(R)) {
      const B = GG.behaviour(R), P = GG.promptOf(B, s);
      if (P) t = P.tokens[GG.tokenOf(P, s)].id;
    }
    t = Number.isInteger(t) && t >= 0 && t < n() ? t : null;
    const key = showPrompt.checked ? (s.prompt ?? 0) : null;
    if (key !== promptKey) { promptKey = key; promptSet = promptTokens(); uploadColours(); }
    highlight(t);
    renderInfo(t);
    root.dataset.selected = t === null ? '' : String(t);
    redraw();
  }
  let showPrompt;

  function wire() {
    let drag = null;
    canvas.addEventListener('pointerdown', (ev) => { drag = { x: ev.clientX, y: ev.clientY, moved: false }; canvas.setPointerCapture(ev.pointerId); });
    canvas.addEventListener('pointermove', (ev) => {
      if (drag) {
        const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
        drag.x = ev.clientX; drag.y = ev.clientY;
        if (dims === 3) { cam.yaw += dx * 0.008; cam.pitch = GG.clamp(cam.pitch + dy * 0.008, -1.5, 1.5); }
        else { const s = cam.dist / 1.1 / canvas.clientHeight; cam.x -= dx * s; cam.y += dy * s; }
        redraw();
        return;
      }
      const i = pick(ev);
      if (i === null) { GG.tooltip.hide(); return; }
      GG.tooltip.show(ev.clientX, ev.clientY, `‘${piece(i)}’`, tokenRows(i));
      root.dataset.hover = String(i);
    });
    canvas.addEventListener('pointerup', (ev) => {
      if (drag && !drag.moved) { const i = pick(ev); if (i !== null) GG.select({ tok: i }); }
      drag = null;
    });
    canvas.addEventListener('mouseleave', () => GG.tooltip.hide());
    canvas.addEventListener('wheel', (ev) => { ev.preventDefault(); cam.dist = GG.clamp(cam.dist * Math.exp(ev.deltaY * 0.001), 0.2, 10); redraw(); }, { passive: false });
    window.addEventListener('keydown', (ev) => {
      if (shown && ev.key === '/' && !GG.typing(ev)) { ev.preventDefault(); ev.stopImmediatePropagation(); searchBox.focus(); searchBox.select(); }
    }, true);
    searchBox.addEventListener('input', search);
    searchBox.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') { const b = results.querySelector('button'); if (b) b.click(); }
      if (ev.key === 'Escape') { results.hidden = true; searchBox.blur(); }
    });
  }

  const view = {
    id: 'embeddings',
    title: 'Embeddings',
    order: 60,
    requires: 'embeddings',
    create(el, report) {
      R = report; E = R.embeddings; root = el;
      canvas = GG.el('canvas', { class: 'gl', id: 'emb-canvas' });
      modeSel = GG.el('select', { id: 'emb-colour', onchange: (e) => { mode = e.target.value; legendFor(); uploadColours(); redraw(); } },
        ...MODES.map(([v, t]) => GG.el('option', { value: v, text: t })));
      const matSel = E.matrices.length > 1 ? GG.el('select', { id: 'emb-matrix', onchange: (e) => { M = Number(e.target.value); positions.cache = positions(); upload(); renderSide(); render(); } },
        ...E.matrices.map((m, k) => GG.el('option', { value: String(k), text: m.label }))) : null;
      const dimBtn = GG.el('button', { type: 'button', id: 'emb-dims', text: '2D', onclick: () => {
        dims = dims === 3 ? 2 : 3; dimBtn.textContent = dims === 3 ? '2D' : '3D';
        if (D) { relayout(); render(); } else redraw(); } });
      const hasUmap = E.matrices.some((m) => m.umap);
      if (!hasUmap) proj = 'pca';
      const projSel = GG.el('select', { id: 'emb-proj', disabled: !hasUmap, onchange: (e) => { proj = e.target.value; if (D) { relayout(); render(); } } },
        ...[['umap', 'UMAP'], ['pca', 'PCA']].map(([v, t]) => GG.el('option', { value: v, text: t, selected: v === proj })));
      showPrompt = GG.el('input', { type: 'checkbox', id: 'emb-prompt', disabled: !R.behaviour, onchange: () => render() });
      searchBox = GG.el('input', { type: 'search', id: 'emb-search', placeholder: 'search the vocabulary  /', autocomplete: 'off' });
      results = GG.el('ul', { class: 'emb-results', id: 'emb-results', hidden: true });
      legend = GG.el('span', { class: 'emb-legend' });
      status = GG.el('span', { class: 'hint', text: 'decoding…' });
      info = GG.el('div', { class: 'emb-info', id: 'emb-info' });
      side = GG.el('div', { class: 'emb-side', id: 'emb-side' });
      root.append(
        GG.el('div', { class: 'toolbar' },
          matSel ? GG.el('label', {}, 'Matrix ', matSel) : GG.el('span', { class: 'hint', text: E.tied ? 'tied: the input embedding is also the output head' : '' }),
          GG.el('label', {}, 'Layout ', projSel), GG.el('label', {}, 'Colour ', modeSel), dimBtn,
          GG.el('label', {}, showPrompt, 'prompt tokens'),
          GG.el('span', { class: 'emb-search-box' }, searchBox, results), legend, status),
        GG.el('div', { class: 'emb-body' },
          GG.el('div', { class: 'emb-stage' }, canvas),
          GG.el('div', { class: 'emb-panel scroll' }, info, side)));
      try { setupGL(); } catch (err) { status.textContent = `WebGL2 unavailable: ${err.message}`; return; }
      wire();
      decode().then((d) => {
        D = d;
        positions.cache = positions();
        upload();
        legendFor();
        renderSide();
        status.textContent = `${GG.fmtInt(n())} tokens · ${E.n_embd} dimensions`;
        root.dataset.ready = '1';
        render();
      }).catch((err) => { status.textContent = `cannot decode the embeddings: ${err.message}`; });
    },
    show() { shown = true; render(); redraw(); },
    hide() { shown = false; GG.tooltip.hide(); },
    resize() { redraw(); },
    update() { render(); },
  };
  // For tests and the frame-rate benchmark: draw now (optionally after an
  // orbit step), the context, and where token i is on screen.
  GG.embeddings = {
    orbit(step) { cam.yaw += step; draw(); },
    gl: () => gl,
    // The decoded n × k neighbour ids of the matrix shown.
    neighbours: () => D.mats[M].nb,
    screenOf(i) {
      const p = positions.cache, m = mvp, r = canvas.getBoundingClientRect();
      const x = p[i * 3], y = p[i * 3 + 1], z = p[i * 3 + 2];
      const w = m[3] * x + m[7] * y + m[11] * z + m[15];
      const nx = (m[0] * x + m[4] * y + m[8] * z + m[12]) / w, ny = (m[1] * x + m[5] * y + m[9] * z + m[13]) / w;
      return [r.left + (nx + 1) / 2 * r.width, r.top + (1 - ny) / 2 * r.height];
    },
  };
  GG.registerView(view);
})(window.GG);
