// The selected member's per-tensor weight error: RMS(w − w_ref) / RMS(w_ref)
// of the dequantized weights, the twenty largest first.
'use strict';
(function (GG) {
  const F = GG.family;
  const box = document.getElementById('weights-panel');
  if (!box) return;
  function show(i) {
    const m = F.data.members[i];
    const rows = m.weights.slice().sort((a, b) => b.rel_rms - a.rel_rms).slice(0, 20);
    GG.clear(box);
    box.append(GG.el('h2', { text: `${F.label(m)}: tensors with the largest weight error` }),
      GG.el('table', { id: 'weights-table' },
        GG.el('thead', {}, GG.el('tr', {}, GG.el('th', { text: 'tensor' }), GG.el('th', { text: 'RMS error / RMS' }))),
        GG.el('tbody', {}, rows.map((t) => GG.el('tr', {},
          GG.el('td', { text: t.name }), GG.el('td', { text: F.num(t.rel_rms, 5) }))))));
  }
  F.onSelect(show);
  show(F.selected());
})(window.GG);
