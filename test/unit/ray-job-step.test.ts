import fc from 'fast-check';
import {
  attachesToJob,
  entrypointResources,
  jobSubmissionId,
  tailOf,
  type RayJobInfo,
} from '../../activities/ray/job-step';

describe('job submission ids', () => {
  test('are stable per step key and differ per generation', () => {
    const first = jobSubmissionId('pipeline-1', 'train');
    expect(first).toBe(jobSubmissionId('pipeline-1', 'train', 1));
    expect(first).toMatch(/^pantheon-pipeline-1\.train-[0-9a-f]{10}$/);
    expect(jobSubmissionId('pipeline-1', 'train', 2)).toBe(`${first}-r2`);
  });

  test('are safe in URLs and file names, and never shared by two keys', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), (w1, s1, w2, s2) => {
        const a = jobSubmissionId(w1, s1);
        expect(a).toMatch(/^[A-Za-z0-9_.-]+$/);
        if (`${w1}/${s1}` !== `${w2}/${s2}`) expect(a).not.toBe(jobSubmissionId(w2, s2));
      }),
    );
    expect(jobSubmissionId('a/b', 'c')).not.toBe(jobSubmissionId('a', 'b/c'));
  });
});

describe('attaching to an existing job', () => {
  const job = (status: RayJobInfo['status'], run: string, attempt: number): RayJobInfo => ({
    status,
    metadata: { pantheon_run: run, pantheon_attempt: String(attempt) },
  });

  test('a pending or running job is always attached to', () => {
    expect(attachesToJob(job('RUNNING', 'r1', 1), 'r2', 7)).toBe(true);
    expect(attachesToJob(job('PENDING', 'r1', 1), 'r1', 2)).toBe(true);
  });

  test('a success answers its own run only', () => {
    expect(attachesToJob(job('SUCCEEDED', 'r1', 1), 'r1', 3)).toBe(true);
    expect(attachesToJob(job('SUCCEEDED', 'r1', 1), 'r2', 1)).toBe(false);
  });

  test('a failure answers the attempt that saw it; a later attempt starts the next generation', () => {
    expect(attachesToJob(job('FAILED', 'r1', 2), 'r1', 2)).toBe(true);
    expect(attachesToJob(job('FAILED', 'r1', 2), 'r1', 3)).toBe(false);
    expect(attachesToJob(job('STOPPED', 'r1', 2), 'r1', 3)).toBe(false);
  });
});

describe('job request fields', () => {
  test('resources map as in task mode, under the entrypoint_ names', () => {
    expect(
      entrypointResources({ cpus: 2, gpus: 1, memoryMb: 512, diskGb: 5, labels: { zone: 'a' } }),
    ).toEqual({
      entrypoint_num_cpus: 2,
      entrypoint_num_gpus: 1,
      entrypoint_memory: 512 * 1024 * 1024,
      entrypoint_resources: { disk_gb: 5 },
      entrypoint_label_selector: { zone: 'a' },
    });
    expect(entrypointResources()).toEqual({ entrypoint_num_cpus: 1 });
  });
});

describe('log tail', () => {
  test('keeps the end, from a line start when it can', () => {
    expect(tailOf('short', 100)).toBe('short');
    expect(tailOf('line one\nline two\nline three\n', 15)).toBe('line three\n');
    fc.assert(
      fc.property(fc.string({ maxLength: 500 }), fc.integer({ min: 1, max: 200 }), (log, max) => {
        const tail = tailOf(log, max);
        expect(tail.length).toBeLessThanOrEqual(Math.max(max, 0));
        expect(log.endsWith(tail)).toBe(true);
      }),
    );
  });
});
