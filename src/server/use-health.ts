import type { Plugin } from 'graphql-yoga';

/** GET /ready: models settled and stores reachable (Yoga itself answers GET /health). */
export function useHealth(options: { isReady: () => boolean }): Plugin {
  return {
    onRequest({ url, endResponse, fetchAPI }) {
      if (url.pathname === '/ready') {
        const ready = options.isReady();
        endResponse(Response.json({ ready }, { status: ready ? 200 : 503 }) as unknown as InstanceType<typeof fetchAPI.Response>);
      }
    },
  };
}
