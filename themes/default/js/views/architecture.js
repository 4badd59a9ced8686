// View 1, Architecture: the model's real structure drawn with our WebGL
// renderer. Layers collapse into one node each and expand into their
// components, heads and tensors; colour and size follow a chosen attribute;
// the selection is the shared one.
'use strict';
(function (GG) {
  const BASE = {
    input: 12, embedding: 13, layer: 9, norm: 9, attn_projection: 11, kv_head: 6.5, head: 5,
    residual_add: 8, ffn_projection: 11, activation: 8, router: 10, experts: 13,
    shared_expert: 11, output_head: 13, unrecognised: 10, tensor: 7,
  };
  const SHAPE = { tensor: 1, kv_head: 2, layer: 3 };
  const EDGE_RGBA = { flow: [150, 166, 196, 120], weight: [110, 122, 142, 80], tied: [242, 142, 43, 250] };
  const HILITE = [245, 165, 36, 255];

  let R, G, root, renderer, canvas, overlay, legend, tip;
  let colorBy = 'kind', sizeBy = 'uniform';
  const hiddenKinds = new Set();
  const expanded = new Set();
  let vis = new Int32Array(0);      // instance -> node
  let inst = new Int32Array(0);     // node -> instance, -1 when hidden
  let wx = new Float32Array(0), wy = new Float32Array(0); // world positions
  let bandTop = [];
  let right = 0;                    // widest x of any node
  let selected = -1;
  let visibleNow = false;
  let fitted = false;

  const kindId = (i) => G.kinds[G.kind[i]].id;
  const isCollapsed = (layerNode) => !expanded.has(G.layer[layerNode]);

  // The node a node is drawn as: its container when its layer is collapsed.
  function rep(i) {
    const p = G.parent[i];
    return p >= 0 && isCollapsed(p) ? p : i;
  }

  function visible(i) {
    if (hiddenKinds.has(kindId(i))) return false;
    if (kindId(i) === 'layer') return isCollapsed(i);
    return G.parent[i] < 0 || !isCollapsed(G.parent[i]);
  }

  function layoutWorld() {
    bandTop = [];
    let y = 0;
    G.bands.forEach((b) => {
      bandTop.push(y);
      y += b.layer !== null && !expanded.has(b.layer) ? b.collapsed_height : b.height;
    });
    bandTop.push(y);
    for (let i = 0; i < G.count; i++) {
      wx[i] = G.x[i];
      wy[i] = bandTop[G.band[i]] + G.y[i];
    }
  }

  function metricValues(id) {
    const m = G.metrics.find((x) => x.id === id);
    return m ? m.values : null;
  }

  function sizes() {
    const out = new Float32Array(vis.length);
    let values = null;
    if (sizeBy === 'params') values = G.params;
    else if (sizeBy === 'bytes') values = G.bytes;
    else if (sizeBy !== 'uniform') values = metricValues(sizeBy);
    // Heads are compared with heads, everything else with everything else.
    const small = (i) => kindId(i) === 'head' || kindId(i) === 'kv_head';
    let maxSmall = 0, maxBig = 0;
    if (values) for (const i of vis) {
      if (small(i)) maxSmall = Math.max(maxSmall, values[i]); else maxBig = Math.max(maxBig, values[i]);
    }
    vis.forEach((i, k) => {
      const base = BASE[kindId(i)] || 8;
      if (!values) { out[k] = base; return; }
      const max = small(i) ? maxSmall : maxBig;
      out[k] = base * (0.45 + 0.95 * Math.sqrt(max > 0 ? values[i] / max : 0));
    });
    return out;
  }

  function colors() {
    const out = new Uint8Array(vis.length * 4);
    const put = (k, rgb) => { out.set(rgb, 4 * k); out[4 * k + 3] = 255; };
    if (colorBy === 'kind') {
      const cache = {};
      vis.forEach((i, k) => { const id = kindId(i); put(k, cache[id] || (cache[id] = GG.hexToRgb(GG.kindColors[id] || '#888888'))); });
    } else if (colorBy === 'type') {
      const rgb = R.types.map((t) => GG.hexToRgb(t.color));
      vis.forEach((i, k) => put(k, G.type[i] >= 0 ? rgb[G.type[i]] : [70, 78, 92]));
    } else {
      // Metrics are skewed over orders of magnitude, so colour by rank
      // among the nodes on screen; the legend gives the real range.
      const values = metricValues(colorBy);
      const order = Array.from(vis).sort((a, b) => values[a] - values[b]);
      const rank = new Map(order.map((i, r) => [i, r]));
      const n = Math.max(1, order.length - 1);
      vis.forEach((i, k) => put(k, GG.ramp(rank.get(i) / n)));
    }
    return out;
  }

  function flags() {
    const f = new Uint8Array(vis.length);
    if (selected < 0) return f;
    const s = rep(selected);
    if (inst[s] >= 0) f[inst[s]] = 1;
    const E = G.edges;
    for (let e = 0; e < E.count; e++) {
      const a = rep(E.source[e]), b = rep(E.target[e]);
      if (a === s && b !== s && inst[b] >= 0 && f[inst[b]] === 0) f[inst[b]] = 2;
      if (b === s && a !== s && inst[a] >= 0 && f[inst[a]] === 0) f[inst[a]] = 2;
    }
    return f;
  }

  // Edges that only matter up close: those of heads, KV heads and tensors.
  const DETAIL = new Set(['head', 'kv_head', 'tensor']);

  function edges() {
    const E = G.edges;
    const ends = [], cols = [], detail = [];
    const seen = new Set();
    const s = selected >= 0 ? rep(selected) : -1;
    const push = (x1, y1, x2, y2, col, fine) => { ends.push(x1, y1, x2, y2); cols.push(...col); detail.push(fine); };
    for (let e = 0; e < E.count; e++) {
      const a = rep(E.source[e]), b = rep(E.target[e]);
      if (a === b || inst[a] < 0 || inst[b] < 0) continue;
      const key = a * G.count + b;
      if (seen.has(key)) continue;
      seen.add(key);
      const kind = G.edgeKinds[E.kind[e]];
      const lit = a === s || b === s;
      const col = lit ? HILITE : EDGE_RGBA[kind];
      const fine = !lit && (DETAIL.has(kindId(a)) || DETAIL.has(kindId(b))) ? 1 : 0;
      if (kind === 'tied') {
        // The tie spans the whole model: route it down the right margin
        // instead of through every layer.
        const lane = right + 140;
        push(wx[a], wy[a], lane, wy[a], col, 0);
        push(lane, wy[a], lane, wy[b], col, 0);
        push(lane, wy[b], wx[b], wy[b], col, 0);
      } else {
        push(wx[a], wy[a], wx[b], wy[b], col, fine);
      }
    }
    renderer.setEdges(new Float32Array(ends), new Uint8Array(cols), Uint8Array.from(detail));
  }

  // Rebuilds every instance: after collapsing, filtering, recolouring.
  function rebuild() {
    layoutWorld();
    const list = [];
    inst = new Int32Array(G.count).fill(-1);
    for (let i = 0; i < G.count; i++) if (visible(i)) { inst[i] = list.length; list.push(i); }
    vis = Int32Array.from(list);
    const x = new Float32Array(vis.length), y = new Float32Array(vis.length);
    const shape = new Uint8Array(vis.length);
    vis.forEach((i, k) => { x[k] = wx[i]; y[k] = wy[i]; shape[k] = SHAPE[kindId(i)] || 0; });
    renderer.setNodes({ n: vis.length, x, y, size: sizes(), color: colors(), shape, flags: flags() });
    edges();
    drawLegend();
  }

  function restyle() {
    renderer.setNodeFlags(flags());
    edges();
  }

  function bounds() {
    let x0 = Infinity, x1 = -Infinity;
    for (const i of vis) { x0 = Math.min(x0, wx[i] - 40); x1 = Math.max(x1, wx[i] + 40); }
    return [x0, 0, x1, bandTop[bandTop.length - 1]];
  }

  function fit() {
    const [x0, y0, x1, y1] = bounds();
    renderer.fit(x0, y0, x1, y1);
    if (renderer.cam.k < 0.35) {
      // Too tall to read whole: fill the width and start at the top.
      renderer.cam.k = Math.min(1.2, (renderer.cssW - 60) / (x1 - x0));
      renderer.cam.x = (x0 + x1) / 2;
      renderer.cam.y = y0 - 10 + renderer.cssH / 2 / renderer.cam.k;
      renderer.cameraChanged();
    }
  }

  function label(i, px) {
    const id = kindId(i);
    if (id === 'tensor') return G.key[i].replace(/^blk\.\d+\./, '');
    if (id === 'head') return px >= 9 ? `h${G.head[i]}` : '';
    if (id === 'kv_head') return `kv${G.head[i]}`;
    return G.label[i];
  }

  function drawOverlay(ctx, r) {
    const k = r.cam.k;
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    // Frames and names of expanded layers.
    G.bands.forEach((b, bi) => {
      if (b.layer === null || !expanded.has(b.layer)) return;
      const [, y0] = r.worldToScreen(0, bandTop[bi]);
      const [, y1] = r.worldToScreen(0, bandTop[bi + 1]);
      if (y1 < 0 || y0 > r.cssH) return;
      const [x0] = r.worldToScreen(-70, 0);
      const [x1] = r.worldToScreen(right + 30, 0);
      const sel = GG.state.layer === b.layer;
      ctx.strokeStyle = sel ? 'rgba(245,165,36,0.55)' : 'rgba(130,145,170,0.22)';
      ctx.lineWidth = 1;
      ctx.strokeRect(x0, y0 + 4, x1 - x0, y1 - y0 - 8);
      ctx.fillStyle = sel ? '#f5a524' : '#8793a8';
      // The name stays in sight while the band is.
      ctx.fillText(b.label, Math.max(6, x0 + 8), Math.min(Math.max(y0 + 16, 14), y1 - 16));
    });
    let budget = 500;
    r.forVisibleNodes((n) => {
      const i = vis[n];
      const px = renderer.nodes.size[n] * k;
      const id = kindId(i);
      if (px < (id === 'layer' ? 4 : 5)) return true;
      const [sx, sy] = r.worldToScreen(wx[i], wy[i]);
      if (sx < -200 || sx > r.cssW + 50) return true;
      const text = label(i, px);
      if (!text) return true;
      const isSel = i === selected || (selected >= 0 && rep(selected) === i);
      ctx.fillStyle = isSel ? '#ffd27a' : id === 'tensor' ? '#7f8aa0' : '#c9d1de';
      if (id === 'tensor') {
        ctx.textAlign = 'right';
        ctx.fillText(text, sx - px - 4, sy - px - 4);
      } else if (id === 'layer') {
        ctx.textAlign = 'left';
        ctx.fillText(text, sx + px * 4 + 8, sy);
      } else if (id === 'head') {
        ctx.textAlign = 'center';
        ctx.fillText(text, sx, sy + px + 8);
      } else {
        ctx.textAlign = 'left';
        ctx.fillText(text, sx + px + 5, sy);
      }
      return --budget > 0;
    });
    ctx.textAlign = 'left';
  }

  function drawLegend() {
    GG.clear(legend);
    if (colorBy === 'kind') {
      const present = new Set(Array.from(vis, kindId));
      for (const k of G.kinds) {
        if (!present.has(k.id)) continue;
        legend.append(GG.el('span', { class: 'chip' }, GG.el('i', { class: `shape-${SHAPE[k.id] || 0}`, style: { background: GG.kindColors[k.id] } }), k.label));
      }
    } else if (colorBy === 'type') {
      for (const t of R.types) legend.append(GG.el('span', { class: 'chip' }, GG.el('i', { style: { background: t.color } }), `${t.name} · ${GG.fmtBpw(t.bits_per_weight)} bpw`));
      legend.append(GG.el('span', { class: 'chip' }, GG.el('i', { style: { background: '#464e5c' } }), 'mixed / none'));
    } else {
      const m = G.metrics.find((x) => x.id === colorBy);
      const [lo, hi] = GG.extent(m.values, vis);
      const ramp = GG.el('span', { class: 'ramp' });
      legend.append(GG.el('span', { class: 'chip' }, `${m.label}: rank among shown nodes, ${GG.fmtNum(lo)}`), ramp, GG.fmtNum(hi),
        GG.el('div', { class: 'legend-note', text: m.description }));
    }
  }

  function tooltipFor(i, ev) {
    if (i < 0) { GG.tooltip.hide(); return; }
    const n = vis[i];
    const id = kindId(n);
    const rows = [['kind', G.kinds[G.kind[n]].label]];
    if (G.layer[n] >= 0) rows.push(['layer', String(G.layer[n])]);
    if (id === 'head') rows.push(['KV head', String(G.kvGroup[n])]);
    if (G.tensor[n] >= 0) rows.push(['shape', R.tensors.shape[G.tensor[n]].join(' × ')]);
    if (G.params[n] > 0) rows.push(['parameters', GG.fmtCount(G.params[n])], ['bytes', GG.fmtBytes(G.bytes[n])]);
    if (G.type[n] >= 0) rows.push(['type', `${R.types[G.type[n]].name} (${GG.fmtBpw(R.types[G.type[n]].bits_per_weight)} bpw)`]);
    for (const m of G.metrics) rows.push([m.label, GG.fmtNum(m.values[n])]);
    if (id === 'layer') rows.push(['', 'double-click to expand']);
    GG.tooltip.show(ev.clientX, ev.clientY, G.key[n], rows);
  }

  function toggleLayer(l) {
    if (expanded.has(l)) expanded.delete(l); else expanded.add(l);
    rebuild();
  }

  // Pans so node `i` is on screen, expanding its layer if needed.
  function reveal(i) {
    const p = G.parent[i];
    if (p >= 0 && isCollapsed(p) && i !== p) { expanded.add(G.layer[p]); rebuild(); }
    const [sx, sy] = renderer.worldToScreen(wx[i], wy[i]);
    if (sx < 40 || sy < 40 || sx > renderer.cssW - 40 || sy > renderer.cssH - 40) {
      if (renderer.cam.k < 0.5) renderer.cam.k = 0.9;
      renderer.cam.x = wx[i];
      renderer.cam.y = wy[i];
      renderer.cameraChanged();
    }
  }

  function toolbar() {
    const opt = (v, t) => GG.el('option', { value: v, text: t });
    const metricOpts = G.metrics.map((m) => opt(m.id, m.label));
    const colorSel = GG.el('select', { id: 'arch-color', 'aria-label': 'colour by', onchange: (e) => { colorBy = e.target.value; rebuild(); } },
      opt('kind', 'kind'), opt('type', 'ggml type'), ...metricOpts);
    const sizeSel = GG.el('select', { id: 'arch-size', 'aria-label': 'size by', onchange: (e) => { sizeBy = e.target.value; rebuild(); } },
      opt('uniform', 'kind'), opt('params', 'parameters'), opt('bytes', 'bytes'), opt('pagerank', 'PageRank'));
    const present = new Set(Array.from(G.kind, (k) => G.kinds[k].id));
    const kinds = GG.el('details', { class: 'kinds' }, GG.el('summary', { text: 'Kinds' }),
      GG.el('div', { class: 'kind-list' }, ...G.kinds.filter((k) => present.has(k.id) && k.id !== 'layer').map((k) =>
        GG.el('label', {}, GG.el('input', {
          type: 'checkbox', checked: true, dataset: { kind: k.id },
          onchange: (e) => { if (e.target.checked) hiddenKinds.delete(k.id); else hiddenKinds.add(k.id); rebuild(); },
        }), GG.el('i', { style: { background: GG.kindColors[k.id] } }), k.label))));
    const btn = (text, id, fn) => GG.el('button', { type: 'button', id, text, onclick: fn });
    return GG.el('div', { class: 'toolbar' },
      GG.el('label', {}, 'Colour ', colorSel), GG.el('label', {}, 'Size ', sizeSel), kinds,
      btn('Expand all', 'arch-expand', () => { R.layers.forEach((l) => expanded.add(l.layer)); rebuild(); }),
      btn('Collapse all', 'arch-collapse', () => { expanded.clear(); rebuild(); }),
      btn('Fit', 'arch-fit', fit),
      GG.el('span', { class: 'hint', text: 'drag · wheel zoom · double-click a layer · / search' }),
      // A plain link, present only when the build uploaded the graph
      // (--graphistry); the page itself still makes no request.
      R.graphistry ? GG.el('a', {
        id: 'arch-graphistry', class: 'graphistry-link', href: R.graphistry.architecture.url,
        target: '_blank', rel: 'noopener noreferrer', text: 'Open in Graphistry',
        title: `${R.graphistry.architecture.nodes} nodes, ${R.graphistry.architecture.edges} edges on ${R.graphistry.server}`,
      }) : null);
  }

  const view = {
    id: 'architecture',
    title: 'Architecture',
    order: 10,
    create(el, report) {
      R = report;
      G = R.graph;
      root = el;
      wx = new Float32Array(G.count);
      wy = new Float32Array(G.count);
      right = G.x.reduce((m, v) => Math.max(m, v), 0);
      canvas = GG.el('canvas', { class: 'gl', id: 'arch-canvas' });
      overlay = GG.el('canvas', { class: 'gl-overlay' });
      legend = GG.el('div', { class: 'legend', id: 'arch-legend' });
      const stage = GG.el('div', { class: 'stage' }, canvas, overlay, legend);
      root.append(toolbar(), stage);
      try {
        renderer = new GG.GraphRenderer(canvas, overlay);
      } catch (err) {
        stage.append(GG.el('p', { class: 'fatal', text: `The graph needs WebGL2: ${err.message}` }));
        throw err;
      }
      renderer.onOverlay = drawOverlay;
      // Heads sit 16 units apart: below this zoom their edges blur into one.
      renderer.detailZoom = 0.2;
      renderer.onHover = tooltipFor;
      renderer.onClick = (i) => { if (i >= 0) GG.select(GG.selectionOfNode(R, vis[i])); };
      renderer.onDblClick = (i) => {
        if (i < 0) return;
        const n = vis[i];
        if (G.layer[n] >= 0) toggleLayer(G.layer[n]);
      };
      expanded.add(GG.state.layer !== undefined ? GG.state.layer : 0);
      selected = GG.selectedNode(R, GG.state);
      rebuild();
      window.addEventListener('keydown', (ev) => {
        if (!visibleNow || GG.typing(ev)) return;
        if (ev.key === 'f') fit();
        else if (ev.key === 'e' && GG.state.layer !== undefined) toggleLayer(GG.state.layer);
      });
      // For automation and tests: where a node is on screen.
      view.renderer = renderer;
      view.screenOf = (key) => {
        const i = G.nodeByKey.get(key);
        if (i === undefined || inst[i] < 0) return null;
        const b = canvas.getBoundingClientRect();
        const [sx, sy] = renderer.worldToScreen(wx[i], wy[i]);
        return [b.left + sx, b.top + sy];
      };
      view.expandAll = () => { R.layers.forEach((l) => expanded.add(l.layer)); rebuild(); };
    },
    show() {
      visibleNow = true;
      renderer.resize();
      if (!fitted) { fit(); fitted = true; }
    },
    hide() { visibleNow = false; GG.tooltip.hide(); },
    resize() { renderer.resize(); },
    update(s, prev) {
      const next = GG.selectedNode(R, s);
      if (next === selected && prev && prev.layer === s.layer) return;
      selected = next;
      if (selected >= 0 && s.node !== undefined && (!prev || prev.node !== s.node)) reveal(selected);
      restyle();
    },
  };
  GG.views = GG.views || {};
  GG.views.architecture = view;
  GG.registerView(view);
})(window.GG);
