// COMMENT ONs are written dollar-quoted on their own lines (`is $$\n…$$`); without smart tags the
// leading newline would end up in the GraphQL description. Trim every description once built.
import type { GraphQLSchema } from "postgraphile/graphql";

type Described = { description?: string | null };

function trim(thing: Described | null | undefined): void {
  if (thing && typeof thing.description === "string") thing.description = thing.description.trim();
}

export const TrimDescriptionsPlugin: GraphileConfig.Plugin = {
  name: "TrimDescriptionsPlugin",
  description: "Trims whitespace around GraphQL descriptions taken from SQL comments",
  version: "0.1.0",
  schema: {
    hooks: {
      finalize(schema: GraphQLSchema) {
        for (const type of Object.values(schema.getTypeMap())) {
          if (type.name.startsWith("__")) continue;
          trim(type);
          const withFields = type as unknown as { getFields?: () => Record<string, Described & { args?: Described[] }> };
          if (typeof withFields.getFields === "function") {
            for (const field of Object.values(withFields.getFields())) {
              trim(field);
              for (const arg of field.args ?? []) trim(arg);
            }
          }
          const withValues = type as unknown as { getValues?: () => Described[] };
          if (typeof withValues.getValues === "function") for (const v of withValues.getValues()) trim(v);
        }
        return schema;
      },
    },
  },
};
