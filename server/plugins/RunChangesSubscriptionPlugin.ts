// Subscription.runChanges (one run) and Subscription.runsChanges (across runs): the current state
// and its cursor first, then every change after it; resumable from any cursor a message carried.
// The work is done by the change hub (server/changes/changeHub.ts), which the context provides as
// `tlChanges`; the JSON shapes come from sql/current/800-graphql_api.sql.
import { context, lambda, listen, object, type GrafastSubscriber, type Step } from "postgraphile/grafast";
import { extendSchema, gql } from "postgraphile/utils";
import type { ChangeHub } from "../changes/changeHub.ts";

type ChangeSubscriber = ReturnType<ChangeHub["forSocket"]>;

declare global {
  namespace Grafast {
    interface Context {
      /** The change hub of this server process, bound to the request's WebSocket (subscriptions). */
      tlChanges?: ChangeSubscriber | null;
    }
  }
}

/** Grafast topics are strings: the subscription's arguments travel as JSON (a ChangesTopic). */
const topicOf = (args: Record<string, Step>) => lambda(object(args), (topic) => JSON.stringify(topic), true);

/** The hub from the context; the ListenStep calls its subscribe(topic) with our topic object. */
const changeHub = () => context().get("tlChanges") as unknown as Step<GrafastSubscriber | null>;

export const RunChangesSubscriptionPlugin = extendSchema(() => ({
  typeDefs: gql`
    """
    A message of a change subscription. The first message of a subscription started without
    \`after\` carries the current state in \`runs\`; every other message carries the transitions
    committed since the previous one in \`events\`. Keep the last \`cursor\` you received: subscribing
    again with \`after: cursor\` delivers exactly what you missed, with no gap and no duplicate.
    """
    type RunChanges {
      "Resume point: pass it as \`after\` to continue right after this message."
      cursor: String!
      "The current state, in the first message of a subscription without \`after\`; null otherwise."
      runs: [RunSnapshot!]
      "Transitions in the order they happened (empty in a state message)."
      events: [RunEvent!]!
    }

    "A run as it was at a message’s cursor."
    type RunSnapshot {
      token: UUID!
      workflow: String!
      subject: String
      "PENDING, COMPLETED, FAILED or CANCELLED."
      status: String!
      labels: JSON!
      isProcessing: Boolean!
      admittedAt: Datetime
      createdAt: Datetime!
      updatedAt: Datetime!
      completedAt: Datetime
      stepsTotal: Int!
      stepsOpen: Int!
      stepsFailed: Int!
      stepsCancelled: Int!
      steps: [StepSnapshot!]!
    }

    "A step as it was at a message’s cursor."
    type StepSnapshot {
      id: BigInt!
      "The step this one hangs under in the hyades tree (its first dependency)."
      parentStepId: BigInt
      step: String!
      "PENDING, COMPLETED, FAILED, CANCELLED, NOT_APPLICABLE or TIMED_OUT."
      status: String!
      startedAt: Datetime
      updatedAt: Datetime!
      failureReason: String
      statusReason: String
      attempt: Int!
      dependsOn: [String!]!
    }

    "One transition from the event log (throughline.event)."
    type RunEvent {
      "Order of writing; within one run, the order of its transitions."
      seq: BigInt!
      token: UUID!
      workflow: String!
      subject: String
      stepId: BigInt
      step: String
      "RUN_CREATED, RUN_ADMITTED, RUN_ENDED, RUN_REOPENED, STEP_STATUS, STEP_STARTED or STEP_RETRY_SCHEDULED."
      kind: String!
      fromStatus: String
      toStatus: String
      attempt: Int
      reason: String
      at: Datetime!
    }

    extend type Subscription {
      """
      Changes of one run: first its current state with its steps (or, with \`after\`, everything
      since that cursor), then each transition as it commits.
      """
      runChanges(token: UUID!, after: String): RunChanges!

      """
      Changes across runs, optionally of one workflow and/or subject: first the newest \`first\` runs
      with their steps (or, with \`after\`, everything since that cursor), then each transition as
      it commits.
      """
      runsChanges(workflow: String, subject: String, after: String, first: Int = 100): RunChanges!
    }
  `,
  objects: {
    Subscription: {
      plans: {
        runChanges: {
          subscribePlan(_$root, fieldArgs) {
            const $topic = topicOf({ token: fieldArgs.getRaw("token"), after: fieldArgs.getRaw("after") });
            return listen(changeHub(), $topic);
          },
          plan($message) {
            return $message;
          },
        },
        runsChanges: {
          subscribePlan(_$root, fieldArgs) {
            const $topic = topicOf({
              workflow: fieldArgs.getRaw("workflow"),
              subject: fieldArgs.getRaw("subject"),
              after: fieldArgs.getRaw("after"),
              first: fieldArgs.getRaw("first"),
            });
            return listen(changeHub(), $topic);
          },
          plan($message) {
            return $message;
          },
        },
      },
    },
  },
}));
