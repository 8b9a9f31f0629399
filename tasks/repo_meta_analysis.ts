// REPO_META_ANALYSIS: classify the project's components by package ecosystem (the repository their
// metadata would come from). Not applicable to a project without components.
import { defineTask, notApplicable } from "../src/runtime/task.ts";
import { projectComponents } from "../src/db/projects.ts";
import { projectInput } from "./vuln_analysis.ts";

export default defineTask({
  identifier: "repo_meta_analysis",
  input: projectInput,
  async run({ input, db }) {
    const components = await projectComponents(db, input.project);
    if (components.length === 0) return notApplicable("The project has no components to analyse");
    const repositories: Record<string, number> = {};
    let withoutPurl = 0;
    for (const c of components) {
      const type = c.purl ? /^pkg:([a-z0-9.+-]+)\//i.exec(c.purl)?.[1]?.toLowerCase() : undefined;
      if (type) repositories[type] = (repositories[type] ?? 0) + 1;
      else withoutPurl++;
    }
    return { analyzed: components.length, repositories, withoutPurl };
  },
});
