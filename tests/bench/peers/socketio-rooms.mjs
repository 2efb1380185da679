// socketio-rooms.mjs: the Socket.IO peer of the benchmark suite.
//
//   node socketio-rooms.mjs [--host 127.0.0.1] [--port-file FILE]
//
// A Socket.IO 4 server with its default options (both transports allowed,
// perMessageDeflate off) and one room per symbol. A client joins rooms with
//   socket.emit("join", ["S0001", "S0002"])   (or "*" for every symbol)
// and receives every tick of those symbols as a "tick" event. JSONL ticks
// come in on a TCP port; each is parsed and broadcast with
//   io.to(symbol).to("*").emit("tick", tick)
// which Socket.IO encodes once per broadcast. Nothing is conflated or
// dropped. Both ports are 0 (any free port); FILE gets "ws=PORT feed=PORT".
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import { Server } from 'socket.io';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const host = opt('--host', '127.0.0.1');
const portFile = opt('--port-file', null);

const httpServer = http.createServer();
const io = new Server(httpServer, { serveClient: false });
let ticks = 0;

io.on('connection', (socket) => {
  socket.on('join', (rooms) => {
    socket.join(rooms);
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
  io.to(tick.symbol).to('*').emit('tick', tick);
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
  const line = `ws=${httpServer.address().port} feed=${feed.address().port}\n`;
  if (portFile) fs.writeFileSync(portFile, line);
  else process.stdout.write(line);
}
httpServer.listen(0, host, ready);
feed.listen(0, host, ready);

const stop = () => {
  process.stderr.write(`socketio-rooms: ${ticks} ticks in\n`);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
