/** Sampling and stopping parameters, as a client sends them (all optional; defaults from generation_config.json). */
export interface GenerationParams {
  maxTokens?: number | null;
  temperature?: number | null;
  topK?: number | null;
  topP?: number | null;
  minP?: number | null;
  repetitionPenalty?: number | null;
  presencePenalty?: number | null;
  frequencyPenalty?: number | null;
  seed?: number | null;
  stop?: string[] | null;
}

export type FinishReason = 'STOP' | 'LENGTH' | 'STOP_SEQUENCE' | 'CANCELLED';

export interface GenerationUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface GenerationMetrics {
  /** Submit → admitted into the running batch. */
  queueMs: number;
  /** Submit → first token. */
  ttftMs: number;
  /** Completion tokens per second from admission to the end. */
  tokensPerSecond: number;
  totalMs: number;
}

/** One streamed token; the last event also carries finishReason, usage and metrics. */
export interface TokenEvent {
  index: number;
  /** null only on a closing event that carries no token (CANCELLED). */
  tokenId: number | null;
  /** Text this token adds (may be empty while a multi-byte character or a possible stop sequence is held back). */
  text: string;
  finishReason: FinishReason | null;
  usage: GenerationUsage | null;
  metrics: GenerationMetrics | null;
}

export interface GenerationResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  usage: GenerationUsage;
  metrics: GenerationMetrics;
}

export interface GenerateOptions {
  signal?: AbortSignal;
  priority?: number;
  deadlineMs?: number;
}
