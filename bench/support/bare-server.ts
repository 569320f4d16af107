// The baseline of the verify benchmark, run as its own process: node:http and nothing else. Every
// request is answered with one fixed JSON body, which the benchmark sets to the exact bytes of a
// real VALID verify answer (BARE_BODY), so both servers send the same payload. The request body
// is read to its end first, as any server of a POST has to.
import http from 'node:http';

const body = Buffer.from(process.env.BARE_BODY ?? '{"valid":true}');
const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(body.length) };

const server = http.createServer((request, response) => {
  request.resume();
  request.once('end', () => response.writeHead(200, headers).end(body));
});
// Fastify's default, so idle keep-alive connections live as long on both servers.
server.keepAliveTimeout = 72_000;

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
});

process.once('SIGTERM', () => process.exit(0));
