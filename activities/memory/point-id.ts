import { createHash } from 'node:crypto';
import type { MemoryScope } from '../../core/schemas/memory';

/** Namespace of memory point ids (a fixed random UUID; changing it re-keys every memory). */
export const MEMORY_ID_NAMESPACE = '2f0b6c1e-8d4a-4c55-9a3e-6b7f1d2e9c40';

/** A name-based UUID, version 5 (RFC 9562): SHA-1 of namespace and name. */
export function uuidV5(name: string, namespace: string): string {
  const namespaceBytes = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  if (namespaceBytes.length !== 16) throw new RangeError(`namespace is not a UUID: ${namespace}`);
  const digest = createHash('sha1').update(namespaceBytes).update(name, 'utf8').digest();
  const bytes = digest.subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50; // version 5
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // RFC variant
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** What identifies one memory write. */
export interface MemoryIdentity {
  project: string;
  scope: MemoryScope;
  agent: string;
  pipeline: string;
  step: string;
  workflowId: string;
  stepId: string;
  text: string;
}

/**
 * The point id of a memory: derived from its content and from the step that
 * wrote it, `(workflowId, stepId)`, but not from the attempt number — so a
 * retried step writes the same ids and overwrites its earlier attempt instead
 * of adding a copy. The same text written by another step, agent, scope or
 * project is another memory with another id.
 */
export function memoryPointId(identity: MemoryIdentity): string {
  // A JSON array keeps fields apart: ("a b", "c") and ("a", "b c") differ.
  const name = JSON.stringify([
    identity.project,
    identity.scope,
    identity.agent,
    identity.pipeline,
    identity.step,
    identity.workflowId,
    identity.stepId,
    identity.text,
  ]);
  return uuidV5(name, MEMORY_ID_NAMESPACE);
}
