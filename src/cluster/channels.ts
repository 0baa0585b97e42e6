import type { Redis } from 'ioredis';
import type { InferqlError } from '../errors.js';
import type { ModelView } from '../models/directory.js';
import type { StreamMessage, WireError } from './wire.js';

export type CancelKind = 'stream' | 'job';

/** An operator's model command, for every worker. */
export interface AdminCommand {
  op: 'load' | 'unload' | 'reload';
  model: string;
  /** Where each worker answers. */
  replyTo: string;
}

/** One worker's answer to an AdminCommand. */
export type AdminReply = { worker: string; view: ModelView } | { worker: string; error: WireError };

/**
 * Redis pub/sub for what is not an event topic: each generation's tokens on
 * a channel of its own (subscribed, and acknowledged, before its call is
 * queued, so no token is published to nobody); cancels, which every worker
 * hears and acts on if the stream or job runs there; and model commands
 * (load, unload, reload) that every worker runs and answers.
 */
export class Channels {
  private readonly inboxes = new Map<string, Inbox<unknown>>();
  private readonly cancelHandlers: ((kind: CancelKind, id: string) => void)[] = [];
  private adminHandler: ((command: AdminCommand) => void) | null = null;

  constructor(
    private readonly pub: Redis,
    private readonly sub: Redis,
    private readonly prefix: string,
  ) {
    // Anyone who can reach Redis can publish: a message that is not ours is dropped, never thrown
    // (a throw here would be inside ioredis's socket handler, and take the process down).
    sub.on('message', (channel: string, message: string) => {
      const value = parse(message);
      if (value === undefined) return;
      if (channel === this.adminChannel) {
        if (isAdminCommand(value)) this.adminHandler?.(value);
      } else this.inboxes.get(channel)?.push(value);
    });
    sub.on('pmessage', (_pattern: string, channel: string) => {
      const [kind, id] = channel.slice(this.cancelPrefix.length).split(':');
      if ((kind !== 'stream' && kind !== 'job') || !id) return;
      for (const handler of this.cancelHandlers) handler(kind, id);
    });
  }

  private get cancelPrefix(): string {
    return `${this.prefix}:cancel:`;
  }

  private get adminChannel(): string {
    return `${this.prefix}:admin`;
  }

  private streamChannel(streamId: string): string {
    return `${this.prefix}:stream:${streamId}`;
  }

  private replyChannel(id: string): string {
    return `${this.prefix}:admin-reply:${id}`;
  }

  /** Listens to a channel; resolves once Redis has the subscription. */
  private async open<T>(channel: string): Promise<Inbox<T>> {
    const inbox = new Inbox<T>(() => {
      this.inboxes.delete(channel);
      void this.sub.unsubscribe(channel).catch(() => undefined);
    });
    this.inboxes.set(channel, inbox as Inbox<unknown>);
    await this.sub.subscribe(channel);
    return inbox;
  }

  /** API side: listens to a stream's channel. */
  openStream(streamId: string): Promise<StreamInbox> {
    return this.open<StreamMessage>(this.streamChannel(streamId));
  }

  /**
   * API side: sends a model command to every worker; resolves with the
   * replies' inbox and how many workers heard it (as many replies will come).
   */
  async sendAdmin(command: Omit<AdminCommand, 'replyTo'>, replyTo: string): Promise<{ replies: Inbox<AdminReply>; heard: number }> {
    const replies = await this.open<AdminReply>(this.replyChannel(replyTo));
    try {
      const heard = await this.pub.publish(this.adminChannel, JSON.stringify({ ...command, replyTo } satisfies AdminCommand));
      return { replies, heard };
    } catch (error) {
      replies.close();
      throw error;
    }
  }

  /** Worker side: runs every model command it hears. */
  async onAdmin(handler: (command: AdminCommand) => void): Promise<void> {
    this.adminHandler = handler;
    await this.sub.subscribe(this.adminChannel);
  }

  async replyAdmin(replyTo: string, reply: AdminReply): Promise<void> {
    await this.pub.publish(this.replyChannel(replyTo), JSON.stringify(reply));
  }

  /** Worker side: one message of a stream. */
  async publishStream(streamId: string, message: StreamMessage): Promise<void> {
    await this.pub.publish(this.streamChannel(streamId), JSON.stringify(message));
  }

  async cancel(kind: CancelKind, id: string): Promise<void> {
    await this.pub.publish(`${this.cancelPrefix}${kind}:${id}`, '');
  }

  /** Worker side: hears every cancel (each handler acts on the kind it runs). */
  async onCancel(handler: (kind: CancelKind, id: string) => void): Promise<void> {
    this.cancelHandlers.push(handler);
    if (this.cancelHandlers.length === 1) await this.sub.psubscribe(`${this.cancelPrefix}*`);
  }
}

/** The messages of one channel, in order; ends when closed or failed. */
export class Inbox<T> {
  private readonly queue: T[] = [];
  private waiting: ((m: T | null) => void) | null = null;
  private ended: InferqlError | 'closed' | null = null;

  constructor(private readonly onClose: () => void) {}

  push(message: T): void {
    if (this.ended) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w(message);
    } else this.queue.push(message);
  }

  /** The next message; null once closed. Throws the error `fail` was given. */
  async next(): Promise<T | null> {
    const queued = this.queue.shift();
    if (queued) return queued;
    if (this.ended === 'closed') return null;
    if (this.ended) throw this.ended;
    const message = await new Promise<T | null>((resolve) => (this.waiting = resolve));
    if (message === null && this.ended && this.ended !== 'closed') throw this.ended;
    return message;
  }

  /** Ends the stream with an error (its worker died); messages already queued still come first. */
  fail(error: InferqlError): void {
    this.end(error);
  }

  close(): void {
    this.end('closed');
  }

  private end(reason: InferqlError | 'closed'): void {
    if (this.ended) return;
    this.ended = reason;
    this.onClose();
    const w = this.waiting;
    this.waiting = null;
    w?.(null);
  }
}

export type StreamInbox = Inbox<StreamMessage>;

function parse(message: string): unknown {
  try {
    return JSON.parse(message) as unknown;
  } catch {
    return undefined;
  }
}

function isAdminCommand(value: unknown): value is AdminCommand {
  const v = value as Partial<AdminCommand> | null;
  return typeof v === 'object' && v !== null && ['load', 'unload', 'reload'].includes(v.op as string) && typeof v.model === 'string' && typeof v.replyTo === 'string';
}
