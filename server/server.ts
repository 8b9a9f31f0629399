// Throughline's HTTP server: the Dependency-Track REST routes first, then GraphQL (PostGraphile v5
// through grafserv's node adapter) at /graphql with WebSocket subscriptions on the same path and the
// Ruru explorer at /graphiql (and on a browser GET of /graphql).
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type pg from "pg";
import { postgraphile } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/node";
import type { Logger } from "../src/log.ts";
import { makeThroughlinePreset } from "../graphile.config.ts";
import { startChangeHub, type ChangeHub } from "./changes/changeHub.ts";
import { makeMaskError } from "./maskError.ts";
import { createDependencyTrackHandler, type Authenticate } from "./rest/dependencyTrack.ts";
import { apiKeyFrom, authFailureMessage, createAuthenticator, pgSettingsFor, type AuthMode } from "../src/auth.ts";

export interface ServerOptions {
  connectionString: string;
  /** For the REST routes and the subscription reads. */
  pool: pg.Pool;
  log: Logger;
  port: number;
  host: string;
  /** Largest run input accepted (THROUGHLINE_MAX_INPUT_BYTES); request bodies may be a little larger. */
  maxInputBytes: number;
  /** Poll the event log this often even without notifications (ms). */
  changesPollIntervalMs?: number;
  maxQueuedMessagesPerSubscriber?: number;
  /** keys: every API request needs a valid API key; open: requests without one act as admin. */
  authMode: AuthMode;
}

export interface ThroughlineServer {
  /** http://host:port (the bound port, also when 0 was asked for). */
  url: string;
  port: number;
  changes: ChangeHub;
  close(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<ThroughlineServer> {
  const log = options.log.child({ component: "server" });
  const cleanup: (() => Promise<void>)[] = [];
  const close = async () => {
    while (cleanup.length) await cleanup.pop()!().catch((err) => log.warn({ err }, "error while stopping the server"));
  };
  try {
    const changes = await startChangeHub({
      pool: options.pool,
      connectionString: options.connectionString,
      log,
      pollIntervalMs: options.changesPollIntervalMs,
      maxQueuedMessages: options.maxQueuedMessagesPerSubscriber,
    });
    cleanup.push(() => changes.close());

    // Room for JSON escaping and the rest of the request around the run input; start_run itself
    // refuses inputs above the workflow's limit with a clear TL413.
    const maxRequestBytes = options.maxInputBytes * 2 + 64 * 1024;
    const authenticator = createAuthenticator(options.pool, { mode: options.authMode });
    if (options.authMode === "open") {
      log.warn("THROUGHLINE_AUTH=open: requests WITHOUT an API key act as ADMIN. Local development only — never expose this server.");
    }
    const preset = makeThroughlinePreset({
      authenticator,
      connectionString: options.connectionString,
      changes,
      maxRequestBytes,
      maskError: makeMaskError(log),
    });
    const pgl = postgraphile(preset);
    // pgl.release() leaves the pg services (and their pools) open: release them too.
    cleanup.push(async () => {
      try {
        await pgl.release(); // also releases the grafserv instance created below
      } finally {
        for (const service of preset.pgServices ?? []) await service.release?.();
      }
    });
    await pgl.getSchema(); // fail at start, not on the first request, if the schema cannot be built

    const serv = pgl.createServ(grafserv);
    const graphqlHandler = serv.createHandler();
    const upgradeHandler = await serv.getUpgradeHandler();
    // Onto our roles: reading (every GET, whatever Dependency-Track permission it names) needs a
    // reader, uploads and analyses a submitter. Postgres enforces the same again (grants, RLS).
    const restAuthenticate: Authenticate = async (req, route) => {
      const auth = await authenticator.authenticate(apiKeyFrom(req.headers));
      if (!auth.ok) return { allow: false, status: 401, message: authFailureMessage(auth.reason) };
      const { principal } = auth;
      if (req.method !== "GET" && principal.role === "reader") {
        return { allow: false, status: 403, message: `This API key is read-only; ${route.permission} needs a submitter or admin key.` };
      }
      return { allow: true, principal: principal.keyId ? `api-key:${principal.keyId}` : "open-mode", settings: pgSettingsFor(principal) };
    };
    const rest = createDependencyTrackHandler({ pool: options.pool, log, maxBodyBytes: maxRequestBytes, authenticate: restAuthenticate });
    const graphqlPath = "/graphql";

    // A GraphQL request without a valid key gets a real 401 here (the explorer page itself is public;
    // it sends the key the user enters in its headers editor).
    const refuseUnauthenticated = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
      if (req.method !== "POST" || (req.url ?? "").split("?")[0] !== graphqlPath) return false;
      const auth = await authenticator.authenticate(apiKeyFrom(req.headers));
      if (auth.ok) return false;
      res.writeHead(401, { "content-type": "application/json; charset=utf-8", "www-authenticate": 'ApiKey header="X-Api-Key"' });
      res.end(JSON.stringify({ errors: [{ message: authFailureMessage(auth.reason), extensions: { code: "UNAUTHENTICATED" } }] }));
      return true;
    };
    const server = http.createServer((req, res) => {
      rest(req, res).then(async (handled) => handled || (await refuseUnauthenticated(req, res))).then(
        (handled) => {
          if (!handled) graphqlHandler(req, res);
        },
        (err) => {
          log.error({ err, url: req.url }, "REST handler failed");
          if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
          res.end("Internal server error");
        },
      );
    });
    const sockets = new Set<Duplex>();
    server.on("upgrade", (req, socket, head) => {
      if (upgradeHandler && serv.shouldHandleUpgrade(req, socket, head)) {
        sockets.add(socket);
        socket.once("close", () => sockets.delete(socket));
        upgradeHandler(req, socket, head);
      } else {
        socket.destroy();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    cleanup.push(() => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy(); // open subscriptions: clients resume with their cursor
      server.close(() => resolve());
      server.closeAllConnections();
    }));
    const { port } = server.address() as AddressInfo;
    const host = options.host.includes(":") ? `[${options.host}]` : options.host;
    const url = `http://${host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host}:${port}`;
    log.info({ url: `${url}/graphql`, explorer: `${url}/graphiql` }, "GraphQL server listening");
    return { url, port, changes, close };
  } catch (e) {
    await close();
    throw e;
  }
}
