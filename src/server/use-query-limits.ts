import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit/dist/graphql-armor-cost-limit.esm.js';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases/dist/graphql-armor-max-aliases.esm.js';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth/dist/graphql-armor-max-depth.esm.js';
import { maxDirectivesPlugin } from '@escape.tech/graphql-armor-max-directives/dist/graphql-armor-max-directives.esm.js';
import { GraphQLError, NoSchemaIntrospectionCustomRule, parse, type ValidationContext } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Config } from '../config.js';
import { ERROR_CODES } from '../errors.js';

const LIMIT_MESSAGE = /^Syntax Error: (Query depth limit|Query Cost limit|Aliases limit|Token limit|Directives limit|Document contains more)/i;

function tag(error: unknown): unknown {
  if (error instanceof Error && LIMIT_MESSAGE.test(error.message)) {
    return new GraphQLError(error.message.replace(/^Syntax Error: /, '').replace('more that', 'more than'), { extensions: { code: 'QUERY_LIMIT', http: { status: ERROR_CODES.QUERY_LIMIT.status } } });
  }
  return error;
}

/** graphql-js's own "Did you mean …?" hints reveal the schema; drop them. */
function withoutSuggestion(error: unknown): unknown {
  if (error instanceof GraphQLError && / Did you mean .*\?$/.test(error.message)) {
    return new GraphQLError(error.message.replace(/ Did you mean .*\?$/, ''), { nodes: error.nodes, extensions: error.extensions });
  }
  return error;
}

/**
 * Query limits with graphql-armor (depth, cost, aliases, directives) and
 * graphql-js's parser token limit, each breach tagged `QUERY_LIMIT`. With
 * introspection off, introspection is refused and field suggestions are
 * hidden too.
 */
export function useQueryLimits(config: Config): Plugin[] {
  // Report (not throw) a breach, tagged, so it joins the other validation errors.
  const report = { propagateOnRejection: false, onReject: [(ctx: ValidationContext | null, error: GraphQLError) => ctx?.reportError(tag(error) as GraphQLError)] };
  const armor = [
    maxDepthPlugin({ n: config.maxDepth, ignoreIntrospection: true, ...report }),
    costLimitPlugin({ maxCost: config.maxCost, ignoreIntrospection: true, ...report }),
    maxAliasesPlugin({ n: config.maxAliases, ...report }),
    maxDirectivesPlugin({ n: config.maxDirectives, ...report }),
  ] as Plugin[];
  const limits: Plugin = {
    onParse({ setParseFn }) {
      setParseFn((source, options) => parse(source, { ...options, maxTokens: config.maxTokensPerDocument }));
      return ({ result, replaceParseResult }) => {
        if (result instanceof Error) replaceParseResult(tag(result) as Error);
      };
    },
    onValidate({ addValidationRule }) {
      if (!config.introspection) addValidationRule(NoSchemaIntrospectionCustomRule);
      return ({ result, setResult }) => {
        if (result.length > 0 && !config.introspection) setResult(result.map(withoutSuggestion));
      };
    },
  };
  return [...armor, limits];
}
