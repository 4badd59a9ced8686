// Reads the report embedded in the page and builds the indexes every view
// shares. The report is the page's only source of facts about the model.
'use strict';
(function (GG) {
  GG.loadReport = function () {
    const raw = GG.data ?? JSON.parse(document.getElementById('ggviz-data').textContent);
    const R = raw;
    const t = raw.tensors;
    R.tensors = {
      count: t.name.length,
      name: t.name,
      role: t.role,
      roles: t.roles,
      layer: GG.unpack(t.layer),
      type: GG.unpack(t.type),
      shape: t.shape,
      params: GG.unpack(t.params),
      bytes: GG.unpack(t.bytes),
      offset: GG.unpack(t.offset),
    };
    R.tensorByName = new Map(t.name.map((n, i) => [n, i]));

    const g = raw.graph;
    const n = g.nodes;
    R.graph = {
      kinds: g.kinds,
      edgeKinds: g.edge_kinds,
      bands: g.bands,
      centerX: g.center_x,
      count: n.count,
      key: n.key,
      label: n.label,
      kind: GG.unpack(n.kind),
      layer: GG.unpack(n.layer),
      head: GG.unpack(n.head),
      kvGroup: GG.unpack(n.kv_group),
      parent: GG.unpack(n.parent),
      tensor: GG.unpack(n.tensor),
      type: GG.unpack(n.type),
      params: GG.unpack(n.params),
      bytes: GG.unpack(n.bytes),
      band: GG.unpack(n.band),
      x: GG.unpack(n.x),
      y: GG.unpack(n.y),
      edges: {
        count: g.edges.count,
        source: GG.unpack(g.edges.source),
        target: GG.unpack(g.edges.target),
        kind: GG.unpack(g.edges.kind),
      },
      metrics: g.metrics.map((m) => ({ ...m, values: GG.unpack(m.values) })),
    };
    const G = R.graph;
    G.kindIndex = Object.fromEntries(G.kinds.map((k, i) => [k.id, i]));
    G.nodeByKey = new Map(G.key.map((k, i) => [k, i]));
    G.nodeOfTensor = new Int32Array(R.tensors.count).fill(-1);
    for (let i = 0; i < G.count; i++) if (G.tensor[i] >= 0) G.nodeOfTensor[G.tensor[i]] = i;
    G.layerNode = new Int32Array(raw.layers.length).fill(-1);
    const layerKind = G.kindIndex.layer;
    for (let i = 0; i < G.count; i++) if (G.kind[i] === layerKind) G.layerNode[G.layer[i]] = i;

    const h = raw.heads;
    R.heads = {
      nHead: h.n_head,
      nHeadKv: h.n_head_kv,
      offsets: h.offsets,
      count: h.count,
      node: GG.unpack(h.node),
      kvGroup: GG.unpack(h.kv_group),
      metrics: h.metrics.map((m) => ({ ...m, values: GG.unpack(m.values) })),
    };
    return R;
  };
})(window.GG);
