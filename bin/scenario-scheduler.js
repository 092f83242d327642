#!/usr/bin/env node
// The published entry: runs the TypeScript CLI through tsx, so no build step is needed.
import { register } from "tsx/esm/api"

register()
await import("../adapters/cli/main.ts")
