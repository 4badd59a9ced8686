// Speed and memory: per member, prompt processing and generation tokens per
// second, file size, llama.cpp's model buffer and the growth of resident
// memory while the member ran, as bars.
'use strict';
(function (GG) {
  const F = GG.family;
  const box = document.getElementById('speed-panel');
  const ms = F.data.members;
  if (!box || !ms.some((m) => m.speed)) return;
  const s0 = ms.find((m) => m.speed).speed;
  const metrics = [
    ['prompt processing (tok/s)', (m) => m.speed && m.speed.prompt_tok_s, (v) => F.num(v, 1)],
    ['generation (tok/s)', (m) => m.speed && m.speed.gen_tok_s, (v) => F.num(v, 1)],
    ['file size', (m) => m.file_size, GG.fmtBytes],
    ['model buffer', (m) => m.speed && m.speed.model_bytes, GG.fmtBytes],
    ['RSS increase', (m) => m.speed && m.speed.rss_increase, GG.fmtBytes],
  ];
  // On a GPU: the growth of the device's used memory.
  if (ms.some((m) => m.speed && m.speed.device_memory != null)) {
    metrics.push(['device memory', (m) => m.speed && m.speed.device_memory, GG.fmtBytes]);
  }
  const canvas = GG.el('canvas', { id: 'speed-bars', width: 900, height: 40 + metrics.length * (ms.length * 16 + 30) });
  box.append(GG.el('h2', { text: 'Speed and memory' }), canvas,
    GG.el('p', { class: 'legend', text: `Measured through llama.cpp on ${s0.device} with ${s0.threads} thread(s), each member loaded afresh in ggviz's worker process: a ${s0.prompt_tokens}-token prompt decoded as one batch, then ${s0.gen_tokens} tokens decoded one at a time, the median of ${s0.runs} runs after a warm-up (as llama-bench does). The model buffer is llama_model_size; the RSS increase is how much that process's resident memory grew while the member was loaded and run (weights paged in from the mapped file, KV cache, compute buffers), not a peak of its own; on a GPU, device memory is how much the device's used memory grew (its free memory before the load minus after the runs). Timings depend on the machine's load at build time.` }),
    GG.el('div', { class: 'table-wrap' }, GG.el('table', { id: 'speed-table' },
      GG.el('thead', {}, GG.el('tr', {}, GG.el('th', { text: 'member' }), metrics.map(([h]) => GG.el('th', { text: h })))),
      GG.el('tbody', {}, ms.map((m, i) => GG.el('tr', { dataset: { member: String(i) }, onclick: () => F.select(i) },
        GG.el('td', { text: F.label(m) }),
        metrics.map(([, f, fmt]) => GG.el('td', { text: f(m) === null || f(m) === undefined ? '—' : fmt(f(m)) }))))))));
  const hue = (i) => `hsl(${Math.round(360 * i / Math.max(ms.length, 1))} 65% 42%)`;
  function draw(sel) {
    const ctx = canvas.getContext('2d'), W = canvas.width;
    ctx.clearRect(0, 0, W, canvas.height); ctx.font = '12px sans-serif';
    let y = 20;
    metrics.forEach(([name, f, fmt]) => {
      ctx.fillStyle = '#222'; ctx.fillText(name, 10, y); y += 8;
      const max = Math.max(...ms.map((m) => f(m) || 0), 1e-12);
      ms.forEach((m, i) => {
        const v = f(m) || 0;
        ctx.fillStyle = '#444'; ctx.fillText(F.label(m), 10, y + 11);
        ctx.fillStyle = hue(i);
        ctx.fillRect(170, y, Math.max(1, (W - 320) * v / max), 12);
        if (i === sel) { ctx.strokeStyle = '#d33'; ctx.lineWidth = 2; ctx.strokeRect(170, y, Math.max(1, (W - 320) * v / max), 12); ctx.lineWidth = 1; }
        ctx.fillStyle = '#222'; ctx.fillText(f(m) === null || f(m) === undefined ? '—' : fmt(v), 176 + (W - 320) * v / max, y + 11);
        y += 16;
      });
      y += 22;
    });
  }
  F.onSelect(draw);
  draw(F.selected());
})(window.GG);
