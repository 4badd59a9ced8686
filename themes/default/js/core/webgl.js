// Our own WebGL2 graph renderer: every node and every edge is a quad, all
// nodes in one draw call and all edges in another; pan and zoom, picking,
// and a 2D overlay for labels. It knows nothing about models; the
// Architecture view feeds it arrays.
//
// The quads are batched (each node's attributes repeated for its six
// vertices) rather than instanced: SwiftShader, the software WebGL of
// headless and GPU-less machines, pays about 10 µs per instance, which made
// the 26,000 instances of an 80-layer, 64-head model cost 300 ms a frame;
// batched, the same frame costs a few milliseconds there and on GPUs alike.
'use strict';
(function (GG) {
  const NODE_VS = `#version 300 es
layout(location=0) in vec2 a_corner;
layout(location=1) in vec2 a_pos;
layout(location=2) in float a_size;
layout(location=3) in vec4 a_color;
layout(location=4) in vec2 a_meta;
uniform vec2 u_view;
uniform vec3 u_cam;
uniform float u_dpr;
out vec2 v_p;
out vec4 v_color;
out float v_r;
flat out int v_shape;
flat out int v_flags;
void main() {
  v_shape = int(a_meta.x + 0.5);
  v_flags = int(a_meta.y + 0.5);
  float r = max(a_size * u_cam.z, 1.4) * u_dpr;
  // Room for the selection ring only where there is one: every pixel of a
  // quad is shaded, and zoomed out there are thousands of quads.
  float pad = ((v_flags & 3) != 0 ? 3.0 : 1.0) * u_dpr;
  vec2 ext = vec2(v_shape == 3 ? r * 4.0 : r, r) + pad;
  vec2 c = (a_pos - u_cam.xy) * u_cam.z * u_dpr;
  vec2 p = c + a_corner * ext;
  v_p = a_corner * ext;
  v_r = r;
  v_color = a_color;
  gl_Position = vec4(p.x / (u_view.x * 0.5), -p.y / (u_view.y * 0.5), 0.0, 1.0);
}`;

  const NODE_FS = `#version 300 es
precision highp float;
in vec2 v_p;
in vec4 v_color;
in float v_r;
flat in int v_shape;
flat in int v_flags;
uniform float u_dpr;
uniform vec3 u_ring;
out vec4 o;
float box(vec2 p, vec2 b, float rr) {
  vec2 q = abs(p) - b + rr;
  return length(max(q, 0.0)) + min(max(q.x, q.y), 0.0) - rr;
}
void main() {
  float r = v_r;
  float d;
  if (v_shape == 1) d = box(v_p, vec2(r * 0.82), r * 0.22);
  else if (v_shape == 2) d = (abs(v_p.x) + abs(v_p.y)) * 0.7071 - r * 0.78;
  else if (v_shape == 3) d = box(v_p, vec2(r * 4.0, r * 0.8), r * 0.5);
  else d = length(v_p) - r;
  float aa = u_dpr;
  float fill = 1.0 - smoothstep(-aa * 0.5, aa * 0.5, d);
  vec4 col = vec4(v_color.rgb, 1.0);
  float alpha = fill;
  if ((v_flags & 3) != 0) {
    float w = ((v_flags & 1) != 0 ? 2.5 : 1.5) * u_dpr;
    float ring = smoothstep(-aa, 0.0, d) * (1.0 - smoothstep(w - aa, w, d));
    vec3 rc = (v_flags & 1) != 0 ? u_ring : vec3(0.95);
    col.rgb = mix(col.rgb, rc, ring);
    alpha = max(fill, ring);
  }
  if ((v_flags & 4) != 0) alpha *= 0.18;
  if (alpha <= 0.002) discard;
  o = vec4(col.rgb * alpha, alpha);
}`;

  const EDGE_VS = `#version 300 es
layout(location=0) in vec2 a_corner;
layout(location=1) in vec4 a_ends;
layout(location=2) in vec4 a_color;
uniform vec2 u_view;
uniform vec3 u_cam;
uniform float u_dpr;
uniform float u_width;
out vec4 v_color;
out float v_across;
out float v_half;
void main() {
  vec2 a = (a_ends.xy - u_cam.xy) * u_cam.z * u_dpr;
  vec2 b = (a_ends.zw - u_cam.xy) * u_cam.z * u_dpr;
  vec2 d = b - a;
  float len = length(d);
  vec2 n = len > 0.0 ? vec2(-d.y, d.x) / len : vec2(0.0, 1.0);
  float w = u_width * u_dpr * (a_color.a > 0.9 ? 1.8 : 1.0);
  // One pixel of fringe each side, faded in the fragment shader: our own
  // antialiasing, much cheaper than multisampling in software WebGL.
  float half_w = w * 0.5 + 1.0;
  vec2 p = mix(a, b, a_corner.x) + n * a_corner.y * half_w;
  v_across = a_corner.y * half_w;
  v_half = w * 0.5;
  v_color = a_color;
  gl_Position = vec4(p.x / (u_view.x * 0.5), -p.y / (u_view.y * 0.5), 0.0, 1.0);
}`;

  const EDGE_FS = `#version 300 es
precision mediump float;
in vec4 v_color;
in float v_across;
in float v_half;
out vec4 o;
void main() {
  float a = v_color.a * clamp(v_half + 0.5 - abs(v_across), 0.0, 1.0);
  o = vec4(v_color.rgb * a, a);
}`;

  function compile(gl, vs, fs) {
    const prog = gl.createProgram();
    for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
      const s = gl.createShader(type);
      gl.shaderSource(s, src);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
      gl.attachShader(prog, s);
    }
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    const u = {};
    for (const name of ['u_view', 'u_cam', 'u_dpr', 'u_ring', 'u_width']) u[name] = gl.getUniformLocation(prog, name);
    return { prog, u };
  }

  class GraphRenderer {
    constructor(canvas, overlay) {
      this.canvas = canvas;
      this.overlay = overlay;
      const gl = canvas.getContext('webgl2', { antialias: false, alpha: false, premultipliedAlpha: true });
      if (!gl) throw new Error('WebGL2 is not available in this browser');
      this.gl = gl;
      this.cam = { x: 0, y: 0, k: 1 };
      this.background = [0.055, 0.063, 0.082];
      this.ring = [0.96, 0.65, 0.14];
      this.edgeWidth = 1.1;
      this.stats = { frames: 0, drawMs: 0 };
      this.nodes = { n: 0, x: new Float32Array(0), y: new Float32Array(0), size: new Float32Array(0), shape: new Uint8Array(0) };
      this.edgeCount = 0;
      this.edgeGroups = { long: 0, coarse: 0, fine: 0, reach: 0 };
      this.edgeTop = new Float32Array(0);
      this.nodeOrder = [];
      this.nodeY = new Float32Array(0);
      this.nodeReach = 0;
      // Below this zoom, detail edges are finer than a pixel apart and are
      // left out.
      this.detailZoom = 0;
      this.onOverlay = null;
      this.onHover = null;
      this.onClick = null;
      this.onDblClick = null;
      this.onCamera = null;
      this.pending = false;

      this.nodeProg = compile(gl, NODE_VS, NODE_FS);
      this.edgeProg = compile(gl, EDGE_VS, EDGE_FS);

      this.nodeVao = gl.createVertexArray();
      gl.bindVertexArray(this.nodeVao);
      this.bufCorner = this.attr(0, 2, gl.FLOAT, false);
      this.bufPos = this.attr(1, 2, gl.FLOAT, false);
      this.bufSize = this.attr(2, 1, gl.FLOAT, false);
      this.bufColor = this.attr(3, 4, gl.UNSIGNED_BYTE, true);
      this.bufMeta = this.attr(4, 2, gl.UNSIGNED_BYTE, false);
      this.edgeVao = gl.createVertexArray();
      gl.bindVertexArray(this.edgeVao);
      this.bufSeg = this.attr(0, 2, gl.FLOAT, false);
      this.bufEnds = this.attr(1, 4, gl.FLOAT, false);
      this.bufEdgeColor = this.attr(2, 4, gl.UNSIGNED_BYTE, true);
      gl.bindVertexArray(null);

      this.bindInput();
      this.resize();
    }

    attr(loc, size, type, normalized) {
      const gl = this.gl;
      const b = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, b);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, size, type, normalized, 0, 0);
      return b;
    }

    upload(buf, data) {
      const gl = this.gl;
      gl.bindBuffer(gl.ARRAY_BUFFER, buf);
      gl.bufferData(gl.ARRAY_BUFFER, data, gl.DYNAMIC_DRAW);
    }

    // Repeats each item's `k` values for the six vertices of its quad.
    static six(src, k) {
      const out = new src.constructor(src.length * 6);
      const n = src.length / k;
      for (let i = 0; i < n; i++) {
        for (let v = 0; v < 6; v++) {
          const o = (i * 6 + v) * k;
          for (let c = 0; c < k; c++) out[o + c] = src[i * k + c];
        }
      }
      return out;
    }

    // The corners of `n` quads, two triangles each, from a 4-corner pattern.
    static corners(n, pattern) {
      const order = [0, 1, 2, 2, 1, 3];
      const out = new Float32Array(n * 12);
      for (let i = 0; i < n; i++) {
        for (let v = 0; v < 6; v++) {
          out[i * 12 + v * 2] = pattern[order[v] * 2];
          out[i * 12 + v * 2 + 1] = pattern[order[v] * 2 + 1];
        }
      }
      return out;
    }

    // Nodes: x, y (world), size (world radius), color (RGBA bytes), shape
    // (0 circle, 1 square, 2 diamond, 3 pill), flags (1 selected,
    // 2 related, 4 dimmed). Indices in and out (flags, pick) are the
    // caller's; inside, nodes are sorted by y so a frame draws only the
    // rows on screen.
    setNodes(n) {
      const order = Array.from({ length: n.n }, (_, i) => i).sort((a, b) => n.y[a] - n.y[b] || a - b);
      const pos = new Float32Array(n.n * 2), size = new Float32Array(n.n), color = new Uint8Array(n.n * 4);
      const ys = new Float32Array(n.n);
      let reach = 0;
      order.forEach((i, k) => {
        pos[2 * k] = n.x[i]; pos[2 * k + 1] = n.y[i];
        ys[k] = n.y[i];
        size[k] = n.size[i];
        color.set(n.color.subarray(4 * i, 4 * i + 4), 4 * k);
        reach = Math.max(reach, n.size[i]);
      });
      this.nodes = n;
      this.nodeOrder = order;
      this.nodeY = ys;
      this.nodeReach = reach;
      this.upload(this.bufCorner, GraphRenderer.corners(n.n, [-1, -1, 1, -1, -1, 1, 1, 1]));
      this.upload(this.bufPos, GraphRenderer.six(pos, 2));
      this.upload(this.bufSize, GraphRenderer.six(size, 1));
      this.upload(this.bufColor, GraphRenderer.six(color, 4));
      this.setNodeFlags(n.flags || new Uint8Array(n.n));
    }

    setNodeFlags(flags) {
      const n = this.nodes.n;
      const meta = new Uint8Array(n * 2);
      this.nodeOrder.forEach((i, k) => { meta[2 * k] = this.nodes.shape[i]; meta[2 * k + 1] = flags[i]; });
      this.nodes.flags = flags;
      this.upload(this.bufMeta, GraphRenderer.six(meta, 2));
      this.requestDraw();
    }

    // Edges: ends (x1, y1, x2, y2 per edge) and RGBA bytes; an alpha above
    // 0.9 draws the edge thicker. Edges flagged in `detail` are drawn only
    // at zooms of `detailZoom` and above. Inside, edges are grouped (long
    // ones always drawn, then short coarse, then short detail edges) and
    // sorted by their top, so a frame draws only those that can be on screen.
    setEdges(ends, color, detail) {
      const m = ends.length / 4;
      const top = (e) => Math.min(ends[4 * e + 1], ends[4 * e + 3]);
      const span = (e) => Math.abs(ends[4 * e + 1] - ends[4 * e + 3]);
      const LONG = 2500;
      const long = [], coarse = [], fine = [];
      for (let e = 0; e < m; e++) {
        if (span(e) > LONG) long.push(e);
        else if (detail && detail[e]) fine.push(e);
        else coarse.push(e);
      }
      const byTop = (a, b) => top(a) - top(b) || a - b;
      coarse.sort(byTop);
      fine.sort(byTop);
      const order = long.concat(coarse, fine);
      const sorted = new Float32Array(m * 4), cols = new Uint8Array(m * 4), tops = new Float32Array(m);
      order.forEach((e, k) => {
        sorted.set(ends.subarray(4 * e, 4 * e + 4), 4 * k);
        cols.set(color.subarray(4 * e, 4 * e + 4), 4 * k);
        tops[k] = top(e);
      });
      this.edgeCount = m;
      this.edgeTop = tops;
      this.edgeGroups = { long: long.length, coarse: coarse.length, fine: fine.length, reach: LONG };
      this.upload(this.bufSeg, GraphRenderer.corners(m, [0, -1, 1, -1, 0, 1, 1, 1]));
      this.upload(this.bufEnds, GraphRenderer.six(sorted, 4));
      this.upload(this.bufEdgeColor, GraphRenderer.six(cols, 4));
      this.requestDraw();
    }

    // First index in sorted `ys` between `from` and `to` whose value is >= y.
    static lowerBound(ys, y, from, to) {
      let lo = from, hi = to;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (ys[mid] < y) lo = mid + 1; else hi = mid;
      }
      return lo;
    }

    // Calls fn(i) for each node (caller's index) in the rows on screen.
    forVisibleNodes(fn) {
      const [y0, y1] = this.visibleY();
      const pad = this.nodeReach + 8 / this.cam.k;
      const a = GraphRenderer.lowerBound(this.nodeY, y0 - pad, 0, this.nodes.n);
      const b = GraphRenderer.lowerBound(this.nodeY, y1 + pad, a, this.nodes.n);
      for (let k = a; k < b; k++) if (fn(this.nodeOrder[k]) === false) return;
    }

    // The world y range on screen.
    visibleY() {
      return [this.cam.y - this.cssH / 2 / this.cam.k, this.cam.y + this.cssH / 2 / this.cam.k];
    }

    resize() {
      const dpr = window.devicePixelRatio || 1;
      const w = this.canvas.clientWidth || 1, h = this.canvas.clientHeight || 1;
      this.cssW = w;
      this.cssH = h;
      for (const c of [this.canvas, this.overlay]) {
        c.width = Math.round(w * dpr);
        c.height = Math.round(h * dpr);
      }
      this.dpr = dpr;
      this.requestDraw();
    }

    screenToWorld(sx, sy) {
      return [this.cam.x + (sx - this.cssW / 2) / this.cam.k, this.cam.y + (sy - this.cssH / 2) / this.cam.k];
    }

    worldToScreen(wx, wy) {
      return [(wx - this.cam.x) * this.cam.k + this.cssW / 2, (wy - this.cam.y) * this.cam.k + this.cssH / 2];
    }

    // Shows the world rectangle [x0, x1] × [y0, y1] with a margin.
    fit(x0, y0, x1, y1, margin = 40) {
      const w = Math.max(1, x1 - x0), h = Math.max(1, y1 - y0);
      this.cam.k = Math.min((this.cssW - 2 * margin) / w, (this.cssH - 2 * margin) / h);
      this.cam.x = (x0 + x1) / 2;
      this.cam.y = (y0 + y1) / 2;
      this.cameraChanged();
    }

    zoomAt(sx, sy, factor) {
      const [wx, wy] = this.screenToWorld(sx, sy);
      this.cam.k = GG.clamp(this.cam.k * factor, 0.004, 40);
      this.cam.x = wx - (sx - this.cssW / 2) / this.cam.k;
      this.cam.y = wy - (sy - this.cssH / 2) / this.cam.k;
      this.cameraChanged();
    }

    panBy(dx, dy) {
      this.cam.x -= dx / this.cam.k;
      this.cam.y -= dy / this.cam.k;
      this.cameraChanged();
    }

    cameraChanged() {
      if (this.onCamera) this.onCamera(this.cam);
      this.requestDraw();
    }

    // The instance under the screen point, or -1. Hidden nodes are not
    // instances, so they cannot be picked.
    pick(sx, sy) {
      const [wx, wy] = this.screenToWorld(sx, sy);
      const n = this.nodes;
      const k = this.cam.k;
      let best = -1, bestD = Infinity;
      for (let i = 0; i < n.n; i++) {
        const r = Math.max(n.size[i], 1.6 / k) + 3 / k;
        const w = n.shape[i] === 3 ? r * 4 : r;
        const dx = n.x[i] - wx, dy = n.y[i] - wy;
        if (Math.abs(dx) > w || Math.abs(dy) > r) continue;
        const d = n.shape[i] === 3 ? Math.abs(dy) : dx * dx + dy * dy;
        if (d < bestD) { bestD = d; best = i; }
      }
      return best;
    }

    // Mouse, pen and touch through pointer events: one pointer drags to
    // pan (a short press is a click), two pointers pinch to zoom about
    // their midpoint and pan with it; the wheel zooms.
    bindInput() {
      const c = this.canvas;
      let drag = null;
      const touches = new Map();
      let pinch = null;
      const local = (x, y) => {
        const r = c.getBoundingClientRect();
        return { x: x - r.left, y: y - r.top };
      };
      const pinchState = () => {
        const [a, b] = [...touches.values()];
        return {
          d: Math.max(Math.hypot(a.x - b.x, a.y - b.y), 1),
          mx: (a.x + b.x) / 2,
          my: (a.y + b.y) / 2,
        };
      };
      c.addEventListener('wheel', (ev) => {
        ev.preventDefault();
        const p = GG.charts.pointer(ev, c);
        const unit = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? 400 : 1;
        this.zoomAt(p.x, p.y, Math.exp(-ev.deltaY * unit * 0.0015));
      }, { passive: false });
      c.addEventListener('pointerdown', (ev) => {
        if (ev.button !== 0) return;
        touches.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
        if (c.setPointerCapture) { try { c.setPointerCapture(ev.pointerId); } catch (_) { /* synthetic pointers */ } }
        if (touches.size === 2) {
          // A second finger turns the drag into a pinch, never a click.
          drag = null;
          pinch = pinchState();
          if (this.onHover) this.onHover(-1, ev);
          return;
        }
        if (touches.size === 1) drag = { x: ev.clientX, y: ev.clientY, moved: 0, id: ev.pointerId };
      });
      c.addEventListener('pointermove', (ev) => {
        if (touches.has(ev.pointerId)) touches.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
        if (pinch && touches.size === 2) {
          const next = pinchState();
          const m = local(next.mx, next.my);
          this.panBy(next.mx - pinch.mx, next.my - pinch.my);
          this.zoomAt(m.x, m.y, next.d / pinch.d);
          pinch = next;
          return;
        }
        if (drag) {
          const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
          drag.moved += Math.abs(dx) + Math.abs(dy);
          drag.x = ev.clientX;
          drag.y = ev.clientY;
          this.panBy(dx, dy);
          if (drag.moved > 3) { c.classList.add('dragging'); if (this.onHover) this.onHover(-1, ev); }
          return;
        }
        if (this.onHover) {
          const p = GG.charts.pointer(ev, c);
          this.onHover(this.pick(p.x, p.y), ev);
        }
      });
      const release = (ev) => {
        touches.delete(ev.pointerId);
        if (touches.size < 2) pinch = null;
      };
      const end = (ev) => {
        release(ev);
        if (!drag) return;
        const clicked = drag.moved <= 3;
        drag = null;
        c.classList.remove('dragging');
        if (clicked && this.onClick) {
          const p = GG.charts.pointer(ev, c);
          this.onClick(this.pick(p.x, p.y), ev);
        }
      };
      c.addEventListener('pointerup', end);
      c.addEventListener('pointercancel', (ev) => { release(ev); drag = null; });
      c.addEventListener('pointerleave', (ev) => { if (!drag && this.onHover) this.onHover(-1, ev); });
      c.addEventListener('dblclick', (ev) => {
        if (!this.onDblClick) return;
        const p = GG.charts.pointer(ev, c);
        this.onDblClick(this.pick(p.x, p.y), ev);
      });
    }

    requestDraw() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }

    draw() {
      const t0 = performance.now();
      const gl = this.gl;
      const W = this.canvas.width, H = this.canvas.height;
      gl.viewport(0, 0, W, H);
      const [r, g, b] = this.background;
      gl.clearColor(r, g, b, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
      const cam = [this.cam.x, this.cam.y, this.cam.k];
      const [y0, y1] = this.visibleY();
      // Instances whose sorted key lies in [lo, hi], inside [from, from + n).
      const range = (ys, from, n, lo, hi) => {
        const a = GraphRenderer.lowerBound(ys, lo, from, from + n);
        return [a, GraphRenderer.lowerBound(ys, hi, a, from + n) - a];
      };
      if (this.edgeCount > 0) {
        const p = this.edgeProg;
        gl.useProgram(p.prog);
        gl.uniform2f(p.u.u_view, W, H);
        gl.uniform3fv(p.u.u_cam, cam);
        gl.uniform1f(p.u.u_dpr, this.dpr);
        gl.uniform1f(p.u.u_width, this.edgeWidth);
        gl.bindVertexArray(this.edgeVao);
        const g = this.edgeGroups;
        const spans = [[0, g.long]];
        spans.push(range(this.edgeTop, g.long, g.coarse, y0 - g.reach, y1));
        if (this.cam.k >= this.detailZoom) spans.push(range(this.edgeTop, g.long + g.coarse, g.fine, y0 - g.reach, y1));
        for (const [first, count] of spans) if (count > 0) gl.drawArrays(gl.TRIANGLES, 6 * first, 6 * count);
      }
      if (this.nodes.n > 0) {
        const p = this.nodeProg;
        gl.useProgram(p.prog);
        gl.uniform2f(p.u.u_view, W, H);
        gl.uniform3fv(p.u.u_cam, cam);
        gl.uniform1f(p.u.u_dpr, this.dpr);
        gl.uniform3fv(p.u.u_ring, this.ring);
        gl.bindVertexArray(this.nodeVao);
        const pad = this.nodeReach + 8 / this.cam.k;
        const [first, count] = range(this.nodeY, 0, this.nodes.n, y0 - pad, y1 + pad);
        if (count > 0) gl.drawArrays(gl.TRIANGLES, 6 * first, 6 * count);
      }
      gl.bindVertexArray(null);
      const ctx = this.overlay.getContext('2d');
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
      ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
      if (this.onOverlay) this.onOverlay(ctx, this);
      this.stats.frames++;
      this.stats.drawMs = performance.now() - t0;
    }
  }

  GG.GraphRenderer = GraphRenderer;
})(window.GG);
