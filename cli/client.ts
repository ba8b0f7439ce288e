/**
 * The CLI's Temporal client, configured from the same environment variables
 * as the worker (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
 * TEMPORAL_TLS_*), so one set of variables points everything at one server.
 */
import { Client, Connection } from '@temporalio/client';
import { loadWorkerConfig } from '../workers/config';

export async function connectClient(): Promise<{ client: Client; close: () => Promise<void> }> {
  const { temporal } = loadWorkerConfig();
  const connection = await Connection.connect({
    address: temporal.address,
    tls: temporal.tls,
    apiKey: temporal.apiKey,
  });
  return {
    client: new Client({ connection, namespace: temporal.namespace }),
    close: () => connection.close(),
  };
}
