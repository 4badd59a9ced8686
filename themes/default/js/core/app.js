// Boots the page: reads the report, builds the view tabs and side panels,
// wires search, and starts routing. Views and panels have registered
// themselves (core/views.js) from their own files, loaded before this one.
'use strict';
(function (GG) {
  const views = GG.registry.views;
  const panels = GG.registry.panels;

  function buildSearch(R) {
    const input = document.getElementById('search');
    const list = document.getElementById('search-results');
    const G = R.graph;
    const entries = [];
    for (let i = 0; i < G.count; i++) {
      const kind = G.kinds[G.kind[i]];
      entries.push({ i, key: G.key[i], lower: (G.key[i] + ' ' + G.label[i]).toLowerCase(), kind: kind.label, label: G.label[i] });
    }
    let results = [];
    let active = 0;
    const choose = (r) => {
      list.hidden = true;
      input.value = r.key;
      GG.select(GG.selectionOfNode(R, r.i));
    };
    const render = () => {
      GG.clear(list);
      results.forEach((r, k) => {
        const li = GG.el('li', {
          class: k === active ? 'active' : '', role: 'option', dataset: { key: r.key },
          onmousedown: (ev) => { ev.preventDefault(); choose(r); },
        }, GG.el('span', { class: 'sr-key', text: r.key }), GG.el('span', { class: 'sr-kind', text: r.label === r.key ? r.kind : `${r.label} · ${r.kind}` }));
        list.append(li);
      });
      list.hidden = results.length === 0;
    };
    input.addEventListener('input', () => {
      const q = input.value.trim().toLowerCase();
      active = 0;
      if (!q) { results = []; render(); return; }
      const starts = [], contains = [];
      for (const e of entries) {
        if (e.key.toLowerCase().startsWith(q)) starts.push(e);
        else if (e.lower.includes(q)) contains.push(e);
        if (starts.length >= 40) break;
      }
      results = starts.concat(contains).slice(0, 14);
      render();
    });
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'ArrowDown') { active = Math.min(results.length - 1, active + 1); render(); ev.preventDefault(); }
      else if (ev.key === 'ArrowUp') { active = Math.max(0, active - 1); render(); ev.preventDefault(); }
      else if (ev.key === 'Enter' && results[active]) { choose(results[active]); ev.preventDefault(); }
      else if (ev.key === 'Escape') { list.hidden = true; input.blur(); }
    });
    input.addEventListener('blur', () => { list.hidden = true; });
    input.addEventListener('focus', () => { if (results.length) list.hidden = false; });
    document.addEventListener('keydown', (ev) => {
      if (ev.key === '/' && !GG.typing(ev)) { ev.preventDefault(); input.focus(); input.select(); }
    });
  }

  function boot() {
    const R = GG.loadReport();
    GG.report = R;
    const available = views.filter((v) => !v.requires || R[v.requires] !== undefined)
      .sort((a, b) => a.order - b.order);
    const tabs = document.getElementById('view-tabs');
    const main = document.getElementById('views');
    const roots = new Map();
    const created = new Set();
    for (const v of available) {
      tabs.append(GG.el('button', {
        class: 'tab', role: 'tab', type: 'button', dataset: { view: v.id }, text: v.title,
        onclick: () => GG.select({ view: v.id }),
      }));
      const root = GG.el('section', { class: 'view', id: `view-${v.id}`, hidden: true });
      main.append(root);
      roots.set(v.id, root);
    }
    for (const p of panels.sort((a, b) => a.order - b.order)) {
      const root = document.getElementById(`${p.id}-panel`) || document.getElementById('side').appendChild(GG.el('section', { id: `${p.id}-panel` }));
      p.create(root, R);
    }
    buildSearch(R);

    let current = null;
    GG.onState((s, prev) => {
      const id = available.some((v) => v.id === s.view) ? s.view : available[0].id;
      const view = available.find((v) => v.id === id);
      if (current !== view) {
        if (current) { current.hide(); roots.get(current.id).hidden = true; }
        roots.get(id).hidden = false;
        if (!created.has(id)) { view.create(roots.get(id), R); created.add(id); }
        current = view;
        view.show();
        for (const b of tabs.children) b.setAttribute('aria-selected', String(b.dataset.view === id));
        // On a phone the tabs scroll sideways: keep the chosen one in sight.
        const tab = [...tabs.children].find((b) => b.dataset.view === id);
        if (tab && tabs.scrollWidth > tabs.clientWidth) {
          tabs.scrollLeft = Math.max(0, tab.offsetLeft - (tabs.clientWidth - tab.offsetWidth) / 2);
        }
        for (const a of document.querySelectorAll('#explain .explain')) a.hidden = a.dataset.view !== id;
      }
      for (const v of available) if (created.has(v.id)) v.update(s, prev);
      for (const p of panels) p.update(s, prev);
    });
    GG.startRouting({ view: available[0].id });
    window.addEventListener('resize', () => { if (current && current.resize) current.resize(); });
    document.body.classList.add('ready');
  }

  window.addEventListener('DOMContentLoaded', async () => {
    try {
      // The large arrays arrive deflated; inflate them before any view reads.
      GG.data = await GG.inflatePacked(JSON.parse(document.getElementById('ggviz-data').textContent));
      boot();
    } catch (err) {
      const box = document.getElementById('views');
      box.append(GG.el('p', { class: 'fatal', text: `This page could not start: ${err.message}` }));
      throw err;
    }
  });
})(window.GG);
