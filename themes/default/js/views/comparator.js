// View 8, Head comparator: every head placed by what its attention does.
// The heads on the two leading principal components of their features,
// coloured by k-means cluster (any k from the report, the best silhouette
// first), the clusters with the rule that named them and their spread over
// layers, the heads' pattern similarity, and a table sortable by every
// feature.
'use strict';
(function (GG) {
  let R, B, H, root, shown = false;
  let kButtons, orderSel, placeSel, scatter, legendBox, simCanvas, simNote, tableBox, table, tbody;
  let part = null;            // the partition shown
  let order = 'layer';
  let placement = 'features'; // or 'similarity'
  let focusCluster = -1;      // a cluster picked in the legend, −1 for none
  let sortKey = 'index', sortDir = 1;
  let rows = [];              // head index -> <tr>
  let metrics = [];           // the FEATURES present, as report metrics
  let layerOfHead, headInLayer;
  let plot = null;            // scatter geometry
  let sim = null;             // similarity geometry

  const name = (i) => GG.headName(layerOfHead[i], headInLayer[i]);
  const color = (i) => (part ? GG.categoryColor(part.labels[i]) : '#7cc6ff');
  const selectedHead = (s) => {
    if (s.layer === undefined || s.head === undefined || s.layer >= H.nHead.length || s.head >= H.nHead[s.layer]) return -1;
    return H.offsets[s.layer] + s.head;
  };
  const secondHead = (s) => {
    const ref = GG.parseHeadRef(s.vs);
    return ref && ref.layer < H.nHead.length && ref.head < H.nHead[ref.layer] ? H.offsets[ref.layer] + ref.head : -1;
  };
  const pick = (i) => GG.select(GG.selectionOfHead(layerOfHead[i], headInLayer[i]));

  // ---- the plane ------------------------------------------------------------

  // The plane the heads are placed on: their features' principal plane, or
  // the principal plane of their unit-length attention patterns (classical
  // scaling of the similarity matrix, computed in Rust).
  function plane() {
    if (placement === 'similarity' && B.similarityPlane) {
      return { xy: B.similarityPlane.xy, explained: B.similarityPlane.explained, what: 'of the patterns' };
    }
    return { xy: B.clusters.xy, explained: B.clusters.explained, what: 'of the features' };
  }

  // How each feature moves along the two axes (its correlation with each),
  // so the axes can be read: arrows of a biplot.
  function loadings() {
    const xy = plane().xy, n = H.count;
    const out = [];
    for (const id of B.clusters.features) {
      const m = B.metric(id);
      if (!m) continue;
      const corr = (axis) => {
        let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
        for (let i = 0; i < n; i++) {
          const a = m.values[i], b = xy[2 * i + axis];
          sx += a; sy += b; sxx += a * a; syy += b * b; sxy += a * b;
        }
        const cov = sxy / n - (sx / n) * (sy / n);
        const va = sxx / n - (sx / n) ** 2, vb = syy / n - (sy / n) ** 2;
        return va > 0 && vb > 0 ? cov / Math.sqrt(va * vb) : 0;
      };
      out.push({ label: m.label, x: corr(0), y: corr(1) });
    }
    return out;
  }

  function drawScatter() {
    const s = GG.state;
    const w = Math.max(320, scatter.parentElement.clientWidth - 24);
    const h = GG.clamp(Math.round(w * 0.9), 300, 520);
    const ctx = GG.charts.setup(scatter, w, h);
    const P = plane(), xy = P.xy, n = H.count;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      x0 = Math.min(x0, xy[2 * i]); x1 = Math.max(x1, xy[2 * i]);
      y0 = Math.min(y0, xy[2 * i + 1]); y1 = Math.max(y1, xy[2 * i + 1]);
    }
    const pad = { l: 34, r: 16, t: 14, b: 34 };
    const sx = (w - pad.l - pad.r) / Math.max(1e-9, x1 - x0);
    const sy = (h - pad.t - pad.b) / Math.max(1e-9, y1 - y0);
    const X = (v) => pad.l + (v - x0) * sx;
    const Y = (v) => h - pad.b - (v - y0) * sy;
    plot = { X, Y };
    // Axes through the mean head (the origin of the centred features).
    ctx.strokeStyle = '#262d3d';
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(pad.l, Y(0)); ctx.lineTo(w - pad.r, Y(0));
    ctx.moveTo(X(0), pad.t); ctx.lineTo(X(0), h - pad.b);
    ctx.stroke();
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#8793a8';
    ctx.textAlign = 'center';
    const ex = P.explained;
    ctx.fillText(`principal component 1 · ${GG.fmtPct(ex[0], 0)} of the variance ${P.what} →`, (pad.l + w - pad.r) / 2, h - 10);
    ctx.save();
    ctx.translate(12, (pad.t + h - pad.b) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText(`component 2 · ${GG.fmtPct(ex[1], 0)} →`, 0, 0);
    ctx.restore();
    // Feature arrows from the mean head.
    const reach = Math.min(w - pad.l - pad.r, h - pad.t - pad.b) * 0.32;
    ctx.strokeStyle = 'rgba(200,210,228,0.35)';
    ctx.fillStyle = '#aab4c6';
    for (const f of loadings()) {
      if (Math.hypot(f.x, f.y) < 0.3) continue;
      const ax = X(0) + f.x * reach, ay = Y(0) - f.y * reach;
      ctx.beginPath(); ctx.moveTo(X(0), Y(0)); ctx.lineTo(ax, ay); ctx.stroke();
      ctx.textAlign = f.x >= 0 ? 'left' : 'right';
      ctx.fillText(f.label, ax + (f.x >= 0 ? 4 : -4), ay + (f.y >= 0 ? -4 : 10));
    }
    const sel = selectedHead(s), other = secondHead(s);
    for (let i = 0; i < n; i++) {
      const dim = focusCluster >= 0 && part && part.labels[i] !== focusCluster;
      ctx.globalAlpha = dim ? 0.15 : 0.9;
      ctx.fillStyle = color(i);
      ctx.beginPath();
      ctx.arc(X(xy[2 * i]), Y(xy[2 * i + 1]), layerOfHead[i] === s.layer ? 5 : 3.8, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    for (const [i, dash] of [[other, [3, 2]], [sel, []]]) {
      if (i < 0) continue;
      const px = X(xy[2 * i]), py = Y(xy[2 * i + 1]);
      ctx.setLineDash(dash);
      ctx.strokeStyle = '#ffffff';
      ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(px, py, 8, 0, 2 * Math.PI); ctx.stroke();
      ctx.setLineDash([]);
      ctx.font = '600 12px system-ui, sans-serif';
      ctx.textAlign = 'left';
      ctx.fillStyle = '#ffffff';
      ctx.fillText(name(i), px + 11, py - 9);
    }
  }

  function nearest(ev) {
    if (!plot) return -1;
    const p = GG.charts.pointer(ev, scatter);
    const xy = plane().xy;
    let best = -1, bd = 81;
    for (let i = 0; i < H.count; i++) {
      const d = (plot.X(xy[2 * i]) - p.x) ** 2 + (plot.Y(xy[2 * i + 1]) - p.y) ** 2;
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  }

  function headRows(i) {
    const out = [];
    if (part) out.push(['cluster', part.clusters[part.labels[i]].name]);
    for (const m of metrics) out.push([m.label, GG.fmtNum(m.values[i])]);
    out.push(['reads KV head', String(H.kvGroup[i])]);
    return out;
  }

  // ---- the clusters -----------------------------------------------------------

  function drawLegend() {
    GG.clear(legendBox);
    if (!part) return;
    const nL = H.nHead.length;
    const maxPer = Math.max(1, ...part.clusters.flatMap((c) => c.per_layer));
    part.clusters.forEach((c, ci) => {
      const bars = GG.el('canvas', { class: 'per-layer' });
      const card = GG.el('div', {
        class: `cluster-card${focusCluster === ci ? ' focus' : ''}${focusCluster >= 0 && focusCluster !== ci ? ' dim' : ''}`,
        dataset: { cluster: String(ci) }, role: 'button', tabindex: '0',
        title: 'click to show only this cluster',
        onclick: () => { focusCluster = focusCluster === ci ? -1 : ci; drawAll(); },
      },
      GG.el('div', { class: 'cc-head' }, GG.el('i', { style: { background: GG.categoryColor(ci) } }), GG.el('b', { text: c.name }),
        GG.el('span', { class: 'hint', text: `${c.size} head${c.size === 1 ? '' : 's'}` })),
      GG.el('div', { class: 'cc-rule', text: c.rule }), bars);
      legendBox.append(card);
      const w = 250, h = 26;
      const ctx = GG.charts.setup(bars, w, h);
      const slot = w / nL;
      ctx.fillStyle = '#1b2030';
      ctx.fillRect(0, h - 1, w, 1);
      ctx.fillStyle = GG.categoryColor(ci);
      c.per_layer.forEach((v, l) => {
        const bh = (v / maxPer) * (h - 3);
        ctx.fillRect(l * slot + 0.5, h - 1 - bh, Math.max(1, slot - 1), bh);
      });
      bars.addEventListener('mousemove', (ev) => {
        const l = GG.clamp(Math.floor(GG.charts.pointer(ev, bars).x / slot), 0, nL - 1);
        GG.tooltip.show(ev.clientX, ev.clientY, `${c.name} · layer ${l}`, [['heads', `${c.per_layer[l]} of ${H.nHead[l]}`]]);
      });
      bars.addEventListener('mouseleave', () => GG.tooltip.hide());
    });
    legendBox.append(GG.el('p', { class: 'note', text: 'Bars: the cluster\u2019s heads in each layer, first layer on the left. Names come from the feature a cluster\u2019s centre stands out on most, in standard deviations (σ) from the mean head.' }));
  }

  // ---- similarity ---------------------------------------------------------------

  function simOrder() {
    const idx = Array.from({ length: H.count }, (_, i) => i);
    if (order === 'cluster' && part) idx.sort((a, b) => part.labels[a] - part.labels[b] || a - b);
    return idx;
  }

  let simImage = null, simKey = '';
  function drawSim() {
    if (!B.similarity) return;
    const s = GG.state;
    const n = H.count;
    const idx = simOrder();
    const key = `${order}:${part ? part.k : 0}`;
    if (key !== simKey) {
      simImage = document.createElement('canvas');
      simImage.width = n;
      simImage.height = n;
      const c = simImage.getContext('2d');
      const img = c.createImageData(n, n);
      const lut = [];
      for (let b = 0; b < 256; b++) lut.push(GG.ramp(b / 255));
      for (let r = 0; r < n; r++) {
        for (let q = 0; q < n; q++) {
          const rgb = lut[B.similarity[idx[r] * n + idx[q]]];
          const o = 4 * (r * n + q);
          img.data[o] = rgb[0]; img.data[o + 1] = rgb[1]; img.data[o + 2] = rgb[2]; img.data[o + 3] = 255;
        }
      }
      c.putImageData(img, 0, 0);
      simKey = key;
    }
    const band = 8, off = band + 4;
    const avail = Math.max(240, simCanvas.parentElement.clientWidth - 24 - off);
    // Whole pixels per head when there is room for two or more; otherwise
    // the image is scaled smoothly rather than unevenly.
    let cell = Math.min(avail / n, 12);
    if (cell >= 2) cell = Math.floor(cell);
    const size = cell * n;
    const ctx = GG.charts.setup(simCanvas, off + size + 2, off + size + 2);
    sim = { off, cell, idx, pos: new Int32Array(n) };
    idx.forEach((h, r) => { sim.pos[h] = r; });
    ctx.imageSmoothingEnabled = cell < 2;
    ctx.drawImage(simImage, off, off, size, size);
    // Cluster colours along the edges; group boundaries as thin lines.
    for (let r = 0; r < n; r++) {
      ctx.fillStyle = color(idx[r]);
      ctx.fillRect(off + r * cell, 0, Math.max(cell, 1), band);
      ctx.fillRect(0, off + r * cell, band, Math.max(cell, 1));
    }
    ctx.strokeStyle = 'rgba(14,16,21,0.85)';
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let r = 1; r < n; r++) {
      const a = idx[r - 1], b = idx[r];
      const boundary = order === 'cluster' ? part && part.labels[a] !== part.labels[b] : layerOfHead[a] !== layerOfHead[b];
      if (!boundary) continue;
      const at = off + r * cell + 0.5;
      ctx.moveTo(at, off); ctx.lineTo(at, off + size);
      ctx.moveTo(off, at); ctx.lineTo(off + size, at);
    }
    ctx.stroke();
    const sel = selectedHead(s);
    if (sel >= 0) {
      const r = sim.pos[sel];
      ctx.strokeStyle = '#ffffff';
      ctx.lineWidth = 1;
      ctx.strokeRect(off - 0.5, off + r * cell - 0.5, size + 1, Math.max(cell, 1) + 1);
      ctx.strokeRect(off + r * cell - 0.5, off - 0.5, Math.max(cell, 1) + 1, size + 1);
    }
  }

  function simAt(ev) {
    if (!sim) return null;
    const p = GG.charts.pointer(ev, simCanvas);
    const r = Math.floor((p.y - sim.off) / sim.cell), q = Math.floor((p.x - sim.off) / sim.cell);
    if (r < 0 || q < 0 || r >= H.count || q >= H.count) return null;
    return { a: sim.idx[r], b: sim.idx[q] };
  }

  // ---- the table ------------------------------------------------------------------

  function buildTable() {
    // Without --ablation the contribution column is also the importance.
    const label = (m) => (m.id === 'contribution' && B.importance.kind === 'contribution' ? 'contribution = importance' : m.label);
    const cols = [['index', 'head'], ['cluster', 'cluster'], ...metrics.map((m) => [m.id, label(m)])];
    const head = GG.el('tr', {}, ...cols.map(([id, label]) => GG.el('th', {
      dataset: { sort: id }, text: label, title: id === 'index' ? 'layer, then head' : (metrics.find((m) => m.id === id) || {}).description || '',
      class: id === 'index' || id === 'cluster' ? '' : 'num',
      onclick: () => { sortDir = sortKey === id ? -sortDir : (id === 'index' || id === 'cluster' ? 1 : -1); sortKey = id; sortRows(); },
    })));
    tbody = GG.el('tbody');
    const max = metrics.map((m) => Math.max(1e-12, ...Array.from(m.values).filter(Number.isFinite).map(Math.abs)));
    rows = [];
    for (let i = 0; i < H.count; i++) {
      const tr = GG.el('tr', { dataset: { head: `${layerOfHead[i]}.${headInLayer[i]}` }, onclick: () => pick(i) },
        GG.el('td', { class: 'mono', text: name(i) }),
        GG.el('td', { class: 'cl' }),
        ...metrics.map((m, k) => {
          const v = m.values[i];
          const share = Number.isFinite(v) ? GG.clamp(Math.abs(v) / max[k], 0, 1) : 0;
          return GG.el('td', { class: 'num bar', text: GG.fmtNum(v),
            style: { backgroundSize: `${(share * 100).toFixed(1)}% 100%` } });
        }));
      rows.push(tr);
      tbody.append(tr);
    }
    table = GG.el('table', { class: 'tensors heads-table', id: 'cmp-table' }, GG.el('thead', {}, head), tbody);
    GG.clear(tableBox).append(table);
  }

  function fillClusters() {
    rows.forEach((tr, i) => {
      const td = tr.cells[1];
      GG.clear(td);
      if (part) td.append(GG.el('span', { class: 'chip' }, GG.el('i', { style: { background: color(i) } }), part.clusters[part.labels[i]].name));
      tr.hidden = focusCluster >= 0 && part && part.labels[i] !== focusCluster;
    });
  }

  function sortRows() {
    const val = sortKey === 'index' ? (i) => i
      : sortKey === 'cluster' ? (i) => (part ? part.labels[i] : 0)
        : (i) => metrics.find((m) => m.id === sortKey).values[i];
    const idx = rows.map((_, i) => i).sort((a, b) => {
      const x = val(a), y = val(b);
      return (x < y ? -1 : x > y ? 1 : a - b) * sortDir;
    });
    for (const i of idx) tbody.append(rows[i]);
    for (const th of table.tHead.rows[0].cells) th.dataset.dir = th.dataset.sort === sortKey ? (sortDir > 0 ? 'asc' : 'desc') : '';
  }

  let lastRow = null;
  function markRow() {
    const i = selectedHead(GG.state);
    if (lastRow) lastRow.classList.remove('selected');
    lastRow = i >= 0 ? rows[i] : null;
    if (lastRow) {
      lastRow.classList.add('selected');
      // Scroll the table's own box, never the page.
      const box = tableBox.getBoundingClientRect(), r = lastRow.getBoundingClientRect();
      if (r.top < box.top + 30 || r.bottom > box.bottom) tableBox.scrollTop += r.top - box.top - box.height / 2;
    }
  }

  // ---- the page -------------------------------------------------------------------

  function setK(k) {
    part = B.clusters.partitions.find((p) => p.k === k) || B.clusters.partitions[0];
    focusCluster = -1;
    for (const b of kButtons.children) b.setAttribute('aria-pressed', String(Number(b.dataset.k) === part.k));
  }

  function drawAll() {
    if (!shown) return;
    if (B.clusters) { drawScatter(); drawLegend(); }
    fillClusters();
    if (sortKey === 'cluster') sortRows();
    drawSim();
    markRow();
  }

  function card(title, ...body) {
    return GG.el('section', { class: 'cmp-card' }, GG.el('h3', { class: 'section-title', text: title }), ...body);
  }

  const view = {
    id: 'comparator',
    title: 'Head comparator',
    order: 80,
    requires: 'behaviour',
    create(el, report) {
      R = report;
      B = GG.behaviour(R);
      H = R.heads;
      root = el;
      layerOfHead = new Int32Array(H.count);
      headInLayer = new Int32Array(H.count);
      H.nHead.forEach((nh, l) => { for (let h = 0; h < nh; h++) { layerOfHead[H.offsets[l] + h] = l; headInLayer[H.offsets[l] + h] = h; } });
      // With the default importance (the contribution norm) the two columns
      // would be the same numbers: show one.
      metrics = B.features.filter((m) => !(m.id === 'importance' && B.importance.kind === 'contribution'));
      kButtons = GG.el('div', { class: 'seg', id: 'cmp-k', role: 'group', 'aria-label': 'number of clusters' });
      if (B.clusters) {
        for (const p of B.clusters.partitions) {
          kButtons.append(GG.el('button', { type: 'button', dataset: { k: String(p.k) },
            title: `k = ${p.k}: mean silhouette ${GG.fmtNum(p.silhouette)}${p.k === B.clusters.k ? ' (the best)' : ''}`,
            onclick: () => { setK(p.k); drawAll(); } },
          GG.el('b', { text: `${p.k}` }), GG.el('small', { text: ` ${p.silhouette.toFixed(2)}${p.k === B.clusters.k ? ' ★' : ''}` })));
        }
      }
      orderSel = GG.el('select', { id: 'cmp-order', 'aria-label': 'order of the similarity matrix',
        onchange: (e) => { order = e.target.value; drawSim(); } },
      GG.el('option', { value: 'layer', text: 'by layer' }), GG.el('option', { value: 'cluster', text: 'by cluster' }));
      placeSel = GG.el('select', { id: 'cmp-place', 'aria-label': 'place heads by',
        title: 'features: the principal plane of the head features; attention patterns: heads close when they attend alike (the principal plane of their unit-length patterns over all prompts)',
        onchange: (e) => { placement = e.target.value; drawScatter(); } },
      GG.el('option', { value: 'features', text: 'features' }), GG.el('option', { value: 'similarity', text: 'attention patterns' }));
      scatter = GG.el('canvas', { id: 'cmp-scatter', class: 'cmp-scatter' });
      legendBox = GG.el('div', { class: 'cluster-legend', id: 'cmp-legend' });
      simCanvas = GG.el('canvas', { id: 'cmp-sim', class: 'cmp-sim' });
      simNote = GG.el('p', { class: 'note' });
      tableBox = GG.el('div', { class: 'cmp-table-box' });
      const imp = B.importance;
      root.append(
        GG.el('div', { class: 'toolbar' },
          B.clusters ? GG.el('label', {}, 'Clusters k', kButtons, GG.el('span', { class: 'hint', text: 'silhouette · ★ best' })) : GG.el('span', { class: 'hint', text: 'too few heads to cluster' }),
          B.clusters && B.similarityPlane ? GG.el('label', {}, 'Place by', placeSel) : null,
          B.similarity ? GG.el('label', {}, 'Matrix order', orderSel) : null,
          GG.el('span', { class: 'hint', text: 'click a head anywhere to select it' }),
          R.graphistry && R.graphistry.heads ? GG.el('a', {
            id: 'cmp-graphistry', class: 'graphistry-link', href: R.graphistry.heads.url,
            target: '_blank', rel: 'noopener noreferrer', text: 'Open in Graphistry',
            title: `the head graph: ${R.graphistry.heads.nodes} heads, ${R.graphistry.heads.edges} similar pairs, on ${R.graphistry.server}`,
          }) : null),
        GG.el('div', { class: 'scroll' },
          GG.el('div', { class: 'cmp-grid' },
            B.clusters ? card('Heads placed by what their attention does', scatter) : null,
            B.similarity ? card('Pattern similarity (cosine over all prompts)', simCanvas, simNote) : null,
            B.clusters ? card('Clusters (click one to show only its heads)', legendBox) : null,
            card(`Every head · importance: ${imp.description}`, tableBox))));
      buildTable();
      simNote.textContent = 'Row and column are heads; bright means the two heads attend alike. Click a cell to select the row\u2019s head and show the column\u2019s beside it in Attention.';
      scatter.addEventListener('mousemove', (ev) => {
        const i = nearest(ev);
        if (i < 0) { GG.tooltip.hide(); return; }
        GG.tooltip.show(ev.clientX, ev.clientY, name(i), headRows(i));
      });
      scatter.addEventListener('click', (ev) => { const i = nearest(ev); if (i >= 0) pick(i); });
      scatter.addEventListener('mouseleave', () => GG.tooltip.hide());
      simCanvas.addEventListener('mousemove', (ev) => {
        const at = simAt(ev);
        if (!at) { GG.tooltip.hide(); return; }
        GG.tooltip.show(ev.clientX, ev.clientY, `${name(at.a)} × ${name(at.b)}`, [
          ['cosine', GG.fmtNum(B.similarity[at.a * H.count + at.b] / 255)],
          ...(part ? [['clusters', `${part.clusters[part.labels[at.a]].name} · ${part.clusters[part.labels[at.b]].name}`]] : []),
        ]);
      });
      simCanvas.addEventListener('mouseleave', () => GG.tooltip.hide());
      simCanvas.addEventListener('click', (ev) => {
        const at = simAt(ev);
        if (!at) return;
        GG.select({ ...GG.selectionOfHead(layerOfHead[at.a], headInLayer[at.a]),
          vs: at.a === at.b ? null : `${layerOfHead[at.b]}.${headInLayer[at.b]}` });
      });
      // For tests and automation: where head (l, h) is drawn on screen.
      view.screenOf = (l, h) => {
        if (!plot) return null;
        const i = H.offsets[l] + h;
        const b = scatter.getBoundingClientRect();
        const xy = plane().xy;
        return [b.left + plot.X(xy[2 * i]), b.top + plot.Y(xy[2 * i + 1])];
      };
      if (B.clusters) setK(B.clusters.k);
    },
    show() { shown = true; drawAll(); },
    hide() { shown = false; GG.tooltip.hide(); },
    resize() { drawAll(); },
    update() { drawAll(); },
  };
  GG.views = GG.views || {};
  GG.views.comparator = view;
  GG.registerView(view);
})(window.GG);
