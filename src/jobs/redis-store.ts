import type { Redis } from 'ioredis';
import { inferqlError } from '../errors.js';
import {
  type BeginOutcome,
  type CancelOutcome,
  type Change,
  checkPageSize,
  type CursorKey,
  DEFAULT_PAGE_SIZE,
  decodeCursor,
  type DispatchedJobStore,
  encodeCursor,
  type Finish,
  interruptedError,
  type JobPage,
  type ListQuery,
  type NewJob,
} from './store.js';
import { isFinished, JOB_STATUSES, type Job, type JobError, type JobEvent, type JobInput, type JobProgress, type JobStatus, type NewJobEvent } from './types.js';

/**
 * The one write of this store: a compare-and-set of one job. It applies only
 * if the job is still at the version the caller read, so every transition
 * (decided in TypeScript) is conditional and a job finishes at most once. It
 * never decodes the JSON it is given (cjson would re-encode floats), it only
 * stores strings and keeps the indexes in step with the job.
 *
 * KEYS: 1 job hash, 2 its events list, 3 jobs by createdAt, 4 finished jobs by finishedAt, 5 counts by status.
 * ARGV: 1 expected version ('0': the job must not exist yet), 2 new version ('0': delete the job),
 *       3 id, 4 status before ('' for a new job), 5 status after, 6 createdAt, 7 finishedAt ('' when not finished),
 *       8 n, then n field/value pairs to set in the hash, then the events to append (JSON, numbered already).
 * Returns 1 when it applied, 0 on a version conflict.
 */
const CAS_LUA = `
local current = redis.call('HGET', KEYS[1], 'version')
if (current or '0') ~= ARGV[1] then return 0 end
local id, before, after = ARGV[3], ARGV[4], ARGV[5]
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('HINCRBY', KEYS[5], before, -1)
  return 1
end
local n = tonumber(ARGV[8])
local fields = { 'version', ARGV[2] }
for i = 9, 8 + 2 * n do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if before ~= after then
  if before ~= '' then redis.call('HINCRBY', KEYS[5], before, -1) end
  redis.call('HINCRBY', KEYS[5], after, 1)
end
if ARGV[1] == '0' then redis.call('ZADD', KEYS[3], ARGV[6], id) end
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[4], ARGV[7], id) end
for i = 9 + 2 * n, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
return 1
`;

/** The name the script is defined under on the connection (versioned, in case the script changes). */
const CAS = 'inferqlJobCasV1';
type CasCommand = (...keysThenArgs: string[]) => Promise<number>;

/** A job that keeps changing under a write this often is given up on (in practice a conflict is retried once or twice). */
const MAX_TRIES = 100;
const PING_TIMEOUT_MS = 1_000;
/** Finished jobs deleted concurrently per round of `prune`. */
const PRUNE_BATCH = 200;

export interface RedisJobStoreOptions {
  /** Prepended to every key, so several stores (and tests) can share one server. */
  prefix?: string;
}

/** A job's next state and the events that go with it, before they are written. */
interface Draft {
  job: Job;
  events: NewJobEvent[];
}

const from = (job: Job): Draft => ({ job, events: [] });

/**
 * One step of a job's life on top of `draft`. The version grows by one for the
 * change and by one more when it appends events, just as SqliteJobStore's row
 * update and its event append each bump it: both stores give a job the same
 * versions, and a composed change (a retry: QUEUED then RUNNING) the same
 * numbers as the two steps SQLite takes for it.
 */
function step(draft: Draft, fields: Partial<Job>, events: NewJobEvent[] = []): Draft {
  const { job } = draft;
  return {
    job: { ...job, ...fields, version: job.version + 1 + (events.length > 0 ? 1 : 0), lastSeq: job.lastSeq + events.length },
    events: [...draft.events, ...events],
  };
}

const statusEvent = (status: JobStatus, extra: Partial<NewJobEvent> = {}): NewJobEvent => ({ type: 'STATUS', status, attempt: null, error: null, output: null, ...extra });

/** QUEUED → RUNNING with one more attempt (SqliteJobStore's claim). */
function startRun(draft: Draft, now: number): Draft {
  const attempt = draft.job.attempts + 1;
  return step(draft, { status: 'RUNNING', startedAt: now, attempts: attempt, progress: null }, [statusEvent('RUNNING', { attempt })]);
}

/** RUNNING → QUEUED. `giveBack`: the run does not count (a graceful release); otherwise it does (its worker died). */
function requeue(draft: Draft, giveBack: boolean): Draft {
  const attempts = Math.max(0, draft.job.attempts - (giveBack ? 1 : 0));
  return step(draft, { status: 'QUEUED', startedAt: null, attempts, progress: null }, [statusEvent('QUEUED')]);
}

/** RUNNING → SUCCEEDED or FAILED; the progress stays as it was unless the finish brings one. */
function finishRun(draft: Draft, finish: Finish, now: number): Draft {
  const failed = finish.status === 'FAILED';
  return step(
    draft,
    { status: finish.status, finishedAt: now, result: failed ? null : (finish.result ?? null), error: failed ? finish.error : null, progress: finish.progress ?? draft.job.progress },
    [statusEvent(finish.status, { error: failed ? finish.error : null })],
  );
}

/** The error of a job whose workers died `attempts` times (the same words as SqliteJobStore.recover). */

/** An event as stored: every field present, so it reads back as SqliteJobStore's do. */
function eventJson(event: JobEvent): string {
  const { jobId, seq, at, type } = event;
  return JSON.stringify({ jobId, seq, at, type, status: event.status ?? null, attempt: event.attempt ?? null, error: event.error ?? null, output: event.output ?? null });
}

function toEvent(json: string): JobEvent {
  const e = JSON.parse(json) as JobEvent;
  return { jobId: e.jobId, seq: e.seq, at: e.at, type: e.type, status: e.status ?? null, attempt: e.attempt ?? null, error: e.error ?? null, output: e.output ?? null };
}

/** The pagination order: >0 when `a` is newer than `b`. Ids are ASCII, so this is Redis's byte order too. */
function compareKeys(a: CursorKey, b: CursorKey): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** How many of `items` from the start satisfy `test` (which holds for a prefix of them). */
function prefixLength<T>(items: readonly T[], test: (item: T) => boolean): number {
  const i = items.findIndex((item) => !test(item));
  return i === -1 ? items.length : i;
}

interface PageRequest {
  first: number | null;
  last: number | null;
  after: CursorKey | null;
  before: CursorKey | null;
}

/**
 * The page a Relay query asks for out of `keys` (every matching job, newest
 * first), by SqliteJobStore.list's rules: `after`/`before` bound the range
 * (older than `after`, newer than `before`); `first` takes from its newest
 * end, then `last` from the oldest end of that; `last` alone takes the oldest;
 * neither takes DEFAULT_PAGE_SIZE newest. Jobs beyond a cursor count as a page
 * on that side.
 */
function paginate(keys: readonly CursorKey[], { first, last, after, before }: PageRequest): { keys: CursorKey[]; hasNextPage: boolean; hasPreviousPage: boolean } {
  // Newest first: the jobs not older than `after` are a prefix, those newer than `before` too.
  const start = after ? prefixLength(keys, (k) => compareKeys(k, after) >= 0) : 0;
  const end = before ? prefixLength(keys, (k) => compareKeys(k, before) > 0) : keys.length;
  const range = keys.slice(start, Math.max(start, end));
  let page: CursorKey[];
  let hasNextPage: boolean;
  let hasPreviousPage: boolean;
  if (first !== null || last === null) {
    const take = first ?? DEFAULT_PAGE_SIZE;
    page = range.slice(0, take);
    hasNextPage = range.length > take;
    hasPreviousPage = last !== null && page.length > last;
    if (last !== null) page = page.slice(Math.max(0, page.length - last));
  } else {
    page = range.slice(Math.max(0, range.length - last));
    hasNextPage = false;
    hasPreviousPage = range.length > last;
  }
  return {
    keys: page,
    hasNextPage: hasNextPage || (before !== null && end < keys.length),
    hasPreviousPage: hasPreviousPage || (after !== null && start > 0),
  };
}

/** What `update` read and wrote. */
interface Updated {
  /** The job as read by the try that decided (the last one). */
  before: Job;
  /** What was written; null when the job was not in a state the transition applies to. */
  change: Change | null;
  /** The job's input JSON, when asked for. */
  input: string | null;
}

/**
 * A shared, durable job store on Redis. Each job is a hash (`version`, `json`:
 * the Job as JSON, `input`, and `status`/`model`/`owner` for list filters)
 * with its events in a list (seq n at index n-1); a sorted set of all jobs by
 * createdAt serves `list`, one of finished jobs by finishedAt serves `prune`,
 * and a hash counts jobs by status. Every change goes through one Lua
 * compare-and-set (CAS_LUA): the transition is decided here in TypeScript on
 * the job as read, written only if its version is unchanged, and re-read and
 * decided again on a conflict (optimistic concurrency). Behaviour, events and
 * versions match SqliteJobStore's.
 *
 * The connection belongs to the caller: `close` leaves it open.
 */
export class RedisJobStore implements DispatchedJobStore {
  readonly prefix: string;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    options: RedisJobStoreOptions = {},
  ) {
    this.prefix = options.prefix ?? 'inferql:';
    if (typeof (redis as unknown as Record<string, unknown>)[CAS] !== 'function') redis.defineCommand(CAS, { numberOfKeys: 5, lua: CAS_LUA });
  }

  private jobKey = (id: string) => `${this.prefix}job:${id}`;
  private eventsKey = (id: string) => `${this.prefix}events:${id}`;
  private get createdKey() {
    return `${this.prefix}jobs:by-created`;
  }
  private get finishedKey() {
    return `${this.prefix}jobs:by-finished`;
  }
  private get countsKey() {
    return `${this.prefix}jobs:counts`;
  }

  private checkOpen(): void {
    if (this.closed) throw inferqlError('UNAVAILABLE', 'The job store is closed.');
  }

  private async cas(id: string, args: (string | number)[]): Promise<boolean> {
    const command = (this.redis as unknown as Record<typeof CAS, CasCommand>)[CAS].bind(this.redis);
    const keys = [this.jobKey(id), this.eventsKey(id), this.createdKey, this.finishedKey, this.countsKey];
    return (await command(...keys, ...args.map(String))) === 1;
  }

  /**
   * Writes `draft` over `before` (null: a new job) if the job is still at
   * `before`'s version; `fields` adds hash fields. Null on a conflict. The job
   * comes back as stored (JSON and back, as SQLite's columns do) and the
   * events as given, numbered after `before`'s last.
   */
  private async write(before: Job | null, draft: Draft, now: number, fields: Record<string, string> = {}): Promise<Change | null> {
    const { job } = draft;
    const first = job.lastSeq - draft.events.length + 1;
    const events: JobEvent[] = draft.events.map((event, i) => ({ jobId: job.id, seq: first + i, at: now, ...event }));
    const json = JSON.stringify(job);
    const pairs = Object.entries({ json, status: job.status, ...fields });
    const applied = await this.cas(job.id, [
      before?.version ?? 0,
      job.version,
      job.id,
      before?.status ?? '',
      job.status,
      job.createdAt,
      job.finishedAt ?? '',
      pairs.length,
      ...pairs.flat(),
      ...events.map(eventJson),
    ]);
    return applied ? { job: JSON.parse(json) as Job, events } : null;
  }

  private async read(id: string, withInput: boolean): Promise<{ job: Job; input: string | null } | null> {
    const [json, input = null] = await this.redis.hmget(this.jobKey(id), 'json', ...(withInput ? ['input'] : []));
    return json ? { job: JSON.parse(json) as Job, input } : null;
  }

  /**
   * Reads the job, lets `decide` pick the transition (null: none applies, so
   * nothing is written) and writes it if nobody changed the job meanwhile;
   * otherwise reads it again. Null when there is no such job.
   */
  private async update(id: string, now: number, decide: (job: Job) => Draft | null, withInput = false): Promise<Updated | null> {
    this.checkOpen();
    for (let tries = 0; tries < MAX_TRIES; tries++) {
      const stored = await this.read(id, withInput);
      if (!stored) return null;
      const draft = decide(stored.job);
      const change = draft && (await this.write(stored.job, draft, now));
      if (!draft || change) return { before: stored.job, change, input: stored.input };
    }
    throw inferqlError('UNAVAILABLE', `Job ${id} kept changing under a write (${MAX_TRIES} tries).`);
  }

  async create(job: NewJob): Promise<Change> {
    this.checkOpen();
    const { input } = job;
    const fresh: Job = {
      id: job.id,
      kind: input.kind,
      model: input.model,
      status: 'QUEUED',
      priority: job.priority,
      deadlineMs: job.deadlineMs,
      owner: job.owner,
      createdAt: job.createdAt,
      startedAt: null,
      finishedAt: null,
      attempts: 0,
      error: null,
      progress: null,
      result: null,
      version: 0,
      lastSeq: 0,
    };
    const fields: Record<string, string> = { input: JSON.stringify(input), model: input.model, ...(job.owner === null ? {} : { owner: job.owner }) };
    const change = await this.write(null, step(from(fresh), {}, [statusEvent('QUEUED')]), job.createdAt, fields);
    if (!change) throw new Error(`A job with id ${job.id} already exists.`);
    return change;
  }

  async get(id: string): Promise<Job | null> {
    this.checkOpen();
    return (await this.read(id, false))?.job ?? null;
  }

  async begin(id: string, now: number, maxAttempts: number): Promise<BeginOutcome> {
    const updated = await this.update(
      id,
      now,
      (job) => {
        if (job.status === 'QUEUED') return startRun(from(job), now);
        if (job.status !== 'RUNNING') return null;
        // Its worker died: run it again, shown as a retry, unless it has had its runs.
        if (job.attempts >= maxAttempts) return finishRun(from(job), { status: 'FAILED', error: interruptedError(job.attempts) }, now);
        return startRun(requeue(from(job), false), now);
      },
      true,
    );
    const change = updated?.change;
    if (!change) return { kind: 'skip' };
    if (change.job.status !== 'RUNNING') return { kind: 'failed', change };
    return { kind: 'run', change: { job: { ...change.job, input: JSON.parse(updated.input!) as JobInput }, events: change.events } };
  }

  async progress(id: string, progress: JobProgress, events: NewJobEvent[], now: number, run?: number): Promise<Change | null> {
    const updated = await this.update(id, now, (job) => (isRun(job, run) ? step(from(job), { progress }, events) : null));
    return updated?.change ?? null;
  }

  async finish(id: string, finish: Finish, now: number, run?: number): Promise<Change | null> {
    const updated = await this.update(id, now, (job) => (isRun(job, run) ? finishRun(from(job), finish, now) : null));
    return updated?.change ?? null;
  }

  async cancel(id: string, now: number): Promise<CancelOutcome | null> {
    const updated = await this.update(id, now, (job) => {
      if (job.status !== 'QUEUED' && job.status !== 'RUNNING') return null;
      const error: JobError = { code: 'CANCELLED', message: job.status === 'QUEUED' ? 'Cancelled before it ran.' : 'Cancelled while running.' };
      return step(from(job), { status: 'CANCELLED', finishedAt: now, error }, [statusEvent('CANCELLED', { error })]);
    });
    if (!updated) return null;
    const previous = updated.before.status;
    return updated.change ? { ...updated.change, previous } : { job: updated.before, events: [], previous };
  }

  async release(id: string, now: number, run?: number): Promise<Change | null> {
    const updated = await this.update(id, now, (job) => (isRun(job, run) ? requeue(from(job), true) : null));
    return updated?.change ?? null;
  }

  /** Event seq n is at index n-1 of the list: events are only ever appended, numbered from the job's lastSeq. */
  async eventsAfter(id: string, after: number): Promise<JobEvent[]> {
    this.checkOpen();
    const events = await this.redis.lrange(this.eventsKey(id), Math.max(0, Math.floor(after)), -1);
    return events.map(toEvent);
  }

  /** Deletes each finished job through the same compare-and-set (a finished job never changes, so it only fails if another instance pruned it first). */
  async prune(finishedBefore: number): Promise<number> {
    this.checkOpen();
    const ids = await this.redis.zrangebyscore(this.finishedKey, '-inf', `(${finishedBefore}`);
    let pruned = 0;
    for (let i = 0; i < ids.length; i += PRUNE_BATCH) {
      const deleted = await Promise.all(ids.slice(i, i + PRUNE_BATCH).map((id) => this.remove(id, finishedBefore)));
      pruned += deleted.filter(Boolean).length;
    }
    return pruned;
  }

  private async remove(id: string, finishedBefore: number): Promise<boolean> {
    const job = (await this.read(id, false))?.job;
    if (!job || !isFinished(job.status) || job.finishedAt === null || job.finishedAt >= finishedBefore) return false;
    return this.cas(id, [job.version, 0, id, job.status, job.status, job.createdAt, '', 0]);
  }

  async countByStatus(): Promise<Record<JobStatus, number>> {
    this.checkOpen();
    const counts = await this.redis.hgetall(this.countsKey);
    return Object.fromEntries(JOB_STATUSES.map((status) => [status, Number(counts[status] ?? 0)])) as Record<JobStatus, number>;
  }

  /** True when Redis answers PING within a second; never throws. */
  async ping(): Promise<boolean> {
    if (this.closed) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.redis.ping().then((reply) => reply === 'PONG'), timeout]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Reads the whole createdAt index (and, with filters, each job's
   * status/model/owner fields, never its JSON) and pages in memory, then reads
   * the page's jobs: O(jobs kept) per call, which retention pruning bounds.
   * Not a snapshot: a job that changes meanwhile shows as it is when its page
   * is read.
   */
  async list(query: ListQuery): Promise<JobPage> {
    const first = checkPageSize(query.first, 'first');
    const last = checkPageSize(query.last, 'last');
    const after = query.after ? decodeCursor(query.after) : null;
    const before = query.before ? decodeCursor(query.before) : null;
    this.checkOpen();
    const flat = await this.redis.zrevrange(this.createdKey, 0, -1, 'WITHSCORES');
    let keys: CursorKey[] = [];
    for (let i = 0; i < flat.length; i += 2) keys.push({ id: flat[i]!, createdAt: Number(flat[i + 1]) });
    keys = await this.matching(keys, query);
    const page = paginate(keys, { first, last, after, before });
    const jobs = await this.hmgetMany(page.keys.map((k) => k.id), ['json']);
    const edges = jobs.flatMap(([json]) => (json ? [JSON.parse(json) as Job] : [])).map((job) => ({ cursor: encodeCursor({ createdAt: job.createdAt, id: job.id }), job }));
    return { edges, hasNextPage: page.hasNextPage, hasPreviousPage: page.hasPreviousPage, totalCount: keys.length };
  }

  /** The keys whose jobs pass the query's filters (all of them when it has none), by SqliteJobStore's rules. */
  private async matching(keys: CursorKey[], query: ListQuery): Promise<CursorKey[]> {
    const statuses = query.status && query.status.length > 0 ? new Set<string>(query.status) : null;
    if (!statuses && !query.model && !query.owner) return keys;
    const rows = await this.hmgetMany(keys.map((k) => k.id), ['status', 'model', 'owner']);
    return keys.filter((_, i) => {
      const [status, model, owner] = rows[i]!;
      return status !== null && (!statuses || statuses.has(status)) && (!query.model || model === query.model) && (!query.owner || owner === query.owner);
    });
  }

  /** HMGET of many jobs in one round trip. */
  private async hmgetMany(ids: string[], fields: string[]): Promise<(string | null)[][]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hmget(this.jobKey(id), ...fields);
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([error, value]) => {
      if (error) throw error;
      return value as (string | null)[];
    });
  }

  /** Stops this store; the connection is the caller's, so it stays open. */
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** The job is RUNNING, in the run that started at `run` when one is named (a stale run writes nothing). */
function isRun(job: Job, run: number | undefined): boolean {
  return job.status === 'RUNNING' && (run === undefined || job.startedAt === run);
}
