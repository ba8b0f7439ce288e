/**
 * A scripted LLM for tests only: an OpenAI-compatible chat endpoint
 * (`POST /v1/chat/completions`) on loopback whose answers come from a function
 * the test writes, so the memory server's LLM ingestion path (LightRAG's
 * extraction) runs end to end without a model. Never used outside test/.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ScriptedLlm {
  /** Base URL to give as `--llm-url` (ends in /v1). */
  url: string;
  /** Every conversation it was sent, in order. */
  calls: ChatMessage[][];
  close(): Promise<void>;
}

export async function startScriptedLlm(script: (messages: ChatMessage[]) => string): Promise<ScriptedLlm> {
  const calls: ChatMessage[][] = [];
  const server: Server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/v1/chat/completions') {
        response.writeHead(404).end();
        return;
      }
      const { messages } = JSON.parse(body) as { messages: ChatMessage[] };
      calls.push(messages);
      const content = script(messages);
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          id: `scripted-${calls.length}`,
          object: 'chat.completion',
          choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
