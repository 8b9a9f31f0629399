// METRICS_UPDATE: store the project's metrics. Runs for every BOM, with or without components.
import { z } from "zod";
import { defineTask } from "../src/runtime/task.ts";
import { projectComponents, recordProjectMetrics } from "../src/db/projects.ts";
import { projectInput } from "./vuln_analysis.ts";

const policy = z.object({ findings: z.number(), critical: z.number(), violations: z.array(z.unknown()) });

export default defineTask({
  identifier: "metrics_update",
  input: projectInput,
  async run({ input, token, upstream, db }) {
    const components = (await projectComponents(db, input.project)).length;
    const evaluated = policy.safeParse(upstream.POLICY_EVALUATION?.output);
    const metrics = {
      components,
      vulnerabilities: evaluated.success ? evaluated.data.findings : 0,
      critical: evaluated.success ? evaluated.data.critical : 0,
      policyViolations: evaluated.success ? evaluated.data.violations.length : 0,
    };
    await recordProjectMetrics(db, input.project, token, metrics);
    return metrics;
  },
});
