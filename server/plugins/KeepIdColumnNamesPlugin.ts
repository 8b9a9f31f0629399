// PostGraphile renames a column called `id` to `rowId` to make room for the Relay global `id`. We do
// not use global object ids (NodePlugin is disabled in graphile.config.ts), so step.id stays `id`, as
// in the SQL API and the hyades WORKFLOW_STATE it mirrors.
export const KeepIdColumnNamesPlugin: GraphileConfig.Plugin = {
  name: "KeepIdColumnNamesPlugin",
  description: "Keeps `id` columns named `id` (no Relay global ids in this API)",
  version: "0.1.0",
  inflection: {
    replace: {
      _attributeName(previous, _options, details) {
        return previous!.call(this, { ...details, skipRowId: true });
      },
    },
  },
};
