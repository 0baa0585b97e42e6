import { lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from './builder.js';
import './tensors.js';
import './models.js';
import './inference.js';
import './generation.js';
import './jobs.js';
import './stats.js';

export const schema = builder.toSchema();

/** The SDL committed as schema/schema.graphql. */
export function printedSchema(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
