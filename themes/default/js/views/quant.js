// View 4, Quantization: where the file's bytes go. A legend with each
// type's exact bits per weight, bytes per layer stacked by type, the file
// as a treemap of tensors, and a table listing every tensor.
'use strict';
(function (GG) {
  let R, T, root, scroller, bars, treemap, table, tbody, filter, count;
  let barHits = [], mapHits = [];
  let rows = [];            // tensor index -> <tr>
  let sortKey = 'index', sortDir = 1;
  let shown = false;

  function legendCards() {
    const box = GG.el('div', { class: 'type-cards', id: 'quant-legend' });
    for (const t of R.types) {
      box.append(GG.el('div', { class: 'type-card' },
        GG.el('div', { class: 'tc-head' }, GG.el('i', { style: { background: t.color } }), GG.el('b', { text: t.name }),
          GG.el('span', { class: 'bpw', text: `${GG.fmtBpw(t.bits_per_weight)} bits/weight` })),
        GG.el('div', { class: 'tc-math', text: t.block_size === 1
          ? `${t.type_size} bytes per weight, unquantized`
          : `blocks of ${t.block_size} weights in ${t.type_size} bytes: ${t.type_size} × 8 / ${t.block_size} = ${GG.fmtBpw(t.bits_per_weight)}` }),
        GG.el('div', { class: 'tc-share', text: `${t.tensors} tensor${t.tensors === 1 ? '' : 's'} · ${GG.fmtCount(t.params)} weights · ${GG.fmtBytes(t.bytes)} (${GG.fmtPct(t.share_of_bytes)} of bytes)` })));
    }
    return box;
  }

  function drawBars() {
    const s = GG.state;
    const nL = R.layers.length;
    const w = Math.max(320, scroller.clientWidth - 52);
    const h = 180;
    const ctx = GG.charts.setup(bars, w, h + 24);
    const global = { label: 'outside layers', parts: [] };
    const gBytes = new Map();
    for (let i = 0; i < T.count; i++) if (T.layer[i] < 0) gBytes.set(T.type[i], (gBytes.get(T.type[i]) || 0) + T.bytes[i]);
    const data = R.layers.map((l) => ({
      label: `layer ${l.layer}`,
      parts: l.bytes_by_type.map(([t, b]) => ({ value: b, color: R.types[t].color, type: t })),
    }));
    global.parts = Array.from(gBytes, ([t, b]) => ({ value: b, color: R.types[t].color, type: t }));
    // Layers share one scale; the tensors outside them (often the largest)
    // get their own bar on the right with its own scale, labelled.
    const maxLayer = Math.max(1, ...data.map((b) => b.parts.reduce((a, p) => a + p.value, 0)));
    const gw = Math.min(60, w * 0.08);
    barHits = GG.charts.stackedBars(ctx, { x: 40, y: 18, w: w - 60 - gw, h: h - 14 }, data, { max: maxLayer, selected: s.layer });
    const gTotal = global.parts.reduce((a, p) => a + p.value, 0);
    const gh = GG.charts.stackedBars(ctx, { x: w - gw, y: 18, w: gw - 4, h: h - 14 }, [global], { max: Math.max(gTotal, 1) });
    for (const hit of gh) hit.bar = -1;
    barHits = barHits.concat(gh);
    ctx.fillStyle = '#8793a8';
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    ctx.fillText(`largest layer: ${GG.fmtBytes(maxLayer)}`, 40, 8);
    ctx.fillText(GG.fmtBytes(gTotal), w - gw, 8);
    const every = Math.ceil(26 / ((w - 60 - gw) / Math.max(1, nL)));
    for (let l = 0; l < nL; l += every) ctx.fillText(String(l), 40 + (l + 0.5) * (w - 60 - gw) / nL - 4, h + 14);
    ctx.fillText('other', w - gw, h + 14);
  }

  function drawTreemap() {
    const w = Math.max(320, scroller.clientWidth - 52);
    const h = Math.round(Math.min(420, Math.max(240, w * 0.4)));
    const ctx = GG.charts.setup(treemap, w, h);
    const s = GG.state;
    // Groups (outside layers, then each layer) by bytes, tensors inside.
    const groups = [[]];
    R.layers.forEach(() => groups.push([]));
    for (let i = 0; i < T.count; i++) groups[T.layer[i] + 1].push(i);
    const sizes = groups.map((g) => g.reduce((a, i) => a + T.bytes[i], 0));
    mapHits = [];
    for (const gr of GG.charts.squarify(sizes, 0, 0, w, h)) {
      const members = groups[gr.i];
      for (const r of GG.charts.squarify(members.map((i) => T.bytes[i]), gr.x + 1, gr.y + 1, gr.w - 2, gr.h - 2)) {
        const i = members[r.i];
        ctx.fillStyle = R.types[T.type[i]].color;
        ctx.fillRect(r.x, r.y, Math.max(0.5, r.w - 0.5), Math.max(0.5, r.h - 0.5));
        mapHits.push({ ...r, tensor: i });
        if (r.w > 90 && r.h > 34) {
          ctx.fillStyle = 'rgba(14,16,21,0.8)';
          ctx.font = '11px system-ui, sans-serif';
          ctx.textBaseline = 'middle';
          const name = T.name[i].replace(/^blk\.\d+\./, '');
          ctx.fillText(name.length * 6 > r.w - 8 ? name.slice(0, Math.floor((r.w - 8) / 6)) + '…' : name, r.x + 5, r.y + r.h - 10);
        }
        if (T.name[i] === s.tensor || (s.layer !== undefined && T.layer[i] === s.layer && s.tensor === undefined)) {
          ctx.strokeStyle = T.name[i] === s.tensor ? '#ffffff' : 'rgba(255,255,255,0.55)';
          ctx.lineWidth = T.name[i] === s.tensor ? 2 : 1;
          ctx.strokeRect(r.x + 1, r.y + 1, r.w - 2, r.h - 2);
        }
      }
      ctx.strokeStyle = '#0e1015';
      ctx.lineWidth = 2;
      ctx.strokeRect(gr.x, gr.y, gr.w, gr.h);
      if (gr.w > 60 && gr.h > 16) {
        ctx.fillStyle = 'rgba(10,12,16,0.75)';
        ctx.font = '11px system-ui, sans-serif';
        const label = gr.i === 0 ? 'outside layers' : `layer ${gr.i - 1}`;
        ctx.fillRect(gr.x + 2, gr.y + 2, ctx.measureText(label).width + 8, 15);
        ctx.fillStyle = '#e6e9ef';
        ctx.textBaseline = 'middle';
        ctx.fillText(label, gr.x + 6, gr.y + 10);
      }
    }
  }

  function buildTable() {
    const cols = [['index', '#'], ['name', 'tensor'], ['layer', 'layer'], ['role', 'role'], ['type', 'type'],
      ['bpw', 'bits/weight'], ['shape', 'shape'], ['params', 'params'], ['bytes', 'bytes'], ['share', 'of file']];
    const head = GG.el('tr');
    for (const [k, label] of cols) {
      head.append(GG.el('th', { text: label, dataset: { sort: k }, onclick: () => {
        sortDir = sortKey === k ? -sortDir : (k === 'name' || k === 'index' ? 1 : -1);
        sortKey = k;
        sortRows();
      } }));
    }
    tbody = GG.el('tbody');
    const total = R.model.tensor_bytes;
    rows = [];
    for (let i = 0; i < T.count; i++) {
      const ty = R.types[T.type[i]];
      const tr = GG.el('tr', { dataset: { tensor: T.name[i] }, onclick: () => GG.select({
        tensor: T.name[i], node: T.name[i], layer: T.layer[i] >= 0 ? T.layer[i] : null, head: null,
      }) },
      GG.el('td', { class: 'num', text: String(i) }),
      GG.el('td', { class: 'mono', text: T.name[i] }),
      GG.el('td', { class: 'num', text: T.layer[i] >= 0 ? String(T.layer[i]) : '–' }),
      GG.el('td', { text: T.roles[T.role[i]].label }),
      GG.el('td', {}, GG.el('span', { class: 'type-chip', style: { background: ty.color }, text: ty.name })),
      GG.el('td', { class: 'num', text: GG.fmtBpw(ty.bits_per_weight) }),
      GG.el('td', { class: 'mono', text: T.shape[i].join(' × ') }),
      GG.el('td', { class: 'num', text: GG.fmtInt(T.params[i]) }),
      GG.el('td', { class: 'num', text: GG.fmtBytes(T.bytes[i]) }),
      GG.el('td', { class: 'num', text: GG.fmtPct(total ? T.bytes[i] / total : 0, 2) }));
      rows.push(tr);
      tbody.append(tr);
    }
    table = GG.el('table', { class: 'tensors', id: 'quant-table' }, GG.el('thead', {}, head), tbody);
    return table;
  }

  function sortRows() {
    const val = {
      index: (i) => i, name: (i) => T.name[i], layer: (i) => T.layer[i], role: (i) => T.roles[T.role[i]].label,
      type: (i) => R.types[T.type[i]].name, bpw: (i) => R.types[T.type[i]].bits_per_weight,
      shape: (i) => T.params[i], params: (i) => T.params[i], bytes: (i) => T.bytes[i], share: (i) => T.bytes[i],
    }[sortKey];
    const order = rows.map((_, i) => i).sort((a, b) => {
      const x = val(a), y = val(b);
      return (x < y ? -1 : x > y ? 1 : a - b) * sortDir;
    });
    for (const i of order) tbody.append(rows[i]);
    for (const th of table.tHead.rows[0].cells) th.dataset.dir = th.dataset.sort === sortKey ? (sortDir > 0 ? 'asc' : 'desc') : '';
  }

  function applyFilter() {
    const q = filter.value.trim().toLowerCase();
    let n = 0;
    rows.forEach((tr, i) => {
      const hit = !q || T.name[i].toLowerCase().includes(q) || R.types[T.type[i]].name.toLowerCase() === q;
      tr.hidden = !hit;
      if (hit) n++;
    });
    count.textContent = `${n} of ${T.count} tensors`;
  }

  let lastSel = null;
  function highlightRow() {
    const s = GG.state;
    if (lastSel) lastSel.classList.remove('selected');
    const i = s.tensor !== undefined ? R.tensorByName.get(s.tensor) : undefined;
    lastSel = i !== undefined ? rows[i] : null;
    if (lastSel) {
      lastSel.classList.add('selected');
      if (shown) lastSel.scrollIntoView({ block: 'nearest' });
    }
  }

  function tip(ev, i) {
    const ty = R.types[T.type[i]];
    GG.tooltip.show(ev.clientX, ev.clientY, T.name[i], [
      ['type', `${ty.name} (${GG.fmtBpw(ty.bits_per_weight)} bits/weight)`],
      ['shape', T.shape[i].join(' × ')], ['bytes', `${GG.fmtBytes(T.bytes[i])} (${GG.fmtPct(T.bytes[i] / R.model.tensor_bytes, 2)})`],
    ]);
  }

  const view = {
    id: 'quant',
    title: 'Quantization',
    order: 40,
    create(el, report) {
      R = report;
      T = R.tensors;
      root = el;
      bars = GG.el('canvas', { id: 'quant-bars' });
      treemap = GG.el('canvas', { id: 'quant-treemap' });
      filter = GG.el('input', { type: 'search', id: 'quant-filter', placeholder: 'filter tensors (name or type)', oninput: applyFilter });
      count = GG.el('span', { class: 'hint', id: 'quant-count' });
      scroller = GG.el('div', { class: 'scroll' });
      root.append(scroller);
      scroller.append(
        GG.el('h3', { class: 'section-title', text: `Types in this file · average ${GG.fmtBpw(+R.model.avg_bits_per_weight.toFixed(3))} bits per weight` }),
        legendCards(),
        GG.el('h3', { class: 'section-title', text: 'Bytes per layer, by type' }), bars,
        GG.el('h3', { class: 'section-title', text: 'The file as a treemap of tensor bytes' }), treemap,
        GG.el('h3', { class: 'section-title', text: 'Every tensor' }),
        GG.el('div', { class: 'toolbar flat' }, filter, count), buildTable());
      applyFilter();
      bars.addEventListener('click', (ev) => {
        const p = GG.charts.pointer(ev, bars);
        const h = GG.charts.hit(barHits, p.x, p.y);
        if (h && h.bar >= 0) GG.select({ layer: h.bar, tensor: null, node: null, head: null });
      });
      bars.addEventListener('mousemove', (ev) => {
        const p = GG.charts.pointer(ev, bars);
        const h = GG.charts.hit(barHits, p.x, p.y);
        if (!h) { GG.tooltip.hide(); return; }
        const parts = h.bar >= 0 ? R.layers[h.bar].bytes_by_type.map(([t, b]) => [R.types[t].name, GG.fmtBytes(b)]) : [];
        GG.tooltip.show(ev.clientX, ev.clientY, h.bar >= 0 ? `layer ${h.bar}` : 'tensors outside the layers', parts);
      });
      treemap.addEventListener('mousemove', (ev) => {
        const p = GG.charts.pointer(ev, treemap);
        const h = GG.charts.hit(mapHits, p.x, p.y);
        if (h) tip(ev, h.tensor); else GG.tooltip.hide();
      });
      treemap.addEventListener('click', (ev) => {
        const p = GG.charts.pointer(ev, treemap);
        const h = GG.charts.hit(mapHits, p.x, p.y);
        if (h) rows[h.tensor].click();
      });
      for (const c of [bars, treemap]) c.addEventListener('mouseleave', () => GG.tooltip.hide());
    },
    show() { shown = true; drawBars(); drawTreemap(); highlightRow(); },
    hide() { shown = false; GG.tooltip.hide(); },
    resize() { if (shown) { drawBars(); drawTreemap(); } },
    update() { highlightRow(); if (shown) { drawBars(); drawTreemap(); } },
  };
  GG.registerView(view);
})(window.GG);
