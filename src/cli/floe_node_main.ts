/**
 * The entry point of `dist/node/floe_node.js` (the package's `floe-node` bin): runs `floe node`
 * under Node with the process's arguments and exits with its code.
 *
 * @module
 */
import process from "node:process";
import { runNodeFloe } from "./node_floe_command.ts";

const code = await runNodeFloe(process.argv.slice(2));
process.exitCode = code;
// A clean stop leaves nothing running and the process ends by itself; this only bounds how long
// a straggling socket can hold it (unref: it never keeps the process alive on its own).
setTimeout(() => process.exit(code), 2000).unref();
