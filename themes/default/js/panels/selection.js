// The selection panel: what is selected, with its numbers, whichever view
// selected it.
'use strict';
(function (GG) {
  let R = null;
  let box = null;

  function nodeRows(i) {
    const G = R.graph;
    const kind = G.kinds[G.kind[i]];
    const rows = [['kind', kind.label]];
    if (G.layer[i] >= 0) rows.push(['layer', String(G.layer[i])]);
    if (kind.id === 'head') {
      rows.push(['head', String(G.head[i])], ['reads KV head', String(G.kvGroup[i])]);
      // What the head does, when the model was run.
      const H = R.heads, l = G.layer[i];
      const h = l >= 0 && l < H.nHead.length ? H.offsets[l] + G.head[i] : -1;
      for (const id of ['cluster', 'prev_token', 'induction', 'sink', 'importance']) {
        const m = H.metrics.find((x) => x.id === id);
        if (!m || h < 0) continue;
        const v = m.values[h];
        rows.push([m.label, m.scale === 'categorical' ? (m.categories[v] ?? String(v)) : GG.fmtNum(v)]);
      }
    }
    if (kind.id === 'kv_head') rows.push(['KV head', String(G.head[i])]);
    const t = G.tensor[i];
    if (t >= 0) {
      const T = R.tensors;
      rows.push(['role', T.roles[T.role[t]].label], ['shape', T.shape[t].join(' × ')]);
    }
    if (G.params[i] > 0) {
      rows.push(['parameters', GG.fmtInt(G.params[i])], ['bytes', `${GG.fmtBytes(G.bytes[i])} (${GG.fmtInt(G.bytes[i])})`]);
    }
    if (G.type[i] >= 0) {
      const ty = R.types[G.type[i]];
      rows.push(['type', `${ty.name}, ${GG.fmtBpw(ty.bits_per_weight)} bits/weight`]);
    } else if (G.params[i] > 0) rows.push(['type', 'mixed']);
    for (const m of G.metrics) rows.push([m.label, GG.fmtNum(m.values[i])]);
    return rows;
  }

  GG.registerPanel({
    id: 'selection',
    order: 20,
    create(root, report) {
      R = report;
      box = root;
    },
    update(s) {
      GG.clear(box);
      const i = GG.selectedNode(R, s);
      if (i < 0) {
        box.append(GG.el('h2', { class: 'panel-title', text: 'Selection' }),
          GG.el('p', { class: 'note', text: 'Click a node, head, layer or tensor in any view.' }));
        return;
      }
      const dl = GG.el('dl', { class: 'stats' });
      for (const [k, v] of nodeRows(i)) dl.append(GG.el('dt', { text: k }), GG.el('dd', { text: v }));
      const links = GG.el('div', { class: 'goto' }, 'Show in ',
        ...[['architecture', 'graph'], ['layer', 'layer'], ['heads', 'head map'], ['quant', 'quantization'],
          ['attention', 'attention'], ['tracker', 'layers over tokens'], ['comparator', 'comparator']]
          .filter(([v]) => document.getElementById(`view-${v}`))
          .map(([v, label]) => GG.el('button', { type: 'button', text: label, onclick: () => GG.select({ view: v }) })));
      box.append(GG.el('h2', { class: 'panel-title', text: 'Selection' }),
        GG.el('div', { class: 'sel-key', text: R.graph.key[i] }),
        GG.el('div', { class: 'sel-label', text: R.graph.label[i] }), dl, links);
    },
  });
})(window.GG);
