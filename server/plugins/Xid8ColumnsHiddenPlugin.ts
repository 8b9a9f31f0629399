// Two tables record the writing transaction as xid8 (event.xid, step_retry.xid): the cursor
// machinery needs it, clients do not (they get cursors). PostGraphile has no codec for xid8 and
// would warn at every start; read it as text internally and keep the columns out of the schema.
import { TYPES } from "postgraphile/@dataplan/pg";

const xid8Columns = new Set(["event.xid", "step_retry.xid"]);

export const Xid8ColumnsHiddenPlugin: GraphileConfig.Plugin = {
  name: "Xid8ColumnsHiddenPlugin",
  description: "Reads xid8 as text and hides the xid8 columns",
  version: "0.1.0",
  gather: {
    hooks: {
      async pgCodecs_findPgCodec(_info, event) {
        if (event.pgCodec || event.pgType.typname !== "xid8") return;
        if (event.pgType.getNamespace()?.nspname !== "pg_catalog") return;
        event.pgCodec = TYPES.text;
      },
    },
  },
  schema: {
    entityBehavior: {
      pgCodecAttribute: {
        override: {
          provides: ["Xid8ColumnsHiddenPlugin"],
          callback(behavior, [codec, attributeName]) {
            const table = (codec.extensions?.pg as { name?: string } | undefined)?.name;
            return table && xid8Columns.has(`${table}.${attributeName}`) ? [behavior, "-*"] : behavior;
          },
        },
      },
    },
  },
};
