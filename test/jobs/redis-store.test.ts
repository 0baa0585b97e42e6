import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisJobStore } from '../../src/jobs/redis-store.js';
import { SqliteJobStore } from '../../src/jobs/sqlite-store.js';
import type { Change, JobStore } from '../../src/jobs/store.js';
import type { Job } from '../../src/jobs/types.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { type ContractStore, describeJobStore, GENERATE, GENERATED, INFER, newJob, out } from './store-contract.js';

let server: RedisServer;
/** The connections belong to the tests; the stores borrow them. */
let redis: Redis;
let other: Redis;

const connect = (url: string) => new Redis(url).on('error', () => {}); // reconnects are expected while the server is stopped

beforeAll(async () => {
  server = await startRedis();
  redis = connect(server.url);
  other = connect(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  other?.disconnect();
  await server?.stop();
});

let prefixes = 0;
/** A fresh key prefix per store, so tests never see each other's jobs. */
const freshPrefix = () => `test:${process.pid}:${++prefixes}:`;

function openStore(connection = redis, prefix = freshPrefix()): RedisJobStore {
  return new RedisJobStore(connection, { prefix });
}

/** The contract's way to start a job: begin, as a worker handed the job by the queue does. */
function contractStore(store: RedisJobStore): ContractStore {
  return Object.assign(store, {
    async startJob(id: string, now: number) {
      const outcome = await store.begin(id, now, 3);
      if (outcome.kind === 'failed') throw new Error(`begin failed job ${id}`);
      return outcome.kind === 'run' ? outcome.change : null;
    },
  });
}

describeJobStore('RedisJobStore', async () => contractStore(openStore()));

describe('RedisJobStore.begin', () => {
  it('QUEUED → RUNNING with one more attempt and its input', async () => {
    const store = openStore();
    const { job } = await store.create(newJob(GENERATE));
    const outcome = await store.begin(job.id, 7, 3);
    expect(outcome.kind).toBe('run');
    if (outcome.kind !== 'run') return;
    expect(outcome.change.job).toEqual({ ...job, status: 'RUNNING', startedAt: 7, attempts: 1, version: job.version + 2, lastSeq: 2, input: GENERATE });
    expect(outcome.change.events).toEqual([{ jobId: job.id, seq: 2, at: 7, type: 'STATUS', status: 'RUNNING', attempt: 1, error: null, output: null }]);
    const { input: _, ...stored } = outcome.change.job;
    expect(await store.get(job.id)).toEqual(stored);
    expect(await store.countByStatus()).toMatchObject({ QUEUED: 0, RUNNING: 1 });
  });

  it('RUNNING (its worker died) below maxAttempts → STATUS QUEUED then RUNNING with the next attempt, progress cleared', async () => {
    const store = openStore();
    const { job } = await store.create(newJob(GENERATE));
    await store.begin(job.id, 1, 3);
    const progressed = await store.progress(job.id, { completed: 1, total: 4, text: 'a' }, [out(0, 'a')], 2);
    const outcome = await store.begin(job.id, 5, 3);
    expect(outcome.kind).toBe('run');
    if (outcome.kind !== 'run') return;
    expect(outcome.change.job).toMatchObject({ status: 'RUNNING', attempts: 2, startedAt: 5, progress: null, lastSeq: 5, input: GENERATE });
    expect(outcome.change.job.version).toBe(progressed!.job.version + 4); // as SQLite's recover then claim number it
    expect(outcome.change.events).toEqual([
      { jobId: job.id, seq: 4, at: 5, type: 'STATUS', status: 'QUEUED', attempt: null, error: null, output: null },
      { jobId: job.id, seq: 5, at: 5, type: 'STATUS', status: 'RUNNING', attempt: 2, error: null, output: null },
    ]);
    expect((await store.eventsAfter(job.id, 0)).map((e) => `${e.seq}:${e.status ?? e.output?.text}`)).toEqual(['1:QUEUED', '2:RUNNING', '3:a', '4:QUEUED', '5:RUNNING']);
    expect(await store.countByStatus()).toMatchObject({ QUEUED: 0, RUNNING: 1 });
  });

  it('RUNNING with maxAttempts runs used → FAILED with INTERRUPTED, keeping its progress; then nothing more to run', async () => {
    const store = openStore();
    const { job } = await store.create(newJob(GENERATE));
    await store.begin(job.id, 1, 2);
    await store.progress(job.id, { completed: 1, total: 4, text: 'a' }, [], 2);
    await store.begin(job.id, 3, 2); // the first worker died: attempt 2
    const outcome = await store.begin(job.id, 4, 2); // the second too
    expect(outcome.kind).toBe('failed');
    if (outcome.kind !== 'failed') return;
    const error = { code: 'INTERRUPTED', message: 'The job was interrupted 2 times, the most allowed.' };
    expect(outcome.change.job).toMatchObject({ status: 'FAILED', attempts: 2, finishedAt: 4, error, result: null, lastSeq: 5 });
    expect(outcome.change.events).toEqual([{ jobId: job.id, seq: 5, at: 4, type: 'STATUS', status: 'FAILED', attempt: null, error, output: null }]);
    expect(await store.get(job.id)).toEqual(outcome.change.job);
    expect(await store.begin(job.id, 5, 2)).toEqual({ kind: 'skip' });
    expect(await store.countByStatus()).toMatchObject({ RUNNING: 0, FAILED: 1 });
  });

  it('says "1 time" for a job allowed one run', async () => {
    const store = openStore();
    const { job } = await store.create(newJob());
    await store.begin(job.id, 1, 1);
    const outcome = await store.begin(job.id, 2, 1);
    expect(outcome).toMatchObject({ kind: 'failed', change: { job: { error: { code: 'INTERRUPTED', message: 'The job was interrupted 1 time, the most allowed.' } } } });
  });

  it('skips an unknown, finished or cancelled job and writes nothing', async () => {
    const store = openStore();
    expect(await store.begin('NOSUCHJOB', 1, 3)).toEqual({ kind: 'skip' });
    const done = (await store.create(newJob())).job;
    await store.begin(done.id, 1, 3);
    await store.finish(done.id, { status: 'SUCCEEDED', result: GENERATED }, 2);
    const cancelled = (await store.create(newJob())).job;
    await store.cancel(cancelled.id, 3);
    for (const id of [done.id, cancelled.id]) {
      const before = await store.get(id);
      const events = await store.eventsAfter(id, 0);
      expect(await store.begin(id, 9, 3)).toEqual({ kind: 'skip' });
      expect(await store.get(id)).toEqual(before);
      expect(await store.eventsAfter(id, 0)).toEqual(events);
    }
    expect(await store.get('NOSUCHJOB')).toBeNull();
    expect(await store.countByStatus()).toEqual({ QUEUED: 0, RUNNING: 0, SUCCEEDED: 1, FAILED: 0, CANCELLED: 1 });
  });

  /**
   * The queue should hand a job to one worker; if two begin it at once (two
   * connections, so the writes really race), the compare-and-set lets exactly
   * one of them start it (QUEUED → RUNNING, attempt 1). The other's write
   * conflicts; it reads the job again, now RUNNING, and treats it as a job
   * whose worker died: below maxAttempts a retry ('run', STATUS QUEUED then
   * RUNNING, attempt 2), at maxAttempts 'failed'. Either way the events stay
   * numbered without gaps or repeats.
   */
  it('two concurrent begins of a QUEUED job: exactly one starts it, the other sees it RUNNING', async () => {
    const prefix = freshPrefix();
    const [a, b] = [openStore(redis, prefix), openStore(other, prefix)];
    const { job } = await a.create(newJob());
    const outcomes = await Promise.all([a.begin(job.id, 1, 3), b.begin(job.id, 1, 3)]);
    expect(outcomes.map((o) => o.kind)).toEqual(['run', 'run']);
    const changes = outcomes.map((o) => (o.kind === 'run' ? o.change : null)!);
    const starts = changes.filter((c) => c.events.length === 1);
    const retries = changes.filter((c) => c.events.length === 2);
    expect(starts).toHaveLength(1);
    expect(retries).toHaveLength(1);
    expect(starts[0]!.events[0]).toMatchObject({ seq: 2, status: 'RUNNING', attempt: 1 });
    expect(retries[0]!.events.map((e) => [e.seq, e.status, e.attempt])).toEqual([
      [3, 'QUEUED', null],
      [4, 'RUNNING', 2],
    ]);
    expect(await a.get(job.id)).toMatchObject({ status: 'RUNNING', attempts: 2, lastSeq: 4 });
    expect((await a.eventsAfter(job.id, 0)).map((e) => e.seq)).toEqual([1, 2, 3, 4]);

    const { job: once } = await a.create(newJob());
    const single = await Promise.all([a.begin(once.id, 1, 1), b.begin(once.id, 1, 1)]);
    expect(single.map((o) => o.kind).sort()).toEqual(['failed', 'run']);
    expect(await a.get(once.id)).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'INTERRUPTED' } });
    expect(await a.countByStatus()).toEqual({ QUEUED: 0, RUNNING: 1, SUCCEEDED: 0, FAILED: 1, CANCELLED: 0 });
  });
});

describe('RedisJobStore under concurrent writers', () => {
  it('concurrent finishes from two connections: exactly one applies', async () => {
    const prefix = freshPrefix();
    const [a, b] = [openStore(redis, prefix), openStore(other, prefix)];
    for (let round = 0; round < 10; round++) {
      const { job } = await a.create(newJob());
      await a.begin(job.id, 1, 3);
      const results = await Promise.all([
        a.finish(job.id, { status: 'SUCCEEDED', result: GENERATED }, 2),
        b.finish(job.id, { status: 'FAILED', error: { code: 'X', message: 'x' } }, 2),
        a.finish(job.id, { status: 'FAILED', error: { code: 'Y', message: 'y' } }, 2),
        b.cancel(job.id, 2),
      ]);
      const applied = [...results.slice(0, 3), results[3]!.events.length > 0 ? results[3] : null].filter((r) => r !== null);
      expect(applied).toHaveLength(1);
      const events = await a.eventsAfter(job.id, 0);
      expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(events[2]).toEqual(applied[0]!.events[0]);
      expect(await a.get(job.id)).toEqual(applied[0]!.job);
    }
    const counts = await a.countByStatus();
    expect(counts.QUEUED + counts.RUNNING).toBe(0);
    expect(counts.SUCCEEDED + counts.FAILED + counts.CANCELLED).toBe(10);
  });

  it('progress racing a cancel: every applied change is in the events, numbered without gaps', async () => {
    const prefix = freshPrefix();
    const [a, b] = [openStore(redis, prefix), openStore(other, prefix)];
    const { job } = await a.create(newJob(GENERATE));
    await a.begin(job.id, 1, 3);
    const writes: Promise<Change | null>[] = [];
    for (let i = 0; i < 30; i++) {
      const store = i % 2 === 0 ? a : b;
      writes.push(store.progress(job.id, { completed: i + 1, total: null, text: 'x' }, [out(i, 'x'), out(i, 'y')], 10 + i));
      if (i === 20) writes.push(b.cancel(job.id, 99));
    }
    const changes = (await Promise.all(writes)).filter((c) => c !== null);
    const events = await a.eventsAfter(job.id, 0);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.slice(2).sort((x, y) => x.seq - y.seq)).toEqual(changes.flatMap((c) => c.events).sort((x, y) => x.seq - y.seq));
    expect(events.at(-1)).toMatchObject({ status: 'CANCELLED' });
    const final = await a.get(job.id);
    expect(final).toMatchObject({ status: 'CANCELLED', lastSeq: events.length });
    expect(final!.version).toBe(Math.max(...changes.map((c) => c.job.version)));
  });
});

describe('RedisJobStore indexes', () => {
  it('counts by status follow every change, prune included', async () => {
    const store = openStore();
    const jobs: Job[] = [];
    for (let i = 0; i < 8; i++) jobs.push((await store.create(newJob())).job);
    expect(await store.countByStatus()).toEqual({ QUEUED: 8, RUNNING: 0, SUCCEEDED: 0, FAILED: 0, CANCELLED: 0 });
    for (const job of jobs.slice(0, 5)) await store.begin(job.id, 1, 3);
    await store.finish(jobs[0]!.id, { status: 'SUCCEEDED', result: GENERATED }, 10);
    await store.finish(jobs[1]!.id, { status: 'FAILED', error: { code: 'X', message: 'x' } }, 20);
    await store.cancel(jobs[2]!.id, 30);
    await store.cancel(jobs[5]!.id, 40);
    await store.release(jobs[3]!.id, 50);
    await store.progress(jobs[4]!.id, { completed: 1, total: 1, text: null }, [], 60);
    await store.cancel(jobs[0]!.id, 70); // finished: no change
    const fromList = async () => {
      const counts: Record<string, number> = { QUEUED: 0, RUNNING: 0, SUCCEEDED: 0, FAILED: 0, CANCELLED: 0 };
      for (const edge of (await store.list({ first: 100 })).edges) counts[edge.job.status]!++;
      return counts;
    };
    expect(await store.countByStatus()).toEqual({ QUEUED: 3, RUNNING: 1, SUCCEEDED: 1, FAILED: 1, CANCELLED: 2 });
    expect(await store.countByStatus()).toEqual(await fromList());
    expect(await store.prune(35)).toBe(3);
    expect(await store.countByStatus()).toEqual({ QUEUED: 3, RUNNING: 1, SUCCEEDED: 0, FAILED: 0, CANCELLED: 1 });
    expect(await store.countByStatus()).toEqual(await fromList());
    expect(await store.prune(1_000)).toBe(1);
    expect((await store.list({})).totalCount).toBe(4);
  });

  it('keeps stores with different prefixes apart', async () => {
    const [a, b] = [openStore(), openStore()];
    const { job } = await a.create(newJob());
    expect(await b.get(job.id)).toBeNull();
    expect(await b.begin(job.id, 1, 3)).toEqual({ kind: 'skip' });
    expect((await b.list({})).totalCount).toBe(0);
    expect((await b.countByStatus()).QUEUED).toBe(0);
    expect((await a.countByStatus()).QUEUED).toBe(1);
  });

  it('stores numbers byte for byte (the script passes JSON through, never re-encodes it)', async () => {
    const store = openStore();
    const { job } = await store.create(newJob());
    await store.begin(job.id, 1, 3);
    const floats = [0.1 + 0.2, 1e-7, 123456789.12345679, -0, 5e-324, 1.7976931348623157e308, 2 ** 53 + 2];
    const result = { kind: 'INFER' as const, outputs: [], metrics: { queueMs: 0.1 + 0.2, batchSize: 3, floats } } as never;
    const done = await store.finish(job.id, { status: 'SUCCEEDED', result }, 2);
    expect(JSON.stringify((await store.get(job.id))!.result)).toBe(JSON.stringify(result));
    expect(await store.get(job.id)).toEqual(done!.job);
  });
});

/**
 * The same operations on a SqliteJobStore and a RedisJobStore give the same
 * jobs, events and pages, field for field (begin stands for claim, and a
 * retry for SQLite's recover then claim).
 */
describe('RedisJobStore matches SqliteJobStore', () => {
  it('gives deep-equal changes, events, jobs and pages', async () => {
    const sqlite = new SqliteJobStore(mkdtempSync(join(tmpdir(), 'inferql-parity-')));
    const store = openStore();
    try {
      const both = async <T>(op: (s: JobStore) => Promise<T>): Promise<T> => {
        const [expected, actual] = await Promise.all([op(sqlite), op(store)]);
        expect(actual).toEqual(expected);
        return actual;
      };
      const a = newJob(GENERATE, { priority: 2, owner: 'k1', deadlineMs: 1_000 });
      const b = newJob(INFER);
      const c = newJob(INFER, { owner: 'k2' });
      for (const job of [a, b, c]) await both((s) => s.create(job));

      // a runs, streams, is retried after its worker died, then succeeds.
      const [claimed] = await sqlite.claim(1, 10);
      const begun = await store.begin(a.id, 10, 3);
      expect(begun).toEqual({ kind: 'run', change: claimed });
      await both((s) => s.progress(a.id, { completed: 1, total: 8, text: 'a' }, [out(0, 'a')], 11));
      await both((s) => s.progress(a.id, { completed: 1, total: 8, text: 'a' }, [], 12));
      const recovered = await sqlite.recover(3, 13);
      const [reclaimed] = await sqlite.claim(1, 13);
      const retried = await store.begin(a.id, 13, 3);
      expect(retried).toEqual({ kind: 'run', change: { job: reclaimed!.job, events: [...recovered.requeued[0]!.events, ...reclaimed!.events] } });
      await both((s) => s.progress(a.id, { completed: 2, total: 8, text: 'ab' }, [out(0, 'a'), out(1, 'b')], 14));
      await both((s) => s.finish(a.id, { status: 'SUCCEEDED', result: GENERATED, progress: { completed: 2, total: 2, text: 'ab' } }, 15));

      // b runs, is released at a shutdown, then cancelled (twice: the second changes nothing); c is cancelled while queued.
      await sqlite.claim(1, 16);
      await store.begin(b.id, 16, 3);
      await both((s) => s.release(b.id, 17));
      await both((s) => s.cancel(b.id, 18));
      await both((s) => s.cancel(b.id, 19));
      await both((s) => s.cancel(c.id, 20));
      await both((s) => s.finish(a.id, { status: 'FAILED', error: { code: 'X', message: 'x' } }, 21));

      for (const job of [a, b, c]) {
        await both((s) => s.get(job.id));
        await both((s) => s.eventsAfter(job.id, 0));
        await both((s) => s.eventsAfter(job.id, 2));
      }
      await both((s) => s.list({ first: 2 }));
      await both((s) => s.list({ last: 1, owner: 'k1' }));
      await both((s) => s.list({ status: ['CANCELLED'] }));
      await both((s) => s.countByStatus());
      await both((s) => s.prune(19));
      await both((s) => s.list({}));
    } finally {
      await sqlite.close();
    }
  });
});

describe('RedisJobStore and its connection', () => {
  it('close() leaves the connection, which is the caller’s, open', async () => {
    const store = openStore();
    await store.close();
    expect(await redis.ping()).toBe('PONG');
    expect(await openStore().ping()).toBe(true);
  });

  it('ping() is false while the server is down (within about a second), and the jobs are there when it is back', async () => {
    const store = openStore();
    const { job } = await store.create(newJob());
    await server.stop();
    const started = Date.now();
    expect(await store.ping()).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_000);
    await server.start();
    const deadline = Date.now() + 15_000;
    while (!(await store.ping()) && Date.now() < deadline) await sleep(100);
    expect(await store.ping()).toBe(true);
    expect(await store.get(job.id)).toEqual(job); // written to the AOF on shutdown, read back at start
  });
});
