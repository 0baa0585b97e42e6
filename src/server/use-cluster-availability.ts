import type { Plugin } from 'graphql-yoga';
import { inferqlError } from '../errors.js';

/**
 * Distributed mode: while Redis is unreachable every operation answers
 * UNAVAILABLE at once (models, jobs and calls all live behind it) instead of
 * waiting on a connection that may take a while to come back. Service
 * resumes by itself when it does.
 */
export function useClusterAvailability(isUp: () => boolean): Plugin {
  const refuse = (setResult: (result: { errors: Error[] }) => void) => {
    if (!isUp()) setResult({ errors: [inferqlError('UNAVAILABLE', 'Redis is unreachable: the queues and the job store are out of reach; retry shortly.')] });
  };
  return {
    onExecute: ({ setResultAndStopExecution }) => refuse(setResultAndStopExecution as never),
    onSubscribe: ({ setResultAndStopExecution }) => refuse(setResultAndStopExecution as never),
  };
}
