// Token embeddings: for each member, the share of a sampled token's nearest
// neighbours (cosine) it shares with the reference, and for the selected
// member the tokens that moved most.
'use strict';
(function (GG) {
  const F = GG.family;
  const box = document.getElementById('neighbours-panel');
  const ms = F.data.members;
  if (!box || !ms.some((m) => m.neighbours)) return;
  const n0 = ms.find((m) => m.neighbours).neighbours;
  const list = GG.el('div', { id: 'moved-tokens' });
  box.append(GG.el('h2', { text: 'Token embeddings: nearest neighbours kept' }),
    GG.el('p', { class: 'legend', text: `For ${n0.sample} tokens sampled evenly over the vocabulary, each token's ${n0.k} nearest neighbours by cosine similarity of the dequantized token embeddings, searched exactly against the whole vocabulary, and the share of them the member shares with the reference (1 = all kept). A sample, not the whole vocabulary: read the mean to about ±0.01.` }),
    GG.el('div', { class: 'table-wrap' }, GG.el('table', { id: 'neighbours-table' },
      GG.el('thead', {}, GG.el('tr', {}, GG.el('th', { text: 'member' }), GG.el('th', { text: 'neighbours kept (mean)' }))),
      GG.el('tbody', {}, ms.map((m, i) => GG.el('tr', { dataset: { member: String(i) }, onclick: () => F.select(i) },
        GG.el('td', { text: F.label(m) }),
        GG.el('td', { text: m.neighbours ? F.num(m.neighbours.mean, 4) : '—' })))))),
    list);
  function show(i) {
    const m = ms[i];
    GG.clear(list);
    const moved = (m.neighbours && m.neighbours.moved) || [];
    list.append(GG.el('h3', { text: `${F.label(m)}: the tokens whose neighbours moved most` }),
      moved.length ? GG.el('table', { class: 'moved' },
        GG.el('thead', {}, GG.el('tr', {}, GG.el('th', { text: 'token' }), GG.el('th', { text: 'id' }), GG.el('th', { text: 'kept' }))),
        GG.el('tbody', {}, moved.map((t) => GG.el('tr', {},
          GG.el('td', { text: JSON.stringify(t.piece) }), GG.el('td', { text: String(t.id) }),
          GG.el('td', { text: F.num(t.overlap, 2) })))))
        : GG.el('p', { text: 'Every sampled token kept all its neighbours.' }));
    box.querySelectorAll('#neighbours-table tbody tr').forEach((r) =>
      r.classList.toggle('selected', Number(r.dataset.member) === i));
  }
  F.onSelect(show);
  show(F.selected());
})(window.GG);
