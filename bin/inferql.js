#!/usr/bin/env node
// `inferql [serve|worker] [flags]`: runs the TypeScript entry point through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
