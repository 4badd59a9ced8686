// The trade-off chart: bits per weight against mean KL divergence (log
// scale; the reference's 0 is drawn on the bottom edge), Pareto front joined.
'use strict';
(function (GG) {
  const F = GG.family;
  const canvas = document.getElementById('tradeoff');
  const ctx = canvas.getContext('2d');
  const pad = { l: 70, r: 20, t: 20, b: 46 };
  const ms = F.data.members;
  const floor = Math.min(...ms.map((m) => m.stats.kld.mean.value).filter((v) => v > 0), 1e-4) / 2;
  const ky = (m) => Math.log10(Math.max(m.stats.kld.mean.value, floor));
  const bx = ms.map((m) => m.bits_per_weight);
  const [x0, x1] = [Math.min(...bx) - 0.5, Math.max(...bx) + 0.5];
  const ys = ms.map(ky);
  const [y0, y1] = [Math.min(...ys) - 0.2, Math.max(...ys) + 0.2];
  const W = canvas.width, H = canvas.height;
  const px = (b) => pad.l + (b - x0) / (x1 - x0) * (W - pad.l - pad.r);
  const py = (y) => H - pad.b - (y - y0) / (y1 - y0 || 1) * (H - pad.t - pad.b);
  F.points = ms.map((m) => [px(m.bits_per_weight), py(ky(m))]);
  function draw(sel) {
    ctx.clearRect(0, 0, W, H);
    ctx.strokeStyle = '#888'; ctx.fillStyle = '#444'; ctx.font = '12px sans-serif';
    ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, H - pad.b); ctx.lineTo(W - pad.r, H - pad.b); ctx.stroke();
    ctx.fillText('bits per weight', W / 2 - 40, H - 8);
    ctx.save(); ctx.translate(14, H / 2 + 40); ctx.rotate(-Math.PI / 2); ctx.fillText('mean KLD (log)', 0, 0); ctx.restore();
    for (let e = Math.ceil(y0); e <= Math.floor(y1); e++) ctx.fillText('1e' + e, 28, py(e) + 4);
    const step = x1 - x0 > 12 ? 4 : x1 - x0 > 6 ? 2 : 1;
    for (let b = Math.ceil(x0 / step) * step; b <= x1; b += step) ctx.fillText(String(b), px(b) - 4, H - pad.b + 16);
    const front = ms.map((m, i) => i).filter((i) => ms[i].pareto)
      .sort((a, b) => ms[a].bits_per_weight - ms[b].bits_per_weight);
    ctx.strokeStyle = '#2a7'; ctx.beginPath();
    front.forEach((i, k) => (k ? ctx.lineTo : ctx.moveTo).apply(ctx, F.points[i]));
    ctx.stroke();
    ms.forEach((m, i) => {
      const [x, y] = F.points[i];
      ctx.beginPath(); ctx.arc(x, y, i === sel ? 7 : 5, 0, 2 * Math.PI);
      ctx.fillStyle = m.pareto ? '#2a7' : '#fff'; ctx.strokeStyle = i === sel ? '#d33' : '#2a7';
      ctx.lineWidth = i === sel ? 3 : 1.5; ctx.fill(); ctx.stroke(); ctx.lineWidth = 1;
      ctx.fillStyle = '#222'; ctx.fillText(F.label(m), x + 8, y - 8);
    });
  }
  canvas.addEventListener('click', (ev) => {
    const r = canvas.getBoundingClientRect();
    const x = (ev.clientX - r.left) * W / r.width, y = (ev.clientY - r.top) * H / r.height;
    let best = -1, bd = 15 * 15;
    F.points.forEach(([px2, py2], i) => {
      const d = (px2 - x) ** 2 + (py2 - y) ** 2;
      if (d < bd) { bd = d; best = i; }
    });
    if (best >= 0) F.select(best);
  });
  F.onSelect(draw);
  draw(F.selected());
})(window.GG);
