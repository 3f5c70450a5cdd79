import { describe, expect, it } from "vitest";
import { natsPermissions, natsUserNames, workerServices, type NatsUserName } from "./nats-permissions.ts";
import { rpc } from "./rpc.ts";
import { subjects } from "./subjects.ts";

/** NATS subject matching: `*` is one token, a trailing `>` one or more. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
const mayPublish = (app: NatsUserName, subject: string) => natsPermissions[app].publish.some((p) => matches(p, subject));
const maySubscribe = (app: NatsUserName, subject: string) => natsPermissions[app].subscribe.some((p) => matches(p, subject));
const whoPublishes = (subject: string) => natsUserNames.filter((a) => mayPublish(a, subject));
const jobId = "0b6f3e0c-5d1e-4a8e-9b3e-2f7d2c1a9e10";

describe("NATS permissions", () => {
  it("lets only the gateway buy credits, and only auth-service grant them (after checking the admin in its database)", () => {
    expect(whoPublishes("svc.billing.grant")).toEqual(["auth-service"]);
    expect(whoPublishes("svc.auth.grantCredits")).toEqual(["gateway"]);
    expect(whoPublishes("svc.billing.purchase")).toEqual(["gateway"]);
  });

  it("lets only auth-service write the token cutoffs, and the gateway watch them", () => {
    expect(whoPublishes("$KV.token-cutoffs.0b6f3e0c-5d1e-4a8e-9b3e-2f7d2c1a9e10")).toEqual(["auth-service"]);
    expect(whoPublishes("$JS.API.STREAM.CREATE.KV_token-cutoffs")).toEqual(["auth-service", "job-service"]);
    expect(mayPublish("gateway", "$JS.API.CONSUMER.CREATE.KV_token-cutoffs.KV_WATCHER_1")).toBe(true);
    expect(mayPublish("gateway", "$JS.API.STREAM.PURGE.KV_token-cutoffs")).toBe(false);
    expect(mayPublish("auth-service", "$JS.API.STREAM.DELETE.JOBS")).toBe(false);
  });

  it("lets workers claim and finish jobs and reach storage through signed URLs, nothing of billing or auth", () => {
    for (const w of ["worker-image", "worker-video", "worker-audio"] as const) {
      expect(mayPublish(w, "svc.job.claim")).toBe(true);
      expect(mayPublish(w, "svc.job.finish")).toBe(true);
      expect(mayPublish(w, "svc.storage.createOutput")).toBe(true);
      for (const denied of ["svc.billing.grant", "svc.billing.release", "svc.auth.updateUser", "svc.job.create", "svc.job.cancel", "svc.storage.deleteFile"]) {
        expect(mayPublish(w, denied), `${w} → ${denied}`).toBe(false);
      }
    }
  });

  it("lets only job-service dispatch jobs, cancel them or change the streams", () => {
    expect(whoPublishes(subjects.jobRun("image", "image.resize"))).toEqual(["job-service"]);
    expect(whoPublishes(subjects.jobCancel(jobId))).toEqual(["job-service"]);
    for (const api of ["$JS.API.STREAM.UPDATE.JOBS", "$JS.API.STREAM.PURGE.JOBS", "$JS.API.STREAM.DELETE.JOB_EVENTS", "$JS.API.CONSUMER.DELETE.JOBS.worker-image"]) {
      expect(whoPublishes(api), api).toEqual(["job-service"]);
    }
  });

  it("keeps each worker to its own queue's consumer", () => {
    expect(mayPublish("worker-image", "$JS.API.CONSUMER.MSG.NEXT.JOBS.worker-image")).toBe(true);
    expect(mayPublish("worker-image", "$JS.API.CONSUMER.MSG.NEXT.JOBS.worker-video")).toBe(false);
    expect(mayPublish("worker-image", "$JS.API.CONSUMER.CREATE.JOBS.worker-image.jobs.run.image.>")).toBe(true);
    expect(mayPublish("worker-image", "$JS.API.CONSUMER.CREATE.JOBS.worker-image.jobs.run.>")).toBe(false);
    expect(mayPublish("worker-image", "$JS.ACK.JOBS.worker-image.1.2.3.4.5")).toBe(true);
    expect(mayPublish("worker-image", "$JS.ACK.JOBS.worker-video.1.2.3.4.5")).toBe(false);
  });

  it("serves each service's subjects only from that service", () => {
    const servedByWorker = Object.fromEntries(Object.entries(workerServices).map(([w, s]) => [s, w]));
    for (const [service, methods] of Object.entries(rpc)) {
      const servers = natsUserNames.filter((a) => maySubscribe(a, subjects.rpc(service, Object.keys(methods)[0]!)));
      expect(servers, service).toEqual([servedByWorker[service] ?? `${service}-service`]);
    }
    expect(natsUserNames.filter((a) => maySubscribe(a, "svc.worker-video.health"))).toEqual(["worker-video"]);
  });

  it("lets each app ask its own health with its own login, as its container healthcheck does", () => {
    expect(whoPublishes("svc.billing.health").sort()).toEqual(["billing-service", "gateway"]);
    expect(whoPublishes("svc.worker-audio.health").sort()).toEqual(["gateway", "worker-audio"]);
    expect(mayPublish("worker-audio", "svc.worker-video.health")).toBe(false);
  });

  it("lets every process of a kind hear its instance health (no queue group), and only the gateway and the app itself ask it", () => {
    for (const [name, app] of [["billing", "billing-service"], ["job", "job-service"], ["worker-video", "worker-video"]] as const) {
      const subject = subjects.instanceHealth(name);
      expect(natsUserNames.filter((a) => maySubscribe(a, subject)), name).toEqual([app]);
      expect(whoPublishes(subject).sort(), name).toEqual([app, "gateway"].sort());
      expect(natsPermissions[app].allowResponses).toBe(true);
    }
    expect(mayPublish("worker-audio", subjects.instanceHealth("billing"))).toBe(false);
  });

  it("lets no app read another app's replies", () => {
    for (const app of natsUserNames) {
      const readers = natsUserNames.filter((a) => maySubscribe(a, `_INBOX_${app}.abc.1`) || maySubscribe(a, "_INBOX.abc.1"));
      expect(readers, app).toEqual([app]);
    }
  });

  it("lets only the gateway relay model webhooks, and only workers hear them", () => {
    const subject = subjects.modelWebhook("ufnhr7h3n9rj40cmw3ktnpgjkr");
    expect(whoPublishes(subject)).toEqual(["gateway"]);
    expect(natsUserNames.filter((a) => maySubscribe(a, subject))).toEqual(["worker-image", "worker-video", "worker-audio"]);
  });

  it("lets only the gateway ask for a prompt enhancement, and only worker-image (which holds the provider token) answer it", () => {
    expect(whoPublishes("svc.models.enhancePrompt")).toEqual(["gateway"]);
    expect(natsUserNames.filter((a) => maySubscribe(a, "svc.models.enhancePrompt"))).toEqual(["worker-image"]);
    expect(natsPermissions["worker-image"].allowResponses).toBe(true);
    // The gateway counts the enhancement bucket itself; still no grants, captures or releases.
    expect(mayPublish("gateway", "svc.billing.rate")).toBe(true);
    for (const denied of ["svc.billing.grant", "svc.billing.reserve", "svc.billing.capture", "svc.billing.release"]) expect(mayPublish("gateway", denied), denied).toBe(false);
  });

  it("lets workers put their heartbeats in the registry and the gateway watch it, and only the gateway drain an instance of its kind", () => {
    for (const w of ["worker-image", "worker-video", "worker-audio"] as const) {
      expect(mayPublish(w, "$KV.workers.worker-image-host-1-abcdef"), w).toBe(true);
      expect(mayPublish(w, "$JS.API.STREAM.CREATE.KV_workers"), w).toBe(true);
      expect(mayPublish(w, "$JS.API.STREAM.DELETE.KV_workers"), w).toBe(false);
    }
    expect(mayPublish("gateway", "$JS.API.CONSUMER.CREATE.KV_workers.KV_WATCHER_1")).toBe(true);
    expect(mayPublish("gateway", "$KV.workers.worker-image-host-1-abcdef")).toBe(false);
    // Workers over HTTP are the gateway's to record, under http. only.
    expect(mayPublish("gateway", "$KV.workers.http.0f4e-render-box-7")).toBe(true);
    // It reads an HTTP worker's record before writing it (a drain set by another replica is kept).
    expect(mayPublish("gateway", "$JS.API.DIRECT.GET.KV_workers.$KV.workers.http.0f4e-render-box-7")).toBe(true);
    const control = "workers.control.worker-video.worker-video-host-1-abcdef";
    expect(whoPublishes(control)).toEqual(["gateway"]);
    expect(natsUserNames.filter((a) => maySubscribe(a, control))).toEqual(["worker-video"]);
  });

  it("has a caller for every RPC method", () => {
    for (const [service, methods] of Object.entries(rpc)) {
      for (const method of Object.keys(methods)) expect(whoPublishes(subjects.rpc(service, method)), `${service}.${method}`).not.toEqual([]);
    }
  });
});
