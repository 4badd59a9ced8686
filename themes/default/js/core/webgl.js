// Our own WebGL2 graph renderer: nodes and edges as instanced quads (one
// draw call each), pan and zoom, picking, and a 2D overlay for labels. It
// knows nothing about models; the Architecture view feeds it arrays.
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
  float r = max(a_size * u_cam.z, 1.6) * u_dpr;
  float pad = 3.0 * u_dpr;
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
void main() {
  vec2 a = (a_ends.xy - u_cam.xy) * u_cam.z * u_dpr;
  vec2 b = (a_ends.zw - u_cam.xy) * u_cam.z * u_dpr;
  vec2 d = b - a;
  float len = length(d);
  vec2 n = len > 0.0 ? vec2(-d.y, d.x) / len : vec2(0.0, 1.0);
  float w = u_width * u_dpr * (a_color.a > 0.9 ? 1.8 : 1.0);
  vec2 p = mix(a, b, a_corner.x) + n * a_corner.y * w * 0.5;
  v_color = a_color;
  gl_Position = vec4(p.x / (u_view.x * 0.5), -p.y / (u_view.y * 0.5), 0.0, 1.0);
}`;

  const EDGE_FS = `#version 300 es
precision mediump float;
in vec4 v_color;
out vec4 o;
void main() { o = vec4(v_color.rgb * v_color.a, v_color.a); }`;

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
      const gl = canvas.getContext('webgl2', { antialias: true, alpha: false, premultipliedAlpha: true });
      if (!gl) throw new Error('WebGL2 is not available in this browser');
      this.gl = gl;
      this.cam = { x: 0, y: 0, k: 1 };
      this.background = [0.055, 0.063, 0.082];
      this.ring = [0.96, 0.65, 0.14];
      this.edgeWidth = 1.1;
      this.stats = { frames: 0, drawMs: 0 };
      this.nodes = { n: 0, x: new Float32Array(0), y: new Float32Array(0), size: new Float32Array(0), shape: new Uint8Array(0) };
      this.edgeCount = 0;
      this.onOverlay = null;
      this.onHover = null;
      this.onClick = null;
      this.onDblClick = null;
      this.onCamera = null;
      this.pending = false;

      this.nodeProg = compile(gl, NODE_VS, NODE_FS);
      this.edgeProg = compile(gl, EDGE_VS, EDGE_FS);

      const quad = new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]);
      const seg = new Float32Array([0, -1, 1, -1, 0, 1, 1, 1]);
      this.nodeVao = gl.createVertexArray();
      gl.bindVertexArray(this.nodeVao);
      this.bindStatic(0, quad);
      this.bufPos = this.instanceAttr(1, 2, gl.FLOAT, false);
      this.bufSize = this.instanceAttr(2, 1, gl.FLOAT, false);
      this.bufColor = this.instanceAttr(3, 4, gl.UNSIGNED_BYTE, true);
      this.bufMeta = this.instanceAttr(4, 2, gl.UNSIGNED_BYTE, false);
      this.edgeVao = gl.createVertexArray();
      gl.bindVertexArray(this.edgeVao);
      this.bindStatic(0, seg);
      this.bufEnds = this.instanceAttr(1, 4, gl.FLOAT, false);
      this.bufEdgeColor = this.instanceAttr(2, 4, gl.UNSIGNED_BYTE, true);
      gl.bindVertexArray(null);

      this.bindInput();
      this.resize();
    }

    bindStatic(loc, data) {
      const gl = this.gl;
      const b = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, b);
      gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    }

    instanceAttr(loc, size, type, normalized) {
      const gl = this.gl;
      const b = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, b);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, size, type, normalized, 0, 0);
      gl.vertexAttribDivisor(loc, 1);
      return b;
    }

    upload(buf, data) {
      const gl = this.gl;
      gl.bindBuffer(gl.ARRAY_BUFFER, buf);
      gl.bufferData(gl.ARRAY_BUFFER, data, gl.DYNAMIC_DRAW);
    }

    // Nodes as instances: x, y (world), size (world radius), color (RGBA
    // bytes), shape (0 circle, 1 square, 2 diamond, 3 pill), flags
    // (1 selected, 2 related, 4 dimmed).
    setNodes(n) {
      const pos = new Float32Array(n.n * 2);
      for (let i = 0; i < n.n; i++) { pos[2 * i] = n.x[i]; pos[2 * i + 1] = n.y[i]; }
      this.nodes = n;
      this.upload(this.bufPos, pos);
      this.upload(this.bufSize, n.size);
      this.upload(this.bufColor, n.color);
      this.setNodeFlags(n.flags || new Uint8Array(n.n));
    }

    setNodeFlags(flags) {
      const n = this.nodes.n;
      const meta = new Uint8Array(n * 2);
      for (let i = 0; i < n; i++) { meta[2 * i] = this.nodes.shape[i]; meta[2 * i + 1] = flags[i]; }
      this.nodes.flags = flags;
      this.upload(this.bufMeta, meta);
      this.requestDraw();
    }

    // Edges as instances: ends (x1, y1, x2, y2 per edge) and RGBA bytes;
    // an alpha above 0.9 draws the edge thicker.
    setEdges(ends, color) {
      this.edgeCount = ends.length / 4;
      this.upload(this.bufEnds, ends);
      this.upload(this.bufEdgeColor, color);
      this.requestDraw();
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

    bindInput() {
      const c = this.canvas;
      let drag = null;
      c.addEventListener('wheel', (ev) => {
        ev.preventDefault();
        const p = GG.charts.pointer(ev, c);
        const unit = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? 400 : 1;
        this.zoomAt(p.x, p.y, Math.exp(-ev.deltaY * unit * 0.0015));
      }, { passive: false });
      c.addEventListener('pointerdown', (ev) => {
        if (ev.button !== 0) return;
        drag = { x: ev.clientX, y: ev.clientY, moved: 0, id: ev.pointerId };
        if (c.setPointerCapture) { try { c.setPointerCapture(ev.pointerId); } catch (_) { /* synthetic pointers */ } }
      });
      c.addEventListener('pointermove', (ev) => {
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
      const end = (ev) => {
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
      c.addEventListener('pointercancel', () => { drag = null; });
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
      if (this.edgeCount > 0) {
        const p = this.edgeProg;
        gl.useProgram(p.prog);
        gl.uniform2f(p.u.u_view, W, H);
        gl.uniform3fv(p.u.u_cam, cam);
        gl.uniform1f(p.u.u_dpr, this.dpr);
        gl.uniform1f(p.u.u_width, this.edgeWidth);
        gl.bindVertexArray(this.edgeVao);
        gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, this.edgeCount);
      }
      if (this.nodes.n > 0) {
        const p = this.nodeProg;
        gl.useProgram(p.prog);
        gl.uniform2f(p.u.u_view, W, H);
        gl.uniform3fv(p.u.u_cam, cam);
        gl.uniform1f(p.u.u_dpr, this.dpr);
        gl.uniform3fv(p.u.u_ring, this.ring);
        gl.bindVertexArray(this.nodeVao);
        gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, this.nodes.n);
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
