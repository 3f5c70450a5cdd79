import { type EventStreamOptions, followEvents } from "./events.ts";
import { newIdempotencyKey, type Transport } from "./transport.ts";
import type { ApprovePipelineParams, CancelPipelineReply, CreatePipelineParams, ListPipelinesParams, Pipeline, PipelineEvent, PipelinePage, PipelineTypeDescription } from "./types.ts";

export class PipelinesApi {
  constructor(private readonly t: Transport) {}

  /** Every pipeline type: its input JSON Schema, stages and flavors. */
  async types(): Promise<PipelineTypeDescription[]> {
    return (await this.t.json<{ data: PipelineTypeDescription[] }>("GET", "/pipeline-types", { auth: false })).data;
  }

  /** Starts a run (202); an Idempotency-Key is made for the call unless given. */
  create(params: CreatePipelineParams, opts: { idempotencyKey?: string } = {}): Promise<Pipeline> {
    const key = opts.idempotencyKey ?? newIdempotencyKey();
    return this.t.json("POST", "/pipelines", { json: params, headers: { "idempotency-key": key } });
  }

  get(id: string): Promise<Pipeline> {
    return this.t.json("GET", `/pipelines/${id}`);
  }

  list(params: ListPipelinesParams = {}): Promise<PipelinePage> {
    return this.t.json("GET", "/pipelines", { query: params });
  }

  /** Opens a gate (`stage`) with the chosen outputs; 409 unless it waits for approval. */
  approve(id: string, params: ApprovePipelineParams): Promise<Pipeline> {
    return this.t.json("POST", `/pipelines/${id}/approve`, { json: params });
  }

  cancel(id: string): Promise<CancelPipelineReply> {
    return this.t.json("POST", `/pipelines/${id}/cancel`, { json: {} });
  }

  /** A run's events in seq order over a WebSocket, ending after `pipeline_completed`; resumes with `since` when the socket drops. */
  events(id: string, opts: EventStreamOptions = {}): AsyncGenerator<PipelineEvent, void, undefined> {
    return followEvents<PipelineEvent>(this.t, "pipelines", id, (e) => e.type === "pipeline_completed", opts);
  }
}
