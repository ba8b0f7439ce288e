import { toRayOptions } from '../../activities/ray/ray-options';

describe('step resources map one to one onto Ray task options', () => {
  test('defaults to one CPU, like Ray', () => {
    expect(toRayOptions()).toEqual({ num_cpus: 1 });
  });

  test('every resource kind', () => {
    expect(
      toRayOptions({
        cpus: 2,
        gpus: 1,
        memoryMb: 512,
        diskGb: 20,
        custom: { tpu: 4 },
        labels: { zone: 'a' },
      }),
    ).toEqual({
      num_cpus: 2,
      num_gpus: 1,
      memory: 512 * 1024 * 1024,
      resources: { tpu: 4, disk_gb: 20 },
      label_selector: { zone: 'a' },
    });
  });

  test('failed nodes are excluded through the node-id label', () => {
    expect(toRayOptions({ cpus: 0 }, ['n1', 'n2'])).toEqual({
      num_cpus: 0,
      label_selector: { 'ray.io/node-id': '!in(n1,n2)' },
    });
  });
});
