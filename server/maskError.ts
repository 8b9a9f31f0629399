// Which errors GraphQL clients see as they are. Our SQL functions raise TLxxx SQLSTATEs with messages
// written for the caller (unknown workflow, bad input, too large, conflicts): those pass unmasked,
// with the SQLSTATE, its kind and the hint as extensions. GraphQL's own errors (validation, bad
// variables) and grafast SafeErrors pass as usual. Anything else is an internal error: the client
// gets an id, the log gets the details.
import { randomUUID } from "node:crypto";
import { isSafeError } from "postgraphile/grafast";
import { GraphQLError } from "postgraphile/graphql";
import type { Logger } from "../src/log.ts";
import { sqlErrorKind } from "../src/db/errors.ts";

export function makeMaskError(log: Logger): (error: GraphQLError) => GraphQLError {
  return (error) => {
    const original = error.originalError as (Error & { code?: unknown; hint?: unknown; extensions?: Record<string, unknown> }) | undefined;
    const like = (message: string, extensions: Record<string, unknown> | null | undefined) =>
      new GraphQLError(message, {
        nodes: error.nodes, source: error.source, positions: error.positions, path: error.path,
        originalError: original, extensions: extensions ?? undefined,
      });
    if (!original || original instanceof GraphQLError) return error;
    if (isSafeError(original)) return like(original.message, original.extensions);
    const kind = sqlErrorKind(original.code);
    if (kind) {
      return like(original.message, {
        code: original.code,
        kind,
        ...(typeof original.hint === "string" && original.hint ? { hint: original.hint } : {}),
      });
    }
    // An argument nested so deeply that serialising it (for Postgres) overflows the stack: the
    // client's input, not a server failure.
    if (original instanceof RangeError && /call stack/i.test(original.message)) {
      return like("The input is nested too deeply.", { code: "TL413", kind: "too_large" });
    }
    const errorId = randomUUID();
    log.error({ err: original, errorId, path: error.path }, "internal error in a GraphQL request (masked for the client)");
    return like(`Internal error (id ${errorId}); the server log has the details.`, { code: "INTERNAL", errorId });
  };
}
