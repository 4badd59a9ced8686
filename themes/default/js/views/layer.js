// View 2, Layer: one layer's inside with the layer switcher (slider, arrow
// keys, a second layer side by side) and the types of every tensor across
// all layers, so layers quantized differently stand out.
'use strict';
(function (GG) {
  let R, T, root, slider, sliderB, compareBox, label, strip, panels, stripHits = [];
  const byLayer = [];      // layer -> [tensor index]
  let keys = [];           // tensor keys without the blk.N. prefix, in first-seen order
  let modal = new Map();   // key -> most common type index
  let typeGrid = [];       // [key index][layer] -> type index or -1

  const keyOf = (i) => T.name[i].replace(/^blk\.\d+\./, '');

  function index() {
    const nL = R.layers.length;
    for (let l = 0; l < nL; l++) byLayer.push([]);
    const keyIdx = new Map();
    for (let i = 0; i < T.count; i++) {
      const l = T.layer[i];
      if (l < 0 || l >= nL) continue;
      byLayer[l].push(i);
      const k = keyOf(i);
      if (!keyIdx.has(k)) { keyIdx.set(k, keys.length); keys.push(k); typeGrid.push(new Int16Array(nL).fill(-1)); }
      typeGrid[keyIdx.get(k)][l] = T.type[i];
    }
    keys.forEach((k, ki) => {
      const counts = new Map();
      for (const t of typeGrid[ki]) if (t >= 0) counts.set(t, (counts.get(t) || 0) + 1);
      let best = -1, n = -1;
      for (const [t, c] of counts) if (c > n) { best = t; n = c; }
      modal.set(k, best);
    });
  }

  const layerOf = (s) => GG.clamp(s.layer !== undefined ? s.layer : 0, 0, R.layers.length - 1);

  function step(d, which) {
    const s = GG.current();
    if (which === 'cmp') {
      if (s.cmp === undefined) return;
      GG.select({ cmp: GG.clamp(s.cmp + d, 0, R.layers.length - 1) });
    } else {
      GG.select({ layer: GG.clamp(layerOf(s) + d, 0, R.layers.length - 1), head: null, node: null, tensor: null });
    }
  }

  function drawStrip() {
    const s = GG.state;
    const nL = R.layers.length;
    const labelW = 150;
    const width = Math.max(300, root.clientWidth - 32);
    const cell = GG.clamp(Math.floor((width - labelW) / Math.max(1, nL)), 3, 22);
    const rowH = 14;
    const ctx = GG.charts.setup(strip, labelW + cell * nL + 60, rowH * keys.length + 22);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    stripHits = [];
    const colors = R.types.map((t) => t.color);
    keys.forEach((k, ki) => {
      const y = ki * rowH;
      const varies = new Set(Array.from(typeGrid[ki]).filter((t) => t >= 0)).size > 1;
      ctx.fillStyle = varies ? '#f5c46b' : '#9aa6b8';
      ctx.fillText(k + (varies ? ' *' : ''), 2, y + rowH / 2);
      for (let l = 0; l < nL; l++) {
        const t = typeGrid[ki][l];
        if (t < 0) continue;
        ctx.fillStyle = colors[t];
        ctx.fillRect(labelW + l * cell, y + 1, Math.max(1, cell - 1), rowH - 2);
        stripHits.push({ x: labelW + l * cell, y, w: cell, h: rowH, layer: l, key: k });
      }
    });
    const mark = (l, dash) => {
      ctx.setLineDash(dash);
      ctx.strokeStyle = '#f5a524';
      ctx.lineWidth = 1.5;
      ctx.strokeRect(labelW + l * cell - 0.5, -0.5 + 0, cell, rowH * keys.length + 1);
      ctx.setLineDash([]);
    };
    mark(layerOf(s), []);
    if (s.cmp !== undefined) mark(s.cmp, [3, 2]);
    ctx.fillStyle = '#7f8aa0';
    const every = Math.ceil(28 / cell);
    for (let l = 0; l < nL; l += every) ctx.fillText(String(l), labelW + l * cell, rowH * keys.length + 11);
  }

  function headStrip(l) {
    const nh = R.heads.nHead[l] || 0;
    const off = R.heads.offsets[l];
    const box = GG.el('div', { class: 'head-strip' });
    for (let h = 0; h < nh; h++) {
      const g = R.heads.kvGroup[off + h];
      const sel = GG.state.layer === l && GG.state.head === h;
      box.append(GG.el('button', {
        type: 'button', class: `head-cell${sel ? ' selected' : ''}`, title: `head ${h}, reads KV head ${g}`,
        style: { background: GG.categoryColor(g) }, dataset: { head: String(h) },
        onclick: () => GG.select({ layer: l, head: h, node: `blk.${l}.head.${h}`, tensor: null }),
      }));
    }
    return box;
  }

  function panel(l, other) {
    const info = R.layers[l];
    const share = info.params / R.model.params;
    const group = info.n_head_kv ? info.n_head / info.n_head_kv : 1;
    const head = GG.el('div', { class: 'layer-head' },
      GG.el('h3', { text: `Layer ${l}` }),
      GG.el('span', { text: `${GG.fmtCount(info.params)} parameters · ${GG.fmtBytes(info.bytes)} · ${GG.fmtPct(share)} of the model` }));
    const facts = GG.el('div', { class: 'layer-facts', text:
      `${info.n_head} query heads reading ${info.n_head_kv} KV heads (${group} per group) · FFN width ${GG.fmtInt(info.n_ff)}` });
    const table = GG.el('table', { class: 'tensors layer-table' });
    table.append(GG.el('thead', {}, GG.el('tr', {}, ...['role', 'tensor', 'type', 'shape', 'params', 'bytes', 'share'].map((h) => GG.el('th', { text: h })))));
    const body = GG.el('tbody');
    const otherTypes = new Map();
    if (other !== undefined) for (const i of byLayer[other]) otherTypes.set(keyOf(i), T.type[i]);
    for (const i of byLayer[l]) {
      const k = keyOf(i);
      const ty = R.types[T.type[i]];
      let diff = '';
      if (other !== undefined) {
        if (!otherTypes.has(k)) diff = `not in layer ${other}`;
        else if (otherTypes.get(k) !== T.type[i]) diff = `layer ${other}: ${R.types[otherTypes.get(k)].name}`;
      } else if (modal.get(k) !== T.type[i]) diff = `most layers: ${R.types[modal.get(k)].name}`;
      const tr = GG.el('tr', {
        class: [diff ? 'diff' : '', GG.state.tensor === T.name[i] ? 'selected' : ''].join(' ').trim(),
        dataset: { tensor: T.name[i] },
        onclick: () => GG.select({ layer: l, tensor: T.name[i], node: T.name[i], head: null }),
      },
      GG.el('td', { text: T.roles[T.role[i]].label }),
      GG.el('td', { class: 'mono', text: T.name[i] }),
      GG.el('td', {}, GG.el('span', { class: 'type-chip', style: { background: ty.color }, text: ty.name }), diff ? GG.el('small', { class: 'diff-note', text: diff }) : null),
      GG.el('td', { class: 'mono', text: T.shape[i].join(' × ') }),
      GG.el('td', { class: 'num', text: GG.fmtInt(T.params[i]) }),
      GG.el('td', { class: 'num', text: GG.fmtBytes(T.bytes[i]) }),
      GG.el('td', { class: 'num', text: GG.fmtPct(info.params ? T.params[i] / info.params : 0) }));
      body.append(tr);
    }
    table.append(body);
    return GG.el('div', { class: 'layer-panel', dataset: { layer: String(l) } }, head, facts,
      GG.el('div', { class: 'sub', text: 'Heads, coloured by the KV head they read' }), headStrip(l), table);
  }

  function render() {
    const s = GG.state;
    const l = layerOf(s);
    slider.value = String(l);
    label.textContent = `Layer ${l} of ${R.layers.length}`;
    const comparing = s.cmp !== undefined;
    compareBox.checked = comparing;
    sliderB.disabled = !comparing;
    if (comparing) sliderB.value = String(s.cmp);
    GG.clear(panels);
    panels.classList.toggle('two', comparing);
    panels.append(panel(l, comparing ? s.cmp : undefined));
    if (comparing) panels.append(panel(s.cmp, l));
    drawStrip();
  }

  let shown = false;
  const view = {
    id: 'layer',
    title: 'Layer',
    order: 20,
    create(el, report) {
      R = report;
      T = R.tensors;
      root = el;
      index();
      const n = R.layers.length;
      slider = GG.el('input', { type: 'range', min: '0', max: String(Math.max(0, n - 1)), value: '0', id: 'layer-slider', 'aria-label': 'layer',
        oninput: (e) => GG.select({ layer: Number(e.target.value), head: null, node: null, tensor: null }, { replace: true }) });
      sliderB = GG.el('input', { type: 'range', min: '0', max: String(Math.max(0, n - 1)), value: '1', id: 'layer-slider-b', 'aria-label': 'compare layer',
        oninput: (e) => GG.select({ cmp: Number(e.target.value) }, { replace: true }) });
      compareBox = GG.el('input', { type: 'checkbox', id: 'layer-compare',
        onchange: (e) => GG.select({ cmp: e.target.checked ? GG.clamp(layerOf(GG.state) + 1, 0, n - 1) : null }) });
      label = GG.el('span', { class: 'layer-label', id: 'layer-label' });
      strip = GG.el('canvas', { class: 'type-strip', id: 'layer-strip' });
      panels = GG.el('div', { class: 'layer-panels', id: 'layer-panels' });
      root.append(
        GG.el('div', { class: 'toolbar' },
          GG.el('button', { type: 'button', text: '◀', 'aria-label': 'previous layer', onclick: () => step(-1) }),
          slider,
          GG.el('button', { type: 'button', text: '▶', 'aria-label': 'next layer', onclick: () => step(1) }),
          label,
          GG.el('label', { class: 'compare' }, compareBox, ' side by side with '), sliderB,
          GG.el('span', { class: 'hint', text: '← → step layers · shift+← → step the second layer' })),
        GG.el('div', { class: 'scroll' },
          GG.el('h3', { class: 'section-title', text: 'Tensor types in every layer (* = differs between layers; click to open a layer)' }),
          strip, panels));
      strip.addEventListener('click', (ev) => {
        const p = GG.charts.pointer(ev, strip);
        const h = GG.charts.hit(stripHits, p.x, p.y);
        if (h) GG.select({ layer: h.layer, tensor: `blk.${h.layer}.${h.key}`, node: `blk.${h.layer}.${h.key}`, head: null });
      });
      strip.addEventListener('mousemove', (ev) => {
        const p = GG.charts.pointer(ev, strip);
        const h = GG.charts.hit(stripHits, p.x, p.y);
        if (!h) { GG.tooltip.hide(); return; }
        const i = R.tensorByName.get(`blk.${h.layer}.${h.key}`);
        const ty = R.types[T.type[i]];
        GG.tooltip.show(ev.clientX, ev.clientY, T.name[i], [['type', `${ty.name} (${GG.fmtBpw(ty.bits_per_weight)} bpw)`], ['bytes', GG.fmtBytes(T.bytes[i])]]);
      });
      strip.addEventListener('mouseleave', () => GG.tooltip.hide());
      window.addEventListener('keydown', (ev) => {
        if (!shown || GG.typing(ev) || ev.altKey || ev.ctrlKey || ev.metaKey) return;
        // A focused slider steps itself.
        if (ev.target instanceof HTMLInputElement && ev.target.type === 'range') return;
        if (ev.key === 'ArrowLeft' || ev.key === 'ArrowRight') {
          ev.preventDefault();
          step(ev.key === 'ArrowLeft' ? -1 : 1, ev.shiftKey ? 'cmp' : 'layer');
        }
      });
    },
    show() { shown = true; render(); },
    hide() { shown = false; GG.tooltip.hide(); },
    resize() { if (shown) drawStrip(); },
    update() { if (shown) render(); },
  };
  GG.registerView(view);
})(window.GG);
