import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { newJobId } from '../../src/jobs/ids.js';
import { SqliteJobStore } from '../../src/jobs/sqlite-store.js';
import { type ContractStore, describeJobStore, GENERATE, newJob } from './store-contract.js';

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

/** The contract's way to start a job: a claim, which takes the next job in the queue (the tests make it `id`). */
function contractStore(store: SqliteJobStore): ContractStore {
  return Object.assign(store, {
    async startJob(id: string, now: number) {
      const [claimed] = await store.claim(1, now);
      if (claimed && claimed.job.id !== id) throw new Error(`claim took ${claimed.job.id}, not ${id}`);
      return claimed ?? null;
    },
  });
}

describeJobStore('SqliteJobStore', async () => contractStore(open()));

/** What only the embedded store does: it is its own queue (claim, recover) and commits in groups. */
describe('SqliteJobStore', () => {
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

describe('newJobId', () => {
  it('sorts by creation time, and in order within one millisecond', () => {
    const ids = [newJobId(5_000), newJobId(5_000), newJobId(5_000), newJobId(5_001)];
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(4);
    expect(ids.every((id) => /^[0-9A-Z]{26}$/.test(id))).toBe(true);
  });
});
