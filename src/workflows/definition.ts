// Workflow definitions, written in TypeScript and synced into throughline.workflow at start (the
// database checks them again). A step names its task; the task's file lives in tasks/.
import { z } from "zod";
import type pg from "pg";
import type { AnyTask } from "../runtime/task.ts";

const stepName = z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, "step names are UPPER_SNAKE_CASE");

export const stepDefinitionSchema = z.object({
  step: stepName,
  task: z.custom<AnyTask>((t) => typeof t === "object" && t !== null && "identifier" in t && "run" in t, "a task made with defineTask"),
  dependsOn: z.array(stepName).default([]),
  timeoutSeconds: z.number().positive().optional(),
  maxAttempts: z.number().int().min(1).max(100).default(6),
  backoffInitialSeconds: z.number().min(0).default(5),
  backoffFactor: z.number().min(1).default(1.5),
  backoffMaxSeconds: z.number().min(0).default(30 * 60),
});

export const workflowDefinitionSchema = z.object({
  name: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, "workflow names are lower_snake_case"),
  description: z.string().default(""),
  /** One run per subject at a time (hyades: one BOM per project). */
  serializeBySubject: z.boolean().default(true),
  /** The input field that names a run's subject when the submitter gives none (e.g. "project"). */
  subjectKey: z.string().optional(),
  steps: z.array(stepDefinitionSchema).min(1),
}).superRefine((wf, ctx) => {
  const seen = new Set<string>();
  wf.steps.forEach((s, i) => {
    for (const dep of s.dependsOn) {
      if (!seen.has(dep)) ctx.addIssue({ code: "custom", path: ["steps", i, "dependsOn"], message: `${s.step} depends on ${dep}, which is not an earlier step` });
    }
    if (seen.has(s.step)) ctx.addIssue({ code: "custom", path: ["steps", i, "step"], message: `${s.step} appears twice` });
    seen.add(s.step);
  });
});

export type WorkflowDefinitionInput = z.input<typeof workflowDefinitionSchema>;
export type WorkflowDefinition = z.output<typeof workflowDefinitionSchema>;

export function defineWorkflow(definition: WorkflowDefinitionInput): WorkflowDefinition {
  return workflowDefinitionSchema.parse(definition);
}

/** Creates or updates each workflow in the database (unchanged definitions keep their version). */
export async function registerWorkflows(db: Pick<pg.Pool, "query">, workflows: WorkflowDefinition[], defaults: { timeoutSeconds: number; maxInputBytes: number }) {
  for (const wf of workflows) {
    const steps = wf.steps.map((s) => ({
      step: s.step,
      task: s.task.identifier,
      dependsOn: s.dependsOn,
      timeoutSeconds: s.timeoutSeconds ?? defaults.timeoutSeconds,
      maxAttempts: s.maxAttempts,
      backoffInitialSeconds: s.backoffInitialSeconds,
      backoffFactor: s.backoffFactor,
      backoffMaxSeconds: s.backoffMaxSeconds,
    }));
    await db.query("select throughline.register_workflow($1::text, $2::jsonb, $3::text, $4::boolean, $5::integer, $6::text)",
      [wf.name, JSON.stringify(steps), wf.description, wf.serializeBySubject, defaults.maxInputBytes, wf.subjectKey ?? null]);
  }
}

/** Every task the workflows use, once each (the worker's task list). */
export function tasksOf(workflows: WorkflowDefinition[]): AnyTask[] {
  const byId = new Map<string, AnyTask>();
  for (const wf of workflows) for (const s of wf.steps) byId.set(s.task.identifier, s.task);
  return [...byId.values()];
}
