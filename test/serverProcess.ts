// `throughline serve` as a separate process for the fault, multi-instance and bad-input tests: its
// URL is read from what it prints, and requests carry an API key.
import { spawnThroughline, testWorkflowsModule, type ThroughlineProcess } from "./processes.ts";

export interface ServeProcess {
  process: ThroughlineProcess;
  /** http://host:port (no path). */
  url: string;
  /** ws://host:port/graphql */
  wsUrl: string;
  /** POST /graphql with the key; the HTTP status and the parsed body (or the raw text when it is not JSON). */
  graphql(query: string, variables?: Record<string, unknown>): Promise<{ status: number; body: any }>;
  /** The same with a request body written by the caller (e.g. JSON too deep for JSON.stringify). */
  graphqlRaw(body: string): Promise<{ status: number; body: any }>;
  /** A request to a REST route with the key. */
  rest(method: string, path: string, init?: { headers?: Record<string, string>; body?: BodyInit }): Promise<{ status: number; contentType: string | null; text: string }>;
}

/** Starts `throughline serve` on an ephemeral port and waits until it prints its GraphQL address. */
export async function startServeProcess(databaseUrl: string, apiKey: string, env: Record<string, string> = {}): Promise<ServeProcess> {
  const p = spawnThroughline(["serve"], {
    DATABASE_URL: databaseUrl, PORT: "0", HOST: "127.0.0.1", THROUGHLINE_WORKFLOWS: testWorkflowsModule, ...env,
  });
  await p.waitForOutput(/GraphQL: +http:\/\/\S+\/graphql/, 60_000);
  const url = /GraphQL: +(http:\/\/\S+)\/graphql/.exec(p.output())![1];
  const self: ServeProcess = {
    process: p,
    url,
    wsUrl: `${url.replace(/^http/, "ws")}/graphql`,
    graphql(query, variables = {}) {
      return self.graphqlRaw(JSON.stringify({ query, variables }));
    },
    async graphqlRaw(requestBody) {
      const res = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/graphql-response+json, application/json", "x-api-key": apiKey },
        body: requestBody,
      });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch { /* the raw text */ }
      return { status: res.status, body };
    },
    async rest(method, path, init = {}) {
      const res = await fetch(url + path, { method, headers: { ...init.headers, "x-api-key": apiKey }, body: init.body });
      return { status: res.status, contentType: res.headers.get("content-type"), text: await res.text() };
    },
  };
  return self;
}
