// VULN_ANALYSIS: match the project's components against the advisory list. Not applicable to a
// project without components (hyades: empty BOMs must not leave CI waiting).
import { z } from "zod";
import { defineTask, notApplicable } from "../src/runtime/task.ts";
import { projectComponents } from "../src/db/projects.ts";
import { findVulnerabilities } from "../src/bom/advisories.ts";

export const projectInput = z.object({ project: z.string().min(1).max(256) }).loose();

export default defineTask({
  identifier: "vuln_analysis",
  input: projectInput,
  async run({ input, db }) {
    const components = await projectComponents(db, input.project);
    if (components.length === 0) return notApplicable("The project has no components to analyse");
    const findings = findVulnerabilities(components.flatMap((c) => (c.purl ? [c.purl] : [])));
    return { analyzed: components.length, findings };
  },
});
