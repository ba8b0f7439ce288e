import { AgentCatalog, AgentDefinitionError, defineAgent } from '../../agents/define';
import { agentCatalog } from '../../agents/catalog';
import { codePipelines } from '../../agents';
import * as workflows from '../../workflows';
import { workflowTypeOf } from '../../workflows/code-pipeline';
import { planSteps } from '../../workflows/step-plan';
import { nodeGroupSchema } from '../../workflows/schemas/node-groups';
import { stepSpecSchema } from '../../workflows/schemas/pipeline-spec';

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
  it('are exported from workflows/index.ts under their workflow type, so the worker registers them', () => {
    for (const p of codePipelines) {
      expect(p.pipeline.workflowType).toBe(workflowTypeOf(p.pipeline.name));
      expect((workflows as Record<string, unknown>)[p.pipeline.workflowType]).toBe(p);
    }
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
