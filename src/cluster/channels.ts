import type { Redis } from 'ioredis';
import type { InferqlError } from '../errors.js';
import type { StreamMessage } from './wire.js';

export type CancelKind = 'stream' | 'job';

/**
 * Redis pub/sub for what is not an event topic: each generation's tokens on
 * a channel of its own (subscribed, and acknowledged, before its call is
 * queued, so no token is published to nobody), and cancels, which every
 * worker hears and acts on if the stream or job runs there.
 */
export class Channels {
  private readonly inboxes = new Map<string, StreamInbox>();
  private cancelHandler: ((kind: CancelKind, id: string) => void) | null = null;

  constructor(
    private readonly pub: Redis,
    private readonly sub: Redis,
    private readonly prefix: string,
  ) {
    sub.on('message', (channel: string, message: string) => this.inboxes.get(channel)?.push(JSON.parse(message) as StreamMessage));
    sub.on('pmessage', (_pattern: string, channel: string) => {
      const [kind, id] = channel.slice(this.cancelPrefix.length).split(':') as [CancelKind, string];
      this.cancelHandler?.(kind, id);
    });
  }

  private get cancelPrefix(): string {
    return `${this.prefix}:cancel:`;
  }

  private streamChannel(streamId: string): string {
    return `${this.prefix}:stream:${streamId}`;
  }

  /** API side: listens to a stream's channel; resolves once Redis has the subscription. */
  async openStream(streamId: string): Promise<StreamInbox> {
    const channel = this.streamChannel(streamId);
    const inbox = new StreamInbox(() => {
      this.inboxes.delete(channel);
      void this.sub.unsubscribe(channel).catch(() => undefined);
    });
    this.inboxes.set(channel, inbox);
    await this.sub.subscribe(channel);
    return inbox;
  }

  /** Worker side: one message of a stream. */
  async publishStream(streamId: string, message: StreamMessage): Promise<void> {
    await this.pub.publish(this.streamChannel(streamId), JSON.stringify(message));
  }

  async cancel(kind: CancelKind, id: string): Promise<void> {
    await this.pub.publish(`${this.cancelPrefix}${kind}:${id}`, '');
  }

  /** Worker side: hears every cancel. */
  async onCancel(handler: (kind: CancelKind, id: string) => void): Promise<void> {
    this.cancelHandler = handler;
    await this.sub.psubscribe(`${this.cancelPrefix}*`);
  }
}

/** The messages of one stream, in order; ends when closed or failed. */
export class StreamInbox {
  private readonly queue: StreamMessage[] = [];
  private waiting: ((m: StreamMessage | null) => void) | null = null;
  private ended: InferqlError | 'closed' | null = null;

  constructor(private readonly onClose: () => void) {}

  push(message: StreamMessage): void {
    if (this.ended) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w(message);
    } else this.queue.push(message);
  }

  /** The next message; null once closed. Throws the error `fail` was given. */
  async next(): Promise<StreamMessage | null> {
    const queued = this.queue.shift();
    if (queued) return queued;
    if (this.ended === 'closed') return null;
    if (this.ended) throw this.ended;
    const message = await new Promise<StreamMessage | null>((resolve) => (this.waiting = resolve));
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
