// BOM_PROCESSING: record the BOM's components as the project's components.
import { z } from "zod";
import { defineTask, TerminalError } from "../src/runtime/task.ts";
import { recordComponents } from "../src/db/projects.ts";
import { bomUploadInput } from "./bom_consumption.ts";

const consumed = z.object({
  componentCount: z.number(),
  components: z.array(z.object({ bomRef: z.string().nullish(), type: z.string(), name: z.string(), version: z.string().nullish(), purl: z.string().nullish() })),
});

export default defineTask({
  identifier: "bom_processing",
  input: bomUploadInput,
  async run({ input, token, upstream, db }) {
    const parsed = consumed.safeParse(upstream.BOM_CONSUMPTION?.output);
    if (!parsed.success) throw new TerminalError("BOM_CONSUMPTION left no parsed BOM to process");
    const recorded = await recordComponents(db, input.project, token, parsed.data.components);
    return { componentCount: recorded };
  },
});
