/**
 * Global setup for the workers project (runs in Node): a JWKS server on loopback that the Worker
 * tests drive over HTTP. `GET /jwks/<name>` serves the key set stored under that name (404 when
 * none); `PUT /admin/<name>` stores one (JSON body); `POST /admin/<name>/down` makes it answer 503
 * until the next PUT. Every request is counted: `GET /admin/<name>/hits`.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestProject } from 'vitest/node';

interface Entry {
  jwks: string | null;
  down: boolean;
  hits: number;
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => resolve(body));
    request.on('error', reject);
  });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const entries = new Map<string, Entry>();
  const entry = (name: string): Entry => {
    let found = entries.get(name);
    if (found === undefined) {
      found = { jwks: null, down: false, hits: 0 };
      entries.set(name, found);
    }
    return found;
  };
  const server = createServer((request, response) => {
    void (async () => {
      const url = new URL(request.url ?? '/', 'http://127.0.0.1');
      const [, kind, name, action] = url.pathname.split('/');
      if (kind === 'jwks' && name) {
        const e = entry(name);
        e.hits++;
        if (e.down || e.jwks === null) {
          response.writeHead(e.down ? 503 : 404).end();
          return;
        }
        response.writeHead(200, { 'content-type': 'application/json' }).end(e.jwks);
        return;
      }
      if (kind === 'admin' && name) {
        const e = entry(name);
        if (request.method === 'PUT' && action === undefined) {
          e.jwks = await readBody(request);
          e.down = false;
        } else if (request.method === 'POST' && action === 'down') {
          e.down = true;
        } else if (request.method === 'GET' && action === 'hits') {
          response.writeHead(200, { 'content-type': 'application/json' }).end(String(e.hits));
          return;
        } else {
          response.writeHead(405).end();
          return;
        }
        response.writeHead(204).end();
        return;
      }
      response.writeHead(404).end();
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  project.provide('jwksBaseUrl', `http://127.0.0.1:${port}`);
  return async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}
