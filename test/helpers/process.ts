import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** inferql in a process of its own, as an operator runs it. */
export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** Resolves with the exit code (null after a signal). */
  exited: Promise<number | null>;
  /** Everything it logged so far (stderr). */
  log(): string;
  /** SIGTERM (a graceful stop), then waits for the exit. */
  stop(): Promise<void>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
}

const running = new Set<ChildProcess>();
// Whatever a test left running dies with the test process.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** `node --import tsx src/main.ts [args]` on a free loopback port; resolves once it logs its URL. */
export async function startProcess(env: Record<string, string> = {}, args: string[] = []): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'main.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.add(child);
  let log = '';
  const exited = new Promise<number | null>((done) =>
    child.once('exit', (code) => {
      running.delete(child);
      done(code);
    }),
  );
  const signal = async (name: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    await exited;
  };
  const url = await new Promise<string>((resolveUrl, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      const match = /listening on (http:\/\/[^\s"]+)/.exec(log);
      if (match) resolveUrl(match[1]!);
    });
    void exited.then((code) => reject(new Error(`server exited (${code ?? child.signalCode}) before listening:\n${log}`)));
  });
  return { url, child, exited, log: () => log, stop: () => signal('SIGTERM'), kill: () => signal('SIGKILL') };
}
