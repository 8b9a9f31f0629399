// BOM_CONSUMPTION: parse and validate the uploaded CycloneDX BOM. A malformed BOM cannot get better
// by retrying, so it fails the step at once with what is wrong and where; the steps after it end
// CANCELLED (by the cascade in SQL).
import { z } from "zod";
import { defineTask, TerminalError } from "../src/runtime/task.ts";
import { BomError, parseBom } from "../src/bom/cyclonedx.ts";

export const bomUploadInput = z.object({
  project: z.string().min(1).max(256),
  bom: z.union([z.string(), z.record(z.string(), z.unknown())]),
});

export default defineTask({
  identifier: "bom_consumption",
  input: bomUploadInput,
  async run({ input }) {
    try {
      const bom = parseBom(input.bom);
      return { specVersion: bom.specVersion, serialNumber: bom.serialNumber ?? null, componentCount: bom.components.length, components: bom.components };
    } catch (e) {
      if (e instanceof BomError) throw new TerminalError(e.message);
      throw e;
    }
  },
});
