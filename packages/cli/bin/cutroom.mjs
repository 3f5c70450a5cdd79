#!/usr/bin/env node
// The CLI and the SDK are TypeScript source in the workspace (no build step): tsx loads them.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
