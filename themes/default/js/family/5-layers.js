// Per-layer divergence curves (relative error of the residual stream after
// each layer and the logit lens's KL divergence, one line per member) and the selected member's head
// similarity map (layers × heads, 1 − Jensen–Shannon distance).
'use strict';
(function (GG) {
  const F = GG.family;
  const box = document.getElementById('layers-panel');
  if (!box) return;
  const curves = GG.el('canvas', { id: 'layer-curves', width: 720, height: 300 });
  const lens = GG.el('canvas', { id: 'lens-curves', width: 720, height: 300 });
  const map = GG.el('canvas', { id: 'head-map', width: 720, height: 260 });
  box.append(GG.el('h2', { text: 'Where the error enters: residual stream, layer by layer' }), curves,
    GG.el('p', { class: 'legend', text: 'Mean over positions and prompts of ‖h − h_ref‖ / ‖h_ref‖ after each layer (log scale). The selected member is drawn thick.' }),
    GG.el('h2', { text: 'Where each layer\'s guess drifts: logit-lens KL divergence, layer by layer' }), lens,
    GG.el('p', { class: 'legend', text: 'Mean over positions and prompts of KL(lens_ref ‖ lens_member) in nats: the residual after each layer through each model\'s own output norm and head, against the reference\'s at the same layer (log scale). At the last layer this is the KL of the models\' outputs on the prompts.' }),
    GG.el('h2', { id: 'head-map-title' }), map);
  const ms = F.data.members;
  const hue = (i) => `hsl(${Math.round(360 * i / Math.max(ms.length, 1))} 65% 42%)`;
  const hiddenErr = (l) => (l.hidden ? l.hidden.rel_err_mean : 0);
  const lensKl = (l) => l.lens_kl || 0;
  function drawCurves(sel, canvas, value) {
    const ctx = canvas.getContext('2d'), W = canvas.width, H = canvas.height;
    const pad = { l: 60, r: 90, t: 14, b: 30 };
    ctx.clearRect(0, 0, W, H); ctx.font = '12px sans-serif';
    const series = ms.map((m) => m.layers.layers.map(value));
    const pos = series.flat().filter((v) => v > 0);
    if (!pos.length) { ctx.fillStyle = '#444'; ctx.fillText('every member computes what the reference does', pad.l, H / 2); return; }
    const lo = Math.log10(Math.min(...pos)) - 0.1, hi = Math.log10(Math.max(...pos)) + 0.1;
    const n = Math.max(...series.map((s) => s.length));
    const px = (l) => pad.l + l / Math.max(n - 1, 1) * (W - pad.l - pad.r);
    const py = (v) => H - pad.b - (Math.log10(v) - lo) / (hi - lo || 1) * (H - pad.t - pad.b);
    ctx.strokeStyle = '#888'; ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, H - pad.b); ctx.lineTo(W - pad.r, H - pad.b); ctx.stroke();
    ctx.fillStyle = '#444'; ctx.fillText('layer', W / 2, H - 6);
    for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) ctx.fillText('1e' + e, 18, py(10 ** e) + 4);
    series.forEach((s, i) => {
      if (!s.some((v) => v > 0)) return;
      ctx.strokeStyle = hue(i); ctx.lineWidth = i === sel ? 3 : 1.2; ctx.beginPath();
      s.forEach((v, l) => (l ? ctx.lineTo : ctx.moveTo).call(ctx, px(l), py(Math.max(v, 10 ** lo))));
      ctx.stroke(); ctx.fillStyle = hue(i);
      ctx.fillText(F.label(ms[i]), W - pad.r + 6, py(Math.max(s[s.length - 1], 10 ** lo)) + 4);
    });
    ctx.lineWidth = 1;
  }
  function drawMap(sel) {
    const ctx = map.getContext('2d'), W = map.width, H = map.height;
    ctx.clearRect(0, 0, W, H);
    const layers = ms[sel].layers.layers.map((l) => l.heads || []);
    document.getElementById('head-map-title').textContent =
      `${F.label(ms[sel])}: attention similarity to the reference per head (white 1, dark ≤ min)`;
    const nh = Math.max(0, ...layers.map((h) => h.length));
    if (!nh) return;
    const vals = layers.flat();
    const min = Math.min(...vals, 0.999);
    const cw = (W - 40) / nh, ch = (H - 10) / layers.length;
    layers.forEach((hs, l) => hs.forEach((v, h) => {
      const t = (v - min) / (1 - min || 1);
      const c = Math.round(40 + 215 * t);
      ctx.fillStyle = `rgb(${c},${c},${Math.min(255, c + 30)})`;
      ctx.fillRect(40 + h * cw, 5 + l * ch, Math.max(cw - 1, 1), Math.max(ch - 1, 1));
    }));
    ctx.fillStyle = '#888'; ctx.font = '11px sans-serif'; ctx.fillText('L0', 4, 14); ctx.fillText('L' + (layers.length - 1), 4, H - 6);
  }
  const draw = (i) => { drawCurves(i, curves, hiddenErr); drawCurves(i, lens, lensKl); drawMap(i); };
  F.onSelect(draw);
  draw(F.selected());
})(window.GG);
