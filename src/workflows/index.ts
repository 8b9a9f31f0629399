// The workflows this Throughline ships: hyades' BOM upload and re-analysis (architecture doc §5).
import { defineWorkflow, type WorkflowDefinition } from "./definition.ts";
import bomConsumption from "../../tasks/bom_consumption.ts";
import bomProcessing from "../../tasks/bom_processing.ts";
import vulnAnalysis from "../../tasks/vuln_analysis.ts";
import repoMetaAnalysis from "../../tasks/repo_meta_analysis.ts";
import policyEvaluation from "../../tasks/policy_evaluation.ts";
import metricsUpdate from "../../tasks/metrics_update.ts";

export const bomUpload = defineWorkflow({
  name: "bom_upload",
  description: "A CycloneDX BOM uploaded for a project: consume, process, analyse (vulnerabilities ∥ repository metadata), evaluate policies, update metrics.",
  subjectKey: "project",
  steps: [
    { step: "BOM_CONSUMPTION", task: bomConsumption },
    { step: "BOM_PROCESSING", task: bomProcessing, dependsOn: ["BOM_CONSUMPTION"] },
    { step: "VULN_ANALYSIS", task: vulnAnalysis, dependsOn: ["BOM_PROCESSING"] },
    { step: "REPO_META_ANALYSIS", task: repoMetaAnalysis, dependsOn: ["BOM_PROCESSING"] },
    { step: "POLICY_EVALUATION", task: policyEvaluation, dependsOn: ["VULN_ANALYSIS", "REPO_META_ANALYSIS"] },
    { step: "METRICS_UPDATE", task: metricsUpdate, dependsOn: ["POLICY_EVALUATION"] },
  ],
});

export const reanalysis = defineWorkflow({
  name: "reanalysis",
  description: "Re-analysis of a project's recorded components: vulnerabilities, policies, metrics.",
  subjectKey: "project",
  steps: [
    { step: "VULN_ANALYSIS", task: vulnAnalysis },
    { step: "POLICY_EVALUATION", task: policyEvaluation, dependsOn: ["VULN_ANALYSIS"] },
    { step: "METRICS_UPDATE", task: metricsUpdate, dependsOn: ["POLICY_EVALUATION"] },
  ],
});

export const workflows: WorkflowDefinition[] = [bomUpload, reanalysis];
