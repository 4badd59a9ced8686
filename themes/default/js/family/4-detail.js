// The selected member's KL-divergence and Δp distributions, as
// llama-perplexity prints them.
'use strict';
(function (GG) {
  const F = GG.family;
  const box = document.getElementById('member-detail');
  const rows = [['max', 'max'], ['99.9 %', 'p99_9'], ['99 %', 'p99'], ['95 %', 'p95'], ['90 %', 'p90'],
    ['median', 'median'], ['10 %', 'p10'], ['5 %', 'p5'], ['1 %', 'p1'], ['0.1 %', 'p0_1'], ['min', 'min']];
  function show(i) {
    const m = F.data.members[i];
    const s = m.stats;
    GG.clear(box);
    box.append(GG.el('h2', { id: 'detail-title', text: `${F.label(m)} against the reference` }),
      GG.el('p', { text: `${s.n_tokens} tokens scored · mean ln(PPL(Q)/PPL(base)) ${F.num(s.ln_ppl_ratio.value, 5)} ± ${F.num(s.ln_ppl_ratio.err, 5)} · correlation of log-likelihoods ${F.num(s.nll_correlation * 100, 2)} %` }),
      GG.el('table', { class: 'dist' },
        GG.el('thead', {}, GG.el('tr', {}, GG.el('th', { text: '' }), GG.el('th', { text: 'KLD' }), GG.el('th', { text: 'Δp' }))),
        GG.el('tbody', {}, rows.map(([name, k]) => GG.el('tr', {},
          GG.el('th', { text: name }), GG.el('td', { text: F.num(s.kld[k], 6) }),
          GG.el('td', { text: F.num(s.delta_p[k] * 100, 3) + ' %' }))))));
  }
  F.onSelect(show);
  show(F.selected());
})(window.GG);
