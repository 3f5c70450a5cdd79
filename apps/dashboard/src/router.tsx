import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";

/** Every page lives under the gateway's /dashboard/ (the SPA fallback serves index.html for any of them). */
export const BASE = "/dashboard";

const listeners = new Set<() => void>();
addEventListener("popstate", () => {
  for (const listener of listeners) listener();
});

/** The path inside the dashboard (`/jobs/…`), without the base. */
function currentPath(): string {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  return path === "" ? "/" : path;
}

export function navigate(to: string) {
  history.pushState(null, "", BASE + to);
  for (const listener of listeners) listener();
}

/** The current path, re-rendering on navigation. */
export function usePath(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const listener = () => setTick((n) => n + 1);
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
  return { path: currentPath(), query: new URLSearchParams(location.search) };
}

/** A link that navigates without reloading the page (ctrl/middle click still opens a tab). */
export function Link({ to, children, class: className }: { to: string; children: ComponentChildren; class?: string }) {
  const onClick = (e: MouseEvent) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(to);
  };
  return (
    <a href={BASE + to} onClick={onClick} class={className}>
      {children}
    </a>
  );
}
