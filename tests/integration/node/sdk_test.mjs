// sdk_test.mjs - the official OpenAI Node SDK (pinned in package.json) against switchboard's
// gateway, the way applications use it. Driven by tests/integration/test_node_sdk.sh, which
// starts the simulators and `switchboard serve` and passes, in the environment:
//   SB_BASE_URL   the gateway's API root, e.g. http://127.0.0.1:PORT/v1
//   SB_ROUTES     comma-separated ROUTE=TARGET pairs, one route per wire format
//   SB_DOWN_ROUTE a route whose only target is in outage (no fallback)
// For every route: chat.completions.create without and with streaming (include_usage), tool
// calls (non-streamed, streamed deltas assembled by index, and the tool result sent back),
// the chat.completions.stream() helper, and the gateway's response headers. Then the SDK's
// error classes for an unknown model and for an outage. Then, per wire format on a "lab"
// route whose simulator the script steers through its control port (SB_LAB), what the SDK
// raises for each upstream error status (AuthenticationError, NotFoundError, RateLimitError,
// InternalServerError, ...), how streams end (no [DONE] after a finish_reason, a cut, a bare
// JSON error after the last event, an SSE line over the limit) and the fields that must
// survive translation (refusal, blocked prompts, reasoning, logprobs, flat tool calls,
// rate-limit headers). Prints one line per check and
// "N passed, N failed"; exits 1 when anything failed. Every request has a timeout, and a
// watchdog ends the whole script.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const REQUEST_TIMEOUT_MS = Number(process.env.SB_REQUEST_TIMEOUT_MS || 20000);
const WATCHDOG_MS = Number(process.env.SB_WATCHDOG_MS || 150000);

let passed = 0;
let failed = 0;

function check(desc, cond, detail) {
  if (cond) {
    passed++;
    console.log(`ok   - ${desc}`);
  } else {
    failed++;
    console.log(`FAIL - ${desc}${detail !== undefined ? ` (${detail})` : ''}`);
  }
}

function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

const watchdog = setTimeout(() => {
  check(`whole script finished within ${WATCHDOG_MS} ms`, false, 'watchdog fired');
  finish();
}, WATCHDOG_MS);

const baseURL = process.env.SB_BASE_URL;
if (!baseURL || !process.env.SB_ROUTES) {
  console.error('sdk_test.mjs: SB_BASE_URL and SB_ROUTES must be set');
  process.exit(2);
}
const routes = process.env.SB_ROUTES.split(',').map((p) => {
  const [route, target] = p.split('=');
  return { route, target };
});

// No retries: a failure must show, not be papered over by the SDK's own retry loop.
const client = new OpenAI({
  apiKey: 'sk-not-checked-by-the-gateway',
  baseURL,
  timeout: REQUEST_TIMEOUT_MS,
  maxRetries: 0,
});

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather for a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', description: 'City name' } },
        required: ['city'],
      },
    },
  },
];
const WEATHER_PROMPT = "What's the weather in Paris right now?";
const TOOL_RESULT = '{"temp_c":18,"sky":"clear"}';

function parseJSON(s) {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

function checkHeaders(label, response, target) {
  const h = (name) => response.headers.get(name);
  check(`${label}: x-request-id header`, !!h('x-request-id'), h('x-request-id'));
  check(`${label}: x-switchboard-target is ${target}`, h('x-switchboard-target') === target,
    h('x-switchboard-target'));
  check(`${label}: x-switchboard-attempts >= 1`, Number(h('x-switchboard-attempts')) >= 1,
    h('x-switchboard-attempts'));
}

function checkUsage(label, usage) {
  const ok = !!usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0 &&
    usage.total_tokens === usage.prompt_tokens + usage.completion_tokens;
  check(`${label}: usage (prompt, completion, total)`, ok, JSON.stringify(usage));
}

// Runs one step; an exception is a failed check, never a crash of the whole script.
async function step(label, fn) {
  try {
    await fn();
  } catch (err) {
    check(`${label}`, false, `${err && err.constructor && err.constructor.name}: ${err && err.message}`);
  }
}

async function nonStreaming(route, target) {
  const label = `${route} create`;
  const text = `hello from the node sdk via ${route}`;
  const { data, response, request_id: requestId } = await client.chat.completions
    .create({ model: route, messages: [{ role: 'user', content: `echo: ${text}` }] })
    .withResponse();
  const choice = data.choices && data.choices[0];
  check(`${label}: content`, choice && choice.message.content === text, choice && choice.message.content);
  check(`${label}: role assistant`, choice && choice.message.role === 'assistant');
  check(`${label}: finish_reason stop`, choice && choice.finish_reason === 'stop', choice && choice.finish_reason);
  checkUsage(label, data.usage);
  check(`${label}: id chatcmpl-*`, typeof data.id === 'string' && data.id.startsWith('chatcmpl-'), data.id);
  check(`${label}: model is the route`, data.model === route, data.model);
  check(`${label}: object chat.completion`, data.object === 'chat.completion', data.object);
  checkHeaders(label, response, target);
  check(`${label}: SDK request_id matches x-request-id`,
    requestId === response.headers.get('x-request-id'), requestId);
}

async function streaming(route, target) {
  const label = `${route} stream`;
  const text = `streamed words come back in order via ${route}`;
  const { data: stream, response } = await client.chat.completions
    .create({
      model: route,
      messages: [{ role: 'user', content: `echo: ${text}` }],
      stream: true,
      stream_options: { include_usage: true },
    })
    .withResponse();
  checkHeaders(label, response, target);
  check(`${label}: content-type text/event-stream`,
    (response.headers.get('content-type') || '').startsWith('text/event-stream'));
  let content = '';
  let finish = null;
  let chunks = 0;
  let usageChunk = null;
  let usageBeforeLast = false;
  let ids = new Set();
  for await (const chunk of stream) {
    chunks++;
    ids.add(chunk.id);
    if (usageChunk) usageBeforeLast = true; // something came after the usage chunk
    if (chunk.usage) {
      usageChunk = chunk;
      continue;
    }
    const c = chunk.choices[0];
    if (c && c.delta && c.delta.content) content += c.delta.content;
    if (c && c.finish_reason) finish = c.finish_reason;
  }
  check(`${label}: assembled text`, content === text, JSON.stringify(content));
  check(`${label}: several chunks`, chunks >= 3, chunks);
  check(`${label}: finish_reason stop`, finish === 'stop', finish);
  check(`${label}: final chunk carries usage with empty choices`,
    !!usageChunk && !usageBeforeLast && Array.isArray(usageChunk.choices) && usageChunk.choices.length === 0);
  checkUsage(label, usageChunk && usageChunk.usage);
  check(`${label}: one id for every chunk`, ids.size === 1, [...ids].join(','));
}

async function toolsNonStreaming(route) {
  const label = `${route} tools`;
  const messages = [{ role: 'user', content: WEATHER_PROMPT }];
  const data = await client.chat.completions.create({ model: route, messages, tools: TOOLS });
  const choice = data.choices[0];
  const calls = choice.message.tool_calls || [];
  check(`${label}: finish_reason tool_calls`, choice.finish_reason === 'tool_calls', choice.finish_reason);
  check(`${label}: one tool call`, calls.length === 1, calls.length);
  const call = calls[0] || { function: {} };
  check(`${label}: type function, name get_weather`,
    call.type === 'function' && call.function.name === 'get_weather', JSON.stringify(call));
  check(`${label}: tool call id`, typeof call.id === 'string' && call.id.length > 0, call.id);
  const args = parseJSON(call.function.arguments);
  check(`${label}: arguments parse as JSON with a city`,
    !!args && typeof args.city === 'string' && args.city.length > 0, call.function.arguments);
  return { messages, call };
}

async function toolsStreaming(route) {
  const label = `${route} tools stream`;
  const stream = await client.chat.completions.create({
    model: route,
    messages: [{ role: 'user', content: WEATHER_PROMPT }],
    tools: TOOLS,
    stream: true,
    stream_options: { include_usage: true },
  });
  const byIndex = new Map();
  let finish = null;
  let usage = null;
  let argDeltas = 0;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    for (const tc of (c.delta && c.delta.tool_calls) || []) {
      const t = byIndex.get(tc.index) || { id: null, name: '', arguments: '' };
      if (tc.id) t.id = tc.id;
      if (tc.function && tc.function.name) t.name += tc.function.name;
      if (tc.function && tc.function.arguments) {
        t.arguments += tc.function.arguments;
        argDeltas++;
      }
      byIndex.set(tc.index, t);
    }
    if (c.finish_reason) finish = c.finish_reason;
  }
  const t = byIndex.get(0) || {};
  check(`${label}: one call at index 0`, byIndex.size === 1 && byIndex.has(0), [...byIndex.keys()].join(','));
  check(`${label}: id and name get_weather`, !!t.id && t.name === 'get_weather', JSON.stringify(t));
  const args = parseJSON(t.arguments);
  check(`${label}: assembled arguments parse as JSON with a city`,
    !!args && typeof args.city === 'string', t.arguments);
  check(`${label}: arguments arrived as deltas`, argDeltas >= 1, argDeltas);
  check(`${label}: finish_reason tool_calls`, finish === 'tool_calls', finish);
  checkUsage(label, usage);
}

async function toolResultTurn(route, first) {
  const label = `${route} tool result`;
  const messages = [
    ...first.messages,
    { role: 'assistant', content: null, tool_calls: [first.call] },
    { role: 'tool', tool_call_id: first.call.id, content: TOOL_RESULT },
  ];
  const data = await client.chat.completions.create({ model: route, messages, tools: TOOLS });
  const choice = data.choices[0];
  check(`${label}: answered with text`,
    typeof choice.message.content === 'string' && choice.message.content.includes('18'),
    choice.message.content);
  check(`${label}: no further tool call`, !(choice.message.tool_calls && choice.message.tool_calls.length));
  check(`${label}: finish_reason stop`, choice.finish_reason === 'stop', choice.finish_reason);
}

async function streamHelper(route) {
  const label = `${route} stream()`;
  if (typeof client.chat.completions.stream !== 'function') {
    check(`${label}: helper present in this SDK version`, false);
    return;
  }
  const text = `the helper assembles a snapshot via ${route}`;
  const stream = client.chat.completions.stream({
    model: route,
    messages: [{ role: 'user', content: `echo: ${text}` }],
    stream_options: { include_usage: true },
  });
  let deltas = '';
  stream.on('content', (delta) => {
    deltas += delta;
  });
  const final = await stream.finalChatCompletion();
  check(`${label}: content events`, deltas === text, JSON.stringify(deltas));
  check(`${label}: finalChatCompletion content`, final.choices[0].message.content === text,
    final.choices[0].message.content);
  check(`${label}: finalChatCompletion finish_reason stop`, final.choices[0].finish_reason === 'stop');
  checkUsage(label, final.usage);
}

async function errors() {
  try {
    await client.chat.completions.create({
      model: 'no-such-model',
      messages: [{ role: 'user', content: 'hi' }],
    });
    check('unknown model: the SDK raises', false, 'no error');
  } catch (err) {
    check('unknown model: NotFoundError (404)', err instanceof OpenAI.NotFoundError && err.status === 404,
      `${err.constructor.name} ${err.status}`);
    check('unknown model: the gateway\'s message names the model',
      typeof err.message === 'string' && err.message.includes('no-such-model'), err.message);
    check('unknown model: error code model_not_found', err.code === 'model_not_found', err.code);
    check('unknown model: error carries x-request-id', !!err.requestID, err.requestID);
  }
  const down = process.env.SB_DOWN_ROUTE;
  if (!down) return;
  for (const stream of [false, true]) {
    const label = `outage${stream ? ' (stream)' : ''}`;
    try {
      const res = await client.chat.completions.create({
        model: down,
        messages: [{ role: 'user', content: 'hi' }],
        stream,
      });
      if (stream) for await (const _ of res); // eslint-disable-line no-unused-vars
      check(`${label}: the SDK raises`, false, 'no error');
    } catch (err) {
      check(`${label}: APIError with a 5xx status`,
        err instanceof OpenAI.APIError && err.status >= 500 && err.status <= 599,
        `${err.constructor.name} ${err.status} ${err.message}`);
      check(`${label}: not a connection error (the gateway answered)`,
        !(err instanceof OpenAI.APIConnectionError), err.constructor.name);
      check(`${label}: the gateway's message`, typeof err.message === 'string' && err.message.length > 4,
        err.message);
    }
  }
}

// ---- wire fidelity: one "lab" route per wire format, its simulator steered per case --------

// SB_LAB: ROUTE=TARGET=CONTROL_URL,... (one target, one attempt, per wire format).
const labs = (process.env.SB_LAB || '').split(',').filter(Boolean).map((p) => {
  const [route, target, ctl] = p.split('=');
  return { route, target, ctl, kind: route.replace(/^r-lab-/, '') };
});

async function behave(lab, patch) {
  const res = await fetch(`${lab.ctl}/_sim/behavior`, {
    method: 'POST',
    body: JSON.stringify({ reset: true, ...patch }),
  });
  if (!res.ok) throw new Error(`behaviour ${JSON.stringify(patch)}: ${res.status}`);
}

// What the SDK must raise for each status the gateway passes through.
const STATUS_CLASSES = [
  [400, 'BadRequestError', 400],
  [401, 'AuthenticationError', 401],
  [403, 'PermissionDeniedError', 403],
  [404, 'NotFoundError', 404],
  [409, 'ConflictError', 409],
  [413, 'APIError', 413],
  [422, 'UnprocessableEntityError', 422],
  [500, 'InternalServerError', 500],
  [503, 'InternalServerError', 503],
  [529, 'InternalServerError', 503], // Anthropic's overloaded status becomes 503
  [429, 'RateLimitError', 429], // last: the target then rests a moment
];

async function raised(req) {
  try {
    const res = await client.chat.completions.create(req);
    if (req.stream) for await (const _ of res); // eslint-disable-line no-unused-vars
    return null;
  } catch (err) {
    return err;
  }
}

async function errorStatuses(lab) {
  for (const [upstream, cls, status] of STATUS_CLASSES) {
    if (upstream === 529 && lab.kind !== 'anthropic') continue;
    await behave(lab, { error_rate: 1, error_statuses: [upstream] });
    const label = `${lab.kind} upstream ${upstream}`;
    const err = await raised({ model: lab.route, messages: [{ role: 'user', content: 'hi' }] });
    const name = err && err.constructor && err.constructor.name;
    check(`${label}: the SDK raises ${cls} (${status})`, !!err && name === cls && err.status === status,
      `${name} ${err && err.status} ${err && err.message}`);
    if (!err || !err.headers) continue;
    check(`${label}: x-switchboard-target names ${lab.target}`,
      err.headers.get('x-switchboard-target') === lab.target, err.headers.get('x-switchboard-target'));
    check(`${label}: x-switchboard-upstream-status ${upstream}`,
      err.headers.get('x-switchboard-upstream-status') === String(upstream),
      err.headers.get('x-switchboard-upstream-status'));
    if (upstream === 401) {
      check(`${label}: the message says the configured key was refused`,
        err.message.includes(lab.target) && err.message.includes('configured in switchboard'), err.message);
      check(`${label}: error type authentication_error or the provider's`,
        lab.kind === 'openai' ? err.code === 'invalid_api_key' : err.type === 'authentication_error',
        `${err.type} ${err.code}`);
    }
    if (upstream === 404)
      check(`${label}: not_found type or model_not_found code`,
        lab.kind === 'openai' ? err.code === 'model_not_found' : err.type === 'not_found_error',
        `${err.type} ${err.code}`);
    if (upstream === 429)
      check(`${label}: Retry-After header`, Number(err.headers.get('retry-after')) >= 1,
        err.headers.get('retry-after'));
    if (upstream === 500 || upstream === 503)
      check(`${label}: server_error type`, err.type === 'server_error', err.type);
  }
  await behave(lab, {});
}

async function collect(req) {
  const stream = await client.chat.completions.create({ ...req, stream: true });
  let text = '';
  let refusal = '';
  let reasoning = '';
  let finish = null;
  let usage = null;
  const calls = [];
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    text += c.delta.content || '';
    refusal += c.delta.refusal || '';
    reasoning += c.delta.reasoning_content || '';
    for (const tc of c.delta.tool_calls || []) {
      if (!calls[tc.index]) calls[tc.index] = { id: tc.id, name: '', args: '' };
      if (tc.function && tc.function.name) calls[tc.index].name += tc.function.name;
      if (tc.function && tc.function.arguments) calls[tc.index].args += tc.function.arguments;
    }
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { text, refusal, reasoning, finish, usage, calls };
}

const HI = [{ role: 'user', content: 'echo: hello there friend' }];

async function streamEndings(lab) {
  const k = lab.kind;
  if (k !== 'gemini') {
    await behave(lab, { wire: 'no_done' });
    const r = await collect({ model: lab.route, messages: HI, stream_options: { include_usage: true } });
    check(`${k} no [DONE] after a finish_reason: the stream completes`, r.text === 'hello there friend',
      JSON.stringify(r.text));
    check(`${k} no [DONE]: finish_reason stop`, r.finish === 'stop', r.finish);
    checkUsage(`${k} no [DONE]`, r.usage);
  }
  await behave(lab, { cut_after_tokens: 1 });
  let err = await raised({ model: lab.route, messages: HI, stream: true });
  check(`${k} stream cut before a finish_reason: the SDK raises APIError`,
    err instanceof OpenAI.APIError, err && `${err.constructor.name} ${err.message}`);
  if (k !== 'anthropic') {
    await behave(lab, { wire: 'trailing_error' });
    err = await raised({ model: lab.route, messages: HI, stream: true });
    check(`${k} bare JSON error after the last event: the SDK raises APIError with its message`,
      err instanceof OpenAI.APIError && /Resource exhausted/.test(err.message),
      err && `${err.constructor.name} ${err.message}`);
  }
  if (k !== 'anthropic') {
    await behave(lab, { wire: 'oversize_event' });
    err = await raised({ model: lab.route, messages: HI, stream: true });
    check(`${k} SSE line over the limit: the SDK raises an error that says so`,
      err instanceof OpenAI.APIError && /over the limit of 4194304 bytes/.test(err.message),
      err && `${err.constructor.name} ${err.message}`);
  }
  await behave(lab, {});
}

async function fields(lab) {
  const k = lab.kind;
  await behave(lab, { wire: k === 'gemini' ? 'prompt_blocked_silent' : 'refusal' });
  const res = await client.chat.completions.create({ model: lab.route, messages: HI });
  const ch = res.choices[0];
  if (k === 'openai') {
    check('openai refusal: message.refusal reaches the SDK', /^I'm sorry/.test(ch.message.refusal || ''),
      JSON.stringify(ch.message));
    check('openai refusal: content null', ch.message.content === null, ch.message.content);
    const r = await collect({ model: lab.route, messages: HI });
    check('openai refusal (stream): delta.refusal', /^I'm sorry/.test(r.refusal), JSON.stringify(r));
  } else {
    check(`${k} ${k === 'gemini' ? 'blocked prompt (no blockReason)' : 'refusal'}: finish_reason content_filter`,
      ch.finish_reason === 'content_filter', ch.finish_reason);
    const r = await collect({ model: lab.route, messages: HI });
    check(`${k} (stream): finish_reason content_filter`, r.finish === 'content_filter', r.finish);
  }
  if (k === 'gemini') {
    await behave(lab, { wire: 'prompt_blocked' });
    const b = await client.chat.completions.create({ model: lab.route, messages: HI });
    check('gemini blocked prompt (blockReason): content_filter', b.choices[0].finish_reason === 'content_filter',
      b.choices[0].finish_reason);
  }
  if (k === 'openai') {
    await behave(lab, { wire: 'reasoning' });
    const r = await client.chat.completions.create({ model: lab.route, messages: HI });
    check('openai-wire reasoning_content passes through', !!r.choices[0].message.reasoning_content,
      JSON.stringify(r.choices[0].message));
    check('openai-wire logprobs pass through',
      r.choices[0].logprobs && r.choices[0].logprobs.content[0].logprob === -0.25,
      JSON.stringify(r.choices[0].logprobs));
    check('openai-wire system_fingerprint and service_tier pass through',
      r.system_fingerprint === 'fp_sim' && r.service_tier === 'default',
      `${r.system_fingerprint} ${r.service_tier}`);
    const s = await collect({ model: lab.route, messages: HI });
    check('openai-wire reasoning_content (stream)', s.reasoning.length > 0 && s.text === 'hello there friend',
      JSON.stringify(s));
    await behave(lab, { wire: 'legacy_tools' });
    const t = await client.chat.completions.create({
      model: lab.route, messages: [{ role: 'user', content: WEATHER_PROMPT }], tools: TOOLS,
      tool_choice: 'required',
    });
    const call = t.choices[0].message.tool_calls && t.choices[0].message.tool_calls[0];
    check('flat tool call: normalised (id, type, function.name, arguments)',
      !!call && !!call.id && call.type === 'function' && call.function.name === 'get_weather' &&
      !!parseJSON(call.function.arguments), JSON.stringify(t.choices[0].message));
    check('flat tool call: finish_reason tool_calls', t.choices[0].finish_reason === 'tool_calls',
      t.choices[0].finish_reason);
    const ts = await collect({ model: lab.route, messages: [{ role: 'user', content: WEATHER_PROMPT }],
      tools: TOOLS, tool_choice: 'required' });
    check('flat tool call (stream): normalised', ts.calls.length === 1 && !!ts.calls[0].id &&
      ts.calls[0].name === 'get_weather' && ts.finish === 'tool_calls', JSON.stringify(ts));
  }
  if (k !== 'gemini') {
    await behave(lab, {});
    const { response } = await client.chat.completions
      .create({ model: lab.route, messages: HI })
      .withResponse();
    check(`${k}: provider rate-limit headers reach the client as x-ratelimit-*`,
      !!response.headers.get('x-ratelimit-remaining-requests') &&
      !!response.headers.get('x-ratelimit-limit-requests'),
      response.headers.get('x-ratelimit-remaining-requests'));
  }
  await behave(lab, {});
}

async function main() {
  const sdk = JSON.parse(readFileSync(new URL('./node_modules/openai/package.json', import.meta.url)));
  console.log(`# openai ${sdk.version} on node ${process.version} against ${baseURL}`);
  for (const { route, target } of routes) {
    await step(`${route} create`, () => nonStreaming(route, target));
    await step(`${route} stream`, () => streaming(route, target));
    let first = null;
    await step(`${route} tools`, async () => {
      first = await toolsNonStreaming(route);
    });
    await step(`${route} tools stream`, () => toolsStreaming(route));
    if (first && first.call && first.call.id) {
      await step(`${route} tool result`, () => toolResultTurn(route, first));
    } else {
      check(`${route} tool result: skipped, the first turn gave no tool call`, false);
    }
    await step(`${route} stream()`, () => streamHelper(route));
  }
  await step('errors', errors);
  for (const lab of labs) {
    await step(`${lab.kind} error statuses`, () => errorStatuses(lab));
    await step(`${lab.kind} stream endings`, () => streamEndings(lab));
    await step(`${lab.kind} fields`, () => fields(lab));
  }
  clearTimeout(watchdog);
  finish();
}

main();
