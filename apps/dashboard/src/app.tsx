import type { User } from "@cutroom/sdk";
import { useEffect, useState } from "preact/hooks";
import { cutroom, onSessionChange, signedIn } from "./api.ts";
import { Admin } from "./pages/admin.tsx";
import { JobPage } from "./pages/job.tsx";
import { Lists } from "./pages/lists.tsx";
import { NewJob } from "./pages/new-job.tsx";
import { PipelinePage } from "./pages/pipeline.tsx";
import { SignIn } from "./pages/sign-in.tsx";
import { Upload } from "./pages/upload.tsx";
import { Link, navigate, usePath } from "./router.tsx";

/** The page for a path; every page but sign-in needs a session. */
function route(path: string, query: URLSearchParams, me: User | null) {
  const job = /^\/jobs\/([0-9a-f-]{36})$/.exec(path);
  if (job) return <JobPage id={job[1]!} />;
  const run = /^\/pipelines\/([0-9a-f-]{36})$/.exec(path);
  if (run) return <PipelinePage id={run[1]!} />;
  if (path === "/upload") return <Upload />;
  if (path === "/new") return <NewJob query={query} />;
  if (path === "/admin") return me?.role === "admin" ? <Admin /> : <p class="card error">Only admins see this page.</p>;
  return <Lists />;
}

export function App() {
  const { path, query } = usePath();
  const [session, setSession] = useState(signedIn());
  const [me, setMe] = useState<User | null>(null);

  useEffect(() => onSessionChange(() => setSession(signedIn())), []);
  useEffect(() => {
    if (!session) {
      setMe(null);
      if (path !== "/sign-in") navigate("/sign-in");
      return;
    }
    cutroom.auth.me().then(setMe, () => setMe(null));
  }, [session]);

  const signOut = async () => {
    await cutroom.auth.logout().catch(() => {});
    navigate("/sign-in");
  };

  return (
    <>
      <header>
        <strong class="brand">Cutroom</strong>
        {session && (
          <nav>
            <Link to="/">Jobs</Link>
            <Link to="/upload">Upload</Link>
            <Link to="/new">New job</Link>
            {me?.role === "admin" && <Link to="/admin">Admin</Link>}
          </nav>
        )}
        {session && (
          <span class="me">
            {me && (
              <span class="muted">
                {me.email} · {me.credits} credits
              </span>
            )}{" "}
            <button type="button" class="secondary" onClick={signOut}>
              Sign out
            </button>
          </span>
        )}
      </header>
      <main>{session && path !== "/sign-in" ? route(path, query, me) : <SignIn />}</main>
    </>
  );
}
