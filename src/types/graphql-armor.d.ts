// The armor plugins' ESM builds, imported by path: their package "main" is a
// CommonJS build that loads a second copy of graphql, which then rejects our
// schema as "from another module or realm".
declare module '@escape.tech/graphql-armor-max-depth/dist/graphql-armor-max-depth.esm.js' {
  export { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
}
declare module '@escape.tech/graphql-armor-cost-limit/dist/graphql-armor-cost-limit.esm.js' {
  export { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
}
declare module '@escape.tech/graphql-armor-max-aliases/dist/graphql-armor-max-aliases.esm.js' {
  export { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
}
declare module '@escape.tech/graphql-armor-max-directives/dist/graphql-armor-max-directives.esm.js' {
  export { maxDirectivesPlugin } from '@escape.tech/graphql-armor-max-directives';
}
