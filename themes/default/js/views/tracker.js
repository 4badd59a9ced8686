// View 7, Layers over tokens: what the residual stream holds at every layer
// and position. The logit lens as a table (each layer's hidden state read
// through the model's own output norm and head), the top-5 of a cell and the
// rank of the final prediction layer by layer, and heatmaps of the hidden
// state's norm, what attention and the FFN add, and how much each layer
// turns the state.
'use strict';
(function (GG) {
  const BANDS = [
    { id: 'hidden_norm', label: 'hidden state ‖h‖', log: true, desc: 'norm of the residual stream after the layer' },
    { id: 'attn_norm', label: 'attention adds', log: true, desc: 'norm of what the attention block added' },
    { id: 'ffn_norm', label: 'FFN adds', log: true, desc: 'norm of what the FFN block added' },
    { id: 'cos_prev', label: 'cos(hₗ, hₗ₋₁)', log: false, desc: 'cosine between the residual after and before the layer' },
  ];
  const LEFT = 128, RIGHT = 116;

  let R, B, root, shown = false;
  let promptSel, check, kernels, lensBox, detailBox, rankCanvas, heat, notes;
  let table = null, cells = [];     // cells[l][i] -> <td>; l = nLayer is llama.cpp's row
  let heatGeom = null;
  let builtPrompt = -1;

  const piece = (P, t) => GG.showPiece(P.tokens[t].piece);
  const vocabPiece = (id) => GG.showPiece(B.piece(id));
  const short = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);
  const fmtP = (p) => (p < 0.0005 ? '<0.1%' : GG.fmtPct(p, p < 0.1 ? 1 : 0));
  // A calm single-hue scale for lens cells: white text stays readable on
  // every step, and confident cells stand out without shouting.
  const LENS = [[22, 27, 38], [29, 79, 122], [63, 155, 230]];
  function lensColor(p) {
    const x = GG.clamp(p, 0, 1) * 2, k = Math.min(1, Math.floor(x)), f = x - k;
    return LENS[k].map((c, n) => Math.round(c * (1 - f) + LENS[k + 1][n] * f));
  }
  const layerOf = (s) => GG.clamp(s.layer ?? B.nLayer - 1, 0, B.nLayer - 1);

  // The arrays of one lens cell: layer l (nLayer = llama.cpp's own logits).
  function cell(P, l, i) {
    const L = l === B.nLayer ? P.prediction : P.lens;
    const c = l === B.nLayer ? i : l * P.T + i;
    return {
      ids: L.topIds.subarray(5 * c, 5 * c + 5),
      probs: L.topProbs.subarray(5 * c, 5 * c + 5),
      rank: L.targetRank[c],
      prob: L.targetProb[c],
    };
  }
  const finalId = (P, i) => P.prediction.topIds[5 * i];

  // ---- the lens table -----------------------------------------------------

  function buildTable(P) {
    const nL = B.nLayer;
    const head1 = GG.el('tr', {}, GG.el('th', { class: 'corner', text: 'input' }));
    const head2 = GG.el('tr', { class: 'next' }, GG.el('th', { class: 'corner', text: 'next in prompt' }));
    for (let i = 0; i < P.T; i++) {
      head1.append(GG.el('th', { class: 'tokh', dataset: { pos: String(i) }, title: `position ${i}`, text: short(piece(P, i), 12),
        onclick: () => GG.select({ token: i }) }));
      head2.append(GG.el('th', { class: 'tokh', text: i + 1 < P.T ? short(piece(P, i + 1), 12) : '' }));
    }
    const body = GG.el('tbody');
    cells = [];
    for (let l = 0; l <= nL; l++) {
      const own = l === nL;
      const tr = GG.el('tr', { class: own ? 'prediction' : '', dataset: { layer: own ? 'model' : String(l) } },
        GG.el('th', { class: 'rowh', text: own ? 'llama.cpp' : `L${l}`, title: own ? 'the model\u2019s own output logits' : `layer ${l}` }));
      const row = [];
      for (let i = 0; i < P.T; i++) {
        const c = cell(P, l, i);
        const p = c.probs[0];
        const td = GG.el('td', {
          class: `lc${c.ids[0] === finalId(P, i) ? ' hit' : ''}`,
          dataset: { layer: String(l), pos: String(i), id: String(c.ids[0]) },
          style: { background: GG.rgbCss(lensColor(p)) },
        }, GG.el('span', { class: 'pc', text: short(vocabPiece(c.ids[0]), 10) }), GG.el('span', { class: 'pp', text: fmtP(p) }));
        row.push(td);
        tr.append(td);
      }
      cells.push(row);
      body.append(tr);
    }
    table = GG.el('table', { class: 'lens', id: 'lens-table' }, GG.el('thead', {}, head1, head2), body);
    table.addEventListener('click', (ev) => {
      const td = ev.target.closest('td.lc');
      if (!td) return;
      const l = Number(td.dataset.layer);
      const layer = l === nL ? nL - 1 : l;
      GG.select({ token: Number(td.dataset.pos), layer, head: null, node: `blk.${layer}`, tensor: null });
    });
    table.addEventListener('mouseover', (ev) => {
      const td = ev.target.closest('td.lc');
      if (!td) return;
      const l = Number(td.dataset.layer), i = Number(td.dataset.pos);
      const c = cell(P, l, i);
      const rows = Array.from(c.ids, (id, k) => [`${k + 1}. ${vocabPiece(id)}`, fmtP(c.probs[k])]);
      rows.push(['final prediction', `rank ${c.rank + 1}, ${fmtP(c.prob)}`]);
      GG.tooltip.show(ev.clientX, ev.clientY, `${l === nL ? 'llama.cpp' : `layer ${l}`} · after ‘${piece(P, i)}’ (${i})`, rows);
    });
    table.addEventListener('mouseleave', () => GG.tooltip.hide());
    GG.clear(lensBox).append(table);
  }

  let marked = [];
  function markTable(P, l, i) {
    for (const e of marked) e.classList.remove('sel', 'selcol');
    marked = [];
    for (let r = 0; r < cells.length; r++) { cells[r][i].classList.add('selcol'); marked.push(cells[r][i]); }
    const th = table.tHead.rows[0].cells[i + 1];
    th.classList.add('selcol');
    marked.push(th);
    const td = cells[l][i];
    td.classList.add('sel');
    // Bring the cell into view inside the table's own scroller only.
    const box = lensBox.getBoundingClientRect(), r = td.getBoundingClientRect();
    if (r.left < box.left + 70 || r.right > box.right) lensBox.scrollLeft += r.left - box.left - box.width / 2;
    if (r.top < box.top + 50 || r.bottom > box.bottom) lensBox.scrollTop += r.top - box.top - box.height / 2;
  }

  // ---- the cell's details and the rank line ---------------------------------

  function drawDetail(P, l, i) {
    const c = cell(P, l, i);
    const target = finalId(P, i);
    GG.clear(detailBox);
    const list = GG.el('ol', { class: 'top5' });
    c.ids.forEach((id, k) => list.append(GG.el('li', { class: id === target ? 'hit' : '' },
      GG.el('span', { class: 'tok', text: vocabPiece(id) }),
      GG.el('span', { class: 'bar' }, GG.el('span', { style: { width: `${(c.probs[k] * 100).toFixed(1)}%` } })),
      GG.el('span', { class: 'num', text: GG.fmtPct(c.probs[k], 1) }))));
    detailBox.append(
      GG.el('h4', { text: `Layer ${l}, position ${i}` }),
      GG.el('div', { class: 'hint' }, 'after ', GG.el('span', { class: 'tok', text: piece(P, i) }),
        i + 1 < P.T ? ' · next in prompt ' : '', i + 1 < P.T ? GG.el('span', { class: 'tok', text: piece(P, i + 1) }) : ''),
      GG.el('div', { class: 'sub-title', text: 'Top 5 of the lens' }), list,
      GG.el('p', { class: 'rank-line' }, 'The model\u2019s final prediction ', GG.el('span', { class: 'tok', text: vocabPiece(target) }),
        ` is ranked ${GG.fmtInt(c.rank + 1)} here (${c.prob >= 1e-4 ? GG.fmtPct(c.prob, 2) : `p = ${c.prob.toExponential(1)}`}).`),
      GG.el('div', { class: 'sub-title', text: 'Its rank, layer by layer' }), rankCanvas);
    drawRank(P, l, i);
  }

  function drawRank(P, l, i) {
    const w = 300, h = 190;
    const ctx = GG.charts.setup(rankCanvas, w, h);
    const nL = B.nLayer;
    const box = { x: 42, y: 10, w: w - 54, h: h - 40 };
    const nV = R.model.hparams.n_vocab || 1e5;
    const ymax = Math.log10(nV);
    const X = (layer) => box.x + (nL > 1 ? (layer / (nL - 1)) * box.w : box.w / 2);
    const Y = (rank) => box.y + (Math.log10(rank + 1) / ymax) * box.h;
    ctx.font = '10px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    ctx.strokeStyle = '#262d3d';
    ctx.fillStyle = '#8793a8';
    ctx.textAlign = 'right';
    for (let e = 0; e <= Math.floor(ymax); e++) {
      const y = box.y + (e / ymax) * box.h;
      ctx.beginPath(); ctx.moveTo(box.x, y); ctx.lineTo(box.x + box.w, y); ctx.stroke();
      ctx.fillText(e === 0 ? '1' : e < 3 ? String(10 ** e) : `${10 ** (e - 3)}k`, box.x - 5, y);
    }
    ctx.textAlign = 'center';
    const every = Math.ceil(nL / 6);
    for (let k = 0; k < nL; k += every) ctx.fillText(`L${k}`, X(k), box.y + box.h + 12);
    ctx.fillText('layer', box.x + box.w / 2, h - 6);
    ctx.save();
    ctx.translate(10, box.y + box.h / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText('rank (1 = top)', 0, 0);
    ctx.restore();
    ctx.strokeStyle = '#7cc6ff';
    ctx.lineWidth = 1.8;
    ctx.beginPath();
    for (let k = 0; k < nL; k++) {
      const y = Y(P.lens.targetRank[k * P.T + i]);
      if (k === 0) ctx.moveTo(X(k), y); else ctx.lineTo(X(k), y);
    }
    ctx.stroke();
    for (let k = 0; k < nL; k++) {
      ctx.fillStyle = k === l ? '#f5a524' : '#7cc6ff';
      ctx.beginPath();
      ctx.arc(X(k), Y(P.lens.targetRank[k * P.T + i]), k === l ? 4 : 2, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  // ---- the heatmaps ------------------------------------------------------------

  function drawHeat(P) {
    const s = GG.state;
    const nL = B.nLayer, T = P.T;
    const W = Math.max(520, heat.parentElement.clientWidth - 4);
    const cw = (W - LEFT - RIGHT) / T;
    const labels = cw >= 9;
    const top = labels ? 78 : 22;
    const rowH = GG.clamp(Math.floor(150 / nL), 2, 6);
    const bandH = rowH * nL;
    const gap = 34;
    const Ht = top + BANDS.length * (bandH + gap);
    const ctx = GG.charts.setup(heat, W, Ht);
    heatGeom = { top, cw, rowH, bandH, gap, T };
    const l = layerOf(s), ti = GG.tokenOf(P, s);
    const xOf = (i) => LEFT + Math.round(i * cw);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    // Token axis.
    if (labels) {
      ctx.font = `${GG.clamp(Math.floor(cw) - 1, 8, 11)}px ui-monospace, "DejaVu Sans Mono", Menlo, monospace`;
      for (let i = 0; i < T; i++) {
        ctx.save();
        ctx.translate(LEFT + (i + 0.5) * cw, top - 6);
        ctx.rotate(-Math.PI / 2);
        ctx.fillStyle = i === ti ? '#f5a524' : '#b8c2d3';
        ctx.fillText(short(piece(P, i), 11), 0, 0);
        ctx.restore();
      }
    } else {
      ctx.fillStyle = '#8793a8';
      ctx.textAlign = 'center';
      const step = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500].find((k) => k * cw >= 26) || 1000;
      for (let i = 0; i < T; i += step) ctx.fillText(String(i), LEFT + (i + 0.5) * cw, top - 10);
    }
    ctx.font = '11px system-ui, sans-serif';
    BANDS.forEach((band, bi) => {
      const y0 = top + bi * (bandH + gap) + 14;
      const v = P.tracker[band.id];
      const tx = (x) => (band.log ? (x > 0 ? Math.log(x) : NaN) : x);
      // The first token is where models park attention and often carries
      // a hidden state hundreds of times larger than the rest: it would
      // take the whole scale, so the scale comes from the others and it is
      // drawn clipped, with its own maximum in the legend.
      const skipFirst = band.log && T >= 4;
      let lo = Infinity, hi = -Infinity, firstMax = -Infinity;
      for (let k = 0; k < v.length; k++) {
        const t = tx(v[k]);
        if (!Number.isFinite(t)) continue;
        if (skipFirst && k % T === 0) { firstMax = Math.max(firstMax, t); continue; }
        lo = Math.min(lo, t); hi = Math.max(hi, t);
      }
      if (!(lo <= hi)) { lo = 0; hi = 1; }
      ctx.textAlign = 'left';
      ctx.fillStyle = '#dfe4ec';
      ctx.font = '600 12px system-ui, sans-serif';
      ctx.fillText(band.label, 4, y0 - 8);
      ctx.font = '11px system-ui, sans-serif';
      ctx.fillStyle = '#8793a8';
      ctx.fillText(band.desc, LEFT, y0 - 8);
      for (let k = 0; k < nL; k += Math.ceil(nL / 5)) { ctx.textAlign = 'right'; ctx.fillText(`L${k}`, LEFT - 6, y0 + (k + 0.5) * rowH); }
      ctx.textAlign = 'right';
      ctx.fillText(`L${nL - 1}`, LEFT - 6, y0 + (nL - 0.5) * rowH);
      for (let layer = 0; layer < nL; layer++) {
        for (let i = 0; i < T; i++) {
          const t = tx(v[layer * T + i]);
          ctx.fillStyle = GG.rgbCss(GG.ramp(Number.isFinite(t) ? GG.normalize(t, [lo, hi]) : NaN));
          ctx.fillRect(xOf(i), y0 + layer * rowH, Math.max(1, xOf(i + 1) - xOf(i)), rowH);
        }
      }
      ctx.strokeStyle = '#f5a524';
      ctx.lineWidth = 1.2;
      ctx.strokeRect(xOf(ti) - 0.5, y0 - 0.5, xOf(ti + 1) - xOf(ti) + 1, bandH + 1);
      ctx.strokeStyle = 'rgba(245,165,36,0.7)';
      ctx.strokeRect(LEFT - 0.5, y0 + l * rowH - 0.5, xOf(T) - LEFT + 1, rowH + 1);
      // Legend: the ramp with its ends, in the band's own units.
      const lx = W - RIGHT + 14;
      const grad = ctx.createLinearGradient(0, y0 + bandH, 0, y0);
      for (let k = 0; k <= 8; k++) grad.addColorStop(k / 8, GG.rgbCss(GG.ramp(k / 8)));
      ctx.fillStyle = grad;
      ctx.fillRect(lx, y0, 10, bandH);
      ctx.fillStyle = '#8793a8';
      ctx.textAlign = 'left';
      const un = (t) => GG.fmtNum(band.log ? Math.exp(t) : t);
      ctx.fillText(un(hi), lx + 15, y0 + 5);
      ctx.fillText(un(lo), lx + 15, y0 + bandH - 5);
      if (band.log) ctx.fillText('log scale', lx + 15, y0 + bandH / 2);
      if (firstMax > hi) {
        ctx.fillStyle = '#f5c46b';
        ctx.fillText('token 0 reaches', lx - 2, y0 + bandH + 9);
        ctx.fillText(un(firstMax), lx - 2, y0 + bandH + 21);
      }
    });
  }

  function heatAt(ev) {
    if (!heatGeom) return null;
    const g = heatGeom;
    const p = GG.charts.pointer(ev, heat);
    const i = Math.floor((p.x - LEFT) / g.cw);
    if (i < 0 || i >= g.T) return null;
    for (let b = 0; b < BANDS.length; b++) {
      const y0 = g.top + b * (g.bandH + g.gap) + 14;
      const l = Math.floor((p.y - y0) / g.rowH);
      if (l >= 0 && l < B.nLayer) return { band: b, l, i };
    }
    return null;
  }

  // How far these numbers are from llama.cpp as people run it (flash
  // attention on where the backend has it, no eval callback).
  function kernelText(k) {
    if (!k) return '';
    const agree = (100 * k.top1_agreement).toFixed(k.top1_agreement === 1 ? 0 : 1);
    return `Kernels: run as people run llama.cpp (flash attention auto, no callback), the next-token ` +
      `distributions differ from these by KL ${GG.fmtNum(k.kl_mean)} nats on average ` +
      `(largest ${GG.fmtNum(k.kl_max)}), at most ${GG.fmtNum(k.max_prob_diff)} in any token\u2019s ` +
      `probability; the top token agrees at ${agree}% of ${k.positions} positions. ` +
      'Differences between models smaller than this are the kernels\u2019, not the models\u2019.';
  }

  // ---- the page -------------------------------------------------------------------

  function render() {
    const s = GG.state;
    const P = GG.promptOf(B, s);
    promptSel.value = String(P.index);
    if (builtPrompt !== P.index) {
      buildTable(P);
      builtPrompt = P.index;
      check.textContent = `Lens check: the last layer reproduces llama.cpp\u2019s logits to ${GG.fmtNum(P.lensError)} (largest relative error)`;
      check.classList.toggle('bad', !(P.lensError < 1e-2));
      kernels.textContent = kernelText(P.kernels);
      kernels.hidden = !P.kernels;
      const missing = P.missing.length ? `llama.cpp offered no ${P.missing.join(', ')} for this architecture: those rows are grey.` : '';
      notes.textContent = [missing, ...B.notes].filter(Boolean).join(' ');
      notes.hidden = !notes.textContent;
    }
    const l = layerOf(s), i = GG.tokenOf(P, s);
    markTable(P, l, i);
    drawDetail(P, l, i);
    drawHeat(P);
  }

  const view = {
    id: 'tracker',
    title: 'Layers over tokens',
    order: 70,
    requires: 'behaviour',
    create(el, report) {
      R = report;
      B = GG.behaviour(R);
      root = el;
      promptSel = GG.promptSelect(B, 'tracker-prompt');
      check = GG.el('span', { class: 'lens-check', id: 'lens-check' });
      lensBox = GG.el('div', { class: 'lens-box', id: 'lens-box' });
      detailBox = GG.el('div', { class: 'lens-detail', id: 'lens-detail' });
      rankCanvas = GG.el('canvas', { id: 'lens-rank' });
      heat = GG.el('canvas', { id: 'tracker-heat', class: 'tracker-heat' });
      notes = GG.el('p', { class: 'note', hidden: true });
      kernels = GG.el('p', { class: 'note kernel-gap', id: 'kernel-gap', hidden: true });
      root.append(
        GG.el('div', { class: 'toolbar' }, GG.el('label', {}, 'Prompt ', promptSel), check),
        GG.el('div', { class: 'scroll' },
          kernels,
          GG.el('h3', { class: 'section-title' }, 'The logit lens: each layer\u2019s best guess at the next token',
            GG.el('span', { class: 'hint lens-key' }, 'colour: its probability', GG.el('span', { class: 'lens-ramp' }), '· bold: the model\u2019s final prediction · click a cell')),
          GG.el('div', { class: 'lens-grid' }, lensBox, detailBox),
          GG.el('h3', { class: 'section-title', text: 'The residual stream, layer × token' }),
          notes,
          GG.el('div', { class: 'heat-box' }, heat)));
      heat.addEventListener('mousemove', (ev) => {
        const at = heatAt(ev);
        if (!at) { GG.tooltip.hide(); return; }
        const P = GG.promptOf(B, GG.state);
        const k = at.l * P.T + at.i;
        GG.tooltip.show(ev.clientX, ev.clientY, `layer ${at.l} · ‘${piece(P, at.i)}’ (${at.i})`,
          BANDS.map((b) => [b.label, GG.fmtNum(P.tracker[b.id][k])]));
      });
      heat.addEventListener('mouseleave', () => GG.tooltip.hide());
      heat.addEventListener('click', (ev) => {
        const at = heatAt(ev);
        if (at) GG.select({ layer: at.l, token: at.i, head: null, node: `blk.${at.l}`, tensor: null });
      });
    },
    show() { shown = true; render(); },
    hide() { shown = false; GG.tooltip.hide(); },
    resize() { if (shown) drawHeat(GG.promptOf(B, GG.state)); },
    update() { if (shown) render(); },
  };
  GG.registerView(view);
})(window.GG);
