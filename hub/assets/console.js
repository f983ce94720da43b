// Yingji console: the shared helpers, the live feed, the dispatch board and the import form.
// Field text is only ever set with textContent: nothing from the data becomes markup.
'use strict';

(function () {
  const dataEl = document.getElementById('page-data');
  let page = {};
  try {
    page = dataEl ? JSON.parse(dataEl.textContent) : {};
  } catch (e) {
    page = {};
  }
  const words = page.words || {};
  const w = (k) => (Object.prototype.hasOwnProperty.call(words, k) ? words[k] : k);
  const exercise = !!page.exercise;
  const ROLES = ['viewer', 'officer', 'commander', 'admin'];
  const atLeast = (role) => ROLES.indexOf(page.role) >= ROLES.indexOf(role);

  // An element with attributes and children; strings become text nodes.
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') node.className = v;
        else if (k === 'text') node.textContent = String(v);
        else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of [].concat(children === undefined ? [] : children)) {
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  // Beijing time (UTC+8), the platform's time.
  function fmtTime(ms) {
    if (typeof ms !== 'number' || !isFinite(ms)) return '';
    return new Date(ms + 8 * 3600 * 1000).toISOString().slice(0, 19).replace('T', ' ');
  }

  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    const two = (n) => String(n).padStart(2, '0');
    return (h > 0 ? h + ':' + two(m) : String(m)) + ':' + two(sec);
  }

  const LEVEL = { 1: 'Ⅰ', 2: 'Ⅱ', 3: 'Ⅲ', 4: 'Ⅳ' };
  const COLOUR_LEVEL = { red: 1, orange: 2, yellow: 3, blue: 4 };

  // A JSON API call with the session cookie and the CSRF token.
  async function api(method, path, body) {
    const opts = {
      method: method,
      credentials: 'same-origin',
      headers: { Accept: 'application/json', 'X-CSRF-Token': page.csrf || '' },
    };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let json = null;
    try {
      json = await r.json();
    } catch (e) {
      json = null;
    }
    if (r.status === 401) {
      window.location.assign('/login?expired=1&next=' + encodeURIComponent(window.location.pathname));
    }
    return { status: r.status, ok: r.ok, body: json };
  }

  // The hub's live stream; `handlers` by event type. Reconnects by itself (EventSource).
  function stream(handlers) {
    const live = document.getElementById('live');
    const es = new EventSource('/api/v1/stream');
    const mark = (ok) => {
      if (!live) return;
      live.textContent = ok ? '● ' + w('feed.live') : '○ ' + w('feed.offline');
      live.className = 'live ' + (ok ? 'on' : 'off');
    };
    es.addEventListener('hello', () => mark(true));
    es.onopen = () => mark(true);
    es.onerror = () => mark(false);
    for (const [type, fn] of Object.entries(handlers)) {
      es.addEventListener(type, (e) => {
        let d = null;
        try {
          d = JSON.parse(e.data);
        } catch (err) {
          return;
        }
        fn(d);
      });
    }
    return es;
  }

  // Calls `fn` at most once per `ms`, at the end of a burst.
  function debounce(fn, ms) {
    let t = null;
    return function () {
      if (t) clearTimeout(t);
      t = setTimeout(() => {
        t = null;
        fn();
      }, ms);
    };
  }

  window.Yingji = { page, w, el, fmtTime, fmtDuration, api, stream, debounce, exercise, atLeast, LEVEL, COLOUR_LEVEL };

  // ------------------------------------------------------------------------------------------
  // Live feed

  function summarise(ev) {
    const b = ev.body || {};
    switch (ev.kind) {
      case 'report': {
        const f = b.figures || {};
        const parts = Object.keys(f).map((k) => w('fig.' + k) + ' ' + f[k]);
        return [b.stage || '', parts.join(', '), b.text || ''].filter(Boolean).join(' · ');
      }
      case 'warning':
        if (b.type === 'dispatch_refused') return (b.order || '') + ' ' + (b.code || '') + ' ' + (b.reason || '');
        return [b.station || '', b.colour || 'cleared', b.value !== undefined ? b.value + ' / ' + b.threshold : '']
          .filter(Boolean)
          .join(' · ');
      case 'stats': {
        const t = b.totals || {};
        return Object.keys(t)
          .map((k) => w('fig.' + k) + ' ' + t[k])
          .join(', ');
      }
      case 'device':
        return (b.station || '') + ' ' + (b.online ? w('node.online') : w('node.offline'));
      case 'media':
        return (b.content_type || '') + ' ' + (b.size || '') + ' B';
      default:
        return JSON.stringify(b).slice(0, 200);
    }
  }

  function feedItemOfEvent(ev, atMs) {
    const b = ev.body || {};
    return {
      key: 'e:' + ev.id,
      at: atMs,
      node: ev.node || '',
      kind: ev.kind || '',
      level: ev.kind === 'warning' ? COLOUR_LEVEL[b.colour] || null : null,
      region: ev.region || '',
      incident: ev.incident || '',
      detail: summarise(ev),
    };
  }

  function feedItemOfAssessment(a) {
    return {
      key: 'a:' + a.id,
      at: a.at_ms || Date.now(),
      node: '',
      kind: 'assessment',
      level: a.level || null,
      region: a.division || '',
      incident: a.incident || a.subject || '',
      detail: [(a.change || '') + ' ' + (a.level ? LEVEL[a.level] : '—'), a.rule || '', a.reason || ''].filter(Boolean).join(' · '),
    };
  }

  function initFeed() {
    const body = document.getElementById('feed-body');
    if (!body) return;
    const items = new Map();
    const fNode = document.getElementById('f-node');
    const fKind = document.getElementById('f-kind');
    const fLevel = document.getElementById('f-level');
    const render = () => {
      const node = fNode.value;
      const kind = fKind.value;
      const level = fLevel.value ? Number(fLevel.value) : null;
      const rows = Array.from(items.values())
        .filter((i) => (!node || i.node === node) && (!kind || i.kind === kind) && (!level || (i.level && i.level <= level)))
        .sort((a, b) => b.at - a.at)
        .slice(0, 500);
      body.replaceChildren(
        ...rows.map((i) =>
          el('tr', { class: 'k-' + i.kind + (i.level ? ' lvl' + i.level : ''), 'data-key': i.key }, [
            el('td', { text: fmtTime(i.at) }),
            el('td', { text: i.node }),
            el('td', { text: w('kind.' + i.kind) }),
            el('td', { text: i.level ? LEVEL[i.level] : '' }),
            el('td', { text: i.region }),
            el('td', {}, i.incident ? el('a', { href: '/incidents/' + encodeURIComponent(i.incident), text: i.incident }) : ''),
            el('td', { class: 'detail', text: i.detail }),
          ])
        )
      );
    };
    const add = (item) => {
      items.set(item.key, item);
      if (items.size > 2000) {
        const oldest = Array.from(items.values()).sort((a, b) => a.at - b.at).slice(0, items.size - 2000);
        for (const o of oldest) items.delete(o.key);
      }
    };
    [fNode, fKind, fLevel].forEach((s) => s.addEventListener('change', render));
    const load = async () => {
      const [events, assessments] = await Promise.all([
        api('GET', '/api/v1/events?limit=300&exercise=' + exercise),
        api('GET', '/api/v1/assessments?limit=100&exercise=' + exercise),
      ]);
      for (const e of (events.body && events.body.items) || []) add(feedItemOfEvent(e, e.received_ms || e.at_ms));
      for (const a of (assessments.body && assessments.body.items) || []) add(feedItemOfAssessment(a));
      render();
    };
    load();
    const rerender = debounce(render, 100);
    stream({
      event: (d) => {
        const e = d.event;
        if (!e || !!e.exercise !== exercise) return;
        add(feedItemOfEvent(e, Date.now()));
        rerender();
      },
      assessment: (d) => {
        const a = d.assessment;
        if (!a || !!a.exercise !== exercise) return;
        add(feedItemOfAssessment(Object.assign({ at_ms: Date.now() }, a)));
        rerender();
      },
      order: (d) => {
        if (d.exercise === undefined || !!d.exercise !== exercise) return;
        add({
          key: 'o:' + d.order + ':' + d.status,
          at: Date.now(),
          node: d.node || '',
          kind: 'order',
          level: null,
          region: '',
          incident: d.incident || '',
          detail: (d.team || '') + ' · ' + w('st.' + d.status),
        });
        rerender();
      },
      resync: () => load(),
    });
  }

  // ------------------------------------------------------------------------------------------
  // Dispatch board

  const TERMINAL = ['completed', 'declined', 'overdue'];
  const STATE_RANK = { overdue: 0, issued: 1, received: 2, accepted: 3, en_route: 4, on_scene: 5, declined: 6, completed: 7 };

  function orderClass(o, now) {
    if (o.status === 'overdue') return 'bad';
    if (o.status === 'declined') return 'warn';
    if (['accepted', 'en_route', 'on_scene', 'completed'].includes(o.status)) return 'ok';
    const ratio = (now - o.issued_ms) / 1000 / Math.max(1, o.ack_within_s);
    return ratio >= 1 ? 'bad' : ratio >= 0.5 ? 'warn' : 'fresh';
  }

  function initDispatch() {
    const ordersBody = document.getElementById('orders-body');
    const proposalsEl = document.getElementById('proposals');
    const message = document.getElementById('board-message');
    if (!ordersBody || !proposalsEl) return;
    let orders = [];
    let proposals = [];
    let editing = null;
    const say = (text) => {
      message.textContent = text;
      message.hidden = !text;
    };

    const renderOrders = () => {
      const now = Date.now();
      const sorted = orders.slice().sort((a, b) => {
        const urgentA = a.status === 'overdue' || a.escalated_to ? 0 : 1;
        const urgentB = b.status === 'overdue' || b.escalated_to ? 0 : 1;
        return urgentA - urgentB || (STATE_RANK[a.status] || 9) - (STATE_RANK[b.status] || 9) || b.issued_ms - a.issued_ms;
      });
      if (!sorted.length) {
        ordersBody.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'empty', text: w('disp.no_orders') })));
        return;
      }
      ordersBody.replaceChildren(
        ...sorted.map((o) => {
          const end = TERMINAL.includes(o.status) || o.status === 'accepted' ? o.status_ms : now;
          const elapsed = (Math.max(end, o.issued_ms) - o.issued_ms) / 1000;
          const cls = orderClass(o, now);
          const status = [w('st.' + o.status)];
          if (o.escalated_to) status.push(' · ' + w('disp.escalated'));
          if (o.resent) status.push(' ↻' + o.resent);
          return el('tr', { class: 'order ' + cls, 'data-order': o.id, 'data-status': o.status }, [
            el('td', {}, el('a', { href: '/incidents/' + encodeURIComponent(o.incident), text: o.incident })),
            el('td', { text: o.team }),
            el('td', { text: o.capability }),
            el('td', { class: 'status', text: status.join('') }),
            el('td', { class: 'elapsed num', text: fmtDuration(elapsed) }),
            el('td', { class: 'num', text: fmtDuration(o.ack_within_s) }),
          ]);
        })
      );
    };

    const teamRows = (p) =>
      ((p.body && p.body.teams) || []).map((t) =>
        el('tr', {}, [
          el('td', { text: t.team }),
          el('td', { text: t.name }),
          el('td', { text: t.capability }),
          el('td', { class: 'num', text: (t.distance_km || 0).toFixed(1) + ' km' }),
          el('td', { class: 'num', text: (t.eta_min || 0) + ' min' }),
          el('td', { class: 'explain' }, [
            t.explanation || '',
            (t.passed_over || []).length
              ? el('details', {}, [
                  el('summary', { text: '+' + t.passed_over.length }),
                  el('ul', {}, t.passed_over.map((x) => el('li', { text: x.team + ' (' + (x.distance_km || 0).toFixed(1) + ' km): ' + x.why }))),
                ])
              : null,
          ]),
        ])
      );

    const editor = (p) => {
      const teams = ((p.body && p.body.teams) || []).map((t) => ({ team: t.team, capability: t.capability, keep: true }));
      const items = ((p.body && p.body.items) || []).map((i) => ({ item: i.item, stockpile: i.stockpile, qty: i.qty }));
      const form = el('form', { class: 'editor', 'data-proposal': p.id });
      const teamInputs = teams.map((t) => {
        const keep = el('input', { type: 'checkbox', checked: true });
        const team = el('input', { value: t.team, class: 'team-input', 'aria-label': w('disp.team') });
        return { t, keep, team, row: el('div', { class: 'edit-row' }, [keep, team, ' ' + t.capability]) };
      });
      const itemInputs = items.map((i) => {
        const qty = el('input', { type: 'number', min: 0, value: i.qty, class: 'qty-input', 'aria-label': i.item });
        return { i, qty, row: el('div', { class: 'edit-row' }, [i.item + ' @ ' + i.stockpile + ' ', qty]) };
      });
      form.append(...teamInputs.map((x) => x.row), ...itemInputs.map((x) => x.row));
      form.append(
        el('button', { type: 'submit', class: 'save', text: w('disp.save') }),
        el('button', {
          type: 'button',
          text: w('disp.cancel'),
          onclick: () => {
            editing = null;
            renderProposals();
          },
        })
      );
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const body = {
          teams: teamInputs.filter((x) => x.keep.checked).map((x) => ({ team: x.team.value.trim(), capability: x.t.capability })),
          items: itemInputs.map((x) => ({ item: x.i.item, stockpile: x.i.stockpile, qty: Number(x.qty.value) })).filter((x) => x.qty > 0),
        };
        const r = await api('PATCH', '/api/v1/proposals/' + encodeURIComponent(p.id), body);
        if (!r.ok) say(w('disp.refused') + ': ' + ((r.body && r.body.message) || r.status));
        else say('');
        editing = null;
        load();
      });
      return form;
    };

    const actions = (p) => {
      if (!atLeast('officer')) return null;
      const reason = el('input', { class: 'reason', placeholder: w('disp.reason_prompt'), 'aria-label': w('disp.reason_prompt') });
      const act = async (method, path, body) => {
        const r = await api(method, path, body);
        if (!r.ok) say(w('disp.refused') + ': ' + ((r.body && r.body.message) || r.status));
        else say('');
        load();
      };
      return el('div', { class: 'actions' }, [
        el('button', {
          type: 'button',
          class: 'approve primary',
          'data-proposal': p.id,
          text: w('disp.approve'),
          onclick: (e) => {
            e.target.disabled = true;
            act('POST', '/api/v1/proposals/' + encodeURIComponent(p.id) + '/approve');
          },
        }),
        el('button', {
          type: 'button',
          class: 'edit',
          text: w('disp.edit'),
          onclick: () => {
            editing = p.id;
            renderProposals();
          },
        }),
        reason,
        el('button', {
          type: 'button',
          class: 'reject',
          text: w('disp.reject'),
          onclick: () => {
            if (!reason.value.trim()) {
              reason.focus();
              return;
            }
            act('POST', '/api/v1/proposals/' + encodeURIComponent(p.id) + '/reject', { reason: reason.value.trim() });
          },
        }),
      ]);
    };

    const renderProposals = () => {
      if (!proposals.length) {
        proposalsEl.replaceChildren(el('p', { class: 'empty', text: w('disp.none') }));
        return;
      }
      proposalsEl.replaceChildren(
        ...proposals.map((p) => {
          const b = p.body || {};
          const head = [
            el('a', { href: '/incidents/' + encodeURIComponent(p.incident), text: p.incident }),
            ' · ' + p.region + ' · ' + fmtTime(p.created_ms),
          ];
          if (p.escalated_from) head.push(el('span', { class: 'badge lv1', text: w('disp.escalated') }));
          const parts = [el('h3', {}, head)];
          parts.push(
            el('table', { class: 'grid' }, [
              el('thead', {}, el('tr', {}, ['disp.team', 'res.name', 'disp.capability', 'km', 'ETA', 'feed.detail'].map((k) => el('th', { text: w(k) })))),
              el('tbody', {}, teamRows(p)),
            ])
          );
          if ((b.items || []).length)
            parts.push(el('ul', { class: 'items' }, b.items.map((i) => el('li', { text: i.item + ' × ' + i.qty + ' @ ' + i.stockpile + ' — ' + (i.explanation || '') }))));
          if ((b.shortfalls || []).length)
            parts.push(el('ul', { class: 'shortfalls' }, b.shortfalls.map((s) => el('li', { text: w('disp.shortfall') + ': ' + (s.explanation || s.what) }))));
          if ((b.notes || []).length) parts.push(el('ul', { class: 'notes' }, b.notes.map((n) => el('li', { text: String(n) }))));
          parts.push(editing === p.id ? editor(p) : actions(p));
          return el('article', { class: 'proposal', 'data-proposal': p.id }, parts);
        })
      );
    };

    const load = async () => {
      const [o, p] = await Promise.all([
        api('GET', '/api/v1/orders?limit=500&exercise=' + exercise),
        api('GET', '/api/v1/proposals?status=proposed&limit=500&exercise=' + exercise),
      ]);
      orders = (o.body && o.body.items) || [];
      proposals = (p.body && p.body.items) || [];
      renderOrders();
      if (editing === null) renderProposals();
    };
    load();
    const reload = debounce(load, 150);
    setInterval(renderOrders, 1000);
    stream({ order: reload, proposal: reload, escalation: reload, assessment: reload, resources: reload, resync: reload });
  }

  // ------------------------------------------------------------------------------------------
  // Resources: a file chosen for import is read into the text area.

  function initImport() {
    const file = document.getElementById('import-file');
    const text = document.getElementById('import-text');
    if (!file || !text) return;
    file.addEventListener('change', () => {
      const f = file.files && file.files[0];
      if (!f) return;
      const reader = new FileReader();
      reader.onload = () => {
        text.value = String(reader.result || '');
      };
      reader.readAsText(f);
    });
  }

  const which = document.body && document.body.dataset.page;
  if (which === 'feed') initFeed();
  if (which === 'dispatch') initDispatch();
  if (which === 'resources') initImport();
})();
