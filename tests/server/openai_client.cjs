// ember-server through a real client: the official OpenAI Node.js SDK (and, for what a client
// library would refuse to send, plain fetch and raw sockets). Run by server_test.cc:
//   node openai_client.cjs MODE CONFIG.json
// CONFIG: {base, key, pid, parallel, expected: [{prompt, full}], chat_prompt}; `full` is ember-run's
// output for the prompt (50 tokens, greedy). Prints what it checks; exits 1 on the first failure.
'use strict';
const fs = require('fs');
const net = require('net');
const OpenAI = require('openai');

const mode = process.argv[2];
const cfg = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const client = new OpenAI({ baseURL: cfg.base + '/v1', apiKey: cfg.key || 'none', maxRetries: 0 });
const N = 50;

function check(cond, what) {
  if (!cond) {
    console.error('FAIL: ' + what);
    process.exit(1);
  }
}
function eq(got, want, what) {
  check(got === want, what + ':\n  got  ' + JSON.stringify(got) + '\n  want ' + JSON.stringify(want));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function metrics() {
  const r = await fetch(cfg.base + '/metrics', { headers: auth() });
  const m = {};
  for (const line of (await r.text()).split('\n')) {
    const p = line.match(/^(ember_[a-z_]+) ([0-9.e+-]+)$/);
    if (p) m[p[1]] = Number(p[2]);
  }
  return m;
}
function auth() {
  return cfg.key ? { Authorization: 'Bearer ' + cfg.key } : {};
}
async function post(path, body, extra = {}) {
  const t0 = Date.now();
  const r = await fetch(cfg.base + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...auth(), ...extra },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (e) {}
  return { status: r.status, json, text, ms: Date.now() - t0, headers: r.headers };
}
function rssBytes() {
  const s = fs.readFileSync('/proc/' + cfg.pid + '/status', 'utf8');
  return Number(s.match(/VmRSS:\s+(\d+) kB/)[1]) * 1024;
}

// The five prompts as one array, then streamed: each text is ember-run's.
async function completions() {
  const prompts = cfg.expected.map((e) => e.prompt);
  const r = await client.completions.create({ model: 'm', prompt: prompts, max_tokens: N, temperature: 0 });
  eq(r.choices.length, prompts.length, 'one choice per prompt');
  let gen = 0;
  for (const c of r.choices) {
    eq(cfg.expected[c.index].prompt + c.text, cfg.expected[c.index].full, 'choice ' + c.index);
  }
  for (const c of r.choices) check(['length', 'stop'].includes(c.finish_reason), 'finish_reason');
  check(r.usage.completion_tokens > 0 && r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, 'usage');
  console.log('completions: 5 prompts in one call match ember-run; usage ' + JSON.stringify(r.usage));

  const stream = await client.completions.create({
    model: 'm', prompt: prompts, max_tokens: N, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  const texts = prompts.map(() => '');
  const finish = prompts.map(() => null);
  let usage = null, chunks = 0;
  for await (const chunk of stream) {
    ++chunks;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      texts[c.index] += c.text;
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  for (let i = 0; i < prompts.length; ++i) {
    eq(prompts[i] + texts[i], cfg.expected[i].full, 'streamed choice ' + i);
    check(finish[i] !== null, 'streamed finish_reason ' + i);
  }
  for (const f of ['prompt_tokens', 'completion_tokens', 'total_tokens']) eq(usage[f], r.usage[f], 'streamed usage.' + f);
  // The same prompts again: the server's slots still hold them (prefix reuse), the texts unchanged.
  check(usage.prompt_tokens_details.cached_tokens > 0, 'cached prompt tokens on the second call');
  check(chunks > prompts.length * 2, 'streamed in pieces (' + chunks + ' chunks)');
  console.log('completions: streamed, ' + chunks + ' chunks, the same texts; ' +
              usage.prompt_tokens_details.cached_tokens + ' of ' + usage.prompt_tokens + ' prompt tokens cached');

  const models = await client.models.list();
  check(models.data.length === 1 && models.data[0].object === 'model', 'models list');
  console.log('models: ' + models.data[0].id);
}

// A chat through the model's template (Llama 2 in the test model): the same text as the completion
// of the rendered prompt, streamed and not.
async function chat() {
  const messages = [{ role: 'system', content: 'Tell a story.' }, { role: 'user', content: 'Once upon a time' }];
  const rendered = '[INST] <<SYS>>\nTell a story.\n<</SYS>>\n\nOnce upon a time [/INST]';
  const want = await client.completions.create({ model: 'm', prompt: rendered, max_tokens: 30, temperature: 0 });
  const r = await client.chat.completions.create({ model: 'm', messages, max_tokens: 30, temperature: 0 });
  eq(r.choices[0].message.role, 'assistant', 'role');
  eq(r.choices[0].message.content, want.choices[0].text, 'chat content = completion of the rendered prompt');
  eq(r.usage.prompt_tokens, want.usage.prompt_tokens, 'chat prompt tokens');
  const s = await client.chat.completions.create({ model: 'm', messages, max_tokens: 30, temperature: 0, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of s) {
    const c = chunk.choices[0];
    if (c.delta && c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  eq(text, want.choices[0].text, 'streamed chat content');
  check(finish === 'length' || finish === 'stop', 'streamed chat finish');
  console.log('chat: ' + JSON.stringify(text));
  // Roles the Llama 2 template cannot express are a 400 naming the problem.
  const bad = await post('/v1/chat/completions', { messages: [{ role: 'assistant', content: 'x' }] });
  eq(bad.status, 400, 'assistant first');
  check(/alternating/.test(bad.json.error.message), 'names the rule: ' + bad.text);
}

// 32 clients, 4 requests each, half streamed: all greedy texts right, slots never above
// --parallel, memory after within 5% of before.
async function concurrency() {
  const one = async (w, k) => {
    const e = cfg.expected[(w + k) % cfg.expected.length];
    if ((w + k) % 2 === 0) {
      const r = await client.completions.create({ model: 'm', prompt: e.prompt, max_tokens: N, temperature: 0 });
      eq(e.prompt + r.choices[0].text, e.full, 'client ' + w + ' request ' + k);
    } else {
      const s = await client.completions.create({ model: 'm', prompt: e.prompt, max_tokens: N, temperature: 0, stream: true });
      let t = '';
      for await (const c of s) t += c.choices.length ? c.choices[0].text : '';
      eq(e.prompt + t, e.full, 'client ' + w + ' streamed request ' + k);
    }
  };
  const round = async (requests) => {
    const clients = [];
    for (let w = 0; w < 32; ++w) {
      clients.push((async () => {
        for (let k = 0; k < requests; ++k) await one(w, k);
      })());
    }
    await Promise.all(clients);
  };
  // Warm-up: the same load once, so that every HTTP thread and allocator arena has been used;
  // what is measured is whether a second load leaves memory behind.
  await round(4);
  await sleep(200);
  const before = rssBytes();
  const t0 = Date.now();
  await round(4);
  const ms = Date.now() - t0;
  await sleep(200);
  const after = rssBytes();
  const m = await metrics();
  check(m.ember_slots_busy_max <= cfg.parallel, 'slots busy max ' + m.ember_slots_busy_max + ' <= ' + cfg.parallel);
  check(m.ember_slots_busy_max >= 2, 'requests ran together (max ' + m.ember_slots_busy_max + ')');
  eq(m.ember_slots_busy, 0, 'slots free after the load');
  const growth = (after - before) / before;
  console.log('concurrency: 128 requests (after 128 to warm up) in ' + ms + ' ms, slots busy max ' + m.ember_slots_busy_max +
      ', RSS ' + before + ' -> ' + after + ' bytes (' + (growth * 100).toFixed(2) + '%)');
  // Under AddressSanitizer freed memory sits in its quarantine; LeakSanitizer checks leaks there.
  if (cfg.check_rss !== false) check(Math.abs(growth) <= 0.05, 'RSS within 5%');
}

async function stillServing(what) {
  const r = await client.completions.create({ model: 'm', prompt: cfg.expected[0].prompt, max_tokens: N, temperature: 0 });
  eq(cfg.expected[0].prompt + r.choices[0].text, cfg.expected[0].full, 'still serving after ' + what);
}

async function expectError(path, body, status, param, what, re) {
  const r = await post(path, body);
  eq(r.status, status, what + ' status (' + r.text + ')');
  check(r.json && r.json.error && typeof r.json.error.message === 'string', what + ': OpenAI error body');
  if (param !== undefined) eq(r.json.error.param, param, what + ' names the field');
  if (re) check(re.test(r.json.error.message), what + ': message ' + r.json.error.message);
  return r;
}

async function waitIdle() {
  for (let i = 0; i < 200; ++i) {
    const m = await metrics();
    if (m.ember_slots_busy === 0 && m.ember_queue_depth === 0) return m;
    await sleep(50);
  }
  check(false, 'slots freed');
}

// Bad input, each with its status, the server serving after each.
async function abuseInput() {
  await expectError('/v1/completions', '{"prompt": "x", ', 400, null, 'malformed JSON');
  await expectError('/v1/completions', '[1, 2]', 400, null, 'not an object');
  await expectError('/v1/completions', { prompt: 'x', max_tokens: '5' }, 400, 'max_tokens', 'string max_tokens');
  await expectError('/v1/completions', { prompt: 'x', temperature: 'hot' }, 400, 'temperature', 'string temperature');
  await expectError('/v1/completions', { prompt: 42 }, 400, 'prompt', 'number prompt');
  await expectError('/v1/completions', { prompt: 'x', stop: 5 }, 400, 'stop', 'number stop');
  await expectError('/v1/completions', { prompt: 'x', stream: 'yes' }, 400, 'stream', 'string stream');
  await expectError('/v1/completions', { prompt: 'x', top_p: 7 }, 400, 'top_p', 'top_p out of range');
  await expectError('/v1/chat/completions', { messages: 'hi' }, 400, 'messages', 'string messages');
  await expectError('/v1/chat/completions', { messages: [{ role: 1, content: 'x' }] }, 400, 'messages[0].role', 'number role');
  const ok = await post('/v1/completions', { prompt: 'Once', max_tokens: 3, frobnicate: { a: 1 }, user: 'u' });
  eq(ok.status, 200, 'unknown fields ignored');
  await expectError('/v1/completions', 'x'.repeat(2 << 20), 413, undefined, '2 MB body');
  const long = 'Once upon a time there was a dog. '.repeat(100);
  await expectError('/v1/completions', { prompt: long }, 400, 'prompt', 'prompt over the context', /is \d+ tokens; the context holds \d+/);
  await expectError('/v1/completions', { prompt: 'x', max_tokens: 100000 }, 400, 'max_tokens', 'max_tokens beyond the context');
  await expectError('/v1/nothing', {}, 404, undefined, 'unknown path');
  await stillServing('bad input');
  console.log('abuse: malformed JSON, wrong types, unknown fields, 413, over-context prompt and max_tokens answered');
}

async function abuseAuth() {
  const nokey = await fetch(cfg.base + '/v1/models');
  eq(nokey.status, 401, 'no key');
  const wrong = await fetch(cfg.base + '/v1/models', { headers: { Authorization: 'Bearer wrong' + cfg.key } });
  eq(wrong.status, 401, 'wrong key');
  const nobody = await fetch(cfg.base + '/v1/completions', { method: 'POST', body: '{"prompt":"x"}' });
  eq(nobody.status, 401, 'completion without key');
  eq((await fetch(cfg.base + '/metrics')).status, 401, 'metrics without key');
  eq((await fetch(cfg.base + '/health')).status, 200, 'health needs no key');
  const bad = new OpenAI({ baseURL: cfg.base + '/v1', apiKey: 'nope', maxRetries: 0 });
  let status = 0;
  try {
    await bad.models.list();
  } catch (e) {
    status = e.status;
  }
  eq(status, 401, 'SDK with a wrong key');
  console.log('abuse: 401 without the key, /health open');
}

// A client that disconnects mid-stream: its request is cancelled and its slot freed.
async function abuseDisconnect() {
  const m0 = await metrics();
  const ac = new AbortController();
  const s = await client.completions.create(
    { model: 'm', prompt: 'Once upon a time', max_tokens: 480, temperature: 0, stream: true, ignore_eos: true },
    { signal: ac.signal });
  let got = 0;
  try {
    for await (const c of s) {
      if (++got === 2) ac.abort();
    }
  } catch (e) {}
  const m1 = await waitIdle();
  check(m1.ember_requests_cancelled_total > m0.ember_requests_cancelled_total, 'the request was cancelled');
  const gen = m1.ember_generated_tokens_total - m0.ember_generated_tokens_total;
  check(gen < 480, 'it stopped early (' + gen + ' tokens)');
  await stillServing('a disconnect');
  console.log('abuse: disconnect mid-stream cancelled after ' + gen + ' tokens, slot freed');
}

// Clients that send half a request, or ask for a stream and read nothing: others are served.
async function abuseSlow() {
  const port = Number(new URL(cfg.base).port);
  const half = net.connect(port, '127.0.0.1', () => half.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\n'));
  const body = JSON.stringify({ prompt: 'Once', max_tokens: 400, stream: true, ignore_eos: true });
  const mute = net.connect(port, '127.0.0.1', () => {
    mute.pause();  // reads nothing
    mute.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      (cfg.key ? 'Authorization: Bearer ' + cfg.key + '\r\n' : '') +
      'Content-Length: ' + Buffer.byteLength(body) + '\r\n\r\n' + body);
  });
  half.on('error', () => {});
  mute.on('error', () => {});
  await sleep(300);
  const t0 = Date.now();
  await stillServing('slow clients');
  const ms = Date.now() - t0;
  half.destroy();
  mute.destroy();
  await waitIdle();
  console.log('abuse: served in ' + ms + ' ms beside a half-sent request and a client reading nothing');
}

// 200 requests beyond slots + queue at once (long ones, so that the places stay taken): each is
// either answered in full or refused at once (503 with Retry-After), and the server serves after.
async function abuseFlood() {
  const places = cfg.places;
  const n = places + 200;
  const t0 = Date.now();
  const all = await Promise.all(Array.from({ length: n }, () =>
    post('/v1/completions', { prompt: 'Once', max_tokens: 400, temperature: 0, ignore_eos: true })));
  let ok = 0, busy = 0, slowest503 = 0;
  for (const r of all) {
    if (r.status === 200) {
      ++ok;
      eq(r.json.usage.completion_tokens, 400, 'flood: an accepted request runs in full');
    } else {
      eq(r.status, 503, 'flood: refused with 503 (' + r.text + ')');
      eq(r.headers.get('retry-after'), '1', 'Retry-After');
      ++busy;
      slowest503 = Math.max(slowest503, r.ms);
    }
  }
  console.log('abuse: ' + n + ' at once: ' + ok + ' served, ' + busy + ' refused (slowest refusal ' +
    slowest503 + ' ms) in ' + (Date.now() - t0) + ' ms');
  check(ok >= places, 'at least the places served (' + ok + ')');
  check(busy >= 50, 'requests beyond the places refused (' + busy + ')');
  check(slowest503 < 10000, 'refusals come at once (slowest ' + slowest503 + ' ms)');
  const m = await waitIdle();
  check(m.ember_slots_busy_max <= cfg.parallel, 'slots never exceeded');
  await stillServing('a flood');
}

// SIGTERM while a stream runs: the stream still ends with its finish and [DONE].
async function shutdown() {
  const s = await client.completions.create(
    { model: 'm', prompt: 'Once upon a time', max_tokens: 300, temperature: 0, stream: true, ignore_eos: true });
  let text = '', finish = null, n = 0;
  for await (const c of s) {
    if (++n === 2) process.kill(cfg.pid, 'SIGTERM');
    if (c.choices.length) {
      text += c.choices[0].text;
      if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
    }
  }
  check(finish === 'length' || finish === 'cancelled', 'the stream ended with a finish (' + finish + ')');
  console.log('shutdown: the running stream ended with ' + finish + ' after ' + text.length + ' bytes');
}

const modes = {
  completions, chat, concurrency, shutdown,
  abuse: async () => {
    await abuseInput();
    await abuseAuth();
    await abuseDisconnect();
    await abuseSlow();
    await abuseFlood();
  },
};
modes[mode]().then(() => process.exit(0), (e) => {
  console.error('FAIL: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
