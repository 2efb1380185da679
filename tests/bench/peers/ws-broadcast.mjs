// ws-broadcast.mjs: the "plain Node ws" peer of the benchmark suite.
//
//   node ws-broadcast.mjs [--host 127.0.0.1] [--port-file FILE]
//
// Listens for WebSocket clients (any path) and for JSONL tick producers on a
// TCP port, both on 127.0.0.1 and port 0; FILE gets "ws=PORT feed=PORT".
// A client subscribes with the publisher's own op,
//   {"op":"subscribe","symbols":["S0001","S0002"]}   (or ["*"] for all),
// and from then on receives every tick of those symbols, one tick per text
// message, exactly as the producer wrote the line. Nothing is conflated and
// nothing is dropped: a slow client's ticks queue up in ws's send buffer.
//
// This is the broadcast pattern of the ws README (look up the clients, call
// send() on each) with per-symbol rooms, the library's default options
// (perMessageDeflate off on the server) and one Buffer per tick shared by
// all its sends.
import net from 'node:net';
import fs from 'node:fs';
import { WebSocketServer, WebSocket } from 'ws';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const host = opt('--host', '127.0.0.1');
const portFile = opt('--port-file', null);

const rooms = new Map(); // symbol -> Set<WebSocket>
const everything = new Set(); // subscribed to "*"
let ticks = 0;
let sends = 0;

const wss = new WebSocketServer({ host, port: 0 });
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data) => {
    let req;
    try {
      req = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (req.op !== 'subscribe' || !Array.isArray(req.symbols)) return;
    for (const sym of req.symbols) {
      if (sym === '*') {
        everything.add(ws);
        continue;
      }
      let set = rooms.get(sym);
      if (!set) rooms.set(sym, (set = new Set()));
      set.add(ws);
    }
  });
  ws.on('close', () => {
    everything.delete(ws);
    for (const set of rooms.values()) set.delete(ws);
  });
});

function publish(line) {
  let tick;
  try {
    tick = JSON.parse(line);
  } catch {
    return;
  }
  ticks++;
  const buf = Buffer.from(line);
  const set = rooms.get(tick.symbol);
  if (set)
    for (const ws of set)
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(buf, { binary: false });
        sends++;
      }
  for (const ws of everything)
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(buf, { binary: false });
      sends++;
    }
}

const feed = net.createServer((sock) => {
  let rest = '';
  sock.setEncoding('utf8');
  sock.on('data', (chunk) => {
    const text = rest + chunk;
    let start = 0;
    let nl;
    while ((nl = text.indexOf('\n', start)) >= 0) {
      if (nl > start) publish(text.slice(start, nl));
      start = nl + 1;
    }
    rest = text.slice(start);
  });
  sock.on('error', () => {});
});

let listening = 0;
function ready() {
  if (++listening < 2) return;
  const line = `ws=${wss.address().port} feed=${feed.address().port}\n`;
  if (portFile) fs.writeFileSync(portFile, line);
  else process.stdout.write(line);
}
wss.on('listening', ready);
feed.listen(0, host, ready);

const stop = () => {
  process.stderr.write(`ws-broadcast: ${ticks} ticks in, ${sends} messages out\n`);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
