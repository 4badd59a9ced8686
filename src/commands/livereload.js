// Added by `ggviz serve` to the pages it sends (never to the files of the
// site): reloads the page when the site is rebuilt and shows a failed
// rebuild's error over the page until the next good build.
(() => {
  "use strict";
  const url = "ws://" + location.host + "/__ggviz/livereload";
  let overlay = null;
  const hide = () => {
    if (overlay) overlay.remove();
    overlay = null;
  };
  const show = (message) => {
    hide();
    overlay = document.createElement("div");
    overlay.id = "ggviz-serve-error";
    overlay.setAttribute("role", "alert");
    overlay.style.cssText =
      "position:fixed;inset:0;z-index:2147483647;background:rgba(20,20,24,.92);" +
      "color:#ffd7d7;font:14px/1.5 ui-monospace,monospace;padding:2em;overflow:auto;white-space:pre-wrap";
    const title = document.createElement("strong");
    title.textContent = "ggviz serve: the rebuild failed; this is the last good site.\n\n";
    const body = document.createElement("span");
    body.textContent = message;
    overlay.append(title, body);
    document.body.append(overlay);
  };
  const connect = () => {
    const ws = new WebSocket(url);
    // For tests and the curious: whether the page listens for rebuilds.
    ws.onopen = () => { document.documentElement.dataset.ggvizServe = "connected"; };
    ws.onmessage = (event) => {
      let m;
      try {
        m = JSON.parse(event.data);
      } catch {
        return;
      }
      if (m.type === "reload") location.reload();
      else if (m.type === "error") show(m.message);
      else if (m.type === "ok") hide();
    };
    ws.onclose = () => setTimeout(connect, 1000);
  };
  connect();
})();
