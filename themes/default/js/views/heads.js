// View 3, Heads: every attention head of every layer as one L×H grid, heads
// of a KV group side by side. Cells take their colour from any per-head
// metric in the report: KV group and graph facts now, and the behaviour
// metrics (entropy, induction, importance, cluster) that inference adds.
'use strict';
(function (GG) {
  let R, H, B, root, canvas, select, legend, note;
  let card = null;     // the selected head's pattern and features, with behaviour
  let metric = null;
  let geom = null;
  let shown = false;

  function color(m, v, range) {
    if (m.scale === 'categorical') return GG.categoryColor(v);
    return GG.rgbCss(GG.ramp(GG.normalize(v, range)));
  }

  function draw() {
    const s = GG.state;
    const nL = H.nHead.length;
    const maxH = Math.max(1, ...H.nHead);
    const labelW = 56, top = 26;
    const availW = Math.max(200, root.clientWidth - labelW - 40);
    const availH = Math.max(200, root.clientHeight - 140);
    const cell = GG.clamp(Math.floor(Math.min(availW / maxH, Math.max(6, availH / nL))), 4, 36);
    const ctx = GG.charts.setup(canvas, labelW + cell * maxH + 20, top + cell * nL + 8);
    geom = { labelW, top, cell };
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    const range = GG.extent(metric.values);
    for (let l = 0; l < nL; l++) {
      const y = top + l * cell;
      const every = Math.ceil(14 / cell);
      if (l % every === 0 || l === s.layer) {
        ctx.fillStyle = l === s.layer ? '#f5a524' : '#8793a8';
        ctx.textAlign = 'right';
        ctx.fillText(`L${l}`, labelW - 8, y + cell / 2);
      }
      const off = H.offsets[l];
      for (let h = 0; h < H.nHead[l]; h++) {
        const v = metric.values[off + h];
        ctx.fillStyle = color(metric, v, range);
        ctx.fillRect(labelW + h * cell, y, cell - (cell > 6 ? 1 : 0), cell - (cell > 6 ? 1 : 0));
      }
      // KV groups: a line between groups.
      const nkv = H.nHeadKv[l] || 1;
      const group = H.nHead[l] / nkv;
      if (group > 1) {
        ctx.fillStyle = '#0e1015';
        for (let g = 1; g < nkv; g++) ctx.fillRect(labelW + g * group * cell - 1.5, y, 2.5, cell);
      }
    }
    ctx.textAlign = 'center';
    ctx.fillStyle = '#8793a8';
    const every = Math.ceil(22 / cell);
    for (let h = 0; h < maxH; h += every) ctx.fillText(String(h), labelW + h * cell + cell / 2, top - 10);
    ctx.textAlign = 'left';
    if (s.layer !== undefined && s.layer < nL) {
      ctx.strokeStyle = 'rgba(245,165,36,0.6)';
      ctx.lineWidth = 1;
      ctx.strokeRect(labelW - 0.5, top + s.layer * cell - 0.5, H.nHead[s.layer] * cell, cell);
      if (s.head !== undefined && s.head < H.nHead[s.layer]) {
        ctx.strokeStyle = '#ffffff';
        ctx.lineWidth = 2;
        ctx.strokeRect(labelW + s.head * cell - 1, top + s.layer * cell - 1, cell + 1, cell + 1);
      }
    }
    drawLegend(range);
  }

  function drawLegend(range) {
    GG.clear(legend);
    if (metric.scale === 'categorical') {
      const counts = new Array(metric.categories.length).fill(0);
      for (const v of metric.values) if (v >= 0 && v < counts.length) counts[v]++;
      metric.categories.forEach((c, i) => legend.append(GG.el('span', { class: 'chip' }, GG.el('i', { style: { background: GG.categoryColor(i) } }), `${c} (${counts[i]})`)));
    } else {
      legend.append(GG.el('span', { class: 'chip', text: GG.fmtNum(range[0]) }), GG.el('span', { class: 'ramp' }), GG.fmtNum(range[1]));
    }
    note.textContent = metric.description;
  }

  // Share of heads with a smaller value: where a head stands among all.
  function percentile(values, v) {
    let below = 0;
    for (const x of values) if (x < v) below++;
    return below / Math.max(1, values.length - 1);
  }

  function drawCard() {
    if (!card) return;
    GG.clear(card);
    const s = GG.state;
    if (s.layer === undefined || s.head === undefined || s.layer >= H.nHead.length || s.head >= H.nHead[s.layer]) {
      card.append(GG.el('p', { class: 'note', text: 'Click a head to see its attention pattern and how it compares with the others.' }));
      return;
    }
    const l = s.layer, h = s.head, i = H.offsets[l] + h;
    const P = GG.promptOf(B, s);
    const part = B.bestPartition;
    const cl = part ? part.clusters[part.labels[i]] : null;
    card.append(GG.el('div', { class: 'hc-head' }, GG.el('b', { text: GG.headName(l, h) }),
      cl ? GG.el('span', { class: 'chip' }, GG.el('i', { style: { background: GG.categoryColor(part.labels[i]) } }), cl.name) : null));
    if (cl) card.append(GG.el('div', { class: 'note', text: `cluster rule: ${cl.rule}` }));
    if (P.hasAttention) {
      const size = 200;
      const c = GG.el('canvas', { width: String(P.T), height: String(P.T), class: P.T <= size ? 'pixelated' : '' });
      c.style.width = c.style.height = `${size}px`;
      c.getContext('2d').drawImage(B.patternImage(P, l, h), 0, 0);
      card.append(GG.el('div', { class: 'hc-pattern' }, c,
        GG.el('div', { class: 'note', text: `attention on “${P.name}”, rows looking at columns` }),
        GG.el('button', { type: 'button', id: 'heads-open-attention', text: 'Open in Attention', onclick: () => GG.select({ view: 'attention' }) })));
    }
    const dl = GG.el('div', { class: 'hc-features' });
    for (const m of B.features) {
      const v = m.values[i];
      const q = percentile(m.values, v);
      dl.append(GG.el('span', { class: 'hc-label', text: m.label, title: m.description }),
        GG.el('span', { class: 'num', text: GG.fmtNum(v) }),
        GG.el('span', { class: 'hc-bar', title: `higher than ${GG.fmtPct(q, 0)} of heads` },
          GG.el('span', { style: { width: `${(q * 100).toFixed(0)}%` } })));
    }
    card.append(GG.el('div', { class: 'sub-title', text: 'Features (bar: rank among all heads)' }), dl);
  }

  function at(ev) {
    if (!geom) return null;
    const p = GG.charts.pointer(ev, canvas);
    const l = Math.floor((p.y - geom.top) / geom.cell);
    const h = Math.floor((p.x - geom.labelW) / geom.cell);
    if (l < 0 || l >= H.nHead.length || h < 0 || h >= H.nHead[l]) return null;
    return { l, h };
  }

  const view = {
    id: 'heads',
    title: 'Heads',
    order: 30,
    create(el, report) {
      R = report;
      H = R.heads;
      B = GG.behaviour(R);
      root = el;
      // With behaviour measured, open on the clusters: they say what heads
      // do; without it, on the KV groups, the one structural fact that
      // differs between heads.
      metric = H.metrics.find((m) => m.id === 'cluster') || H.metrics[0];
      select = GG.el('select', { id: 'heads-metric', 'aria-label': 'colour heads by',
        onchange: (e) => { metric = H.metrics.find((m) => m.id === e.target.value); draw(); } },
      ...H.metrics.map((m) => GG.el('option', { value: m.id, text: m.label, selected: m === metric })));
      canvas = GG.el('canvas', { id: 'heads-canvas', class: 'head-grid' });
      legend = GG.el('div', { class: 'legend inline' });
      note = GG.el('p', { class: 'legend-note' });
      root.append(
        GG.el('div', { class: 'toolbar' }, GG.el('label', {}, 'Colour by ', select), legend,
          GG.el('span', { class: 'hint', text: `${H.count} heads · rows are layers · dark lines separate KV groups · click a head to select it` })),
        GG.el('div', { class: 'scroll' }, note, GG.el('div', { class: 'heads-body' }, canvas,
          B ? (card = GG.el('aside', { class: 'head-card', id: 'head-card' })) : null)));
      canvas.addEventListener('mousemove', (ev) => {
        const c = at(ev);
        if (!c) { GG.tooltip.hide(); return; }
        const i = H.offsets[c.l] + c.h;
        const rows = [['reads KV head', String(H.kvGroup[i])]];
        for (const m of H.metrics) {
          const v = m.values[i];
          rows.push([m.label, m.scale === 'categorical' ? (m.categories[v] || String(v)) : GG.fmtNum(v)]);
        }
        GG.tooltip.show(ev.clientX, ev.clientY, `layer ${c.l}, head ${c.h}`, rows);
      });
      canvas.addEventListener('mouseleave', () => GG.tooltip.hide());
      canvas.addEventListener('click', (ev) => {
        const c = at(ev);
        if (c) GG.select({ layer: c.l, head: c.h, node: `blk.${c.l}.head.${c.h}`, tensor: null });
      });
    },
    show() { shown = true; draw(); drawCard(); },
    hide() { shown = false; GG.tooltip.hide(); },
    resize() { if (shown) draw(); },
    update() { if (shown) { draw(); drawCard(); } },
  };
  GG.registerView(view);
})(window.GG);
