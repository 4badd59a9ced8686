// The registry of views and side panels, and the mapping between graph
// nodes and the shared selection. Each view file registers itself here;
// app.js, loaded last, builds the page from what registered.
'use strict';
(function (GG) {
  const views = [];
  const panels = [];
  GG.registry = { views, panels };

  // A view: {id, title, order, requires?, create(root, R), show(), hide(),
  // update(state, prev)}. `requires` names a report section that must be
  // present (behaviour views need inference data); without it the view is
  // left out of the page.
  GG.registerView = (v) => views.push(v);
  // A side panel: {id, order, create(root, R), update(state, prev)}.
  GG.registerPanel = (p) => panels.push(p);

  // The selection that picking node `i` of the graph makes.
  GG.selectionOfNode = function (R, i) {
    const G = R.graph;
    const kind = G.kinds[G.kind[i]].id;
    return {
      node: G.key[i],
      layer: G.layer[i] >= 0 ? G.layer[i] : null,
      head: kind === 'head' ? G.head[i] : null,
      tensor: G.tensor[i] >= 0 ? R.tensors.name[G.tensor[i]] : null,
    };
  };

  // The selection that picking head `h` of layer `l` makes (the head's
  // graph node included, so the architecture view finds it).
  GG.selectionOfHead = (l, h) => ({ layer: l, head: h, node: `blk.${l}.head.${h}`, tensor: null });

  // The graph node the state points at: the node, else the tensor's, else
  // the head's, else the layer's container.
  GG.selectedNode = function (R, s) {
    const G = R.graph;
    if (s.node !== undefined && G.nodeByKey.has(s.node)) return G.nodeByKey.get(s.node);
    if (s.tensor !== undefined && R.tensorByName.has(s.tensor)) return G.nodeOfTensor[R.tensorByName.get(s.tensor)];
    if (s.layer !== undefined && s.head !== undefined) {
      const k = G.nodeByKey.get(`blk.${s.layer}.head.${s.head}`);
      if (k !== undefined) return k;
    }
    if (s.layer !== undefined && s.layer >= 0 && s.layer < G.layerNode.length) return G.layerNode[s.layer];
    return -1;
  };

})(window.GG);
