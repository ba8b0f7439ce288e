/** The Markdown table of a benchmark run (bench/run.ts). Pure. */
import type { BenchResult, FanoutFigures } from './result';
import type { LatencySummary } from './stats';

const fmt = (x: number | null | undefined, digits = 1) =>
  x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);

const ratio = (a: number | null | undefined, b: number | null | undefined) =>
  a === null || a === undefined || b === null || b === undefined || b === 0 ? '—' : `${(a / b).toFixed(2)}×`;

function latencyRow(
  label: string,
  s: LatencySummary | undefined,
  reference: number | undefined,
  digits = 1,
): string {
  if (!s) return `| ${label} | — | — | — | — | — |`;
  return `| ${label} | ${fmt(s.p50, digits)} | ${fmt(s.p95, digits)} | ${fmt(s.p99, digits)} | ${s.n} | ${ratio(s.p50, reference)} |`;
}

function fanoutRow(
  label: string,
  f: FanoutFigures | undefined,
  reference: FanoutFigures | undefined,
): string {
  if (!f) return `| ${label} | — | — | — | — |`;
  return `| ${label} | ${f.steps} | ${fmt(f.makespanS, 2)} | ${fmt(f.stepsPerS)} | ${ratio(f.stepsPerS, reference?.stepsPerS)} |`;
}

function met(value: unknown): string {
  return value === true ? 'met' : value === false ? '**not met**' : 'n/a';
}

export function renderMarkdown(r: BenchResult): string {
  const m = r.machine;
  const s = r.summary;
  const lines: string[] = [
    `# Pantheon benchmark, ${r.startedAt.slice(0, 19).replace('T', ' ')} UTC (${r.profile.name})`,
    '',
    `- Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGb} GB RAM, ${m.os}`,
    `- Versions: Node ${m.node}, Python ${m.python}, Ray ${m.ray}, Temporal CLI ${m.temporal}`,
    `- Load: 1-min load average ${r.load.loadAvg1Start} at start, ${r.load.loadAvg1End} at end; CPUs ${Math.round(r.load.cpuBusyShare * 100)} % busy over the run`,
    `- Stack: ${r.stack.startedByBench ? 'started (and stopped) by the benchmark' : 'already running, reused'}; Temporal ${r.stack.temporal}, Ray ${r.stack.ray} with ${r.stack.rayNodes} local worker node(s)`,
    `- Pantheon worker: \`${r.worker.launch}\`, prebuilt workflow bundle, default settings`,
    `- Duration: ${r.durationS} s`,
    '',
  ];

  const o = r.stepOverhead;
  lines.push(
    '## Step overhead: one no-op step, end to end (ms)',
    '',
    '| case | p50 | p95 | p99 | runs | p50 vs Pantheon |',
    '|---|---:|---:|---:|---:|---:|',
    latencyRow('Pantheon: one-step pipeline (`echo` on Ray)', o?.pipeline, o?.pipeline.p50),
    latencyRow('bare Temporal workflow + no-op activity', o?.bareActivity, o?.pipeline.p50),
    latencyRow('raw Ray task, `ray.get(f.remote())` (Python)', o?.rawRay, o?.pipeline.p50, 2),
    latencyRow('Ray job per step (Jobs REST API)', o?.jobPerStep, o?.pipeline.p50, 0),
    '',
  );

  const f = r.fanout;
  lines.push(
    '## Fan-out: one workflow (or one `ray.get`) of many independent steps',
    '',
    '| case | steps | makespan (s) | steps/s | vs Pantheon |',
    '|---|---:|---:|---:|---:|',
    fanoutRow('Pantheon pipeline, no-op steps', f?.noop.pipeline, f?.noop.pipeline),
    fanoutRow('bare workflow, no-op activities', f?.noop.bareActivity, f?.noop.pipeline),
    fanoutRow('raw Ray, no-op tasks', f?.noop.rawRay, f?.noop.pipeline),
    fanoutRow(
      `Pantheon pipeline, sleep(${f?.sleep.sleepS ?? r.profile.sleepSeconds}) steps`,
      f?.sleep.pipeline,
      f?.sleep.pipeline,
    ),
    fanoutRow(
      `bare workflow, sleep(${f?.sleep.sleepS ?? r.profile.sleepSeconds}) activities`,
      f?.sleep.bareActivity,
      f?.sleep.pipeline,
    ),
    fanoutRow(
      `raw Ray, sleep(${f?.sleep.sleepS ?? r.profile.sleepSeconds}) tasks`,
      f?.sleep.rawRay,
      f?.sleep.pipeline,
    ),
    '',
  );

  const mem = r.memory;
  if (mem) {
    const names = [...new Set([...Object.keys(mem.idle), ...Object.keys(mem.underFanout)])];
    const label = (name: string) =>
      ({
        worker: 'Pantheon worker (Node process)',
        bridge: 'Ray bridge (Python, child of the worker)',
        bareWorker: 'bare Temporal worker (reference)',
        temporal: 'Temporal dev server',
        'ray-head': 'Ray head (process group)',
        qdrant: 'Qdrant (local mode)',
      })[name] ?? (name.startsWith('ray-node:') ? `Ray worker node ${name.slice(9)} (process group)` : name);
    lines.push(
      '## Resident memory (MB)',
      '',
      '| process | idle | peak under the no-op fan-out | processes |',
      '|---|---:|---:|---:|',
      ...names.map((n) => {
        const idle = mem.idle[n];
        const busy =
          n === 'bareWorker' ? { rssMb: mem.bareWorker.underFanout, processes: 1 } : mem.underFanout[n];
        return `| ${label(n)} | ${fmt(idle?.rssMb, 0)} | ${fmt(busy?.rssMb, 0)} | ${idle?.processes ?? busy?.processes ?? '—'} |`;
      }),
      '',
    );
  }

  const extras: string[] = [];
  const am = r.agentMemory;
  if (am)
    extras.push(
      `| agent memory recall p50 / p99 (ms), ${String(am.points)} points | ${fmt(s.recallP50Ms as number, 2)} / ${fmt(s.recallP99Ms as number, 2)} |`,
      `| raw Qdrant recall p50 / p99 (ms) | ${fmt(am.rawRecallP50Ms as number, 2)} / ${fmt(am.rawRecallP99Ms as number, 2)} |`,
      `| retain / raw upsert (points/s) | ${fmt((am.retainPointsPerS ?? am.retainPerS) as number, 0)} / ${fmt(am.rawUpsertPerS as number, 0)} |`,
      `| e5 query embedding p50 (ms) | ${fmt(s.embedP50Ms as number, 2)} |`,
      `| recall@5 on the labelled set: e5 / hashing | ${fmt(s.recallAt5Semantic as number, 3)} / ${fmt(s.recallAt5Hashing as number, 3)} |`,
      `| LightRAG graph context p50 (ms) | ${fmt(s.graphRecallP50Ms as number, 2)} |`,
      `| memory server RSS (MB) | ${fmt(s.memoryServerRssMb as number, 0)} |`,
    );
  // Each ratio under the name of where it came from: the simulation always runs, the live case in a full run.
  const sim = r.autoscalerSim;
  if (sim)
    extras.push(
      `| autoscaler, simulated: node-seconds vs static max cluster | ${fmt(sim.nodeSecondsRatio as number, 3)}× |`,
      `| autoscaler, simulated: makespan vs static max cluster | ${fmt(sim.makespanRatio as number, 3)}× |`,
    );
  const live = r.autoscaler;
  if (live && typeof live.nodeSecondsRatio === 'number')
    extras.push(
      `| autoscaler, live: reaction to a backlog (s) | ${fmt(s.autoscaleReactionS as number)} |`,
      `| autoscaler, live: idle node reclaimed after (s) | ${fmt(s.idleReclaimS as number)} |`,
      `| autoscaler, live: node-seconds vs static max cluster | ${fmt(live.nodeSecondsRatio as number, 3)}× |`,
      `| autoscaler, live: makespan vs static max cluster | ${fmt(live.makespanRatio as number, 3)}× |`,
    );
  if (extras.length > 0)
    lines.push('## Memory and autoscaling', '', '| figure | value |', '|---|---:|', ...extras, '');

  if (r.roundTrip)
    lines.push(
      '## Round trip of a one-step pipeline (issue 14)',
      '',
      '| segment | p50 ms | p95 ms |',
      '|---|---:|---:|',
      ...Object.entries(r.roundTrip).map(([name, v]) => `| ${name} | ${fmt(v.p50)} | ${fmt(v.p95)} |`),
      '',
    );
  lines.push(
    '## Goals (issue 7)',
    '',
    '| goal | measured | |',
    '|---|---|---|',
    `| step overhead p50 ≤ bare activity p50 + 5 ms | ${fmt(s.stepOverheadP50Ms as number)} vs ${fmt(s.bareActivityP50Ms as number)} + 5 ms | ${met(s.goalStepOverheadMet)} |`,
    `| fan-out ≥ 0.8× bare-activity fan-out | ${fmt(s.fanoutStepsPerS as number)} vs ${fmt(s.bareFanoutStepsPerS as number)} steps/s (${ratio(s.fanoutStepsPerS as number, s.bareFanoutStepsPerS as number)}) | ${met(s.goalFanoutMet)} |`,
    `| ≥ 50× less overhead than a Ray job per step | ${fmt(s.jobOverheadRatio as number)}× | ${met(s.goalJobRatioMet)} |`,
    `| worker RSS ≤ 200 MB (peak under the fan-out) | ${fmt(s.workerRssMb as number, 0)} MB (idle ${fmt(s.workerIdleRssMb as number, 0)} MB) | ${met(s.goalWorkerRssMet)} |`,
    `| map items ≥ 0.8× raw Ray tasks (issue 13), ${String(r.mapItems?.items ?? '—')} items | ${fmt(s.mapItemsPerS as number)} vs ${fmt(s.rawRayItemsPerS as number)} items/s (${ratio(s.mapItemsPerS as number, s.rawRayItemsPerS as number)}) | ${met(s.goalMapItemsMet)} |`,
    `| a pipeline of ${String(r.bigPipeline?.steps ?? '—')} steps completes (issue 13; 20,000 in a full run) | ${r.bigPipeline ? `${fmt(r.bigPipeline.stepsPerS)} steps/s over ${r.bigPipeline.runs} runs` : '—'} | ${met(r.bigPipeline ? true : null)} |`,
    `| with 3 workers: no step waits in Ray > 100 ms, fan-out ≥ one worker's (issue 14) | ${r.multiWorker ? `${fmt(r.multiWorker.rayQueueMaxMs, 0)} ms longest wait in Ray; ${fmt(r.multiWorker.stepsPerS)} vs ${fmt(r.multiWorker.oneWorkerStepsPerS)} steps/s` : '—'} | ${met(s.goalMultiWorkerMet)} |`,
    `| ${String(r.largeOutput?.mb ?? '—')} MB output handed to the next step in < 5 s (issue 13) | ${fmt(s.largeOutputHandOffS as number)} s (${fmt(s.largeOutputMbPerS as number)} MB/s) | ${met(s.goalLargeOutputMet)} |`,
    `| recall p50 ≤ 10 ms and p99 ≤ 30 ms at 100,000 points (issue 15) | ${fmt(s.recallP50Ms as number, 2)} / ${fmt(s.recallP99Ms as number, 2)} ms at ${String(s.memoryPoints ?? '—')} points | ${met(s.goalRecallMet)} |`,
    `| memory server under 500 MB RSS at 100,000 points (issue 15) | ${fmt(s.memoryServerRssMb as number, 0)} MB | ${met(s.goalMemoryRssMet)} |`,
    '',
    '## Notes',
    '',
    ...r.notes.map((n) => `- ${n}`),
  );
  const errors = Object.entries(r.errors);
  if (errors.length > 0)
    lines.push('', '## Errors', '', ...errors.map(([k, v]) => `- ${k}: ${v.split('\n')[0]}`));
  return `${lines.join('\n')}\n`;
}
