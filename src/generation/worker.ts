/**
 * A decoder model's decode worker (a worker thread, one per loaded decoder).
 * onnxruntime-node runs a session synchronously on the thread that calls
 * it, so the decode loop lives here: the main thread stays free to deliver
 * tokens (GraphQL, sockets) while the next step computes, and a long step
 * never stalls other requests. The worker owns its session, the KV cache,
 * the scheduler and every sequence; it takes commands and posts one message
 * of outputs per step.
 */
import { availableParallelism } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { TextTokenizer } from '../models/tokenizer.js';
import type { Feeds } from '../runtime/session.js';
import { prefillFeeds } from './decoder.js';
import type { EngineCommand, EngineReport, SequenceOutput, StepInfo, WorkerInit } from './protocol.js';
import { DecodeScheduler } from './scheduler.js';
import { Sequence } from './sequence.js';

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (report: EngineReport) => port.postMessage(report);

/**
 * A step's outputs go out as one message, posted from a setImmediate: after
 * the scheduler has dropped the finished (so the stats are current) and
 * just before the next session.run, which onnxruntime-node also starts from
 * a setImmediate.
 */
const outbox: SequenceOutput[] = [];
const steps: StepInfo[] = [];
let flushing = false;
let scheduler: DecodeScheduler | null = null;

function flush(): void {
  flushing = false;
  if (!scheduler) return;
  post({ type: 'outputs', outputs: outbox.splice(0), steps: steps.splice(0), stats: scheduler.stats() });
}

function scheduleFlush(): void {
  if (flushing) return;
  flushing = true;
  setImmediate(flush);
}

function emit(output: SequenceOutput): void {
  outbox.push(output);
  scheduleFlush();
}

async function start(): Promise<{ scheduler: DecodeScheduler; tokenizer: TextTokenizer; release: () => Promise<void> }> {
  const [ortSession, tokenizer] = await Promise.all([
    ort.InferenceSession.create(init.onnxPath, {
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      // Half the cores: the other half is the event loop's, which delivers the tokens while a step computes.
      intraOpNumThreads: init.intraOpThreads ?? Math.max(1, Math.floor(availableParallelism() / 2)),
    }),
    TextTokenizer.load(init.tokenizerPath, init.tokenizerConfigPath),
  ]);
  const session = { run: (feeds: Feeds) => ortSession.run(feeds) };
  // One throwaway prefill so the first request does not pay for onnxruntime's lazy set-up.
  await session.run(prefillFeeds(init.spec, [[init.spec.padId]]));
  const made = new DecodeScheduler(session, init.spec, {
    model: init.model,
    maxRunning: init.maxRunning,
    maxWaiting: init.maxWaiting,
    maxBatchTokens: init.maxBatchTokens,
    onStep: (step) => {
      steps.push(step);
      scheduleFlush();
    },
    onError: (error) => post({ type: 'runError', message: String(error) }),
    // The last word after the loop stops: the stats that say the batch and cache are empty.
    onIdle: scheduleFlush,
    onHeld: scheduleFlush,
  });
  return { scheduler: made, tokenizer, release: () => ortSession.release() };
}

type Engine = Awaited<ReturnType<typeof start>>;
const sequences = new Map<number, Sequence>();

function handle(engine: Engine, command: EngineCommand): void {
  switch (command.type) {
    case 'submit': {
      const seq = new Sequence(
        command.id,
        command.prompt,
        command.config,
        command.priority,
        command.submittedAt,
        engine.tokenizer,
        init.spec.eosIds,
        init.spec.maxPositions,
        (output) => {
          emit(output);
          if ('error' in output || output.event.finishReason) sequences.delete(output.id);
        },
      );
      sequences.set(seq.id, seq);
      engine.scheduler.submit(seq, command.deadlineAt);
      return;
    }
    case 'cancel': {
      const seq = sequences.get(command.id);
      if (seq) engine.scheduler.cancel(seq);
      return;
    }
    case 'cancelAll':
      engine.scheduler.cancelAll();
      return;
    case 'limitTurns':
      engine.scheduler.limitTurns(command.turns);
      return;
    case 'close':
      // Stops admitting and drains; cancels that come meanwhile are still handled.
      void engine.scheduler
        .close()
        .then(() => {
          flush();
          return engine.release();
        })
        .finally(() => post({ type: 'closed' }));
      return;
  }
}

// Commands that arrive while the session loads wait, in order.
let engine: Engine | null = null;
const early: EngineCommand[] = [];
port.on('message', (command: EngineCommand) => (engine ? handle(engine, command) : early.push(command)));

start().then(
  (started) => {
    engine = started;
    scheduler = started.scheduler;
    post({ type: 'ready' });
    for (const command of early.splice(0)) handle(started, command);
  },
  (error) => post({ type: 'fatal', message: String(error?.stack ?? error) }),
);
