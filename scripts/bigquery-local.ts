/**
 * Serves a folder of exports as a BigQuery dataset on 127.0.0.1, so `recon --bigquery` can be
 * tried without a Google account:
 *
 *   npm run bigquery:local -- --exports fixtures/demo [--port 9050] [--project local-project] [--dataset billing]
 *   npm run recon -- audit --bigquery local-project.billing --bigquery-endpoint http://127.0.0.1:9050
 */
import { parseArgs } from 'node:util';
import { startLocalBigQuery } from '../src/sources/bigquery-local.ts';

const { values } = parseArgs({
  options: {
    exports: { type: 'string' },
    port: { type: 'string', default: '9050' },
    project: { type: 'string', default: 'local-project' },
    dataset: { type: 'string', default: 'billing' },
  },
});
if (!values.exports) {
  console.error('usage: npm run bigquery:local -- --exports DIR [--port 9050] [--project local-project] [--dataset billing]');
  process.exit(2);
}
const bq = await startLocalBigQuery({ exportsDir: values.exports, port: Number(values.port), projectId: values.project, datasetId: values.dataset });
console.log(`serving ${values.exports} as ${bq.projectId}.${bq.datasetId} (${bq.tables.join(', ')}) at ${bq.url}`);
console.log(`try: npm run recon -- audit --bigquery ${bq.projectId}.${bq.datasetId} --bigquery-endpoint ${bq.url}`);
const stop = () => void bq.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
