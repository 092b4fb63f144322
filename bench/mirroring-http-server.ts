// The benchmark's web server: files of the paper's sizes (0, 1, 2, 4, 8 KB) served from memory
// with keep-alive, as a static web server serves from its page cache. Run by Node directly (type
// stripping): node bench/mirroring-http-server.ts <address> <port>
import { createServer } from 'node:http';

const [address = '127.0.0.1', port = '8080'] = process.argv.slice(2);
const files = new Map<string, Buffer>();
for (const kb of [0, 1, 2, 4, 8]) files.set(`/${kb}k.html`, Buffer.alloc(kb * 1024, 'x'));

const server = createServer((req, res) => {
  const body = files.get(req.url ?? '');
  if (!body) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(port), address, () => console.log(`listening on ${address}:${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
