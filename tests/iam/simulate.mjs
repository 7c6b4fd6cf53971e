// Evaluates IAM requests with @cloud-copilot/iam-simulate (test-only driver).
// stdin: a JSON array of simulations (the library's `Simulation` shape);
// stdout: a JSON array, one {result, ignoredContextKeys, errors} per simulation, in order.
// `result` is the overall decision: "Allowed", "ImplicitlyDenied", "ExplicitlyDenied" or null on error.
import { runSimulation } from '@cloud-copilot/iam-simulate';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const simulations = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const results = [];
for (const simulation of simulations) {
  const run = await runSimulation(
    { serviceControlPolicies: [], resourceControlPolicies: [], ...simulation },
    { simulationMode: 'Strict' },
  );
  if (run.resultType === 'error') {
    results.push({ result: null, ignoredContextKeys: [], errors: run.errors });
  } else if (run.resultType === 'single') {
    results.push({ result: run.overallResult, ignoredContextKeys: run.result.ignoredContextKeys ?? [], errors: null });
  } else {
    results.push({
      result: run.overallResult,
      ignoredContextKeys: run.results.flatMap((r) => r.ignoredContextKeys ?? []),
      errors: null,
    });
  }
}
process.stdout.write(JSON.stringify(results));
