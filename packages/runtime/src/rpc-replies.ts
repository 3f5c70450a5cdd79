import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";

/** Why a request got no reply: as `details.reason` of the caller's 503. */
export type NoReplyReason = "no_responders" | "timeout" | "unreachable";

export class NoReply extends Error {
  constructor(readonly reason: NoReplyReason) {
    super(reason);
  }
}

interface Pending {
  subject: string;
  resolve: (msg: Msg) => void;
  reject: (err: NoReply) => void;
  timer: NodeJS.Timeout;
}

export interface ReplyInbox {
  /** Publishes `data` to `subject` and resolves with its first reply; rejects with NoReply, never hangs past `timeoutMs`. */
  request: (subject: string, data: Uint8Array, timeoutMs: number, headers?: MsgHdrs) => Promise<Msg>;
}

const inboxes = new WeakMap<NatsConnection, ReplyInbox>();

/**
 * One subscription per connection for every RPC reply, told apart by a counter in the reply subject
 * (ADR 032). nats.js's own request() builds two or three Errors with stack traces per call, even
 * when the reply comes in time; this makes none unless a call fails.
 */
export function replyInbox(nc: NatsConnection): ReplyInbox {
  let inbox = inboxes.get(nc);
  if (!inbox) {
    inbox = createReplyInbox(nc);
    inboxes.set(nc, inbox);
  }
  return inbox;
}

function createReplyInbox(nc: NatsConnection): ReplyInbox {
  // The app's own prefix (connectNats sets it): its NATS user may subscribe only there.
  const prefix = (nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix || "_INBOX";
  const base = `${createInbox(prefix)}.`;
  const pending = new Map<string, Pending>();
  let next = 0;
  let sub: Subscription | undefined;

  const settle = (token: string) => {
    const p = pending.get(token);
    if (p) {
      pending.delete(token);
      clearTimeout(p.timer);
    }
    return p;
  };
  const failAll = () => {
    for (const token of [...pending.keys()]) settle(token)?.reject(new NoReply("unreachable"));
  };
  const start = () => {
    const s = nc.subscribe(`${base}*`, {
      callback: (err, msg) => {
        if (err) return;
        const p = settle(msg.subject.slice(base.length));
        if (!p) return;
        // The server's "no responders": an empty status message with code 503.
        if (msg.data.length === 0 && msg.headers?.code === 503) p.reject(new NoReply("no_responders"));
        else p.resolve(msg);
      },
    });
    // Closed (the connection drains or closes, or its user may not subscribe here): the next call starts a new one.
    s.closed.then(() => {
      if (sub === s) sub = undefined;
      failAll();
    });
    return s;
  };
  (async () => {
    // A request its NATS user may not publish fails at once, as nats.js's own request() does, not at its timeout.
    for await (const s of nc.status()) {
      const e = s.type === "error" ? (s.error as { name?: string; operation?: string; subject?: string }) : undefined;
      if (e?.name !== "PermissionViolationError" || e.operation !== "publish") continue;
      for (const [token, p] of pending) {
        if (p.subject !== e.subject) continue;
        settle(token);
        p.reject(new NoReply("unreachable"));
        break;
      }
    }
  })().catch(() => {});

  return {
    request(subject, data, timeoutMs, headers) {
      if (nc.isClosed() || nc.isDraining()) return Promise.reject(new NoReply("unreachable"));
      sub ??= start();
      const token = (next++).toString(36);
      return new Promise<Msg>((resolve, reject) => {
        const timer = setTimeout(() => settle(token)?.reject(new NoReply("timeout")), timeoutMs);
        pending.set(token, { subject, resolve, reject, timer });
        try {
          nc.publish(subject, data, headers ? { reply: base + token, headers } : { reply: base + token });
        } catch {
          settle(token)?.reject(new NoReply("unreachable"));
        }
      });
    },
  };
}
