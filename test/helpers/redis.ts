import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const REDIS_SERVER = '/usr/bin/redis-server';
const START_TIMEOUT_MS = 10_000;

export interface RedisServer {
  url: string;
  port: number;
  /** Where it keeps its append-only file (and its log, redis.log). */
  dir: string;
  /** SIGTERM, then waits for the exit: Redis writes its AOF on the way out. */
  stop(): Promise<void>;
  /** Starts it again on the same port and dir, with the data it had. */
  start(): Promise<void>;
  /** SIGKILL: a crash, nothing written on the way out. */
  kill(): Promise<void>;
}

/** A loopback port nobody listens on now (the OS picks it; it is free again once closed). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** Whether a Redis on `port` answers PING (raw RESP, so no client retries get in the way). */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

async function signalAndWait(child: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (!child || exited(child)) return;
  const exit = once(child, 'exit');
  child.kill(signal);
  await exit;
}

/** Servers of this process still running: killed when it exits, however the tests ended. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Kills `pid` once this process is gone, whatever way it went (a SIGKILLed
 * test worker runs no exit handler), so a test run never leaves a
 * redis-server behind.
 */
function watchdog(pid: number): ChildProcess {
  const script = `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${pid} 2>/dev/null; do sleep 0.5; done; kill -KILL ${pid} 2>/dev/null`;
  const child = spawn('/bin/sh', ['-c', script], { stdio: 'ignore', detached: true });
  child.unref();
  return child;
}

/** Runs the real redis-server on a free loopback port with its AOF on, in a temporary directory. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'inferql-redis-'));
  let child: ChildProcess | null = null;
  let guard: ChildProcess | null = null;

  async function start(): Promise<void> {
    if (child && !exited(child)) throw new Error('redis-server is already running');
    const args = ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--logfile', join(dir, 'redis.log')];
    const proc = spawn(REDIS_SERVER, args, { stdio: 'ignore' });
    child = proc;
    running.add(proc);
    proc.once('exit', () => {
      running.delete(proc);
      guard?.kill('SIGKILL');
    });
    guard = watchdog(proc.pid!);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await pings(port))) {
      if (exited(proc) || Date.now() > deadline) {
        await signalAndWait(proc, 'SIGKILL');
        let log = '';
        try {
          log = readFileSync(join(dir, 'redis.log'), 'utf8').slice(-2_000);
        } catch {}
        throw new Error(`redis-server did not start on port ${port}:\n${log}`);
      }
      await sleep(50);
    }
  }

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    start,
    stop: () => signalAndWait(child, 'SIGTERM'),
    kill: () => signalAndWait(child, 'SIGKILL'),
  };
}
