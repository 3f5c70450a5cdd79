import { AppError } from "@cutroom/contracts";
import { realtimeConnections } from "@cutroom/runtime";

/**
 * Open WebSockets and SSE streams per user in this gateway process, at most `max` each: every one
 * holds a socket, timers and event listeners, so one account must not open thousands.
 */
export function createConnectionLimit(max: number) {
  const open = new Map<string, number>();
  return {
    /** Takes a slot for the user, or throws RATE_LIMITED (429; close code 1008 on a WebSocket); call the release once the connection ends. The protocol labels the connections gauge. */
    acquire(userId: string, protocol: "websocket" | "sse"): () => void {
      const n = open.get(userId) ?? 0;
      if (n >= max) throw new AppError("RATE_LIMITED", `at most ${max} open WebSocket and event-stream connections per user`, { limit: max });
      open.set(userId, n + 1);
      realtimeConnections.inc({ protocol });
      let released = false;
      return () => {
        if (released) return;
        released = true;
        realtimeConnections.dec({ protocol });
        const left = (open.get(userId) ?? 1) - 1;
        if (left > 0) open.set(userId, left);
        else open.delete(userId);
      };
    },
  };
}
export type ConnectionLimit = ReturnType<typeof createConnectionLimit>;
