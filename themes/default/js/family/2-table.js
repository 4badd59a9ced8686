// The statistics table: one row per member, llama-perplexity's columns.
'use strict';
(function (GG) {
  const F = GG.family;
  const table = document.getElementById('stats-table');
  const cols = [
    ['member', (m) => F.label(m) + (m.reference ? ' (reference)' : '')],
    ['bits/weight', (m) => F.num(m.bits_per_weight, 3)],
    ['file', (m) => GG.fmtBytes(m.file_size)],
    ['PPL', (m) => `${F.num(m.stats.ppl.ppl, 3)} ± ${F.num(m.stats.ppl.err, 3)}`],
    ['PPL ratio', (m) => F.num(m.stats.ppl_ratio, 4)],
    ['mean KLD', (m) => `${F.num(m.stats.kld.mean.value, 5)} ± ${F.num(m.stats.kld.mean.err, 5)}`],
    ['99 % KLD', (m) => F.num(m.stats.kld.p99, 4)],
    ['max KLD', (m) => F.num(m.stats.kld.max, 4)],
    ['mean Δp', (m) => F.num(m.stats.delta_p.mean.value * 100, 3) + ' %'],
    ['RMS Δp', (m) => F.num(m.stats.rms_delta_p.value * 100, 3) + ' %'],
    ['same top', (m) => F.num(m.stats.same_top.value * 100, 2) + ' %'],
  ];
  table.append(GG.el('thead', {}, GG.el('tr', {}, cols.map(([h]) => GG.el('th', { text: h })))));
  const body = GG.el('tbody');
  F.data.members.forEach((m, i) => {
    body.append(GG.el('tr', {
      class: m.pareto ? 'pareto' : null,
      dataset: { member: String(i) },
      onclick: () => F.select(i),
    }, cols.map(([, f]) => GG.el('td', { text: f(m) }))));
  });
  table.append(body);
  const mark = (i) => body.querySelectorAll('tr').forEach((r) =>
    r.classList.toggle('selected', Number(r.dataset.member) === i));
  F.onSelect(mark);
  mark(F.selected());
})(window.GG);
