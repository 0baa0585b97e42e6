import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { inferqlError } from '../errors.js';
import {
  type CancelOutcome,
  type Change,
  checkPageSize,
  type CursorKey,
  DEFAULT_PAGE_SIZE,
  decodeCursor,
  encodeCursor,
  type Finish,
  interruptedError,
  type JobPage,
  type QueueingJobStore,
  type ListQuery,
  type NewJob,
  type RecoveryOutcome,
} from './store.js';
import { type ClaimedJob, JOB_STATUSES, type Job, type JobError, type JobEvent, type JobProgress, type JobStatus, type NewJobEvent } from './types.js';

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id          TEXT PRIMARY KEY,
  kind        TEXT NOT NULL,
  model       TEXT NOT NULL,
  status      TEXT NOT NULL,
  priority    INTEGER NOT NULL,
  deadline_ms INTEGER,
  owner       TEXT,
  input       TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  started_at  INTEGER,
  finished_at INTEGER,
  attempts    INTEGER NOT NULL DEFAULT 0,
  error       TEXT,
  progress    TEXT,
  result      TEXT,
  version     INTEGER NOT NULL DEFAULT 1,
  last_seq    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_by_queue ON jobs (status, priority DESC, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_model ON jobs (model, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_events (
  job_id TEXT NOT NULL,
  seq    INTEGER NOT NULL,
  at     INTEGER NOT NULL,
  type   TEXT NOT NULL,
  data   TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
`;

/** Columns of a JobRecord (the input is read only when a job is claimed). */
const RECORD = 'id, kind, model, status, priority, deadline_ms, owner, created_at, started_at, finished_at, attempts, error, progress, result, version, last_seq';

interface JobRow {
  id: string;
  kind: string;
  model: string;
  status: string;
  priority: number;
  deadline_ms: number | null;
  owner: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  attempts: number;
  error: string | null;
  progress: string | null;
  result: string | null;
  version: number;
  last_seq: number;
  input?: string;
}

interface EventRow {
  job_id: string;
  seq: number;
  at: number;
  type: string;
  data: string;
}

const json = (value: unknown) => (value === null || value === undefined ? null : JSON.stringify(value));

function toJob(row: JobRow): Job {
  return {
    id: row.id,
    kind: row.kind as Job['kind'],
    model: row.model,
    status: row.status as JobStatus,
    priority: row.priority,
    deadlineMs: row.deadline_ms,
    owner: row.owner,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    attempts: row.attempts,
    error: row.error === null ? null : JSON.parse(row.error),
    progress: row.progress === null ? null : JSON.parse(row.progress),
    result: row.result === null ? null : JSON.parse(row.result),
    version: row.version,
    lastSeq: row.last_seq,
  };
}

function toEvent(row: EventRow): JobEvent {
  const data = JSON.parse(row.data) as Omit<NewJobEvent, 'type'>;
  return { jobId: row.job_id, seq: row.seq, at: row.at, type: row.type as JobEvent['type'], status: data.status ?? null, attempt: data.attempt ?? null, error: data.error ?? null, output: data.output ?? null };
}

const statusEvent = (status: JobStatus, extra: Partial<NewJobEvent> = {}): NewJobEvent => ({ type: 'STATUS', status, attempt: null, error: null, output: null, ...extra });

interface Pending {
  op: () => unknown;
  /** Must reach the disk before it resolves (all but progress writes). */
  durable: boolean;
  resolve: (value: any) => void;
  reject: (error: unknown) => void;
}

/**
 * The embedded job store: one SQLite file (WAL) in the data directory.
 * Operations queue up and run together in one transaction on the next turn
 * of the event loop (group commit): one fsync covers every job submitted,
 * claimed, finished or cancelled in that turn, and such a change resolves
 * only once it is on disk (synchronous=FULL). A turn with nothing but
 * progress (output chunks of a generation) commits without an fsync
 * (synchronous=NORMAL): it survives a process crash, and a power cut can
 * lose only a tail of it, never a status change or a result, since the
 * next durable commit syncs everything before it. Each operation runs in its
 * own savepoint, so one failing leaves the others alone. Reads join the same
 * queue, so a read sees every write requested before it.
 */
export class SqliteJobStore implements QueueingJobStore {
  readonly path: string;
  private readonly db: Database.Database;
  private pending: Pending[] = [];
  private closed = false;
  private synchronous: 'FULL' | 'NORMAL' = 'FULL';
  private readonly statements;

  constructor(dataDir: string, file = 'jobs.sqlite') {
    mkdirSync(dataDir, { recursive: true });
    this.path = join(dataDir, file);
    this.db = new Database(this.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = OFF');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw new Error(`${this.path} was written by a newer inferql (schema ${version}, this one knows ${SCHEMA_VERSION}).`);
    this.db.exec(SCHEMA);
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    const db = this.db;
    this.statements = {
      insertJob: db.prepare(
        `INSERT INTO jobs (id, kind, model, status, priority, deadline_ms, owner, input, created_at, attempts, version, last_seq)
         VALUES (@id, @kind, @model, 'QUEUED', @priority, @deadlineMs, @owner, @input, @createdAt, 0, 1, 0)`,
      ),
      insertEvent: db.prepare('INSERT INTO job_events (job_id, seq, at, type, data) VALUES (?, ?, ?, ?, ?)'),
      bumpSeq: db.prepare<[number, string], { last_seq: number }>('UPDATE jobs SET last_seq = last_seq + ?, version = version + 1 WHERE id = ? RETURNING last_seq'),
      get: db.prepare<[string], JobRow>(`SELECT ${RECORD} FROM jobs WHERE id = ?`),
      input: db.prepare<[string], { input: string }>('SELECT input FROM jobs WHERE id = ?'),
      queued: db.prepare<[number], { id: string }>(`SELECT id FROM jobs WHERE status = 'QUEUED' ORDER BY priority DESC, created_at, id LIMIT ?`),
      start: db.prepare<[number, string], JobRow>(
        `UPDATE jobs SET status = 'RUNNING', started_at = ?, attempts = attempts + 1, progress = NULL, version = version + 1
         WHERE id = ? AND status = 'QUEUED' RETURNING ${RECORD}, input`,
      ),
      // A run's writes name the run (its started_at); null means any run.
      progress: db.prepare<[string, string, number | null], JobRow>(
        `UPDATE jobs SET progress = ?, version = version + 1 WHERE id = ? AND status = 'RUNNING' AND started_at IS COALESCE(?, started_at) RETURNING ${RECORD}`,
      ),
      finish: db.prepare<[string, number, string | null, string | null, string | null, string, number | null], JobRow>(
        `UPDATE jobs SET status = ?, finished_at = ?, result = ?, error = ?, progress = COALESCE(?, progress), version = version + 1
         WHERE id = ? AND status = 'RUNNING' AND started_at IS COALESCE(?, started_at) RETURNING ${RECORD}`,
      ),
      cancel: db.prepare<[number, string, string], JobRow>(
        `UPDATE jobs SET status = 'CANCELLED', finished_at = ?, error = ?, version = version + 1
         WHERE id = ? AND status IN ('QUEUED', 'RUNNING') RETURNING ${RECORD}`,
      ),
      requeue: db.prepare<[number, string, number | null], JobRow>(
        `UPDATE jobs SET status = 'QUEUED', started_at = NULL, attempts = MAX(0, attempts - ?), progress = NULL, version = version + 1
         WHERE id = ? AND status = 'RUNNING' AND started_at IS COALESCE(?, started_at) RETURNING ${RECORD}`,
      ),
      running: db.prepare<[], { id: string; attempts: number }>(`SELECT id, attempts FROM jobs WHERE status = 'RUNNING' ORDER BY created_at, id`),
      eventsAfter: db.prepare<[string, number], EventRow>('SELECT job_id, seq, at, type, data FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq'),
      pruneEvents: db.prepare<[number], unknown>(
        `DELETE FROM job_events WHERE job_id IN (SELECT id FROM jobs WHERE finished_at < ? AND status IN ('SUCCEEDED', 'FAILED', 'CANCELLED'))`,
      ),
      pruneJobs: db.prepare<[number], unknown>(`DELETE FROM jobs WHERE finished_at < ? AND status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')`),
      counts: db.prepare<[], { status: string; n: number }>('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status'),
    };
  }

  /** Queues an operation for the next group commit. */
  private run<T>(op: () => T, durable = true): Promise<T> {
    if (this.closed) return Promise.reject(inferqlError('UNAVAILABLE', 'The job store is closed.'));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ op, durable, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    const synchronous = batch.some((item) => item.durable) ? 'FULL' : 'NORMAL';
    if (synchronous !== this.synchronous) {
      this.db.pragma(`synchronous = ${synchronous}`);
      this.synchronous = synchronous;
    }
    try {
      this.db
        .transaction(() => {
          for (const item of batch) {
            try {
              outcomes.push({ ok: true, value: this.db.transaction(item.op)() });
            } catch (error) {
              outcomes.push({ ok: false, error });
            }
          }
        })
        .immediate();
    } catch (error) {
      for (const item of batch) item.reject(error);
      return;
    }
    batch.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    });
  }

  /** Appends events to a job whose row was just changed; numbers them after its last one. */
  private append(id: string, events: readonly NewJobEvent[], at: number): JobEvent[] {
    if (events.length === 0) return [];
    const { last_seq } = this.statements.bumpSeq.get(events.length, id)!;
    const first = last_seq - events.length + 1;
    return events.map((event, i) => {
      const { type, ...data } = event;
      this.statements.insertEvent.run(id, first + i, at, type, JSON.stringify(data));
      return { jobId: id, seq: first + i, at, ...event };
    });
  }

  /** The record after `append` bumped its version and sequence. */
  private changed(row: JobRow, events: JobEvent[]): Change {
    const job = toJob(row);
    if (events.length > 0) {
      job.lastSeq = events.at(-1)!.seq;
      job.version += 1;
    }
    return { job, events };
  }

  create(job: NewJob): Promise<Change> {
    return this.run(() => {
      const { input } = job;
      this.statements.insertJob.run({ id: job.id, kind: input.kind, model: input.model, priority: job.priority, deadlineMs: job.deadlineMs, owner: job.owner, input: JSON.stringify(input), createdAt: job.createdAt });
      const events = this.append(job.id, [statusEvent('QUEUED')], job.createdAt);
      return { job: toJob(this.statements.get.get(job.id)!), events };
    });
  }

  get(id: string): Promise<Job | null> {
    return this.run(() => {
      const row = this.statements.get.get(id);
      return row ? toJob(row) : null;
    }, false);
  }

  claim(limit: number, now: number): Promise<Change<ClaimedJob>[]> {
    return this.run(() =>
      this.statements.queued.all(limit).map(({ id }) => {
        const row = this.statements.start.get(now, id)!;
        const events = this.append(id, [statusEvent('RUNNING', { attempt: row.attempts })], now);
        const { job } = this.changed(row, events);
        return { job: { ...job, input: JSON.parse(row.input!) }, events };
      }),
    );
  }

  progress(id: string, progress: JobProgress, events: NewJobEvent[], now: number, run?: number): Promise<Change | null> {
    return this.run(() => {
      const row = this.statements.progress.get(JSON.stringify(progress), id, run ?? null);
      if (!row) return null;
      return this.changed(row, this.append(id, events, now));
    }, false);
  }

  finish(id: string, finish: Finish, now: number, run?: number): Promise<Change | null> {
    return this.run(() => {
      const result = finish.status === 'SUCCEEDED' ? json(finish.result) : null;
      const error = finish.status === 'FAILED' ? json(finish.error) : null;
      const row = this.statements.finish.get(finish.status, now, result, error, json(finish.progress), id, run ?? null);
      if (!row) return null;
      const event = statusEvent(finish.status, { error: finish.status === 'FAILED' ? finish.error : null });
      return this.changed(row, this.append(id, [event], now));
    });
  }

  cancel(id: string, now: number): Promise<CancelOutcome | null> {
    return this.run(() => {
      const before = this.statements.get.get(id);
      if (!before) return null;
      const previous = before.status as JobStatus;
      const error: JobError = { code: 'CANCELLED', message: previous === 'QUEUED' ? 'Cancelled before it ran.' : 'Cancelled while running.' };
      const row = this.statements.cancel.get(now, JSON.stringify(error), id);
      if (!row) return { job: toJob(before), events: [], previous };
      return { ...this.changed(row, this.append(id, [statusEvent('CANCELLED', { error })], now)), previous };
    });
  }

  release(id: string, now: number, run?: number): Promise<Change | null> {
    return this.run(() => this.requeueNow(id, false, now, run));
  }

  private requeueNow(id: string, countAttempt: boolean, now: number, run?: number): Change | null {
    const row = this.statements.requeue.get(countAttempt ? 0 : 1, id, run ?? null);
    if (!row) return null;
    return this.changed(row, this.append(id, [statusEvent('QUEUED')], now));
  }

  eventsAfter(id: string, after: number): Promise<JobEvent[]> {
    return this.run(() => this.statements.eventsAfter.all(id, after).map(toEvent), false);
  }

  recover(maxAttempts: number, now: number): Promise<RecoveryOutcome> {
    return this.run(() => {
      const outcome: RecoveryOutcome = { requeued: [], failed: [] };
      for (const { id, attempts } of this.statements.running.all()) {
        if (attempts < maxAttempts) {
          outcome.requeued.push(this.requeueNow(id, true, now)!);
        } else {
          const error = interruptedError(attempts);
          const row = this.statements.finish.get('FAILED', now, null, json(error), null, id, null)!;
          outcome.failed.push(this.changed(row, this.append(id, [statusEvent('FAILED', { error })], now)));
        }
      }
      return outcome;
    });
  }

  prune(finishedBefore: number): Promise<number> {
    return this.run(() => {
      this.statements.pruneEvents.run(finishedBefore);
      return this.statements.pruneJobs.run(finishedBefore).changes;
    });
  }

  countByStatus(): Promise<Record<JobStatus, number>> {
    return this.run(() => {
      const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
      for (const { status, n } of this.statements.counts.all()) counts[status as JobStatus] = n;
      return counts;
    }, false);
  }

  ping(): Promise<boolean> {
    return this.run(() => this.db.prepare('SELECT 1').get() !== undefined, false).catch(() => false);
  }

  async list(query: ListQuery): Promise<JobPage> {
    const first = checkPageSize(query.first, 'first');
    const last = checkPageSize(query.last, 'last');
    const after = query.after ? decodeCursor(query.after) : null;
    const before = query.before ? decodeCursor(query.before) : null;
    return this.run(() => {
      const filters: string[] = [];
      const params: unknown[] = [];
      if (query.status && query.status.length > 0) {
        filters.push(`status IN (${query.status.map(() => '?').join(', ')})`);
        params.push(...query.status);
      }
      if (query.model) {
        filters.push('model = ?');
        params.push(query.model);
      }
      if (query.owner) {
        filters.push('owner = ?');
        params.push(query.owner);
      }
      const where = (extra: string[], extraParams: unknown[]) => {
        const all = [...filters, ...extra];
        return { sql: all.length > 0 ? `WHERE ${all.join(' AND ')}` : '', params: [...params, ...extraParams] };
      };
      const older = (k: CursorKey) => ({ sql: '(created_at < ? OR (created_at = ? AND id < ?))', params: [k.createdAt, k.createdAt, k.id] });
      const newer = (k: CursorKey) => ({ sql: '(created_at > ? OR (created_at = ? AND id > ?))', params: [k.createdAt, k.createdAt, k.id] });
      const exists = (cond: { sql: string; params: unknown[] }) => {
        const w = where([cond.sql], cond.params);
        return this.db.prepare(`SELECT 1 FROM jobs ${w.sql} LIMIT 1`).get(...w.params) !== undefined;
      };

      const total = where([], []);
      const totalCount = (this.db.prepare(`SELECT COUNT(*) AS n FROM jobs ${total.sql}`).get(...total.params) as { n: number }).n;

      const bounds = [after && older(after), before && newer(before)].filter((b) => !!b);
      const range = where(
        bounds.map((b) => b.sql),
        bounds.flatMap((b) => b.params),
      );
      // Newest first: `first` takes from the newest end of the range, `last` from the oldest.
      const fromNewest = first !== null || last === null;
      const take = fromNewest ? (first ?? DEFAULT_PAGE_SIZE) : last!;
      const order = fromNewest ? 'DESC' : 'ASC';
      let rows = this.db.prepare(`SELECT ${RECORD} FROM jobs ${range.sql} ORDER BY created_at ${order}, id ${order} LIMIT ?`).all(...range.params, take + 1) as JobRow[];
      const more = rows.length > take;
      rows = rows.slice(0, take);
      if (!fromNewest) rows.reverse();
      let hasNextPage = fromNewest && more;
      let hasPreviousPage = !fromNewest && more;
      if (fromNewest && last !== null && rows.length > last) {
        rows = rows.slice(rows.length - last);
        hasPreviousPage = true;
      }
      // Jobs outside the cursors exist on the other side: newer than `after`, older than `before`.
      if (after && !hasPreviousPage) hasPreviousPage = exists({ sql: 'NOT ' + older(after).sql, params: older(after).params });
      if (before && !hasNextPage) hasNextPage = exists({ sql: 'NOT ' + newer(before).sql, params: newer(before).params });
      return {
        edges: rows.map((row) => ({ cursor: encodeCursor({ createdAt: row.created_at, id: row.id }), job: toJob(row) })),
        hasNextPage,
        hasPreviousPage,
        totalCount,
      };
    }, false);
  }

  /** Writes what is queued, then closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    this.db.close();
  }
}
