/**
 * MinIO, a real S3-compatible server, started by the project on loopback for
 * the tests of the S3 blob store (stack/s3-blob-store.ts and the Ray side's
 * S3BlobStore): built once with `go install` (stack/go-tools.ts), run with a
 * data directory of its own and credentials made at start, with one bucket.
 * `stop` removes the process and its data; nothing outlives the test that
 * started it.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { explicitEnv, freePort, spawnDetached, stopGroup, tailFile, waitFor } from './processes';
import { ensureGoTool, MINIO } from './go-tools';
import { s3ClientFromEnv } from './s3-blob-store';

export interface MinioServer {
  /** The S3 endpoint, http://127.0.0.1:<port>. */
  endpoint: string;
  bucket: string;
  /** What a client of it needs, in the AWS SDKs' own variable names. */
  clientEnv: {
    AWS_ENDPOINT_URL_S3: string;
    AWS_ACCESS_KEY_ID: string;
    AWS_SECRET_ACCESS_KEY: string;
    AWS_REGION: string;
  };
  stop(): Promise<void>;
}

/** Where a MinIO is to listen and the credentials it takes: made up when not given. */
export interface MinioSettings {
  port: number;
  accessKey: string;
  secretKey: string;
}

export async function newMinioSettings(): Promise<MinioSettings> {
  return {
    port: await freePort(),
    accessKey: `pantheon-${randomBytes(4).toString('hex')}`,
    secretKey: randomBytes(18).toString('hex'),
  };
}

/** The AWS SDKs' variables for a client of a MinIO with these settings. */
export function minioClientEnv(settings: MinioSettings): MinioServer['clientEnv'] {
  return {
    AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${settings.port}`,
    AWS_ACCESS_KEY_ID: settings.accessKey,
    AWS_SECRET_ACCESS_KEY: settings.secretKey,
    AWS_REGION: 'us-east-1',
  };
}

/** Starts MinIO under `workDir` with `bucket` created; builds it first if this machine never has. */
export async function startMinio(
  workDir: string,
  bucket: string,
  options: { log?: (message: string) => void; settings?: MinioSettings } = {},
): Promise<MinioServer> {
  const binary = await ensureGoTool(MINIO, options.log ?? (() => undefined));
  const dataDir = path.join(workDir, 'minio-data');
  fs.mkdirSync(dataDir, { recursive: true });
  const settings = options.settings ?? (await newMinioSettings());
  const { port } = settings;
  const consolePort = await freePort();
  const clientEnv = minioClientEnv(settings);
  const child = spawnDetached(
    binary,
    [
      'server',
      dataDir,
      '--address',
      `127.0.0.1:${port}`,
      '--console-address',
      `127.0.0.1:${consolePort}`,
      '--quiet',
    ],
    {
      logFile: path.join(workDir, 'minio.log'),
      env: explicitEnv({
        MINIO_ROOT_USER: clientEnv.AWS_ACCESS_KEY_ID,
        MINIO_ROOT_PASSWORD: clientEnv.AWS_SECRET_ACCESS_KEY,
        MINIO_BROWSER: 'off',
        MINIO_UPDATE: 'off',
      }),
    },
  );
  const stop = async () => {
    await stopGroup(child.pid, 5_000);
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  const client = s3ClientFromEnv(clientEnv);
  try {
    await waitFor(
      `MinIO on port ${port}`,
      async () => {
        const res = await fetch(`${clientEnv.AWS_ENDPOINT_URL_S3}/minio/health/ready`);
        return res.ok ? true : undefined;
      },
      60_000,
      200,
    );
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    await stop();
    throw new Error(
      `MinIO did not start: ${err instanceof Error ? err.message : String(err)}\n${tailFile(child.logFile)}`,
    );
  } finally {
    client.destroy();
  }
  return { endpoint: clientEnv.AWS_ENDPOINT_URL_S3, bucket, clientEnv, stop };
}
