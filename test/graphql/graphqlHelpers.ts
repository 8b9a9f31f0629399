// A real Throughline HTTP server on an ephemeral port for the GraphQL tests, a fetch-based GraphQL
// client, and a graphql-ws client over the `ws` package.
import { afterAll, beforeAll } from "vitest";
import { createClient, type Client } from "graphql-ws";
import { startServer, type ThroughlineServer } from "../../server/server.ts";
import { testLog, TestWebSocket, type TestDatabase } from "../helpers.ts";

export interface GraphqlResult<T = any> {
  data?: T;
  errors?: { message: string; extensions?: Record<string, unknown>; path?: unknown[] }[];
}

export interface TestGraphqlServer {
  server: ThroughlineServer;
  url: string;
  wsUrl: string;
  query<T = any>(query: string, variables?: Record<string, unknown>): Promise<GraphqlResult<T>>;
  /** A graphql-ws client; closed after the file. */
  wsClient(options?: { retry?: boolean }): Client;
}

/** authMode "open" (the default here) lets tests without a key act as admin; access tests use "keys". */
export function useGraphqlServer(db: TestDatabase, options: { maxInputBytes?: number; maxQueuedMessagesPerSubscriber?: number; authMode?: "open" | "keys" } = {}): TestGraphqlServer {
  const clients: Client[] = [];
  const t = {} as TestGraphqlServer;
  beforeAll(async () => {
    t.server = await startServer({
      connectionString: db.url,
      pool: db.pool,
      log: testLog,
      port: 0,
      host: "127.0.0.1",
      maxInputBytes: options.maxInputBytes ?? 1024 * 1024,
      maxQueuedMessagesPerSubscriber: options.maxQueuedMessagesPerSubscriber,
      authMode: options.authMode ?? "open",
    });
    t.url = `${t.server.url}/graphql`;
    t.wsUrl = t.url.replace(/^http/, "ws");
  });
  afterAll(async () => {
    for (const c of clients) await c.dispose();
    await t.server?.close();
  });
  t.query = async (query, variables) => {
    const res = await fetch(t.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/graphql-response+json, application/json" },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as GraphqlResult;
  };
  t.wsClient = () => {
    const c = createClient({ url: t.wsUrl, webSocketImpl: TestWebSocket, retryAttempts: 0, lazy: true });
    clients.push(c);
    return c;
  };
  return t;
}
