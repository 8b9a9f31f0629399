// C: "is token X done, with its steps?" through each interface. One reader loop (concurrency 1)
// takes the interfaces in turn, so each read measures latency, not saturation.
import pg from "pg";
import { statusReadSql } from "./measure.ts";

export interface StatusReader {
  name: string;
  read(token: string): Promise<void>;
  close(): Promise<void>;
}

export async function sqlReader(url: string): Promise<StatusReader> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query({ name: "status", text: statusReadSql, values: ["00000000-0000-0000-0000-000000000000"] });
  return {
    name: "SQL",
    async read(token) {
      await client.query({ name: "status", text: statusReadSql, values: [token] });
    },
    close: () => client.end(),
  };
}

const graphqlStatus = "query($t: UUID!) { run(token: $t) { status stepsOpen steps { nodes { step status } } } }";

export function graphqlReader(baseUrl: string, apiKey: string): StatusReader {
  return {
    name: "GraphQL",
    async read(token) {
      const res = await fetch(`${baseUrl}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/graphql-response+json, application/json", "x-api-key": apiKey },
        body: JSON.stringify({ query: graphqlStatus, variables: { t: token } }),
      });
      const body = (await res.json()) as { data?: { run?: { steps?: { nodes?: unknown[] } } }; errors?: unknown };
      if (!res.ok || body.errors || !body.data?.run?.steps?.nodes?.length) throw new Error(`GraphQL status read: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
    },
    close: async () => {},
  };
}

export function restReader(baseUrl: string, apiKey: string): StatusReader {
  return {
    name: "REST",
    async read(token) {
      const res = await fetch(`${baseUrl}/api/v1/workflow/token/${token}/status`, { headers: { "x-api-key": apiKey } });
      const body = await res.text();
      if (res.status !== 200) throw new Error(`REST status read: ${res.status} ${body.slice(0, 300)}`);
    },
    close: async () => {},
  };
}
