// Agent round trips against laguna serve with models/laguna-tiny-chat, through the official
// clients (the `openai` and `@anthropic-ai/sdk` packages of package.json). tests/test_tinychat_node.c
// starts the server on a free loopback port and runs
//     node tests/node/tinychat_test.mjs PORT API_KEY
// The requests come from tests/data/tinychat_cases.json. Each case prints "PASS name" or
// "FAIL name: why"; exits 1 on a failure.
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const [port, key] = process.argv.slice(2);
if (!port || !key) {
  console.error("usage: node tinychat_test.mjs PORT API_KEY");
  process.exit(2);
}
const host = `http://127.0.0.1:${port}`;
const opts = { apiKey: key, maxRetries: 0, timeout: 120_000 };
const openai = new OpenAI({ ...opts, baseURL: `${host}/v1` });
const anthropic = new Anthropic({ ...opts, baseURL: host });
const model = "laguna-tiny-chat";
const cases = JSON.parse(readFileSync(new URL("../data/tinychat_cases.json", import.meta.url))).cases;
const request = (name) => structuredClone(cases.find((c) => c.name === name).request);
const TAGS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<arg_key>", "<arg_value>", "</assistant>",
  "<tool_response>", "〈|EOS|〉"];
const clean = (s) => typeof s !== "string" || TAGS.every((t) => !s.includes(t));

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
const weather = (city) => JSON.stringify({ city, temperature: 17, unit: "celsius", condition: "cloudy" });
const answerUses = (text, city) => typeof text === "string" && text.includes(city) && text.includes("17") &&
  text.includes("cloudy") && clean(text);

// ---- OpenAI: chat completions ------------------------------------------------------------------

// One turn, whole or streamed; a streamed one is assembled from its deltas as agents do.
async function openaiTurn(req, stream) {
  const body = { model, max_tokens: 160, temperature: 0, ...req };
  if (!stream) {
    const r = await openai.chat.completions.create(body);
    const m = r.choices[0].message;
    return { message: m, finish: r.choices[0].finish_reason, usage: r.usage };
  }
  const s = await openai.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  const m = { role: "assistant", content: null, reasoning_content: undefined, tool_calls: undefined };
  let finish = null, usage = null;
  for await (const chunk of s) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    if (c.finish_reason) finish = c.finish_reason;
    const d = c.delta;
    if (d.content) m.content = (m.content ?? "") + d.content;
    if (d.reasoning_content) m.reasoning_content = (m.reasoning_content ?? "") + d.reasoning_content;
    for (const tc of d.tool_calls ?? []) {
      m.tool_calls ??= [];
      const t = (m.tool_calls[tc.index] ??= { id: "", type: "function", function: { name: "", arguments: "" } });
      if (tc.id) t.id += tc.id;
      if (tc.function?.name) t.function.name += tc.function.name;
      if (tc.function?.arguments) t.function.arguments += tc.function.arguments;
    }
  }
  return { message: m, finish, usage };
}

function sameOpenai(a, b, what) {
  const calls = (m) => (m.tool_calls ?? []).map((t) => [t.function.name, JSON.parse(t.function.arguments)]);
  check((a.message.content || "") === (b.message.content || "") &&
    (a.message.reasoning_content || "") === (b.message.reasoning_content || "") && a.finish === b.finish &&
    JSON.stringify(calls(a.message)) === JSON.stringify(calls(b.message)),
    `${what}: streamed ${JSON.stringify(a)} vs whole ${JSON.stringify(b)}`);
}

async function openaiRoundTrip(caseName, city, think) {
  const req = request(caseName);
  const turns = [];
  for (const stream of [false, true]) {
    const t = await openaiTurn(req, stream);
    const calls = t.message.tool_calls ?? [];
    check(t.finish === "tool_calls" && calls.length === 1 && calls[0].function.name === "get_weather" &&
      calls[0].id, `stream=${stream}: ${JSON.stringify(t)}`);
    check(JSON.stringify(JSON.parse(calls[0].function.arguments)) === JSON.stringify({ city }),
      `arguments ${calls[0].function.arguments}`);
    check(clean(t.message.content) && clean(t.message.reasoning_content), JSON.stringify(t.message));
    check(think === !!t.message.reasoning_content, `reasoning ${JSON.stringify(t.message.reasoning_content)}`);
    turns.push(t);
  }
  sameOpenai(turns[1], turns[0], "turn 1");
  // the agent sends back the assistant message as it came, and the tool's result
  const call = turns[1].message.tool_calls[0];
  const next = { ...req, messages: [...req.messages, turns[1].message,
    { role: "tool", tool_call_id: call.id, content: weather(city) }] };
  const finals = [];
  for (const stream of [false, true]) {
    const t = await openaiTurn(next, stream);
    check(t.finish === "stop" && !t.message.tool_calls?.length, `turn 2: ${JSON.stringify(t)}`);
    check(answerUses(t.message.content, city) && clean(t.message.reasoning_content),
      `turn 2 answer: ${JSON.stringify(t.message)}`);
    check(think === !!t.message.reasoning_content, `turn 2 reasoning ${JSON.stringify(t.message)}`);
    if (!think)
      check(t.usage.prompt_tokens_details?.cached_tokens > 0, `turn 2 usage ${JSON.stringify(t.usage)}`);
    finals.push(t);
  }
  sameOpenai(finals[1], finals[0], "turn 2");
}

await run("openai_agent_round_trip", () => openaiRoundTrip("weather_call", "Lisbon", false));
await run("openai_agent_round_trip_thinking", () => openaiRoundTrip("think_weather_call", "Berlin", true));

await run("openai_reasoning_split", async () => {
  const req = request("think_greeting");
  const whole = await openaiTurn(req, false);
  const m = whole.message;
  check(m.reasoning_content?.length >= 3 && m.content?.length >= 3 && clean(m.content) &&
    clean(m.reasoning_content) && whole.finish === "stop", JSON.stringify(whole));
  sameOpenai(await openaiTurn(req, true), whole, "streamed");
  // thinking off: no reasoning
  const off = await openaiTurn({ ...req, chat_template_kwargs: { enable_thinking: false } }, false);
  check(!off.message.reasoning_content && off.message.content?.length >= 3 && clean(off.message.content),
    JSON.stringify(off));
});

// ---- Anthropic: messages ---------------------------------------------------------------------

function toAnthropic(req) {
  const out = { model, max_tokens: 160, temperature: 0, messages: req.messages };
  if (req.tools)
    out.tools = req.tools.map((t) => ({ name: t.function.name, description: t.function.description,
      input_schema: t.function.parameters }));
  if (req.chat_template_kwargs?.enable_thinking) out.thinking = { type: "enabled", budget_tokens: 1024 };
  return out;
}

// One turn, whole, or streamed through the SDK's stream helper (which assembles the blocks,
// tool_use inputs from input_json_delta); the raw event names are checked on the way.
async function anthropicTurn(body, stream) {
  if (!stream) return await anthropic.messages.create(body);
  const s = anthropic.messages.stream(body);
  const names = [];
  s.on("streamEvent", (ev) => names.push(ev.type));
  const m = await s.finalMessage();
  check(names[0] === "message_start" && names[names.length - 1] === "message_stop" &&
    names[names.length - 2] === "message_delta", `events ${names.join(",")}`);
  return m;
}

const blocks = (m, type) => m.content.filter((b) => b.type === type);
const textOf = (m, type = "text") => blocks(m, type).map((b) => b[type === "text" ? "text" : "thinking"]).join("");

function sameAnthropic(a, b, what) {
  const shape = (m) => JSON.stringify([m.stop_reason, m.content.map((b) =>
    b.type === "tool_use" ? [b.type, b.name, b.input] : [b.type, b.text ?? b.thinking])]);
  check(shape(a) === shape(b), `${what}: streamed ${shape(a)} vs whole ${shape(b)}`);
}

async function anthropicRoundTrip(caseName, city, think) {
  const body = toAnthropic(request(caseName));
  const turns = [];
  for (const stream of [false, true]) {
    const m = await anthropicTurn(body, stream);
    const uses = blocks(m, "tool_use");
    check(m.stop_reason === "tool_use" && uses.length === 1 && uses[0].name === "get_weather" &&
      uses[0].id && JSON.stringify(uses[0].input) === JSON.stringify({ city }), `stream=${stream}: ${JSON.stringify(m)}`);
    check(clean(textOf(m)) && clean(textOf(m, "thinking")), JSON.stringify(m.content));
    check(think === (textOf(m, "thinking").length > 0), `thinking blocks: ${JSON.stringify(m.content)}`);
    turns.push(m);
  }
  sameAnthropic(turns[1], turns[0], "turn 1");
  const use = blocks(turns[1], "tool_use")[0];
  const next = { ...body, messages: [...body.messages, { role: "assistant", content: turns[1].content },
    { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: weather(city) }] }] };
  const finals = [];
  for (const stream of [false, true]) {
    const m = await anthropicTurn(next, stream);
    check(m.stop_reason === "end_turn" && blocks(m, "tool_use").length === 0, `turn 2: ${JSON.stringify(m)}`);
    check(answerUses(textOf(m), city) && clean(textOf(m, "thinking")), `turn 2: ${JSON.stringify(m.content)}`);
    check(think === (textOf(m, "thinking").length > 0), `turn 2 thinking: ${JSON.stringify(m.content)}`);
    if (!think) check(m.usage.cache_read_input_tokens > 0, `turn 2 usage ${JSON.stringify(m.usage)}`);
    finals.push(m);
  }
  sameAnthropic(finals[1], finals[0], "turn 2");
}

await run("anthropic_agent_round_trip", () => anthropicRoundTrip("weather_call", "Lisbon", false));
await run("anthropic_agent_round_trip_thinking", () => anthropicRoundTrip("think_weather_call", "Berlin", true));

await run("anthropic_reasoning_split", async () => {
  const body = toAnthropic(request("think_greeting"));
  const whole = await anthropicTurn(body, false);
  check(whole.content[0]?.type === "thinking" && whole.content[0].thinking.length >= 3 &&
    textOf(whole).length >= 3 && clean(textOf(whole)) && clean(textOf(whole, "thinking")) &&
    whole.stop_reason === "end_turn", JSON.stringify(whole));
  sameAnthropic(await anthropicTurn(body, true), whole, "streamed");
  const off = await anthropicTurn({ ...body, thinking: { type: "disabled" } }, false);
  check(blocks(off, "thinking").length === 0 && textOf(off).length >= 3, JSON.stringify(off.content));
});

// ---- OpenAI: responses (Codex-style agents) ------------------------------------------------

function toResponses(req) {
  const out = { model, max_output_tokens: 160, temperature: 0, input: req.messages };
  if (req.tools)
    out.tools = req.tools.map((t) => ({ type: "function", name: t.function.name,
      description: t.function.description, parameters: t.function.parameters }));
  if (req.chat_template_kwargs?.enable_thinking) out.reasoning = { effort: "medium" };
  return out;
}

// One turn, whole, or streamed through the SDK's stream helper (which assembles the output
// items from the events); the raw event types are checked on the way.
async function responsesTurn(body, stream) {
  if (!stream) return await openai.responses.create(body);
  const s = openai.responses.stream(body);
  const types = [];
  s.on("event", (ev) => types.push(ev.type));
  const r = await s.finalResponse();
  check(types[0] === "response.created" && types[types.length - 1] === "response.completed",
    `events ${types.join(",")}`);
  return r;
}

const itemsOf = (r, type) => r.output.filter((it) => it.type === type);
// the answer's text from the message items (the SDK's output_text is not set on every path)
const answerOf = (r) => itemsOf(r, "message").map((it) => it.content.map((c) => c.text ?? "").join("")).join("");
const reasoningOf = (r) => itemsOf(r, "reasoning").map((it) => (it.content ?? []).map((c) => c.text).join("")).join("");

function sameResponses(a, b, what) {
  const shape = (r) => JSON.stringify([r.status, r.output.map((it) => it.type === "function_call"
    ? [it.type, it.name, JSON.parse(it.arguments)] : [it.type, (it.content ?? []).map((c) => [c.type, c.text])])]);
  check(shape(a) === shape(b), `${what}: streamed ${shape(a)} vs whole ${shape(b)}`);
}

async function responsesRoundTrip(caseName, city, think) {
  const body = toResponses(request(caseName));
  const turns = [];
  for (const stream of [false, true]) {
    const r = await responsesTurn(body, stream);
    const calls = itemsOf(r, "function_call");
    check(r.status === "completed" && calls.length === 1 && calls[0].name === "get_weather" &&
      calls[0].call_id && JSON.stringify(JSON.parse(calls[0].arguments)) === JSON.stringify({ city }),
      `stream=${stream}: ${JSON.stringify(r.output)}`);
    check(clean(answerOf(r)) && clean(reasoningOf(r)), JSON.stringify(r.output));
    check(think === (reasoningOf(r).length > 0), `reasoning items: ${JSON.stringify(r.output)}`);
    turns.push(r);
  }
  sameResponses(turns[1], turns[0], "turn 1");
  // Codex sends back the whole conversation: the output items as they came, then the results
  const call = itemsOf(turns[1], "function_call")[0];
  const next = { ...body, input: [...body.input, ...turns[1].output,
    { type: "function_call_output", call_id: call.call_id, output: weather(city) }] };
  const finals = [];
  for (const stream of [false, true]) {
    const r = await responsesTurn(next, stream);
    check(r.status === "completed" && itemsOf(r, "function_call").length === 0, `turn 2: ${JSON.stringify(r.output)}`);
    check(answerUses(answerOf(r), city) && clean(reasoningOf(r)), `turn 2: ${JSON.stringify(r.output)}`);
    check(think === (reasoningOf(r).length > 0), `turn 2 reasoning: ${JSON.stringify(r.output)}`);
    if (!think) check(r.usage.input_tokens_details?.cached_tokens > 0, `turn 2 usage ${JSON.stringify(r.usage)}`);
    finals.push(r);
  }
  sameResponses(finals[1], finals[0], "turn 2");
}

await run("responses_agent_round_trip", () => responsesRoundTrip("weather_call", "Lisbon", false));
await run("responses_agent_round_trip_thinking", () => responsesRoundTrip("think_weather_call", "Berlin", true));

await run("responses_errors", async () => {
  let status = 0;
  try {
    await openai.responses.create({ model, input: "hi", previous_response_id: "resp_1" });
  } catch (e) {
    status = e.status;
    check(/whole conversation/.test(e.message), e.message);
  }
  check(status === 400, `status ${status}`);
});

// ---- structured output (response_format / text.format) -------------------------------------------

// The answer is JSON valid under the schema, thinking off and on (the reasoning stays free);
// maxLength and the closed property list bound it, so greedy decoding must end it.
const WEATHER = { type: "object", additionalProperties: false, required: ["city", "temperature", "sunny"],
  properties: { city: { type: "string", maxLength: 20 }, temperature: { type: "integer" }, sunny: { type: "boolean" } } };
const isWeather = (text) => {
  const v = JSON.parse(text);
  return typeof v.city === "string" && v.city.length <= 20 && Number.isInteger(v.temperature) &&
    typeof v.sunny === "boolean" && Object.keys(v).join() === "city,temperature,sunny";
};
await run("openai_structured_output", async () => {
  for (const think of [false, true]) {
    const r = await openai.chat.completions.create({ model, max_tokens: 400, temperature: 0,
      messages: [{ role: "user", content: "What is the weather in Lisbon? Answer as JSON." }],
      chat_template_kwargs: { enable_thinking: think },
      response_format: { type: "json_schema", json_schema: { name: "weather", strict: true, schema: WEATHER } } });
    const m = r.choices[0].message;
    check(r.choices[0].finish_reason === "stop" && isWeather(m.content), JSON.stringify(r.choices[0]));
    check(think === !!m.reasoning_content && clean(m.reasoning_content), `reasoning ${JSON.stringify(m)}`);
  }
});
await run("responses_structured_output", async () => {
  const r = await openai.responses.create({ model, input: "What is the weather in Lisbon? Answer as JSON.",
    max_output_tokens: 400, temperature: 0, reasoning: { effort: "none" },
    text: { format: { type: "json_schema", name: "weather", strict: true, schema: WEATHER } } });
  check(r.status === "completed" && isWeather(r.output_text), JSON.stringify(r.output));
});

process.exit(failed ? 1 : 0);
