import { makeAdmin } from "@cutroom/devstack";
import { createClient } from "@cutroom/e2e/client";
import { makeNoisyAudio, makePng, makeVideo } from "@cutroom/e2e/media";
import type { LoadOptions } from "./load.ts";

/**
 * A client of the cluster as an app would be one: an enterprise-tier user (300 jobs a minute) with
 * credits enough for the run, given by an admin through the API, and one small input of each kind.
 * The jobs cycle over the three worker kinds, image jobs most.
 */
export async function prepareClient(gateway: string, databaseUrl: string): Promise<{ token: string; jobs: LoadOptions["jobs"] }> {
  const api = createClient(gateway);
  const admin = await api.signUp("admin@chaos.cutroom.test");
  await makeAdmin({ databaseUrl }, admin.email);
  const adminToken = (await api.post("/auth/login", { email: admin.email, password: admin.password })).body.access_token as string;
  const user = await api.signUp();
  expectStatus(await api.request("PATCH", `/api/v1/admin/users/${user.user_id}`, { token: adminToken, json: { tier: "enterprise" } }), 200, "set the tier");
  expectStatus(await api.post(`/admin/users/${user.user_id}/credits`, { amount: 1_000_000, note: "chaos run" }, adminToken), 200, "grant credits");
  // The tier is in the token: sign in again for one that says enterprise.
  const token = (await api.post("/auth/login", { email: user.email, password: user.password })).body.access_token as string;

  const upload = async (name: string, type: string, bytes: Uint8Array) => {
    const reply = await api.upload(token, name, type, bytes);
    expectStatus(reply, 200, `upload ${name}`);
    return reply.body.file.id as string;
  };
  const [png, video, audio] = [await upload("in.png", "image/png", await makePng(64, 48)), await upload("in.mp4", "video/mp4", makeVideo(1)), await upload("in.wav", "audio/wav", makeNoisyAudio(1, 1))];
  const thumbnail = { type: "image.thumbnail", input: { file_id: png, width: 32, height: 32 } };
  return {
    token,
    jobs: [thumbnail, { type: "video.thumbnails", input: { file_id: video, width: 64 } }, thumbnail, { type: "audio.cleanup", input: { file_id: audio } }, thumbnail],
  };
}

function expectStatus(reply: { status: number; body: unknown }, status: number, what: string) {
  if (reply.status !== status) throw new Error(`could not ${what}: ${reply.status} ${JSON.stringify(reply.body)}`);
}
