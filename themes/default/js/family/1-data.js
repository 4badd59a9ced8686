// The family page's data and its one piece of state, the selected member,
// which lives in the URL hash (#member=N) so a link opens the same view.
'use strict';
(function (GG) {
  const F = GG.family = {};
  F.data = JSON.parse(document.getElementById('ggviz-data').textContent);
  F.listeners = [];
  F.selected = function () {
    const m = /member=(\d+)/.exec(location.hash);
    const i = m ? Number(m[1]) : F.data.members.findIndex((x) => !x.reference);
    return i >= 0 && i < F.data.members.length ? i : 0;
  };
  F.select = function (i) {
    history.replaceState(null, '', '#member=' + i);
    F.listeners.forEach((f) => f(i));
  };
  F.onSelect = function (f) { F.listeners.push(f); };
  // Back/forward and edited links change the hash without a reload.
  window.addEventListener('hashchange', () => {
    const i = F.selected();
    F.listeners.forEach((f) => f(i));
  });
  F.label = function (m) { return m.made_as || m.file_name; };
  F.num = function (v, digits) { return Number(v).toFixed(digits); };
})(window.GG);
