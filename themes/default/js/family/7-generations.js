// Generations side by side: each member's greedy continuation of each
// prompt, the tokens from the first one that departs from the reference's
// marked. Every string goes in as text, never as markup.
'use strict';
(function (GG) {
  const F = GG.family;
  const box = document.getElementById('generations-panel');
  if (!box || !F.data.generations || !F.data.generations.length) return;
  const ms = F.data.members;
  box.append(GG.el('h2', { text: 'Generations side by side' }),
    GG.el('p', { class: 'legend', text: 'Greedy continuation (the most probable token each time) of each prompt by each member. Tokens from the first one where a member departs from the reference are marked; after that point the member continues its own text, so later differences follow from the first.' }));
  F.data.generations.forEach((g, p) => {
    const rows = g.members.map((c, i) => {
      const at = c.diverges_at;
      const tokens = c.pieces.map((piece, k) => GG.el('span', {
        class: at !== null && at !== undefined && k >= at ? (k === at ? 'tok diverged first' : 'tok diverged') : 'tok',
        title: `token ${k} (id ${c.ids[k]})`,
        text: piece,
      }));
      const where = ms[i].reference ? 'reference'
        : at === null || at === undefined ? 'same as the reference' : `departs at token ${at}`;
      return GG.el('tr', { class: 'gen', dataset: { member: String(i), prompt: String(p) } },
        GG.el('th', { text: F.label(ms[i]) }),
        GG.el('td', { class: 'where', text: where }),
        GG.el('td', { class: 'continuation' }, tokens));
    });
    box.append(GG.el('h3', { class: 'gen-prompt', text: g.prompt }),
      GG.el('div', { class: 'table-wrap' }, GG.el('table', { class: 'generations' }, GG.el('tbody', {}, rows))));
  });
  const mark = (i) => box.querySelectorAll('tr.gen').forEach((r) =>
    r.classList.toggle('selected', Number(r.dataset.member) === i));
  F.onSelect(mark);
  mark(F.selected());
})(window.GG);
