// Bounds on what one GraphQL operation may ask for, checked before anything runs (HTTP and WebSocket
// alike):
// - depth: @graphile/depth-limit as a validation rule, added through grafserv's `setPreset`
//   middleware (the hook grafserv offers for extra validation rules). Introspection keeps the
//   module's own, separate limits, so the explorer works.
// - size: every `first`/`last` is at most maxFirst, and the estimated number of objects the
//   operation could return — each list multiplied by its `first` (or defaultListSize when a list
//   has none), summed over every field — is at most maxCost. This needs the variables' values, which
//   validation does not have, so it runs in grafast's `execute`/`subscribe` middleware, after
//   validation and before planning or any SQL.
import { depthLimit } from "@graphile/depth-limit";
import {
  getNamedType, getNullableType, GraphQLError, isListType, isObjectType, isInterfaceType, Kind, valueFromAST,
  type DocumentNode, type FragmentDefinitionNode, type GraphQLArgument, type GraphQLField, type GraphQLSchema,
  type GraphQLType, type OperationDefinitionNode, type SelectionSetNode,
} from "postgraphile/graphql";

export interface QueryLimits {
  /** Deepest selection nesting of a (non-introspection) operation. */
  maxDepth: number;
  /** Largest `first` / `last` on any field. */
  maxFirst: number;
  /** Largest estimated number of objects (fields × list sizes) one operation may return. */
  maxCost: number;
  /** The size assumed for a list or connection asked for without `first` / `last`. */
  defaultListSize: number;
  /** Sizes assumed instead for lists known to be small (Type.field), e.g. the steps of one run. */
  listSizeHints: Record<string, number>;
}

export const defaultQueryLimits: QueryLimits = {
  maxDepth: 10,
  maxFirst: 1000,
  maxCost: 50_000,
  defaultListSize: 100,
  // A run has a handful of steps (a DAG of a workflow definition), a step few children and attempts.
  // runChanges sends one run (runsChanges bounds its runs with `first`).
  listSizeHints: {
    "Run.steps": 50, "Workflow.steps": 50, "Step.childSteps": 10, "Step.attempts": 10, "Step.retries": 10,
    "RunChanges.runs": 1, "RunSnapshot.steps": 50,
  },
};

interface Walk {
  schema: GraphQLSchema;
  fragments: Map<string, FragmentDefinitionNode>;
  variables: Record<string, unknown>;
  limits: QueryLimits;
  errors: GraphQLError[];
}

const pageArgs = ["first", "last"];

/** The value of `first` / `last` on a field, with variables and defaults applied; undefined if absent. */
function pageSize(walk: Walk, field: GraphQLField<unknown, unknown>, node: { arguments?: readonly { name: { value: string }; value: import("postgraphile/graphql").ValueNode }[] }): number | undefined {
  let size: number | undefined;
  for (const name of pageArgs) {
    const def = field.args.find((a: GraphQLArgument) => a.name === name);
    if (!def) continue;
    const given = node.arguments?.find((a) => a.name.value === name);
    const value = given ? valueFromAST(given.value, def.type, walk.variables) : def.defaultValue;
    if (typeof value !== "number") continue;
    if (value > walk.limits.maxFirst) {
      walk.errors.push(new GraphQLError(
        `\`${name}: ${value}\` on ${field.name} is more than this server allows (${walk.limits.maxFirst}); ask for fewer and page with \`after\`.`,
        { extensions: { code: "FIRST_TOO_LARGE", limit: walk.limits.maxFirst } }));
    }
    size = Math.max(size ?? 0, value);
  }
  return size;
}

/** Estimated objects returned by a selection set, each counted `multiplier` times. */
function cost(walk: Walk, type: GraphQLType, selectionSet: SelectionSetNode, multiplier: number, pending?: number): number {
  const parent = getNamedType(type);
  if (!isObjectType(parent) && !isInterfaceType(parent)) return 0;
  let total = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.INLINE_FRAGMENT) {
      const on = selection.typeCondition ? walk.schema.getType(selection.typeCondition.name.value) ?? parent : parent;
      total += cost(walk, on, selection.selectionSet, multiplier, pending);
      continue;
    }
    if (selection.kind === Kind.FRAGMENT_SPREAD) {
      const fragment = walk.fragments.get(selection.name.value);
      const on = fragment && walk.schema.getType(fragment.typeCondition.name.value);
      if (fragment && on) total += cost(walk, on, fragment.selectionSet, multiplier, pending);
      continue;
    }
    if (selection.name.value.startsWith("__")) continue; // introspection: bounded by depth-limit
    const field = parent.getFields()[selection.name.value];
    if (!field) continue;
    total += multiplier;
    if (!selection.selectionSet) continue;
    const size = pageSize(walk, field, selection);
    const hint = walk.limits.listSizeHints[`${parent.name}.${field.name}`];
    if (isListType(getNullableType(field.type))) {
      // A list: its own `first`, else the `first` of the connection or subscription it is in, else a hint or the default.
      total += cost(walk, field.type, selection.selectionSet, multiplier * (size ?? pending ?? hint ?? walk.limits.defaultListSize));
    } else {
      // An object, or a connection whose `first` bounds the lists (nodes, edges) directly inside it.
      total += cost(walk, field.type, selection.selectionSet, multiplier, size ?? hint);
    }
  }
  return total;
}

/** Errors for an operation that asks for too much; empty when it is within the limits. */
export function checkQueryCost(schema: GraphQLSchema, document: DocumentNode, variables: Record<string, unknown> | null | undefined,
  operationName: string | null | undefined, limits: QueryLimits = defaultQueryLimits): GraphQLError[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  let operation: OperationDefinitionNode | undefined;
  for (const d of document.definitions) {
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    else if (d.kind === Kind.OPERATION_DEFINITION && (!operationName || d.name?.value === operationName)) operation ??= d;
  }
  if (!operation) return [];
  const root = operation.operation === "query" ? schema.getQueryType() : operation.operation === "mutation" ? schema.getMutationType() : schema.getSubscriptionType();
  if (!root) return [];
  const walk: Walk = { schema, fragments, variables: variables ?? {}, limits, errors: [] };
  const total = cost(walk, root, operation.selectionSet, 1);
  if (walk.errors.length) return walk.errors;
  if (total > limits.maxCost) {
    return [new GraphQLError(
      `This query could return about ${total} objects, more than this server allows (${limits.maxCost}). Ask for fewer items with \`first\` (lists asked for without it count as ${limits.defaultListSize}), select fewer nested lists, or split it up.`,
      { extensions: { code: "QUERY_TOO_COSTLY", cost: total, limit: limits.maxCost } })];
  }
  return [];
}

export function makeQueryLimitsPlugin(limits: QueryLimits = defaultQueryLimits): GraphileConfig.Plugin {
  const check = (args: { schema: GraphQLSchema; document: DocumentNode; variableValues?: Record<string, unknown> | null; operationName?: string | null }) =>
    checkQueryCost(args.schema, args.document, args.variableValues, args.operationName, limits);
  return {
    name: "ThroughlineQueryLimitsPlugin",
    version: "0.0.0",
    description: "Refuses over-deep and over-costly GraphQL operations before executing them.",
    grafserv: {
      middleware: {
        setPreset(next, event) {
          event.validationRules.push(depthLimit({
            maxDepth: limits.maxDepth,
            // Sizes are bounded by the cost check; nesting lists is how the step tree is read.
            maxListDepth: 6,
            // A field inside itself at most twice, except the hyades step tree (five levels).
            maxSelfReferentialDepth: 2,
            // Introspection as graphql-js 16's getIntrospectionQuery (what the explorer sends) asks it.
            maxIntrospectionDepth: 16,
            maxDepthByFieldCoordinates: {
              "Step.childSteps": 5, "Step.parentStep": 5, "StepConnection.nodes": 6, "StepEdge.node": 6, "StepConnection.edges": 6,
              "__Type.ofType": 10,
            },
            revealDetails: true,
          }));
          return next();
        },
      },
    },
    grafast: {
      middleware: {
        execute(next, event) {
          const errors = check(event.args);
          return errors.length ? { errors } : next();
        },
        subscribe(next, event) {
          const errors = check(event.args);
          return errors.length ? { errors } : next();
        },
      },
    },
  };
}
