import { inferqlError } from '../errors.js';
import { randomSeed } from './rng.js';
import type { GenerationParams } from './types.js';

/** Parameters after validation and defaults: the only shape the engine accepts. */
export interface SamplingConfig {
  maxTokens: number;
  /** 0 means greedy. */
  temperature: number;
  /** 0 means off. */
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  seed: number;
  stop: string[];
}

export const MAX_STOP_SEQUENCES = 8;
export const MAX_STOP_LENGTH = 64;

const bad = (message: string, param: string) => inferqlError('BAD_GENERATION_PARAMS', message, { param });

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** Sampling defaults from a Hugging Face generation_config.json. */
export function defaultsFrom(generationConfig: Record<string, unknown> | null): Partial<SamplingConfig> {
  const g = generationConfig ?? {};
  const sample = g.do_sample === true;
  return {
    maxTokens: num(g.max_new_tokens),
    temperature: sample ? (num(g.temperature) ?? 1) : 0,
    topK: sample ? num(g.top_k) : undefined,
    topP: sample ? num(g.top_p) : undefined,
    minP: sample ? num(g.min_p) : undefined,
    repetitionPenalty: num(g.repetition_penalty),
  };
}

/**
 * Checks the client's parameters and fills the rest from the model's
 * defaults. Throws BAD_GENERATION_PARAMS, before any work, on the first bad one.
 */
export function resolveParams(params: GenerationParams | null | undefined, defaults: Partial<SamplingConfig>, limits: { maxTokens: number }): SamplingConfig {
  const p = params ?? {};
  const pick = <K extends keyof SamplingConfig>(key: K, fallback: SamplingConfig[K]): SamplingConfig[K] =>
    ((p as Record<string, unknown>)[key] ?? defaults[key] ?? fallback) as SamplingConfig[K];
  const config: SamplingConfig = {
    // A model's own default never exceeds the server's limit; only a client's explicit ask can.
    maxTokens: p.maxTokens ?? Math.min(defaults.maxTokens ?? 64, limits.maxTokens),
    temperature: pick('temperature', 1),
    topK: pick('topK', 0),
    topP: pick('topP', 1),
    minP: pick('minP', 0),
    repetitionPenalty: pick('repetitionPenalty', 1),
    presencePenalty: pick('presencePenalty', 0),
    frequencyPenalty: pick('frequencyPenalty', 0),
    seed: pick('seed', randomSeed()),
    stop: p.stop ?? [],
  };
  if (!Number.isInteger(config.maxTokens) || config.maxTokens < 1) throw bad('maxTokens must be a positive integer.', 'maxTokens');
  if (config.maxTokens > limits.maxTokens) throw bad(`maxTokens must be at most ${limits.maxTokens}.`, 'maxTokens');
  if (!(config.temperature >= 0) || !Number.isFinite(config.temperature)) throw bad('temperature must be ≥ 0 (0 is greedy).', 'temperature');
  if (!Number.isInteger(config.topK) || config.topK < 0) throw bad('topK must be an integer ≥ 0 (0 turns it off).', 'topK');
  if (!(config.topP > 0 && config.topP <= 1)) throw bad('topP must be in (0, 1].', 'topP');
  if (!(config.minP >= 0 && config.minP < 1)) throw bad('minP must be in [0, 1).', 'minP');
  if (!(config.repetitionPenalty > 0) || !Number.isFinite(config.repetitionPenalty)) throw bad('repetitionPenalty must be > 0 (1 turns it off).', 'repetitionPenalty');
  if (!(Math.abs(config.presencePenalty) <= 2)) throw bad('presencePenalty must be in [-2, 2].', 'presencePenalty');
  if (!(Math.abs(config.frequencyPenalty) <= 2)) throw bad('frequencyPenalty must be in [-2, 2].', 'frequencyPenalty');
  if (!Number.isInteger(config.seed) || config.seed < 0 || config.seed > 2 ** 32 - 1) throw bad('seed must be an integer in [0, 2^32).', 'seed');
  if (config.stop.length > MAX_STOP_SEQUENCES) throw bad(`At most ${MAX_STOP_SEQUENCES} stop sequences.`, 'stop');
  if (config.stop.some((s) => s.length === 0 || s.length > MAX_STOP_LENGTH)) throw bad(`Stop sequences must have 1 to ${MAX_STOP_LENGTH} characters.`, 'stop');
  return config;
}
