// Copy the chart library that `npm ci` installed into the console's static folder, where the API
// serves it at /vendor/. The copy is a build output (gitignored, made again by every build), never
// edited: the version is whatever package-lock.json pins. The licence travels with the code.
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const library = join(here, "node_modules", "lightweight-charts");
const vendor = join(here, "..", "static", "vendor");

mkdirSync(vendor, { recursive: true });
// The standalone ES module bundles its one dependency (fancy-canvas): the page imports one file.
copyFileSync(join(library, "dist", "lightweight-charts.standalone.production.mjs"), join(vendor, "lightweight-charts.mjs"));
copyFileSync(join(library, "LICENSE"), join(vendor, "lightweight-charts.LICENSE.txt"));
const { version } = JSON.parse(readFileSync(join(library, "package.json"), "utf8"));
console.log(`[console] lightweight-charts ${version} -> ${vendor}`);
