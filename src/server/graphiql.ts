import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { GraphiQLOptions } from 'graphql-yoga';

/** One GraphiQL tab: a document and the variables it runs with. */
interface Tab {
  query: string;
  variables: Record<string, unknown>;
}

const DIGIT_PIXELS = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0];

// GraphiQL fills the variables editor of the first tab only after a tab
// switch, so the first tab's operations take literal arguments.
const rows = (values: readonly number[], perRow: number, indent: string) =>
  Array.from({ length: Math.ceil(values.length / perRow) }, (_, i) => indent + values.slice(i * perRow, (i + 1) * perRow).join(', ')).join(',\n');

const EXPLORE: Tab = {
  query: `# inferql: ONNX models behind one GraphQL API.
# Each tab is an example. ▶ runs an operation; with
# several, pick one from its menu (or put the cursor
# in one and press Ctrl-Enter). The Docs panel (book
# icon, top left) describes every type and field.

query Models {
  models {
    name
    task
    status
    labels
    inputs { name datatype shape }
    outputs { name datatype shape }
  }
}

mutation Classify {
  classify(
    model: "fortune-topic"
    inputs: [{ text: "A friend in need is a friend indeed." }]
    topK: 3
  ) {
    labels { label score }
    metrics { queueMs computeMs batchSize }
  }
}

mutation InferDigits {
  infer(model: "digits", inputs: [{
    name: "pixels", datatype: FP32, shape: [1, 64],
    data: [
${rows(DIGIT_PIXELS, 16, '      ')}
    ]
  }]) {
    outputs { name shape data }
    metrics { queueMs computeMs batchSize }
  }
}
`,
  variables: {},
};

const GENERATE: Tab = {
  query: `# Streams a completion over WebSocket, one event
# per token: the result pane changes as each token
# arrives; the last event carries finishReason, usage
# and metrics. ■ stops (cancels) it. Variables below.

subscription Generate(
  $model: String!
  $prompt: String!
  $params: GenerationParams
) {
  generate(
    model: $model
    prompt: $prompt
    params: $params
  ) {
    index
    text
    tokenId
    finishReason
    usage { promptTokens completionTokens totalTokens }
    metrics { ttftMs tokensPerSecond totalMs }
  }
}
`,
  variables: { model: 'fortune-lm', prompt: 'A journey of a thousand miles', params: { maxTokens: 64, temperature: 0.8, topP: 0.95 } },
};

const JOBS: Tab = {
  query: `# Jobs run in the background, survive restarts.
# Run SubmitJob, copy the id it returns into the
# variables below as "id", then run FollowJob.

mutation SubmitJob($prompt: String!) {
  submitJob(input: {
    generate: { model: "fortune-lm", prompt: $prompt, params: { maxTokens: 64 } }
  }) {
    id
    status
    createdAt
  }
}

subscription FollowJob($id: ID!) {
  jobUpdated(id: $id) {
    id
    status
    progress { completed text }
    error { code message }
    result { ... on Generation { text finishReason usage { completionTokens } } }
  }
}

query RecentJobs {
  jobs(first: 10) {
    totalCount
    edges { node { id model kind status createdAt finishedAt } }
  }
}
`,
  variables: { prompt: 'Fortune favours', id: 'paste the id from SubmitJob here' },
};

const SERVER: Tab = {
  query: `# What the server is doing (the status page
# at / shows the same, live).

subscription ServerStats {
  serverStats {
    tokensPerSecond
    requestsPerSecond
    models { name status queueDepth running batchSize tokensPerSecond requestsPerSecond }
  }
}

subscription ModelEvents {
  modelEvents { model kind status message at }
}
`,
  variables: {},
};

export const DEFAULT_TABS: readonly Tab[] = [EXPLORE, GENERATE, JOBS, SERVER];

/** The first tab's document (what GraphiQL shows when tabs are off). */
export const DEFAULT_QUERY = EXPLORE.query;

const AUTH_HEADERS = JSON.stringify({ Authorization: 'Bearer <your API key>' }, null, 2);

const LOGO = `<svg width="24" height="24" viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="9" fill="#e535ab"/><circle cx="12" cy="12" r="4" fill="#fff"/></svg>`;

/**
 * GraphiQL's settings: subscriptions over WebSocket, one tab per main use
 * (explore and run models, stream a generation, submit and follow a job,
 * watch the server), and, when API keys are on, an Authorization header
 * template in the headers editor.
 */
export function graphiqlOptions(options: { authEnabled: boolean }): GraphiQLOptions {
  const headers = options.authEnabled ? AUTH_HEADERS : undefined;
  return {
    title: 'inferql',
    logo: LOGO,
    subscriptionsProtocol: 'WS',
    defaultQuery: DEFAULT_QUERY,
    defaultTabs: DEFAULT_TABS.map((tab) => ({ query: tab.query, variables: Object.keys(tab.variables).length > 0 ? JSON.stringify(tab.variables, null, 2) : undefined, headers })),
    headers,
    defaultEditorToolsVisibility: options.authEnabled ? 'headers' : 'variables',
  };
}

/**
 * GraphiQL sends the headers editor's content with HTTP requests only; over
 * WebSocket only `connection_init` can carry a key. This runs before GraphiQL:
 * it adds the Authorization header of the headers editor (or, failing that,
 * the last one GraphiQL sent over HTTP) to each new socket's connection_init.
 * GraphiQL opens a socket per burst of subscriptions, so an edited key
 * applies from the next run.
 */
const WS_AUTH_SHIM = `<script>
(function () {
  var lastKey = null;
  function authorization(headers) {
    for (var name in headers) if (name.toLowerCase() === 'authorization') return headers[name];
    return null;
  }
  function editorKey() {
    try { return authorization(JSON.parse(localStorage.getItem('graphiql:headers') || '{}')); } catch (e) { return null; }
  }
  var nativeFetch = window.fetch;
  window.fetch = function (input, init) {
    try {
      var headers = new Headers((init && init.headers) || (input instanceof Request ? input.headers : undefined));
      lastKey = headers.get('authorization');
    } catch (e) {}
    return nativeFetch.apply(this, arguments);
  };
  var NativeWebSocket = window.WebSocket;
  function AuthWebSocket(url, protocols) {
    var socket = new NativeWebSocket(url, protocols);
    var send = socket.send;
    socket.send = function (data) {
      var key = editorKey() || lastKey;
      if (key && typeof data === 'string' && data.indexOf('connection_init') >= 0) {
        try {
          var message = JSON.parse(data);
          if (message.type === 'connection_init') {
            message.payload = Object.assign({}, message.payload, { authorization: key });
            data = JSON.stringify(message);
          }
        } catch (e) {}
      }
      return send.call(socket, data);
    };
    return socket;
  }
  AuthWebSocket.prototype = NativeWebSocket.prototype;
  ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'].forEach(function (k) { AuthWebSocket[k] = NativeWebSocket[k]; });
  window.WebSocket = AuthWebSocket;
})();
</script>`;

/** Yoga's GraphiQL page (every asset inline), with the WebSocket key shim ahead of it. */
export function renderInferqlGraphiQL(options: GraphiQLOptions): string {
  const html = renderGraphiQL(options);
  const at = html.indexOf('<script>');
  return at < 0 ? html : html.slice(0, at) + WS_AUTH_SHIM + html.slice(at);
}
