// Exposure is opt-in: only the tables and functions listed here appear in GraphQL. Everything else
// in schema throughline (trigger helpers, worker and maintenance functions, the subscription reads,
// tables added later such as credentials) stays internal even if its smart comment forgets
// `@behavior -*`, so nothing becomes a public field or mutation by accident.
// To publish something, add it here and give it a COMMENT ON: that becomes its documentation.

/** SQL functions of schema throughline that are part of the GraphQL API. */
export const publicFunctions: ReadonlySet<string> = new Set([
  "start_run", // Mutation.startRun
  "cancel_run", // Mutation.cancelRun
  "retry_step", // Mutation.retryStep
  "is_processing", // Query.isProcessing
  "search_runs", // Query.searchRuns (800-graphql_api.sql)
]);

/** Tables and views of schema throughline readable through GraphQL (their own @behavior still applies). */
export const publicTables: ReadonlySet<string> = new Set([
  "workflow", "workflow_step", "run", "step", "step_attempt", "step_retry", "event", "component", "project_metrics",
]);

function isPublic(resource: { parameters?: unknown; extensions?: { pg?: unknown } }): boolean | undefined {
  const pg = resource.extensions?.pg as { schemaName?: string; name?: string } | undefined;
  if (!pg?.name) return undefined; // not a database object (e.g. a virtual resource)
  const allowed = resource.parameters ? publicFunctions : publicTables;
  return pg.schemaName === "throughline" && allowed.has(pg.name);
}

export const PublicApiOnlyPlugin: GraphileConfig.Plugin = {
  name: "PublicApiOnlyPlugin",
  description: "Hides every table and SQL function that is not on the public lists",
  version: "0.1.0",
  schema: {
    entityBehavior: {
      pgResource: {
        override: {
          provides: ["PublicApiOnlyPlugin"],
          callback(behavior, resource) {
            return isPublic(resource) === false ? [behavior, "-*"] : behavior;
          },
        },
      },
      // Lookups by primary key or unique constraint (run(token:), step(id:) …) are entities of their own.
      pgResourceUnique: {
        override: {
          provides: ["PublicApiOnlyPlugin"],
          callback(behavior, [resource]) {
            return isPublic(resource) === false ? [behavior, "-*"] : behavior;
          },
        },
      },
    },
  },
};
