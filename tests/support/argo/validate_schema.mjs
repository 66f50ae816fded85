// Validate exported workflows against Argo's schema, as compiled into validators by the npm
// package @kubernetes-models/argo-workflows (generated from Argo Workflows' OpenAPI/JSON
// schema: types, required fields, oneOf/IntOrString).
//
// Usage: node validate_schema.mjs NODE_MODULES_DIR FILE.json...
// Exit 0 when every file is valid, else 1 naming each file and every violation.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
const url = pathToFileURL(
  join(modules, "@kubernetes-models/argo-workflows/argoproj.io/v1alpha1/WorkflowTemplate.js"),
);
const { WorkflowTemplate } = await import(url.href);
let bad = 0;
for (const f of files) {
  const doc = JSON.parse(readFileSync(f, "utf8"));
  try {
    new WorkflowTemplate(doc).validate();
    console.log(`${f}: valid against Argo's WorkflowTemplate schema`);
  } catch (e) {
    console.log(`${f}: invalid against Argo's WorkflowTemplate schema: ${e.message}`);
    bad++;
  }
}
process.exit(bad ? 1 : 0);
