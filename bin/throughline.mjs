#!/usr/bin/env node
// Entry point of the `throughline` command. Our dependencies need Node.js >= 22.18 (which also runs
// our TypeScript directly). `npm start` / `npm test` get it from the `node` devDependency; an
// installed command on an older system Node says so plainly instead of failing obscurely.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `throughline needs Node.js >= 22.18 (this is ${process.version}).\n` +
      `Run it through npm (npm start, npm run throughline -- <command>), which uses the Node.js 22 ` +
      `installed in node_modules, or install a current Node.js.\n`,
  );
  process.exit(2);
}
// Grafast prints a notice at import when GRAPHILE_ENV is unset; a server is production unless told.
process.env.GRAPHILE_ENV ??= "production";
await import("../src/cli.ts");
