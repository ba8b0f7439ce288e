/**
 * The autoscaler's Prometheus metrics, updated by its activities: what each
 * tick saw (backlog, nodes, node-seconds) and what it did (desired nodes,
 * scale events, refused drains). The worker serves the registry over HTTP
 * when PANTHEON_METRICS_PORT is set (workers/metrics-server.ts).
 */
import type { AppliedGroup } from '../../core/messages/autoscaler';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { GroupDecision } from '../../core/autoscaling/policy-types';
import type { ObservedGroup } from './observe';

export class AutoscalerMetrics {
  private readonly backlog: Gauge<'group'>;
  private readonly backlogAge: Gauge<'group'>;
  private readonly nodes: Gauge<'group' | 'kind'>;
  private readonly runningSteps: Gauge<'group'>;
  private readonly scaleEvents: Counter<'group' | 'direction'>;
  private readonly nodesChanged: Counter<'group' | 'direction'>;
  private readonly drainsRefused: Counter<'group'>;
  private readonly applyErrors: Counter<'group'>;
  private readonly nodeSeconds: Counter<'group'>;
  /** The last sample per group: node-seconds accrue from it to the next one. */
  private readonly lastSample = new Map<string, { atMs: number; nodes: number }>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.backlog = new Gauge({
      name: 'pantheon_autoscaler_backlog_steps',
      help: "Steps waiting for a node of the group: Temporal's approximate backlog plus steps Ray holds for want of a node",
      labelNames: ['group'],
      registers,
    });
    this.backlogAge = new Gauge({
      name: 'pantheon_autoscaler_backlog_age_seconds',
      help: "Age of the oldest task in the group's task queue backlog",
      labelNames: ['group'],
      registers,
    });
    this.nodes = new Gauge({
      name: 'pantheon_autoscaler_nodes',
      help: 'Nodes of the group: current (usable plus starting), desired (the last decision), billable (every node the provider has)',
      labelNames: ['group', 'kind'],
      registers,
    });
    this.runningSteps = new Gauge({
      name: 'pantheon_autoscaler_running_steps',
      help: "Running work on the group's nodes, in one-CPU steps",
      labelNames: ['group'],
      registers,
    });
    this.scaleEvents = new Counter({
      name: 'pantheon_autoscaler_scale_events_total',
      help: 'Ticks that added (up) or removed (down) nodes of the group',
      labelNames: ['group', 'direction'],
      registers,
    });
    this.nodesChanged = new Counter({
      name: 'pantheon_autoscaler_nodes_changed_total',
      help: 'Nodes added (up) or drained and removed (down)',
      labelNames: ['group', 'direction'],
      registers,
    });
    this.drainsRefused = new Counter({
      name: 'pantheon_autoscaler_drains_refused_total',
      help: 'Removals refused because Ray would not drain the node (it ran something) or the provider would not stop it',
      labelNames: ['group'],
      registers,
    });
    this.applyErrors = new Counter({
      name: 'pantheon_autoscaler_apply_errors_total',
      help: 'Ticks whose change to the group failed at the provider',
      labelNames: ['group'],
      registers,
    });
    this.nodeSeconds = new Counter({
      name: 'pantheon_autoscaler_node_seconds_total',
      help: 'Node-seconds used by the group (billable nodes, sampled at each tick)',
      labelNames: ['group'],
      registers,
    });
  }

  recordObservation(group: string, observed: ObservedGroup, atMs: number): void {
    const o = observed.observation;
    this.backlog.set({ group }, o.backlogCount);
    this.backlogAge.set({ group }, o.backlogAgeSeconds);
    this.runningSteps.set({ group }, o.runningSteps);
    const usable = o.nodes.filter((n) => n.alive && !n.draining).length;
    this.nodes.set({ group, kind: 'current' }, usable + o.startingNodes);
    this.nodes.set({ group, kind: 'billable' }, observed.billableNodes);
    const last = this.lastSample.get(group);
    if (last && atMs > last.atMs) this.nodeSeconds.inc({ group }, (last.nodes * (atMs - last.atMs)) / 1000);
    this.lastSample.set(group, { atMs, nodes: observed.billableNodes });
  }

  recordApplied(decision: GroupDecision, applied: AppliedGroup): void {
    const group = decision.group;
    this.nodes.set({ group, kind: 'desired' }, decision.desired);
    if (applied.added > 0) {
      this.scaleEvents.inc({ group, direction: 'up' });
      this.nodesChanged.inc({ group, direction: 'up' }, applied.added);
    }
    if (applied.removed.length > 0) {
      this.scaleEvents.inc({ group, direction: 'down' });
      this.nodesChanged.inc({ group, direction: 'down' }, applied.removed.length);
    }
    if (applied.refused.length > 0) this.drainsRefused.inc({ group }, applied.refused.length);
    if (applied.error !== null) this.applyErrors.inc({ group });
  }
}
