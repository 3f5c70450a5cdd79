import type { AppName } from "@cutroom/devstack";
import type { Stack } from "@cutroom/e2e/stack";

/** Restarts `app` with `env` added for the length of `fn`, then restarts it as the stack started it. */
export async function withRestarted<T>(stack: Stack, app: AppName, env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  await stack.services.stop(app);
  await stack.services.start(app, env);
  try {
    return await fn();
  } finally {
    await stack.services.stop(app);
    await stack.services.start(app);
  }
}

/** The stack's apps that are not running: exited or killed since they started. */
export const deadApps = (stack: Stack): string[] =>
  [...stack.services.children.entries()].filter(([, child]) => child.exitCode !== null || child.signalCode !== null).map(([app]) => app);
