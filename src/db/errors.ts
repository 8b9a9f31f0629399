// SQL functions raise errors with our own SQLSTATEs (TLxxx) and a message written for the caller.
// This maps them to one error type the edges (CLI, REST, GraphQL) can show as they are.
import type { DatabaseError } from "pg";

/** SQLSTATE → what kind of mistake it is. Keep in step with the `using errcode` lines in sql/current/. */
export const sqlErrorKinds = {
  TL001: "conflict", // identity change
  TL002: "conflict", // illegal transition
  TL003: "conflict", // terminal row changed
  TL004: "invalid", // step inserted outside start_run
  TL005: "conflict", // event log update
  TL403: "forbidden",
  TL404: "not_found",
  TL409: "conflict",
  TL413: "too_large",
  TL422: "invalid",
  "22P02": "invalid", // malformed value (uuid, json, cursor)
  "42501": "forbidden", // the role lacks the privilege
} as const;

export type ErrorKind = (typeof sqlErrorKinds)[keyof typeof sqlErrorKinds];

/**
 * What kind of mistake a SQLSTATE is, or undefined for a server-side failure. Besides our own codes:
 * every data exception (class 22: a malformed uuid, timestamp or JSON text, \u0000 or a lone
 * surrogate in jsonb, a number out of range) is bad input, and a program limit (class 54: JSON nested
 * too deeply, a value too long) is input too large — the caller's to fix, never an internal error.
 */
export function sqlErrorKind(code: unknown): ErrorKind | undefined {
  if (typeof code !== "string") return undefined;
  if (Object.hasOwn(sqlErrorKinds, code)) return sqlErrorKinds[code as keyof typeof sqlErrorKinds];
  if (code.startsWith("22")) return "invalid";
  if (code.startsWith("54")) return "too_large";
  return undefined;
}

export class ThroughlineError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly hint?: string;
  constructor(kind: ErrorKind, code: string, message: string, hint?: string) {
    super(message);
    this.name = "ThroughlineError";
    this.kind = kind;
    this.code = code;
    this.hint = hint;
  }
}

/** Rethrows a database error we raised on purpose as a ThroughlineError; anything else unchanged. */
export function translateDbError(error: unknown): never {
  const e = error as DatabaseError;
  const kind = sqlErrorKind(e?.code);
  if (kind) throw new ThroughlineError(kind, e.code!, e.message, e.hint);
  throw error;
}

/** Runs a database call, rethrowing the errors we raise on purpose as ThroughlineErrors (translateDbError). */
export async function withDbErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    translateDbError(e);
  }
}
