/**
 * Serves a folder of exports as a BigQuery dataset on 127.0.0.1, so `recon --bigquery` can be
 * tried without a Google account. Query jobs run in ZetaSQL (BigQuery's SQL front end), started
 * at the first query and stopped with the endpoint:
 *
 *   npm run bigquery:local -- --exports fixtures/demo [--port 9050] [--project local-project] [--dataset billing]
 *   npm run recon -- audit --bigquery local-project.billing --bigquery-endpoint http://127.0.0.1:9050
 */
import { parseArgs } from 'node:util';
import { startLocalBigQuery } from '../src/sources/bigquery-local.ts';

const USAGE = 'usage: npm run bigquery:local -- --exports DIR [--port 9050] [--project local-project] [--dataset billing]';
let values: { exports?: string; port: string; project: string; dataset: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      exports: { type: 'string' },
      port: { type: 'string', default: '9050' },
      project: { type: 'string', default: 'local-project' },
      dataset: { type: 'string', default: 'billing' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!values.exports) {
  console.error(USAGE);
  process.exit(2);
}
const bq = await startLocalBigQuery({ exportsDir: values.exports, port: Number(values.port), projectId: values.project, datasetId: values.dataset });
const dataset = `${bq.projectId}.${bq.datasetId}`;
console.log(`serving ${values.exports} as ${dataset} (${bq.tables.join(', ')}) at ${bq.url}; GoogleSQL query jobs run in ZetaSQL`);
console.log(`try: npm run recon -- audit --bigquery ${dataset} --bigquery-endpoint ${bq.url}`);
console.log(`or any client: new BigQuery({ projectId: '${bq.projectId}', apiEndpoint: '${bq.url}' }), or BIGQUERY_EMULATOR_HOST=${bq.url}`);
console.log('Ctrl-C stops it');
const stop = () => void bq.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
