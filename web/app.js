// A minimal live view until the full dashboard lands: subscribe to every
// symbol and apply snapshots and deltas in place.
'use strict';
(function () {
  const rows = new Map();
  const state = new Map();
  const tbody = document.querySelector('#watchlist tbody');
  const status = document.getElementById('status');
  const fields = ['bid', 'ask', 'last', 'volume', 'seq'];

  function row(symbol) {
    let tr = rows.get(symbol);
    if (!tr) {
      tr = document.createElement('tr');
      const th = document.createElement('td');
      th.textContent = symbol;
      tr.appendChild(th);
      for (let i = 0; i < fields.length; i++) tr.appendChild(document.createElement('td'));
      rows.set(symbol, tr);
      tbody.appendChild(tr);
    }
    return tr;
  }

  function apply(m) {
    if (m.type !== 'snapshot' && m.type !== 'delta') return;
    const s = m.type === 'snapshot' ? {} : (state.get(m.symbol) || {});
    Object.assign(s, m);
    state.set(m.symbol, s);
    const tr = row(m.symbol);
    fields.forEach((f, i) => { tr.children[i + 1].textContent = s[f] === undefined ? '' : s[f]; });
  }

  function connect() {
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
    ws.onopen = () => {
      status.textContent = 'live';
      status.className = 'status live';
      ws.send(JSON.stringify({ op: 'subscribe', symbols: ['*'], id: 1 }));
    };
    ws.onmessage = (ev) => {
      const data = JSON.parse(ev.data);
      (Array.isArray(data) ? data : [data]).forEach(apply);
    };
    ws.onclose = () => {
      status.textContent = 'disconnected, retrying…';
      status.className = 'status';
      setTimeout(connect, 1000);
    };
  }
  connect();
})();
