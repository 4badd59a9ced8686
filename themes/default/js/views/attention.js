// View 5, Attention: where each token looks, head by head. The selected
// head's token × token pattern on a canvas (query rows, key columns, the
// masked future greyed), every head of the layer as small multiples with the
// layer average, a second head side by side, and the focused token's row
// and column as ranked lists and as shaded text.
'use strict';
(function (GG) {
  const ROW_INK = '#f5a524';   // the focused token's row: where it looks
  const COL_INK = '#7cc6ff';   // its column: what looks at it
  const FONT = '11px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace';
  const MAX_CELL = 32;
  const TOP_N = 8;

  let R, B, H, root, shown = false;
  let promptSel, slider, layerLabel, cmpBox, cmpLayer, cmpHead, textMode;
  let multiples, panesBox, focusBox, listsBox, textBox, chips = [], notice;
  let panes = [];          // [{canvas, head (−1 = average), layer, geom}]
  let hover = null;        // {i, j} cell, {token} label, and an optional focus token
  let margins = new Map(); // prompt index -> label margin in px
  let colourBy = 'row';

  // ---- data ---------------------------------------------------------------

  // Probability that query i gives key j in head h of layer l (h = −1: the
  // mean over the layer's heads).
  function value(P, l, h, i, j) {
    if (j > i) return 0;
    if (h >= 0) return GG.prob(B.attnRow(P, l, h, i)[j]);
    const nh = H.nHead[l];
    let sum = 0;
    for (let k = 0; k < nh; k++) sum += GG.prob(B.attnRow(P, l, k, i)[j]);
    return nh ? sum / nh : 0;
  }

  const pattern = (P, l, h) => B.patternImage(P, l, h);

  const fmtP = (p) => (p <= 0 ? '0' : p < 0.001 ? '<0.1%' : GG.fmtPct(p, p < 0.1 ? 2 : 1));
  const piece = (P, t) => GG.showPiece(P.tokens[t].piece);
  const shortPiece = (P, t) => {
    const s = piece(P, t);
    return s.length > 14 ? s.slice(0, 13) + '…' : s;
  };

  function metricText(i) {
    const parts = [];
    for (const [id, label] of [['prev_token', 'previous token'], ['induction', 'induction'], ['sink', 'sink'], ['entropy', 'entropy']]) {
      const m = B.metric(id);
      if (m) parts.push(`${label} ${GG.fmtNum(m.values[i])}`);
    }
    return parts.join(' · ');
  }

  function clusterOf(i) {
    const m = B.metric('cluster');
    if (!m) return null;
    const c = m.values[i];
    return { code: c, name: m.categories[c] ?? String(c) };
  }

  // ---- state helpers ------------------------------------------------------

  function layerOf(s) {
    return GG.clamp(s.layer ?? 0, 0, B.nLayer - 1);
  }
  // The selected head, or −1 for the layer average.
  function headOf(s, l) {
    return s.head !== undefined && s.head < H.nHead[l] ? s.head : -1;
  }
  function second(s) {
    const ref = GG.parseHeadRef(s.vs);
    if (!ref || ref.layer >= B.nLayer || ref.head >= H.nHead[ref.layer]) return null;
    return ref;
  }
  // The token whose row and column are shown: the hovered one (a cell's
  // query), else the selected one, else the last.
  function focusToken(P) {
    if (hover && hover.focus !== undefined) return hover.focus;
    if (hover && hover.token !== undefined) return hover.token;
    if (hover && hover.i >= 0) return hover.i;
    return GG.tokenOf(P, GG.state);
  }

  // ---- one heatmap ----------------------------------------------------------

  function labelMargin(P, ctx) {
    if (margins.has(P.index)) return margins.get(P.index);
    ctx.font = FONT;
    let w = 0;
    for (let t = 0; t < P.T; t++) w = Math.max(w, ctx.measureText(shortPiece(P, t)).width);
    const m = Math.ceil(GG.clamp(w + 12, 40, 124));
    margins.set(P.index, m);
    return m;
  }

  // Cell size and margins for a T-token pattern in a w × h box. Labels need
  // 9 px a row to stay apart; below that only positions are marked.
  function layout(P, ctx, w, h) {
    const m = labelMargin(P, ctx);
    const fit = (margin) => Math.min(w - margin - 8, h - margin - 8) / P.T;
    const labels = Math.floor(fit(m)) >= 9;
    const margin = labels ? m : 34;
    // Whole pixels per cell from 2 px up, so cells stay even; below that
    // the image is stretched (or shrunk, smoothly) to use the room.
    let cell = fit(margin);
    if (cell >= 2) cell = Math.min(MAX_CELL, Math.floor(cell));
    return { labels, x0: margin, y0: margin, cell, size: cell * P.T, T: P.T };
  }

  function drawPane(pane, P, boxW, boxH) {
    const probe = pane.canvas.getContext('2d');
    const g = layout(P, probe, boxW, boxH);
    const W = g.x0 + g.size + 8, Ht = g.y0 + g.size + 8;
    const ctx = GG.charts.setup(pane.canvas, W, Ht);
    pane.geom = g;
    const { x0, y0, cell, size, T } = g;
    // Scaling down averages pixels; scaling up must not blur cells.
    ctx.imageSmoothingEnabled = cell < 1;
    ctx.drawImage(pattern(P, pane.layer, pane.head), x0, y0, size, size);
    if (cell >= 12) {
      ctx.strokeStyle = 'rgba(14,16,21,0.55)';
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let k = 1; k < T; k++) {
        ctx.moveTo(x0 + k * cell + 0.5, y0 + Math.max(0, k - 1) * cell);
        ctx.lineTo(x0 + k * cell + 0.5, y0 + size);
        ctx.moveTo(x0, y0 + k * cell + 0.5);
        ctx.lineTo(x0 + Math.min(size, (k + 1) * cell), y0 + k * cell + 0.5);
      }
      ctx.stroke();
    }
    if (size >= 220) {
      ctx.save();
      ctx.fillStyle = '#5d6880';
      ctx.font = '12px system-ui, sans-serif';
      ctx.textAlign = 'center';
      ctx.translate(x0 + size * 0.7, y0 + size * 0.3);
      ctx.rotate(Math.PI / 4);
      ctx.fillText('masked: later tokens are not visible', 0, 0);
      ctx.restore();
    }

    const f = focusToken(P);
    const hi = hover && hover.i >= 0 ? hover.i : f;
    const hj = hover && hover.j >= 0 ? hover.j : (hover && hover.token !== undefined ? hover.token : (hover ? -1 : f));
    const band = Math.max(cell, 2);
    ctx.lineWidth = 1.5;
    if (hi >= 0) {
      ctx.strokeStyle = ROW_INK;
      ctx.strokeRect(x0 - 0.5, y0 + hi * cell - 0.5, size + 1, band + 1);
    }
    if (hj >= 0) {
      ctx.strokeStyle = COL_INK;
      ctx.strokeRect(x0 + hj * cell - 0.5, y0 - 0.5, band + 1, size + 1);
    }
    if (hover && hover.i >= 0 && hover.j >= 0) {
      ctx.strokeStyle = '#ffffff';
      ctx.strokeRect(x0 + hover.j * cell - 1, y0 + hover.i * cell - 1, band + 2, band + 2);
    }

    ctx.font = FONT;
    ctx.textBaseline = 'middle';
    if (g.labels) {
      const fs = GG.clamp(cell - 1, 8, 12);
      ctx.font = `${fs}px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace`;
      for (let t = 0; t < T; t++) {
        const text = shortPiece(P, t);
        ctx.fillStyle = t === hi ? ROW_INK : P.tokens[t].special ? '#6f7c91' : '#b8c2d3';
        ctx.textAlign = 'right';
        ctx.fillText(text, x0 - 5, y0 + (t + 0.5) * cell);
        ctx.save();
        ctx.translate(x0 + (t + 0.5) * cell, y0 - 5);
        ctx.rotate(-Math.PI / 2);
        ctx.textAlign = 'left';
        ctx.fillStyle = t === hj ? COL_INK : P.tokens[t].special ? '#6f7c91' : '#b8c2d3';
        ctx.fillText(text, 0, 0);
        ctx.restore();
      }
    } else {
      ctx.fillStyle = '#8793a8';
      const step = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500].find((k) => k * cell >= 26) || 1000;
      for (let t = 0; t < T; t += step) {
        // Leave room for the highlighted positions' own numbers.
        if ([hi, hj].some((k) => k >= 0 && k !== t && Math.abs(k - t) * cell < 22)) continue;
        ctx.textAlign = 'right';
        ctx.fillText(String(t), x0 - 5, y0 + (t + 0.5) * cell);
        ctx.textAlign = 'center';
        ctx.fillText(String(t), x0 + (t + 0.5) * cell, y0 - 9);
      }
      for (const [t, ink] of [[hi, ROW_INK], [hj, COL_INK]]) {
        if (t < 0) continue;
        ctx.fillStyle = ink;
        if (ink === ROW_INK) { ctx.textAlign = 'right'; ctx.fillText(String(t), x0 - 5, y0 + (t + 0.5) * cell); }
        else { ctx.textAlign = 'center'; ctx.fillText(String(t), x0 + (t + 0.5) * cell, y0 - 9); }
      }
    }
  }

  // Where a pointer is on a pane: a cell, a row label or a column label.
  function hitPane(pane, ev) {
    const g = pane.geom;
    if (!g) return null;
    const p = GG.charts.pointer(ev, pane.canvas);
    const i = Math.floor((p.y - g.y0) / g.cell);
    const j = Math.floor((p.x - g.x0) / g.cell);
    const inRows = i >= 0 && i < g.T, inCols = j >= 0 && j < g.T;
    if (inRows && inCols) return { i, j };
    if (inRows && p.x < g.x0) return { token: i };
    if (inCols && p.y < g.y0) return { token: j };
    return null;
  }

  // ---- the page ---------------------------------------------------------------

  function headTitle(l, h) {
    if (h < 0) return GG.el('div', { class: 'attn-title' }, GG.el('b', { text: `Layer ${l} · average of ${H.nHead[l]} heads` }));
    const i = H.offsets[l] + h;
    const c = clusterOf(i);
    return GG.el('div', { class: 'attn-title' },
      GG.el('b', { text: GG.headName(l, h) }),
      c ? GG.el('span', { class: 'chip' }, GG.el('i', { style: { background: GG.categoryColor(c.code) } }), c.name) : null,
      GG.el('span', { class: 'hint', text: metricText(i) }));
  }

  function buildMultiples(P, l) {
    GG.clear(multiples);
    const nh = H.nHead[l];
    // One row when it fits: each thumbnail carries 12 px of padding and
    // border and an 8 px gap.
    const avail = Math.max(300, multiples.clientWidth || root.clientWidth - 48);
    const size = GG.clamp(Math.floor(avail / (nh + 1)) - 21, 44, 84);
    const s = GG.state;
    const sel = headOf(s, l);
    const thumb = (h) => {
      const c = GG.el('canvas', { width: String(P.T), height: String(P.T) });
      c.style.width = `${size}px`;
      c.style.height = `${size}px`;
      // The browser scales the one-pixel-per-cell image: sharp when enlarged,
      // averaged when shrunk.
      c.classList.toggle('pixelated', size >= P.T);
      c.getContext('2d').drawImage(pattern(P, l, h), 0, 0);
      const i = H.offsets[l] + h;
      const cl = h >= 0 ? clusterOf(i) : null;
      const cap = GG.el('span', { class: 'mult-cap' },
        cl ? GG.el('i', { style: { background: GG.categoryColor(cl.code) }, title: cl.name }) : null,
        h >= 0 ? `H${h}` : 'average');
      const b = GG.el('button', {
        type: 'button', class: `mult${h === sel ? ' selected' : ''}`, dataset: { head: String(h) },
        'aria-label': h >= 0 ? `head ${h}` : 'layer average',
        onclick: () => GG.select(h >= 0 ? GG.selectionOfHead(l, h) : { layer: l, head: null, node: `blk.${l}`, tensor: null }),
        onmousemove: (ev) => {
          if (h < 0) { GG.tooltip.show(ev.clientX, ev.clientY, `layer ${l}: average`, [['', 'mean of the layer\u2019s heads']]); return; }
          const rows = [];
          if (cl) rows.push(['cluster', cl.name]);
          for (const m of H.metrics) {
            if (['kv_group', 'bits_per_weight', 'pagerank', 'betweenness', 'cluster'].includes(m.id)) continue;
            rows.push([m.label, GG.fmtNum(m.values[i])]);
          }
          rows.push(['reads KV head', String(H.kvGroup[i])]);
          GG.tooltip.show(ev.clientX, ev.clientY, GG.headName(l, h), rows);
        },
        onmouseleave: () => GG.tooltip.hide(),
      }, c, cap);
      multiples.append(b);
    };
    thumb(-1);
    for (let h = 0; h < nh; h++) thumb(h);
  }

  function buildPanes(P, l) {
    const s = GG.state;
    const h = headOf(s, l);
    const other = second(s);
    GG.clear(panesBox);
    panes = [{ layer: l, head: h }];
    if (other) panes.push({ layer: other.layer, head: other.head });
    root.querySelector('.attn-main').classList.toggle('two', panes.length === 2);
    for (const pane of panes) {
      pane.canvas = GG.el('canvas', { class: 'attn-canvas' });
      pane.box = GG.el('div', { class: 'attn-pane', dataset: { layer: String(pane.layer), head: String(pane.head) } },
        headTitle(pane.layer, pane.head), pane.canvas);
      panesBox.append(pane.box);
      pane.canvas.addEventListener('mousemove', (ev) => onHover(pane, ev));
      pane.canvas.addEventListener('mouseleave', () => { hover = null; GG.tooltip.hide(); paint(); });
      pane.canvas.addEventListener('click', (ev) => {
        const at = hitPane(pane, ev);
        if (!at) return;
        GG.select({ token: at.token ?? at.i });
      });
    }
  }

  function onHover(pane, ev) {
    const P = GG.promptOf(B, GG.state);
    const at = hitPane(pane, ev);
    hover = at;
    if (!at) GG.tooltip.hide();
    else if (at.token !== undefined) {
      GG.tooltip.show(ev.clientX, ev.clientY, `‘${piece(P, at.token)}’ · position ${at.token}`, [['', 'row: where it looks · column: what looks at it']]);
    } else {
      const masked = at.j > at.i;
      GG.tooltip.show(ev.clientX, ev.clientY, `${at.i} ‘${piece(P, at.i)}’ → ${at.j} ‘${piece(P, at.j)}’`, [
        ['head', pane.head >= 0 ? GG.headName(pane.layer, pane.head) : `layer ${pane.layer} average`],
        ['attention', masked ? 'masked (a later token)' : fmtP(value(P, pane.layer, pane.head, at.i, at.j))],
      ]);
    }
    paint();
  }

  // Ranked list of where token t looks (row) or what looks at it (column).
  function ranked(P, pane, t, dir) {
    const out = [];
    if (dir === 'row') for (let j = 0; j <= t; j++) out.push([j, value(P, pane.layer, pane.head, t, j)]);
    else for (let i = t; i < P.T; i++) out.push([i, value(P, pane.layer, pane.head, i, t)]);
    out.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    return out.slice(0, TOP_N);
  }

  function list(P, pane, t, dir) {
    const ul = GG.el('ol', { class: `attn-list ${dir}` });
    for (const [k, p] of ranked(P, pane, t, dir)) {
      ul.append(GG.el('li', {
        // The list's token stays in focus while its entries light up.
        onmouseenter: () => { hover = dir === 'row' ? { i: t, j: k, focus: t } : { i: k, j: t, focus: t }; paint(false); },
        onclick: () => GG.select({ token: k }),
      },
      GG.el('span', { class: 'tok', text: shortPiece(P, k) }),
      GG.el('span', { class: 'bar' }, GG.el('span', { style: { width: `${(p * 100).toFixed(1)}%`, background: dir === 'row' ? ROW_INK : COL_INK } })),
      GG.el('span', { class: 'num', text: fmtP(p) }),
      GG.el('span', { class: 'pos', text: `@${k}` })));
    }
    return ul;
  }

  let listed = '';
  function paintFocus(P, rebuildLists) {
    const t = focusToken(P);
    const key = `${P.index}:${t}:${panes.map((p) => `${p.layer}.${p.head}`).join(',')}`;
    if (rebuildLists && key !== listed) {
      listed = key;
      GG.clear(listsBox);
      listsBox.append(GG.el('div', { class: 'attn-focus-head' },
        GG.el('span', { class: 'tok big', text: piece(P, t) }),
        GG.el('span', { class: 'hint', text: `position ${t} of ${P.T}${P.tokens[t].special ? ' · control token' : ''}` })));
      for (const pane of panes) {
        const who = pane.head >= 0 ? GG.headName(pane.layer, pane.head) : `L${pane.layer} average`;
        listsBox.append(GG.el('div', { class: 'attn-lists' },
          GG.el('div', {}, GG.el('h4', {}, GG.el('i', { class: 'swatch', style: { background: ROW_INK } }), `${who}: where it looks`), list(P, pane, t, 'row')),
          GG.el('div', {}, GG.el('h4', {}, GG.el('i', { class: 'swatch', style: { background: COL_INK } }), `${who}: what looks at it`), list(P, pane, t, 'col'))));
      }
    }
    // The text, shaded by the primary head's row (or column) for token t.
    const pane = panes[0];
    chips.forEach((chip, k) => {
      let p, off;
      if (colourBy === 'row') { off = k > t; p = off ? 0 : value(P, pane.layer, pane.head, t, k); }
      else { off = k < t; p = off ? 0 : value(P, pane.layer, pane.head, k, t); }
      const rgb = GG.heat(Math.sqrt(p));
      chip.style.background = off ? 'transparent' : GG.rgbCss(rgb);
      chip.style.color = off ? '#59647a' : GG.inkOn(rgb);
      chip.classList.toggle('focus', k === t);
      chip.title = off ? (colourBy === 'row' ? 'later token: masked' : 'earlier token: cannot look ahead') : fmtP(p);
    });
  }

  function buildText(P) {
    GG.clear(textBox);
    chips = P.tokens.map((tok, k) => {
      const chip = GG.el('span', { class: `tchip${tok.special ? ' special' : ''}`, text: GG.showPiece(tok.piece), dataset: { pos: String(k) } });
      chip.addEventListener('mouseenter', () => { hover = { token: k }; paint(); });
      chip.addEventListener('mouseleave', () => { hover = null; paint(); });
      chip.addEventListener('click', () => GG.select({ token: k }));
      return chip;
    });
    textBox.append(...chips);
  }

  // Redraws the canvases and the focus panel for the current hover.
  function paint(rebuildLists = true) {
    if (!shown || !panes.length) return;
    const P = GG.promptOf(B, GG.state);
    if (!P.hasAttention) return;
    const two = panes.length === 2;
    const avail = panesBox.clientWidth;
    const w = two ? (avail - 20) / 2 : avail;
    // As tall as the view leaves below the panes' top, title included.
    const top = panesBox.getBoundingClientRect().top - root.getBoundingClientRect().top;
    // Taller than the screen when that buys readable token labels (the page
    // scrolls), never taller than the pane is wide.
    const labelled = P.T * 10 + labelMargin(P, panes[0].canvas.getContext('2d')) + 16;
    const h = Math.max(320, root.clientHeight - top - 48, Math.min(w, labelled));
    for (const pane of panes) drawPane(pane, P, w, two ? Math.max(h, w) : h);
    paintFocus(P, rebuildLists);
  }

  let built = '';
  function render() {
    const s = GG.state;
    const P = GG.promptOf(B, s);
    const l = layerOf(s);
    promptSel.value = String(P.index);
    slider.value = String(l);
    layerLabel.textContent = `Layer ${l} of ${B.nLayer}`;
    const other = second(s);
    cmpBox.checked = !!other;
    // Off, the pickers offer the head beside the selected one.
    const pair = other || { layer: l, head: (headOf(s, l) + 1) % Math.max(1, H.nHead[l]) };
    cmpLayer.value = String(pair.layer);
    fillHeads(pair.layer);
    cmpHead.value = String(pair.head);
    notice.hidden = P.hasAttention;
    if (!P.hasAttention) {
      notice.textContent = 'llama.cpp did not offer this prompt\u2019s attention probabilities for every layer, so no pattern can be shown.';
      GG.clear(multiples); GG.clear(panesBox); GG.clear(listsBox); GG.clear(textBox);
      return;
    }
    const key = `${P.index}:${l}:${root.clientWidth}`;
    if (key !== built) { buildMultiples(P, l); built = key; }
    else for (const b of multiples.children) b.classList.toggle('selected', Number(b.dataset.head) === headOf(s, l));
    if (textBox.dataset.prompt !== String(P.index)) { buildText(P); textBox.dataset.prompt = String(P.index); }
    buildPanes(P, l);
    listed = '';
    paint();
  }

  function fillHeads(l) {
    if (cmpHead.dataset.layer === String(l)) return;
    GG.clear(cmpHead);
    for (let h = 0; h < H.nHead[l]; h++) cmpHead.append(GG.el('option', { value: String(h), text: `H${h}` }));
    cmpHead.dataset.layer = String(l);
  }

  function stepLayer(d) {
    const s = GG.current();
    const l = GG.clamp(layerOf(s) + d, 0, B.nLayer - 1);
    const h = headOf(s, layerOf(s));
    GG.select(h >= 0 && h < H.nHead[l] ? GG.selectionOfHead(l, h) : { layer: l, head: null, node: `blk.${l}`, tensor: null });
  }

  function toolbar() {
    promptSel = GG.promptSelect(B, 'attn-prompt');
    slider = GG.el('input', { type: 'range', min: '0', max: String(B.nLayer - 1), id: 'attn-layer', 'aria-label': 'layer',
      oninput: (e) => {
        const l = Number(e.target.value);
        const h = headOf(GG.state, layerOf(GG.state));
        GG.select(h >= 0 && h < H.nHead[l] ? GG.selectionOfHead(l, h) : { layer: l, head: null, node: `blk.${l}`, tensor: null }, { replace: true });
      } });
    layerLabel = GG.el('span', { class: 'layer-label' });
    cmpBox = GG.el('input', { type: 'checkbox', id: 'attn-compare',
      onchange: (e) => GG.select({ vs: e.target.checked ? `${cmpLayer.value}.${cmpHead.value}` : null }) });
    cmpLayer = GG.el('select', { id: 'attn-vs-layer', 'aria-label': 'second head layer',
      onchange: (e) => { const l = Number(e.target.value); GG.select({ vs: `${l}.${Math.min(Number(cmpHead.value), H.nHead[l] - 1)}` }); } },
    ...H.nHead.map((_, l) => GG.el('option', { value: String(l), text: `L${l}` })));
    cmpHead = GG.el('select', { id: 'attn-vs-head', 'aria-label': 'second head',
      onchange: (e) => GG.select({ vs: `${cmpLayer.value}.${e.target.value}` }) });
    fillHeads(0);
    textMode = GG.el('select', { id: 'attn-text-mode', 'aria-label': 'shade the text by',
      onchange: (e) => { colourBy = e.target.value; paint(false); } },
    GG.el('option', { value: 'row', text: 'where it looks' }), GG.el('option', { value: 'col', text: 'what looks at it' }));
    return GG.el('div', { class: 'toolbar' },
      GG.el('label', {}, 'Prompt ', promptSel),
      GG.el('button', { type: 'button', text: '◀', 'aria-label': 'previous layer', onclick: () => stepLayer(-1) }),
      slider,
      GG.el('button', { type: 'button', text: '▶', 'aria-label': 'next layer', onclick: () => stepLayer(1) }),
      layerLabel,
      GG.el('label', {}, cmpBox, 'side by side with', cmpLayer, cmpHead));
  }

  function legend() {
    const ticks = [0, 0.01, 0.1, 0.25, 0.5, 1];
    return GG.el('div', { class: 'attn-legend' },
      GG.el('span', { class: 'hint', text: 'attention' }),
      GG.el('span', { class: 'heat-ramp', style: { background: GG.heatGradient } },
        ...ticks.map((p) => GG.el('span', { class: 'tick', style: { left: `${Math.sqrt(p) * 100}%` }, text: p === 0 ? '0' : String(p) }))),
      GG.el('span', { class: 'chip' }, GG.el('i', { style: { background: GG.rgbCss(GG.maskedRgb) } }), 'masked'),
      GG.el('span', { class: 'chip' }, GG.el('i', { style: { background: ROW_INK } }), 'row: where a token looks'),
      GG.el('span', { class: 'chip' }, GG.el('i', { style: { background: COL_INK } }), 'column: what looks at it'));
  }

  const view = {
    id: 'attention',
    title: 'Attention',
    order: 50,
    requires: 'behaviour',
    create(el, report) {
      R = report;
      B = GG.behaviour(R);
      H = R.heads;
      root = el;
      const bar = toolbar();
      multiples = GG.el('div', { class: 'attn-multiples', id: 'attn-multiples' });
      panesBox = GG.el('div', { class: 'attn-panes', id: 'attn-panes' });
      listsBox = GG.el('div', { id: 'attn-lists' });
      textBox = GG.el('div', { class: 'attn-text', id: 'attn-text' });
      focusBox = GG.el('div', { class: 'attn-focus' }, listsBox,
        GG.el('div', { class: 'attn-text-head' }, GG.el('h4', { text: 'The prompt, shaded by' }), textMode), textBox);
      notice = GG.el('p', { class: 'note', hidden: true });
      root.append(bar, GG.el('div', { class: 'scroll' },
        notice,
        multiples,
        GG.el('div', { class: 'attn-main' }, GG.el('div', {}, legend(), panesBox), focusBox)));
      window.addEventListener('keydown', (ev) => {
        if (!shown || GG.typing(ev) || ev.altKey || ev.ctrlKey || ev.metaKey) return;
        if (ev.target instanceof HTMLInputElement && ev.target.type === 'range') return;
        if (ev.key === 'ArrowLeft' || ev.key === 'ArrowRight') {
          ev.preventDefault();
          const s = GG.current();
          const P = GG.promptOf(B, s);
          GG.select({ token: GG.clamp(GG.tokenOf(P, s) + (ev.key === 'ArrowLeft' ? -1 : 1), 0, P.T - 1) }, { replace: true });
        } else if (ev.key === 'ArrowUp' || ev.key === 'ArrowDown') {
          ev.preventDefault();
          stepLayer(ev.key === 'ArrowUp' ? -1 : 1);
        }
      });
      // For tests and automation: the pixels of the selected head's canvas,
      // read through a scratch canvas meant for reading back.
      view.pixels = () => {
        const c = panes[0] && panes[0].canvas;
        if (!c || !c.width) return null;
        const copy = document.createElement('canvas');
        copy.width = c.width;
        copy.height = c.height;
        const ctx = copy.getContext('2d', { willReadFrequently: true });
        ctx.drawImage(c, 0, 0);
        return ctx.getImageData(0, 0, c.width, c.height).data;
      };
      // Where cell (query i, key j) of the selected head is on screen.
      view.screenOfCell = (i, j) => {
        const pane = panes[0];
        if (!pane || !pane.geom) return null;
        const b = pane.canvas.getBoundingClientRect(), g = pane.geom;
        return [b.left + g.x0 + (j + 0.5) * g.cell, b.top + g.y0 + (i + 0.5) * g.cell];
      };
    },
    show() { shown = true; built = ''; render(); },
    hide() { shown = false; hover = null; GG.tooltip.hide(); },
    resize() { if (shown) { built = ''; render(); } },
    update() { if (shown) render(); },
  };
  GG.views = GG.views || {};
  GG.views.attention = view;
  GG.registerView(view);
})(window.GG);
