// The API for writing a step. A task receives the run's input (validated with its zod schema) and the
// results of the steps it depends on, and either returns its output, declares itself not applicable
// with a reason, or throws: a TerminalError fails the step at once, anything else is retried with
// backoff until the step's attempts run out.
import type { z } from "zod";
import type pg from "pg";
import type { Logger } from "../log.ts";

/** Thrown by a task when retrying cannot help (bad input, a malformed document): the step FAILS now. */
export class TerminalError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TerminalError";
  }
}

/** Thrown (or any other error) when another attempt may succeed: the step is retried with backoff. */
export class RetryableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RetryableError";
  }
}

const notApplicableMarker = Symbol("throughline.notApplicable");

export interface NotApplicable {
  readonly [notApplicableMarker]: true;
  readonly reason: string;
}

/** Return this from a task to end the step NOT_APPLICABLE; its dependents go on as if it completed. */
export function notApplicable(reason: string): NotApplicable {
  return { [notApplicableMarker]: true, reason };
}

export function isNotApplicable(value: unknown): value is NotApplicable {
  return typeof value === "object" && value !== null && notApplicableMarker in value;
}

export interface StepContext<Input> {
  token: string;
  step: string;
  attempt: number;
  maxAttempts: number;
  workflow: string;
  subject: string | null;
  input: Input;
  /** Status and output of each step this one depends on. */
  upstream: Record<string, { status: string; output: unknown }>;
  /** Aborted when this attempt loses its lease (another attempt may run): stop work promptly. */
  signal: AbortSignal;
  log: Logger;
  /** Database access for the step's own domain writes (keep them idempotent: an attempt may repeat). */
  db: pg.Pool;
}

export interface TaskDefinition<Input = unknown, Output = unknown> {
  /** Graphile Worker task identifier: the step name in lower snake case (file name in tasks/). */
  identifier: string;
  /** Schema of the run input this task reads; a mismatch fails the step (TerminalError). */
  input: z.ZodType<Input>;
  /** Schema of the output; checked before it is stored. */
  output?: z.ZodType<Output>;
  run(ctx: StepContext<Input>): Promise<Output | NotApplicable>;
}

export function defineTask<Input, Output>(definition: TaskDefinition<Input, Output>): TaskDefinition<Input, Output> {
  if (!/^[a-z][a-z0-9_]{0,62}$/.test(definition.identifier)) {
    throw new Error(`task identifier "${definition.identifier}" must be lower snake case`);
  }
  return definition;
}

/** Any task, whatever its input and output types (for lists of tasks). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyTask = TaskDefinition<any, any>;
