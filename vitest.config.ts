import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // Node loads `graphql` through its "main" (CommonJS) for every package; make
    // the tested sources use that same copy, not the "module" build Vite prefers,
    // or the schema meets a second graphql ("from another module or realm").
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Each file starts its own real server; two cores do not profit from more.
    fileParallelism: false,
    pool: 'forks',
  },
});
