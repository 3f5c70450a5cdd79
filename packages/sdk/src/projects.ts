import type { Transport } from "./transport.ts";
import type { ApproveFilesParams, ApproveFilesReply, CreateProjectParams, ListProjectAssetsParams, ListProjectsParams, Project, ProjectAssetPage, ProjectCosts, ProjectPage, UpdateProjectParams } from "./types.ts";

export class ProjectsApi {
  constructor(private readonly t: Transport) {}

  create(params: CreateProjectParams): Promise<Project> {
    return this.t.json("POST", "/projects", { json: params });
  }

  get(id: string): Promise<Project> {
    return this.t.json("GET", `/projects/${id}`);
  }

  list(params: ListProjectsParams = {}): Promise<ProjectPage> {
    return this.t.json("GET", "/projects", { query: params });
  }

  update(id: string, params: UpdateProjectParams): Promise<Project> {
    return this.t.json("PATCH", `/projects/${id}`, { json: params });
  }

  /** Deletes the project: its running jobs are canceled (credits back) and its files deleted. */
  async delete(id: string): Promise<void> {
    await this.t.request("DELETE", `/projects/${id}`);
  }

  /** Its input and output files, oldest first, with role, stage, order and approval. */
  assets(id: string, params: ListProjectAssetsParams = {}): Promise<ProjectAssetPage> {
    return this.t.json("GET", `/projects/${id}/assets`, { query: params });
  }

  /** Approves (or rejects) files of the project. */
  approveFiles(id: string, params: ApproveFilesParams): Promise<ApproveFilesReply> {
    return this.t.json("POST", `/projects/${id}/approvals`, { json: params });
  }

  costs(id: string): Promise<ProjectCosts> {
    return this.t.json("GET", `/projects/${id}/costs`);
  }
}
