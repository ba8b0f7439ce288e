/** Writes deploy/pantheon/values.schema.json from the node-group schema (stack/chart-values-schema.ts). */
import * as fs from 'node:fs';
import { CHART_VALUES_SCHEMA_FILE, chartValuesSchema } from '../stack/chart-values-schema';

fs.writeFileSync(CHART_VALUES_SCHEMA_FILE, `${JSON.stringify(chartValuesSchema(), null, 2)}\n`);
process.stdout.write(`wrote ${CHART_VALUES_SCHEMA_FILE}\n`);
