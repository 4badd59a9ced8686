// The report's behaviour section (what llama.cpp computed on the prompts),
// decoded for the views that show it. Prompts are unpacked on first use:
// a page opens on the architecture view and may never need them.
'use strict';
(function (GG) {
  // A probability byte b stands for (b/255)² (docs/report.md).
  GG.prob = (b) => (b / 255) * (b / 255);

  // A token piece exactly as the tokenizer cut it, with its whitespace made
  // visible: a leading space is the difference between " is" and "is".
  const VISIBLE = { ' ': '␣', '\n': '↵', '\t': '⇥', '\r': '␍' };
  GG.showPiece = function (piece) {
    if (piece === '') return '∅';
    let out = '';
    for (const ch of piece) {
      const code = ch.codePointAt(0);
      if (VISIBLE[ch]) out += VISIBLE[ch];
      else if (code < 32 || code === 127) out += `\\x${code.toString(16).padStart(2, '0')}`;
      else out += ch;
    }
    return out;
  };

  GG.headName = (l, h) => `L${l} H${h}`;

  // The second head of a side-by-side comparison, kept in the hash as
  // "layer.head"; null when absent or malformed.
  GG.parseHeadRef = function (text) {
    const m = /^(\d+)\.(\d+)$/.exec(text || '');
    return m ? { layer: Number(m[1]), head: Number(m[2]) } : null;
  };

  function lensArrays(raw) {
    return {
      topIds: GG.unpack(raw.top_ids),
      topProbs: GG.unpack(raw.top_probs),
      targetRank: GG.unpack(raw.target_rank),
      targetProb: GG.unpack(raw.target_prob),
    };
  }

  function decodePrompt(raw, index, H) {
    const T = raw.n_tokens;
    const tri = (T * (T + 1)) / 2;
    const attention = GG.unpack(raw.attention);
    const tr = raw.tracker;
    return {
      index,
      name: raw.name,
      kind: raw.kind,
      text: raw.text,
      T,
      tokens: raw.tokens,
      tri,
      attention,
      // A layer without a captured pattern would leave the array short;
      // then no offset can be trusted and the view says so.
      hasAttention: attention.length === H.count * tri,
      tracker: {
        hidden_norm: GG.unpack(tr.hidden_norm),
        attn_norm: GG.unpack(tr.attn_norm),
        ffn_norm: GG.unpack(tr.ffn_norm),
        cos_prev: GG.unpack(tr.cos_prev),
      },
      lens: lensArrays(raw.lens),
      prediction: lensArrays(raw.prediction),
      lensError: raw.lens_error,
      kernels: raw.kernels || null,
      loss: raw.loss,
      missing: raw.missing,
    };
  }

  // The decoded behaviour section of report R, or null on a structure-only
  // page.
  GG.behaviour = function (R) {
    if (!R.behaviour) return null;
    if (R.behaviourDecoded) return R.behaviourDecoded;
    const raw = R.behaviour;
    const H = R.heads;
    const decoded = new Array(raw.prompts.length).fill(null);
    const c = raw.clusters;
    const B = {
      raw,
      nLayer: H.nHead.length,
      prompts: raw.prompts,
      prompt(i) {
        const k = GG.clamp(i | 0, 0, raw.prompts.length - 1);
        if (!decoded[k]) decoded[k] = decodePrompt(raw.prompts[k], k, H);
        return decoded[k];
      },
      piece: (id) => raw.vocab[String(id)] ?? `#${id}`,
      importance: raw.importance,
      notes: raw.notes,
      clusters: c ? {
        k: c.k,
        features: c.features,
        partitions: c.partitions.map((p) => ({ ...p, labels: GG.unpack(p.labels) })),
        xy: GG.unpack(c.xy),
        explained: c.explained,
      } : null,
      similarity: raw.similarity ? GG.unpack(raw.similarity) : null,
      similarityPlane: raw.similarity_plane ? { xy: GG.unpack(raw.similarity_plane.xy), explained: raw.similarity_plane.explained } : null,
    };
    // The attention row of query i for head h of layer l: keys 0..=i, bytes.
    B.attnRow = (P, l, h, i) => {
      const base = (H.offsets[l] + h) * P.tri + (i * (i + 1)) / 2;
      return P.attention.subarray(base, base + i + 1);
    };
    // Head h of layer l's pattern on prompt P as a T×T image, one pixel per
    // (query, key), masked cells grey; h = −1 is the mean of the layer's
    // heads. Cached, so views redraw on hover by scaling it.
    const images = new Map();
    B.patternImage = (P, l, h) => {
      const key = `${P.index}:${l}:${h}`;
      if (images.has(key)) return images.get(key);
      const T = P.T;
      const c = document.createElement('canvas');
      c.width = T;
      c.height = T;
      const ctx = c.getContext('2d');
      const img = ctx.createImageData(T, T);
      const px = img.data;
      const lut = GG.heatLut, masked = GG.maskedRgb;
      const nh = H.nHead[l];
      const heads = h >= 0 ? [h] : Array.from({ length: nh }, (_, k) => k);
      for (let i = 0; i < T; i++) {
        const rows = heads.map((k) => B.attnRow(P, l, k, i));
        for (let j = 0; j < T; j++) {
          const o = 4 * (i * T + j);
          px[o + 3] = 255;
          if (j > i) { px[o] = masked[0]; px[o + 1] = masked[1]; px[o + 2] = masked[2]; continue; }
          let b = rows[0][j];
          if (h < 0) {
            let p = 0;
            for (const r of rows) p += GG.prob(r[j]);
            b = Math.round(255 * Math.sqrt(p / Math.max(1, nh)));
          }
          px[o] = lut[3 * b]; px[o + 1] = lut[3 * b + 1]; px[o + 2] = lut[3 * b + 2];
        }
      }
      ctx.putImageData(img, 0, 0);
      if (images.size > 96) images.delete(images.keys().next().value);
      images.set(key, c);
      return c;
    };
    // The per-head metric with id `id`, or undefined.
    B.metric = (id) => H.metrics.find((m) => m.id === id);
    // The head metrics that describe behaviour, in a fixed order; the rest
    // of `heads.metrics` are storage and wiring facts.
    B.features = ['entropy', 'distance', 'reach', 'sink', 'prev_token', 'diagonal', 'induction', 'contribution', 'importance']
      .map(B.metric).filter(Boolean);
    // The clusters of the best partition, and the partition itself.
    B.bestPartition = c ? B.clusters.partitions.find((p) => p.k === c.k) || B.clusters.partitions[0] : null;
    R.behaviourDecoded = B;
    return B;
  };

  // The prompt and token the state points at, clamped to what exists; the
  // token defaults to the prompt's last, where the next-token prediction is.
  GG.promptOf = (B, s) => B.prompt(s.prompt ?? 0);
  GG.tokenOf = (P, s) => (s.token !== undefined ? GG.clamp(s.token, 0, P.T - 1) : P.T - 1);

  // A <select> of the prompts, bound to the `prompt` key.
  GG.promptSelect = function (B, id) {
    return GG.el('select', { id, 'aria-label': 'prompt',
      onchange: (e) => GG.select({ prompt: Number(e.target.value), token: null }) },
    ...B.prompts.map((p, i) => GG.el('option', { value: String(i), text: `${p.name} · ${p.n_tokens} tokens` })));
  };
})(window.GG);
