// The one floating tooltip. Content is built from text only.
'use strict';
(function (GG) {
  let box = null;
  GG.tooltip = {
    // rows: [label, value] pairs shown under the title.
    show(clientX, clientY, title, rows) {
      box = box || document.getElementById('tooltip');
      GG.clear(box);
      box.append(GG.el('div', { class: 'tt-title', text: title }));
      if (rows && rows.length) {
        const dl = GG.el('dl');
        for (const [k, v] of rows) dl.append(GG.el('dt', { text: k }), GG.el('dd', { text: v }));
        box.append(dl);
      }
      box.hidden = false;
      const pad = 14;
      const w = box.offsetWidth, h = box.offsetHeight;
      let x = clientX + pad, y = clientY + pad;
      if (x + w > window.innerWidth - 4) x = clientX - w - pad;
      if (y + h > window.innerHeight - 4) y = clientY - h - pad;
      box.style.left = `${Math.max(4, x)}px`;
      box.style.top = `${Math.max(4, y)}px`;
    },
    hide() {
      box = box || document.getElementById('tooltip');
      box.hidden = true;
    },
  };
})(window.GG);
