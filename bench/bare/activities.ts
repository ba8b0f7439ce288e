/** The bare baseline's activities: a no-op, and a sleep. */
export const bareActivities = {
  async noop(value: unknown): Promise<unknown> {
    return value;
  },
  async nap(ms: number, value: unknown): Promise<unknown> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return value;
  },
};

export type BareActivities = typeof bareActivities;
