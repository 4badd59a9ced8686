// The statistics panel, always visible: what the model is, in numbers.
'use strict';
(function (GG) {
  function uniformOr(values, fmt = String) {
    if (!values.length) return '–';
    const first = values[0];
    if (values.every((v) => v === first)) return fmt(first);
    const lo = Math.min(...values), hi = Math.max(...values);
    return `${fmt(lo)}–${fmt(hi)} (varies by layer)`;
  }

  function mixBar(R) {
    const bar = GG.el('div', { class: 'mix-bar', role: 'img', 'aria-label': 'quantization mix by bytes' });
    const legend = GG.el('ul', { class: 'mix-legend' });
    R.types.forEach((t, i) => {
      bar.append(GG.el('span', {
        style: { width: `${t.share_of_bytes * 100}%`, background: t.color },
        title: `${t.name}: ${GG.fmtPct(t.share_of_bytes)} of tensor bytes`,
        onclick: () => GG.select({ view: 'quant' }),
        dataset: { type: String(i) },
      }));
      legend.append(GG.el('li', {},
        GG.el('i', { style: { background: t.color } }),
        GG.el('b', { text: t.name }),
        ` ${GG.fmtPct(t.share_of_bytes)} · ${GG.fmtBpw(t.bits_per_weight)} bpw`));
    });
    return [bar, legend];
  }

  GG.registerPanel({
    id: 'stats',
    order: 10,
    create(root, R) {
      const m = R.model, hp = m.hparams, tk = m.tokenizer;
      const nh = hp.n_head, nkv = hp.n_head_kv;
      const group = nh.map((h, i) => (nkv[i] ? h / nkv[i] : 1));
      const kvText = uniformOr(nkv) + (group.every((g) => g === group[0]) && group[0] > 1 ? ` (GQA, ${group[0]} heads each)` : '');
      const rows = [
        ['Architecture', m.architecture],
        ['File type', m.file_type || '–'],
        ['Parameters', `${GG.fmtCount(m.params)} (${GG.fmtInt(m.params)})`],
        ['File size', `${GG.fmtBytes(m.file_bytes)} (${GG.fmtBytes(m.overhead_bytes)} header & padding)`],
        ['Avg bits/weight', GG.fmtBpw(+m.avg_bits_per_weight.toFixed(3))],
        ['Layers', String(hp.n_layer)],
        ['Heads', uniformOr(nh)],
        ['KV heads', kvText],
        ['Head dim', hp.head_dim_k === hp.head_dim_v ? String(hp.head_dim_k) : `K ${hp.head_dim_k}, V ${hp.head_dim_v}`],
        ['Embedding width', String(hp.n_embd)],
        ['FFN width', uniformOr(hp.n_ff)],
        hp.n_expert ? ['Experts', `${hp.n_expert} (${hp.n_expert_used} per token)`] : null,
        ['Vocabulary', GG.fmtInt(hp.n_vocab)],
        ['Context length', hp.n_ctx_train ? GG.fmtInt(hp.n_ctx_train) : '–'],
        ['RoPE base', hp.rope.freq_base ? GG.fmtInt(hp.rope.freq_base) : '–'],
        hp.sliding_window ? ['Sliding window', GG.fmtInt(hp.sliding_window)] : null,
        ['Tied embeddings', m.tied_embeddings ? 'yes (output head reuses token_embd)' : 'no'],
        ['Tokenizer', [tk.model, tk.pre].filter(Boolean).join(' / ') || '–'],
        ['GGUF', `v${m.gguf_version}${m.shards > 1 ? `, ${m.shards} files` : ''}`],
      ].filter(Boolean);
      const dl = GG.el('dl', { class: 'stats' });
      for (const [k, v] of rows) dl.append(GG.el('dt', { text: k }), GG.el('dd', { text: v }));
      root.append(
        GG.el('h2', { class: 'panel-title', text: 'Statistics' }),
        GG.el('div', { class: 'stat-name', text: m.name }),
        GG.el('div', { class: 'stat-file', text: m.file_name }),
        ...mixBar(R),
        dl,
      );
      if (hp.derived.length) {
        root.append(GG.el('p', { class: 'note', text: `Derived from tensor shapes (missing keys): ${hp.derived.join(', ')}.` }));
      }
      if (tk.chat_template) {
        root.append(GG.el('details', { class: 'chat-template' },
          GG.el('summary', { text: 'Chat template' }),
          GG.el('pre', { text: tk.chat_template })));
      }
    },
    update() {},
  });
})(window.GG);
