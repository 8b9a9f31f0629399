// The one graphile-config preset of Throughline's GraphQL server (PostGraphile v5). The server
// (server/server.ts) builds it with the running process' dependencies; `npx graphile …` tools (e.g.
// `npx graphile behavior debug`, `npx graphile config print`) load the default export, which reads
// DATABASE_URL.
import "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
import type { GraphQLError } from "postgraphile/graphql";
import type { ChangeHub } from "./server/changes/changeHub.ts";
import { apiKeyFromRequestContext, authFailureMessage, openModePrincipal, pgSettingsFor, type Authenticator, type RequestContextLike } from "./src/auth.ts";
import { SafeError } from "postgraphile/grafast";
import { KeepIdColumnNamesPlugin } from "./server/plugins/KeepIdColumnNamesPlugin.ts";
import { TrimDescriptionsPlugin } from "./server/plugins/TrimDescriptionsPlugin.ts";
import { Xid8ColumnsHiddenPlugin } from "./server/plugins/Xid8ColumnsHiddenPlugin.ts";
import { PublicApiOnlyPlugin } from "./server/plugins/PublicApiOnlyPlugin.ts";
import { RunChangesSubscriptionPlugin } from "./server/plugins/RunChangesSubscriptionPlugin.ts";
import { defaultQueryLimits, makeQueryLimitsPlugin, type QueryLimits } from "./server/plugins/QueryLimitsPlugin.ts";

export interface ThroughlinePresetOptions {
  connectionString: string;
  /** Connections PostGraphile's own pool may open. */
  maxConnections?: number;
  /** Change hub of this process (subscriptions); without it, subscriptions answer with an error. */
  changes?: ChangeHub;
  /** Largest accepted GraphQL request body (run inputs travel in it). */
  maxRequestBytes?: number;
  maskError?: (error: GraphQLError) => GraphQLError;
  /** API keys → roles. Without it (tools such as `npx graphile`), requests act as admin. */
  authenticator?: Authenticator;
  /** Depth and size bounds of one operation (server/plugins/QueryLimitsPlugin.ts). */
  queryLimits?: Partial<QueryLimits>;
}

export function makeThroughlinePreset(options: ThroughlinePresetOptions): GraphileConfig.Preset {
  return {
    extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset],
    plugins: [
      // Opt-in exposure of tables and functions: internals never become fields by accident.
      PublicApiOnlyPlugin,
      // step.id stays `id` (no Relay global ids, see disablePlugins below).
      KeepIdColumnNamesPlugin,
      // Transaction ids (xid8) stay internal; without this, PostGraphile warns at every start.
      Xid8ColumnsHiddenPlugin,
      // SQL comments start on a new line; descriptions should not.
      TrimDescriptionsPlugin,
      // Subscription.runChanges / runsChanges: state + cursor, then every change; resumable.
      RunChangesSubscriptionPlugin,
      // Over-deep or over-costly operations are refused before they run.
      makeQueryLimitsPlugin({ ...defaultQueryLimits, ...options.queryLimits }),
    ],
    // The global Node interface would rename every `id` column to `rowId` and add opaque ids; our
    // identities (run token, step id) are what clients and the SQL API already use.
    disablePlugins: ["NodePlugin"],
    pgServices: [
      makePgService({
        connectionString: options.connectionString,
        schemas: ["throughline"],
        poolConfig: { max: options.maxConnections ?? 10 },
        // Subscriptions use the change hub's single LISTEN connection instead.
        pubsub: false,
      }),
    ],
    grafast: {
      // Each request runs as its API key's role, with the key's subjects in transaction settings:
      // row-level security decides what it sees (sql/current/820-access_control.sql). Plain HTTP
      // requests without a valid key were already answered 401 by server/server.ts; a WebSocket
      // sends its key in the connection params.
      async context(requestContext, args) {
        let principal = openModePrincipal;
        if (options.authenticator) {
          const auth = await options.authenticator.authenticate(apiKeyFromRequestContext(requestContext as RequestContextLike));
          if (!auth.ok) throw new SafeError(authFailureMessage(auth.reason), { code: "UNAUTHENTICATED" });
          principal = auth.principal;
        }
        return {
          pgSettings: { ...args.contextValue?.pgSettings, ...pgSettingsFor(principal) },
          tlChanges: options.changes?.forSocket(requestContext.ws?.socket, principal.subjects) ?? null,
        };
      },
    },
    grafserv: {
      graphqlPath: "/graphql",
      websockets: true,
      graphiql: true,
      graphiqlPath: "/graphiql",
      graphiqlOnGraphQLGET: true,
      maxRequestLength: options.maxRequestBytes ?? 1024 * 1024,
      ...(options.maskError ? { maskError: options.maskError } : {}),
    },
  };
}

const preset: GraphileConfig.Preset = makeThroughlinePreset({
  connectionString: process.env.DATABASE_URL ?? "postgres:///throughline",
});
export default preset;
