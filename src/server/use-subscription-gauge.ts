import type { Plugin } from 'graphql-yoga';
import type { Gauge } from 'prom-client';

/** Counts open subscriptions (WebSocket and SSE alike) into a gauge. */
export function useSubscriptionGauge(gauge: Gauge): Plugin {
  return {
    onSubscribe() {
      return {
        onSubscribeResult() {
          gauge.inc();
          return { onEnd: () => gauge.dec() };
        },
      };
    },
  };
}
