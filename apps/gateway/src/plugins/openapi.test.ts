import { jobTypes } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import Fastify from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobRoutes } from "../routes/jobs.ts";
import { openapiPlugin } from "./openapi.ts";

const app = Fastify();
let spec: any;
beforeAll(async () => {
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorate("authenticate", async () => {});
  await app.register(openapiPlugin);
  await app.register((api) => jobRoutes(api, { rpc: {} as RpcClient }), { prefix: "/api/v1" });
  spec = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
});
afterAll(() => app.close());

const resolve = (schema: any) => (schema?.$ref ? spec.components.schemas[decodeURIComponent(schema.$ref.replace("#/components/schemas/", ""))] : schema);
const bodyOf = (path: string) => resolve(spec.paths[path].post.requestBody.content["application/json"].schema);

describe("the OpenAPI document's job bodies", () => {
  for (const path of ["/api/v1/jobs", "/api/v1/jobs/estimate"]) {
    it(`describes ${path}'s body as one schema per registered job type, told apart by type`, () => {
      const body = bodyOf(path);
      expect(body.discriminator.propertyName).toBe("type");
      const types = Object.keys(jobTypes);
      expect(Object.keys(body.discriminator.mapping).sort()).toEqual([...types].sort());
      expect(body.oneOf).toHaveLength(types.length);
      for (const type of types) {
        const member = resolve({ $ref: body.discriminator.mapping[type] });
        expect(body.oneOf).toContainEqual({ $ref: body.discriminator.mapping[type] });
        expect(member.properties.type.const).toBe(type);
        expect(member.required).toEqual(expect.arrayContaining(["type", "input"]));
        expect(resolve(member.properties.input).type).toBe("object");
      }
    });
  }

  it("shows each type's own input fields, and project_id on creation only", () => {
    const create = resolve({ $ref: bodyOf("/api/v1/jobs").discriminator.mapping["video.color-grade"] });
    expect(resolve(create.properties.input).properties.exposure).toMatchObject({ minimum: -3, maximum: 3 });
    expect(create.properties.project_id).toBeDefined();
    const estimate = resolve({ $ref: bodyOf("/api/v1/jobs/estimate").discriminator.mapping["video.color-grade"] });
    expect(estimate.properties.project_id).toBeUndefined();
    // Both bodies point at the one schema of the type's input.
    expect(estimate.properties.input).toEqual(create.properties.input);
  });
});
