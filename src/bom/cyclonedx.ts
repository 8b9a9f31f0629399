// Parsing and validating a CycloneDX JSON BOM. Errors say what is wrong and where: a line and column
// for malformed JSON, a path (components[3].name) for a document of the wrong shape.
import { z } from "zod";
import type { Component } from "../db/projects.ts";
import { jsonErrorOffset, lineAndColumn } from "./jsonErrorPosition.ts";

const componentSchema: z.ZodType<CycloneDxComponent> = z.lazy(() => z.object({
  type: z.string().min(1),
  name: z.string().min(1),
  version: z.string().optional(),
  purl: z.string().optional(),
  "bom-ref": z.string().optional(),
  components: z.array(componentSchema).optional(),
}));

interface CycloneDxComponent {
  type: string;
  name: string;
  version?: string;
  purl?: string;
  "bom-ref"?: string;
  components?: CycloneDxComponent[];
}

export const cycloneDxSchema = z.object({
  bomFormat: z.literal("CycloneDX", { error: 'bomFormat must be "CycloneDX"' }),
  specVersion: z.enum(["1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7"], { error: "specVersion must be a CycloneDX version from 1.0 to 1.7" }),
  serialNumber: z.string().optional(),
  version: z.number().int().optional(),
  metadata: z.unknown().optional(),
  components: z.array(componentSchema).optional(),
});

export class BomError extends Error {}

/** The BOM as submitted: the parsed document, or its raw JSON text. */
export function parseBom(bom: unknown): { specVersion: string; serialNumber?: string; components: Component[] } {
  let doc = bom;
  if (typeof bom === "string") {
    try {
      doc = JSON.parse(bom);
    } catch {
      const offset = jsonErrorOffset(bom) ?? 0;
      const what = offset >= bom.length ? "unexpected end of input" : `unexpected ${JSON.stringify(bom[offset])}`;
      throw new BomError(`BOM is not valid JSON at ${lineAndColumn(bom, offset)}: ${what}`);
    }
  }
  const result = cycloneDxSchema.safeParse(doc);
  if (!result.success) {
    const issues = result.error.issues.slice(0, 5).map((i) => `${formatPath(i.path) || "(document)"}: ${i.message}`);
    const more = result.error.issues.length > 5 ? ` (and ${result.error.issues.length - 5} more)` : "";
    throw new BomError(`BOM is not a valid CycloneDX document: ${issues.join("; ")}${more}`);
  }
  const components: Component[] = [];
  const walk = (list: CycloneDxComponent[] | undefined) => {
    for (const c of list ?? []) {
      components.push({ bomRef: c["bom-ref"] ?? null, type: c.type, name: c.name, version: c.version ?? null, purl: c.purl ?? null });
      walk(c.components);
    }
  };
  walk(result.data.components);
  return { specVersion: result.data.specVersion, serialNumber: result.data.serialNumber, components };
}

function formatPath(path: PropertyKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`)).join("");
}
