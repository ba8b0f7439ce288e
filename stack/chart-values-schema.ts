/**
 * deploy/pantheon/values.schema.json, which helm checks every install's values
 * against. Its node groups are the worker's own zod schema
 * (core/schemas/node-groups.ts) as JSON Schema, so `helm install` refuses a
 * node group the worker would refuse at start; the rest types the chart's
 * settings. `tsx scripts/chart-values-schema.ts` rewrites the file; a test
 * fails while the file and this disagree.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { nodeGroupsConfigSchema } from '../core/schemas/node-groups';
import { REPO_ROOT } from './config';

export const CHART_VALUES_SCHEMA_FILE = path.join(REPO_ROOT, 'deploy', 'pantheon', 'values.schema.json');

const secretRef = {
  type: 'object',
  properties: { name: { type: 'string' }, key: { type: 'string', minLength: 1 } },
};
const object = (properties: Record<string, unknown>) => ({ type: 'object', properties });

export function chartValuesSchema(): Record<string, unknown> {
  // The values as written, before zod's defaults: what a user may leave out.
  const { $schema: _draft, ...nodeGroups } = z.toJSONSchema(nodeGroupsConfigSchema, { io: 'input' });
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    properties: {
      image: object({
        repository: { type: 'string' },
        tag: { type: 'string' },
        pullPolicy: { enum: ['Always', 'IfNotPresent', 'Never'] },
      }),
      imagePullSecrets: { type: 'array' },
      nodeGroups,
      nodeGroupsFile: {
        type: 'string',
        description: 'a node-group file, as config/node-groups.json (--set-file)',
      },
      temporal: object({
        address: { type: 'string', minLength: 1 },
        namespace: { type: 'string', minLength: 1 },
        tls: { type: 'boolean' },
        apiKeySecret: secretRef,
        mtlsSecret: object({ name: { type: 'string' }, hasCa: { type: 'boolean' } }),
        serverName: { type: 'string' },
      }),
      qdrant: object({ url: { type: 'string', minLength: 1 }, apiKeySecret: secretRef }),
      worker: object({
        replicas: { type: 'integer', minimum: 0 },
        command: { type: 'array', items: { type: 'string' }, minItems: 1 },
        resources: { type: 'object' },
        logLevel: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] },
        extraEnv: { type: 'array' },
      }),
      serviceAccount: object({
        create: { type: 'boolean' },
        name: { type: 'string' },
        annotations: { type: 'object' },
      }),
      metrics: object({
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        scrapeAnnotations: { type: 'boolean' },
      }),
      rayCluster: object({
        name: { type: 'string' },
        rayVersion: { type: 'string', minLength: 1 },
        head: { type: 'object' },
        workerMemoryOverheadMb: { type: 'integer', minimum: 0 },
        authTokenSecret: secretRef,
      }),
      networkPolicy: object({ enabled: { type: 'boolean' }, metricsFrom: { type: 'array' } }),
    },
  };
}
