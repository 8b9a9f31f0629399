// A real node:http server with only the Dependency-Track handler (anything it leaves answers
// "fallthrough"), and a small fetch wrapper that returns exactly what came over the wire.
import http from "node:http";
import type { AddressInfo } from "node:net";
import type pg from "pg";
import { createDependencyTrackHandler, type RestDeps } from "../../server/rest/dependencyTrack.ts";
import { testLog } from "../helpers.ts";

export interface RestServer {
  url: string;
  close(): Promise<void>;
}

export async function startRestServer(pool: pg.Pool, deps: Partial<RestDeps> = {}): Promise<RestServer> {
  const handler = createDependencyTrackHandler({ pool, log: testLog, maxBodyBytes: 2 * 1024 * 1024, ...deps });
  const server = http.createServer((req, res) => {
    handler(req, res).then((handled) => {
      if (!handled) {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("fallthrough");
      }
    }, (e) => {
      res.writeHead(599);
      res.end(String(e));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export interface Answer {
  status: number;
  contentType: string | null;
  body: string;
  headers: Headers;
}

export async function call(base: string, method: string, path: string, init: { headers?: Record<string, string>; body?: BodyInit } = {}): Promise<Answer> {
  const res = await fetch(base + path, { method, headers: init.headers, body: init.body, ...(init.body instanceof ReadableStream ? { duplex: "half" } : {}) } as RequestInit);
  return { status: res.status, contentType: res.headers.get("content-type"), body: await res.text(), headers: res.headers };
}

export const putJson = (base: string, path: string, value: unknown) =>
  call(base, "PUT", path, { headers: { "content-type": "application/json" }, body: typeof value === "string" ? value : JSON.stringify(value) });

export const b64 = (text: string | Buffer) => Buffer.from(text).toString("base64");
