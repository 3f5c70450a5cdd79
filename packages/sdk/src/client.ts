import { AdminApi } from "./admin.ts";
import { AuthApi } from "./auth.ts";
import { FilesApi } from "./files.ts";
import { JobsApi } from "./jobs.ts";
import { PipelinesApi } from "./pipelines.ts";
import { ProjectsApi } from "./projects.ts";
import { type CutroomOptions, type Tokens, Transport } from "./transport.ts";

/**
 * A Cutroom API client for browsers and Node 20.
 *
 *   const cutroom = new Cutroom({ baseUrl: "http://localhost:8000", WebSocket });
 *   await cutroom.auth.login({ email, password });
 *   const job = await cutroom.jobs.create({ type: "image.thumbnail", input: { file_id } });
 *   const done = await cutroom.jobs.wait(job.id);
 */
export class Cutroom {
  readonly auth: AuthApi;
  readonly files: FilesApi;
  readonly jobs: JobsApi;
  readonly pipelines: PipelinesApi;
  readonly projects: ProjectsApi;
  /** Operators' calls (admin routes, GET /health). */
  readonly admin: AdminApi;
  private readonly transport: Transport;

  constructor(opts: CutroomOptions) {
    this.transport = new Transport(opts);
    this.auth = new AuthApi(this.transport);
    this.files = new FilesApi(this.transport);
    this.jobs = new JobsApi(this.transport);
    this.pipelines = new PipelinesApi(this.transport);
    this.projects = new ProjectsApi(this.transport);
    this.admin = new AdminApi(this.transport);
  }

  /** The tokens the client holds now (they change on login, refresh and logout). */
  get tokens(): Partial<Tokens> {
    return { accessToken: this.transport.accessToken, refreshToken: this.transport.refreshToken };
  }
}
