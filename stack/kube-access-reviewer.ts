/**
 * The test API server's authentication and authorization webhook.
 *
 * The CRD-only API server (k8s.io/apiextensions-apiserver) has no token
 * authenticator and no RBAC of its own: like every aggregated API server it
 * delegates both to "the" Kubernetes API server, through a TokenReview and a
 * SubjectAccessReview. Here nothing else runs, so this process answers them:
 *
 * - TokenReview: a bearer token is valid when it is listed in `tokens.json`
 *   (what the test server's `mintServiceAccountToken` wrote), and names the
 *   service account it was minted for, with the groups Kubernetes gives one.
 * - SubjectAccessReview: allowed when a Role/RoleBinding (or ClusterRole/
 *   ClusterRoleBinding) in `rbac.json` grants it, with the RBAC rule-matching
 *   semantics for resource requests (apiGroups, resources[/subresource], verbs,
 *   resourceNames; `*` matches all). Aggregated roles and non-resource URLs are
 *   not modelled: a request for them is denied.
 *
 * Both files are read on every request, so a test changes who may do what by
 * rewriting them. Clients in `system:masters` never reach this: the API server
 * allows them itself.
 *
 *   tsx stack/kube-access-reviewer.ts <dir> <port>
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { z } from 'zod';

const tokenUserSchema = z.object({
  username: z.string(),
  uid: z.string(),
  groups: z.array(z.string()),
});
export const tokensFileSchema = z.record(z.string(), tokenUserSchema);
export type TokensFile = z.infer<typeof tokensFileSchema>;

const policyRuleSchema = z.looseObject({
  apiGroups: z.array(z.string()).default([]),
  resources: z.array(z.string()).default([]),
  verbs: z.array(z.string()),
  resourceNames: z.array(z.string()).default([]),
});
const roleSchema = z.looseObject({
  kind: z.enum(['Role', 'ClusterRole']),
  metadata: z.looseObject({ name: z.string(), namespace: z.string().optional() }),
  rules: z.array(policyRuleSchema).default([]),
});
const bindingSchema = z.looseObject({
  kind: z.enum(['RoleBinding', 'ClusterRoleBinding']),
  metadata: z.looseObject({ name: z.string(), namespace: z.string().optional() }),
  subjects: z
    .array(z.object({ kind: z.string(), name: z.string(), namespace: z.string().optional() }).loose())
    .default([]),
  roleRef: z.object({ kind: z.enum(['Role', 'ClusterRole']), name: z.string() }).loose(),
});
/** The RBAC objects in force: Roles, ClusterRoles and their bindings, as they would be applied. */
export const rbacFileSchema = z.array(z.union([roleSchema, bindingSchema]));
/** An RBAC object as written (rendered by the chart, or by a test). */
export type RbacObject = z.input<typeof rbacFileSchema>[number];
type Role = z.infer<typeof roleSchema>;
type Binding = z.infer<typeof bindingSchema>;

const tokenReviewSchema = z.looseObject({ spec: z.looseObject({ token: z.string() }) });
const subjectAccessReviewSchema = z.looseObject({
  spec: z.looseObject({
    user: z.string().default(''),
    groups: z.array(z.string()).default([]),
    resourceAttributes: z
      .looseObject({
        namespace: z.string().default(''),
        verb: z.string().default(''),
        group: z.string().default(''),
        resource: z.string().default(''),
        subresource: z.string().default(''),
        name: z.string().default(''),
      })
      .optional(),
  }),
});

type Review = z.infer<typeof subjectAccessReviewSchema>['spec'];

function readJson<T>(file: string, schema: z.ZodType<T>, empty: T): T {
  if (!fs.existsSync(file)) return empty;
  return schema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
}

/** Whether the RBAC objects grant the reviewed request, and if not, why not. */
export function authorize(
  rbac: z.infer<typeof rbacFileSchema>,
  review: Review,
): { allowed: boolean; reason: string } {
  const attributes = review.resourceAttributes;
  if (!attributes) return { allowed: false, reason: 'only resource requests are authorized here' };
  const subjectMatches = (s: { kind: string; name: string; namespace?: string | undefined }) =>
    (s.kind === 'User' && s.name === review.user) ||
    (s.kind === 'Group' && review.groups.includes(s.name)) ||
    (s.kind === 'ServiceAccount' && review.user === `system:serviceaccount:${s.namespace}:${s.name}`);
  const resource = attributes.subresource
    ? `${attributes.resource}/${attributes.subresource}`
    : attributes.resource;
  const has = (list: readonly string[], value: string) => list.includes('*') || list.includes(value);
  const roles = rbac.filter((o): o is Role => o.kind === 'Role' || o.kind === 'ClusterRole');
  const bindings = rbac.filter(
    (o): o is Binding => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding',
  );
  for (const binding of bindings) {
    // A RoleBinding grants only in its own namespace; a ClusterRoleBinding everywhere.
    if (binding.kind === 'RoleBinding' && binding.metadata.namespace !== attributes.namespace) continue;
    if (!binding.subjects.some(subjectMatches)) continue;
    const role = roles.find(
      (o) =>
        o.kind === binding.roleRef.kind &&
        o.metadata.name === binding.roleRef.name &&
        (o.kind === 'ClusterRole' || o.metadata.namespace === binding.metadata.namespace),
    );
    if (!role) continue;
    const granted = role.rules.some(
      (rule) =>
        has(rule.apiGroups, attributes.group) &&
        has(rule.resources, resource) &&
        has(rule.verbs, attributes.verb) &&
        (rule.resourceNames.length === 0 || rule.resourceNames.includes(attributes.name)),
    );
    if (granted) {
      return {
        allowed: true,
        reason: `granted by ${binding.kind} ${binding.metadata.name} to ${role.kind} ${role.metadata.name}`,
      };
    }
  }
  return { allowed: false, reason: 'no RBAC rule grants it' };
}

export function startAccessReviewer(dir: string, port: number): http.Server {
  const answer = (url: string, body: unknown): unknown => {
    if (url === '/apis/authentication.k8s.io/v1/tokenreviews') {
      const review = tokenReviewSchema.parse(body);
      const user = readJson(path.join(dir, 'tokens.json'), tokensFileSchema, {})[review.spec.token];
      return {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        status: user
          ? { authenticated: true, user: { username: user.username, uid: user.uid, groups: user.groups } }
          : { authenticated: false, error: 'unknown token' },
      };
    }
    if (url === '/apis/authorization.k8s.io/v1/subjectaccessreviews') {
      const review = subjectAccessReviewSchema.parse(body);
      const rbac = readJson(path.join(dir, 'rbac.json'), rbacFileSchema, []);
      const { allowed, reason } = authorize(rbac, review.spec);
      return {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        status: { allowed, reason },
      };
    }
    return undefined;
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let status = 200;
      let payload: unknown;
      try {
        // The API server adds ?timeout=...; the path alone says which review it is.
        const { pathname } = new URL(req.url ?? '/', 'http://reviewer');
        payload =
          req.method === 'POST' ? answer(pathname, JSON.parse(Buffer.concat(chunks).toString())) : undefined;
        if (payload === undefined) {
          status = 404;
          payload = { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 };
        }
      } catch (error) {
        status = 400;
        payload = { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: String(error), code: 400 };
      }
      if (status !== 200) {
        process.stderr.write(
          `[kube-access-reviewer] ${req.method} ${req.url} (${req.headers['content-type']}): ${status} ${JSON.stringify(payload)}\n`,
        );
      }
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    });
  });
  server.listen(port, '127.0.0.1');
  return server;
}

if (require.main === module) {
  const [dir, port] = process.argv.slice(2);
  if (!dir || !port) {
    process.stderr.write('usage: tsx stack/kube-access-reviewer.ts <dir> <port>\n');
    process.exit(2);
  }
  const server = startAccessReviewer(dir, Number(port));
  server.on('listening', () =>
    process.stderr.write(`[kube-access-reviewer] listening on 127.0.0.1:${port}\n`),
  );
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
