import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { newJobId } from '../../src/jobs/ids.js';
import { SqliteJobStore } from '../../src/jobs/sqlite-store.js';
import { decodeCursor, encodeCursor, type NewJob } from '../../src/jobs/store.js';
import type { JobInput } from '../../src/jobs/types.js';

const stores: SqliteJobStore[] = [];
const tempDir = () => mkdtempSync(join(tmpdir(), 'inferql-store-'));

function open(dir = tempDir()): SqliteJobStore {
  const store = new SqliteJobStore(dir);
  stores.push(store);
  return store;
}

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

const INFER: JobInput = { kind: 'INFER', model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] };
const GENERATE: JobInput = { kind: 'GENERATE', model: 'fortune-lm', prompt: 'A', params: { seed: 1 } };

let clock = 1_700_000_000_000;
function newJob(input: JobInput = INFER, extra: Partial<NewJob> = {}): NewJob {
  const createdAt = extra.createdAt ?? clock++;
  return { id: newJobId(createdAt), input, priority: 0, deadlineMs: null, owner: null, createdAt, ...extra };
}

describe('SqliteJobStore', () => {
  it('creates a QUEUED job with event 1, and reads it back', async () => {
    const store = open();
    const { job, events } = await store.create(newJob(INFER, { priority: 3, deadlineMs: 500, owner: 'k1' }));
    expect(job).toMatchObject({ kind: 'INFER', model: 'digits', status: 'QUEUED', priority: 3, deadlineMs: 500, owner: 'k1', attempts: 0, lastSeq: 1, startedAt: null, result: null });
    expect(events).toEqual([expect.objectContaining({ jobId: job.id, seq: 1, type: 'STATUS', status: 'QUEUED' })]);
    expect(await store.get(job.id)).toEqual(job);
    expect(await store.get('nope')).toBeNull();
  });

  it('claims by priority, then age; each claim is RUNNING with one more attempt and its input', async () => {
    const store = open();
    const low = await store.create(newJob());
    const high = await store.create(newJob(GENERATE, { priority: 5 }));
    const low2 = await store.create(newJob());
    const claimed = await store.claim(2, 42);
    expect(claimed.map((c) => c.job.id)).toEqual([high.job.id, low.job.id]);
    expect(claimed[0]!.job).toMatchObject({ status: 'RUNNING', attempts: 1, startedAt: 42, input: GENERATE, lastSeq: 2 });
    expect(claimed[0]!.events).toEqual([expect.objectContaining({ seq: 2, status: 'RUNNING', attempt: 1 })]);
    expect((await store.claim(5, 43)).map((c) => c.job.id)).toEqual([low2.job.id]);
    expect(await store.claim(5, 44)).toEqual([]);
  });

  it('numbers progress events after the last one and finishes once, with the result and the status event together', async () => {
    const store = open();
    const { job } = await store.create(newJob(GENERATE));
    await store.claim(1, 1);
    const out = (index: number, text: string) => ({ type: 'OUTPUT' as const, status: null, attempt: null, error: null, output: { index, tokenId: index + 10, text } });
    const p1 = store.progress(job.id, { completed: 1, total: null, text: 'a' }, [out(0, 'a')], 2);
    const p2 = store.progress(job.id, { completed: 2, total: null, text: 'ab' }, [out(1, 'b')], 3);
    const result = { kind: 'GENERATE' as const, generation: { text: 'ab', tokenIds: [10, 11], finishReason: 'LENGTH' as const, usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 }, metrics: { queueMs: 0, ttftMs: 1, tokensPerSecond: 2, totalMs: 3 } } };
    const fin = store.finish(job.id, { status: 'SUCCEEDED', result }, 4);
    const [c1, c2, done] = await Promise.all([p1, p2, fin]);
    expect(c1!.events.map((e) => e.seq)).toEqual([3]);
    expect(c2!.events.map((e) => e.seq)).toEqual([4]);
    expect(c2!.job.progress).toEqual({ completed: 2, total: null, text: 'ab' });
    expect(done!.job).toMatchObject({ status: 'SUCCEEDED', finishedAt: 4, result, lastSeq: 5 });
    expect(done!.events).toEqual([expect.objectContaining({ seq: 5, status: 'SUCCEEDED' })]);
    expect(await store.finish(job.id, { status: 'FAILED', error: { code: 'X', message: 'x' } }, 5)).toBeNull();
    expect(await store.progress(job.id, { completed: 3, total: null, text: 'abc' }, [out(2, 'c')], 5)).toBeNull();
    const events = await store.eventsAfter(job.id, 0);
    expect(events.map((e) => [e.seq, e.type, e.status ?? e.output?.text])).toEqual([
      [1, 'STATUS', 'QUEUED'],
      [2, 'STATUS', 'RUNNING'],
      [3, 'OUTPUT', 'a'],
      [4, 'OUTPUT', 'b'],
      [5, 'STATUS', 'SUCCEEDED'],
    ]);
    expect((await store.eventsAfter(job.id, 3)).map((e) => e.seq)).toEqual([4, 5]);
    // Versions only grow.
    expect(c1!.job.version).toBeLessThan(c2!.job.version);
    expect(c2!.job.version).toBeLessThan(done!.job.version);
  });

  it('cancels a queued or running job; a finished one comes back unchanged', async () => {
    const store = open();
    const queued = (await store.create(newJob())).job;
    const running = (await store.create(newJob())).job;
    await store.claim(1, 1); // takes `queued` (older)
    const a = await store.cancel(queued.id, 9);
    expect(a).toMatchObject({ previous: 'RUNNING', job: { status: 'CANCELLED', finishedAt: 9, error: { code: 'CANCELLED' } } });
    const b = await store.cancel(running.id, 9);
    expect(b).toMatchObject({ previous: 'QUEUED', job: { status: 'CANCELLED' }, events: [expect.objectContaining({ status: 'CANCELLED' })] });
    const again = await store.cancel(running.id, 10);
    expect(again).toMatchObject({ previous: 'CANCELLED', events: [] });
    expect(again!.job).toEqual(b!.job);
    expect(await store.cancel('missing', 1)).toBeNull();
    expect(await store.claim(5, 11)).toEqual([]);
  });

  it('release gives the run back: QUEUED, attempts as before', async () => {
    const store = open();
    const { job } = await store.create(newJob());
    await store.claim(1, 1);
    const released = await store.release(job.id, 2);
    expect(released!.job).toMatchObject({ status: 'QUEUED', attempts: 0, startedAt: null });
    expect(released!.events[0]).toMatchObject({ status: 'QUEUED' });
    expect(await store.release(job.id, 3)).toBeNull();
  });

  it('recovers after a crash: RUNNING jobs re-queue until maxAttempts, then FAIL with INTERRUPTED; the file reopens intact', async () => {
    const dir = tempDir();
    const first = new SqliteJobStore(dir);
    const a = (await first.create(newJob())).job;
    const b = (await first.create(newJob())).job;
    const c = (await first.create(newJob())).job;
    await first.claim(2, 1); // a, b RUNNING (attempt 1)
    // b has already been run twice before.
    await first.close();
    const raw = new Database(join(dir, 'jobs.sqlite'));
    raw.prepare('UPDATE jobs SET attempts = 3 WHERE id = ?').run(b.id);
    raw.close();

    const second = open(dir);
    const { requeued, failed } = await second.recover(3, 5);
    expect(requeued.map((r) => r.job.id)).toEqual([a.id]);
    expect(failed.map((r) => r.job.id)).toEqual([b.id]);
    expect(await second.get(a.id)).toMatchObject({ status: 'QUEUED', attempts: 1 });
    expect(await second.get(b.id)).toMatchObject({ status: 'FAILED', error: { code: 'INTERRUPTED' }, finishedAt: 5 });
    expect(await second.get(c.id)).toMatchObject({ status: 'QUEUED', attempts: 0 });
    const claimed = await second.claim(5, 6);
    expect(claimed.map((x) => [x.job.id, x.job.attempts])).toEqual([
      [a.id, 2],
      [c.id, 1],
    ]);
    expect((await second.eventsAfter(a.id, 0)).map((e) => `${e.seq}:${e.status}`)).toEqual(['1:QUEUED', '2:RUNNING', '3:QUEUED', '4:RUNNING']);
  });

  it('prunes jobs that finished before the cutoff, with their events, and nothing else', async () => {
    const store = open();
    const old = (await store.create(newJob())).job;
    const recent = (await store.create(newJob())).job;
    const queued = (await store.create(newJob())).job;
    await store.cancel(old.id, 100);
    await store.cancel(recent.id, 200);
    expect(await store.prune(150)).toBe(1);
    expect(await store.get(old.id)).toBeNull();
    expect(await store.eventsAfter(old.id, 0)).toEqual([]);
    expect(await store.get(recent.id)).not.toBeNull();
    expect(await store.get(queued.id)).not.toBeNull();
    expect(await store.countByStatus()).toMatchObject({ CANCELLED: 1, QUEUED: 1, RUNNING: 0 });
    expect(await store.ping()).toBe(true);
  });

  it('one failing operation in a group commit leaves the others written', async () => {
    const store = open();
    const job = newJob();
    const [ok, dup, other] = await Promise.allSettled([store.create(job), store.create(job), store.create(newJob())]);
    expect(ok.status).toBe('fulfilled');
    expect(dup.status).toBe('rejected');
    expect(other.status).toBe('fulfilled');
    expect((await store.list({})).totalCount).toBe(2);
    expect(await store.eventsAfter(job.id, 0)).toHaveLength(1);
  });
});

describe('SqliteJobStore.list', () => {
  /** 25 jobs: every third a GENERATE, statuses mixed; several share a creation millisecond. */
  async function seeded() {
    const store = open();
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) {
      const createdAt = 1_000 + Math.floor(i / 2); // pairs share a millisecond: the id breaks the tie
      const { job } = await store.create(newJob(i % 3 === 0 ? GENERATE : INFER, { createdAt }));
      ids.push(job.id);
      if (i % 5 === 0) await store.cancel(job.id, 2_000);
    }
    return { store, newestFirst: [...ids].reverse() };
  }

  it('pages newest first with first/after until the end, and back with last/before, with no gap or repeat', async () => {
    const { store, newestFirst } = await seeded();
    const forward: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const page = await store.list({ first: 7, after });
      pages++;
      forward.push(...page.edges.map((e) => e.job.id));
      expect(page.totalCount).toBe(25);
      expect(page.hasPreviousPage).toBe(after !== null);
      if (!page.hasNextPage) break;
      after = page.edges.at(-1)!.cursor;
    }
    expect(pages).toBe(4);
    expect(forward).toEqual(newestFirst);

    const backward: string[] = [];
    let before: string | null = null;
    for (;;) {
      const page = await store.list({ last: 6, before });
      backward.unshift(...page.edges.map((e) => e.job.id));
      expect(page.hasNextPage).toBe(before !== null);
      if (!page.hasPreviousPage) break;
      before = page.edges[0]!.cursor;
    }
    expect(backward).toEqual(newestFirst);
  });

  it('last without before gives the oldest jobs; after and before together bound the range', async () => {
    const { store, newestFirst } = await seeded();
    const last = await store.list({ last: 3 });
    expect(last.edges.map((e) => e.job.id)).toEqual(newestFirst.slice(-3));
    expect(last).toMatchObject({ hasPreviousPage: true, hasNextPage: false });
    const all = await store.list({ first: 25 });
    const cursors = all.edges.map((e) => e.cursor);
    const between = await store.list({ first: 10, after: cursors[4], before: cursors[9] });
    expect(between.edges.map((e) => e.job.id)).toEqual(newestFirst.slice(5, 9));
    expect(between).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
    const firstAndLast = await store.list({ first: 10, last: 3 });
    expect(firstAndLast.edges.map((e) => e.job.id)).toEqual(newestFirst.slice(7, 10));
    expect(firstAndLast).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
    expect((await store.list({ first: 0 })).edges).toEqual([]);
  });

  it('filters by status (one or several) and model; totalCount counts the filtered set', async () => {
    const { store } = await seeded();
    const cancelled = await store.list({ status: ['CANCELLED'], first: 100 });
    expect(cancelled.totalCount).toBe(5);
    expect(cancelled.edges.every((e) => e.job.status === 'CANCELLED')).toBe(true);
    const gen = await store.list({ model: 'fortune-lm', first: 2 });
    expect(gen.totalCount).toBe(9);
    expect(gen.edges).toHaveLength(2);
    expect(gen.hasNextPage).toBe(true);
    const both = await store.list({ model: 'fortune-lm', status: ['QUEUED', 'CANCELLED'], first: 100 });
    expect(both.totalCount).toBe(9);
    const genQueued = await store.list({ model: 'fortune-lm', status: ['QUEUED'] });
    expect(genQueued.totalCount).toBe(9 - 2); // i = 0 and 15 are both GENERATE and cancelled
    expect((await store.list({ owner: 'nobody' })).totalCount).toBe(0);
  });

  it('rejects a malformed cursor or page size with BAD_INPUT', async () => {
    const store = open();
    await expect(store.list({ after: 'garbage' })).rejects.toMatchObject({ extensions: { code: 'BAD_INPUT' } });
    await expect(store.list({ first: -1 })).rejects.toMatchObject({ extensions: { code: 'BAD_INPUT' } });
    await expect(store.list({ first: 1000 })).rejects.toMatchObject({ extensions: { code: 'BAD_INPUT' } });
    expect(decodeCursor(encodeCursor({ createdAt: 5, id: 'ABC' }))).toEqual({ createdAt: 5, id: 'ABC' });
  });
});

describe('newJobId', () => {
  it('sorts by creation time, and in order within one millisecond', () => {
    const ids = [newJobId(5_000), newJobId(5_000), newJobId(5_000), newJobId(5_001)];
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(4);
    expect(ids.every((id) => /^[0-9A-Z]{26}$/.test(id))).toBe(true);
  });
});
