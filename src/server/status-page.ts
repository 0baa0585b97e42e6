import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Plugin } from 'graphql-yoga';

interface Asset {
  body: string;
  type: string;
}

const STATUS_DIR = join(import.meta.dirname, 'status');

/** graphql-ws's own browser build, served to the page so nothing comes from a CDN. */
function graphqlWsBrowserBuild(): string {
  const entry = createRequire(import.meta.url).resolve('graphql-ws');
  return readFileSync(join(dirname(entry), '..', 'umd', 'graphql-ws.min.js'), 'utf8');
}

function loadAssets(): Map<string, Asset> {
  const file = (name: string) => readFileSync(join(STATUS_DIR, name), 'utf8');
  return new Map<string, Asset>([
    ['/', { body: file('index.html'), type: 'text/html; charset=utf-8' }],
    ['/status/status.css', { body: file('status.css'), type: 'text/css; charset=utf-8' }],
    ['/status/status.js', { body: file('status.js'), type: 'text/javascript; charset=utf-8' }],
    ['/status/graphql-ws.js', { body: graphqlWsBrowserBuild(), type: 'text/javascript; charset=utf-8' }],
  ]);
}

/**
 * The status page at `/`: plain HTML, CSS and JS from src/server/status, plus
 * graphql-ws's browser build at /status/graphql-ws.js. Everything it shows
 * comes from the GraphQL API (serverStats, generate) over WebSocket.
 */
export function useStatusPage(): Plugin {
  const assets = loadAssets();
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return;
      const asset = assets.get(url.pathname);
      if (!asset) return;
      endResponse(
        new fetchAPI.Response(request.method === 'HEAD' ? null : asset.body, {
          headers: {
            'content-type': asset.type,
            'cache-control': 'no-cache',
            'x-content-type-options': 'nosniff',
            // Same-origin only: the page talks to this server and nothing else.
            'content-security-policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
          },
        }),
      );
    },
  };
}
