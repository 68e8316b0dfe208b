// framing.mjs PORT MODE: one streamed call through the official OpenAI Node SDK to the gateway
// on 127.0.0.1:PORT (route "chat", last message MODE: see sse_upstream.py); prints what the SDK
// read and how the answer was framed, as JSON (test_stream_framing.sh).
import OpenAI from 'openai';

const [port, mode] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
const { data: stream, response } = await client.chat.completions
  .create({
    model: 'chat',
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: mode }],
  })
  .withResponse();
let text = '';
let finish = null;
let usage = null;
let chunks = 0;
for await (const ch of stream) {
  chunks++;
  if (ch.choices.length > 0) {
    text += ch.choices[0].delta.content || '';
    finish = ch.choices[0].finish_reason || finish;
  }
  if (ch.usage) usage = ch.usage;
}
console.log(JSON.stringify({
  content_length: response.headers.get('content-length'),
  transfer_encoding: response.headers.get('transfer-encoding'),
  text, finish, usage, chunks,
}));
