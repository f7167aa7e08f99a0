// laguna serve driven by the official clients: the `openai` and `@anthropic-ai/sdk` npm packages
// (pinned in package.json, installed into tests/node/node_modules). tests/test_node_sdk.c starts
// the server on a free loopback port with models/laguna-tiny and runs
//     node tests/node/sdk_test.mjs PORT API_KEY
// Each case prints "PASS name" or "FAIL name: why" (the harness's format); exits 1 on a failure.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const [port, key] = process.argv.slice(2);
if (!port || !key) {
  console.error("usage: node sdk_test.mjs PORT API_KEY");
  process.exit(2);
}
const host = `http://127.0.0.1:${port}`;
const opts = { apiKey: key, maxRetries: 0, timeout: 60_000 };
const openai = new OpenAI({ ...opts, baseURL: `${host}/v1` });
const anthropic = new Anthropic({ ...opts, baseURL: host });
const model = "laguna-tiny";

let failed = 0;
function check(cond, why) {
  if (!cond) throw new Error(why);
}
async function run(name, fn) {
  try {
    await fn();
    console.log(`PASS ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${(e && e.stack) || e}`.split("\n").slice(0, 4).join("\n"));
  }
}
// The error a call must fail with: its class, HTTP status and (for Anthropic) error type.
async function expectError(call, cls, status, anthropicType) {
  try {
    await call();
  } catch (e) {
    check(e instanceof cls, `expected ${cls.name}, got ${e && e.constructor && e.constructor.name}: ${e}`);
    check(e.status === status, `status ${e.status}, expected ${status}`);
    if (anthropicType)
      check(e.error && e.error.type === "error" && e.error.error.type === anthropicType,
        `error body ${JSON.stringify(e.error)}`);
    return;
  }
  throw new Error("the call succeeded");
}

const chat = [
  { role: "system", content: "You write Python." },
  { role: "user", content: "Write a function that adds two numbers." },
];

await run("openai_models", async () => {
  const page = await openai.models.list();
  check(page.data.length === 1 && page.data[0].id === model, JSON.stringify(page.data));
});

await run("openai_chat_stream_matches_whole", async () => {
  const whole = await openai.chat.completions.create({ model, messages: chat, max_tokens: 16, temperature: 0 });
  const msg = whole.choices[0].message;
  check(typeof msg.content === "string" && msg.content.length > 0, JSON.stringify(whole));
  check(whole.choices[0].finish_reason === "length", whole.choices[0].finish_reason);
  check(whole.usage.completion_tokens === 16 && whole.usage.prompt_tokens > 0, JSON.stringify(whole.usage));
  const stream = await openai.chat.completions.create({
    model, messages: chat, max_tokens: 16, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = "", finish = null, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  check(text === msg.content, `stream ${JSON.stringify(text)} vs whole ${JSON.stringify(msg.content)}`);
  check(finish === "length" && usage && usage.completion_tokens === 16, `${finish} ${JSON.stringify(usage)}`);
});

await run("openai_completions", async () => {
  const whole = await openai.completions.create({ model, prompt: "def fibonacci(n):", max_tokens: 12, temperature: 0 });
  check(whole.choices[0].text.length > 0 && whole.choices[0].finish_reason === "length", JSON.stringify(whole));
  const stream = await openai.completions.create({
    model, prompt: "def fibonacci(n):", max_tokens: 12, temperature: 0, stream: true,
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
  check(text === whole.choices[0].text, `stream ${JSON.stringify(text)} vs whole ${JSON.stringify(whole.choices[0].text)}`);
});

await run("openai_logprobs", async () => {
  const r = await openai.chat.completions.create({
    model, messages: chat, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const content = r.choices[0].logprobs.content;
  check(content.length === r.usage.completion_tokens, JSON.stringify(r.choices[0].logprobs));
  for (const t of content)
    check(t.logprob <= 0 && t.top_logprobs.length === 3 && t.top_logprobs[0].logprob === t.logprob,
      JSON.stringify(t));
  const c = await openai.completions.create({ model, prompt: "def f(x):", max_tokens: 4, temperature: 0, logprobs: 2 });
  check(c.choices[0].logprobs.tokens.join("") === c.choices[0].text, JSON.stringify(c.choices[0]));
});

await run("openai_errors", async () => {
  await expectError(() => openai.chat.completions.create({ model, messages: chat, max_tokens: 0 }),
    OpenAI.BadRequestError, 400);
  await expectError(() => openai.chat.completions.create({ model, messages: [{ role: "wizard", content: "hi" }] }),
    OpenAI.BadRequestError, 400);
  const wrong = new OpenAI({ ...opts, apiKey: "sk-wrong", baseURL: `${host}/v1` });
  await expectError(() => wrong.chat.completions.create({ model, messages: chat, max_tokens: 4 }),
    OpenAI.AuthenticationError, 401);
});

const system = "You write Python.";
const messages = [{ role: "user", content: "Write a function that adds two numbers." }];

await run("anthropic_messages_stream_matches_whole", async () => {
  const whole = await anthropic.messages.create({ model, system, messages, max_tokens: 16, temperature: 0 });
  check(whole.type === "message" && whole.role === "assistant", JSON.stringify(whole));
  check(whole.content.length === 1 && whole.content[0].type === "text", JSON.stringify(whole.content));
  check(whole.stop_reason === "max_tokens" && whole.usage.output_tokens === 16, JSON.stringify(whole));
  // the raw event sequence
  const events = [];
  let text = "";
  const raw = await anthropic.messages.create({ model, system, messages, max_tokens: 16, temperature: 0, stream: true });
  for await (const ev of raw) {
    if (events[events.length - 1] !== ev.type || ev.type !== "content_block_delta") events.push(ev.type);
    if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") text += ev.delta.text;
  }
  check(events.join(",") === "message_start,content_block_start,content_block_delta,content_block_stop," +
    "message_delta,message_stop", events.join(","));
  check(text === whole.content[0].text, `stream ${JSON.stringify(text)} vs whole ${JSON.stringify(whole.content[0].text)}`);
  // the SDK's stream helper assembles the same message
  const final = await anthropic.messages.stream({ model, system, messages, max_tokens: 16, temperature: 0 }).finalMessage();
  check(final.content[0].text === whole.content[0].text && final.stop_reason === "max_tokens" &&
    final.usage.output_tokens === 16, JSON.stringify(final));
});

await run("anthropic_thinking", async () => {
  const m = await anthropic.messages.create({
    model, messages, max_tokens: 12, thinking: { type: "enabled", budget_tokens: 1024 },
  });
  check(m.content[0].type === "thinking" && m.content[0].thinking.length > 0, JSON.stringify(m.content));
  const final = await anthropic.messages.stream({
    model, messages, max_tokens: 12, thinking: { type: "enabled", budget_tokens: 1024 },
  }).finalMessage();
  check(final.content[0].type === "thinking" && final.content[0].thinking === m.content[0].thinking,
    JSON.stringify(final.content));
  const off = await anthropic.messages.create({ model, messages, max_tokens: 6, thinking: { type: "disabled" } });
  check(off.content.every((b) => b.type !== "thinking"), JSON.stringify(off.content));
});

await run("anthropic_tools_and_count_tokens", async () => {
  const tools = [{
    name: "get_weather", description: "Weather of a city",
    input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  }];
  const conversation = [
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: [
      { type: "text", text: "Let me look." },
      { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } },
    ] },
    { role: "user", content: [
      { type: "tool_result", tool_use_id: "toolu_1", content: "Sunny, 21 C" },
      { type: "text", text: "Thanks." },
    ] },
  ];
  const count = await anthropic.messages.countTokens({ model, tools, messages: conversation });
  check(count.input_tokens > 40, JSON.stringify(count));
  const m = await anthropic.messages.create({ model, tools, messages: conversation, max_tokens: 6 });
  check(m.usage.input_tokens + m.usage.cache_read_input_tokens === count.input_tokens,
    `${JSON.stringify(m.usage)} vs count ${count.input_tokens}`);
  check(["max_tokens", "end_turn", "tool_use"].includes(m.stop_reason), m.stop_reason);
});

await run("anthropic_stop_sequences", async () => {
  const whole = await anthropic.messages.create({ model, system, messages, max_tokens: 24, temperature: 0 });
  const text = whole.content[0].text;
  const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 3);
  check(stop.length > 0, `reply too short: ${JSON.stringify(text)}`);
  const m = await anthropic.messages.create({
    model, system, messages, max_tokens: 24, temperature: 0, stop_sequences: ["never-there", stop],
  });
  check(m.stop_reason === "stop_sequence" && m.stop_sequence === stop, JSON.stringify(m));
  check(text.startsWith(m.content[0]?.text ?? "") && (m.content[0]?.text ?? "").length < text.length,
    `${JSON.stringify(m.content)} of ${JSON.stringify(text)}`);
});

await run("anthropic_errors", async () => {
  await expectError(() => anthropic.messages.create({ model, messages }), // no max_tokens
    Anthropic.BadRequestError, 400, "invalid_request_error");
  await expectError(() => anthropic.messages.create({ model, max_tokens: 4, messages: [{ role: "system", content: "x" }] }),
    Anthropic.BadRequestError, 400, "invalid_request_error");
  const wrong = new Anthropic({ ...opts, apiKey: "sk-wrong", baseURL: host });
  await expectError(() => wrong.messages.create({ model, max_tokens: 4, messages }),
    Anthropic.AuthenticationError, 401, "authentication_error");
});

process.exit(failed ? 1 : 0);
