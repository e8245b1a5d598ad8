// Workflow histories as JSON files, in the format of `temporal workflow show --output json` and the Web UI's
// export (proto3 JSON of temporal.api.history.v1.History).
//
// Why not `historyToJSON`/`historyFromJSON` from @temporalio/common: with this dependency tree npm hoists
// protobufjs 7 (for @grpc/proto-loader) and gives @temporalio/common and @temporalio/proto a copy of
// protobufjs 8 each; the SDK helpers then pair a Type from one copy with protojson from the other and throw
// "type must be a Type". Loading protojson from the copy @temporalio/proto resolves keeps the pair consistent,
// and still works once the tree is deduplicated.
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import { createRequire } from 'node:module';

type History = proto.temporal.api.history.v1.IHistory;

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}

const protojson = createRequire(require.resolve('@temporalio/proto'))('protobufjs/ext/protojson') as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType(
  'temporal.api.history.v1.History',
);

export function historyToJsonText(history: History): string {
  const message = proto.temporal.api.history.v1.History.fromObject(history);
  return `${JSON.stringify(protojson.toJson(historyType, message), null, 2)}\n`;
}

export function historyFromJsonText(text: string): History {
  // Unknown fields are tolerated: a history recorded by a newer server must still replay.
  return protojson.fromJson(historyType, JSON.parse(text), { ignoreUnknownFields: true }) as History;
}
