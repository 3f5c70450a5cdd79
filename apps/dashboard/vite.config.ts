import { defineConfig } from "vite";

// Served by the gateway under /dashboard/; esbuild compiles the JSX for Preact (no plugin needed).
export default defineConfig({
  base: "/dashboard/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", chunkSizeWarningLimit: 200 },
  // `npm run dev -w @cutroom/dashboard` against a local stack: the API and WebSockets go to the gateway.
  server: { proxy: { "/api": "http://127.0.0.1:8000", "/storage": "http://127.0.0.1:8000", "/health": "http://127.0.0.1:8000", "/ws": { target: "ws://127.0.0.1:8000", ws: true } } },
});
