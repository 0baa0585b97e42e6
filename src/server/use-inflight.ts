import type { Plugin } from 'graphql-yoga';

/** Counts operations in progress (a subscription until it ends), so shutdown knows when in-flight work is done. */
export class InflightCounter {
  count = 0;
}

export function useInflight(counter: InflightCounter): Plugin {
  return {
    onExecute() {
      counter.count++;
      return { onExecuteDone: () => void counter.count-- };
    },
    onSubscribe() {
      counter.count++;
      let ended = false;
      const end = () => {
        if (!ended) {
          ended = true;
          counter.count--;
        }
      };
      return {
        onSubscribeResult({ result }) {
          if (!(result && Symbol.asyncIterator in result)) {
            end();
            return;
          }
          return { onEnd: end };
        },
        onSubscribeError: end,
      };
    },
  };
}
