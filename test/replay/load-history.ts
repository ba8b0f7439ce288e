/**
 * Loads a history in the Temporal CLI's JSON form (`temporal workflow show
 * --output json`) as a History message for the replayer.
 *
 * Why not `historyFromJSON` from @temporalio/common: in this install npm keeps
 * two copies of protobufjs 8 (one under @temporalio/common, one under
 * @temporalio/proto), and protojson's `instanceof Type` check fails across
 * copies ("type must be a Type"). Using protojson from the very copy that
 * built the proto types sidesteps it, wherever npm puts that copy.
 */
import * as path from 'node:path';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

type History = proto.temporal.api.history.v1.IHistory;

interface ProtoJson {
  fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): History | null;
}

const protoPackageDir = path.dirname(require.resolve('@temporalio/proto/package.json'));
// eslint-disable-next-line @typescript-eslint/no-require-imports -- resolved at run time, next to @temporalio/proto
const protojson = require(
  require.resolve('protobufjs/ext/protojson', { paths: [protoPackageDir] }),
) as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType(
  'temporal.api.history.v1.History',
);

export function historyFromCliJson(json: unknown): History {
  const loaded = protojson.fromJson(historyType, json, { ignoreUnknownFields: true });
  if (!loaded?.events?.length) throw new TypeError('not a Temporal history: no events');
  return loaded;
}
