// `npm run chaos`: the chaos suite in full (tests/chaos): the stack as a cluster under load while every kind of process dies in turn.
await import("../tests/chaos/src/cli.ts");
