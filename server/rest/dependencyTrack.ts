// Dependency-Track REST compatibility routes (anchors.md §1): the upload, re-analysis and token
// polling endpoints that Dependency-Track CI plugins and scripts call, answered byte-for-byte as
// Dependency-Track / hyades answer them, backed by Throughline runs.
//
// Mounted in front of the GraphQL server on the same node:http server: the handler answers every
// request under /api/ (true) and leaves everything else to the next handler (false).
//
// What it answers:
//   PUT  /api/v1/bom                              JSON {project | projectName[+projectVersion], bom: base64}
//   POST /api/v1/bom                              multipart/form-data, same fields, bom a field or a file
//   POST /api/v1/finding/project/{uuid}/analyze   → a reanalysis run
//     all three → 200 {"token":"<uuid>"}
//   GET  /api/v1/bom/token/{uuid}                 → 200 {"processing":true|false}
//   GET  /api/v1/event/token/{uuid}               → same
//   GET  /api/v1/workflow/token/{uuid}/status     → 200 [{"token","step","status","startedAt","updatedAt","failureReason"}]
//                                                    or 404 text "Provided token <uuid> does not exist."
//   GET  /api/v2/workflows/{token}                → 200 {"states":[{"token","step","status","started_at","updated_at","failure_reason"}]}
//
// Errors, as Dependency-Track shapes them:
//   - invalid fields and path parameters → 400, a JSON array of
//     {"message","messageTemplate","path","invalidValue"} (its ConstraintViolationExceptionMapper);
//   - protocol mistakes (malformed JSON or multipart, wrong media type, body too large, unknown
//     route, wrong method) → 400/415/413/404/405 with a plain-text sentence saying what was wrong;
//   - v2 routes answer problem details (application/problem+json), as hyades' v2 API does.
// Nothing a client sends produces a 500.
//
// Projects: Throughline keeps no project registry; a project is a run's subject (its UUID, or
// "name@version" for projectName/projectVersion uploads). Every project therefore "exists", so the
// 404 "The project could not be found." that Dependency-Track answers for unknown projects never
// happens here, and autoCreate is accepted and changes nothing.
//
// Access control is designed separately: pass `authenticate` to decide per request and route (it
// receives the Dependency-Track permission the route needs). Default: allow.
import type { IncomingMessage, ServerResponse } from "node:http";
import type pg from "pg";
import { z } from "zod";
import type { Logger } from "../../src/log.ts";
import { startRun } from "../../src/db/runs.ts";
import { withSettings } from "../../src/auth.ts";
import { ThroughlineError, type ErrorKind } from "../../src/db/errors.ts";
import { jsonErrorOffset, lineAndColumn } from "../../src/bom/jsonErrorPosition.ts";

/** Dependency-Track permissions the routes require (what an access-control hook checks). */
export type DependencyTrackPermission = "BOM_UPLOAD" | "VULNERABILITY_ANALYSIS" | "VIEW_PORTFOLIO";

export type RouteName = "bom.upload.json" | "bom.upload.multipart" | "project.analyze" | "bom.token" | "event.token" | "workflow.status" | "workflows.v2";

export interface RouteInfo {
  name: RouteName;
  permission: DependencyTrackPermission;
  /** The token or project UUID named by the path, when there is one. */
  uuid?: string;
}

/** What an authenticate hook decides. `principal` names who asked (recorded as a run label). */
export type AuthDecision =
  /** settings: transaction settings (role, key scope) the route's queries run with; row-level security applies them. */
  | { allow: true; principal?: string; settings?: Record<string, string> }
  | { allow: false; status: 401 | 403; message?: string };

export type Authenticate = (req: IncomingMessage, route: RouteInfo) => AuthDecision | Promise<AuthDecision>;

export interface RestDeps {
  pool: pg.Pool;
  log: Logger;
  /** Largest accepted request body in bytes. */
  maxBodyBytes: number;
  /** Access control (X-Api-Key etc.), called once a route is known and before its body is read. Default: allow. */
  authenticate?: Authenticate;
}

const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain; charset=utf-8";
const PROBLEM_TYPE = "application/problem+json";

/** Lenient like java.util.UUID.fromString's callers in hyades: any case, canonical 8-4-4-4-12 form. */
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * Dependency-Track's BomSubmitRequest pattern, /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
 * checked without that regular expression: V8 runs its repeated group with a backtracking stack
 * that overflows on a BOM of a few megabytes (a RangeError, answered 500). Whitespace is removed
 * first (`base64` wraps lines).
 */
function isBase64(s: string): boolean {
  if (s.length % 4 !== 0) return false;
  const padding = s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0;
  return /^[A-Za-z0-9+/]*$/.test(s.slice(0, s.length - padding));
}
/** Alpine's PRINTABLE_CHARS. */
const PRINTABLE_RE = /^[\p{L}\p{M}\p{S}\p{N}\p{P}\p{Z}]*$/u;
const SUBJECT_MAX = 256;

// ---------------------------------------------------------------------------------------------
// Responses

/** One Dependency-Track validation error (ConstraintViolationExceptionMapper's element). */
export interface ValidationError {
  message: string;
  messageTemplate: string;
  path: string;
  invalidValue?: string;
}

class HttpError extends Error {
  readonly status: number;
  readonly body: string;
  readonly contentType: string;
  readonly headers: Record<string, string>;
  constructor(status: number, body: string, contentType: string = TEXT_TYPE, headers: Record<string, string> = {}) {
    super(body);
    this.status = status;
    this.body = body;
    this.contentType = contentType;
    this.headers = headers;
  }
}

const text = (status: number, message: string, headers: Record<string, string> = {}) => new HttpError(status, message, TEXT_TYPE, headers);

function validationFailed(errors: ValidationError[]): HttpError {
  return new HttpError(400, JSON.stringify(errors), JSON_TYPE);
}

function problem(status: number, title: string, detail: string): HttpError {
  return new HttpError(status, JSON.stringify({ status, title, detail }), PROBLEM_TYPE);
}

/** Echo of an invalid value: whole when short, cut when long (a rejected BOM is not sent back). */
function echo(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  let s: string;
  try {
    s = typeof value === "string" ? value : JSON.stringify(value);
  } catch {
    return "(a value nested too deeply to show)"; // JSON.stringify ran out of stack
  }
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}

function invalid(path: string, message: string, value: unknown): ValidationError {
  const e: ValidationError = { message, messageTemplate: message, path };
  const v = echo(value);
  if (v !== undefined) e.invalidValue = v;
  return e;
}

function send(res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}) {
  const bytes = Buffer.from(body, "utf8");
  res.writeHead(status, { "content-type": contentType, "content-length": String(bytes.length), ...headers });
  res.end(bytes);
}

const sendJson = (res: ServerResponse, value: unknown) => send(res, 200, JSON_TYPE, JSON.stringify(value));

// ---------------------------------------------------------------------------------------------
// Request bodies

function mediaType(req: IncomingMessage): string {
  return (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
}

function requireMediaType(req: IncomingMessage, expected: string) {
  const actual = mediaType(req);
  if (actual !== expected) {
    throw text(415, `Unsupported Media Type: expected Content-Type ${expected}, got ${actual || "none"}.`);
  }
}

/** Reads the body, refusing (413, without reading further) anything above maxBytes. */
async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const tooLarge = () => text(413, `Request body is larger than the ${maxBytes} bytes this server accepts.`, { connection: "close" });
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise<Buffer>((resolve, reject) => {
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const onAborted = () => {
      cleanup();
      reject(new Error("request aborted"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: false });

/**
 * A BOM's bytes as text for the run input: UTF-8 (a byte-order mark is dropped, as Dependency-Track's
 * BOMInputStream does); bytes that are not text become U+FFFD, so BOM_CONSUMPTION reports where the
 * document goes wrong instead of the upload being refused (jsonb cannot hold U+0000).
 */
function bomText(bytes: Uint8Array): string {
  return utf8.decode(bytes).replaceAll("\u0000", "\uFFFD");
}

function parseJsonBody(body: Buffer): unknown {
  const source = body.toString("utf8");
  try {
    return JSON.parse(source);
  } catch {
    const offset = jsonErrorOffset(source) ?? 0;
    const what = offset >= source.length ? "unexpected end of input" : `unexpected ${JSON.stringify(source[offset])}`;
    throw text(400, `Malformed JSON at ${lineAndColumn(source, offset)}: ${what}.`);
  }
}

// ---------------------------------------------------------------------------------------------
// Upload requests (validated with zod; issues become Dependency-Track validation errors)

const optionalText = z.string({ error: "must be a string" }).nullish();

const uploadSchema = z.object(
  {
    project: z.string({ error: "The project must be a valid 36 character UUID" })
      .regex(UUID_RE, { error: "The project must be a valid 36 character UUID" })
      .nullish(),
    projectName: optionalText,
    projectVersion: optionalText,
    autoCreate: z.union([z.boolean(), z.enum(["true", "false"])], { error: "must be true or false" }).nullish(),
    bom: z.custom<string | Uint8Array>((v) => typeof v === "string" || v instanceof Uint8Array, { error: "The BOM must be Base64 encoded" }),
  },
  { error: "The request body must be a JSON object" },
);

interface UploadRequest {
  /** The run's subject: the project UUID, or "name@version". */
  project: string;
  bomText: string;
}

function zodToValidationErrors(error: z.ZodError, input: unknown): ValidationError[] {
  return error.issues.map((issue) => {
    let value: unknown = input;
    for (const key of issue.path) value = value && typeof value === "object" ? (value as Record<PropertyKey, unknown>)[key as PropertyKey] : undefined;
    // A required field that is absent or null: Bean Validation's @NotNull message.
    const message = issue.path.length && (value === undefined || value === null) ? "must not be null" : issue.message;
    return invalid(issue.path.map(String).join("."), message, issue.path.length ? value : undefined);
  });
}

/**
 * Validates an upload. `bom` is base64 text (PUT) or the document itself (POST: bytes of a file part
 * or a text field); `base64` says which.
 */
function validateUpload(input: unknown, base64: boolean): UploadRequest {
  const parsed = uploadSchema.safeParse(input);
  if (!parsed.success) throw validationFailed(zodToValidationErrors(parsed.error, input));
  const r = parsed.data;
  const errors: ValidationError[] = [];

  let project: string | undefined;
  if (r.project != null) {
    project = r.project.toLowerCase();
  } else {
    // Dependency-Track ≥ 3.1: without a UUID, the project is named (its name trimmed, as Alpine's
    // TrimmedStringDeserializer does). A project without a version is allowed (Dependency-Track 4).
    const name = r.projectName?.trim() ?? "";
    const version = r.projectVersion?.trim() ?? "";
    if (!name) {
      errors.push(invalid("projectName", "Either project (a UUID) or projectName (with projectVersion) must be given", r.projectName));
    } else if (!PRINTABLE_RE.test(name)) {
      errors.push(invalid("projectName", "The project name may only contain printable characters", name));
    }
    if (version && !PRINTABLE_RE.test(version)) {
      errors.push(invalid("projectVersion", "The project version may only contain printable characters", version));
    }
    project = version ? `${name}@${version}` : name;
    if (name && project.length > SUBJECT_MAX) {
      errors.push(invalid("projectName", `projectName and projectVersion together must be at most ${SUBJECT_MAX - 1} characters`, project));
    }
  }

  let text = "";
  if (base64) {
    if (typeof r.bom !== "string") {
      errors.push(invalid("bom", "The BOM must be Base64 encoded", r.bom));
    } else {
      const compact = r.bom.replace(/[\s]+/g, "");
      if (!isBase64(compact)) errors.push(invalid("bom", "The BOM must be Base64 encoded", r.bom));
      else text = bomText(Buffer.from(compact, "base64"));
    }
  } else {
    text = typeof r.bom === "string" ? r.bom.replace(/^\uFEFF/, "").replaceAll("\u0000", "\uFFFD") : bomText(r.bom);
  }

  if (errors.length) throw validationFailed(errors);
  return { project: project!, bomText: text };
}

async function multipartFields(req: IncomingMessage, body: Buffer): Promise<Record<string, unknown>> {
  let form: FormData;
  try {
    form = await new Request("http://localhost/", {
      method: "POST",
      headers: { "content-type": req.headers["content-type"] ?? "" },
      body: new Uint8Array(body),
    }).formData();
  } catch (e) {
    throw text(400, `Malformed multipart/form-data body: ${(e as Error).message}`);
  }
  const fields: Record<string, unknown> = {};
  for (const name of ["project", "projectName", "projectVersion", "autoCreate"]) {
    const v = form.get(name);
    if (v === null) continue;
    fields[name] = typeof v === "string" ? v : await v.text();
  }
  // Jersey's @FormDataParam boolean: "true" in any case is true, anything else false.
  if (typeof fields.autoCreate === "string") fields.autoCreate = fields.autoCreate.trim().toLowerCase() === "true";
  // Several bom parts: Dependency-Track processes the first.
  const bom = form.getAll("bom")[0];
  if (bom !== undefined) fields.bom = typeof bom === "string" ? bom : new Uint8Array(await bom.arrayBuffer());
  return fields;
}

// ---------------------------------------------------------------------------------------------
// Reads: one statement each (the polling hot path).

const epochMs = (column: string) => `floor(extract(epoch from ${column}) * 1000)::float8`;

interface StepStateRow {
  token: string;
  step: string;
  status: string;
  started_at: number | null;
  updated_at: number;
  failure_reason: string | null;
}

async function readStepStates(pool: Pick<pg.Pool, "query">, token: string): Promise<StepStateRow[]> {
  const { rows } = await pool.query<StepStateRow>({
    name: "throughline/rest/step_states",
    text: `select s.token::text as token, s.step, s.status, ${epochMs("s.started_at")} as started_at,
                  ${epochMs("s.updated_at")} as updated_at, s.failure_reason
           from throughline.step s where s.token = $1::uuid order by s.id`,
    values: [token],
  });
  return rows;
}

async function readProcessing(pool: Pick<pg.Pool, "query">, token: string): Promise<boolean> {
  const { rows } = await pool.query({ name: "throughline/rest/is_processing", text: "select throughline.is_processing($1::uuid) as p", values: [token] });
  return rows[0].p === true;
}

// ---------------------------------------------------------------------------------------------
// Routing

interface Context {
  req: IncomingMessage;
  res: ServerResponse;
  params: string[];
  principal?: string;
  settings?: Record<string, string>;
}

interface Route {
  method: string;
  pattern: RegExp;
  name: RouteName;
  permission: DependencyTrackPermission;
  /** Index of the path parameter that must be a UUID (validated before anything else). */
  uuidParam?: { index: number; name: string; v2?: boolean };
  handle: (ctx: Context) => Promise<void>;
}

function validateUuidParam(value: string, name: string, v2: boolean): string {
  if (UUID_RE.test(value)) return value;
  if (v2) throw problem(400, "Bad Request", `The ${name} "${echo(value)}" in the path is not a valid UUID.`);
  throw validationFailed([invalid(name, "Invalid UUID", value)]);
}

export function createDependencyTrackHandler(deps: RestDeps): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const { pool, log, maxBodyBytes } = deps;
  const authenticate: Authenticate = deps.authenticate ?? (() => ({ allow: true }));

  const submit = async (ctx: Context, workflow: string, project: string, input: Record<string, unknown>) => {
    const labels: Record<string, string> = { submittedVia: "dependency-track-api" };
    if (ctx.principal) labels.triggeredBy = ctx.principal;
    const run = await withSettings(pool, ctx.settings, (db) => startRun(db, { workflow, input, subject: project, labels }));
    log.info({ token: run.token, workflow, project }, "run submitted through the Dependency-Track API");
    sendJson(ctx.res, { token: run.token });
  };

  const processing = async (ctx: Context) => {
    sendJson(ctx.res, { processing: await withSettings(pool, ctx.settings, (db) => readProcessing(db, ctx.params[0])) });
  };

  const routes: Route[] = [
    {
      method: "PUT", pattern: /^\/api\/v1\/bom$/, name: "bom.upload.json", permission: "BOM_UPLOAD",
      async handle(ctx) {
        requireMediaType(ctx.req, "application/json");
        const body = parseJsonBody(await readBody(ctx.req, maxBodyBytes));
        const upload = validateUpload(body, true);
        await submit(ctx, "bom_upload", upload.project, { project: upload.project, bom: upload.bomText });
      },
    },
    {
      method: "POST", pattern: /^\/api\/v1\/bom$/, name: "bom.upload.multipart", permission: "BOM_UPLOAD",
      async handle(ctx) {
        requireMediaType(ctx.req, "multipart/form-data");
        const fields = await multipartFields(ctx.req, await readBody(ctx.req, maxBodyBytes));
        const upload = validateUpload(fields, false);
        await submit(ctx, "bom_upload", upload.project, { project: upload.project, bom: upload.bomText });
      },
    },
    {
      method: "POST", pattern: /^\/api\/v1\/finding\/project\/([^/]*)\/analyze$/, name: "project.analyze", permission: "VULNERABILITY_ANALYSIS",
      uuidParam: { index: 0, name: "uuid" },
      async handle(ctx) {
        const project = ctx.params[0].toLowerCase();
        await submit(ctx, "reanalysis", project, { project });
      },
    },
    { method: "GET", pattern: /^\/api\/v1\/bom\/token\/([^/]*)$/, name: "bom.token", permission: "BOM_UPLOAD", uuidParam: { index: 0, name: "uuid" }, handle: processing },
    { method: "GET", pattern: /^\/api\/v1\/event\/token\/([^/]*)$/, name: "event.token", permission: "BOM_UPLOAD", uuidParam: { index: 0, name: "uuid" }, handle: processing },
    {
      method: "GET", pattern: /^\/api\/v1\/workflow\/token\/([^/]*)\/status$/, name: "workflow.status", permission: "BOM_UPLOAD",
      uuidParam: { index: 0, name: "uuid" },
      async handle(ctx) {
        const rows = await withSettings(pool, ctx.settings, (db) => readStepStates(db, ctx.params[0]));
        if (rows.length === 0) throw text(404, `Provided token ${ctx.params[0]} does not exist.`);
        sendJson(ctx.res, rows.map((r) => {
          const o: Record<string, unknown> = { token: r.token, step: r.step, status: r.status };
          if (r.started_at !== null) o.startedAt = r.started_at;
          o.updatedAt = r.updated_at;
          if (r.failure_reason !== null) o.failureReason = r.failure_reason;
          return o;
        }));
      },
    },
    {
      method: "GET", pattern: /^\/api\/v2\/workflows\/([^/]*)$/, name: "workflows.v2", permission: "BOM_UPLOAD",
      uuidParam: { index: 0, name: "token", v2: true },
      async handle(ctx) {
        const rows = await withSettings(pool, ctx.settings, (db) => readStepStates(db, ctx.params[0]));
        if (rows.length === 0) throw problem(404, "Not Found", `Provided token ${ctx.params[0]} does not exist.`);
        sendJson(ctx.res, {
          states: rows.map((r) => ({
            token: r.token, step: r.step, status: r.status,
            started_at: r.started_at, updated_at: r.updated_at, failure_reason: r.failure_reason,
          })),
        });
      },
    },
  ];

  const dispatch = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    const matching = routes.map((route) => ({ route, m: route.pattern.exec(path) })).filter((x) => x.m);
    if (matching.length === 0) throw text(404, `Not Found: no resource at ${path}.`);
    const hit = matching.find((x) => x.route.method === req.method);
    if (!hit) {
      const allow = [...new Set(matching.map((x) => x.route.method))].join(", ");
      throw text(405, `Method Not Allowed: ${path} accepts ${allow}, not ${req.method}.`, { allow });
    }
    const { route } = hit;
    const params = hit.m!.slice(1);
    if (route.uuidParam) {
      params[route.uuidParam.index] = validateUuidParam(params[route.uuidParam.index], route.uuidParam.name, !!route.uuidParam.v2);
    }
    const decision = await authenticate(req, { name: route.name, permission: route.permission, uuid: route.uuidParam ? params[route.uuidParam.index] : undefined });
    if (!decision.allow) {
      throw text(decision.status, decision.message ?? (decision.status === 401 ? "Unauthorized" : "Forbidden"));
    }
    await route.handle({ req, res, params, principal: decision.principal, settings: decision.settings });
  };

  return async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/api" && !path.startsWith("/api/")) return false;
    try {
      await dispatch(req, res, path);
    } catch (e) {
      const answer = toHttpError(e, log, req);
      // A refused body is not read: the connection closes after the answer instead of draining it.
      const unread = !req.complete;
      if (res.headersSent) {
        res.destroy();
      } else {
        send(res, answer.status, answer.contentType, answer.body, unread ? { ...answer.headers, connection: "close" } : answer.headers);
      }
      if (unread) res.once("finish", () => req.destroy());
    }
    return true;
  };
}

function toHttpError(e: unknown, log: Logger, req: IncomingMessage): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof ThroughlineError) {
    // Raised on purpose by the SQL functions (start_run's guards): the message is written for the caller.
    const statusOf: Record<ErrorKind, number> = { invalid: 400, too_large: 413, conflict: 409, not_found: 404, forbidden: 403 };
    const status = statusOf[e.kind];
    if (status === 400) return validationFailed([invalid("", e.message, undefined)]);
    return e.kind === "conflict" ? new HttpError(409, JSON.stringify({ message: e.message }), JSON_TYPE) : text(status, e.message);
  }
  const code = (e as { code?: string })?.code ?? "";
  if (code.startsWith("08") || code === "57P01" || code === "ECONNREFUSED" || code === "53300") {
    log.warn({ err: e, method: req.method, url: req.url }, "database unavailable for a REST request");
    return text(503, "Service Unavailable: the database cannot be reached; try again.", { "retry-after": "5" });
  }
  log.error({ err: e, method: req.method, url: req.url }, "REST request failed");
  return text(500, "Internal Server Error");
}
