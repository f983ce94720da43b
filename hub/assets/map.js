// Yingji console: the situation map. One <canvas>: division polygons (Web Mercator) coloured by
// the level in force, then markers for incidents, warnings, stations and teams, drawn in one
// pass per style with off-screen markers skipped; redrawn on requestAnimationFrame only when
// something changed. Pan by dragging, zoom with the wheel or the buttons; hovering shows a
// tooltip (textContent), clicking an incident opens its page. Updates come from the stream.
'use strict';

(function () {
  const Y = window.Yingji;
  const canvas = document.getElementById('map');
  if (!Y || !canvas) return;
  const ctx = canvas.getContext('2d');
  const wrap = document.getElementById('map-wrap');
  const tooltip = document.getElementById('tooltip');
  const status = document.getElementById('map-status');
  const tilesUrl = Y.page.tiles || null;

  const LEVEL_FILL = { 1: 'rgba(211,47,47,0.55)', 2: 'rgba(245,124,0,0.55)', 3: 'rgba(251,192,45,0.6)', 4: 'rgba(25,118,210,0.45)' };
  const LEVEL_SOLID = { 1: '#c62828', 2: '#ef6c00', 3: '#f9a825', 4: '#1565c0' };
  const WARNING_COLOUR = { red: '#c62828', orange: '#ef6c00', yellow: '#f9a825', blue: '#1565c0' };
  const TEAM_COLOUR = { available: '#00897b', assigned: '#6a1b9a', unavailable: '#9e9e9e' };

  // Web Mercator to the unit square (x right, y down).
  const MAX_LAT = 85.05112878;
  function project(lon, lat) {
    const la = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat));
    const s = Math.sin((la * Math.PI) / 180);
    return [(lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
  }
  function unproject(x, y) {
    const n = Math.PI - 2 * Math.PI * y;
    return [x * 360 - 180, (180 / Math.PI) * Math.atan(0.5 * (Math.exp(n) - Math.exp(-n)))];
  }

  const state = {
    features: [], // {code, name, depth, path: Path2D (world), bbox: [x0,y0,x1,y1]}
    markers: [], // {kind, id, label, x, y, ...}
    levels: {},
    view: { s: 1024, ox: 0, oy: 0 }, // screen = world * s + o (CSS pixels)
    fitted: false,
    frames: 0,
    lastFrameMs: 0,
    pending: false,
    hover: null,
    tiles: new Map(),
  };

  // Small markers (teams, stations: thousands of them) are stamped into a pixel buffer from
  // pre-computed sprites and the buffer drawn once: no path, no per-marker call into the
  // canvas. Incidents and warnings (few, and on top) are drawn as paths.
  const layer = { canvas: document.createElement('canvas'), ctx: null, img: null, buf: null, w: 0, h: 0 };
  const sprites = new Map();

  function ensureLayer(w, h) {
    if (layer.w === w && layer.h === h) return;
    layer.canvas.width = w;
    layer.canvas.height = h;
    layer.ctx = layer.canvas.getContext('2d');
    layer.img = layer.ctx.createImageData(w, h);
    layer.buf = new Uint32Array(layer.img.data.buffer);
    layer.w = w;
    layer.h = h;
  }

  // An anti-aliased disc or square of radius `r` CSS pixels with a light rim, as RGBA words.
  function sprite(shape, colour, r, dpr) {
    const key = shape + colour + r + '@' + dpr;
    let s = sprites.get(key);
    if (s) return s;
    const rr = r * dpr;
    const size = Math.ceil(2 * rr + 2);
    const c = size / 2;
    const px = new Uint32Array(size * size);
    const n = parseInt(colour.slice(1), 16);
    const [cr, cg, cb] = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const dx = x + 0.5 - c;
        const dy = y + 0.5 - c;
        const d = shape === 'square' ? Math.max(Math.abs(dx), Math.abs(dy)) : Math.sqrt(dx * dx + dy * dy);
        const a = Math.max(0, Math.min(1, rr + 0.5 - d));
        if (a <= 0) continue;
        const rim = d > rr - dpr ? 0.55 : 0;
        const mix = (v) => Math.round(v + (255 - v) * rim);
        px[y * size + x] = ((Math.round(a * 255) << 24) | (mix(cb) << 16) | (mix(cg) << 8) | mix(cr)) >>> 0;
      }
    }
    s = { size, half: Math.floor(size / 2), px };
    sprites.set(key, s);
    return s;
  }

  function stamp(s, x, y) {
    const buf = layer.buf;
    const w = layer.w;
    const x0 = x - s.half;
    const y0 = y - s.half;
    if (x0 < 0 || y0 < 0 || x0 + s.size > w || y0 + s.size > layer.h) return;
    const px = s.px;
    for (let j = 0; j < s.size; j++) {
      let o = (y0 + j) * w + x0;
      const row = j * s.size;
      for (let i = 0; i < s.size; i++, o++) {
        const v = px[row + i];
        if (v !== 0 && v >>> 24 >= buf[o] >>> 24) buf[o] = v;
      }
    }
  }

  function requestDraw() {
    if (state.pending) return;
    state.pending = true;
    requestAnimationFrame(() => {
      state.pending = false;
      draw();
    });
  }

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    const r = wrap.getBoundingClientRect();
    const cw = Math.max(200, Math.floor(r.width));
    const ch = Math.max(200, Math.floor(r.height));
    canvas.width = Math.floor(cw * dpr);
    canvas.height = Math.floor(ch * dpr);
    canvas.style.width = cw + 'px';
    canvas.style.height = ch + 'px';
    state.cw = cw;
    state.ch = ch;
    state.dpr = dpr;
    if (!state.fitted) fit();
    requestDraw();
  }

  function fit() {
    let x0 = Infinity;
    let y0 = Infinity;
    let x1 = -Infinity;
    let y1 = -Infinity;
    const grow = (x, y) => {
      x0 = Math.min(x0, x);
      y0 = Math.min(y0, y);
      x1 = Math.max(x1, x);
      y1 = Math.max(y1, y);
    };
    for (const f of state.features) {
      grow(f.bbox[0], f.bbox[1]);
      grow(f.bbox[2], f.bbox[3]);
    }
    if (!isFinite(x0)) for (const m of state.markers) grow(m.x, m.y);
    if (!isFinite(x0)) {
      // China, when there is nothing to show yet.
      const a = project(73, 54);
      const b = project(135, 18);
      grow(a[0], a[1]);
      grow(b[0], b[1]);
    }
    const w = Math.max(x1 - x0, 1e-6);
    const h = Math.max(y1 - y0, 1e-6);
    const s = Math.min((state.cw || 800) / w, (state.ch || 600) / h) * 0.92;
    state.view.s = s;
    state.view.ox = (state.cw || 800) / 2 - ((x0 + x1) / 2) * s;
    state.view.oy = (state.ch || 600) / 2 - ((y0 + y1) / 2) * s;
    state.fitted = state.features.length > 0 || state.markers.length > 0;
  }

  function drawTiles() {
    if (!tilesUrl) return;
    const v = state.view;
    const z = Math.max(0, Math.min(18, Math.round(Math.log2(v.s / 256))));
    const n = Math.pow(2, z);
    const size = v.s / n;
    const tx0 = Math.max(0, Math.floor(-v.ox / size));
    const ty0 = Math.max(0, Math.floor(-v.oy / size));
    const tx1 = Math.min(n - 1, Math.floor((state.cw - v.ox) / size));
    const ty1 = Math.min(n - 1, Math.floor((state.ch - v.oy) / size));
    if ((tx1 - tx0 + 1) * (ty1 - ty0 + 1) > 64) return;
    for (let tx = tx0; tx <= tx1; tx++) {
      for (let ty = ty0; ty <= ty1; ty++) {
        const key = z + '/' + tx + '/' + ty;
        let img = state.tiles.get(key);
        if (!img) {
          img = new Image();
          img.onload = requestDraw;
          img.src = tilesUrl.replace('{z}', z).replace('{x}', tx).replace('{y}', ty);
          state.tiles.set(key, img);
          if (state.tiles.size > 512) state.tiles.delete(state.tiles.keys().next().value);
        }
        if (img.complete && img.naturalWidth > 0) ctx.drawImage(img, tx * size + v.ox, ty * size + v.oy, size + 0.5, size + 0.5);
      }
    }
  }

  function draw() {
    const t0 = performance.now();
    const v = state.view;
    const dpr = state.dpr || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = '#f4f6f8';
    ctx.fillRect(0, 0, state.cw, state.ch);
    drawTiles();

    // Polygons, shallow divisions first. Each path is kept in screen pixels at the current scale
    // (rebuilt only when the scale changes), so a pan is a translation and strokes stay one
    // pixel wide: the rasterizer's fast case.
    const wx0 = -v.ox / v.s;
    const wy0 = -v.oy / v.s;
    const wx1 = (state.cw - v.ox) / v.s;
    const wy1 = (state.ch - v.oy) / v.s;
    ctx.setTransform(dpr, 0, 0, dpr, dpr * v.ox, dpr * v.oy);
    ctx.lineJoin = 'round';
    for (const f of state.features) {
      const b = f.bbox;
      if (b[2] < wx0 || b[0] > wx1 || b[3] < wy0 || b[1] > wy1) continue;
      if (f.pathScale !== v.s) {
        f.path = scaledPath(f.rings, v.s);
        f.pathScale = v.s;
      }
      const level = state.levels[f.code];
      if (level) {
        ctx.fillStyle = LEVEL_FILL[level] || 'rgba(0,0,0,0.1)';
        ctx.fill(f.path, 'evenodd');
      } else if (f.depth === 0 && !tilesUrl) {
        ctx.fillStyle = '#ffffff';
        ctx.fill(f.path, 'evenodd');
      }
      ctx.lineWidth = f.depth === 0 ? 1.4 : 0.7;
      ctx.strokeStyle = f.depth === 0 ? '#5f6b7a' : '#9aa5b1';
      ctx.stroke(f.path);
    }

    // Markers: one path per style, off-screen ones skipped.
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const groups = new Map();
    const add = (style, shape, x, y, r) => {
      let g = groups.get(style);
      if (!g) {
        g = { style, shape, pts: [] };
        groups.set(style, g);
      }
      g.pts.push(x, y, r);
    };
    let visible = 0;
    for (const m of state.markers) {
      const x = m.x * v.s + v.ox;
      const y = m.y * v.s + v.oy;
      m.sx = x;
      m.sy = y;
      if (x < -10 || y < -10 || x > state.cw + 10 || y > state.ch + 10) {
        m.on = false;
        continue;
      }
      m.on = true;
      visible++;
      switch (m.kind) {
        case 'team':
          add('team:' + (TEAM_COLOUR[m.status] || '#607d8b'), 'circle', x, y, 3.5);
          break;
        case 'station':
          add(m.online ? 'station:#2e7d32' : 'station:#757575', 'square', x, y, 3.5);
          break;
        case 'warning':
          add('warning:' + (WARNING_COLOUR[m.colour] || '#455a64'), 'diamond', x, y, 6);
          break;
        case 'incident':
          add('incident:' + (LEVEL_SOLID[m.level] || '#37474f'), 'incident', x, y, 8);
          break;
      }
    }
    let stamped = false;
    for (const g of groups.values()) {
      if (g.shape !== 'circle' && g.shape !== 'square') continue;
      if (!stamped) {
        ensureLayer(canvas.width, canvas.height);
        layer.buf.fill(0);
        stamped = true;
      }
      const s = sprite(g.shape, g.style.slice(g.style.indexOf(':') + 1), g.pts[2], dpr);
      const p = g.pts;
      for (let i = 0; i < p.length; i += 3) stamp(s, Math.round(p[i] * dpr), Math.round(p[i + 1] * dpr));
    }
    if (stamped) {
      layer.ctx.putImageData(layer.img, 0, 0);
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.drawImage(layer.canvas, 0, 0);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    }
    for (const kind of ['warning', 'incident']) {
      for (const g of groups.values()) {
        if (!g.style.startsWith(kind + ':')) continue;
        ctx.beginPath();
        const p = g.pts;
        for (let i = 0; i < p.length; i += 3) {
          const x = p[i];
          const y = p[i + 1];
          const r = p[i + 2];
          if (g.shape === 'incident') {
            ctx.moveTo(x + r, y);
            ctx.arc(x, y, r, 0, 2 * Math.PI);
          } else {
            ctx.moveTo(x, y - r);
            ctx.lineTo(x + r, y);
            ctx.lineTo(x, y + r);
            ctx.lineTo(x - r, y);
            ctx.closePath();
          }
        }
        ctx.fillStyle = g.style.slice(g.style.indexOf(':') + 1);
        ctx.fill();
        ctx.lineWidth = 2;
        ctx.strokeStyle = '#ffffff';
        ctx.stroke();
      }
    }
    if (state.hover && state.hover.on) {
      ctx.beginPath();
      ctx.arc(state.hover.sx, state.hover.sy, 11, 0, 2 * Math.PI);
      ctx.lineWidth = 2;
      ctx.strokeStyle = '#111';
      ctx.stroke();
    }
    state.visible = visible;
    state.frames++;
    state.lastFrameMs = performance.now() - t0;
  }

  // --- data ---------------------------------------------------------------------------------

  // A path of rings (flat arrays of world x, y) scaled to pixels.
  function scaledPath(rings, scale) {
    const path = new Path2D();
    for (const r of rings) {
      path.moveTo(r[0] * scale, r[1] * scale);
      for (let i = 2; i < r.length; i += 2) path.lineTo(r[i] * scale, r[i + 1] * scale);
      path.closePath();
    }
    return path;
  }

  function buildFeature(f) {
    const rings = [];
    const bbox = [Infinity, Infinity, -Infinity, -Infinity];
    const polys = (f.geometry && f.geometry.coordinates) || [];
    for (const poly of polys) {
      for (const ring of poly) {
        const flat = new Float64Array(ring.length * 2);
        ring.forEach((c, i) => {
          const p = project(c[0], c[1]);
          bbox[0] = Math.min(bbox[0], p[0]);
          bbox[1] = Math.min(bbox[1], p[1]);
          bbox[2] = Math.max(bbox[2], p[0]);
          bbox[3] = Math.max(bbox[3], p[1]);
          flat[2 * i] = p[0];
          flat[2 * i + 1] = p[1];
        });
        rings.push(flat);
      }
    }
    const props = f.properties || {};
    return { code: String(props.code || ''), name: String(props.name || ''), depth: Number(props.depth || 0), rings, bbox, path: null, pathScale: 0 };
  }

  async function loadRegions() {
    const r = await fetch('/console/regions.geojson', { credentials: 'same-origin' });
    if (!r.ok) return;
    const gj = await r.json();
    state.features = (gj.features || []).map(buildFeature);
    state.fitted = false;
    fit();
    requestDraw();
  }

  function setMarkers(list) {
    state.markers = list.map((m) => {
      const p = project(Number(m.lon), Number(m.lat));
      return Object.assign({}, m, { x: p[0], y: p[1] });
    });
    if (!state.fitted) fit();
    requestDraw();
  }

  async function loadPicture() {
    const r = await Y.api('GET', '/console/map.json?exercise=' + Y.exercise);
    if (!r.ok || !r.body) return;
    state.levels = r.body.levels || {};
    setMarkers(r.body.markers || []);
    const counts = {};
    for (const m of state.markers) counts[m.kind] = (counts[m.kind] || 0) + 1;
    if (status)
      status.textContent = ['incident', 'warning', 'station', 'team'].map((k) => Y.w('map.' + k + 's') + ' ' + (counts[k] || 0)).join(' · ');
  }

  // --- interaction ----------------------------------------------------------------------------

  function zoomAt(factor, cx, cy) {
    const v = state.view;
    const s = Math.max(64, Math.min(v.s * factor, 1 << 26));
    const k = s / v.s;
    v.ox = cx - (cx - v.ox) * k;
    v.oy = cy - (cy - v.oy) * k;
    v.s = s;
    requestDraw();
  }

  function nearest(x, y) {
    let best = null;
    let bestD = 12 * 12;
    const rank = { incident: 0, warning: 1, station: 2, team: 3 };
    for (const m of state.markers) {
      if (!m.on) continue;
      const dx = m.sx - x;
      const dy = m.sy - y;
      const d = dx * dx + dy * dy;
      if (d < bestD || (best && d === bestD && rank[m.kind] < rank[best.kind])) {
        best = m;
        bestD = d;
      }
    }
    return best;
  }

  function describe(m) {
    const lines = [];
    switch (m.kind) {
      case 'incident':
        lines.push(Y.w('map.incident') + ': ' + m.label, (m.hazard || '') + ' · ' + (m.level ? Y.w('level.' + m.level) : Y.w('level.none')));
        lines.push(Y.w('inc.reports') + ': ' + m.reports);
        break;
      case 'warning':
        lines.push(Y.w('map.warning') + ': ' + m.label, (m.warning || '') + ' · ' + (m.colour || '') + ' · ' + (m.region || ''));
        break;
      case 'station':
        lines.push((m.online ? Y.w('map.station.on') : Y.w('map.station.off')) + ': ' + m.label, Y.w('node.id') + ': ' + m.node);
        break;
      case 'team':
        lines.push(Y.w('map.team') + ': ' + m.label + ' (' + m.id + ')', Y.w('st.' + m.status) + ' · ' + (m.capabilities || []).join(', '));
        break;
    }
    return lines;
  }

  function showTooltip(m, x, y) {
    if (!m) {
      tooltip.hidden = true;
      return;
    }
    tooltip.replaceChildren(...describe(m).map((l) => Y.el('div', { text: l })));
    tooltip.hidden = false;
    tooltip.style.left = Math.min(x + 14, state.cw - 260) + 'px';
    tooltip.style.top = y + 14 + 'px';
  }

  let drag = null;
  canvas.addEventListener('pointerdown', (e) => {
    drag = { x: e.clientX, y: e.clientY, ox: state.view.ox, oy: state.view.oy, moved: false };
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener('pointermove', (e) => {
    const r = canvas.getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    if (drag) {
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      state.view.ox = drag.ox + dx;
      state.view.oy = drag.oy + dy;
      tooltip.hidden = true;
      requestDraw();
      return;
    }
    const m = nearest(x, y);
    if (m !== state.hover) {
      state.hover = m;
      requestDraw();
    }
    canvas.style.cursor = m && m.kind === 'incident' ? 'pointer' : 'grab';
    showTooltip(m, x, y);
  });
  canvas.addEventListener('pointerup', (e) => {
    const wasDrag = drag && drag.moved;
    drag = null;
    if (wasDrag) return;
    const r = canvas.getBoundingClientRect();
    const m = nearest(e.clientX - r.left, e.clientY - r.top);
    if (m && m.kind === 'incident') window.location.assign('/incidents/' + encodeURIComponent(m.id));
  });
  canvas.addEventListener('pointerleave', () => {
    tooltip.hidden = true;
  });
  canvas.addEventListener(
    'wheel',
    (e) => {
      e.preventDefault();
      const r = canvas.getBoundingClientRect();
      zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
    },
    { passive: false }
  );
  const button = (id, fn) => {
    const b = document.getElementById(id);
    if (b) b.addEventListener('click', fn);
  };
  button('zoom-in', () => zoomAt(1.6, state.cw / 2, state.ch / 2));
  button('zoom-out', () => zoomAt(1 / 1.6, state.cw / 2, state.ch / 2));
  button('zoom-reset', () => {
    state.fitted = false;
    fit();
    requestDraw();
  });
  window.addEventListener('resize', resize);

  // For tests and benchmarks: what is on the map, and how long frames take.
  window.yingjiMap = {
    stats: () => ({
      features: state.features.length,
      markers: state.markers.length,
      visible: state.visible || 0,
      frames: state.frames,
      lastFrameMs: state.lastFrameMs,
      readyMs: state.readyMs || null,
      levels: Object.assign({}, state.levels),
    }),
    markers: () => state.markers.map((m) => ({ kind: m.kind, id: m.id, label: m.label, level: m.level, status: m.status })),
    // Draws `frames` frames while panning (and zooming every tenth), each followed by a read of
    // one pixel, which makes the browser rasterize the frame before the clock stops: the times
    // are the whole cost of a frame, not only of recording it.
    bench: (frames) => {
      const times = [];
      for (let i = 0; i < frames; i++) {
        const t0 = performance.now();
        state.view.ox += i % 2 ? 7 : -5;
        if (i % 10 === 0) zoomAt(i % 20 ? 1.1 : 1 / 1.1, state.cw / 2, state.ch / 2);
        draw();
        ctx.getImageData(0, 0, 1, 1);
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      const mean = times.reduce((a, b) => a + b, 0) / Math.max(1, times.length);
      return { frames, mean, p50: times[Math.floor(times.length / 2)], p95: times[Math.floor(times.length * 0.95)], max: times[times.length - 1], markers: state.markers.length, visible: state.visible };
    },
    // Pans continuously for `frames` animation frames; resolves with the frames per second the
    // browser kept up (the display's rate when drawing keeps up).
    animate: (frames) =>
      new Promise((resolve) => {
        let n = 0;
        let start = 0;
        const step = (t) => {
          if (n === 0) start = t;
          state.view.ox += n % 2 ? 6 : -4;
          draw();
          if (++n < frames) requestAnimationFrame(step);
          else resolve({ frames, fps: ((frames - 1) * 1000) / (t - start), ms_per_frame: (t - start) / (frames - 1) });
        };
        requestAnimationFrame(step);
      }),
    toLonLat: (x, y) => unproject((x - state.view.ox) / state.view.s, (y - state.view.oy) / state.view.s),
  };

  resize();
  Promise.all([loadRegions(), loadPicture()]).then(() => {
    state.fitted = false;
    fit();
    requestDraw();
    state.readyMs = performance.now();
    canvas.dataset.ready = '1';
  });
  const refresh = Y.debounce(loadPicture, 250);
  Y.stream({
    event: (d) => {
      if (d.event && !!d.event.exercise === Y.exercise) refresh();
    },
    assessment: (d) => {
      if (d.assessment && !!d.assessment.exercise === Y.exercise) refresh();
    },
    order: refresh,
    escalation: refresh,
    resources: refresh,
    node: refresh,
    resync: refresh,
  });
})();
