// The status page: everything on it comes from the server's own GraphQL API
// over one graphql-ws WebSocket (the `serverStats` subscription, a `generate`
// subscription for the "try it" box). No build step, no outside requests.
(function () {
  'use strict';

  const KEY_STORAGE = 'inferql:apiKey';
  const $ = (id) => document.getElementById(id);
  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;

  const STATS = /* GraphQL */ `
    subscription StatusPage {
      serverStats {
        at intervalMs uptimeSeconds tokensPerSecond requestsPerSecond openSubscriptions
        models { name task status queueDepth running batchSize requestsPerSecond tokensPerSecond }
        recentJobs(first: 10) { id model kind status createdAt progress { completed total } }
      }
    }`;
  const HISTORY = /* GraphQL */ `
    query StatusHistory {
      serverStats { throughput { at tokensPerSecond requestsPerSecond } }
    }`;
  const GENERATE = /* GraphQL */ `
    subscription TryIt($model: String!, $prompt: String!, $params: GenerationParams) {
      generate(model: $model, prompt: $prompt, params: $params) {
        index text finishReason
        usage { promptTokens completionTokens }
        metrics { ttftMs tokensPerSecond totalMs }
      }
    }`;

  // ---- connection -------------------------------------------------------

  let client = null;
  let statsStop = null;

  function setConnection(state, text) {
    $('connection').dataset.state = state;
    $('connection-text').textContent = text;
  }

  function connect() {
    if (client) client.dispose();
    const key = localStorage.getItem(KEY_STORAGE);
    client = graphqlWs.createClient({
      url: wsUrl,
      lazy: false,
      connectionParams: () => (key ? { authorization: `Bearer ${key}` } : {}),
      retryAttempts: Infinity,
      shouldRetry: (event) => !(event && event.code === 4403),
      on: {
        connected: () => setConnection('open', 'live'),
        closed: (event) => {
          if (event && event.code === 4403) {
            setConnection('closed', 'API key needed');
            $('key-form').hidden = false;
            $('api-key').focus();
          } else setConnection('closed', 'reconnecting…');
        },
      },
    });
    loadHistory();
    statsStop = client.subscribe({ query: STATS }, {
      next: (result) => {
        if (result.data && result.data.serverStats) render(result.data.serverStats);
        else if (result.errors) showError(result.errors);
      },
      error: () => {},
      complete: () => {},
    });
  }

  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORAGE, $('api-key').value.trim());
    $('key-form').hidden = true;
    setConnection('connecting', 'connecting…');
    if (statsStop) statsStop();
    connect();
  });

  function showError(errors) {
    const e = errors[0] || {};
    const code = e.extensions && e.extensions.code;
    if (code === 'UNAUTHENTICATED' || code === 'FORBIDDEN') {
      $('key-form').hidden = false;
      setConnection('closed', code === 'FORBIDDEN' ? 'key lacks a scope' : 'API key needed');
    }
  }

  // ---- figures and tables -------------------------------------------------

  const fmt = (n, digits) => (n === null || n === undefined ? '–' : Number(n).toFixed(digits === undefined ? (n >= 100 ? 0 : 1) : digits));
  const el = (tag, attrs, children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') node.textContent = v;
      else if (k === 'width') node.style.width = v; // CSSOM, which the page's CSP allows (style attributes it does not)
      else node.setAttribute(k, v);
    }
    for (const child of children || []) node.append(child);
    return node;
  };
  const badge = (status) => el('span', { class: `badge ${status}`, text: status });

  /** A Job's global id is base64 of "Job:<id>": show the job id itself, shortened. */
  function shortJobId(id) {
    let raw = id;
    try {
      const decoded = atob(id);
      if (decoded.startsWith('Job:')) raw = decoded.slice(4);
    } catch (e) {}
    return raw.length > 16 ? `${raw.slice(0, 8)}…${raw.slice(-6)}` : raw;
  }

  function uptime(seconds) {
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
  }

  const TASKS = { TEXT_GENERATION: 'generation', CLASSIFICATION: 'classification', TENSOR: 'tensor' };
  let knownModels = '';

  function render(stats) {
    $('tokens-per-second').textContent = fmt(stats.tokensPerSecond);
    $('requests-per-second').textContent = fmt(stats.requestsPerSecond);
    $('queue-depth').textContent = String(stats.models.reduce((n, m) => n + m.queueDepth, 0));
    $('running').textContent = String(stats.models.reduce((n, m) => n + m.running, 0));
    $('subscriptions').textContent = String(stats.openSubscriptions);
    $('uptime').textContent = uptime(stats.uptimeSeconds);

    const rows = stats.models.map((m) =>
      el('tr', { 'data-model': m.name }, [
        el('td', { class: 'name', text: m.name }),
        el('td', { class: 'muted', text: TASKS[m.task] || '' }),
        el('td', {}, [badge(m.status)]),
        el('td', { class: 'num', text: String(m.queueDepth) }),
        el('td', { class: 'num', text: m.task === 'TEXT_GENERATION' ? String(m.running) : '–' }),
        el('td', { class: 'num', text: fmt(m.batchSize) }),
        el('td', { class: 'num', text: m.task === 'TEXT_GENERATION' ? '–' : fmt(m.requestsPerSecond) }),
        el('td', { class: 'num', text: m.task === 'TEXT_GENERATION' ? fmt(m.tokensPerSecond) : '–' }),
      ]),
    );
    $('models').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, [el('td', { colspan: '8', class: 'muted', text: 'no models in the models folder' })])]));

    const jobs = stats.recentJobs.map((j) => {
      const p = j.progress;
      const progress = p ? (p.total ? el('div', { class: 'bar', title: `${p.completed}/${p.total}` }, [el('span', { width: `${Math.round((100 * p.completed) / p.total)}%` })]) : `${p.completed} tokens`) : '';
      return el('tr', { 'data-job': j.id }, [
        el('td', { class: 'mono', text: shortJobId(j.id), title: j.id }),
        el('td', { text: j.model }),
        el('td', { class: 'muted', text: j.kind.toLowerCase() }),
        el('td', {}, [badge(j.status)]),
        el('td', {}, [progress]),
        el('td', { class: 'muted', text: new Date(j.createdAt).toLocaleTimeString() }),
      ]);
    });
    $('jobs').tBodies[0].replaceChildren(...(jobs.length ? jobs : [el('tr', {}, [el('td', { colspan: '6', class: 'muted', text: 'no jobs yet' })])]));

    const generators = stats.models.filter((m) => m.task === 'TEXT_GENERATION' && m.status === 'READY').map((m) => m.name);
    if (generators.join() !== knownModels) {
      knownModels = generators.join();
      const select = $('try-model');
      const current = select.value;
      select.replaceChildren(...generators.map((name) => el('option', { value: name, text: name })));
      if (generators.includes(current)) select.value = current;
      $('try-run').disabled = generators.length === 0;
      if (generators.length === 0) $('try-info').textContent = 'no text generation model is ready';
    }

    pushPoint({ at: stats.at, tokensPerSecond: stats.tokensPerSecond, requestsPerSecond: stats.requestsPerSecond }, stats.intervalMs);
  }

  // ---- throughput chart ---------------------------------------------------

  const WINDOW_MS = 5 * 60 * 1000;
  let points = [];
  let intervalMs = 1000;

  function loadHistory() {
    client.subscribe({ query: HISTORY }, {
      next: (result) => {
        const history = result.data && result.data.serverStats.throughput;
        if (!history) return;
        const seen = new Set(points.map((p) => p.at));
        points = history.filter((p) => !seen.has(p.at)).concat(points).sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
        drawChart();
      },
      error: () => {},
      complete: () => {},
    });
  }

  function pushPoint(point, interval) {
    intervalMs = interval;
    if (points.length && points[points.length - 1].at === point.at) return;
    points.push(point);
    const cutoff = Date.parse(point.at) - WINDOW_MS;
    while (points.length && Date.parse(points[0].at) < cutoff) points.shift();
    drawChart();
  }

  function drawChart() {
    const svg = $('chart');
    // Drawn in real pixels (so text is not stretched) and redrawn on resize.
    const W = Math.max(200, Math.round(svg.clientWidth || 800));
    svg.setAttribute('viewBox', `0 0 ${W} 180`);
    const H = 180;
    const top = 10;
    const bottom = 20;
    const left = 36;
    const ns = 'http://www.w3.org/2000/svg';
    const node = (tag, attrs) => {
      const n = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      return n;
    };
    const now = points.length ? Date.parse(points[points.length - 1].at) : Date.now();
    // The window grows with the history, from half a minute up to five.
    const span = Math.min(WINDOW_MS, Math.max(30_000, points.length ? now - Date.parse(points[0].at) : 0));
    const max = Math.max(1, ...points.map((p) => Math.max(p.tokensPerSecond, p.requestsPerSecond)));
    const niceMax = niceCeil(max);
    const x = (at) => left + ((W - left) * (Date.parse(at) - (now - span))) / span;
    const y = (v) => top + (H - top - bottom) * (1 - v / niceMax);
    const children = [];
    for (let i = 0; i <= 4; i++) {
      const v = (niceMax * i) / 4;
      children.push(node('line', { class: 'grid', x1: left, x2: W, y1: y(v), y2: y(v) }));
      const label = node('text', { class: 'axis', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' });
      label.textContent = String(Number(v.toPrecision(3)));
      children.push(label);
    }
    const ago = node('text', { class: 'axis', x: left, y: H - 4 });
    ago.textContent = span < 90_000 ? `−${Math.round(span / 1000)} s` : `−${Math.round(span / 60_000)} min`;
    const nowLabel = node('text', { class: 'axis', x: W - 2, y: H - 4, 'text-anchor': 'end' });
    nowLabel.textContent = 'now';
    children.push(ago, nowLabel);
    if (points.length > 1) {
      const line = (key) => points.map((p) => `${x(p.at).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
      const tokens = line('tokensPerSecond');
      const first = points[0];
      const last = points[points.length - 1];
      children.push(node('polygon', { class: 'tokens-area', points: `${x(first.at)},${y(0)} ${tokens} ${x(last.at)},${y(0)}` }));
      children.push(node('polyline', { class: 'requests', points: line('requestsPerSecond') }));
      children.push(node('polyline', { class: 'tokens', points: tokens }));
    }
    svg.replaceChildren(...children);
    $('chart-span').textContent = `· one point per ${intervalMs >= 1000 ? `${intervalMs / 1000} s` : `${intervalMs} ms`}`;
  }

  window.addEventListener('resize', () => drawChart());

  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // ---- try it ---------------------------------------------------------------

  let tryStop = null;

  function stopTry() {
    if (tryStop) tryStop();
    tryStop = null;
    $('try-run').textContent = 'Generate';
    $('try-run').classList.remove('stop');
    const cursor = $('try-output').querySelector('.cursor');
    if (cursor) cursor.remove();
  }

  $('try-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (tryStop) return stopTry();
    const output = $('try-output');
    const prompt = $('try-prompt').value;
    const text = document.createTextNode('');
    const cursor = el('span', { class: 'cursor', text: ' ' });
    output.replaceChildren(el('span', { class: 'prompt', text: prompt }), text, cursor);
    // Empty fields take the model's generation_config.json defaults.
    const params = {};
    if ($('try-max-tokens').value !== '') params.maxTokens = Number($('try-max-tokens').value);
    if ($('try-temperature').value !== '') params.temperature = Number($('try-temperature').value);
    let tokens = 0;
    $('try-info').textContent = 'waiting for the first token…';
    $('try-run').textContent = 'Stop';
    $('try-run').classList.add('stop');
    const started = performance.now();
    tryStop = client.subscribe({ query: GENERATE, variables: { model: $('try-model').value, prompt, params } }, {
      next: (result) => {
        if (result.errors) {
          const e = result.errors[0];
          output.append(el('span', { class: 'error', text: `\n${(e.extensions && e.extensions.code) || 'ERROR'}: ${e.message}` }));
          return;
        }
        const event = result.data.generate;
        text.appendData(event.text);
        tokens = event.index + 1;
        output.dataset.tokens = String(tokens);
        output.scrollTop = output.scrollHeight;
        const seconds = (performance.now() - started) / 1000;
        $('try-info').textContent = `${tokens} tokens · ${(tokens / Math.max(seconds, 1e-3)).toFixed(1)} tok/s`;
        if (event.finishReason) {
          const m = event.metrics;
          $('try-info').textContent = `${event.usage.completionTokens} tokens · ${event.finishReason.toLowerCase()} · first token ${m.ttftMs.toFixed(0)} ms · ${m.tokensPerSecond.toFixed(1)} tok/s`;
        }
      },
      error: (error) => {
        // graphql-ws hands operation errors over as an array of GraphQL errors.
        const e = Array.isArray(error) ? error[0] : error;
        const code = e && e.extensions && e.extensions.code;
        output.append(el('span', { class: 'error', text: `\n${code ? `${code}: ` : ''}${e && e.message ? e.message : 'connection lost'}` }));
        $('try-info').textContent = '';
        stopTry();
      },
      complete: () => {
        tryStop = null;
        stopTry();
      },
    });
  });

  connect();
})();
