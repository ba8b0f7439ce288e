import { AgentCatalog, AgentDefinitionError, defineAgent } from '../../core/agents';
import { z } from 'zod';
import { agentCatalog, codePipelines } from '../../agents';
import { definePipeline, pantheonWorkflows, workflowTypeOf } from '../../workflows';
import { planSteps } from '../../core/step-plan';
import { nodeGroupSchema } from '../../core/schemas/node-groups';
import { stepSpecSchema } from '../../core/schemas/pipeline-spec';

const base = { description: 'does a thing', task: 'pantheon_tasks.examples:analyze' };

describe('defineAgent', () => {
  it('applies defaults and freezes the definition', () => {
    const agent = defineAgent({ name: 'summarizer', ...base });
    expect(agent).toMatchObject({ name: 'summarizer', resources: {}, memory: [] });
    expect(Object.isFrozen(agent)).toBe(true);
    expect(Object.isFrozen(agent.resources)).toBe(true);
  });

  it('names the offending field', () => {
    expect(() => defineAgent({ name: 'Bad Name', ...base })).toThrow(
      /agent "Bad Name": name: lowercase letters/,
    );
    expect(() => defineAgent({ name: 'a', ...base, task: 'not a ref' })).toThrow(
      /agent "a": task: a task reference/,
    );
    expect(() => defineAgent({ name: 'a', ...base, resources: { cpus: -1 } })).toThrow(/resources\.cpus/);
    expect(() => defineAgent({ name: 'a', ...base, memory: ['shared', 'shared'] })).toThrow(
      /memory: must not repeat/,
    );
    expect(() => defineAgent({ name: 'a', ...base, memory: ['public' as 'shared'] })).toThrow(/memory\[0\]/);
    expect(() => defineAgent({ name: 'a', ...base, fallback: 'a' })).toThrow(
      /fallback: an agent cannot be its own fallback/,
    );
  });
});

describe('AgentCatalog', () => {
  const a = defineAgent({ name: 'a', ...base, fallback: 'b' });
  const b = defineAgent({ name: 'b', ...base, fallback: 'c' });
  const c = defineAgent({ name: 'c', ...base });

  it('follows fallbacks in order', () => {
    expect(new AgentCatalog([a, b, c]).fallbackChain('a').map((x) => x.name)).toEqual(['a', 'b', 'c']);
  });

  it('refuses duplicate names, unknown fallbacks and fallback cycles', () => {
    expect(() => new AgentCatalog([c, c])).toThrow(AgentDefinitionError);
    expect(() => new AgentCatalog([a, c])).toThrow(/fallback "b" is not a known agent/);
    const loop = defineAgent({ name: 'c', ...base, fallback: 'a' });
    expect(() => new AgentCatalog([a, b, loop])).toThrow(/fallbacks form a cycle: a -> b -> c -> a/);
  });

  it('the shipped catalog is valid and its tasks are in the default allowed package', () => {
    expect(agentCatalog.names.length).toBeGreaterThan(5);
    for (const name of agentCatalog.names) expect(agentCatalog.get(name)!.task).toMatch(/^pantheon_tasks\./);
  });
});

describe('code-defined pipelines', () => {
  it('are registered under their workflow type, from the one list in agents/index.ts', () => {
    const registered = pantheonWorkflows({ agents: agentCatalog, pipelines: codePipelines });
    for (const p of codePipelines) {
      expect(p.workflowType).toBe(workflowTypeOf(p.name));
      expect(registered.workflowTypes).toContain(p.workflowType);
    }
    expect(registered.workflowTypes).toEqual(
      expect.arrayContaining(['pipeline', 'agentPerformance', 'autoscaler']),
    );
  });

  it('refuses two pipelines of one workflow type, and one named like an engine workflow', () => {
    const body = async () => null;
    const a = definePipeline({ name: 'same-name', description: 'a', input: z.object({}) }, body);
    const b = definePipeline({ name: 'same-name', description: 'b', input: z.object({}) }, body);
    expect(() => pantheonWorkflows({ agents: agentCatalog, pipelines: [a, b] })).toThrow(/sameName is taken/);
    const engine = definePipeline({ name: 'autoscaler', description: 'c', input: z.object({}) }, body);
    expect(() => pantheonWorkflows({ agents: agentCatalog, pipelines: [engine] })).toThrow(
      /autoscaler is taken/,
    );
  });
});

describe('planSteps with agents', () => {
  const context = {
    nodeGroups: [
      nodeGroupSchema.parse({
        name: 'cpu',
        node: { cpus: 2, memoryMb: 2048 },
        minNodes: 1,
        maxNodes: 2,
        costPerNodeHour: 1,
      }),
    ],
    allowedTaskPackages: ['pantheon_tasks'],
  };
  const step = (raw: unknown) => stepSpecSchema.parse(raw);

  it('accepts a known agent and places it by its default resources', () => {
    expect(planSteps({ steps: [step({ id: 's', agent: 'gatherer' })] }, context, agentCatalog)).toEqual({
      ok: true,
      groups: { s: 'cpu' },
    });
  });

  it('names an unknown agent and lists the known ones', () => {
    const plan = planSteps({ steps: [step({ id: 's', agent: 'nobody' })] }, context, agentCatalog);
    expect(plan).toMatchObject({
      ok: false,
      issues: [
        {
          path: 'steps[0].agent',
          message: expect.stringMatching(/unknown agent "nobody" \(known: .*gatherer/),
        },
      ],
    });
  });

  it('checks a step override against the node groups', () => {
    const plan = planSteps(
      { steps: [step({ id: 's', agent: 'gatherer', resources: { memoryMb: 9000 } })] },
      context,
      agentCatalog,
    );
    expect(plan).toMatchObject({
      ok: false,
      issues: [{ path: 'steps[0].resources', message: expect.stringMatching(/memoryMb=9000/) }],
    });
  });

  it('refuses the agent host as a plain task', () => {
    const plan = planSteps(
      { steps: [step({ id: 's', task: 'pantheon_tasks.agent_host:run_agent' })] },
      context,
      agentCatalog,
    );
    expect(plan).toMatchObject({
      ok: false,
      issues: [{ path: 'steps[0].task', message: expect.stringMatching(/internal: name an agent/) }],
    });
  });
});
