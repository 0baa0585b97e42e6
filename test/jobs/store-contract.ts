import { afterEach, describe, expect, it } from 'vitest';
import { newJobId } from '../../src/jobs/ids.js';
import { type Change, decodeCursor, encodeCursor, type JobStore, type NewJob } from '../../src/jobs/store.js';
import type { ClaimedJob, JobEvent, JobInput } from '../../src/jobs/types.js';

/**
 * What every JobStore must do, whatever keeps the jobs: the SQLite and the
 * Redis store both run this suite (test/jobs/sqlite-store.test.ts,
 * test/jobs/redis-store.test.ts). Behaviour that only one store has (claim
 * and recover, group commit, begin) is tested in that store's file.
 */

/** A store under test, with the way its workers start a job. */
export type ContractStore = JobStore & {
  /**
   * Makes job `id` RUNNING as the store's workers do (SQLite: claim, and the
   * tests make `id` the next job in its queue; Redis: begin). Null when there
   * is nothing to start.
   */
  startJob(id: string, now: number): Promise<Change<ClaimedJob> | null>;
};

export const INFER: JobInput = { kind: 'INFER', model: 'digits', inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] };
export const GENERATE: JobInput = { kind: 'GENERATE', model: 'fortune-lm', prompt: 'A', params: { seed: 1 } };

let clock = 1_700_000_000_000;
export function newJob(input: JobInput = INFER, extra: Partial<NewJob> = {}): NewJob {
  const createdAt = extra.createdAt ?? clock++;
  return { id: newJobId(createdAt), input, priority: 0, deadlineMs: null, owner: null, createdAt, ...extra };
}

/** An OUTPUT event as a generation's worker writes it. */
export const out = (index: number, text: string) => ({ type: 'OUTPUT' as const, status: null, attempt: null, error: null, output: { index, tokenId: index + 10, text } });

export const GENERATED = {
  kind: 'GENERATE' as const,
  generation: { text: 'ab', tokenIds: [10, 11], finishReason: 'LENGTH' as const, usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 }, metrics: { queueMs: 0, ttftMs: 1, tokensPerSecond: 2, totalMs: 3 } },
};

export function describeJobStore(name: string, openStore: () => Promise<ContractStore>): void {
  const stores: ContractStore[] = [];
  async function open(): Promise<ContractStore> {
    const store = await openStore();
    stores.push(store);
    return store;
  }

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  describe(name, () => {
    it('creates a QUEUED job with event 1, and reads it back', async () => {
      const store = await open();
      const { job, events } = await store.create(newJob(INFER, { priority: 3, deadlineMs: 500, owner: 'k1' }));
      expect(job).toMatchObject({ kind: 'INFER', model: 'digits', status: 'QUEUED', priority: 3, deadlineMs: 500, owner: 'k1', attempts: 0, lastSeq: 1, startedAt: null, result: null });
      expect(events).toEqual([expect.objectContaining({ jobId: job.id, seq: 1, type: 'STATUS', status: 'QUEUED' })]);
      expect(await store.get(job.id)).toEqual(job);
      expect(await store.get('nope')).toBeNull();
    });

    it('rejects a second job with the same id and keeps the first as it was', async () => {
      const store = await open();
      const job = newJob();
      const first = await store.create(job);
      await expect(store.create({ ...job, priority: 9 })).rejects.toThrow();
      expect(await store.get(job.id)).toEqual(first.job);
      expect(await store.eventsAfter(job.id, 0)).toHaveLength(1);
      expect((await store.list({})).totalCount).toBe(1);
      expect(await store.countByStatus()).toMatchObject({ QUEUED: 1 });
    });

    it('numbers progress events after the last one and finishes once, with the result and the status event together', async () => {
      const store = await open();
      const { job } = await store.create(newJob(GENERATE));
      const started = await store.startJob(job.id, 1);
      expect(started!.job).toMatchObject({ id: job.id, status: 'RUNNING', attempts: 1, startedAt: 1, input: GENERATE, lastSeq: 2 });
      const p1 = store.progress(job.id, { completed: 1, total: null, text: 'a' }, [out(0, 'a')], 2);
      const p2 = store.progress(job.id, { completed: 2, total: null, text: 'ab' }, [out(1, 'b')], 3);
      const result = GENERATED;
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
      // The events read back are the ones the changes returned, field for field.
      const written: JobEvent[] = [...started!.events, ...c1!.events, ...c2!.events, ...done!.events];
      expect(events.slice(1)).toEqual(written);
      expect(events[1]).toEqual({ jobId: job.id, seq: 2, at: 1, type: 'STATUS', status: 'RUNNING', attempt: 1, error: null, output: null });
      // Versions only grow.
      expect(started!.job.version).toBeLessThan(c1!.job.version);
      expect(c1!.job.version).toBeLessThan(c2!.job.version);
      expect(c2!.job.version).toBeLessThan(done!.job.version);
      expect(await store.get(job.id)).toEqual(done!.job);
    });

    it('a failure keeps the progress unless it brings one, and records the error in the job and the event', async () => {
      const store = await open();
      const { job } = await store.create(newJob(GENERATE));
      await store.startJob(job.id, 1);
      await store.progress(job.id, { completed: 1, total: 5, text: 'a' }, [], 2);
      const error = { code: 'INTERNAL', message: 'boom' };
      const failed = await store.finish(job.id, { status: 'FAILED', error }, 3);
      expect(failed!.job).toMatchObject({ status: 'FAILED', error, result: null, finishedAt: 3, progress: { completed: 1, total: 5, text: 'a' }, lastSeq: 3 });
      expect(failed!.events).toEqual([{ jobId: job.id, seq: 3, at: 3, type: 'STATUS', status: 'FAILED', attempt: null, error, output: null }]);
      expect(await store.eventsAfter(job.id, 2)).toEqual(failed!.events);
    });

    it('cancels a queued or running job; a finished one comes back unchanged', async () => {
      const store = await open();
      const queued = (await store.create(newJob())).job;
      const running = (await store.create(newJob())).job;
      await store.startJob(queued.id, 1); // `queued` (older) is the one a claim takes
      const a = await store.cancel(queued.id, 9);
      expect(a).toMatchObject({ previous: 'RUNNING', job: { status: 'CANCELLED', finishedAt: 9, error: { code: 'CANCELLED' } } });
      const b = await store.cancel(running.id, 9);
      expect(b).toMatchObject({ previous: 'QUEUED', job: { status: 'CANCELLED' }, events: [expect.objectContaining({ status: 'CANCELLED' })] });
      const again = await store.cancel(running.id, 10);
      expect(again).toMatchObject({ previous: 'CANCELLED', events: [] });
      expect(again!.job).toEqual(b!.job);
      expect(await store.cancel('missing', 1)).toBeNull();
      // Nothing is left to run.
      expect(await store.startJob(queued.id, 11)).toBeNull();
      expect(await store.startJob(running.id, 11)).toBeNull();
    });

    it('release gives the run back: QUEUED, attempts as before', async () => {
      const store = await open();
      const { job } = await store.create(newJob());
      await store.startJob(job.id, 1);
      const released = await store.release(job.id, 2);
      expect(released!.job).toMatchObject({ status: 'QUEUED', attempts: 0, startedAt: null });
      expect(released!.events[0]).toMatchObject({ status: 'QUEUED' });
      expect(await store.release(job.id, 3)).toBeNull();
    });

    it('writes that name another run (a stale one) change nothing; the current run writes as usual', async () => {
      const store = await open();
      const { job } = await store.create(newJob(GENERATE));
      const { input: _input, ...started } = (await store.startJob(job.id, 100))!.job;
      expect(started.startedAt).toBe(100);
      const stale = 99;
      expect(await store.progress(job.id, { completed: 1, total: null, text: 'a' }, [out(0, 'a')], 101, stale)).toBeNull();
      expect(await store.finish(job.id, { status: 'SUCCEEDED', result: GENERATED }, 102, stale)).toBeNull();
      expect(await store.release(job.id, 103, stale)).toBeNull();
      expect(await store.get(job.id)).toEqual(started);
      expect(await store.progress(job.id, { completed: 1, total: null, text: 'a' }, [out(0, 'a')], 104, 100)).not.toBeNull();
      expect((await store.finish(job.id, { status: 'SUCCEEDED', result: GENERATED }, 105, 100))!.job.status).toBe('SUCCEEDED');
    });

    it('prunes jobs that finished before the cutoff, with their events, and nothing else', async () => {
      const store = await open();
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
      expect((await store.list({})).edges.map((e) => e.job.id)).toEqual([queued.id, recent.id]);
      expect(await store.prune(150)).toBe(0);
    });

    it('is closed once closed', async () => {
      const store = await open();
      await store.close();
      await expect(store.get('x')).rejects.toMatchObject({ extensions: { code: 'UNAVAILABLE' } });
      expect(await store.ping()).toBe(false);
    });
  });

  describe(`${name}.list`, () => {
    /** 25 jobs: every third a GENERATE, statuses mixed; several share a creation millisecond. */
    async function seeded() {
      const store = await open();
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

    it('gives the jobs as stored, the default page size, and cursors that point at each job', async () => {
      const { store, newestFirst } = await seeded();
      const page = await store.list({});
      expect(page.edges.map((e) => e.job.id)).toEqual(newestFirst.slice(0, 20));
      expect(page).toMatchObject({ hasNextPage: true, hasPreviousPage: false, totalCount: 25 });
      for (const edge of page.edges) {
        expect(edge.job).toEqual(await store.get(edge.job.id));
        expect(decodeCursor(edge.cursor)).toEqual({ createdAt: edge.job.createdAt, id: edge.job.id });
      }
      // A range that is empty, and cursors past either end.
      const cursors = page.edges.map((e) => e.cursor);
      expect(await store.list({ after: cursors[3], before: cursors[2] })).toMatchObject({ edges: [], hasNextPage: true, hasPreviousPage: true, totalCount: 25 });
      const past = encodeCursor({ createdAt: 1, id: 'A' });
      expect(await store.list({ after: past })).toMatchObject({ edges: [], hasNextPage: false, hasPreviousPage: true });
      expect((await store.list({ before: past, first: 100 })).edges).toHaveLength(25);
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

    it('filters by owner, and an empty status list filters nothing', async () => {
      const store = await open();
      const mine = await store.create(newJob(INFER, { owner: 'k1' }));
      await store.create(newJob(INFER, { owner: 'k2' }));
      await store.create(newJob());
      const page = await store.list({ owner: 'k1' });
      expect(page.edges.map((e) => e.job)).toEqual([mine.job]);
      expect(page.totalCount).toBe(1);
      expect((await store.list({ status: [] })).totalCount).toBe(3);
    });

    it('rejects a malformed cursor or page size with BAD_INPUT', async () => {
      const store = await open();
      await expect(store.list({ after: 'garbage' })).rejects.toMatchObject({ extensions: { code: 'BAD_INPUT' } });
      await expect(store.list({ first: -1 })).rejects.toMatchObject({ extensions: { code: 'BAD_INPUT' } });
      await expect(store.list({ first: 1000 })).rejects.toMatchObject({ extensions: { code: 'BAD_INPUT' } });
      expect(decodeCursor(encodeCursor({ createdAt: 5, id: 'ABC' }))).toEqual({ createdAt: 5, id: 'ABC' });
    });
  });
}
