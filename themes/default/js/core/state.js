// The one shared selection (view, layer, head, tensor, node, compare layer,
// prompt, token, second head, vocabulary token) and its home in the URL hash. Views never talk to each other: they call
// GG.select() and follow GG.onState(), so choosing something in one view
// highlights it in all, the back button steps through selections, and a
// copied link opens the same state.
'use strict';
(function (GG) {
  // Keys kept in the hash, in the order they are written. `prompt` is the
  // index of a behaviour prompt, `token` a position in it, `vs` a second
  // head ("layer.head") shown beside the selected one, `tok` a vocabulary
  // id (the embeddings view's selected token).
  GG.stateKeys = ['view', 'layer', 'head', 'tensor', 'node', 'cmp', 'prompt', 'token', 'vs', 'tok'];
  const INT_KEYS = new Set(['layer', 'head', 'cmp', 'prompt', 'token', 'tok']);
  const listeners = [];
  let defaults = {};
  GG.state = {};

  function parse(hash) {
    const p = new URLSearchParams(hash.replace(/^#/, ''));
    const s = {};
    for (const k of GG.stateKeys) {
      const v = p.get(k);
      if (v === null || v === '') continue;
      if (INT_KEYS.has(k)) {
        const n = Number.parseInt(v, 10);
        if (Number.isFinite(n)) s[k] = n;
      } else s[k] = v;
    }
    return s;
  }

  function serialize(s) {
    const p = new URLSearchParams();
    for (const k of GG.stateKeys) if (s[k] !== undefined && s[k] !== null) p.set(k, String(s[k]));
    return '#' + p.toString();
  }

  function same(a, b) {
    return GG.stateKeys.every((k) => (a[k] ?? null) === (b[k] ?? null));
  }

  function apply(next) {
    const prev = GG.state;
    GG.state = next;
    for (const fn of listeners) fn(next, prev);
  }

  GG.onState = (fn) => listeners.push(fn);

  // The selection as the address has it, which may be a step ahead of
  // GG.state while a hashchange is pending. Use it to compute the next
  // step from input that can repeat quickly (keys).
  GG.current = () => ({ ...defaults, ...parse(location.hash) });

  // Merges `patch` into the state (null removes a key). A new history
  // entry is made unless `replace` is set (for continuous input such as a
  // slider being dragged).
  GG.select = function (patch, opts = {}) {
    // The address is the truth: a hash set a moment ago may not have been
    // applied yet (hashchange is asynchronous), and must not be lost.
    const next = GG.current();
    for (const [k, v] of Object.entries(patch)) {
      if (v === null || v === undefined) delete next[k];
      else next[k] = v;
    }
    if (same(next, GG.current())) return;
    const hash = serialize(next);
    if (opts.replace) {
      history.replaceState(null, '', hash);
      apply(next);
    } else {
      // The hashchange listener applies it, so back/forward and direct
      // edits of the URL take the same path.
      location.hash = hash;
    }
  };

  GG.startRouting = function (initial) {
    defaults = initial;
    window.addEventListener('hashchange', () => {
      const next = { ...defaults, ...parse(location.hash) };
      if (!same(next, GG.state)) apply(next);
    });
    apply({ ...defaults, ...parse(location.hash) });
  };
})(window.GG);
