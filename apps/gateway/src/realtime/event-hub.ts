import { JobEvent, subjects } from "@cutroom/contracts";
import type { Logger, NatsConnection } from "@cutroom/runtime";

export type Listener = (event: JobEvent) => void;

/**
 * One NATS subscription per gateway process for every job's events, fanned out in memory
 * to the WebSocket and SSE clients watching each job. Clients never cost a subscription.
 */
export function createEventHub(nc: NatsConnection, log: Logger) {
  const listeners = new Map<string, Set<Listener>>();
  const sub = nc.subscribe(subjects.jobEventsAll, {
    callback: (err, msg) => {
      if (err) return log.warn({ err }, "job event subscription error");
      const watchers = listeners.get(msg.subject.slice("jobs.events.".length));
      if (!watchers) return;
      const parsed = JobEvent.safeParse(msg.json());
      if (!parsed.success) return log.warn({ subject: msg.subject }, "dropping a malformed job event");
      for (const l of watchers) l(parsed.data);
    },
  });
  return {
    listen(jobId: string, listener: Listener): () => void {
      let set = listeners.get(jobId);
      if (!set) listeners.set(jobId, (set = new Set()));
      set.add(listener);
      return () => {
        set!.delete(listener);
        if (set!.size === 0) listeners.delete(jobId);
      };
    },
    watchers: () => [...listeners.values()].reduce((n, s) => n + s.size, 0),
    close: () => sub.unsubscribe(),
  };
}
export type EventHub = ReturnType<typeof createEventHub>;
