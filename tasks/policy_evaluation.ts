// POLICY_EVALUATION: the reference policy forbids CRITICAL vulnerabilities. Violations are results,
// not errors: the step completes and reports them. Not applicable when no analysis had anything to
// look at.
import { z } from "zod";
import { defineTask, notApplicable } from "../src/runtime/task.ts";
import { projectInput } from "./vuln_analysis.ts";

const analysis = z.object({ findings: z.array(z.object({ purl: z.string(), advisory: z.string(), severity: z.string() })) });

export default defineTask({
  identifier: "policy_evaluation",
  input: projectInput,
  async run({ upstream }) {
    const vuln = upstream.VULN_ANALYSIS;
    if (!vuln || vuln.status === "NOT_APPLICABLE") return notApplicable("No vulnerability analysis results to evaluate");
    const findings = analysis.parse(vuln.output).findings;
    const violations = findings.filter((f) => f.severity === "CRITICAL")
      .map((f) => ({ policy: "no-critical-vulnerabilities", purl: f.purl, advisory: f.advisory }));
    return { findings: findings.length, critical: violations.length, violations };
  },
});
